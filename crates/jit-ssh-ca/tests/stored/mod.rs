//! Values to store in the state-store tests: an access request and a
//! WebAuthn ceremony, with nothing in them that a test does not set.

#![allow(dead_code)]

use jit_ssh_ca::names::{AccountName, HostName, Reason, UserName};
use jit_ssh_ca::store::{AccessRequest, Ceremony};
use jit_ssh_proto::api::RequestStatus;

/// Alice's request `id` for postgres@db-1.prod, in `status`, waiting
/// until unix time 100.
pub fn request(id: &str, status: RequestStatus) -> AccessRequest {
    AccessRequest {
        id: id.to_owned(),
        user: UserName::parse("alice").unwrap(),
        host: HostName::parse("db-1.prod").unwrap(),
        account: AccountName::parse("postgres").unwrap(),
        ttl_secs: 300,
        reason: Reason::parse("r").unwrap(),
        public_key: String::new(),
        key_fingerprint: String::new(),
        client_addr: "192.0.2.1".into(),
        created_at: 0,
        expires_at: 100,
        status,
        decision_reason: None,
        secret_hash: String::new(),
        grant: None,
        certificate: None,
        break_glass: false,
        approval: None,
        deciding_since: None,
    }
}

/// An enrollment ceremony's state (a real one: it must serialise as the
/// CA's do), ending at `expires_at`.
pub fn ceremony(expires_at: i64) -> Ceremony {
    let rp = webauthn_rs::prelude::Url::parse("http://localhost:8722").unwrap();
    let webauthn = webauthn_rs::WebauthnBuilder::new("localhost", &rp)
        .unwrap()
        .build()
        .unwrap();
    let (_, state) = webauthn
        .start_passkey_registration(uuid::Uuid::new_v4(), "alice", "alice", None)
        .unwrap();
    Ceremony::Enroll { state, expires_at }
}

/// A real passkey, registered by a fresh soft authenticator (it must
/// serialise as enrolled ones do).
pub fn passkey() -> webauthn_rs::prelude::Passkey {
    use webauthn_authenticator_rs::{softpasskey::SoftPasskey, WebauthnAuthenticator};
    let rp = webauthn_rs::prelude::Url::parse("http://localhost:8722").unwrap();
    let webauthn = webauthn_rs::WebauthnBuilder::new("localhost", &rp)
        .unwrap()
        .build()
        .unwrap();
    let (challenge, state) = webauthn
        .start_passkey_registration(uuid::Uuid::new_v4(), "alice", "alice", None)
        .unwrap();
    let mut key = SoftPasskey::new(true);
    let reg = key.do_registration(rp, challenge).unwrap();
    webauthn.finish_passkey_registration(&reg, &state).unwrap()
}

/// `p` with its signature counter set to `counter` (a sign-in's update).
pub fn counted(p: &webauthn_rs::prelude::Passkey, counter: u32) -> webauthn_rs::prelude::Passkey {
    let mut v = serde_json::to_value(p).unwrap();
    v["cred"]["counter"] = counter.into();
    serde_json::from_value(v).unwrap()
}

/// Credentials as stored, counters included (a passkey's `==` compares
/// only its id).
pub fn exact(creds: &[webauthn_rs::prelude::Passkey]) -> String {
    serde_json::to_string(creds).unwrap()
}
