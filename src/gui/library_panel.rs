//! The Library page: every indexed song in a virtualised, sortable, filterable table (only
//! the visible rows are laid out, so 100,000 songs scroll smoothly), adding files and folders,
//! indexing progress with cancel, the files that failed and why, and removing a song.

use std::cmp::Ordering;
use std::path::PathBuf;
use std::time::Instant;

use egui::{Align, Layout, RichText, Sense};
use egui_extras::{Column, TableBuilder};

use crate::cancel::CancelToken;
use crate::gui::app::Action;
use crate::gui::{ACCENT, ERROR, WARM, clock, date, thousands};
use crate::worker::{JobId, SongRow};

/// The column the table is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Title, then artist.
    Title,
    /// Artist, then title.
    Artist,
    /// Duration.
    Duration,
    /// Date added.
    Added,
}

/// A running indexing job as the GUI sees it.
#[derive(Clone, Debug)]
pub struct IndexJobView {
    /// The job.
    pub job: JobId,
    /// Cancels it.
    pub cancel: CancelToken,
    /// When it was requested.
    pub started: Instant,
    /// Files in the job (0 until the worker has listed them).
    pub total: usize,
    /// Files done.
    pub done: usize,
    /// Songs stored.
    pub indexed: usize,
    /// Files skipped.
    pub skipped: usize,
    /// Files failed.
    pub failed: usize,
    /// The file finished last.
    pub current: Option<PathBuf>,
}

/// A file that could not be indexed.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Lower-cased keys of one row, computed once.
struct RowKeys {
    title: String,
    artist: String,
    haystack: String,
}

impl RowKeys {
    fn of(row: &SongRow) -> Self {
        let title = row.title.to_lowercase();
        let artist = row.artist.to_lowercase();
        let haystack = format!(
            "{title}\n{artist}\n{}\n{}",
            row.album.to_lowercase(),
            row.path.as_deref().unwrap_or_default().to_lowercase()
        );
        Self {
            title,
            artist,
            haystack,
        }
    }
}

/// State of the Library page.
pub struct LibraryState {
    rows: Vec<SongRow>,
    keys: Vec<RowKeys>,
    /// Indices into `rows`: filtered and sorted.
    view: Vec<usize>,
    filter: String,
    applied_filter: String,
    sort: SortKey,
    ascending: bool,
    view_dirty: bool,
    /// The selected song.
    pub selected: Option<i64>,
    /// Indexing jobs: the first runs, the others wait their turn on the worker.
    pub jobs: std::collections::VecDeque<IndexJobView>,
    /// Files that failed, newest last.
    pub failures: Vec<Failure>,
    /// A one-line summary of the last finished job.
    pub last_summary: Option<String>,
    /// Whether the song list has arrived once.
    pub loaded: bool,
    /// The song awaiting confirmation of its removal, and the frame the question appeared.
    confirm_remove: Option<(i64, String, Option<u64>)>,
}

impl Default for LibraryState {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            keys: Vec::new(),
            view: Vec::new(),
            filter: String::new(),
            applied_filter: String::new(),
            sort: SortKey::Added,
            ascending: false,
            view_dirty: true,
            selected: None,
            jobs: std::collections::VecDeque::new(),
            failures: Vec::new(),
            last_summary: None,
            loaded: false,
            confirm_remove: None,
        }
    }
}

impl LibraryState {
    /// Replaces the whole list.
    pub fn set_rows(&mut self, rows: Vec<SongRow>) {
        self.keys = rows.iter().map(RowKeys::of).collect();
        self.rows = rows;
        self.loaded = true;
        self.view_dirty = true;
        if let Some(selected) = self.selected
            && self.row(selected).is_none()
        {
            self.selected = None;
        }
    }

    /// Adds rows (new songs), keeping the current order and filter.
    pub fn append_rows(&mut self, rows: Vec<SongRow>) {
        for row in rows {
            if self
                .rows
                .iter()
                .rev()
                .take(64)
                .any(|r| r.song_id == row.song_id)
            {
                continue;
            }
            let keys = RowKeys::of(&row);
            let index = self.rows.len();
            let visible = self.matches_filter(&keys);
            self.rows.push(row);
            self.keys.push(keys);
            if visible && !self.view_dirty {
                let position = self
                    .view
                    .partition_point(|&other| self.compare(other, index) == Ordering::Less);
                self.view.insert(position, index);
            }
        }
    }

    /// Removes a song from the list.
    pub fn remove_row(&mut self, song_id: i64) {
        if let Some(index) = self.rows.iter().position(|r| r.song_id == song_id) {
            self.rows.remove(index);
            self.keys.remove(index);
            self.view_dirty = true;
        }
        if self.selected == Some(song_id) {
            self.selected = None;
        }
    }

    /// All songs, by id.
    pub fn rows(&self) -> &[SongRow] {
        &self.rows
    }

    /// One song.
    pub fn row(&self, song_id: i64) -> Option<&SongRow> {
        self.rows.iter().find(|r| r.song_id == song_id)
    }

    /// The number of rows that pass the filter.
    pub fn visible_count(&mut self) -> usize {
        self.refresh_view();
        self.view.len()
    }

    /// Moves the selection `delta` rows down the list as shown (up when negative), stopping at
    /// its ends; with nothing selected, selects the first row (the last, going up). The new
    /// selection's place in the list as shown.
    pub fn move_selection(&mut self, delta: isize) -> Option<usize> {
        self.refresh_view();
        let last = self.view.len().checked_sub(1)?;
        let current = self
            .selected
            .and_then(|id| self.view.iter().position(|&i| self.rows[i].song_id == id));
        let place = match current {
            Some(at) => at.saturating_add_signed(delta).min(last),
            None if delta < 0 => last,
            None => 0,
        };
        self.selected = Some(self.rows[self.view[place]].song_id);
        Some(place)
    }

    /// Total audio, seconds.
    pub fn total_secs(&self) -> f64 {
        // A fold from +0: an empty f64 sum is -0.0, shown as "-0.0 h".
        self.rows
            .iter()
            .fold(0.0, |total, r| total + r.duration_secs)
    }

    fn matches_filter(&self, keys: &RowKeys) -> bool {
        self.applied_filter
            .split_whitespace()
            .all(|word| keys.haystack.contains(word))
    }

    fn compare(&self, a: usize, b: usize) -> Ordering {
        let (Some(ra), Some(rb), Some(ka), Some(kb)) = (
            self.rows.get(a),
            self.rows.get(b),
            self.keys.get(a),
            self.keys.get(b),
        ) else {
            return Ordering::Equal;
        };
        let order = match self.sort {
            SortKey::Title => ka.title.cmp(&kb.title).then(ka.artist.cmp(&kb.artist)),
            SortKey::Artist => ka.artist.cmp(&kb.artist).then(ka.title.cmp(&kb.title)),
            SortKey::Duration => ra.duration_secs.total_cmp(&rb.duration_secs),
            SortKey::Added => ra
                .added_at_unix_secs
                .cmp(&rb.added_at_unix_secs)
                .then(ra.song_id.cmp(&rb.song_id)),
        };
        if self.ascending {
            order
        } else {
            order.reverse()
        }
    }

    fn refresh_view(&mut self) {
        let filter = self.filter.trim().to_lowercase();
        if filter != self.applied_filter {
            self.applied_filter = filter;
            self.view_dirty = true;
        }
        if !self.view_dirty {
            return;
        }
        let mut view: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.keys.get(i).is_some_and(|k| self.matches_filter(k)))
            .collect();
        view.sort_by(|&a, &b| self.compare(a, b));
        self.view = view;
        self.view_dirty = false;
    }

    fn set_sort(&mut self, key: SortKey) {
        if self.sort == key {
            self.ascending = !self.ascending;
        } else {
            self.sort = key;
            self.ascending = !matches!(key, SortKey::Added);
        }
        self.view_dirty = true;
    }

    /// Asks for confirmation before removing `song_id`.
    pub fn ask_remove(&mut self, song_id: i64) {
        if let Some(row) = self.row(song_id) {
            self.confirm_remove = Some((song_id, row.title.clone(), None));
        }
    }
}

/// The Library page.
/// The Library page; `open_error` is why the index could not be opened, if it could not
/// (nothing can be added then).
pub fn library_ui(
    ui: &mut egui::Ui,
    state: &mut LibraryState,
    open_error: Option<&str>,
    actions: &mut Vec<Action>,
) {
    state.refresh_view();
    ui.horizontal(|ui| {
        ui.heading("Your library");
        ui.add_space(8.0);
        let count = if state.view.len() == state.rows.len() {
            format!("{} songs", thousands(state.rows.len()))
        } else {
            format!(
                "{} of {} songs",
                thousands(state.view.len()),
                thousands(state.rows.len())
            )
        };
        ui.label(RichText::new(count).weak());
        ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
            // Nothing can be added to an index that could not be opened.
            let usable = open_error.is_none();
            let why = "The index could not be opened (see below).";
            if ui
                .add_enabled(usable, egui::Button::new("\u{1F4C1} Add folder\u{2026}"))
                .on_disabled_hover_text(why)
                .clicked()
            {
                actions.push(Action::PickFolderToIndex);
            }
            if ui
                .add_enabled(usable, egui::Button::new("\u{2795} Add files\u{2026}"))
                .on_disabled_hover_text(why)
                .clicked()
            {
                actions.push(Action::PickFilesToIndex);
            }
        });
    });
    ui.add_space(4.0);
    ui.horizontal(|ui| {
        let edit = egui::TextEdit::singleline(&mut state.filter)
            .hint_text("\u{1F50D} Filter by title, artist, album or path")
            .desired_width(f32::INFINITY);
        ui.add(edit);
    });
    state.refresh_view();
    ui.add_space(6.0);

    if let Some(job) = state.jobs.front() {
        index_progress_ui(ui, job, state.jobs.len() - 1, actions);
        ui.add_space(6.0);
    } else if let Some(summary) = &state.last_summary {
        ui.label(RichText::new(summary).weak());
    }
    if !state.failures.is_empty() {
        failures_ui(ui, state);
    }

    let selected_row = state.selected.and_then(|id| state.row(id).cloned());
    let selection_height = if selected_row.is_some() { 112.0 } else { 0.0 };
    let list_size = egui::vec2(
        ui.available_width(),
        (ui.available_height() - selection_height).max(80.0),
    );
    ui.allocate_ui_with_layout(list_size, Layout::top_down(Align::Min), |ui| {
        ui.set_min_height(list_size.y);
        if state.rows.is_empty() {
            let indexing = !state.jobs.is_empty();
            empty_library_ui(ui, state.loaded, indexing, open_error, actions);
        } else if state.view.is_empty() {
            ui.add_space(20.0);
            ui.vertical_centered(|ui| {
                ui.label(RichText::new("No song matches the filter.").weak());
            });
        } else {
            table_ui(ui, state, actions);
        }
    });
    if let Some(row) = &selected_row {
        ui.separator();
        selection_ui(ui, row, state, actions);
    }
}

fn index_progress_ui(
    ui: &mut egui::Ui,
    job: &IndexJobView,
    queued: usize,
    actions: &mut Vec<Action>,
) {
    egui::Frame::group(ui.style())
        .corner_radius(egui::CornerRadius::same(8))
        .inner_margin(egui::Margin::symmetric(12, 8))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            let fraction = if job.total == 0 {
                0.0
            } else {
                job.done as f32 / job.total as f32
            };
            ui.horizontal(|ui| {
                ui.spinner();
                let text = if job.total == 0 {
                    "Looking for audio files\u{2026}".to_string()
                } else {
                    format!(
                        "Indexing {} of {} \u{00B7} {} added \u{00B7} {} unchanged \u{00B7} {} failed",
                        thousands(job.done),
                        thousands(job.total),
                        thousands(job.indexed),
                        thousands(job.skipped),
                        thousands(job.failed)
                    )
                };
                ui.label(RichText::new(text).strong());
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if ui.button("Cancel").clicked() {
                        actions.push(Action::CancelIndexing);
                    }
                    let secs = job.started.elapsed().as_secs_f64();
                    if job.done > 0 && job.total > job.done {
                        let remaining = secs / job.done as f64 * (job.total - job.done) as f64;
                        ui.label(
                            RichText::new(format!("about {} left", clock(remaining.max(1.0))))
                                .weak(),
                        );
                    }
                });
            });
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_height(8.0)
                    .fill(ACCENT.gamma_multiply(0.85)),
            );
            let mut detail = job
                .current
                .as_ref()
                .map(|current| format!("\u{2026} {}", current.display()))
                .unwrap_or_default();
            if queued > 0 {
                detail.push_str(&format!("  (+{queued} more queued)"));
            }
            if !detail.is_empty() {
                ui.label(RichText::new(detail).small().weak());
            }
        });
}

fn failures_ui(ui: &mut egui::Ui, state: &mut LibraryState) {
    let title = RichText::new(format!(
        "\u{26A0} {} file{} could not be indexed",
        state.failures.len(),
        if state.failures.len() == 1 { "" } else { "s" }
    ))
    .color(ERROR);
    let mut clear = false;
    egui::CollapsingHeader::new(title)
        .id_salt("index-failures")
        .default_open(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("failure-list")
                .max_height(120.0)
                .show(ui, |ui| {
                    for failure in &state.failures {
                        ui.horizontal_wrapped(|ui| {
                            let name = failure.path.file_name().map_or_else(
                                || failure.path.display().to_string(),
                                |n| n.to_string_lossy().to_string(),
                            );
                            ui.label(RichText::new(name).strong());
                            ui.label(RichText::new(&failure.reason).weak());
                        });
                    }
                });
            if ui.button("Clear list").clicked() {
                clear = true;
            }
        });
    if clear {
        state.failures.clear();
    }
}

fn empty_library_ui(
    ui: &mut egui::Ui,
    loaded: bool,
    indexing: bool,
    open_error: Option<&str>,
    actions: &mut Vec<Action>,
) {
    ui.add_space(60.0);
    ui.vertical_centered(|ui| {
        if let Some(reason) = open_error {
            ui.label(RichText::new("\u{26A0}").size(48.0).color(WARM));
            ui.label(
                RichText::new("The index could not be opened")
                    .size(20.0)
                    .strong(),
            );
            ui.add(egui::Label::new(reason).wrap());
            ui.label(
                RichText::new(
                    "Nothing was changed in it. Start audiofp with another index \
                     (--db PATH or SQLITE_DATABASE_PATH), or move this file away.",
                )
                .weak(),
            );
            return;
        }
        if !loaded {
            ui.spinner();
            ui.label("Opening the index\u{2026}");
            return;
        }
        if indexing {
            // The first songs are on their way (the progress bar above says how far).
            ui.label(RichText::new("\u{1F3B5}").size(48.0).color(ACCENT));
            ui.label(RichText::new("Songs appear here as they are indexed").weak());
            return;
        }
        ui.label(RichText::new("\u{1F3B5}").size(48.0).color(ACCENT));
        ui.label(RichText::new("Your library is empty").size(20.0).strong());
        ui.label(
            RichText::new(
                "Drop music files or folders onto this window, or add them here. \
                 audiofp fingerprints each song so it can recognise it later.",
            )
            .weak(),
        );
        ui.add_space(10.0);
        if ui
            .add(egui::Button::new(
                RichText::new("Add a music folder\u{2026}").size(16.0),
            ))
            .clicked()
        {
            actions.push(Action::PickFolderToIndex);
        }
    });
}

/// Up and Down move the selection and Enter opens the selected song, when no widget has the
/// keyboard (a focused button takes Enter, the filter box takes the arrows). The row to
/// scroll to, if the selection moved.
fn keyboard_navigation(
    ui: &egui::Ui,
    state: &mut LibraryState,
    actions: &mut Vec<Action>,
) -> Option<usize> {
    if ui.memory(|memory| memory.focused().is_some()) {
        return None;
    }
    let (down, up, enter) = ui.input(|input| {
        (
            input.key_pressed(egui::Key::ArrowDown),
            input.key_pressed(egui::Key::ArrowUp),
            input.key_pressed(egui::Key::Enter),
        )
    });
    if enter && let Some(song_id) = state.selected {
        actions.push(Action::OpenSong(song_id));
    }
    match (down, up) {
        (true, false) => state.move_selection(1),
        (false, true) => state.move_selection(-1),
        _ => None,
    }
}

fn table_ui(ui: &mut egui::Ui, state: &mut LibraryState, actions: &mut Vec<Action>) {
    let scroll_to = keyboard_navigation(ui, state, actions);
    let mut sort_clicked = None;
    let row_height = 26.0;
    let sort_label = |key: SortKey, name: &str, state: &LibraryState| {
        if state.sort == key {
            format!(
                "{name} {}",
                if state.ascending {
                    "\u{23F6}"
                } else {
                    "\u{23F7}"
                }
            )
        } else {
            name.to_string()
        }
    };
    ui.style_mut().interaction.selectable_labels = false;
    let mut table = TableBuilder::new(ui)
        .id_salt("library-table")
        .striped(true)
        .resizable(true)
        .sense(Sense::click())
        .cell_layout(Layout::left_to_right(Align::Center))
        // The title takes what the other columns leave, recomputed every frame, so that the
        // table fits again when the window is made narrower (a resizable column would keep
        // the width it had and push the others out of sight).
        .column(
            Column::remainder()
                .at_least(160.0)
                .clip(true)
                .resizable(false),
        )
        .column(Column::initial(200.0).at_least(80.0).clip(true))
        .column(Column::initial(80.0).at_least(60.0))
        .column(Column::initial(110.0).at_least(90.0));
    if let Some(row) = scroll_to {
        table = table.scroll_to_row(row, None);
    }
    let headers = [
        (SortKey::Title, "Title"),
        (SortKey::Artist, "Artist"),
        (SortKey::Duration, "Length"),
        (SortKey::Added, "Added"),
    ];
    let labels: Vec<(SortKey, String)> = headers
        .iter()
        .map(|&(key, name)| (key, sort_label(key, name, state)))
        .collect();
    let view = &state.view;
    let rows = &state.rows;
    let selected = state.selected;
    table
        .header(30.0, |mut header| {
            for (key, label) in &labels {
                header.col(|ui| {
                    let text = RichText::new(label).strong();
                    if ui
                        .add(egui::Button::new(text).frame(false))
                        .on_hover_text("Sort")
                        .clicked()
                    {
                        sort_clicked = Some(*key);
                    }
                });
            }
        })
        .body(|body| {
            body.rows(row_height, view.len(), |mut table_row| {
                let Some(row) = view.get(table_row.index()).and_then(|&i| rows.get(i)) else {
                    return;
                };
                table_row.set_selected(selected == Some(row.song_id));
                table_row.col(|ui| {
                    ui.label(RichText::new(&row.title).strong());
                });
                table_row.col(|ui| {
                    ui.label(&row.artist);
                });
                table_row.col(|ui| {
                    ui.label(clock(row.duration_secs));
                });
                table_row.col(|ui| {
                    ui.label(RichText::new(date(row.added_at_unix_secs)).weak());
                });
                let response = table_row.response();
                if response.double_clicked() {
                    // The double click's first click selected the row it meant; while indexing
                    // (newest first) rows can move under the pointer before the second one, so
                    // that row is opened, not the one under the pointer now.
                    let meant = selected.unwrap_or(row.song_id);
                    actions.push(Action::OpenSong(meant));
                } else if response.clicked() {
                    actions.push(Action::SelectSong(row.song_id));
                }
                let song_id = row.song_id;
                response.context_menu(|ui| {
                    if ui.button("Show spectrogram").clicked() {
                        actions.push(Action::OpenSong(song_id));
                        ui.close();
                    }
                    if ui.button("Remove from library\u{2026}").clicked() {
                        actions.push(Action::AskRemove(song_id));
                        ui.close();
                    }
                });
            });
        });
    if let Some(key) = sort_clicked {
        state.set_sort(key);
    }
}

fn selection_ui(
    ui: &mut egui::Ui,
    row: &SongRow,
    state: &mut LibraryState,
    actions: &mut Vec<Action>,
) {
    // Text first, wrapping, then the buttons on their own line: side by side, a long path
    // ran under the buttons in a narrow window.
    ui.add(egui::Label::new(RichText::new(&row.title).size(17.0).strong()).wrap());
    let mut line = Vec::new();
    if !row.artist.is_empty() {
        line.push(row.artist.clone());
    }
    if !row.album.is_empty() {
        line.push(row.album.clone());
    }
    line.push(clock(row.duration_secs));
    line.push(format!("added {}", date(row.added_at_unix_secs)));
    ui.add(egui::Label::new(RichText::new(line.join(" \u{00B7} ")).weak()).wrap());
    if let Some(path) = &row.path {
        ui.add(egui::Label::new(RichText::new(path).small().weak()).wrap());
    }
    ui.horizontal(|ui| {
        if ui.button("Show spectrogram").clicked() {
            actions.push(Action::OpenSong(row.song_id));
        }
        if ui.button("Remove from library\u{2026}").clicked() {
            state.ask_remove(row.song_id);
        }
    });
}

/// The "remove this song?" dialog, on whichever page asked (library or song page).
pub fn remove_dialog_ui(ui: &mut egui::Ui, state: &mut LibraryState, actions: &mut Vec<Action>) {
    let Some((song_id, title, opened_frame)) = state.confirm_remove.clone() else {
        return;
    };
    // The click that opened the dialog must not count as a click outside it.
    let frame = ui.ctx().cumulative_frame_nr();
    let opened_frame = opened_frame.unwrap_or(frame);
    if let Some(confirm) = &mut state.confirm_remove {
        confirm.2 = Some(opened_frame);
    }
    let mut close = false;
    let modal = egui::Modal::new(egui::Id::unique("confirm-remove")).show(ui.ctx(), |ui| {
        ui.set_width(360.0);
        ui.label(
            RichText::new(format!("Remove \u{201c}{title}\u{201d} from the library?"))
                .size(16.0)
                .strong(),
        );
        ui.label(
            RichText::new(
                "Its fingerprint is deleted from the index; the audio file stays where it is.",
            )
            .weak(),
        );
        ui.add_space(10.0);
        ui.horizontal(|ui| {
            let remove =
                egui::Button::new(RichText::new("Remove song").color(egui::Color32::WHITE))
                    .fill(ERROR.gamma_multiply(0.85));
            if ui.add(remove).clicked() {
                actions.push(Action::RemoveSong(song_id));
                close = true;
            }
            if ui.button("Keep it").clicked() {
                close = true;
            }
        });
    });
    if close || (frame > opened_frame && modal.should_close()) {
        state.confirm_remove = None;
    }
}
