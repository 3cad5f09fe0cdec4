//! Settings the app keeps between runs (eframe storage, RON): match threshold, listening
//! timeout, input device, theme, and the history of recent identifications; plus the
//! Settings page.

use serde::{Deserialize, Serialize};

use crate::capture::InputDevice;
use crate::gui::app::Action;

/// The eframe storage key.
pub const STORAGE_KEY: &str = "audiofp.settings";
/// History entries kept.
pub const HISTORY_LEN: usize = 50;

/// Persisted settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Confidence a match needs (0..1).
    pub match_threshold: f64,
    /// Listening gives up after this many seconds without a confident match.
    pub listen_timeout_secs: f64,
    /// The input device id (`None` = the system default).
    pub input_device: Option<String>,
    /// Dark or light look.
    pub dark_mode: bool,
    /// Recent identifications, newest first.
    pub history: Vec<HistoryEntry>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            match_threshold: crate::config::MatchConfig::default().threshold,
            listen_timeout_secs: 15.0,
            input_device: None,
            dark_mode: true,
            history: Vec::new(),
        }
    }
}

/// One past identification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When, seconds since the Unix epoch.
    pub at_unix_secs: i64,
    /// What was identified ("microphone" or a file name).
    pub source: String,
    /// The song's title, `None` for no match.
    pub title: Option<String>,
    /// The song's artist.
    pub artist: Option<String>,
    /// The song id at the time.
    pub song_id: Option<i64>,
    /// The song's content hash: the same id in another index (the app opened with `--db`)
    /// is another song, which the song page must not show for this answer.
    #[serde(default)]
    pub content_hash: Option<String>,
    /// Confidence of the match.
    pub confidence: f64,
    /// Where in the song the clip starts, seconds.
    pub offset_secs: f64,
}

/// How to reach the app's index from the command line: plain commands for the default
/// index, `--db` for another one (the app opened with `--db`).
fn command_line_hint(index_location: &str) -> String {
    if index_location == "(memory)" {
        return "This index is kept in memory: the command line cannot see it.".to_string();
    }
    let is_default = crate::cli::default_db_path()
        .is_ok_and(|default| default.display().to_string() == index_location);
    if is_default {
        "The command line uses the same index: audiofp list, audiofp identify clip.mp3".to_string()
    } else {
        format!(
            "From the command line: audiofp --db '{index_location}' list (without --db it uses \
             the default index)"
        )
    }
}

/// What the match threshold means, with what a 1 s clip needs at the threshold chosen.
fn threshold_explanation(threshold: f64) -> String {
    let one_second = crate::config::MatchConfig {
        threshold,
        ..crate::config::MatchConfig::default()
    }
    .threshold_for_clip(1.0);
    format!(
        "Matches below this confidence are reported as \u{201c}no match\u{201d}. Lower finds \
         more in noisy rooms, higher avoids wrong answers. Clips shorter than {:.0} s must be \
         more certain (at {:.0}%, a 1 s clip needs {:.0}%).",
        crate::config::FULL_EVIDENCE_SECS,
        threshold * 100.0,
        one_second * 100.0
    )
}

/// View state of the Settings page that is not persisted.
#[derive(Default)]
pub struct SettingsView {
    /// Known input devices (`None` while listing).
    pub devices: Option<Result<Vec<InputDevice>, crate::capture::CaptureError>>,
    /// Where the index lives.
    pub index_location: String,
}

/// The Settings page.
pub fn settings_ui(
    ui: &mut egui::Ui,
    settings: &mut Settings,
    view: &SettingsView,
    actions: &mut Vec<Action>,
) {
    ui.heading("Preferences");
    ui.add_space(12.0);
    let card = |ui: &mut egui::Ui, title: &str, add: &mut dyn FnMut(&mut egui::Ui)| {
        egui::Frame::group(ui.style())
            .inner_margin(egui::Margin::same(14))
            .corner_radius(egui::CornerRadius::same(10))
            .show(ui, |ui| {
                ui.set_width(ui.available_width().min(640.0));
                ui.label(egui::RichText::new(title).strong().size(16.0));
                ui.add_space(6.0);
                add(ui);
            });
        ui.add_space(10.0);
    };

    card(ui, "Matching", &mut |ui| {
        let before = settings.match_threshold;
        ui.horizontal(|ui| {
            ui.label("Match threshold");
            ui.add(
                // In percent, as the Results page shows confidences.
                egui::Slider::new(&mut settings.match_threshold, 0.3..=0.99)
                    .step_by(0.01)
                    .custom_formatter(|value, _| format!("{:.0}%", value * 100.0))
                    .custom_parser(|text| {
                        text.trim()
                            .trim_end_matches('%')
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .map(|percent| percent / 100.0)
                    })
                    .text("confidence"),
            );
        });
        ui.label(egui::RichText::new(threshold_explanation(settings.match_threshold)).weak());
        if (settings.match_threshold - before).abs() > f64::EPSILON {
            actions.push(Action::ThresholdChanged);
        }
    });

    card(ui, "Listening", &mut |ui| {
        ui.horizontal(|ui| {
            ui.label("Give up after");
            ui.add(
                egui::Slider::new(&mut settings.listen_timeout_secs, 5.0..=60.0)
                    .step_by(1.0)
                    .suffix(" s"),
            );
        });
        ui.add_space(4.0);
        ui.horizontal(|ui| {
            ui.label("Input device");
            let selected_text = match &settings.input_device {
                None => "System default".to_string(),
                Some(id) => device_name(view, id),
            };
            egui::ComboBox::from_id_salt("input-device")
                .selected_text(selected_text)
                .width(300.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut settings.input_device, None, "System default");
                    if let Some(Ok(devices)) = &view.devices {
                        for device in devices {
                            let label = if device.is_default {
                                format!("{} (default)", device.name)
                            } else {
                                device.name.clone()
                            };
                            ui.selectable_value(
                                &mut settings.input_device,
                                Some(device.id.clone()),
                                label,
                            );
                        }
                    }
                });
            if ui.button("Refresh devices").clicked() {
                actions.push(Action::RefreshDevices);
            }
        });
        match &view.devices {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Looking for input devices\u{2026}");
                });
            }
            Some(Err(reason)) => {
                ui.colored_label(crate::gui::ERROR, reason.to_string());
            }
            Some(Ok(devices)) if devices.is_empty() => {
                ui.colored_label(crate::gui::WARM, "No input device found.");
            }
            Some(Ok(_)) => {}
        }
    });

    card(ui, "Appearance", &mut |ui| {
        ui.horizontal(|ui| {
            let before = settings.dark_mode;
            ui.selectable_value(&mut settings.dark_mode, true, "Dark");
            ui.selectable_value(&mut settings.dark_mode, false, "Light");
            if before != settings.dark_mode {
                actions.push(Action::ThemeChanged);
            }
        });
    });

    let history_len = settings.history.len();
    card(ui, "Index", &mut |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label("Songs are stored in");
            ui.monospace(&view.index_location);
        });
        ui.label(egui::RichText::new(command_line_hint(&view.index_location)).weak());
    });
    card(ui, "History", &mut |ui| {
        ui.label(
            egui::RichText::new(format!(
                "The Results page lists your last {HISTORY_LEN} answers, kept between sessions."
            ))
            .weak(),
        );
        ui.add_space(4.0);
        // Clearing cannot be undone: it asks first.
        let confirm_id = egui::Id::unique("settings-confirm-clear-history");
        let mut confirming = ui.data(|d| d.get_temp::<bool>(confirm_id)).unwrap_or(false);
        let entries = history_len;
        ui.horizontal(|ui| {
            if !confirming {
                let button =
                    ui.add_enabled(entries > 0, egui::Button::new("Clear history\u{2026}"));
                if button.clicked() {
                    confirming = true;
                }
            } else {
                ui.label(format!(
                    "Forget the {entries} recent answer{}? This cannot be undone.",
                    if entries == 1 { "" } else { "s" }
                ));
                if ui.button("Clear").clicked() {
                    actions.push(Action::ClearHistory);
                    confirming = false;
                }
                if ui.button("Keep").clicked() {
                    confirming = false;
                }
            }
        });
        ui.data_mut(|d| d.insert_temp(confirm_id, confirming));
    });
}

fn device_name(view: &SettingsView, id: &str) -> String {
    if let Some(Ok(devices)) = &view.devices
        && let Some(device) = devices.iter().find(|d| d.id == id)
    {
        return device.name.clone();
    }
    id.to_string()
}

#[cfg(test)]
mod tests {
    use eframe::Storage as _;

    use super::*;

    #[test]
    fn the_command_line_hint_names_an_index_other_than_the_default() {
        let default = crate::cli::default_db_path().unwrap().display().to_string();
        assert!(!command_line_hint(&default).contains("--db"));
        let other = command_line_hint("/tmp/mix.db");
        assert!(other.contains("audiofp --db '/tmp/mix.db' list"), "{other}");
        assert!(command_line_hint("(memory)").contains("cannot see it"));
    }

    #[test]
    fn the_threshold_explanation_follows_the_threshold() {
        let default = threshold_explanation(0.8);
        assert!(
            default.contains("shorter than 3 s")
                && default.contains("at 80%, a 1 s clip needs 92%"),
            "{default}"
        );
        let strict = threshold_explanation(0.9);
        assert!(strict.contains("at 90%, a 1 s clip needs 96%"), "{strict}");
    }

    /// eframe's storage in memory.
    #[derive(Default)]
    struct MemoryStorage(std::collections::HashMap<String, String>);

    impl eframe::Storage for MemoryStorage {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }

        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.to_string(), value);
        }

        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }

        fn flush(&mut self) {}
    }

    #[test]
    fn settings_survive_a_restart() {
        let settings = Settings {
            match_threshold: 0.65,
            listen_timeout_secs: 25.0,
            input_device: Some("alsa:hw:1".to_string()),
            dark_mode: false,
            history: vec![HistoryEntry {
                at_unix_secs: 1_764_000_000,
                source: "microphone".to_string(),
                title: Some("Night Ferry".to_string()),
                artist: None,
                song_id: Some(3),
                content_hash: Some("ab".repeat(32)),
                confidence: 0.97,
                offset_secs: 83.0,
            }],
        };
        let mut storage = MemoryStorage::default();
        eframe::set_value(&mut storage, STORAGE_KEY, &settings);
        let restored: Settings = eframe::get_value(&storage, STORAGE_KEY).unwrap();
        assert_eq!(restored, settings);
        // Settings written by an older version (fewer fields) still load, with defaults.
        storage.set_string(STORAGE_KEY, "(match_threshold: 0.5)".to_string());
        let old: Settings = eframe::get_value(&storage, STORAGE_KEY).unwrap();
        assert!((old.match_threshold - 0.5).abs() < 1e-9);
        assert!((old.listen_timeout_secs - 15.0).abs() < 1e-9);
        // A history entry saved before entries kept the song's content hash.
        storage.set_string(
            STORAGE_KEY,
            "(history: [(at_unix_secs: 1, source: \"a.wav\", title: Some(\"T\"), artist: None, \
             song_id: Some(4), confidence: 0.9, offset_secs: 2.0)])"
                .to_string(),
        );
        let old: Settings = eframe::get_value(&storage, STORAGE_KEY).unwrap();
        assert_eq!(old.history[0].song_id, Some(4));
        assert_eq!(old.history[0].content_hash, None);
    }
}
