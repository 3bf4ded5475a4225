//! A user's passkeys are one stored list that enrollment adds to and
//! every sign-in rewrites (its signature counter). No change may lose
//! another made meanwhile, in one CA or across two replicas on one
//! PostgreSQL database: each case runs the other change right inside the
//! first one's read-modify-write (between its read and its write,
//! through a store that pauses there; see tests/interleave), so the
//! interleaving is certain, not raced for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod interleave;
mod pg;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Url};

use jit_ssh_audit::{Actor, AuditLog, AuditQuery};
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::store::{PgStore, Session, SledStore, Store};
use jit_ssh_proto::api::{CreateSession, SessionStatus};

use common::{TestCa, ORIGIN};
use interleave::Interleave;

/// The CA whose credential reads pause (`first`), and the one that
/// makes the other change meanwhile (`other`: the same CA, or a second
/// replica on the same database).
struct Setup {
    first: TestCa,
    other: Option<TestCa>,
    pause: Arc<Interleave>,
    _dir: Option<tempfile::TempDir>,
}

impl Setup {
    fn embedded() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
        let pause = Interleave::new(store);
        Setup {
            first: TestCa::with_store(pause.clone()),
            other: None,
            pause,
            _dir: Some(dir),
        }
    }

    /// Two replicas on one fresh database; `None` without PostgreSQL.
    fn replicas(test: &str) -> Option<Setup> {
        let cfg = pg::database(test)?;
        let pause = Interleave::new(Arc::new(PgStore::open(&cfg).unwrap()));
        Some(Setup {
            first: TestCa::with_store(pause.clone()),
            other: Some(TestCa::with_store(Arc::new(PgStore::open(&cfg).unwrap()))),
            pause,
            _dir: None,
        })
    }

    fn other(&self) -> &TestCa {
        self.other.as_ref().unwrap_or(&self.first)
    }

    /// The credentials as stored: (id, counter) of each.
    fn stored(&self, user: &str) -> Vec<(String, u64)> {
        let store: &dyn Store = &*self.pause;
        store
            .credentials(user)
            .unwrap()
            .iter()
            .map(|p| {
                let v = serde_json::to_value(p).unwrap();
                (
                    v["cred"]["cred_id"].as_str().unwrap().to_owned(),
                    v["cred"]["counter"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// `user_enrolled` records, on every replica.
    fn enrolled_records(&self) -> usize {
        let q = AuditQuery {
            kinds: vec!["user_enrolled".into()],
            ..AuditQuery::default()
        };
        let mut n = self.first.audit.query(&q).unwrap().len();
        if let Some(o) = &self.other {
            n += o.audit.query(&q).unwrap().len();
        }
        n
    }
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// An enrollment of a new soft passkey up to its last step: the
/// registration to send, the link's token, and the key.
fn registration(t: &TestCa) -> (String, RegisterPublicKeyCredential, SoftPasskey) {
    let link = t.ca.invite("alice", &[], Actor::System).unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let options = t.ca.enroll_start(&token, t.client).unwrap();
    let mut key = SoftPasskey::new(true);
    let reg = key.do_registration(origin(), options).unwrap();
    (token, reg, key)
}

fn enroll(t: &TestCa) -> SoftPasskey {
    let (token, reg, key) = registration(t);
    t.ca.enroll_finish(&token, &reg, t.client).unwrap();
    key
}

/// A sign-in up to its last step: the session id and `key`'s assertion.
fn assertion(t: &TestCa, key: &mut SoftPasskey) -> (String, PublicKeyCredential) {
    let created =
        t.ca.create_session(
            CreateSession {
                user: "alice".into(),
            },
            t.client,
        )
        .unwrap();
    let options =
        t.ca.confirm_start::<Session>(&created.id, t.client)
            .unwrap();
    let cred = key.do_authentication(origin(), options).unwrap();
    (created.id, cred)
}

fn sign_in(ca: &Ca, client: std::net::SocketAddr, (id, cred): &(String, PublicKeyCredential)) {
    let done = ca.confirm_finish::<Session>(id, cred, client).unwrap();
    assert_eq!(done.item.status, SessionStatus::Active);
}

fn ids(stored: &[(String, u64)]) -> BTreeSet<String> {
    stored.iter().map(|(id, _)| id.clone()).collect()
}

/// Runs `case` on the embedded store, then on two PostgreSQL replicas,
/// off the async workers (the PostgreSQL client blocks).
async fn both(test: &'static str, case: fn(Setup)) {
    tokio::task::spawn_blocking(move || {
        case(Setup::embedded());
        if let Some(s) = Setup::replicas(test) {
            case(s);
        }
    })
    .await
    .unwrap();
}

/// Alice signs in with her first passkey while her second is enrolled:
/// the sign-in read her list before the enrollment stored the new one.
fn sign_in_meanwhile_enrollment(s: Setup) {
    let mut first = enroll(&s.first);
    let touch = assertion(&s.first, &mut first);
    let (token, reg, _second) = registration(s.other());
    let other = s.other().ca.clone();
    let client = s.first.client;
    s.pause.after_next_read(move || {
        other.enroll_finish(&token, &reg, client).unwrap();
    });
    sign_in(&s.first.ca, client, &touch);
    assert!(s.pause.ran());
    let stored = s.stored("alice");
    assert_eq!(
        stored.len(),
        2,
        "the passkey enrolled during a sign-in was lost: {stored:?}"
    );
    assert_eq!(stored[0].1, 1, "the sign-in's counter: {stored:?}");
    assert_eq!(s.enrolled_records(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passkey_enrolled_during_a_sign_in_is_kept() {
    both(
        "a_passkey_enrolled_during_a_sign_in_is_kept",
        sign_in_meanwhile_enrollment,
    )
    .await;
}

/// Alice's second passkey is enrolled while she signs in with her
/// first: the enrollment read her list before the sign-in raised the
/// counter.
fn enrollment_meanwhile_sign_in(s: Setup) {
    let mut first = enroll(&s.first);
    let touch = assertion(s.other(), &mut first);
    let (token, reg, _second) = registration(&s.first);
    let (other, client) = (s.other().ca.clone(), s.first.client);
    s.pause
        .after_next_read(move || sign_in(&other, client, &touch));
    s.first.ca.enroll_finish(&token, &reg, client).unwrap();
    assert!(s.pause.ran());
    let stored = s.stored("alice");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        stored[0].1, 1,
        "an enrollment moved the first passkey's counter back: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_during_an_enrollment_keeps_its_counter() {
    both(
        "a_sign_in_during_an_enrollment_keeps_its_counter",
        enrollment_meanwhile_sign_in,
    )
    .await;
}

/// Two links for Alice used at once, her first two passkeys: both
/// enrollments read "no credentials".
fn two_first_enrollments(s: Setup) {
    let (token_a, reg_a, _a) = registration(&s.first);
    let (token_b, reg_b, _b) = registration(s.other());
    let want: BTreeSet<String> = [&reg_a, &reg_b]
        .iter()
        .map(|r| {
            serde_json::to_value(r).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let (other, client) = (s.other().ca.clone(), s.first.client);
    s.pause.after_next_read(move || {
        other.enroll_finish(&token_b, &reg_b, client).unwrap();
    });
    let done = s.first.ca.enroll_finish(&token_a, &reg_a, client).unwrap();
    assert!(s.pause.ran());
    let stored = s.stored("alice");
    assert_eq!(ids(&stored), want, "one of two enrollments was lost");
    assert_eq!(done.credentials, 2);
    // One record per enrollment, however often the store was tried.
    assert_eq!(s.enrolled_records(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_enrollments_at_once_keep_both_passkeys() {
    both(
        "two_enrollments_at_once_keep_both_passkeys",
        two_first_enrollments,
    )
    .await;
}

/// Two sign-ins with the same passkey, the later touch (counter 2)
/// stored while the earlier one (counter 1) is between its read and
/// its write.
fn two_sign_ins(s: Setup) {
    let mut key = enroll(&s.first);
    let earlier = assertion(&s.first, &mut key);
    let later = assertion(s.other(), &mut key);
    let (other, client) = (s.other().ca.clone(), s.first.client);
    s.pause
        .after_next_read(move || sign_in(&other, client, &later));
    sign_in(&s.first.ca, client, &earlier);
    assert!(s.pause.ran());
    let stored = s.stored("alice");
    assert_eq!(
        stored[0].1, 2,
        "a sign-in moved the counter back: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sign_ins_at_once_never_move_the_counter_back() {
    both(
        "two_sign_ins_at_once_never_move_the_counter_back",
        two_sign_ins,
    )
    .await;
}

/// After each read of alice's list, another passkey is added (and the
/// next read paused again): every swap comes too late. `writes` counts
/// them; arming the pause with anything else ends it.
fn meddle(
    pause: Arc<Interleave>,
    store: Arc<dyn Store>,
    writes: Arc<std::sync::atomic::AtomicUsize>,
) {
    let again = (pause.clone(), store.clone(), writes.clone());
    pause.after_next_read(move || {
        let old = store.stored_credentials("alice").unwrap();
        let mut now = old.passkeys.clone();
        now.push(stored::passkey());
        assert!(store.swap_credentials("alice", &old, &now, false).unwrap());
        writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        meddle(again.0, again.1, again.2);
    });
}

/// A user's list that changes after every read: the sign-in gives up
/// after a few tries with a 503 that says to touch again, and confirms
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_that_never_settles_is_a_retryable_refusal() {
    let s = Setup::embedded();
    let mut key = s.first.enroll("alice").await;
    let (st, created) = s
        .first
        .post("/v1/sessions", &json!({ "user": "alice" }))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let store: Arc<dyn Store> = s.pause.clone();
    let pause = s.pause.clone();
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (st, options) = s
        .first
        .post(&format!("/v1/sessions/{id}/mfa/start"), &json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{options}");
    let assertion = serde_json::to_value(
        key.do_authentication(origin(), serde_json::from_value(options).unwrap())
            .unwrap(),
    )
    .unwrap();
    meddle(pause, store, writes.clone());
    let (st, headers, body) = s
        .first
        .send(
            axum::http::Request::post(format!("/v1/sessions/{id}/mfa/finish"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(assertion.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    let tries = writes.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=10).contains(&tries), "{tries} tries");
    let (st, state) = s
        .first
        .get(&format!("/v1/sessions/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(st, StatusCode::OK, "{state}");
    assert_eq!(state["status"], "pending_mfa", "{state}");
}

/// The record comes before the passkey: an audit log that refuses the
/// enrollment's record (a full disk) leaves no credential behind.
#[tokio::test(flavor = "multi_thread")]
async fn an_enrollment_whose_record_is_refused_stores_no_passkey() {
    let t = TestCa::build("", |real| {
        Arc::new(common::AppendHook {
            inner: real,
            before: |event: &jit_ssh_audit::Event| match event {
                jit_ssh_audit::Event::UserEnrolled(_) => Err(common::refused_append()),
                _ => Ok(()),
            },
            on_ready: None,
        })
    });
    let link = t.ca.invite("alice", &[], Actor::System).unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let reg = t.register(&token, &mut SoftPasskey::new(true)).await;
    let (st, body) = t.finish_enroll(&token, &reg).await;
    assert!(st.is_server_error(), "{st} {body}");
    assert!(!t.ca.is_enrolled("alice").unwrap());
    let (st, body) = t.post("/v1/sessions", &json!({ "user": "alice" })).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{body}");
    // Nothing was stored, so the link was given back (session 12).
    let (st, body) = t.get(&format!("/v1/enroll/{token}"), None).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the refused enrollment spent the link: {body}"
    );
}

/// An enrollment whose every swap loses to another change of the
/// user's list (session 12): 503 with `Retry-After`, nothing stored, and
/// the link not spent — the user registers again with it. The answer
/// given up on stays spent: its ceremony was taken.
#[tokio::test(flavor = "multi_thread")]
async fn an_enrollment_that_gives_up_keeps_its_link_for_another_try() {
    let s = Setup::embedded();
    let t = &s.first;
    let link = t.ca.invite("alice", &[], Actor::System).unwrap();
    let token = link.url.rsplit('/').next().unwrap().to_owned();
    let reg = t.register(&token, &mut SoftPasskey::new(true)).await;
    let given_up = reg["id"].as_str().unwrap().to_owned();
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    meddle(s.pause.clone(), s.pause.clone(), writes.clone());
    let (st, headers, refusal) = t
        .send(
            axum::http::Request::post(format!("/v1/enroll/{token}/finish"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(reg.to_string()))
                .unwrap(),
        )
        .await;
    s.pause.after_next_read(|| {});
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{refusal}");
    assert_eq!(refusal["error"]["code"], "unavailable", "{refusal}");
    assert_eq!(headers.get("retry-after").unwrap(), "1");
    assert!((2..=10).contains(&writes.load(std::sync::atomic::Ordering::SeqCst)));
    assert!(
        !ids(&s.stored("alice")).contains(&given_up),
        "stored though it gave up"
    );

    // The same answer again: its ceremony is spent.
    let (st, body) = t.finish_enroll(&token, &reg).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    // The link works: a new registration with it is stored.
    let (st, body) = t.get(&format!("/v1/enroll/{token}"), None).await;
    assert_eq!(
        st,
        StatusCode::OK,
        "the enrollment that gave up spent the link: {body}"
    );
    // And the refusal said so.
    let told = refusal["error"]["message"].as_str().unwrap();
    assert!(told.contains("The link still works"), "{told}");
    let again = t.register(&token, &mut SoftPasskey::new(true)).await;
    let (st, body) = t.finish_enroll(&token, &again).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(ids(&s.stored("alice")).contains(again["id"].as_str().unwrap()));
    // Spent now.
    let (st, _) = t.get(&format!("/v1/enroll/{token}"), None).await;
    assert_eq!(st, StatusCode::GONE);
    // Each attempt left its record; only the second's passkey exists.
    assert_eq!(s.enrolled_records(), 2);
}

mod stored;
