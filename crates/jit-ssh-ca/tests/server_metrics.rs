//! `/metrics`, `/livez` and `/readyz` (issue 17): counters move as a
//! login, a denial and a revocation happen, the scrape passes the real
//! `promtool check metrics`, names no one, and wants its token; `/readyz`
//! goes 503 while the audit directory takes no writes, nothing is issued
//! meanwhile, and it comes back when the directory does.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use common::TestCa;

const TOKEN: &str = "scrape-token-for-tests";

async fn scrape_with(t: &TestCa, token: Option<&str>) -> (StatusCode, String) {
    let mut b = Request::builder().method(Method::GET).uri("/metrics");
    if let Some(token) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut req = b.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(t.client));
    let res = tower::ServiceExt::oneshot(t.router.clone(), req)
        .await
        .unwrap();
    let status = res.status();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn scrape(t: &TestCa) -> String {
    let (s, text) = scrape_with(t, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    promtool_check(&text);
    text
}

/// Every sample of the scrape: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, key: &str) -> f64 {
    samples(text).get(key).copied().unwrap_or(0.0)
}

/// `promtool check metrics` (Debian package `prometheus`) on the scrape:
/// exposition syntax and Prometheus' naming lint.
fn promtool_check(text: &str) {
    use std::io::Write;
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(promtool) = promtool else {
        if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
            panic!("JIT_SSH_REQUIRE_E2E=1 but promtool is missing (apt-get install prometheus)");
        }
        eprintln!("\n!!!!!!!! SKIPPED promtool check metrics: promtool missing (apt-get install prometheus) !!!!!!!!\n");
        return;
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A login that gets its certificate; returns its serial (a string).
async fn login(t: &TestCa, key: &mut SoftPasskey, user: &str) -> String {
    let (s, created) = t.request(user, "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, state, _) = t.touch(id, key).await;
    assert_eq!(s, StatusCode::OK, "{state}");
    let (_, state) = t
        .get(&format!("/v1/requests/{id}"), created["secret"].as_str())
        .await;
    assert_eq!(state["status"], "issued", "{state}");
    state["certificate"]["serial"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_a_login_a_denial_and_a_revocation() {
    let t = TestCa::new();
    t.ca.metrics.require_token(TOKEN);
    let metrics = t.ca.metrics.clone();
    t.audit.observe_group_sizes(move |n| metrics.audit_group(n));

    // The token is wanted: none, or a wrong one, reads nothing.
    for token in [None, Some("wrong")] {
        let (s, text) = scrape_with(&t, token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{text}");
        assert!(!text.contains("jit_ssh_"), "{text}");
    }

    let mut alice = t.enroll("alice").await;
    let mut sec = t.enroll("sec").await;
    let before = scrape(&t).await;
    let issued = "jit_ssh_certificates_issued_total";
    let approved = r#"jit_ssh_policy_decisions_total{outcome="approved",reason="none"}"#;
    let denied = r#"jit_ssh_policy_decisions_total{outcome="denied",reason="account_not_allowed"}"#;
    let revocations = "jit_ssh_revocations_total";
    let touches = r#"jit_ssh_webauthn_ceremonies_total{ceremony="access_request",result="ok"}"#;
    let revoke_touches = r#"jit_ssh_webauthn_ceremonies_total{ceremony="revocation",result="ok"}"#;
    let issuance_count = "jit_ssh_certificate_issuance_duration_seconds_count";
    for key in [
        issued,
        approved,
        denied,
        revocations,
        touches,
        revoke_touches,
    ] {
        assert!(
            samples(&before).contains_key(key),
            "{key} should exist at 0 before anything happens:\n{before}"
        );
    }
    assert_eq!(value(&before, "jit_ssh_krl_revoked_serials"), 0.0);

    // A login.
    let serial = login(&t, &mut alice, "alice").await;
    // A denial: root is not an account the dev rule allows.
    let (_, created) = t.request("alice", "db-1.dev", "root", "5m").await;
    let id = created["id"].as_str().unwrap();
    let (s, state, assertion) = t.touch(id, &mut alice).await;
    assert_eq!(
        (s, state["status"].as_str()),
        (StatusCode::OK, Some("denied"))
    );
    // A failed ceremony is counted with its code: the same assertion again.
    let (s, _) = t
        .post(&format!("/v1/requests/{id}/mfa/finish"), &assertion)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A revocation of the login's certificate, confirmed by security.
    let (s, created) = t
        .post(
            "/v1/revocations",
            &json!({"user": "sec", "target": {"serial": serial}, "reason": "incident 7"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let (s, state, _) = t
        .confirm("revocations", created["id"].as_str().unwrap(), &mut sec)
        .await;
    assert_eq!(
        (s, state["status"].as_str()),
        (StatusCode::OK, Some("revoked"))
    );

    let after = scrape(&t).await;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(moved(issued), 1.0, "{after}");
    assert_eq!(moved(issuance_count), 1.0, "{after}");
    assert_eq!(moved(approved), 1.0, "{after}");
    assert_eq!(moved(denied), 1.0, "{after}");
    assert_eq!(moved(revocations), 1.0, "{after}");
    assert_eq!(moved(touches), 2.0, "{after}");
    assert_eq!(moved(revoke_touches), 1.0, "{after}");
    assert_eq!(
        moved(
            r#"jit_ssh_webauthn_ceremonies_total{ceremony="access_request",result="mfa_failed"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("jit_ssh_access_requests_created_total"),
        2.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"jit_ssh_http_requests_total{route="/v1/requests",status="201"}"#),
        2.0,
        "{after}"
    );
    // The KRL now lists the revoked serial, and was signed just now.
    assert_eq!(value(&after, "jit_ssh_krl_revoked_serials"), 1.0, "{after}");
    assert!(value(&after, "jit_ssh_krl_version") > value(&before, "jit_ssh_krl_version"));
    assert!(
        value(&after, "jit_ssh_krl_signed_age_seconds") < 60.0,
        "{after}"
    );
    assert!(value(&after, "jit_ssh_krl_bytes") > value(&before, "jit_ssh_krl_bytes"));
    // Durable records were timed (one append per step: a touch is
    // committed with its decision and certificate), and their group
    // commits sized.
    assert!(
        moved("jit_ssh_audit_append_duration_seconds_count") >= 5.0,
        "{after}"
    );
    assert!(
        moved("jit_ssh_audit_commit_group_records_count") >= 1.0,
        "{after}"
    );
    // The on-call feed loaded at start and has an age.
    assert_eq!(
        value(&after, r#"jit_ssh_oncall_feed_loaded{schedule="web"}"#),
        1.0,
        "{after}"
    );
    assert!(samples(&after).contains_key(r#"jit_ssh_oncall_feed_age_seconds{schedule="web"}"#));
    // Every metric has help text, and no label names anyone or anything
    // a request carried.
    for needle in ["alice", "sec\"", "db-1.dev", "root", id, TOKEN] {
        assert!(
            !after.contains(needle),
            "the scrape contains {needle:?}:\n{after}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recordings_store_below_its_floor_shows_in_metrics_and_the_ca_stays_ready() {
    use jit_ssh_ca::recordings::space::{FsSpace, Probe};
    let t = TestCa::with_policy("", common::DEFAULT_FLOOR);
    t.ca.metrics.require_token(TOKEN);
    let disk = |free: u64| -> Probe {
        std::sync::Arc::new(move |_: &std::path::Path| {
            Ok(FsSpace {
                avail: free,
                total: 100 << 30,
                ..FsSpace::default()
            })
        })
    };
    t.ca.set_recordings_probe(disk(50 << 30));
    let text = scrape(&t).await;
    assert_eq!(
        value(&text, "jit_ssh_recordings_free_bytes"),
        (50u64 << 30) as f64
    );
    // The default floor: 5 % of 100 GiB beats 1 GiB.
    assert_eq!(
        value(&text, "jit_ssh_recordings_floor_bytes"),
        (5u64 << 30) as f64
    );
    assert_eq!(samples(&text)["jit_ssh_recordings_below_floor"], 0.0);
    t.ca.set_recordings_probe(disk(4 << 30));
    let text = scrape(&t).await;
    assert_eq!(value(&text, "jit_ssh_recordings_below_floor"), 1.0);
    assert_eq!(
        value(&text, "jit_ssh_recordings_free_bytes"),
        (4u64 << 30) as f64
    );
    // Uploads wait; issuance does not: /readyz stays ready.
    let (s, v) = readyz(&t).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Bytes to spare, inodes not: 5,000 free of a million, under the
    // default inode floor (10,000 or 5 %).
    t.ca.set_recordings_probe(std::sync::Arc::new(|_: &std::path::Path| {
        Ok(FsSpace {
            avail: 50 << 30,
            total: 100 << 30,
            files_avail: 5_000,
            files_total: 1_000_000,
        })
    }));
    let text = scrape(&t).await;
    assert_eq!(value(&text, "jit_ssh_recordings_below_floor"), 1.0);
    assert_eq!(value(&text, "jit_ssh_recordings_free_inodes"), 5_000.0);
    assert_eq!(value(&text, "jit_ssh_recordings_floor_inodes"), 50_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_on_the_main_listener_without_a_token() {
    let t = TestCa::new();
    let (s, text) = scrape_with(&t, Some("anything")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{text}");
    assert!(!text.contains("jit_ssh_"));
    // Their own listener serves them without one (it is the operator's
    // to keep on a management network), with liveness and readiness.
    let app = jit_ssh_ca::http::metrics_app(t.ca.clone());
    for (path, want) in [
        ("/metrics", "jit_ssh_certificates_issued_total"),
        ("/livez", "ok"),
        ("/readyz", "\"ready\":true"),
    ] {
        let res = tower::ServiceExt::oneshot(
            app.clone(),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(want), "{path}");
    }
    let res = tower::ServiceExt::oneshot(
        app,
        Request::get("/v1/ca-keys").body(Body::empty()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "the metrics listener serves nothing else"
    );
}

async fn readyz(t: &TestCa) -> (StatusCode, Value) {
    t.get("/readyz", None).await
}

fn certificates(t: &TestCa) -> usize {
    use jit_ssh_audit::AuditLog;
    t.audit
        .query(&jit_ssh_audit::AuditQuery {
            kinds: vec!["certificate_issued".into()],
            ..Default::default()
        })
        .unwrap()
        .len()
}

/// Runs as a user chmod can stop: as root (CI), this test runs itself
/// again as `nobody` and passes when that run passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_audit_directory() {
    const NAME: &str = "readyz_follows_the_audit_directory";
    if is_root() {
        return rerun_as_nobody(NAME);
    }
    let t = TestCa::new();
    let mut alice = t.enroll("alice").await;
    let (s, live) = t.get("/livez", None).await;
    assert_eq!(s, StatusCode::OK, "{live}");
    let (s, ready) = readyz(&t).await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    login(&t, &mut alice, "alice").await;
    let issued = certificates(&t);

    let audit_dir = t.dir.path().join("audit");
    set_mode(&audit_dir, 0o500);
    let (s, ready) = readyz(&t).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["failed"], json!(["audit_log"]), "{ready}");
    // Nothing is issued meanwhile: the request is refused at its first
    // record, and a request made before cannot finish either.
    let (s, created_before) = t.request("alice", "db-1.dev", "oncall", "10m").await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{created_before}");
    assert_eq!(certificates(&t), issued);
    let (_, healthz) = t.get("/healthz", None).await;
    assert_eq!(healthz, Value::Null, "healthz stays liveness");
    let (s, _) = t.get("/livez", None).await;
    assert_eq!(s, StatusCode::OK, "alive, just not ready");

    set_mode(&audit_dir, 0o700);
    let (s, ready) = readyz(&t).await;
    assert_eq!(s, StatusCode::OK, "{ready}");
    login(&t, &mut alice, "alice").await;
    assert_eq!(certificates(&t), issued + 1);
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// chmod does not stop root: run the test `name` again as nobody, from a
/// copy of this test binary nobody can reach (the checkout may sit under
/// a directory only root may enter, such as /root).
fn rerun_as_nobody(name: &str) {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let exe = dir.path().join("server_metrics");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    set_mode(&exe, 0o755);
    let out = std::process::Command::new(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the run as nobody failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the run as nobody ran no test:\n{text}"
    );
}

/// Scrapes until `key` reaches `want` (deliveries finish on their own
/// task), for up to 10 s.
async fn eventually(t: &TestCa, key: &str, want: f64) -> String {
    for _ in 0..100 {
        let text = scrape(t).await;
        if value(&text, key) == want {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = scrape(t).await;
    panic!("{key} never reached {want}:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_deliveries_and_failures_are_counted() {
    let backoff = jit_ssh_ca::notify::Backoff {
        first: std::time::Duration::from_millis(20),
        attempts: 3,
        timeout: std::time::Duration::from_secs(2),
    };
    // A webhook that fails twice, then takes it; and one nothing answers.
    let hook = common::Hook::start(2).await;
    for (t, delivered, failed, attempt_failures) in [
        (TestCa::with_webhook("", &hook.url), 1.0, 0.0, 2.0),
        (TestCa::new(), 0.0, 1.0, 3.0),
    ] {
        t.ca.metrics.require_token(TOKEN);
        t.ca.start_notifications(backoff);
        let mut alice = t.enroll("alice").await;
        // Waits for two approvers: a pending_approval notification.
        let (_, created) = t.request("alice", "db-1.prod", "postgres", "10m").await;
        let id = created["id"].as_str().unwrap();
        let (s, state, _) = t.touch(id, &mut alice).await;
        assert_eq!(
            (s, state["status"].as_str()),
            (StatusCode::OK, Some("pending_approval"))
        );
        let done = r#"jit_ssh_notifications_total{target_kind="webhook",result="delivered"}"#;
        let gave_up = r#"jit_ssh_notifications_total{target_kind="webhook",result="failed"}"#;
        let text = eventually(&t, if failed > 0.0 { gave_up } else { done }, 1.0).await;
        assert_eq!(value(&text, done), delivered, "{text}");
        assert_eq!(value(&text, gave_up), failed, "{text}");
        assert_eq!(
            value(
                &text,
                r#"jit_ssh_notification_attempt_failures_total{target_kind="webhook"}"#
            ),
            attempt_failures,
            "{text}"
        );
        let pending = r#"jit_ssh_policy_decisions_total{outcome="pending_approval",reason="none"}"#;
        assert_eq!(value(&text, pending), 1.0, "{text}");
    }
    hook.wait_for("pending_approval").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refusals_are_counted_by_route() {
    let t = TestCa::with_limits("requests_per_minute_per_address = 1");
    t.ca.metrics.require_token(TOKEN);
    // The first spends the address's budget (alice is not enrolled: 403).
    let (s, _) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    assert_ne!(s, StatusCode::TOO_MANY_REQUESTS);
    let (s, _) = t.request("alice", "db-1.dev", "oncall", "5m").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let text = scrape(&t).await;
    assert_eq!(
        value(&text, r#"jit_ssh_rate_limited_total{route="/v1/requests"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"jit_ssh_http_requests_total{route="/v1/requests",status="429"}"#
        ),
        1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_call_feed_failures_are_counted_and_the_last_good_copy_ages() {
    let t = TestCa::new();
    t.ca.metrics.require_token(TOKEN);
    let errors = r#"jit_ssh_oncall_feed_load_errors_total{schedule="web"}"#;
    let before = scrape(&t).await;
    assert_eq!(value(&before, errors), 0.0, "{before}");
    // The feed file goes away: the re-read fails, the good copy stays.
    std::fs::remove_file(t.dir.path().join("oncall.ics")).unwrap();
    assert_eq!(t.ca.schedules.load_files().len(), 1);
    std::fs::write(t.dir.path().join("oncall.ics"), "not a calendar").unwrap();
    assert_eq!(t.ca.schedules.load_files().len(), 1);
    let after = scrape(&t).await;
    assert_eq!(value(&after, errors), 2.0, "{after}");
    assert_eq!(
        value(&after, r#"jit_ssh_oncall_feed_loaded{schedule="web"}"#),
        1.0
    );
    assert!(samples(&after).contains_key(r#"jit_ssh_oncall_feed_age_seconds{schedule="web"}"#));
}

/// `/readyz` asks for no credentials and each check signs with the CA
/// key and probes the audit directory: 32 callers at once cost a few
/// runs (those queued share the run after them), not 32 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_readyz_runs_the_checks_one_at_a_time() {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let t = std::sync::Arc::new(TestCa::build("", move |inner| {
        // A readiness check that takes 200 ms (a slow disk, a busy HSM).
        let slow: std::sync::Arc<dyn jit_ssh_audit::AuditLog> =
            std::sync::Arc::new(common::AppendHook {
                inner,
                before: |_: &jit_ssh_audit::Event| Ok(()),
                on_ready: Some(Box::new(move || {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(200));
                })),
            });
        slow
    }));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let t = t.clone();
        callers.spawn(async move { readyz(&t).await });
    }
    while let Some(done) = callers.join_next().await {
        let (s, ready) = done.unwrap();
        assert_eq!(s, StatusCode::OK, "{ready}");
        assert_eq!(ready["ready"], true, "{ready}");
    }
    let n = runs.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n <= 4, "32 concurrent /readyz ran the checks {n} times");
    // One after another, each caller still gets a fresh run.
    readyz(&t).await;
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), n + 1);
}
