//! What a query answers: an [`Identification`] (the matches, best first, with the clip's
//! length, the work done and the speed or pitch the clip was found at), the [`Match`]es in it,
//! the [`Answer`] that keeps the clip's fingerprint beside it, and the [`MatchEvidence`] the
//! app plots. Plain data: the [`Library`](super::Library) fills them in.

use serde::Serialize;

use crate::engine::{self, Fingerprint};
use crate::index::SongRecord;

/// One identified song.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    /// The song.
    pub song: SongRecord,
    /// Calibrated confidence in [0, 1].
    pub confidence: f64,
    /// Where the clip starts in the song, seconds; for a song heard from inside the clip
    /// (`clip_from_secs` above 0), the song's position at `clip_from_secs`.
    pub offset_secs: f64,
    /// Where in the clip the song is heard from, seconds: 0, unless the clip runs from one
    /// song into this one.
    pub clip_from_secs: f64,
    /// Landmarks that agree on that offset.
    pub aligned: usize,
    /// Distinct clip frames among them.
    pub aligned_frames: usize,
    /// Where in the clip the aligned landmarks start, seconds (0 unless the clip runs into
    /// the song from another).
    pub aligned_from_secs: f64,
    /// Seconds of the clip the aligned landmarks span.
    pub aligned_span_secs: f64,
    /// Hits of the clip in the song at offsets near this one (its chance level).
    pub song_hits: usize,
    /// Seconds of offsets `song_hits` were counted over.
    pub background_secs: f64,
    /// How many of the clip's peaks lie on the song's at the offset, and by chance elsewhere.
    pub peaks: engine::verify::PeakAgreement,
    /// How closely the clip follows the song's own audio at the offset, when the song's file
    /// was compared with it (the best candidate of a query, see [`engine::source_check`]).
    pub source: Option<engine::source_check::SourceAgreement>,
    /// Other places in the song where the clip fits nearly as well (a loop, a chorus, a
    /// repeated bar), in time order; empty for a passage the song plays once.
    pub repeats: Vec<Repeat>,
}

/// Another offset of a match's song where the clip fits nearly as well as at the match's own
/// (see [`engine::repeats`]).
///
/// Serialised as the CLI's `--json` and the API show it: `{"offset_seconds", "fit"}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Repeat {
    /// Where the clip would start in the song, seconds.
    #[serde(rename = "offset_seconds")]
    pub offset_secs: f64,
    /// How well: the clip's peaks on the song's there, as a share of the same count at the
    /// match's offset (1 = as well).
    pub fit: f64,
}

/// The answer to one query.
#[derive(Clone, Debug, Serialize)]
pub struct Identification {
    /// Matches at or above the threshold, best first. Empty means *no match*.
    pub matches: Vec<Match>,
    /// Length of the clip, seconds.
    pub clip_secs: f64,
    /// Landmarks of the clip that were looked up.
    pub query_landmarks: usize,
    /// Postings the clip's landmarks hit.
    pub hits: usize,
    /// Time spent analysing the clip, milliseconds.
    pub analysis_ms: f64,
    /// Time spent matching, milliseconds.
    pub match_ms: f64,
    /// The best candidate when it missed the threshold (diagnostics).
    pub best_rejected: Option<Match>,
    /// Playback speed at which the clip matched (1.0 unless the speed search found it, e.g.
    /// 1.02 for a clip played 2 % fast).
    pub speed: f64,
    /// Pitch shift in semitones at which the clip matched (0 unless the pitch search found it).
    pub pitch_semitones: f64,
}

impl Identification {
    /// Whether anything matched.
    pub fn found(&self) -> bool {
        !self.matches.is_empty()
    }

    /// Total processing time, milliseconds.
    pub fn processing_ms(&self) -> f64 {
        self.analysis_ms + self.match_ms
    }

    /// How the clip differs from the song when the speed or pitch search found it, in
    /// words: "played 2 % fast", "played 2 % slow", "pitch shifted 1 semitone up".
    pub fn alteration(&self) -> Option<String> {
        let percent = (self.speed - 1.0) * 100.0;
        if percent.abs() >= 0.05 {
            let way = if percent > 0.0 { "fast" } else { "slow" };
            return Some(format!("played {} % {way}", trim_number(percent.abs())));
        }
        let semitones = self.pitch_semitones;
        if semitones.abs() >= 0.05 {
            let way = if semitones > 0.0 { "up" } else { "down" };
            let unit = if (semitones.abs() - 1.0).abs() < 0.05 {
                "semitone"
            } else {
                "semitones"
            };
            return Some(format!(
                "pitch shifted {} {unit} {way}",
                trim_number(semitones.abs())
            ));
        }
        None
    }
}

/// `2` for 2.0, `1.5` for 1.5: one decimal, only when it says something.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.1}");
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_string(),
        None => text,
    }
}

/// An identification with the clip's fingerprint that made it: the fingerprint at the speed
/// or pitch the search found the clip at, when it did. The app draws the evidence of the
/// match from it.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The identification.
    pub identification: Identification,
    /// The clip's fingerprint that gave it.
    pub fingerprint: Fingerprint,
}

/// The pairs of (query frame, song frame) behind a match, for the match visualisation.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MatchEvidence {
    /// Every hit of the query in this song: (seconds in the clip, seconds in the song).
    pub hits: Vec<(f64, f64)>,
    /// Whether each hit lies on the winning diagonal.
    pub aligned: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_altered_clip_is_described_in_words() {
        let answer = |speed: f64, pitch_semitones: f64| Identification {
            matches: Vec::new(),
            clip_secs: 5.0,
            query_landmarks: 0,
            hits: 0,
            analysis_ms: 0.0,
            match_ms: 0.0,
            best_rejected: None,
            speed,
            pitch_semitones,
        };
        assert_eq!(answer(1.0, 0.0).alteration(), None);
        assert_eq!(
            answer(1.02, 0.0).alteration().as_deref(),
            Some("played 2 % fast")
        );
        assert_eq!(
            answer(0.98, 0.0).alteration().as_deref(),
            Some("played 2 % slow")
        );
        assert_eq!(
            answer(1.0, -1.0).alteration().as_deref(),
            Some("pitch shifted 1 semitone down")
        );
        assert_eq!(
            answer(1.0, 1.5).alteration().as_deref(),
            Some("pitch shifted 1.5 semitones up")
        );
    }
}
