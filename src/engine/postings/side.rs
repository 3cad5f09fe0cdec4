//! The side list: postings of songs added since the last merge, as (key, global frame) pairs.
//!
//! Adding a song appends its pairs; [`SideList::prepare`] sorts them and builds a directory
//! of where each run of keys sharing their top bits starts, so that finding a key's postings
//! costs one read of the directory and a short search of a few cache lines. A plain binary
//! search of the whole list took about 25 dependent reads per key once the list held millions
//! of pairs (it may grow to a quarter of the main postings before a merge), and a 10 s query
//! looks up some 13,000 keys. Pairs appended since the last `prepare` are scanned.

use super::KEY_SPACE;
use crate::engine::landmarks::KEY_BITS;

/// Pairs per directory bucket aimed at: a bucket then spans a few cache lines.
const PAIRS_PER_BUCKET: usize = 16;

/// Side-list postings, the first `sorted` of them sorted and indexed by `directory`.
#[derive(Default)]
pub(super) struct SideList {
    pairs: Vec<(u32, u32)>,
    sorted: usize,
    /// `directory[b]`: the first sorted pair whose key's top `directory_bits` bits are at
    /// least `b`; one entry more than there are buckets.
    directory: Vec<u32>,
    directory_bits: u32,
}

impl SideList {
    /// A side list of `pairs` already sorted (as [`SideList::sorted_pairs`] gave them).
    pub(super) fn from_sorted(pairs: Vec<(u32, u32)>) -> Self {
        let mut side = Self {
            sorted: pairs.len(),
            pairs,
            ..Self::default()
        };
        side.build_directory();
        side
    }

    /// Appends pairs, searched by scanning until the next [`prepare`](SideList::prepare).
    pub(super) fn extend(&mut self, pairs: impl IntoIterator<Item = (u32, u32)>) {
        self.pairs.extend(pairs);
    }

    /// Sorts every pair and rebuilds the directory, unless nothing was added since the last
    /// time.
    pub(super) fn prepare(&mut self) {
        if self.sorted < self.pairs.len() {
            // The pairs' own order, compared as one word (faster than the tuples).
            self.pairs
                .sort_unstable_by_key(|&(key, frame)| u64::from(key) << 32 | u64::from(frame));
            self.sorted = self.pairs.len();
            self.build_directory();
        }
    }

    fn build_directory(&mut self) {
        let sorted = &self.pairs[..self.sorted];
        let buckets_wanted = (sorted.len() / PAIRS_PER_BUCKET).max(1);
        self.directory_bits = buckets_wanted.ilog2().min(KEY_BITS);
        let buckets = 1usize << self.directory_bits;
        self.directory.clear();
        self.directory.reserve(buckets + 1);
        let mut at = 0usize;
        for bucket in 0..buckets {
            while at < sorted.len() && self.bucket_of(sorted[at].0) < bucket {
                at += 1;
            }
            self.directory.push(at as u32);
        }
        self.directory.push(sorted.len() as u32);
    }

    fn bucket_of(&self, key: u32) -> usize {
        (key >> (KEY_BITS - self.directory_bits)) as usize
    }

    /// Calls `on_posting` with the frame of every pair with `key`: the sorted ones in order,
    /// then those appended since.
    pub(super) fn for_each_posting(&self, key: u32, mut on_posting: impl FnMut(u32)) {
        if self.pairs.is_empty() {
            return;
        }
        let (sorted, tail) = self.pairs.split_at(self.sorted);
        if (key as usize) < KEY_SPACE && !sorted.is_empty() {
            let bucket = self.bucket_of(key);
            let (start, end) = (
                self.directory[bucket] as usize,
                self.directory[bucket + 1] as usize,
            );
            let bucket_pairs = &sorted[start..end];
            let first = bucket_pairs.partition_point(|&(k, _)| k < key);
            for &(k, frame) in &bucket_pairs[first..] {
                if k != key {
                    break;
                }
                on_posting(frame);
            }
        }
        for &(k, frame) in tail {
            if k == key {
                on_posting(frame);
            }
        }
    }

    /// Every pair, sorted or not.
    pub(super) fn pairs(&self) -> &[(u32, u32)] {
        &self.pairs
    }

    /// Every pair, sorted: [`prepare`](SideList::prepare)s first.
    pub(super) fn sorted_pairs(&mut self) -> &[(u32, u32)] {
        self.prepare();
        &self.pairs
    }

    /// Whether every pair is sorted and has a key inside the key space (what a list read from
    /// a file must satisfy).
    pub(super) fn is_consistent(&self) -> bool {
        self.sorted == self.pairs.len()
            && self.pairs.windows(2).all(|w| w[0] <= w[1])
            && self
                .pairs
                .iter()
                .all(|&(key, _)| (key as usize) < KEY_SPACE)
    }

    pub(super) fn len(&self) -> usize {
        self.pairs.len()
    }

    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Bytes of memory held.
    pub(super) fn memory_bytes(&self) -> usize {
        self.pairs.capacity() * 8 + self.directory.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of `key` in `pairs`, found by a plain scan, in the side list's order (sorted
    /// pairs first).
    fn scanned(pairs: &[(u32, u32)], key: u32) -> Vec<u32> {
        pairs.iter().filter(|p| p.0 == key).map(|p| p.1).collect()
    }

    fn random_pairs(count: usize, seed: u64, key_range: u32) -> Vec<(u32, u32)> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        (0..count)
            .map(|_| (next() % key_range, next() % 1_000_000))
            .collect()
    }

    #[test]
    fn finds_every_posting_of_a_key_sorted_or_appended() {
        let key_space = KEY_SPACE as u32;
        // Empty, a single bucket, many buckets; keys spread over the key space or crowded
        // into a few (long runs that cross bucket edges).
        for (count, key_range) in [
            (0, key_space),
            (5, key_space),
            (40_000, key_space),
            (40_000, 300),
        ] {
            let mut side = SideList::default();
            let first = random_pairs(count, 7 + count as u64, key_range);
            side.extend(first.iter().copied());
            side.prepare();
            let appended = random_pairs(count / 10 + 3, 99, key_range);
            side.extend(appended.iter().copied());
            let mut sorted_first = first.clone();
            sorted_first.sort_unstable();
            let all: Vec<(u32, u32)> = sorted_first.into_iter().chain(appended).collect();
            let mut keys: Vec<u32> = all.iter().map(|p| p.0).take(2_000).collect();
            keys.extend([0, 1, key_range - 1, key_space - 1, key_space, u32::MAX]);
            for key in keys {
                let mut found = Vec::new();
                side.for_each_posting(key, |frame| found.push(frame));
                assert_eq!(found, scanned(&all, key), "key {key}, {count} pairs");
            }
        }
    }

    #[test]
    fn a_list_read_back_sorted_finds_what_the_prepared_list_found() {
        let mut side = SideList::default();
        side.extend(random_pairs(10_000, 3, KEY_SPACE as u32));
        let saved = side.sorted_pairs().to_vec();
        let read = SideList::from_sorted(saved.clone());
        assert!(read.is_consistent());
        for &(key, _) in saved.iter().step_by(37) {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            side.for_each_posting(key, |f| a.push(f));
            read.for_each_posting(key, |f| b.push(f));
            assert_eq!(a, b);
            assert!(!a.is_empty());
        }
        let mut unsorted = saved;
        unsorted.swap(0, 9_999);
        assert!(!SideList::from_sorted(unsorted).is_consistent());
    }
}
