//! The Song page: one song's spectrogram (textures made on the worker, shown as
//! `egui_plot::PlotImage` tiles) with its fingerprint peaks overlaid as points, zoomable and
//! pannable in time. When the audio file has moved, the stored peaks are shown alone with a
//! note. Above it, the other songs of the library that share its audio (a second copy, a
//! medley it is heard in), each a link to its page.

use egui::{RichText, TextureHandle, TextureOptions};
use egui_plot::{Plot, PlotImage, PlotPoint, Points};

use crate::gui::app::Action;
use crate::gui::{ACCENT, WARM, clock, date, keep_wheel_in_plot};
use crate::library::SharedAudioRelation;
use crate::worker::{SharedAudioLink, SongDetail, SongRow};

/// How much one point of vertical mouse-wheel travel zooms the spectrogram in time (a
/// notch, about 50 points, zooms by about 28 %).
const WHEEL_ZOOM_PER_POINT: f64 = 0.005;

/// State of the Song page.
#[derive(Default)]
pub struct DetailState {
    /// The song shown (or being loaded).
    pub song_id: Option<i64>,
    /// The loaded detail.
    detail: Option<Box<SongDetail>>,
    /// Textures of the spectrogram tiles (uploaded on the first frame that shows them).
    textures: Vec<TextureHandle>,
    /// Whether the peaks are drawn.
    show_peaks: bool,
    /// Whether a request is on its way.
    pub loading: bool,
    /// Why the song could not be loaded, if it could not.
    failure: Option<String>,
    /// Set when the plot should reset its view.
    reset_view: bool,
}

impl DetailState {
    /// Starts showing `song_id` (the caller requests the detail from the worker).
    pub fn begin(&mut self, song_id: i64) {
        if self.song_id != Some(song_id) {
            self.detail = None;
            self.textures.clear();
            self.reset_view = true;
        }
        self.song_id = Some(song_id);
        self.loading = true;
        self.failure = None;
        self.show_peaks = true;
    }

    /// The worker could not load `song_id`.
    pub fn set_failure(&mut self, song_id: i64, reason: String) {
        if self.song_id == Some(song_id) {
            self.loading = false;
            self.failure = Some(reason);
        }
    }

    /// Why the song shown could not be loaded, if it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The worker's answer.
    pub fn set_detail(&mut self, detail: Box<SongDetail>) {
        if Some(detail.song.song_id) != self.song_id {
            return;
        }
        self.textures.clear();
        self.detail = Some(detail);
        self.loading = false;
        self.reset_view = true;
    }

    /// Forgets the song (it was removed).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Whether a detail (spectrogram or peaks) is loaded.
    pub fn is_loaded(&self) -> bool {
        self.detail.is_some()
    }

    /// The content hash of the song whose page is loaded.
    pub fn loaded_content_hash(&self) -> Option<&str> {
        self.detail.as_ref().map(|d| d.content_hash.as_str())
    }

    /// Number of spectrogram tiles loaded (0 when only the peaks are shown).
    pub fn tile_count(&self) -> usize {
        self.detail.as_ref().map_or(0, |d| d.tiles.len())
    }
}

/// The id under which the spectrogram of song `song_id` keeps its view (zoom and pan).
pub fn spectrogram_plot_id(song_id: i64) -> egui::Id {
    egui::Id::unique(("song-spectrogram", song_id))
}

/// The Song page.
pub fn detail_ui(
    ui: &mut egui::Ui,
    state: &mut DetailState,
    row: Option<&SongRow>,
    waiting_for: Option<&str>,
    actions: &mut Vec<Action>,
) {
    let Some(song_id) = state.song_id else {
        ui.add_space(60.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("No song selected").size(18.0).strong());
            ui.label(RichText::new("Pick a song in the library to see its spectrogram.").weak());
        });
        return;
    };
    let song = row
        .cloned()
        .or_else(|| state.detail.as_ref().map(|d| d.song.clone()));
    ui.horizontal(|ui| {
        if ui.button("\u{2B05} Library").clicked() {
            actions.push(Action::GoToLibrary);
        }
        ui.add_space(6.0);
        if let Some(song) = &song {
            ui.vertical(|ui| {
                // Room for the buttons on the right: a long title is cut with an ellipsis
                // (the whole of it on hover).
                ui.set_max_width((ui.available_width() - 400.0).max(160.0));
                ui.add(egui::Label::new(RichText::new(&song.title).size(22.0).strong()).truncate());
                let mut parts = Vec::new();
                if !song.artist.is_empty() {
                    parts.push(song.artist.clone());
                }
                if !song.album.is_empty() {
                    parts.push(song.album.clone());
                }
                parts.push(clock(song.duration_secs));
                parts.push(format!("added {}", date(song.added_at_unix_secs)));
                ui.add(egui::Label::new(RichText::new(parts.join(" \u{00B7} ")).weak()).truncate());
            });
        }
        if state.failure.is_some() {
            return;
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("Remove from library\u{2026}").clicked() {
                actions.push(Action::AskRemove(song_id));
            }
            ui.checkbox(&mut state.show_peaks, "Fingerprint peaks");
            if ui.button("Reset zoom").clicked() {
                state.reset_view = true;
            }
        });
    });
    ui.add_space(6.0);

    if let Some(failure) = &state.failure {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.colored_label(WARM, format!("\u{26A0} {failure}"));
        });
        return;
    }
    let Some(detail) = &state.detail else {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.spinner();
            match waiting_for {
                // The worker does one thing at a time.
                Some(job) => ui.label(format!(
                    "Waiting for {job} to finish, then decoding the song\u{2026}"
                )),
                None => ui.label("Decoding the song and computing its spectrogram\u{2026}"),
            };
        });
        return;
    };
    if let Some(note) = &detail.note {
        ui.colored_label(WARM, format!("\u{26A0} {note}"));
    }
    shared_audio_ui(ui, &detail.shared_audio, actions);
    if state.textures.len() != detail.tiles.len() {
        state.textures = detail
            .tiles
            .iter()
            .enumerate()
            .map(|(i, tile)| {
                ui.ctx().load_texture(
                    format!("spectrogram-{}-{i}", detail.song.song_id),
                    tile.clone(),
                    TextureOptions::LINEAR,
                )
            })
            .collect();
    }
    ui.label(
        RichText::new(format!(
            "{} fingerprint peaks \u{00B7} scroll or pinch to zoom in time, drag to pan, double-click to reset",
            detail.peaks.len()
        ))
        .small()
        .weak(),
    );

    let total_secs = (detail.num_frames.max(1) as f64) * detail.frame_secs;
    let peak_frame_secs = detail.peak_frame_secs;
    let top_hz = detail.band_start_hz + detail.band_bins as f64 * detail.bin_hz;
    let mut plot = Plot::new("song-spectrogram")
        .id(spectrogram_plot_id(song_id))
        .allow_zoom(egui::Vec2b::new(true, false))
        .allow_drag(egui::Vec2b::new(true, false))
        .allow_scroll(egui::Vec2b::new(true, false))
        .allow_boxed_zoom(false)
        .show_grid(false)
        .x_axis_label("time")
        .y_axis_label("frequency (Hz)")
        .x_axis_formatter(|mark, _| clock(mark.value))
        .default_x_bounds(0.0, total_secs.max(detail.song.duration_secs))
        .default_y_bounds(detail.band_start_hz, top_hz)
        .label_formatter(|hover| {
            let point = match hover {
                egui_plot::HoverPosition::NearDataPoint { position, .. }
                | egui_plot::HoverPosition::Elsewhere { position } => position,
            };
            Some(format!("{} \u{00B7} {:.0} Hz", clock(point.x), point.y))
        });
    if state.reset_view {
        plot = plot.reset();
        state.reset_view = false;
    }
    let textures = &state.textures;
    let show_peaks = state.show_peaks;
    let tile_secs = detail.tile_frames as f64 * detail.frame_secs;
    let band_hz = top_hz - detail.band_start_hz;
    // The mouse wheel zooms in time, as the hint says: the plot itself zooms only with Ctrl
    // (or a pinch) and pans with the wheel, and the wheel's vertical turn has nothing to pan
    // here (the frequency axis is fixed).
    let wheel_zoom = ui.input(|i| {
        if i.modifiers.command {
            1.0
        } else {
            (f64::from(i.smooth_scroll_delta.y) * WHEEL_ZOOM_PER_POINT).exp()
        }
    });
    let spectrogram = plot.show(ui, |plot_ui| {
        if wheel_zoom != 1.0 && plot_ui.response().hovered() {
            plot_ui.zoom_bounds_around_hovered(egui::vec2(wheel_zoom as f32, 1.0));
        }
        for (i, (texture, tile)) in textures.iter().zip(&detail.tiles).enumerate() {
            let width_secs = tile.size[0] as f64 * detail.frame_secs;
            let start_secs = i as f64 * tile_secs;
            let centre = PlotPoint::new(
                start_secs + width_secs / 2.0,
                detail.band_start_hz + band_hz / 2.0,
            );
            plot_ui.image(
                PlotImage::new(
                    format!("spectrogram {i}"),
                    texture.id(),
                    centre,
                    egui::vec2(width_secs as f32, band_hz as f32),
                )
                .allow_hover(false),
            );
        }
        if show_peaks && !detail.peaks.is_empty() {
            let points: Vec<[f64; 2]> = detail
                .peaks
                .iter()
                .map(|peak| {
                    [
                        f64::from(peak.frame) * peak_frame_secs,
                        detail.band_start_hz + (f64::from(peak.bin) + 0.5) * detail.bin_hz,
                    ]
                })
                .collect();
            let colour = if textures.is_empty() {
                ACCENT
            } else {
                egui::Color32::WHITE
            };
            plot_ui.points(
                Points::new("peaks", points)
                    .radius(1.8)
                    .color(colour)
                    .shape(egui_plot::MarkerShape::Circle)
                    .filled(true),
            );
        }
    });
    keep_wheel_in_plot(ui, &spectrogram.response);
}

/// "Also in the library: same audio as <song> \u{00B7} heard in <medley> from 0:10 ...", each
/// song a link to its page; nothing when no other song shares this one's audio.
fn shared_audio_ui(ui: &mut egui::Ui, links: &[SharedAudioLink], actions: &mut Vec<Action>) {
    if links.is_empty() {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new("Also in the library:").strong());
        for (i, link) in links.iter().enumerate() {
            if i > 0 {
                ui.label("\u{00B7}");
            }
            let (before, after) = match link.relation {
                SharedAudioRelation::SameAudio => ("same audio as", None),
                SharedAudioRelation::HeardIn(from) => ("heard in", Some(from)),
                SharedAudioRelation::Contains(from) => ("contains", Some(from)),
            };
            ui.label(before);
            if ui
                .link(&link.title)
                .on_hover_text(format!("Open song {}", link.song_id))
                .clicked()
            {
                actions.push(Action::OpenSong(link.song_id));
            }
            if let Some(from) = after {
                ui.label(format!("from {}", clock(from)));
            }
        }
    });
}
