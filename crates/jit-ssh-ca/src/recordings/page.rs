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
