//! `audiofp tracklist`: a recorded set of synthetic songs, with music that is not in the
//! library between them and a crossfade, named song by song with when and from where, on a
//! real SQLite index; a recording of unindexed music names nothing; a silent one says so.

use crate::common;

use std::ffi::OsStr;

use audiofp::testkit::{distort, synth};
use common::{SR, Sandbox, Song, write_clip_f32, write_song};
use serde_json::Value;

/// A part of the set: a stretch of a song (`None`: music not in the library) and where it
/// begins in the set.
struct Part<'a> {
    song: Option<&'a Song>,
    song_from: f64,
    set_from: f64,
    secs: f64,
}

/// `parts` laid end to end, each overlapping the one before by `crossfade_secs` with linear
/// fades, as a DJ mixes.
fn mix(parts: &[(Vec<f32>, f64)], crossfade_secs: f64) -> Vec<f32> {
    let fade = (crossfade_secs * f64::from(SR)) as usize;
    let mut set: Vec<f32> = Vec::new();
    for (samples, _) in parts {
        let start = set
            .len()
            .saturating_sub(if set.is_empty() { 0 } else { fade });
        for (i, &sample) in samples.iter().enumerate() {
            let gain_in = if start < set.len() && i < fade {
                i as f32 / fade as f32
            } else {
                1.0
            };
            let at = start + i;
            if at < set.len() {
                let gain_out = 1.0 - gain_in;
                set[at] = set[at] * gain_out + sample * gain_in;
            } else {
                set.push(sample);
            }
        }
    }
    set
}

#[test]
fn a_recorded_set_is_listed_song_by_song_with_when_and_from_where() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<Song> = (0..4)
        .map(|i| write_song(&folder, &format!("Track {i}"), 500 + 71 * i, 24.0))
        .collect();
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 4, "{summary}");

    // Track 2 from 3 s for 15 s; 12 s of music not in the library; track 0 from 0 s for
    // 16 s; track 3 from 6 s for 15 s, crossfaded over 2 s. Track 1 is not played.
    let stranger = synth::song(9_999, 20.0, SR);
    let crossfade = 2.0;
    let pieces = [
        (Some(&songs[2]), 3.0, 15.0),
        (None, 4.0, 12.0),
        (Some(&songs[0]), 0.0, 16.0),
        (Some(&songs[3]), 6.0, 15.0),
    ];
    let mut parts = Vec::new();
    let mut audio = Vec::new();
    let mut set_from = 0.0;
    for (song, song_from, secs) in pieces {
        let samples = match song {
            Some(song) => song.excerpt(song_from, secs),
            None => distort::excerpt(&stranger, SR, song_from as f32, secs as f32),
        };
        audio.push((samples, secs));
        parts.push(Part {
            song,
            song_from,
            set_from,
            secs,
        });
        set_from += secs - crossfade;
    }
    let set = mix(&audio, crossfade);
    let set_path = write_clip_f32(&sandbox.path("set.wav"), &set, SR);

    let run = sandbox.run([
        OsStr::new("tracklist"),
        OsStr::new("--json"),
        set_path.as_os_str(),
    ]);
    run.expect_code(0, "tracklist of a set");
    let results = run.json();
    let recording = &results[0];
    assert_eq!(recording["error"], Value::Null, "{recording}");
    let total = set.len() as f64 / f64::from(SR);
    assert!(
        (recording["recording_seconds"].as_f64().unwrap_or(0.0) - total).abs() < 0.05,
        "{recording}"
    );
    let listed = recording["songs"].as_array().expect("songs");
    let played: Vec<&Part> = parts.iter().filter(|p| p.song.is_some()).collect();
    let titles: Vec<&str> = listed.iter().filter_map(|s| s["title"].as_str()).collect();
    assert_eq!(
        titles,
        ["Track 2", "Track 0", "Track 3"],
        "the songs played, in order, and nothing else: {recording}"
    );
    for (entry, part) in listed.iter().zip(&played) {
        let get = |key: &str| entry[key].as_f64().unwrap_or(f64::NAN);
        let (from, to) = (get("from_seconds"), get("to_seconds"));
        let part_to = part.set_from + part.secs;
        // Evidence starts with the song's first peaks (later under a fade-in) and ends with
        // its last aligned landmark's anchor, which a chance hit at the same offset can put a
        // second past the song's end.
        assert!(
            from >= part.set_from - 0.5 && from <= part.set_from + crossfade + 1.0,
            "start of {entry}: played from {:.1} s",
            part.set_from
        );
        assert!(
            to <= part_to + 1.5 && to >= part_to - crossfade - 2.0,
            "end of {entry}: played until {part_to:.1} s"
        );
        // The place in the song at `from` is the place played there.
        let expected_song_from = part.song_from + (from - part.set_from);
        assert!(
            (get("song_from_seconds") - expected_song_from).abs() < 0.2,
            "place in the song of {entry}: expected {expected_song_from:.2} s"
        );
        assert!(get("confidence") >= 0.8, "{entry}");
        assert!(entry["windows"].as_u64().unwrap_or(0) >= 2, "{entry}");
    }

    // The human form: one line per song, with the times.
    let human = sandbox.run([OsStr::new("tracklist"), set_path.as_os_str()]);
    human.expect_code(0, "tracklist (human)");
    let lines: Vec<&str> = human.stdout.lines().collect();
    assert!(lines[0].starts_with("3 songs in 0:"), "{human}");
    assert!(
        lines[1].contains("Track 2")
            && lines[2].contains("Track 0")
            && lines[3].contains("Track 3"),
        "{human}"
    );
}

#[test]
fn a_recording_of_unindexed_music_names_nothing_and_a_silent_one_says_so() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    for i in 0..3 {
        write_song(&folder, &format!("Track {i}"), 700 + 13 * i, 20.0);
    }
    sandbox.index_json(&[&folder], 0);
    let strangers: Vec<f32> = [8_001u64, 8_002]
        .iter()
        .flat_map(|&seed| synth::song(seed, 20.0, SR))
        .collect();
    let strangers = distort::add_white_noise(&strangers, 10.0, 3);
    let unknown = write_clip_f32(&sandbox.path("unknown.wav"), &strangers, SR);
    let silent = write_clip_f32(
        &sandbox.path("silent.wav"),
        &vec![0.0; 15 * SR as usize],
        SR,
    );

    let run = sandbox.run([
        OsStr::new("tracklist"),
        OsStr::new("--json"),
        unknown.as_os_str(),
    ]);
    run.expect_code(1, "tracklist of unindexed music");
    let results = run.json();
    assert_eq!(results[0]["songs"], Value::Array(vec![]), "{results}");
    assert!(
        results[0]["windows"].as_u64().unwrap_or(0) >= 7,
        "{results}"
    );
    let human = sandbox.run([OsStr::new("tracklist"), unknown.as_os_str()]);
    human.expect_code(1, "tracklist (human) of unindexed music");
    assert!(human.stdout.starts_with("no song heard in 0:40"), "{human}");

    let run = sandbox.run([
        OsStr::new("tracklist"),
        OsStr::new("--json"),
        silent.as_os_str(),
        unknown.as_os_str(),
    ]);
    run.expect_code(2, "tracklist with a silent recording");
    let results = run.json();
    assert_eq!(results[0]["error"]["code"], "silent", "{results}");
    assert!(
        results[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&*silent.to_string_lossy())),
        "the error names the file: {results}"
    );
    assert_eq!(
        results[1]["error"],
        Value::Null,
        "the next recording is still listed"
    );
    let human = sandbox.run([OsStr::new("tracklist"), silent.as_os_str()]);
    human.expect_code(2, "tracklist (human) of a silent recording");
    assert!(
        human.stderr.contains("silent") && human.stderr.contains(&*silent.to_string_lossy()),
        "{human}"
    );
}
