//! Scoring a query against the inverted index (Wang 2003).
//!
//! Every query landmark looks up its key; every posting `g` gives the time-offset difference
//! `g - query_frame`. A clip that really comes from a song puts many differences on the same
//! value (the song's base + the clip's offset); chance hits spread thinly. Each song is scored by
//! its largest histogram bin, allowing one frame of jitter either way.
//!
//! ## Verification and confidence
//! Chance alignments in music are far from the uniform (Poisson) null model: songs of one game
//! or album share instruments, keys and tempi, and unrelated clips reach a dozen aligned
//! landmarks. So the best candidates are verified ([`super::verify`]): at the offset found, do
//! the clip's peaks, and the clip's spectrum under the song's peaks, agree with the song beyond
//! what the same song gives at other offsets? The confidence is an estimated probability of
//! being right, from a logistic model over the landmark figures (aligned count, distinct clip
//! frames, the song's chance level, the query size) and the verification's, fitted on the
//! development corpus including its clips of unindexed songs ([`CONFIDENCE_WEIGHTS`]).
//! Verified candidates are ranked by confidence.

use super::landmarks::{self, Landmark};
use super::peaks::Peak;
use super::postings::{InvertedIndex, MAX_SONG_FRAMES, SONG_GAP_FRAMES, SongSpan};
use super::verify::{self, ClipEvidence, PeakAgreement};
use crate::config::MatchConfig;
use rayon::prelude::*;

/// Songs scored in full (confidence, distinct frames) per query, by aligned count.
const CANDIDATES_SCORED: usize = 32;
/// Width of a histogram bin in frames (the best value ± 1).
const BIN_FRAMES: f64 = 3.0;
/// A song's chance level is counted over the offsets within this many frames (33 s) of its
/// best bin, or over the whole song when it is shorter: an estimate as good as the whole
/// song's, whose cost does not grow with the song (a 2-hour mix is re-scored as fast as a
/// 3-minute single).
pub const BACKGROUND_HALF_WIDTH_FRAMES: u32 = 1024;

/// One song's score for a query.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoredSong {
    /// Song id in the store.
    pub song_id: i64,
    /// Landmarks that agree on the best offset.
    pub aligned: usize,
    /// Distinct query anchor frames among them.
    pub aligned_frames: usize,
    /// Clip frame of the first aligned anchor: where the song's evidence starts in the clip.
    pub first_aligned_frame: u32,
    /// Frames between the first and last aligned anchor.
    pub spread_frames: u32,
    /// Offset of the clip's start in the song, in frames (sub-frame, from the bin's mean).
    pub offset_frames: f64,
    /// Calibrated confidence in [0, 1].
    pub confidence: f64,
    /// Hits of the query in this song within [`BACKGROUND_HALF_WIDTH_FRAMES`] of the best
    /// bin's offset (its chance level).
    pub song_hits: usize,
    /// Offset differences (frames) over which `song_hits` were counted.
    pub background_frames: u32,
    /// How the clip's peaks agree with the song's at the offset (see [`verify`]).
    pub peaks: PeakAgreement,
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
/// whole clip is scored. Either way the opening's keys are looked up once:
///
/// - When neither part's lookup is budgeted (a small library), the hits of the opening and of
///   the rest are sorted together: exactly the hits, and so the candidates, of one lookup of
///   the whole clip.
/// - Otherwise the rest of the clip is looked up on its own, the songs either part points to
///   are pooled (see [`pooled_candidates`]), and the best of them are re-scored exactly with
///   every landmark of the clip, as [`score`] re-scores its candidates. The price: a song
///   whose few surviving rare keys are split between the two parts can stay below chance in
///   both, which at 100k songs lost 2 of 34 heavily degraded clips that a whole-clip lookup
///   found. Sorting both parts' hits together would keep them, but costs a fifth more time
///   at 10k songs (docs/BENCHMARK.md, "Scale").
///
/// A clip of an unindexed song, which never answers early, costs one lookup rather than one
/// and a third.
///
/// In a large library (a budgeted lookup) the opening's candidates are re-scored and verified
/// only when the best of them [stands out](stands_out) from the runner-up. A best candidate
/// level with the others has so far been a chance alignment, or a clip too degraded to answer
/// from its opening: the whole clip is then scored at once, which saves about an eighth of
/// such a query at 10k songs.
///
/// Only a caller asking for one song (`top_n` 1) gets an early answer: one asking for more
/// wants every song the clip holds (a clip across two songs, a recorded set), and the
/// opening cannot tell what comes later.
pub fn score_early(
    index: &InvertedIndex,
    query: &[Landmark],
    clip: ClipEvidence<'_>,
    config: &MatchConfig,
    opening_frames: u32,
) -> ScoreOutcome {
    let clip_frames = query.iter().map(|l| l.frame).max().unwrap_or(0);
    if config.top_n > 1 || clip_frames <= opening_frames * 3 / 2 {
        return score(index, query, clip, config);
    }
    let (opening, rest): (Vec<Landmark>, Vec<Landmark>) =
        query.iter().partition(|l| l.frame < opening_frames);
    let opening = distinct(&opening);
    let opening_peaks: Vec<Peak> = clip
        .peaks
        .iter()
        .copied()
        .filter(|p| p.frame < opening_frames)
        .collect();
    let opening_clip = ClipEvidence {
        peaks: &opening_peaks,
        ..clip
    };
    let opening_lookup = Lookup::within_budget(index, &opening, config.hits_per_landmark);
    let opening_hits = gather(index, &opening_lookup);
    let opening_found = candidates_from(index, &[&opening_hits], config);
    if !opening_lookup.budgeted || stands_out(&opening_found) {
        let scored = if opening_lookup.budgeted {
            rescore_exactly(index, &opening, opening_found.clone(), config)
        } else {
            opening_found.clone()
        };
        let outcome = verify_and_rank(
            index,
            scored,
            opening.len(),
            opening_hits.count,
            opening_clip,
            config,
        );
        if outcome
            .matches
            .first()
            .is_some_and(|m| m.confidence >= EARLY_ANSWER_CONFIDENCE)
        {
            return outcome;
        }
    }
    let rest = distinct(&rest);
    // The whole clip's landmarks, sorted: the two sorted parts merged (no landmark is in both).
    let mut landmarks = [opening.as_slice(), rest.as_slice()].concat();
    landmarks.sort();
    let rest_lookup = Lookup::within_budget(index, &rest, config.hits_per_landmark);
    if !opening_lookup.budgeted && !rest_lookup.budgeted {
        let rest_hits = gather(index, &rest_lookup);
        let found = candidates_from(index, &[&opening_hits, &rest_hits], config);
        let hits = opening_hits.count + rest_hits.count;
        return verify_and_rank(index, found, landmarks.len(), hits, clip, config);
    }
    let hits = opening_hits.count;
    drop(opening_hits);
    let rest_hits = gather(index, &rest_lookup);
    let rest_found = candidates_from(index, &[&rest_hits], config);
    let candidates = pooled_candidates(opening_found, rest_found);
    let scored = rescore_exactly(index, &landmarks, candidates, config);
    let hits = hits + rest_hits.count;
    verify_and_rank(index, scored, landmarks.len(), hits, clip, config)
}

/// Whether the best of a budgeted lookup's candidates (best first) has at least
/// [`STANDOUT_ALIGNED`] more aligned landmarks than the runner-up. The clip of an indexed song
/// lines up its rare keys on that song, far above the chance alignments of a crowd of
/// others; a best candidate level with the crowd is one of them.
fn stands_out(found: &[(usize, ScoredSong)]) -> bool {
    match found {
        [] => false,
        [_] => true,
        [(_, best), (_, runner_up), ..] => best.aligned >= runner_up.aligned + STANDOUT_ALIGNED,
    }
}

/// See [`stands_out`]. In the scale run at 10k songs (docs/BENCHMARK.md, "Stop 28") every
/// opening that answered early had its best candidate 2 to 122 aligned landmarks above the
/// runner-up, and 23 of the 24 clips of unindexed songs had it level or 1 above (the 24th, 15
/// above, is re-scored and rejected as before). A wrong call costs time, not recall: the clip
/// is then scored whole, as any clip that does not answer early is.
const STANDOUT_ALIGNED: usize = 2;

/// Scores `query` landmarks against `index`.
///
/// When the query's keys would hit more postings than the budget allows
/// ([`MatchConfig::hits_per_landmark`]), only its rarer keys are looked up; the songs they
/// point to are then re-scored exactly, each from its own landmarks around the offset found,
/// so the reported figures are those a full lookup would give for these songs.
///
/// The best candidates are then verified against the `clip` the query landmarks were made from
/// (see [`verify`]), and their confidence computed from both.
pub fn score(
    index: &InvertedIndex,
    query: &[Landmark],
    clip: ClipEvidence<'_>,
    config: &MatchConfig,
) -> ScoreOutcome {
    score_distinct(index, &distinct(query), clip, config)
}

/// The query's landmarks sorted by key, each once.
fn distinct(query: &[Landmark]) -> Vec<Landmark> {
    let mut sorted = landmarks::sorted(query);
    sorted.dedup();
    sorted
}

/// [`score`] of `landmarks` already sorted by key and distinct.
fn score_distinct(
    index: &InvertedIndex,
    landmarks: &[Landmark],
    clip: ClipEvidence<'_>,
    config: &MatchConfig,
) -> ScoreOutcome {
    let lookup = Lookup::within_budget(index, landmarks, config.hits_per_landmark);
    let hits = gather(index, &lookup);
    let found = candidates_from(index, &[&hits], config);
    let scored = if lookup.budgeted {
        rescore_exactly(index, landmarks, found, config)
    } else {
        found
    };
    verify_and_rank(index, scored, landmarks.len(), hits.count, clip, config)
}

/// The best [`RESCORED_CANDIDATES`] of `candidates` (from a budgeted lookup, best first)
/// re-scored exactly against all of `landmarks` (sorted by key), best first.
fn rescore_exactly(
    index: &InvertedIndex,
    landmarks: &[Landmark],
    candidates: Vec<(usize, ScoredSong)>,
    config: &MatchConfig,
) -> Vec<(usize, ScoredSong)> {
    let table = KeyTable::new(landmarks);
    // Each candidate is re-scored on its own (about 0.1 ms), so they are spread over the
    // thread pool.
    let mut rescored: Vec<(usize, ScoredSong)> = candidates
        .into_par_iter()
        .take(RESCORED_CANDIDATES)
        .map_init(Vec::new, |peaks, (span_idx, found)| {
            let centre = index.spans().get(span_idx).map_or(0, |span| {
                (f64::from(span.base) + found.offset_frames)
                    .round()
                    .max(0.0) as u64
            });
            score_song_exactly(index, span_idx, centre, (landmarks, &table), config, peaks)
                .map(|song| (span_idx, song))
        })
        .flatten()
        .collect();
    rescored.sort_by(|a, b| by_rank(&a.1, &b.1));
    rescored
}

/// The songs found by the lookups of a clip's opening and of its rest, best first: a song
/// both found at the same offset (within a bin) counts the aligned landmarks of both, as one
/// lookup of the whole clip would; a song found at different offsets keeps the stronger.
fn pooled_candidates(
    opening: Vec<(usize, ScoredSong)>,
    rest: Vec<(usize, ScoredSong)>,
) -> Vec<(usize, ScoredSong)> {
    let mut pooled = rest;
    for (span_idx, song) in opening {
        match pooled.iter_mut().find(|(idx, _)| *idx == span_idx) {
            Some((_, found)) if (found.offset_frames - song.offset_frames).abs() <= 1.0 => {
                found.aligned += song.aligned;
            }
            Some((_, found)) if song.aligned > found.aligned => *found = song,
            Some(_) => {}
            None => pooled.push((span_idx, song)),
        }
    }
    pooled.sort_by(|a, b| by_rank(&a.1, &b.1));
    pooled
}

/// Verifies the best of `scored` (best first) against the `clip` and ranks them by
/// confidence: those at or above the threshold are the matches.
fn verify_and_rank(
    index: &InvertedIndex,
    scored: Vec<(usize, ScoredSong)>,
    query_landmarks: usize,
    hits: usize,
    clip: ClipEvidence<'_>,
    config: &MatchConfig,
) -> ScoreOutcome {
    let mut outcome = ScoreOutcome {
        query_landmarks,
        hits,
        ..ScoreOutcome::default()
    };
    let mut verified: Vec<ScoredSong> = scored
        .into_iter()
        .take(VERIFIED_CANDIDATES.max(config.top_n))
        .filter_map(|(span_idx, mut song)| {
            let span = index.spans().get(span_idx)?;
            song.peaks = verify::peak_agreement(index, span, song.offset_frames, clip);
            song.confidence = confidence(&song, query_landmarks, index.song_count());
            Some(song)
        })
        .collect();
    // Verified, the best answer is the likeliest one, not the one with most aligned hashes.
    verified.sort_by(by_confidence);
    for song in verified {
        let accepted = song.aligned >= config.min_aligned && song.confidence >= config.threshold;
        if accepted && outcome.matches.len() < config.top_n {
            outcome.matches.push(song);
        } else if !accepted && outcome.matches.is_empty() && outcome.best_rejected.is_none() {
            outcome.best_rejected = Some(song);
        }
    }
    outcome
}

/// Songs re-scored exactly after a budgeted lookup (about 0.1 ms each: at 10k songs, keeping
/// those tied with the last too cost 5-10 % of a query). Ties are ranked by [`by_rank`].
const RESCORED_CANDIDATES: usize = 8;
/// Songs whose peaks are compared with the clip's (at least `top_n`). Not more: each one
/// verified is one more chance for a wrong song to agree with the clip by chance, which the
/// confidence model was fitted with this many.
const VERIFIED_CANDIDATES: usize = 8;

/// How many of `ranked` (best first, by [`by_rank`]) the best `wanted` are once candidates
/// with as many aligned landmarks as the last of them are kept too, up to twice `wanted`:
/// which songs go on to the next step then does not depend on their ids (which follow the
/// order songs were indexed in) unless more than `wanted` tie at the cut.
fn through_ties(ranked: &[(usize, ScoredSong)], wanted: usize) -> usize {
    match ranked.get(wanted.saturating_sub(1)) {
        Some((_, last)) if wanted > 0 => {
            let tied = ranked[wanted..]
                .iter()
                .take_while(|(_, song)| song.aligned == last.aligned)
                .count();
            wanted + tied.min(wanted)
        }
        _ => ranked.len().min(wanted),
    }
}

/// Best first: higher confidence, then more aligned landmarks, then the lower id.
fn by_confidence(a: &ScoredSong, b: &ScoredSong) -> std::cmp::Ordering {
    b.confidence
        .total_cmp(&a.confidence)
        .then(b.aligned.cmp(&a.aligned))
        .then(a.song_id.cmp(&b.song_id))
}

/// Best first: more aligned landmarks, then higher confidence, then the lower chance level
/// (the aligned count stands further above it), then the lower id. Candidates are ranked
/// before they are re-scored or verified (confidence 0) and cut at [`RESCORED_CANDIDATES`]
/// and [`VERIFIED_CANDIDATES`]: which of those tied on aligned landmarks go on is decided by
/// their evidence, not by their ids (which follow the order songs were indexed in).
fn by_rank(a: &ScoredSong, b: &ScoredSong) -> std::cmp::Ordering {
    b.aligned
        .cmp(&a.aligned)
        .then(b.confidence.total_cmp(&a.confidence))
        .then(chance_level(a).total_cmp(&chance_level(b)))
        .then(a.song_id.cmp(&b.song_id))
}

/// A candidate's hits per frame of offset away from its best bin.
fn chance_level(song: &ScoredSong) -> f64 {
    song.song_hits.saturating_sub(song.aligned) as f64 / (f64::from(song.background_frames) + 1.0)
}

/// The hits of one lookup, each as `difference << 32 | query frame`, in lists split at the
/// library's [`pivot`]: differences in the earlier half of the library, and the others. The
/// lists of several lookups can be scored together ([`candidates_from`]).
struct Gathered {
    early: Vec<HitList>,
    late: Vec<HitList>,
    /// Hits in all the lists.
    count: usize,
}

/// Looks up every landmark of `lookup`. A lookup of more than [`PARALLEL_LOOKUP_POSTINGS`]
/// runs on two threads, each reading the posting lists of half the keys.
fn gather(index: &InvertedIndex, lookup: &Lookup) -> Gathered {
    if lookup.total >= PARALLEL_LOOKUP_POSTINGS && two_threads(index) {
        return gather_on_two_threads(index, lookup);
    }
    let (early, late) = gather_hits(index, &lookup.landmarks, lookup.total, pivot(index.spans()));
    Gathered::new(vec![early], vec![late])
}

/// [`gather`] on two threads.
fn gather_on_two_threads(index: &InvertedIndex, lookup: &Lookup) -> Gathered {
    let pivot = pivot(index.spans());
    let split = split_by_postings(&lookup.landmarks, &lookup.postings, lookup.total);
    let (first, second) = lookup.landmarks.split_at(split);
    let half = lookup.total / 2;
    let ((early_a, late_a), (early_b, late_b)) = rayon::join(
        || gather_hits(index, first, half, pivot),
        || gather_hits(index, second, half, pivot),
    );
    Gathered::new(vec![early_a, early_b], vec![late_a, late_b])
}

impl Gathered {
    fn new(early: Vec<HitList>, late: Vec<HitList>) -> Self {
        let count = early.iter().chain(&late).map(|hits| hits.len()).sum();
        Self { early, late, count }
    }
}

/// Where [`gather`] splits the library's timeline: at the start of its middle song (less half
/// the gap, so that no song's hits fall on both sides). `u32::MAX` for a single song.
fn pivot(spans: &[SongSpan]) -> u32 {
    if spans.len() < 2 {
        return u32::MAX;
    }
    spans[spans.len() / 2]
        .base
        .saturating_sub(SONG_GAP_FRAMES / 2)
}

/// Whether lookups may use two threads.
fn two_threads(index: &InvertedIndex) -> bool {
    rayon::current_num_threads() >= 2 && index.spans().len() >= 2
}

/// Scores the songs that the hits of `lookups`, taken together, point to: best first (at
/// most [`candidates_kept`]), as (span index, score), the confidence left for verification.
/// With more than [`PARALLEL_LOOKUP_POSTINGS`] hits, two threads sort and sweep one half of
/// the library each; no list of hits is ever concatenated.
fn candidates_from(
    index: &InvertedIndex,
    lookups: &[&Gathered],
    config: &MatchConfig,
) -> Vec<(usize, ScoredSong)> {
    let early: Vec<&[u64]> = lookups
        .iter()
        .flat_map(|lookup| &lookup.early)
        .map(|hits| hits.as_slice())
        .collect();
    let late: Vec<&[u64]> = lookups
        .iter()
        .flat_map(|lookup| &lookup.late)
        .map(|hits| hits.as_slice())
        .collect();
    let count: usize = lookups.iter().map(|lookup| lookup.count).sum();
    if count < PARALLEL_LOOKUP_POSTINGS || !two_threads(index) {
        return candidates_of(index, &[early, late].concat(), config);
    }
    candidates_on_two_threads(index, &early, &late, config)
}

/// [`candidates_from`] on two threads, from the hits of the earlier and of the later half of
/// the library.
fn candidates_on_two_threads(
    index: &InvertedIndex,
    early: &[&[u64]],
    late: &[&[u64]],
    config: &MatchConfig,
) -> Vec<(usize, ScoredSong)> {
    let (mut found, found_late) = rayon::join(
        || candidates_of(index, early, config),
        || candidates_of(index, late, config),
    );
    found.extend(found_late);
    found.sort_by(|a, b| by_rank(&a.1, &b.1));
    found.truncate(through_ties(&found, candidates_kept(config)));
    found
}

/// Postings above which a lookup is split between two threads.
const PARALLEL_LOOKUP_POSTINGS: usize = 1 << 16;

/// Where to split `lookup` (sorted by key) into two parts of about equal `postings` (`total`
/// in all), at a key boundary.
fn split_by_postings(lookup: &[Landmark], postings: &[usize], total: usize) -> usize {
    let half = total / 2;
    let mut split = 0;
    let mut spent = 0;
    while split < lookup.len() && spent < half {
        spent += postings[split];
        split += 1;
    }
    while split > 0 && split < lookup.len() && lookup[split].key == lookup[split - 1].key {
        split += 1;
    }
    split
}

/// The hits of `lookup` (sorted by key), each as `difference << 32 | query frame`, in two
/// lists: differences below `pivot`, and the others. `postings`: the expected number of hits
/// (a capacity hint).
fn gather_hits(
    index: &InvertedIndex,
    lookup: &[Landmark],
    postings: usize,
    pivot: u32,
) -> (HitList, HitList) {
    let mut early = HitList::with_capacity(postings);
    let mut late = HitList::with_capacity(0);
    // Landmarks sharing a key (consecutive in `lookup`) read its posting list once.
    let mut start = 0;
    while start < lookup.len() {
        let key = lookup[start].key;
        let len = lookup[start..]
            .iter()
            .position(|l| l.key != key)
            .unwrap_or(lookup.len() - start);
        let group = &lookup[start..start + len];
        index.for_each_posting(key, |global| {
            for landmark in group {
                if let Some(diff) = global.checked_sub(landmark.frame) {
                    let hit = u64::from(diff) << 32 | u64::from(landmark.frame);
                    if diff < pivot {
                        early.push(hit);
                    } else {
                        late.push(hit);
                    }
                }
            }
        });
        start += len;
    }
    (early, late)
}

/// The songs the hits in `parts` point to, each scored by its best bin, best first (at most
/// [`candidates_kept`]), as (span index, score); the confidence is left for verification.
///
/// One sweep over all the hits ranks the songs by their best bin; only the songs kept are then
/// scored from their own hits (see [`own_hits`]), so the filter that needs each hit's song
/// runs over a few hundred hits rather than all of them.
fn candidates_of(
    index: &InvertedIndex,
    parts: &[&[u64]],
    config: &MatchConfig,
) -> Vec<(usize, ScoredSong)> {
    let spans = index.spans();
    let mut hits_sorted = HitList::with_len(parts.iter().map(|part| part.len()).sum());
    sort_by_difference(parts, largest_difference(spans), &mut hits_sorted);

    // One sweep over the sorted differences: the best bin (value ± 1) of each song.
    let floor = aligned_floor(config);
    let mut span_idx = 0usize;
    let mut best: Vec<u32> = vec![0; spans.len()];
    for_each_run_of_at_least(&hits_sorted, floor, |run, window| {
        let probe = song_of_difference(difference(hits_sorted[run.start]));
        while spans.get(span_idx + 1).is_some_and(|s| s.base <= probe) {
            span_idx += 1;
        }
        if spans.get(span_idx).is_none_or(|s| s.base > probe) {
            return;
        }
        if window > best[span_idx] {
            best[span_idx] = window;
        }
    });
    let mut best: Vec<(usize, u32)> = best
        .iter()
        .enumerate()
        .filter(|(idx, window)| **window >= floor && !index.is_removed(spans[*idx].song_id))
        .map(|(idx, &window)| (idx, window))
        .collect();
    // Only the strongest candidates can be reported: score those in full.
    let keep = candidates_kept(config);
    if best.len() > keep {
        // The `keep` best, and up to as many again tied with the last of them (see
        // `through_ties`), in the order of `by_rank` (ties to the lower song id), so that the
        // songs kept do not depend on how the hits were split between threads.
        let rank = |a: &(usize, u32), b: &(usize, u32)| {
            b.1.cmp(&a.1)
                .then(spans[a.0].song_id.cmp(&spans[b.0].song_id))
        };
        best.select_nth_unstable_by(keep - 1, rank);
        let last = best[keep - 1].1;
        let (_, rest) = best.split_at_mut(keep);
        let mut tied = 0;
        for i in 0..rest.len() {
            if rest[i].1 == last {
                rest.swap(tied, i);
                tied += 1;
            }
        }
        if tied > keep {
            rest[..tied].select_nth_unstable_by(keep - 1, rank);
            tied = keep;
        }
        best.truncate(keep + tied);
    }
    let mut own = Vec::new();
    let mut scored: Vec<(usize, ScoredSong)> = best
        .into_iter()
        .filter_map(|(span_idx, _)| {
            let span = spans.get(span_idx)?;
            own_hits(&hits_sorted, span, &mut own);
            let mut top: Option<(u32, usize)> = None;
            for_each_run(&own, |run, window| {
                if top.is_none_or(|(w, _)| window > w) {
                    top = Some((window, run.start));
                }
            });
            let (window, i) = top.filter(|&(window, _)| window >= floor)?;
            let song = song_score(span, &own, i, window, song_differences(span));
            Some((span_idx, song))
        })
        .collect();
    scored.sort_by(|a, b| by_rank(&a.1, &b.1));
    scored
}

/// Differences are below this: a posting lies at most a song's frame past the last song's
/// base, and the index refuses frames from [`MAX_SONG_FRAMES`] on, whatever the song's stated
/// length (the radix sort would misorder a difference with more bits than this has).
fn largest_difference(spans: &[SongSpan]) -> u32 {
    spans
        .last()
        .map_or(0, |span| span.base.saturating_add(MAX_SONG_FRAMES))
}

/// How many of the songs a lookup hits are scored in full.
fn candidates_kept(config: &MatchConfig) -> usize {
    (config.top_n * 4).max(CANDIDATES_SCORED)
}

/// The song a hit's offset difference points into: the last whose base is at most the
/// difference plus half the gap between songs (a clip may start a little before its song).
fn song_of_difference(diff: u32) -> u32 {
    diff.saturating_add(SONG_GAP_FRAMES / 2)
}

/// The offset differences a song's hits can have: from half the gap before the song (a clip
/// may start a little before it) to its end.
fn song_differences(span: &SongSpan) -> std::ops::Range<u64> {
    u64::from(span.base).saturating_sub(u64::from(SONG_GAP_FRAMES / 2))
        ..u64::from(span.base) + u64::from(span.num_frames)
}

/// The hits of `span`'s song, from `hits_sorted` (sorted by difference), into `own`: those
/// whose difference points into the song and whose posting lies in it too. A posting of the
/// next song matched by a late clip frame gives a difference before that song's start, which
/// would otherwise count for this song: a song's own repeated bars (the chorus matched by an
/// earlier chorus) used to show up as the song before it, near its end.
fn own_hits(hits_sorted: &[u64], span: &SongSpan, own: &mut Vec<u64>) {
    let differences = song_differences(span);
    let first_at = |value: u64| hits_sorted.partition_point(|&h| u64::from(difference(h)) < value);
    let song_end = u64::from(span.base) + u64::from(span.num_frames);
    own.clear();
    own.extend(
        hits_sorted[first_at(differences.start)..first_at(differences.end)]
            .iter()
            .filter(|&&hit| u64::from(difference(hit)) + (hit & 0xFFFF_FFFF) < song_end),
    );
}

/// Fewer aligned landmarks than this in a song's best bin and it is not a candidate.
fn aligned_floor(config: &MatchConfig) -> u32 {
    config.min_aligned.max(2) as u32 / 2
}

/// Re-scores one song against every landmark of the query around `centre` (the global
/// offset difference a budgeted lookup found for it), from the song's own landmarks
/// (regenerated from the peaks the index keeps) rather than from the postings: the hits are
/// those a full lookup would give for this song there, found in one pass over that stretch
/// of the song. The stretch covers the offsets within [`RESCORE_HALF_WIDTH_FRAMES`] of
/// `centre`, so the figures equal a full lookup's whenever the song's best bin lies within
/// [`RESCORE_HALF_WIDTH_FRAMES`] - [`BACKGROUND_HALF_WIDTH_FRAMES`] of `centre`. `peaks` is
/// scratch space.
fn score_song_exactly(
    index: &InvertedIndex,
    span_idx: usize,
    centre: u64,
    query: (&[Landmark], &KeyTable),
    config: &MatchConfig,
    peaks: &mut Vec<Peak>,
) -> Option<ScoredSong> {
    let (landmarks, table) = query;
    let span = index.spans().get(span_idx)?;
    let song = song_differences(span);
    let covered = centre
        .saturating_sub(RESCORE_HALF_WIDTH_FRAMES)
        .max(song.start)..(centre + RESCORE_HALF_WIDTH_FRAMES + 1).min(song.end);
    // A hit's difference is its song frame minus a query frame: the song frames that can give
    // a difference in `covered`.
    let query_frames = landmarks.iter().map(|l| l.frame).max().unwrap_or(0);
    let base = u64::from(span.base);
    let local = |global: u64| global.saturating_sub(base).min(u64::from(u32::MAX)) as u32;
    let frames =
        local(covered.start)..local(covered.end + u64::from(query_frames)).saturating_add(1);
    let mut hits_sorted = Vec::new();
    index.for_each_song_landmark_between(span, frames, peaks, |song_landmark| {
        let global = span.base + song_landmark.frame;
        for query_landmark in table.matching(song_landmark.key, landmarks) {
            let diff = global.checked_sub(query_landmark.frame);
            if let Some(diff) = diff.filter(|&d| covered.contains(&u64::from(d))) {
                hits_sorted.push(u64::from(diff) << 32 | u64::from(query_landmark.frame));
            }
        }
    });
    hits_sorted.sort_unstable();
    // The widest bin; the first one on a tie.
    let mut best: Option<(u32, usize)> = None;
    for_each_run(&hits_sorted, |run, window| {
        if best.is_none_or(|(w, _)| window > w) {
            best = Some((window, run.start));
        }
    });
    let (window, i) = best?;
    if window < aligned_floor(config) {
        return None;
    }
    Some(song_score(span, &hits_sorted, i, window, covered))
}

/// Offsets either side of a budgeted lookup's best bin that its exact re-scoring covers (the
/// background's half width plus 2 s for the best bin to move).
const RESCORE_HALF_WIDTH_FRAMES: u64 = BACKGROUND_HALF_WIDTH_FRAMES as u64 + 64;

/// The offset difference of a hit (`difference << 32 | query frame`).
fn difference(hit: u64) -> u32 {
    (hit >> 32) as u32
}

/// Calls `visit(run, window)` for each run of hits with one offset difference in `hits_sorted`
/// (sorted by difference), in order: `run` is its index range, `window` the number of hits in
/// the bin of width 3 centred on it (the difference ± 1). One pass, no allocation.
fn for_each_run(hits_sorted: &[u64], mut visit: impl FnMut(std::ops::Range<usize>, u32)) {
    let d = |i: usize| u64::from(difference(hits_sorted[i]));
    // `lo`: first hit of the bin (difference >= d - 1); `hi`: first hit past it (> d + 1).
    let (mut lo, mut hi) = (0, 0);
    let mut start = 0;
    while start < hits_sorted.len() {
        let value = d(start);
        let mut end = start + 1;
        while end < hits_sorted.len() && d(end) == value {
            end += 1;
        }
        while d(lo) + 1 < value {
            lo += 1;
        }
        hi = hi.max(end);
        while hi < hits_sorted.len() && d(hi) <= value + 1 {
            hi += 1;
        }
        visit(start..end, (hi - lo) as u32);
        start = end;
    }
}

/// [`for_each_run`] for the runs whose bin holds at least `min_window` hits. From two up, a
/// quick scan first skips every hit with no other within one frame of its difference: that is
/// nearly all of a large query's chance hits, whose runs then need no bin counted.
fn for_each_run_of_at_least(
    hits_sorted: &[u64],
    min_window: u32,
    mut visit: impl FnMut(std::ops::Range<usize>, u32),
) {
    let mut visit_wide = |run: std::ops::Range<usize>, window| {
        if window >= min_window {
            visit(run, window);
        }
    };
    if min_window < 2 {
        return for_each_run(hits_sorted, visit_wide);
    }
    let d = |i: usize| u64::from(difference(hits_sorted[i]));
    let mut start = 0;
    while start + 1 < hits_sorted.len() {
        if d(start + 1) > d(start) + 1 {
            start += 1;
            continue;
        }
        // A cluster of hits, each within one frame of the next: a bin centred on any of
        // them holds only hits of the cluster.
        let mut end = start + 2;
        while end < hits_sorted.len() && d(end) <= d(end - 1) + 1 {
            end += 1;
        }
        for_each_run(&hits_sorted[start..end], |run, window| {
            visit_wide(run.start + start..run.end + start, window);
        });
        start = end;
    }
}

/// The full score of a song whose best bin is centred on the run of hits starting at `i` in
/// `hits_sorted` (sorted by difference), with `window` hits in the bin. `covered`: the
/// differences of this song that `hits_sorted` holds all the hits of.
fn song_score(
    span: &SongSpan,
    hits_sorted: &[u64],
    i: usize,
    window: u32,
    covered: std::ops::Range<u64>,
) -> ScoredSong {
    let centre = u64::from(difference(hits_sorted[i]));
    let first_at = |value: u64| hits_sorted.partition_point(|&h| u64::from(difference(h)) < value);
    let bin = &hits_sorted[first_at(centre.saturating_sub(1))..first_at(centre + 2)];
    // Sub-frame offset: the mean difference of the bin's hits (sums of integers, exact in f64).
    let sum: f64 = bin.iter().map(|&h| f64::from(difference(h))).sum();
    let offset_frames = sum / (bin.len() as f64).max(1.0) - f64::from(span.base);
    // Distinct query frames among the aligned hits, and the time they span.
    let mut frames: Vec<u32> = bin.iter().map(|&h| h as u32).collect();
    frames.sort_unstable();
    frames.dedup();
    let aligned_frames = frames.len();
    let first_aligned_frame = frames.first().copied().unwrap_or(0);
    let spread_frames = frames.last().copied().unwrap_or(0) - first_aligned_frame;
    // The song's chance level: its hits at the offsets around the bin.
    let half_width = u64::from(BACKGROUND_HALF_WIDTH_FRAMES);
    let background = centre.saturating_sub(half_width).max(covered.start)
        ..(centre + half_width + 1).min(covered.end);
    let song_hits = first_at(background.end) - first_at(background.start);
    ScoredSong {
        song_id: span.song_id,
        aligned_frames,
        first_aligned_frame,
        spread_frames,
        aligned: window as usize,
        offset_frames,
        song_hits,
        background_frames: (background.end - background.start) as u32,
        // Computed once the song's peaks have been compared with the clip's.
        confidence: 0.0,
        peaks: PeakAgreement::default(),
    }
}

/// The query's landmarks by key: an open-addressing table from a key to the range of
/// landmarks with that key in the query's sorted list.
///
/// A bitset of hashed keys in front of it (32 KB, stays in L1) answers most probes of keys the
/// query does not have, which are nearly all of a song's keys.
struct KeyTable {
    slots: Vec<(u32, u32, u32)>,
    mask: usize,
    filter: Vec<u64>,
}

impl KeyTable {
    const EMPTY: u32 = u32::MAX;
    const FILTER_BITS: u32 = 18;

    fn filter_bit(key: u32) -> usize {
        (key.wrapping_mul(0x85EB_CA6B) >> (32 - Self::FILTER_BITS)) as usize
    }

    /// `landmarks` sorted by key.
    fn new(landmarks: &[Landmark]) -> Self {
        let capacity = (landmarks.len() * 2).next_power_of_two().max(16);
        let mut table = KeyTable {
            slots: vec![(Self::EMPTY, 0, 0); capacity],
            mask: capacity - 1,
            filter: vec![0; 1 << (Self::FILTER_BITS - 6)],
        };
        let mut start = 0;
        while start < landmarks.len() {
            let key = landmarks[start].key;
            let end = start + landmarks[start..].partition_point(|l| l.key == key);
            let mut slot = Self::hash(key) & table.mask;
            while table.slots[slot].0 != Self::EMPTY {
                slot = (slot + 1) & table.mask;
            }
            table.slots[slot] = (key, start as u32, end as u32);
            let bit = Self::filter_bit(key);
            table.filter[bit / 64] |= 1 << (bit % 64);
            start = end;
        }
        table
    }

    fn hash(key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> 7) as usize
    }

    /// The landmarks of `landmarks` (the list the table was built from) with this key.
    #[inline]
    fn matching<'a>(&self, key: u32, landmarks: &'a [Landmark]) -> &'a [Landmark] {
        let bit = Self::filter_bit(key);
        if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return &[];
        }
        let mut slot = Self::hash(key) & self.mask;
        loop {
            let (k, start, end) = self.slots[slot];
            if k == key {
                return &landmarks[start as usize..end as usize];
            }
            if k == Self::EMPTY {
                return &[];
            }
            slot = (slot + 1) & self.mask;
        }
    }
}

/// The query landmarks to look up (sorted by key), with the length of each one's posting list.
#[derive(Clone, Debug, Default)]
struct Lookup {
    landmarks: Vec<Landmark>,
    postings: Vec<usize>,
    /// The sum of `postings`.
    total: usize,
    /// Only the rarer keys are looked up: the query would hit more postings than its budget.
    budgeted: bool,
}

impl Lookup {
    /// All of `landmarks` (sorted by key), or, when they would hit more than
    /// `hits_per_landmark` postings per landmark (0: no limit), the rarer ones: a key
    /// shared by thousands of songs puts one hit in each and almost never on the right song's
    /// diagonal; keeping the rarer keys first bounds the work of a query in a library of any
    /// size, and the candidates they find are re-scored exactly with all the landmarks.
    fn within_budget(
        index: &InvertedIndex,
        landmarks: &[Landmark],
        hits_per_landmark: usize,
    ) -> Self {
        let lengths: Vec<usize> = landmarks.iter().map(|l| index.posting_len(l.key)).collect();
        let total: usize = lengths.iter().sum();
        let budget = hits_per_landmark.saturating_mul(landmarks.len());
        let budgeted = hits_per_landmark > 0 && total > budget;
        // Shortest lists first, until the budget is spent: every list shorter than `cut`, and
        // as many of those of length `cut` as still fit (the first in key order).
        let (cut, mut room_at_cut) = if budgeted {
            let mut sorted = lengths.clone();
            sorted.sort_unstable();
            let mut spent = 0;
            let cut = sorted
                .iter()
                .copied()
                .find(|&len| {
                    let over = spent + len > budget;
                    spent += len;
                    over
                })
                .unwrap_or(usize::MAX);
            let below: usize = sorted.iter().take_while(|&&len| len < cut).sum();
            // `cut` > 0: a list of length 0 never goes over the budget.
            (cut, (budget - below) / cut.max(1))
        } else {
            (usize::MAX, usize::MAX)
        };
        let mut lookup = Lookup {
            budgeted,
            ..Lookup::default()
        };
        for (landmark, &len) in landmarks.iter().zip(&lengths) {
            let fits = len < cut || (len == cut && room_at_cut > 0);
            if len == cut && fits {
                room_at_cut -= 1;
            }
            // A list of length 0 may still have postings in the index's side list.
            if fits {
                lookup.landmarks.push(*landmark);
                lookup.postings.push(len);
                lookup.total += len;
            }
        }
        lookup
    }
}

/// Logistic-model weights of [`confidence`], in the order of [`confidence_features`]. Fitted
/// on the development corpus (see docs/BENCHMARK.md, "Confidence calibration"): the output is
/// the estimated probability that the top answer is the right song.
pub const CONFIDENCE_WEIGHTS: [f64; 8] =
    [2.338, -0.664, -0.430, -1.309, 3.357, -0.512, 0.750, -4.644];

/// The contrast feature is clamped to this range: beyond it the evidence is conclusive either
/// way, and the model should not extrapolate.
const CONTRAST_Z_RANGE: (f64, f64) = (-5.0, 15.0);

/// The model's inputs for one candidate: ln(aligned), ln(aligned frames), ln(song background +
/// 0.01), ln(query landmarks + 1), ln(matched clip peaks + 1), ln(chance matched peaks + 1),
/// the clip's contrast at the song's peaks in standard errors above chance (clamped), and 1
/// (the intercept).
///
/// The background is the song's chance level for landmarks: hits of the query elsewhere in
/// the song, per 3-frame bin.
pub fn confidence_features(song: &ScoredSong, query_landmarks: usize) -> [f64; 8] {
    let background = BIN_FRAMES * song.song_hits.saturating_sub(song.aligned) as f64
        / (f64::from(song.background_frames) + 1.0);
    [
        (song.aligned.max(1) as f64).ln(),
        (song.aligned_frames.max(1) as f64).ln(),
        (background + 0.01).ln(),
        (query_landmarks as f64 + 1.0).ln(),
        (song.peaks.matched as f64 + 1.0).ln(),
        (song.peaks.chance + 1.0).ln(),
        song.peaks
            .contrast_z
            .clamp(CONTRAST_Z_RANGE.0, CONTRAST_Z_RANGE.1),
        1.0,
    ]
}

/// Songs in the library the confidence model was fitted on: the development corpus's 81.
pub const FITTED_LIBRARY_SONGS: usize = 81;

/// The share of the full correction for the library's size that the model's log-odds take
/// (see [`library_size_penalty`]). Measured on 10,000 generated songs made of the corpus's own
/// music (docs/BENCHMARK.md, "False positives at 10,000 songs"): the full correction (1) cost
/// 18 % of the right answers there, half of it 4 % (1-2 s clips, mostly) and it kept all four
/// clips of unindexed music that the uncorrected model named below the threshold.
pub const LIBRARY_SIZE_WEIGHT: f64 = 0.5;

/// What the model's log-odds lose in a library of `songs` songs: nothing up to the 81 it was
/// fitted on; beyond, [`LIBRARY_SIZE_WEIGHT`] x ln(songs / 81). The answer is the best of
/// every song in the library, and the odds that some wrong song among N aligns as well as the
/// features say by chance grow about as N does (the full correction); songs of one library
/// are not independent draws, hence only a share of it. About 1.3 at 1,000 songs, 2.4 at
/// 10,000, 3.2 at 50,000.
pub fn library_size_penalty(songs: usize) -> f64 {
    let ratio = songs.max(FITTED_LIBRARY_SONGS) as f64 / FITTED_LIBRARY_SONGS as f64;
    LIBRARY_SIZE_WEIGHT * ratio.ln()
}

/// Probability that `song` (scored and verified against a query of `query_landmarks`
/// landmarks, in a library of `library_songs` songs) is the right answer.
///
/// More aligned landmarks from more distinct clip frames, and more clip peaks on the song's
/// peaks, raise it; a song that draws many hits and peak coincidences anywhere (similar
/// instrumentation, same key), a long, busy query and a large library lower it.
pub fn confidence(song: &ScoredSong, query_landmarks: usize, library_songs: usize) -> f64 {
    if song.aligned == 0 {
        return 0.0;
    }
    let logit: f64 = confidence_features(song, query_landmarks)
        .iter()
        .zip(CONFIDENCE_WEIGHTS)
        .map(|(x, w)| x * w)
        .sum::<f64>()
        - library_size_penalty(library_songs);
    1.0 / (1.0 + (-logit).exp())
}

/// Sorts the hits of `parts` by their offset difference (the high 32 bits, at most
/// `largest`) into `sorted` (whose contents are replaced): an LSD radix sort over as many bits
/// as `largest` has, in passes of at most [`RADIX_BITS_PER_PASS`] bits, several times faster
/// than a comparison sort for the 10^5..10^7 hits of a query. One read of `parts` counts the
/// buckets of every pass; the first pass then reads every part, so hits gathered on two
/// threads or by several lookups are never concatenated first. The query frames (low bits) stay in arbitrary order
/// within one difference.
fn sort_by_difference(parts: &[&[u64]], largest: u32, sorted: &mut HitList) {
    let len = parts.iter().map(|part| part.len()).sum();
    // The bucket counters have 32 bits (half the cache of 64), enough for any query that fits
    // in memory; a larger one is sorted by comparison, as a small one is.
    let Some(len_u32) = u32::try_from(len).ok().filter(|&len| len >= 4096) else {
        sorted.clear();
        for part in parts {
            sorted.extend_from_slice(part);
        }
        sorted.sort_unstable();
        return;
    };
    let bits = (u32::BITS - largest.leading_zeros()).max(1);
    let passes = bits.div_ceil(RADIX_BITS_PER_PASS) as usize;
    let bits_per_pass = bits.div_ceil(passes as u32);
    let buckets = 1usize << bits_per_pass;
    let mask = buckets as u64 - 1;
    let shift = |pass: usize| 32 + pass as u32 * bits_per_pass;
    // Every pass's bucket sizes in one read, then turned into each bucket's first slot.
    let mut starts = vec![0u32; passes * buckets];
    for part in parts {
        for &hit in part.iter() {
            for pass in 0..passes {
                starts[pass * buckets + ((hit >> shift(pass)) & mask) as usize] += 1;
            }
        }
    }
    for counts in starts.chunks_exact_mut(buckets) {
        let mut next = 0;
        for slot in counts.iter_mut() {
            let size = *slot;
            *slot = next;
            next += size;
        }
        debug_assert_eq!(next, len_u32);
    }
    // Passes alternate between the two buffers (each pass writes every slot); the last one
    // writes into `sorted`.
    let mut other = HitList::with_len(len);
    sorted.truncate(len);
    sorted.resize(len, 0);
    let (mut into, mut from) = if passes % 2 == 1 {
        (&mut *sorted, &mut other)
    } else {
        (&mut other, &mut *sorted)
    };
    for (pass, next) in starts.chunks_exact_mut(buckets).enumerate() {
        let shift = shift(pass);
        let mut scatter = |source: &[u64], into: &mut [u64]| {
            for &hit in source {
                let bucket = ((hit >> shift) & mask) as usize;
                into[next[bucket] as usize] = hit;
                next[bucket] += 1;
            }
        };
        if pass == 0 {
            for part in parts {
                scatter(part, into);
            }
        } else {
            scatter(from, into);
        }
        std::mem::swap(&mut into, &mut from);
    }
}

/// Widest radix of [`sort_by_difference`]'s passes.
const RADIX_BITS_PER_PASS: u32 = 14;

/// A list of hits whose buffer comes from, and goes back to, a small pool shared by all
/// queries. A 10k-song query needs several lists of megabytes each; a reused one need not be
/// zeroed before the radix sort writes it (see [`HitList::with_len`]) nor have its pages
/// mapped again. The pool keeps at most [`HitList::POOLED_BYTES`]: larger lists (huge
/// unbudgeted queries) are freed as usual.
struct HitList(Vec<u64>);

/// Buffers kept for reuse by [`HitList`].
static HIT_LIST_POOL: std::sync::Mutex<Vec<Vec<u64>>> = std::sync::Mutex::new(Vec::new());

impl HitList {
    /// Buffers the pool keeps at most (a two-thread lookup holds eight at once).
    const POOLED_BUFFERS: usize = 8;
    /// Bytes the pool holds at most (the buffers of one 10k-song query).
    const POOLED_BYTES: usize = 24 << 20;

    fn from_pool() -> Vec<u64> {
        let pooled = HIT_LIST_POOL.lock().ok().and_then(|mut pool| pool.pop());
        pooled.unwrap_or_default()
    }

    /// An empty list with room for `capacity` hits.
    fn with_capacity(capacity: usize) -> Self {
        let mut hits = Self::from_pool();
        hits.clear();
        hits.reserve(capacity);
        HitList(hits)
    }

    /// A list of `len` hits of unspecified value, for a caller that overwrites every one: a
    /// reused buffer is not zeroed again (that took 2 % of a 10k-song query).
    fn with_len(len: usize) -> Self {
        let mut hits = Self::from_pool();
        hits.truncate(len);
        hits.resize(len, 0);
        HitList(hits)
    }
}

impl Drop for HitList {
    fn drop(&mut self) {
        let hits = std::mem::take(&mut self.0);
        if hits.capacity() == 0 {
            return;
        }
        let bytes = |list: &Vec<u64>| list.capacity() * std::mem::size_of::<u64>();
        if let Ok(mut pool) = HIT_LIST_POOL.lock()
            && pool.len() < Self::POOLED_BUFFERS
            && pool.iter().map(bytes).sum::<usize>() + bytes(&hits) <= Self::POOLED_BYTES
        {
            pool.push(hits);
        }
    }
}

impl std::ops::Deref for HitList {
    type Target = Vec<u64>;
    fn deref(&self) -> &Vec<u64> {
        &self.0
    }
}

impl std::ops::DerefMut for HitList {
    fn deref_mut(&mut self) -> &mut Vec<u64> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn radix_sort_orders_by_difference() {
        // Largest differences of 1, 2 and 3 passes, and of all 32 bits.
        for modulus in [2_000u64, 100_003, 75_000_007, 1 << 32] {
            let hits: Vec<u64> = (0..10_000u64)
                .map(|i| ((i * 2_654_435_761 % modulus) << 32) | (i * 31 % 997))
                .collect();
            let mut expected = hits.clone();
            expected.sort_unstable_by_key(|h| h >> 32);
            // Split unevenly, as two lookups on two threads gather them.
            let (left, right) = hits.split_at(3_000);
            let (middle, right) = right.split_at(500);
            let mut sorted = HitList::with_capacity(0);
            super::sort_by_difference(&[left, middle, right], (modulus - 1) as u32, &mut sorted);
            let mut hits = sorted.to_vec();
            let got: Vec<u64> = hits.iter().map(|h| h >> 32).collect();
            let want: Vec<u64> = expected.iter().map(|h| h >> 32).collect();
            assert_eq!(got, want, "differences below {modulus}");
            // The same hits, only reordered.
            hits.sort_unstable();
            expected.sort_unstable();
            assert_eq!(hits, expected, "differences below {modulus}");
        }
    }

    use super::*;

    /// A candidate with these figures, in a song of 7,500 frames (4 minutes); `peaks` is
    /// (matched clip peaks, their chance level, contrast in standard errors above chance).
    fn candidate(aligned: usize, frames: usize, song_hits: usize, peaks: (usize, f64, f64)) -> f64 {
        let song = ScoredSong {
            song_id: 1,
            aligned,
            aligned_frames: frames,
            first_aligned_frame: 0,
            spread_frames: 100,
            offset_frames: 0.0,
            confidence: 0.0,
            song_hits,
            background_frames: 7_500,
            peaks: PeakAgreement {
                matched: peaks.0,
                chance: peaks.1,
                clip_peaks: 300,
                contrast_z: peaks.2,
                ..PeakAgreement::default()
            },
        };
        confidence(&song, 2_000, FITTED_LIBRARY_SONGS)
    }

    /// Up to the 81 songs the model was fitted on the library's size changes nothing; beyond,
    /// the same evidence is worth less, by half the log of the size ratio in log-odds.
    #[test]
    fn the_same_evidence_is_worth_less_in_a_larger_library() {
        let song = ScoredSong {
            song_id: 1,
            aligned: 14,
            aligned_frames: 8,
            first_aligned_frame: 0,
            spread_frames: 60,
            offset_frames: 0.0,
            confidence: 0.0,
            song_hits: 300,
            background_frames: 7_500,
            peaks: PeakAgreement {
                matched: 20,
                chance: 5.0,
                clip_peaks: 150,
                contrast_z: 5.0,
                ..PeakAgreement::default()
            },
        };
        let at = |songs| confidence(&song, 4_000, songs);
        assert_eq!(at(5), at(FITTED_LIBRARY_SONGS));
        assert!(at(1_000) < at(FITTED_LIBRARY_SONGS));
        assert!(at(50_000) < at(1_000));
        let log_odds = |p: f64| (p / (1.0 - p)).ln();
        let lost = log_odds(at(FITTED_LIBRARY_SONGS)) - log_odds(at(8_100));
        assert!((lost - 0.5 * 100f64.ln()).abs() < 1e-9, "{lost}");
    }

    /// Candidates with these aligned counts, best first, with ids in the reverse order.
    fn ranked(aligned: &[usize]) -> Vec<(usize, ScoredSong)> {
        aligned
            .iter()
            .enumerate()
            .map(|(idx, &aligned)| {
                let song = ScoredSong {
                    song_id: 100 - idx as i64,
                    aligned,
                    aligned_frames: aligned,
                    first_aligned_frame: 0,
                    spread_frames: 0,
                    offset_frames: 0.0,
                    confidence: 0.0,
                    song_hits: 0,
                    background_frames: 0,
                    peaks: PeakAgreement::default(),
                };
                (idx, song)
            })
            .collect()
    }

    #[test]
    fn a_cut_keeps_the_candidates_tied_with_the_last_up_to_twice_as_many() {
        assert_eq!(through_ties(&ranked(&[10, 9, 8, 8, 8, 7]), 3), 5);
        assert_eq!(through_ties(&ranked(&[10, 9, 8, 8, 8, 7]), 2), 2);
        assert_eq!(through_ties(&ranked(&[10, 9, 8, 8, 8]), 4), 5);
        assert_eq!(through_ties(&ranked(&[10, 9]), 8), 2);
        assert_eq!(through_ties(&ranked(&[5; 9]), 2), 4);
        assert_eq!(through_ties(&ranked(&[5; 9]), 0), 0);
    }

    #[test]
    fn candidates_tied_on_aligned_landmarks_rank_by_chance_level_not_by_id() {
        let mut songs = ranked(&[9, 9, 9]);
        for (song_hits, (_, song)) in [300, 40, 120].into_iter().zip(&mut songs) {
            song.song_hits = song_hits;
            song.background_frames = 2_000;
        }
        songs.sort_by(|a, b| by_rank(&a.1, &b.1));
        let hits: Vec<usize> = songs.iter().map(|(_, song)| song.song_hits).collect();
        assert_eq!(hits, [40, 120, 300]);
        // Only a tie on every figure falls back to the lower id.
        let mut same = ranked(&[9, 9]);
        same.sort_by(|a, b| by_rank(&a.1, &b.1));
        assert_eq!(same[0].1.song_id, 99);
    }

    #[test]
    fn confidence_rises_with_evidence_and_falls_with_chance_levels() {
        let typical = (30, 5.0, 4.0);
        assert!(candidate(30, 15, 300, typical) > candidate(8, 6, 300, typical));
        assert!(candidate(12, 8, 3_000, typical) < candidate(12, 8, 300, typical));
        assert!(candidate(12, 8, 300, (45, 5.0, 4.0)) > candidate(12, 8, 300, typical));
        assert!(candidate(12, 8, 300, (30, 15.0, 4.0)) < candidate(12, 8, 300, typical));
        assert!(candidate(12, 8, 300, (30, 5.0, 9.0)) > candidate(12, 8, 300, typical));
        // Clamped: beyond 15 standard errors the contrast adds nothing.
        assert_eq!(
            candidate(12, 8, 300, (30, 5.0, 40.0)),
            candidate(12, 8, 300, (30, 5.0, 15.0))
        );
        assert!(candidate(100, 40, 300, (150, 5.0, 12.0)) > 0.99);
        assert!(candidate(3, 2, 300, (6, 5.0, 0.0)) < 0.2);
        assert_eq!(candidate(0, 0, 0, typical), 0.0);
    }

    #[test]
    fn runs_and_windows_match_a_direct_count() {
        // Differences with gaps, neighbours and repeats, as sorted hits (difference, frame).
        let diffs = [
            3u32, 3, 4, 6, 8, 8, 8, 9, 10, 12, 20, 21, 21, 22, 22, 22, 40,
        ];
        let hits: Vec<u64> = diffs
            .iter()
            .enumerate()
            .map(|(i, &d)| u64::from(d) << 32 | i as u64)
            .collect();
        let mut seen = Vec::new();
        for_each_run(&hits, |run, window| {
            let d = diffs[run.start];
            assert!(diffs[run.clone()].iter().all(|&x| x == d));
            let expected = diffs.iter().filter(|&&x| x.abs_diff(d) <= 1).count() as u32;
            assert_eq!(window, expected, "difference {d}");
            seen.push(d);
        });
        let mut distinct = diffs.to_vec();
        distinct.dedup();
        assert_eq!(seen, distinct);
        // The bin of a run as song_score sees it: 20, 21, 21, 22, 22, 22 around 21.
        let span = SongSpan::for_test(7, 10, 100);
        let i = diffs.iter().position(|&d| d == 21).unwrap_or(0);
        let song = song_score(&span, &hits, i, 6, song_differences(&span));
        assert_eq!(song.aligned_frames, 6);
        // A short song: its chance level is counted over all of it, from 32 frames before.
        assert_eq!((song.song_hits, song.background_frames), (17, 110));
        let covered = 15..41;
        let song = song_score(&span, &hits, i, 6, covered);
        assert_eq!((song.song_hits, song.background_frames), (7, 26));
        assert!((song.offset_frames - (128.0 / 6.0 - 10.0)).abs() < 1e-12);
    }

    #[test]
    fn a_lookup_on_two_threads_finds_what_one_thread_finds() {
        let rule = plain_rule();
        let (songs, index) = random_library(60, 7, rule);
        // Clips of a song in the earlier and of one in the later half of the library.
        for song in [17, 44] {
            let clip = excerpt(&songs[song], 300..700);
            let mut query = query_landmarks(&clip, rule);
            query.sort_unstable();
            query.dedup();
            let config = MatchConfig::default();
            let lookup = Lookup::within_budget(&index, &query, 0);
            assert!(!lookup.budgeted);

            let (all, _) = gather_hits(&index, &query, 0, u32::MAX);
            let one_count = all.len();
            let one = candidates_of(&index, &[&all], &config);
            let gathered = gather_on_two_threads(&index, &lookup);
            let two = candidates_on_two_threads(
                &index,
                &slices(&gathered.early),
                &slices(&gathered.late),
                &config,
            );
            assert!(one_count > 1_000, "{one_count} hits");
            assert_eq!(one_count, gathered.count);
            assert!(one.len() > 10, "{} candidates", one.len());
            assert_eq!(one, two);
            assert_eq!(one[0].1.song_id, song as i64);
        }
    }

    /// The hit lists as slices, as [`candidates_from`] hands them on.
    fn slices<'a>(lists: impl IntoIterator<Item = &'a HitList>) -> Vec<&'a [u64]> {
        lists.into_iter().map(|hits| hits.as_slice()).collect()
    }

    #[test]
    fn two_lookups_scored_together_give_what_one_lookup_of_all_their_keys_gives() {
        let rule = plain_rule();
        let (songs, index) = random_library(60, 11, rule);
        let clip = excerpt(&songs[44], 300..700);
        let query = distinct(&query_landmarks(&clip, rule));
        let (opening, rest): (Vec<Landmark>, Vec<Landmark>) =
            query.iter().partition(|l| l.frame < 100);
        let config = MatchConfig::default();
        let whole = gather(&index, &Lookup::within_budget(&index, &query, 0));
        let expected = candidates_from(&index, &[&whole], &config);
        assert_eq!(expected[0].1.song_id, 44);
        assert!(expected.len() > 10, "{} candidates", expected.len());

        let opening = gather(&index, &Lookup::within_budget(&index, &opening, 0));
        let rest = gather(&index, &Lookup::within_budget(&index, &rest, 0));
        assert!(opening.count > 0 && rest.count > opening.count);
        assert_eq!(opening.count + rest.count, whole.count);
        // One thread sorts all the lists at once.
        let got = candidates_from(&index, &[&opening, &rest], &config);
        assert_eq!(got, expected);
        // Two threads each take one half of the library from both lookups; the lists
        // were split at the same pivot.
        let early = slices(opening.early.iter().chain(&rest.early));
        let late = slices(opening.late.iter().chain(&rest.late));
        assert!(!early.concat().is_empty() && !late.concat().is_empty());
        let got = candidates_on_two_threads(&index, &early, &late, &config);
        assert_eq!(got, expected);
    }

    #[test]
    fn key_table_finds_exactly_the_query_landmarks_with_a_key() {
        let mut query: Vec<Landmark> = (0..3_000u32)
            .map(|i| Landmark {
                key: i.wrapping_mul(2_654_435_761) % 100_000,
                frame: i % 311,
            })
            .collect();
        query.sort_unstable();
        query.dedup();
        let table = KeyTable::new(&query);
        for key in 0..100_000u32 {
            let expected: Vec<Landmark> = query.iter().copied().filter(|l| l.key == key).collect();
            assert_eq!(table.matching(key, &query), &expected[..], "key {key}");
        }
    }

    use crate::engine::landmarks::{self, PairingRule};
    use crate::engine::peaks::{Peak, random_peaks};

    /// Pairs of each peak with its next 5 within 63 frames and 127 bins, no dt tolerance.
    fn plain_rule() -> PairingRule {
        PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        }
    }

    /// `count` songs of 2,000 frames and 900 random peaks (seeds from `seed`), and an index of
    /// them by `rule` (song ids from 0).
    fn random_library(count: u64, seed: u64, rule: PairingRule) -> (Vec<Vec<Peak>>, InvertedIndex) {
        let songs: Vec<Vec<Peak>> = (0..count)
            .map(|s| random_peaks(s + seed, 2_000, 900))
            .collect();
        let index = index_of(&songs, rule);
        (songs, index)
    }

    /// An index by `rule` of `songs` of 2,000 frames each (song ids from 0).
    fn index_of(songs: &[Vec<Peak>], rule: PairingRule) -> InvertedIndex {
        InvertedIndex::build(0.032, rule, |visit| {
            for (id, peaks) in songs.iter().enumerate() {
                visit(id as i64, 2_000, peaks);
            }
        })
        .unwrap()
    }

    /// A query's landmarks of `clip`: `rule` with 3 times its fan-out, as queries pair.
    fn query_landmarks(clip: &[Peak], rule: PairingRule) -> Vec<Landmark> {
        let mut query = Vec::new();
        let fan_value = rule.fan_value * 3;
        landmarks::landmarks(clip, PairingRule { fan_value, ..rule }, &mut query);
        query
    }

    /// The peaks of `frames` of a song, as a clip starting there (its frames from 0).
    fn excerpt(song: &[Peak], frames: std::ops::Range<u32>) -> Vec<Peak> {
        song.iter()
            .filter(|p| frames.contains(&p.frame))
            .map(|p| Peak {
                frame: p.frame - frames.start,
                bin: p.bin,
            })
            .collect()
    }

    fn peaks_only(peaks: &[Peak]) -> ClipEvidence<'_> {
        ClipEvidence {
            peaks,
            contrast: None,
        }
    }

    #[test]
    fn a_song_repeating_itself_is_not_mistaken_for_the_song_before_it() {
        let rule = PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        };
        let before = random_peaks(5, 1_000, 450);
        // The second song plays its first 200 frames again from frame 300.
        let mut looped = random_peaks(6, 1_000, 450);
        let first_bars: Vec<Peak> = looped.iter().filter(|p| p.frame < 200).copied().collect();
        looped.retain(|p| !(300..500).contains(&p.frame));
        looped.extend(first_bars.iter().map(|p| Peak {
            frame: p.frame + 300,
            bin: p.bin,
        }));
        looped.sort_unstable();
        let index = InvertedIndex::build(0.032, rule, |visit| {
            visit(1, 1_000, &before);
            visit(2, 1_000, &looped);
        })
        .unwrap();
        // A clip from frame 250: its frames 50..250 also match the song's frames 0..200, which
        // puts the clip's start 50 frames before the song.
        let clip = excerpt(&looped, 250..550);
        let mut query = Vec::new();
        landmarks::landmarks(&clip, rule, &mut query);
        // Every candidate, and (from 5 aligned) those whose bin has at least 2 hits, which
        // the sweep finds by another path.
        for min_aligned in [2, 5] {
            let everything = MatchConfig {
                hits_per_landmark: 0,
                threshold: 0.0,
                min_aligned,
                ..MatchConfig::default()
            };
            let outcome = score(&index, &query, peaks_only(&clip), &everything);
            assert_eq!(outcome.matches[0].song_id, 2);
            assert!((outcome.matches[0].offset_frames - 250.0).abs() < 1.0);
            assert!(
                outcome.matches.iter().all(|m| m.song_id != 1),
                "{:?}",
                outcome.matches
            );
        }
    }

    #[test]
    fn a_clip_that_does_not_answer_early_gets_the_figures_of_a_whole_clip_lookup() {
        let rule = plain_rule();
        let (songs, index) = random_library(200, 70, rule);
        // An opening of sound found in no song, so no early answer; then song 12 from frame
        // 500, which puts the clip's start at frame 400 of the song.
        let opening_frames = 100;
        let mut clip = random_peaks(999, opening_frames, 45);
        clip.extend(excerpt(&songs[12], 500..900).iter().map(|p| Peak {
            frame: p.frame + opening_frames,
            bin: p.bin,
        }));
        let query = query_landmarks(&clip, rule);
        let rest = distinct(&query)
            .into_iter()
            .filter(|l| l.frame >= opening_frames)
            .collect::<Vec<_>>();
        // Unbudgeted, and budgeted (the rest of the clip is then looked up on its own).
        for hits_per_landmark in [0, 1] {
            let budgeted = Lookup::within_budget(&index, &rest, hits_per_landmark).budgeted;
            assert_eq!(budgeted, hits_per_landmark > 0);
            let config = MatchConfig {
                hits_per_landmark,
                threshold: 0.0,
                ..MatchConfig::default()
            };
            let figures = |outcome: ScoreOutcome| {
                let top = outcome.matches.first().cloned();
                top.map(|m| (m.song_id, m.aligned, m.song_hits, m.offset_frames.round()))
            };
            let early = score_early(&index, &query, peaks_only(&clip), &config, opening_frames);
            let whole = score(&index, &query, peaks_only(&clip), &config);
            let early = figures(early);
            assert_eq!(early.map(|m| (m.0, m.3)), Some((12, 400.0)));
            assert_eq!(early, figures(whole), "budget {hits_per_landmark}");
        }
    }

    #[test]
    fn a_best_candidate_stands_out_only_two_aligned_landmarks_above_the_runner_up() {
        assert!(stands_out(&ranked(&[10, 4, 4])));
        assert!(stands_out(&ranked(&[6, 4, 4])));
        assert!(stands_out(&ranked(&[3])));
        assert!(!stands_out(&ranked(&[5, 4, 4])));
        assert!(!stands_out(&ranked(&[7, 7, 6])));
        assert!(!stands_out(&ranked(&[])));
    }

    #[test]
    fn a_budgeted_clip_of_an_indexed_song_answers_from_its_opening() {
        let rule = plain_rule();
        // Songs in a narrow band, so that their keys are common and lookups budgeted.
        let songs: Vec<Vec<Peak>> = (0..200)
            .map(|s| {
                let mut peaks = random_peaks(s + 70, 2_000, 900);
                peaks.iter_mut().for_each(|p| p.bin %= 64);
                peaks
            })
            .collect();
        let index = index_of(&songs, rule);
        let opening_frames = 100;
        let clip: Vec<Peak> = excerpt(&songs[12], 500..900);
        let query = query_landmarks(&clip, rule);
        let opening: Vec<Landmark> = query
            .iter()
            .copied()
            .filter(|l| l.frame < opening_frames)
            .collect();
        assert!(Lookup::within_budget(&index, &distinct(&opening), 2).budgeted);
        let config = MatchConfig {
            hits_per_landmark: 2,
            top_n: 1,
            ..MatchConfig::default()
        };
        let early = score_early(&index, &query, peaks_only(&clip), &config, opening_frames);
        let whole = score(&index, &query, peaks_only(&clip), &config);
        let top = early
            .matches
            .first()
            .map(|m| (m.song_id, m.offset_frames.round()));
        assert_eq!(top, Some((12, 500.0)));
        assert!(
            early.hits < whole.hits / 2,
            "answered from the opening: {} hits, against {} for the whole clip",
            early.hits,
            whole.hits
        );
    }

    #[test]
    fn songs_added_since_the_last_merge_are_found() {
        let rule = plain_rule();
        let songs: Vec<Vec<Peak>> = (0..3).map(|s| random_peaks(s + 40, 1_000, 450)).collect();
        let merged = InvertedIndex::build(0.032, rule, |visit| {
            for (id, peaks) in songs.iter().enumerate() {
                visit(id as i64 + 1, 1_000, peaks);
            }
        })
        .unwrap();
        let mut pending = InvertedIndex::build(0.032, rule, |visit| {
            visit(1, 1_000, &songs[0]);
            visit(2, 1_000, &songs[1]);
        })
        .unwrap();
        // Song 3's postings wait in the index's side list until the next merge.
        pending.add_song(3, 1_000, &songs[2]).unwrap();
        pending.prepare();
        for (song_id, peaks) in [(1, &songs[0]), (3, &songs[2])] {
            let clip = excerpt(peaks, 400..700);
            let mut query = Vec::new();
            landmarks::landmarks(&clip, rule, &mut query);
            for hits_per_landmark in [0, 1] {
                let config = MatchConfig {
                    hits_per_landmark,
                    threshold: 0.0,
                    ..MatchConfig::default()
                };
                let top = |index: &InvertedIndex| {
                    let outcome = score(index, &query, peaks_only(&clip), &config);
                    outcome
                        .matches
                        .first()
                        .map(|m| (m.song_id, m.aligned, m.song_hits))
                };
                let found = top(&pending);
                assert_eq!(found.map(|m| m.0), Some(song_id));
                assert_eq!(found, top(&merged), "budget {hits_per_landmark}");
            }
        }
    }

    #[test]
    fn budgeted_lookup_reports_what_a_full_lookup_reports() {
        let reference = PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        };
        let query_rule = PairingRule {
            fan_value: 15,
            dt_tolerance: true,
            ..reference
        };
        let songs: Vec<Vec<Peak>> = (0..300)
            .map(|s| random_peaks(s + 1, 5_000, 2_250))
            .collect();
        let index = InvertedIndex::build(0.032, reference, |visit| {
            for (id, peaks) in songs.iter().enumerate() {
                visit(id as i64, 5_000, peaks);
            }
        })
        .unwrap();
        // A clip of song 42 from frame 500 to 800, with a third of its peaks lost and
        // foreign peaks added.
        let mut clip: Vec<Peak> = excerpt(&songs[42], 500..800)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, p)| p)
            .collect();
        clip.extend(random_peaks(999, 300, 80));
        clip.sort_unstable();
        clip.dedup();
        let mut query = Vec::new();
        landmarks::landmarks(&clip, query_rule, &mut query);

        let full = MatchConfig {
            hits_per_landmark: 0,
            threshold: 0.0,
            ..MatchConfig::default()
        };
        let budgeted = MatchConfig {
            hits_per_landmark: 1,
            ..full.clone()
        };
        let all = score(&index, &query, peaks_only(&clip), &full);
        let cut = score(&index, &query, peaks_only(&clip), &budgeted);
        assert!(
            cut.hits < all.hits / 2,
            "the budget cut the lookups: {} vs {}",
            cut.hits,
            all.hits
        );
        let (a, b) = (&all.matches[0], &cut.matches[0]);
        assert_eq!(a.song_id, 42);
        assert_eq!(b.song_id, 42);
        assert_eq!(a.aligned, b.aligned);
        assert_eq!(a.aligned_frames, b.aligned_frames);
        // The song is longer than the stretch its chance level is counted over.
        assert!(u64::from(a.background_frames) < 2 * u64::from(BACKGROUND_HALF_WIDTH_FRAMES) + 2);
        assert_eq!(a.background_frames, b.background_frames);
        assert_eq!(a.song_hits, b.song_hits);
        assert!((a.offset_frames - 500.0).abs() < 1.0, "{}", a.offset_frames);
        assert!((a.offset_frames - b.offset_frames).abs() < 1e-9);
        assert!((a.confidence - b.confidence).abs() < 0.01, "{a:?} vs {b:?}");
    }
}
