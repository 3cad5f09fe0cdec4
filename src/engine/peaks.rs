//! Spectral peaks: the constellation.
//!
//! Input: log-power frames from [`super::stft`]. Output: [`Peak`]s in time order.
//!
//! A peak is a bin that is the maximum of its time-frequency neighbourhood
//! (`± peak_neighborhood_size` bins x `± peak_neighborhood_frames` frames) and louder than the
//! amplitude floor. Candidates are ranked by their contrast (level above the mean of the
//! surrounding ±[`CONTRAST_HALF_WIDTH`] bins of the same frame), which favours tonal peaks over
//! broadband noise and is unchanged by the gentle equalisation of phones and codecs. Density
//! control keeps a candidate only if fewer than `peaks_per_second` candidates within one second
//! centred on it are stronger: the rule depends on the neighbourhood alone, never on where a clip
//! happens to start, so a clip's peaks are the song's peaks at that place.
//!
//! The picker streams: it keeps only the frames and candidates its windows need.

use std::collections::VecDeque;

use super::simd::{self, Simd, WithSimd};
use crate::config::FingerprintConfig;

/// Half-width, in bins, of the frequency window a peak's contrast is measured against.
pub const CONTRAST_HALF_WIDTH: usize = 16;

/// One point of the constellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peak {
    /// Frame index (time = frame * hop / rate).
    pub frame: u32,
    /// Bin index relative to the first bin of the analysis band.
    pub bin: u16,
}

#[derive(Clone, Copy, Debug)]
struct Candidate {
    peak: Peak,
    strength: f32,
}

struct FrameSlot {
    level_db: Vec<f32>,
    freq_max_db: Vec<f32>,
    /// Bin by bin, the maximum of `freq_max_db` over this frame and the `time_half - 1` after
    /// it, once the centre before this frame was judged.
    window_max: Vec<f32>,
}

/// Streaming peak picker.
pub struct PeakPicker {
    freq_half: usize,
    time_half: usize,
    floor_db: f32,
    density_half_frames: u32,
    max_per_window: usize,
    frames: VecDeque<FrameSlot>,
    first_frame_in_ring: u32,
    frames_seen: u32,
    next_center: u32,
    candidates: VecDeque<Candidate>,
    /// Candidates before this index in `candidates` were already judged for density.
    released: usize,
    /// Frame buffers ready for reuse.
    spare: Vec<FrameSlot>,
    /// Scratch space of the sliding maximum.
    scratch: Vec<f32>,
    /// Scratch list of one frame's candidates.
    found: Vec<Candidate>,
    /// Scratch space of judging one centre frame.
    center_scratch: CenterScratch,
}

/// Scratch space of judging one centre frame, reused from frame to frame.
#[derive(Default)]
struct CenterScratch {
    /// Per bin, the largest frequency maximum of the frames before the centre.
    max_before: Vec<f32>,
    /// Per bin, the largest frequency maximum of the frames after the centre.
    max_after: Vec<f32>,
    /// Which bins are peaks above the floor (1) or not (0).
    mask: Vec<u8>,
}

impl PeakPicker {
    /// A picker for `config`, keeping about `peaks_per_second` peaks per second.
    pub fn new(config: &FingerprintConfig, peaks_per_second: f32) -> Self {
        let fps = config.frames_per_second();
        let density_half_frames = (fps / 2.0).round().max(1.0) as u32;
        let window_secs = f64::from(2 * density_half_frames + 1) / fps;
        let max_per_window = (f64::from(peaks_per_second) * window_secs).round().max(1.0) as usize;
        Self {
            freq_half: config.peak_neighborhood_size,
            time_half: config.peak_neighborhood_frames,
            floor_db: config.min_amplitude_db,
            density_half_frames,
            max_per_window,
            frames: VecDeque::new(),
            first_frame_in_ring: 0,
            frames_seen: 0,
            next_center: 0,
            candidates: VecDeque::new(),
            released: 0,
            spare: Vec::new(),
            scratch: Vec::new(),
            found: Vec::new(),
            center_scratch: CenterScratch::default(),
        }
    }

    /// Number of frames pushed so far.
    pub fn frames_seen(&self) -> u32 {
        self.frames_seen
    }

    /// Adds the next frame; appends peaks that became final to `out`.
    pub fn push_frame(&mut self, level_db: &[f32], out: &mut Vec<Peak>) {
        simd::dispatch(PushFrame {
            picker: self,
            level_db,
            out,
        });
    }

    /// [`PeakPicker::push_frame`]'s work, inlined into the vectorised call.
    #[inline(always)]
    fn add_frame(&mut self, level_db: &[f32], out: &mut Vec<Peak>) {
        // Reuse the buffers of frames that left the ring.
        let mut slot = self.spare.pop().unwrap_or_else(|| FrameSlot {
            level_db: Vec::new(),
            freq_max_db: Vec::new(),
            window_max: Vec::new(),
        });
        slot.level_db.clear();
        slot.level_db.extend_from_slice(level_db);
        sliding_max(
            level_db,
            self.freq_half,
            &mut slot.freq_max_db,
            &mut self.scratch,
        );
        self.frames.push_back(slot);
        self.frames_seen += 1;
        // Frame `c` can be judged once frames up to c + time_half exist.
        while self.next_center + (self.time_half as u32) < self.frames_seen {
            self.judge_center();
        }
        self.trim_ring();
        self.release_candidates(false, out);
    }

    /// Ends the stream: judges the last frames and releases all remaining peaks.
    pub fn finish(&mut self, out: &mut Vec<Peak>) {
        while self.next_center < self.frames_seen {
            self.judge_center();
        }
        self.release_candidates(true, out);
    }

    fn slot(&self, frame: u32) -> Option<&FrameSlot> {
        frame
            .checked_sub(self.first_frame_in_ring)
            .and_then(|i| self.frames.get(i as usize))
    }

    fn slot_mut(&mut self, frame: u32) -> Option<&mut FrameSlot> {
        frame
            .checked_sub(self.first_frame_in_ring)
            .and_then(|i| self.frames.get_mut(i as usize))
    }

    /// Judges frame `next_center` and adds its candidates.
    ///
    /// A bin is a time maximum when it is above the frequency maxima of the `time_half` frames
    /// before it and not below those of the frames after it (plateaus along time go to the
    /// earliest frame). Both sides are the bin-by-bin maximum over `time_half` consecutive
    /// frames: the frames after centre `c` are the frames before centre `c + time_half + 1`,
    /// so each such maximum is computed once, kept in the slot of its first frame, and used
    /// on both sides.
    #[inline(always)]
    fn judge_center(&mut self) {
        let center = self.next_center;
        self.next_center += 1;
        let time_half = self.time_half as u32;
        let mut found = std::mem::take(&mut self.found);
        let mut scratch = std::mem::take(&mut self.center_scratch);
        found.clear();
        let bins = self.slot(center).map_or(0, |slot| slot.level_db.len());
        self.window_max(
            center + 1..center + time_half + 1,
            bins,
            &mut scratch.max_after,
        );
        // Kept since centre `center - time_half - 1` was judged; near the start there was none.
        let kept_before = center
            .checked_sub(time_half)
            .filter(|&first| first > 0)
            .and_then(|first| self.slot(first));
        let before = match kept_before {
            Some(slot) => &slot.window_max,
            None => {
                self.window_max(
                    center.saturating_sub(time_half)..center,
                    bins,
                    &mut scratch.max_before,
                );
                &scratch.max_before
            }
        };
        self.candidates_at(
            center,
            before,
            &scratch.max_after,
            &mut scratch.mask,
            &mut found,
        );
        if let Some(slot) = self.slot_mut(center + 1) {
            std::mem::swap(&mut slot.window_max, &mut scratch.max_after);
        }
        self.candidates.extend(found.iter().copied());
        self.found = found;
        self.center_scratch = scratch;
    }

    /// The bin-by-bin maximum of the frequency maxima of `frames` into `out` (frames outside
    /// the stream count as -inf).
    #[inline(always)]
    fn window_max(&self, frames: std::ops::Range<u32>, bins: usize, out: &mut Vec<f32>) {
        out.clear();
        out.resize(bins, f32::NEG_INFINITY);
        for frame in frames {
            if let Some(other) = self.slot(frame) {
                max_into(out, &other.freq_max_db);
            }
        }
    }

    /// Appends the peak candidates of frame `center` to `found`, given the maxima of the
    /// frames before and after it.
    #[inline(always)]
    fn candidates_at(
        &self,
        center: u32,
        before: &[f32],
        after: &[f32],
        mask: &mut Vec<u8>,
        found: &mut Vec<Candidate>,
    ) {
        let Some(slot) = self.slot(center) else {
            return;
        };
        let level = &slot.level_db;
        let bins = level.len();
        // The bins that are the maximum of their time-frequency neighbourhood and above the
        // floor, in a branch-free pass (it vectorises). Plateaus along frequency: only the
        // lowest bin of equal values counts.
        mask.clear();
        let floor = self.floor_db;
        let keep = |value: f32, freq_max: f32, below: f32, before: f32, after: f32| {
            u8::from(
                (value >= floor)
                    & (value >= freq_max)
                    & (below < value)
                    & (before < value)
                    & (after <= value),
            )
        };
        let freq_max = &slot.freq_max_db;
        let Some(&first_value) = level.first() else {
            return;
        };
        mask.push(keep(
            first_value,
            freq_max[0],
            f32::NEG_INFINITY,
            before[0],
            after[0],
        ));
        // Each bin beside the one below it, over slices of one length (it vectorises).
        mask.extend(
            level[1..]
                .iter()
                .zip(&level[..bins - 1])
                .zip(&freq_max[1..])
                .zip(before[1..].iter().zip(&after[1..]))
                .map(|(((&value, &below), &freq_max), (&before, &after))| {
                    keep(value, freq_max, below, before, after)
                }),
        );
        // Padded to whole words of eight flags, so that runs of rejected bins (nearly all of
        // them) are skipped a word at a time.
        mask.resize(bins.next_multiple_of(8), 0);
        for (word, flags) in mask.chunks_exact(8).enumerate() {
            let mut bits = u64::from_le_bytes(flags.try_into().unwrap_or_default());
            while bits != 0 {
                let bin = word * 8 + bits.trailing_zeros() as usize / 8;
                bits &= bits - 1;
                let value = level[bin];
                // Most frames have a few candidates: summing their windows directly is
                // cheaper than prefix sums over the whole frame.
                let lo = bin.saturating_sub(CONTRAST_HALF_WIDTH);
                let hi = (bin + CONTRAST_HALF_WIDTH + 1).min(bins);
                let mean = level[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
                found.push(Candidate {
                    peak: Peak {
                        frame: center,
                        bin: bin as u16,
                    },
                    strength: value - mean,
                });
            }
        }
    }

    fn trim_ring(&mut self) {
        // Keep frames still needed as neighbours of centres not yet judged.
        let keep_from = self.next_center.saturating_sub(self.time_half as u32);
        while self.first_frame_in_ring < keep_from {
            let Some(slot) = self.frames.pop_front() else {
                break;
            };
            self.spare.push(slot);
            self.first_frame_in_ring += 1;
        }
    }

    fn release_candidates(&mut self, at_end: bool, out: &mut Vec<Peak>) {
        let half = self.density_half_frames;
        while let Some(&candidate) = self.candidates.get(self.released) {
            let frame = candidate.peak.frame;
            // Final only when every candidate within `half` frames after it is known.
            if !at_end && frame + half >= self.next_center {
                break;
            }
            let mut stronger = 0usize;
            for other in &self.candidates {
                if other.peak.frame + half < frame {
                    continue;
                }
                if other.peak.frame > frame + half {
                    break;
                }
                if other.strength > candidate.strength
                    || (other.strength == candidate.strength && other.peak < candidate.peak)
                {
                    stronger += 1;
                    if stronger >= self.max_per_window {
                        break;
                    }
                }
            }
            if stronger < self.max_per_window {
                out.push(candidate.peak);
            }
            self.released += 1;
        }
        // Forget released candidates that can no longer be a neighbour of an unreleased one.
        let first_open_frame = self
            .candidates
            .get(self.released)
            .map_or(self.next_center, |c| c.peak.frame);
        while self.released > 0
            && self
                .candidates
                .front()
                .is_some_and(|c| c.peak.frame + half < first_open_frame)
        {
            self.candidates.pop_front();
            self.released -= 1;
        }
    }
}

/// One frame into the picker, run with the CPU's widest vectors ([`simd`]).
struct PushFrame<'a> {
    picker: &'a mut PeakPicker,
    level_db: &'a [f32],
    out: &'a mut Vec<Peak>,
}

impl WithSimd for PushFrame<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.picker.add_frame(self.level_db, self.out);
    }
}

/// The larger of two levels. Levels are never NaN, so this plain comparison does what
/// `f32::max` does without its NaN handling, and compiles to one vector instruction.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Raises each of `maxima` to the matching value of `values` where that is larger.
///
/// `f32::max`, not [`larger`]: written back in place, the plain comparison becomes a store
/// of the larger values only, which AVX2 does with masked stores, slow on AMD processors.
#[inline(always)]
fn max_into(maxima: &mut [f32], values: &[f32]) {
    for (max, &value) in maxima.iter_mut().zip(values) {
        *max = max.max(value);
    }
}

/// Maximum over `± half` around each position. `out` receives one value per input; `scratch`
/// is reused.
///
/// By doubling: after each pass, position `i` holds the maximum of the `span` padded inputs
/// from `i` on, and `span` doubles; the last step combines two overlapping windows. Every pass
/// is an element-wise maximum of two slices, which vectorises, unlike the running maxima of the
/// van Herk / Gil-Werman method, whose every step waits for the one before.
#[inline(always)]
fn sliding_max(values: &[f32], half: usize, out: &mut Vec<f32>, scratch: &mut Vec<f32>) {
    let n = values.len();
    let width = 2 * half + 1;
    let padded = n + 2 * half;
    scratch.clear();
    scratch.resize(2 * padded, f32::NEG_INFINITY);
    let (first, second) = scratch.split_at_mut(padded);
    // Padded by `half` on both sides, so that every window is complete.
    first[half..half + n].copy_from_slice(values);
    let (mut src, mut dst) = (first, second);
    // Windows of `span` inputs start at positions `0..len`.
    let mut span = 1;
    let mut len = padded;
    while span * 2 <= width {
        let next_len = len - span;
        for ((d, a), b) in dst[..next_len]
            .iter_mut()
            .zip(&src[..next_len])
            .zip(&src[span..len])
        {
            *d = larger(*a, *b);
        }
        std::mem::swap(&mut src, &mut dst);
        span *= 2;
        len = next_len;
    }
    // Window `i ..= i + width - 1` is the union of the `span` windows at `i` and at
    // `i + width - span`.
    let shift = width - span;
    out.clear();
    out.extend(
        src[..n]
            .iter()
            .zip(&src[shift..shift + n])
            .map(|(a, b)| larger(*a, *b)),
    );
}

/// Deterministic pseudo-random peaks for tests: `count` peaks over `frames` frames, bins
/// skewed low (a xorshift from `seed`), sorted, without duplicates.
#[cfg(test)]
pub(crate) fn random_peaks(seed: u64, frames: u32, count: usize) -> Vec<Peak> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut peaks: Vec<Peak> = (0..count)
        .map(|_| {
            let u = (next() % 1000) as f64 / 1000.0;
            Peak {
                frame: (next() % u64::from(frames)) as u32,
                bin: (u * u * 400.0) as u16,
            }
        })
        .collect();
    peaks.sort_unstable();
    peaks.dedup();
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_max_matches_naive() {
        let values: Vec<f32> = (0..97)
            .map(|i| ((i * 37 % 23) as f32).sin() * 10.0)
            .collect();
        for half in [0, 1, 3, 10, 60] {
            let mut out = Vec::new();
            let mut scratch = Vec::new();
            sliding_max(&values, half, &mut out, &mut scratch);
            for (i, got) in out.iter().enumerate() {
                let lo = i.saturating_sub(half);
                let hi = (i + half).min(values.len() - 1);
                let want = values[lo..=hi]
                    .iter()
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(*got, want, "half {half} at {i}");
            }
        }
    }

    fn tone_frames(frames: usize, bins: usize, peak_bin: usize) -> Vec<Vec<f32>> {
        (0..frames)
            .map(|t| {
                (0..bins)
                    .map(|b| {
                        let onset = if t % 20 == 0 { 10.0 } else { 0.0 };
                        if b == peak_bin {
                            -20.0 + onset
                        } else {
                            -60.0 - (b % 7) as f32
                        }
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn picks_onsets_and_streams_like_a_whole() {
        let config = FingerprintConfig::default();
        let frames = tone_frames(200, config.band_bins(), 100);
        let mut picker = PeakPicker::new(&config, 15.0);
        let mut peaks = Vec::new();
        for frame in &frames {
            picker.push_frame(frame, &mut peaks);
        }
        picker.finish(&mut peaks);
        // One peak per onset of the tone, at its bin, in time order.
        let onsets: Vec<u32> = peaks
            .iter()
            .filter(|p| p.bin == 100)
            .map(|p| p.frame)
            .collect();
        assert_eq!(
            onsets,
            (0..200).step_by(20).map(|f| f as u32).collect::<Vec<_>>()
        );
        assert!(peaks.windows(2).all(|w| w[0] < w[1]));
    }

    /// The picker's rules read directly, frame by frame and bin by bin, over a whole
    /// spectrogram: a bin is a candidate when it is above the floor, no other bin of its
    /// neighbourhood is louder, the bin below it is quieter (plateaus along frequency go to the
    /// lowest bin), and no bin of an earlier frame in its neighbourhood is as loud (plateaus
    /// along time go to the earliest frame); it is kept when fewer than `max_per_window`
    /// candidates within `density_half_frames` are stronger.
    fn peaks_by_the_rules(picker: &PeakPicker, frames: &[Vec<f32>]) -> Vec<Peak> {
        let (fh, th) = (picker.freq_half as i64, picker.time_half as i64);
        let mut candidates = Vec::new();
        for (t, frame) in frames.iter().enumerate() {
            for (b, &value) in frame.iter().enumerate() {
                let mut is_max = value >= picker.floor_db && (b == 0 || frame[b - 1] < value);
                for dt in -th..=th {
                    for db in -fh..=fh {
                        let (t2, b2) = (t as i64 + dt, b as i64 + db);
                        if (dt, db) == (0, 0) || t2 < 0 || b2 < 0 {
                            continue;
                        }
                        let Some(&other) = frames.get(t2 as usize).and_then(|f| f.get(b2 as usize))
                        else {
                            continue;
                        };
                        if other > value || (dt < 0 && other >= value) {
                            is_max = false;
                        }
                    }
                }
                if is_max {
                    let lo = b.saturating_sub(CONTRAST_HALF_WIDTH);
                    let hi = (b + CONTRAST_HALF_WIDTH + 1).min(frame.len());
                    let mean = frame[lo..hi].iter().sum::<f32>() / (hi - lo) as f32;
                    let peak = Peak {
                        frame: t as u32,
                        bin: b as u16,
                    };
                    candidates.push((peak, value - mean));
                }
            }
        }
        let half = picker.density_half_frames;
        candidates
            .iter()
            .filter(|(peak, strength)| {
                let stronger = candidates
                    .iter()
                    .filter(|(other, other_strength)| {
                        other.frame.abs_diff(peak.frame) <= half
                            && (*other_strength > *strength
                                || (*other_strength == *strength && other < peak))
                    })
                    .count();
                stronger < picker.max_per_window
            })
            .map(|(peak, _)| *peak)
            .collect()
    }

    #[test]
    fn streamed_peaks_follow_the_rules_read_directly() {
        let config = FingerprintConfig::default();
        let bins = 60;
        let mut rng = crate::testkit::rng::Rng::new(7);
        // Levels on a coarse grid, so that plateaus along time and frequency are common; a
        // stream shorter than the time neighbourhood, and longer ones.
        for (length, levels) in [(3, 4), (40, 3), (150, 12)] {
            let frames: Vec<Vec<f32>> = (0..length)
                .map(|_| {
                    (0..bins)
                        .map(|_| -75.0 + 10.0 * (rng.unit() * levels as f32).floor())
                        .collect()
                })
                .collect();
            // A density that keeps every candidate, and one that drops some.
            for peaks_per_second in [100.0, 3.0] {
                let mut picker = PeakPicker::new(&config, peaks_per_second);
                let want = peaks_by_the_rules(&picker, &frames);
                let mut got = Vec::new();
                for frame in &frames {
                    picker.push_frame(frame, &mut got);
                }
                picker.finish(&mut got);
                assert!(!want.is_empty(), "{length} frames give no peaks to compare");
                assert_eq!(
                    got, want,
                    "{length} frames of {levels} levels, {peaks_per_second} peaks/s"
                );
            }
        }
    }

    #[test]
    fn silence_gives_no_peaks() {
        let config = FingerprintConfig::default();
        let mut picker = PeakPicker::new(&config, 15.0);
        let mut peaks = Vec::new();
        for _ in 0..100 {
            picker.push_frame(&vec![-150.0; config.band_bins()], &mut peaks);
        }
        picker.finish(&mut peaks);
        assert!(peaks.is_empty());
    }
}
