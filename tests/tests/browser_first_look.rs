//! The pages a newcomer meets (issue 13), in headless Chromium against
//! the real CA: the landing page at `/`; an approver who signs in there,
//! sees what waits, approves without typing her name and denies with a
//! reason; a revocation page that shows the serial exactly and whose
//! certificate it is; times in the viewer's zone (Asia/Kolkata) with UTC
//! on hover; failed touches explained in words. Each step is a
//! screenshot (saved to `$SCREENSHOT_DIR`, or the test's temp dir) whose
//! visible text the test checks.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use jit_ssh_e2e::people::People;
use jit_ssh_e2e::{
    bin, browser_script, have_tools, keygen, run, run_ok, DevCa, CHROMIUM, NODE, SSH_KEYGEN,
};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "ROOT/data"
ca_key = { kind = "file", path = "ROOT/ca/ca_key" }

[[users]]
name = "alice"
groups = ["sre"]

[[users]]
name = "carol"
groups = ["leads"]
roles = ["approver"]

[[users]]
name = "sec"
roles = ["security"]

[host_groups.web]
hosts = ["web-*.test"]
accounts = ["www"]

[[rules]]
groups = ["sre"]
host_groups = ["web"]
max_ttl = "30m"
approval = "approvers"
approvers = ["leads"]
min_approvals = 1
"#;

/// `12:40` of `2026-11-29T12:40:05Z` in Asia/Kolkata: `18:10` (the
/// zone has no daylight saving).
fn kolkata_clock(rfc3339: &str) -> String {
    let hm = &rfc3339[11..16];
    let minutes = hm[..2].parse::<u32>().unwrap() * 60 + hm[3..].parse::<u32>().unwrap() + 330;
    format!("{:02}:{:02}", minutes / 60 % 24, minutes % 60)
}

/// `2026-11-29T12:40:05Z` as the page's hover text says it.
fn utc_text(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").replace('Z', " UTC")
}

#[test]
fn a_newcomer_meets_pages_that_say_what_happens_in_their_own_time() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "browser_first_look",
        &[SSH_KEYGEN, CHROMIUM, NODE, &playwright],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["init", "--dir"])
            .arg(root.join("ca")),
    );
    let config = root.join("ca.toml");
    std::fs::write(&config, CONFIG.replace("ROOT", &root.display().to_string())).unwrap();
    let ca = DevCa::start_config(&root, &config);
    let people = People {
        root: root.clone(),
        ca_url: ca.url.clone(),
        agent: root.join("no-agent"),
    };
    for user in ["alice", "carol", "sec"] {
        people.enroll(&config, user);
    }
    let key = keygen(&root, "alice_key");
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    // A second invite for alice, to open with the key she already has.
    let invited = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["invite", "alice", "--config"])
            .arg(&config),
    );
    let invite = invited
        .lines()
        .find_map(|l| l.strip_prefix("enroll alice: "))
        .unwrap_or_else(|| panic!("no link in {invited:?}"))
        .to_owned();
    let shots =
        std::env::var_os("SCREENSHOT_DIR").map_or_else(|| root.join("shots"), PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();

    let out = run(Command::new(NODE)
        .arg(People::approve_mjs().with_file_name("first-look.mjs"))
        .arg(&ca.url)
        .arg(&root)
        .arg(public_key.trim())
        .arg(&shots)
        .arg(&invite));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "page script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let s = |k: &str| {
        r[k].as_str()
            .unwrap_or_else(|| panic!("no {k}: {r}"))
            .to_owned()
    };
    // Every step left a real picture behind.
    for name in [
        "landing",
        "landing-signed-in",
        "approve",
        "approved",
        "denied",
        "revoke",
        "wrong-key",
        "enroll-again",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}.png"
        );
    }

    // 1. `/` is a page that says what this is and how to begin.
    assert_eq!(r["landing_status"], 200, "{r}");
    let landing = s("landing_text");
    for needed in [
        "jit-ssh certificate authority",
        "Ask an admin for an invite",
        "jit-ssh-ca invite YOUR_NAME",
        "jit-ssh login HOST",
        "Approvers: requests waiting for you",
    ] {
        assert!(landing.contains(needed), "{needed:?} not on {landing}");
    }

    // 2. Times in the viewer's zone (UTC+05:30 here), UTC on hover: the
    //    hover is exactly the CA's own time.
    let mfa_expires = &r["mfa_expires"];
    assert!(
        mfa_expires["text"].as_str().unwrap().contains("GMT+5:30"),
        "{mfa_expires}"
    );
    assert_eq!(mfa_expires["title"], utc_text(&s("r1_expires_at")), "{r}");
    let local = format!("{} GMT+5:30", kolkata_clock(&s("r1_expires_at")));
    assert!(
        mfa_expires["text"].as_str().unwrap().ends_with(&local),
        "{local} in {mfa_expires}"
    );
    assert!(s("mfa_result").starts_with("Confirmed"), "{r}");

    // 3. Carol signs in on `/` and sees both of alice's requests.
    assert!(
        s("landing_signin_result").contains("Signed in as carol. 2 requests wait"),
        "{r}"
    );
    let pending = r["landing_pending"].as_array().unwrap();
    assert_eq!(pending.len(), 2, "{r}");
    assert!(
        pending[0].as_str().unwrap().contains("alice → www@web-"),
        "{r}"
    );
    assert!(s("landing_signed_in_text").contains("GMT+5:30"), "{r}");

    // 4. Her name is filled in from that sign-in; Deny looks destructive
    //    (red on white), not like Approve (white on blue); the expiry shows.
    assert_eq!(s("approve_name"), "carol", "{r}");
    assert!(
        s("approve_text").contains("Filled in from your sign-in on this browser"),
        "{r}"
    );
    assert_eq!(r["deny_style"]["color"], "rgb(180, 35, 24)", "{r}");
    assert_eq!(r["deny_style"]["background"], "rgb(255, 255, 255)", "{r}");
    assert_eq!(r["approve_style"]["background"], "rgb(31, 111, 235)", "{r}");
    assert!(
        r["approve_expires"]["text"]
            .as_str()
            .unwrap()
            .contains("GMT+5:30"),
        "{r}"
    );
    // What happened, for her: not "your terminal has the certificate".
    let approved = s("approve_result");
    assert!(
        approved.starts_with("Your approval is recorded, and it was the last one needed: the certificate was issued to alice"),
        "{approved}"
    );
    assert_eq!(
        s("approve_status"),
        "approved — the certificate was issued to alice"
    );
    assert!(!s("approve_done_text").contains("your terminal"), "{r}");
    // A decided request's deadline is not shown as if it still mattered.
    assert!(s("approve_done_text").contains("— (decided)"), "{r}");

    // 5. Denied, and the page says why.
    assert!(
        s("deny_result")
            .starts_with("You denied alice's request. Your reason, \"not during the freeze\""),
        "{r}"
    );
    assert_eq!(s("deny_status"), "denied: not during the freeze (by you)");
    assert!(s("denied_text").contains("not during the freeze"), "{r}");

    // 6. The revoke page shows the serial with every digit (as a string
    //    from the API) and whose certificate it is.
    let serial = s("issued_serial");
    assert!(serial.parse::<u64>().is_ok(), "{serial}");
    let revoke = s("revoke_text");
    assert!(revoke.contains(&format!("serial {serial}")), "{revoke}");
    assert_eq!(
        s("revoke_owner"),
        "alice's certificate for www@web-1.test",
        "{r}"
    );
    assert!(
        s("revoke_action").starts_with("Revoke alice's certificate for www@web-1.test"),
        "{r}"
    );
    assert!(
        r["revoke_owner_until"]["title"]
            .as_str()
            .unwrap()
            .ends_with(" UTC"),
        "{r}"
    );
    assert!(s("revoke_result").starts_with("Revoked"), "{r}");

    // 7. Failed touches say what happened and what to do, each cause in
    //    its own sentence, and never the browser's raw text.
    for k in ["wrong_key_result", "no_uv_result"] {
        let said = s(k);
        for sentence in [
            "Not confirmed. Your security key did not confirm.",
            "Cancelled, or it timed out? Press the button again and touch your key.",
            "Your key has no PIN, fingerprint or face set up? Set one up first",
            "Not the key you enrolled as alice? Use that key",
        ] {
            assert!(said.contains(sentence), "{k}: {sentence:?} not in {said}");
        }
        for raw in [
            "w3.org",
            "The operation either timed out or was not allowed",
        ] {
            assert!(!said.contains(raw), "{k}: {said}");
        }
    }
    assert!(s("wrong_key_text").contains("Not confirmed."), "{r}");
    assert_eq!(s("r3_status_after"), "pending_mfa", "{r}");

    // 8. The key alice already enrolled, on a second invite: said so.
    assert_eq!(
        s("enroll_again_result"),
        "Not enrolled. This key is already registered for this user.Use it, or register a different key.",
        "{r}"
    );
    assert!(
        s("enroll_again_text").contains("Use it, or register a different key."),
        "{r}"
    );
    assert!(
        r["enroll_expires"]["text"]
            .as_str()
            .unwrap()
            .contains("GMT+5:30"),
        "{r}"
    );
}
