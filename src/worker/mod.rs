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
//!
//! This file holds the thread, its request queue and the dispatch of each request; the jobs
//! behind the requests have a file each:
//!
//! ```text
//! protocol.rs     Request, Event and what they carry: the only types that cross threads
//! indexing.rs     IndexPaths: an indexing run, its progress, the requests served between songs
//! identify.rs     IdentifyFile / IdentifyClip: the answer and the evidence the plots show
//! listen.rs       Listen: a listening session, its attempts and how it ends
//! song_detail.rs  LoadSongDetail: a song's peaks and the spectrogram of its audio file
//! ```

mod identify;
mod indexing;
mod listen;
pub mod protocol;
mod song_detail;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};

pub use identify::offset_histogram;
pub use protocol::{
    AudioChunk, Event, JobId, ListenOutcome, MatchReport, Request, SPECTROGRAM_TILE_FRAMES,
    SharedAudioLink, SongDetail, SongRow,
};
pub use song_detail::spectrogram_palette;

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::index::{OpenMode, StorageKind};
use crate::indexer::IndexSummary;
use crate::library::Library;

/// With no request for this long, the worker looks for songs other processes added or
/// removed (one query of SQLite's change counter when there are none); the default of
/// [`WorkerConfig::idle_check`].
const IDLE_CHECK: Duration = Duration::from_secs(2);

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
/// ([`IndexObserver::between_songs`](crate::indexer::IndexObserver::between_songs)), and the
/// requests that came meanwhile are served then.
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
