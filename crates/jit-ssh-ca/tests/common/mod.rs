//! In-process CA for tests: the real router, stores and audit log in a
//! temp dir, driven with `oneshot` and soft WebAuthn authenticators.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use jit_ssh_audit::{Actor, AuditLog};
use jit_ssh_audit_disk::DiskAuditLog;
use jit_ssh_ca::clock::TestClock;
use jit_ssh_ca::config;
use jit_ssh_ca::service::Ca;
use jit_ssh_ca::signer::{CaSigner, FileSigner};
use jit_ssh_ca::store::{SledStore, Store};

pub const ORIGIN: &str = "http://localhost:8722";

/// Alice is on call (primary) for the web hosts every day; nobody else.
pub const ONCALL_ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:web-primary\r\nSUMMARY:web primary\r\nDTSTART:20260101T000000Z\r\nDURATION:P1D\r\nRRULE:FREQ=DAILY\r\nATTENDEE:mailto:alice@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

/// A policy with an auto-approved dev rule, a two-approver rule for prod
/// databases, an on-call rule with break-glass for web hosts, and a
/// 15-minute cap on dev.
pub fn config_text(extra_limits: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:8722"
public_url = "{ORIGIN}"
data_dir = "unused"
ca_key = {{ kind = "file", path = "unused" }}

[limits]
{extra_limits}

[[users]]
name = "alice"
groups = ["sre"]
roles = ["engineer"]
email = "alice@example.com"

[[users]]
name = "bob"
groups = ["sre"]
roles = ["engineer"]

[[users]]
name = "carol"
groups = ["sre"]

[[users]]
name = "sec"
groups = ["sre"]
roles = ["security"]

[[users]]
name = "aud"
roles = ["auditor"]

[[users]]
name = "lead1"
groups = ["leads"]
roles = ["approver"]

[[users]]
name = "lead2"
groups = ["leads"]
roles = ["approver"]

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall", "{{user}}"]

[host_groups.pinned]
hosts = ["*.pinned"]
accounts = ["oncall"]

[host_groups.prod-db]
hosts = ["db-*.prod"]
accounts = ["postgres"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "15m"

[[rules]]
groups = ["sre"]
host_groups = ["pinned"]
max_ttl = "15m"
source_address_pinning = true
extensions = ["permit-pty", "permit-port-forwarding"]

[host_groups.web]
hosts = ["web-*.prod"]
accounts = ["www"]

[[rules]]
groups = ["sre"]
host_groups = ["prod-db"]
max_ttl = "15m"
approval = "approvers"
approvers = ["leads"]
min_approvals = 2
source_address_pinning = true

[[rules]]
groups = ["sre"]
host_groups = ["web"]
max_ttl = "15m"
approval = "oncall"
schedule = "web"
layers = ["primary"]
fallback = "approvers"
approvers = ["leads"]
break_glass = true
break_glass_max_ttl = "5m"

[schedules.web]
kind = "ical"
source = "ONCALL_ICS"
layers = {{ primary = "primary" }}

[[notify]]
kind = "webhook"
url = "WEBHOOK_URL"
"#
    )
}

pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub ca: Arc<Ca>,
    pub router: Router,
    pub audit: Arc<DiskAuditLog>,
    pub client: SocketAddr,
    /// The CA's clock: move it on instead of sleeping past an expiry.
    pub clock: Arc<TestClock>,
}

/// The default free-space floor for recordings (1 GiB or 5 %), stated:
/// a test CA without a `[recordings]` section has a floor of 16 MiB.
pub const DEFAULT_FLOOR: &str = "\n[recordings]\nmin_free = \"1GiB\"\nmin_free_percent = 5\n";

impl TestCa {
    pub fn new() -> Self {
        Self::with_limits("")
    }

    pub fn with_limits(limits: &str) -> Self {
        Self::build(limits, |a| a)
    }

    /// `wrap` may put another audit log in front of the real one.
    pub fn build(limits: &str, wrap: impl FnOnce(Arc<dyn AuditLog>) -> Arc<dyn AuditLog>) -> Self {
        // Nothing listens on port 9 (discard): deliveries fail.
        Self::build_with(limits, "http://127.0.0.1:9/hook", wrap)
    }

    pub fn with_webhook(limits: &str, url: &str) -> Self {
        Self::build_with(limits, url, |a| a)
    }

    /// The usual CA with `limits`, and `policy` (host groups, rules)
    /// added to its config.
    pub fn with_policy(limits: &str, policy: &str) -> Self {
        Self::build_text(
            &(config_text(limits) + policy),
            "http://127.0.0.1:9/hook",
            |a| a,
        )
    }

    fn build_with(
        limits: &str,
        webhook: &str,
        wrap: impl FnOnce(Arc<dyn AuditLog>) -> Arc<dyn AuditLog>,
    ) -> Self {
        Self::build_text(&config_text(limits), webhook, wrap)
    }

    /// The usual CA signing with `signer` (a token key, say) instead of
    /// a fresh key file.
    pub fn with_signer(signer: Arc<dyn CaSigner>) -> Self {
        Self::build_on(
            &config_text(""),
            "http://127.0.0.1:9/hook",
            |a| a,
            Some(signer),
            None,
        )
    }

    /// The usual CA on another state store (PostgreSQL).
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self::build_on(
            &config_text(""),
            "http://127.0.0.1:9/hook",
            |a| a,
            None,
            Some(store),
        )
    }

    fn build_text(
        config: &str,
        webhook: &str,
        wrap: impl FnOnce(Arc<dyn AuditLog>) -> Arc<dyn AuditLog>,
    ) -> Self {
        Self::build_on(config, webhook, wrap, None, None)
    }

    /// The usual CA with `limits`, signing with `signer`, on the data
    /// directory `dir` as it is (a restored backup, say).
    /// The usual CA on another state store and audit log (a replica on
    /// PostgreSQL); `audit` stands in for the disk log the CA would use.
    pub fn with_store_and_audit(store: Arc<dyn Store>, audit: Arc<dyn AuditLog>) -> Self {
        Self::build_on(
            &config_text(""),
            "http://127.0.0.1:9/hook",
            move |_| audit,
            None,
            Some(store),
        )
    }

    /// A replica with the whole config `config` on a shared store and
    /// audit log (a replica already running an edited config, say).
    pub fn replica_with_config(
        config: &str,
        store: Arc<dyn Store>,
        audit: Arc<dyn AuditLog>,
    ) -> Self {
        Self::build_on(
            config,
            "http://127.0.0.1:9/hook",
            move |_| audit,
            None,
            Some(store),
        )
    }

    pub fn on_dir(dir: tempfile::TempDir, limits: &str, signer: Arc<dyn CaSigner>) -> Self {
        Self::build_in(
            dir,
            &config_text(limits),
            "http://127.0.0.1:9/hook",
            |a| a,
            Some(signer),
            None,
        )
    }

    /// A CA on the data directory `dir` as it is, with the whole config
    /// `config` (a restart after the operator edited the config, say).
    pub fn on_dir_with_config(dir: tempfile::TempDir, config: &str) -> Self {
        Self::build_in(dir, config, "http://127.0.0.1:9/hook", |a| a, None, None)
    }

    fn build_on(
        config: &str,
        webhook: &str,
        wrap: impl FnOnce(Arc<dyn AuditLog>) -> Arc<dyn AuditLog>,
        signer: Option<Arc<dyn CaSigner>>,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::build_in(dir, config, webhook, wrap, signer, store)
    }

    fn build_in(
        dir: tempfile::TempDir,
        config: &str,
        webhook: &str,
        wrap: impl FnOnce(Arc<dyn AuditLog>) -> Arc<dyn AuditLog>,
        signer: Option<Arc<dyn CaSigner>>,
        store: Option<Arc<dyn Store>>,
    ) -> Self {
        let ics = dir.path().join("oncall.ics");
        std::fs::write(&ics, ONCALL_ICS).unwrap();
        let text = config
            .replace("ONCALL_ICS", &ics.display().to_string())
            .replace("WEBHOOK_URL", webhook);
        let mut cfg = config::parse(&text, "test").unwrap();
        cfg.data_dir = dir.path().to_owned();
        // A test machine's disk may be fuller than the default 5 % floor
        // allows (uploads would be refused with 507); only tests of the
        // floor set one ([`DEFAULT_FLOOR`], say).
        if !text.contains("[recordings]") {
            cfg.recordings.floor = config::recordings::Floor {
                min_free: 16 << 20,
                min_free_percent: 0,
            };
            cfg.recordings.inode_floor = config::recordings::Floor {
                min_free: 1_000,
                min_free_percent: 0,
            };
        }
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let store =
            store.unwrap_or_else(|| Arc::new(SledStore::open(&dir.path().join("state")).unwrap()));
        let audit = Arc::new(DiskAuditLog::open(&dir.path().join("audit")).unwrap());
        let host_key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        let clock = Arc::new(TestClock::new());
        let ca = Arc::new(
            Ca::new(
                cfg,
                signer.unwrap_or_else(|| Arc::new(FileSigner::new(key))),
                store,
                wrap(audit.clone()),
            )
            .unwrap()
            .with_host_signer(Arc::new(FileSigner::new(host_key)))
            .with_clock(clock.clone()),
        );
        let router = jit_ssh_ca::http::app(ca.clone());
        Self {
            dir,
            ca,
            router,
            audit,
            client: "192.0.2.10:40000".parse().unwrap(),
            clock,
        }
    }

    pub fn audit_count(&self) -> u64 {
        self.audit.verify().unwrap().records
    }

    /// Sends a request; returns status, headers and the body as JSON
    /// (`Value::Null` when it is not JSON).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = req;
        req.extensions_mut().insert(ConnectInfo(self.client));
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let (s, _, v) = self.send(req).await;
        (s, v)
    }

    pub async fn get(&self, path: &str, secret: Option<&str>) -> (StatusCode, Value) {
        let mut b = Request::builder().method(Method::GET).uri(path);
        if let Some(s) = secret {
            b = b.header(header::AUTHORIZATION, format!("Bearer {s}"));
        }
        let (s, _, v) = self.send(b.body(Body::empty()).unwrap()).await;
        (s, v)
    }

    /// Starts a registration with invite `token` and lets `key` answer it.
    pub async fn register(&self, token: &str, key: &mut SoftPasskey) -> Value {
        let (s, options) = self
            .post(&format!("/v1/enroll/{token}/start"), &json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{options}");
        let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        serde_json::to_value(
            key.do_registration(Url::parse(ORIGIN).unwrap(), options)
                .unwrap(),
        )
        .unwrap()
    }

    pub async fn finish_enroll(&self, token: &str, registration: &Value) -> (StatusCode, Value) {
        self.post(&format!("/v1/enroll/{token}/finish"), registration)
            .await
    }

    /// Invites and enrolls `user` with a fresh soft passkey.
    pub async fn enroll(&self, user: &str) -> SoftPasskey {
        // Off the async workers, as the server does: a blocking store
        // (PostgreSQL's client) may not run on them.
        let (ca, name) = (self.ca.clone(), user.to_owned());
        let link = tokio::task::spawn_blocking(move || ca.invite(&name, &[], Actor::System))
            .await
            .unwrap()
            .unwrap();
        let token = link.url.rsplit('/').next().unwrap().to_owned();
        let mut key = SoftPasskey::new(true);
        let reg = self.register(&token, &mut key).await;
        let (s, done) = self.finish_enroll(&token, &reg).await;
        assert_eq!(s, StatusCode::OK, "{done}");
        key
    }

    /// Creates a request; returns (id, secret, the ed25519 key's pubkey line).
    pub async fn request(
        &self,
        user: &str,
        host: &str,
        account: &str,
        ttl: &str,
    ) -> (StatusCode, Value) {
        let key = ssh_key::PrivateKey::random(
            &mut ssh_key::rand_core::OsRng,
            ssh_key::Algorithm::Ed25519,
        )
        .unwrap();
        self.post(
            "/v1/requests",
            &json!({
                "user": user, "host": host, "account": account, "ttl": ttl,
                "reason": "incident 42", "public_key": key.public_key().to_openssh().unwrap(),
            }),
        )
        .await
    }

    pub async fn mfa_challenge(&self, id: &str) -> RequestChallengeResponse {
        let (s, v) = self
            .post(&format!("/v1/requests/{id}/mfa/start"), &json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        serde_json::from_value(v).unwrap()
    }

    /// Confirms `/v1/{kind}/{id}` (requests, revocations, sessions) with
    /// `key`; returns the status, the answer and the assertion sent.
    pub async fn confirm(
        &self,
        kind: &str,
        id: &str,
        key: &mut SoftPasskey,
    ) -> (StatusCode, Value, Value) {
        let (s, options) = self
            .post(&format!("/v1/{kind}/{id}/mfa/start"), &json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{options}");
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let assertion = serde_json::to_value(
            key.do_authentication(Url::parse(ORIGIN).unwrap(), options)
                .unwrap(),
        )
        .unwrap();
        let (s, v) = self
            .post(&format!("/v1/{kind}/{id}/mfa/finish"), &assertion)
            .await;
        (s, v, assertion)
    }

    /// Signs `user` in with `key`; returns the session's bearer token.
    pub async fn sign_in(&self, user: &str, key: &mut SoftPasskey) -> String {
        let (s, created) = self.post("/v1/sessions", &json!({ "user": user })).await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap();
        let (s, state, _) = self.confirm("sessions", id, key).await;
        assert_eq!(
            (s, state["status"].as_str()),
            (StatusCode::OK, Some("active")),
            "{state}"
        );
        format!("{id}.{}", created["secret"].as_str().unwrap())
    }

    /// Signs the request's challenge with `key` and posts the assertion.
    pub async fn touch(&self, id: &str, key: &mut SoftPasskey) -> (StatusCode, Value, Value) {
        self.confirm("requests", id, key).await
    }
}

/// A local webhook receiver: answers 500 to the first `fail_first`
/// deliveries, then 200, and keeps every body it was sent.
pub struct Hook {
    pub url: String,
    pub bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Hook {
    pub async fn start(fail_first: usize) -> Hook {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            let mut served = 0usize;
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break Some(buf[end + 4..end + 4 + len].to_vec());
                        }
                    }
                };
                served += 1;
                let status = if served <= fail_first {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                if status.starts_with("200") {
                    if let Some(b) = body {
                        seen.lock()
                            .unwrap()
                            .push(serde_json::from_slice(&b).unwrap_or(Value::Null));
                    }
                }
                let _ = conn
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        Hook { url, bodies }
    }

    /// Waits (up to 10 s) for a body with `"event": event`.
    pub async fn wait_for(&self, event: &str) -> Value {
        for _ in 0..200 {
            if let Some(v) = self
                .bodies
                .lock()
                .unwrap()
                .iter()
                .find(|v| v["event"] == event)
            {
                return v.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "no {event} notification arrived; got {:?}",
            self.bodies.lock().unwrap()
        );
    }
}

/// An audit log in front of `inner` whose appends first ask `before`
/// about each record:
/// an `Err` refuses the record (a full disk), and `before` may also sleep
/// (a slow disk). `on_ready` runs before each readiness check (a slow
/// probe). Everything else goes to `inner` unchanged.
pub struct AppendHook<F> {
    pub inner: Arc<dyn AuditLog>,
    pub before: F,
    pub on_ready: Option<Box<dyn Fn() + Send + Sync>>,
}

impl<F> AuditLog for AppendHook<F>
where
    F: Fn(&jit_ssh_audit::Event) -> Result<(), jit_ssh_audit::AppendError> + Send + Sync,
{
    fn append_all(
        &self,
        entries: Vec<(jit_ssh_audit::Actor, jit_ssh_audit::Event)>,
    ) -> Result<Vec<jit_ssh_audit::AuditRecord>, jit_ssh_audit::AppendError> {
        for (_, event) in &entries {
            (self.before)(event)?;
        }
        self.inner.append_all(entries)
    }
    fn query(
        &self,
        q: &jit_ssh_audit::AuditQuery,
    ) -> Result<Vec<jit_ssh_audit::AuditRecord>, jit_ssh_audit::StoreError> {
        self.inner.query(q)
    }
    fn serial_issued(&self, serial: u64) -> Result<bool, jit_ssh_audit::StoreError> {
        self.inner.serial_issued(serial)
    }
    fn verify(&self) -> Result<jit_ssh_audit::VerifyReport, jit_ssh_audit::StoreError> {
        self.inner.verify()
    }
    fn head(&self) -> jit_ssh_audit::ChainHead {
        self.inner.head()
    }
    fn first_seq_at(&self, t: time::OffsetDateTime) -> Result<u64, jit_ssh_audit::StoreError> {
        self.inner.first_seq_at(t)
    }
    fn export(
        &self,
        from: u64,
        to: u64,
        sink: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u64, jit_ssh_audit::StoreError> {
        self.inner.export(from, to, sink)
    }
    fn ready(&self) -> Result<(), jit_ssh_audit::StoreError> {
        if let Some(hook) = &self.on_ready {
            hook();
        }
        self.inner.ready()
    }
    fn with_checkpoint_lock(&self, f: &mut dyn FnMut()) -> Result<(), jit_ssh_audit::StoreError> {
        self.inner.with_checkpoint_lock(f)
    }
}

/// The error a full disk gives an append.
pub fn refused_append() -> jit_ssh_audit::AppendError {
    jit_ssh_audit::AppendError::Commit(Arc::new(jit_ssh_audit::StoreError::Poisoned))
}
