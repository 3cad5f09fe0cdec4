//! Listening sessions ([`Request::Listen`](super::Request::Listen)): the worker records the
//! microphone's chunks as they come and tries to identify what it has heard each time an
//! attempt is due ([`crate::listening`] decides when, and when an answer counts), until an
//! answer, the timeout, the end of the source, a stall or a cancel.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::Desk;
use super::identify::make_report;
use super::protocol::{AudioChunk, Event, JobId, ListenOutcome, MatchReport};
use crate::cancel::CancelToken;
use crate::engine::EngineError;
use crate::library::{Library, LibraryError};
use crate::listening;

/// A listening session also gives up when the source has been silent (no chunks) this long
/// beyond its timeout.
const LISTEN_STALL_GRACE: Duration = Duration::from_secs(5);
/// A listening session reports how much it heard at least this often (in audio seconds).
const LISTEN_HEARTBEAT_SECS: f64 = 0.25;

impl Desk {
    /// A listening session: records the chunks as they come and tries to identify what it has
    /// heard each time an attempt is due, until an answer, the timeout, the end of the source,
    /// a stall or a cancel ([`Event::ListenFinished`] says which).
    pub(super) fn listen(
        &mut self,
        library: &Library,
        job: JobId,
        chunks: &Receiver<AudioChunk>,
        timeout_secs: f64,
        cancel: &CancelToken,
    ) {
        let mut session = ListenSession::new(timeout_secs);
        let outcome = loop {
            self.inbox.poll();
            if cancel.is_cancelled() || self.shutdown.is_cancelled() {
                break ListenOutcome::Cancelled;
            }
            session.receive(chunks);
            let heard_secs = session.heard_secs();
            let last_attempt = session.source_ended || heard_secs >= timeout_secs;
            if session.attempt_due(
                heard_secs,
                last_attempt,
                library.match_config().min_clip_secs,
            ) && let Some(outcome) =
                self.listen_attempt(library, job, &mut session, heard_secs, last_attempt)
            {
                break outcome;
            }
            if session.heartbeat_due(heard_secs) {
                self.send_listen_progress(job, heard_secs, session.attempts, None);
            }
            if let Some(outcome) = self.end_of_session(&mut session, heard_secs) {
                break outcome;
            }
        };
        self.sink.send(Event::ListenFinished { job, outcome });
    }

    /// One attempt of a listening session on what it has heard (up to its timeout). An
    /// outcome ends the session: a match (its report sent), or a report that could not be
    /// made. Without one the session goes on, keeping the attempt's report.
    fn listen_attempt(
        &self,
        library: &Library,
        job: JobId,
        session: &mut ListenSession,
        heard_secs: f64,
        last_attempt: bool,
    ) -> Option<ListenOutcome> {
        session.attempted_secs = heard_secs;
        session.attempts += 1;
        let attempts = session.attempts;
        let attempt_started = Instant::now();
        match library.query_samples(session.clip(), session.sample_rate_hz) {
            Ok(answer) => {
                session.analysed_attempts += 1;
                let label = "microphone".to_string();
                let report = match make_report(library, job, label, answer, attempt_started) {
                    Ok(report) => report,
                    Err(err) => {
                        self.send_report(job, Err(err));
                        return Some(ListenOutcome::Cancelled);
                    }
                };
                // Attempts before the last answer only when conclusive: each one is another
                // chance for unindexed music to pass by chance.
                if listening::answer(&report.identification, last_attempt).is_some() {
                    self.sink.send(Event::Matches(Box::new(report)));
                    return Some(ListenOutcome::Matched);
                }
                let best_guess = listening::best_guess(&report.identification)
                    .map(|m| (m.song.title.clone(), m.confidence));
                self.send_listen_progress(job, heard_secs, attempts, best_guess);
                session.latest = Some(report);
            }
            Err(err) => {
                // Silence or a too-short clip: keep listening.
                tracing::debug!("listen attempt {attempts}: {err}");
                if matches!(err, LibraryError::Engine(EngineError::Silent { .. })) {
                    session.silent_attempts += 1;
                }
                self.send_listen_progress(job, heard_secs, attempts, None);
            }
        }
        None
    }

    /// The outcome of a listening session that has heard its time, lost its source or
    /// stalled; `None` while it goes on.
    fn end_of_session(
        &self,
        session: &mut ListenSession,
        heard_secs: f64,
    ) -> Option<ListenOutcome> {
        let stalled = session.stalled();
        // The session ends without another attempt (no new audio since the last one): that
        // attempt was the last, and answers at the threshold.
        if (heard_secs >= session.timeout_secs || session.source_ended || stalled)
            && let Some(report) = session
                .latest
                .take()
                .filter(|r| listening::answer(&r.identification, true).is_some())
        {
            self.sink.send(Event::Matches(Box::new(report)));
            return Some(ListenOutcome::Matched);
        }
        session.outcome_without_match(heard_secs, stalled)
    }

    fn send_listen_progress(
        &self,
        job: JobId,
        heard_secs: f64,
        attempts: usize,
        best_guess: Option<(String, f64)>,
    ) {
        self.sink.send(Event::ListenProgress {
            job,
            heard_secs,
            attempts,
            best_guess,
        });
    }
}

/// What a listening session ([`Desk::listen`]) has recorded, and what its attempts found.
struct ListenSession {
    started: Instant,
    /// How long the session listens, seconds of audio.
    timeout_secs: f64,
    /// The audio heard at `sample_rate_hz` (0 before the first chunk).
    recording: Vec<f32>,
    sample_rate_hz: u32,
    /// Seconds heard at the last attempt.
    attempted_secs: f64,
    attempts: usize,
    /// Attempts the engine could analyse, and those it found silent: a session of only
    /// silent attempts is a muted or wrong microphone, not music that is not indexed.
    analysed_attempts: usize,
    silent_attempts: usize,
    /// Seconds heard at the last heartbeat.
    reported_secs: f64,
    /// The audio source is gone.
    source_ended: bool,
    /// The last attempt's report, when it did not answer.
    latest: Option<MatchReport>,
}

impl ListenSession {
    fn new(timeout_secs: f64) -> Self {
        Self {
            started: Instant::now(),
            timeout_secs,
            recording: Vec::new(),
            sample_rate_hz: 0,
            attempted_secs: 0.0,
            attempts: 0,
            analysed_attempts: 0,
            silent_attempts: 0,
            reported_secs: 0.0,
            source_ended: false,
            latest: None,
        }
    }

    /// Waits a little for audio and takes every chunk that has come; notes a closed source.
    fn receive(&mut self, chunks: &Receiver<AudioChunk>) {
        match chunks.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                self.take(chunk);
                while let Ok(chunk) = chunks.try_recv() {
                    self.take(chunk);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.source_ended = true,
        }
    }

    fn take(&mut self, chunk: AudioChunk) {
        if chunk.sample_rate_hz != self.sample_rate_hz {
            // A new device rate starts a new recording.
            self.recording.clear();
            self.attempted_secs = 0.0;
            self.latest = None;
            self.sample_rate_hz = chunk.sample_rate_hz;
        }
        self.recording.extend_from_slice(&chunk.samples);
    }

    /// Seconds of audio recorded.
    fn heard_secs(&self) -> f64 {
        if self.sample_rate_hz == 0 {
            0.0
        } else {
            self.recording.len() as f64 / f64::from(self.sample_rate_hz)
        }
    }

    /// Whether to try now: an attempt is due for what was heard since the last one, or this
    /// is the `last_attempt` and there is new audio, long enough to query
    /// (`min_clip_secs`).
    fn attempt_due(&self, heard_secs: f64, last_attempt: bool, min_clip_secs: f64) -> bool {
        let due = listening::attempt_due(heard_secs, self.attempted_secs);
        let last_chance =
            last_attempt && heard_secs > self.attempted_secs && heard_secs >= min_clip_secs;
        due || last_chance
    }

    /// The recording up to the timeout: what an attempt identifies.
    fn clip(&self) -> &[f32] {
        let limit = (self.timeout_secs * f64::from(self.sample_rate_hz)) as usize;
        self.recording
            .get(..limit.min(self.recording.len()))
            .unwrap_or(&[])
    }

    /// Whether to report how much was heard (every [`LISTEN_HEARTBEAT_SECS`]); notes it.
    fn heartbeat_due(&mut self, heard_secs: f64) -> bool {
        if heard_secs - self.reported_secs >= LISTEN_HEARTBEAT_SECS {
            self.reported_secs = heard_secs;
            return true;
        }
        false
    }

    /// Whether the source has stayed silent (no chunks) [`LISTEN_STALL_GRACE`] beyond the
    /// timeout.
    fn stalled(&self) -> bool {
        self.started.elapsed() >= Duration::from_secs_f64(self.timeout_secs) + LISTEN_STALL_GRACE
    }

    /// Why the session ends without a match, once it has heard its time, lost its source or
    /// `stalled`; `None` while it goes on.
    fn outcome_without_match(&self, heard_secs: f64, stalled: bool) -> Option<ListenOutcome> {
        let only_silence = self.silent_attempts > 0 && self.analysed_attempts == 0;
        if heard_secs >= self.timeout_secs {
            return Some(if only_silence {
                ListenOutcome::OnlySilence { heard_secs }
            } else {
                ListenOutcome::NoMatch { heard_secs }
            });
        }
        if self.source_ended {
            return Some(if self.recording.is_empty() {
                ListenOutcome::NoAudio
            } else {
                ListenOutcome::SourceEnded { heard_secs }
            });
        }
        if stalled {
            return Some(if self.recording.is_empty() {
                ListenOutcome::NoAudio
            } else if only_silence {
                ListenOutcome::OnlySilence { heard_secs }
            } else {
                ListenOutcome::NoMatch { heard_secs }
            });
        }
        None
    }
}
