//! The whole login in a real browser: `jit-ssh-ca serve --dev`, headless
//! Debian Chromium with a CDP virtual authenticator enrolling through the
//! invite page and approving through `mfa_url`, and a real sshd accepting
//! the certificate that comes out.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use jit_ssh_e2e::{
    browser_script, have_tools, keygen, login_name, run, ssh_with_cert, DevCa, Sshd, CHROMIUM,
    NODE, SSH, SSHD, SSH_KEYGEN,
};

#[test]
fn browser_enrollment_and_login_yield_a_certificate_sshd_accepts() {
    let (script, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "browser_login",
        &[SSHD, SSH, SSH_KEYGEN, CHROMIUM, NODE, &playwright],
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let account = login_name();
    // The dev policy allows `oncall` and the user's own name on *.dev.
    let mut ca = DevCa::start(&root.join("dev"), &account);
    let key = keygen(root, "engineer");
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let out = run(Command::new(NODE)
        .arg(&script)
        .args([&ca.enroll_url, public_key.trim(), "db-1.dev", &account])
        .env("JIT_SSH_USER", &account));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser flow failed:\n{stdout}\n{}\nCA log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&ca.stderr_log).unwrap_or_default()
    );
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        result["without_uv"]
            .as_str()
            .unwrap()
            .starts_with("Not confirmed"),
        "{result}"
    );
    let cert_line = result["certificate"]["certificate"].as_str().unwrap();
    let cert = root.join("engineer-cert.pub");
    std::fs::write(&cert, format!("{cert_line}\n")).unwrap();

    // A real sshd trusting the dev CA accepts it for this host's principal.
    let principals = root.join("principals");
    std::fs::create_dir(&principals).unwrap();
    std::fs::write(principals.join(&account), format!("{account}@db-1.dev\n")).unwrap();
    let krl = root.join("revoked.krl");
    run(Command::new(jit_ssh_e2e::bin("jit-ssh-ca"))
        .args(["krl", "build", "-o"])
        .arg(&krl));
    let sshd = Sshd::start(root, &ca.ca_public_key(), &krl, &principals);
    let out = ssh_with_cert(sshd.port(), &account, &key, &cert, &["echo", "in"]);
    assert!(
        out.status.success(),
        "sshd refused: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    let id = result["request_id"].as_str().unwrap();
    assert!(
        sshd.log().contains(&format!("ID jit-ssh:{account}:{id}:")),
        "{}",
        sshd.log()
    );

    // SIGTERM stops the CA cleanly and removes its admin socket.
    assert_eq!(ca.stop(), Some(0));
    assert!(!root.join("dev").join("data").join("admin.sock").exists());
}
