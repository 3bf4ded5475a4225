//! One page of a recordings listing, from states read one at a time:
//! memory stays at a page (`limit + 1` states), however many sessions
//! the store holds.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::{PageKey, RecordingMeta};

/// A state ordered by its key alone.
struct Keyed(PageKey, RecordingMeta);

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Keyed {}
impl PartialOrd for Keyed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Keyed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// The `limit` newest of `states` that `keep` takes and that sort after
/// `after` (older than it), newest first; and whether more follow.
pub(super) fn newest<E>(
    states: impl Iterator<Item = Result<RecordingMeta, E>>,
    keep: &dyn Fn(&RecordingMeta) -> bool,
    after: Option<&PageKey>,
    limit: usize,
) -> Result<(Vec<RecordingMeta>, bool), E> {
    // The oldest of the newest kept so far on top, to be dropped first.
    let mut newest: BinaryHeap<Reverse<Keyed>> = BinaryHeap::new();
    for meta in states {
        let meta = meta?;
        let key = meta.order();
        if after.is_some_and(|a| key >= *a) || !keep(&meta) {
            continue;
        }
        newest.push(Reverse(Keyed(key, meta)));
        if newest.len() > limit.saturating_add(1) {
            newest.pop();
        }
    }
    let mut page: Vec<RecordingMeta> = newest
        .into_sorted_vec()
        .into_iter()
        .map(|Reverse(Keyed(_, m))| m)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Sessions whose id ends in `b` are bob's.
    fn meta(session: &str, received_at: i64) -> RecordingMeta {
        let user = if session.ends_with('b') {
            "bob"
        } else {
            "alice"
        };
        crate::recordings::test_meta(session, received_at, user)
    }

    fn ids(page: &[RecordingMeta]) -> Vec<&str> {
        page.iter().map(|m| m.session.as_str()).collect()
    }

    #[test]
    fn pages_run_newest_first_ties_by_id_and_stop_at_the_last() {
        // Read in no particular order, as a directory lists them.
        let all = [
            meta("s-2", 20),
            meta("s-4b", 40),
            meta("s-1", 10),
            meta("s-3b", 20),
            meta("s-5", 50),
        ];
        let read = || all.iter().cloned().map(Ok::<_, ()>);
        let any = |_: &RecordingMeta| true;
        let (p1, more) = newest(read(), &any, None, 2).unwrap();
        assert_eq!((ids(&p1), more), (vec!["s-5", "s-4b"], true));
        let (p2, more) = newest(read(), &any, Some(&p1[1].order()), 2).unwrap();
        assert_eq!((ids(&p2), more), (vec!["s-3b", "s-2"], true));
        let (p3, more) = newest(read(), &any, Some(&p2[1].order()), 2).unwrap();
        assert_eq!((ids(&p3), more), (vec!["s-1"], false));
        let bobs = |m: &RecordingMeta| m.user == "bob";
        let (b, more) = newest(read(), &bobs, None, 5).unwrap();
        assert_eq!((ids(&b), more), (vec!["s-4b", "s-3b"], false));
        // A read error stops the page.
        let failing = [Ok(meta("s-1", 1)), Err("unreadable")];
        assert_eq!(
            newest(failing.into_iter(), &any, None, 5).unwrap_err(),
            "unreadable"
        );
    }
}
