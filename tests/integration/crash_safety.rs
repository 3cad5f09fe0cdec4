//! Crash safety: `audiofp index` killed with SIGKILL mid-run leaves an index that opens, holds
//! only whole songs, answers queries, and a re-run of the same command completes the job.

use crate::common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    Expect, Sandbox, Song, assert_all_match, find_song, wait_for, wait_for_schema, write_clip,
    write_song_at,
};
use serde_json::Value;

const NUM_SONGS: usize = 15;
/// Long-ish songs at 44.1 kHz (resampling work) and one analysis thread, so that the run is
/// still going when the first songs are in the index.
const SONG_SECS: f32 = 60.0;
const RATE: u32 = 44_100;

#[test]
fn index_killed_midway_keeps_whole_songs_and_a_rerun_completes_without_duplicates() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<Song> = (0..NUM_SONGS)
        .map(|i| {
            write_song_at(
                &folder,
                &format!("crash-{i:02}"),
                8000 + i as u64,
                SONG_SECS,
                RATE,
            )
        })
        .collect();
    let db = sandbox.db();
    let index_args = [
        OsStr::new("index"),
        OsStr::new("--json"),
        OsStr::new("-j"),
        OsStr::new("1"),
        folder.as_os_str(),
    ];

    let mut child = sandbox
        .command_with_db(&db, &[], index_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting audiofp index");
    let started = Instant::now();
    // Poll `list --json` (a concurrent reader) until the first songs are in. (Not before the
    // indexer has created the schema: see sqlite_concurrency.rs for that race.)
    wait_for_schema(&db);
    let mut last_error = String::new();
    let seen = wait_for(
        "the first songs in the index",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || {
            let run = sandbox.run(["list", "--json"]);
            if run.code != 0 {
                last_error = run.to_string();
                return None;
            }
            let n = run.json().as_array().map_or(0, Vec::len);
            (n >= 2).then_some(n)
        },
    );
    child.kill().expect("killing audiofp index");
    let status = child.wait().expect("reaping audiofp index");
    let killed_after = started.elapsed();
    eprintln!(
        "killed after {killed_after:?} with {seen} songs listed (last list error: {last_error})"
    );
    assert!(
        status.code().is_none(),
        "audiofp index finished before it could be killed ({status}); make the songs longer"
    );

    // The index opens and every listed song is whole.
    let listed = sandbox.list();
    assert!(
        listed.len() < NUM_SONGS,
        "all {NUM_SONGS} songs were indexed before the kill: the test did not interrupt anything"
    );
    assert!(
        listed.len() >= seen,
        "songs listed before the kill disappeared: {} < {seen}",
        listed.len()
    );
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for entry in &listed {
        let id = entry["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id: {entry}"));
        let show = sandbox.run(["show", "--json", &id.to_string()]);
        show.expect_code(0, "show of a song indexed before the kill");
        let record = show.json();
        assert!(
            record["num_peaks"].as_u64().unwrap_or(0) > 0,
            "song {id} has no peaks after the kill: {record}"
        );
        let title = record["title"].as_str().unwrap_or_default().to_string();
        let song = songs
            .iter()
            .find(|s| s.title == title)
            .unwrap_or_else(|| panic!("unexpected song {title:?} in the index"));
        let duration = record["duration_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (duration - song.secs()).abs() < 0.01,
            "{title}: duration {duration} after the kill"
        );
        let offset = 17.5;
        clips.push(write_clip(
            &sandbox.path(&format!("{title}-clip.wav")),
            &song.excerpt(offset, 5.0),
            RATE,
        ));
        expected.push((title, offset));
    }
    let expected: Vec<Expect<'_>> = expected
        .iter()
        .map(|(title, offset)| Expect {
            clip: format!("5 s excerpt of {title:?} at {offset} s, after the kill"),
            title,
            offset_secs: *offset,
        })
        .collect();
    let paths: Vec<&Path> = clips.iter().map(PathBuf::as_path).collect();
    let (run, results) = sandbox.identify(&paths);
    assert_all_match("songs indexed before the kill", &run, &results, &expected);
    {
        let conn = rusqlite::Connection::open(&db).expect("opening the index with rusqlite");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("integrity_check");
        assert_eq!(check, "ok", "SQLite integrity check after the kill");
        let orphans: i64 = conn
            .query_row(
                "SELECT (SELECT COUNT(*) FROM songs WHERE id NOT IN (SELECT song_id FROM fingerprints))
                      + (SELECT COUNT(*) FROM fingerprints WHERE song_id NOT IN (SELECT id FROM songs))",
                [],
                |r| r.get(0),
            )
            .expect("counting half-written songs");
        assert_eq!(
            orphans, 0,
            "songs without fingerprints (or the reverse) after the kill"
        );
    }

    // The same command again completes the job.
    let before = listed.len();
    let run = sandbox.run(index_args);
    run.expect_code(0, "re-run of the killed index command");
    let summary = run.json();
    assert_eq!(
        summary["skipped"], before,
        "already indexed songs must be skipped: {summary}"
    );
    assert_eq!(
        summary["indexed"],
        NUM_SONGS - before,
        "the rest must be indexed: {summary}"
    );
    assert_eq!(summary["failed"], Value::Array(vec![]), "{summary}");

    let listed = sandbox.list();
    assert_eq!(
        listed.len(),
        NUM_SONGS,
        "after the re-run: {:?}",
        common::titles(&listed)
    );
    let titles: BTreeSet<String> = common::titles(&listed).into_iter().collect();
    assert_eq!(
        titles.len(),
        NUM_SONGS,
        "duplicated titles: {:?}",
        common::titles(&listed)
    );
    let hashes: BTreeSet<&str> = listed
        .iter()
        .filter_map(|s| s["content_hash"].as_str())
        .collect();
    assert_eq!(hashes.len(), NUM_SONGS, "duplicated content");
    for song in &songs {
        assert!(
            find_song(&listed, &song.title).is_some(),
            "{} missing after the re-run",
            song.title
        );
    }

    // And a song indexed by the re-run identifies too.
    let last = &songs[NUM_SONGS - 1];
    let clip = write_clip(
        &sandbox.path("last-clip.wav"),
        &last.excerpt(33.3, 5.0),
        RATE,
    );
    let (run, results) = sandbox.identify(&[&clip]);
    assert_all_match(
        "a song indexed by the re-run",
        &run,
        &results,
        &[Expect {
            clip: format!("5 s excerpt of {:?} at 33.3 s", last.title),
            title: &last.title,
            offset_secs: 33.3,
        }],
    );
}
