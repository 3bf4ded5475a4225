//! Chooses how to encode a certificate section's serials: the smallest mix
//! of serial lists, ranges and bitmaps that OpenSSH can still read.
//!
//! `ssh-keygen -k` picks greedily and writes bitmaps of any size, so for
//! dense sets it emits bitmaps larger than the 2,048 bytes OpenSSH's own
//! reader accepts; sshd then fails to load the KRL and refuses every
//! certificate login. Here every bitmap spans at most [`MAX_BITMAP_BITS`].
//!
//! The choice is a dynamic programme over the maximal runs of consecutive
//! serials. Lists and ranges have fixed costs; a bitmap over runs `i..=k`
//! costs about `(hi_k - lo_i) / 8` bytes plus a header, so the best start
//! `i` for each end `k` is a sliding-window minimum of `8·cost(i) − lo_i`
//! (monotone deque), which keeps the whole plan O(runs).

use std::collections::VecDeque;

use crate::wire::MAX_BIGNUM_BYTES;

/// The widest bitmap OpenSSH reads: 2,048 bytes of bits.
pub const MAX_BITMAP_BITS: u64 = (MAX_BIGNUM_BYTES as u64) * 8;

/// Bytes of a subsection header: type byte + string length.
const SUBSECTION_HEADER: u64 = 1 + 4;
const RANGE_COST: u64 = SUBSECTION_HEADER + 16;
/// A list element never beats a range beyond this run length.
const MAX_LIST_RUN: u64 = 3;

/// One subsection of a certificate section, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subsection {
    List(Vec<u64>),
    Range(u64, u64),
    /// `magnitude` is big-endian; bit `j` stands for serial `start + j`.
    Bitmap {
        start: u64,
        magnitude: Vec<u8>,
    },
}

/// Exact encoded size of a bitmap subsection spanning `lo..=hi`.
fn bitmap_cost(lo: u64, hi: u64) -> u64 {
    let top_bit = hi - lo;
    let bytes = top_bit / 8 + 1;
    // The highest bit is always set; if it is bit 7 of its byte the mpint
    // needs a leading zero byte to stay positive.
    let pad = u64::from(top_bit % 8 == 7);
    SUBSECTION_HEADER + 8 + 4 + bytes + pad
}

#[derive(Clone, Copy)]
enum Closed {
    Start,
    Range { from_open: bool },
    Bitmap { first_run: usize, from_open: bool },
}

/// Plans the subsections for `runs`: sorted, disjoint, non-adjacent
/// inclusive ranges, none containing serial 0.
pub(crate) fn plan(runs: &[(u64, u64)]) -> Vec<Subsection> {
    const INF: u64 = u64::MAX / 4;
    let n = runs.len();
    // open[k]: best cost of runs[..k] ending inside a list subsection that
    // further list entries can join; closed[k]: ending any other way.
    let mut open = vec![INF; n + 1];
    let mut closed = vec![INF; n + 1];
    let mut open_from_open = vec![false; n + 1];
    let mut closed_how = vec![Closed::Start; n + 1];
    closed[0] = 0;

    let best = |open: &[u64], closed: &[u64], i: usize| -> (u64, bool) {
        if open[i] < closed[i] {
            (open[i], true)
        } else {
            (closed[i], false)
        }
    };
    // Candidate bitmap starts, keys increasing from front to back.
    let mut window: VecDeque<(usize, i128)> = VecDeque::new();

    for (k, &(lo, hi)) in runs.iter().enumerate() {
        let len = hi - lo + 1;
        let (before, before_open) = best(&open, &closed, k);

        if len <= MAX_LIST_RUN {
            let (from_open, cost) = if open[k] <= closed[k] + SUBSECTION_HEADER {
                (true, open[k])
            } else {
                (false, closed[k] + SUBSECTION_HEADER)
            };
            open[k + 1] = cost + 8 * len;
            open_from_open[k + 1] = from_open;
        }

        closed[k + 1] = before + RANGE_COST;
        closed_how[k + 1] = Closed::Range {
            from_open: before_open,
        };

        let key = i128::from(before) * 8 - i128::from(lo);
        while window.back().is_some_and(|&(_, back)| back >= key) {
            window.pop_back();
        }
        window.push_back((k, key));
        while window
            .front()
            .is_some_and(|&(i, _)| hi - runs[i].0 >= MAX_BITMAP_BITS)
        {
            window.pop_front();
        }
        if let Some(&(i, _)) = window.front() {
            let (start_cost, from_open) = best(&open, &closed, i);
            let cost = start_cost + bitmap_cost(runs[i].0, hi);
            if cost < closed[k + 1] {
                closed[k + 1] = cost;
                closed_how[k + 1] = Closed::Bitmap {
                    first_run: i,
                    from_open,
                };
            }
        }
    }

    // Walk the choices back from the end, then emit them in order.
    enum Step {
        List(usize),
        Range(usize),
        Bitmap(usize, usize),
    }
    let mut steps = Vec::new();
    let (mut k, mut in_open) = (n, open[n] < closed[n]);
    while k > 0 {
        if in_open {
            steps.push(Step::List(k - 1));
            in_open = open_from_open[k];
            k -= 1;
        } else {
            match closed_how[k] {
                Closed::Start => break,
                Closed::Range { from_open } => {
                    steps.push(Step::Range(k - 1));
                    in_open = from_open;
                    k -= 1;
                }
                Closed::Bitmap {
                    first_run,
                    from_open,
                } => {
                    steps.push(Step::Bitmap(first_run, k - 1));
                    in_open = from_open;
                    k = first_run;
                }
            }
        }
    }
    steps.reverse();

    let mut out: Vec<Subsection> = Vec::new();
    for step in steps {
        match step {
            Step::List(r) => {
                let (lo, hi) = runs[r];
                if let Some(Subsection::List(list)) = out.last_mut() {
                    list.extend(lo..=hi);
                } else {
                    out.push(Subsection::List((lo..=hi).collect()));
                }
            }
            Step::Range(r) => out.push(Subsection::Range(runs[r].0, runs[r].1)),
            Step::Bitmap(first, last) => out.push(bitmap(&runs[first..=last])),
        }
    }
    out
}

fn bitmap(runs: &[(u64, u64)]) -> Subsection {
    let start = runs[0].0;
    let top = runs[runs.len() - 1].1 - start;
    let bytes = usize::try_from(top / 8 + 1).unwrap_or(MAX_BIGNUM_BYTES);
    let mut magnitude = vec![0u8; bytes];
    for &(lo, hi) in runs {
        for serial in lo..=hi {
            let bit = serial - start;
            let byte = bytes - 1 - usize::try_from(bit / 8).unwrap_or(0);
            magnitude[byte] |= 1 << (bit % 8);
        }
    }
    Subsection::Bitmap { start, magnitude }
}

/// Encoded size of a plan, for tests and benchmarks.
#[cfg(test)]
pub(crate) fn plan_cost(plan: &[Subsection]) -> u64 {
    plan.iter()
        .map(|s| match s {
            Subsection::List(l) => SUBSECTION_HEADER + 8 * l.len() as u64,
            Subsection::Range(..) => RANGE_COST,
            Subsection::Bitmap { magnitude, .. } => {
                let pad = u64::from(magnitude[0] & 0x80 != 0);
                SUBSECTION_HEADER + 8 + 4 + magnitude.len() as u64 + pad
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs_of(serials: &[u64]) -> Vec<(u64, u64)> {
        crate::SerialSet::from_serials(serials.to_vec())
            .unwrap()
            .ranges()
            .collect()
    }

    #[test]
    fn lone_serials_share_one_list() {
        let p = plan(&runs_of(&[5, 1_000_000, 9_000_000_000]));
        assert_eq!(p, vec![Subsection::List(vec![5, 1_000_000, 9_000_000_000])]);
    }

    #[test]
    fn long_run_is_a_range() {
        let p = plan(&[(10, 10_000_000)]);
        assert_eq!(p, vec![Subsection::Range(10, 10_000_000)]);
    }

    #[test]
    fn dense_serials_become_bitmaps_no_wider_than_openssh_reads() {
        // Every third serial over 100,000: a bitmap is best, but one bitmap
        // would need 12,500 bytes, so it must be split.
        let serials: Vec<u64> = (1..=100_000).step_by(3).collect();
        let p = plan(&runs_of(&serials));
        assert!(p.len() >= 7, "{} subsections", p.len());
        for s in &p {
            match s {
                Subsection::Bitmap { magnitude, .. } => {
                    assert!(magnitude.len() <= MAX_BIGNUM_BYTES)
                }
                other => panic!("expected only bitmaps, got {other:?}"),
            }
        }
        // Within a few header bytes per bitmap of the ideal.
        let ideal = 100_000 / 8;
        assert!(plan_cost(&p) < ideal + 30 * p.len() as u64);
    }

    #[test]
    fn never_worse_than_all_list_or_all_range() {
        let serials: Vec<u64> = vec![1, 2, 3, 4, 10, 12, 14, 100, 101, 5000, 5001, 5002];
        let runs = runs_of(&serials);
        let p = plan(&runs);
        let all_list = SUBSECTION_HEADER + 8 * serials.len() as u64;
        let all_range = RANGE_COST * runs.len() as u64;
        assert!(plan_cost(&p) <= all_list.min(all_range));
    }
}
