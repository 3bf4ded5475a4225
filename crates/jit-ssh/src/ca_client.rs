//! Talking to the CA over HTTP(S), mapping failures to what an engineer
//! can act on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jit_ssh_proto::api::{
    AuditPage, AuditParams, CreateDecision, CreateRequest, CreateRevocation, CreateSession,
    DecisionState, PendingRequests, RequestCreated, RequestState, RevocationState, SessionState,
};
use jit_ssh_proto::error::{code, ErrorBody};
use jit_ssh_proto::routes;
use serde::de::DeserializeOwned;

use jit_ssh_host::fetch::Unread;

use crate::error::ClientError;
use crate::settings::Settings;

/// The most a JSON answer from the CA may hold. The largest real ones (a
/// page of 1,000 audit records, the host inventory) are a few MB.
const MAX_ANSWER: usize = 64 << 20;

/// How long an audit export's answer may take to start.
const EXPORT_START: Duration = Duration::from_secs(30);

/// How long an audit export's stream may send nothing before the client
/// gives up on it (a stalled or vanished CA must not hold the command).
pub const EXPORT_IDLE: Duration = Duration::from_secs(60);

/// The most a recording's download may hold: its bundle comes whole, in
/// base64 (about 190 MB for a session that printed 1 GiB of text,
/// docs/sessions.md), and is played from memory.
const MAX_RECORDING_ANSWER: usize = 4 << 30;

pub struct CaClient {
    http: reqwest::Client,
    /// The CA's replicas (one or more), in order of preference.
    bases: Vec<reqwest::Url>,
    /// The replica that answered last: later requests start there, so a
    /// login that moved on stays on the replica that works.
    current: AtomicUsize,
}

impl CaClient {
    pub fn new(settings: &Settings) -> Result<Self, ClientError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // The CA never redirects: following one could downgrade to
            // http or carry the request secret to another origin.
            .redirect(reqwest::redirect::Policy::none())
            // The CA closes a kept-alive connection that waits longer than
            // its header timeout (default 10 s) for the next request; reuse
            // only connections well inside that, so a request never races
            // the close.
            .pool_idle_timeout(Duration::from_secs(5))
            .user_agent(concat!("jit-ssh/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Usage(format!("ca_cert {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ClientError::Usage(format!("ca_cert {}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| ClientError::Other(e.into()))?;
        Ok(Self {
            http,
            bases: settings.ca_urls.clone(),
            current: AtomicUsize::new(0),
        })
    }

    /// Sends what `make` builds for a replica's base URL (no trailing
    /// `/`), starting with the replica that answered last. No connection,
    /// a timeout or a 5xx moves on to the next, each replica once; a
    /// request id and secret stay valid on every replica (they share one
    /// state), so a login in flight carries on. The last replica's 5xx is
    /// returned as its answer.
    async fn send(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let n = self.bases.len().max(1);
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            let Some(base) = self.bases.get(i) else { break };
            let base = base.as_str().trim_end_matches('/');
            let why = match make(base).send().await {
                // The only replica's 5xx is its answer, said in its words.
                Ok(res) if res.status().is_server_error() && n > 1 => {
                    format!("answered {}", res.status())
                }
                Ok(res) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(res);
                }
                Err(e) => innermost(&e),
            };
            if k + 1 < n {
                eprintln!(
                    "jit-ssh: the CA at {base} could not serve this ({why}); trying the next"
                );
            }
            failures.push(format!("{base}: {why}"));
        }
        Err(match failures.as_slice() {
            [one] => ClientError::CaUnreachable {
                url: self
                    .bases
                    .first()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                detail: one
                    .split_once(": ")
                    .map_or(one.clone(), |(_, d)| d.to_owned()),
            },
            _ => ClientError::CaUnreachable {
                url: self.all_urls(),
                detail: format!("no replica answered ({})", failures.join("; ")),
            },
        })
    }

    fn all_urls(&self) -> String {
        jit_ssh_host::failover::list(&self.bases)
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let i = self.current.load(Ordering::Relaxed);
        ClientError::CaUnreachable {
            url: self.bases.get(i).map(|u| u.to_string()).unwrap_or_default(),
            detail: innermost(e),
        }
    }

    /// The answer's body, refused past `cap` (whoever answers for the CA
    /// URL must not fill this machine's memory with an endless body).
    async fn capped(&self, res: reqwest::Response, cap: usize) -> Result<Vec<u8>, ClientError> {
        jit_ssh_host::fetch::body_within(res, cap as u64)
            .await
            .map_err(|e| match e {
                Unread::OverCap => ClientError::Other(anyhow::anyhow!(
                    "the CA's answer is larger than {} MiB: refused (not a jit-ssh CA, or something between)",
                    cap >> 20
                )),
                Unread::Broken(e) => self.unreachable(&e),
            })
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        res: Result<reqwest::Response, ClientError>,
    ) -> Result<T, ClientError> {
        self.answer_within(res, MAX_ANSWER).await
    }

    /// [`Self::answer`] for an answer of up to `cap` bytes.
    async fn answer_within<T: DeserializeOwned>(
        &self,
        res: Result<reqwest::Response, ClientError>,
        cap: usize,
    ) -> Result<T, ClientError> {
        let res = res?;
        let status = res.status();
        let bytes = self.capped(res, cap).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ClientError::Other(anyhow::anyhow!(
                    "unexpected answer from the CA ({status}): {e}"
                ))
            });
        }
        let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(&bytes) else {
            return Err(ClientError::Ca {
                code: status.as_u16().to_string(),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
        };
        Err(match error.code.as_str() {
            code::NOT_ENROLLED => ClientError::NotEnrolled(error.message),
            // Its database is down: nothing changed, like no answer at all.
            code::UNAVAILABLE => ClientError::CaUnreachable {
                url: self.all_urls(),
                detail: error.message,
            },
            // Policy or role said no: the CA's reason is the message.
            code::FORBIDDEN => ClientError::Denied(error.message),
            // The CA refused a value we sent (a TTL over the cap, a name):
            // the user's input to fix, like any usage error.
            code::INVALID_FIELD | code::INVALID_PUBLIC_KEY => ClientError::Usage(error.message),
            _ => ClientError::Ca {
                code: error.code,
                message: error.message,
            },
        })
    }

    pub async fn create(&self, body: &CreateRequest) -> Result<RequestCreated, ClientError> {
        self.post_json(routes::REQUESTS, body).await
    }

    /// Long-polls the request for up to `wait`.
    pub async fn state(
        &self,
        id: &str,
        secret: &str,
        wait: Duration,
    ) -> Result<RequestState, ClientError> {
        let path = format!(
            "{}?wait={}",
            routes::fill(routes::REQUEST, "id", id),
            wait.as_secs()
        );
        let res = self
            .send(|base| {
                self.http
                    .get(format!("{base}{path}"))
                    .bearer_auth(secret)
                    .timeout(wait + Duration::from_secs(15))
            })
            .await;
        self.answer(res).await
    }

    pub async fn create_revocation(
        &self,
        body: &CreateRevocation,
    ) -> Result<RequestCreated, ClientError> {
        self.post_json(routes::REVOCATIONS, body).await
    }

    pub async fn revocation(&self, id: &str, secret: &str) -> Result<RevocationState, ClientError> {
        self.get_with(&routes::fill(routes::REVOCATION, "id", id), secret)
            .await
    }

    /// `POST path` with a JSON body.
    async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let res = self
            .send(|base| {
                self.http
                    .post(format!("{base}{path}"))
                    .json(body)
                    // An answerer that stalls must not hold the command
                    // for ever (the next replica is tried).
                    .timeout(Duration::from_secs(30))
            })
            .await;
        self.answer(res).await
    }

    /// `GET path` with a bearer secret or session token.
    async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        bearer: &str,
    ) -> Result<T, ClientError> {
        let res = self
            .send(|base| {
                self.http
                    .get(format!("{base}{path}"))
                    .bearer_auth(bearer)
                    .timeout(Duration::from_secs(30))
            })
            .await;
        self.answer(res).await
    }

    pub async fn pending(&self, token: &str) -> Result<PendingRequests, ClientError> {
        self.get_with(routes::REQUESTS, token).await
    }

    pub async fn create_decision(
        &self,
        request: &str,
        body: &CreateDecision,
    ) -> Result<RequestCreated, ClientError> {
        self.post_json(&routes::fill(routes::DECISIONS, "id", request), body)
            .await
    }

    pub async fn decision(&self, id: &str, secret: &str) -> Result<DecisionState, ClientError> {
        self.get_with(&routes::fill(routes::DECISION, "id", id), secret)
            .await
    }

    pub async fn create_session(
        &self,
        body: &CreateSession,
    ) -> Result<RequestCreated, ClientError> {
        self.post_json(routes::SESSIONS, body).await
    }

    pub async fn session(&self, id: &str, secret: &str) -> Result<SessionState, ClientError> {
        self.get_with(&routes::fill(routes::SESSION, "id", id), secret)
            .await
    }

    pub async fn audit_page(
        &self,
        token: &str,
        params: &AuditParams,
    ) -> Result<AuditPage, ClientError> {
        let query =
            serde_urlencoded::to_string(params).map_err(|e| ClientError::Other(e.into()))?;
        self.get_with(&format!("{}?{query}", routes::AUDIT), token)
            .await
    }

    pub async fn recordings(
        &self,
        token: &str,
        params: &jit_ssh_proto::recordings::RecordingParams,
    ) -> Result<jit_ssh_proto::recordings::RecordingList, ClientError> {
        let query =
            serde_urlencoded::to_string(params).map_err(|e| ClientError::Other(e.into()))?;
        self.get_with(&format!("{}?{query}", routes::RECORDINGS), token)
            .await
    }

    pub async fn recording(
        &self,
        token: &str,
        session: &str,
    ) -> Result<jit_ssh_proto::recordings::RecordingDownload, ClientError> {
        if jit_ssh_recording::SessionId::try_from(session).is_err() {
            return Err(ClientError::Usage(format!(
                "{session:?} is not a session id (see jit-ssh audit sessions)"
            )));
        }
        let path = routes::fill(routes::RECORDING, "session", session);
        let res = self
            .send(|base| {
                self.http
                    .get(format!("{base}{path}"))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(30))
            })
            .await;
        self.answer_within(res, MAX_RECORDING_ANSWER).await
    }

    pub async fn reach(
        &self,
        token: &str,
        params: &jit_ssh_proto::reach::ReachParams,
    ) -> Result<jit_ssh_proto::reach::ReachList, ClientError> {
        let query =
            serde_urlencoded::to_string(params).map_err(|e| ClientError::Other(e.into()))?;
        self.get_with(&format!("{}?{query}", routes::REACH), token)
            .await
    }

    /// Starts the export stream; the caller reads the body (see
    /// [`EXPORT_IDLE`]). The stream can take hours, so it has no overall
    /// limit; its answer must start within [`EXPORT_START`].
    pub async fn audit_export(
        &self,
        token: &str,
        since: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let started = tokio::time::timeout(
            EXPORT_START,
            self.send(|base| {
                let req = self
                    .http
                    .get(format!("{base}{}", routes::AUDIT_EXPORT))
                    .bearer_auth(token);
                match since {
                    Some(since) => req.query(&[("since", since)]),
                    None => req,
                }
            }),
        )
        .await;
        let res = started.map_err(|_| ClientError::CaUnreachable {
            url: self.all_urls(),
            detail: format!(
                "the export did not start within {} s",
                EXPORT_START.as_secs()
            ),
        })??;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(self
            .answer::<serde_json::Value>(Ok(res))
            .await
            .err()
            .unwrap_or(ClientError::Ca {
                code: "unexpected".into(),
                message: "the export failed".into(),
            }))
    }

    /// Ends sign-in `id` at the CA; `token` is its `ID.SECRET`.
    pub async fn end_session(&self, id: &str, token: &str) -> Result<SessionState, ClientError> {
        let path = routes::fill(routes::SESSION, "id", id);
        let res = self
            .send(|base| {
                self.http
                    .delete(format!("{base}{path}"))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(10))
            })
            .await;
        self.answer(res).await
    }

    pub async fn cancel(&self, id: &str, secret: &str) -> Result<RequestState, ClientError> {
        let path = routes::fill(routes::REQUEST, "id", id);
        let res = self
            .send(|base| {
                self.http
                    .delete(format!("{base}{path}"))
                    .bearer_auth(secret)
                    .timeout(Duration::from_secs(10))
            })
            .await;
        self.answer(res).await
    }
}

/// The innermost cause of a failed request says what happened (refused,
/// TLS, DNS, a timeout).
fn innermost(e: &reqwest::Error) -> String {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    detail
}
