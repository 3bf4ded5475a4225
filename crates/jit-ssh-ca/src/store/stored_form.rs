//! Requests stored before their names were typed read back the same.

#![allow(clippy::unwrap_used)]

use super::AccessRequest;
use jit_ssh_proto::api::RequestStatus;

/// An access request as the CA stored it while `user`, `host`, `account`
/// and `reason` were plain strings (field order and encoding unchanged).
pub(crate) const STORED: &str = concat!(
    r#"{"id":"0123456789abcdef0123456789abcdef","user":"alice","host":"db-1.prod","#,
    r#""account":"oncall","ttl_secs":300,"reason":"incident 42","#,
    r#""public_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv alice","#,
    r#""key_fingerprint":"SHA256:abc","client_addr":"192.0.2.7","#,
    r#""created_at":1800000000,"expires_at":1800000300,"status":"pending_approval","#,
    r#""decision_reason":"waiting","secret_hash":"ff","grant":null,"#,
    r#""certificate":{"certificate":"ssh-ed25519-cert-v01@openssh.com AAAA","#,
    r#""serial":"18446744073709551615","principals":["oncall@db-1.prod"],"#,
    r#""valid_after":1800000000,"valid_before":1800000300},"break_glass":true,"#,
    r#""approval":{"rule":2,"approvers":["bob","carol"],"needed":1,"#,
    r#""approvals":[{"by":"bob","at":1800000100,"comment":"ok"}],"#,
    r#""not_on_call":"primary","pin_source_address":true,"extensions":["permit-pty"]},"#,
    r#""deciding_since":1800000200}"#,
);

#[test]
fn a_request_stored_with_string_names_reads_back_typed_and_identical() {
    let req: AccessRequest = serde_json::from_str(STORED).unwrap();
    assert_eq!(req.user.as_str(), "alice");
    assert_eq!(req.host.as_str(), "db-1.prod");
    assert_eq!(req.account.as_str(), "oncall");
    assert_eq!(req.reason.as_str(), "incident 42");
    assert_eq!(req.status, RequestStatus::PendingApproval);
    assert_eq!(req.certificate.as_ref().unwrap().serial, u64::MAX);
    // The store's compare-and-swap compares these bytes.
    assert_eq!(serde_json::to_string(&req).unwrap(), STORED);
}

#[test]
fn a_stored_request_with_a_name_the_edge_refuses_is_unreadable() {
    for (field, bad) in [
        ("\"user\":\"alice\"", "\"user\":\"a,b\""),
        ("\"host\":\"db-1.prod\"", "\"host\":\"db..prod\""),
        ("\"account\":\"oncall\"", "\"account\":\"-oncall\""),
        ("\"reason\":\"incident 42\"", "\"reason\":\"a\\u202eb\""),
    ] {
        let stored = STORED.replace(field, bad);
        assert_ne!(stored, STORED);
        let e = serde_json::from_str::<AccessRequest>(&stored).unwrap_err();
        assert!(e.to_string().contains("invalid"), "{bad}: {e}");
    }
}
