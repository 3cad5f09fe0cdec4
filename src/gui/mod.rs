//! The desktop app (eframe/egui): `audiofp` with no command, or `audiofp gui`.
//!
//! ```text
//! AudiofpApp (app.rs): view state only; drains worker events each frame, lays out the pages
//!   ├─ listen_panel.rs   big Listen button, level meter, live spectrogram, open/drop a clip
//!   ├─ results_panel.rs  best matches, match scatter + offset histogram, history
//!   ├─ library_panel.rs  virtualised song table, filter, sort, add, indexing progress, failures
//!   ├─ detail_panel.rs   one song: spectrogram texture + fingerprint peaks, zoomable in time
//!   └─ settings.rs       persisted settings (threshold, listen timeout, input device, theme)
//! worker (crate::worker) owns the Library; capture (crate::capture) owns the microphone.
//! ```
//!
//! The frame loop never blocks on disk, decoding, FFT or SQL: all of that runs on the worker.
//! Set `AUDIOFP_FRAME_STATS=1` to log frame-time statistics every few seconds, and
//! `AUDIOFP_RENDERER=wgpu` to draw with wgpu instead of OpenGL (glow).

pub mod app;
pub mod detail_panel;
pub mod library_panel;
pub mod listen_panel;
pub mod results_panel;
pub mod settings;

use anyhow::Context as _;
use egui::{Color32, CornerRadius, Stroke};

pub use app::AudiofpApp;

use crate::worker::WorkerConfig;

/// The accent colour (buttons, highlights, the aligned diagonal).
pub const ACCENT: Color32 = Color32::from_rgb(45, 212, 191);
/// A warm second colour (warnings, the listening pulse).
pub const WARM: Color32 = Color32::from_rgb(251, 146, 60);
/// Errors.
pub const ERROR: Color32 = Color32::from_rgb(248, 113, 113);

/// Arguments of `audiofp gui`.
#[derive(Debug, Default, clap::Args)]
pub struct GuiArgs {
    /// Audio files or folders to open: one file is identified, anything else is added to the
    /// library (like dropping them on the window).
    pub paths: Vec<std::path::PathBuf>,
}

/// Opens the app window and runs until it is closed.
pub fn run(cli: &crate::cli::Cli) -> anyhow::Result<()> {
    let storage = cli.storage()?;
    let mut config = WorkerConfig::new(storage);
    config.fingerprint_config = crate::cli::fingerprint_config()?;
    config.match_config = crate::cli::match_config()?;
    let open_paths = match &cli.command {
        Some(crate::cli::Command::Gui(args)) => args.paths.clone(),
        _ => Vec::new(),
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("audiofp")
            .with_app_id("audiofp")
            .with_inner_size([1180.0, 760.0])
            .with_min_inner_size([760.0, 520.0])
            .with_drag_and_drop(true),
        renderer: renderer_from_env(),
        ..Default::default()
    };
    eframe::run_native(
        "audiofp",
        options,
        Box::new(move |cc| {
            let mut app = AudiofpApp::new(cc, config)?;
            app.open_paths_when_ready(open_paths);
            Ok(Box::new(app))
        }),
    )
    .map_err(|err| anyhow::anyhow!("{err}"))
    .context("running the desktop app")
}

/// The renderer: OpenGL through glow by default (measured under Xvfb/llvmpipe: ~16 ms per
/// frame against ~55 ms for wgpu's OpenGL fallback), `AUDIOFP_RENDERER=wgpu` for wgpu.
fn renderer_from_env() -> eframe::Renderer {
    match std::env::var("AUDIOFP_RENDERER").as_deref() {
        Ok("wgpu") => eframe::Renderer::Wgpu,
        _ => eframe::Renderer::Glow,
    }
}

/// Keeps the mouse wheel over a plot for the plot. egui_plot pans (or zooms) with the wheel but
/// leaves the wheel's travel in the input, where an enclosing `ScrollArea`, which reads it
/// after its content, scrolls the page by it too. Call right after the plot's `show`, with its
/// response: while the pointer is on the plot (as egui_plot decides), the travel is used up.
pub(crate) fn keep_wheel_in_plot(ui: &egui::Ui, plot: &egui::Response) {
    if plot.contains_pointer() {
        ui.input_mut(|input| input.smooth_scroll_delta = egui::Vec2::ZERO);
    }
}

/// Applies the app's look: dark or light, rounded, roomy, with the accent colour.
pub fn apply_theme(ctx: &egui::Context, dark: bool) {
    let mut visuals = if dark {
        egui::Visuals::dark()
    } else {
        egui::Visuals::light()
    };
    if dark {
        visuals.panel_fill = Color32::from_rgb(22, 24, 31);
        visuals.window_fill = Color32::from_rgb(28, 31, 40);
        visuals.extreme_bg_color = Color32::from_rgb(14, 15, 20);
        visuals.faint_bg_color = Color32::from_rgb(27, 30, 38);
        visuals.widgets.noninteractive.bg_fill = Color32::from_rgb(30, 33, 43);
        visuals.widgets.inactive.bg_fill = Color32::from_rgb(38, 42, 54);
        visuals.widgets.inactive.weak_bg_fill = Color32::from_rgb(38, 42, 54);
        visuals.widgets.hovered.weak_bg_fill = Color32::from_rgb(50, 56, 72);
        visuals.widgets.noninteractive.fg_stroke.color = Color32::from_gray(214);
        visuals.widgets.inactive.fg_stroke.color = Color32::from_gray(222);
    } else {
        visuals.panel_fill = Color32::from_rgb(246, 247, 250);
        visuals.faint_bg_color = Color32::from_rgb(238, 240, 245);
    }
    visuals.selection.bg_fill = ACCENT.gamma_multiply(if dark { 0.45 } else { 0.35 });
    visuals.selection.stroke = Stroke::new(1.0, ACCENT);
    visuals.hyperlink_color = ACCENT;
    let radius = CornerRadius::same(6);
    visuals.widgets.noninteractive.corner_radius = radius;
    visuals.widgets.inactive.corner_radius = radius;
    visuals.widgets.hovered.corner_radius = radius;
    visuals.widgets.active.corner_radius = radius;
    visuals.widgets.open.corner_radius = radius;
    visuals.window_corner_radius = CornerRadius::same(10);
    ctx.set_visuals(visuals);
    ctx.all_styles_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(10.0, 5.0);
        style.spacing.interact_size.y = 26.0;
        style.spacing.slider_width = 240.0;
        use egui::{FontFamily, FontId, TextStyle};
        style.text_styles = [
            (
                TextStyle::Heading,
                FontId::new(22.0, FontFamily::Proportional),
            ),
            (TextStyle::Body, FontId::new(14.5, FontFamily::Proportional)),
            (
                TextStyle::Button,
                FontId::new(14.5, FontFamily::Proportional),
            ),
            (
                TextStyle::Small,
                FontId::new(11.5, FontFamily::Proportional),
            ),
            (
                TextStyle::Monospace,
                FontId::new(13.0, FontFamily::Monospace),
            ),
        ]
        .into();
    });
}

pub use crate::calendar::clock;

pub use crate::calendar::utc_date as date;

/// "just now", "5 min ago", "3 h ago", or the date, relative to `now_unix_secs`.
pub fn ago(unix_secs: i64, now_unix_secs: i64) -> String {
    let secs = (now_unix_secs - unix_secs).max(0);
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => date(unix_secs),
    }
}

/// A count with thousands separators: 100000 → "100,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(ago(100, 130), "just now");
        assert_eq!(ago(0, 7200), "2 h ago");
    }
}
