//! Events into view state: what the worker, the capture thread, the file dialogs and the
//! device list sent since the last frame ([`AudiofpApp::drain_events`]), each applied to the
//! pages' state ([`AudiofpApp::apply`]). Nothing here blocks: the channels are drained with
//! `try_recv`.

use std::time::Instant;

use crossbeam_channel::TryRecvError;

use super::{Action, AudiofpApp, DialogOutcome, IndexState, Page};
use crate::capture::CaptureEvent;
use crate::gui::library_panel::Failure;
use crate::gui::results_panel;
use crate::gui::settings::HistoryEntry;
use crate::index::unix_now;
use crate::worker::{Event, ListenOutcome};

impl AudiofpApp {
    /// Applies one worker event to the view state.
    pub fn apply(&mut self, event: Event) {
        match event {
            Event::Opened { location, .. } => {
                self.index_state = IndexState::Open;
                self.settings_view.index_location = location;
            }
            Event::OpenFailed { reason } => {
                self.index_state = IndexState::Failed(reason.clone());
                self.library.loaded = true;
                self.show_error(reason);
            }
            Event::Library { rows } => self.library.set_rows(rows),
            Event::IndexStarted { job, total } => {
                if let Some(view) = self.library.jobs.iter_mut().find(|v| v.job == job) {
                    view.total = total;
                    // A job queued behind another starts now: its rate and time left count
                    // from here, not from the request.
                    view.started = Instant::now();
                }
            }
            Event::Progress {
                job,
                done,
                total,
                indexed,
                skipped,
                failed,
                current,
            } => {
                if let Some(view) = self.library.jobs.iter_mut().find(|v| v.job == job) {
                    view.done = done;
                    view.total = total;
                    view.indexed = indexed;
                    view.skipped = skipped;
                    view.failed = failed;
                    view.current = current;
                }
            }
            Event::Indexed { rows, .. } => self.library.append_rows(rows),
            Event::Failed { path, reason, .. } => {
                // The same file failing again (a folder added twice) is listed once, newest.
                self.library.failures.retain(|f| f.path != path);
                self.library.failures.push(Failure { path, reason });
            }
            Event::IndexFinished { job, summary } => {
                let started = self
                    .library
                    .jobs
                    .iter()
                    .find(|v| v.job == job)
                    .map(|v| v.started);
                self.library.jobs.retain(|v| v.job != job);
                let secs = started.map_or(summary.elapsed_secs, |s| s.elapsed().as_secs_f64());
                let mut text = if summary.cancelled {
                    format!("Indexing cancelled: {} songs added.", summary.indexed)
                } else {
                    format!(
                        "Added {} song{} in {:.1} s.",
                        summary.indexed,
                        if summary.indexed == 1 { "" } else { "s" },
                        secs
                    )
                };
                if summary.skipped > 0 {
                    text.push_str(&format!(" {} already indexed", summary.skipped));
                    match summary.moved {
                        0 => text.push('.'),
                        1 => text.push_str(" (1 found at a new path)."),
                        n => text.push_str(&format!(" ({n} found at new paths).")),
                    }
                }
                if !summary.failed.is_empty() {
                    text.push_str(&format!(" {} could not be read.", summary.failed.len()));
                }
                self.library.last_summary = Some(text);
                if self.library.jobs.is_empty() {
                    self.clear_notice_for(|a| matches!(a, Action::CancelIndexing));
                }
                self.update_pending_wait();
            }
            Event::Matches(report) => {
                let for_pending = self
                    .results
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.job == report.job);
                let for_session = self
                    .listen
                    .session
                    .as_ref()
                    .is_some_and(|s| s.job == report.job);
                if !for_pending && !for_session {
                    return; // A cancelled job's late answer.
                }
                if for_pending {
                    self.results.pending = None;
                    self.clear_notice_for(|a| matches!(a, Action::IndexInstead(_)));
                }
                self.push_history(results_panel::history_entry(&report));
                self.results.push(report);
                if self.page == Page::Results {
                    self.unseen_result = false;
                } else {
                    self.unseen_result = true;
                    self.set_page(Page::Results);
                }
            }
            Event::IdentifyCancelled { job } => {
                if self.results.pending.as_ref().is_some_and(|p| p.job == job) {
                    self.results.pending = None;
                    self.clear_notice_for(|a| matches!(a, Action::IndexInstead(_)));
                }
            }
            Event::IdentifyFailed { job, reason } => {
                if self.results.pending.as_ref().is_some_and(|p| p.job == job) {
                    self.results.pending = None;
                    self.clear_notice_for(|a| matches!(a, Action::IndexInstead(_)));
                    self.results.error = Some(reason);
                } else if self.listen.session.as_ref().is_some_and(|s| s.job == job) {
                    self.listen.error = Some(reason);
                }
            }
            Event::ListenProgress {
                job,
                heard_secs,
                attempts,
                best_guess,
            } => {
                if let Some(session) = &mut self.listen.session
                    && session.job == job
                {
                    session.heard_secs = heard_secs;
                    session.attempts = attempts;
                    if best_guess.is_some() {
                        session.best_guess = best_guess;
                    }
                }
            }
            Event::ListenFinished { job, outcome } => {
                if self.listen.session.as_ref().is_some_and(|s| s.job == job) {
                    self.listen.session = None;
                    self.update_pending_wait();
                    if let Some(capture) = &mut self.listen.capture {
                        capture.stop();
                    }
                    self.listen.last_outcome = Some(match outcome {
                        ListenOutcome::Matched => "Found it! See the result.".to_string(),
                        ListenOutcome::NoMatch { heard_secs } => {
                            self.push_history(HistoryEntry {
                                at_unix_secs: unix_now(),
                                source: "microphone".to_string(),
                                title: None,
                                artist: None,
                                song_id: None,
                                content_hash: None,
                                confidence: 0.0,
                                offset_secs: 0.0,
                            });
                            format!(
                                "No match after {heard_secs:.0} s of listening. Try again closer to the music."
                            )
                        }
                        ListenOutcome::NoAudio => {
                            "The microphone delivered no audio. Check the input in Settings."
                                .to_string()
                        }
                        ListenOutcome::OnlySilence { heard_secs } => format!(
                            "The microphone heard only silence for {heard_secs:.0} s. Check that it \
                             is not muted, or pick another input in Settings."
                        ),
                        ListenOutcome::Cancelled => "Stopped.".to_string(),
                        ListenOutcome::SourceEnded { .. } => {
                            "Listening stopped: the microphone went away.".to_string()
                        }
                    });
                }
            }
            Event::Superseded { song_ids, .. } => {
                for song_id in song_ids {
                    self.forget_song(song_id);
                }
            }
            Event::Removed { song_id } => {
                let title = self.library.row(song_id).map(|r| r.title.clone());
                self.forget_song(song_id);
                if let Some(title) = title {
                    self.show_info(
                        format!("Removed \u{201c}{title}\u{201d} from the library."),
                        None,
                    );
                }
            }
            Event::SongDetail(detail) => self.detail.set_detail(detail),
            Event::SongDetailFailed {
                song_id,
                reason,
                gone,
            } => {
                if gone {
                    self.library.remove_row(song_id);
                }
                self.detail.set_failure(song_id, reason);
            }
            Event::Error { context, reason } => {
                self.show_error(format!("{context}: {reason}"));
            }
        }
    }

    /// Drains the worker, capture, dialog and device channels.
    pub(super) fn drain_events(&mut self) {
        let events: Vec<Event> = self.worker.try_iter().collect();
        for event in events {
            self.apply(event);
        }
        let capture_events: Vec<CaptureEvent> = self
            .listen
            .capture
            .as_ref()
            .map(|c| c.try_iter().collect())
            .unwrap_or_default();
        for event in capture_events {
            match event {
                CaptureEvent::Started {
                    device_name,
                    sample_rate_hz,
                    ..
                } => {
                    self.listen.device_name = Some(device_name);
                    self.listen.sample_rate_hz = sample_rate_hz;
                }
                CaptureEvent::Level {
                    rms_dbfs,
                    peak,
                    columns,
                    bins,
                } => self.listen.push_level(rms_dbfs, peak, columns, bins),
                CaptureEvent::Error { message } => {
                    self.listen.error = Some(message);
                    self.stop_listening();
                }
                CaptureEvent::Stopped { dropped_buffers } => {
                    if dropped_buffers > 0 {
                        tracing::info!("capture dropped {dropped_buffers} buffers");
                    }
                    self.listen.capture = None;
                }
            }
        }
        if let Some(rx) = &self.dialog {
            match rx.try_recv() {
                Ok((outcome, never_opened)) => {
                    self.dialog = None;
                    if never_opened {
                        self.show_error(
                            "No file dialog could be opened (on Linux, install \
                             xdg-desktop-portal-gtk or zenity). Drop files or folders onto the \
                             window instead, or run `audiofp index PATH` in a terminal."
                                .to_string(),
                        );
                    }
                    match outcome {
                        Some(DialogOutcome::Index(paths)) => {
                            self.index_paths(paths);
                            self.set_page(Page::Library);
                        }
                        Some(DialogOutcome::Identify(path)) => self.identify_path(path),
                        None => {}
                    }
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.dialog = None,
            }
        }
        if let Some(rx) = &self.devices {
            match rx.try_recv() {
                Ok(devices) => {
                    self.settings_view.devices = Some(devices);
                    self.devices = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.devices = None,
            }
        }
    }
}
