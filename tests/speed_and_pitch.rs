//! Clips played faster or slower than the song (radio, vinyl, DJ pitch control) are found by
//! the speed search, which reports the speed and keeps the offset in song time.

mod common;

use common::{Expect, SR, Sandbox, assert_all_match, write_clip, write_song};

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
}
