//! The GUI's background worker without any GUI: request/event sequences, cancellation,
//! errors, and the listening loop fed from a sample stream (the microphone path minus cpal).

// Helpers outside #[test] functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use audiofp::cancel::CancelToken;
use audiofp::config::{FingerprintConfig, MatchConfig};
use audiofp::index::{OpenMode, StorageKind};
use audiofp::indexer::KnownFailures;
use audiofp::library::Library;
use audiofp::listening::EARLY_ANSWER_CONFIDENCE;
use audiofp::testkit::{distort, synth, wav};
use audiofp::worker::{AudioChunk, Event, ListenOutcome, Request, WorkerConfig, WorkerHandle};
use crossbeam_channel::bounded;

const SR: u32 = 22_050;
const SONG_SECS: f32 = 15.0;
const TIMEOUT: Duration = Duration::from_secs(120);

fn write_song(dir: &Path, title: &str, seed: u64) -> PathBuf {
    let path = dir.join(format!("{title}.wav"));
    wav::write_wav_i16(&path, &synth::song(seed, SONG_SECS, SR), SR, 1).unwrap();
    path
}

fn spawn(storage: StorageKind) -> WorkerHandle {
    spawn_with_idle_check(storage, WorkerConfig::new(StorageKind::Memory).idle_check)
}

/// A worker that looks for other processes' changes after `idle_check` without requests.
fn spawn_with_idle_check(storage: StorageKind, idle_check: Duration) -> WorkerHandle {
    let mut config = WorkerConfig::new(storage);
    config.index_threads = 2;
    config.idle_check = idle_check;
    WorkerHandle::spawn(config).unwrap()
}

/// Receives events until `pick` returns `Some`; returns it and every event seen.
fn wait_for<T>(
    worker: &WorkerHandle,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> (T, Vec<Event>) {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < TIMEOUT {
        if let Some(event) = worker.recv_timeout(Duration::from_millis(100)) {
            let picked = pick(&event);
            seen.push(event);
            if let Some(value) = picked {
                return (value, seen);
            }
        }
    }
    panic!("timed out waiting for {what}; events: {seen:#?}");
}

fn library_rows(worker: &WorkerHandle) -> Vec<String> {
    worker.send(Request::RefreshLibrary);
    wait_for(worker, "the song list", |event| match event {
        Event::Library { rows } => Some(rows.iter().map(|r| r.title.clone()).collect()),
        _ => None,
    })
    .0
}

fn index(
    worker: &WorkerHandle,
    job: u64,
    paths: Vec<PathBuf>,
) -> (audiofp::indexer::IndexSummary, Vec<Event>) {
    worker.send(Request::IndexPaths {
        job,
        paths,
        cancel: CancelToken::new(),
    });
    wait_for(worker, "the end of indexing", |event| match event {
        Event::IndexFinished { job: done, summary } if *done == job => Some(summary.clone()),
        _ => None,
    })
}

#[test]
fn index_identify_detail_remove_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let songs = dir.path().join("songs");
    std::fs::create_dir(&songs).unwrap();
    let harbour = write_song(&songs, "Blue Harbour", 11);
    write_song(&songs, "Copper Lanterns", 12);
    std::fs::write(
        songs.join("broken.wav"),
        b"RIFF\0\0\0\0WAVEnot really audio",
    )
    .unwrap();
    let missing = dir.path().join("nowhere.mp3");

    let worker = spawn(StorageKind::Memory);
    let (location, _) = wait_for(&worker, "the index to open", |event| match event {
        Event::Opened { location, .. } => Some(location.clone()),
        _ => None,
    });
    assert_eq!(location, "(memory)");

    // A folder (two songs and a broken file) and a path that does not exist.
    let (summary, events) = index(&worker, 1, vec![songs.clone(), missing.clone()]);
    assert_eq!(summary.indexed, 2, "{summary:?}");
    assert_eq!(summary.failed.len(), 2, "{summary:?}");
    assert!(!summary.cancelled);
    let started = events.iter().find_map(|e| match e {
        Event::IndexStarted { total, .. } => Some(*total),
        _ => None,
    });
    assert_eq!(started, Some(4), "three files and one missing path");
    let failures: Vec<(&PathBuf, &String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { path, reason, .. } => Some((path, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    let broken = failures
        .iter()
        .find(|(path, _)| path.ends_with("broken.wav"))
        .expect("broken.wav is reported");
    assert!(!broken.1.is_empty());
    let nowhere = failures
        .iter()
        .find(|(path, _)| **path == missing)
        .expect("the missing path is reported");
    assert!(nowhere.1.contains("no such file"), "{}", nowhere.1);
    let new_rows: usize = events
        .iter()
        .map(|e| match e {
            Event::Indexed { rows, .. } => rows.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(new_rows, 2, "each stored song is announced once");
    let mut titles = library_rows(&worker);
    titles.sort();
    assert_eq!(titles, ["Blue Harbour", "Copper Lanterns"]);

    // Identify a noisy excerpt of "Blue Harbour" from 6.0 s.
    let clip = distort::add_white_noise(
        &distort::excerpt(&synth::song(11, SONG_SECS, SR), SR, 6.0, 5.0),
        20.0,
        3,
    );
    let clip_path = dir.path().join("clip.wav");
    wav::write_wav_i16(&clip_path, &clip, SR, 1).unwrap();
    worker.send(Request::IdentifyFile {
        job: 2,
        path: clip_path,
        cancel: CancelToken::new(),
    });
    let (report, _) = wait_for(&worker, "the identification", |event| match event {
        Event::Matches(report) if report.job == 2 => Some(report.clone()),
        Event::IdentifyFailed { reason, .. } => panic!("identification failed: {reason}"),
        _ => None,
    });
    assert!(report.found(), "{report:#?}");
    let best = &report.identification.matches[0];
    assert_eq!(best.song.title, "Blue Harbour");
    assert!(
        (best.offset_secs - 6.0).abs() < 0.2,
        "offset {}",
        best.offset_secs
    );
    assert_eq!(report.label, "clip.wav");
    assert!(report.evidence.aligned.iter().filter(|&&a| a).count() >= 5);
    assert_eq!(report.evidence.hits.len(), report.evidence.aligned.len());
    let (peak_offset, _) = report
        .offset_histogram
        .iter()
        .max_by_key(|(_, count)| *count)
        .copied()
        .unwrap();
    assert!(
        (peak_offset - 6.0).abs() < 0.2,
        "histogram peak at {peak_offset}"
    );

    // A file that is not there: a reason naming it.
    worker.send(Request::IdentifyFile {
        job: 3,
        path: dir.path().join("gone.wav"),
        cancel: CancelToken::new(),
    });
    let (reason, _) = wait_for(&worker, "the failure", |event| match event {
        Event::IdentifyFailed { job: 3, reason } => Some(reason.clone()),
        _ => None,
    });
    assert!(reason.contains("gone.wav"), "{reason}");

    // The song detail: spectrogram tiles and peaks; then with the file moved away.
    let harbour_id = report.identification.matches[0].song.id;
    // An answer from another index (or an old one) names the id of another song there: the
    // page of the song this library has under that id is not shown for it.
    worker.send(Request::LoadSongDetail {
        song_id: harbour_id,
        content_hash: Some("0".repeat(64)),
    });
    let (gone, _) = wait_for(
        &worker,
        "the refusal of another song's page",
        |event| match event {
            Event::SongDetailFailed { gone, reason, .. } => Some((*gone, reason.clone())),
            _ => None,
        },
    );
    assert!(gone.0, "{gone:?}");
    assert!(gone.1.contains("no longer in the library"), "{gone:?}");
    worker.send(Request::LoadSongDetail {
        song_id: harbour_id,
        content_hash: Some(report.identification.matches[0].song.content_hash.clone()),
    });
    let (detail, _) = wait_for(&worker, "the song detail", |event| match event {
        Event::SongDetail(detail) => Some(detail.clone()),
        _ => None,
    });
    assert!(detail.note.is_none(), "{:?}", detail.note);
    assert_eq!(detail.tiles.len(), 1);
    assert_eq!(detail.tiles[0].size[1], detail.band_bins);
    let expected_frames = (SONG_SECS as f64 / detail.frame_secs) as usize;
    assert!(
        detail.num_frames.abs_diff(expected_frames) < 8,
        "{} frames",
        detail.num_frames
    );
    assert!(detail.peaks.len() > 100);
    std::fs::rename(&harbour, dir.path().join("moved.wav")).unwrap();
    worker.send(Request::LoadSongDetail {
        song_id: harbour_id,
        content_hash: None,
    });
    let (moved, _) = wait_for(&worker, "the song detail", |event| match event {
        Event::SongDetail(detail) => Some(detail.clone()),
        _ => None,
    });
    assert!(moved.tiles.is_empty());
    assert_eq!(moved.peaks, detail.peaks);
    assert!(
        moved
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("no longer"),
        "{:?}",
        moved.note
    );

    // Remove it.
    worker.send(Request::Remove {
        song_id: harbour_id,
    });
    wait_for(&worker, "the removal", |event| match event {
        Event::Removed { song_id } if *song_id == harbour_id => Some(()),
        Event::Error { reason, .. } => panic!("{reason}"),
        _ => None,
    });
    assert_eq!(library_rows(&worker), ["Copper Lanterns"]);
}

#[test]
fn cancelling_indexing_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that indexing takes a good fraction of a second.
    for seed in 0..8 {
        let path = dir.path().join(format!("song {seed}.wav"));
        wav::write_wav_i16(&path, &synth::song(100 + seed, 90.0, SR), SR, 1).unwrap();
    }
    let worker = spawn(StorageKind::Memory);

    // Cancelled before it starts (token): nothing is added.
    let cancel = CancelToken::new();
    cancel.cancel();
    worker.send(Request::IndexPaths {
        job: 1,
        paths: vec![dir.path().to_path_buf()],
        cancel,
    });
    let (summary, _) = wait_for(&worker, "the cancelled job", |event| match event {
        Event::IndexFinished { job: 1, summary } => Some(summary.clone()),
        _ => None,
    });
    assert!(summary.cancelled);
    assert_eq!(summary.indexed, 0);

    // Cancelled through the request queue: the job sees it before analysing anything.
    worker.send(Request::IndexPaths {
        job: 2,
        paths: vec![dir.path().to_path_buf()],
        cancel: CancelToken::new(),
    });
    worker.send(Request::Cancel { job: 2 });
    let (summary, _) = wait_for(&worker, "the end of job 2", |event| match event {
        Event::IndexFinished { job: 2, summary } => Some(summary.clone()),
        _ => None,
    });
    assert!(summary.cancelled, "{summary:?}");
    assert_eq!(summary.indexed, 0, "{summary:?}");

    // Cancelled with its token while it runs (the GUI's Cancel button).
    let cancel = CancelToken::new();
    worker.send(Request::IndexPaths {
        job: 3,
        paths: vec![dir.path().to_path_buf()],
        cancel: cancel.clone(),
    });
    // On the job's start, not its first progress report: progress is sent at most every
    // 100 ms, and a release build indexes these eight songs in less.
    wait_for(&worker, "the start of job 3", |event| match event {
        Event::IndexStarted { job: 3, .. } => Some(()),
        _ => None,
    });
    cancel.cancel();
    let (summary, _) = wait_for(&worker, "the end of job 3", |event| match event {
        Event::IndexFinished { job: 3, summary } => Some(summary.clone()),
        _ => None,
    });
    assert!(summary.cancelled, "{summary:?}");
    assert!(summary.indexed < 8, "{summary:?}");
    // Songs stored before the cancel stay, whole; a re-run completes the job.
    assert_eq!(library_rows(&worker).len(), summary.indexed);
    let (summary, _) = index(&worker, 4, vec![dir.path().to_path_buf()]);
    assert_eq!(library_rows(&worker).len(), 8, "{summary:?}");
}

/// Uniform white noise of `amplitude` (xorshift, seeded).
fn noise(len: usize, seed: u64, amplitude: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

/// Sends `samples` (at `rate`) in 20 ms chunks, four times faster than real time.
fn feed(samples: Vec<f32>, rate: u32) -> crossbeam_channel::Receiver<AudioChunk> {
    let (tx, rx) = bounded(4096);
    std::thread::Builder::new()
        .name("test-feeder".to_string())
        .spawn(move || {
            for chunk in samples.chunks(rate as usize / 50) {
                let sent = tx.send(AudioChunk {
                    samples: chunk.to_vec(),
                    sample_rate_hz: rate,
                });
                if sent.is_err() {
                    return; // The listener is done.
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .unwrap();
    rx
}

/// Starts listening session `job` on `chunks` and waits for its end: the outcome and the
/// events seen on the way.
fn listen_to_the_end(
    worker: &WorkerHandle,
    job: u64,
    chunks: crossbeam_channel::Receiver<AudioChunk>,
    timeout_secs: f64,
) -> (ListenOutcome, Vec<Event>) {
    worker.send(Request::Listen {
        job,
        chunks,
        timeout_secs,
        cancel: CancelToken::new(),
    });
    wait_for(worker, "the end of listening", |event| match event {
        Event::ListenFinished {
            job: finished,
            outcome,
        } if *finished == job => Some(outcome.clone()),
        _ => None,
    })
}

#[test]
fn listening_to_a_sample_stream() {
    let dir = tempfile::tempdir().unwrap();
    write_song(dir.path(), "Blue Harbour", 11);
    write_song(dir.path(), "Copper Lanterns", 12);
    write_song(dir.path(), "Night Ferry", 13);
    let worker = spawn(StorageKind::Memory);
    let (summary, _) = index(&worker, 1, vec![dir.path().to_path_buf()]);
    assert_eq!(summary.indexed, 3);

    // A "microphone" at 48 kHz: half a second of room noise, then "Night Ferry" from 4 s.
    let mic_rate = 48_000;
    let song = distort::excerpt(&synth::song(13, SONG_SECS, SR), SR, 4.0, 9.0);
    let mut heard = noise((mic_rate / 2) as usize, 1, 0.001);
    heard.extend(distort::add_white_noise(
        &distort::resample_linear(&song, SR, mic_rate),
        15.0,
        2,
    ));
    worker.send(Request::Listen {
        job: 2,
        chunks: feed(heard, mic_rate),
        timeout_secs: 15.0,
        cancel: CancelToken::new(),
    });
    let (report, events) = wait_for(&worker, "a match", |event| match event {
        Event::Matches(report) => Some(report.clone()),
        Event::ListenFinished { outcome, .. } => {
            panic!("listening ended without a match: {outcome:?}")
        }
        _ => None,
    });
    assert_eq!(report.label, "microphone");
    assert_eq!(report.identification.matches[0].song.title, "Night Ferry");
    assert!(
        report.clip_secs < 9.0,
        "stopped as soon as it was sure: {} s",
        report.clip_secs
    );
    let attempts_before = events
        .iter()
        .filter_map(|e| match e {
            Event::ListenProgress { attempts, .. } => Some(*attempts),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let heard_reports = events
        .iter()
        .filter(|e| matches!(e, Event::ListenProgress { .. }))
        .count();
    assert!(heard_reports >= 4, "the heard time is reported as it grows");
    assert!(
        attempts_before <= 6,
        "{attempts_before} attempts before the match"
    );
    let (outcome, _) = wait_for(&worker, "the end of listening", |event| match event {
        Event::ListenFinished { job: 2, outcome } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(outcome, ListenOutcome::Matched);

    // A record played 2 % fast (the same samples at a 2 % higher rate): the speed search
    // finds it, as `identify` does.
    let song = distort::excerpt(&synth::song(12, SONG_SECS, SR), SR, 3.0, 10.0);
    let fast_rate = (f64::from(SR) * 1.02).round() as u32;
    worker.send(Request::Listen {
        job: 5,
        chunks: feed(song, fast_rate),
        timeout_secs: 12.0,
        cancel: CancelToken::new(),
    });
    let (report, _) = wait_for(&worker, "a match at 2 % fast", |event| match event {
        Event::Matches(report) if report.job == 5 => Some(report.clone()),
        Event::ListenFinished { job: 5, outcome } => {
            panic!("listening to a fast record ended without a match: {outcome:?}")
        }
        _ => None,
    });
    assert_eq!(
        report.identification.matches[0].song.title,
        "Copper Lanterns"
    );
    assert_eq!(report.identification.speed, 1.02);
    wait_for(&worker, "the end of that session", |event| match event {
        Event::ListenFinished { job: 5, .. } => Some(()),
        _ => None,
    });

    // Noise only: gives up after the timeout (in heard seconds) with "no match".
    let (outcome, events) = listen_to_the_end(
        &worker,
        3,
        feed(noise(mic_rate as usize * 5, 9, 0.1), mic_rate),
        3.0,
    );
    assert!(
        matches!(outcome, ListenOutcome::NoMatch { heard_secs } if heard_secs >= 3.0),
        "{outcome:?}"
    );
    assert!(events.iter().all(|e| !matches!(e, Event::Matches(_))));

    // Digital silence (a muted microphone): said as such, not "no match".
    let (outcome, _) = listen_to_the_end(
        &worker,
        6,
        feed(vec![0.0; mic_rate as usize * 5], mic_rate),
        3.0,
    );
    assert!(
        matches!(outcome, ListenOutcome::OnlySilence { heard_secs } if heard_secs >= 3.0),
        "{outcome:?}"
    );

    // A source that goes away at once: no audio.
    let (tx, rx) = bounded::<AudioChunk>(1);
    drop(tx);
    let (outcome, _) = listen_to_the_end(&worker, 4, rx, 15.0);
    assert_eq!(outcome, ListenOutcome::NoAudio);
}

#[test]
fn an_unreadable_index_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    std::fs::write(&db, vec![0x5a_u8; 4096]).unwrap();
    let worker = spawn(StorageKind::Sqlite(db));
    let (reason, _) = wait_for(&worker, "the open failure", |event| match event {
        Event::OpenFailed { reason } => Some(reason.clone()),
        Event::Opened { .. } => panic!("a garbage file opened as an index"),
        _ => None,
    });
    assert!(reason.contains("index.db"), "{reason}");
    worker.send(Request::IdentifyFile {
        job: 1,
        path: dir.path().join("clip.wav"),
        cancel: CancelToken::new(),
    });
    wait_for(&worker, "a failure answer", |event| match event {
        Event::IdentifyFailed { job: 1, .. } => Some(()),
        _ => None,
    });
    // Files to add (dropped on the window) are each reported by name, with the reason.
    let asked = vec![dir.path().join("a.wav"), dir.path().join("folder")];
    let (_, events) = index(&worker, 2, asked.clone());
    let failed: Vec<(PathBuf, String)> = events
        .into_iter()
        .filter_map(|event| match event {
            Event::Failed {
                job: 2,
                path,
                reason,
            } => Some((path, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed
            .iter()
            .map(|(path, _)| path.clone())
            .collect::<Vec<_>>(),
        asked
    );
    assert!(failed.iter().all(|(_, why)| *why == reason), "{failed:?}");
}

/// Nice value of this process's thread named `name` (Linux /proc), if there is one.
#[cfg(target_os = "linux")]
fn nice_of_thread(name: &str) -> Option<i64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3, nice is field 19.
        let after_comm = &stat[stat.rfind(')')? + 2..];
        return after_comm.split_whitespace().nth(16)?.parse().ok();
    }
    None
}

#[cfg(target_os = "linux")]
#[test]
fn worker_runs_below_the_window_priority() {
    let worker = spawn(StorageKind::Memory);
    // The worker answers once its thread is running.
    library_rows(&worker);
    let worker_nice = nice_of_thread("audiofp-worker").expect("the worker thread");
    let own_nice = nice_of_thread(
        std::thread::current()
            .name()
            .map(|n| &n[..n.len().min(15)])
            .unwrap_or(""),
    )
    .unwrap_or(0);
    assert!(
        worker_nice > own_nice,
        "worker nice {worker_nice}, caller nice {own_nice}"
    );
}

/// A 2 s excerpt of the song of `seed` (with noise) that the library matches to it above the
/// threshold but below the early bar, as the worker's attempt would: searched for over offsets
/// and noise levels, so that the test does not hang on one clip's exact confidence.
fn clip_matching_below_the_early_bar(library: &Library, seed: u64, title: &str) -> (Vec<f32>, f64) {
    let song = synth::song(seed, SONG_SECS, SR);
    let tries = [9.0_f32, 6.0, 3.0, 0.0, -3.0]
        .into_iter()
        .flat_map(|snr_db| (0..12).map(move |step| (snr_db, 0.5 + step as f32)));
    let mut seen = Vec::new();
    for (snr_db, start) in tries {
        let clip = distort::add_white_noise(&distort::excerpt(&song, SR, start, 2.0), snr_db, 5);
        let fingerprint = audiofp::engine::fingerprint_samples(
            &clip,
            SR,
            library.config(),
            library.match_config(),
            audiofp::engine::Side::Query,
        )
        .unwrap();
        let identification = library.identify_fingerprint(&fingerprint, 0.0).unwrap();
        let answered_at = library.match_config().threshold_for_clip(2.0);
        if let Some(top) = identification.matches.first() {
            seen.push((snr_db, start, top.song.title.clone(), top.confidence));
            if top.song.title == title
                && (answered_at..EARLY_ANSWER_CONFIDENCE).contains(&top.confidence)
            {
                return (clip, top.confidence);
            }
        }
    }
    panic!("no 2 s clip of {title} matches between the threshold and the early bar: {seen:?}");
}

#[test]
fn a_listening_session_whose_source_ends_answers_its_last_attempt_at_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = [
        ("Blue Harbour", 11),
        ("Copper Lanterns", 12),
        ("Night Ferry", 13),
    ]
    .map(|(title, seed)| write_song(dir.path(), title, seed))
    .to_vec();
    let mut library = Library::open(
        &StorageKind::Memory,
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    let summary = audiofp::indexer::index_files(
        &mut library,
        paths.clone(),
        2,
        KnownFailures::Report,
        &CancelToken::new(),
        |_: &_| {},
    )
    .unwrap();
    assert_eq!(summary.indexed, 3);
    let (clip, confidence) = clip_matching_below_the_early_bar(&library, 13, "Night Ferry");

    let worker = spawn(StorageKind::Memory);
    let (summary, _) = index(&worker, 1, paths);
    assert_eq!(summary.indexed, 3);
    // The source delivers the 2 s at once and ends: the attempt at 2 s is not yet the last
    // (the source has not ended when it is made), so it does not answer below the early bar;
    // then the source ends with nothing new heard, and that attempt is judged as the last.
    let (tx, rx) = bounded::<AudioChunk>(1);
    tx.send(AudioChunk {
        samples: clip,
        sample_rate_hz: SR,
    })
    .unwrap();
    drop(tx);
    let (outcome, events) = listen_to_the_end(&worker, 2, rx, 15.0);
    assert_eq!(outcome, ListenOutcome::Matched, "{events:#?}");
    let guessed_first = events.iter().any(|event| {
        matches!(event, Event::ListenProgress { attempts: 1, best_guess: Some((title, _)), .. }
            if title == "Night Ferry")
    });
    assert!(
        guessed_first,
        "the attempt did not answer at once: {events:#?}"
    );
    let report = events
        .iter()
        .find_map(|event| match event {
            Event::Matches(report) => Some(report),
            _ => None,
        })
        .unwrap();
    let top = &report.identification.matches[0];
    assert_eq!(top.song.title, "Night Ferry");
    assert!((top.confidence - confidence).abs() < 1e-9, "{top:?}");
    assert!(
        (report.clip_secs - 2.0).abs() < 1e-6,
        "{}",
        report.clip_secs
    );
}

/// Indexes `song` into the database at `db` through a connection of its own, as `audiofp
/// index` in another process does.
fn index_from_another_connection(db: &Path, song: PathBuf) {
    let mut other = Library::open_for_adding(
        &StorageKind::Sqlite(db.to_path_buf()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::MustExist,
    )
    .unwrap();
    let summary = audiofp::indexer::index_files(
        &mut other,
        vec![song],
        1,
        KnownFailures::Report,
        &CancelToken::new(),
        |_: &_| {},
    )
    .unwrap();
    assert_eq!(summary.indexed, 1, "{summary:?}");
}

/// The app left alone while `audiofp index` and `audiofp remove` run in a terminal: its library
/// list follows without any click.
#[test]
fn an_idle_app_shows_songs_other_processes_add_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let songs = dir.path().join("songs");
    std::fs::create_dir(&songs).unwrap();
    let worker = spawn_with_idle_check(StorageKind::Sqlite(db.clone()), Duration::from_millis(100));
    let (summary, _) = index(&worker, 1, vec![write_song(&songs, "First", 31)]);
    assert_eq!(summary.indexed, 1, "{summary:?}");

    index_from_another_connection(&db, write_song(&songs, "From The Terminal", 32));
    let (rows, _) = wait_for(&worker, "the list with the new song", |event| match event {
        Event::Library { rows } if rows.len() == 2 => Some(rows.clone()),
        _ => None,
    });
    assert!(
        rows.iter().any(|row| row.title == "From The Terminal"),
        "{rows:?}"
    );

    let mut other = Library::open(
        &StorageKind::Sqlite(db.clone()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::MustExist,
    )
    .unwrap();
    let first_id = rows
        .iter()
        .find(|row| row.title == "First")
        .unwrap()
        .song_id;
    assert!(other.remove(first_id).unwrap());
    drop(other);
    let (rows, _) = wait_for(
        &worker,
        "the list without the removed song",
        |event| match event {
            Event::Library { rows } if rows.len() == 1 => Some(rows.clone()),
            _ => None,
        },
    );
    assert_eq!(rows[0].title, "From The Terminal");

    // The Song page of the removed song ends in a message, not a spinner.
    worker.send(Request::LoadSongDetail {
        song_id: first_id,
        content_hash: None,
    });
    let (gone, _) = wait_for(&worker, "the detail's failure", |event| match event {
        Event::SongDetailFailed { song_id, gone, .. } if *song_id == first_id => Some(*gone),
        Event::SongDetail(_) => panic!("a removed song's detail was loaded"),
        _ => None,
    });
    assert!(gone);
}

/// `audiofp index` run on the app's database while the app is open (here a second connection,
/// as another process has): the app's next request takes the song in, lists it and finds it.
#[test]
fn songs_indexed_by_another_process_are_found_while_the_app_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let songs = dir.path().join("songs");
    std::fs::create_dir(&songs).unwrap();
    let first = write_song(&songs, "Already There", 21);
    // Catching up only when a request comes, so that the events below are the requests'.
    let worker = spawn_with_idle_check(StorageKind::Sqlite(db.clone()), Duration::from_secs(3600));
    let (summary, _) = index(&worker, 1, vec![first]);
    assert_eq!(summary.indexed, 1, "{summary:?}");

    let later = dir.path().join("later");
    std::fs::create_dir(&later).unwrap();
    let newcomer = write_song(&later, "Indexed Meanwhile", 22);
    index_from_another_connection(&db, newcomer);

    let clip = distort::excerpt(&synth::song(22, SONG_SECS, SR), SR, 4.0, 5.0);
    worker.send(Request::IdentifyClip {
        job: 2,
        samples: clip,
        sample_rate_hz: SR,
        label: "clip".to_string(),
    });
    let (report, seen) = wait_for(&worker, "the identification", |event| match event {
        Event::Matches(report) if report.job == 2 => Some(report.clone()),
        Event::IdentifyFailed { reason, .. } => panic!("identification failed: {reason}"),
        _ => None,
    });
    assert!(report.found(), "{report:#?}");
    assert_eq!(
        report.identification.matches[0].song.title,
        "Indexed Meanwhile"
    );
    // Taking the song in, the worker showed the library again.
    let listed_both = seen.iter().any(|event| {
        matches!(event, Event::Library { rows }
            if rows.iter().any(|row| row.title == "Indexed Meanwhile") && rows.len() == 2)
    });
    assert!(listed_both, "{seen:#?}");

    // Another change, then the app asks for the list: it is sent once, not once for the catch
    // up and again for the request.
    let third = write_song(&later, "Third", 23);
    index_from_another_connection(&db, third);
    worker.send(Request::RefreshLibrary);
    worker.send(Request::SetMatchThreshold { threshold: 0.8 });
    worker.send(Request::LoadSongDetail {
        song_id: 1,
        content_hash: None,
    });
    let (_, seen) = wait_for(&worker, "the song detail", |event| match event {
        Event::SongDetail(_) => Some(()),
        _ => None,
    });
    let lists: Vec<usize> = seen
        .iter()
        .filter_map(|event| match event {
            Event::Library { rows } => Some(rows.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lists, vec![3], "{seen:#?}");
}

/// Writes "not audio" to a named pipe for every reader that opens it, from
/// [`start`](PipeFeeder::start) on, or from its drop: a failing test must not leave the
/// worker's analysis thread waiting on the pipe (and the test hanging in the worker's drop).
struct PipeFeeder {
    path: PathBuf,
    started: bool,
}

impl PipeFeeder {
    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let path = self.path.clone();
        // Detached: after the last reader it waits in `open` until the process ends.
        std::thread::Builder::new()
            .name("test-pipe-feeder".to_string())
            .spawn(move || {
                while let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&path) {
                    use std::io::Write;
                    pipe.write_all(b"not audio").ok();
                }
            })
            .unwrap();
    }
}

impl Drop for PipeFeeder {
    fn drop(&mut self) {
        self.start();
    }
}

/// The id of the song titled `title` in the worker's song list.
fn song_id(worker: &WorkerHandle, title: &str) -> i64 {
    worker.send(Request::RefreshLibrary);
    wait_for(worker, "the song list", |event| match event {
        Event::Library { rows } => Some(rows.iter().find(|r| r.title == title).map(|r| r.song_id)),
        _ => None,
    })
    .0
    .unwrap_or_else(|| panic!("{title} is in the library"))
}

/// A long indexing run does not hold up the app: identifications, a listening session, song
/// details and removals are served between its songs. The run is held open by a named pipe,
/// whose analysis waits until the test writes to it.
#[cfg(unix)]
#[test]
fn requests_are_served_while_an_indexing_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write_song(dir.path(), "Blue Harbour", 11);
    write_song(dir.path(), "Copper Lanterns", 12);
    let pipe = dir.path().join("stream.wav");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    assert!(made.is_ok_and(|status| status.success()), "mkfifo");
    let worker = spawn(StorageKind::Memory);
    let (summary, _) = index(&worker, 1, vec![dir.path().join("Blue Harbour.wav")]);
    assert_eq!(summary.indexed, 1);

    worker.send(Request::IndexPaths {
        job: 2,
        paths: vec![dir.path().join("Copper Lanterns.wav"), pipe.clone()],
        cancel: CancelToken::new(),
    });
    let mut feeder = PipeFeeder {
        path: pipe,
        started: false,
    };
    // "Copper Lanterns" is stored; the pipe's analysis waits.
    let (_, mut during_run) = wait_for(&worker, "the first song of run 2", |event| match event {
        Event::Indexed { job: 2, rows } => Some(rows.len()),
        _ => None,
    });
    let copper = song_id(&worker, "Copper Lanterns");

    // A clip dropped on the window: the song this run has just added, found mid-run.
    let clip = distort::excerpt(&synth::song(12, SONG_SECS, SR), SR, 5.0, 5.0);
    worker.send(Request::IdentifyClip {
        job: 3,
        samples: clip,
        sample_rate_hz: SR,
        label: "dropped clip".to_string(),
    });
    let (report, seen) = wait_for(&worker, "the identification", |event| match event {
        Event::Matches(report) if report.job == 3 => Some(report.clone()),
        Event::IdentifyFailed { reason, .. } => panic!("identification failed: {reason}"),
        _ => None,
    });
    during_run.extend(seen);
    let best = report.identification.matches.first().expect("a match");
    assert_eq!(best.song.title, "Copper Lanterns");
    assert!((best.offset_secs - 5.0).abs() < 0.2, "{}", best.offset_secs);

    // Listening: "Blue Harbour" through the microphone from 3 s.
    let heard = distort::excerpt(&synth::song(11, SONG_SECS, SR), SR, 3.0, 8.0);
    let (outcome, seen) = listen_to_the_end(&worker, 4, feed(heard, SR), 10.0);
    during_run.extend(seen);
    assert_eq!(outcome, ListenOutcome::Matched);

    // The song page, then removing the song.
    worker.send(Request::LoadSongDetail {
        song_id: copper,
        content_hash: None,
    });
    let (detail, seen) = wait_for(&worker, "the song detail", |event| match event {
        Event::SongDetail(detail) => Some(detail.clone()),
        Event::SongDetailFailed { reason, .. } => panic!("no detail: {reason}"),
        _ => None,
    });
    during_run.extend(seen);
    assert_eq!(detail.song.title, "Copper Lanterns");
    assert!(!detail.tiles.is_empty() && !detail.peaks.is_empty());
    worker.send(Request::Remove { song_id: copper });
    let (_, seen) = wait_for(&worker, "the removal", |event| match event {
        Event::Removed { song_id } if *song_id == copper => Some(()),
        _ => None,
    });
    during_run.extend(seen);
    assert!(
        !during_run
            .iter()
            .any(|event| matches!(event, Event::IndexFinished { .. })),
        "every request was answered while run 2 went on"
    );

    // The pipe gives no audio: the run ends with it failed, and the removal stands.
    feeder.start();
    let (summary, _) = wait_for(&worker, "the end of run 2", |event| match event {
        Event::IndexFinished { job: 2, summary } => Some(summary.clone()),
        _ => None,
    });
    assert_eq!(
        (summary.indexed, summary.failed.len()),
        (1, 1),
        "{summary:?}"
    );
    assert!(
        summary.failed[0].path.ends_with("stream.wav"),
        "{summary:?}"
    );
    assert_eq!(library_rows(&worker), ["Blue Harbour"]);
}
