//! A non-interactive session (a command, scp, sftp, rsync): the child
//! gets pipes of its own and the wrapper copies bytes unchanged between
//! them and sshd's. Copying rather than handing sshd's descriptors down
//! means that when the wrapper ends the session, the connection is cut
//! for every process, even one that slipped out of the session.

use std::process::Stdio;

use super::command::Plan;
use super::io;
use super::record::Tap;

/// A child on pipes, with the copies running.
pub struct PipedChild {
    pub child: tokio::process::Child,
    /// Ends when the child's stdout and stderr both reached end of file.
    pub output_done: tokio::task::JoinHandle<u64>,
}

/// With `tap`, what the command writes (stdout and stderr, and under
/// `full` what it reads) goes to the recorder before it is passed on.
pub fn spawn(plan: &Plan, tap: Option<Tap>) -> std::io::Result<PipedChild> {
    let mut child = tokio::process::Command::new(&plan.program)
        .arg0(&plan.arg0)
        .args(&plan.args)
        // Its own process group, so job-control signals from a shell
        // elsewhere never reach the wrapper.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (cin, cout, cerr) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
        (Some(i), Some(o), Some(e)) => (i, o, e),
        _ => return Err(std::io::Error::other("the child's pipes are missing")),
    };
    tokio::spawn(io::pump_recorded(io::stdin(), cin, tap.clone(), true));
    let out = tokio::spawn(io::pump_recorded(cout, io::stdout(), tap.clone(), false));
    let err = tokio::spawn(io::pump_recorded(cerr, tokio::io::stderr(), tap, false));
    let output_done = tokio::spawn(async move { out.await.unwrap_or(0) + err.await.unwrap_or(0) });
    Ok(PipedChild { child, output_done })
}
