//! The CA core against the real OpenSSH: certificates signed by
//! `jit-ssh-ca sign` are read by `ssh-keygen -L`, accepted or refused by a
//! real `sshd`, and KRLs built by `jit-ssh-ca krl build` are read by
//! OpenSSH exactly as by our own decoder.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use jit_ssh_e2e::{
    bin, have_tools, keygen, login_name, run, run_ok, ssh_with_cert, Ca, Sshd, SSH, SSHD,
    SSH_KEYGEN,
};
use rand::{Rng, SeedableRng};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn ssh_keygen_reads_every_field_of_a_signed_certificate() {
    if !have_tools("ssh_keygen_reads_every_field", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path());
    let key = keygen(tmp.path(), "alice");
    let (cert, serial) = ca.sign_ok(
        &key,
        "alice",
        "DB-1.Dev",
        "postgres",
        "10m",
        &[
            "--source-address",
            "127.0.0.1,10.0.0.0/8",
            "--force-command",
            "/usr/bin/psql",
            "--extension",
            "permit-pty",
            "--extension",
            "permit-agent-forwarding",
        ],
    );
    let shown = run_ok(Command::new(SSH_KEYGEN).arg("-L").arg("-f").arg(&cert));
    let ca_fp = run_ok(
        Command::new(SSH_KEYGEN)
            .arg("-l")
            .arg("-f")
            .arg(&ca.public_key),
    );
    let ca_fp = ca_fp.split_whitespace().nth(1).unwrap();
    for needle in [
        "Type: ssh-ed25519-cert-v01@openssh.com user certificate".to_owned(),
        format!("Signing CA: ED25519 {ca_fp}"),
        "Key ID: \"jit-ssh:alice:".to_owned(),
        format!(":{serial}\""),
        format!("Serial: {serial}"),
        "Principals: \n                postgres@db-1.dev\n".to_owned(),
        "force-command /usr/bin/psql".to_owned(),
        "source-address 127.0.0.1/32,10.0.0.0/8".to_owned(),
        "permit-agent-forwarding".to_owned(),
        "permit-pty".to_owned(),
    ] {
        assert!(
            shown.contains(&needle),
            "ssh-keygen -L lacks {needle:?}:\n{shown}"
        );
    }
    // Validity: ssh-keygen prints "from A to B"; B - A = TTL + 60 s of skew.
    let valid = shown
        .lines()
        .find(|l| l.trim_start().starts_with("Valid:"))
        .unwrap();
    let parts: Vec<&str> = valid.split_whitespace().collect();
    let parse = |s: &str| {
        time::PrimitiveDateTime::parse(s, &time::format_description::well_known::Iso8601::DEFAULT)
            .unwrap()
    };
    assert_eq!(
        (parse(parts[4]) - parse(parts[2])).whole_seconds(),
        600 + 60,
        "{valid}"
    );

    // A default certificate carries permit-pty only, and no critical options.
    let key2 = keygen(tmp.path(), "bob");
    let (cert2, _) = ca.sign_ok(&key2, "bob", "web.dev", "bob", "5m", &[]);
    let shown = run_ok(Command::new(SSH_KEYGEN).arg("-L").arg("-f").arg(&cert2));
    assert!(shown.contains("Critical Options: (none)"), "{shown}");
    let ext = shown.split("Extensions:").nth(1).unwrap();
    assert_eq!(
        ext.split_whitespace().collect::<Vec<_>>(),
        ["permit-pty"],
        "{shown}"
    );
}

#[test]
fn sshd_accepts_the_certificate_and_refuses_expired_other_host_and_revoked() {
    if !have_tools("sshd_accepts_and_refuses", &[SSHD, SSH, SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca = Ca::init(root);
    let account = login_name();
    let host = "db-1.dev";
    let principals = root.join("principals");
    std::fs::create_dir(&principals).unwrap();
    std::fs::write(principals.join(&account), format!("{account}@{host}\n")).unwrap();
    let krl = root.join("revoked.krl");
    ca.build_krl("", &krl); // an empty KRL: a missing one makes sshd refuse everyone
    let sshd = Sshd::start(root, &ca.public_key, &krl, &principals);

    // Accepted, and sshd logs our key id and serial.
    let alice = keygen(root, "alice");
    let (cert, serial) = ca.sign_ok(&alice, "alice", host, &account, "10m", &[]);
    let out = ssh_with_cert(sshd.port(), &account, &alice, &cert, &["echo", "logged-in"]);
    assert!(
        out.status.success(),
        "login refused: {}\n{}",
        stderr(&out),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "logged-in");
    let log = sshd.log();
    assert!(
        log.contains(&format!("Accepted publickey for {account}"))
            && log.contains("ID jit-ssh:alice:")
            && log.contains(&format!("(serial {serial})")),
        "{log}"
    );

    // force-command and source-address are honoured.
    let forced = keygen(root, "forced");
    let (fcert, _) = ca.sign_ok(
        &forced,
        "alice",
        host,
        &account,
        "10m",
        &["--force-command", "echo forced-by-cert"],
    );
    let out = ssh_with_cert(
        sshd.port(),
        &account,
        &forced,
        &fcert,
        &["echo", "not-this"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "forced-by-cert",
        "{}",
        stderr(&out)
    );
    let pinned = keygen(root, "pinned");
    let (pcert, _) = ca.sign_ok(
        &pinned,
        "alice",
        host,
        &account,
        "10m",
        &["--source-address", "10.9.9.9"],
    );
    assert!(
        !ssh_with_cert(sshd.port(), &account, &pinned, &pcert, &["true"])
            .status
            .success()
    );

    // Another host's principal is refused.
    let mallory = keygen(root, "mallory");
    let (other, _) = ca.sign_ok(&mallory, "mallory", "db-2.dev", &account, "10m", &[]);
    assert!(
        !ssh_with_cert(sshd.port(), &account, &mallory, &other, &["true"])
            .status
            .success()
    );
    assert!(
        sshd.log()
            .contains("Certificate does not contain an authorized principal"),
        "{}",
        sshd.log()
    );

    // Expired is refused.
    let late = keygen(root, "late");
    let (short, _) = ca.sign_ok(&late, "late", host, &account, "1s", &[]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        !ssh_with_cert(sshd.port(), &account, &late, &short, &["true"])
            .status
            .success()
    );
    assert!(
        sshd.log().contains("Certificate invalid: expired"),
        "{}",
        sshd.log()
    );

    // Revoked by serial in a KRL from `jit-ssh-ca krl build`: refused,
    // while another certificate from the same CA still works.
    let bob = keygen(root, "bob");
    let (bob_cert, _) = ca.sign_ok(&bob, "bob", host, &account, "10m", &[]);
    ca.build_krl(&format!("# revoked in e2e\nserial: {serial}\n"), &krl);
    let out = ssh_with_cert(sshd.port(), &account, &alice, &cert, &["true"]);
    assert!(!out.status.success(), "revoked certificate accepted");
    assert!(sshd.log().contains("revoked by file"), "{}", sshd.log());
    let out = ssh_with_cert(sshd.port(), &account, &bob, &bob_cert, &["true"]);
    assert!(
        out.status.success(),
        "unrevoked certificate refused: {}\n{}",
        stderr(&out),
        sshd.log()
    );
}

/// Makes `n` certificates with chosen serials using ssh-keygen itself (an
/// independent signer), returning their paths.
fn certs_with_serials(dir: &Path, ca_key: &Path, serials: &[u64]) -> Vec<std::path::PathBuf> {
    let key = keygen(dir, "probe");
    let public = std::fs::read(key.with_extension("pub")).unwrap();
    serials
        .iter()
        .map(|s| {
            let p = dir.join(format!("c{s}.pub"));
            std::fs::write(&p, &public).unwrap();
            run_ok(
                Command::new(SSH_KEYGEN)
                    .arg("-q")
                    .arg("-s")
                    .arg(ca_key)
                    .args([
                        "-I",
                        "probe",
                        "-n",
                        "probe",
                        "-V",
                        "+1h",
                        "-z",
                        &s.to_string(),
                    ])
                    .arg(&p),
            );
            dir.join(format!("c{s}-cert.pub"))
        })
        .collect()
}

/// `path → revoked?` from `ssh-keygen -Q` or `jit-ssh-ca krl check` output.
fn verdicts(stdout: &str) -> std::collections::BTreeMap<String, bool> {
    stdout
        .lines()
        .map(|l| {
            let path = l.split([' ', ':']).next().unwrap().to_owned();
            (path, l.ends_with("REVOKED"))
        })
        .collect()
}

fn compare_with_ssh_keygen(name: &str, serials: Vec<u64>, mut probe_rng: rand::rngs::StdRng) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path());
    let set: std::collections::BTreeSet<u64> = serials.iter().copied().collect();
    let spec: String = serials.iter().map(|s| format!("serial: {s}\n")).collect();
    let krl = tmp.path().join("big.krl");
    ca.build_krl(&spec, &krl);

    // Probes: revoked serials, unrevoked ones nearby, and the extremes.
    let sorted: Vec<u64> = set.iter().copied().collect();
    let mut probes: Vec<u64> = (0..40)
        .map(|_| sorted[probe_rng.gen_range(0..sorted.len())])
        .collect();
    probes.extend((0..40).filter_map(|_| {
        let near = sorted[probe_rng.gen_range(0..sorted.len())];
        (near.saturating_sub(3)..near.saturating_add(3)).find(|s| *s != 0 && !set.contains(s))
    }));
    probes.extend([
        sorted[0],
        *sorted.last().unwrap(),
        sorted.last().unwrap().saturating_add(1),
    ]);
    probes.sort_unstable();
    probes.dedup();
    let certs = certs_with_serials(tmp.path(), &ca.key, &probes);

    let theirs = run(Command::new(SSH_KEYGEN)
        .args(["-Q", "-f"])
        .arg(&krl)
        .args(&certs));
    let ours = run(Command::new(bin("jit-ssh-ca"))
        .args(["krl", "check"])
        .arg(&krl)
        .args(&certs));
    let (t, o) = (
        verdicts(&String::from_utf8_lossy(&theirs.stdout)),
        verdicts(&String::from_utf8_lossy(&ours.stdout)),
    );
    assert_eq!(
        t.len(),
        probes.len(),
        "{name}: ssh-keygen -Q did not read the KRL: {}",
        stderr(&theirs)
    );
    assert_eq!(
        t, o,
        "{name}: ssh-keygen -Q and jit-ssh-ca krl check disagree"
    );
    for (s, c) in probes.iter().zip(&certs) {
        assert_eq!(
            t[&c.display().to_string()],
            set.contains(s),
            "{name}: serial {s}"
        );
    }
    assert_eq!(
        theirs.status.code(),
        Some(1),
        "{name}: ssh-keygen -Q exit status"
    );
    assert_eq!(ours.status.code(), Some(1), "{name}: krl check exit status");
}

#[test]
fn ssh_keygen_agrees_with_our_krls_for_a_million_dense_serials() {
    if !have_tools("krl_dense_million", &[SSH_KEYGEN]) {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut set = std::collections::HashSet::new();
    while set.len() < 1_000_000 {
        set.insert(rng.gen_range(1..4_000_000u64));
    }
    compare_with_ssh_keygen(
        "dense",
        set.into_iter().collect(),
        rand::rngs::StdRng::seed_from_u64(2),
    );
}

#[test]
fn ssh_keygen_agrees_with_our_krls_for_a_million_sparse_serials() {
    if !have_tools("krl_sparse_million", &[SSH_KEYGEN]) {
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let serials: Vec<u64> = (0..1_000_000)
        .map(|_| rng.gen_range(1..=u64::MAX))
        .collect();
    compare_with_ssh_keygen("sparse", serials, rand::rngs::StdRng::seed_from_u64(4));
}

#[test]
fn a_dense_krl_from_ssh_keygen_is_unreadable_and_we_refuse_it_too() {
    if !have_tools("ssh_keygen_dense_krl", &[SSH_KEYGEN]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::init(tmp.path());
    // Every other serial over 40,000: ssh-keygen writes one 2,500-byte bitmap.
    let spec: String = (1..40_000u64)
        .step_by(2)
        .map(|s| format!("serial: {s}\n"))
        .collect();
    std::fs::write(tmp.path().join("spec"), &spec).unwrap();
    let theirs = tmp.path().join("theirs.krl");
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-k", "-s"])
            .arg(&ca.public_key)
            .arg("-f")
            .arg(&theirs)
            .arg(tmp.path().join("spec")),
    );
    let probe = certs_with_serials(tmp.path(), &ca.key, &[3]);
    let q = run(Command::new(SSH_KEYGEN)
        .args(["-Q", "-f"])
        .arg(&theirs)
        .args(&probe));
    assert!(
        !q.status.success() && stderr(&q).contains("bignum is too large"),
        "{}",
        stderr(&q)
    );
    let ours = run(Command::new(bin("jit-ssh-ca"))
        .args(["krl", "show"])
        .arg(&theirs));
    assert!(
        !ours.status.success() && stderr(&ours).contains("bignum is too large"),
        "{}",
        stderr(&ours)
    );

    // The same spec through our builder is readable by OpenSSH.
    let good = tmp.path().join("ours.krl");
    ca.build_krl(&spec, &good);
    let q = run(Command::new(SSH_KEYGEN)
        .args(["-Q", "-f"])
        .arg(&good)
        .args(&probe));
    assert_eq!(q.status.code(), Some(1), "{}", stderr(&q));
    assert!(String::from_utf8_lossy(&q.stdout).contains("REVOKED"));
}
