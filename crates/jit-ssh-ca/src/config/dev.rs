//! `serve --dev`: a CA that works out of the box on a developer's machine.
//! A CA key and data directory under a dev folder (made once, reused),
//! `http://localhost:PORT` (WebAuthn's rp id `localhost`), and a sample
//! policy letting the dev user reach `*.dev` hosts as `oncall` or as
//! themselves, for up to an hour, with no approval.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

use super::{Config, Limits, SignerConfig, HARD_MAX_TTL};
use crate::names::{AccountName, UserName};
use crate::policy::{AccountRule, Approval, HostGlob, HostGroup, Policy, Role, Rule, UserEntry};
use crate::profile::CertProfile;

pub const DEV_GROUP: &str = "dev";

pub fn policy(user: &UserName) -> Policy {
    let all_roles = [
        Role::Engineer,
        Role::Approver,
        Role::Security,
        Role::Auditor,
        Role::Admin,
    ];
    let mut host_groups = BTreeMap::new();
    host_groups.insert(
        DEV_GROUP.to_owned(),
        HostGroup {
            hosts: HostGlob::parse("*.dev").into_iter().collect(),
            accounts: AccountName::parse("oncall")
                .map(AccountRule::Named)
                .into_iter()
                .chain([AccountRule::OwnName])
                .collect(),
        },
    );
    Policy {
        users: [(
            user.to_string(),
            UserEntry {
                groups: [DEV_GROUP.to_owned()].into(),
                roles: all_roles.into(),
                emails: vec![],
            },
        )]
        .into(),
        host_groups,
        rules: vec![Rule {
            groups: [DEV_GROUP.to_owned()].into(),
            host_groups: vec![DEV_GROUP.to_owned()],
            accounts: vec![],
            max_ttl: HARD_MAX_TTL,
            approval: Approval::None,
            pin_source_address: false,
            extensions: vec![],
            break_glass: None,
        }],
    }
}

/// The dev configuration for a server bound to `listen` (its real port).
pub fn config(
    dev_dir: &Path,
    listen: SocketAddr,
    user: &UserName,
) -> Result<Config, url::ParseError> {
    Ok(Config {
        listen,
        public_url: Url::parse(&format!("http://localhost:{}", listen.port()))?,
        data_dir: dev_dir.join("data"),
        signer: SignerConfig::File {
            path: dev_dir.join("ca").join(crate::ca_key::KEY_FILE),
            passphrase_file: None,
        },
        tls: None,
        connections: Default::default(),
        limits: Limits {
            invite_ttl: Duration::from_secs(86_400),
            ..Limits::default()
        },
        profile: CertProfile::default(),
        policy: policy(user),
        schedules: Default::default(),
        notify: vec![],
    })
}
