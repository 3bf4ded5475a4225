//! Pages read through `@index`: the same pages as reading every state,
//! at the cost of the page.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;

use super::*;

use crate::recordings::test_meta as meta;

fn ids(page: &[RecordingMeta]) -> Vec<String> {
    page.iter().map(|m| m.session.to_string()).collect()
}

/// Every page at `limit` a page, through the store, as ids.
fn all_pages(
    store: &LocalRecordings,
    keep: &dyn Fn(&RecordingMeta) -> bool,
    limit: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<PageKey> = None;
    loop {
        let (page, more) = store.page(keep, after.as_ref(), limit).unwrap();
        assert!(page.len() <= limit);
        out.extend(ids(&page));
        if !more {
            return out;
        }
        after = Some(page.last().unwrap().order());
    }
}

/// The pages as reading every state gives them (the reference).
fn reference(store: &LocalRecordings, keep: &dyn Fn(&RecordingMeta) -> bool) -> Vec<String> {
    let (all, _) =
        super::super::page::newest(store.states().unwrap(), keep, None, usize::MAX - 1).unwrap();
    ids(&all)
}

fn check_pages(store: &LocalRecordings, what: &str) {
    let any = |_: &RecordingMeta| true;
    let bobs = |m: &RecordingMeta| m.user == "bob";
    for limit in [1, 2, 3, 7, 100] {
        assert_eq!(
            all_pages(store, &any, limit),
            reference(store, &any),
            "{what}, limit {limit}"
        );
        assert_eq!(
            all_pages(store, &bobs, limit),
            reference(store, &bobs),
            "{what}, Bob's, limit {limit}"
        );
    }
}

#[test]
fn a_page_reads_the_states_of_the_page_not_of_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalRecordings::new(tmp.path().join("recordings"));
    // 3,000 sessions, three a second, each second's arriving in reverse
    // id order.
    for k in 0..3_000i64 {
        let id = format!("s-{:05}", (k / 3) * 3 + (2 - k % 3));
        store
            .begin(&meta(&id, 1_000 + k / 3, "alice"), "{}")
            .unwrap();
    }
    let reads = || store.reads.swap(0, Ordering::SeqCst);
    reads();
    let (first, more) = store.page(&|_| true, None, 100).unwrap();
    assert!(more);
    assert_eq!(first[0].session.as_str(), "s-02999");
    assert_eq!(first[99].session.as_str(), "s-02900");
    let n = reads();
    assert!(n <= 103, "the first page of 100 read {n} states of 3000");
    // Deep in the store: the cursor is found, not walked to.
    let cursor = PageKey {
        received_at: 1_500,
        session: "s-01501".into(),
    };
    let (page, _) = store.page(&|_| true, Some(&cursor), 100).unwrap();
    assert_eq!(page[0].session.as_str(), "s-01500");
    let n = reads();
    assert!(n <= 103, "a page after a cursor read {n} states of 3000");
}

#[test]
fn pages_through_the_index_are_the_pages_of_every_state() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("recordings");
    let store = LocalRecordings::new(root.clone());
    for (k, id) in ["s-c", "s-a", "s-b", "s-e", "s-d", "s-f", "s-h", "s-g"]
        .iter()
        .enumerate()
    {
        let user = if k % 3 == 0 { "bob" } else { "alice" };
        store
            .begin(&meta(id, 100 + (k as i64) / 3, user), "{}")
            .unwrap();
    }
    check_pages(&store, "seconds of three, out of id order");

    // A begin cut short before its state, taken over later: its first
    // line names a receipt its state does not.
    store.begin(&meta("s-late", 105, "bob"), "{}").unwrap();
    fs::remove_file(root.join("s-late").join(STATE)).unwrap();
    check_pages(&store, "a begin cut short");
    store.begin(&meta("s-late", 107, "bob"), "{}").unwrap();
    check_pages(&store, "a begin taken over");

    // Pruned: the lines go at the prune, the recordings at once.
    store.prune(101).unwrap();
    check_pages(&store, "pruned");
    assert!(!fs::read_to_string(root.join("@index/order"))
        .unwrap()
        .contains("s-c"));

    // A line a crash cut short (no newline): cut off by the next process.
    let mut f = OpenOptions::new()
        .append(true)
        .open(root.join("@index/order"))
        .unwrap();
    f.write_all(b"108 s-torn").unwrap();
    drop(f);
    let store = LocalRecordings::new(root.clone());
    store.begin(&meta("s-next", 109, "alice"), "{}").unwrap();
    check_pages(&store, "after a torn line");
    let text = fs::read_to_string(root.join("@index/order")).unwrap();
    assert!(text.ends_with("107 s-late\n109 s-next\n"), "{text}");

    // An older CA's store, without an index: built at the first page.
    fs::remove_file(root.join("@index/order")).unwrap();
    let store = LocalRecordings::new(root.clone());
    check_pages(&store, "no index");
    assert!(root.join("@index/order").exists());

    // An older CA ran on the store (a downgrade) and began a recording
    // the index does not name: the next process builds it again.
    store.begin(&meta("s-old-ca", 110, "bob"), "{}").unwrap();
    let text = fs::read_to_string(root.join("@index/order")).unwrap();
    fs::write(
        root.join("@index/order"),
        text.replace("110 s-old-ca\n", ""),
    )
    .unwrap();
    let store = LocalRecordings::new(root.clone());
    check_pages(&store, "a recording the index does not name");
}

#[test]
fn a_clock_stepped_back_reads_every_state_until_the_next_prune_sorts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("recordings");
    let store = LocalRecordings::new(root.clone());
    store.begin(&meta("s-1", 500, "alice"), "{}").unwrap();
    store.begin(&meta("s-2", 600, "bob"), "{}").unwrap();
    // The clock went back a minute and a half.
    store.begin(&meta("s-3", 510, "alice"), "{}").unwrap();
    store.begin(&meta("s-4", 520, "bob"), "{}").unwrap();
    assert!(root.join("@index/unsorted").exists());
    check_pages(&store, "out of order");
    assert_eq!(store.prune(0).unwrap(), 0);
    assert!(!root.join("@index/unsorted").exists());
    check_pages(&store, "sorted again");
    assert_eq!(
        all_pages(&store, &|_| true, 2),
        ["s-2", "s-4", "s-3", "s-1"]
    );
}
