//! Listening: identifying a recording while it grows (the desktop app's *Listen*).
//!
//! A session tries to identify what it has heard once it has [`FIRST_ATTEMPT_SECS`] of audio,
//! then again after every further [`ATTEMPT_EVERY_SECS`], until it answers or its time is up.
//! Each attempt is one more chance for music that is not in the library to pass the threshold
//! by chance: a 15 s session makes 14 of them, and on the development corpus answering at the
//! threshold on each of them named a song in more than twice as many sessions of unindexed
//! music as single clips do (docs/BENCHMARK.md, "Listening").
//!
//! So an attempt before the last answers only when it is conclusive
//! ([`EARLY_ANSWER_CONFIDENCE`], the bar a long clip's opening must clear to answer alone), and
//! the last attempt, on everything heard, answers at the threshold. A song that is playing
//! usually clears the early bar within two or three seconds; `audiofp bench` measures both
//! the false matches and the time to answer.
//!
//! Each attempt identifies as `audiofp identify` does ([`Library::identify_samples`]), trying
//! the clip 2 % fast and slow and a semitone up and down when nothing matches at its own
//! speed: a record played fast is found through the microphone too. One difference: attempts
//! are not compared with the songs' own audio (the source check), which over a session's
//! attempts named unindexed music more often (docs/BENCHMARK.md, "Source check").
//!
//! The desktop app's worker runs sessions on live audio; [`listen_to`] runs one on a recording,
//! with the same schedule and the same rule, for the benchmark and the tests.

use crate::engine::EngineError;
use crate::library::{Identification, Library, LibraryError, Match};

pub use crate::engine::matcher::EARLY_ANSWER_CONFIDENCE;

/// The first attempt waits for this much audio.
pub const FIRST_ATTEMPT_SECS: f64 = 2.0;
/// Audio collected between two attempts.
pub const ATTEMPT_EVERY_SECS: f64 = 1.0;
/// The best candidate of an inconclusive attempt is shown ("Maybe ...?") only from this
/// confidence: below it, the leading song is as likely chance as not.
pub const BEST_GUESS_FLOOR: f64 = 0.5;

/// Whether an attempt is due, having heard `heard_secs` and last tried at `attempted_secs`.
pub fn attempt_due(heard_secs: f64, attempted_secs: f64) -> bool {
    heard_secs >= FIRST_ATTEMPT_SECS && heard_secs - attempted_secs >= ATTEMPT_EVERY_SECS
}

/// The match that ends the session, if `identification` (of everything heard so far) gives
/// one. `last_attempt`: the session will not try again (its time is up, or the source ended).
pub fn answer(identification: &Identification, last_attempt: bool) -> Option<&Match> {
    let top = identification.matches.first()?;
    (last_attempt || top.confidence >= EARLY_ANSWER_CONFIDENCE).then_some(top)
}

/// The candidate worth showing while the session goes on, if any: the best song of an
/// attempt that did not answer, from [`BEST_GUESS_FLOOR`] up.
pub fn best_guess(identification: &Identification) -> Option<&Match> {
    identification
        .matches
        .first()
        .or(identification.best_rejected.as_ref())
        .filter(|candidate| candidate.confidence >= BEST_GUESS_FLOOR)
}

/// The audio heard at each attempt of a session that is given `available_secs` of audio and
/// listens for at most `timeout_secs`; the last entry is the last attempt.
pub fn attempt_schedule(available_secs: f64, timeout_secs: f64) -> Vec<f64> {
    let end = available_secs.min(timeout_secs);
    let mut heard = Vec::new();
    let mut next = FIRST_ATTEMPT_SECS;
    while next < end - 1e-9 {
        heard.push(next);
        next += ATTEMPT_EVERY_SECS;
    }
    if end > 0.0 {
        heard.push(end);
    }
    heard
}

/// How a session on a recording ended.
#[derive(Clone, Debug)]
pub struct SessionOutcome {
    /// The match it answered with, if any.
    pub answer: Option<Match>,
    /// Audio heard when it answered, or when it gave up.
    pub heard_secs: f64,
    /// Attempts made.
    pub attempts: usize,
    /// The first attempt's match at the threshold, and the audio heard then: what the session
    /// would have answered if every attempt answered at the threshold (for the benchmark).
    pub first_at_threshold: Option<(Match, f64)>,
}

/// Runs a listening session on `samples` (mono, at `sample_rate_hz`) as if they were heard in
/// real time: the attempts of [`attempt_schedule`], each on everything heard so far, answered
/// as [`answer`] says.
///
/// A prefix that is silent or too short to analyse is no answer, and the session goes on, as
/// it does on live audio.
pub fn listen_to(
    library: &Library,
    samples: &[f32],
    sample_rate_hz: u32,
    timeout_secs: f64,
) -> Result<SessionOutcome, LibraryError> {
    let available_secs = samples.len() as f64 / f64::from(sample_rate_hz.max(1));
    let schedule = attempt_schedule(available_secs, timeout_secs);
    let mut outcome = SessionOutcome {
        answer: None,
        heard_secs: 0.0,
        attempts: 0,
        first_at_threshold: None,
    };
    for (i, &heard_secs) in schedule.iter().enumerate() {
        let heard_samples = ((heard_secs * f64::from(sample_rate_hz)) as usize).min(samples.len());
        outcome.attempts += 1;
        outcome.heard_secs = heard_secs;
        let identification =
            match library.identify_samples(&samples[..heard_samples], sample_rate_hz) {
                Ok(identification) => identification,
                Err(LibraryError::Engine(
                    EngineError::TooShort { .. } | EngineError::Silent { .. },
                )) => {
                    continue;
                }
                Err(err) => return Err(err),
            };
        if outcome.first_at_threshold.is_none()
            && let Some(top) = identification.matches.first()
        {
            outcome.first_at_threshold = Some((top.clone(), heard_secs));
        }
        if let Some(found) = answer(&identification, i + 1 == schedule.len()) {
            outcome.answer = Some(found.clone());
            break;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_tries_every_second_from_the_second_second_and_last_at_its_end() {
        assert_eq!(
            attempt_schedule(15.0, 15.0),
            (2..=15).map(f64::from).collect::<Vec<_>>()
        );
        // A recording that ends early: its last attempt is on all of it.
        assert_eq!(attempt_schedule(4.5, 15.0), vec![2.0, 3.0, 4.0, 4.5]);
        // A timeout shorter than the recording ends the session.
        assert_eq!(attempt_schedule(60.0, 3.5), vec![2.0, 3.0, 3.5]);
        // Less than the first attempt waits for: one attempt on all of it.
        assert_eq!(attempt_schedule(1.5, 15.0), vec![1.5]);
        assert_eq!(attempt_schedule(0.0, 15.0), Vec::<f64>::new());
        assert!(attempt_due(2.0, 0.0));
        assert!(!attempt_due(1.9, 0.0));
        assert!(!attempt_due(2.9, 2.0));
        assert!(attempt_due(3.0, 2.0));
    }

    fn candidate(title: &str, confidence: f64) -> Match {
        Match {
            song: crate::index::SongRecord {
                id: 1,
                title: title.to_string(),
                artist: None,
                album: None,
                duration_secs: 100.0,
                path: None,
                file_size: None,
                file_mtime: None,
                content_hash: String::new(),
                added_at: 0,
                num_frames: 0,
                num_peaks: 0,
            },
            confidence,
            offset_secs: 0.0,
            clip_from_secs: 0.0,
            aligned: 5,
            aligned_frames: 5,
            aligned_from_secs: 0.0,
            aligned_span_secs: 1.0,
            song_hits: 0,
            background_secs: 0.0,
            peaks: Default::default(),
            source: None,
            repeats: Vec::new(),
        }
    }

    #[test]
    fn only_a_candidate_from_the_floor_up_is_a_best_guess() {
        let mut identification = Identification {
            matches: Vec::new(),
            clip_secs: 3.0,
            query_landmarks: 0,
            hits: 0,
            analysis_ms: 0.0,
            match_ms: 0.0,
            best_rejected: Some(candidate("Chance", 0.025)),
            speed: 1.0,
            pitch_semitones: 0.0,
        };
        assert!(best_guess(&identification).is_none());
        identification.best_rejected = Some(candidate("Likely", 0.6));
        assert_eq!(
            best_guess(&identification).map(|m| m.song.title.as_str()),
            Some("Likely")
        );
        // A match below the early bar comes before the rejected one.
        identification.matches = vec![candidate("Matched", 0.85)];
        assert_eq!(
            best_guess(&identification).map(|m| m.song.title.as_str()),
            Some("Matched")
        );
    }
}
