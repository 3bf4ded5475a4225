//! The certificate profile: what a jit-ssh user certificate contains, as a
//! pure function of the request and the clock. Anything out of bounds is a
//! typed error, never a certificate.

use std::net::IpAddr;
use std::time::Duration;

use ssh_key::certificate::{Builder, CertType};
use ssh_key::PublicKey;

use crate::names::{AccountName, GrantId, HostName, KeyId, Principal, Serial, UserName};

/// Extensions a certificate may carry. Only `permit-pty` unless policy
/// asks for more: forwarding widens what a stolen session can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Extension {
    PermitPty,
    PermitAgentForwarding,
    PermitPortForwarding,
    PermitX11Forwarding,
    PermitUserRc,
}

impl Extension {
    pub const ALL: [Extension; 5] = [
        Extension::PermitPty,
        Extension::PermitAgentForwarding,
        Extension::PermitPortForwarding,
        Extension::PermitX11Forwarding,
        Extension::PermitUserRc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Extension::PermitPty => "permit-pty",
            Extension::PermitAgentForwarding => "permit-agent-forwarding",
            Extension::PermitPortForwarding => "permit-port-forwarding",
            Extension::PermitX11Forwarding => "permit-X11-forwarding",
            Extension::PermitUserRc => "permit-user-rc",
        }
    }

    pub fn parse(name: &str) -> Result<Self, ProfileError> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| ProfileError::UnknownExtension(name.chars().take(64).collect()))
    }
}

/// One address or CIDR block for the `source-address` critical option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceCidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl SourceCidr {
    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let bad = || ProfileError::InvalidSourceAddress(text.chars().take(64).collect());
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl std::fmt::Display for SourceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What the certificate is for: already-validated names plus options.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub user: UserName,
    pub host: HostName,
    pub account: AccountName,
    pub grant: GrantId,
    pub ttl: Duration,
    pub source_address: Vec<SourceCidr>,
    pub force_command: Option<String>,
    /// Defaults to `permit-pty` only.
    pub extensions: Vec<Extension>,
    /// Marked in the key id.
    pub break_glass: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("TTL must be at least one second")]
    ZeroTtl,
    #[error("TTL {} is over the cap of {}", jit_ssh_proto::format_duration(*ttl), jit_ssh_proto::format_duration(*cap))]
    TtlOverCap { ttl: Duration, cap: Duration },
    #[error("unknown extension {0:?} (known: permit-pty, permit-agent-forwarding, permit-port-forwarding, permit-X11-forwarding, permit-user-rc)")]
    UnknownExtension(String),
    #[error("invalid source address {0:?}: give an IP address or CIDR block such as 10.0.0.0/8")]
    InvalidSourceAddress(String),
    #[error("invalid force-command: it must be 1-1024 characters without control characters")]
    InvalidForceCommand,
    #[error("the system clock is before 1970 or beyond 2106")]
    Clock,
    #[error("building the certificate failed")]
    Build(#[source] ssh_key::Error),
}

/// Limits and defaults the CA applies to every certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertProfile {
    /// valid_after is this far in the past, so a host whose clock runs a
    /// little behind still accepts a fresh certificate.
    pub clock_skew: Duration,
    pub max_ttl: Duration,
}

impl Default for CertProfile {
    fn default() -> Self {
        Self {
            clock_skew: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
        }
    }
}

/// What [`CertProfile::build`] decided, besides the builder itself.
#[derive(Debug, Clone)]
pub struct CertFields {
    pub serial: Serial,
    pub key_id: KeyId,
    pub principals: Vec<Principal>,
    pub valid_after: u64,
    pub valid_before: u64,
    pub critical_options: Vec<(String, String)>,
    pub extensions: Vec<Extension>,
}

impl CertProfile {
    /// Checks `spec` and prepares the certificate for `public_key`, valid
    /// from `now - clock_skew` to `now + ttl` (Unix seconds).
    pub fn build(
        &self,
        spec: &CertSpec,
        public_key: &PublicKey,
        serial: Serial,
        now: u64,
    ) -> Result<(Builder, CertFields), ProfileError> {
        if spec.ttl.as_secs() == 0 {
            return Err(ProfileError::ZeroTtl);
        }
        if spec.ttl > self.max_ttl {
            return Err(ProfileError::TtlOverCap {
                ttl: spec.ttl,
                cap: self.max_ttl,
            });
        }
        let mut critical_options = Vec::new();
        if let Some(cmd) = &spec.force_command {
            if cmd.is_empty() || cmd.len() > 1024 || cmd.chars().any(char::is_control) {
                return Err(ProfileError::InvalidForceCommand);
            }
            critical_options.push(("force-command".to_owned(), cmd.clone()));
        }
        if !spec.source_address.is_empty() {
            let list: Vec<String> = spec
                .source_address
                .iter()
                .map(ToString::to_string)
                .collect();
            critical_options.push(("source-address".to_owned(), list.join(",")));
        }
        let mut extensions = if spec.extensions.is_empty() {
            vec![Extension::PermitPty]
        } else {
            spec.extensions.clone()
        };
        extensions.sort();
        extensions.dedup();

        let valid_after = now.saturating_sub(self.clock_skew.as_secs());
        let valid_before = now
            .checked_add(spec.ttl.as_secs())
            .ok_or(ProfileError::Clock)?;
        let principal = Principal::for_host(&spec.account, &spec.host);
        let key_id = KeyId::new(&spec.user, &spec.grant, serial, spec.break_glass);

        let mut rng = ssh_key::rand_core::OsRng;
        let mut b = Builder::new_with_random_nonce(
            &mut rng,
            public_key.key_data().clone(),
            valid_after,
            valid_before,
        )
        .map_err(ProfileError::Build)?;
        b.serial(serial.get()).map_err(ProfileError::Build)?;
        b.key_id(key_id.as_str()).map_err(ProfileError::Build)?;
        b.cert_type(CertType::User).map_err(ProfileError::Build)?;
        b.valid_principal(principal.as_str())
            .map_err(ProfileError::Build)?;
        for (name, data) in &critical_options {
            b.critical_option(name.as_str(), data.as_str())
                .map_err(ProfileError::Build)?;
        }
        for e in &extensions {
            b.extension(e.name(), "").map_err(ProfileError::Build)?;
        }
        b.comment(key_id.as_str()).map_err(ProfileError::Build)?;
        Ok((
            b,
            CertFields {
                serial,
                key_id,
                principals: vec![principal],
                valid_after,
                valid_before,
                critical_options,
                extensions,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ssh_key::{Algorithm, PrivateKey};

    fn spec(ttl: u64) -> CertSpec {
        CertSpec {
            user: UserName::parse("alice").unwrap(),
            host: HostName::parse("db-1.prod").unwrap(),
            account: AccountName::parse("postgres").unwrap(),
            grant: GrantId::parse("00112233445566778899aabbccddeeff").unwrap(),
            ttl: Duration::from_secs(ttl),
            source_address: vec![],
            force_command: None,
            extensions: vec![],
            break_glass: false,
        }
    }

    fn key() -> PrivateKey {
        PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519).unwrap()
    }

    #[test]
    fn fields_round_trip_through_a_signed_certificate() {
        let (ca, user) = (key(), key());
        let mut s = spec(600);
        s.source_address = vec![
            SourceCidr::parse("10.1.2.3").unwrap(),
            SourceCidr::parse("fd00::/8").unwrap(),
        ];
        s.force_command = Some("/usr/bin/psql".into());
        let serial = Serial::new(42).unwrap();
        let (b, fields) = CertProfile::default()
            .build(&s, user.public_key(), serial, 1_800_000_000)
            .unwrap();
        let cert = b.sign(&ca).unwrap();
        let cert = ssh_key::Certificate::from_openssh(&cert.to_openssh().unwrap()).unwrap();
        assert_eq!(cert.serial(), 42);
        assert_eq!(
            cert.key_id(),
            "jit-ssh:alice:00112233445566778899aabbccddeeff:42"
        );
        assert_eq!(cert.valid_principals(), ["postgres@db-1.prod"]);
        assert_eq!(cert.valid_after(), 1_800_000_000 - 60);
        assert_eq!(cert.valid_before(), 1_800_000_600);
        assert_eq!(cert.cert_type(), CertType::User);
        assert_eq!(cert.extensions().keys().collect::<Vec<_>>(), ["permit-pty"]);
        assert_eq!(
            cert.critical_options()
                .get("force-command")
                .map(String::as_str),
            Some("/usr/bin/psql")
        );
        assert_eq!(
            cert.critical_options()
                .get("source-address")
                .map(String::as_str),
            Some("10.1.2.3/32,fd00::/8")
        );
        assert_eq!(cert.public_key(), user.public_key().key_data());
        assert_eq!(fields.valid_before, cert.valid_before());
        cert.validate_at(
            1_800_000_001,
            [&ca.public_key().fingerprint(Default::default())],
        )
        .unwrap();
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let user = key();
        let p = CertProfile::default();
        let serial = Serial::new(1).unwrap();
        assert!(matches!(
            p.build(&spec(0), user.public_key(), serial, 1),
            Err(ProfileError::ZeroTtl)
        ));
        assert!(matches!(
            p.build(&spec(3601), user.public_key(), serial, 1),
            Err(ProfileError::TtlOverCap { .. })
        ));
        let mut s = spec(60);
        s.force_command = Some("rm -rf /\nid".into());
        assert!(matches!(
            p.build(&s, user.public_key(), serial, 1),
            Err(ProfileError::InvalidForceCommand)
        ));
        for bad in [
            "10.0.0.1/33",
            "10.0.0.1/",
            "host.example",
            "10.0.0.1,10.0.0.2",
            "::1/129",
            "1.2.3.4/+8",
        ] {
            assert!(SourceCidr::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Extension::parse("permit-everything").is_err());
        assert!(matches!(
            p.build(&spec(60), user.public_key(), serial, u64::MAX),
            Err(ProfileError::Clock)
        ));
    }
}
