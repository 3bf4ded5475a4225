//! Where the CA is, who I am, and defaults: flags win over `JIT_SSH_*`
//! environment variables, which win over `~/.config/jit-ssh/config.toml`
//! (or `$JIT_SSH_CONFIG`). `user` defaults to the login name.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::ClientError;

/// The settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsFile {
    /// The CA's URL, e.g. https://ca.example.com.
    pub ca_url: Option<String>,
    /// Your jit-ssh user name (default: your login name).
    pub user: Option<String>,
    /// Default account on hosts.
    pub account: Option<String>,
    /// Default certificate lifetime, e.g. "10m".
    pub ttl: Option<String>,
    /// Extra PEM root certificate to trust for the CA (private PKI).
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub ca_url: reqwest::Url,
    pub user: String,
    pub account: Option<String>,
    pub ttl: Duration,
    pub ca_cert: Option<PathBuf>,
}

/// Values given as flags (all optional).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub ca_url: Option<String>,
    pub user: Option<String>,
    pub account: Option<String>,
    pub ttl: Option<String>,
}

fn file_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("JIT_SSH_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("jit-ssh").join("config.toml"))
}

fn load_file() -> Result<SettingsFile, ClientError> {
    let Some(path) = file_path() else {
        return Ok(SettingsFile::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SettingsFile::default()),
        Err(e) => Err(ClientError::Usage(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The passwd name of this process's uid, for when `$USER` is unset.
fn login_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    })
}

impl Settings {
    pub fn resolve(flags: &Overrides) -> Result<Settings, ClientError> {
        let file = load_file()?;
        let ca_url = flags
            .ca_url
            .clone()
            .or_else(|| env("JIT_SSH_CA_URL"))
            .or(file.ca_url)
            .ok_or_else(|| {
                ClientError::Usage("no CA URL: set ca_url in ~/.config/jit-ssh/config.toml, JIT_SSH_CA_URL, or --ca-url".into())
            })?;
        let ca_url = reqwest::Url::parse(&ca_url)
            .map_err(|e| ClientError::Usage(format!("CA URL {ca_url:?}: {e}")))?;
        let loopback = matches!(ca_url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if ca_url.scheme() != "https" && !(ca_url.scheme() == "http" && loopback) {
            return Err(ClientError::Usage(format!(
                "CA URL {ca_url} must be https (plain http only for localhost): the request secret and certificate travel over it"
            )));
        }
        let user = flags
            .user
            .clone()
            .or_else(|| env("JIT_SSH_USER"))
            .or(file.user)
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .or_else(login_name)
            .ok_or_else(|| {
                ClientError::Usage(
                    "cannot tell your user name: set user in the config or JIT_SSH_USER".into(),
                )
            })?;
        let account = flags
            .account
            .clone()
            .or_else(|| env("JIT_SSH_ACCOUNT"))
            .or(file.account);
        let ttl_text = flags
            .ttl
            .clone()
            .or_else(|| env("JIT_SSH_TTL"))
            .or(file.ttl)
            .unwrap_or_else(|| "10m".into());
        let ttl = jit_ssh_proto::parse_duration(&ttl_text)
            .map_err(|e| ClientError::Usage(format!("ttl: {e}")))?;
        Ok(Settings {
            ca_url,
            user,
            account,
            ttl,
            ca_cert: env("JIT_SSH_CA_CERT").map(PathBuf::from).or(file.ca_cert),
        })
    }

    /// The account to use: the flag/setting, else the user's own name.
    pub fn account(&self) -> String {
        self.account.clone().unwrap_or_else(|| self.user.clone())
    }
}
