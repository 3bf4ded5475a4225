//! State written by an older version of the CA still changes by
//! compare-and-swap: a request stored before `break_glass` and
//! `approval` existed (they read back as their defaults, and this
//! version writes them), a decision stored with its fields in another
//! order. Before, the swap compared this version's encoding of the value
//! read with the bytes stored, never equal: a request waiting for
//! approval across an upgrade could be neither approved nor claimed. On
//! sled and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod pg;
#[path = "../src/store/sled_reopen.rs"]
mod sled_reopen;
mod stored;

use std::path::Path;
use std::sync::Arc;

use jit_ssh_ca::store::{AccessRequest, PendingDecision, PgStore, SledStore, Store};
use jit_ssh_proto::api::{DecisionStatus, RequestStatus, Verdict};
use stored::request;

/// `v` as a version before `break_glass` and `approval` wrote it, its
/// fields in another order (serde_json's `Value` sorts them).
fn older_form<T: serde::Serialize>(v: &T) -> String {
    let mut value = serde_json::to_value(v).unwrap();
    let fields = value.as_object_mut().unwrap();
    for added_since in ["break_glass", "approval"] {
        fields.remove(added_since);
    }
    let form = value.to_string();
    assert_ne!(form, serde_json::to_string(v).unwrap());
    form
}

fn waiting() -> AccessRequest {
    request("a", RequestStatus::PendingApproval)
}

fn decision() -> PendingDecision {
    PendingDecision {
        id: "d".into(),
        request: "a".into(),
        user: "bob".into(),
        verdict: Verdict::Approve,
        comment: "ok".into(),
        expires_at: 100,
        status: DecisionStatus::PendingMfa,
        outcome: None,
        secret_hash: "ff".into(),
    }
}

/// What every store must do once `waiting()` and `decision()` are stored
/// in their older forms.
fn older_forms_swap(s: Arc<dyn Store>) {
    let read = s.request("a").unwrap().unwrap();
    assert_eq!(read, waiting());
    // A value other than the one stored is still refused.
    let stale = AccessRequest {
        ttl_secs: 60,
        ..read.clone()
    };
    let claimed = AccessRequest {
        deciding_since: Some(5),
        ..read.clone()
    };
    assert!(!s.swap_request(&stale, &claimed).unwrap());
    assert!(
        s.swap_request(&read, &claimed).unwrap(),
        "a request stored by an older version could not be claimed"
    );
    assert_eq!(s.request("a").unwrap(), Some(claimed.clone()));
    assert!(!s.swap_request(&read, &claimed).unwrap(), "swapped twice");
    let denied = AccessRequest {
        status: RequestStatus::Denied,
        deciding_since: None,
        ..claimed.clone()
    };
    assert!(s.swap_request(&claimed, &denied).unwrap());
    assert!(s.pending_approval().unwrap().is_empty());

    let d = s.decision("d").unwrap().unwrap();
    let recorded = PendingDecision {
        status: DecisionStatus::Recorded,
        ..d.clone()
    };
    assert!(s.swap_decision(&d, &recorded).unwrap());
    assert_eq!(s.decision("d").unwrap(), Some(recorded));
}

#[test]
fn embedded_state_stored_by_an_older_version_swaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    {
        let s = SledStore::open(&path).unwrap();
        s.put_request(&waiting()).unwrap();
        s.put_decision(&decision()).unwrap();
    }
    rewrite_sled(&path, "requests", "a", &older_form(&waiting()));
    rewrite_sled(&path, "decisions", "d", &older_form(&decision()));
    let s = sled_reopen::until_unlocked(|| SledStore::open(&path));
    older_forms_swap(Arc::new(s));
}

fn rewrite_sled(path: &Path, tree: &str, key: &str, body: &str) {
    let db = sled_reopen::until_unlocked(|| sled::open(path));
    db.open_tree(tree)
        .unwrap()
        .insert(key, body.as_bytes())
        .unwrap();
    db.flush().unwrap();
}

#[test]
fn postgres_state_stored_by_an_older_version_swaps() {
    let test = "postgres_state_stored_by_an_older_version_swaps";
    let Some(cfg) = pg::database(test) else {
        return;
    };
    let s = PgStore::open(&cfg).unwrap();
    s.put_request(&waiting()).unwrap();
    s.put_decision(&decision()).unwrap();
    let quote = |v: String| v.replace('\'', "''");
    pg::cluster(test).unwrap().sql(
        &pg::db_name(&cfg),
        &format!(
            "UPDATE requests SET body = '{}' WHERE key = 'a';
             UPDATE decisions SET body = '{}' WHERE key = 'd';",
            quote(older_form(&waiting())),
            quote(older_form(&decision()))
        ),
    );
    older_forms_swap(Arc::new(s));
}
