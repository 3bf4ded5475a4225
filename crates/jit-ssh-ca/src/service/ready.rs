//! Readiness (`/readyz`): whether this CA can issue right now. Each check
//! is what issuance needs, tried without changing anything: the CA key
//! signs a probe (and the signer verifies its own signature), the audit
//! log says it would take an append (its own state and a probe of its
//! directory; no record is written), and the state store answers a read.

use std::time::Instant;

use serde::Serialize;

use super::Ca;

/// SSHSIG namespace of the readiness probe signature (never published).
pub const READY_NAMESPACE: &str = "jit-ssh-ready@jit-ssh";

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// Names of the checks that failed, e.g. `["audit_log"]`.
    pub failed: Vec<&'static str>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Why it failed, in general terms (details go to the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub micros: u64,
}

fn check(name: &'static str, f: impl FnOnce() -> Result<(), String>) -> Check {
    let start = Instant::now();
    let outcome = f();
    Check {
        name,
        ok: outcome.is_ok(),
        error: outcome.err(),
        micros: u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
    }
}

/// The last readiness run and when it started.
#[derive(Default)]
pub(crate) struct ReadyRuns(std::sync::Mutex<Option<(Instant, Readiness)>>);

impl Ca {
    /// Readiness as of a run that started after this call did (blocking:
    /// signing, a directory probe, a store read). One run at a time:
    /// `/readyz` asks for no credentials, and each run spends the CA
    /// key's signer (an HSM's time, which issuance needs) and touches the
    /// audit directory. Callers that queued while a run went on share the
    /// next one: a flood costs one run at a time, and no answer is older
    /// than its question.
    pub fn readiness(&self) -> Readiness {
        let asked = Instant::now();
        let mut last = self
            .ready_runs
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((started, r)) = last.as_ref() {
            if *started >= asked {
                return r.clone();
            }
        }
        let started = Instant::now();
        let r = self.run_readiness_checks();
        *last = Some((started, r.clone()));
        r
    }

    fn run_readiness_checks(&self) -> Readiness {
        // The keys that sign now: after `rotate activate`, the next ones.
        let mut checks = vec![check("ca_key", || {
            self.signer()
                .sign_detached(READY_NAMESPACE, b"readiness probe")
                .map(drop)
                .map_err(|e| {
                    tracing::error!(error = %e, source = ?std::error::Error::source(&e), "readiness: signing a probe failed");
                    "the CA key did not sign a probe".to_owned()
                })
        })];
        if let Some(host) = self.host_keys.as_ref().map(super::KeyRing::active) {
            checks.push(check("host_ca_key", || {
                host.sign_detached(READY_NAMESPACE, b"readiness probe")
                    .map(drop)
                    .map_err(|e| {
                        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "readiness: the host CA key failed to sign a probe");
                        "the host CA key did not sign a probe".to_owned()
                    })
            }));
        }
        checks.push(check("audit_log", || {
            self.audit.ready().map_err(|e| {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "readiness: the audit log would refuse appends");
                e.to_string()
            })
        }));
        checks.push(check("store", || {
            self.store.krl_version().map(drop).map_err(|e| {
                tracing::error!(error = %e, "readiness: the state store did not answer");
                "the state store did not answer a read".to_owned()
            })
        }));
        let failed: Vec<&'static str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        Readiness {
            ready: failed.is_empty(),
            failed,
            checks,
        }
    }
}
