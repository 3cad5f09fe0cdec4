//! The desktop app driven through egui_kittest (no display needed): the real app state with a
//! real worker on a temporary index. Drop a folder, wait for the worker, drop a clip, read the
//! result, listen to a sample stream, remove a song (here, and from another process), reopen;
//! and a 100,000-song library.
//! Drag and drop: several files at once (one of them not audio), one file that is not audio, a
//! dropped clip added to the library instead, and the hint shown while files are held over
//! the window (found by its labels, as a screen reader reads it).
//! The mouse wheel over a plot moves that plot, not the page it is on; the Results plots label
//! their time axes in a small window, and show every axis label whole; the answer to a
//! passage its song plays twice says where else it fits.
//! Capture failures: a missing device, and the microphone vanishing while listening (a sound
//! server of the test's own whose only source is unloaded, in a child process: see
//! `sound_sandbox`).

// Helpers outside #[test] functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use crate::common;
use crate::sound_sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use audiofp::config::{FingerprintConfig, MatchConfig, SourceCheck};
use audiofp::engine::Fingerprint;
use audiofp::gui::AudiofpApp;
use audiofp::gui::app::Page;
use audiofp::gui::settings::Settings;
use audiofp::gui::{detail_panel, results_panel};
use audiofp::index::{NewSong, OpenMode, StorageKind};
use audiofp::library::Library;
use audiofp::testkit::{distort, synth, wav};
use audiofp::worker::{AudioChunk, Event, SongRow, WorkerConfig};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};

const SR: u32 = 22_050;
const SONG_SECS: f32 = 15.0;
const TIMEOUT: Duration = Duration::from_secs(120);

/// A file "dropped" onto the window.
#[derive(Debug)]
struct TestFile(PathBuf);

impl egui::DroppedFile for TestFile {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn harness(storage: StorageKind) -> Harness<'static, AudiofpApp> {
    harness_with(storage, 2, Settings::default())
}

/// The app in a window of its usual size, with `index_threads` analysis threads.
fn harness_with(
    storage: StorageKind,
    index_threads: usize,
    settings: Settings,
) -> Harness<'static, AudiofpApp> {
    harness_sized(storage, index_threads, settings, [1180.0, 760.0])
}

/// [`harness_with`] in a window of `size` points.
fn harness_sized(
    storage: StorageKind,
    index_threads: usize,
    settings: Settings,
    size: [f32; 2],
) -> Harness<'static, AudiofpApp> {
    let mut config = WorkerConfig::new(storage);
    config.index_threads = index_threads;
    harness_of(config, settings, size)
}

/// The app of worker `config` in a window of `size` points.
fn harness_of(
    mut config: WorkerConfig,
    settings: Settings,
    size: [f32; 2],
) -> Harness<'static, AudiofpApp> {
    // Other processes' changes are taken in when a request comes, never between frames, so
    // that what a test sees does not depend on timing (gui_worker.rs covers the idle
    // check).
    config.idle_check = Duration::from_secs(3600);
    let app = AudiofpApp::with_settings(config, settings).unwrap();
    Harness::builder()
        .with_size(size)
        .build_ui_state(|ui, app: &mut AudiofpApp| app.frame_ui(ui), app)
}

/// Steps frames until `done` holds (the worker answers on its own thread).
fn step_until(
    harness: &mut Harness<'_, AudiofpApp>,
    what: &str,
    done: impl Fn(&AudiofpApp) -> bool,
) {
    let started = Instant::now();
    while !done(harness.state()) {
        assert!(started.elapsed() < TIMEOUT, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    // Lay out once more with the new state.
    harness.step();
    harness.step();
}

fn drop_file(harness: &mut Harness<'_, AudiofpApp>, path: &Path) {
    drop_files(harness, &[path]);
}

/// Drops `paths` onto the window together, as one drag of several items.
fn drop_files(harness: &mut Harness<'_, AudiofpApp>, paths: &[&Path]) {
    for path in paths {
        harness
            .input_mut()
            .dropped_files
            .push(Arc::new(TestFile(path.to_path_buf())));
    }
    harness.step();
}

#[test]
fn drop_folder_identify_clip_listen_remove_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let songs = dir.path().join("My music");
    std::fs::create_dir(&songs).unwrap();
    for (title, seed) in [
        ("Blue Harbour", 21),
        ("Copper Lanterns", 22),
        ("Night Ferry", 23),
    ] {
        let samples = synth::song(seed, SONG_SECS, SR);
        wav::write_wav_i16(&songs.join(format!("{title}.wav")), &samples, SR, 1).unwrap();
    }
    let db = dir.path().join("index.db");
    let mut harness = harness(StorageKind::Sqlite(db.clone()));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.get_by_label("What's playing?");
    // Not "-0.0 h" (an empty f64 sum is negative zero).
    harness.get_by_label_contains("\u{2022} 0 songs \u{00B7} 0.0 h of music");

    // Dropping a folder indexes it and shows the library.
    drop_file(&mut harness, &songs);
    assert_eq!(harness.state().page(), Page::Library);
    assert!(harness.state().is_indexing());
    harness.get_by_label_contains("Adding the folder");
    step_until(&mut harness, "indexing", |app| {
        !app.is_indexing() && app.library().rows().len() == 3
    });
    harness.get_by_label("Your library");
    // The banner offering to cancel went with the job.
    assert!(
        harness
            .query_by_label_contains("Adding the folder")
            .is_none()
    );
    harness.get_by_label("Copper Lanterns");
    harness.get_by_label("Night Ferry");

    // Dropping one clip identifies it; the result names the song and where in it.
    let clip = distort::add_white_noise(
        &distort::excerpt(&synth::song(22, SONG_SECS, SR), SR, 5.0, 5.0),
        20.0,
        4,
    );
    let clip_path = dir.path().join("clip.wav");
    wav::write_wav_i16(&clip_path, &clip, SR, 1).unwrap();
    drop_file(&mut harness, &clip_path);
    assert_eq!(harness.state().page(), Page::Results);
    step_until(&mut harness, "the identification", |app| {
        app.results().latest().is_some()
    });
    assert!(harness.state().results().error.is_none());
    assert!(harness.query_by_label_contains("Identifying").is_none());
    harness.get_by_label("Copper Lanterns");
    harness.get_by_label("at 0:05 of 0:15");
    let report = harness.state().results().latest().unwrap();
    assert!(report.found());
    assert_eq!(harness.state().settings.history.len(), 1);

    // Listening: the capture path minus the device, fed from a sample stream at 44.1 kHz.
    let mic_rate = 44_100;
    let heard = distort::resample_linear(
        &distort::excerpt(&synth::song(23, SONG_SECS, SR), SR, 2.0, 10.0),
        SR,
        mic_rate,
    );
    let (tx, rx) = crossbeam_channel::bounded(4096);
    std::thread::Builder::new()
        .name("test-mic".to_string())
        .spawn(move || {
            for chunk in heard.chunks(mic_rate as usize / 50) {
                let chunk = AudioChunk {
                    samples: chunk.to_vec(),
                    sample_rate_hz: mic_rate,
                };
                if tx.send(chunk).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap();
    harness.state_mut().set_page(Page::Listen);
    harness.state_mut().start_listening_from(rx, None);
    harness.step();
    harness.get_by_label("Listening\u{2026}");
    step_until(&mut harness, "a match from the stream", |app| {
        !app.listen().is_listening()
            && app
                .results()
                .latest()
                .is_some_and(|r| r.label == "microphone")
    });
    assert_eq!(harness.state().page(), Page::Results);
    harness.get_by_label("Night Ferry");
    assert_eq!(harness.state().settings.history.len(), 2);

    // Select "Blue Harbour" in the table.
    harness.get_by_label("Library").click();
    harness.step();
    harness.get_by_label("Blue Harbour").click();
    harness.step();
    harness.step();
    let selected = harness.state().library().selected;
    let harbour = harness
        .state()
        .library()
        .rows()
        .iter()
        .find(|r| r.title == "Blue Harbour")
        .map(|r| r.song_id);
    assert_eq!(selected, harbour);

    // Its page: the spectrogram (decoded on the worker) and the peaks.
    harness.get_by_label("Show spectrogram").click();
    harness.step();
    assert_eq!(harness.state().page(), Page::Song);
    step_until(&mut harness, "the song detail", |app| {
        app.detail().is_loaded()
    });
    assert_eq!(harness.state().detail().tile_count(), 1);
    harness.get_by_label("Fingerprint peaks");

    // Remove it from there (with confirmation): back to the library, without it.
    harness.get_by_label("Remove from library\u{2026}").click();
    // The click, the dialog's sizing pass, the dialog.
    harness.run_steps(3);
    harness.get_by_label("Remove song").click();
    step_until(&mut harness, "the removal", |app| {
        app.library().rows().len() == 2
    });
    assert_eq!(harness.state().page(), Page::Library);
    assert!(harness.query_by_label("Blue Harbour").is_none());

    // A song removed by another process (`audiofp remove` in a terminal) just before its page
    // is opened: the page says so instead of loading forever, and the row goes.
    harness.get_by_label("Night Ferry").click();
    harness.run_steps(2);
    let ferry = harness.state().library().selected.unwrap();
    let mut other = Library::open(
        &StorageKind::Sqlite(db.clone()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::MustExist,
    )
    .unwrap();
    assert!(other.remove(ferry).unwrap());
    drop(other);
    harness.get_by_label("Show spectrogram").click();
    harness.step();
    step_until(&mut harness, "the detail's failure", |app| {
        app.detail().failure().is_some()
    });
    assert!(!harness.state().detail().loading);
    harness.get_by_label("\u{26A0} This song is no longer in the library.");
    assert_eq!(harness.state().library().rows().len(), 1);

    // The library persists: a new app on the same index file sees the two songs.
    drop(harness);
    let mut harness = self::harness(StorageKind::Sqlite(db));
    step_until(&mut harness, "the reopened index", AudiofpApp::is_ready);
    let mut titles: Vec<String> = harness
        .state()
        .library()
        .rows()
        .iter()
        .map(|r| r.title.clone())
        .collect();
    titles.sort();
    assert_eq!(titles, ["Copper Lanterns"]);
}

/// The titles of the library's songs, sorted.
fn sorted_titles(app: &AudiofpApp) -> Vec<String> {
    let mut titles: Vec<String> = app
        .library()
        .rows()
        .iter()
        .map(|r| r.title.clone())
        .collect();
    titles.sort();
    titles
}

/// Several files dropped together are added to the library from whatever page is shown, and
/// none is identified; a file among them that is not audio is listed by name, with the reason.
#[test]
fn dropping_several_files_adds_them_to_the_library_and_names_the_one_that_is_not_audio() {
    let dir = tempfile::tempdir().unwrap();
    let first = common::write_song(dir.path(), "Amber Road", 41, 8.0);
    let second = common::write_song(dir.path(), "Salt Meadow", 42, 8.0);
    let list = dir.path().join("shopping-list.txt");
    std::fs::write(&list, "milk\neggs\n".repeat(50)).unwrap();
    let mut harness = harness(StorageKind::Sqlite(dir.path().join("index.db")));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().set_page(Page::Settings);
    harness.step();

    drop_files(&mut harness, &[&first.path, &list, &second.path]);
    assert_eq!(harness.state().page(), Page::Library);
    assert!(harness.state().is_indexing());
    harness.get_by_label("Adding 3 dropped items to your library.");
    step_until(&mut harness, "indexing", |app| !app.is_indexing());
    assert_eq!(
        sorted_titles(harness.state()),
        ["Amber Road", "Salt Meadow"]
    );
    harness.get_by_label("Amber Road");
    harness.get_by_label("Salt Meadow");
    harness.get_by_label_contains("Added 2 songs in");
    harness.get_by_label("\u{26A0} 1 file could not be indexed");
    harness.get_by_label("shopping-list.txt");
    let failures = &harness.state().library().failures;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].path, list);
    assert!(
        failures[0].reason.contains("not a supported audio file"),
        "{}",
        failures[0].reason
    );
    harness.get_by_label(&failures[0].reason);
    // Nothing was identified.
    assert!(harness.state().results().pending.is_none());
    assert!(harness.state().results().latest().is_none());
    assert!(harness.state().settings.history.is_empty());
}

/// One file dropped is identified, from whatever page is shown; a file that is not audio gets
/// an error on the Results page that names it and says why, and is neither answered nor added.
#[test]
fn dropping_one_file_that_is_not_audio_says_so_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not audio at all\n".repeat(100)).unwrap();
    let mut harness = harness(StorageKind::Sqlite(dir.path().join("index.db")));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().set_page(Page::Library);
    harness.step();

    drop_file(&mut harness, &notes);
    assert_eq!(harness.state().page(), Page::Results);
    harness.get_by_label("Identifying \u{201c}notes.txt\u{201d}.");
    step_until(&mut harness, "the identification to fail", |app| {
        app.results().pending.is_none()
    });
    let error = harness.state().results().error.clone().unwrap();
    assert!(
        error.contains(&notes.display().to_string())
            && error.contains("not a supported audio file"),
        "{error}"
    );
    harness.get_by_label(&format!("\u{26A0} {error}"));
    // The banner offering to add the file instead went with the identification.
    assert!(harness.query_by_label_contains("Identifying").is_none());
    assert!(harness.state().results().latest().is_none());
    assert!(harness.state().settings.history.is_empty());
    assert!(!harness.state().is_indexing());
    assert!(harness.state().library().rows().is_empty());
}

/// The banner of a dropped clip offers to add the file to the library instead: that cancels
/// the identification and indexes the file. (The clip waits behind a listening session here,
/// so that the button is clicked before any answer can come.)
#[test]
fn a_dropped_clip_can_be_added_to_the_library_instead_of_identified() {
    let dir = tempfile::tempdir().unwrap();
    let song = common::write_song(dir.path(), "Harbour Lights", 43, 8.0);
    let mut harness = harness(StorageKind::Sqlite(dir.path().join("index.db")));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    // A microphone that stays open and silent.
    let (mic, chunks) = crossbeam_channel::bounded::<AudioChunk>(16);
    harness.state_mut().start_listening_from(chunks, None);
    harness.step();

    drop_file(&mut harness, &song.path);
    assert_eq!(harness.state().page(), Page::Results);
    harness.get_by_label_contains("waiting for listening to finish");
    harness
        .get_by_label("Add it to the library instead")
        .click();
    harness.run_steps(2);
    assert_eq!(harness.state().page(), Page::Library);
    assert!(harness.state().results().pending.is_none());
    assert!(harness.state().is_indexing());

    drop(mic);
    // The worker takes the cancelled identification before the indexing: once the song is
    // in, an answer to it would have come.
    step_until(&mut harness, "the dropped file to be indexed", |app| {
        !app.listen().is_listening() && !app.is_indexing()
    });
    assert_eq!(sorted_titles(harness.state()), ["Harbour Lights"]);
    harness.get_by_label("Harbour Lights");
    assert!(harness.state().results().latest().is_none());
    assert!(harness.state().results().error.is_none());
    assert!(harness.state().settings.history.is_empty());
}

/// A text painted in the last frame (the plots' axis labels are painted, not laid out as
/// widgets).
#[derive(Debug)]
struct PaintedText {
    text: String,
    /// Where it was painted.
    rect: egui::Rect,
    /// What it was clipped to: the part outside is not shown.
    clip: egui::Rect,
}

/// The texts painted in the last frame.
fn painted_texts(harness: &Harness<'_, AudiofpApp>) -> Vec<PaintedText> {
    fn collect(shape: &egui::Shape, clip: egui::Rect, texts: &mut Vec<PaintedText>) {
        match shape {
            egui::Shape::Text(text) => texts.push(PaintedText {
                text: text.galley.text().to_string(),
                rect: text.visual_bounding_rect(),
                clip,
            }),
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| collect(s, clip, texts)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    for clipped in &harness.output().shapes {
        collect(&clipped.shape, clipped.clip_rect, &mut texts);
    }
    texts
}

/// Files held over the window (not dropped yet) cover it with a hint of what dropping them
/// will do, which screen readers read too: one audio file is identified, a folder or several
/// files are added, and one file that is not audio is named as such (dropping it would only
/// show an error). Hovering does nothing else, and the hint goes when the files leave.
#[test]
fn files_held_over_the_window_show_what_dropping_them_will_do() {
    const IDENTIFY: &str = "Drop to identify this clip";
    const ADD: &str = "Drop to add to your library";
    const NOT_AUDIO: &str = "\u{201c}notes.txt\u{201d} is not a supported audio file";
    const RULE: &str = "one file: identify \u{00B7} folders or several files: add to the library";
    const ONLY_AN_ERROR: &str = "Dropping it would only show an error.";
    let dir = tempfile::tempdir().unwrap();
    let clip = common::write_song(dir.path(), "clip", 44, 3.0).path;
    let other = common::write_song(dir.path(), "other clip", 45, 3.0).path;
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not audio at all\n").unwrap();
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    // The overlay's texts found by their labels: each one is looked for, so that one shown
    // where it should not be fails too.
    let mut hover = |paths: &[&Path]| -> Vec<&'static str> {
        harness.input_mut().hovered_files = paths
            .iter()
            .map(|path| egui::HoveredFile {
                path: Some(path.to_path_buf()),
                mime: String::new(),
            })
            .collect();
        // Two frames: the first time it shows, an egui area only measures itself, unseen.
        harness.run_steps(2);
        [IDENTIFY, ADD, NOT_AUDIO, RULE, ONLY_AN_ERROR]
            .into_iter()
            .filter(|text| harness.query_by_label(text).is_some())
            .collect()
    };

    assert_eq!(hover(&[]), Vec::<&str>::new());
    assert_eq!(hover(&[&clip]), [IDENTIFY, RULE]);
    assert_eq!(hover(&[&notes]), [NOT_AUDIO, ONLY_AN_ERROR]);
    for held in [
        vec![dir.path()],
        vec![clip.as_path(), other.as_path()],
        vec![clip.as_path(), notes.as_path()],
    ] {
        assert_eq!(hover(&held), [ADD, RULE], "{held:?}");
    }
    assert_eq!(hover(&[]), Vec::<&str>::new());
    assert_eq!(harness.state().page(), Page::Listen);
    assert!(harness.state().results().pending.is_none());
    assert!(!harness.state().is_indexing());
}

/// Adds the generated song `seed` titled `title` to the SQLite index at `db` (created if
/// missing); returns its id and its samples.
fn index_one_song(db: &Path, seed: u64, title: &str) -> (i64, Vec<f32>) {
    let (song, fingerprint, samples) = common::fingerprinted_song(seed, title);
    (add_to_index(db, &song, &fingerprint), samples)
}

/// Adds `song` with `fingerprint` to the SQLite index at `db` (created if missing); returns
/// its id.
fn add_to_index(db: &Path, song: &NewSong, fingerprint: &Fingerprint) -> i64 {
    Library::open(
        &StorageKind::Sqlite(db.to_path_buf()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::CreateIfMissing,
    )
    .unwrap()
    .add(song, fingerprint)
    .unwrap()
    .id
}

/// Opens the Song page of the library's song titled `title` and waits for it to load.
fn open_song_page(harness: &mut Harness<'_, AudiofpApp>, title: &str) {
    harness.state_mut().set_page(Page::Library);
    harness.step();
    harness.get_by_label(title).click();
    harness.run_steps(2);
    harness.get_by_label("Show spectrogram").click();
    harness.step();
    step_until(harness, &format!("the page of {title}"), |app| {
        app.detail().is_loaded()
    });
    assert_eq!(harness.state().page(), Page::Song);
}

/// The app in a window of `size` on an index holding one generated song titled `title`, showing
/// the answer to a 5 s clip of it on the Results page.
fn answer_on_the_results_page(
    dir: &Path,
    title: &str,
    size: [f32; 2],
) -> Harness<'static, AudiofpApp> {
    let db = dir.join("index.db");
    let (_, samples) = index_one_song(&db, 51, title);
    let clip = common::write_clip(
        &dir.join("clip.wav"),
        &distort::excerpt(&samples, common::SR, 4.0, 5.0),
        common::SR,
    );
    let mut harness = harness_sized(StorageKind::Sqlite(db), 1, Settings::default(), size);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().identify_path(clip);
    step_until(&mut harness, "the answer", |app| {
        app.results().latest().is_some()
    });
    assert!(harness.state().results().latest().unwrap().found());
    assert_eq!(harness.state().page(), Page::Results);
    harness
}

/// Turns the mouse wheel by `travel` points (one notch of a wheel is about 50 points down:
/// (0, -50)) with the pointer at `at`, and lets the frames run out.
fn wheel_at(harness: &mut Harness<'_, AudiofpApp>, at: egui::Pos2, travel: egui::Vec2) {
    harness.hover_at(at);
    // In ten steps: steps under 8 points are applied at once, not smoothed over later frames.
    for _ in 0..10 {
        harness.event(egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: travel / 10.0,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Wheel,
            modifiers: egui::Modifiers::NONE,
        });
    }
    harness.step();
    harness.run_steps(3);
}

/// One notch of the mouse wheel, downwards.
const WHEEL_NOTCH_DOWN: egui::Vec2 = egui::vec2(0.0, -50.0);

/// A plot's view, as egui_plot keeps it.
fn plot_view(harness: &Harness<'_, AudiofpApp>, plot: egui::Id) -> egui_plot::PlotMemory {
    egui_plot::PlotMemory::load(&harness.ctx, plot).unwrap()
}

/// In a window too low for the whole Results page, the mouse wheel over either plot moves
/// that plot only; elsewhere on the page it scrolls the page.
#[test]
fn the_wheel_over_a_results_plot_moves_the_plot_not_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = answer_on_the_results_page(dir.path(), "Glass Orchard", [800.0, 600.0]);
    let page_top =
        |harness: &Harness<'_, AudiofpApp>| harness.get_by_label("Identification").rect().top();
    let report = harness.state().results().latest().unwrap();
    let plots = [
        ("scatter", results_panel::scatter_plot_id(report)),
        ("histogram", results_panel::histogram_plot_id(report)),
    ];
    for (name, plot) in plots {
        let top = page_top(&harness);
        let before = plot_view(&harness, plot);
        wheel_at(
            &mut harness,
            before.transform().frame().center(),
            WHEEL_NOTCH_DOWN,
        );
        assert_eq!(
            page_top(&harness),
            top,
            "the wheel over the {name} scrolled the page"
        );
        let after = plot_view(&harness, plot);
        assert_ne!(
            before.bounds(),
            after.bounds(),
            "the wheel over the {name} did not move it"
        );
    }
    let top = page_top(&harness);
    let title = harness.get_by_label("Glass Orchard").rect().center();
    wheel_at(&mut harness, title, WHEEL_NOTCH_DOWN);
    assert!(
        page_top(&harness) < top,
        "the wheel over the answer did not scroll the page"
    );
}

/// The tick labels under a plot's time axis, left to right, each with the time under its
/// centre.
fn time_axis_labels(harness: &Harness<'_, AudiofpApp>, plot: egui::Id) -> Vec<(String, f64)> {
    let transform = plot_view(harness, plot).transform();
    let frame = *transform.frame();
    // One line of labels right under the plot, not the axis title under them.
    let strip = egui::Rect::from_min_max(
        egui::pos2(frame.left() - 30.0, frame.bottom()),
        egui::pos2(frame.right() + 30.0, frame.bottom() + 18.0),
    );
    let mut labels: Vec<(String, f64)> = painted_texts(harness)
        .into_iter()
        .filter(|painted| strip.contains(painted.rect.center()))
        .map(|painted| {
            let secs = transform.value_from_position(painted.rect.center()).x;
            (painted.text, secs)
        })
        .collect();
    labels.sort_by(|a, b| a.1.total_cmp(&b.1));
    labels
}

/// In an 800x600 window the scatter of a 5 s clip labels each second of its clip axis, and the
/// offset histogram's time labels all differ, those left of zero with a minus sign.
#[test]
fn the_results_plots_label_their_time_axes_in_a_small_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = answer_on_the_results_page(dir.path(), "Tin Lantern", [800.0, 600.0]);
    // Down to the end of the page: labels out of sight are not painted.
    let title = harness.get_by_label("Tin Lantern").rect().center();
    for _ in 0..4 {
        wheel_at(&mut harness, title, WHEEL_NOTCH_DOWN);
    }
    let report = harness.state().results().latest().unwrap().clone();
    let report = &report;
    let clip_secs = report.clip_secs.round() as i64;
    let clip_axis: Vec<String> = time_axis_labels(&harness, results_panel::scatter_plot_id(report))
        .into_iter()
        .map(|(text, _)| text)
        .collect();
    let every_second: Vec<String> = (0..=clip_secs).map(|s| s.to_string()).collect();
    assert_eq!(clip_axis, every_second);

    let histogram = results_panel::histogram_plot_id(report);
    let offsets = time_axis_labels(&harness, histogram);
    assert!(offsets.len() >= 3, "{offsets:?}");
    // Panned (the wheel sideways) to show offsets before zero too.
    let centre = plot_view(&harness, histogram).transform().frame().center();
    wheel_at(&mut harness, centre, egui::vec2(60.0, 0.0));
    let offsets = time_axis_labels(&harness, histogram);
    assert!(offsets.iter().any(|&(_, secs)| secs < 0.0), "{offsets:?}");
    let mut texts: Vec<&str> = offsets.iter().map(|(text, _)| text.as_str()).collect();
    texts.dedup();
    assert_eq!(texts.len(), offsets.len(), "{offsets:?}");
    for (text, secs) in &offsets {
        // A label's centre is its mark's time, to within the width of a few characters.
        assert_eq!(text.starts_with('\u{2212}'), *secs < -0.5, "{offsets:?}");
    }
}

/// Where the Results page's main column ends, right of `x`: at the page's scroll bar (when the
/// page scrolls; it floats over the column, as a thin line while the pointer is elsewhere: its
/// node's rectangle is the width it grows to under the pointer) or at the history panel's resize
/// handle, whichever comes first.
fn results_column_right(harness: &Harness<'_, AudiofpApp>, x: f32) -> f32 {
    let history = harness.get_by_label("Recent").rect().left();
    let resting_bar_width = harness.ctx.global_style().spacing.scroll.floating_width;
    let scroll_bars = harness
        .query_all_by_role(egui::Role::ScrollBar)
        .map(|node| node.rect().right() - resting_bar_width);
    let splitters = harness
        .query_all_by_role(egui::Role::Splitter)
        .map(|node| node.rect().left());
    scroll_bars
        .chain(splitters)
        .filter(|&left| x < left && left < history)
        .fold(f32::INFINITY, f32::min)
}

/// Every axis label of the Results plots (tick labels and axis titles) is shown whole, in a
/// small window and a larger one: inside the window, not clipped, and left of the page's scroll
/// bar and of the history panel, even when a grid line, and so its label, sits on the offset
/// histogram's right edge.
#[test]
fn the_results_plots_show_every_axis_label_whole() {
    for size in [[800.0, 600.0], [1280.0, 800.0]] {
        let dir = tempfile::tempdir().unwrap();
        let mut harness = answer_on_the_results_page(dir.path(), "Brass Pier", size);
        let title = harness.get_by_label("Brass Pier").rect().center();
        for _ in 0..4 {
            wheel_at(&mut harness, title, WHEEL_NOTCH_DOWN);
        }
        let report = harness.state().results().latest().unwrap().clone();
        let scatter = results_panel::scatter_plot_id(&report);
        let histogram = results_panel::histogram_plot_id(&report);
        // The histogram shown from -0:05 to just past 0:20 (egui_plot leaves out a grid line on
        // the very edge): whatever the grid's step at these widths (5 or 10 s), 0:20 is a grid
        // line, on the right edge.
        let mut view = plot_view(&harness, histogram);
        let (min, max) = (view.bounds().min(), view.bounds().max());
        view.set_bounds(egui_plot::PlotBounds::from_min_max(
            [-5.0, min[1]],
            [20.05, max[1]],
        ));
        view.auto_bounds = false.into();
        view.store(&harness.ctx, histogram);
        harness.run_steps(2);
        let histogram_frame = *plot_view(&harness, histogram).transform().frame();
        let edge_label = time_axis_labels(&harness, histogram).pop();
        assert_eq!(
            edge_label.as_ref().map(|(text, _)| text.as_str()),
            Some("0:20"),
            "{size:?}"
        );

        let window = harness.ctx.content_rect();
        let column_right = results_column_right(&harness, histogram_frame.center().x);
        assert!(column_right.is_finite(), "{size:?}");
        let frames = [
            *plot_view(&harness, scatter).transform().frame(),
            histogram_frame,
        ];
        // The tick labels and titles left of and under each plot (and its legend, inside it);
        // not the notes above.
        let axis_labels: Vec<PaintedText> = painted_texts(&harness)
            .into_iter()
            .filter(|painted| {
                frames.iter().any(|frame| {
                    egui::Rect::from_min_max(
                        frame.left_top() - egui::vec2(70.0, 10.0),
                        frame.right_bottom() + egui::vec2(40.0, 40.0),
                    )
                    .contains(painted.rect.center())
                })
            })
            .collect();
        for wanted in [
            "0:20",
            "song time \u{2212} clip time",
            "hits",
            "clip time (s)",
        ] {
            assert!(
                axis_labels.iter().any(|painted| painted.text == wanted),
                "{size:?}: no {wanted:?} in {axis_labels:#?}"
            );
        }
        for painted in &axis_labels {
            assert!(
                window.contains_rect(painted.rect)
                    && painted.clip.contains_rect(painted.rect)
                    && painted.rect.right() <= column_right,
                "{size:?}: {painted:?} is not shown whole (window {window:?}, the page's \
                 column ends at {column_right})"
            );
        }
    }
}

/// On the Song page the mouse wheel over the spectrogram zooms it in time, leaving its
/// frequency axis and the page where they were.
#[test]
fn the_wheel_over_the_song_spectrogram_zooms_it_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let (song_id, _) = index_one_song(&db, 52, "Quiet Canal");
    let mut harness = harness_sized(
        StorageKind::Sqlite(db),
        1,
        Settings::default(),
        [800.0, 600.0],
    );
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    open_song_page(&mut harness, "Quiet Canal");

    let plot = detail_panel::spectrogram_plot_id(song_id);
    let title = harness.get_by_label("Quiet Canal").rect();
    let before = plot_view(&harness, plot);
    wheel_at(
        &mut harness,
        before.transform().frame().center(),
        WHEEL_NOTCH_DOWN,
    );
    let after = plot_view(&harness, plot);
    let (before, after) = (before.bounds(), after.bounds());
    assert_ne!(before.width(), after.width(), "{before:?} {after:?}");
    assert_eq!(
        (before.min()[1], before.max()[1]),
        (after.min()[1], after.max()[1])
    );
    assert_eq!(harness.get_by_label("Quiet Canal").rect(), title);
}

/// A song's page names the other songs that share its audio, each a link to its page: a
/// second copy (the same fingerprint under another file's content hash) from either side,
/// and nothing for a song of its own.
#[test]
fn the_song_page_links_a_copy_of_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let (original_id, _) = index_one_song(&db, 53, "Harbour Lights");
    let (mut copy, fingerprint, _) = common::fingerprinted_song(53, "Harbour Lights (copy)");
    copy.content_hash = "another file of the same recording".to_string();
    let copy_id = add_to_index(&db, &copy, &fingerprint);
    index_one_song(&db, 54, "Open Water");
    let mut harness = harness(StorageKind::Sqlite(db));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);

    open_song_page(&mut harness, "Harbour Lights");
    assert!(harness.query_by_label("Also in the library:").is_some());
    assert!(harness.query_by_label("same audio as").is_some());
    harness.get_by_label("Harbour Lights (copy)").click();
    harness.step();
    step_until(&mut harness, "the copy's page", |app| {
        app.detail().song_id == Some(copy_id) && app.detail().is_loaded()
    });
    assert_eq!(harness.state().page(), Page::Song);
    // The copy's page links back.
    harness.get_by_label("Harbour Lights").click();
    harness.step();
    step_until(&mut harness, "the original's page", |app| {
        app.detail().song_id == Some(original_id) && app.detail().is_loaded()
    });

    open_song_page(&mut harness, "Open Water");
    assert_ne!(harness.state().detail().song_id, Some(original_id));
    assert!(harness.query_by_label("Also in the library:").is_none());
}

/// A recording of two songs with unindexed music between them, opened in the app, is listed
/// song by song on the Results page, each a link to its song's page.
#[test]
fn a_recorded_set_is_listed_song_by_song_with_links() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let (_, dawn) = index_one_song(&db, 61, "Dawn Patrol");
    let (dusk_id, dusk) = index_one_song(&db, 62, "Dusk Parade");
    index_one_song(&db, 63, "Not Played");
    let stranger = synth::song(6_464, 20.0, common::SR);
    let recording = [
        distort::excerpt(&dawn, common::SR, 2.0, 15.0),
        distort::excerpt(&stranger, common::SR, 3.0, 12.0),
        distort::excerpt(&dusk, common::SR, 0.0, 16.0),
    ]
    .concat();
    let set = common::write_clip(&dir.path().join("set.wav"), &recording, common::SR);
    let mut harness = harness(StorageKind::Sqlite(db));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().identify_path(set);
    step_until(&mut harness, "the answer", |app| {
        app.results().latest().is_some()
    });
    let report = harness.state().results().latest().unwrap();
    let titles: Vec<&str> = report
        .tracklist
        .as_ref()
        .map(|list| list.entries.iter().map(|e| e.song.title.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(titles, ["Dawn Patrol", "Dusk Parade"]);
    harness.step();
    assert!(harness.query_by_label("2 songs").is_some());
    assert!(harness.query_by_label("0:00\u{2013}0:15").is_some());
    assert!(harness.query_by_label("Not Played").is_none());
    harness.get_by_label("Dusk Parade").click();
    harness.step();
    step_until(&mut harness, "the page of the second song", |app| {
        app.detail().song_id == Some(dusk_id) && app.detail().is_loaded()
    });
    assert_eq!(harness.state().page(), Page::Song);
}

/// A file that is not an audiofp index: the app says so on every page, never offers to add
/// music or to listen, and leaves the file as it was.
#[test]
fn an_index_that_cannot_be_opened_is_explained_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("not-an-index.db");
    std::fs::write(&db, b"junk that is not SQLite\n").unwrap();
    let mut harness = harness(StorageKind::Sqlite(db.clone()));
    step_until(&mut harness, "the open to fail", |app| {
        app.open_error().is_some()
    });
    let reason = harness.state().open_error().unwrap().to_string();
    assert!(reason.contains("not-an-index.db"), "{reason}");
    assert_eq!(reason.matches("not-an-index.db").count(), 1, "{reason}");
    // The banner can be dismissed.
    harness.get_by_label("Dismiss");

    harness.state_mut().set_page(Page::Library);
    harness.run_steps(2);
    harness.get_by_label("The index could not be opened");
    assert!(harness.query_by_label("Your library is empty").is_none());
    assert!(
        harness
            .query_by_label("Add a music folder\u{2026}")
            .is_none()
    );
    // The header's buttons are there but disabled: picking files would only fail.
    for button in ["\u{1F4C1} Add folder\u{2026}", "\u{2795} Add files\u{2026}"] {
        assert!(
            harness.get_by_label(button).accesskit_node().is_disabled(),
            "{button}"
        );
    }

    harness.state_mut().set_page(Page::Listen);
    harness.run_steps(2);
    harness.get_by_label_contains("nothing to recognise against");
    assert!(
        harness
            .query_by_label_contains("Your library is empty")
            .is_none()
    );
    drop(harness);
    assert_eq!(std::fs::read(&db).unwrap(), b"junk that is not SQLite\n");
}

/// The worker does one long job at a time: a clip opened while listening says what it waits
/// for, and goes on when listening stops.
#[test]
fn a_clip_opened_while_listening_says_it_waits_for_listening() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    // A microphone that stays open and silent.
    let (mic, chunks) = crossbeam_channel::bounded::<AudioChunk>(16);
    harness.state_mut().start_listening_from(chunks, None);
    harness.step();
    assert!(harness.state().listen().is_listening());

    let clip = dir.path().join("queued.wav");
    wav::write_wav_i16(&clip, &synth::song(5, 3.0, SR), SR, 1).unwrap();
    harness.state_mut().identify_path(clip);
    harness.run_steps(2);
    harness.get_by_label_contains("waiting for listening to finish");

    drop(mic);
    step_until(&mut harness, "listening to end", |app| {
        !app.listen().is_listening()
    });
    step_until(&mut harness, "the queued clip's answer", |app| {
        app.results().pending.is_none()
    });
    assert!(harness.query_by_label_contains("waiting for").is_none());
}

/// A past answer naming `title` (song `song_id`), as the app saves them.
fn history_entry(title: &str, song_id: i64) -> audiofp::gui::settings::HistoryEntry {
    audiofp::gui::settings::HistoryEntry {
        at_unix_secs: 1_700_000_000,
        source: "microphone".to_string(),
        title: Some(title.to_string()),
        artist: None,
        song_id: Some(song_id),
        content_hash: None,
        confidence: 0.97,
        offset_secs: 30.0,
    }
}

/// An answer from an earlier session (its full report is gone) opens its song's page.
#[test]
fn an_old_history_entry_opens_its_song() {
    let settings = Settings {
        history: vec![history_entry("Yesterday's Song", 42)],
        ..Settings::default()
    };
    let mut harness = harness_with(StorageKind::Memory, 1, settings);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().set_page(Page::Results);
    harness.run_steps(2);
    // The history button (the sidebar also says "Last: Yesterday's Song").
    harness.get_by_label_contains("Yesterday's Song\n").click();
    harness.run_steps(2);
    assert_eq!(harness.state().page(), Page::Song);
    assert_eq!(harness.state().detail().song_id, Some(42));
}

/// An answer saved while the app used another index names a song id that this index gives to
/// another song: the history opens "no longer in the library", not that other song.
#[test]
fn a_history_entry_from_another_index_does_not_open_this_indexs_song_of_that_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let (this_indexs_song, _) = index_one_song(&db, 31, "This Index's Song");
    let mut entry = history_entry("Another Index's Song", this_indexs_song);
    entry.content_hash = Some("0".repeat(64));
    let settings = Settings {
        history: vec![entry],
        ..Settings::default()
    };
    let mut harness = harness_with(StorageKind::Sqlite(db), 1, settings);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().set_page(Page::Results);
    harness.run_steps(2);
    harness
        .get_by_label_contains("Another Index's Song\n")
        .click();
    harness.run_steps(2);
    assert_eq!(harness.state().page(), Page::Song);
    step_until(&mut harness, "the song page's answer", |app| {
        app.detail().failure().is_some()
    });
    let failure = harness
        .state()
        .detail()
        .failure()
        .unwrap_or_default()
        .to_string();
    assert!(failure.contains("no longer in the library"), "{failure}");
}

/// While indexing, new songs are listed at the top (newest first) and push the rows down: a
/// double click whose second click lands on the newcomer opens the song its first click chose.
#[test]
fn a_double_click_opens_the_row_its_first_click_chose_even_if_rows_moved() {
    let row = |song_id: i64, title: &str| SongRow {
        song_id,
        title: title.to_string(),
        artist: String::new(),
        album: String::new(),
        duration_secs: 200.0,
        added_at_unix_secs: 1_700_000_000 + song_id,
        path: None,
    };
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().apply(Event::Library {
        rows: vec![row(1, "Older"), row(2, "Aimed At")],
    });
    harness.state_mut().set_page(Page::Library);
    harness.run_steps(2);
    // Both clicks at one spot, as a hand makes them (kittest clicks a node at its centre),
    // 0.2 s apart (egui tells a double click by the input's clock).
    let spot = harness.get_by_label("Aimed At").rect().left_center() + egui::vec2(4.0, 0.0);
    let click = |harness: &mut Harness<'_, AudiofpApp>, at_secs: f64| {
        harness.input_mut().time = Some(at_secs);
        harness.event(egui::Event::PointerMoved(spot));
        for pressed in [true, false] {
            harness.event(egui::Event::PointerButton {
                pos: spot,
                button: egui::PointerButton::Primary,
                pressed,
                modifiers: egui::Modifiers::default(),
            });
        }
    };
    click(&mut harness, 10.0);
    harness.step();
    assert_eq!(harness.state().library().selected, Some(2));
    // A song indexed between the two clicks takes the top row, under the pointer.
    harness.state_mut().apply(Event::Indexed {
        job: 1,
        rows: vec![row(3, "Just Indexed")],
    });
    harness.step();
    let under = harness.get_by_label("Just Indexed").rect();
    assert!(under.y_range().contains(spot.y), "{under:?} {spot:?}");
    click(&mut harness, 10.2);
    harness.run_steps(2);
    assert_eq!(harness.state().page(), Page::Song);
    assert_eq!(harness.state().detail().song_id, Some(2));
}

/// Clearing the history asks first.
#[test]
fn clearing_the_history_asks_first() {
    let settings = Settings {
        history: vec![history_entry("One", 1), history_entry("Two", 2)],
        ..Settings::default()
    };
    // Tall enough for every Settings card, however many input devices the machine lists
    // (the list arrives at its own time and pushes the History card down).
    let mut harness = harness_sized(StorageKind::Memory, 1, settings, [1180.0, 1600.0]);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().set_page(Page::Settings);
    harness.run_steps(2);
    harness.get_by_label("Clear history\u{2026}").click();
    harness.run_steps(2);
    harness.get_by_label_contains("Forget the 2 recent answers?");
    harness.get_by_label("Keep").click();
    harness.run_steps(2);
    assert_eq!(harness.state().settings.history.len(), 2);
    harness.get_by_label("Clear history\u{2026}").click();
    harness.run_steps(2);
    harness.get_by_label("Clear").click();
    harness.run_steps(2);
    assert!(harness.state().settings.history.is_empty());
}

/// A job's time counts from when the worker starts it, not from the request (a job queued
/// behind another one waited meanwhile).
#[test]
fn an_indexing_job_is_timed_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness
        .state_mut()
        .index_paths(vec![dir.path().join("nothing-here")]);
    // The job starts and ends at once on the worker; the app reads both events only now,
    // half a second after its request.
    std::thread::sleep(Duration::from_millis(500));
    step_until(&mut harness, "the job to end", |app| !app.is_indexing());
    let summary = harness.state().library().last_summary.clone().unwrap();
    assert!(summary.starts_with("Added 0 songs in 0.0 s"), "{summary}");
}

/// Adding a folder twice reports each bad file once (the newest reason).
#[test]
fn a_file_failing_twice_is_listed_once() {
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    for (job, reason) in [(1, "not audio"), (2, "not audio (in an earlier run)")] {
        harness.state_mut().apply(Event::Failed {
            job,
            path: PathBuf::from("/music/broken.mp3"),
            reason: reason.to_string(),
        });
    }
    harness.state_mut().apply(Event::Failed {
        job: 2,
        path: PathBuf::from("/music/other.flac"),
        reason: "truncated".to_string(),
    });
    let failures = &harness.state().library().failures;
    assert_eq!(
        failures.len(),
        2,
        "{:?}",
        failures.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert_eq!(failures[0].reason, "not audio (in an earlier run)");
}

/// 100,000 rows: only the visible ones are laid out, and filtering finds the right rows. The
/// frame times are printed for a person to read (`cargo test --release --test integration 100k --
/// --nocapture`), not asserted: a debug build on a shared machine says little about them.
#[test]
fn a_library_of_100k_songs_lays_out_only_visible_rows_and_filters() {
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    let rows: Vec<SongRow> = (0..100_000)
        .map(|i| SongRow {
            song_id: i,
            title: format!("Track {i:06}"),
            artist: format!("Artist {}", i % 997),
            album: String::new(),
            duration_secs: 120.0 + (i % 180) as f64,
            added_at_unix_secs: 1_700_000_000 + i,
            path: Some(format!("/music/{i}.mp3")),
        })
        .collect();
    let started = Instant::now();
    harness.state_mut().apply(Event::Library { rows });
    harness.state_mut().set_page(Page::Library);
    harness.step();
    let first_frame = started.elapsed();

    // Newest first by default: the last rows are on screen, the first are not laid out.
    harness.get_by_label("Track 099999");
    assert!(harness.query_by_label("Track 000000").is_none());
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let frame = Instant::now();
        harness.step();
        worst = worst.max(frame.elapsed());
    }

    // Filter as you type.
    let filter = || egui::Role::TextInput;
    harness.get_by_role(filter()).focus();
    harness.step();
    harness.get_by_role(filter()).type_text("Track 04321");
    let typed = Instant::now();
    harness.step();
    harness.step();
    let filter_frames = typed.elapsed();
    harness.get_by_label("Track 043210");
    // "Track 004321" and "Track 043210" ..= "Track 043219".
    assert_eq!(harness.state_mut().library_mut().visible_count(), 11);
    println!(
        "100k rows: first frame (incl. sorting) {first_frame:?}, steady frame max {worst:?}, \
         filter (2 frames) {filter_frames:?}"
    );
}

/// The library without a mouse: Down and Up move the selection through the list as shown
/// (newest first), Enter opens the selected song.
#[test]
fn the_library_is_browsed_and_a_song_opened_with_the_keyboard() {
    let mut harness = harness(StorageKind::Memory);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    let rows: Vec<SongRow> = (1..=5)
        .map(|i| SongRow {
            song_id: i,
            title: format!("Track {i}"),
            artist: String::new(),
            album: String::new(),
            duration_secs: 60.0,
            added_at_unix_secs: 1_700_000_000 + i,
            path: None,
        })
        .collect();
    harness.state_mut().apply(Event::Library { rows });
    harness.state_mut().set_page(Page::Library);
    harness.step();
    assert_eq!(harness.state_mut().library_mut().selected, None);

    let press = |harness: &mut Harness<'_, AudiofpApp>, key: egui::Key| {
        harness.key_press(key);
        harness.step();
    };
    press(&mut harness, egui::Key::ArrowDown);
    assert_eq!(
        harness.state_mut().library_mut().selected,
        Some(5),
        "newest first"
    );
    press(&mut harness, egui::Key::ArrowDown);
    press(&mut harness, egui::Key::ArrowDown);
    press(&mut harness, egui::Key::ArrowUp);
    assert_eq!(harness.state_mut().library_mut().selected, Some(4));
    for _ in 0..6 {
        press(&mut harness, egui::Key::ArrowDown);
    }
    assert_eq!(
        harness.state_mut().library_mut().selected,
        Some(1),
        "stops at the end"
    );
    press(&mut harness, egui::Key::Enter);
    assert_eq!(harness.state().page(), Page::Song);
    assert_eq!(harness.state().detail().song_id, Some(1));
}

#[test]
fn listening_without_the_chosen_device_explains_why() {
    let settings = Settings {
        input_device: Some("alsa:no-such-microphone".to_string()),
        ..Settings::default()
    };
    let mut harness = harness_with(StorageKind::Memory, 1, settings);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.get_by_label("Start listening").click();
    harness.step();
    assert!(harness.state().listen().is_listening());
    step_until(&mut harness, "the capture error", |app| {
        app.listen().error.is_some() && !app.listen().is_listening()
    });
    let error = harness.state().listen().error.clone().unwrap();
    assert!(error.contains("not connected"), "{error}");
    harness.get_by_label(&format!("\u{26A0} {error}"));
    // The app keeps working: the button is there to try again.
    harness.get_by_label("Start listening");
}

#[test]
fn the_microphone_vanishing_while_listening_is_shown() {
    let pulse = sound_sandbox::PrivatePulse::start();
    let run = sound_sandbox::run_isolated(
        "gui_app::isolated_gui_microphone_vanishes",
        &[("PULSE_SERVER", pulse.server())],
        None,
    );
    eprintln!("{}", run.output);
}

#[test]
#[ignore = "run by the_microphone_vanishing_while_listening_is_shown, in a child process"]
fn isolated_gui_microphone_vanishes() {
    sound_sandbox::require_isolated();
    let mut harness = harness_with(StorageKind::Memory, 1, Settings::default());
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.get_by_label("Start listening").click();
    harness.step();
    step_until(&mut harness, "audio from the microphone", |app| {
        app.listen().device_name.is_some()
            && app
                .listen()
                .session
                .as_ref()
                .is_some_and(|session| session.heard_secs > 0.5)
    });
    // The only source goes away mid-recording.
    sound_sandbox::pactl(&["unload-module", "module-null-sink"]);
    step_until(&mut harness, "the capture error", |app| {
        app.listen().error.is_some() && !app.listen().is_listening()
    });
    let error = harness.state().listen().error.clone().unwrap();
    eprintln!("{error}");
    assert!(
        error.starts_with("The microphone stopped working (was it unplugged"),
        "{error}"
    );
    harness.get_by_label(&format!("\u{26A0} {error}"));
    // The app keeps working: the button is there to try again.
    harness.get_by_label("Start listening");
}

/// A clip of a passage its song plays twice: the Results page names one place and says where
/// else the passage fits.
#[test]
fn the_answer_to_a_repeated_passage_says_where_else_it_fits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let part = |seed: u64, secs: f32| synth::song(seed, secs, common::SR);
    let (a, b) = (part(601, 8.0), part(602, 6.0));
    // A from 0 s and again from 14 s.
    let samples = [a.as_slice(), &b, &a].concat();
    let fingerprint = audiofp::engine::fingerprint_samples(
        &samples,
        common::SR,
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        audiofp::engine::Side::Reference,
    )
    .unwrap();
    Library::open(
        &StorageKind::Sqlite(db.clone()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::CreateIfMissing,
    )
    .unwrap()
    .add(
        &common::new_song("Verse Twice", 601, &fingerprint),
        &fingerprint,
    )
    .unwrap();
    let clip = common::write_clip(
        &dir.path().join("clip.wav"),
        &distort::excerpt(&samples, common::SR, 1.0, 5.0),
        common::SR,
    );
    let mut harness = harness(StorageKind::Sqlite(db));
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().identify_path(clip);
    step_until(&mut harness, "the answer", |app| {
        app.results().latest().is_some()
    });
    let answer = harness.state().results().latest().unwrap();
    let best = answer.identification.matches.first().unwrap();
    let other = if (best.offset_secs - 1.0).abs() <= 0.1 {
        "0:15"
    } else {
        "0:01"
    };
    harness.get_by_label(&format!("This passage repeats: it also fits at {other}."));
    // The song was added from its fingerprint, without a file: nothing to check against.
    assert!(
        harness
            .query_by_label(results_panel::SOURCE_CHECKED_TEXT)
            .is_none()
    );
}

/// An answer whose song's file was read and compared with the clip says so.
#[test]
fn an_answer_checked_against_its_songs_audio_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let music = dir.path().join("music");
    std::fs::create_dir_all(&music).unwrap();
    let song = common::write_song(&music, "Checked Song", 611, 12.0);
    let indexed = std::process::Command::new(env!("CARGO_BIN_EXE_audiofp"))
        .arg("--db")
        .arg(&db)
        .arg("index")
        .arg(&music)
        .output()
        .unwrap();
    assert!(indexed.status.success(), "{indexed:?}");
    let clip = common::write_clip(
        &dir.path().join("clip.wav"),
        &distort::add_white_noise(&song.excerpt(3.0, 4.0), 5.0, 3),
        song.rate,
    );
    let mut config = WorkerConfig::new(StorageKind::Sqlite(db));
    // Every answer checked (by default only those the check could change).
    config.match_config.source_check = SourceCheck::Always;
    let mut harness = harness_of(config, Settings::default(), [1180.0, 760.0]);
    step_until(&mut harness, "the index to open", AudiofpApp::is_ready);
    harness.state_mut().identify_path(clip);
    step_until(&mut harness, "the answer", |app| {
        app.results().latest().is_some()
    });
    harness.get_by_label("Checked Song");
    harness.get_by_label(results_panel::SOURCE_CHECKED_TEXT);
}
