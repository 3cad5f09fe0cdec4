//! The app's frame around the pages: the navigation column (logo, page links with their
//! badges), the status bar, and the overlay shown while files are dragged over the window.

use std::path::PathBuf;

use egui::{Color32, RichText};

use super::{Action, AudiofpApp, IndexState, Page, file_label};
use crate::gui::{ACCENT, ERROR, WARM, clock, thousands};
use crate::indexer;

impl AudiofpApp {
    pub(super) fn navigation_ui(&mut self, ui: &mut egui::Ui) {
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

    pub(super) fn status_bar_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
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
pub(super) fn drop_overlay_ui(ui: &mut egui::Ui) {
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
