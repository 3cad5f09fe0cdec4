//! [`AudiofpApp`]: the app's view state and the frame loop.
//!
//! Each frame: drain the worker's and the capture thread's events into view state
//! ([`AudiofpApp::apply`]), handle dropped files, lay out the navigation, the status bar and
//! the current page, then run the [`Action`]s the page collected. Nothing in a frame touches
//! the disk beyond a `stat` of dropped paths; all real work is a [`Request`] to the worker.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use egui::{Color32, RichText};

use crate::cancel::CancelToken;
use crate::capture::{self, InputDevice};
use crate::gui::detail_panel::{self, DetailState};
use crate::gui::library_panel::{self, IndexJobView, LibraryState};
use crate::gui::listen_panel::{self, ListenSession, ListenState};
use crate::gui::results_panel::{self, PendingIdentify, ResultsState};
use crate::gui::settings::{self, HISTORY_LEN, HistoryEntry, Settings, SettingsView};
use crate::gui::{ACCENT, ERROR, apply_theme};
use crate::indexer::AUDIO_EXTENSIONS;
use crate::worker::{AudioChunk, JobId, Request, WorkerConfig, WorkerHandle};

mod chrome;
mod events;
mod frame_stats;

use chrome::drop_overlay_ui;
use frame_stats::FrameStats;

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
