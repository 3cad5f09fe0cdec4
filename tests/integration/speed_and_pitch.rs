//! Clips played faster or slower than the song (radio, vinyl, DJ pitch control) are found by
//! the speed search, which reports the speed and keeps the offset in song time; clips in
//! another key (a DJ's key lock) by the pitch search. `SPEED_SEARCH` and `PITCH_SEARCH` set
//! or turn off each.

use crate::common;

use std::ffi::OsStr;

use common::{
    Expect, SR, Sandbox, assert_all_match, check_match, require_tool, run_tool, write_clip,
    write_song,
};

#[test]
fn clips_played_2_percent_fast_or_slow_identify_and_report_their_speed() {
    let sandbox = Sandbox::new();
    let songs_dir = sandbox.subdir("songs");
    let songs: Vec<_> = (0..4)
        .map(|i| write_song(&songs_dir, &format!("Speed song {i}"), 900 + i, 25.0))
        .collect();
    sandbox.index_json(&[&songs_dir], 0);

    // Writing the same samples with a 2 % higher rate plays them 2 % fast (pitch moves too).
    let mut clips = Vec::new();
    let mut expected = Vec::new();
    for (i, (speed, song)) in [(1.02f64, &songs[1]), (0.98, &songs[2])]
        .into_iter()
        .enumerate()
    {
        let offset = 6.0 + 3.0 * i as f64;
        let path = sandbox.path(&format!("speed-{i}.wav"));
        let rate = (f64::from(SR) * speed).round() as u32;
        write_clip(&path, &song.excerpt(offset, 6.0), rate);
        clips.push((path, speed));
        expected.push(Expect {
            clip: format!("{:?} at {offset} s played at speed {speed}", song.title),
            title: &song.title,
            offset_secs: offset,
        });
    }
    let paths: Vec<&std::path::Path> = clips.iter().map(|(p, _)| p.as_path()).collect();
    let (run, results) = sandbox.identify(&paths);
    assert_all_match("speed-changed clips", &run, &results, &expected);
    for ((_, speed), result) in clips.iter().zip(&results) {
        let reported = result["speed"].as_f64().unwrap_or(0.0);
        assert!(
            (reported - speed).abs() < 1e-9,
            "expected speed {speed}, got {result}"
        );
    }
    // The text answer says it in words, the right way round.
    let run = sandbox.run([OsStr::new("identify"), clips[1].0.as_os_str()]);
    run.expect_code(0, "identify of the slow clip");
    assert!(run.stdout.contains("(played 2 % slow)"), "{run}");
}

#[test]
fn a_clip_one_semitone_up_is_found_by_the_pitch_search_which_pitch_search_0_turns_off() {
    require_tool("sox", "--version");
    let sandbox = Sandbox::new();
    let songs_dir = sandbox.subdir("songs");
    let songs: Vec<_> = (0..3)
        .map(|i| write_song(&songs_dir, &format!("Key song {i}"), 950 + i, 25.0))
        .collect();
    sandbox.index_json(&[&songs_dir], 0);

    // One semitone up at the same tempo (sox's pitch effect, as the corpus's pitch_p1).
    let offset = 8.0;
    let plain = write_clip(
        &sandbox.path("plain.wav"),
        &songs[1].excerpt(offset, 8.0),
        SR,
    );
    let shifted = sandbox.path("up-one-semitone.wav");
    run_tool(
        "sox",
        &[
            plain.as_os_str(),
            shifted.as_os_str(),
            "pitch".as_ref(),
            "100".as_ref(),
        ],
    );
    let expected = Expect {
        clip: format!("{:?} at {offset} s, one semitone up", songs[1].title),
        title: &songs[1].title,
        offset_secs: offset,
    };

    // Default: found, and the shift is reported.
    let (run, results) = sandbox.identify(&[&shifted]);
    assert_all_match(
        "a clip one semitone up",
        &run,
        &results,
        std::slice::from_ref(&expected),
    );
    assert_eq!(results[0]["pitch_semitones"], 1.0, "{run}");

    // PITCH_SEARCH=0 (the speed search still on): not found.
    let args = [
        OsStr::new("identify"),
        OsStr::new("--json"),
        shifted.as_os_str(),
    ];
    // (Without the source check too: this synthetic song's drums, which a key change leaves
    // as they are, line up with the song's every bar, and the check would name the song at
    // one of them.)
    let off = sandbox.run_with_db(
        &sandbox.db(),
        &[("PITCH_SEARCH", "0"), ("SOURCE_CHECK", "0")],
        args,
    );
    off.expect_code(1, "PITCH_SEARCH=0");
    assert!(
        check_match(&off.json()[0], &expected).is_err(),
        "found with the pitch search off: {off}"
    );

    // PITCH_SEARCH=1 alone finds it again; a value out of range is refused by name.
    let up_only = sandbox.run_with_db(&sandbox.db(), &[("PITCH_SEARCH", "1")], args);
    up_only.expect_code(0, "PITCH_SEARCH=1");
    let bad = sandbox.run_with_db(&sandbox.db(), &[("PITCH_SEARCH", "7")], args);
    bad.expect_code(2, "PITCH_SEARCH=7");
    assert!(bad.stderr.contains("PITCH_SEARCH"), "{bad}");
}
