//! The microphone path for real: cpal capture → worker listening loop → a match.
//!
//! `played_song_is_identified_through_the_microphone` needs a sound server whose default input
//! hears what is played: run it under `scripts/fake-mic.sh run cargo test --test gui_mic`
//! (a PulseAudio null sink whose monitor is the default source; sets `AUDIOFP_FAKE_MIC=1`).
//! Without that variable it fails and says how to run it. The missing-device test always runs.

// Helpers outside #[test] functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use audiofp::cancel::CancelToken;
use audiofp::capture::{self, CaptureEvent};
use audiofp::index::StorageKind;
use audiofp::testkit::{distort, synth, wav};
use audiofp::worker::{AudioChunk, Event, Request, Waker, WorkerConfig, WorkerHandle};
use crossbeam_channel::bounded;

const SR: u32 = 22_050;
const SONG_SECS: f32 = 20.0;

/// Kills the player when the test ends, however it ends.
struct Player(Child);

impl Drop for Player {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

fn play(path: &Path) -> Player {
    let child = Command::new("paplay")
        .arg("--latency-msec=20")
        .arg(path)
        .spawn()
        .expect("paplay (pulseaudio-utils) is needed for the microphone test");
    Player(child)
}

#[test]
fn played_song_is_identified_through_the_microphone() {
    assert!(
        std::env::var("AUDIOFP_FAKE_MIC").is_ok(),
        "no fake microphone: run the tests with `bash scripts/check.sh`, or \
         `scripts/fake-mic.sh run cargo test --test gui_mic`"
    );
    let dir = tempfile::tempdir().unwrap();
    let songs = dir.path().join("songs");
    std::fs::create_dir(&songs).unwrap();
    for (title, seed) in [
        ("Blue Harbour", 31),
        ("Copper Lanterns", 32),
        ("Night Ferry", 33),
    ] {
        let samples = synth::song(seed, SONG_SECS, SR);
        wav::write_wav_i16(&songs.join(format!("{title}.wav")), &samples, SR, 1).unwrap();
    }
    // What the "room" hears: 12 s of "Copper Lanterns" from 5 s, stereo at 44.1 kHz.
    let excerpt = distort::resample_linear(
        &distort::excerpt(&synth::song(32, SONG_SECS, SR), SR, 5.0, 12.0),
        SR,
        44_100,
    );
    let stereo: Vec<f32> = excerpt.iter().flat_map(|&s| [s, s]).collect();
    let probe = dir.path().join("probe.wav");
    wav::write_wav_i16(&probe, &stereo, 44_100, 2).unwrap();

    let mut config = WorkerConfig::new(StorageKind::Memory);
    config.index_threads = 2;
    let worker = WorkerHandle::spawn(config).unwrap();
    worker.send(Request::IndexPaths {
        job: 1,
        paths: vec![songs],
        cancel: CancelToken::new(),
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "indexing did not finish");
        if let Some(Event::IndexFinished { summary, .. }) =
            worker.recv_timeout(Duration::from_millis(100))
        {
            assert_eq!(summary.indexed, 3, "{summary:?}");
            break;
        }
    }

    // The real capture thread on the default input device.
    let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(1024);
    let mut capture = capture::start(None, chunk_tx, Waker::default()).unwrap();
    let started = capture.recv_timeout(Duration::from_secs(15));
    let Some(CaptureEvent::Started {
        device_name,
        sample_rate_hz,
        channels,
    }) = started
    else {
        panic!("capture did not start: {started:?}");
    };
    eprintln!("capturing from {device_name}: {sample_rate_hz} Hz, {channels} channel(s)");
    worker.send(Request::Listen {
        job: 2,
        chunks: chunk_rx,
        timeout_secs: 15.0,
        cancel: CancelToken::new(),
    });
    std::thread::sleep(Duration::from_millis(300));
    let _player = play(&probe);

    let deadline = Instant::now() + Duration::from_secs(40);
    let report = loop {
        assert!(
            Instant::now() < deadline,
            "no answer from the listening job"
        );
        match worker.recv_timeout(Duration::from_millis(100)) {
            Some(Event::Matches(report)) => break report,
            Some(Event::ListenFinished { outcome, .. }) => {
                let capture_events: Vec<CaptureEvent> = capture.try_iter().collect();
                panic!("listening ended without a match: {outcome:?}; capture: {capture_events:?}");
            }
            Some(Event::ListenProgress {
                heard_secs,
                best_guess,
                ..
            }) => eprintln!("heard {heard_secs:.1} s, best guess {best_guess:?}"),
            _ => {}
        }
    };
    let best = &report.identification.matches[0];
    eprintln!(
        "identified {:?} at {:.2} s with {:.0}% after {:.1} s of audio",
        best.song.title,
        best.offset_secs,
        best.confidence * 100.0,
        report.clip_secs
    );
    assert_eq!(best.song.title, "Copper Lanterns");
    // The recording starts before the player does, by an unknown lag: the clip's start is
    // up to that lag before 5 s into the song.
    assert!(
        (2.5..5.3).contains(&best.offset_secs),
        "the excerpt starts 5 s into the song, minus the start lag: {:.2}",
        best.offset_secs
    );
    // The capture also fed the level meter and the live spectrogram.
    let events: Vec<CaptureEvent> = capture.try_iter().collect();
    let columns: usize = events
        .iter()
        .map(|e| match e {
            CaptureEvent::Level { columns, .. } => columns.len(),
            _ => 0,
        })
        .sum();
    let loudest = events
        .iter()
        .filter_map(|e| match e {
            CaptureEvent::Level { rms_dbfs, .. } => Some(*rms_dbfs),
            _ => None,
        })
        .fold(f32::NEG_INFINITY, f32::max);
    assert!(columns > 20, "{columns} live spectrogram columns");
    assert!(
        loudest > -40.0,
        "the music was heard: loudest {loudest} dBFS"
    );
    capture.stop();
    let stopped = (0..50).find_map(|_| match capture.recv_timeout(Duration::from_millis(100)) {
        Some(CaptureEvent::Stopped { .. }) => Some(()),
        _ => None,
    });
    assert!(stopped.is_some(), "the capture thread reports its end");
}

#[test]
fn a_missing_input_device_is_a_message_not_a_crash() {
    let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(16);
    let capture = capture::start(
        Some("alsa:no-such-microphone".to_string()),
        chunk_tx,
        Waker::default(),
    )
    .unwrap();
    let mut message = None;
    for _ in 0..100 {
        match capture.recv_timeout(Duration::from_millis(100)) {
            Some(CaptureEvent::Error { message: text }) => {
                message = Some(text);
                break;
            }
            Some(CaptureEvent::Started { device_name, .. }) => {
                panic!("a missing device started: {device_name}")
            }
            _ => {}
        }
    }
    let message = message.expect("an error message");
    assert!(message.contains("not connected"), "{message}");
    // The chunk sender is dropped with the thread: a listening job would end.
    let ended = chunk_rx.recv_timeout(Duration::from_secs(5));
    assert!(ended.is_err(), "no audio from a missing device");
}
