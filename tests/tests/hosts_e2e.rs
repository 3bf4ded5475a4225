//! `jit-ssh hosts` with the real binaries: a dev CA (`jit-ssh-ca serve
//! --dev`), an engineer enrolled in Chromium, and the real client. The
//! engineer signs in once (a touch in Chromium), sees the `*.dev` hosts
//! with their accounts, cap and "no approval", narrows by pattern
//! through the saved sign-in, and a real login for a host the table
//! promised issues at once. A bad pattern is a usage error naming it.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jit_ssh_e2e::agent::{SSH_ADD, SSH_AGENT};
use jit_ssh_e2e::world::{ok_json, World};
use jit_ssh_e2e::{browser_script, have_tools, run, CHROMIUM, NODE};

#[test]
fn engineers_see_what_they_may_reach_before_asking() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "hosts_e2e",
        &[SSH_AGENT, SSH_ADD, CHROMIUM, NODE, &playwright],
    ) {
        return;
    }
    let w = World::start();
    let hosts = |args: &[&str]| run(w.jit_ssh().args(args).args(["--timeout", "60s"]));

    // The table, after one touch.
    let out = hosts(&["hosts"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Sign in as"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("HOSTS (GROUP)") && lines[0].ends_with("APPROVAL NOW"),
        "{stdout}"
    );
    let dev = lines
        .iter()
        .find(|l| l.starts_with("*.dev "))
        .unwrap_or_else(|| panic!("no *.dev row:\n{stdout}"));
    assert!(dev.contains(&format!("oncall, {}", w.account)), "{dev}");
    assert!(dev.contains(" 1h "), "{dev}");
    assert!(dev.ends_with("none (your touch only)"), "{dev}");
    let stage = lines
        .iter()
        .find(|l| l.starts_with("*.stage "))
        .unwrap_or_else(|| panic!("no *.stage row:\n{stdout}"));
    assert!(stage.contains(" 30m "), "{stage}");
    assert!(stage.ends_with("1 approver of carol"), "{stage}");

    // Narrowed by a pattern, through the saved sign-in (no second touch).
    let out = hosts(&["hosts", "*.prod"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no host you may reach matches *.prod"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Sign in as"));

    // JSON for a host name; a real login for it issues at once, as promised.
    let out = hosts(&["--json", "hosts", "db-1.dev"]);
    let list = ok_json(&out);
    assert_eq!(list["user"], w.account.as_str());
    let rows = list["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["approval"]["kind"], "auto");
    assert_eq!(rows[0]["max_ttl_secs"], 3600);
    let cert = ok_json(&w.login("db-1.dev", "1h"));
    assert!(cert["serial"].as_str().is_some(), "{cert}");

    // A malformed pattern: a usage error (exit 2) that names the problem.
    let out = hosts(&["hosts", "db;rm"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pattern") && err.contains("may hold only"),
        "{err}"
    );
}
