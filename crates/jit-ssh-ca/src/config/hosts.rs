//! `[hosts]`: the host CA and what its certificates say. Without
//! `host_ca_key` the CA enrolls no hosts (and says so).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// The checked section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsConfig {
    /// The host CA key (never the user CA key), if hosts are enrolled. A
    /// key file given as a bare path has no passphrase file of its own:
    /// it uses `ca_key`'s (as `jit-ssh-ca init` encrypts both alike).
    pub host_ca_key: Option<super::SignerConfig>,
    /// How long a host certificate is valid.
    pub cert_validity: Duration,
    /// How long an enrollment token works unless `host-token --ttl` says.
    pub token_ttl: Duration,
    /// A host whose KRL was signed longer ago than this is listed as
    /// behind on revocations.
    pub krl_behind_after: Duration,
    /// A host not heard from for longer than this is listed as silent.
    pub silent_after: Duration,
}

impl Default for HostsConfig {
    fn default() -> Self {
        Self {
            host_ca_key: None,
            cert_validity: Duration::from_secs(7 * 86_400),
            token_ttl: Duration::from_secs(3600),
            // host sync's own --max-age: behind is what sync calls stale.
            krl_behind_after: Duration::from_secs(600),
            // Ten missed 30 s syncs.
            silent_after: Duration::from_secs(300),
        }
    }
}

/// The `[hosts]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsFile {
    /// The host CA's private key (`jit-ssh-ca init` makes `host_ca_key`
    /// beside `ca_key`), mode 0600, or a signer table like `ca_key`'s
    /// (`{ kind = "pkcs11", … }`). It signs host certificates only; the
    /// user CA key never does.
    pub host_ca_key: Option<HostCaKeyFile>,
    /// Validity of host certificates (default "7d"); hosts renew them.
    pub cert_validity: Option<Spanned<String>>,
    /// Default lifetime of enrollment tokens (default "1h").
    pub token_ttl: Option<Spanned<String>>,
    /// List a host as behind on revocations when the KRL it holds was
    /// signed longer ago than this (default "10m").
    pub krl_behind_after: Option<Spanned<String>>,
    /// List a host as silent after this long without a check-in (default "5m").
    pub silent_after: Option<Spanned<String>>,
}

/// `host_ca_key` as written: a path (the usual key file) or a signer table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HostCaKeyFile {
    Path(PathBuf),
    Signer(super::file::SignerFile),
}

pub(super) fn hosts(f: &HostsFile, c: &mut Collector<'_>) -> HostsConfig {
    let d = HostsConfig::default();
    let mut dur = |v: &Option<Spanned<String>>, name: &str, default: Duration| {
        let Some(s) = v else { return default };
        c.duration(s, &format!("hosts.{name}")).unwrap_or(default)
    };
    HostsConfig {
        host_ca_key: f.host_ca_key.clone().map(|k| match k {
            HostCaKeyFile::Path(path) => super::SignerConfig::File {
                path,
                passphrase_file: None,
            },
            HostCaKeyFile::Signer(s) => s.checked(),
        }),
        cert_validity: dur(&f.cert_validity, "cert_validity", d.cert_validity),
        token_ttl: dur(&f.token_ttl, "token_ttl", d.token_ttl),
        krl_behind_after: dur(&f.krl_behind_after, "krl_behind_after", d.krl_behind_after),
        silent_after: dur(&f.silent_after, "silent_after", d.silent_after),
    }
}
