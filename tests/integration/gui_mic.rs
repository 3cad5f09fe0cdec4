//! The microphone path for real: cpal capture → worker listening loop → a match.
//!
//! `played_song_is_identified_through_the_microphone` needs a sound server whose default input
//! hears what is played: run it under `scripts/fake-mic.sh run cargo test --test integration gui_mic::`
//! (a PulseAudio null sink whose monitor is the default source; sets `AUDIOFP_FAKE_MIC=1`).
//! Without that variable it fails and says how to run it. The missing-device test always runs.
//!
//! The failure tests break a sound system of their own (see `sound_sandbox`), in a child
//! process: the only microphone vanishing mid-recording (its PulseAudio source is unloaded),
//! a microphone that stops sending audio (its source is suspended), and a device the user may
//! not open (EACCES). Each must end in a clear message and the end of the capture thread.

// Helpers outside #[test] functions unwrap too: a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use crate::sound_sandbox;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use audiofp::cancel::CancelToken;
use audiofp::capture::{self, CaptureEvent, CaptureHandle, STALL_TIMEOUT};
use audiofp::index::StorageKind;
use audiofp::testkit::{distort, synth, wav};
use audiofp::worker::{AudioChunk, Event, Request, Waker, WorkerConfig, WorkerHandle};
use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};
use sound_sandbox::{LockedAlsaDevice, PrivatePulse, pactl, require_isolated, run_isolated};

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
         `scripts/fake-mic.sh run cargo test --test integration gui_mic::`"
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

/// The next event `wanted` accepts, waiting at most `timeout`; the events before it.
fn wait_for(
    capture: &CaptureHandle,
    timeout: Duration,
    what: &str,
    wanted: impl Fn(&CaptureEvent) -> bool,
) -> (CaptureEvent, Vec<CaptureEvent>) {
    let deadline = Instant::now() + timeout;
    let mut before = Vec::new();
    while Instant::now() < deadline {
        match capture.recv_timeout(Duration::from_millis(50)) {
            Some(event) if wanted(&event) => return (event, before),
            Some(event) => before.push(event),
            None => {}
        }
    }
    panic!("no {what} within {timeout:?}; events: {before:?}");
}

/// Waits for the stream to start and deliver audio (a few level updates).
fn wait_until_recording(capture: &CaptureHandle) {
    let (started, before) = wait_for(capture, Duration::from_secs(15), "start", |e| {
        matches!(e, CaptureEvent::Started { .. } | CaptureEvent::Error { .. })
    });
    assert!(
        matches!(started, CaptureEvent::Started { .. }),
        "capture did not start: {started:?} after {before:?}"
    );
    for _ in 0..5 {
        let (_, before) = wait_for(capture, Duration::from_secs(5), "audio", |e| {
            matches!(e, CaptureEvent::Level { .. })
        });
        assert!(before.is_empty(), "while recording: {before:?}");
    }
}

/// The message of the next event, which must be an error, within `timeout`.
fn expect_error(capture: &CaptureHandle, timeout: Duration) -> String {
    let (event, before) = wait_for(capture, timeout, "error", |e| {
        !matches!(e, CaptureEvent::Level { .. })
    });
    let CaptureEvent::Error { message } = event else {
        panic!("expected an error, got {event:?} after {before:?}");
    };
    message
}

/// After an error the thread reports its end and drops its chunk sender (which ends a
/// listening job), promptly.
fn assert_thread_ends(capture: CaptureHandle, chunks: &Receiver<AudioChunk>) {
    let (stopped, before) = wait_for(&capture, Duration::from_secs(5), "stop", |e| {
        matches!(e, CaptureEvent::Stopped { .. })
    });
    assert!(before.is_empty(), "after the error: {before:?} {stopped:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match chunks.recv_deadline(deadline) {
            Ok(_) => {}
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("the capture thread still holds its sender"),
        }
    }
    capture.join();
}

#[test]
fn the_microphone_vanishing_mid_recording_is_a_message() {
    let pulse = PrivatePulse::start();
    let run = run_isolated(
        "gui_mic::isolated_microphone_vanishes",
        &[("PULSE_SERVER", pulse.server())],
        None,
    );
    eprintln!("{}", run.output);
}

#[test]
#[ignore = "run by the_microphone_vanishing_mid_recording_is_a_message, in a child process"]
fn isolated_microphone_vanishes() {
    require_isolated();
    let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(1024);
    let capture = capture::start(None, chunk_tx, Waker::default()).unwrap();
    wait_until_recording(&capture);
    // The sink goes, and its monitor (the only source) with it: the recording has nowhere to go.
    pactl(&["unload-module", "module-null-sink"]);
    let vanished = Instant::now();
    let message = expect_error(&capture, Duration::from_secs(5));
    eprintln!("after {:?}: {message}", vanished.elapsed());
    assert!(
        message.starts_with("The microphone stopped working (was it unplugged"),
        "{message}"
    );
    assert_thread_ends(capture, &chunk_rx);
}

#[test]
fn a_microphone_that_stops_sending_audio_is_a_message() {
    let pulse = PrivatePulse::start();
    let run = run_isolated(
        "gui_mic::isolated_microphone_stalls",
        &[("PULSE_SERVER", pulse.server())],
        None,
    );
    eprintln!("{}", run.output);
}

#[test]
#[ignore = "run by a_microphone_that_stops_sending_audio_is_a_message, in a child process"]
fn isolated_microphone_stalls() {
    require_isolated();
    let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(1024);
    let capture = capture::start(None, chunk_tx, Waker::default()).unwrap();
    wait_until_recording(&capture);
    // A suspended source delivers nothing, and ALSA reports nothing: reads just block.
    pactl(&["suspend-sink", "mic", "1"]);
    let suspended = Instant::now();
    let message = expect_error(&capture, STALL_TIMEOUT + Duration::from_secs(3));
    let after = suspended.elapsed();
    eprintln!("after {after:?}: {message}");
    assert!(
        message.starts_with("The microphone stopped sending audio (was it unplugged?)"),
        "{message}"
    );
    // The watchdog, not an error of the stream: it waited for the audio that was buffered.
    assert!(after >= STALL_TIMEOUT - Duration::from_secs(1), "{after:?}");
    assert_thread_ends(capture, &chunk_rx);
}

#[test]
fn a_microphone_the_user_may_not_open_is_a_message() {
    let device = LockedAlsaDevice::new();
    let run = run_isolated(
        "gui_mic::isolated_permission_denied",
        &[("ALSA_CONFIG_PATH", device.config.to_str().unwrap())],
        device.child_uid(),
    );
    eprintln!("{}", run.output);
}

#[test]
#[ignore = "run by a_microphone_the_user_may_not_open_is_a_message, in a child process"]
fn isolated_permission_denied() {
    require_isolated();
    let (chunk_tx, chunk_rx) = bounded::<AudioChunk>(16);
    let capture = capture::start(None, chunk_tx, Waker::default()).unwrap();
    let message = expect_error(&capture, Duration::from_secs(10));
    eprintln!("{message}");
    assert!(
        message.starts_with("Permission to use the microphone was denied."),
        "{message}"
    );
    assert_thread_ends(capture, &chunk_rx);
}
