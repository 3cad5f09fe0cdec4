//! The Results page: the best matches of the last identification (title, artist, confidence,
//! where in the song, time taken), the match visualisation (clip time vs song time of every
//! hit with the aligned diagonal highlighted, and the histogram of offsets), and the history
//! of recent identifications. The mouse wheel over a plot moves that plot; elsewhere it
//! scrolls the page.

use std::collections::VecDeque;
use std::time::Instant;

use egui::{Color32, Rangef, RichText};
use egui_plot::{
    AxisHints, Bar, BarChart, GridInput, GridMark, Line, Plot, Points, uniform_grid_spacer,
};

use crate::cancel::CancelToken;
use crate::gui::app::Action;
use crate::gui::settings::HistoryEntry;
use crate::gui::{ACCENT, ERROR, WARM, ago, clock, keep_wheel_in_plot};
use crate::index::unix_now;
use crate::library::{Repeat, Tracklist};
use crate::worker::{JobId, MatchReport};

/// Full reports kept for the plots (the history keeps summaries only).
const REPORTS_KEPT: usize = 20;

/// An identification on its way.
#[derive(Clone, Debug)]
pub struct PendingIdentify {
    /// The job.
    pub job: JobId,
    /// What is identified.
    pub label: String,
    /// When it was requested.
    pub started: Instant,
    /// Cancels it.
    pub cancel: CancelToken,
    /// What the worker was busy with when it was asked (`"indexing"`, `"listening"`): the
    /// request waits for it.
    pub queued_behind: Option<&'static str>,
}

/// State of the Results page.
#[derive(Default)]
pub struct ResultsState {
    /// Recent full reports, newest first.
    reports: VecDeque<Box<MatchReport>>,
    /// Which report is shown (index into `reports`).
    shown: usize,
    /// The identification running now.
    pub pending: Option<PendingIdentify>,
    /// The last identification error.
    pub error: Option<String>,
}

impl ResultsState {
    /// Adds a report and shows it.
    pub fn push(&mut self, report: Box<MatchReport>) {
        self.reports.push_front(report);
        self.reports.truncate(REPORTS_KEPT);
        self.shown = 0;
        self.error = None;
    }

    /// The report on screen.
    pub fn shown(&self) -> Option<&MatchReport> {
        self.reports.get(self.shown).map(AsRef::as_ref)
    }

    /// The newest report.
    pub fn latest(&self) -> Option<&MatchReport> {
        self.reports.front().map(AsRef::as_ref)
    }

    /// Where the full report of `entry` is kept, if it still is (this session's latest).
    fn report_of(&self, entry: &HistoryEntry) -> Option<usize> {
        self.reports
            .iter()
            .position(|r| r.finished_at_unix_secs == entry.at_unix_secs && r.label == entry.source)
    }
}

/// A history entry for a report.
pub fn history_entry(report: &MatchReport) -> HistoryEntry {
    let best = report.identification.matches.first();
    HistoryEntry {
        at_unix_secs: report.finished_at_unix_secs,
        source: report.label.clone(),
        title: best.map(|m| m.song.title.clone()),
        artist: best.and_then(|m| m.song.artist.clone()),
        song_id: best.map(|m| m.song.id),
        content_hash: best.map(|m| m.song.content_hash.clone()),
        confidence: best.map_or(0.0, |m| m.confidence),
        offset_secs: best.map_or(0.0, |m| m.offset_secs),
    }
}

/// The Results page.
pub fn results_ui(
    ui: &mut egui::Ui,
    state: &mut ResultsState,
    history: &[HistoryEntry],
    actions: &mut Vec<Action>,
) {
    // At most 30 % of a narrow window, so that it never covers the answer.
    let history_width = (ui.available_width() * 0.3).clamp(140.0, 280.0);
    egui::Panel::right("history")
        .resizable(true)
        .default_size(history_width)
        .size_range(140.0..=history_width.max(140.0))
        .show(ui, |ui| {
            history_ui(ui, state, history, actions);
        });
    // The plots take what is left of the window's height, within reason; a window too low
    // for the page scrolls it.
    let plot_height = (ui.available_height() - 290.0).clamp(200.0, 420.0);
    egui::ScrollArea::vertical()
        .id_salt("results-page")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            answer_ui(ui, state, !history.is_empty(), plot_height, actions);
        });
}

/// The Results page's main column: the identification running, the last error, the answer
/// shown and its plots.
fn answer_ui(
    ui: &mut egui::Ui,
    state: &mut ResultsState,
    has_history: bool,
    plot_height: f32,
    actions: &mut Vec<Action>,
) {
    ui.heading("Identification");
    ui.add_space(6.0);
    if let Some(pending) = &state.pending {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.spinner();
                let waiting = match pending.queued_behind {
                    Some(job) => format!(" (waiting for {job} to finish)"),
                    None => String::new(),
                };
                ui.label(format!(
                    "Identifying {}{waiting}\u{2026} {:.1} s",
                    pending.label,
                    pending.started.elapsed().as_secs_f64()
                ));
                if ui.button("Cancel").clicked() {
                    actions.push(Action::CancelIdentify);
                }
            });
        });
        ui.add_space(6.0);
    }
    if let Some(error) = &state.error {
        ui.colored_label(ERROR, format!("\u{26A0} {error}"));
        ui.add_space(6.0);
    }
    let Some(report) = state.shown() else {
        ui.add_space(50.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new("\u{1F50D}").size(44.0).color(ACCENT));
            // After a restart the earlier answers are under Recent; this session has none.
            let headline = if has_history {
                "Nothing identified in this session yet"
            } else {
                "Nothing identified yet"
            };
            ui.label(RichText::new(headline).size(20.0).strong());
            if has_history {
                ui.label(RichText::new("Earlier answers are listed under Recent.").weak());
            }
            ui.label(
                RichText::new("Press Listen, or drop an audio clip anywhere on this window.")
                    .weak(),
            );
        });
        return;
    };
    if state.error.is_some() {
        // The error is the latest news; the card below is the answer before it.
        ui.label(RichText::new("Previous answer").weak());
    }
    report_card_ui(ui, report, actions);
    ui.add_space(10.0);
    plots_ui(ui, report, plot_height);
}

fn report_card_ui(ui: &mut egui::Ui, report: &MatchReport, actions: &mut Vec<Action>) {
    let identification = &report.identification;
    let footer = format!(
        "{:.1} s of {} \u{00B7} answered in {:.0} ms \u{00B7} {}",
        report.clip_secs,
        report.label,
        report.elapsed_ms,
        ago(report.finished_at_unix_secs, unix_now())
    );
    if let Some(list) = report.tracklist.as_ref().filter(|l| l.entries.len() > 1) {
        tracklist_card_ui(ui, list, &footer, actions);
        return;
    }
    egui::Frame::group(ui.style())
        .inner_margin(egui::Margin::same(16))
        .corner_radius(egui::CornerRadius::same(12))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            match identification.matches.first() {
                Some(best) => {
                    ui.horizontal(|ui| {
                        ui.vertical(|ui| {
                            // Long titles wrap short of the confidence ring.
                            ui.set_max_width((ui.available_width() - 120.0).max(160.0));
                            ui.label(RichText::new("\u{2714} It's").color(ACCENT));
                            ui.add(
                                egui::Label::new(
                                    RichText::new(&best.song.title).size(30.0).strong(),
                                )
                                .wrap(),
                            );
                            if let Some(artist) = &best.song.artist {
                                ui.add(egui::Label::new(RichText::new(artist).size(18.0)).wrap());
                            }
                            ui.add_space(4.0);
                            ui.label(
                                RichText::new(format!(
                                    "at {} of {}",
                                    clock(best.offset_secs),
                                    clock(best.song.duration_secs)
                                ))
                                .size(16.0),
                            );
                            if let Some(words) = identification.alteration() {
                                ui.label(RichText::new(format!("The clip was {words}.")).weak());
                            }
                            if !best.repeats.is_empty() {
                                ui.add(egui::Label::new(repeats_text(&best.repeats)).wrap());
                            }
                            if best.source.is_some() {
                                ui.label(RichText::new(SOURCE_CHECKED_TEXT).weak());
                            }
                        });
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::TOP), |ui| {
                            confidence_badge_ui(ui, best.confidence);
                        });
                    });
                    ui.add_space(6.0);
                    ui.horizontal_wrapped(|ui| {
                        if ui.button("Show song").clicked() {
                            actions.push(Action::OpenAnswer {
                                song_id: best.song.id,
                                content_hash: Some(best.song.content_hash.clone()),
                            });
                        }
                        ui.label(RichText::new(footer.clone()).weak());
                    });
                    if identification.matches.len() > 1 {
                        ui.add_space(6.0);
                        ui.label(RichText::new("Also possible").strong());
                        for other in identification.matches.iter().skip(1) {
                            let heard_from = if other.clip_from_secs > 0.0 {
                                format!(", heard from {:.1} s into the clip", other.clip_from_secs)
                            } else {
                                String::new()
                            };
                            ui.label(format!(
                                "{}{} \u{00B7} {:.0}% \u{00B7} at {}{heard_from}",
                                other.song.title,
                                other
                                    .song
                                    .artist
                                    .as_ref()
                                    .map(|a| format!(" \u{2014} {a}"))
                                    .unwrap_or_default(),
                                other.confidence * 100.0,
                                clock(other.offset_secs)
                            ));
                        }
                    }
                }
                None => {
                    ui.label(RichText::new("No match").size(28.0).strong().color(WARM));
                    let hint = match &identification.best_rejected {
                        Some(best) => format!(
                            "Closest: {} ({:.0}% confidence, below the threshold). \
                             Try a longer or cleaner clip.",
                            best.song.title,
                            best.confidence * 100.0
                        ),
                        None => "Nothing in your library sounds like this clip.".to_string(),
                    };
                    ui.label(hint);
                    ui.label(RichText::new(footer).weak());
                }
            }
        });
}

/// A recording of several songs (a DJ set): each song, when it is heard, from where in the
/// song, as a link to its page.
fn tracklist_card_ui(ui: &mut egui::Ui, list: &Tracklist, footer: &str, actions: &mut Vec<Action>) {
    egui::Frame::group(ui.style())
        .inner_margin(egui::Margin::same(16))
        .corner_radius(egui::CornerRadius::same(12))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(RichText::new("\u{2714} In this recording").color(ACCENT));
            ui.label(
                RichText::new(format!("{} songs", list.entries.len()))
                    .size(30.0)
                    .strong(),
            );
            ui.add_space(6.0);
            egui::Grid::new("tracklist")
                .num_columns(4)
                .spacing([14.0, 6.0])
                .striped(true)
                .show(ui, |ui| {
                    for entry in &list.entries {
                        ui.label(
                            RichText::new(format!(
                                "{}\u{2013}{}",
                                clock(entry.from_secs),
                                clock(entry.to_secs)
                            ))
                            .monospace(),
                        );
                        let name = match &entry.song.artist {
                            Some(artist) => format!("{} \u{2014} {artist}", entry.song.title),
                            None => entry.song.title.clone(),
                        };
                        if ui.link(name).clicked() {
                            actions.push(Action::OpenAnswer {
                                song_id: entry.song.id,
                                content_hash: Some(entry.song.content_hash.clone()),
                            });
                        }
                        ui.label(format!("from {}", clock(entry.song_from_secs)));
                        ui.label(RichText::new(format!("{:.0}%", entry.confidence * 100.0)).weak());
                        ui.end_row();
                    }
                });
            ui.add_space(6.0);
            ui.label(RichText::new(footer).weak());
        });
}

fn confidence_badge_ui(ui: &mut egui::Ui, confidence: f64) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(96.0, 96.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let centre = rect.center();
    let radius = 40.0;
    painter.circle_stroke(
        centre,
        radius,
        egui::Stroke::new(8.0, ui.visuals().faint_bg_color),
    );
    let steps = 64;
    let sweep = std::f32::consts::TAU * confidence.clamp(0.0, 1.0) as f32;
    let points: Vec<egui::Pos2> = (0..=steps)
        .map(|i| {
            let angle = -std::f32::consts::FRAC_PI_2 + sweep * i as f32 / steps as f32;
            centre + radius * egui::vec2(angle.cos(), angle.sin())
        })
        .collect();
    painter.add(egui::Shape::line(points, egui::Stroke::new(8.0, ACCENT)));
    painter.text(
        centre,
        egui::Align2::CENTER_CENTER,
        format!("{:.0}%", confidence * 100.0),
        egui::FontId::proportional(20.0),
        ui.visuals().strong_text_color(),
    );
}

/// egui_plot's grid spacing (its default, named because [`seconds_grid`] depends on it): grid
/// lines closer than the first value, in points, are not drawn.
const GRID_SPACING: Rangef = Rangef {
    min: 8.0,
    max: 300.0,
};

/// How far apart, in points, labels of seconds ("0" to "15", "2.5" zoomed in) along a
/// horizontal axis must be: closer than the first value they are not drawn, from the second on
/// they are drawn fully (egui_plot fades them in between). egui_plot's default for horizontal
/// axes, 60 to 80 points, is made for long numbers: it left the 5 s clip axis of a plot 130
/// points wide (in an 800 px window) two labels, 0 and 5.
const SECONDS_LABEL_SPACING: Rangef = Rangef {
    min: 20.0,
    max: 24.0,
};

/// The same for clock labels ("0:05" to "10:00") along a horizontal axis.
const CLOCK_LABEL_SPACING: Rangef = Rangef {
    min: 44.0,
    max: 48.0,
};

/// The same for labels along a vertical axis, where a line of text is what they need
/// (egui_plot's default).
const VERTICAL_LABEL_SPACING: Rangef = Rangef {
    min: 20.0,
    max: 30.0,
};

/// Decimals that tell apart the labels of grid marks `step` seconds apart.
fn decimals_for_step(step: f64) -> usize {
    if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else {
        2
    }
}

/// `mark`'s seconds, rounded to the decimals that tell it from its neighbours, as
/// (minus sign or nothing, whole seconds, the decimals' digits or nothing).
fn split_seconds(mark: GridMark) -> (&'static str, u64, String) {
    let decimals = decimals_for_step(mark.step_size);
    let scale = 10_u64.pow(decimals as u32);
    let units = (mark.value.abs() * scale as f64).round() as u64;
    // Zero has no sign, however it was computed.
    let sign = if mark.value < 0.0 && units > 0 {
        "\u{2212}"
    } else {
        ""
    };
    let fraction = if decimals == 0 {
        String::new()
    } else {
        format!(".{:0decimals$}", units % scale)
    };
    (sign, units / scale, fraction)
}

/// A seconds label ("0", "2.5", "\u{2212}1") for a grid mark.
fn seconds_label(mark: GridMark) -> String {
    let (sign, whole, fraction) = split_seconds(mark);
    format!("{sign}{whole}{fraction}")
}

/// A clock label ("0:05", "0:12.5", "\u{2212}0:05") for a grid mark: unlike [`clock`], a time
/// before zero keeps its sign (an offset of hits before the song starts) and marks under a
/// second apart keep their tenths, so that no two labels read the same.
fn clock_label(mark: GridMark) -> String {
    let (sign, whole, fraction) = split_seconds(mark);
    format!("{sign}{}{fraction}", clock(whole as f64))
}

/// Grid steps for an axis of seconds whose labels must be `label_spacing` points apart (the
/// axis's full-strength label spacing): round numbers of seconds and minutes, about five
/// labelled lines across the visible range (egui_plot's default powers of ten put one label,
/// 0:00, on a minute-long axis), fewer where the plot is too small for them. Each step divides
/// the next, so that labels never crowd.
fn seconds_grid(label_spacing: f32) -> impl Fn(GridInput) -> [f64; 3] {
    // (a step, the next smaller step that divides it)
    const STEPS: [(f64, f64); 15] = [
        (0.1, 0.05),
        (0.5, 0.1),
        (1.0, 0.5),
        (2.0, 1.0),
        (5.0, 1.0),
        (10.0, 5.0),
        (15.0, 5.0),
        (30.0, 10.0),
        (60.0, 30.0),
        (120.0, 60.0),
        (300.0, 60.0),
        (600.0, 300.0),
        (1800.0, 600.0),
        (3600.0, 1800.0),
        (7200.0, 3600.0),
    ];
    let finer = |step: f64| {
        STEPS
            .iter()
            .find(|&&(large, _)| large >= step)
            .map_or(step / 2.0, |&(_, smaller)| smaller)
    };
    move |input: GridInput| {
        let span = (input.bounds.1 - input.bounds.0).abs();
        // `base_step_size` is the seconds that `GRID_SPACING.min` points stand for.
        let label_secs =
            input.base_step_size * f64::from(label_spacing) / f64::from(GRID_SPACING.min);
        let wanted = (span / 5.0).max(label_secs);
        let large = STEPS
            .iter()
            .map(|&(step, _)| step)
            .find(|&step| step >= wanted)
            .unwrap_or(STEPS[STEPS.len() - 1].0);
        let medium = finer(large);
        let small = finer(medium);
        [
            small.max(input.base_step_size),
            medium.max(input.base_step_size),
            large,
        ]
    }
}

/// Room the Results plots leave at the page's right edge, so that the offset histogram's tick
/// labels are shown whole: a label is centred on its grid line, so the one on the histogram's
/// last line sticks out by half its width (measured on a wide label, "\u{2212}9:59.9"), and a
/// floating scroll bar lies over the page's last points even when the pointer is elsewhere.
fn plots_right_room(ui: &egui::Ui) -> f32 {
    let wide_label = clock_label(GridMark {
        value: -599.9,
        step_size: 0.1,
    });
    let label_width = ui
        .painter()
        .layout_no_wrap(
            wide_label,
            egui::TextStyle::Body.resolve(ui.style()),
            Color32::PLACEHOLDER,
        )
        .size()
        .x;
    let scroll = ui.spacing().scroll;
    let scroll_bar = if scroll.floating {
        scroll.floating_width + scroll.bar_outer_margin
    } else {
        0.0
    };
    label_width / 2.0 + scroll_bar
}

/// The id under which the scatter plot of `report` keeps its view (zoom and pan).
pub fn scatter_plot_id(report: &MatchReport) -> egui::Id {
    egui::Id::unique(("match-scatter", report.job, report.finished_at_unix_secs))
}

/// The other places a match's passage is played, in words: "This passage repeats: it also
/// fits at 0:05, 0:09 and 0:13."
fn repeats_text(repeats: &[Repeat]) -> String {
    let places: Vec<String> = repeats.iter().map(|r| clock(r.offset_secs)).collect();
    let listed = match places.as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    format!("This passage repeats: it also fits at {listed}.")
}

/// The id under which the offset histogram of `report` keeps its view (zoom and pan).
pub fn histogram_plot_id(report: &MatchReport) -> egui::Id {
    egui::Id::unique(("offset-histogram", report.job, report.finished_at_unix_secs))
}

fn plots_ui(ui: &mut egui::Ui, report: &MatchReport, height: f32) {
    let evidence = &report.evidence;
    if evidence.hits.is_empty() {
        ui.label(RichText::new("No fingerprint hits to plot.").weak());
        return;
    }
    let best = report
        .identification
        .matches
        .first()
        .or(report.identification.best_rejected.as_ref());
    let offset_secs = best.map_or(0.0, |m| m.offset_secs);
    let title = best.map_or_else(String::new, |m| m.song.title.clone());
    let matched = report.identification.found();
    // Taken from both columns alike, so that the plots stay the same size.
    let plots_width = (ui.available_width() - plots_right_room(ui)).max(0.0);
    ui.vertical(|ui| {
        ui.set_max_width(plots_width);
        ui.columns(2, |columns| {
        let [left, right] = columns else {
            return;
        };
        // Headings in a plain vertical layout: the columns' justified one spreads wrapped
        // text out word by word.
        left.vertical(|ui| {
            ui.label(RichText::new("Where the clip's fingerprints land in the song").strong());
        });
        let scatter_note = if matched {
            format!("Each dot is a hit in \u{201c}{title}\u{201d}; the diagonal is the match.")
        } else {
            format!(
                "Each dot is a hit in \u{201c}{title}\u{201d}, the closest song; too few lie on \
                 the diagonal for a match."
            )
        };
        left.vertical(|ui| ui.label(RichText::new(scatter_note).small().weak()));
        let (mut aligned, mut scattered) = (Vec::new(), Vec::new());
        for (&(clip_secs, song_secs), &on_diagonal) in evidence.hits.iter().zip(&evidence.aligned) {
            if on_diagonal {
                aligned.push([clip_secs, song_secs]);
            } else {
                scattered.push([clip_secs, song_secs]);
            }
        }
        let clip_end = report.clip_secs.max(1.0);
        let aligned_count = aligned.len();
        let scatter = Plot::new("match-scatter")
            .id(scatter_plot_id(report))
            .height(height)
            .custom_x_axes(vec![
                AxisHints::new_x()
                    .label("clip time (s)")
                    .formatter(|mark, _| seconds_label(mark))
                    .label_spacing(SECONDS_LABEL_SPACING),
            ])
            .custom_y_axes(vec![
                AxisHints::new_y()
                    .label("song time")
                    .formatter(|mark, _| clock_label(mark))
                    .label_spacing(VERTICAL_LABEL_SPACING),
            ])
            .grid_spacing(GRID_SPACING)
            .x_grid_spacer(uniform_grid_spacer(seconds_grid(SECONDS_LABEL_SPACING.max)))
            .y_grid_spacer(uniform_grid_spacer(seconds_grid(
                VERTICAL_LABEL_SPACING.max,
            )))
            .legend(egui_plot::Legend::default().text_style(egui::TextStyle::Small))
            .show(left, |plot_ui| {
                plot_ui.points(
                    Points::new("other hits", scattered)
                        .radius(1.6)
                        .color(Color32::from_gray(140)),
                );
                plot_ui.line(
                    Line::new(
                        "match diagonal",
                        vec![[0.0, offset_secs], [clip_end, offset_secs + clip_end]],
                    )
                    .color(ACCENT.gamma_multiply(0.6))
                    .width(6.0),
                );
                plot_ui.points(
                    Points::new(format!("aligned hits ({aligned_count})"), aligned)
                        .radius(3.0)
                        .color(ACCENT)
                        .filled(true),
                );
            });
        keep_wheel_in_plot(left, &scatter.response);

        right.vertical(|ui| ui.label(RichText::new("Offsets of all hits").strong()));
        let histogram_note = if matched {
            format!(
                "A true match is a spike: the clip starts at {} in the song.",
                clock(offset_secs)
            )
        } else {
            format!(
                "A true match is a spike; the highest here, at {}, is too low to count.",
                clock(offset_secs)
            )
        };
        right.vertical(|ui| ui.label(RichText::new(histogram_note).small().weak()));
        let bin_secs = report
            .offset_histogram
            .windows(2)
            .filter_map(|w| match w {
                [a, b] => Some(b.0 - a.0),
                _ => None,
            })
            .fold(f64::INFINITY, f64::min);
        let width = if bin_secs.is_finite() {
            bin_secs.max(0.01)
        } else {
            0.064
        };
        let bars: Vec<Bar> = report
            .offset_histogram
            .iter()
            .map(|&(offset, count)| {
                let near = (offset - offset_secs).abs() <= width;
                Bar::new(offset, f64::from(count))
                    .width(width)
                    .fill(if near {
                        ACCENT
                    } else {
                        Color32::from_gray(120)
                    })
                    .stroke(egui::Stroke::NONE)
            })
            .collect();
        let histogram = Plot::new("offset-histogram")
            .id(histogram_plot_id(report))
            .height(height)
            .custom_x_axes(vec![
                AxisHints::new_x()
                    .label("song time \u{2212} clip time")
                    .formatter(|mark, _| clock_label(mark))
                    .label_spacing(CLOCK_LABEL_SPACING),
            ])
            .y_axis_label("hits")
            .grid_spacing(GRID_SPACING)
            .x_grid_spacer(uniform_grid_spacer(seconds_grid(CLOCK_LABEL_SPACING.max)))
            .show(right, |plot_ui| {
                plot_ui.bar_chart(BarChart::new("offsets", bars));
                // A bar a quarter of a second wide is under a pixel on a song's time axis:
                // the match's bar is also drawn as a line of fixed width, so the spike shows
                // at any zoom.
                if let Some(&(offset, count)) = report
                    .offset_histogram
                    .iter()
                    .filter(|(offset, _)| (offset - offset_secs).abs() <= width)
                    .max_by_key(|(_, count)| *count)
                {
                    plot_ui.line(
                        Line::new("match", vec![[offset, 0.0], [offset, f64::from(count)]])
                            .color(ACCENT)
                            .width(3.0),
                    );
                }
            });
        keep_wheel_in_plot(right, &histogram.response);
    });
    });
}

/// The list of past answers. An entry whose full report is still kept shows it; an older one
/// opens its song's page; an old "no match" has nothing more to show.
fn history_ui(
    ui: &mut egui::Ui,
    state: &mut ResultsState,
    history: &[HistoryEntry],
    actions: &mut Vec<Action>,
) {
    ui.add_space(4.0);
    ui.label(RichText::new("Recent").size(17.0).strong());
    ui.add_space(4.0);
    if history.is_empty() {
        ui.label(RichText::new("Your identifications will appear here.").weak());
        return;
    }
    let now = unix_now();
    let mut clicked = None;
    egui::ScrollArea::vertical()
        .id_salt("history-list")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for entry in history {
                let (headline, colour) = match &entry.title {
                    Some(title) => (title.clone(), ui.visuals().strong_text_color()),
                    None => ("No match".to_string(), WARM),
                };
                let detail = match &entry.title {
                    Some(_) => format!(
                        "{}{:.0}% \u{00B7} at {} \u{00B7} {}",
                        entry
                            .artist
                            .as_ref()
                            .map(|a| format!("{a} \u{00B7} "))
                            .unwrap_or_default(),
                        entry.confidence * 100.0,
                        clock(entry.offset_secs),
                        ago(entry.at_unix_secs, now)
                    ),
                    None => format!("{} \u{00B7} {}", entry.source, ago(entry.at_unix_secs, now)),
                };
                let mut job = egui::text::LayoutJob::default();
                RichText::new(format!("{headline}\n"))
                    .strong()
                    .color(colour)
                    .append_to(
                        &mut job,
                        ui.style(),
                        egui::FontSelection::Default,
                        egui::Align::LEFT,
                    );
                RichText::new(detail).small().weak().append_to(
                    &mut job,
                    ui.style(),
                    egui::FontSelection::Default,
                    egui::Align::LEFT,
                );
                let kept = state.report_of(entry);
                let hint = match (kept, entry.song_id) {
                    (Some(_), _) => "Show this answer",
                    (None, Some(_)) => "Open the song (this answer's details are no longer kept)",
                    (None, None) => "This answer's details are no longer kept",
                };
                let button = egui::Button::new(job)
                    .frame(false)
                    .min_size(egui::vec2(ui.available_width(), 0.0));
                if ui.add(button).on_hover_text(hint).clicked() {
                    clicked = Some((kept, entry));
                }
                ui.separator();
            }
        });
    match clicked {
        Some((Some(index), _)) => state.shown = index,
        Some((None, entry)) => {
            if let Some(song_id) = entry.song_id {
                actions.push(Action::OpenAnswer {
                    song_id,
                    content_hash: entry.content_hash.clone(),
                });
            }
        }
        None => {}
    }
}

/// Said under an answer whose song's own audio was compared with the clip (the source
/// check: the song's file was at hand as indexed).
pub const SOURCE_CHECKED_TEXT: &str = "Checked against the song's own audio.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_listed_in_words() {
        let at = |offset_secs: f64| Repeat {
            offset_secs,
            fit: 0.9,
        };
        assert_eq!(
            repeats_text(&[at(65.2)]),
            "This passage repeats: it also fits at 1:05."
        );
        assert_eq!(
            repeats_text(&[at(5.0), at(9.4), at(3725.0)]),
            "This passage repeats: it also fits at 0:05, 0:09 and 1:02:05."
        );
    }

    fn mark(value: f64, step_size: f64) -> GridMark {
        GridMark { value, step_size }
    }

    #[test]
    fn labels_of_neighbouring_marks_differ_and_keep_their_sign() {
        for step in [5.0, 1.0, 0.5, 0.1, 0.05] {
            let values: Vec<f64> = (-3..=3).map(|i| 12.0 + f64::from(i) * step).collect();
            for label in [clock_label, seconds_label] {
                let labels: Vec<String> = values.iter().map(|&v| label(mark(v, step))).collect();
                let mut distinct = labels.clone();
                distinct.dedup();
                assert_eq!(distinct, labels, "step {step}");
            }
        }
        assert_eq!(clock_label(mark(-5.0, 5.0)), "\u{2212}0:05");
        assert_eq!(clock_label(mark(12.5, 0.5)), "0:12.5");
        assert_eq!(clock_label(mark(59.96, 0.1)), "1:00.0");
        assert_eq!(clock_label(mark(-0.0, 1.0)), "0:00");
        assert_eq!(seconds_label(mark(2.5, 0.5)), "2.5");
        assert_eq!(seconds_label(mark(-1.0, 1.0)), "\u{2212}1");
    }
}
