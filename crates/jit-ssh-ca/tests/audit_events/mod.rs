//! Audit events for the audit-log tests: a mix of kinds over a few
//! users, hosts, grants and serials. Each test binary uses some of them.

#![allow(dead_code)]

use jit_ssh_audit::record::{CertificateIssued, Event, IssuedVia, RequestStep, Revoked};

pub fn issued(user: &str, host: &str, serial: u64) -> Event {
    Event::CertificateIssued(CertificateIssued {
        serial,
        key_id: format!("jit-ssh:{user}:g{serial}:{serial}"),
        user: user.into(),
        host: host.into(),
        account: if serial.is_multiple_of(2) {
            "oncall"
        } else {
            "root"
        }
        .into(),
        principals: vec![format!("oncall@{host}")],
        valid_after: 1,
        valid_before: 2,
        public_key_fingerprint: "SHA256:x".into(),
        ca_fingerprint: "SHA256:y".into(),
        grant: format!("g{}", serial % 5),
        reason: "test".into(),
        critical_options: vec![],
        extensions: vec!["permit-pty".into()],
        via: IssuedVia::Server,
        session: None,
    })
}

/// A mix of kinds over a few users, hosts, grants and serials.
pub fn event(i: u64) -> Event {
    let user = ["alice", "bob", "carol"][(i % 3) as usize];
    let host = format!("h{}.prod", i % 4);
    match i % 5 {
        0 => Event::RequestExpired(RequestStep {
            request: format!("g{}", i % 5),
            user: user.into(),
            host,
            detail: String::new(),
        }),
        1 => Event::Revoked(Revoked {
            target: format!("grant:g{}", i % 5),
            user: user.into(),
            reason: "gone".into(),
            serials: vec![100 + i, 100 + i - 1, 100 + i],
            krl_version: 1,
        }),
        _ => issued(user, &host, 100 + i),
    }
}
