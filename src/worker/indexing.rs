//! Indexing runs ([`Request::IndexPaths`]): the worker collects the files, runs the indexer
//! on them and reports its progress to the GUI at most every [`PROGRESS_INTERVAL`]; between
//! songs the indexer lends the library back, and the requests that came meanwhile
//! (identifications, listening, song pages, removals) are served then.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::protocol::{Event, JobId, Request, SongRow};
use super::{Desk, EventSink};
use crate::cancel::CancelToken;
use crate::indexer::{self, FailedFile, IndexEvent, IndexObserver, IndexSummary, KnownFailures};
use crate::library::Library;

/// How often progress and new rows are reported while indexing.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

impl Desk {
    /// Serves the requests that came during an indexing run (identifications, listening,
    /// song details, removals), in order; further indexing runs wait for this one to end.
    fn serve_between_songs(&mut self, library: &mut Library) {
        self.inbox.poll();
        let mut prepared = false;
        while !self.shutdown.is_cancelled()
            && let Some(request) = self
                .inbox
                .take_first(|request| !matches!(request, Request::IndexPaths { .. }))
        {
            if !prepared {
                // The songs this run added are searchable already; sorted, they are
                // searched faster.
                library.prepare();
                prepared = true;
            }
            self.handle(library, request, false);
            self.inbox.poll();
        }
    }

    pub(super) fn index_paths(
        &mut self,
        library: &mut Library,
        job: JobId,
        paths: &[PathBuf],
        cancel: &CancelToken,
    ) {
        let indexer::Collected {
            files,
            missing,
            unreadable,
        } = indexer::collect_audio_files(paths);
        let missing_failures: Vec<FailedFile> = missing
            .iter()
            .map(|path| FailedFile {
                path: path.clone(),
                code: "not_found".to_string(),
                message: format!("{}: no such file or folder", path.display()),
                remembered: false,
            })
            .chain(unreadable)
            .collect();
        let threads = self.index_threads;
        // As the CLI does by default: a file that failed before and is unchanged is reported
        // again without decoding it.
        let known_failures = KnownFailures::Report;
        let mut progress = IndexProgress {
            job,
            total: files.len() + missing_failures.len(),
            done: 0,
            indexed: 0,
            skipped: 0,
            failed: 0,
            current: None,
            rows: Vec::new(),
            last_sent: Instant::now(),
            unsent: false,
        };
        let run = IndexingRun {
            desk: self,
            progress: &mut progress,
            missing_failures: &missing_failures,
            cancel,
        };
        let result = indexer::index_files(library, files, threads, known_failures, cancel, run);
        progress.flush(&self.sink);
        match result {
            Ok(mut summary) => {
                summary.total += missing_failures.len();
                summary.failed.extend(missing_failures);
                self.sink.send(Event::IndexFinished { job, summary });
            }
            Err(err) => {
                self.sink.send(Event::Error {
                    context: "indexing".to_string(),
                    reason: err.to_string(),
                });
                self.sink.send(Event::IndexFinished {
                    job,
                    summary: IndexSummary {
                        total: progress.total,
                        indexed: progress.indexed,
                        skipped: progress.skipped,
                        cancelled: cancel.is_cancelled(),
                        ..IndexSummary::default()
                    },
                });
            }
        }
        self.send_library(library);
    }
}

/// An indexing run as the worker sees it: progress for the GUI, and the requests that came
/// meanwhile, served between songs.
struct IndexingRun<'a> {
    desk: &'a mut Desk,
    progress: &'a mut IndexProgress,
    /// Paths given that do not exist or cannot be read, reported when the run starts.
    missing_failures: &'a [FailedFile],
    cancel: &'a CancelToken,
}

impl IndexObserver for IndexingRun<'_> {
    fn on_event(&mut self, event: &IndexEvent) {
        // A cancellation queued right behind the run reaches it before any analysis starts.
        self.desk.inbox.poll();
        let (progress, sink) = (&mut *self.progress, &self.desk.sink);
        match event {
            IndexEvent::Started { total } => {
                progress.total = total + self.missing_failures.len();
                sink.send(Event::IndexStarted {
                    job: progress.job,
                    total: progress.total,
                });
                for failure in self.missing_failures {
                    progress.failed += 1;
                    progress.done += 1;
                    sink.send(Event::Failed {
                        job: progress.job,
                        path: failure.path.clone(),
                        reason: failure.message.clone(),
                    });
                }
            }
            IndexEvent::Indexed { path, song } => {
                progress.indexed += 1;
                progress.done += 1;
                progress.current = Some(path.clone());
                progress.rows.push(SongRow::from(song));
            }
            IndexEvent::Replaced { song_ids, .. } => {
                sink.send(Event::Superseded {
                    job: progress.job,
                    song_ids: song_ids.clone(),
                });
            }
            IndexEvent::Skipped { path, .. } => {
                progress.skipped += 1;
                progress.done += 1;
                progress.current = Some(path.clone());
            }
            IndexEvent::Failed {
                path,
                message,
                remembered,
                ..
            } => {
                progress.failed += 1;
                progress.done += 1;
                progress.current = Some(path.clone());
                sink.send(Event::Failed {
                    job: progress.job,
                    path: path.clone(),
                    reason: indexer::describe_failure(message, *remembered),
                });
            }
        }
        progress.unsent = true;
        if progress.last_sent.elapsed() >= PROGRESS_INTERVAL {
            progress.flush(sink);
        }
    }

    fn between_songs(&mut self, library: &mut Library) {
        if self.desk.shutdown.is_cancelled() {
            self.cancel.cancel();
            return;
        }
        // Songs stored while the analysis of the next one takes long are shown anyway.
        if self.progress.unsent && self.progress.last_sent.elapsed() >= PROGRESS_INTERVAL {
            self.progress.flush(&self.desk.sink);
        }
        self.desk.serve_between_songs(library);
    }
}

/// Counters of an indexing job, flushed to the GUI at most every [`PROGRESS_INTERVAL`].
struct IndexProgress {
    job: JobId,
    total: usize,
    done: usize,
    indexed: usize,
    skipped: usize,
    failed: usize,
    current: Option<PathBuf>,
    rows: Vec<SongRow>,
    last_sent: Instant,
    /// Counts changed since the last flush.
    unsent: bool,
}

impl IndexProgress {
    fn flush(&mut self, sink: &EventSink) {
        if !self.rows.is_empty() {
            sink.send(Event::Indexed {
                job: self.job,
                rows: std::mem::take(&mut self.rows),
            });
        }
        sink.send(Event::Progress {
            job: self.job,
            done: self.done,
            total: self.total,
            indexed: self.indexed,
            skipped: self.skipped,
            failed: self.failed,
            current: self.current.clone(),
        });
        self.last_sent = Instant::now();
        self.unsent = false;
    }
}
