//! [`AudiofpApp`]: the app's view state and the frame loop.
//!
//! Each frame: drain the worker's and the capture thread's events into view state
//! ([`AudiofpApp::apply`]), handle dropped files, lay out the navigation, the status bar and
//! the current page, then run the [`Action`]s the page collected. Nothing in a frame touches
//! the disk beyond a `stat` of dropped paths; all real work is a [`Request`] to the worker.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, bounded};
use egui::{Color32, RichText};

use crate::cancel::CancelToken;
use crate::capture::{self, CaptureEvent, InputDevice};
use crate::gui::detail_panel::{self, DetailState};
use crate::gui::library_panel::{self, Failure, IndexJobView, LibraryState};
use crate::gui::listen_panel::{self, ListenSession, ListenState};
use crate::gui::results_panel::{self, PendingIdentify, ResultsState};
use crate::gui::settings::{self, HISTORY_LEN, HistoryEntry, Settings, SettingsView};
use crate::gui::{ACCENT, ERROR, WARM, apply_theme, clock, thousands};
use crate::index::unix_now;
use crate::indexer::{self, AUDIO_EXTENSIONS};
use crate::worker::{AudioChunk, Event, JobId, ListenOutcome, Request, WorkerConfig, WorkerHandle};

/// A file dialog that answers "cancelled" sooner than this never opened.
const DIALOG_NEVER_OPENED: Duration = Duration::from_millis(400);

/// The pages of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// The Listen button.
    Listen,
    /// The song table.
    Library,
    /// One song's spectrogram.
    Song,
    /// Identification results and history.
    Results,
    /// Preferences.
    Settings,
}

/// What a page asks the app to do, run at the end of the frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start a listening session.
    StartListening,
    /// Stop it.
    StopListening,
    /// Open a file dialog to identify a clip.
    PickClipToIdentify,
    /// Open a folder dialog to index.
    PickFolderToIndex,
    /// Open a file dialog to index files.
    PickFilesToIndex,
    /// Cancel the indexing jobs.
    CancelIndexing,
    /// Cancel the pending identification.
    CancelIdentify,
    /// Select a song in the table.
    SelectSong(i64),
    /// Show a song's page.
    OpenSong(i64),
    /// Show the page of the song an answer named, if the library still holds that song (the
    /// same content: an answer may come from another index, or a song removed since).
    OpenAnswer {
        /// The song id the answer gave.
        song_id: i64,
        /// The answered song's content hash (unknown for history saved by older versions).
        content_hash: Option<String>,
    },
    /// Ask whether to remove a song.
    AskRemove(i64),
    /// Remove a song (confirmed).
    RemoveSong(i64),
    /// Index a dropped file instead of identifying it.
    IndexInstead(PathBuf),
    /// Show the Library page.
    GoToLibrary,
    /// Show the Settings page.
    GoToSettings,
    /// The match threshold changed.
    ThresholdChanged,
    /// Dark/light changed.
    ThemeChanged,
    /// List the input devices again.
    RefreshDevices,
    /// Forget the history.
    ClearHistory,
    /// Hide the notice banner.
    DismissNotice,
}

/// What a file dialog returned.
enum DialogOutcome {
    Index(Vec<PathBuf>),
    Identify(PathBuf),
}

/// Which file dialog to open.
#[derive(Clone, Copy)]
enum DialogKind {
    Folder,
    Files,
    Clip,
}

/// A banner under the title: what happened with a drop, an error.
struct Notice {
    text: String,
    is_error: bool,
    action: Option<(String, Action)>,
}

/// Whether the index is open.
enum IndexState {
    Opening,
    Open,
    Failed(String),
}

impl IndexState {
    /// Why the index could not be opened, if it could not.
    fn failure(&self) -> Option<&str> {
        match self {
            Self::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The desktop app.
pub struct AudiofpApp {
    worker: WorkerHandle,
    /// Persisted settings.
    pub settings: Settings,
    page: Page,
    next_job: JobId,
    library: LibraryState,
    detail: DetailState,
    listen: ListenState,
    results: ResultsState,
    settings_view: SettingsView,
    index_state: IndexState,
    notice: Option<Notice>,
    /// The open file dialog's answer, and whether it failed to open at all.
    dialog: Option<Receiver<(Option<DialogOutcome>, bool)>>,
    devices: Option<Receiver<Result<Vec<InputDevice>, crate::capture::CaptureError>>>,
    frame_stats: Option<FrameStats>,
    waker_installed: bool,
    theme_applied: Option<bool>,
    unseen_result: bool,
    /// Paths from the command line, opened once the index is open.
    open_at_start: Vec<PathBuf>,
}

impl AudiofpApp {
    /// The app as eframe creates it: settings from eframe's storage, a worker on `config`.
    pub fn new(cc: &eframe::CreationContext<'_>, config: WorkerConfig) -> anyhow::Result<Self> {
        let mut settings = cc
            .storage
            .and_then(|storage| eframe::get_value::<Settings>(storage, settings::STORAGE_KEY))
            .unwrap_or_default();
        // As everywhere else, the environment beats what was saved: `MATCH_THRESHOLD=0.95
        // audiofp` starts at 0.95 (and Settings shows it).
        if std::env::var_os("MATCH_THRESHOLD").is_some() {
            settings.match_threshold = config.match_config.threshold;
        }
        let mut app = Self::with_settings(config, settings)?;
        let ctx = cc.egui_ctx.clone();
        app.worker.waker().set(move || ctx.request_repaint());
        app.waker_installed = true;
        Ok(app)
    }

    /// The app with explicit settings (tests; no eframe needed).
    pub fn with_settings(config: WorkerConfig, settings: Settings) -> std::io::Result<Self> {
        let location = match &config.storage {
            crate::index::StorageKind::Sqlite(path) => path.display().to_string(),
            crate::index::StorageKind::Memory => "memory (gone when the app closes)".to_string(),
        };
        let worker = WorkerHandle::spawn(config)?;
        worker.send(Request::SetMatchThreshold {
            threshold: settings.match_threshold,
        });
        let frame_stats = std::env::var("AUDIOFP_FRAME_STATS")
            .is_ok_and(|v| !v.is_empty() && v != "0")
            .then(FrameStats::default);
        Ok(Self {
            worker,
            settings,
            page: Page::Listen,
            next_job: 1,
            library: LibraryState::default(),
            detail: DetailState::default(),
            listen: ListenState::default(),
            results: ResultsState::default(),
            settings_view: SettingsView {
                devices: None,
                index_location: location,
            },
            index_state: IndexState::Opening,
            notice: None,
            dialog: None,
            devices: None,
            frame_stats,
            waker_installed: false,
            theme_applied: None,
            unseen_result: false,
            open_at_start: Vec::new(),
        })
    }

    /// Opens `paths` as if dropped on the window, once the index is open.
    pub fn open_paths_when_ready(&mut self, paths: Vec<PathBuf>) {
        self.open_at_start = paths;
    }

    /// The page on screen.
    pub fn page(&self) -> Page {
        self.page
    }

    /// Shows a page.
    pub fn set_page(&mut self, page: Page) {
        self.page = page;
        if page == Page::Results {
            self.unseen_result = false;
        }
        if page == Page::Settings && self.settings_view.devices.is_none() && self.devices.is_none()
        {
            self.refresh_devices();
        }
    }

    /// The Library page's state (the song list).
    pub fn library(&self) -> &LibraryState {
        &self.library
    }

    /// The Library page's state, mutable (tests, filters).
    pub fn library_mut(&mut self) -> &mut LibraryState {
        &mut self.library
    }

    /// The Results page's state.
    pub fn results(&self) -> &ResultsState {
        &self.results
    }

    /// The Song page's state.
    pub fn detail(&self) -> &DetailState {
        &self.detail
    }

    /// The Listen page's state.
    pub fn listen(&self) -> &ListenState {
        &self.listen
    }

    /// Whether indexing jobs are running or queued.
    pub fn is_indexing(&self) -> bool {
        !self.library.jobs.is_empty()
    }

    /// Whether the index is open and the song list has arrived.
    pub fn is_ready(&self) -> bool {
        matches!(self.index_state, IndexState::Open) && self.library.loaded
    }

    /// The job the worker is busy with that requests wait for: `"listening"`. (An indexing
    /// run serves them between songs.)
    fn worker_busy_with(&self) -> Option<&'static str> {
        self.listen.is_listening().then_some("listening")
    }

    /// A long job ended: what the pending identification waits for now.
    fn update_pending_wait(&mut self) {
        let busy = self.worker_busy_with();
        if let Some(pending) = &mut self.results.pending {
            pending.queued_behind = busy;
        }
    }

    /// Takes a song that is no longer in the library off the list and, if it is open, off
    /// the Song page.
    fn forget_song(&mut self, song_id: i64) {
        self.library.remove_row(song_id);
        if self.detail.song_id == Some(song_id) {
            self.detail.clear();
            if self.page == Page::Song {
                self.page = Page::Library;
            }
        }
    }

    /// The reason the index could not be opened, if so.
    pub fn open_error(&self) -> Option<&str> {
        self.index_state.failure()
    }

    fn new_job(&mut self) -> JobId {
        let job = self.next_job;
        self.next_job += 1;
        job
    }

    /// Indexes files and folders (what "Add folder" and dropping folders do).
    pub fn index_paths(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let job = self.new_job();
        let cancel = CancelToken::new();
        self.worker.send(Request::IndexPaths {
            job,
            paths,
            cancel: cancel.clone(),
        });
        self.library.jobs.push_back(IndexJobView {
            job,
            cancel,
            started: Instant::now(),
            total: 0,
            done: 0,
            indexed: 0,
            skipped: 0,
            failed: 0,
            current: None,
        });
        self.library.last_summary = None;
    }

    /// Identifies an audio file (what dropping one file does).
    pub fn identify_path(&mut self, path: PathBuf) {
        if let Some(pending) = self.results.pending.take() {
            pending.cancel.cancel();
        }
        let job = self.new_job();
        let cancel = CancelToken::new();
        let label = file_label(&path);
        self.worker.send(Request::IdentifyFile {
            job,
            path,
            cancel: cancel.clone(),
        });
        self.results.pending = Some(PendingIdentify {
            job,
            label,
            started: Instant::now(),
            cancel,
            queued_behind: self.worker_busy_with(),
        });
        self.results.error = None;
        self.set_page(Page::Results);
    }

    /// Starts listening with the microphone chosen in the settings.
    pub fn start_listening(&mut self) {
        if self.listen.is_listening() {
            return;
        }
        let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(1024);
        let capture = match capture::start(
            self.settings.input_device.clone(),
            chunk_tx,
            self.worker.waker().clone(),
        ) {
            Ok(capture) => capture,
            Err(err) => {
                self.listen.error = Some(format!("Cannot start recording: {err}"));
                return;
            }
        };
        self.start_listening_from(chunk_rx, Some(capture));
    }

    /// Starts a listening session on any audio source (tests feed samples here).
    pub fn start_listening_from(
        &mut self,
        chunks: Receiver<AudioChunk>,
        capture: Option<capture::CaptureHandle>,
    ) {
        let job = self.new_job();
        let cancel = CancelToken::new();
        let timeout_secs = self.settings.listen_timeout_secs;
        self.worker.send(Request::Listen {
            job,
            chunks,
            timeout_secs,
            cancel: cancel.clone(),
        });
        self.listen.reset_live_view();
        self.listen.error = None;
        self.listen.last_outcome = None;
        // A previous capture still closing is dropped (it stops by itself).
        self.listen.capture = capture;
        self.listen.session = Some(ListenSession {
            job,
            cancel,
            started: Instant::now(),
            heard_secs: 0.0,
            attempts: 0,
            best_guess: None,
            timeout_secs,
        });
    }

    fn stop_listening(&mut self) {
        if let Some(session) = &self.listen.session {
            session.cancel.cancel();
        }
        if let Some(capture) = &mut self.listen.capture {
            capture.stop();
        }
    }

    fn refresh_devices(&mut self) {
        self.settings_view.devices = None;
        match capture::list_input_devices_in_background(self.worker.waker().clone()) {
            Ok(rx) => self.devices = Some(rx),
            Err(err) => {
                self.settings_view.devices = Some(Err(capture::CaptureError::Device(format!(
                    "Cannot list the input devices: {err}"
                ))))
            }
        }
    }

    fn open_dialog(&mut self, kind: DialogKind) {
        if self.dialog.is_some() {
            return;
        }
        let (tx, rx) = bounded(1);
        let waker = self.worker.waker().clone();
        let spawned = std::thread::Builder::new()
            .name("audiofp-file-dialog".to_string())
            .spawn(move || {
                let opened = Instant::now();
                let audio = rfd::FileDialog::new().add_filter("Audio", AUDIO_EXTENSIONS);
                let outcome = match kind {
                    DialogKind::Folder => rfd::FileDialog::new()
                        .set_title("Add a music folder")
                        .pick_folder()
                        .map(|folder| DialogOutcome::Index(vec![folder])),
                    DialogKind::Files => audio
                        .set_title("Add music files")
                        .pick_files()
                        .map(DialogOutcome::Index),
                    DialogKind::Clip => audio
                        .set_title("Identify a clip")
                        .pick_file()
                        .map(DialogOutcome::Identify),
                };
                // Nobody cancels a dialog this fast: it never opened (on Linux, rfd finds
                // neither the desktop portal nor zenity and says so only in a log line).
                let never_opened = outcome.is_none() && opened.elapsed() < DIALOG_NEVER_OPENED;
                // The app may have closed while the dialog was open.
                tx.send((outcome, never_opened)).ok();
                waker.wake();
            });
        match spawned {
            Ok(_) => self.dialog = Some(rx),
            Err(err) => self.show_error(format!("Cannot open a file dialog: {err}")),
        }
    }

    fn show_error(&mut self, text: String) {
        tracing::warn!("{text}");
        self.notice = Some(Notice {
            text,
            is_error: true,
            action: None,
        });
    }

    /// Takes down the banner if its button is `is_stale` (the job it offers to change ended).
    fn clear_notice_for(&mut self, is_stale: impl Fn(&Action) -> bool) {
        if self
            .notice
            .as_ref()
            .is_some_and(|n| !n.is_error && n.action.as_ref().is_some_and(|(_, a)| is_stale(a)))
        {
            self.notice = None;
        }
    }

    fn show_info(&mut self, text: String, action: Option<(String, Action)>) {
        self.notice = Some(Notice {
            text,
            is_error: false,
            action,
        });
    }

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

    /// Shows a song's page, loading it unless it is the page already shown. With
    /// `content_hash`, the song must still have that content (see [`Action::OpenAnswer`]).
    fn open_song(&mut self, song_id: i64, content_hash: Option<String>) {
        self.library.selected = Some(song_id);
        let same_content = content_hash
            .as_deref()
            .is_none_or(|hash| self.detail.loaded_content_hash() == Some(hash));
        let already = self.detail.song_id == Some(song_id)
            && (self.detail.loading || self.detail.is_loaded())
            && self.detail.failure().is_none()
            && same_content;
        if !already {
            self.detail.begin(song_id);
            self.worker.send(Request::LoadSongDetail {
                song_id,
                content_hash,
            });
        }
        self.set_page(Page::Song);
    }

    fn push_history(&mut self, entry: HistoryEntry) {
        self.settings.history.insert(0, entry);
        self.settings.history.truncate(HISTORY_LEN);
    }

    /// Drains the worker, capture, dialog and device channels.
    fn drain_events(&mut self) {
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

    /// Dropped files: one audio file is identified, folders or several files are indexed;
    /// a banner says which and offers the other choice.
    fn handle_drop(&mut self, paths: Vec<PathBuf>) {
        let [single] = paths.as_slice() else {
            if paths.is_empty() {
                return;
            }
            let count = paths.len();
            self.index_paths(paths);
            self.set_page(Page::Library);
            self.show_info(
                format!("Adding {count} dropped items to your library."),
                Some(("Cancel".to_string(), Action::CancelIndexing)),
            );
            return;
        };
        if single.is_dir() {
            let name = file_label(single);
            self.index_paths(paths);
            self.set_page(Page::Library);
            self.show_info(
                format!("Adding the folder \u{201c}{name}\u{201d} to your library."),
                Some(("Cancel".to_string(), Action::CancelIndexing)),
            );
        } else {
            let single = single.clone();
            let name = file_label(&single);
            self.identify_path(single.clone());
            self.show_info(
                format!("Identifying \u{201c}{name}\u{201d}."),
                Some((
                    "Add it to the library instead".to_string(),
                    Action::IndexInstead(single),
                )),
            );
        }
    }

    fn run_action(&mut self, action: Action) {
        match action {
            Action::StartListening => self.start_listening(),
            Action::StopListening => self.stop_listening(),
            Action::PickClipToIdentify => self.open_dialog(DialogKind::Clip),
            Action::PickFolderToIndex => self.open_dialog(DialogKind::Folder),
            Action::PickFilesToIndex => self.open_dialog(DialogKind::Files),
            Action::CancelIndexing => {
                for job in &self.library.jobs {
                    job.cancel.cancel();
                }
                self.notice = None;
            }
            Action::CancelIdentify => {
                if let Some(pending) = self.results.pending.take() {
                    pending.cancel.cancel();
                }
            }
            Action::SelectSong(song_id) => self.library.selected = Some(song_id),
            Action::OpenSong(song_id) => self.open_song(song_id, None),
            Action::OpenAnswer {
                song_id,
                content_hash,
            } => self.open_song(song_id, content_hash),
            Action::AskRemove(song_id) => self.library.ask_remove(song_id),
            Action::RemoveSong(song_id) => self.worker.send(Request::Remove { song_id }),
            Action::IndexInstead(path) => {
                if let Some(pending) = self.results.pending.take() {
                    pending.cancel.cancel();
                }
                self.index_paths(vec![path]);
                self.set_page(Page::Library);
                self.notice = None;
            }
            Action::GoToLibrary => self.set_page(Page::Library),
            Action::GoToSettings => self.set_page(Page::Settings),
            Action::ThresholdChanged => self.worker.send(Request::SetMatchThreshold {
                threshold: self.settings.match_threshold,
            }),
            Action::ThemeChanged => self.theme_applied = None,
            Action::RefreshDevices => self.refresh_devices(),
            Action::ClearHistory => self.settings.history.clear(),
            Action::DismissNotice => self.notice = None,
        }
    }

    /// One frame: events, drops, layout, actions. `eframe::App::ui` calls this; tests call
    /// it through `egui_kittest`.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        let frame_started = Instant::now();
        if !self.waker_installed {
            let ctx = ui.ctx().clone();
            self.worker.waker().set(move || ctx.request_repaint());
            self.waker_installed = true;
        }
        if self.theme_applied != Some(self.settings.dark_mode) {
            apply_theme(ui.ctx(), self.settings.dark_mode);
            self.theme_applied = Some(self.settings.dark_mode);
        }
        self.drain_events();
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        self.handle_drop(dropped);
        if !self.open_at_start.is_empty() && self.is_ready() {
            let paths = std::mem::take(&mut self.open_at_start);
            self.handle_drop(paths);
        }
        self.shortcuts(ui);

        let mut actions = Vec::new();
        self.layout_ui(ui, &mut actions);
        for action in actions {
            self.run_action(action);
        }
        if self.results.pending.is_some() {
            // The elapsed-time label ticks.
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        if let Some(stats) = &mut self.frame_stats {
            stats.record(frame_started.elapsed(), !self.library.jobs.is_empty());
        }
    }

    /// Ctrl+1..4: the pages; Ctrl+L: listen / stop.
    fn shortcuts(&mut self, ui: &egui::Ui) {
        use egui::{Key, Modifiers};
        let pressed = |key| ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, key));
        if pressed(Key::Num1) {
            self.set_page(Page::Listen);
        }
        if pressed(Key::Num2) {
            self.set_page(Page::Library);
        }
        if pressed(Key::Num3) {
            self.set_page(Page::Results);
        }
        if pressed(Key::Num4) {
            self.set_page(Page::Settings);
        }
        if pressed(Key::L) {
            if self.listen.is_listening() {
                self.stop_listening();
            } else {
                self.start_listening();
            }
        }
    }

    fn layout_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let dark = self.settings.dark_mode;
        let sidebar_fill = if dark {
            Color32::from_rgb(16, 17, 23)
        } else {
            Color32::from_rgb(232, 235, 242)
        };
        egui::Panel::left("navigation")
            .resizable(false)
            .exact_size(200.0)
            .frame(
                egui::Frame::new()
                    .fill(sidebar_fill)
                    .inner_margin(egui::Margin::symmetric(12, 16)),
            )
            .show(ui, |ui| self.navigation_ui(ui));
        egui::Panel::bottom("status")
            .frame(
                egui::Frame::new()
                    .fill(sidebar_fill)
                    .inner_margin(egui::Margin::symmetric(12, 5)),
            )
            .show(ui, |ui| self.status_bar_ui(ui, actions));
        if let Some(notice) = &self.notice {
            let colour = if notice.is_error { ERROR } else { ACCENT };
            egui::Panel::top("notice")
                .frame(
                    egui::Frame::new()
                        .fill(colour.gamma_multiply(0.18))
                        .inner_margin(egui::Margin::symmetric(16, 8)),
                )
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        let icon = if notice.is_error {
                            "\u{26A0}"
                        } else {
                            "\u{2139}"
                        };
                        ui.label(RichText::new(icon).color(colour));
                        // Room kept for the buttons, so that a long message wraps instead
                        // of pushing them out of the window.
                        let action_width = notice
                            .action
                            .as_ref()
                            .map_or(0.0, |(label, _)| 8.0 * label.chars().count() as f32 + 30.0);
                        let text_width = (ui.available_width() - action_width - 90.0).max(120.0);
                        ui.scope(|ui| {
                            ui.set_max_width(text_width);
                            ui.add(egui::Label::new(&notice.text).wrap());
                        });
                        if let Some((label, action)) = &notice.action
                            && ui.button(label).clicked()
                        {
                            actions.push(action.clone());
                        }
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.small_button("Dismiss").clicked() {
                                actions.push(Action::DismissNotice);
                            }
                        });
                    });
                });
        }
        let central = egui::Frame::central_panel(ui.style()).inner_margin(egui::Margin::same(20));
        egui::CentralPanel::default()
            .frame(central)
            .show(ui, |ui| match self.page {
                Page::Listen => listen_panel::listen_ui(
                    ui,
                    &mut self.listen,
                    !self.library.jobs.is_empty(),
                    listen_panel::LibraryStatus::of(&self.library, self.index_state.failure()),
                    actions,
                ),
                Page::Library => library_panel::library_ui(
                    ui,
                    &mut self.library,
                    self.index_state.failure(),
                    actions,
                ),
                Page::Song => {
                    let row = self
                        .detail
                        .song_id
                        .and_then(|id| self.library.row(id))
                        .cloned();
                    let waiting_for = self.worker_busy_with();
                    detail_panel::detail_ui(
                        ui,
                        &mut self.detail,
                        row.as_ref(),
                        waiting_for,
                        actions,
                    );
                }
                Page::Results => results_panel::results_ui(
                    ui,
                    &mut self.results,
                    &self.settings.history,
                    actions,
                ),
                // Scrolls, so that every card stays reachable in a small window.
                Page::Settings => {
                    egui::ScrollArea::vertical()
                        .show(ui, |ui| {
                            settings::settings_ui(
                                ui,
                                &mut self.settings,
                                &self.settings_view,
                                actions,
                            )
                        })
                        .inner
                }
            });
        library_panel::remove_dialog_ui(ui, &mut self.library, actions);
        drop_overlay_ui(ui);
    }

    fn navigation_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            logo_ui(ui);
            ui.vertical(|ui| {
                ui.label(RichText::new("audiofp").size(22.0).strong());
                ui.label(RichText::new("music recognition").small().weak());
            });
        });
        ui.add_space(22.0);
        let song_count = self.library.rows().len();
        let mut items = vec![
            (Page::Listen, "\u{1F3A4}", "Listen", String::new()),
            (
                Page::Library,
                "\u{1F4DA}",
                "Library",
                if song_count > 0 {
                    thousands(song_count)
                } else {
                    String::new()
                },
            ),
        ];
        if self.detail.song_id.is_some() {
            items.push((Page::Song, "\u{1F3B5}", "Song", String::new()));
        }
        items.push((
            Page::Results,
            "\u{2728}",
            "Results",
            if self.unseen_result {
                "new".to_string()
            } else {
                String::new()
            },
        ));
        items.push((Page::Settings, "\u{2699}", "Settings", String::new()));
        for (page, icon, label, badge) in items {
            let shortcut = match page {
                Page::Listen => "Ctrl+1; Ctrl+L listens",
                Page::Library => "Ctrl+2",
                Page::Results => "Ctrl+3",
                Page::Settings => "Ctrl+4",
                Page::Song => "",
            };
            if nav_item_ui(ui, self.page == page, (icon, label, shortcut), &badge) {
                self.set_page(page);
            }
            ui.add_space(2.0);
        }
        ui.with_layout(egui::Layout::bottom_up(egui::Align::LEFT), |ui| {
            if let Some(entry) = self.settings.history.first() {
                let text = match &entry.title {
                    Some(title) => format!("Last: {title}"),
                    None => "Last: no match".to_string(),
                };
                ui.label(RichText::new(text).small().weak());
            }
            if self.listen.is_listening() {
                ui.label(RichText::new("\u{2022} listening").small().color(WARM));
            }
        });
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.horizontal(|ui| {
            match &self.index_state {
                IndexState::Opening => {
                    ui.spinner();
                    ui.label(RichText::new("Opening the index\u{2026}").small());
                }
                IndexState::Failed(reason) => {
                    ui.label(
                        RichText::new(format!("\u{26A0} {reason}"))
                            .small()
                            .color(ERROR),
                    );
                }
                IndexState::Open => {
                    let hours = self.library.total_secs() / 3600.0;
                    ui.label(
                        RichText::new(format!(
                            "\u{2022} {} song{} \u{00B7} {:.1} h of music \u{00B7} {}",
                            thousands(self.library.rows().len()),
                            if self.library.rows().len() == 1 {
                                ""
                            } else {
                                "s"
                            },
                            hours,
                            self.settings_view.index_location
                        ))
                        .small()
                        .weak(),
                    );
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if let Some(job) = self.library.jobs.front() {
                    if ui.small_button("Cancel").clicked() {
                        actions.push(Action::CancelIndexing);
                    }
                    let fraction = if job.total == 0 {
                        0.0
                    } else {
                        job.done as f32 / job.total as f32
                    };
                    ui.add(
                        egui::ProgressBar::new(fraction)
                            .desired_width(140.0)
                            .desired_height(12.0)
                            .fill(ACCENT.gamma_multiply(0.8)),
                    );
                    ui.label(
                        RichText::new(format!(
                            "Indexing {}/{}",
                            thousands(job.done),
                            thousands(job.total)
                        ))
                        .small(),
                    );
                } else if let Some(session) = &self.listen.session {
                    ui.label(
                        RichText::new(format!("Listening \u{00B7} {}", clock(session.heard_secs)))
                            .small()
                            .color(WARM),
                    );
                }
            });
        });
    }
}

impl eframe::App for AudiofpApp {
    /// Also runs while the window is hidden (after a worker's repaint request), so events
    /// keep flowing into the view state.
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_events();
    }

    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let (Some(stats), Some(seconds)) = (&mut self.frame_stats, frame.info().cpu_usage) {
            stats.previous_frame_cpu_ms = Some(f64::from(seconds) * 1000.0);
        }
        self.frame_ui(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, settings::STORAGE_KEY, &self.settings);
    }

    /// Settings and the history of answers are a few kilobytes: saved every few seconds
    /// (eframe's default is 30 s), so that a logout or a kill loses little.
    fn auto_save_interval(&self) -> Duration {
        Duration::from_secs(5)
    }
}

impl Drop for AudiofpApp {
    fn drop(&mut self) {
        // Stop long work so the worker's thread can be joined quickly.
        for job in &self.library.jobs {
            job.cancel.cancel();
        }
        if let Some(pending) = &self.results.pending {
            pending.cancel.cancel();
        }
        self.stop_listening();
    }
}

fn file_label(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().to_string(),
    )
}

/// The app's mark: a disc with a little waveform.
fn logo_ui(ui: &mut egui::Ui) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(34.0, 34.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let centre = rect.center();
    painter.circle_filled(centre, 16.0, ACCENT);
    let dark = Color32::from_rgb(12, 18, 24);
    for (i, height) in [5.0, 11.0, 16.0, 9.0, 13.0, 6.0].iter().enumerate() {
        let x = centre.x - 8.75 + i as f32 * 3.5;
        painter.line_segment(
            [
                egui::pos2(x, centre.y - height / 2.0),
                egui::pos2(x, centre.y + height / 2.0),
            ],
            egui::Stroke::new(2.0, dark),
        );
    }
}

/// One navigation entry; returns whether it was clicked.
fn nav_item_ui(
    ui: &mut egui::Ui,
    selected: bool,
    (icon, label, shortcut): (&str, &str, &str),
    badge: &str,
) -> bool {
    let size = egui::vec2(ui.available_width(), 36.0);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
    let response = if shortcut.is_empty() {
        response
    } else {
        response.on_hover_text(shortcut)
    };
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, selected, label));
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    if selected {
        painter.rect_filled(rect, 8.0, ACCENT.gamma_multiply(0.22));
        painter.rect_filled(
            egui::Rect::from_min_size(rect.min + egui::vec2(0.0, 8.0), egui::vec2(3.0, 20.0)),
            2.0,
            ACCENT,
        );
    } else if response.hovered() {
        painter.rect_filled(rect, 8.0, visuals.widgets.hovered.weak_bg_fill);
    }
    // Keyboard focus (Tab) gets egui's focus outline, as built-in widgets do.
    if response.has_focus() {
        painter.rect_stroke(
            rect.shrink(1.0),
            8.0,
            visuals.selection.stroke,
            egui::StrokeKind::Inside,
        );
    }
    let text_colour = if selected {
        visuals.strong_text_color()
    } else {
        visuals.text_color()
    };
    painter.text(
        rect.left_center() + egui::vec2(14.0, 0.0),
        egui::Align2::LEFT_CENTER,
        icon,
        egui::FontId::proportional(17.0),
        if selected { ACCENT } else { text_colour },
    );
    painter.text(
        rect.left_center() + egui::vec2(44.0, 0.0),
        egui::Align2::LEFT_CENTER,
        label,
        egui::FontId::proportional(16.0),
        text_colour,
    );
    if !badge.is_empty() {
        painter.text(
            rect.right_center() - egui::vec2(10.0, 0.0),
            egui::Align2::RIGHT_CENTER,
            badge,
            egui::FontId::proportional(12.0),
            if badge == "new" {
                WARM
            } else {
                visuals.weak_text_color()
            },
        );
    }
    if response.hovered() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
    }
    response.clicked()
}

/// What dropping the files held over the window will do, as a headline and a line under it;
/// `None` when no files are held over it. One file is identified, unless it is not a supported
/// audio file (by its extension, as a folder walk decides): dropping that only shows an error.
fn drop_overlay_text(hovered: &[Option<PathBuf>]) -> Option<(String, &'static str)> {
    const RULE: &str = "one file: identify \u{00B7} folders or several files: add to the library";
    match hovered {
        [] => None,
        [Some(path)] if !path.is_dir() => {
            if indexer::has_audio_extension(path) {
                Some(("Drop to identify this clip".to_string(), RULE))
            } else {
                Some((
                    format!(
                        "\u{201c}{}\u{201d} is not a supported audio file",
                        file_label(path)
                    ),
                    "Dropping it would only show an error.",
                ))
            }
        }
        _ => Some(("Drop to add to your library".to_string(), RULE)),
    }
}

/// While files are held over the window: what dropping them will do, over the dimmed window.
/// The texts are labels in a foreground area, not painted text, so that screen readers
/// (AccessKit) read them too; the area lets clicks through.
fn drop_overlay_ui(ui: &mut egui::Ui) {
    let hovered: Vec<Option<PathBuf>> =
        ui.input(|i| i.raw.hovered_files.iter().map(|f| f.path.clone()).collect());
    let Some((headline, detail)) = drop_overlay_text(&hovered) else {
        return;
    };
    let ctx = ui.ctx().clone();
    let screen = ctx.content_rect();
    egui::Area::new(egui::Id::unique("drop-overlay"))
        .order(egui::Order::Foreground)
        .fixed_pos(screen.min)
        .interactable(false)
        .fade_in(false)
        .show(&ctx, |ui| {
            let painter = ui.painter();
            painter.rect_filled(screen, 0.0, Color32::from_black_alpha(190));
            painter.rect_stroke(
                screen.shrink(16.0),
                16.0,
                egui::Stroke::new(3.0, ACCENT),
                egui::StrokeKind::Inside,
            );
            // A column across the window, its first line about the window's centre.
            let column = egui::Rect::from_min_max(
                egui::pos2(screen.left() + 32.0, screen.center().y - 20.0),
                egui::pos2(screen.right() - 32.0, screen.bottom() - 32.0),
            );
            let layout = egui::Layout::top_down(egui::Align::Center);
            ui.scope_builder(
                egui::UiBuilder::new().max_rect(column).layout(layout),
                |ui| {
                    let headline = RichText::new(headline).size(30.0).color(Color32::WHITE);
                    ui.add(egui::Label::new(headline).selectable(false).wrap());
                    let detail = RichText::new(detail)
                        .size(15.0)
                        .color(Color32::from_gray(200));
                    ui.add(egui::Label::new(detail).selectable(false).wrap());
                },
            );
        });
}

/// Frame-time statistics (`AUDIOFP_FRAME_STATS=1`), logged to stderr every 5 seconds, and
/// for each whole indexing run when it ends: the app's own `ui()` work; the frame time as
/// eframe measures it (`ui()`, tessellation and painting, without waiting for the buffer
/// swap); and the interval from one frame to the next.
#[derive(Default)]
struct FrameStats {
    window: FrameSamples,
    indexing: Option<FrameSamples>,
    last_frame: Option<Instant>,
    /// eframe's figure for the previous frame, set at the start of each frame.
    previous_frame_cpu_ms: Option<f64>,
}

/// Frame samples over a span of time.
#[derive(Default)]
struct FrameSamples {
    started: Option<Instant>,
    ui_ms: Vec<f64>,
    frame_ms: Vec<f64>,
    interval_ms: Vec<f64>,
}

impl FrameSamples {
    fn push(&mut self, now: Instant, ui_ms: f64, frame_ms: Option<f64>, interval_ms: Option<f64>) {
        self.started.get_or_insert(now);
        self.ui_ms.push(ui_ms);
        self.frame_ms.extend(frame_ms);
        self.interval_ms.extend(interval_ms);
    }

    fn report(&mut self, what: &str, now: Instant) {
        let secs = self
            .started
            .map_or(0.0, |s| now.duration_since(s).as_secs_f64());
        let ui = summary(&mut self.ui_ms);
        let frame = summary(&mut self.frame_ms);
        let interval = summary(&mut self.interval_ms);
        eprintln!(
            "frame stats {what}: {} frames in {secs:.1} s; ui() median {:.2} ms, p95 {:.2} ms, \
             max {:.2} ms; frame time median {:.2} ms, p95 {:.2} ms, max {:.2} ms; \
             frame interval median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            self.ui_ms.len(),
            ui.0,
            ui.1,
            ui.2,
            frame.0,
            frame.1,
            frame.2,
            interval.0,
            interval.1,
            interval.2
        );
    }
}

impl FrameStats {
    fn record(&mut self, ui_time: Duration, indexing: bool) {
        let now = Instant::now();
        let ui_ms = ui_time.as_secs_f64() * 1000.0;
        let interval_ms = self
            .last_frame
            .map(|last| now.duration_since(last).as_secs_f64() * 1000.0);
        self.last_frame = Some(now);
        let frame_ms = self.previous_frame_cpu_ms.take();
        self.window.push(now, ui_ms, frame_ms, interval_ms);
        match (&mut self.indexing, indexing) {
            (Some(run), true) => run.push(now, ui_ms, frame_ms, interval_ms),
            (None, true) => {
                let mut run = FrameSamples::default();
                run.push(now, ui_ms, None, None);
                self.indexing = Some(run);
            }
            (Some(run), false) => {
                run.report("while indexing (whole run)", now);
                self.indexing = None;
            }
            (None, false) => {}
        }
        if self
            .window
            .started
            .is_some_and(|s| now.duration_since(s) >= Duration::from_secs(5))
        {
            let what = if indexing {
                "(last 5 s, indexing)"
            } else {
                "(last 5 s)"
            };
            self.window.report(what, now);
            self.window = FrameSamples::default();
        }
    }
}

/// (median, p95, max) of the values (sorts them).
fn summary(values: &mut [f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}
