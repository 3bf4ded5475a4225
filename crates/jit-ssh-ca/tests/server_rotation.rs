//! CA key rotation on a running CA (stage, activate, retire): what hosts are
//! asked to trust at each step and who signed it, which key signs new
//! certificates, KRLs and checkpoints, the refusals (stage twice, activate
//! with nothing staged, retire too early), the audit records, and that a
//! restart resumes the rotation where it stood.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::http::StatusCode;
use common::TestCa;
use ssh_key::{HashAlg, PublicKey, SshSig};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery, Event};
use jit_ssh_ca::service::{KeyRole, ServiceError};
use jit_ssh_krl::Krl;
use jit_ssh_proto::api::RevokeTarget;
use jit_ssh_proto::hosts::{HostCaKeySet, HOST_CA_KEYS_NAMESPACE};
use jit_ssh_proto::signed::{CaKeySet, SignedDocument, CA_KEYS_NAMESPACE};

fn operator() -> Actor {
    Actor::Operator {
        login: "test".into(),
    }
}

async fn issue(
    t: &TestCa,
    key: &mut webauthn_authenticator_rs::softpasskey::SoftPasskey,
    host: &str,
) -> ssh_key::Certificate {
    let (_, created) = t.request("alice", host, "oncall", "10m").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let (s, _, _) = t.touch(&id, key).await;
    assert_eq!(s, StatusCode::OK);
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    ssh_key::Certificate::from_openssh(state["certificate"]["certificate"].as_str().unwrap())
        .unwrap()
}

/// The published key set: its keys, and which of `candidates` signed it.
async fn key_set(t: &TestCa) -> (Vec<PublicKey>, SignedDocument) {
    let (s, body) = t.get("/v1/ca-keys", None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let signed: SignedDocument = serde_json::from_value(body).unwrap();
    let set: CaKeySet = serde_json::from_str(&signed.document).unwrap();
    let keys = set
        .keys
        .iter()
        .map(|k| PublicKey::from_openssh(k).unwrap())
        .collect();
    (keys, signed)
}

fn signed_by(doc: &SignedDocument, ns: &str, key: &PublicKey) -> bool {
    let sig = SshSig::from_pem(&doc.signature).unwrap();
    key.verify(ns, doc.document.as_bytes(), &sig).is_ok()
}

fn same_keys(a: &[PublicKey], b: &[&PublicKey]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.key_data() == y.key_data())
}

fn records(t: &TestCa, kind: &str) -> Vec<jit_ssh_audit::AuditRecord> {
    t.audit
        .query(&AuditQuery {
            kinds: vec![kind.into()],
            limit: 100,
            ..Default::default()
        })
        .unwrap()
}

fn wrong_state(r: Result<jit_ssh_ca::service::RotationStatus, ServiceError>) -> String {
    match r {
        Err(e @ ServiceError::WrongState(_)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_activate_retire_moves_signing_to_the_next_key_without_a_gap() {
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let old = t.ca.signer().public_key().clone();
    let before = issue(&t, &mut alice, "db-1.dev").await;

    // Nothing staged: activate and retire are refused and change nothing.
    let n = t.audit_count();
    let e = wrong_state(t.ca.rotate_activate(KeyRole::User, operator()));
    assert!(e.contains("no next user CA key is staged"), "{e}");
    let e = wrong_state(t.ca.rotate_retire(KeyRole::User, false, operator()));
    assert!(e.contains("nothing to retire"), "{e}");
    assert_eq!(t.audit_count(), n);

    // Stage: {old, next} published, signed by old; old still signs.
    let staged = t.ca.rotate_stage(KeyRole::User, None, operator()).unwrap();
    let next_fp = staged.staged.clone().unwrap();
    let (keys, doc) = key_set(&t).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].key_data(), old.key_data());
    let next = keys[1].clone();
    assert_eq!(next.fingerprint(HashAlg::Sha256).to_string(), next_fp);
    assert!(signed_by(&doc, CA_KEYS_NAMESPACE, &old));
    let c = issue(&t, &mut alice, "db-2.dev").await;
    assert_eq!(c.signature_key(), old.key_data());
    // The next key sits in the data directory, private, named by the state.
    let file = staged.staged_file.clone().unwrap();
    assert!(file.starts_with(t.dir.path().join("keys")));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let state = std::fs::read_to_string(t.dir.path().join("rotation.json")).unwrap();
    assert!(state.contains(&file.display().to_string()), "{state}");

    // Stage twice: refused, nothing added.
    let n = t.audit_count();
    let e = wrong_state(t.ca.rotate_stage(KeyRole::User, None, operator()));
    assert!(e.contains("already staged") && e.contains(&next_fp), "{e}");
    assert_eq!(t.audit_count(), n);
    assert_eq!(key_set(&t).await.0.len(), 2);

    // Activate: the next key signs certificates, the key set (still
    // listing the old key), the KRL and its manifest, and checkpoints.
    t.clock.advance(Duration::from_secs(100));
    let activated_at = t.ca.now();
    let status = t.ca.rotate_activate(KeyRole::User, operator()).unwrap();
    assert_eq!(status.active, next_fp);
    assert!(status.staged.is_none());
    let after = issue(&t, &mut alice, "db-3.dev").await;
    assert_eq!(after.signature_key(), next.key_data());
    let (keys, doc) = key_set(&t).await;
    assert!(same_keys(&keys, &[&next, &old]), "{keys:?}");
    assert!(signed_by(&doc, CA_KEYS_NAMESPACE, &next));
    assert!(!signed_by(&doc, CA_KEYS_NAMESPACE, &old));
    let (_, manifest) = t.get("/v1/krl.manifest", None).await;
    let manifest: SignedDocument = serde_json::from_value(manifest).unwrap();
    assert!(signed_by(
        &manifest,
        jit_ssh_proto::signed::KRL_MANIFEST_NAMESPACE,
        &next
    ));
    // A certificate the old key signed is still revocable: the KRL lists it
    // under the old key, and one from the next key under the next.
    t.ca.revoke(&RevokeTarget::Serial(before.serial()), "test", operator())
        .unwrap();
    t.ca.revoke(&RevokeTarget::Serial(after.serial()), "test", operator())
        .unwrap();
    let krl = Krl::decode(&t.ca.krl().unwrap().bytes).unwrap();
    assert!(krl.is_cert_revoked(&before) && krl.is_cert_revoked(&after));
    assert!(!krl.is_cert_revoked(&c));
    t.ca.checkpoint(Actor::System, "test").unwrap();
    let cps = records(&t, "checkpoint");
    let Event::Checkpoint(cp) = &cps.last().unwrap().event else {
        panic!()
    };
    assert_eq!(cp.ca_fingerprint, next_fp);

    // Retire: refused until the last certificate the old key could have
    // signed (15 m rule + 60 s skew after activation) has expired.
    let retire_at = activated_at + 15 * 60 + 60;
    assert_eq!(
        status.retire_after.as_deref(),
        Some(jit_ssh_ca::service::rfc3339_of(retire_at).as_str())
    );
    let n = t.audit_count();
    let e = wrong_state(t.ca.rotate_retire(KeyRole::User, false, operator()));
    assert!(
        e.contains(&jit_ssh_ca::service::rfc3339_of(retire_at)),
        "{e}"
    );
    t.clock.advance(Duration::from_secs(
        u64::try_from(retire_at - t.ca.now() - 1).unwrap(),
    ));
    wrong_state(t.ca.rotate_retire(KeyRole::User, false, operator()));
    assert_eq!(t.audit_count(), n);
    t.clock.advance(Duration::from_secs(1));
    let status =
        t.ca.rotate_retire(KeyRole::User, false, operator())
            .unwrap();
    assert!(status.retiring.is_none());
    let (keys, doc) = key_set(&t).await;
    assert!(same_keys(&keys, &[&next]), "{keys:?}");
    assert!(signed_by(&doc, CA_KEYS_NAMESPACE, &next));

    // Each step is one audit record naming both keys.
    let old_fp = old.fingerprint(HashAlg::Sha256).to_string();
    for (kind, fp, other) in [
        ("ca_key_staged", &next_fp, &old_fp),
        ("ca_key_activated", &next_fp, &old_fp),
        ("ca_key_retired", &old_fp, &next_fp),
    ] {
        let r = records(&t, kind);
        assert_eq!(r.len(), 1, "{kind}");
        let (Event::CaKeyStaged(k) | Event::CaKeyActivated(k) | Event::CaKeyRetired(k)) =
            &r[0].event
        else {
            panic!("{kind}: {:?}", r[0].event)
        };
        assert_eq!(
            (&k.key[..], &k.fingerprint, &k.other_fingerprint),
            ("user", fp, other)
        );
        assert!(matches!(r[0].actor, Actor::Operator { .. }));
    }
    assert!(t.audit.verify().unwrap().first_break.is_none());

    // Another rotation may start now.
    t.ca.rotate_stage(KeyRole::User, None, operator()).unwrap();
}

/// The host CA key rotates the same way: clients' host CA key set lists
/// both keys during the overlap, and retire waits out host certificates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_ca_key_rotates_and_clients_trust_both_meanwhile() {
    let t = TestCa::with_policy("", "\n[hosts]\nhost_ca_key = \"unused\"\n");
    let host_keys = |t: &TestCa| {
        let doc = t.ca.host_ca_keys().unwrap();
        let set: HostCaKeySet = serde_json::from_str(&doc.document).unwrap();
        assert!(signed_by(
            &doc,
            HOST_CA_KEYS_NAMESPACE,
            t.ca.signer().public_key()
        ));
        set.keys
    };
    let first = host_keys(&t);
    assert_eq!(first.len(), 1);
    let user_before = t.ca.rotation_status(KeyRole::User).unwrap();

    let staged = t.ca.rotate_stage(KeyRole::Host, None, operator()).unwrap();
    let both = host_keys(&t);
    assert_eq!(both.len(), 2);
    assert_eq!(both[0], first[0]);
    let e = wrong_state(t.ca.rotate_activate(KeyRole::User, operator()));
    assert!(e.contains("user"), "{e}");

    t.ca.rotate_activate(KeyRole::Host, operator()).unwrap();
    let after = host_keys(&t);
    assert_eq!(after.len(), 2);
    let active = PublicKey::from_openssh(&after[0]).unwrap();
    assert_eq!(
        active.fingerprint(HashAlg::Sha256).to_string(),
        staged.staged.unwrap()
    );
    assert_eq!(after[1], first[0]);
    // The user CA key is untouched.
    assert_eq!(t.ca.rotation_status(KeyRole::User).unwrap(), user_before);

    // Host certificates live 7 days: retire waits for them.
    t.clock.advance(Duration::from_secs(86_400));
    let e = wrong_state(t.ca.rotate_retire(KeyRole::Host, false, operator()));
    assert!(e.contains("host CA key"), "{e}");
    t.clock.advance(Duration::from_secs(6 * 86_400 + 60));
    t.ca.rotate_retire(KeyRole::Host, false, operator())
        .unwrap();
    assert_eq!(host_keys(&t), vec![after[0].clone()]);
    let r = records(&t, "ca_key_retired");
    let Event::CaKeyRetired(k) = &r[0].event else {
        panic!()
    };
    assert_eq!(k.key, "host");
}

/// An imported key is used as given; one that others can read, or that is
/// already published, is refused and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_imports_a_private_key_file() {
    let t = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let key =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let path = dir.path().join("next");
    key.write_openssh_file(&path, ssh_key::LineEnding::LF)
        .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let n = t.audit_count();
    let e =
        t.ca.rotate_stage(KeyRole::User, Some(&path), operator())
            .unwrap_err()
            .to_string();
    assert!(e.contains("chmod 600"), "{e}");
    assert_eq!(t.audit_count(), n);
    assert!(t
        .ca
        .rotation_status(KeyRole::User)
        .unwrap()
        .staged
        .is_none());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let s =
        t.ca.rotate_stage(KeyRole::User, Some(&path), operator())
            .unwrap();
    assert_eq!(
        s.staged.unwrap(),
        key.public_key().fingerprint(HashAlg::Sha256).to_string()
    );
    t.ca.rotate_activate(KeyRole::User, operator()).unwrap();
    assert_eq!(
        t.ca.signer().public_key().key_data(),
        key.public_key().key_data()
    );
}

/// A restart (the server opening its data directory again) signs with the
/// key the rotation made active and still publishes the previous one.
#[test]
fn a_restart_resumes_the_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = jit_ssh_ca::ca_key::init(&dir.path().join("keys"), None).unwrap();
    let host = jit_ssh_ca::ca_key::init_host(&dir.path().join("keys"), None).unwrap();
    let ics = dir.path().join("oncall.ics");
    std::fs::write(&ics, common::ONCALL_ICS).unwrap();
    let text = common::config_text("")
        .replace("ONCALL_ICS", &ics.display().to_string())
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .replace(
            "data_dir = \"unused\"\nca_key = { kind = \"file\", path = \"unused\" }",
            &format!(
                "data_dir = \"{}\"\nca_key = {{ kind = \"file\", path = \"{}\" }}\n[hosts]\nhost_ca_key = \"{}\"",
                data.display(),
                keys.key_path.display(),
                host.key_path.display()
            ),
        );
    let cfg = jit_ssh_ca::config::parse(&text, "test").unwrap();
    let (next, host_next) = {
        let ca = jit_ssh_ca::server::open_ca(cfg.clone()).unwrap();
        ca.rotate_stage(KeyRole::User, None, operator()).unwrap();
        let s = ca.rotate_activate(KeyRole::User, operator()).unwrap();
        let h = ca.rotate_stage(KeyRole::Host, None, operator()).unwrap();
        (s.active, h.staged.unwrap())
    };
    // sled lets go of its lock when its flusher does.
    let ca = (0..50)
        .find_map(|_| {
            jit_ssh_ca::server::open_ca(cfg.clone())
                .map_err(|_| std::thread::sleep(Duration::from_millis(100)))
                .ok()
        })
        .unwrap();
    let fp = |k: &PublicKey| k.fingerprint(HashAlg::Sha256).to_string();
    assert_eq!(fp(ca.signer().public_key()), next);
    let user = ca.rotation_status(KeyRole::User).unwrap();
    assert_eq!(user.retiring.unwrap(), fp(&keys.public_key));
    let host = ca.rotation_status(KeyRole::Host).unwrap();
    assert_eq!(host.staged.unwrap(), host_next);
    let set = ca.ca_keys().unwrap();
    assert_eq!(set.keys.len(), 2);
}

/// A compromised previous key can be retired at once (`retire --now`):
/// the record says it was early, and the key set drops it immediately.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_now_drops_a_compromised_key_without_waiting() {
    let t = TestCa::new();
    t.ca.rotate_stage(KeyRole::User, None, operator()).unwrap();
    let s = t.ca.rotate_activate(KeyRole::User, operator()).unwrap();
    let e = wrong_state(t.ca.rotate_retire(KeyRole::User, false, operator()));
    assert!(e.contains("--now"), "{e}");
    t.ca.rotate_retire(KeyRole::User, true, operator()).unwrap();
    let (keys, _) = key_set(&t).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].fingerprint(HashAlg::Sha256).to_string(), s.active);
    let r = records(&t, "ca_key_retired");
    let Event::CaKeyRetired(k) = &r[0].event else {
        panic!()
    };
    assert!(k.detail.contains("retired early"), "{}", k.detail);
}

/// A CA key that no longer signs (a token pulled out) but whose public key
/// is known.
struct Broken(ssh_key::PrivateKey);

impl jit_ssh_ca::signer::CaSigner for Broken {
    fn public_key(&self) -> &PublicKey {
        self.0.public_key()
    }
    fn sign(
        &self,
        _: ssh_key::certificate::Builder,
    ) -> Result<ssh_key::Certificate, jit_ssh_ca::signer::SignError> {
        Err(jit_ssh_ca::signer::SignError(ssh_key::Error::Crypto))
    }
    fn sign_detached(&self, _: &str, _: &[u8]) -> Result<SshSig, jit_ssh_ca::signer::SignError> {
        Err(jit_ssh_ca::signer::SignError(ssh_key::Error::Crypto))
    }
}

/// Readiness probes the key that signs now: a broken old key makes the CA
/// unready until `activate` puts a working one in its place.
#[test]
fn readiness_probes_the_active_key() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let ics = dir.path().join("oncall.ics");
    std::fs::write(&ics, common::ONCALL_ICS).unwrap();
    let text = common::config_text("")
        .replace("ONCALL_ICS", &ics.display().to_string())
        .replace("WEBHOOK_URL", "http://127.0.0.1:9/hook");
    let mut cfg = jit_ssh_ca::config::parse(&text, "test").unwrap();
    cfg.data_dir = dir.path().to_owned();
    let old =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let ca = jit_ssh_ca::service::Ca::new(
        cfg,
        Arc::new(Broken(old)),
        Arc::new(jit_ssh_ca::store::SledStore::open(&dir.path().join("state")).unwrap()),
        Arc::new(jit_ssh_audit_disk::DiskAuditLog::open(&dir.path().join("audit")).unwrap()),
    )
    .unwrap();
    assert!(!ca.readiness().ready);
    ca.rotate_stage(KeyRole::User, None, operator()).unwrap();
    assert!(!ca.readiness().ready);
    ca.rotate_activate(KeyRole::User, operator()).unwrap();
    let r = ca.readiness();
    assert!(r.ready, "{r:?}");
}
