//! The CA key in a PKCS#11 token: a real SoftHSM2 token in a temp dir,
//! issuance through the router, KRL, signed documents and audit
//! checkpoints, each checked by the real `ssh-keygen`; the key cannot be
//! read out; a token that disappears stops issuance.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use common::TestCa;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use jit_ssh_audit::{Actor, AuditLog, AuditQuery, Event};
use jit_ssh_ca::signer::pkcs11::{self, Pkcs11Error, Pkcs11Signer, TokenKeyConfig};
use jit_ssh_ca::signer::CaSigner;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const UTIL: &str = "/usr/bin/softhsm2-util";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const PIN: &str = "4711-pin";

/// Whether SoftHSM2 and ssh-keygen are here. Absent: a loud skip, or a
/// failure when `JIT_SSH_REQUIRE_E2E=1` (CI installs them).
fn have_softhsm(test: &str) -> bool {
    let missing: Vec<&str> = [MODULE, UTIL, SSH_KEYGEN]
        .into_iter()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg =
        format!("{test}: missing {missing:?} (Debian: apt-get install -y softhsm2 openssh-client)");
    if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("JIT_SSH_REQUIRE_E2E=1 but {msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED SOFTHSM2 TEST {msg} !!!!!!!!\n");
    false
}

/// Labels of the tokens this binary's tests use.
const TOKENS: [&str; 4] = ["issue", "extract", "vanish", "cli"];

/// SoftHSM2 reads SOFTHSM2_CONF and the token list once per process (at
/// C_Initialize: a token made later by softhsm2-util is not seen), so
/// every token the tests use is made first, in one shared token dir.
fn root() -> &'static (tempfile::TempDir, Vec<PathBuf>) {
    static ROOT: OnceLock<(tempfile::TempDir, Vec<PathBuf>)> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let list = || -> Vec<PathBuf> {
            std::fs::read_dir(&tokens)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        };
        let mut dirs = Vec::new();
        for label in TOKENS {
            let before = list();
            let out = Command::new(UTIL)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", "so-4711"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            dirs.push(list().into_iter().find(|p| !before.contains(p)).unwrap());
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dir.path().join(format!("{label}.pin")))
                .unwrap();
            writeln!(f, "{PIN}").unwrap();
        }
        (dir, dirs)
    })
}

struct TestToken {
    cfg: TokenKeyConfig,
    /// This token's own directory under the token dir.
    dir: PathBuf,
}

/// The token labelled `label` (one of [`TOKENS`]), PIN in a 0600 file.
fn token(label: &str) -> TestToken {
    let (root, dirs) = root();
    let i = TOKENS.iter().position(|l| *l == label).unwrap();
    TestToken {
        cfg: TokenKeyConfig {
            module: MODULE.into(),
            token_label: label.to_owned(),
            key_label: "jit-ssh-ca".to_owned(),
            pin_file: root.path().join(format!("{label}.pin")),
        },
        dir: dirs[i].clone(),
    }
}

fn ssh_keygen(args: &[&str], stdin: Option<&Path>) -> std::process::Output {
    let mut c = Command::new(SSH_KEYGEN);
    c.args(args);
    if let Some(p) = stdin {
        c.stdin(std::fs::File::open(p).unwrap());
    }
    c.output().unwrap()
}

/// `ssh-keygen -Y verify` of `sig` over the file `msg` by `ca`.
fn verify_sshsig(dir: &Path, ca: &ssh_key::PublicKey, namespace: &str, msg: &Path, sig: &str) {
    let signers = dir.join("allowed_signers");
    std::fs::write(
        &signers,
        format!("ca@jit-ssh {}\n", ca.to_openssh().unwrap()),
    )
    .unwrap();
    let sig_file = dir.join(format!("{namespace}.sig"));
    std::fs::write(&sig_file, sig).unwrap();
    let out = ssh_keygen(
        &[
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            "ca@jit-ssh",
            "-n",
            namespace,
            "-s",
            sig_file.to_str().unwrap(),
        ],
        Some(msg),
    );
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify {namespace}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Enrolls alice and asks for db-1.dev; returns the touch's answer.
async fn issue(
    t: &TestCa,
    key: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
) -> (StatusCode, serde_json::Value, String) {
    let (s, created) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let (s, after, _) = t.touch(&id, key).await;
    let (_, state) = t.get(&format!("/v1/requests/{id}"), Some(&secret)).await;
    let cert = state["certificate"]["certificate"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (s, after, cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_key_signs_certificates_krl_documents_and_checkpoints() {
    if !have_softhsm("token_key_signs_certificates_krl_documents_and_checkpoints") {
        return;
    }
    let tok = token("issue");
    let made = pkcs11::generate(&tok.cfg).unwrap();
    let signer = Pkcs11Signer::open(&tok.cfg).unwrap();
    assert_eq!(signer.public_key().key_data(), made.key_data());
    let ca_pub = signer.public_key().clone();
    let fp = ca_pub.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    let t = TestCa::with_signer(Arc::new(signer));
    let work = tempfile::tempdir().unwrap();

    // A certificate through the router. OpenSSH checks the CA signature
    // when it parses a certificate, so `-L` succeeding is a verification;
    // the same certificate with one signature byte changed is refused.
    let mut key = t.enroll("alice").await;
    let (s, after, cert) = issue(&t, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    let cert_file = work.path().join("id-cert.pub");
    std::fs::write(&cert_file, &cert).unwrap();
    let out = ssh_keygen(&["-L", "-f", cert_file.to_str().unwrap()], None);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        shown.contains(&format!("Signing CA: ED25519 {fp}")),
        "{shown}"
    );
    assert!(shown.contains("oncall@db-1.dev"), "{shown}");
    // An Ed25519 certificate ends with the 64 signature bytes.
    let tampered_line = {
        use base64ct::Encoding;
        let b64 = cert.split_whitespace().nth(1).unwrap();
        let mut blob = base64ct::Base64::decode_vec(b64).unwrap();
        let n = blob.len();
        blob[n - 20] ^= 1;
        format!(
            "ssh-ed25519-cert-v01@openssh.com {}",
            base64ct::Base64::encode_string(&blob)
        )
    };
    std::fs::write(&cert_file, tampered_line).unwrap();
    let out = ssh_keygen(&["-L", "-f", cert_file.to_str().unwrap()], None);
    assert!(
        !out.status.success(),
        "a tampered certificate must not parse: {out:?}"
    );

    // The KRL and its detached signature.
    let krl_bytes = common_bytes(&t, "/v1/krl").await;
    let krl_file = work.path().join("krl");
    std::fs::write(&krl_file, &krl_bytes).unwrap();
    let krl_sig = String::from_utf8(common_bytes(&t, "/v1/krl.sig").await).unwrap();
    verify_sshsig(
        work.path(),
        &ca_pub,
        "jit-ssh-krl@jit-ssh",
        &krl_file,
        &krl_sig,
    );
    let out = ssh_keygen(&["-Q", "-l", "-f", krl_file.to_str().unwrap()], None);
    assert!(out.status.success(), "{out:?}");

    // The signed key set and KRL manifest hosts install.
    for (path, namespace) in [
        ("/v1/ca-keys", "jit-ssh-ca-keys@jit-ssh"),
        ("/v1/krl.manifest", "jit-ssh-krl-manifest@jit-ssh"),
    ] {
        let (s, body) = t.get(path, None).await;
        assert_eq!(s, StatusCode::OK, "{path}: {body}");
        let doc = work.path().join(namespace);
        std::fs::write(&doc, body["document"].as_str().unwrap()).unwrap();
        verify_sshsig(
            work.path(),
            &ca_pub,
            namespace,
            &doc,
            body["signature"].as_str().unwrap(),
        );
    }

    // An audit checkpoint.
    let seq = t.ca.checkpoint(Actor::System, "test").unwrap().unwrap();
    let records = t
        .audit
        .query(&AuditQuery {
            after_seq: Some(seq - 1),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    let Event::Checkpoint(cp) = &records[0].event else {
        panic!("not a checkpoint: {:?}", records[0].event)
    };
    assert_eq!(cp.ca_fingerprint, fp);
    let msg = work.path().join("checkpoint");
    std::fs::write(&msg, jit_ssh_audit::checkpoint::message(cp.seq, &cp.hash)).unwrap();
    verify_sshsig(
        work.path(),
        &ca_pub,
        "jit-ssh-audit@jit-ssh",
        &msg,
        &cp.signature,
    );
}

async fn common_bytes(t: &TestCa, path: &str) -> Vec<u8> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(t.client));
    let res = t.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    res.into_body().collect().await.unwrap().to_bytes().to_vec()
}

#[test]
fn the_private_key_cannot_be_read_out_of_the_token() {
    if !have_softhsm("the_private_key_cannot_be_read_out_of_the_token") {
        return;
    }
    let tok = token("extract");
    pkcs11::generate(&tok.cfg).unwrap();
    let s = pkcs11::session(&tok.cfg).unwrap();
    let key = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"jit-ssh-ca".to_vec()),
        ])
        .unwrap()[0];

    // CKA_VALUE of a sensitive key: the token withholds it.
    let got = s.get_attributes(key, &[AttributeType::Value]);
    assert!(
        !matches!(&got, Ok(v) if v.iter().any(|a| matches!(a, Attribute::Value(b) if !b.is_empty()))),
        "the token gave out the private key: {got:?}"
    );
    let flags = s
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
            ],
        )
        .unwrap();
    for want in [
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::NeverExtractable(true),
        Attribute::AlwaysSensitive(true),
    ] {
        assert!(flags.contains(&want), "{want:?} not in {flags:?}");
    }

    // Wrapping it out under a key we hold: refused.
    let wrapping = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key);
    assert!(
        wrapped.is_err(),
        "the token wrapped the CA key out: {wrapped:?}"
    );

    // And the signer refuses a key that could leave the token.
    let loose = TokenKeyConfig {
        key_label: "loose".into(),
        ..tok.cfg.clone()
    };
    s.generate_key_pair(
        &Mechanism::EccEdwardsKeyPairGen,
        &[
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70]),
            Attribute::Label(b"loose".to_vec()),
        ],
        &[
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Label(b"loose".to_vec()),
        ],
    )
    .unwrap();
    assert!(matches!(
        Pkcs11Signer::open(&loose),
        Err(Pkcs11Error::Extractable(_))
    ));

    // A public key object that is not the private key's other half (so
    // the CA would publish a key that did not sign): refused at start.
    let pair = |label: &[u8]| {
        s.generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70]),
                Attribute::Label(label.to_vec()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.to_vec()),
            ],
        )
        .unwrap()
    };
    let (public_a, _) = pair(b"half-a");
    let (_, private_b) = pair(b"half-b");
    s.update_attributes(public_a, &[Attribute::Label(b"mixed".to_vec())])
        .unwrap();
    s.update_attributes(private_b, &[Attribute::Label(b"mixed".to_vec())])
        .unwrap();
    let mixed = TokenKeyConfig {
        key_label: "mixed".into(),
        ..tok.cfg.clone()
    };
    assert!(matches!(
        Pkcs11Signer::open(&mixed),
        Err(Pkcs11Error::Mismatch(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_disappears_stops_issuance() {
    if !have_softhsm("a_token_that_disappears_stops_issuance") {
        return;
    }
    let tok = token("vanish");
    pkcs11::generate(&tok.cfg).unwrap();
    let t = TestCa::with_signer(Arc::new(Pkcs11Signer::open(&tok.cfg).unwrap()));
    let mut key = t.enroll("alice").await;
    let (s, after, cert) = issue(&t, &mut key).await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert!(!cert.is_empty());
    let (s, ready) = t.get("/readyz", None).await;
    assert_eq!(s, StatusCode::OK, "{ready}");

    // Someone logs the token out (login is per token: every pooled
    // session with it): the failed session is replaced, logged in again,
    // and issuance goes on.
    pkcs11::session(&tok.cfg).unwrap().logout().unwrap();
    let (s, after, cert) = issue(&t, &mut key).await;
    assert_eq!(s, StatusCode::OK, "after a logout: {after}");
    assert!(!cert.is_empty());

    // The token goes away (pulled out; the HSM's directory lost).
    let away = root().0.path().join("vanish-away");
    std::fs::rename(&tok.dir, &away).unwrap();
    let issued_before = issued_count(&t);
    let (s, after, cert) = issue(&t, &mut key).await;
    assert!(
        s == StatusCode::INTERNAL_SERVER_ERROR || s == StatusCode::SERVICE_UNAVAILABLE,
        "{s}: {after}"
    );
    assert!(after["error"]["code"].is_string(), "{after}");
    assert!(cert.is_empty(), "a certificate left the CA: {cert}");
    assert_eq!(
        issued_count(&t),
        issued_before,
        "no certificate_issued record"
    );
    assert!(t.ca.checkpoint(Actor::System, "test").is_err());
    t.audit.verify().unwrap();
    // Readiness says so, naming the key.
    let (s, ready) = t.get("/readyz", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["failed"], serde_json::json!(["ca_key"]), "{ready}");
}

fn issued_count(t: &TestCa) -> usize {
    t.audit
        .query(&AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .filter(|r| matches!(r.event, Event::CertificateIssued(_)))
        .count()
}

/// The operator's path: `hsm keygen` for the CA and the host CA key,
/// `hsm list`, then `check-config` opens both keys from the one module
/// (one C_Initialize per process) and signs a probe with each. The PIN
/// is in none of the output.
#[test]
fn operator_makes_keys_on_the_token_and_the_config_uses_them() {
    if !have_softhsm("operator_makes_keys_on_the_token_and_the_config_uses_them") {
        return;
    }
    let tok = token("cli");
    let bin = env!("CARGO_BIN_EXE_jit-ssh-ca");
    let work = tempfile::tempdir().unwrap();
    let conf = std::env::var("SOFTHSM2_CONF").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PIN), "the PIN was printed: {text}");
        (out.status.success(), text)
    };
    let token_args = [
        "--module",
        MODULE,
        "--token-label",
        "cli",
        "--pin-file",
        tok.cfg.pin_file.to_str().unwrap(),
    ];
    let pub_file = work.path().join("ca_key.pub");
    let mut keygen = vec!["hsm", "keygen"];
    keygen.extend(token_args);
    let (ok, text) = run(&[
        keygen.as_slice(),
        &[
            "--key-label",
            "user-ca",
            "--out",
            pub_file.to_str().unwrap(),
        ],
    ]
    .concat());
    assert!(ok, "{text}");
    let (ok, text) = run(&[keygen.as_slice(), &["--key-label", "host-ca"]].concat());
    assert!(ok, "{text}");
    // Never a second key under a label in use.
    let (ok, text) = run(&[keygen.as_slice(), &["--key-label", "user-ca"]].concat());
    assert!(!ok && text.contains("already exists"), "{text}");

    let mut list = vec!["hsm", "list"];
    list.extend(token_args);
    let (ok, text) = run(&list);
    assert!(ok, "{text}");
    let user_pub = ssh_key::PublicKey::read_openssh_file(&pub_file).unwrap();
    let fp = user_pub.fingerprint(ssh_key::HashAlg::Sha256).to_string();
    assert!(
        text.lines().any(|l| l.starts_with("user-ca\t")
            && l.contains(&fp)
            && l.contains("stays on the token")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("host-ca\t")), "{text}");

    let data = work.path().join("data");
    let signer = |label: &str| {
        format!(
            "{{ kind = \"pkcs11\", module = \"{MODULE}\", token_label = \"cli\", key_label = \"{label}\", pin_file = \"{}\" }}",
            tok.cfg.pin_file.display()
        )
    };
    let config = work.path().join("ca.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:8722\"\ndata_dir = \"{}\"\nca_key = {}\n\n[hosts]\nhost_ca_key = {}\n",
            data.display(),
            signer("user-ca"),
            signer("host-ca")
        ),
    )
    .unwrap();
    let (ok, text) = run(&["check-config", config.to_str().unwrap()]);
    assert!(ok, "{text}");
    // A label that is not on the token: named, with the way to make it.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"host-ca\"", "\"gone\""),
    )
    .unwrap();
    let (ok, text) = run(&["check-config", config.to_str().unwrap()]);
    assert!(
        !ok && text.contains("hosts.host_ca_key") && text.contains("\"gone\""),
        "{text}"
    );
}
