//! Bad input: broken files among good songs are reported (path, code, message) while the good
//! songs are indexed, and clips that are too short or silent are errors, not "no match".

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use audiofp::testkit::{synth, wav};
use common::{Sandbox, Song, argv, require_tool, run_tool, write_clip, write_song};
use serde_json::Value;

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A bad file and the error codes that correctly describe it.
struct BadFile {
    path: PathBuf,
    codes: &'static [&'static str],
    /// Words the reason must contain, beyond naming the file.
    mentions: Option<&'static str>,
}

/// Writes the bad files into `folder` (a scratch dir `work` is used for the MP3 encode).
fn write_bad_files(folder: &Path, work: &Path) -> Vec<BadFile> {
    let mut bad = Vec::new();

    let empty = folder.join("empty.wav");
    std::fs::write(&empty, b"").expect("writing empty.wav");
    bad.push(BadFile {
        path: empty,
        codes: &["empty_file"],
        mentions: None,
    });

    let text = folder.join("notes.mp3");
    std::fs::write(
        &text,
        "Shopping list\n- milk\n- eggs\nThis is a text file, not an MP3.\n".repeat(40),
    )
    .expect("writing notes.mp3");
    bad.push(BadFile {
        path: text,
        codes: &["unsupported_format"],
        mentions: None,
    });

    let noise = folder.join("noise.flac");
    std::fs::write(&noise, random_bytes(200_000, 0x5EED_F1AC)).expect("writing noise.flac");
    bad.push(BadFile {
        path: noise,
        codes: &["unsupported_format", "corrupt_audio"],
        mentions: None,
    });

    // A valid 20 s WAV cut in half at the byte level: the header still announces 20 s.
    let whole = write_song(work, "whole-for-truncation", 3131, 20.0);
    let bytes = std::fs::read(&whole.path).expect("reading the whole WAV");
    let truncated = folder.join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("writing truncated.wav");
    bad.push(BadFile {
        path: truncated,
        codes: &["truncated"],
        mentions: None,
    });

    // A real MP3's first frames, then garbage for the rest of its length.
    require_tool("lame", "--version");
    let source = write_song(work, "mp3-source", 3232, 20.0);
    let encoded = work.join("mp3-source.mp3");
    run_tool(
        "lame",
        &argv(&[&"--quiet", &"-b", &"128", &source.path, &encoded]),
    );
    let mut mp3 = std::fs::read(&encoded).expect("reading the encoded MP3");
    let keep = 2_000.min(mp3.len() / 4);
    let garbage = random_bytes(mp3.len() - keep, 0xBAD_3B3);
    mp3.truncate(keep);
    mp3.extend_from_slice(&garbage);
    let corrupt = folder.join("corrupt.mp3");
    std::fs::write(&corrupt, &mp3).expect("writing corrupt.mp3");
    bad.push(BadFile {
        path: corrupt,
        codes: &["corrupt_audio", "truncated"],
        mentions: None,
    });

    // An Ogg Vorbis file cut after its first few seconds: Ogg has no length in its header, the
    // stream just breaks off mid-page.
    require_tool("oggenc", "--version");
    let source = write_song(work, "ogg-source", 3233, 20.0);
    let encoded = work.join("ogg-source.ogg");
    run_tool(
        "oggenc",
        &argv(&[&"--quiet", &"-o", &encoded, &source.path]),
    );
    let ogg = std::fs::read(&encoded).expect("reading the encoded Ogg");
    let cut = folder.join("cut.ogg");
    std::fs::write(&cut, &ogg[..ogg.len() / 4]).expect("writing cut.ogg");
    bad.push(BadFile {
        path: cut,
        codes: &["truncated"],
        mentions: None,
    });

    // A WAV whose header declares an absurd sample rate (a prime near 2^32): resampling
    // from it would plan a filter of billions of taps.
    let source = write_song(work, "rate-source", 3235, 5.0);
    let mut wav = std::fs::read(&source.path).expect("reading a WAV");
    wav[24..28].copy_from_slice(&4_294_967_291u32.to_le_bytes());
    let absurd_rate = folder.join("absurd-rate.wav");
    std::fs::write(&absurd_rate, &wav).expect("writing absurd-rate.wav");
    bad.push(BadFile {
        path: absurd_rate,
        codes: &["bad_format"],
        mentions: Some("sample rate 4294967291 Hz"),
    });

    // Real Opus audio, a common codec the decoders do not read: in Ogg, as .opus files are
    // (picked up by the folder walk and reported by name, not passed over), and in WebM, as
    // browsers record, a container that is read (the error names the track's codec).
    require_tool("ffmpeg", "-version");
    let source = write_song(work, "opus-source", 3234, 10.0);
    for name in ["voice-memo.opus", "browser-recording.webm"] {
        let encoded = folder.join(name);
        run_tool(
            "ffmpeg",
            &argv(&[
                &"-nostdin",
                &"-loglevel",
                &"error",
                &"-y",
                &"-i",
                &source.path,
                &"-c:a",
                &"libopus",
                &encoded,
            ]),
        );
        bad.push(BadFile {
            path: encoded,
            codes: &["unsupported_format"],
            mentions: Some("Opus audio is not decoded"),
        });
    }

    bad
}

#[test]
fn index_reports_every_bad_file_with_path_and_reason_indexes_the_good_ones_and_exits_2() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("mixed");
    let work = sandbox.subdir("work");
    let good: Vec<Song> = (0..3)
        .map(|i| write_song(&folder, &format!("good-{i}"), 4000 + i, 20.0))
        .collect();
    let bad = write_bad_files(&folder, &work);
    let missing = sandbox.path("no-such-folder");

    // --json summary.
    let run = sandbox.run([
        OsStr::new("index"),
        OsStr::new("--json"),
        folder.as_os_str(),
        missing.as_os_str(),
    ]);
    run.expect_code(2, "index of a folder with bad files");
    let summary = run.json();
    eprintln!("index --json summary: {summary:#}");
    assert_eq!(
        summary["indexed"],
        good.len(),
        "good songs indexed: {summary}"
    );
    assert_eq!(summary["total"], good.len() + bad.len(), "{summary}");
    assert_eq!(
        summary["missing"],
        Value::Array(vec![Value::String(missing.display().to_string())]),
        "the missing path must be reported: {summary}"
    );
    let failed = summary["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("no failed array: {summary}"));
    let by_path: BTreeMap<String, &Value> = failed
        .iter()
        .map(|f| (f["path"].as_str().unwrap_or_default().to_string(), f))
        .collect();
    let mut problems = Vec::new();
    for file in &bad {
        let path = file.path.display().to_string();
        let name = file
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let Some(entry) = by_path.get(&path) else {
            problems.push(format!("{name}: not in the failed list"));
            continue;
        };
        let code = entry["code"].as_str().unwrap_or_default();
        let message = entry["message"].as_str().unwrap_or_default();
        if !file.codes.contains(&code) {
            problems.push(format!(
                "{name}: code {code:?}, expected one of {:?} (message: {message})",
                file.codes
            ));
        }
        if !message.contains(&path) || message.trim_end() == path {
            problems.push(format!(
                "{name}: message {message:?} does not name the file and a reason"
            ));
        }
        if let Some(words) = file.mentions
            && !message.contains(words)
        {
            problems.push(format!(
                "{name}: message {message:?} does not say {words:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "bad files in the index --json summary:\n  {}\nsummary: {summary}",
        problems.join("\n  ")
    );
    assert_eq!(
        failed.len(),
        bad.len(),
        "only the bad files may fail: {summary}"
    );

    let listed = sandbox.list();
    let mut titles = common::titles(&listed);
    titles.sort();
    assert_eq!(
        titles,
        vec!["good-0", "good-1", "good-2"],
        "exactly the good songs are listed"
    );

    // Human mode, into a fresh index: each bad file on stderr with its path and reason.
    let human_db = sandbox.path("human.db");
    let run = sandbox.run_with_db(&human_db, &[], [OsStr::new("index"), folder.as_os_str()]);
    run.expect_code(2, "index (human output) of a folder with bad files");
    for file in &bad {
        let path = file.path.display().to_string();
        let line = run.stderr.lines().find(|l| l.contains(&path));
        match line {
            Some(line) => assert!(
                line.len() > path.len() + "error: : ".len(),
                "stderr names {path} without a reason: {line:?}"
            ),
            None => panic!("stderr does not name {path}:\n{run}"),
        }
    }
    let expected_summary = format!("{} indexed", good.len());
    let expected_failed = format!("{} failed", bad.len());
    assert!(
        run.stdout.contains(&expected_summary) && run.stdout.contains(&expected_failed),
        "human summary should say {expected_summary}, {expected_failed}:\n{run}"
    );
    assert!(
        run.stderr.contains("empty file"),
        "reason for empty.wav:\n{run}"
    );
    assert!(
        run.stderr.contains("truncated"),
        "reason for truncated.wav:\n{run}"
    );
    // Only audiofp's reports: the decoders' own log lines name no file.
    assert!(
        !run.stderr.contains("symphonia"),
        "decoder log lines on stderr:\n{run}"
    );
    assert_eq!(sandbox.list_db(&human_db).len(), good.len());
}

#[test]
fn identify_of_a_half_second_clip_says_too_short_and_of_digital_silence_says_silent() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let song = write_song(&folder, "only-song", 4100, 20.0);
    sandbox.index_json(&[&folder], 0);

    let short = write_clip(
        &sandbox.path("half-second.wav"),
        &song.excerpt(4.0, 0.5),
        common::SR,
    );
    let silent = write_clip(
        &sandbox.path("silence.wav"),
        &vec![0.0; 3 * common::SR as usize],
        common::SR,
    );
    for (clip, code, words) in [
        (&short, "too_short", "too short"),
        (&silent, "silent", "silent"),
    ] {
        let (run, results) = sandbox.identify(&[clip]);
        let result = &results[0];
        assert_eq!(
            result["error"]["code"],
            code,
            "{}: expected error code {code}\n{run}",
            clip.display()
        );
        let message = result["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "{}: message {message:?} should say {words:?}",
            clip.display()
        );
        assert_eq!(result["found"], false, "{}: {result}", clip.display());
        assert_eq!(result["matches"], Value::Array(vec![]), "{result}");
        if code == "too_short" {
            let secs = result["clip_seconds"].as_f64().unwrap_or_default();
            assert!((secs - 0.5).abs() < 0.02, "clip_seconds {secs}: {result}");
        }
        run.expect_code(2, &format!("identify --json of {}", clip.display()));

        let human = sandbox.run([OsStr::new("identify"), clip.as_os_str()]);
        human.expect_code(2, &format!("identify of {}", clip.display()));
        assert!(
            human.stderr.contains(words),
            "stderr should say {words:?}:\n{human}"
        );
        assert!(
            !human.stdout.contains("only-song"),
            "no song may be reported:\n{human}"
        );
    }
}

/// A clip is evidence however it ends: one cut mid-packet (a damaged last Ogg page) or
/// whose header promises more than it holds is identified from what decodes, where
/// `index` refuses such a file as a cut copy of a song. A WAV written to a pipe (its size
/// fields 0xFFFFFFFF: length unknown) ends where the file does, for both; and a song of
/// exactly 1 s, the shortest `index` takes, is taken.
#[test]
fn clips_cut_short_or_written_to_a_pipe_are_identified_from_what_decodes() {
    require_tool("oggenc", "--version");
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let song = write_song(&folder, "the-song", 4200, 30.0);
    sandbox.index_json(&[&folder], 0);

    // 10 s from 6 s on, as Ogg Vorbis, with its last 300 bytes cut off.
    let clip = write_clip(
        &sandbox.path("clip.wav"),
        &song.excerpt(6.0, 10.0),
        common::SR,
    );
    let ogg = sandbox.path("clip.ogg");
    run_tool("oggenc", &argv(&[&"--quiet", &"-o", &ogg, &clip]));
    let bytes = std::fs::read(&ogg).expect("reading the Ogg clip");
    let cut = sandbox.path("cut-clip.ogg");
    std::fs::write(&cut, &bytes[..bytes.len() - 300]).expect("writing the cut clip");

    // The same clip as a WAV whose RIFF and data sizes say "unknown".
    let mut wav = std::fs::read(&clip).expect("reading the WAV clip");
    assert_eq!(&wav[36..40], b"data", "a canonical 44-byte WAV header");
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    let piped = sandbox.path("piped-clip.wav");
    std::fs::write(&piped, &wav).expect("writing the piped clip");

    let (run, results) = sandbox.identify(&[&cut, &piped]);
    run.expect_code(0, "identify of a cut Ogg clip and a piped WAV clip");
    for result in &results {
        assert_eq!(result["matches"][0]["title"], "the-song", "{result}\n{run}");
        let offset = result["matches"][0]["offset_seconds"]
            .as_f64()
            .unwrap_or(-1.0);
        assert!((offset - 6.0).abs() < 0.1, "offset {offset}: {result}");
    }

    // index refuses the cut Ogg (a cut copy of a song), takes the piped WAV whole.
    let intake = sandbox.subdir("intake");
    std::fs::copy(&cut, intake.join("cut-clip.ogg")).expect("copying");
    std::fs::copy(&piped, intake.join("piped-clip.wav")).expect("copying");
    let one_second = synth::song(4201, 1.0, common::SR);
    wav::write_wav_i16(&intake.join("one-second.wav"), &one_second, common::SR, 1)
        .expect("writing a 1 s song");
    let summary = sandbox.index_json(&[&intake], 2);
    assert_eq!(summary["indexed"], 2, "{summary}");
    let failures = failures_by_name(&summary);
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        ["cut-clip.ogg"],
        "{summary}"
    );
    assert_eq!(failures["cut-clip.ogg"].0, "truncated", "{summary}");
    let piped_song = sandbox
        .list()
        .into_iter()
        .find(|s| s["title"] == "piped-clip")
        .unwrap_or_else(|| panic!("the piped clip was not indexed"));
    let secs = piped_song["duration_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        (secs - 10.0).abs() < 0.01,
        "the piped WAV decoded to {secs} s"
    );
}

/// The failed files of an index run's `--json` summary, by file name: (code, remembered).
fn failures_by_name(summary: &Value) -> BTreeMap<String, (String, bool)> {
    summary["failed"]
        .as_array()
        .unwrap_or_else(|| panic!("no failed array: {summary}"))
        .iter()
        .map(|f| {
            let path = PathBuf::from(f["path"].as_str().unwrap_or_default());
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let code = f["code"].as_str().unwrap_or_default().to_string();
            (name, (code, f["remembered"] == Value::Bool(true)))
        })
        .collect()
}

/// A folder `library` holding a good song and `broken.wav`, the first half of another song's
/// WAV (songs made from `seed` and `seed + 1`): the folder, the broken file, and the bytes of
/// the whole WAV (to mend it with).
fn library_with_a_broken_file(sandbox: &Sandbox, seed: u64) -> (PathBuf, PathBuf, Vec<u8>) {
    let folder = sandbox.subdir("library");
    let work = sandbox.subdir("work");
    write_song(&folder, "good", seed, 8.0);
    let whole = write_song(&work, "whole", seed + 1, 8.0);
    let bytes = std::fs::read(&whole.path).expect("reading the whole WAV");
    let broken = folder.join("broken.wav");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("writing broken.wav");
    (folder, broken, bytes)
}

#[test]
fn a_failed_file_is_reported_again_without_decoding_until_it_changes_or_is_retried() {
    let sandbox = Sandbox::new();
    let (folder, broken, bytes) = library_with_a_broken_file(&sandbox, 4100);
    let index = |extra: &[&str]| {
        let mut args = vec![OsStr::new("index"), OsStr::new("--json")];
        args.extend(extra.iter().map(OsStr::new));
        args.push(folder.as_os_str());
        let run = sandbox.run(args);
        run.expect_code(2, "index of a folder with a broken file");
        run.json()
    };
    let truncated = ("truncated".to_string(), false);

    // First run: decoded, failed, remembered.
    let first = index(&[]);
    assert_eq!(first["indexed"], 1, "{first}");
    assert_eq!(
        failures_by_name(&first),
        BTreeMap::from([("broken.wav".to_string(), truncated.clone())]),
        "{first}"
    );

    // Unchanged: reported again (still a failure, exit 2) from the earlier run, not decoded.
    let second = index(&[]);
    assert_eq!(second["skipped"], 1, "the good song is unchanged: {second}");
    assert_eq!(
        failures_by_name(&second),
        BTreeMap::from([("broken.wav".to_string(), ("truncated".to_string(), true))]),
        "{second}"
    );
    let human = sandbox.run([OsStr::new("index"), folder.as_os_str()]);
    human.expect_code(2, "index (human output)");
    assert!(
        human.stderr.contains("broken.wav") && human.stderr.contains("in an earlier run"),
        "{human}"
    );
    assert!(human.stdout.contains("--retry-failed"), "{human}");

    // --retry-failed decodes it again.
    let retried = index(&["--retry-failed"]);
    assert_eq!(
        failures_by_name(&retried),
        BTreeMap::from([("broken.wav".to_string(), truncated.clone())]),
        "{retried}"
    );

    // A failure remembered by another version of audiofp (which may decode what this one
    // cannot) is not trusted: the file is decoded again.
    {
        let conn = rusqlite::Connection::open(sandbox.db()).expect("opening the index");
        let changed = conn
            .execute("UPDATE failed_files SET audiofp_version = '0.0.1'", [])
            .expect("marking the failure as another version's");
        assert_eq!(changed, 1);
    }
    let other_version = index(&[]);
    assert_eq!(
        failures_by_name(&other_version),
        BTreeMap::from([("broken.wav".to_string(), truncated)]),
        "{other_version}"
    );

    // Mended: indexed, and its failure forgotten.
    std::fs::write(&broken, &bytes).expect("mending broken.wav");
    let mended = sandbox.run([
        OsStr::new("index"),
        OsStr::new("--json"),
        folder.as_os_str(),
    ]);
    mended.expect_code(0, "index after mending the broken file");
    let mended = mended.json();
    assert_eq!(mended["indexed"], 1, "{mended}");
    assert!(failures_by_name(&mended).is_empty(), "{mended}");
    let conn = rusqlite::Connection::open_with_flags(
        sandbox.db(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("opening the index");
    let remembered: i64 = conn
        .query_row("SELECT count(*) FROM failed_files", [], |row| row.get(0))
        .expect("counting remembered failures");
    assert_eq!(remembered, 0, "the mended file's failure is forgotten");
}

#[test]
fn failed_files_are_listed_counted_and_forgotten_once_deleted() {
    let sandbox = Sandbox::new();
    let (folder, broken, _) = library_with_a_broken_file(&sandbox, 4200);
    sandbox
        .run([OsStr::new("index"), folder.as_os_str()])
        .expect_code(2, "index of a folder with a broken file");
    let failed_files = || {
        let stats = sandbox.run(["stats", "--json"]);
        stats.expect_code(0, "stats --json");
        stats.json()["failed_files"].clone()
    };

    // Listed with the path, the reason and its code, in JSON and in text; counted by stats.
    let listed = sandbox.run(["list", "--failed", "--json"]);
    listed.expect_code(0, "list --failed --json");
    let listed = listed.json();
    let entries = listed.as_array().expect("an array of failures");
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["path"], broken.to_string_lossy().as_ref());
    assert_eq!(entries[0]["code"], "truncated", "{listed}");
    assert!(
        entries[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("broken.wav")),
        "{listed}"
    );
    assert_eq!(
        entries[0]["audiofp_version"],
        env!("CARGO_PKG_VERSION"),
        "{listed}"
    );
    let text = sandbox.run(["list", "--failed"]);
    text.expect_code(0, "list --failed");
    assert!(
        text.stdout.contains("broken.wav")
            && text.stdout.contains("truncated")
            && text.stdout.contains(" UTC"),
        "{text}"
    );
    assert_eq!(failed_files(), 1);
    let human_stats = sandbox.run(["stats"]);
    assert!(
        human_stats.stdout.contains("list --failed"),
        "{human_stats}"
    );
    // The song list is not the failure list.
    let songs = sandbox.run(["list", "--json"]).json();
    assert_eq!(songs.as_array().map(Vec::len), Some(1), "{songs}");

    // Deleted: the next run forgets its failure, and the run is clean.
    std::fs::remove_file(&broken).expect("deleting broken.wav");
    sandbox
        .run([OsStr::new("index"), folder.as_os_str()])
        .expect_code(0, "index after deleting the broken file");
    let listed = sandbox.run(["list", "--failed", "--json"]).json();
    assert_eq!(listed, serde_json::json!([]), "{listed}");
    assert_eq!(failed_files(), 0);
    let text = sandbox.run(["list", "--failed"]);
    assert!(text.stdout.contains("no failed files"), "{text}");
}

/// A folder `index` cannot read is a failure naming the folder and the reason (exit 2), not
/// a folder passed over in silence; the readable songs beside it are indexed. A link back up
/// the tree is followed once, and a dangling link is reported once.
#[test]
fn unreadable_folders_are_reported_and_links_are_walked_once() {
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    let sandbox = Sandbox::new();
    let music = sandbox.subdir("music");
    write_song(&music, "readable", 4100, 8.0);
    let locked = sandbox.subdir("music/locked");
    write_song(&locked, "behind-a-lock", 4101, 8.0);
    symlink(&music, music.join("back-up")).expect("a link back up the tree");
    symlink(sandbox.path("nowhere.wav"), music.join("dangling.wav")).expect("a dangling link");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000))
        .expect("locking the folder");

    // Root reads any folder; without the capabilities that allow it, it reads as others do.
    let privileged = std::fs::read_dir(&locked).is_ok();
    let mut command = if privileged {
        let mut command = std::process::Command::new("setpriv");
        command
            .arg("--bounding-set=-dac_override,-dac_read_search")
            .arg(common::exe());
        command
    } else {
        std::process::Command::new(common::exe())
    };
    let out = command
        .env_clear()
        .env("HOME", sandbox.root())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--db")
        .arg(sandbox.db())
        .args([OsStr::new("index"), OsStr::new("--json"), music.as_os_str()])
        .output()
        .expect("running audiofp index");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755))
        .expect("unlocking the folder");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let summary: Value = serde_json::from_str(&stdout).expect("index --json output");
    assert_eq!(summary["indexed"], 1, "{summary}");
    let failures = failures_by_name(&summary);
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        ["dangling.wav", "locked"],
        "{summary}"
    );
    assert_eq!(
        summary["failed"].as_array().map(Vec::len),
        Some(2),
        "{summary}"
    );
    assert_eq!(
        summary["total"], 3,
        "readable.wav, dangling.wav, locked: {summary}"
    );
    let locked_failure = summary["failed"]
        .as_array()
        .and_then(|failed| {
            failed
                .iter()
                .find(|f| f["path"] == locked.display().to_string())
        })
        .unwrap_or_else(|| panic!("no failure for the locked folder: {summary}"));
    assert_eq!(locked_failure["code"], "io_error", "{summary}");
    let message = locked_failure["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&locked.display().to_string()) && message.contains("Permission denied"),
        "{message}"
    );
    assert!(stderr.contains("cannot read this folder"), "{stderr}");
}

/// What `identify` says of things that are not audio files: a folder is called a folder, and
/// a file no decoder recognises gets a reason in audiofp's words with the formats it reads,
/// not the decoder library's internals.
#[test]
fn identify_of_a_folder_or_a_non_audio_file_says_what_it_is() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    write_song(&folder, "a-song", 4300, 5.0);
    sandbox.index_json(&[&folder], 0);
    let text = sandbox.path("readme.txt");
    std::fs::write(&text, "not audio at all\n".repeat(100)).expect("writing a text file");

    let (run, results) = sandbox.identify(&[&folder, &text]);
    run.expect_code(2, "identify of a folder and a text file");
    assert_eq!(results[0]["error"]["code"], "io_error", "{run}");
    let message = results[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("it is a folder"), "{message}");
    assert_eq!(results[1]["error"]["code"], "unsupported_format", "{run}");
    let message = results[1]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no decoder recognises its contents") && message.contains("MP2"),
        "{message}"
    );
    assert!(!message.contains("probe"), "{message}");
}

/// File names that are not UTF-8 (possible on Linux) cost nothing in the `--json` reports:
/// a broken file, a duplicate and a clip with such names are reported, their names with
/// U+FFFD where the bytes are not text, instead of the report failing (or panicking).
#[test]
fn file_names_that_are_not_utf8_are_reported_in_json() {
    use std::os::unix::ffi::OsStrExt as _;

    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let song = write_song(&folder, "a-song", 4400, 8.0);
    let odd = |stem: &[u8]| {
        folder.join(std::ffi::OsStr::from_bytes(
            &[stem, b"-\xff.wav".as_slice()].concat(),
        ))
    };
    std::fs::write(odd(b"broken"), b"RIFF\0\0\0\0WAVEnot audio").expect("a broken file");
    let summary = sandbox.index_json(&[&folder], 2);
    assert_eq!(summary["indexed"], 1, "{summary}");
    let failed = summary["failed"][0]["path"].as_str().unwrap_or_default();
    assert!(failed.ends_with("broken-\u{fffd}.wav"), "{summary}");

    // Copied once the song is in, so that the copy is the duplicate (two files of one
    // content indexed in one run are analysed in parallel: either could come first).
    std::fs::copy(&song.path, odd(b"copy")).expect("a copy with an odd name");
    let summary = sandbox.index_json(&[&folder], 2);
    let duplicate = summary["duplicates"][0]["path"]
        .as_str()
        .unwrap_or_default();
    assert!(duplicate.ends_with("copy-\u{fffd}.wav"), "{summary}");

    let clip = write_clip(
        &sandbox.path("clip.wav"),
        &song.excerpt(2.0, 5.0),
        common::SR,
    );
    let odd_clip = sandbox
        .root()
        .join(std::ffi::OsStr::from_bytes(b"clip-\xfe.wav"));
    std::fs::rename(&clip, &odd_clip).expect("renaming the clip");
    let (run, results) = sandbox.identify(&[&odd_clip]);
    run.expect_code(0, "identify of a clip with an odd name");
    assert!(
        results[0]["clip"]
            .as_str()
            .unwrap_or_default()
            .ends_with("clip-\u{fffd}.wav"),
        "{run}"
    );
}
