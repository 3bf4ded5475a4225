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
        let spawned = Command::new(prog)
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => {
                watch(prog.clone(), child);
                true
            }
            Err(_) => false,
        }
    })
}

/// Waits for the opener in the background: it is reaped (no defunct
/// child), and an opener that fails — `xdg-open` on a headless machine —
/// is reported instead of leaving the person waiting on a page that
/// never opened.
fn watch(prog: String, mut child: std::process::Child) {
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            if !status.success() {
                eprintln!(
                    "(could not open a browser: {prog} {status}; open the link above yourself)"
                );
            }
        }
    });
}

/// Shows a confirmation link on its own line (so people and scripts can
/// take it) and, unless told not to, opens it.
pub fn offer(heading: &str, url: &str, open_it: bool, quiet: bool) {
    if !quiet {
        eprintln!("{heading}");
    }
    eprintln!("{url}");
    if open_it && !open(url) && !quiet {
        eprintln!("(could not open a browser: open the link above yourself)");
    }
}
