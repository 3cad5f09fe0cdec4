//! Listening sessions on the corpus: what the desktop app's *Listen* answers when it hears
//! unindexed music, and how soon it names an indexed song (see [`crate::listening`]).
//!
//! Sessions of [`SESSION_SECS`] (the app's default listening time) run on windows of the
//! corpus's tracks, each clean and with white noise at [`NOISE_SNR_DB`]: every whole window
//! of the unindexed tracks (`negrefs/`), and one window of each indexed track, a third of the
//! way in. [`listening::listen_to`] plays each to a session as the app runs it, and also
//! notes what answering at the threshold on every attempt would have given.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::{BenchError, SharedAudio, median_p95, track_id};
use crate::cancel::CancelToken;
use crate::engine::decode::{AudioSource, CutStreams, decode_mono};
use crate::library::Library;
use crate::listening;
use crate::testkit::distort::add_white_noise;

/// Length of a session: the desktop app's default listening time.
pub const SESSION_SECS: f64 = 15.0;
/// Signal-to-noise ratio of the noisy version of each window.
pub const NOISE_SNR_DB: f32 = 5.0;
/// Where the window of an indexed track starts, as a fraction of the rest of the track.
const INDEXED_WINDOW_AT: f64 = 1.0 / 3.0;
/// Windows looked for in an unindexed track (an hour's worth; a track ends sooner).
const MAX_WINDOWS_PER_TRACK: usize = 240;

/// One session and how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    /// The track listened to (its file stem).
    pub track: String,
    /// The indexed song it is, `None` for an unindexed track.
    pub truth: Option<String>,
    /// Where the window starts in the track, seconds.
    pub start_s: f64,
    /// With noise at [`NOISE_SNR_DB`].
    pub noisy: bool,
    /// The song the session answered with, and the audio heard then (seconds).
    pub answer: Option<(String, f64)>,
    /// What answering at the threshold on every attempt would have given.
    pub answer_at_every_attempt: Option<(String, f64)>,
}

/// Figures of one way of answering.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AnswerFigures {
    /// Sessions on unindexed tracks that named a song the track does not contain.
    pub false_matches: usize,
    /// Sessions on unindexed tracks that named a song the track contains (shared audio).
    pub shared_audio_matches: usize,
    /// Sessions on indexed songs that named the right song.
    pub right: usize,
    /// Sessions on indexed songs that named another song.
    pub wrong: usize,
    /// Audio heard before a right answer, seconds: median, p95.
    pub secs_to_right_answer: (f64, f64),
}

/// What the listening sessions gave.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListeningReport {
    /// Length of each session, seconds.
    pub session_secs: f64,
    /// Noise level of the noisy sessions, dB SNR.
    pub noise_snr_db: f32,
    /// Sessions on unindexed tracks.
    pub unindexed_sessions: usize,
    /// Sessions on indexed songs.
    pub indexed_sessions: usize,
    /// As the app answers: early only when conclusive, at the threshold at the end.
    pub app: AnswerFigures,
    /// If every attempt answered at the threshold.
    pub every_attempt: AnswerFigures,
    /// Every session.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
}

/// A track to listen to, and where.
struct Job {
    path: PathBuf,
    truth: Option<String>,
    starts: Vec<f64>,
}

/// Runs the sessions on the tracks of `corpus` (whose `refs/` are indexed in `library`).
pub fn run(library: &Library, corpus: &Path) -> Result<Vec<Session>, BenchError> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut unindexed: Vec<PathBuf> = std::fs::read_dir(corpus.join("negrefs"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    unindexed.sort();
    for path in unindexed {
        let starts = (0..MAX_WINDOWS_PER_TRACK)
            .map(|k| k as f64 * SESSION_SECS)
            .collect();
        jobs.push(Job {
            path,
            truth: None,
            starts,
        });
    }
    for song in library.store().songs()? {
        let Some(path) = song.path.as_deref() else {
            continue;
        };
        if song.duration_secs < SESSION_SECS {
            continue;
        }
        jobs.push(Job {
            path: crate::paths::from_stored(path),
            truth: Some(track_id(&song)),
            starts: vec![(song.duration_secs - SESSION_SECS) * INDEXED_WINDOW_AT],
        });
    }
    let per_job: Vec<Result<Vec<Session>, BenchError>> = jobs
        .par_iter()
        .map(|job| sessions_of(library, job))
        .collect();
    let mut sessions = Vec::new();
    for result in per_job {
        sessions.extend(result?);
    }
    Ok(sessions)
}

/// The sessions on one track's windows, clean and noisy, decoding it as a stream.
fn sessions_of(library: &Library, job: &Job) -> Result<Vec<Session>, BenchError> {
    let track = job
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut sessions = Vec::new();
    let mut failure = None;
    let mut windows = WindowCutter::new(&job.starts);
    let decoded = decode_mono(
        AudioSource::File(&job.path),
        CutStreams::Refuse,
        &CancelToken::new(),
        |chunk, rate| {
            windows.push(chunk, rate, |start_s, samples, rate| {
                if failure.is_some() {
                    return;
                }
                for noisy in [false, true] {
                    let seed = noise_seed(&track, start_s);
                    let heard = if noisy {
                        add_white_noise(samples, NOISE_SNR_DB, seed)
                    } else {
                        samples.to_vec()
                    };
                    match listening::listen_to(library, &heard, rate, SESSION_SECS) {
                        Ok(outcome) => sessions.push(Session {
                            track: track.clone(),
                            truth: job.truth.clone(),
                            start_s,
                            noisy,
                            answer: outcome
                                .answer
                                .map(|found| (track_id(&found.song), outcome.heard_secs)),
                            answer_at_every_attempt: outcome
                                .first_at_threshold
                                .map(|(found, heard)| (track_id(&found.song), heard)),
                        }),
                        Err(err) => failure = Some(err),
                    }
                }
            });
            Ok(())
        },
    );
    if let Some(err) = failure {
        return Err(err.into());
    }
    decoded.map_err(|source| BenchError::Decode {
        path: job.path.clone(),
        source,
    })?;
    Ok(sessions)
}

/// The noise of a window: its own for each track and start (FNV-1a of both).
fn noise_seed(track: &str, start_s: f64) -> u64 {
    track
        .bytes()
        .chain(start_s.to_bits().to_le_bytes())
        .fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
        })
}

/// Cuts windows of [`SESSION_SECS`] starting at given times out of a decoded stream, holding
/// one window at a time.
struct WindowCutter<'a> {
    starts: &'a [f64],
    next: usize,
    position: u64,
    rate: u32,
    window: Vec<f32>,
}

impl<'a> WindowCutter<'a> {
    fn new(starts: &'a [f64]) -> Self {
        Self {
            starts,
            next: 0,
            position: 0,
            rate: 0,
            window: Vec::new(),
        }
    }

    /// Takes the next decoded samples; calls `on_window(start_s, samples, rate)` for each
    /// window completed.
    fn push(&mut self, chunk: &[f32], rate: u32, mut on_window: impl FnMut(f64, &[f32], u32)) {
        if rate != self.rate {
            // A stream that changes rate: windows restart at the new rate.
            self.rate = rate;
            self.window.clear();
        }
        let rate_f = f64::from(rate.max(1));
        let window_len = (SESSION_SECS * rate_f) as usize;
        for &sample in chunk {
            let Some(&start_s) = self.starts.get(self.next) else {
                return;
            };
            let start = (start_s * rate_f) as u64;
            if self.position >= start {
                self.window.push(sample);
                if self.window.len() == window_len {
                    on_window(start_s, &self.window, rate);
                    self.window.clear();
                    self.next += 1;
                }
            }
            self.position += 1;
        }
    }
}

/// The figures of `sessions`; `shared` lists the indexed songs each unindexed track contains.
pub fn summarize(sessions: Vec<Session>, shared: &[SharedAudio]) -> ListeningReport {
    let contains = |track: &str, song: &str| {
        shared
            .iter()
            .any(|s| s.unindexed == track && s.indexed == song)
    };
    let figures = |answer_of: fn(&Session) -> &Option<(String, f64)>| {
        let mut figures = AnswerFigures::default();
        let mut secs = Vec::new();
        for session in &sessions {
            let Some((song, heard)) = answer_of(session) else {
                continue;
            };
            match &session.truth {
                None if contains(&session.track, song) => figures.shared_audio_matches += 1,
                None => figures.false_matches += 1,
                Some(truth) if truth == song => {
                    figures.right += 1;
                    secs.push(*heard);
                }
                Some(_) => figures.wrong += 1,
            }
        }
        figures.secs_to_right_answer = median_p95(&mut secs);
        figures
    };
    ListeningReport {
        session_secs: SESSION_SECS,
        noise_snr_db: NOISE_SNR_DB,
        unindexed_sessions: sessions.iter().filter(|s| s.truth.is_none()).count(),
        indexed_sessions: sessions.iter().filter(|s| s.truth.is_some()).count(),
        app: figures(|s| &s.answer),
        every_attempt: figures(|s| &s.answer_at_every_attempt),
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_whole_at_their_starts_across_chunks() {
        let rate = 10;
        let starts = [0.0, 15.0, 40.0];
        let mut cutter = WindowCutter::new(&starts);
        let signal: Vec<f32> = (0..600).map(|i| i as f32).collect();
        let mut windows = Vec::new();
        for chunk in signal.chunks(7) {
            cutter.push(chunk, rate, |start, samples, r| {
                windows.push((start, samples.to_vec(), r));
            });
        }
        assert_eq!(windows.len(), 3);
        for ((start, samples, r), expected_start) in windows.iter().zip(starts) {
            assert_eq!(*start, expected_start);
            assert_eq!(*r, rate);
            let first = (expected_start * 10.0) as usize;
            assert_eq!(samples, &signal[first..first + 150]);
        }
        // A window the stream does not fill is not given.
        let mut cutter = WindowCutter::new(&[46.0]);
        let mut given = 0;
        cutter.push(&signal, rate, |_, _, _| given += 1);
        assert_eq!(given, 0);
    }
}
