//! `serve --dev`: a CA that works out of the box on a developer's machine.
//! A CA key, a data directory and a sample policy (`ca.toml`) under a dev
//! folder, made once and reused; `http://localhost:PORT` (WebAuthn's rp id
//! `localhost`). The policy is an ordinary config file, so trying things
//! out is editing it and restarting: users to invite, rules to change.
//!
//! The sample lets the dev user (and `alice`) reach `*.dev` hosts as
//! `oncall` or as themselves for up to an hour with no approval, and
//! `*.stage` hosts only with one approval from `carol`; `sam` may revoke and
//! read the audit log. That is enough to try a login, an approval and a
//! revocation in five minutes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use url::Url;

use super::{Config, ConfigErrors};
use crate::names::UserName;

/// The policy file inside the dev folder.
pub const DEV_CONFIG: &str = "ca.toml";

#[derive(Debug, thiserror::Error)]
pub enum DevConfigError {
    #[error("writing the sample policy {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    #[error("{user} is not a user in {path}: add a [[users]] entry for them, or pick one with --dev-user")]
    UnknownUser { user: String, path: PathBuf },
    #[error("the public URL for port {0}")]
    Url(u16, #[source] url::ParseError),
}

/// The login name of whoever runs `serve --dev`, when it is a valid
/// account name: the sample lets the dev users log in to a local sshd as it
/// (the README's try-out).
fn login_account() -> Option<String> {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(passwd_name)?;
    crate::names::AccountName::parse(&name).ok()?;
    (name != "oncall").then_some(name)
}

/// This process's user name from /etc/passwd (USER is unset under some
/// service managers and `su`).
fn passwd_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find(|l| l.split(':').nth(2) == Some(uid.as_str()))
        .and_then(|l| l.split(':').next())
        .map(str::to_owned)
}

/// The sample policy for a dev folder at `dev_dir` (absolute), whose
/// first user is `user`.
fn sample(dev_dir: &Path, user: &UserName) -> String {
    let local = login_account()
        .map(|a| format!(", \"{a}\""))
        .unwrap_or_default();
    format!(
        r#"# The policy of `jit-ssh-ca serve --dev`: an ordinary config file
# (every key is explained in docs/ca.example.toml). Made once, never
# overwritten. Edit it and restart the server to change who may do what;
# then `jit-ssh-ca invite NAME --dev-dir DEV_DIR` makes an enrollment link.

# In --dev mode, --listen decides the address and the public URL follows
# the port actually bound.
listen = "127.0.0.1:8722"
public_url = "http://localhost:8722"
data_dir = "{data}"
ca_key = {{ kind = "file", path = "{key}" }}

# Hosts enroll with tokens (`jit-ssh-ca host-token --group dev --dev-dir …`)
# and get host certificates from this key (never the user CA key).
[hosts]
host_ca_key = "{host_key}"

[[users]]
name = "{user}"
groups = ["dev"]
roles = ["engineer", "approver", "security", "auditor", "admin"]

# An engineer: *.dev at once, *.stage with an approval.
[[users]]
name = "alice"
groups = ["dev"]
roles = ["engineer"]

# An approver for *.stage (`jit-ssh requests`, `jit-ssh approve ID`).
[[users]]
name = "carol"
groups = ["leads"]
roles = ["engineer", "approver"]

# The security team: `jit-ssh revoke …`, `jit-ssh audit`.
[[users]]
name = "sam"
groups = ["security"]
roles = ["security", "auditor"]

# "{{user}}" is the requester's own name; the last one is the login name of
# whoever first ran `serve --dev`, for a local sshd (README step 4).
[host_groups.dev]
hosts = ["*.dev"]
accounts = ["oncall", "{{user}}"{local}]

[host_groups.stage]
hosts = ["*.stage"]
accounts = ["deploy", "{{user}}"]

# A local sshd has no session wrapper: sessions here outlive their
# certificate. To end them at expiry, install jit-ssh-host on the host,
# set `ExposeAuthInfo yes` in its sshd_config, point [sessions] wrapper at
# it and drop the session lines (docs/sessions.md).
[[rules]]
groups = ["dev"]
host_groups = ["dev"]
max_ttl = "1h"
approval = "none"
session = {{ end_at_expiry = false, record = "off" }}

[[rules]]
groups = ["dev"]
host_groups = ["stage"]
max_ttl = "30m"
approval = "approvers"
approvers = ["leads"]
min_approvals = 1
session = {{ end_at_expiry = false, record = "off" }}
"#,
        data = dev_dir.join("data").display(),
        key = dev_dir.join("ca").join(crate::ca_key::KEY_FILE).display(),
        host_key = dev_dir
            .join("ca")
            .join(crate::ca_key::HOST_KEY_FILE)
            .display(),
    )
}

/// The dev configuration for a server bound to `listen` (its real port):
/// `dev_dir/ca.toml`, written from the sample first if missing.
pub fn config(
    dev_dir: &Path,
    listen: SocketAddr,
    user: &UserName,
) -> Result<Config, DevConfigError> {
    let path = dev_dir.join(DEV_CONFIG);
    if !path.exists() {
        let abs = std::path::absolute(dev_dir).map_err(|source| DevConfigError::Write {
            path: path.clone(),
            source,
        })?;
        crate::atomic_file::write(&path, sample(&abs, user).as_bytes(), 0o600).map_err(
            |source| DevConfigError::Write {
                path: path.clone(),
                source,
            },
        )?;
    }
    let mut config = super::load(&path)?;
    if !config.policy.users.contains_key(user.as_str()) {
        return Err(DevConfigError::UnknownUser {
            user: user.to_string(),
            path,
        });
    }
    config.listen = listen;
    config.public_url = Url::parse(&format!("http://localhost:{}", listen.port()))
        .map_err(|e| DevConfigError::Url(listen.port(), e))?;
    Ok(config)
}
