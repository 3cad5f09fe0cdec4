//! The background worker: one named thread that owns the [`Library`] (engine + index) and
//! answers [`Request`]s with [`Event`]s.
//!
//! ```text
//! WorkerHandle::spawn(config) ──► thread "audiofp-worker": open the library, then
//!     for each Request: index / identify / listen / remove / load detail ──► Events
//! ```
//!
//! The GUI never touches the index: it sends requests (never blocking) and drains events in
//! its frame loop; after each event the worker calls the [`Waker`] (the GUI sets it to
//! `ctx.request_repaint()`). The worker is usable without any GUI: the tests drive it
//! directly with [`WorkerHandle::send`] and [`WorkerHandle::recv_timeout`].
//!
//! Long jobs (indexing, listening) look at the request queue between steps, so a
//! [`Request::Cancel`] reaches them; the [`CancelToken`] inside the request works instantly.
//! Other requests that arrive meanwhile wait their turn. Dropping the handle cancels the
//! running job and joins the thread.

pub mod protocol;

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

pub use protocol::{
    AudioChunk, Event, JobId, ListenOutcome, MatchReport, Request, SPECTROGRAM_TILE_FRAMES,
    SongDetail, SongRow,
};

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::front_end::FrontEnd;
use crate::engine::{self, AudioSource, EngineError};
use crate::index::{OpenMode, StorageKind, unix_now};
use crate::indexer::{self, FailedFile, IndexEvent, IndexObserver, IndexSummary, KnownFailures};
use crate::library::{Answer, Library, LibraryError, MatchEvidence};
use crate::listening;

/// How often progress and new rows are reported while indexing.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// With no request for this long, the worker looks for songs other processes added or
/// removed (one query of SQLite's change counter when there are none); the default of
/// [`WorkerConfig::idle_check`].
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// A listening session also gives up when the source has been silent (no chunks) this long
/// beyond its timeout.
const LISTEN_STALL_GRACE: Duration = Duration::from_secs(5);
/// Width of the offset histogram's bins (about 8 frames: a clear spike, visible bars).
const HISTOGRAM_BIN_SECS: f64 = 0.25;
/// A listening session reports how much it heard at least this often (in audio seconds).
const LISTEN_HEARTBEAT_SECS: f64 = 0.25;
/// The song-detail spectrogram is pooled in time beyond this many frames (about 9 minutes).
const MAX_DETAIL_FRAMES: usize = 8 * SPECTROGRAM_TILE_FRAMES;
/// Spectrogram levels are stored as u8 steps of this many dB, from [`LEVEL_FLOOR_DB`].
const LEVEL_STEP_DB: f32 = 0.5;
/// The lowest level the song-detail spectrogram keeps.
const LEVEL_FLOOR_DB: f32 = -127.0;
/// Dynamic range shown in the song-detail spectrogram.
const DISPLAY_RANGE_DB: f32 = 60.0;

/// What the worker opens and how it works.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The index to open (created when missing).
    pub storage: StorageKind,
    /// Fingerprint parameters: a new index is made with them; an existing index made with
    /// others is refused, naming the parameters that differ.
    pub fingerprint_config: FingerprintConfig,
    /// Query settings.
    pub match_config: MatchConfig,
    /// Analysis threads while indexing.
    pub index_threads: usize,
    /// With no request for this long, the worker looks for songs other processes added or
    /// removed.
    pub idle_check: Duration,
}

impl WorkerConfig {
    /// Defaults for `storage`: default parameters, one analysis thread per core but one.
    pub fn new(storage: StorageKind) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Self {
            storage,
            fingerprint_config: FingerprintConfig::default(),
            match_config: MatchConfig::default(),
            index_threads: cores.saturating_sub(1).max(1),
            idle_check: IDLE_CHECK,
        }
    }
}

/// Called by the worker after each event (the GUI wakes its frame loop with it).
#[derive(Clone, Default)]
pub struct Waker(Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>);

impl Waker {
    /// Installs the wake-up function; only the first call has an effect.
    pub fn set(&self, wake: impl Fn() + Send + Sync + 'static) {
        // A second installation is ignored on purpose: the first context stays valid.
        self.0.set(Box::new(wake)).ok();
    }

    /// Calls the wake-up function, if one is installed.
    pub fn wake(&self) {
        if let Some(wake) = self.0.get() {
            wake();
        }
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("installed", &self.0.get().is_some())
            .finish()
    }
}

/// The sending half of the event channel.
#[derive(Clone, Debug)]
struct EventSink {
    tx: Sender<Event>,
    waker: Waker,
}

impl EventSink {
    fn send(&self, event: Event) {
        // The receiver is gone only when the GUI is closing; nobody needs the event then.
        self.tx.send(event).ok();
        self.waker.wake();
    }
}

/// The GUI's (or a test's) end of the worker.
pub struct WorkerHandle {
    requests: Option<Sender<Request>>,
    events: Receiver<Event>,
    waker: Waker,
    shutdown: CancelToken,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread; it opens the library first and reports
    /// [`Event::Opened`] or [`Event::OpenFailed`].
    pub fn spawn(config: WorkerConfig) -> std::io::Result<Self> {
        let (request_tx, request_rx) = unbounded();
        let (event_tx, event_rx) = unbounded();
        let waker = Waker::default();
        let shutdown = CancelToken::new();
        let sink = EventSink {
            tx: event_tx,
            waker: waker.clone(),
        };
        let thread_shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name("audiofp-worker".to_string())
            .spawn(move || {
                yield_to_the_window();
                let mut worker = Worker::open(config, request_rx, sink, thread_shutdown);
                worker.run();
            })?;
        Ok(Self {
            requests: Some(request_tx),
            events: event_rx,
            waker,
            shutdown,
            thread: Some(thread),
        })
    }

    /// Queues a request (never blocks).
    pub fn send(&self, request: Request) {
        if let Some(tx) = &self.requests {
            // Fails only if the worker thread died; its events already said why.
            tx.send(request).ok();
        }
    }

    /// Events received so far, without waiting.
    pub fn try_iter(&self) -> crossbeam_channel::TryIter<'_, Event> {
        self.events.try_iter()
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// The function the worker calls after each event.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the worker thread panicked");
        }
    }
}

/// Requests that arrived while a long job ran, and cancellations of queued jobs.
struct Inbox {
    rx: Receiver<Request>,
    idle_check: Duration,
    pending: VecDeque<Request>,
    cancelled: HashSet<JobId>,
    /// The jobs running now (an indexing run, and a listening session served within it):
    /// their cancellation takes effect at once.
    running: Vec<(JobId, CancelToken)>,
}

/// What the worker's wait for a request gave.
enum Next {
    /// A request to handle.
    Request(Request),
    /// None came for [`WorkerConfig::idle_check`]: time to look for changes made by other
    /// processes.
    Idle,
    /// The app is gone.
    Closed,
}

impl Inbox {
    /// The next request to handle, waiting at most `idle_check` for one.
    fn next(&mut self) -> Next {
        if let Some(request) = self.pending.pop_front() {
            return Next::Request(request);
        }
        match self.rx.recv_timeout(self.idle_check) {
            Ok(request) => Next::Request(request),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Next::Idle,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Next::Closed,
        }
    }

    /// Takes the requests that arrived: cancellations of running jobs take effect, the rest
    /// wait in `pending`.
    fn poll(&mut self) {
        while let Ok(request) = self.rx.try_recv() {
            match request {
                Request::Cancel { job } => {
                    match self.running.iter().find(|(running, _)| *running == job) {
                        Some((_, cancel)) => cancel.cancel(),
                        None => {
                            self.cancelled.insert(job);
                        }
                    }
                }
                other => self.pending.push_back(other),
            }
        }
    }

    /// Marks `job` as running until [`finished`](Self::finished); whether it was cancelled
    /// before it started (`cancel` is cancelled then).
    fn started(&mut self, job: JobId, cancel: &CancelToken) {
        if self.cancelled.remove(&job) {
            cancel.cancel();
        }
        self.running.push((job, cancel.clone()));
    }

    fn finished(&mut self, job: JobId) {
        self.running.retain(|(running, _)| *running != job);
    }

    /// Whether `job` was cancelled before it started (forgets it).
    fn take_cancelled(&mut self, job: JobId) -> bool {
        self.cancelled.remove(&job)
    }

    /// The first waiting request that `can_serve` accepts, taken out of the queue.
    fn take_first(&mut self, can_serve: impl Fn(&Request) -> bool) -> Option<Request> {
        let at = self.pending.iter().position(can_serve)?;
        self.pending.remove(at)
    }
}

struct Worker {
    /// The engine and the index, or why they could not be opened.
    library: Result<Library, String>,
    desk: Desk,
}

/// Everything the worker handles requests with but the library, which is passed in: an
/// indexing run borrows the library and lends it back between songs
/// ([`IndexObserver::between_songs`]), and the requests that came meanwhile are served then.
struct Desk {
    inbox: Inbox,
    sink: EventSink,
    shutdown: CancelToken,
    index_threads: usize,
    /// The last failure to catch up with other processes that was shown: the same one is
    /// not shown again every [`WorkerConfig::idle_check`] (a share that went away).
    catch_up_error: Option<String>,
}

impl Worker {
    fn open(
        config: WorkerConfig,
        requests: Receiver<Request>,
        sink: EventSink,
        shutdown: CancelToken,
    ) -> Self {
        let location = match &config.storage {
            StorageKind::Sqlite(path) => path.display().to_string(),
            StorageKind::Memory => "(memory)".to_string(),
        };
        let library = Library::open(
            &config.storage,
            &config.fingerprint_config,
            &config.match_config,
            OpenMode::CreateIfMissing,
        )
        .map_err(|err| {
            // Most errors name the file already.
            let err = err.to_string();
            if err.contains(&location) {
                format!("cannot open the index: {err}")
            } else {
                format!("cannot open the index at {location}: {err}")
            }
        });
        match &library {
            Ok(library) => {
                let songs = library.store().stats().map_or(0, |stats| {
                    usize::try_from(stats.songs).unwrap_or(usize::MAX)
                });
                sink.send(Event::Opened { location, songs });
            }
            Err(reason) => sink.send(Event::OpenFailed {
                reason: reason.clone(),
            }),
        }
        Self {
            library,
            desk: Desk {
                inbox: Inbox {
                    rx: requests,
                    idle_check: config.idle_check,
                    pending: VecDeque::new(),
                    cancelled: HashSet::new(),
                    running: Vec::new(),
                },
                sink,
                shutdown,
                index_threads: config.index_threads.max(1),
                catch_up_error: None,
            },
        }
    }

    fn run(&mut self) {
        if let Ok(library) = &self.library {
            self.desk.send_library(library);
        }
        loop {
            let next = self.desk.inbox.next();
            if self.desk.shutdown.is_cancelled() {
                break;
            }
            match next {
                Next::Request(request) => self.handle(request),
                // `audiofp index` in a terminal shows in the open app without a click.
                Next::Idle => {
                    if let Ok(library) = &mut self.library {
                        self.desk.catch_up_with_other_processes(library);
                    }
                }
                Next::Closed => break,
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match &mut self.library {
            Ok(library) => {
                let library_sent = self.desk.catch_up_with_other_processes(library);
                self.desk.handle(library, request, library_sent);
            }
            Err(reason) => self.desk.refuse(request, reason),
        }
    }
}

impl Desk {
    /// Handles `request`; `library_sent`: the song list went to the GUI just now.
    fn handle(&mut self, library: &mut Library, request: Request, library_sent: bool) {
        match request {
            // Once is enough when catching up has just sent it.
            Request::RefreshLibrary if library_sent => {}
            Request::RefreshLibrary => self.send_library(library),
            Request::IndexPaths { job, paths, cancel } => {
                self.inbox.started(job, &cancel);
                self.index_paths(library, job, &paths, &cancel);
                self.inbox.finished(job);
            }
            Request::IdentifyFile { job, path, cancel } => {
                if self.inbox.take_cancelled(job) {
                    cancel.cancel();
                }
                self.identify_file(library, job, &path, &cancel);
            }
            Request::IdentifyClip {
                job,
                samples,
                sample_rate_hz,
                label,
            } => {
                if self.inbox.take_cancelled(job) {
                    return;
                }
                self.identify_clip(library, job, &samples, sample_rate_hz, label);
            }
            Request::Listen {
                job,
                chunks,
                timeout_secs,
                cancel,
            } => {
                self.inbox.started(job, &cancel);
                self.listen(library, job, &chunks, timeout_secs, &cancel);
                self.inbox.finished(job);
            }
            Request::Remove { song_id } => self.remove(library, song_id),
            Request::LoadSongDetail {
                song_id,
                content_hash,
            } => self.load_detail(library, song_id, content_hash.as_deref()),
            Request::SetMatchThreshold { threshold } => {
                let match_config = MatchConfig {
                    threshold: threshold.clamp(0.0, 1.0),
                    ..library.match_config().clone()
                };
                library.set_match_config(match_config);
            }
            Request::Cancel { job } => {
                self.inbox.cancelled.insert(job);
            }
        }
    }

    /// Answers `request` when the index could not be opened (`reason`).
    fn refuse(&mut self, request: Request, reason: &str) {
        let reason = reason.to_string();
        match request {
            Request::RefreshLibrary | Request::SetMatchThreshold { .. } => {}
            Request::Cancel { job } => {
                self.inbox.cancelled.insert(job);
            }
            Request::IndexPaths { job, paths, .. } => {
                // Each item the user asked to add is listed, by name, with the reason.
                for path in paths {
                    self.sink.send(Event::Failed {
                        job,
                        path,
                        reason: reason.clone(),
                    });
                }
                self.sink.send(Event::IndexFinished {
                    job,
                    summary: IndexSummary::default(),
                });
            }
            Request::IdentifyFile { job, .. } | Request::IdentifyClip { job, .. } => {
                self.sink.send(Event::IdentifyFailed { job, reason });
            }
            Request::Listen { job, .. } => {
                self.sink.send(Event::IdentifyFailed { job, reason });
                self.sink.send(Event::ListenFinished {
                    job,
                    outcome: ListenOutcome::Cancelled,
                });
            }
            Request::Remove { .. } => self.sink.send(Event::Error {
                context: "removing a song".to_string(),
                reason,
            }),
            Request::LoadSongDetail { song_id, .. } => self.sink.send(Event::SongDetailFailed {
                song_id,
                reason,
                gone: false,
            }),
        }
    }

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

    /// Takes in songs another process (`audiofp index` or `remove` on the same database)
    /// added or removed while the app runs, so that they are searched (one query of the
    /// database's change counter when nothing changed), and shows the library again if any.
    /// Whether the library was sent.
    fn catch_up_with_other_processes(&mut self, library: &mut Library) -> bool {
        let caught_up = library.store_changed_elsewhere().and_then(|changed| {
            if changed {
                library.catch_up_with_store()
            } else {
                Ok((0, 0))
            }
        });
        match caught_up {
            Ok(changes) => {
                self.catch_up_error = None;
                if changes == (0, 0) {
                    return false;
                }
                self.send_library(library);
                true
            }
            Err(err) => {
                let reason = err.to_string();
                if self.catch_up_error.as_ref() != Some(&reason) {
                    self.catch_up_error = Some(reason.clone());
                    self.sink.send(Event::Error {
                        context: "reading songs another process changed".to_string(),
                        reason,
                    });
                }
                false
            }
        }
    }

    /// Sends a finished match, or why there is none.
    fn send_report(&self, job: JobId, report: Result<MatchReport, LibraryError>) {
        match report {
            Ok(report) => self.sink.send(Event::Matches(Box::new(report))),
            Err(err) => self.sink.send(Event::IdentifyFailed {
                job,
                reason: err.to_string(),
            }),
        }
    }

    fn send_library(&self, library: &Library) {
        let songs = library.store().songs();
        match songs {
            Ok(songs) => self.sink.send(Event::Library {
                rows: songs.iter().map(SongRow::from).collect(),
            }),
            Err(err) => self.sink.send(Event::Error {
                context: "listing the library".to_string(),
                reason: err.to_string(),
            }),
        }
    }

    fn index_paths(
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

    fn identify_file(&self, library: &Library, job: JobId, path: &Path, cancel: &CancelToken) {
        let started = Instant::now();
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().to_string(),
        );
        match library.query_file(path, cancel) {
            Ok(answer) => {
                let report = make_report(library, job, label, answer, started);
                self.send_report(job, report);
            }
            Err(LibraryError::Engine(EngineError::Cancelled)) => {
                self.sink.send(Event::IdentifyCancelled { job });
            }
            Err(err) => self.sink.send(Event::IdentifyFailed {
                job,
                reason: err.to_string(),
            }),
        }
    }

    fn identify_clip(
        &self,
        library: &Library,
        job: JobId,
        samples: &[f32],
        sample_rate_hz: u32,
        label: String,
    ) {
        let started = Instant::now();
        let report = library
            .query_samples(samples, sample_rate_hz)
            .and_then(|answer| make_report(library, job, label, answer, started));
        self.send_report(job, report);
    }

    /// A listening session: records the chunks as they come and tries to identify what it has
    /// heard each time an attempt is due, until an answer, the timeout, the end of the source,
    /// a stall or a cancel ([`Event::ListenFinished`] says which).
    fn listen(
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

    fn remove(&self, library: &mut Library, song_id: i64) {
        match library.remove(song_id) {
            Ok(true) => {
                if let Err(err) = library.store().flush() {
                    tracing::warn!("folding the WAL after a removal: {err}");
                }
                self.sink.send(Event::Removed { song_id });
            }
            Ok(false) => self.sink.send(Event::Error {
                context: "removing a song".to_string(),
                reason: format!("there is no song with id {song_id}"),
            }),
            Err(err) => self.sink.send(Event::Error {
                context: "removing a song".to_string(),
                reason: err.to_string(),
            }),
        }
    }

    fn load_detail(&self, library: &Library, song_id: i64, expected_content: Option<&str>) {
        let failed = |reason: String, gone: bool| Event::SongDetailFailed {
            song_id,
            reason,
            gone,
        };
        let fetched = {
            let store = library.store();
            store
                .song(song_id)
                .and_then(|song| Ok((song, store.peaks(song_id)?)))
        };
        let (song, peaks) = match fetched {
            Ok((Some(song), peaks))
                if expected_content.is_none_or(|hash| hash == song.content_hash) =>
            {
                (song, peaks.unwrap_or_default())
            }
            Ok(_) => {
                self.sink.send(failed(
                    "This song is no longer in the library.".to_string(),
                    true,
                ));
                return;
            }
            Err(err) => {
                self.sink.send(failed(err.to_string(), false));
                return;
            }
        };
        let config = library.config();
        let mut detail = SongDetail {
            song: SongRow::from(&song),
            content_hash: song.content_hash.clone(),
            tiles: Vec::new(),
            tile_frames: SPECTROGRAM_TILE_FRAMES,
            num_frames: song.num_frames as usize,
            peaks,
            frame_secs: config.frame_secs(),
            peak_frame_secs: config.frame_secs(),
            band_start_hz: config.first_bin() as f64 * f64::from(config.bin_hz()),
            bin_hz: f64::from(config.bin_hz()),
            band_bins: config.band_bins(),
            note: None,
        };
        match song.path.as_deref().map(crate::paths::from_stored) {
            Some(path) if path.is_file() => {
                match spectrogram_levels(&path, config, &self.shutdown) {
                    Ok(levels) => {
                        let pooled = pool_frames(&levels, config.band_bins());
                        detail.frame_secs = config.frame_secs() * pooled.factor as f64;
                        detail.num_frames = pooled.frames;
                        detail.tiles = spectrogram_tiles(&pooled.levels, config.band_bins());
                    }
                    Err(err) => {
                        detail.note = Some(format!(
                            "The audio could not be decoded ({err}); showing the stored fingerprint peaks only."
                        ));
                    }
                }
            }
            Some(path) => {
                detail.note = Some(format!(
                    "The audio file is no longer at {}; showing the stored fingerprint peaks only.",
                    path.display()
                ));
            }
            None => {
                detail.note = Some(
                    "This song was imported without its audio file; showing the stored fingerprint peaks only."
                        .to_string(),
                );
            }
        }
        self.sink.send(Event::SongDetail(Box::new(detail)));
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

/// Gathers the evidence of an answer for the plots.
fn make_report(
    library: &Library,
    job: JobId,
    label: String,
    answer: Answer,
    started: Instant,
) -> Result<MatchReport, LibraryError> {
    let Answer {
        identification,
        fingerprint,
    } = answer;
    let best = identification
        .matches
        .first()
        .or(identification.best_rejected.as_ref())
        .map(|best| (best.song.id, best.offset_secs));
    let evidence = match best {
        Some((song_id, offset_secs)) => library.evidence(&fingerprint, song_id, offset_secs)?,
        None => MatchEvidence::default(),
    };
    let offset_histogram = offset_histogram(&evidence, HISTOGRAM_BIN_SECS);
    Ok(MatchReport {
        job,
        label,
        clip_secs: fingerprint.duration_secs,
        identification,
        evidence,
        offset_histogram,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        finished_at_unix_secs: unix_now(),
    })
}

/// Counts (song time − clip time) of the hits in bins of `bin_secs`: (bin centre, count).
pub fn offset_histogram(evidence: &MatchEvidence, bin_secs: f64) -> Vec<(f64, u32)> {
    if bin_secs <= 0.0 {
        return Vec::new();
    }
    let mut bins: std::collections::BTreeMap<i64, u32> = std::collections::BTreeMap::new();
    for &(clip_secs, song_secs) in &evidence.hits {
        let bin = ((song_secs - clip_secs) / bin_secs).round() as i64;
        *bins.entry(bin).or_default() += 1;
    }
    bins.into_iter()
        .map(|(bin, count)| (bin as f64 * bin_secs, count))
        .collect()
}

/// Decodes a file through the analysis front end (mono, resampled, STFT) and keeps each
/// frame's band levels as u8 steps of [`LEVEL_STEP_DB`] above [`LEVEL_FLOOR_DB`]; the frames
/// line up with the stored peaks.
fn spectrogram_levels(
    path: &Path,
    config: &FingerprintConfig,
    cancel: &CancelToken,
) -> Result<Vec<u8>, EngineError> {
    let name = path.display().to_string();
    let mut front_end = FrontEnd::new(config);
    let mut levels = Vec::new();
    let mut quantise = |frame: &[f32]| {
        levels.extend(frame.iter().map(|&db| {
            ((db - LEVEL_FLOOR_DB) / LEVEL_STEP_DB)
                .round()
                .clamp(0.0, 255.0) as u8
        }));
    };
    engine::decode::decode_mono(
        AudioSource::File(path),
        engine::decode::CutStreams::Accept,
        cancel,
        |chunk, rate| front_end.push(chunk, rate, &name, &mut quantise),
    )?;
    front_end.finish(&name, &mut quantise)?;
    Ok(levels)
}

struct PooledLevels {
    levels: Vec<u8>,
    frames: usize,
    factor: usize,
}

/// Keeps long songs displayable: takes the maximum over groups of frames so that at most
/// [`MAX_DETAIL_FRAMES`] remain.
fn pool_frames(levels: &[u8], band_bins: usize) -> PooledLevels {
    let frames = levels.len() / band_bins.max(1);
    let factor = frames.div_ceil(MAX_DETAIL_FRAMES).max(1);
    if factor == 1 {
        return PooledLevels {
            levels: levels.to_vec(),
            frames,
            factor,
        };
    }
    let pooled_frames = frames.div_ceil(factor);
    let mut pooled = vec![0_u8; pooled_frames * band_bins];
    for (frame, column) in levels.chunks_exact(band_bins).enumerate() {
        let start = (frame / factor) * band_bins;
        if let Some(target) = pooled.get_mut(start..start + band_bins) {
            for (dst, &src) in target.iter_mut().zip(column) {
                *dst = (*dst).max(src);
            }
        }
    }
    PooledLevels {
        levels: pooled,
        frames: pooled_frames,
        factor,
    }
}

/// Colours the levels (frame-major) into tiles of at most [`SPECTROGRAM_TILE_FRAMES`] frames,
/// high frequencies at the top, contrast fitted to the song's loudest cells.
fn spectrogram_tiles(levels: &[u8], band_bins: usize) -> Vec<egui::ColorImage> {
    if band_bins == 0 || levels.is_empty() {
        return Vec::new();
    }
    let frames = levels.len() / band_bins;
    // The top of the scale is the 99.7th percentile, the bottom DISPLAY_RANGE_DB below it.
    let mut histogram = [0_usize; 256];
    for &level in levels {
        histogram[usize::from(level)] += 1;
    }
    let mut above = 0;
    let mut top = 255_usize;
    for (level, &count) in histogram.iter().enumerate().rev() {
        above += count;
        if above * 1000 >= levels.len() * 3 {
            top = level;
            break;
        }
    }
    let span_steps = DISPLAY_RANGE_DB / LEVEL_STEP_DB;
    let bottom = top as f32 - span_steps;
    let palette = spectrogram_palette();
    let colour = |level: u8| {
        let t = ((f32::from(level) - bottom) / span_steps).clamp(0.0, 1.0);
        palette[(t * 255.0).round() as usize]
    };
    let mut tiles = Vec::new();
    let mut start = 0;
    while start < frames {
        let width = (frames - start).min(SPECTROGRAM_TILE_FRAMES);
        let mut pixels = vec![egui::Color32::BLACK; width * band_bins];
        for x in 0..width {
            let frame_start = (start + x) * band_bins;
            let Some(column) = levels.get(frame_start..frame_start + band_bins) else {
                break;
            };
            for (bin, &level) in column.iter().enumerate() {
                let y = band_bins - 1 - bin;
                if let Some(pixel) = pixels.get_mut(y * width + x) {
                    *pixel = colour(level);
                }
            }
        }
        tiles.push(egui::ColorImage::new([width, band_bins], pixels));
        start += width;
    }
    tiles
}

/// The spectrogram colour scale (dark violet → orange → pale yellow, "inferno"-like), 256
/// steps from quiet to loud.
pub fn spectrogram_palette() -> [egui::Color32; 256] {
    const STOPS: [(f32, [u8; 3]); 8] = [
        (0.0, [6, 4, 18]),
        (0.15, [31, 12, 72]),
        (0.3, [85, 15, 109]),
        (0.45, [136, 34, 106]),
        (0.6, [186, 54, 85]),
        (0.75, [227, 89, 51]),
        (0.88, [249, 142, 9]),
        (1.0, [252, 255, 164]),
    ];
    let mut palette = [egui::Color32::BLACK; 256];
    for (i, slot) in palette.iter_mut().enumerate() {
        let t = i as f32 / 255.0;
        let upper = STOPS
            .iter()
            .position(|(at, _)| *at >= t)
            .unwrap_or(STOPS.len() - 1);
        let lower = upper.saturating_sub(1);
        let ((t0, c0), (t1, c1)) = (STOPS[lower], STOPS[upper]);
        let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 0.0 };
        let mix = |a: u8, b: u8| (f32::from(a) + (f32::from(b) - f32::from(a)) * f).round() as u8;
        *slot = egui::Color32::from_rgb(mix(c0[0], c1[0]), mix(c0[1], c1[1]), mix(c0[2], c1[2]));
    }
    palette
}

/// Indexing keeps every core busy, and the window must still get its frames on time: the
/// worker thread runs at a lower scheduling priority (nice 9 on Linux), and so do the analysis
/// threads it starts, which inherit it. Nothing is lost when this fails; the work just
/// competes with the window on equal terms.
fn yield_to_the_window() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    // thread-priority maps 0..=99 onto nice 19..=-20: 23 is nice 9.
    let priority = ThreadPriorityValue::try_from(23u8).map(ThreadPriority::Crossplatform);
    if let Ok(priority) = priority
        && let Err(err) = thread_priority::set_current_thread_priority(priority)
    {
        tracing::debug!("could not lower the worker's priority: {err:?}");
    }
}
