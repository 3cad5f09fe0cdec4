//! Scoring a query against the inverted index (Wang 2003).
//!
//! Every query landmark looks up its key; every posting `g` gives the time-offset difference
//! `g - query_frame`. A clip that really comes from a song puts many differences on the same
//! value (the song's base + the clip's offset); chance hits spread thinly. Each song is scored by
//! its largest histogram bin, allowing one frame of jitter either way.
//!
//! ## Confidence
//! Chance alignments in music are far from the uniform (Poisson) null model: songs of one game
//! or album share instruments, keys and tempi, and unrelated clips reach a dozen aligned
//! landmarks. The confidence is therefore an estimated probability of being right, from a
//! logistic model over the aligned count, the distinct clip frames behind it, the song's own
//! chance level (its hits away from the best bin) and the query size, fitted on the development
//! corpus including its clips of unindexed songs ([`CONFIDENCE_WEIGHTS`]).

use super::landmarks::Landmark;
use super::postings::{InvertedIndex, SONG_GAP_FRAMES};
use crate::config::MatchConfig;

/// Songs scored in full (confidence, distinct frames) per query, by aligned count.
const CANDIDATES_SCORED: usize = 32;
/// Width of a histogram bin in frames (the best value ± 1).
const BIN_FRAMES: f64 = 3.0;

/// One song's score for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredSong {
    /// Song id in the store.
    pub song_id: i64,
    /// Landmarks that agree on the best offset.
    pub aligned: usize,
    /// Distinct query anchor frames among them.
    pub aligned_frames: usize,
    /// Frames between the first and last aligned anchor.
    pub spread_frames: u32,
    /// Offset of the clip's start in the song, in frames (sub-frame, from the bin's mean).
    pub offset_frames: f64,
    /// Calibrated confidence in [0, 1].
    pub confidence: f64,
    /// Hits of the query anywhere in this song (its chance level).
    pub song_hits: usize,
}

/// Everything the scorer found for one query.
#[derive(Clone, Debug, Default)]
pub struct ScoreOutcome {
    /// Songs at or above the threshold, best first, at most `top_n`.
    pub matches: Vec<ScoredSong>,
    /// The best-scoring song when it missed the threshold (for diagnostics).
    pub best_rejected: Option<ScoredSong>,
    /// Distinct query landmarks looked up.
    pub query_landmarks: usize,
    /// Postings hit by the query.
    pub hits: usize,
}

/// Long clips are first matched on this many opening seconds.
pub const EARLY_ANSWER_SECS: f64 = 3.0;
/// Confidence the opening must reach to answer without looking at the rest of the clip.
pub const EARLY_ANSWER_CONFIDENCE: f64 = 0.98;

/// Shazam-like early answer: a clip longer than 1.5 x `opening_frames` is first scored on its
/// opening landmarks; when that is already conclusive the rest is not looked up, otherwise the
/// whole clip is scored.
pub fn score_early(
    index: &InvertedIndex,
    query: &[Landmark],
    config: &MatchConfig,
    opening_frames: u32,
) -> ScoreOutcome {
    let clip_frames = query.iter().map(|l| l.frame).max().unwrap_or(0);
    if clip_frames > opening_frames * 3 / 2 {
        let opening: Vec<Landmark> = query
            .iter()
            .copied()
            .filter(|l| l.frame < opening_frames)
            .collect();
        let outcome = score(index, &opening, config);
        if outcome
            .matches
            .first()
            .is_some_and(|m| m.confidence >= EARLY_ANSWER_CONFIDENCE)
        {
            return outcome;
        }
    }
    score(index, query, config)
}

/// Scores `query` landmarks against `index`.
pub fn score(index: &InvertedIndex, query: &[Landmark], config: &MatchConfig) -> ScoreOutcome {
    let mut landmarks = query.to_vec();
    landmarks.sort_unstable();
    landmarks.dedup();

    // Each hit as (offset difference << 32 | query frame): sorting groups hits by difference
    // and, within one, by query frame, so distinct aligned frames can be counted too.
    let mut hits_sorted: Vec<u64> = Vec::with_capacity(landmarks.len() * 8);
    for landmark in &landmarks {
        index.for_each_posting(landmark.key, |global| {
            if let Some(diff) = global.checked_sub(landmark.frame) {
                hits_sorted.push(u64::from(diff) << 32 | u64::from(landmark.frame));
            }
        });
    }
    sort_by_difference(&mut hits_sorted);
    let hits = hits_sorted.len();

    // Run-length encode: distinct difference values, their counts, and where their hits start.
    let mut values: Vec<u32> = Vec::new();
    let mut counts: Vec<u32> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    for (i, &hit) in hits_sorted.iter().enumerate() {
        let d = (hit >> 32) as u32;
        if values.last() == Some(&d) {
            if let Some(c) = counts.last_mut() {
                *c += 1;
            }
        } else {
            values.push(d);
            counts.push(1);
            starts.push(i);
        }
    }

    // One sweep over the sorted differences: the best bin (value ± 1) of each song, and each
    // song's total hits (its own chance level).
    let floor = config.min_aligned.max(2) as u32 / 2;
    let spans = index.spans();
    let mut span_idx = 0usize;
    // Per span: total hits, and the best window as (count, index into `values`).
    let mut song_hits: Vec<u32> = vec![0; spans.len()];
    let mut best: Vec<(u32, usize)> = vec![(0, 0); spans.len()];
    for i in 0..values.len() {
        let probe = values[i].saturating_add(SONG_GAP_FRAMES / 2);
        while spans.get(span_idx + 1).is_some_and(|s| s.base <= probe) {
            span_idx += 1;
        }
        if spans.get(span_idx).is_none_or(|s| s.base > probe) {
            continue;
        }
        song_hits[span_idx] += counts[i];
        let mut window = counts[i];
        if i > 0 && values[i - 1] + 1 == values[i] {
            window += counts[i - 1];
        }
        if i + 1 < values.len() && values[i + 1] == values[i] + 1 {
            window += counts[i + 1];
        }
        if window >= floor && window > best[span_idx].0 {
            best[span_idx] = (window, i);
        }
    }
    let mut best: Vec<(usize, u32, usize)> = best
        .iter()
        .enumerate()
        .filter(|(idx, (window, _))| *window >= floor && !index.is_removed(spans[*idx].song_id))
        .map(|(idx, &(window, i))| (idx, window, i))
        .collect();
    // Only the strongest candidates can be reported: score those in full.
    let keep = (config.top_n * 4).max(CANDIDATES_SCORED);
    if best.len() > keep {
        best.select_nth_unstable_by(keep - 1, |a, b| b.1.cmp(&a.1));
        best.truncate(keep);
    }

    let mut scored: Vec<ScoredSong> = best
        .into_iter()
        .filter_map(|(span_idx, window, i)| {
            let span = spans.get(span_idx)?;
            let song_id = span.song_id;
            let mut weight = 0.0;
            let mut sum = 0.0;
            for j in i.saturating_sub(1)..(i + 2).min(values.len()) {
                if values[j].abs_diff(values[i]) <= 1 {
                    weight += f64::from(counts[j]);
                    sum += f64::from(counts[j]) * f64::from(values[j]);
                }
            }
            let offset_frames = sum / weight.max(1.0) - f64::from(span.base);
            // Distinct query frames among the aligned hits, and the time they span.
            let mut frames: Vec<u32> = Vec::new();
            for j in i.saturating_sub(1)..(i + 2).min(values.len()) {
                if values[j].abs_diff(values[i]) <= 1 {
                    let end = starts.get(j + 1).copied().unwrap_or(hits_sorted.len());
                    frames.extend(hits_sorted[starts[j]..end].iter().map(|&h| h as u32));
                }
            }
            frames.sort_unstable();
            frames.dedup();
            let aligned_frames = frames.len();
            let spread_frames =
                frames.last().copied().unwrap_or(0) - frames.first().copied().unwrap_or(0);
            Some(ScoredSong {
                song_id,
                aligned_frames,
                spread_frames,
                aligned: window as usize,
                offset_frames,
                song_hits: song_hits[span_idx] as usize,
                confidence: confidence(
                    window as usize,
                    aligned_frames,
                    song_hits[span_idx] as usize,
                    f64::from(span.num_frames),
                    landmarks.len(),
                ),
            })
        })
        .collect();
    scored.sort_by(|a, b| {
        b.aligned
            .cmp(&a.aligned)
            .then(b.confidence.total_cmp(&a.confidence))
            .then(a.song_id.cmp(&b.song_id))
    });

    let mut outcome = ScoreOutcome {
        query_landmarks: landmarks.len(),
        hits,
        ..ScoreOutcome::default()
    };
    for song in scored {
        let accepted = song.aligned >= config.min_aligned && song.confidence >= config.threshold;
        if accepted && outcome.matches.len() < config.top_n {
            outcome.matches.push(song);
        } else if !accepted && outcome.matches.is_empty() && outcome.best_rejected.is_none() {
            outcome.best_rejected = Some(song);
        }
    }
    outcome
}

/// Logistic-model weights of [`confidence`]: ln(aligned), ln(aligned frames),
/// ln(song background + 0.01), ln(query landmarks + 1), intercept. Fitted on the development
/// corpus (see docs/BENCHMARK.md, "Confidence calibration"): the output is the estimated
/// probability that the top answer is the right song.
pub const CONFIDENCE_WEIGHTS: [f64; 5] = [3.343, 1.270, -0.924, -1.136, -3.332];

/// Probability that a candidate with these figures is the right song.
///
/// `background` is the song's chance level: hits of the query elsewhere in the song, per
/// 3-frame bin. More aligned landmarks from more distinct clip frames raise it; a song that
/// draws many hits everywhere (similar instrumentation, same key) and a long, busy query lower it.
pub fn confidence(
    aligned: usize,
    aligned_frames: usize,
    song_hits: usize,
    song_frames: f64,
    query_landmarks: usize,
) -> f64 {
    if aligned == 0 {
        return 0.0;
    }
    let background = BIN_FRAMES * song_hits.saturating_sub(aligned) as f64 / (song_frames + 1.0);
    let features = [
        (aligned as f64).ln(),
        (aligned_frames.max(1) as f64).ln(),
        (background + 0.01).ln(),
        (query_landmarks as f64 + 1.0).ln(),
        1.0,
    ];
    let logit: f64 = features
        .iter()
        .zip(CONFIDENCE_WEIGHTS)
        .map(|(x, w)| x * w)
        .sum();
    1.0 / (1.0 + (-logit).exp())
}

/// Sorts hits by their offset difference (the high 32 bits): an LSD radix sort, 3 passes of
/// 11 bits, several times faster than a comparison sort for the 10^5..10^7 hits of a query.
/// The query frames (low bits) stay in arbitrary order within one difference.
fn sort_by_difference(hits: &mut Vec<u64>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    if hits.len() < 4096 {
        hits.sort_unstable();
        return;
    }
    let mut scratch = vec![0u64; hits.len()];
    let mut src = std::mem::take(hits);
    for pass in 0..3 {
        let shift = 32 + pass * BITS;
        let mut counts = [0usize; BUCKETS + 1];
        for &hit in &src {
            counts[((hit >> shift) as usize & (BUCKETS - 1)) + 1] += 1;
        }
        for bucket in 0..BUCKETS {
            counts[bucket + 1] += counts[bucket];
        }
        for &hit in &src {
            let bucket = (hit >> shift) as usize & (BUCKETS - 1);
            scratch[counts[bucket]] = hit;
            counts[bucket] += 1;
        }
        std::mem::swap(&mut src, &mut scratch);
    }
    *hits = src;
}

#[cfg(test)]
mod tests {
    #[test]
    fn radix_sort_orders_by_difference() {
        let mut hits: Vec<u64> = (0..10_000u64)
            .map(|i| ((i * 7_919 % 100_003) << 32) | (i * 31 % 997))
            .collect();
        let mut expected: Vec<u64> = hits.iter().map(|h| h >> 32).collect();
        expected.sort_unstable();
        super::sort_by_difference(&mut hits);
        let got: Vec<u64> = hits.iter().map(|h| h >> 32).collect();
        assert_eq!(got, expected);
    }

    use super::*;

    #[test]
    fn confidence_rises_with_alignment_and_falls_with_background() {
        let frames = 7_500.0;
        assert!(confidence(30, 15, 300, frames, 2_000) > confidence(8, 6, 300, frames, 2_000));
        assert!(confidence(12, 8, 3_000, frames, 2_000) < confidence(12, 8, 300, frames, 2_000));
        assert!(confidence(12, 8, 300, frames, 8_000) < confidence(12, 8, 300, frames, 2_000));
        assert!(confidence(100, 40, 300, frames, 2_000) > 0.99);
        assert!(confidence(3, 2, 300, frames, 2_000) < 0.2);
        assert_eq!(confidence(0, 0, 0, frames, 2_000), 0.0);
    }
}
