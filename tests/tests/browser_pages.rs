//! The confirmation pages in headless Chromium, against the real CA and
//! the real client: a sign-in link disguised as an access-request link
//! (`/mfa/..%2Fsessions%2FID`) confirms nothing and shows an error, each
//! page says what its touch does, and the page shows the match code
//! `jit-ssh login` printed next to the link.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use jit_ssh_e2e::agent::{SSH_ADD, SSH_AGENT};
use jit_ssh_e2e::world::World;
use jit_ssh_e2e::{browser_script, have_tools, http_get, run, CHROMIUM, NODE, SSH_KEYGEN};

#[test]
fn disguised_links_confirm_nothing_and_the_page_shows_the_printed_match_code() {
    let (flow, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "browser_pages",
        &[SSH_KEYGEN, SSH_AGENT, SSH_ADD, CHROMIUM, NODE, &playwright],
    ) {
        return;
    }
    let w = World::start();

    // The engineer's terminal: the link on its own line, then the code.
    let mut login = w
        .jit_ssh()
        .args([
            "login",
            "db.dev",
            "--as",
            &w.account,
            "--no-browser",
            "--timeout",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(login.stderr.take().unwrap());
    let mut printed = Vec::new();
    let (link, code) = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "jit-ssh ended before printing a link and code: {printed:?}"
        );
        let line = line.trim_end().to_owned();
        printed.push(line.clone());
        if let Some(rest) = line.strip_prefix("Match code: ") {
            let code = rest.split_whitespace().next().unwrap().to_owned();
            let link = printed
                .iter()
                .find(|l| l.starts_with("http://"))
                .expect("the link comes before the code")
                .clone();
            break (link, code);
        }
    };
    assert!(
        link.split_whitespace().count() == 1 && link.contains("/mfa/"),
        "{link}"
    );
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });

    let out = run(Command::new(NODE)
        .arg(flow.with_file_name("pages.mjs"))
        .arg(w.root.join("credential.json"))
        .args([&w.account, &link, &code]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "page script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let s = |k: &str| r[k].as_str().unwrap_or_else(|| panic!("no {k}: {r}"));

    // The victim was never offered a button to press.
    for k in [
        "disguised_pressed",
        "served_anyway_pressed",
        "wrong_kind_pressed",
    ] {
        assert!(r[k].is_null(), "{k}: {r}");
    }
    // 1. The disguised link: no page, no button.
    assert_eq!(r["disguised_status"], 404, "{r}");
    assert_eq!(r["disguised_buttons"], 0, "{r}");
    assert!(s("disguised_text").contains("No such link"), "{r}");
    // 2. and 3. Even when handed the page, the script refuses.
    assert!(
        s("served_anyway_result").contains("not a jit-ssh link"),
        "{r}"
    );
    assert_eq!(r["served_anyway_button_disabled"], true, "{r}");
    assert!(
        s("wrong_kind_result").contains("leads to a sign-in, not an SSH access request"),
        "{r}"
    );
    assert_eq!(r["wrong_kind_button_disabled"], true, "{r}");
    // 4. A sign-in says what it is, and never "SSH access".
    assert!(
        s("signin_action").starts_with(&format!("Sign in as {} to read the audit log", w.account)),
        "{r}"
    );
    assert!(!s("signin_text").contains("SSH access"), "{r}");
    assert_ne!(s("signin_match_code"), code, "{r}");
    // Nothing confirmed the attacker's sign-in.
    assert_eq!(s("session_status_after"), "pending_mfa", "{r}");
    let summary = http_get(&format!(
        "{}/v1/sessions/{}/summary",
        w.ca.url,
        s("session_id")
    ));
    assert!(summary.contains("\"status\":\"pending_mfa\""), "{summary}");

    // 5. The page showed the code the terminal printed, and said what the
    //    touch does; confirming it let the login finish.
    assert_eq!(s("mfa_match_code"), code, "{r}");
    assert!(s("mfa_action").contains("SSH access to db.dev as"), "{r}");
    assert!(s("mfa_result").starts_with("Confirmed"), "{r}");
    let status = login.wait().unwrap();
    let rest = rest.join().unwrap();
    assert!(status.success(), "login failed: {printed:?}\n{rest}");
    assert_eq!(w.agent.certificates().len(), 1);
}
