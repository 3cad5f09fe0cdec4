//! End to end: index a library of 20 synthetic songs with the real binary into an SQLite file,
//! then identify excerpts (clean, noisy, resampled to 8 kHz, 1 s long, and of songs that are not
//! in the index) with `identify --json --top 3`.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use audiofp::testkit::distort;
use common::{
    Expect, SR, Sandbox, Song, assert_all_match, find_song, write_clip, write_clip_f32, write_song,
};
use serde_json::Value;

const NUM_SONGS: usize = 20;

/// Seed, title and duration of library song `i`.
fn library_entry(i: usize) -> (u64, String, f32) {
    let seed = 1000 + 37 * i as u64;
    let secs = [20.0, 25.0, 30.0][i % 3];
    (seed, format!("Song {i:02} - seed {seed}"), secs)
}

/// A sandbox whose index holds the 20 library songs (indexed with `audiofp index <folder>`).
fn indexed_library() -> (Sandbox, Vec<Song>) {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<Song> = (0..NUM_SONGS)
        .map(|i| {
            let (seed, title, secs) = library_entry(i);
            write_song(&folder, &title, seed, secs)
        })
        .collect();
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], NUM_SONGS, "index summary: {summary}");
    assert_eq!(
        summary["failed"],
        Value::Array(vec![]),
        "index summary: {summary}"
    );
    (sandbox, songs)
}

/// A start offset for a `len` s excerpt of song `i`, spread over the whole song (including the
/// very start and the very end).
fn offset_for(song: &Song, i: usize, len: f64) -> f64 {
    let room = song.secs() - len - 0.05;
    match i % 5 {
        0 => 0.0,
        4 => room,
        k => (room * (k as f64 * 0.23 + (i as f64 * 0.071) % 0.2)).clamp(0.0, room),
    }
}

fn clip_path(sandbox: &Sandbox, folder: &str, name: String) -> PathBuf {
    sandbox.subdir(folder).join(name)
}

fn as_paths(clips: &[PathBuf]) -> Vec<&Path> {
    clips.iter().map(PathBuf::as_path).collect()
}

#[test]
fn index_folder_of_20_songs_lists_and_counts_them_all() {
    let (sandbox, songs) = indexed_library();

    let listed = sandbox.list();
    assert_eq!(listed.len(), NUM_SONGS, "list --json: {listed:?}");
    for song in &songs {
        let entry = find_song(&listed, &song.title)
            .unwrap_or_else(|| panic!("{:?} missing from list --json: {listed:?}", song.title));
        let duration = entry["duration_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (duration - song.secs()).abs() < 0.01,
            "{}: listed duration {duration}, expected {}",
            song.title,
            song.secs()
        );
        assert!(
            entry["num_peaks"].as_u64().unwrap_or(0) > 0,
            "{}: no peaks stored: {entry}",
            song.title
        );
        let path = entry["path"].as_str().unwrap_or_default();
        assert_eq!(Path::new(path), song.path, "{}: stored path", song.title);
    }
    let mut ids: Vec<i64> = listed.iter().filter_map(|s| s["id"].as_i64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), NUM_SONGS, "song ids are not unique: {listed:?}");

    let stats = sandbox.run(["stats", "--json"]);
    stats.expect_code(0, "stats");
    let stats = stats.json();
    assert_eq!(stats["songs"], NUM_SONGS, "stats --json: {stats}");
    let total_secs: f64 = songs.iter().map(Song::secs).sum();
    let hours = stats["hours"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (hours - total_secs / 3600.0).abs() < 1e-4,
        "stats hours {hours}, expected {}",
        total_secs / 3600.0
    );
    assert!(stats["hashes"].as_u64().unwrap_or(0) > 0, "stats: {stats}");
    assert!(
        stats["bytes_on_disk"].as_u64().unwrap_or(0) > 0,
        "stats: {stats}"
    );
    assert_eq!(stats["storage"], "sqlite", "stats: {stats}");
    // `index` saved the inverted index of the new library; `stats` loaded it as it was.
    assert_eq!(
        stats["index_loaded"],
        serde_json::json!({"from": "saved"}),
        "stats: {stats}"
    );
    let human = sandbox.run(["stats"]);
    human.expect_code(0, "stats");
    assert!(
        human.stdout.contains(&format!("songs:     {NUM_SONGS}")),
        "human stats output: {}",
        human.stdout
    );
    assert!(
        sandbox.db().metadata().is_ok_and(|m| m.len() > 0),
        "the index file {} was not written",
        sandbox.db().display()
    );
}

#[test]
fn clean_5s_excerpts_at_various_offsets_identify_with_the_right_offset() {
    let (sandbox, songs) = indexed_library();
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (i, song) in songs.iter().enumerate() {
        let offset = offset_for(song, i, 5.0);
        let path = clip_path(&sandbox, "clean", format!("clean-{i:02}.wav"));
        write_clip(&path, &song.excerpt(offset, 5.0), SR);
        clips.push(path);
        expected.push(Expect {
            clip: format!("clean 5 s excerpt of {:?} at {offset:.2} s", song.title),
            title: &song.title,
            offset_secs: offset,
        });
    }
    let (run, results) = sandbox.identify(&as_paths(&clips));
    assert_all_match("clean 5 s excerpts", &run, &results, &expected);
    let threshold = audiofp::config::MatchConfig::default().threshold;
    for result in &results {
        let confidence = result["matches"][0]["confidence"].as_f64().unwrap_or(0.0);
        assert!(
            (threshold..=1.0).contains(&confidence),
            "confidence {confidence} outside [threshold {threshold}, 1]: {result}"
        );
    }
}

/// `identify -` reads the clip from standard input, and a pipe given as a file (whose size
/// is not known before it is read) is read whole: `ffmpeg ... | audiofp identify -`.
#[cfg(unix)]
#[test]
fn a_clip_from_standard_input_or_a_pipe_identifies() {
    use std::io::Write;
    let (sandbox, songs) = indexed_library();
    let song = &songs[4];
    let clip = write_clip(&sandbox.path("piped.wav"), &song.excerpt(7.0, 5.0), SR);
    let bytes = std::fs::read(&clip).expect("the clip");
    let expected = [Expect {
        clip: format!("5 s excerpt of {:?} at 7 s, piped", song.title),
        title: &song.title,
        offset_secs: 7.0,
    }];

    for arg in ["-", "/dev/stdin"] {
        let mut child = sandbox
            .command_with_db(&sandbox.db(), &[], ["identify", "--json", arg])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting identify");
        let mut stdin = child.stdin.take().expect("its standard input");
        let bytes = bytes.clone();
        // Written from another thread, as a pipe is: identify must read to the end.
        let feeder = std::thread::Builder::new()
            .name("test-stdin".to_string())
            .spawn(move || {
                for piece in bytes.chunks(4096) {
                    stdin.write_all(piece).expect("writing the clip");
                }
            })
            .expect("a thread");
        let output = child.wait_with_output().expect("identify's output");
        feeder.join().expect("the writer");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "identify {arg}: {stdout}{stderr}"
        );
        let results: Value = serde_json::from_str(&stdout).expect("identify --json output");
        let result = &results[0];
        common::check_match(result, &expected[0])
            .unwrap_or_else(|err| panic!("identify {arg}: {err}\n{stdout}"));
    }
}

#[test]
fn a_1s_clean_clip_identifies() {
    let (sandbox, songs) = indexed_library();
    let song = &songs[7];
    let offset = 12.34;
    let path = clip_path(&sandbox, "short", "one-second.wav".to_string());
    write_clip(&path, &song.excerpt(offset, 1.0), SR);
    let (run, results) = sandbox.identify(&[&path]);
    assert_all_match(
        "1 s clean clip",
        &run,
        &results,
        &[Expect {
            clip: format!("clean 1 s clip of {:?} at {offset} s", song.title),
            title: &song.title,
            offset_secs: offset,
        }],
    );
}

/// `identify --json --threshold <threshold>` of `clips`, without the speed search and the
/// source check (the landmarks' confidence alone, whose rule the callers test): one result per
/// clip.
fn identify_at(sandbox: &Sandbox, threshold: f64, clips: &[PathBuf]) -> Vec<Value> {
    let threshold = format!("{threshold:.12}");
    let mut args = vec![
        OsStr::new("identify"),
        OsStr::new("--json"),
        OsStr::new("--threshold"),
        OsStr::new(&threshold),
    ];
    args.extend(clips.iter().map(|clip| clip.as_os_str()));
    let run = sandbox.run_with_db(
        &sandbox.db(),
        &[("SPEED_SEARCH", "0"), ("SOURCE_CHECK", "0")],
        args,
    );
    assert!(matches!(run.code, 0 | 1), "{run}");
    match run.json() {
        Value::Array(results) => results,
        other => panic!("not an array: {other}"),
    }
}

#[test]
fn a_1s_clip_must_be_more_certain_than_the_threshold() {
    let (sandbox, songs) = indexed_library();
    let song = &songs[4];
    let offset = 8.5;
    // Noisy 1 s clips, so that some match with a confidence well inside (0, 1).
    let clips: Vec<PathBuf> = [40.0_f32, 30.0, 25.0, 20.0, 17.0, 14.0, 12.0]
        .iter()
        .enumerate()
        .map(|(i, &snr_db)| {
            let noisy =
                distort::add_white_noise(&song.excerpt(offset, 1.0), snr_db, 300 + i as u64);
            let path = clip_path(&sandbox, "short", format!("noisy-1s-{i}.wav"));
            write_clip_f32(&path, &noisy, SR);
            path
        })
        .collect();
    let everything = identify_at(&sandbox, 0.0, &clips);
    let (clip, confidence) = clips
        .iter()
        .zip(&everything)
        .find_map(|(clip, result)| {
            let top = &result["matches"][0];
            let confidence = top["confidence"].as_f64()?;
            (top["title"] == song.title.as_str() && (0.05..0.99).contains(&confidence))
                .then_some((clip.clone(), confidence))
        })
        .unwrap_or_else(|| panic!("no noisy 1 s clip matched within (0.05, 0.99): {everything:?}"));

    // A 1 s clip needs the odds of error the threshold allows divided by s =
    // FULL_EVIDENCE_SECS / 1 s: t' = st / (st + 1 - t). So it is answered at thresholds t
    // with t' <= confidence, that is t <= c / (s (1 - c) + c), and not between those and the
    // confidence itself, where a clip of FULL_EVIDENCE_SECS or more would be.
    let scale = audiofp::config::FULL_EVIDENCE_SECS;
    let highest_answered = confidence / (scale * (1.0 - confidence) + confidence);
    let below = identify_at(
        &sandbox,
        highest_answered - 0.01,
        std::slice::from_ref(&clip),
    );
    assert_eq!(below[0]["found"], true, "{}", below[0]);
    assert_eq!(below[0]["matches"][0]["title"], song.title.as_str());
    let between = identify_at(
        &sandbox,
        (highest_answered + confidence) / 2.0,
        std::slice::from_ref(&clip),
    );
    assert_eq!(between[0]["found"], false, "{}", between[0]);
    assert_eq!(
        between[0]["matches"],
        Value::Array(vec![]),
        "{}",
        between[0]
    );
}

#[test]
fn noisy_5s_excerpts_at_5db_snr_identify_with_the_right_offset() {
    let (sandbox, songs) = indexed_library();
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (i, song) in songs.iter().enumerate() {
        let offset = offset_for(song, i + 2, 5.0);
        let noisy = distort::add_white_noise(&song.excerpt(offset, 5.0), 5.0, 77 + i as u64);
        let path = clip_path(&sandbox, "noisy", format!("noisy-{i:02}.wav"));
        write_clip_f32(&path, &noisy, SR);
        clips.push(path);
        expected.push(Expect {
            clip: format!(
                "5 s excerpt of {:?} at {offset:.2} s + white noise at 5 dB SNR",
                song.title
            ),
            title: &song.title,
            offset_secs: offset,
        });
    }
    let (run, results) = sandbox.identify(&as_paths(&clips));
    assert_all_match("white noise 5 dB SNR excerpts", &run, &results, &expected);
}

#[test]
fn excerpts_resampled_to_8khz_identify_with_the_right_offset() {
    let (sandbox, songs) = indexed_library();
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (i, song) in songs.iter().enumerate() {
        let offset = offset_for(song, i + 3, 5.0);
        let narrow = distort::resample_linear(&song.excerpt(offset, 5.0), SR, 8000);
        let path = clip_path(&sandbox, "8k", format!("8khz-{i:02}.wav"));
        write_clip(&path, &narrow, 8000);
        clips.push(path);
        expected.push(Expect {
            clip: format!(
                "5 s excerpt of {:?} at {offset:.2} s resampled to 8 kHz",
                song.title
            ),
            title: &song.title,
            offset_secs: offset,
        });
    }
    let (run, results) = sandbox.identify(&as_paths(&clips));
    assert_all_match("8 kHz excerpts", &run, &results, &expected);
}

#[test]
fn clips_of_songs_not_in_the_index_are_not_matched_and_exit_1() {
    let (sandbox, _songs) = indexed_library();
    let folder = sandbox.subdir("strangers");
    let mut clips = Vec::new();
    for (k, seed) in [9001u64, 9002, 9003, 9004, 9005, 424_242]
        .into_iter()
        .enumerate()
    {
        let stranger = audiofp::testkit::synth::song(seed, 30.0, SR);
        let len = if k == 5 { 10.0 } else { 5.0 };
        let start = 3.0 + 4.0 * k as f32;
        let clip = distort::excerpt(&stranger, SR, start, len);
        // Half clean, half noisy (noise must not make a false match either).
        let clip = if k % 2 == 0 {
            clip
        } else {
            distort::add_white_noise(&clip, 5.0, seed)
        };
        clips.push(write_clip_f32(
            &folder.join(format!("stranger-seed{seed}-{len}s.wav")),
            &clip,
            SR,
        ));
    }
    let (run, results) = sandbox.identify(&as_paths(&clips));
    let false_matches: Vec<String> = results
        .iter()
        .filter(|r| r["found"] != Value::Bool(false) || r["matches"] != Value::Array(vec![]))
        .map(|r| {
            format!(
                "{}: found={} matches={}",
                r["clip"], r["found"], r["matches"]
            )
        })
        .collect();
    assert!(
        false_matches.is_empty(),
        "clips of songs that are not indexed were matched:\n  {}",
        false_matches.join("\n  ")
    );
    for result in &results {
        assert_eq!(
            result["error"],
            Value::Null,
            "a valid clip must not be an error: {result}"
        );
        assert!(
            result["query_hashes"].as_u64().unwrap_or(0) > 0,
            "the clip was not analysed: {result}"
        );
    }
    run.expect_code(1, "identify of clips with no match");

    // Human output of a single miss says so, with the same exit code.
    let human = sandbox.run([OsStr::new("identify"), clips[0].as_os_str()]);
    human.expect_code(1, "identify (human) of a clip with no match");
    assert!(
        human.stdout.contains("no match"),
        "human output should say `no match`:\n{human}"
    );
}

/// A song that plays one passage twice (parts A B A C): a clip of the passage names one of
/// its two places and lists the other among its repeats; a clip of a part played once lists
/// none.
#[test]
fn a_passage_played_twice_lists_its_other_place_as_a_repeat() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let part = |seed: u64, secs: f32| audiofp::testkit::synth::song(seed, secs, SR);
    let (a, b, c) = (part(501, 8.0), part(502, 6.0), part(503, 6.0));
    // A from 0 s and again from 14 s; B from 8 s; C from 22 s.
    let samples = [a.as_slice(), &b, &a, &c].concat();
    write_clip(&folder.join("verse twice.wav"), &samples, SR);
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 1, "index summary: {summary}");

    let excerpt = |start: f64, len: f64| {
        let from = (start * f64::from(SR)) as usize;
        samples[from..from + (len * f64::from(SR)) as usize].to_vec()
    };
    let twice = write_clip(&sandbox.path("in-a.wav"), &excerpt(1.0, 5.0), SR);
    let once = write_clip(&sandbox.path("in-b.wav"), &excerpt(8.5, 5.0), SR);
    let (run, results) = sandbox.identify(&[&twice, &once]);
    run.expect_code(0, "identify");
    let offsets = |found: &Value| -> (f64, Vec<f64>) {
        let top = &found["matches"][0];
        let repeats = top["repeats"]
            .as_array()
            .unwrap_or_else(|| panic!("no repeats array: {found}"))
            .iter()
            .map(|r| r["offset_seconds"].as_f64().unwrap_or(f64::NAN))
            .collect();
        (top["offset_seconds"].as_f64().unwrap_or(f64::NAN), repeats)
    };
    let near = |x: f64, y: f64| (x - y).abs() <= common::OFFSET_TOLERANCE_SECS;

    let (offset, repeats) = offsets(&results[0]);
    let other = if near(offset, 1.0) {
        15.0
    } else {
        assert!(
            near(offset, 15.0),
            "clip of A answered at {offset} s: {}",
            results[0]
        );
        1.0
    };
    assert!(
        repeats.iter().any(|&r| near(r, other)),
        "clip of A at {offset} s should list {other} s among its repeats: {}",
        results[0]
    );
    assert!(
        repeats.iter().all(|&r| near(r, other)),
        "only A's other place is a repeat: {}",
        results[0]
    );

    let (offset, repeats) = offsets(&results[1]);
    assert!(
        near(offset, 8.5),
        "clip of B answered at {offset} s: {}",
        results[1]
    );
    assert!(repeats.is_empty(), "B is played once: {}", results[1]);
}

/// A clip that runs from one song into another (6 s of each): with `--top 3` both are named,
/// the second with where in the clip it is heard from and its position there; with the
/// default `--top 1`, the song the clip starts in.
#[test]
fn a_clip_across_two_songs_names_both_and_where_the_second_begins() {
    let (sandbox, songs) = indexed_library();
    let (first, second) = (&songs[3], &songs[8]);
    let clip = [first.excerpt(10.0, 6.0), second.excerpt(3.0, 6.0)].concat();
    let path = write_clip(&sandbox.path("across.wav"), &clip, SR);
    let (run, results) = sandbox.identify(&[&path]);
    run.expect_code(0, "identify of a clip across two songs");
    let matches = results[0]["matches"].as_array().expect("matches");
    let get = |m: &Value, key: &str| m[key].as_f64().unwrap_or(f64::NAN);
    assert_eq!(matches[0]["title"], first.title.as_str(), "{run}");
    assert!(
        (get(&matches[0], "offset_seconds") - 10.0).abs() <= 0.1,
        "{run}"
    );
    assert_eq!(get(&matches[0], "clip_from_seconds"), 0.0, "{run}");
    let later = matches
        .iter()
        .find(|m| m["title"] == second.title.as_str())
        .unwrap_or_else(|| panic!("the second song is not named:\n{run}"));
    let heard_from = get(later, "clip_from_seconds");
    assert!((4.0..=6.3).contains(&heard_from), "{run}");
    // The song's position where it is heard from: 3 s at 6 s into the clip.
    let expected = (3.0 + heard_from - 6.0).max(0.0);
    assert!(
        (get(later, "offset_seconds") - expected).abs() <= 0.15,
        "{run}"
    );
    assert!(get(later, "confidence") >= 0.8, "{run}");
    assert_eq!(matches.len(), 2, "nothing else is named:\n{run}");

    let human = sandbox.run([
        OsStr::new("identify"),
        OsStr::new("--top"),
        OsStr::new("3"),
        path.as_os_str(),
    ]);
    human.expect_code(0, "identify (human) of a clip across two songs");
    assert!(human.stdout.contains("into the clip"), "{human}");
    let one = sandbox.run([OsStr::new("identify"), path.as_os_str()]);
    one.expect_code(0, "identify --top 1 of a clip across two songs");
    assert!(one.stdout.starts_with(&first.title), "{one}");
    assert!(!one.stdout.contains(&second.title), "{one}");
}
