//! Match codes: a short code shown both in the terminal (from the create
//! answer) and on the confirmation page (from the summary), so the person
//! about to touch their key can see that the page is about *their*
//! request and not one an attacker sent them a link to.
//!
//! The code is a hash over the kind, the server-chosen random id and what
//! the thing binds (key fingerprint, target, verdict, user). It is not a
//! secret — the page shows it to whoever holds the link — and needs not
//! be: an attacker cannot choose an id, so making their own request's code
//! equal to a code on someone else's terminal means creating about 2^30
//! requests, far beyond the rate limits. Computed, never stored: the create
//! answer and every later summary derive it from the same fields.

use sha2::{Digest, Sha256};

use jit_ssh_proto::api::{ConfirmKind, RevokeTarget, Verdict};

/// Digits and capitals without 0, 1, I and O (nothing to misread): 32
/// symbols, 5 bits each.
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

fn code(kind: ConfirmKind, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"jit-ssh-match-code-v1\0");
    h.update(kind_tag(kind).as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    // The first 30 bits, as six symbols.
    let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> 2;
    let mut out = String::with_capacity(7);
    for i in 0..6 {
        if i == 3 {
            out.push('-');
        }
        let sym = (bits >> (25 - 5 * i)) & 31;
        out.push(char::from(ALPHABET[sym as usize]));
    }
    out
}

fn kind_tag(kind: ConfirmKind) -> &'static str {
    match kind {
        ConfirmKind::AccessRequest => "access_request",
        ConfirmKind::Revocation => "revocation",
        ConfirmKind::Decision => "decision",
        ConfirmKind::SignIn => "sign_in",
    }
}

/// An access request: who asks for which host and account with which key.
pub fn access_request(
    id: &str,
    user: &str,
    host: &str,
    account: &str,
    key_fingerprint: &str,
) -> String {
    code(
        ConfirmKind::AccessRequest,
        &[id, user, host, account, key_fingerprint],
    )
}

/// A revocation: who revokes what.
pub fn revocation(id: &str, user: &str, target: &RevokeTarget) -> String {
    code(ConfirmKind::Revocation, &[id, user, &target.to_string()])
}

/// An approver's decision: who decides which request, and how.
pub fn decision(id: &str, request: &str, user: &str, verdict: Verdict) -> String {
    let verdict = match verdict {
        Verdict::Approve => "approve",
        Verdict::Deny => "deny",
    };
    code(ConfirmKind::Decision, &[id, request, user, verdict])
}

/// A sign-in: who signs in.
pub fn sign_in(id: &str, user: &str) -> String {
    code(ConfirmKind::SignIn, &[id, user])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn codes_are_six_unambiguous_symbols() {
        let c = sign_in(ID, "alice");
        assert_eq!(c.len(), 7, "{c}");
        assert_eq!(c.as_bytes()[3], b'-');
        assert!(
            c.chars()
                .filter(|ch| *ch != '-')
                .all(|ch| ALPHABET.contains(&(ch as u8))),
            "{c}"
        );
        assert!(!c.contains(['0', 'O', '1', 'I']), "{c}");
    }

    #[test]
    fn the_code_changes_with_kind_id_and_what_is_bound() {
        let base = sign_in(ID, "alice");
        assert_eq!(base, sign_in(ID, "alice"));
        assert_ne!(base, sign_in(ID, "bob"));
        assert_ne!(base, sign_in("1123456789abcdef0123456789abcdef", "alice"));
        // The same fields under another kind give another code.
        assert_ne!(
            revocation(ID, "alice", &RevokeTarget::User("alice".into())),
            decision(ID, "alice", "alice", Verdict::Approve)
        );
        assert_ne!(
            decision(ID, ID, "lead1", Verdict::Approve),
            decision(ID, ID, "lead1", Verdict::Deny)
        );
        assert_ne!(
            access_request(ID, "a", "h", "x", "SHA256:one"),
            access_request(ID, "a", "h", "x", "SHA256:two")
        );
    }
}
