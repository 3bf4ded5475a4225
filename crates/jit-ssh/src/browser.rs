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
/// take it), then the match code the page must show, and, unless told
/// not to, opens it. The code is printed even when quiet: it is how the
/// person tells their own request's page from one an attacker sent.
pub fn offer(heading: &str, url: &str, match_code: &str, open_it: bool, quiet: bool) {
    if !quiet {
        eprintln!("{heading}");
    }
    // The URL comes from the CA: shown escaped, like every text from it.
    eprintln!("{}", jit_ssh_proto::text::escape_for_terminal(url));
    if let Some(line) = match_line(match_code) {
        eprintln!("{line}");
    }
    if !open_it {
        return;
    }
    match openable(url) {
        Some(link) => {
            if !open(&link) && !quiet {
                eprintln!("(could not open a browser: open the link above yourself)");
            }
        }
        None => eprintln!(
            "(not opened: the CA's link is not a plain http(s) address; open it yourself only if it is on your CA's address)"
        ),
    }
}

/// The CA's link as it may be handed to a browser: an absolute `http` or
/// `https` URL with a host and no user name or password, written out as
/// the URL parser writes it (so it cannot start with `-`, nor carry a
/// space that splits it). Anything else (`file:`, `javascript:`, a word
/// a browser would take as an option such as `--renderer-cmd-prefix=…`)
/// is shown but never opened: whoever answers for the CA URL (a rogue
/// replica, a man in the middle of plain http) must not get to run a
/// command here through `$BROWSER`.
pub fn openable(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let plain = matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none();
    plain.then(|| parsed.to_string())
}

/// `Match code: ABC-DEF (…)`, for a code of capitals, digits and dashes
/// only: the CA's answer never reaches the terminal as anything else.
/// None for a CA that sends no code.
pub fn match_line(code: &str) -> Option<String> {
    let plain = !code.is_empty()
        && code.len() <= 16
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    plain.then(|| {
        format!("Match code: {code} (the page must show the same; if not, do not confirm)")
    })
}

#[cfg(test)]
mod tests {
    use super::{match_line, openable};

    #[test]
    fn only_plain_web_links_are_opened() {
        assert_eq!(
            openable("https://ca.example/confirm/r1").as_deref(),
            Some("https://ca.example/confirm/r1")
        );
        assert_eq!(
            openable("http://localhost:8722/confirm/r1").as_deref(),
            Some("http://localhost:8722/confirm/r1")
        );
        // Written out by the parser: a space cannot split the argument.
        assert_eq!(
            openable("https://ca.example/a b").as_deref(),
            Some("https://ca.example/a%20b")
        );
        for refused in [
            "--renderer-cmd-prefix=touch /tmp/owned",
            "-new-instance",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/html,<script>x</script>",
            "ftp://ca.example/x",
            "https://user:pw@ca.example/confirm/r1",
            "/confirm/r1",
            "",
        ] {
            assert_eq!(openable(refused), None, "{refused}");
        }
    }

    #[test]
    fn only_plain_codes_are_printed() {
        assert_eq!(
            match_line("K7Q-M3F").as_deref(),
            Some("Match code: K7Q-M3F (the page must show the same; if not, do not confirm)")
        );
        assert_eq!(match_line(""), None);
        assert_eq!(match_line("K7Q\x1b[2J"), None);
        assert_eq!(match_line("abc-def"), None);
    }
}
