//! The source check: the best match's song, read from its file, compared with the clip.
//! Real files (WAV written here; FLAC, MP3 and Ogg Vorbis encoded by the tools `.ci/run`
//! installs), the real binary and a real SQLite index.

use crate::common;

use std::path::Path;

use audiofp::engine::decode::decode_excerpt;
use audiofp::testkit::distort;
use audiofp::testkit::synth;
use common::{SR, Sandbox, Song, argv, require_tool, run_tool, write_clip_f32, write_song};
use serde_json::Value;

/// Three songs indexed from a folder, and the sandbox.
fn library() -> (Sandbox, Vec<Song>) {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<Song> = (0..3)
        .map(|i| write_song(&folder, &format!("Checked {i}"), 700 + i, 20.0))
        .collect();
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 3, "index summary: {summary}");
    (sandbox, songs)
}

/// The top match of one `identify --json` run of `clip`, with `envs`.
fn top_match(sandbox: &Sandbox, envs: &[(&str, &str)], clip: &Path) -> Option<Value> {
    let clip_arg = clip.as_os_str();
    let run = sandbox.run_with_db(
        &sandbox.db(),
        envs,
        argv(&[&"identify", &"--json", &clip_arg]),
    );
    let results = run.json();
    results[0]["matches"].as_array()?.first().cloned()
}

#[test]
fn the_best_match_is_checked_against_its_file_as_indexed() {
    let (sandbox, songs) = library();
    let song = &songs[1];
    let noisy = distort::add_white_noise(&song.excerpt(6.0, 4.0), 5.0, 11);
    let clip = write_clip_f32(&sandbox.path("noisy.wav"), &noisy, song.rate);

    // `always`: a clear answer is checked too (by default only one the check could overturn).
    let checked =
        top_match(&sandbox, &[("SOURCE_CHECK", "always")], &clip).expect("the noisy clip is found");
    assert_eq!(checked["title"], song.title.as_str(), "{checked}");
    assert_eq!(checked["source_checked"], true, "{checked}");
    assert!(checked["confidence"].as_f64() > Some(0.95), "{checked}");

    // Switched off, the landmarks alone answer.
    let unchecked = top_match(&sandbox, &[("SOURCE_CHECK", "0")], &clip).expect("found");
    assert_eq!(unchecked["title"], song.title.as_str(), "{unchecked}");
    assert_eq!(unchecked["source_checked"], false, "{unchecked}");

    // A file rewritten since it was indexed (another size) is not the song's audio any more.
    let original = std::fs::read(&song.path).expect("reading the song");
    let mut changed = original.clone();
    changed.extend_from_slice(&[0; 64]);
    std::fs::write(&song.path, &changed).expect("rewriting the song");
    let stale =
        top_match(&sandbox, &[("SOURCE_CHECK", "always")], &clip).expect("found by its landmarks");
    assert_eq!(stale["source_checked"], false, "{stale}");

    // A file that is gone: the same.
    std::fs::remove_file(&song.path).expect("removing the song");
    let gone =
        top_match(&sandbox, &[("SOURCE_CHECK", "always")], &clip).expect("found by its landmarks");
    assert_eq!(gone["title"], song.title.as_str(), "{gone}");
    assert_eq!(gone["source_checked"], false, "{gone}");
    assert_eq!(gone["confidence"], unchecked["confidence"], "{gone}");
}

#[test]
fn a_bad_setting_is_refused_by_name() {
    let (sandbox, songs) = library();
    let clip = write_clip_f32(
        &sandbox.path("clip.wav"),
        &songs[0].excerpt(3.0, 3.0),
        songs[0].rate,
    );
    let clip_arg = clip.as_os_str();
    let run = sandbox.run_with_db(
        &sandbox.db(),
        &[("SOURCE_CHECK", "yes")],
        argv(&[&"identify", &clip_arg]),
    );
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("SOURCE_CHECK"), "{}", run.stderr);
}

#[test]
fn unindexed_music_stays_unmatched() {
    let (sandbox, _songs) = library();
    let stranger = write_song(&sandbox.subdir("elsewhere"), "Stranger", 9_001, 12.0);
    for (i, start) in [1.0, 4.5, 8.0].into_iter().enumerate() {
        let clip = write_clip_f32(
            &sandbox.path(&format!("stranger-{i}.wav")),
            &distort::add_white_noise(&stranger.excerpt(start, 3.0), 10.0, i as u64),
            stranger.rate,
        );
        let found = top_match(&sandbox, &[("SOURCE_CHECK", "always")], &clip);
        assert_eq!(found, None, "clip from {start} s");
    }
}

/// A song of a 4 s loop played three times, each time over another bass line: above 200 Hz,
/// where landmarks listen, the three are the same audio.
fn looped_song(folder: &Path) -> (Vec<f32>, std::path::PathBuf) {
    const LOOP_SECS: f32 = 4.0;
    let rate = SR as usize;
    let tune = synth::song(800, LOOP_SECS, SR);
    let notes_hz = [55.0, 61.7, 65.4, 73.4, 82.4, 98.0, 110.0];
    let mut samples = Vec::new();
    for repeat in 0..3usize {
        // Each repeat's bass plays its own rhythm (notes 0.5, 0.375 or 0.3 s apart) and notes.
        let note_len = rate * [20, 15, 12][repeat] / 40;
        for (i, &sample) in tune.iter().enumerate() {
            let note = i / note_len;
            let hz = notes_hz[(note * (repeat + 2) + repeat * 3) % notes_hz.len()];
            let t = (i % note_len) as f32 / SR as f32;
            // A 30 ms attack: a note that starts at once clicks over the whole band.
            let envelope = (t / 0.03).min(1.0) * (-6.0 * t).exp();
            let bass = 0.6 * envelope * (std::f32::consts::TAU * hz * t).sin();
            samples.push(0.3 * sample + bass);
        }
    }
    let path = folder.join("Looped.wav");
    audiofp::testkit::wav::write_wav_i16(&path, &samples, SR, 1).expect("writing the song");
    (samples, path)
}

#[test]
fn a_clip_of_a_loop_is_placed_at_the_repeat_whose_audio_it_is() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let (samples, _path) = looped_song(&folder);
    write_song(&folder, "Other", 801, 12.0);
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 2, "index summary: {summary}");
    let rate = SR as usize;
    let mut right = [0, 0, 0];
    for repeat in 0..3 {
        let start = 0.5 + 4.0 * repeat as f64;
        let from = (start * rate as f64) as usize;
        let clip = write_clip_f32(
            &sandbox.path(&format!("repeat-{repeat}.wav")),
            &samples[from..from + 3 * rate],
            SR,
        );
        // Off, by default (a clear answer is checked when it fits several places), always.
        for (slot, check) in [(0, "0"), (1, "1"), (2, "always")] {
            let found =
                top_match(&sandbox, &[("SOURCE_CHECK", check)], &clip).expect("the loop is found");
            assert_eq!(found["title"], "Looped", "{found}");
            let offset = found["offset_seconds"].as_f64().expect("an offset");
            // Wherever it is placed, the other two repeats are listed.
            let mut places: Vec<f64> = found["repeats"]
                .as_array()
                .expect("repeats")
                .iter()
                .filter_map(|repeat| repeat["offset_seconds"].as_f64())
                .collect();
            places.push(offset);
            for repeat_start in [0.5, 4.5, 8.5] {
                assert!(
                    places
                        .iter()
                        .any(|place| (place - repeat_start).abs() < 0.1),
                    "{repeat_start} s missing: {found}"
                );
            }
            if (offset - start).abs() < 0.1 {
                right[slot] += 1;
            }
        }
    }
    // The landmarks cannot tell the repeats apart; the song's audio can.
    assert!(right[0] < 3, "the landmarks alone placed all three right");
    assert_eq!(right[1..], [3, 3], "placed right with the source check");
}

/// `decode_excerpt` returns the samples from where it was asked, in every format, give or
/// take what a lossy codec changes.
#[test]
fn an_excerpt_starts_where_it_was_asked() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("formats");
    let song = write_song(&folder, "Excerpted", 31, 8.0);
    let rate = song.rate as usize;
    let mut files = vec![song.path.clone()];
    require_tool("flac", "--version");
    let flac = folder.join("excerpted.flac");
    run_tool("flac", &argv(&[&"-s", &"-f", &"-o", &flac, &song.path]));
    files.push(flac);
    require_tool("oggenc", "--version");
    let ogg = folder.join("excerpted.ogg");
    run_tool(
        "oggenc",
        &argv(&[&"-Q", &"-q", &"4", &"-o", &ogg, &song.path]),
    );
    files.push(ogg);
    for file in &files {
        let excerpt = decode_excerpt(file, 2.5, 1.0).expect("decoding an excerpt");
        assert_eq!(excerpt.sample_rate_hz as usize, rate, "{}", file.display());
        let first = (excerpt.start_secs * rate as f64).round() as usize;
        assert!(
            excerpt.start_secs <= 2.5 + 1e-3 && excerpt.start_secs > 1.0,
            "{}: starts at {} s",
            file.display(),
            excerpt.start_secs
        );
        let want = (3.5 * rate as f64) as usize - first;
        assert!(
            excerpt.samples.len().abs_diff(want) <= 2,
            "{}: {} samples, {want} wanted",
            file.display(),
            excerpt.samples.len()
        );
        // Aligned with the song: the best lag within 5 ms is 0.
        let reference = &song.samples[first..first + excerpt.samples.len()];
        let score = |lag: isize| -> f64 {
            (rate / 10..excerpt.samples.len() - rate / 10)
                .map(|i| {
                    let j = (i as isize + lag) as usize;
                    f64::from(excerpt.samples[i]) * f64::from(reference[j])
                })
                .sum()
        };
        let best = (-(rate as isize) / 200..=rate as isize / 200)
            .max_by(|a, b| score(*a).total_cmp(&score(*b)))
            .expect("lags");
        assert_eq!(best, 0, "{}: off by {best} samples", file.display());
    }
}
