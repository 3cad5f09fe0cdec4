//! `audiofp bench` on small corpora laid out like `shared/corpus` (`refs/`, `negrefs/`,
//! `queries/`, `manifest.jsonl`), generated here: the accuracy report counts what it should,
//! and `--scale` builds its library from the corpus songs it does not query.

use crate::common;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use common::{Run, Sandbox, Song, write_clip, write_song};
use serde_json::{Value, json};

/// Writes a corpus of `refs` songs of `secs` seconds (`refs/d0001.wav`, ...) and one unindexed
/// song (`negrefs/d0090.wav`), with clean clips: for each of the first `clipped` songs a 10 s
/// clip from 7 s and a 5 s clip from 12 s, and a 10 s clip of the unindexed song. Returns the
/// corpus root.
fn write_corpus(sandbox: &Sandbox, refs: usize, clipped: usize, secs: f32) -> PathBuf {
    let root = sandbox.subdir("corpus");
    let refs_dir = sandbox.subdir("corpus/refs");
    let negrefs_dir = sandbox.subdir("corpus/negrefs");
    let queries_dir = sandbox.subdir("corpus/queries");
    let mut manifest = Vec::new();
    let mut clip = |song: &Song, truth: Option<&str>, start: f64, len: f64| {
        let name = format!("queries/q{:05}_clean_{len}s.wav", manifest.len() + 1);
        write_clip(&root.join(&name), &song.excerpt(start, len), song.rate);
        manifest.push(json!({
            "query": name, "truth": truth, "offset_s": start, "length_s": len,
            "distortion": "clean",
        }));
    };
    for i in 0..refs {
        let id = format!("d{:04}", i + 1);
        let song = write_song(&refs_dir, &id, 1000 + i as u64, secs);
        if i < clipped {
            clip(&song, Some(&id), 7.0, 10.0);
            clip(&song, Some(&id), 12.0, 5.0);
        }
    }
    let unindexed = write_song(&negrefs_dir, "d0090", 9090, secs);
    clip(&unindexed, None, 5.0, 10.0);
    assert!(queries_dir.is_dir());
    let mut file = std::fs::File::create(root.join("manifest.jsonl")).expect("manifest");
    for line in manifest {
        writeln!(file, "{line}").expect("writing the manifest");
    }
    root
}

/// `audiofp bench --corpus <corpus> <args...>` in `sandbox`.
fn bench(sandbox: &Sandbox, corpus: &Path, args: &[&str]) -> Run {
    let corpus = corpus.display().to_string();
    sandbox.run_without_db(
        &[],
        ["bench", "--corpus", corpus.as_str()].iter().chain(args),
    )
}

#[test]
fn bench_counts_right_answers_and_false_positives_on_a_small_corpus() {
    let sandbox = Sandbox::new();
    let corpus = write_corpus(&sandbox, 4, 4, 24.0);
    let args = [
        "--cold-runs",
        "1",
        "--speed-rounds",
        "1",
        "--no-listening",
        "--clips",
        "--json",
    ];
    let run = bench(&sandbox, &corpus, &args);
    run.expect_code(0, "bench");
    let report = run.json();
    assert_eq!(report["songs"], 4, "{report}");
    assert_eq!(
        report["accuracy"]["clean"]["10s"],
        json!([4, 4]),
        "{report}"
    );
    assert_eq!(report["accuracy"]["clean"]["5s"], json!([4, 4]), "{report}");
    assert_eq!(report["false_positives"], json!([0, 1]), "{report}");
    assert_eq!(report["wrong_song"], 0, "{report}");
    let clips = report["clips"].as_array().expect("--clips lists the clips");
    assert_eq!(clips.len(), 9);
    for clip in clips {
        match clip["truth"].as_str() {
            Some(truth) => {
                assert_eq!(clip["answer"].as_str(), Some(truth), "{clip}");
                let error = clip["offset_error_s"].as_f64().expect("an offset error");
                assert!(error.abs() < common::OFFSET_TOLERANCE_SECS, "{clip}");
            }
            None => assert_eq!(clip["answer"], Value::Null, "{clip}"),
        }
    }
    // The figures the README quotes are there and plausible.
    let positive = |key: &str| report[key].as_f64().is_some_and(|v| v > 0.0);
    for key in [
        "hours",
        "decode_x_realtime",
        "index_x_realtime",
        "index_bytes_per_hour",
    ] {
        assert!(positive(key), "{key}: {report}");
    }
    assert!(report["warm_10s_ms"][0].as_f64().is_some_and(|ms| ms > 0.0));
    // One cold run: a fresh `audiofp identify` answered.
    assert_eq!(report["cold_cli_ms"][2], 1, "{report}");
    assert!(report["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0));
}

#[test]
fn bench_scale_builds_its_library_from_the_corpus_songs_it_does_not_query() {
    let sandbox = Sandbox::new();
    // 20 songs are queried; the 2 others (longer than the 20 s an excerpt can last) are the
    // material of the generated songs.
    let corpus = write_corpus(&sandbox, 22, 20, 24.0);
    for generator in ["corpus", "synthetic"] {
        let args = [
            "--scale",
            "30",
            "--scale-songs",
            generator,
            "--hit-budgets",
            "0,32",
        ];
        let run = bench(
            &sandbox,
            &corpus,
            &[&args[..], &["--query-rounds", "1", "--json"]].concat(),
        );
        run.expect_code(0, "bench --scale");
        let reports = run.json();
        let reports = reports.as_array().expect("one report per budget");
        assert_eq!(reports.len(), 2, "{run}");
        for report in reports {
            assert_eq!(report["songs"], 50, "{generator}: {report}");
            // 20 clips of 10 s of indexed songs, clean: all found among the generated songs.
            assert_eq!(report["correct"], json!([20, 20]), "{generator}: {report}");
            assert_eq!(
                report["false_positives"],
                json!([0, 1]),
                "{generator}: {report}"
            );
            assert!(report["postings"].as_u64().is_some_and(|p| p > 0));
        }
        assert!(
            run.stderr.contains(if generator == "corpus" {
                "excerpts of 2 corpus songs, transposed and re-timed"
            } else {
                "synthetic peaks at"
            }),
            "{run}"
        );
    }
}

#[test]
fn bench_scale_from_corpus_songs_needs_songs_it_does_not_query() {
    let sandbox = Sandbox::new();
    let corpus = write_corpus(&sandbox, 3, 3, 24.0);
    let run = bench(&sandbox, &corpus, &["--scale", "10"]);
    assert_ne!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("--scale-songs corpus needs corpus songs besides the first 20"),
        "{run}"
    );
    assert!(run.stderr.contains("--scale-songs synthetic"), "{run}");
}

/// A damaged manifest stops both modes, naming the line, instead of leaving clips out of the
/// figures unsaid; the failed run leaves no temporary folder behind.
#[test]
fn bench_refuses_a_manifest_line_that_does_not_parse_in_both_modes() {
    let sandbox = Sandbox::new();
    let corpus = write_corpus(&sandbox, 1, 1, 24.0);
    let manifest = corpus.join("manifest.jsonl");
    let mut lines = std::fs::read_to_string(&manifest).expect("reading the manifest");
    let broken_line = lines.lines().count() + 1;
    lines.push_str("{\"query\": \n");
    std::fs::write(&manifest, lines).expect("writing the manifest");
    let tmp = sandbox.subdir("tmp");
    for args in [&[][..], &["--scale", "10"][..]] {
        let corpus = corpus.display().to_string();
        let run = sandbox.run_without_db(
            &[("TMPDIR", tmp.to_str().expect("a UTF-8 temporary path"))],
            ["bench", "--corpus", corpus.as_str()].iter().chain(args),
        );
        assert_ne!(run.code, 0, "{args:?}: {run}");
        assert!(
            run.stderr
                .contains(&format!("manifest.jsonl: line {broken_line}:")),
            "{args:?}: {run}"
        );
        // The failed run took its temporary folder away with it.
        let left: Vec<_> = std::fs::read_dir(&tmp).expect("the temp dir").collect();
        assert!(left.is_empty(), "{args:?}: left behind {left:?}");
    }
}
