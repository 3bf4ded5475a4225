//! Real `jit-ssh-ca serve` replicas on one PostgreSQL database, and
//! engineers issuing certificates over HTTP against them (soft passkeys,
//! moving to the other replica when one cannot be reached or answers
//! 5xx, as `jit-ssh` does). Shared by tests/replicas_failover.rs and the
//! `replicas` bench (which includes this file by path).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// Every replica's `public_url`: the load balancer's name, which WebAuthn
/// binds ceremonies to whichever replica serves them.
pub const ORIGIN: &str = "http://localhost:8722";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

/// One `serve` process; killed (SIGKILL) when dropped.
pub struct Replica {
    child: Option<Child>,
    pub base: String,
    pub config: PathBuf,
}

impl Replica {
    /// Starts `serve --config` and waits for its `bound to` line.
    pub fn start(config: &Path) -> Replica {
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut replica = Replica {
            child: Some(child),
            base: String::new(),
            config: config.to_owned(),
        };
        let bound = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("serve printed no `bound to` line");
            if let Some(addr) = line.strip_prefix("bound to ") {
                break addr.trim().to_owned();
            }
        };
        replica.base = format!("http://{bound}");
        replica
    }

    /// The `serve` process's pid (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `kill -9`: no shutdown, no flush; what a crashed machine does.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `jit-ssh-ca init` into `dir/ca` (the key every replica shares).
pub fn init_ca(dir: &Path) {
    let out = Command::new(binary())
        .args(["init", "--dir"])
        .arg(dir.join("ca"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A replica's config: its own data directory, the shared key and
/// database. `users` engineers `u0…` in group sre, one auditor `aud`.
pub fn write_config(dir: &Path, name: &str, storage_url: &str, users: usize) -> PathBuf {
    let storage = format!(
        r#"[storage]
kind = "postgres"
url = "{storage_url}"
sslmode = "disable"
pool_size = 8
connect_timeout = "2s"
"#
    );
    write_config_with(dir, name, &storage, users)
}

/// The same with `storage` as the `[storage]` section ("" = embedded).
pub fn write_config_with(dir: &Path, name: &str, storage: &str, users: usize) -> PathBuf {
    let users: String = (0..users)
        .map(|i| format!("[[users]]\nname = \"u{i}\"\ngroups = [\"sre\"]\n\n"))
        .collect();
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_url = "{ORIGIN}"
data_dir = "{dir}/{name}-data"
ca_key = {{ kind = "file", path = "{dir}/ca/ca_key" }}

{storage}
[limits]
requests_per_minute_per_user = 1000000
requests_per_minute_per_address = 1000000

{users}[[users]]
name = "aud"
roles = ["auditor"]

[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall"]

[[rules]]
groups = ["sre"]
host_groups = ["dev"]
max_ttl = "15m"
"#,
        dir = dir.display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// An HTTP client that moves between replicas like `jit-ssh` does.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    bases: Vec<String>,
}

/// Why a step gave up.
#[derive(Debug)]
pub enum StepError {
    /// A 4xx: the CA's answer, not retried.
    Refused(u16, Value),
    /// No replica answered within the step's deadline.
    Unavailable(String),
}

impl Client {
    pub fn new(bases: Vec<String>) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            bases,
        }
    }

    /// Sends one step, starting with replica `*at`; on no connection, a
    /// timeout or a 5xx moves to the next (and remembers it), retrying for
    /// up to `patience` (a database restart takes a few seconds).
    pub async fn step(
        &self,
        at: &mut usize,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<&Value>,
        patience: Duration,
    ) -> Result<Value, StepError> {
        let deadline = Instant::now() + patience;
        let mut last;
        loop {
            let base = &self.bases[*at % self.bases.len()];
            let mut req = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            match req.send().await {
                Ok(res) if res.status().is_server_error() => {
                    last = format!("{base}: {}", res.status());
                }
                Ok(res) => {
                    let status = res.status().as_u16();
                    let v: Value = res.json().await.unwrap_or(Value::Null);
                    if status >= 400 {
                        return Err(StepError::Refused(status, v));
                    }
                    return Ok(v);
                }
                Err(e) => last = format!("{base}: {e}"),
            }
            *at += 1;
            if Instant::now() >= deadline {
                return Err(StepError::Unavailable(last));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, at: &mut usize, path: &str, body: Value) -> Result<Value, StepError> {
        self.step(
            at,
            reqwest::Method::POST,
            path,
            None,
            Some(&body),
            Duration::from_secs(60),
        )
        .await
    }

    /// Invites `user` through replica 0's admin socket and enrolls a soft
    /// passkey for them over HTTP.
    pub async fn enroll(&self, config: &Path, user: &str) -> SoftPasskey {
        let out = Command::new(binary())
            .args(["invite", user, "--config"])
            .arg(config)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let link = said
            .lines()
            .find_map(|l| l.strip_prefix(&format!("enroll {user}: ")))
            .unwrap_or_else(|| panic!("no link in {said:?}"));
        let token = link.rsplit('/').next().unwrap().to_owned();
        let mut at = 0;
        let opts: CreationChallengeResponse = serde_json::from_value(
            self.post(&mut at, &format!("/v1/enroll/{token}/start"), json!({}))
                .await
                .unwrap(),
        )
        .unwrap();
        let mut key = SoftPasskey::new(true);
        let reg = key.do_registration(origin(), opts).unwrap();
        self.post(
            &mut at,
            &format!("/v1/enroll/{token}/finish"),
            serde_json::to_value(&reg).unwrap(),
        )
        .await
        .unwrap();
        key
    }

    /// One whole login for `user`, starting on replica `*at`: create,
    /// touch (start and finish may land on different replicas), read the
    /// certificate. Returns the issued certificate's serial.
    pub async fn issue(
        &self,
        at: &mut usize,
        user: &str,
        key: &mut SoftPasskey,
        public_key: &str,
    ) -> Result<u64, StepError> {
        let created = self
            .post(
                at,
                "/v1/requests",
                json!({"user": user, "host": "db-1.dev", "account": "oncall", "ttl": "10m",
                       "reason": "replica test", "public_key": public_key}),
            )
            .await?;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["secret"].as_str().unwrap().to_owned();
        let challenge: RequestChallengeResponse = serde_json::from_value(
            self.post(at, &format!("/v1/requests/{id}/mfa/start"), json!({}))
                .await?,
        )
        .unwrap();
        let assertion = key.do_authentication(origin(), challenge).unwrap();
        let finished = self
            .post(
                at,
                &format!("/v1/requests/{id}/mfa/finish"),
                serde_json::to_value(&assertion).unwrap(),
            )
            .await;
        // A finish whose answer was lost (its replica died after issuing)
        // is not retried: the ceremony is single-use. The request's state,
        // read from any replica, says whether it issued.
        if let Err(StepError::Refused(..)) | Ok(_) = &finished {
        } else {
            finished?;
        }
        let state = self
            .step(
                at,
                reqwest::Method::GET,
                &format!("/v1/requests/{id}"),
                Some(&secret),
                None,
                Duration::from_secs(60),
            )
            .await?;
        if state["status"] != "issued" {
            return Err(StepError::Refused(200, state));
        }
        Ok(serial_of(&state))
    }

    /// Signs the auditor in (one touch) and reads the whole audit export.
    pub async fn export_audit(&self, key: &mut SoftPasskey) -> String {
        let mut at = 0;
        let created = self
            .post(&mut at, "/v1/sessions", json!({"user": "aud"}))
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap();
        let challenge: RequestChallengeResponse = serde_json::from_value(
            self.post(&mut at, &format!("/v1/sessions/{id}/mfa/start"), json!({}))
                .await
                .unwrap(),
        )
        .unwrap();
        let assertion = key.do_authentication(origin(), challenge).unwrap();
        self.post(
            &mut at,
            &format!("/v1/sessions/{id}/mfa/finish"),
            serde_json::to_value(&assertion).unwrap(),
        )
        .await
        .unwrap();
        let token = format!("{id}.{}", created["secret"].as_str().unwrap());
        let base = &self.bases[at % self.bases.len()];
        let res = self
            .http
            .get(format!("{base}/v1/audit/export"))
            .bearer_auth(token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        res.text().await.unwrap()
    }
}

/// The serial of the certificate in a request's state.
pub fn serial_of(state: &Value) -> u64 {
    let cert = &state["certificate"];
    let serial = cert["serial"]
        .as_str()
        .map(|s| s.parse::<u64>().unwrap())
        .or_else(|| cert["serial"].as_u64())
        .unwrap_or_else(|| panic!("no serial in {state}"));
    serial
}

pub fn ssh_public_key() -> String {
    ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
        .unwrap()
        .public_key()
        .to_openssh()
        .unwrap()
}
