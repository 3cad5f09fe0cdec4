//! Repeats: the other places in a song where a clip fits nearly as well as at the answer.
//!
//! Music repeats itself: loops, choruses, a bar played twice. A clip of a repeated passage
//! aligns with every repeat, and the matcher answers with the offset whose evidence is
//! strongest, which need not be the one the clip was taken from (on the development corpus,
//! about one right answer in ten points at another repeat). Listing the other repeats lets a
//! user who sets a cue point see the choices instead of trusting one.
//!
//! Input: the clip's peaks, the song's span in the index and the answer's offset. Every clip
//! peak votes for each offset that puts it within one bin of a song peak (the song's peaks are
//! bucketed by bin, so a vote costs one step); an offset's fit is the votes within one frame
//! of it: nearly the count [`super::verify`] calls matched peaks (which counts a clip peak
//! once, where two song peaks next to it give it two votes here), but for every offset of
//! the song at once, where verification reads a few. That is a few thousand votes for a
//! 10 s clip in a 4-minute song, far cheaper than matching the clip's landmarks against every
//! landmark of the song, and it is what a repeat is: the clip's peaks lying on the song's.
//!
//! Output: the offsets, in time order, whose fit is at least [`RepeatRule::min_share`] of the
//! answer's and well above what chance gives in this song (the mean fit over all offsets plus
//! [`CHANCE_MARGIN_SIGMAS`] of its Poisson spread), each at least
//! [`RepeatRule::min_separation_frames`] from the answer and from the other repeats, the
//! strongest [`RepeatRule::max_repeats`] of them.

use super::peaks::Peak;
use super::postings::{InvertedIndex, SONG_GAP_FRAMES, SongSpan};

/// A repeat's fit must exceed chance (the mean fit of the song's offsets) by this many of its
/// standard deviations (Poisson: the square root of the mean) ...
const CHANCE_MARGIN_SIGMAS: f64 = 6.0;
/// ... and by this many matched peaks, for songs so sparse that the mean is near 0.
const CHANCE_MARGIN_PEAKS: f64 = 4.0;

/// Which other offsets count as repeats of an answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RepeatRule {
    /// A repeat's fit is at least this share of the answer's.
    pub min_share: f64,
    /// Repeats lie at least this many frames from the answer and from each other.
    pub min_separation_frames: f64,
    /// At most this many are listed.
    pub max_repeats: usize,
}

/// Another offset of the answer's song where the clip fits nearly as well.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Repeat {
    /// Offset of the clip's start in the song, frames (sub-frame: the mean of its votes).
    pub offset_frames: f64,
    /// Clip peaks on the song's peaks at this offset, as a share of the same count at the
    /// answer's offset (1 = as well; above 1 is possible, the answer being chosen on more
    /// than its peaks).
    pub fit: f64,
}

/// The repeats of the clip of `clip_peaks` in the song of `span`, besides the answer at
/// `answer_offset_frames`, in time order.
pub fn repeats(
    index: &InvertedIndex,
    clip_peaks: &[Peak],
    span: &SongSpan,
    answer_offset_frames: f64,
    rule: RepeatRule,
) -> Vec<Repeat> {
    let Some(clip_frames) = clip_peaks.iter().map(|p| p.frame + 1).max() else {
        return Vec::new();
    };
    if rule.max_repeats == 0 || span.num_frames == 0 {
        return Vec::new();
    }
    let song = PeaksByBin::new(|| index.song_peaks_between(span, 0..span.num_frames));
    // votes[i]: clip peaks placed on a song peak's bin (± 1) when the clip starts at frame
    // i - clip_frames of the song (a clip may start before the song or run past its end).
    let lead = clip_frames as usize;
    let mut votes = vec![0u32; lead + span.num_frames as usize + 1];
    for peak in clip_peaks {
        let bin = usize::from(peak.bin);
        for song_bin in bin.saturating_sub(1)..=bin + 1 {
            for &song_frame in song.frames_at(song_bin) {
                votes[song_frame as usize + lead - peak.frame as usize] += 1;
            }
        }
    }
    // fits[i]: the votes within one frame of offset i.
    let fits: Vec<u32> = (0..votes.len())
        .map(|i| {
            votes[i.saturating_sub(1)..(i + 2).min(votes.len())]
                .iter()
                .sum()
        })
        .collect();
    let to_index = |offset_frames: f64| (offset_frames.round() + lead as f64).max(0.0) as usize;
    let answer_at = to_index(answer_offset_frames).min(fits.len() - 1);
    let answer_fit = fits[answer_at.saturating_sub(1)..(answer_at + 2).min(fits.len())]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    if answer_fit == 0 {
        return Vec::new();
    }
    let chance = fits.iter().map(|&fit| f64::from(fit)).sum::<f64>() / fits.len() as f64;
    let floor = (rule.min_share * f64::from(answer_fit))
        .max(chance + CHANCE_MARGIN_SIGMAS * chance.sqrt() + CHANCE_MARGIN_PEAKS);
    // A clip starts at most half the gap between songs before its song's start: the matcher
    // gives an earlier start to the song before (a long clip holding other music fits
    // anywhere there by chance).
    let earliest = lead.saturating_sub((SONG_GAP_FRAMES / 2) as usize);
    // Local maxima of the fit at or above the floor: (fit, index), strongest first.
    let mut candidates: Vec<(u32, usize)> = fits
        .iter()
        .enumerate()
        .skip(earliest)
        .filter(|&(_, &fit)| f64::from(fit) >= floor)
        .filter_map(|(i, &fit)| {
            let left = if i > 0 { fits[i - 1] } else { 0 };
            let right = fits.get(i + 1).copied().unwrap_or(0);
            (fit > left && fit >= right).then_some((fit, i))
        })
        .collect();
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut found: Vec<Repeat> = Vec::new();
    for (fit, i) in candidates {
        let window = i.saturating_sub(1)..(i + 2).min(votes.len());
        let weighted: f64 = window.clone().map(|j| j as f64 * f64::from(votes[j])).sum();
        let offset_frames = weighted / f64::from(fit) - lead as f64;
        let apart = |other: f64| (other - offset_frames).abs() >= rule.min_separation_frames;
        if apart(answer_offset_frames) && found.iter().all(|r| apart(r.offset_frames)) {
            found.push(Repeat {
                offset_frames,
                fit: f64::from(fit) / f64::from(answer_fit),
            });
            if found.len() == rule.max_repeats {
                break;
            }
        }
    }
    found.sort_by(|a, b| a.offset_frames.total_cmp(&b.offset_frames));
    found
}

/// A song's peak frames grouped by bin (a counting sort): the frames of bin `b` are
/// `frames[starts[b]..starts[b + 1]]`.
struct PeaksByBin {
    starts: Vec<u32>,
    frames: Vec<u32>,
}

impl PeaksByBin {
    /// The peaks `peaks()` lists (it is called three times).
    fn new<I: Iterator<Item = Peak>>(peaks: impl Fn() -> I) -> Self {
        let bins = peaks().map(|p| usize::from(p.bin) + 1).max().unwrap_or(0);
        let mut starts = vec![0u32; bins + 1];
        for peak in peaks() {
            starts[usize::from(peak.bin) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut next = starts.clone();
        let mut frames = vec![0u32; starts.last().copied().unwrap_or(0) as usize];
        for peak in peaks() {
            let slot = &mut next[usize::from(peak.bin)];
            frames[*slot as usize] = peak.frame;
            *slot += 1;
        }
        Self { starts, frames }
    }

    /// The frames of the song's peaks at `bin` (none beyond the highest bin).
    fn frames_at(&self, bin: usize) -> &[u32] {
        match (self.starts.get(bin), self.starts.get(bin + 1)) {
            (Some(&from), Some(&to)) => &self.frames[from as usize..to as usize],
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::landmarks::PairingRule;
    use crate::engine::peaks::random_peaks;

    /// The peaks of `frames` of `song`, moved to start at clip frame `at`.
    fn placed(song: &[Peak], frames: std::ops::Range<u32>, at: u32) -> impl Iterator<Item = Peak> {
        let start = frames.start;
        song.iter()
            .filter(move |p| frames.contains(&p.frame))
            .map(move |p| Peak {
                frame: p.frame - start + at,
                bin: p.bin,
            })
    }

    /// An index of one song (id 1) of 2,000 frames.
    fn index_of(song: &[Peak]) -> InvertedIndex {
        let rule = PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        };
        InvertedIndex::build(0.032, rule, |visit| visit(1, 2_000, song)).expect("index")
    }

    const RULE: RepeatRule = RepeatRule {
        min_share: 0.5,
        min_separation_frames: 30.0,
        max_repeats: 10,
    };

    #[test]
    fn a_passage_the_song_plays_twice_is_a_repeat() {
        let song = random_peaks(7, 2_000, 900);
        // Frames 1,500-1,600 replaced by a copy of frames 1,000-1,100: a loop played twice.
        let mut looped: Vec<Peak> = song
            .iter()
            .copied()
            .filter(|p| !(1_500..1_600).contains(&p.frame))
            .chain(placed(&song, 1_000..1_100, 1_500))
            .collect();
        looped.sort_unstable();
        let index = index_of(&looped);
        let clip: Vec<Peak> = placed(&song, 1_000..1_100, 0).collect();
        let found = repeats(
            &index,
            &clip,
            index.span_of(1).expect("span"),
            1_000.0,
            RULE,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!((found[0].offset_frames - 1_500.0).abs() < 1.0, "{found:?}");
    }

    #[test]
    fn a_repeat_never_puts_the_clip_before_its_song() {
        let song = random_peaks(7, 2_000, 900);
        let index = index_of(&song);
        // Song frames 1,000-1,100, 400 frames of other music, then the song's opening (frames
        // 0-100): at offset -500 the clip's end lies on the song's start as well as its start
        // lies on frame 1,000, but a clip starting 500 frames before a song belongs to the
        // song before it, not to another place in this one.
        let mut clip: Vec<Peak> = placed(&song, 1_000..1_100, 0)
            .chain(placed(&random_peaks(8, 400, 180), 0..400, 100))
            .chain(placed(&song, 0..100, 500))
            .collect();
        clip.sort_unstable();
        let found = repeats(
            &index,
            &clip,
            index.span_of(1).expect("span"),
            1_000.0,
            RULE,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn peaks_are_grouped_by_bin_in_frame_order() {
        let peak = |frame, bin| Peak { frame, bin };
        let peaks = [peak(1, 3), peak(2, 0), peak(4, 3), peak(7, 1), peak(9, 3)];
        let by_bin = PeaksByBin::new(|| peaks.iter().copied());
        assert_eq!(by_bin.frames_at(0), &[2]);
        assert_eq!(by_bin.frames_at(1), &[7]);
        assert_eq!(by_bin.frames_at(2), &[] as &[u32]);
        assert_eq!(by_bin.frames_at(3), &[1, 4, 9]);
        assert_eq!(by_bin.frames_at(4), &[] as &[u32]);
    }
}
