//! A two-hour file is indexed in bounded memory (the decoder streams), and an excerpt near its
//! end identifies with the right offset.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use audiofp::testkit::{distort, synth, wav};
use common::{Expect, Sandbox, assert_all_match, find_song, write_clip, write_song};

const LONG_RATE: u32 = 8_000;
const LONG_SECS: f32 = 7_200.0;
/// Peak RSS allowed for `audiofp index` of the 2 h file. 2 h of f32 samples at 8 kHz alone would
/// be 230 MB.
const MAX_PEAK_RSS_MB: f64 = 150.0;

/// `VmHWM` (peak RSS) of a running process in MB, from /proc.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[test]
fn two_hour_wav_indexes_under_150mb_peak_rss_and_an_excerpt_at_1h50_identifies() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("long");
    let started = Instant::now();

    let title = "two-hours-8khz";
    let excerpt_offsets = [6_600.0f64, 3_601.7, 7_190.0];
    let long_path = folder.join(format!("{title}.wav"));
    let clips: Vec<_> = {
        let samples = synth::song(99, LONG_SECS, LONG_RATE);
        assert_eq!(samples.len(), 57_600_000);
        wav::write_wav_i16(&long_path, &samples, LONG_RATE, 1).expect("writing the 2 h WAV");
        excerpt_offsets
            .iter()
            .map(|&offset| {
                let clip = distort::excerpt(&samples, LONG_RATE, offset as f32, 5.0);
                assert_eq!(clip.len(), 5 * LONG_RATE as usize);
                write_clip(
                    &sandbox.path(&format!("long-at-{offset}.wav")),
                    &clip,
                    LONG_RATE,
                )
            })
            .collect()
    };
    // Two ordinary songs beside it.
    write_song(&folder, "short-a", 98, 25.0);
    write_song(&folder, "short-b", 97, 25.0);
    let prepared = started.elapsed();

    let mut child = sandbox
        .command_with_db(
            &sandbox.db(),
            &[],
            [
                OsStr::new("index"),
                OsStr::new("--json"),
                folder.as_os_str(),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting audiofp index");
    let pid = child.id();
    let index_started = Instant::now();
    let mut peak_mb: f64 = 0.0;
    let mut samples = 0;
    loop {
        if let Some(mb) = peak_rss_mb(pid) {
            peak_mb = peak_mb.max(mb);
            samples += 1;
        }
        if child
            .try_wait()
            .expect("polling the index process")
            .is_some()
        {
            break;
        }
        assert!(
            index_started.elapsed() < Duration::from_secs(300),
            "indexing the 2 h file takes more than 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .expect("collecting the index output");
    let index_time = index_started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "index of the 2 h file failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(summary["indexed"], 3, "{summary}");
    assert!(samples > 0, "could not read /proc/{pid}/status");
    eprintln!(
        "2 h WAV: prepared in {prepared:?}, indexed in {index_time:?}, peak RSS {peak_mb:.1} MB \
         ({samples} samples)"
    );
    assert!(
        peak_mb < MAX_PEAK_RSS_MB,
        "audiofp index of a 2 h 8 kHz file peaked at {peak_mb:.1} MB RSS (limit {MAX_PEAK_RSS_MB} MB)"
    );

    let listed = sandbox.list();
    let entry = find_song(&listed, title).unwrap_or_else(|| panic!("not listed: {listed:?}"));
    let duration = entry["duration_seconds"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (duration - f64::from(LONG_SECS)).abs() < 0.01,
        "2 h file listed as {duration} s"
    );

    let expected: Vec<Expect<'_>> = excerpt_offsets
        .iter()
        .map(|&offset| Expect {
            clip: format!("5 s excerpt of the 2 h file at {offset} s"),
            title,
            offset_secs: offset,
        })
        .collect();
    let paths: Vec<&Path> = clips.iter().map(|p| p.as_path()).collect();
    let (run, results) = sandbox.identify(&paths);
    assert_all_match("excerpts of the 2 h file", &run, &results, &expected);
}
