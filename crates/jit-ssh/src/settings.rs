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
    /// The CA's URL, e.g. https://ca.example.com, or a list of its
    /// replicas' URLs, tried in order.
    pub ca_url: Option<CaUrlSetting>,
    /// Your jit-ssh user name (default: your login name).
    pub user: Option<String>,
    /// Default account on hosts.
    pub account: Option<String>,
    /// Default certificate lifetime, e.g. "10m".
    pub ttl: Option<String>,
    /// Extra PEM root certificate to trust for the CA (private PKI).
    pub ca_cert: Option<PathBuf>,
}

/// `ca_url = "https://…"` or `ca_url = ["https://a…", "https://b…"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CaUrlSetting {
    One(String),
    Several(Vec<String>),
}

impl CaUrlSetting {
    fn joined(self) -> String {
        match self {
            CaUrlSetting::One(s) => s,
            CaUrlSetting::Several(v) => v.join(","),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// The first (preferred) CA URL: names this CA in messages and files.
    pub ca_url: reqwest::Url,
    /// Every replica's URL, `ca_url` first; the client moves to the next
    /// when one cannot be reached or answers 5xx.
    pub ca_urls: Vec<reqwest::Url>,
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

/// Where the settings file is (`$JIT_SSH_CONFIG`, or
/// `~/.config/jit-ssh/config.toml`); jit-ssh keeps its other files beside it.
pub fn file_path() -> Option<PathBuf> {
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

/// One URL or a comma-separated list; each https (plain http only to
/// localhost), duplicates dropped, order kept.
fn parse_ca_urls(text: &str) -> Result<Vec<reqwest::Url>, ClientError> {
    let mut urls: Vec<reqwest::Url> = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(ClientError::Usage(format!(
                "CA URL list {text:?}: an empty entry"
            )));
        }
        let url = reqwest::Url::parse(part)
            .map_err(|e| ClientError::Usage(format!("CA URL {part:?}: {e}")))?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(ClientError::Usage(format!(
                "CA URL {url} must be https (plain http only for localhost): the request secret and certificate travel over it"
            )));
        }
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    Ok(urls)
}

impl Settings {
    pub fn resolve(flags: &Overrides) -> Result<Settings, ClientError> {
        Self::resolve_from(flags, load_file()?, &env)
    }

    /// Flags, then `env`, then the file, then defaults.
    pub fn resolve_from(
        flags: &Overrides,
        file: SettingsFile,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ClientError> {
        let ca_url = flags
            .ca_url
            .clone()
            .or_else(|| env("JIT_SSH_CA_URL"))
            .or(file.ca_url.map(CaUrlSetting::joined))
            .ok_or_else(|| {
                ClientError::Usage("no CA URL: set ca_url in ~/.config/jit-ssh/config.toml, JIT_SSH_CA_URL, or --ca-url".into())
            })?;
        let ca_urls = parse_ca_urls(&ca_url)?;
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
            ca_url: ca_urls[0].clone(),
            ca_urls,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> SettingsFile {
        toml::from_str(text).unwrap()
    }

    const FILE: &str = "ca_url = \"https://file.example\"\nuser = \"file-user\"\naccount = \"file-acct\"\nttl = \"15m\"\n";

    #[test]
    fn flags_win_over_env_which_wins_over_the_file() {
        let no_env = |_: &str| None;
        let s = Settings::resolve_from(&Overrides::default(), file(FILE), &no_env).unwrap();
        assert_eq!(
            (s.ca_url.as_str(), s.user.as_str(), s.account()),
            ("https://file.example/", "file-user", "file-acct".into())
        );
        assert_eq!(s.ttl, Duration::from_secs(900));

        let env = |k: &str| match k {
            "JIT_SSH_CA_URL" => Some("https://env.example".into()),
            "JIT_SSH_USER" => Some("env-user".into()),
            "JIT_SSH_TTL" => Some("5m".into()),
            _ => None,
        };
        let s = Settings::resolve_from(&Overrides::default(), file(FILE), &env).unwrap();
        assert_eq!(
            (s.ca_url.as_str(), s.user.as_str()),
            ("https://env.example/", "env-user")
        );
        assert_eq!(
            (s.account(), s.ttl),
            ("file-acct".into(), Duration::from_secs(300))
        );

        let flags = Overrides {
            ca_url: Some("https://flag.example".into()),
            user: Some("flag-user".into()),
            account: Some("postgres".into()),
            ttl: Some("2m".into()),
        };
        let s = Settings::resolve_from(&flags, file(FILE), &env).unwrap();
        assert_eq!(
            (s.ca_url.as_str(), s.user.as_str(), s.account()),
            ("https://flag.example/", "flag-user", "postgres".into())
        );
        assert_eq!(s.ttl, Duration::from_secs(120));
    }

    #[test]
    fn defaults_and_refusals() {
        let env = |k: &str| (k == "USER").then(|| "me".to_owned());
        let s = Settings::resolve_from(
            &Overrides::default(),
            file("ca_url = \"http://localhost:8722\""),
            &env,
        )
        .unwrap();
        assert_eq!(
            (s.user.as_str(), s.account(), s.ttl),
            ("me", "me".into(), Duration::from_secs(600))
        );
        let plain = Settings::resolve_from(
            &Overrides::default(),
            file("ca_url = \"http://ca.example\""),
            &env,
        );
        assert!(matches!(plain, Err(ClientError::Usage(m)) if m.contains("must be https")));
        assert!(
            toml::from_str::<SettingsFile>("ca_ulr = \"x\"").is_err(),
            "unknown keys must be refused"
        );
        let none = Settings::resolve_from(&Overrides::default(), SettingsFile::default(), &env);
        assert!(matches!(none, Err(ClientError::Usage(m)) if m.contains("no CA URL")));
    }

    #[test]
    fn several_replicas_from_the_file_or_a_comma_list() {
        let env = |k: &str| (k == "USER").then(|| "me".to_owned());
        let urls = |s: &Settings| s.ca_urls.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        let s = Settings::resolve_from(
            &Overrides::default(),
            file("ca_url = [\"https://a.example\", \"https://b.example\"]"),
            &env,
        )
        .unwrap();
        assert_eq!(urls(&s), ["https://a.example/", "https://b.example/"]);
        assert_eq!(s.ca_url.as_str(), "https://a.example/");
        let flags = Overrides {
            ca_url: Some("https://b.example, https://a.example,https://b.example".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve_from(&flags, SettingsFile::default(), &env).unwrap();
        assert_eq!(urls(&s), ["https://b.example/", "https://a.example/"]);
        for bad in ["https://a.example,", "https://a.example,http://b.example"] {
            let flags = Overrides {
                ca_url: Some(bad.into()),
                ..Overrides::default()
            };
            assert!(
                matches!(
                    Settings::resolve_from(&flags, SettingsFile::default(), &env),
                    Err(ClientError::Usage(_))
                ),
                "{bad}"
            );
        }
    }
}
