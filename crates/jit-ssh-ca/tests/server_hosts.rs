//! Host enrollment through the router: a token and a proof of the host key
//! give a host certificate from the host CA key; reused, expired, foreign
//! or wrong-secret tokens, names outside the token's group, proofs by
//! another key and malformed bodies are refused, audited, and change
//! nothing else. No token secret is ever written to the audit log.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::TestCa;
use serde_json::{json, Value};
use ssh_key::{certificate::CertType, Algorithm, HashAlg, LineEnding, PrivateKey};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery};
use jit_ssh_proto::hosts::{challenge_message, EnrolledDocument, HOST_ENROLL_NAMESPACE};

fn host_key() -> PrivateKey {
    PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
}

fn operator() -> Actor {
    Actor::Operator {
        login: "test".into(),
    }
}

async fn start(
    t: &TestCa,
    id: &str,
    secret: &str,
    name: &str,
    key: &PrivateKey,
) -> (StatusCode, Value) {
    t.post(
        "/v1/hosts/enroll",
        &json!({
            "token_id": id, "token_secret": secret, "name": name,
            "host_key": key.public_key().to_openssh().unwrap(),
        }),
    )
    .await
}

async fn finish(t: &TestCa, challenge: &Value, signer: &PrivateKey) -> (StatusCode, Value) {
    let id = challenge["id"].as_str().unwrap();
    let msg = challenge_message(id, challenge["nonce"].as_str().unwrap());
    let sig = signer
        .sign(HOST_ENROLL_NAMESPACE, HashAlg::Sha512, msg.as_bytes())
        .unwrap()
        .to_pem(LineEnding::LF)
        .unwrap();
    t.post(
        &format!("/v1/hosts/enroll/{id}"),
        &json!({ "signature": sig }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_and_the_host_key_give_one_host_certificate() {
    let t = TestCa::new();
    let tok =
        t.ca.create_host_token("dev", None, None, 1, operator())
            .unwrap()
            .token;
    let key = host_key();
    let (s, challenge) = start(&t, &tok.id, &tok.secret, "db-1.dev", &key).await;
    assert_eq!(s, StatusCode::CREATED, "{challenge}");

    // A proof by another key is refused and spends nothing.
    let (s, e) = finish(&t, &challenge, &host_key()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not signed by the host key"));
    // That challenge is gone (single use): a new one, proved by the key.
    let (s, _) = finish(&t, &challenge, &key).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, challenge) = start(&t, &tok.id, &tok.secret, "db-1.dev", &key).await;
    let (s, done) = finish(&t, &challenge, &key).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let doc: EnrolledDocument = serde_json::from_str(done["document"].as_str().unwrap()).unwrap();
    let cert = ssh_key::Certificate::from_openssh(&doc.certificate).unwrap();
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.valid_principals(), ["db-1.dev".to_owned()]);
    assert_eq!(cert.public_key(), key.public_key().key_data());
    // Signed by the host CA key, never the user CA key.
    let user_ca = t.ca.signer().public_key().fingerprint(HashAlg::Sha256);
    assert!(cert.validate(&[user_ca]).is_err());
    let host_ca = ssh_key::PublicKey::from_openssh(&doc.host_ca_keys[0]).unwrap();
    assert!(cert
        .validate(&[host_ca.fingerprint(HashAlg::Sha256)])
        .is_ok());
    assert_ne!(host_ca.key_data(), t.ca.signer().public_key().key_data());
    assert_eq!(t.ca.hosts().unwrap().hosts.len(), 1);

    // Single use: the token is spent.
    let (s, e) = start(&t, &tok.id, &tok.secret, "db-2.dev", &host_key()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown, used up or expired"));

    // The audit log holds the enrollment and the refusals, never the secret.
    let records = t.audit.query(&AuditQuery::default()).unwrap();
    let kinds: Vec<&str> = records.iter().map(|r| r.event.kind()).collect();
    assert!(
        kinds.contains(&"host_token_created") && kinds.contains(&"host_enrolled"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "host_enroll_refused")
            .count(),
        2,
        "{kinds:?}"
    );
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&tok.secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_names_and_bodies_are_refused() {
    let t = TestCa::new();
    let key = host_key();
    let tok =
        t.ca.create_host_token("dev", Some("db-*.dev"), None, 5, operator())
            .unwrap()
            .token;
    let expired =
        t.ca.create_host_token("dev", None, Some(std::time::Duration::ZERO), 1, operator())
            .unwrap()
            .token;
    let foreign = "f".repeat(32);
    let cases = [
        (
            &tok.id,
            "0".repeat(64),
            "db-1.dev",
            "unknown, used up or expired",
        ),
        (
            &expired.id,
            expired.secret.clone(),
            "db-1.dev",
            "unknown, used up or expired",
        ),
        (
            &foreign,
            tok.secret.clone(),
            "db-1.dev",
            "unknown, used up or expired",
        ),
        (
            &tok.id,
            tok.secret.clone(),
            "web-1.dev",
            "not a name this token may enroll",
        ),
        (
            &tok.id,
            tok.secret.clone(),
            "db-1.prod",
            "not a name this token may enroll",
        ),
    ];
    for (id, secret, name, needle) in cases {
        let (s, e) = start(&t, id, &secret, name, &key).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{name}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{name}: {e}"
        );
    }
    // Malformed and oversized bodies, a key that is not ed25519.
    let (s, e) = t
        .post("/v1/hosts/enroll", &json!({"token_id": tok.id, "nope": 1}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let big = "x".repeat(20_000);
    let (s, _) = t
        .post(
            "/v1/hosts/enroll",
            &json!({"token_id": tok.id, "token_secret": big, "name": "db-1.dev", "host_key": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, e) = t
        .post(
            "/v1/hosts/enroll",
            &json!({"token_id": tok.id, "token_secret": tok.secret, "name": "db-1.dev",
                    "host_key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Nothing was enrolled, and the token still works for a good name.
    assert!(t.ca.hosts().unwrap().hosts.is_empty());
    let (s, challenge) = start(&t, &tok.id, &tok.secret, "db-7.dev", &key).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(finish(&t, &challenge, &key).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_is_for_security_and_auditors_and_a_removed_host_is_revoked() {
    let t = TestCa::new();
    let tok =
        t.ca.create_host_token("dev", None, None, 2, operator())
            .unwrap()
            .token;
    let key = host_key();
    let (_, challenge) = start(&t, &tok.id, &tok.secret, "db-1.dev", &key).await;
    assert_eq!(finish(&t, &challenge, &key).await.0, StatusCode::OK);

    let mut aud = t.enroll("aud").await;
    let mut alice = t.enroll("alice").await;
    let auditor = t.sign_in("aud", &mut aud).await;
    let engineer = t.sign_in("alice", &mut alice).await;
    let (s, list) = t.get("/v1/hosts", Some(&auditor)).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["hosts"][0]["name"], "db-1.dev");
    assert!(list["hosts"][0]["cert_serial"].is_string(), "{list}");
    assert_eq!(
        t.get("/v1/hosts", Some(&engineer)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(t.get("/v1/hosts", None).await.0, StatusCode::UNAUTHORIZED);

    // Removed: gone from the inventory, its key listed for clients to
    // refuse, and it cannot enroll again with that key.
    let removed = t.ca.remove_host("db-1.dev", operator()).unwrap();
    assert_eq!(removed.name, "db-1.dev");
    assert!(t.ca.hosts().unwrap().hosts.is_empty());
    let (_, signed) = t.get("/v1/host-ca-keys", None).await;
    let set: Value = serde_json::from_str(signed["document"].as_str().unwrap()).unwrap();
    let line = key.public_key().to_openssh().unwrap();
    assert_eq!(set["revoked_host_keys"][0].as_str(), Some(line.as_str()));
    let (s, e) = start(&t, &tok.id, &tok.secret, "db-1.dev", &key).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("removed host"));
    assert!(t.ca.remove_host("db-1.dev", operator()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_the_token_allows_are_principals_and_others_are_refused() {
    let t = TestCa::new();
    let tok =
        t.ca.create_host_token("dev", Some("db*.dev"), None, 2, operator())
            .unwrap()
            .token;
    let key = host_key();
    let body = |aliases: Value| {
        json!({"token_id": tok.id, "token_secret": tok.secret, "name": "db-1.dev",
               "host_key": key.public_key().to_openssh().unwrap(), "aliases": aliases})
    };
    // An alias outside the token's pattern, or its group, is refused.
    for outside in ["web-1.dev", "db.prod"] {
        let (s, e) = t
            .post("/v1/hosts/enroll", &body(json!(["db.dev", outside])))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{outside} is not a name this token may enroll")),
            "{e}"
        );
    }
    let (s, e) = t
        .post("/v1/hosts/enroll", &body(json!(vec!["db.dev"; 17])))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");

    let (s, challenge) = t
        .post(
            "/v1/hosts/enroll",
            &body(json!(["db.dev", "db.dev", "db-1.dev"])),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{challenge}");
    let (s, done) = finish(&t, &challenge, &key).await;
    assert_eq!(s, StatusCode::OK, "{done}");
    let doc: EnrolledDocument = serde_json::from_str(done["document"].as_str().unwrap()).unwrap();
    let cert = ssh_key::Certificate::from_openssh(&doc.certificate).unwrap();
    assert_eq!(
        cert.valid_principals(),
        ["db-1.dev".to_owned(), "db.dev".to_owned()]
    );
    assert_eq!(t.ca.hosts().unwrap().hosts[0].aliases, ["db.dev"]);
    // The audit record names every name the certificate vouches for, as
    // a user certificate's record names its principals: the alias was
    // missing (session 12's review).
    let enrolled = t
        .audit
        .query(&AuditQuery {
            kinds: vec!["host_enrolled".into()],
            ..Default::default()
        })
        .unwrap();
    let event = serde_json::to_value(&enrolled[0].event).unwrap();
    assert_eq!(event["host"], "db-1.dev");
    assert_eq!(event["aliases"], json!(["db.dev"]), "{event}");
}

/// A token may enroll a name openly (the inventory then shows the new key),
/// but an alias must not make a second machine another enrolled host: that
/// host would stay enrolled and unaware, and removing it would not revoke
/// the alias. Nor may a new host take the name another one has as alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_cannot_take_another_enrolled_hosts_name() {
    let t = TestCa::new();
    let tok =
        t.ca.create_host_token("dev", None, None, 5, operator())
            .unwrap()
            .token;
    let enroll = |name: &'static str, aliases: Value, key: PrivateKey| {
        let body = json!({"token_id": tok.id, "token_secret": tok.secret, "name": name,
               "host_key": key.public_key().to_openssh().unwrap(), "aliases": aliases});
        let t = &t;
        async move {
            let (s, c) = t.post("/v1/hosts/enroll", &body).await;
            if s != StatusCode::CREATED {
                return (s, c);
            }
            finish(t, &c, &key).await
        }
    };
    let (s, e) = enroll("db-1.dev", json!(["db.dev"]), host_key()).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let before = t.ca.hosts().unwrap();
    let records = t.audit_count();

    for (name, aliases, taken) in [
        ("db-2.dev", json!(["db-1.dev"]), "db-1.dev"),
        ("db-2.dev", json!(["db.dev"]), "db.dev"),
        ("db.dev", json!([]), "db.dev"),
    ] {
        let (s, e) = enroll(name, aliases, host_key()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{name}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(&format!(
                "{taken} is already a name of the enrolled host db-1.dev"
            )),
            "{e}"
        );
    }
    assert_eq!(t.ca.hosts().unwrap(), before);
    assert_eq!(t.audit_count(), records + 3, "each refusal is audited");

    // The host itself re-enrolls with its alias; another name is fine.
    let (s, e) = enroll("db-1.dev", json!(["db.dev"]), host_key()).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    let (s, e) = enroll("db-2.dev", json!(["db-3.dev"]), host_key()).await;
    assert_eq!(s, StatusCode::OK, "{e}");
}
