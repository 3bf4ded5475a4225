//! A set of revoked certificate serials, kept as disjoint inclusive ranges.
//!
//! OpenSSH ignores serial 0 (it means "the CA set none") and refuses to
//! revoke it, so the set refuses it too.

use std::collections::BTreeMap;

/// Serial 0 cannot be revoked by serial: OpenSSH treats it as "no serial".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("serial 0 cannot be revoked by serial (OpenSSH treats 0 as \"no serial\"); revoke by key id instead")]
pub struct ZeroSerial;

/// Disjoint, non-adjacent inclusive ranges `lo..=hi`, keyed by `lo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialSet {
    ranges: BTreeMap<u64, u64>,
}

impl SerialSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from serials in any order, with duplicates allowed.
    /// Sorting first makes this much faster than inserting one by one.
    pub fn from_serials(mut serials: Vec<u64>) -> Result<Self, ZeroSerial> {
        serials.sort_unstable();
        serials.dedup();
        if serials.first() == Some(&0) {
            return Err(ZeroSerial);
        }
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for s in serials {
            match runs.last_mut() {
                Some((_, hi)) if hi.checked_add(1) == Some(s) => *hi = s,
                _ => runs.push((s, s)),
            }
        }
        Ok(Self {
            ranges: runs.into_iter().collect(),
        })
    }

    pub fn insert(&mut self, serial: u64) -> Result<(), ZeroSerial> {
        self.insert_range(serial, serial)
    }

    /// Inserts `lo..=hi`, merging with overlapping or adjacent ranges.
    /// An empty range (`lo > hi`) inserts nothing.
    pub fn insert_range(&mut self, lo: u64, hi: u64) -> Result<(), ZeroSerial> {
        if lo == 0 {
            return Err(ZeroSerial);
        }
        if lo > hi {
            return Ok(());
        }
        let (mut new_lo, mut new_hi) = (lo, hi);
        // A range starting at or before `lo` may overlap or touch it.
        if let Some((&plo, &phi)) = self.ranges.range(..=lo).next_back() {
            if phi.saturating_add(1) >= lo {
                new_lo = plo;
                new_hi = new_hi.max(phi);
                self.ranges.remove(&plo);
            }
        }
        // Ranges starting inside `new_lo..=new_hi + 1` are swallowed.
        let upper = new_hi.saturating_add(1);
        let swallowed: Vec<(u64, u64)> = self
            .ranges
            .range(new_lo..=upper)
            .map(|(&a, &b)| (a, b))
            .collect();
        for (slo, shi) in swallowed {
            new_hi = new_hi.max(shi);
            self.ranges.remove(&slo);
        }
        self.ranges.insert(new_lo, new_hi);
        Ok(())
    }

    /// Removes `serial`, splitting the range that held it; false if absent.
    pub fn remove(&mut self, serial: u64) -> bool {
        let Some((&lo, &hi)) = self.ranges.range(..=serial).next_back() else {
            return false;
        };
        if serial > hi {
            return false;
        }
        self.ranges.remove(&lo);
        if lo < serial {
            self.ranges.insert(lo, serial - 1);
        }
        if serial < hi {
            self.ranges.insert(serial + 1, hi);
        }
        true
    }

    pub fn contains(&self, serial: u64) -> bool {
        self.ranges
            .range(..=serial)
            .next_back()
            .is_some_and(|(_, &hi)| serial <= hi)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many serials the set holds (saturating at `u64::MAX`).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .fold(0u64, |n, (&lo, &hi)| n.saturating_add(hi - lo + 1))
    }

    /// The maximal runs of consecutive serials, in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&lo, &hi)| (lo, hi))
    }

    /// Every serial, in ascending order (beware of huge ranges).
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.ranges().flat_map(|(lo, hi)| lo..=hi)
    }

    /// Adds every serial of `other`.
    pub fn extend_from(&mut self, other: &SerialSet) {
        for (lo, hi) in other.ranges() {
            // Serials in `other` are never 0.
            let _ = self.insert_range(lo, hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_and_overlapping_ranges() {
        let mut s = SerialSet::new();
        s.insert_range(10, 20).unwrap();
        s.insert_range(22, 30).unwrap();
        assert_eq!(s.ranges().count(), 2);
        s.insert(21).unwrap();
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(10, 30)]);
        s.insert_range(5, 12).unwrap();
        s.insert_range(25, 40).unwrap();
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(5, 40)]);
        s.insert_range(u64::MAX - 1, u64::MAX).unwrap();
        s.insert(u64::MAX).unwrap();
        assert_eq!(s.len(), 36 + 2);
        assert!(s.contains(u64::MAX) && s.contains(5) && !s.contains(4) && !s.contains(41));
    }

    #[test]
    fn remove_splits_ranges() {
        let mut s = SerialSet::from_serials((10..=20).chain([u64::MAX]).collect()).unwrap();
        assert!(s.remove(15) && !s.remove(15) && !s.remove(9) && !s.remove(21));
        assert!(s.remove(10) && s.remove(20) && s.remove(u64::MAX));
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(11, 14), (16, 19)]);
    }

    #[test]
    fn refuses_serial_zero() {
        assert_eq!(SerialSet::new().insert(0), Err(ZeroSerial));
        assert_eq!(SerialSet::from_serials(vec![3, 0]), Err(ZeroSerial));
    }

    #[test]
    fn from_serials_matches_inserts() {
        let serials = vec![9, 3, 4, 5, 100, 7, 8, 3, u64::MAX];
        let bulk = SerialSet::from_serials(serials.clone()).unwrap();
        let mut one_by_one = SerialSet::new();
        for s in serials {
            one_by_one.insert(s).unwrap();
        }
        assert_eq!(bulk, one_by_one);
        assert_eq!(
            bulk.ranges().collect::<Vec<_>>(),
            vec![(3, 5), (7, 9), (100, 100), (u64::MAX, u64::MAX)]
        );
    }
}
