//! Verification: does the clip really lie on the candidate song at the offset found?
//!
//! Landmark scoring finds a song and an offset from the few hashes whose both peaks survived
//! the distortion. Once the offset is known, every surviving peak can testify on its own: a
//! clip that really comes from the song puts many of its peaks on (or next to) the song's peaks
//! at that offset, while a clip of other music coincides with them only by chance. The chance
//! level is measured, not modelled: the same count at a set of other offsets in the same song,
//! so a song that shares the clip's key and instruments (and so its frequent bins) raises its
//! own chance level rather than fooling the confidence.
//!
//! Two tests, each against its own chance level:
//! - **peaks**: clip peaks within one frame and one bin of a song peak (the jitter of a peak's
//!   position between a song and a re-recorded or re-encoded clip of it);
//! - **contrast**: the clip's spectral contrast ([`ContrastMap`]) read at the song's peaks, in
//!   standard errors above the same reading at other offsets. This one uses the energy of
//!   song peaks that are no longer peaks of the clip, which is most of them under heavy noise.

use super::contrast::ContrastMap;
use super::peaks::Peak;
use super::postings::{InvertedIndex, SongSpan};

/// Offsets (in frames, either way) at which the chance level is measured. None is a multiple
/// of a short neighbour, so a song's loops and repeated bars coincide with few of them.
const CHANCE_SHIFTS: [u32; 10] = [11, 17, 26, 37, 51, 67, 83, 101, 127, 157];
/// Chance offsets wanted; shifts that would leave the song are skipped.
const CHANCE_SAMPLES: usize = 12;
/// 64-bit words per grid row: the widest band the landmark layout allows.
const WORDS_PER_FRAME: usize = super::landmarks::MAX_BAND_BINS / 64;

/// How well a clip's peaks agree with one song at one offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct PeakAgreement {
    /// Clip peaks with a song peak within one frame and one bin at the offset.
    pub matched: usize,
    /// The same count at other offsets of the song: the mean.
    pub chance: f64,
    /// Clip peaks compared.
    pub clip_peaks: usize,
    /// Mean spectral contrast of the clip (dB) at the song's peaks, at the offset.
    pub contrast_db: f64,
    /// The same at other offsets of the song (mean).
    pub chance_contrast_db: f64,
    /// How many standard errors `contrast_db` lies above `chance_contrast_db`.
    pub contrast_z: f64,
    /// Song peaks the contrast was read at.
    pub song_peaks: usize,
}

/// What a query offers for verification.
#[derive(Clone, Copy, Debug)]
pub struct ClipEvidence<'a> {
    /// The clip's peaks.
    pub peaks: &'a [Peak],
    /// Its contrast map, when it has one.
    pub contrast: Option<&'a ContrastMap>,
}

/// Verifies one candidate: the clip starting at `offset_frames` in the song of `span`.
pub fn peak_agreement(
    index: &InvertedIndex,
    span: &SongSpan,
    offset_frames: f64,
    clip: ClipEvidence<'_>,
) -> PeakAgreement {
    let clip_frames = clip.peaks.iter().map(|p| p.frame).max().unwrap_or(0) + 1;
    let offset = offset_frames.round() as i64;
    let song_frames = i64::from(span.num_frames);
    let chance_offsets = chance_offsets(offset, i64::from(clip_frames), song_frames);

    // The song's peaks over every window read.
    let lowest = chance_offsets.iter().copied().fold(offset, i64::min).max(0) as u32;
    let highest = chance_offsets
        .iter()
        .copied()
        .fold(offset, i64::max)
        .saturating_add(i64::from(clip_frames))
        .clamp(0, song_frames) as u32;
    let song_peaks: Vec<Peak> = index.song_peaks_between(span, lowest..highest).collect();

    let grid = SongGrid::new(&song_peaks, lowest, highest);
    let matched = grid.count_matches(clip.peaks, offset);
    let chance_matched: usize = chance_offsets
        .iter()
        .map(|&start| grid.count_matches(clip.peaks, start))
        .sum();
    let mut agreement = PeakAgreement {
        matched,
        chance: chance_matched as f64 / chance_offsets.len().max(1) as f64,
        clip_peaks: clip.peaks.len(),
        ..PeakAgreement::default()
    };
    if let Some(map) = clip.contrast {
        let windows = ContrastWindows {
            map,
            song_peaks: &song_peaks,
            clip_frames: i64::from(clip_frames),
        };
        windows.compare(offset, &chance_offsets, &mut agreement);
    }
    agreement
}

/// Where the clip would start if it were chance: [`CHANCE_SAMPLES`] shifts of `offset` that
/// keep the clip inside the song, or, for a song barely longer than the clip, at least 4 that
/// overlap it.
fn chance_offsets(offset: i64, clip_frames: i64, song_frames: i64) -> Vec<i64> {
    let shifted = || {
        CHANCE_SHIFTS
            .iter()
            .flat_map(move |&shift| [offset - i64::from(shift), offset + i64::from(shift)])
    };
    let mut offsets: Vec<i64> = shifted()
        .filter(|&start| start >= 0 && start + clip_frames <= song_frames)
        .take(CHANCE_SAMPLES)
        .collect();
    if offsets.len() < 4 {
        let overlapping = shifted()
            .filter(|&start| start + clip_frames > 0 && start < song_frames)
            .filter(|start| !offsets.contains(start))
            .take(4 - offsets.len())
            .collect::<Vec<_>>();
        offsets.extend(overlapping);
    }
    offsets
}

/// Reads a clip's contrast map under the song's peaks, the clip placed at various offsets.
struct ContrastWindows<'a> {
    map: &'a ContrastMap,
    song_peaks: &'a [Peak],
    clip_frames: i64,
}

impl ContrastWindows<'_> {
    /// The contrast under each song peak the clip covers when it starts at `start`.
    fn read(&self, start: i64, values: &mut Vec<f64>) {
        values.clear();
        let first = self
            .song_peaks
            .partition_point(|p| i64::from(p.frame) < start);
        for peak in &self.song_peaks[first..] {
            let frame = i64::from(peak.frame) - start;
            if frame >= self.clip_frames {
                break;
            }
            if let Some(value) = best_contrast_near(self.map, frame, i64::from(peak.bin)) {
                values.push(value);
            }
        }
    }

    /// Fills the contrast figures of `agreement`: the mean at `offset`, the mean over the
    /// chance offsets, and the distance between them in standard errors (the spread of single
    /// readings at the chance offsets, over the number of readings at `offset`).
    fn compare(&self, offset: i64, chance_offsets: &[i64], agreement: &mut PeakAgreement) {
        let mut values = Vec::new();
        self.read(offset, &mut values);
        let (at_offset, readings) = (mean(&values), values.len());
        let (mut sum, mut square_sum, mut count) = (0.0, 0.0, 0usize);
        for &start in chance_offsets {
            self.read(start, &mut values);
            sum += values.iter().sum::<f64>();
            square_sum += values.iter().map(|v| v * v).sum::<f64>();
            count += values.len();
        }
        agreement.song_peaks = readings;
        if count < 2 || readings == 0 {
            return;
        }
        let chance_mean = sum / count as f64;
        // At least 1 dB^2: whole-dB readings of a flat map must not divide by zero.
        let variance = (square_sum / count as f64 - chance_mean * chance_mean).max(1.0);
        agreement.contrast_db = at_offset;
        agreement.chance_contrast_db = chance_mean;
        agreement.contrast_z = (at_offset - chance_mean) / (variance / readings as f64).sqrt();
    }
}

/// The highest contrast of the clip at a point's frame, within one bin of it. (Time needs no
/// tolerance: a clip's frames are at most half a hop off the song's, a quarter of the window.)
fn best_contrast_near(map: &ContrastMap, frame: i64, bin: i64) -> Option<f64> {
    (bin - 1..=bin + 1)
        .filter_map(|b| map.get(frame, b))
        .max()
        .map(f64::from)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Song peaks between two frames as a bitmap, widened by one bin either way.
struct SongGrid {
    first_frame: u32,
    frames: usize,
    bits: Vec<u64>,
}

impl SongGrid {
    fn new(song_peaks: &[Peak], first_frame: u32, end_frame: u32) -> Self {
        let frames = end_frame.saturating_sub(first_frame) as usize;
        let mut bits = vec![0u64; frames * WORDS_PER_FRAME];
        for peak in song_peaks {
            if !(first_frame..end_frame).contains(&peak.frame) {
                continue;
            }
            let row = (peak.frame - first_frame) as usize * WORDS_PER_FRAME;
            let bin = usize::from(peak.bin);
            for b in bin.saturating_sub(1)..=(bin + 1).min(WORDS_PER_FRAME * 64 - 1) {
                bits[row + b / 64] |= 1 << (b % 64);
            }
        }
        SongGrid {
            first_frame,
            frames,
            bits,
        }
    }

    fn is_set(&self, frame: i64, bin: usize) -> bool {
        let row = frame - i64::from(self.first_frame);
        if row < 0 || row as usize >= self.frames || bin >= WORDS_PER_FRAME * 64 {
            return false;
        }
        self.bits[row as usize * WORDS_PER_FRAME + bin / 64] & (1 << (bin % 64)) != 0
    }

    /// Clip peaks with a song peak within one frame and one bin, the clip starting at `start`.
    fn count_matches(&self, clip_peaks: &[Peak], start: i64) -> usize {
        clip_peaks
            .iter()
            .filter(|peak| {
                let frame = start + i64::from(peak.frame);
                let bin = usize::from(peak.bin);
                (frame - 1..=frame + 1).any(|f| self.is_set(f, bin))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::landmarks::PairingRule;

    fn rule() -> PairingRule {
        PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        }
    }

    fn peaks_only(peaks: &[Peak]) -> ClipEvidence<'_> {
        ClipEvidence {
            peaks,
            contrast: None,
        }
    }

    /// An index of one song (id 1) and its span.
    fn one_song_index(peaks: &[Peak], frames: u32) -> (InvertedIndex, SongSpan) {
        let index =
            InvertedIndex::build(0.032, rule(), |visit| visit(1, frames, peaks)).expect("index");
        let span = *index.span_of(1).expect("span");
        (index, span)
    }

    /// Deterministic pseudo-random peaks, one or two per frame.
    fn song(seed: u64, frames: u32) -> Vec<Peak> {
        let mut state = seed | 1;
        let mut peaks = Vec::new();
        for frame in 0..frames {
            for _ in 0..1 + frame % 2 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                peaks.push(Peak {
                    frame,
                    bin: (state % 400) as u16,
                });
            }
        }
        peaks.sort_unstable();
        peaks.dedup();
        peaks
    }

    #[test]
    fn a_clip_of_the_song_agrees_far_above_chance_and_other_music_does_not() {
        let reference = song(7, 3_000);
        let (index, span) = one_song_index(&reference, 3_000);
        // Frames 1000..1300 of the song, one peak in two lost and each survivor moved by a
        // frame or a bin, plus as many foreign peaks.
        let mut clip: Vec<Peak> = reference
            .iter()
            .filter(|p| (1_000..1_300).contains(&p.frame))
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(i, p)| Peak {
                frame: p.frame - 1_000 + (i % 3 == 0) as u32,
                bin: p.bin + (i % 5 == 0) as u16,
            })
            .collect();
        let survivors = clip.len();
        clip.extend(song(99, 300));
        clip.sort_unstable();
        clip.dedup();

        let at_truth = peak_agreement(&index, &span, 1_000.0, peaks_only(&clip));
        assert!(at_truth.matched >= survivors, "{at_truth:?}");
        assert!(
            at_truth.chance * 5.0 < at_truth.matched as f64,
            "{at_truth:?}"
        );
        assert_eq!(at_truth.clip_peaks, clip.len());

        let elsewhere = peak_agreement(&index, &span, 2_200.0, peaks_only(&clip));
        assert!(
            (elsewhere.matched as f64) < at_truth.chance * 2.0 + 5.0,
            "{elsewhere:?}"
        );
        let other_music = song(1234, 300);
        let foreign = peak_agreement(&index, &span, 1_000.0, peaks_only(&other_music));
        assert!(foreign.matched * 4 < at_truth.matched, "{foreign:?}");
    }

    /// Band levels of a noisy clip (dB, pseudo-random around -60) in which the song's peaks
    /// between `start` and `start + frames` stand `lift_db` above the noise, as a contrast map.
    fn noisy_clip_map(song_peaks: &[Peak], start: u32, frames: u32, lift_db: f32) -> ContrastMap {
        let config = crate::config::FingerprintConfig::default();
        let mut map = ContrastMap::new(&config);
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        for frame in 0..frames {
            let mut levels: Vec<f32> = (0..config.band_bins())
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    -60.0 + (state % 1_000) as f32 / 100.0
                })
                .collect();
            for peak in song_peaks.iter().filter(|p| p.frame == start + frame) {
                if let Some(level) = levels.get_mut(usize::from(peak.bin)) {
                    *level += lift_db;
                }
            }
            map.push_frame(&levels);
        }
        map
    }

    #[test]
    fn the_song_s_energy_under_the_noise_is_found_at_the_right_offset_only() {
        let reference = song(11, 3_000);
        let (index, span) = one_song_index(&reference, 3_000);
        // No clip peak survives (the clip's peaks are all noise), but the song is 6 dB up.
        let noise_peaks = song(77, 150);
        let map = noisy_clip_map(&reference, 1_200, 150, 6.0);
        let clip = ClipEvidence {
            peaks: &noise_peaks,
            contrast: Some(&map),
        };
        let right = peak_agreement(&index, &span, 1_200.0, clip);
        assert!(right.contrast_z > 8.0, "{right:?}");
        assert!(
            right.contrast_db > right.chance_contrast_db + 2.0,
            "{right:?}"
        );
        assert!(right.song_peaks > 150, "{right:?}");
        let wrong = peak_agreement(&index, &span, 2_000.0, clip);
        assert!(wrong.contrast_z.abs() < 4.0, "{wrong:?}");
        // Pure noise: nothing anywhere.
        let silence_of_the_song = noisy_clip_map(&reference, 0, 150, 0.0);
        let nothing = ClipEvidence {
            peaks: &noise_peaks,
            contrast: Some(&silence_of_the_song),
        };
        let none = peak_agreement(&index, &span, 0.0, nothing);
        assert!(none.contrast_z.abs() < 4.0, "{none:?}");
    }

    #[test]
    fn a_clip_as_long_as_the_song_still_gets_a_chance_level() {
        let reference = song(3, 400);
        let (index, span) = one_song_index(&reference, 400);
        let agreement = peak_agreement(&index, &span, 0.0, peaks_only(&reference));
        assert_eq!(agreement.matched, reference.len());
        assert!(
            agreement.chance < agreement.matched as f64 / 2.0,
            "{agreement:?}"
        );
    }
}
