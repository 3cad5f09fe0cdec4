//! The best candidate of a query compared with its song's own audio ([`engine::source_check`]),
//! read from the song's file: its confidence is revised, and the answer follows the revised
//! confidence. An answer the check could not overturn (it would stand with the lowest scores)
//! is not checked, so clear answers cost nothing more. Where the file is gone, has changed
//! since it was indexed, or cannot be read, the landmarks' confidence stands.

use std::path::Path;
use std::time::Instant;

use super::{Identification, Library, Match, elapsed_ms};
use crate::config::SourceCheck;
use crate::engine::decode::decode_excerpt;
use crate::engine::resample::resample_clip;
use crate::engine::source_check::{self, SourceAgreement};

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
        // The scores are never negative: an answer that stands with scores of 0 stands
        // whatever the song's audio says, so the file is not read for it.
        let at_worst =
            source_check::confidence_with_source(candidate.confidence, SourceAgreement::default());
        if answered && at_worst >= threshold && when != SourceCheck::Always {
            return false;
        }
        let Some(agreement) =
            self.agreement_with_song(candidate, samples, sample_rate_hz, pitch_factor)
        else {
            return false;
        };
        let revise = |candidate: &mut Match| {
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

    /// How closely the clip follows `candidate`'s song at its offset; `None` when the song's
    /// file is not at hand as it was indexed, or does not cover the clip.
    fn agreement_with_song(
        &self,
        candidate: &Match,
        samples: &[f32],
        sample_rate_hz: u32,
        pitch_factor: f64,
    ) -> Option<SourceAgreement> {
        let song = &candidate.song;
        let path = Path::new(song.path.as_deref()?);
        let stamp = crate::indexer::file_stamp(path)?;
        if song.file_size.is_some_and(|size| size != stamp.0)
            || song.file_mtime.is_some_and(|mtime| mtime != stamp.1)
        {
            return None;
        }
        let config = &self.config;
        let rate = config.sample_rate_hz;
        let margin = source_check::margin_secs(config) + 0.05;
        let clip_secs = samples.len() as f64 / f64::from(sample_rate_hz.max(1));
        let excerpt = decode_excerpt(
            path,
            candidate.offset_secs - margin,
            clip_secs + 2.0 * margin,
        )
        .ok()?;
        let audio = resample_clip(
            &excerpt.samples,
            excerpt.sample_rate_hz,
            rate,
            config.max_freq_hz,
        )
        .ok()?;
        let clip = resample_clip(samples, sample_rate_hz, rate, config.max_freq_hz).ok()?;
        let clip_at = (candidate.offset_secs - excerpt.start_secs) * f64::from(rate);
        if clip_at < 0.0 {
            return None;
        }
        source_check::agreement(
            &clip,
            &audio,
            clip_at.round() as usize,
            config,
            pitch_factor,
        )
    }
}
