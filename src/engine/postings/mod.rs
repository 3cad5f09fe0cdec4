//! The in-memory inverted index: landmark key -> the global frames where it occurs.
//!
//! Every song gets a stretch of one global timeline (`base .. base + frames`, with a gap
//! between songs), so a posting is a single `u32` and the time-offset difference of a hit,
//! `posting - query_frame`, names the song and the offset in it at once.
//!
//! Layout: compressed sparse rows over the whole key space (`offsets[key] .. offsets[key + 1]`
//! into `entries`), built with a counting sort. Songs added later go to a small sorted side list
//! that is merged in once it grows; removed songs are filtered out at query time and dropped at
//! the next merge. The index is derived data: opening a library loads it from the file it was
//! saved to (`file.rs` in this folder) or rebuilds it from the store's peaks.
//!
//! The index also keeps every song's peaks (4 bytes each, a fifth of its postings), so that a
//! query can re-check a few candidate songs exactly against all their landmarks without
//! looking up every key in the whole library (see the matcher's hit budget).

use std::collections::HashSet;

use super::landmarks::{self, BIN_BITS, KEY_SPACE, Landmark, PairingRule};
use super::peaks::Peak;

mod file;
mod side;
pub use file::{SavedIndex, Stamp};
use side::SideList;

/// Frames left empty between two songs on the global timeline, so that a clip aligned slightly
/// before a song's start still falls to that song.
pub const SONG_GAP_FRAMES: u32 = 64;

/// Where a song lives on the global timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SongSpan {
    /// The song's id in the store.
    pub song_id: i64,
    /// First global frame of the song.
    pub base: u32,
    /// Number of frames.
    pub num_frames: u32,
    /// Where the song's peaks start in the forward store.
    peaks_start: usize,
    /// Number of the song's peaks.
    peaks_len: u32,
}

impl SongSpan {
    /// Number of the song's peaks the index keeps.
    pub fn num_peaks(&self) -> u32 {
        self.peaks_len
    }
}

#[cfg(test)]
impl SongSpan {
    /// A span with no peaks, for tests of the scoring.
    pub(crate) fn for_test(song_id: i64, base: u32, num_frames: u32) -> Self {
        Self {
            song_id,
            base,
            num_frames,
            peaks_start: 0,
            peaks_len: 0,
        }
    }
}

/// Errors of the inverted index.
#[derive(Debug, thiserror::Error)]
pub enum PostingsError {
    /// The global timeline (u32 frames) is full.
    #[error("the in-memory index is full: at most {max_hours:.0} hours of audio fit one index")]
    Full {
        /// Capacity in hours.
        max_hours: f64,
    },
    /// One song is longer than the forward store can address.
    #[error("a song of more than {max_hours:.0} hours cannot be indexed")]
    SongTooLong {
        /// Longest song, in hours.
        max_hours: f64,
    },
}

/// Bits of a stored peak's bin (bins fit the key's anchor-bin field, which the configuration
/// checks).
const PEAK_BIN_BITS: u32 = BIN_BITS;
/// Frames a song may have: its peaks are stored as `frame << PEAK_BIN_BITS | bin` in a `u32`.
/// The index refuses a song with a frame from here on.
pub const MAX_SONG_FRAMES: u32 = 1 << (32 - PEAK_BIN_BITS);

fn pack_peak(peak: &Peak) -> u32 {
    peak.frame << PEAK_BIN_BITS | u32::from(peak.bin)
}

fn unpack_peak(packed: u32) -> Peak {
    Peak {
        frame: packed >> PEAK_BIN_BITS,
        bin: (packed & ((1 << PEAK_BIN_BITS) - 1)) as u16,
    }
}

/// Compressed sparse rows by counting sort, with a single key-space table: keys are counted,
/// then the same postings are placed in the same order, and the table of where each key's next
/// posting goes becomes the key offsets (shifted by one key) once all are placed.
struct CsrBuilder {
    /// Counting: `next[key + 1]` counts the key. Placing: `next[key]` is where the key's next
    /// posting goes.
    next: Vec<u32>,
    entries: Vec<u32>,
}

impl CsrBuilder {
    fn new() -> Self {
        Self {
            next: vec![0; KEY_SPACE + 1],
            entries: Vec::new(),
        }
    }

    #[inline]
    fn count(&mut self, key: u32) {
        self.count_many(key, 1);
    }

    #[inline]
    fn count_many(&mut self, key: u32, postings: u32) {
        self.next[key as usize + 1] += postings;
    }

    /// Ends counting: every key's postings get their stretch of the entries.
    fn start_placing(&mut self) {
        for key in 0..KEY_SPACE {
            self.next[key + 1] += self.next[key];
        }
        self.entries = vec![0; self.next[KEY_SPACE] as usize];
    }

    /// Places one counted posting. Callers present exactly the postings they counted: more
    /// for a key would take the next keys' slots (only a posting past the end of the entries
    /// is dropped).
    #[inline]
    fn place(&mut self, key: u32, value: u32) {
        let slot = &mut self.next[key as usize];
        if let Some(entry) = self.entries.get_mut(*slot as usize) {
            *entry = value;
            *slot += 1;
        }
    }

    /// The key offsets and entries. After placing, `next[key]` is the end of the key's postings,
    /// which is the start of the next key's. No postings at all gives no table (the state of
    /// an index never merged).
    fn finish(mut self) -> (Vec<u32>, Vec<u32>) {
        if self.entries.is_empty() {
            return (Vec::new(), Vec::new());
        }
        self.next.copy_within(0..KEY_SPACE, 1);
        self.next[0] = 0;
        (self.next, self.entries)
    }
}

/// Inverted index over landmark keys.
pub struct InvertedIndex {
    offsets: Vec<u32>,
    entries: Vec<u32>,
    /// Songs added since the last merge.
    pending: SideList,
    spans: Vec<SongSpan>,
    removed: HashSet<i64>,
    next_base: u32,
    frame_secs: f64,
    /// How songs' peaks are paired into landmarks.
    rule: PairingRule,
    /// Every song's peaks, packed, in span order.
    forward: Vec<u32>,
}

impl InvertedIndex {
    /// An empty index whose songs are paired with `rule`; `frame_secs` is only used to state
    /// capacity in errors.
    pub fn new(frame_secs: f64, rule: PairingRule) -> Self {
        Self {
            offsets: Vec::new(),
            entries: Vec::new(),
            pending: SideList::default(),
            spans: Vec::new(),
            removed: HashSet::new(),
            next_base: 0,
            frame_secs,
            rule,
            forward: Vec::new(),
        }
    }

    /// Builds the index in one go from songs' peaks. `visit` is called twice and must present
    /// the same songs in the same order both times: once to count keys, once to fill the
    /// postings.
    pub fn build<F>(frame_secs: f64, rule: PairingRule, mut visit: F) -> Result<Self, PostingsError>
    where
        F: FnMut(&mut dyn FnMut(i64, u32, &[Peak])),
    {
        let mut index = Self::new(frame_secs, rule);
        let mut csr = CsrBuilder::new();
        let mut spans = Vec::new();
        let mut forward = Vec::new();
        let mut next_base = 0u32;
        let mut overflow = false;
        let mut landmarks = Vec::new();
        visit(&mut |song_id, num_frames, peaks| {
            if num_frames >= MAX_SONG_FRAMES || peaks.iter().any(|p| p.frame >= MAX_SONG_FRAMES) {
                // Stores refuse such songs since `check_song_fits`; one stored before must not
                // make the whole library unusable. The second pass skips it too.
                tracing::warn!(
                    "song {song_id} is longer than one song may be ({:.0} hours); it is left out of the search",
                    f64::from(MAX_SONG_FRAMES) * frame_secs / 3600.0
                );
                return;
            }
            landmarks.clear();
            landmarks::landmarks(peaks, rule, &mut landmarks);
            for landmark in &landmarks {
                csr.count(landmark.key);
            }
            spans.push(SongSpan {
                song_id,
                base: next_base,
                num_frames,
                peaks_start: forward.len(),
                peaks_len: peaks.len() as u32,
            });
            forward.extend(peaks.iter().map(pack_peak));
            match next_base
                .checked_add(num_frames)
                .and_then(|b| b.checked_add(SONG_GAP_FRAMES))
            {
                Some(base) => next_base = base,
                None => overflow = true,
            }
        });
        if overflow {
            return Err(index.full());
        }
        csr.start_placing();
        let mut song_index = 0usize;
        visit(&mut |song_id, _num_frames, peaks| {
            // The second pass must present the songs of the first; anything else is skipped
            // rather than written into another song's slots.
            let Some(span) = spans.get(song_index).filter(|s| s.song_id == song_id) else {
                return;
            };
            let base = span.base;
            song_index += 1;
            landmarks.clear();
            landmarks::landmarks(peaks, rule, &mut landmarks);
            for landmark in &landmarks {
                csr.place(landmark.key, base + landmark.frame);
            }
        });
        (index.offsets, index.entries) = csr.finish();
        index.spans = spans;
        index.forward = forward;
        index.next_base = next_base;
        Ok(index)
    }

    fn full(&self) -> PostingsError {
        PostingsError::Full {
            max_hours: f64::from(u32::MAX) * self.frame_secs / 3600.0,
        }
    }

    fn too_long(&self) -> PostingsError {
        PostingsError::SongTooLong {
            max_hours: f64::from(MAX_SONG_FRAMES) * self.frame_secs / 3600.0,
        }
    }

    /// Adds one song from its peaks.
    pub fn add_song(
        &mut self,
        song_id: i64,
        num_frames: u32,
        peaks: &[Peak],
    ) -> Result<(), PostingsError> {
        if num_frames >= MAX_SONG_FRAMES || peaks.iter().any(|p| p.frame >= MAX_SONG_FRAMES) {
            return Err(self.too_long());
        }
        if self.removed.contains(&song_id) {
            // The store gave a removed song's id to this one (SQLite does when the removed
            // song had the highest id). Removal goes by id, so the old postings must go first
            // or this song's would be ignored with them.
            self.merge();
        }
        let base = self.next_base;
        let next = base
            .checked_add(num_frames)
            .and_then(|b| b.checked_add(SONG_GAP_FRAMES))
            .ok_or_else(|| self.full())?;
        self.next_base = next;
        self.spans.push(SongSpan {
            song_id,
            base,
            num_frames,
            peaks_start: self.forward.len(),
            peaks_len: peaks.len() as u32,
        });
        self.forward.extend(peaks.iter().map(pack_peak));
        let mut landmarks = Vec::new();
        landmarks::landmarks(peaks, self.rule, &mut landmarks);
        self.pending
            .extend(landmarks.iter().map(|l| (l.key, base + l.frame)));
        if self.pending.len() > (self.entries.len() / 4).max(4_000_000) {
            self.merge();
        }
        Ok(())
    }

    /// Removes a song: its postings are ignored from now on and dropped at the next merge.
    pub fn remove_song(&mut self, song_id: i64) -> bool {
        if self.spans.iter().any(|s| s.song_id == song_id) {
            self.removed.insert(song_id)
        } else {
            false
        }
    }

    /// Folds the side list into the main arrays and drops removed songs.
    pub fn merge(&mut self) {
        let removed_ranges: Vec<(u32, u32)> = self
            .spans
            .iter()
            .filter(|s| self.removed.contains(&s.song_id))
            .map(|s| (s.base, s.base + s.num_frames))
            .collect();
        let is_removed = |frame: u32| removed_ranges.iter().any(|&(a, b)| frame >= a && frame < b);
        let mut csr = CsrBuilder::new();
        let old_key_count = self.offsets.len().saturating_sub(1);
        let old_postings = |key: usize| {
            let (a, b) = (self.offsets[key] as usize, self.offsets[key + 1] as usize);
            self.entries[a..b].iter().filter(|&&f| !is_removed(f))
        };
        let new_postings = || {
            self.pending
                .pairs()
                .iter()
                .filter(|&&(_, f)| !is_removed(f))
        };
        for key in 0..old_key_count {
            csr.count_many(key as u32, old_postings(key).count() as u32);
        }
        for &(key, _) in new_postings() {
            csr.count(key);
        }
        csr.start_placing();
        for key in 0..old_key_count {
            for &frame in old_postings(key) {
                csr.place(key as u32, frame);
            }
        }
        for &(key, frame) in new_postings() {
            csr.place(key, frame);
        }
        (self.offsets, self.entries) = csr.finish();
        self.pending.clear();
        self.spans.retain(|s| !self.removed.contains(&s.song_id));
        if !self.removed.is_empty() {
            let mut forward = Vec::with_capacity(self.forward.len());
            for span in &mut self.spans {
                let start = forward.len();
                forward.extend_from_slice(
                    &self.forward[span.peaks_start..span.peaks_start + span.peaks_len as usize],
                );
                span.peaks_start = start;
            }
            self.forward = forward;
        }
        self.removed.clear();
    }

    /// A song's peaks, in time order.
    pub fn song_peaks(&self, span: &SongSpan) -> impl Iterator<Item = Peak> + '_ {
        self.forward[span.peaks_start..span.peaks_start + span.peaks_len as usize]
            .iter()
            .map(|&packed| unpack_peak(packed))
    }

    /// A song's peaks from frame `frames.start` up to (not including) `frames.end`, in time
    /// order.
    pub fn song_peaks_between(
        &self,
        span: &SongSpan,
        frames: std::ops::Range<u32>,
    ) -> impl Iterator<Item = Peak> + '_ {
        let all = &self.forward[span.peaks_start..span.peaks_start + span.peaks_len as usize];
        let start = all.partition_point(|&packed| unpack_peak(packed).frame < frames.start);
        let end =
            start + all[start..].partition_point(|&packed| unpack_peak(packed).frame < frames.end);
        all[start..end].iter().map(|&packed| unpack_peak(packed))
    }

    /// Appends a song's landmarks (the same the index holds for it) to `out`.
    pub fn song_landmarks(&self, span: &SongSpan, out: &mut Vec<Landmark>) {
        let mut peaks = Vec::new();
        self.for_each_song_landmark(span, &mut peaks, |landmark| out.push(landmark));
    }

    /// Calls `visit` with each of a song's landmarks (those [`song_landmarks`] lists) without
    /// collecting them; `peaks` is scratch space for the song's unpacked peaks, reusable
    /// across songs.
    ///
    /// [`song_landmarks`]: InvertedIndex::song_landmarks
    pub fn for_each_song_landmark(
        &self,
        span: &SongSpan,
        peaks: &mut Vec<Peak>,
        visit: impl FnMut(Landmark),
    ) {
        peaks.clear();
        peaks.extend(self.song_peaks(span));
        landmarks::for_each_landmark(peaks, self.rule, visit);
    }

    /// Calls `visit` with each of a song's landmarks whose anchor frame lies in `frames`: the
    /// same landmarks [`for_each_song_landmark`] gives there, from the peaks of that stretch
    /// and of the targets after it. `peaks` is scratch space.
    ///
    /// [`for_each_song_landmark`]: InvertedIndex::for_each_song_landmark
    pub fn for_each_song_landmark_between(
        &self,
        span: &SongSpan,
        frames: std::ops::Range<u32>,
        peaks: &mut Vec<Peak>,
        mut visit: impl FnMut(Landmark),
    ) {
        let targets_end = frames.end.saturating_add(self.rule.max_delta_frames + 1);
        peaks.clear();
        peaks.extend(self.song_peaks_between(span, frames.start..targets_end));
        landmarks::for_each_landmark(peaks, self.rule, |landmark| {
            if landmark.frame < frames.end {
                visit(landmark);
            }
        });
    }

    /// Sorts the side list so lookups can binary-search all of it. Lookups are correct without
    /// it, only slower: call it after a batch of additions.
    pub fn prepare(&mut self) {
        self.pending.prepare();
    }

    /// Length of a key's posting list in the merged index (the side list not counted): what a
    /// lookup of the key will cost, and how common the key is.
    pub fn posting_len(&self, key: u32) -> usize {
        let key = key as usize;
        match (self.offsets.get(key), self.offsets.get(key + 1)) {
            (Some(&a), Some(&b)) => (b - a) as usize,
            _ => 0,
        }
    }

    /// Calls `on_posting(global_frame)` for every occurrence of `key` (removed songs included;
    /// callers filter by span).
    #[inline]
    pub fn for_each_posting(&self, key: u32, mut on_posting: impl FnMut(u32)) {
        let key = key as usize;
        if key + 1 < self.offsets.len() {
            let (a, b) = (self.offsets[key] as usize, self.offsets[key + 1] as usize);
            for &frame in &self.entries[a..b] {
                on_posting(frame);
            }
        }
        self.pending.for_each_posting(key as u32, on_posting);
    }

    /// The song a global frame (or an alignment near a song's start) belongs to, unless removed.
    pub fn song_at(&self, global_frame: u32) -> Option<&SongSpan> {
        let probe = global_frame.saturating_add(SONG_GAP_FRAMES / 2);
        let idx = self.spans.partition_point(|s| s.base <= probe);
        let span = self.spans.get(idx.checked_sub(1)?)?;
        if self.removed.contains(&span.song_id) {
            return None;
        }
        Some(span)
    }

    /// All song spans (removed ones included), ordered by base frame.
    pub fn spans(&self) -> &[SongSpan] {
        &self.spans
    }

    /// Whether a song was removed since the last merge.
    pub fn is_removed(&self, song_id: i64) -> bool {
        !self.removed.is_empty() && self.removed.contains(&song_id)
    }

    /// The span of a song by id.
    pub fn span_of(&self, song_id: i64) -> Option<&SongSpan> {
        self.spans
            .iter()
            .find(|s| s.song_id == song_id && !self.removed.contains(&s.song_id))
    }

    /// Number of live songs.
    pub fn song_count(&self) -> usize {
        self.spans.len() - self.removed.len()
    }

    /// Number of postings held (including the side list).
    pub fn posting_count(&self) -> usize {
        self.entries.len() + self.pending.len()
    }

    /// Bytes of memory the index holds.
    pub fn memory_bytes(&self) -> usize {
        self.offsets.capacity() * 4
            + self.entries.capacity() * 4
            + self.pending.memory_bytes()
            + self.forward.capacity() * 4
            + self.spans.capacity() * std::mem::size_of::<SongSpan>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PairingRule {
        PairingRule {
            fan_value: 1,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        }
    }

    fn peak(frame: u32, bin: u16) -> Peak {
        Peak { frame, bin }
    }

    #[test]
    fn a_song_given_a_removed_songs_id_is_found() {
        let key = landmarks::pack_key(10, 2, 2);
        let mut index = InvertedIndex::new(0.032, rule());
        index.add_song(1, 100, &[peak(0, 10), peak(2, 12)]).unwrap();
        index.add_song(2, 100, &[peak(5, 10), peak(7, 12)]).unwrap();
        assert!(index.remove_song(2));
        index
            .add_song(2, 100, &[peak(20, 10), peak(22, 12)])
            .unwrap();
        index.prepare();
        let mut got = Vec::new();
        index.for_each_posting(key, |f| {
            got.push(index.song_at(f).map(|span| (span.song_id, f - span.base)))
        });
        got.sort_unstable();
        assert_eq!(got, vec![Some((1, 0)), Some((2, 20))]);
        assert_eq!(index.song_count(), 2);
    }

    #[test]
    fn build_add_remove_and_merge_agree() {
        // Song 7: two pairs with the key of (bin 10 -> 12, dt 2) at frames 0 and 10.
        // Song 8: the same pair at its frame 1.
        let songs: Vec<(i64, u32, Vec<Peak>)> = vec![
            (
                7,
                100,
                vec![peak(0, 10), peak(2, 12), peak(10, 10), peak(12, 12)],
            ),
            (8, 50, vec![peak(1, 10), peak(3, 12)]),
        ];
        let key = landmarks::pack_key(10, 2, 2);
        let built = InvertedIndex::build(0.032, rule(), |visit| {
            for (id, frames, peaks) in &songs {
                visit(*id, *frames, peaks);
            }
        })
        .unwrap();
        let mut incremental = InvertedIndex::new(0.032, rule());
        for (id, frames, peaks) in &songs {
            incremental.add_song(*id, *frames, peaks).unwrap();
        }
        let unprepared_hits = {
            let mut got = Vec::new();
            incremental.for_each_posting(key, |f| got.push(f));
            got.sort_unstable();
            got
        };
        incremental.prepare();
        let song_8_base = 100 + SONG_GAP_FRAMES;
        assert_eq!(unprepared_hits, vec![0, 10, song_8_base + 1]);
        for index in [&built, &incremental] {
            let mut got = Vec::new();
            index.for_each_posting(key, |f| got.push(f));
            got.sort_unstable();
            assert_eq!(got, vec![0, 10, song_8_base + 1]);
            assert_eq!(index.song_at(song_8_base + 1).unwrap().song_id, 8);
            assert_eq!(index.song_at(3).unwrap().song_id, 7);
            let span = *index.span_of(8).unwrap();
            assert_eq!(index.song_peaks(&span).collect::<Vec<_>>(), songs[1].2);
        }
        assert_eq!(built.posting_len(key), 3);
        assert!(incremental.remove_song(7));
        assert!(incremental.song_at(3).is_none());
        incremental.merge();
        let mut got = Vec::new();
        incremental.for_each_posting(key, |f| got.push(f));
        assert_eq!(got, vec![song_8_base + 1]);
        assert_eq!(incremental.song_count(), 1);
        // The forward store was compacted and still gives song 8's peaks and landmarks.
        let span = *incremental.span_of(8).unwrap();
        assert_eq!(
            incremental.song_peaks(&span).collect::<Vec<_>>(),
            songs[1].2
        );
        let mut song_landmarks = Vec::new();
        incremental.song_landmarks(&span, &mut song_landmarks);
        assert_eq!(song_landmarks, vec![Landmark { key, frame: 1 }]);
    }

    /// Songs of pseudo-random peaks, from a fixed generator.
    fn random_songs(count: i64) -> Vec<(i64, u32, Vec<Peak>)> {
        let mut state = 12_345u64;
        let mut next = move |bound: u32| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % u64::from(bound)) as u32
        };
        (1..=count)
            .map(|id| {
                let mut peaks: Vec<Peak> =
                    (0..300).map(|_| peak(next(400), next(40) as u16)).collect();
                peaks.sort_unstable();
                peaks.dedup();
                (id, 400, peaks)
            })
            .collect()
    }

    /// Every key's postings, sorted, straight from the songs' landmarks.
    fn naive_postings(
        songs: &[(i64, u32, Vec<Peak>)],
        removed: &[i64],
    ) -> std::collections::BTreeMap<u32, Vec<u32>> {
        let mut postings = std::collections::BTreeMap::<u32, Vec<u32>>::new();
        let mut base = 0;
        for (id, frames, peaks) in songs {
            if !removed.contains(id) {
                let mut found = Vec::new();
                landmarks::landmarks(peaks, rule(), &mut found);
                for landmark in found {
                    postings
                        .entry(landmark.key)
                        .or_default()
                        .push(base + landmark.frame);
                }
            }
            base += frames + SONG_GAP_FRAMES;
        }
        postings.values_mut().for_each(|list| list.sort_unstable());
        postings
    }

    fn postings_of(
        index: &InvertedIndex,
        keys: impl Iterator<Item = u32>,
    ) -> std::collections::BTreeMap<u32, Vec<u32>> {
        keys.map(|key| {
            let mut list = Vec::new();
            index.for_each_posting(key, |frame| list.push(frame));
            list.sort_unstable();
            (key, list)
        })
        .filter(|(_, list)| !list.is_empty())
        .collect()
    }

    #[test]
    fn build_and_merge_hold_every_posting_and_no_other() {
        let songs = random_songs(6);
        let expected = naive_postings(&songs, &[]);
        assert!(expected.len() > 1000, "too few keys to test");
        let built = InvertedIndex::build(0.032, rule(), |visit| {
            for (id, frames, peaks) in &songs {
                visit(*id, *frames, peaks);
            }
        })
        .unwrap();
        let mut merged = InvertedIndex::new(0.032, rule());
        for (i, (id, frames, peaks)) in songs.iter().enumerate() {
            merged.add_song(*id, *frames, peaks).unwrap();
            if i == 2 {
                merged.merge(); // half in the main arrays, half in the side list
            }
        }
        merged.merge();
        let total: usize = expected.values().map(Vec::len).sum();
        for index in [&built, &merged] {
            assert_eq!(index.entries.len(), total);
            // The keys next to used ones are the likeliest to show a misplaced posting.
            let probed = expected
                .keys()
                .flat_map(|&k| [k.saturating_sub(1), k, k + 1]);
            assert_eq!(postings_of(index, probed), expected);
        }
        // Removing a song and merging drops its postings and only those.
        assert!(merged.remove_song(3));
        merged.merge();
        let expected = naive_postings(&songs, &[3]);
        let probed = expected
            .keys()
            .flat_map(|&k| [k.saturating_sub(1), k, k + 1]);
        assert_eq!(postings_of(&merged, probed), expected);
    }

    #[test]
    fn an_empty_index_holds_no_key_table() {
        let built = InvertedIndex::build(0.032, rule(), |_| {}).unwrap();
        assert!(built.memory_bytes() < 1 << 20, "{}", built.memory_bytes());
        assert_eq!(built.posting_len(5), 0);
        let mut merged = InvertedIndex::new(0.032, rule());
        merged
            .add_song(1, 100, &[peak(0, 10), peak(2, 12)])
            .unwrap();
        merged.remove_song(1);
        merged.merge();
        assert!(merged.memory_bytes() < 1 << 20, "{}", merged.memory_bytes());
    }

    #[test]
    fn songs_too_long_for_the_forward_store_are_refused() {
        let mut index = InvertedIndex::new(0.032, rule());
        let err = index
            .add_song(1, MAX_SONG_FRAMES, &[peak(0, 1)])
            .unwrap_err();
        assert!(matches!(err, PostingsError::SongTooLong { .. }));
    }

    #[test]
    fn a_song_too_long_for_the_index_is_left_out_of_a_build_and_the_others_are_found() {
        let key = landmarks::pack_key(10, 2, 2);
        let songs: [(i64, u32, Vec<Peak>); 3] = [
            (1, 100, vec![peak(0, 10), peak(2, 12)]),
            (2, MAX_SONG_FRAMES, vec![peak(0, 10), peak(2, 12)]),
            (3, 100, vec![peak(5, 10), peak(7, 12)]),
        ];
        let index = InvertedIndex::build(0.032, rule(), |visit| {
            for (id, frames, peaks) in &songs {
                visit(*id, *frames, peaks);
            }
        })
        .expect("a build");
        let ids: Vec<i64> = index.spans().iter().map(|s| s.song_id).collect();
        assert_eq!(ids, [1, 3]);
        let mut found = Vec::new();
        index.for_each_posting(key, |frame| {
            found.push(index.song_at(frame).map(|s| s.song_id))
        });
        assert_eq!(found, [Some(1), Some(3)]);
    }
}
