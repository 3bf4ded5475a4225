//! Opening the MFA link: `$BROWSER`, else `xdg-open`. Failure is not an
//! error: the link is printed anyway, for jump hosts and headless shells.

use std::process::{Command, Stdio};

/// Starts the browser without waiting for it. Returns false if none could run.
pub fn open(url: &str) -> bool {
    let mut candidates: Vec<Vec<String>> = Vec::new();
    if let Ok(b) = std::env::var("BROWSER") {
        // $BROWSER may hold several commands separated by ':' (xdg convention).
        candidates.extend(
            b.split(':')
                .filter(|c| !c.is_empty())
                .map(|c| c.split_whitespace().map(String::from).collect()),
        );
    }
    candidates.push(vec!["xdg-open".into()]);
    candidates.into_iter().any(|cmd| {
        let Some((prog, args)) = cmd.split_first() else {
            return false;
        };
        Command::new(prog)
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok()
    })
}

/// Shows a confirmation link on its own line (so people and scripts can
/// take it) and, unless told not to, opens it.
pub fn offer(heading: &str, url: &str, open_it: bool, quiet: bool) {
    if !quiet {
        eprintln!("{heading}");
    }
    // The URL comes from the CA: shown escaped, like every text from it.
    eprintln!("{}", jit_ssh_proto::text::escape_for_terminal(url));
    if open_it && !open(url) && !quiet {
        eprintln!("(could not open a browser: open the link above yourself)");
    }
}
