//! The Listen page: a big press-to-listen button, the live level meter and a scrolling
//! spectrogram of what the microphone hears, the listening status, and a way to identify a
//! file instead.

use std::collections::VecDeque;
use std::time::Instant;

use egui::{Color32, RichText, TextureHandle, TextureOptions};

use crate::cancel::CancelToken;
use crate::capture::CaptureHandle;
use crate::gui::app::Action;
use crate::gui::{ACCENT, ERROR, WARM};
use crate::worker::JobId;

/// Columns of the scrolling spectrogram (7.5 s at 40 columns a second).
const LIVE_COLUMNS: usize = 300;

/// A listening session in progress.
pub struct ListenSession {
    /// The worker's listen job.
    pub job: JobId,
    /// Cancels it.
    pub cancel: CancelToken,
    /// When it started.
    pub started: Instant,
    /// Audio the worker has heard, seconds.
    pub heard_secs: f64,
    /// Identification attempts.
    pub attempts: usize,
    /// The best guess so far, not conclusive yet.
    pub best_guess: Option<(String, f64)>,
    /// The timeout of this session.
    pub timeout_secs: f64,
}

/// State of the Listen page.
pub struct ListenState {
    /// The session running now.
    pub session: Option<ListenSession>,
    /// How the last session ended, for the status line.
    pub last_outcome: Option<String>,
    /// A capture problem to show.
    pub error: Option<String>,
    /// The microphone: kept past the session until its thread reports that it stopped, so
    /// its last events (an error) are not lost.
    pub capture: Option<CaptureHandle>,
    /// The capture device in use (or last used).
    pub device_name: Option<String>,
    /// Its sample rate.
    pub sample_rate_hz: u32,
    /// Smoothed RMS level, dBFS.
    pub level_dbfs: f32,
    /// Recent peak, 0..=1.
    pub peak: f32,
    columns: VecDeque<Vec<u8>>,
    bins: usize,
    texture: Option<TextureHandle>,
    image_dirty: bool,
}

impl Default for ListenState {
    fn default() -> Self {
        Self {
            session: None,
            last_outcome: None,
            error: None,
            capture: None,
            device_name: None,
            sample_rate_hz: 0,
            level_dbfs: -100.0,
            peak: 0.0,
            columns: VecDeque::new(),
            bins: 0,
            texture: None,
            image_dirty: false,
        }
    }
}

impl ListenState {
    /// Whether a session is running.
    pub fn is_listening(&self) -> bool {
        self.session.is_some()
    }

    /// New level and spectrogram columns from the capture thread.
    pub fn push_level(&mut self, rms_dbfs: f32, peak: f32, columns: Vec<Vec<u8>>, bins: usize) {
        // Fast attack, slow release, like a VU meter.
        self.level_dbfs = if rms_dbfs > self.level_dbfs {
            rms_dbfs
        } else {
            self.level_dbfs * 0.7 + rms_dbfs * 0.3
        };
        self.peak = peak.max(self.peak * 0.85);
        if bins != self.bins {
            self.columns.clear();
            self.bins = bins;
        }
        for column in columns {
            if column.len() == bins {
                self.columns.push_back(column);
            }
        }
        while self.columns.len() > LIVE_COLUMNS {
            self.columns.pop_front();
        }
        self.image_dirty = true;
    }

    /// Clears the meter and the picture (a new session).
    pub fn reset_live_view(&mut self) {
        self.columns.clear();
        self.level_dbfs = -100.0;
        self.peak = 0.0;
        self.image_dirty = true;
    }

    fn live_texture(&mut self, ctx: &egui::Context) -> Option<&TextureHandle> {
        if self.image_dirty || self.texture.is_none() {
            self.image_dirty = false;
            let bins = self.bins.max(1);
            let palette = crate::worker::spectrogram_palette();
            let mut pixels = vec![palette[0]; LIVE_COLUMNS * bins];
            let offset = LIVE_COLUMNS - self.columns.len().min(LIVE_COLUMNS);
            for (x, column) in self.columns.iter().enumerate() {
                for (bin, &level) in column.iter().enumerate() {
                    let y = bins - 1 - bin.min(bins - 1);
                    if let Some(pixel) = pixels.get_mut(y * LIVE_COLUMNS + offset + x) {
                        *pixel = palette[usize::from(level)];
                    }
                }
            }
            let image = egui::ColorImage::new([LIVE_COLUMNS, bins], pixels);
            match &mut self.texture {
                Some(texture) => texture.set(image, TextureOptions::LINEAR),
                None => {
                    self.texture =
                        Some(ctx.load_texture("live-spectrogram", image, TextureOptions::LINEAR));
                }
            }
        }
        self.texture.as_ref()
    }
}

/// What the library allows the Listen page to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibraryStatus {
    /// Still opening, or songs to recognise.
    Usable,
    /// Open, without songs.
    Empty,
    /// The index could not be opened.
    Unavailable,
}

impl LibraryStatus {
    /// The status of `library`, whose index failed to open with `open_error` if so.
    pub fn of(library: &crate::gui::library_panel::LibraryState, open_error: Option<&str>) -> Self {
        if open_error.is_some() {
            Self::Unavailable
        } else if library.loaded && library.rows().is_empty() {
            Self::Empty
        } else {
            Self::Usable
        }
    }
}

/// The Listen page.
pub fn listen_ui(
    ui: &mut egui::Ui,
    state: &mut ListenState,
    busy_indexing: bool,
    library: LibraryStatus,
    actions: &mut Vec<Action>,
) {
    let listening = state.is_listening();
    ui.add_space(18.0);
    ui.vertical_centered(|ui| {
        let title = if listening {
            "Listening\u{2026}"
        } else {
            "What's playing?"
        };
        ui.label(RichText::new(title).size(26.0).strong());
        ui.add_space(14.0);
        let enabled = listening || library != LibraryStatus::Unavailable;
        let clicked = listen_button_ui(ui, listening, enabled);
        if clicked {
            actions.push(if listening {
                Action::StopListening
            } else {
                Action::StartListening
            });
        }
        ui.add_space(12.0);
        status_ui(ui, state, busy_indexing, library);
    });
    ui.add_space(14.0);
    level_meter_ui(ui, state.level_dbfs, state.peak, listening);
    ui.add_space(8.0);
    // Shrinks before the row below it would leave a small window.
    let height = (ui.available_height() - 70.0).clamp(40.0, 220.0);
    let ctx = ui.ctx().clone();
    egui::Frame::new()
        .fill(Color32::from_rgb(6, 4, 18))
        .corner_radius(egui::CornerRadius::same(10))
        .show(ui, |ui| {
            let size = egui::vec2(ui.available_width(), height);
            let has_columns = !state.columns.is_empty();
            match state.live_texture(&ctx) {
                Some(texture) if has_columns => {
                    ui.add(egui::Image::new((texture.id(), size)).corner_radius(10));
                }
                _ => {
                    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
                    ui.painter().text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        "The spectrogram of what the microphone hears appears here",
                        egui::FontId::proportional(14.0),
                        Color32::from_gray(120),
                    );
                }
            }
        });
    ui.add_space(10.0);
    ui.horizontal(|ui| {
        let device = state.device_name.as_deref().unwrap_or("the default input");
        let rate = if state.sample_rate_hz > 0 {
            format!(" at {:.1} kHz", f64::from(state.sample_rate_hz) / 1000.0)
        } else {
            String::new()
        };
        ui.label(RichText::new(format!("\u{1F3A4} {device}{rate}")).weak());
        if ui.small_button("Change input").clicked() {
            actions.push(Action::GoToSettings);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("\u{1F4C2} Identify a file\u{2026}").clicked() {
                actions.push(Action::PickClipToIdentify);
            }
            // Left out when the window is too narrow for it beside the buttons.
            if ui.available_width() > 210.0 {
                ui.label(RichText::new("or drop a clip on the window").weak());
            }
        });
    });
}

/// The round button; returns whether it was clicked.
fn listen_button_ui(ui: &mut egui::Ui, listening: bool, enabled: bool) -> bool {
    let radius = 78.0;
    let size = egui::vec2(radius * 2.0 + 60.0, radius * 2.0 + 60.0);
    let sense = if enabled {
        egui::Sense::click()
    } else {
        egui::Sense::hover()
    };
    let (rect, response) = ui.allocate_exact_size(size, sense);
    let label = if listening {
        "Stop listening"
    } else {
        "Start listening"
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, enabled, label));
    let painter = ui.painter_at(rect);
    let centre = rect.center();
    let time = ui.input(|i| i.time) as f32;
    if listening {
        // Rings that grow and fade while listening.
        for ring in 0..3 {
            let phase = (time * 0.8 + ring as f32 / 3.0).fract();
            let ring_radius = radius + 6.0 + phase * 26.0;
            let alpha = (1.0 - phase) * 0.5;
            painter.circle_stroke(
                centre,
                ring_radius,
                egui::Stroke::new(3.0, WARM.gamma_multiply(alpha)),
            );
        }
        ui.ctx().request_repaint();
    }
    let base = if !enabled {
        Color32::from_gray(90)
    } else if listening {
        WARM
    } else {
        ACCENT
    };
    let fill = if response.hovered() {
        base.gamma_multiply(1.15)
    } else {
        base
    };
    painter.circle_filled(centre, radius + 4.0, fill.gamma_multiply(0.25));
    painter.circle_filled(centre, radius, fill);
    // Keyboard focus (Tab; Space or Enter presses it) is drawn, as on egui's own buttons.
    if response.has_focus() {
        painter.circle_stroke(
            centre,
            radius + 8.0,
            egui::Stroke::new(3.0, ui.visuals().selection.stroke.color),
        );
    }
    let icon = if listening { "\u{25A0}" } else { "\u{1F3A4}" };
    painter.text(
        centre - egui::vec2(0.0, 14.0),
        egui::Align2::CENTER_CENTER,
        icon,
        egui::FontId::proportional(40.0),
        Color32::from_rgb(12, 18, 24),
    );
    painter.text(
        centre + egui::vec2(0.0, 30.0),
        egui::Align2::CENTER_CENTER,
        if listening { "Stop" } else { "Listen" },
        egui::FontId::proportional(19.0),
        Color32::from_rgb(12, 18, 24),
    );
    if response.hovered() && enabled {
        ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
    }
    response.clicked()
}

fn status_ui(ui: &mut egui::Ui, state: &ListenState, busy_indexing: bool, library: LibraryStatus) {
    if let Some(error) = &state.error {
        ui.colored_label(ERROR, format!("\u{26A0} {error}"));
    }
    match &state.session {
        Some(session) => {
            let remaining = (session.timeout_secs - session.heard_secs).max(0.0);
            ui.label(format!(
                "{:.0} s heard \u{00B7} {} attempt{} \u{00B7} giving up in {:.0} s",
                session.heard_secs,
                session.attempts,
                if session.attempts == 1 { "" } else { "s" },
                remaining
            ));
            if let Some((title, confidence)) = &session.best_guess {
                ui.label(
                    RichText::new(format!(
                        "Maybe \u{201c}{title}\u{201d}? ({:.0}%, not sure yet)",
                        confidence * 100.0
                    ))
                    .weak(),
                );
            }
            if busy_indexing {
                ui.label(RichText::new("Indexing waits until listening ends.").weak());
            }
            let fraction = (session.heard_secs / session.timeout_secs.max(1.0)).clamp(0.0, 1.0);
            if fraction > 0.0 {
                ui.add(
                    egui::ProgressBar::new(fraction as f32)
                        .desired_width(260.0)
                        .desired_height(6.0)
                        .fill(WARM.gamma_multiply(0.8)),
                );
            }
        }
        None => {
            if let Some(outcome) = &state.last_outcome {
                ui.label(RichText::new(outcome).size(15.0));
            } else if library == LibraryStatus::Unavailable {
                ui.label(
                    RichText::new(
                        "The index could not be opened (see the message above), so there is nothing to recognise against.",
                    )
                    .color(WARM),
                );
            } else if library == LibraryStatus::Empty {
                ui.label(
                    RichText::new(
                        "Your library is empty: add some music first, so there is something to recognise.",
                    )
                    .weak(),
                );
            } else {
                ui.label(RichText::new("Hold your device near the music and press Listen.").weak());
            }
        }
    }
}

fn level_meter_ui(ui: &mut egui::Ui, level_dbfs: f32, peak: f32, listening: bool) {
    let width = ui.available_width();
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, 12.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 6.0, ui.visuals().extreme_bg_color);
    if !listening {
        return;
    }
    // -60 dBFS .. 0 dBFS across the bar.
    let fraction = ((level_dbfs + 60.0) / 60.0).clamp(0.0, 1.0);
    let filled =
        egui::Rect::from_min_size(rect.min, egui::vec2(rect.width() * fraction, rect.height()));
    let colour = if level_dbfs > -6.0 {
        ERROR
    } else if level_dbfs > -18.0 {
        WARM
    } else {
        ACCENT
    };
    painter.rect_filled(filled, 6.0, colour);
    let peak_db = 20.0 * peak.max(1e-6).log10();
    let peak_x = rect.left() + rect.width() * ((peak_db + 60.0) / 60.0).clamp(0.0, 1.0);
    painter.line_segment(
        [
            egui::pos2(peak_x, rect.top()),
            egui::pos2(peak_x, rect.bottom()),
        ],
        egui::Stroke::new(2.0, ui.visuals().strong_text_color()),
    );
}
