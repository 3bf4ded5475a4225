//! Hosts with an identity, end to end with real OpenSSH: a host enrolls
//! with a token (`jit-ssh-ca host-token`, `jit-ssh-host enroll`), a real
//! sshd serves the host certificate it got, and a real ssh that trusts only
//! the host CA (`@cert-authority`, StrictHostKeyChecking yes) logs in with
//! no prompt — while it refuses an sshd with an uncertified host key.
//! Reused tokens and names outside the token's group are refused.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use jit_ssh_e2e::signed_ca::stderr;
use jit_ssh_e2e::{
    bin, have_tools, keygen, login_name, run, run_ok, DevCa, Sshd, SSH, SSHD, SSH_KEYGEN,
};

fn host_token(dev: &Path, group: &str) -> String {
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["host-token", "--group", group, "--dev-dir"])
            .arg(dev),
    )
    .trim()
    .to_owned()
}

fn enroll(url: &str, token: &str, name: &str, key: &Path, dir: &Path, extra: &[&str]) -> Output {
    run(Command::new(bin("jit-ssh-host"))
        .args([
            "enroll", "--ca-url", url, "--token", token, "--name", name, "--key",
        ])
        .arg(key)
        .arg("--dir")
        .arg(dir)
        .args(extra))
}

/// The dev CA with `line` added to its `[hosts]` section (the dev config
/// is written by the first start and kept by the next).
fn dev_ca_with_hosts(dev: &Path, line: &str) -> DevCa {
    let mut ca = DevCa::start(dev, "admin");
    ca.stop();
    let config = dev.join("ca.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[hosts]\n", &format!("[hosts]\n{line}\n"), 1),
    )
    .unwrap();
    DevCa::start(dev, "admin")
}

/// Where host `db-1.dev`'s files live under a test's root.
struct Db1 {
    host_key: std::path::PathBuf,
    sync_dir: std::path::PathBuf,
    drop_ins: std::path::PathBuf,
    cert_file: std::path::PathBuf,
}

impl Db1 {
    fn at(root: &Path) -> Db1 {
        Db1 {
            host_key: root.join("ssh_host_ed25519_key"),
            sync_dir: root.join("etc-ssh-jit-ssh"),
            drop_ins: root.join("sshd_config.d"),
            cert_file: root.join("ssh_host_ed25519_key-cert.pub"),
        }
    }
}

/// Makes db-1.dev's host key and enrolls it with a fresh `dev` token,
/// writing the sshd_config drop-in; returns enroll's output and the token.
fn enroll_db1(root: &Path, ca: &DevCa, extra: &[&str]) -> (Output, String) {
    let db1 = Db1::at(root);
    keygen(root, "ssh_host_ed25519_key");
    std::fs::create_dir(&db1.drop_ins).unwrap();
    let token = host_token(&ca.dev_dir, "dev");
    let out = enroll(
        &ca.url,
        &token,
        "db-1.dev",
        &db1.host_key,
        &db1.sync_dir,
        &[
            // The drop-in's principals from files: this sshd has no
            // jit-ssh-host at /usr/local/bin for the default command.
            &[
                "--sshd-config-dir",
                db1.drop_ins.to_str().unwrap(),
                "--principals-file",
            ],
            extra,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    (out, token)
}

/// sshd with `host_key`, including `drop_in_dir/*.conf` first (so the
/// drop-in's HostCertificate and jit-ssh lines apply).
fn sshd(root: &Path, name: &str, host_key: &Path, drop_in_dir: Option<&Path>) -> Sshd {
    let config = root.join(format!("{name}.sshd_config"));
    let include = drop_in_dir
        .map(|d| format!("Include {}/*.conf\n", d.display()))
        .unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "{include}HostKey {}\nPidFile none\nAuthorizedKeysFile none\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel VERBOSE\n\
             PermitRootLogin prohibit-password\n",
            host_key.display()
        ),
    )
    .unwrap();
    Sshd::serve(&config, &root.join(format!("{name}.sshd.log")))
}

#[test]
fn an_enrolled_host_is_trusted_by_certificate_and_others_are_refused() {
    if !have_tools("host_enroll", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dev = root.join("dev");
    let ca = DevCa::start(&dev, "admin");
    let account = login_name();

    // The host enrolls: certificate beside its key, CA keys and KRL synced,
    // an sshd_config drop-in written.
    let (out, token) = enroll_db1(root, &ca, &[]);
    let Db1 {
        host_key,
        sync_dir,
        drop_ins,
        cert_file,
    } = Db1::at(root);
    assert!(String::from_utf8_lossy(&out.stdout)
        .trim()
        .starts_with("HostCertificate /"));
    assert!(sync_dir.join("revoked.krl").exists() && sync_dir.join("ca-keys").exists());
    let shown = run_ok(Command::new(SSH_KEYGEN).arg("-L").arg("-f").arg(&cert_file));
    assert!(shown.contains("host certificate"), "{shown}");
    assert!(
        shown.contains("db-1.dev") && shown.contains("Valid: from"),
        "{shown}"
    );

    // The token was single-use; a name outside the token's group is refused.
    let again = enroll(&ca.url, &token, "db-1.dev", &host_key, &root.join("x"), &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("unknown, used up or expired"),
        "{}",
        stderr(&again)
    );
    let outside = enroll(
        &ca.url,
        &host_token(&dev, "dev"),
        "web-1.prod",
        &host_key,
        &root.join("y"),
        &[],
    );
    assert!(!outside.status.success());
    assert!(
        stderr(&outside).contains("not a name this token may enroll"),
        "{}",
        stderr(&outside)
    );
    // No token secret in the CA's log.
    let log = std::fs::read_to_string(&ca.stderr_log).unwrap();
    assert!(!log.contains(token.split('.').nth(2).unwrap()), "{log}");

    // sshd serving the certificate; principals for the account.
    run_ok(
        Command::new(bin("jit-ssh-host"))
            .args([
                "setup",
                "--host",
                "db-1.dev",
                "--account",
                &account,
                "--dir",
            ])
            .arg(&sync_dir),
    );
    let enrolled = sshd(root, "enrolled", &host_key, Some(&drop_ins));
    let other_key = keygen(root, "uncertified_host_key");
    let uncertified = sshd(
        root,
        "uncertified",
        &other_key,
        Some(&drop_ins_without_cert(root, &sync_dir)),
    );

    // The engineer's side: `jit-ssh ssh-config` checks the CA's key set
    // against the fingerprint (first use), then the host CA key set
    // against that key, and writes a known_hosts file of its own.
    let client_dir = root.join("client");
    let ssh_config = |extra: &[&str]| {
        run(Command::new(bin("jit-ssh"))
            .env("JIT_SSH_CONFIG", client_dir.join("config.toml"))
            .env("JIT_SSH_CA_URL", &ca.url)
            .args(["--json", "ssh-config", "--host", "*.dev"])
            .args(extra))
    };
    let ca_fp = jit_ssh_e2e::signed_ca::fingerprint(&ca.dev_dir.join("ca/ca_key"));
    let out = ssh_config(&["--ca-fingerprint", &ca_fp]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let known_hosts = std::path::PathBuf::from(printed["known_hosts"].as_str().unwrap());
    assert!(printed["snippet"]
        .as_str()
        .unwrap()
        .contains(&format!("UserKnownHostsFile \"{}\"", known_hosts.display())));
    let written = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(written.contains("@cert-authority *.dev"), "{written}");
    // Later runs need no fingerprint: the CA key is held.
    let out = ssh_config(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A wrong fingerprint is refused and writes nothing new.
    let out = ssh_config(&[
        "--ca-fingerprint",
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), written);

    // A user certificate from the CA key, for the login itself.
    let user = keygen(root, "engineer");
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-s"])
            .arg(ca.dev_dir.join("ca/ca_key"))
            .args([
                "-I",
                "jit-ssh:test:g:1",
                "-n",
                &format!("{account}@db-1.dev"),
                "-V",
                "+5m",
                "-z",
                "7",
            ])
            .arg(user.with_extension("pub")),
    );
    let login = |port: u16| {
        // Not the harness's ssh_command: it turns host checking off, and
        // ssh takes the first value it is given for an option.
        run(Command::new(SSH)
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", "ConnectTimeout=10", "-p", &port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "HostKeyAlias=db-1.dev",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ])
            .arg("-o")
            .arg(format!("CertificateFile={}-cert.pub", user.display()))
            .arg("-i")
            .arg(&user)
            .arg(format!("{account}@127.0.0.1"))
            .args(["echo", "trusted-by-certificate"]))
    };
    let out = login(enrolled.port());
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("trusted-by-certificate"),
        "ssh: {}\nsshd: {}",
        stderr(&out),
        enrolled.log()
    );
    // The same client refuses a host whose key no host CA certified.
    let out = login(uncertified.port());
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Host key verification failed")
            || stderr(&out).contains("No ED25519 host key is known"),
        "{}",
        stderr(&out)
    );

    // `host remove`: the inventory forgets it, clients list its key
    // `@revoked` at their next refresh, and ssh refuses the host although
    // its certificate is still valid.
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["host", "remove", "db-1.dev", "--dev-dir"])
            .arg(&dev),
    );
    let out = ssh_config(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(written.contains("@revoked * ssh-ed25519"), "{written}");
    let out = login(enrolled.port());
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(stderr(&out).contains("REVOKED"), "{}", stderr(&out));
    drop(ca);
}

/// The jit-ssh lines without a HostCertificate: an sshd that trusts the CA
/// for users but presents a plain host key.
fn drop_ins_without_cert(root: &Path, sync_dir: &Path) -> std::path::PathBuf {
    let d = root.join("plain.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("50-jit-ssh.conf"),
        format!(
            "TrustedUserCAKeys {0}/ca-keys\nRevokedKeys {0}/revoked.krl\nAuthorizedPrincipalsFile {0}/principals/%u\n",
            sync_dir.display()
        ),
    )
    .unwrap();
    d
}

/// A process standing in for a daemon sshd in its pid file (the harness runs
/// sshd per connection on port 0, where each connection reads the
/// certificate anew): it counts the SIGHUPs `--reload-sshd` sends.
struct HupCounter {
    child: std::process::Child,
    hups: std::path::PathBuf,
    pid_file: std::path::PathBuf,
}

impl HupCounter {
    fn start(root: &Path) -> HupCounter {
        let (hups, pid_file) = (root.join("hups"), root.join("sshd.pid"));
        // Named sshd: --reload-sshd signals only a process called that.
        let shell = root.join("sshd");
        std::fs::copy("/bin/sh", &shell).unwrap();
        let child = Command::new(&shell)
            .arg("-c")
            .arg(format!(
                "trap 'echo hup >> {}' HUP; echo $$ > {}; while :; do sleep 0.1; done",
                hups.display(),
                pid_file.display()
            ))
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !pid_file.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        HupCounter {
            child,
            hups,
            pid_file,
        }
    }

    /// The SIGHUPs seen, waiting up to 5 s for `expected` (the shell runs
    /// its trap once the current `sleep` ends).
    fn count(&self, expected: usize) -> usize {
        let seen = || {
            std::fs::read_to_string(&self.hups)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen() < expected && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        seen()
    }
}

impl Drop for HupCounter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificate sshd presents, as `ssh-keyscan -c` sees it.
fn served_certificate(port: u16) -> String {
    let out = run_ok(Command::new("/usr/bin/ssh-keyscan").args([
        "-c",
        "-t",
        "ed25519",
        "-p",
        &port.to_string(),
        "127.0.0.1",
    ]));
    // `[host]:port` first on some versions, not on others.
    let mut words = out.split_whitespace();
    words
        .find(|w| *w == "ssh-ed25519-cert-v01@openssh.com")
        .and(words.next())
        .unwrap_or_else(|| panic!("no certificate served: {out}"))
        .to_owned()
}

fn cert_blob(cert_file: &Path) -> String {
    std::fs::read_to_string(cert_file)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

fn hosts_json(dev: &Path) -> serde_json::Value {
    let out = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["hosts", "--json", "--dev-dir"])
            .arg(dev),
    );
    serde_json::from_str(out.lines().next().unwrap()).unwrap()
}

#[test]
fn host_sync_checks_in_renews_the_certificate_and_is_refused_after_removal() {
    if !have_tools("host_enroll", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dev = root.join("dev");
    // 12-second host certificates, so a renewal comes within the test.
    let ca = dev_ca_with_hosts(&dev, "cert_validity = \"12s\"");

    enroll_db1(root, &ca, &["--alias", "db.dev"]);
    let Db1 {
        host_key,
        sync_dir,
        drop_ins,
        cert_file,
    } = Db1::at(root);
    let first = cert_blob(&cert_file);
    let sshd = sshd(root, "enrolled", &host_key, Some(&drop_ins));
    assert_eq!(served_certificate(sshd.port()), first);
    let reload = HupCounter::start(root);
    let sync = || {
        run(Command::new(bin("jit-ssh-host"))
            .args(["--json", "sync", "--ca-url", &ca.url, "--reload-sshd"])
            .arg("--sshd-pid-file")
            .arg(&reload.pid_file)
            .arg("--dir")
            .arg(&sync_dir))
    };

    // A fresh certificate: the sync checks in, reports, renews nothing.
    let out = sync();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["checkin"]["name"], "db-1.dev", "{done}");
    assert!(done["checkin"]["renewed_serial"].is_null(), "{done}");
    assert_eq!(reload.count(0), 0);
    let listed = hosts_json(&dev);
    assert_eq!(listed["krl_version"], done["krl_version"], "{listed}");
    assert_eq!(listed["behind_on_krl"], false, "{listed}");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sync_dir.join("sync-state.json")).unwrap()).unwrap();
    assert_eq!(state["checkin"]["ok"], true, "{state}");

    // With less than a third left, the next sync renews it, reloads sshd,
    // and sshd serves the new certificate.
    let ends = std::fs::read_to_string(&cert_file).unwrap();
    let ends = ssh_key::Certificate::from_openssh(ends.trim())
        .unwrap()
        .valid_before();
    let until = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ends * 1000 - 2_900);
    std::thread::sleep(
        until
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    );
    let out = sync();
    assert!(out.status.success(), "{}", stderr(&out));
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(done["checkin"]["renewed_serial"].is_string(), "{done}");
    assert_eq!(done["checkin"]["sshd_reloaded"], true, "{done}");
    assert_eq!(reload.count(1), 1);
    let renewed = cert_blob(&cert_file);
    assert_ne!(renewed, first);
    assert_eq!(served_certificate(sshd.port()), renewed);
    let shown = run_ok(Command::new(SSH_KEYGEN).arg("-L").arg("-f").arg(&cert_file));
    // Renewed with the same names, the alias included.
    assert!(
        shown.contains("host certificate")
            && shown.contains("db-1.dev")
            && shown.contains("db.dev\n"),
        "{shown}"
    );
    assert_eq!(
        hosts_json(&dev)["cert_serial"],
        done["checkin"]["renewed_serial"]
    );

    // A copy of the certificate with another key cannot check in; the
    // KRL and CA keys are still kept current.
    let thief_dir = root.join("thief");
    std::fs::create_dir(&thief_dir).unwrap();
    let thief_key = keygen(&thief_dir, "ssh_host_ed25519_key");
    std::fs::copy(&cert_file, thief_dir.join("ssh_host_ed25519_key-cert.pub")).unwrap();
    let thief_sync = thief_dir.join("sync");
    std::fs::create_dir(&thief_sync).unwrap();
    for f in ["ca-keys", "ca-keys.signed.json"] {
        std::fs::copy(sync_dir.join(f), thief_sync.join(f)).unwrap();
    }
    std::fs::write(
        thief_sync.join("host.json"),
        serde_json::json!({"name": "db-1.dev", "key": thief_key}).to_string(),
    )
    .unwrap();
    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", &ca.url, "--dir"])
        .arg(&thief_sync));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not signed by the host key enrolled for db-1.dev"),
        "{}",
        stderr(&out)
    );
    assert!(thief_sync.join("revoked.krl").exists());
    assert_eq!(hosts_json(&dev)["name"], "db-1.dev");

    // Removed: its own sync is refused with what to do.
    run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["host", "remove", "db-1.dev", "--dev-dir"])
            .arg(&dev),
    );
    let out = sync();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not enrolled"), "{}", stderr(&out));
    assert!(stderr(&out).contains("enroll"), "{}", stderr(&out));
    assert_eq!(reload.count(1), 1);
    drop(ca);
}

#[test]
fn a_host_holding_an_old_krl_is_listed_as_behind() {
    if !have_tools("host_enroll", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dev = root.join("dev");
    // "Behind" after one second, so the KRL the host holds ages into it.
    let ca = dev_ca_with_hosts(&dev, "krl_behind_after = \"1s\"");
    enroll_db1(root, &ca, &[]);
    let out = run(Command::new(bin("jit-ssh-host"))
        .args(["sync", "--ca-url", &ca.url, "--dir"])
        .arg(&Db1::at(root).sync_dir));
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = hosts_json(&dev);
    let signed_at = listed["krl_signed_at"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let table = run_ok(
        Command::new(bin("jit-ssh-ca"))
            .args(["hosts", "--dev-dir"])
            .arg(&dev),
    );
    let row = table.lines().find(|l| l.starts_with("db-1.dev")).unwrap();
    assert!(row.contains("behind-on-krl"), "{table}");
    assert!(row.contains(&signed_at), "{table}");
    assert_eq!(hosts_json(&dev)["behind_on_krl"], true);
}
