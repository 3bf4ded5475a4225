//! The local admin socket: `DATA/admin.sock`, mode 0600 inside the 0700
//! data directory, so only the CA's own Unix user reaches it. sled lets
//! one process open the state, so admin commands (`jit-ssh-ca invite`) go
//! through the running server. One JSON line in, one JSON line out.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use jit_ssh_audit::Actor;

use crate::policy::Role;
use crate::service::{Ca, KeyRole, RotationStatus};

/// Longest request line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    Invite {
        user: String,
        roles: Vec<String>,
    },
    /// Lift the block a user revocation put on `user`.
    EnableUser {
        user: String,
    },
    /// An enrollment token for hosts of `group`.
    HostToken {
        group: String,
        name_pattern: Option<String>,
        /// Seconds; the config's `[hosts] token_ttl` when absent.
        ttl_secs: Option<u64>,
        uses: u32,
    },
    /// The inventory of enrolled hosts.
    Hosts,
    /// Forget a host and revoke its host key.
    HostRemove {
        name: String,
    },
    /// The readiness checks (what `/readyz` answers).
    Ready,
    /// A CA key rotation step (`jit-ssh-ca rotate …`).
    Rotate {
        step: RotateStep,
        key: KeyRole,
        /// `stage` only: import this private key file instead of making one.
        #[serde(default)]
        key_file: Option<PathBuf>,
    },
    /// A backup into directory `to` (absolute; new or empty), while serving.
    Backup {
        to: PathBuf,
        /// Copy the CA's private key files too.
        #[serde(default)]
        include_key: bool,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RotateStep {
    Status,
    Stage,
    Activate,
    Retire,
    /// Retire without waiting for the previous key's certificates to
    /// expire (a compromised key).
    RetireNow,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminResponse {
    Invited {
        user: String,
        url: String,
        expires_at: String,
    },
    Enabled {
        user: String,
        was_blocked: bool,
    },
    HostToken {
        token: String,
        expires_at: String,
        uses: u32,
    },
    Hosts {
        hosts: jit_ssh_proto::hosts::HostList,
    },
    HostRemoved {
        name: String,
        host_key_fingerprint: String,
    },
    Rotation {
        status: RotationStatus,
    },
    Ready {
        ready: bool,
        /// Each failed check: name and why.
        failed: Vec<(String, String)>,
    },
    BackedUp {
        report: crate::backup::BackupReport,
    },
    Error {
        message: String,
    },
}

/// Runs `f` on the blocking pool; an error becomes the answer's message.
async fn blocking<T: Send + 'static>(
    ca: Arc<Ca>,
    f: impl FnOnce(&Ca) -> Result<T, crate::service::ServiceError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(move || f(&ca)).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

pub struct AdminSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

pub async fn start(ca: Arc<Ca>) -> anyhow::Result<AdminSocket> {
    let path = ca.config.data_dir.join(super::ADMIN_SOCKET);
    if path.exists() {
        // A live server would answer; a stale socket from a crash would not.
        anyhow::ensure!(
            UnixStream::connect(&path).await.is_err(),
            "another jit-ssh-ca is serving this data directory ({} answers)",
            path.display()
        );
        std::fs::remove_file(&path)
            .with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let ca = ca.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(ca, stream).await {
                    tracing::warn!(error = %e, "admin socket client failed");
                }
            });
        }
    });
    Ok(AdminSocket { path, task })
}

async fn handle(ca: Arc<Ca>, stream: UnixStream) -> anyhow::Result<()> {
    let peer = stream
        .peer_cred()
        .map(|c| format!("uid {}", c.uid()))
        .unwrap_or_else(|_| "unknown".into());
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(MAX_LINE as u64))
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<AdminRequest>(&line) {
        Err(e) => AdminResponse::Error {
            message: format!("bad admin request: {e}"),
        },
        Ok(AdminRequest::EnableUser { user }) => {
            let actor = Actor::Operator {
                login: format!("admin socket ({peer})"),
            };
            let name = user.clone();
            match tokio::task::spawn_blocking(move || ca.enable_user(&name, actor)).await {
                Ok(Ok(was_blocked)) => AdminResponse::Enabled { user, was_blocked },
                Ok(Err(e)) => AdminResponse::Error {
                    message: e.to_string(),
                },
                Err(e) => AdminResponse::Error {
                    message: e.to_string(),
                },
            }
        }
        Ok(AdminRequest::HostToken {
            group,
            name_pattern,
            ttl_secs,
            uses,
        }) => {
            let actor = Actor::Operator {
                login: format!("admin socket ({peer})"),
            };
            let ttl = ttl_secs.map(std::time::Duration::from_secs);
            match blocking(ca, move |ca| {
                ca.create_host_token(&group, name_pattern.as_deref(), ttl, uses, actor)
            })
            .await
            {
                Ok(t) => AdminResponse::HostToken {
                    token: t.token.to_string(),
                    expires_at: crate::service::rfc3339_of(t.expires_at),
                    uses: t.uses,
                },
                Err(message) => AdminResponse::Error { message },
            }
        }
        Ok(AdminRequest::HostRemove { name }) => {
            let actor = Actor::Operator {
                login: format!("admin socket ({peer})"),
            };
            match blocking(ca, move |ca| ca.remove_host(&name, actor)).await {
                Ok(h) => AdminResponse::HostRemoved {
                    name: h.name,
                    host_key_fingerprint: h.host_key_fingerprint,
                },
                Err(message) => AdminResponse::Error { message },
            }
        }
        Ok(AdminRequest::Rotate {
            step,
            key,
            key_file,
        }) => {
            let actor = Actor::Operator {
                login: format!("admin socket ({peer})"),
            };
            let done = blocking(ca, move |ca| match step {
                RotateStep::Status => ca.rotation_status(key),
                RotateStep::Stage => ca.rotate_stage(key, key_file.as_deref(), actor),
                RotateStep::Activate => ca.rotate_activate(key, actor),
                RotateStep::Retire => ca.rotate_retire(key, false, actor),
                RotateStep::RetireNow => ca.rotate_retire(key, true, actor),
            })
            .await;
            match done {
                Ok(status) => AdminResponse::Rotation { status },
                Err(message) => AdminResponse::Error { message },
            }
        }
        Ok(AdminRequest::Backup { to, include_key }) => {
            let actor = Actor::Operator {
                login: format!("admin socket ({peer})"),
            };
            let done =
                tokio::task::spawn_blocking(move || ca.backup(&to, include_key, actor)).await;
            match done {
                Ok(Ok(report)) => AdminResponse::BackedUp { report },
                Ok(Err(e)) => AdminResponse::Error {
                    message: format!("{:#}", anyhow::Error::from(e)),
                },
                Err(e) => AdminResponse::Error {
                    message: e.to_string(),
                },
            }
        }
        Ok(AdminRequest::Ready) => match blocking(ca, |ca| Ok(ca.readiness())).await {
            Ok(r) => AdminResponse::Ready {
                ready: r.ready,
                failed: r
                    .checks
                    .into_iter()
                    .filter(|c| !c.ok)
                    .map(|c| (c.name.to_owned(), c.error.unwrap_or_default()))
                    .collect(),
            },
            Err(message) => AdminResponse::Error { message },
        },
        Ok(AdminRequest::Hosts) => match blocking(ca, |ca| ca.hosts()).await {
            Ok(hosts) => AdminResponse::Hosts { hosts },
            Err(message) => AdminResponse::Error { message },
        },
        Ok(AdminRequest::Invite { user, roles }) => {
            let roles: Result<Vec<Role>, String> = roles.iter().map(|r| Role::parse(r)).collect();
            match roles {
                Err(message) => AdminResponse::Error { message },
                Ok(roles) => {
                    let actor = Actor::Operator {
                        login: format!("admin socket ({peer})"),
                    };
                    match tokio::task::spawn_blocking(move || ca.invite(&user, &roles, actor)).await
                    {
                        Ok(Ok(link)) => AdminResponse::Invited {
                            user: link.user,
                            url: link.url,
                            expires_at: link.expires_at,
                        },
                        Ok(Err(e)) => AdminResponse::Error {
                            message: e.to_string(),
                        },
                        Err(e) => AdminResponse::Error {
                            message: e.to_string(),
                        },
                    }
                }
            }
        }
    };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// Client side, for `jit-ssh-ca invite`.
pub async fn request(
    socket: &std::path::Path,
    req: &AdminRequest,
) -> anyhow::Result<AdminResponse> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "connecting to {} (is `jit-ssh-ca serve` running on this data directory?)",
            socket.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(req)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut line = String::new();
    BufReader::new(read.take(64 * 1024))
        .read_line(&mut line)
        .await?;
    serde_json::from_str(&line).context("reading the server's answer")
}
