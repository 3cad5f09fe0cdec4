//! Source check: the clip against the matched song's own audio.
//!
//! Landmarks and peaks are what survives of a clip; under heavy noise little does, and a
//! second of another song built from the same drum or chord can leave as many. But the library
//! is the user's own: the song's file is usually at hand. Once a candidate song and offset are
//! known, the clip's spectrogram is compared with the spectrogram of the song's audio at that
//! offset, cell by cell, over the whole band from the bass up (40 Hz to the analysis band's
//! top; landmarks start at 200 Hz). Music that really is the song follows the song's every
//! note and beat, including the bass that noise leaves; a likeness follows it for an instant.
//!
//! The measure is the correlation of the two log spectrograms, each column's mean over time
//! taken away first (so an equaliser, a phone's microphone or a telephone band do not count),
//! at the best of a few fine shifts around the offset (the matcher's offsets are whole frames).
//! The bass (40-200 Hz) is compared bin by bin; above it, bins are compared in groups of
//! [`POOLED_BINS`], their powers summed. Noise makes one bin's level jump by several dB from
//! frame to frame, but a group's much less, while the music's notes and beats still show: on
//! clips under noise at 0 dB the score about doubles, and clips of unindexed music gain nothing
//! (docs/BENCHMARK.md, "Source check"). Scaled by the square root of the clip's frames over 4
//! (its frames overlap 4 to 1), the correlation is about a standard normal value for unrelated
//! music, and grows with the clip's length when the music is the song's. That score enters the
//! confidence ([`confidence_with_source`]).

use std::ops::Range;

use crate::config::FingerprintConfig;

use super::stft::Stft;

/// Lowest frequency compared, Hz: the bass, which landmarks leave out.
pub const SOURCE_CHECK_MIN_HZ: f32 = 40.0;
/// Top of the bass band, Hz (the landmarks' band starts here), compared bin by bin.
pub const BASS_TOP_HZ: f32 = 200.0;
/// Above the bass, bins are compared in groups this wide (125 Hz at the default settings;
/// groups of 8 to 32 bins all did better than single bins on the development corpus, 16 best).
pub const POOLED_BINS: usize = 16;
/// Fine shifts tried per hop (each a quarter of a hop, 8 ms at the default settings).
const SHIFTS_PER_HOP: usize = 4;
/// Fine shifts reach this many hops either side of the offset.
const SHIFT_REACH_HOPS: usize = 2;
/// Frames a clip needs for the check to say anything.
const MIN_FRAMES: usize = 8;
/// Power floor added before the logarithm (about -150 dB, as the STFT's).
const POWER_FLOOR: f32 = 1e-15;

/// Seconds of the song's audio the check needs before the clip's offset (and after its end).
pub fn margin_secs(config: &FingerprintConfig) -> f64 {
    SHIFT_REACH_HOPS as f64 * config.frame_secs()
}

/// How closely a clip follows the song's own audio at the offset found.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct SourceAgreement {
    /// The correlation at the best fine shift, times the square root of the clip's frames
    /// over 4; 0 when negative.
    pub score: f64,
}

/// Logistic weights of [`confidence_with_source`]: the log-odds of the landmark model, the
/// score, and the intercept. Fitted on the development corpus and 3,000 more clips of its
/// unindexed tracks (docs/BENCHMARK.md, "Source check").
pub const SOURCE_CHECK_WEIGHTS: [f64; 3] = [0.821, 3.535, -3.156];

/// The confidence of a candidate whose song's audio was compared with the clip: the
/// landmark model's `confidence`, revised by the score.
pub fn confidence_with_source(confidence: f64, agreement: SourceAgreement) -> f64 {
    let p = confidence.clamp(1e-9, 1.0 - 1e-9);
    let logit = (p / (1.0 - p)).ln();
    let [w_logit, w_score, intercept] = SOURCE_CHECK_WEIGHTS;
    let revised = w_logit * logit + w_score * agreement.score + intercept;
    1.0 / (1.0 + (-revised).exp())
}

/// A clip's spectrogram in the compared columns, made once for comparing the clip with its
/// song at several places (the offset and its repeats).
pub struct PreparedClip {
    /// The song's band: from [`SOURCE_CHECK_MIN_HZ`] to the analysis band's top.
    song_band: FingerprintConfig,
    /// Each column: the song's bins summed in it, each with the clip's bin it is heard at.
    columns: Vec<Vec<(usize, usize)>>,
    /// The clip's frames (one per hop), a log power per column.
    frames: Vec<Vec<f32>>,
}

impl PreparedClip {
    /// Prepares `clip` (mono at the analysis rate), whose pitch is the song's times
    /// `pitch_factor` (1, unless the pitch search found it: `2^(1/12)` for a semitone up).
    /// `None` when the clip is too short to say anything.
    pub fn new(clip: &[f32], config: &FingerprintConfig, pitch_factor: f64) -> Option<Self> {
        Self::pooled(clip, config, pitch_factor, POOLED_BINS)
    }

    /// [`PreparedClip::new`], bins above the bass compared in groups of `pooled_bins`.
    fn pooled(
        clip: &[f32],
        config: &FingerprintConfig,
        pitch_factor: f64,
        pooled_bins: usize,
    ) -> Option<Self> {
        let song_band = FingerprintConfig {
            min_freq_hz: SOURCE_CHECK_MIN_HZ,
            ..config.clone()
        };
        // The clip's band reaches as far above the song's as its pitch does.
        let nyquist = config.sample_rate_hz as f32 / 2.0;
        let clip_band = FingerprintConfig {
            max_freq_hz: (config.max_freq_hz * pitch_factor.max(1.0) as f32).min(nyquist),
            min_freq_hz: (SOURCE_CHECK_MIN_HZ * pitch_factor.min(1.0) as f32).max(1.0),
            ..config.clone()
        };
        // Song bin `k` (absolute) is heard in the clip at bin `k * pitch_factor`.
        let clip_bins = clip_band.first_bin()..clip_band.first_bin() + clip_band.band_bins();
        let heard_at = |j: usize| {
            let heard = ((song_band.first_bin() + j) as f64 * pitch_factor).round() as usize;
            clip_bins.contains(&heard).then(|| heard - clip_bins.start)
        };
        let bass_bins = ((BASS_TOP_HZ / song_band.bin_hz()).floor() as usize + 1)
            .saturating_sub(song_band.first_bin())
            .min(song_band.band_bins());
        let columns: Vec<Vec<(usize, usize)>> =
            columns(bass_bins, song_band.band_bins(), pooled_bins)
                .map(|bins| {
                    bins.filter_map(|j| Some((j, heard_at(j)?)))
                        .collect::<Vec<_>>()
                })
                .filter(|column| !column.is_empty())
                .collect();
        let frames = log_columns(
            clip,
            &clip_band,
            config.hop_length,
            &columns,
            |&(_, heard)| heard,
        );
        (frames.len() >= MIN_FRAMES).then_some(Self {
            song_band,
            columns,
            frames,
        })
    }

    /// How closely the clip follows `song` (mono at the analysis rate), where the clip's first
    /// sample lies at sample `clip_at` (the song's audio from a little before the offset, see
    /// [`margin_secs`]). A clip at the song's very start is shifted only later, and one that
    /// runs past the song's end is compared where the song plays. `None` when the part of the
    /// clip the song covers is too short.
    pub fn agreement(&self, song: &[f32], clip_at: usize) -> Option<SourceAgreement> {
        let hop = self.song_band.hop_length;
        let step = (hop / SHIFTS_PER_HOP).max(1);
        let reach = SHIFT_REACH_HOPS * hop;
        // The song's frames on a grid `step` apart, from `reach` before the clip's start (or
        // from the song's start, for a clip at its very beginning): fine shift `k` and clip
        // frame `t` read grid frame `k + t * hop / step`.
        let grid_start = clip_at.saturating_sub(reach);
        let song_frames = log_columns(
            song.get(grid_start..)?,
            &self.song_band,
            step,
            &self.columns,
            |&(j, _)| j,
        );
        let per_hop = hop / step;
        let mut best: Option<f64> = None;
        for shift in 0..=(clip_at - grid_start + reach) / step {
            // A clip that runs past the song's end is compared where the song still plays.
            let covered = song_frames
                .len()
                .saturating_sub(shift)
                .div_ceil(per_hop)
                .min(self.frames.len());
            if covered < MIN_FRAMES {
                break;
            }
            let song_at = |t: usize| song_frames[shift + t * per_hop].as_slice();
            let score =
                correlation(&self.frames[..covered], song_at) * (covered as f64 / 4.0).sqrt();
            best = Some(best.map_or(score, |best| best.max(score)));
        }
        best.map(|score| SourceAgreement {
            score: score.max(0.0),
        })
    }
}

/// The compared columns of a band of `band_bins` bins: each of the first `bass_bins` alone,
/// then the rest in groups of `pooled_bins` (the last one possibly narrower).
fn columns(
    bass_bins: usize,
    band_bins: usize,
    pooled_bins: usize,
) -> impl Iterator<Item = Range<usize>> {
    let pooled = (bass_bins..band_bins)
        .step_by(pooled_bins.max(1))
        .map(move |start| start..(start + pooled_bins.max(1)).min(band_bins));
    (0..bass_bins).map(|j| j..j + 1).chain(pooled)
}

/// Frames of `samples` every `hop` samples (the band of `config`), each the natural log of
/// the power summed over each column's bins, `bin` saying which of the band's bins a column's
/// entry reads.
fn log_columns<T>(
    samples: &[f32],
    config: &FingerprintConfig,
    hop: usize,
    columns: &[Vec<T>],
    bin: impl Fn(&T) -> usize,
) -> Vec<Vec<f32>> {
    let mut stft = Stft::new(&FingerprintConfig {
        hop_length: hop,
        ..config.clone()
    })
    .in_power();
    let mut frames = Vec::new();
    stft.push(samples, |power| {
        let frame = columns
            .iter()
            .map(|column| {
                let sum: f32 = column.iter().map(|entry| power[bin(entry)]).sum();
                (sum + POWER_FLOOR).ln()
            })
            .collect();
        frames.push(frame);
    });
    frames
}

/// Pearson correlation over the cells of the clip's frames and the song's at the same
/// columns, each column's mean over time removed from both.
fn correlation<'a>(clip: &[Vec<f32>], song_at: impl Fn(usize) -> &'a [f32]) -> f64 {
    let frames = clip.len() as f64;
    let width = clip.first().map_or(0, Vec::len);
    let mut clip_sum = vec![0.0f64; width];
    let mut song_sum = vec![0.0f64; width];
    let mut clip_sq = vec![0.0f64; width];
    let mut song_sq = vec![0.0f64; width];
    let mut cross = vec![0.0f64; width];
    for (t, clip_frame) in clip.iter().enumerate() {
        for (j, (&x, &y)) in clip_frame.iter().zip(song_at(t)).enumerate() {
            let (x, y) = (f64::from(x), f64::from(y));
            clip_sum[j] += x;
            song_sum[j] += y;
            clip_sq[j] += x * x;
            song_sq[j] += y * y;
            cross[j] += x * y;
        }
    }
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for j in 0..width {
        sxy += cross[j] - clip_sum[j] * song_sum[j] / frames;
        sxx += clip_sq[j] - clip_sum[j] * clip_sum[j] / frames;
        syy += song_sq[j] - song_sum[j] * song_sum[j] / frames;
    }
    let norm = (sxx * syy).sqrt();
    if norm > 0.0 { sxy / norm } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{distort, synth};

    fn config() -> FingerprintConfig {
        FingerprintConfig::default()
    }

    fn song(seed: u64, secs: f32) -> Vec<f32> {
        synth::song(seed, secs, config().sample_rate_hz)
    }

    /// The clip prepared and compared with `song` at `clip_at`, in one step.
    fn agreement(
        clip: &[f32],
        song: &[f32],
        clip_at: usize,
        config: &FingerprintConfig,
        pitch_factor: f64,
    ) -> Option<SourceAgreement> {
        PreparedClip::new(clip, config, pitch_factor)?.agreement(song, clip_at)
    }

    #[test]
    fn a_clip_of_the_song_agrees_and_other_music_does_not() {
        let config = config();
        let rate = config.sample_rate_hz as usize;
        let audio = song(1, 12.0);
        let other = song(2, 12.0);
        let at = 4 * rate + 123;
        let clip = &audio[at..at + 3 * rate];
        let margin = (margin_secs(&config) * rate as f64).ceil() as usize;
        let excerpt = &audio[at - margin..];
        let same =
            agreement(clip, excerpt, margin, &config, 1.0).expect("the song covers the clip");
        // Identical audio correlates fully: sqrt(90 frames / 4).
        assert!(same.score > 4.5, "{same:?}");
        let unrelated = agreement(clip, &other[at - margin..], margin, &config, 1.0)
            .expect("the other song covers the clip");
        assert!(unrelated.score < 1.5, "{unrelated:?}");
        assert!(confidence_with_source(0.5, same) > 0.99);
        assert!(confidence_with_source(0.5, unrelated) < 0.5);
    }

    #[test]
    fn the_fine_shift_finds_a_clip_a_fraction_of_a_hop_off() {
        let config = config();
        let rate = config.sample_rate_hz as usize;
        let audio = song(3, 10.0);
        let at = 3 * rate;
        let clip = &audio[at..at + 2 * rate];
        let margin = (margin_secs(&config) * rate as f64).ceil() as usize;
        let exact = agreement(clip, &audio[at - margin..], margin, &config, 1.0).expect("covered");
        // The caller places the clip 100 samples early: a shift makes up for it.
        let off = agreement(
            clip,
            &audio[at - margin - 200..],
            margin + 100,
            &config,
            1.0,
        );
        let off = off.expect("covered");
        assert!(off.score > 0.9 * exact.score, "{off:?} against {exact:?}");
    }

    #[test]
    fn under_noise_pooled_bins_testify_where_single_bins_barely_do() {
        let config = config();
        let rate = config.sample_rate_hz as usize;
        let audio = song(4, 10.0);
        let at = 2 * rate;
        let clip = distort::add_white_noise(&audio[at..at + 5 * rate], 0.0, 7);
        let margin = (margin_secs(&config) * rate as f64).ceil() as usize;
        let excerpt = &audio[at - margin..];
        let noisy = agreement(&clip, excerpt, margin, &config, 1.0).expect("covered");
        let bin_by_bin = PreparedClip::pooled(&clip, &config, 1.0, 1)
            .and_then(|prepared| prepared.agreement(excerpt, margin))
            .expect("covered");
        // 5 s: 153 frames, so full agreement would score 6.2; noise at 0 dB leaves part,
        // and more of it in the pooled bins.
        assert!(noisy.score > 1.5, "{noisy:?}");
        assert!(
            noisy.score > 1.3 * bin_by_bin.score,
            "{noisy:?} against {bin_by_bin:?}"
        );
    }

    #[test]
    fn a_song_that_does_not_cover_the_clip_is_no_evidence() {
        let config = config();
        let rate = config.sample_rate_hz as usize;
        let audio = song(5, 4.0);
        let clip = &audio[rate..3 * rate];
        // Too little of the song after the clip's start, or too short a clip.
        assert!(agreement(clip, &audio[..rate + 1000], rate, &config, 1.0).is_none());
        assert!(agreement(&clip[..1000], &audio, rate, &config, 1.0).is_none());
    }

    #[test]
    fn a_clip_at_the_start_or_past_the_end_of_the_song_is_compared_where_it_overlaps() {
        let config = config();
        let rate = config.sample_rate_hz as usize;
        let audio = song(6, 6.0);
        // From the song's first sample: no room to shift earlier.
        let opening = agreement(&audio[..2 * rate], &audio, 0, &config, 1.0).expect("covered");
        assert!(opening.score > 0.95 * (62.0f64 / 4.0).sqrt(), "{opening:?}");
        // The last 2 s and then 2 s of silence the song does not have: its 2 s are compared.
        let mut tail = audio[4 * rate..].to_vec();
        tail.resize(4 * rate, 0.0);
        let past = agreement(&tail, &audio[3 * rate..], rate, &config, 1.0).expect("covered");
        assert!(past.score > 0.9 * (62.0f64 / 4.0).sqrt(), "{past:?}");
    }
}
