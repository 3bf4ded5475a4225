//! Revocation and KRL publication: what is revoked lands in a KRL OpenSSH
//! reads, signed (detached SSHSIG) by the CA key, versioned and cacheable.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::TestCa;
use http_body_util::BodyExt;
use tower::ServiceExt;

use jit_ssh_audit::Actor;
use jit_ssh_ca::clock::Clock;
use jit_ssh_krl::Krl;
use jit_ssh_proto::api::RevokeTarget;

/// Issues a certificate for `user` on `host`; returns (request id, cert).
async fn issue(
    t: &TestCa,
    key: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
    user: &str,
    host: &str,
) -> (String, ssh_key::Certificate) {
    let (_, created) = t.request(user, host, "oncall", "10m").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, _, _) = t.touch(&id, key).await;
    assert_eq!(s, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    let cert =
        ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
            .unwrap();
    (id, cert)
}

async fn fetch(
    t: &TestCa,
    path: &str,
    etag: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut b = Request::builder().method(Method::GET).uri(path);
    if let Some(e) = etag {
        b = b.header(header::IF_NONE_MATCH, e);
    }
    let res = t
        .router
        .clone()
        .oneshot(b.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    (
        status,
        headers,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn who() -> Actor {
    Actor::User { name: "sec".into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_certificates_land_in_a_signed_versioned_krl() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let mut bob = t.enroll("bob").await;
    let (_, a1) = issue(&t, &mut alice, "alice", "db-1.dev").await;
    let (grant2, a2) = issue(&t, &mut alice, "alice", "db-2.dev").await;
    let (_, a3) = issue(&t, &mut alice, "alice", "db-3.dev").await;
    let (_, b1) = issue(&t, &mut bob, "bob", "db-1.dev").await;
    let ca_pub = t.ca.signer().public_key().clone();

    let (s, h, empty) = fetch(&t, "/v1/krl", None).await;
    assert_eq!(s, StatusCode::OK);
    let v1: u64 = h["x-jit-ssh-krl-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(Krl::decode(&empty).unwrap().is_empty());

    // By serial.
    let r =
        t.ca.revoke(&RevokeTarget::Serial(a1.serial()), "lost laptop", who())
            .unwrap();
    assert_eq!(r.serials, vec![a1.serial()]);
    assert!(r.krl_version > v1);
    let (_, h, bytes) = fetch(&t, "/v1/krl", None).await;
    let krl = Krl::decode(&bytes).unwrap();
    assert_eq!(krl.version, r.krl_version);
    assert!(krl.is_cert_revoked(&a1) && !krl.is_cert_revoked(&a2) && !krl.is_cert_revoked(&b1));
    // The ETag makes an unchanged KRL a 304.
    let etag = h[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        fetch(&t, "/v1/krl", Some(&etag)).await.0,
        StatusCode::NOT_MODIFIED
    );

    // The detached signature verifies with the CA key, for these bytes only.
    let (_, _, sig) = fetch(&t, "/v1/krl.sig", None).await;
    let sig = ssh_key::SshSig::from_pem(&sig).unwrap();
    ca_pub
        .verify(jit_ssh_proto::routes::KRL_NAMESPACE, &bytes, &sig)
        .unwrap();
    let mut tampered = bytes.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(ca_pub
        .verify(jit_ssh_proto::routes::KRL_NAMESPACE, &tampered, &sig)
        .is_err());
    assert!(
        ca_pub.verify("file", &bytes, &sig).is_err(),
        "namespace must matter"
    );

    // By grant, then by user (alice's remaining certificate), and a new
    // KRL version each time.
    let r2 =
        t.ca.revoke(&RevokeTarget::Grant(grant2), "wrong host", who())
            .unwrap();
    assert_eq!(r2.serials, vec![a2.serial()]);
    let r3 =
        t.ca.revoke(&RevokeTarget::User("alice".into()), "left the team", who())
            .unwrap();
    assert_eq!(r3.serials, vec![a3.serial()]);
    assert!(r3.krl_version > r2.krl_version && r2.krl_version > r.krl_version);
    let (s, _, bytes) = fetch(&t, "/v1/krl", Some(&etag)).await;
    assert_eq!(s, StatusCode::OK);
    let krl = Krl::decode(&bytes).unwrap();
    assert!(krl.is_cert_revoked(&a1) && krl.is_cert_revoked(&a2) && krl.is_cert_revoked(&a3));
    assert!(!krl.is_cert_revoked(&b1));

    // Revoking what is already revoked, or unknown, says so.
    let e =
        t.ca.revoke(&RevokeTarget::Serial(a1.serial()), "again", who())
            .unwrap_err();
    assert!(e.to_string().contains("nothing to revoke"), "{e}");
    let e =
        t.ca.revoke(&RevokeTarget::Serial(12345), "unknown", who())
            .unwrap_err();
    assert!(e.to_string().contains("nothing to revoke"), "{e}");
    // By key id.
    let r4 =
        t.ca.revoke(
            &RevokeTarget::KeyId(b1.key_id().to_owned()),
            "compromised",
            who(),
        )
        .unwrap();
    assert_eq!(r4.serials, vec![b1.serial()]);

    // The real OpenSSH agrees, and accepts the signature.
    if std::path::Path::new("/usr/bin/ssh-keygen").exists() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, bytes) = fetch(&t, "/v1/krl", None).await;
        let (_, _, sig) = fetch(&t, "/v1/krl.sig", None).await;
        std::fs::write(dir.path().join("krl"), &bytes).unwrap();
        std::fs::write(dir.path().join("krl.sig"), &sig).unwrap();
        std::fs::write(
            dir.path().join("allowed"),
            format!("jit-ssh-ca {}\n", ca_pub.to_openssh().unwrap()),
        )
        .unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(dir.path().join("allowed"))
            .args([
                "-I",
                "jit-ssh-ca",
                "-n",
                jit_ssh_proto::routes::KRL_NAMESPACE,
                "-s",
            ])
            .arg(dir.path().join("krl.sig"))
            .stdin(std::fs::File::open(dir.path().join("krl")).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen -Y verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (cert, revoked) in [(&a1, true), (&b1, true)] {
            let path = dir.path().join(format!("c{}-cert.pub", cert.serial()));
            std::fs::write(&path, cert.to_openssh().unwrap()).unwrap();
            let q = std::process::Command::new("ssh-keygen")
                .args(["-Q", "-f"])
                .arg(dir.path().join("krl"))
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(
                q.status.code(),
                Some(if revoked { 1 } else { 0 }),
                "{}",
                String::from_utf8_lossy(&q.stderr)
            );
        }
    } else if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("JIT_SSH_REQUIRE_E2E=1 but ssh-keygen is missing");
    } else {
        eprintln!("\n!!!!!!!! SKIPPED the ssh-keygen part: /usr/bin/ssh-keygen missing !!!!!!!!\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificates_leave_the_krl() {
    let t = TestCa::new();
    let now = u64::try_from(t.clock.now_unix()).unwrap();
    let entry = |serial, valid_before| jit_ssh_ca::store::RevokedSerial {
        serial,
        valid_before,
    };
    t.ca.add_revoked(&[entry(7, now + 1), entry(8, now + 3600)])
        .unwrap();
    let before = t.ca.krl().unwrap();
    let krl = Krl::decode(&before.bytes).unwrap();
    let serials = |k: &Krl| {
        k.cert_sections()
            .flat_map(|(_, rc)| rc.serials.iter().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    assert_eq!(serials(&krl), vec![7, 8]);
    t.clock.advance(std::time::Duration::from_secs(2));
    let after = t.ca.krl().unwrap();
    assert!(
        after.version > before.version,
        "expiry must make a new KRL version"
    );
    assert_eq!(serials(&Krl::decode(&after.bytes).unwrap()), vec![8]);
    // Nothing changed since: the same version is served again.
    assert_eq!(t.ca.krl().unwrap().version, after.version);
}

/// What hosts trust arrives signed, in its own namespace, with a signing
/// time; the manifest names exactly the KRL served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_and_krl_manifest_are_signed_and_name_the_served_krl() {
    use jit_ssh_proto::signed::{
        CaKeySet, KrlManifest, SignedDocument, CA_KEYS_NAMESPACE, KRL_MANIFEST_NAMESPACE,
    };
    use sha2::Digest;
    let t = TestCa::new();
    let ca_pub = t.ca.signer().public_key().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verify = |signed: &SignedDocument, ns: &str| {
        let sig = ssh_key::SshSig::from_pem(&signed.signature).unwrap();
        ca_pub.verify(ns, signed.document.as_bytes(), &sig)
    };

    let (s, _, body) = fetch(&t, "/v1/ca-keys", None).await;
    assert_eq!(s, StatusCode::OK);
    let answer: jit_ssh_proto::api::CaKeys = serde_json::from_slice(&body).unwrap();
    assert!(verify(&answer.signed, CA_KEYS_NAMESPACE).is_ok());
    // A key set signature is no manifest signature.
    assert!(verify(&answer.signed, KRL_MANIFEST_NAMESPACE).is_err());
    let set: CaKeySet = serde_json::from_str(&answer.signed.document).unwrap();
    assert_eq!(set.keys, vec![ca_pub.to_openssh().unwrap()]);
    assert_eq!(set.keys, answer.keys);
    assert!(set.issued_at.abs_diff(now) < 5, "{}", set.issued_at);

    let check = |body: &[u8], krl: &[u8], version: u64| {
        let signed: SignedDocument = serde_json::from_slice(body).unwrap();
        assert!(verify(&signed, KRL_MANIFEST_NAMESPACE).is_ok());
        assert!(verify(&signed, CA_KEYS_NAMESPACE).is_err());
        let m: KrlManifest = serde_json::from_str(&signed.document).unwrap();
        assert_eq!(m.krl_version, version);
        assert_eq!(m.krl_size, krl.len() as u64);
        assert_eq!(m.krl_sha256, hex::encode(sha2::Sha256::digest(krl)));
        assert!(m.issued_at.abs_diff(now) < 5 && m.valid_until > m.issued_at);
    };
    let (_, h, krl) = fetch(&t, "/v1/krl", None).await;
    let v1: u64 = h["x-jit-ssh-krl-version"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (s, h, body) = fetch(&t, "/v1/krl.manifest", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    check(&body, &krl, v1);

    // A revocation: the next manifest names the new KRL.
    let mut alice = t.enroll("alice").await;
    let (_, c) = issue(&t, &mut alice, "alice", "db-1.dev").await;
    t.ca.revoke(&RevokeTarget::Serial(c.serial()), "test", who())
        .unwrap();
    let (_, _, krl2) = fetch(&t, "/v1/krl", None).await;
    let (_, _, body2) = fetch(&t, "/v1/krl.manifest", None).await;
    check(&body2, &krl2, v1 + 1);
}

/// `publish_ca_keys` stages the next key: the set names the signing key
/// first, then the staged one, still signed by the signing key alone. A
/// file that cannot be read stops the CA with its name.
#[test]
fn staged_keys_are_published_in_the_signed_set() {
    use jit_ssh_ca::config;
    use jit_ssh_ca::service::Ca;
    use jit_ssh_ca::signer::FileSigner;
    use jit_ssh_ca::store::SledStore;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let random = || {
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap()
    };
    let (current, next) = (random(), random());
    let next_pub = dir.path().join("next.pub");
    std::fs::write(&next_pub, next.public_key().to_openssh().unwrap()).unwrap();
    let ics = dir.path().join("oncall.ics");
    std::fs::write(&ics, common::ONCALL_ICS).unwrap();
    let open = |staged: &std::path::Path, name: &str| {
        let text = common::config_text("")
            .replace("ONCALL_ICS", &ics.display().to_string())
            .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook")
            .replace(
                "ca_key = { kind = \"file\", path = \"unused\" }",
                &format!(
                    "ca_key = {{ kind = \"file\", path = \"unused\" }}\npublish_ca_keys = [\"{}\"]",
                    staged.display()
                ),
            );
        let cfg = config::parse(&text, "test").unwrap();
        let audit =
            jit_ssh_audit_disk::DiskAuditLog::open(&dir.path().join(name).join("audit")).unwrap();
        Ca::new(
            cfg,
            Arc::new(FileSigner::new(current.clone())),
            Arc::new(SledStore::open(&dir.path().join(name).join("state")).unwrap()),
            Arc::new(audit),
        )
    };
    let ca = open(&next_pub, "a").unwrap();
    let answer = ca.ca_keys().unwrap();
    let set: jit_ssh_proto::signed::CaKeySet =
        serde_json::from_str(&answer.signed.document).unwrap();
    assert_eq!(
        set.keys,
        vec![
            current.public_key().to_openssh().unwrap(),
            next.public_key().to_openssh().unwrap()
        ]
    );
    let sig = ssh_key::SshSig::from_pem(&answer.signed.signature).unwrap();
    let ns = jit_ssh_proto::signed::CA_KEYS_NAMESPACE;
    let doc = answer.signed.document.as_bytes();
    assert!(current.public_key().verify(ns, doc, &sig).is_ok());
    assert!(next.public_key().verify(ns, doc, &sig).is_err());

    let err = open(&dir.path().join("missing.pub"), "b")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("publish_ca_keys") && err.contains("missing.pub"),
        "{err}"
    );
}
