//! The best candidate of a query compared with its song's own audio ([`engine::source_check`]),
//! read from the song's file: its confidence is revised, and the answer follows the revised
//! confidence. An answer the check could not overturn (it would stand with the lowest score)
//! and that fits only one place in its song is not checked, so most clear answers cost
//! nothing more. Where the file is gone, has changed since it was indexed, or cannot be read,
//! the landmarks' confidence stands.
//!
//! A clip of a loop fits each of the loop's repeats nearly as well, and the landmarks can
//! place it at one whose audio is not the clip's (a variation, another layer): the listed
//! repeats are compared too, and the answer moves to one the clip follows clearly better.

use std::path::Path;
use std::time::Instant;

use super::{Identification, Library, Match, Repeat, elapsed_ms};
use crate::config::SourceCheck;
use crate::engine::decode::decode_excerpt;
use crate::engine::resample::resample_clip;
use crate::engine::source_check::{self, PreparedClip, SourceAgreement};

impl Library {
    /// Revises the confidence of `identification`'s best candidate (its first match, or the
    /// best rejected candidate) by comparing the clip (`samples` at `sample_rate_hz`; for the
    /// speed search, the rate that undoes the speed) with the song's audio, the clip's pitch
    /// being the song's times `pitch_factor`, then applies the clip's threshold to it again: a
    /// candidate may become the answer, or stop being it. Returns whether it became the answer
    /// (the landmarks alone had not found one).
    pub(super) fn check_against_source(
        &self,
        identification: &mut Identification,
        samples: &[f32],
        sample_rate_hz: u32,
        pitch_factor: f64,
    ) -> bool {
        let when = self.match_config.source_check;
        if when == SourceCheck::Off {
            return false;
        }
        let started = Instant::now();
        let answered = !identification.matches.is_empty();
        let candidate = match identification.matches.first() {
            Some(first) => first,
            None => match &identification.best_rejected {
                Some(best) => best,
                None => return false,
            },
        };
        // A song heard from inside the clip has another song before it.
        if candidate.clip_from_secs > 0.0 || candidate.aligned < self.match_config.min_aligned {
            return false;
        }
        let threshold = self
            .match_config
            .threshold_for_clip(identification.clip_secs);
        // The score is never negative: an answer that stands with a score of 0 stands
        // whatever the song's audio says, so the file is not read for it, unless the clip
        // fits several places in the song: the audio says which one it is.
        let at_worst =
            source_check::confidence_with_source(candidate.confidence, SourceAgreement::default());
        if answered
            && at_worst >= threshold
            && candidate.repeats.is_empty()
            && when != SourceCheck::Always
        {
            return false;
        }
        let Some((agreement, at_repeat)) =
            self.agreement_with_song(candidate, samples, sample_rate_hz, pitch_factor)
        else {
            return false;
        };
        let revise = |candidate: &mut Match| {
            if let Some(index) = at_repeat {
                move_to_repeat(candidate, index);
            }
            candidate.confidence =
                source_check::confidence_with_source(candidate.confidence, agreement);
            candidate.source = Some(agreement);
        };
        let mut promoted = false;
        if answered {
            revise(&mut identification.matches[0]);
            if identification.matches[0].confidence < threshold {
                identification.best_rejected = Some(identification.matches.remove(0));
            }
        } else if let Some(mut best) = identification.best_rejected.take() {
            revise(&mut best);
            if best.confidence >= threshold {
                identification.matches.insert(0, best);
                identification
                    .matches
                    .truncate(self.match_config.top_n.max(1));
                promoted = true;
            } else {
                identification.best_rejected = Some(best);
            }
        }
        identification.match_ms += elapsed_ms(started);
        promoted
    }

    /// How closely the clip follows `candidate`'s song at its offset, or at one of its repeats
    /// where it follows the song clearly better (by [`REPEAT_MARGIN`]; `Some` index of that
    /// repeat). `None` when the song's file is not at hand as it was indexed, or covers the
    /// clip at none of them.
    fn agreement_with_song(
        &self,
        candidate: &Match,
        samples: &[f32],
        sample_rate_hz: u32,
        pitch_factor: f64,
    ) -> Option<(SourceAgreement, Option<usize>)> {
        let song = &candidate.song;
        let path = Path::new(song.path.as_deref()?);
        let stamp = crate::indexer::file_stamp(path)?;
        if song.file_size.is_some_and(|size| size != stamp.0)
            || song.file_mtime.is_some_and(|mtime| mtime != stamp.1)
        {
            return None;
        }
        let mut clip = None;
        let mut at = |offset_secs: f64| {
            self.agreement_at(
                path,
                offset_secs,
                &mut clip,
                samples,
                sample_rate_hz,
                pitch_factor,
            )
        };
        let mut best = at(candidate.offset_secs).map(|agreement| (agreement, None));
        for (index, repeat) in candidate.repeats.iter().enumerate() {
            let Some(agreement) = at(repeat.offset_secs) else {
                continue;
            };
            let bar = best.map_or(f64::NEG_INFINITY, |(best, _)| best.score + REPEAT_MARGIN);
            if agreement.score > bar {
                best = Some((agreement, Some(index)));
            }
        }
        best
    }

    /// How closely the clip (`samples` at `sample_rate_hz`; resampled and prepared into
    /// `clip` on first use, for the other places) follows the song of the file at `path` from
    /// `offset_secs`.
    fn agreement_at(
        &self,
        path: &Path,
        offset_secs: f64,
        clip: &mut Option<PreparedClip>,
        samples: &[f32],
        sample_rate_hz: u32,
        pitch_factor: f64,
    ) -> Option<SourceAgreement> {
        let config = &self.config;
        let rate = config.sample_rate_hz;
        let margin = source_check::margin_secs(config) + 0.05;
        let clip_secs = samples.len() as f64 / f64::from(sample_rate_hz.max(1));
        let excerpt = decode_excerpt(path, offset_secs - margin, clip_secs + 2.0 * margin).ok()?;
        let audio = resample_clip(
            &excerpt.samples,
            excerpt.sample_rate_hz,
            rate,
            config.max_freq_hz,
        )
        .ok()?;
        let clip_at = (offset_secs - excerpt.start_secs) * f64::from(rate);
        if clip_at < 0.0 {
            return None;
        }
        if clip.is_none() {
            let resampled =
                resample_clip(samples, sample_rate_hz, rate, config.max_freq_hz).ok()?;
            *clip = Some(PreparedClip::new(&resampled, config, pitch_factor)?);
        }
        clip.as_ref()?.agreement(&audio, clip_at.round() as usize)
    }
}

/// A repeat's score must beat the offset's by this much for the answer to move there: about
/// one standard deviation of the score between unrelated passages, so that a loop played the
/// same each time keeps the landmarks' choice.
const REPEAT_MARGIN: f64 = 1.0;

/// Makes `candidate`'s repeat `index` its offset, and its offset a repeat; the repeats' fits
/// become shares of the new offset's.
fn move_to_repeat(candidate: &mut Match, index: usize) {
    let Some(&chosen) = candidate.repeats.get(index) else {
        return;
    };
    candidate.repeats[index] = Repeat {
        offset_secs: candidate.offset_secs,
        fit: 1.0,
    };
    candidate.offset_secs = chosen.offset_secs;
    if chosen.fit > 0.0 {
        for repeat in &mut candidate.repeats {
            repeat.fit /= chosen.fit;
        }
    }
    candidate
        .repeats
        .sort_by(|a, b| a.offset_secs.total_cmp(&b.offset_secs));
}
