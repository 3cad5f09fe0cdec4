//! Several processes on one index file: the SQLite store promises WAL readers that never block
//! on a writer and a 10 s busy timeout, so concurrent runs must neither fail nor panic.

use crate::common;

use std::ffi::OsStr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    Expect, Run, Sandbox, check_match, wait_for, wait_for_schema, write_clip, write_song,
    write_song_at,
};

fn finish(child: Child, cmdline: &str) -> Run {
    let out = child.wait_with_output().expect("waiting for audiofp");
    Run {
        cmdline: cmdline.to_string(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

#[test]
fn two_index_runs_started_together_on_a_new_index_both_succeed() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    write_song(&folder, "together", 9500, 5.0);
    let mut failures = Vec::new();
    for round in 0..12 {
        let db = sandbox.path(&format!("round-{round}.db"));
        let spawn = || {
            sandbox
                .command_with_db(&db, &[], [OsStr::new("index"), folder.as_os_str()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starting audiofp index")
        };
        let (a, b) = (spawn(), spawn());
        let cmdline = format!("audiofp --db {} index {}", db.display(), folder.display());
        for run in [finish(a, &cmdline), finish(b, &cmdline)] {
            if run.code != 0 {
                failures.push(format!("round {round}: {run}"));
            }
        }
        let listed = sandbox.list_db(&db);
        if listed.len() != 1 {
            failures.push(format!("round {round}: {} songs listed", listed.len()));
        }
    }
    assert!(
        failures.is_empty(),
        "two `index` runs started together on a new index file: {} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn identify_and_stats_while_index_writes_never_panic_and_never_misidentify() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<_> = (0..20)
        .map(|i| write_song_at(&folder, &format!("busy-{i:02}"), 9600 + i, 40.0, 44_100))
        .collect();
    let first = &songs[0];
    let offset = 11.0;
    let clip = write_clip(
        &sandbox.path("clip.wav"),
        &first.excerpt(offset, 5.0),
        44_100,
    );
    let db = sandbox.db();

    let mut indexer = sandbox
        .command_with_db(
            &db,
            &[],
            [
                OsStr::new("index"),
                OsStr::new("-j"),
                OsStr::new("1"),
                folder.as_os_str(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting audiofp index");
    // Once the first song is in, query while the rest is written.
    wait_for_schema(&db);
    wait_for(
        "the first song in the index",
        Duration::from_secs(120),
        Duration::from_millis(5),
        || {
            let run = sandbox.run(["list", "--json"]);
            (run.code == 0 && run.json().as_array().is_some_and(|a| !a.is_empty())).then_some(())
        },
    );
    let expect = Expect {
        clip: format!("5 s excerpt of {:?} at {offset} s", first.title),
        title: &first.title,
        offset_secs: offset,
    };
    let mut problems = Vec::new();
    let mut queries = 0;
    let started = Instant::now();
    while indexer.try_wait().expect("polling audiofp index").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "index never ends"
        );
        queries += 1;
        let run = sandbox.run([
            OsStr::new("identify"),
            OsStr::new("--json"),
            clip.as_os_str(),
        ]);
        let result = serde_json::from_str::<serde_json::Value>(&run.stdout)
            .map_err(|e| e.to_string())
            .and_then(|v| check_match(&v[0], &expect));
        if run.code != 0 {
            problems.push(format!("identify during indexing: {run}"));
        } else if let Err(e) = result {
            problems.push(format!("identify during indexing: {e}"));
        }
        let stats = sandbox.run(["stats", "--json"]);
        if stats.code != 0 {
            problems.push(format!("stats during indexing: {stats}"));
        }
    }
    let status = indexer.wait().expect("reaping audiofp index");
    eprintln!("{queries} identify + stats rounds during indexing");
    assert!(status.success(), "audiofp index failed: {status}");
    assert!(queries > 0, "indexing ended before any query ran");
    assert!(
        problems.is_empty(),
        "{} of {queries} query rounds during indexing went wrong:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}
