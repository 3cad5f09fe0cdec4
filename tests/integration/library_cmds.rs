//! Looking after the library: export/import round trip, remove, show, re-running `index`, and
//! finding the songs that share audio (`duplicates`).

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{
    Expect, SR, Sandbox, Song, assert_all_match, fingerprinted_song, new_song, write_clip,
    write_song,
};
use serde_json::Value;

const NUM_SONGS: usize = 4;

fn small_library(sandbox: &Sandbox) -> (PathBuf, Vec<Song>) {
    let folder = sandbox.subdir("music");
    let songs = (0..NUM_SONGS)
        .map(|i| write_song(&folder, &format!("lib-{i}"), 7000 + 3 * i as u64, 20.0))
        .collect();
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], NUM_SONGS, "{summary}");
    (folder, songs)
}

/// Fails if an export left its temporary file (`*.partial`) in the sandbox.
fn assert_no_partial_exports(sandbox: &Sandbox) {
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.root())
        .expect("the sandbox")
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Exports the sandbox's library to `<root>/<name>`: the file and its bytes.
fn export_to(sandbox: &Sandbox, name: &str) -> (PathBuf, Vec<u8>) {
    let file = sandbox.path(name);
    sandbox
        .run([OsStr::new("export"), file.as_os_str()])
        .expect_code(0, "export");
    let bytes = std::fs::read(&file).expect("reading the export");
    (file, bytes)
}

/// Clips at 6.5 s of each song, with what they should identify as.
fn clips_of<'a>(
    sandbox: &Sandbox,
    songs: &'a [Song],
    tag: &str,
) -> (Vec<PathBuf>, Vec<Expect<'a>>) {
    let offset = 6.5;
    songs
        .iter()
        .map(|song| {
            let clip = write_clip(
                &sandbox.path(&format!("{tag}-{}.wav", song.title)),
                &song.excerpt(offset, 5.0),
                SR,
            );
            let expect = Expect {
                clip: format!("5 s excerpt of {:?} at {offset} s ({tag})", song.title),
                title: &song.title,
                offset_secs: offset,
            };
            (clip, expect)
        })
        .unzip()
}

fn paths(clips: &[PathBuf]) -> Vec<&Path> {
    clips.iter().map(PathBuf::as_path).collect()
}

/// A `list --json` entry without its id, for comparing two indexes.
fn without_id(song: &Value) -> Value {
    let mut song = song.clone();
    if let Some(fields) = song.as_object_mut() {
        fields.remove("id");
    }
    song
}

#[test]
fn export_then_import_into_a_fresh_index_round_trips_every_song_and_identifies() {
    let sandbox = Sandbox::new();
    let (_, songs) = small_library(&sandbox);
    let export = sandbox.path("library.afpx");
    let run = sandbox.run([OsStr::new("export"), export.as_os_str()]);
    run.expect_code(0, "export");
    assert!(
        run.stdout.contains(&format!("exported {NUM_SONGS} songs")),
        "{run}"
    );
    assert!(
        export.metadata().is_ok_and(|m| m.len() > 100),
        "no export written"
    );

    let imported_db = sandbox.path("imported.db");
    let run = sandbox.run_with_db(
        &imported_db,
        &[],
        [
            OsStr::new("import"),
            OsStr::new("--json"),
            export.as_os_str(),
        ],
    );
    run.expect_code(0, "import into a fresh index");
    let summary = run.json();
    assert_eq!(summary["imported"], NUM_SONGS, "{summary}");
    assert_eq!(summary["skipped"], 0, "{summary}");

    let original = sandbox.list();
    let imported = sandbox.list_db(&imported_db);
    assert_eq!(original.len(), NUM_SONGS);
    let key = |s: &Value| s["content_hash"].as_str().unwrap_or_default().to_string();
    let mut a: Vec<Value> = original.iter().map(without_id).collect();
    let mut b: Vec<Value> = imported.iter().map(without_id).collect();
    a.sort_by_key(key);
    b.sort_by_key(key);
    for field in [
        "title",
        "artist",
        "album",
        "duration_seconds",
        "content_hash",
        "added_at",
        "num_peaks",
        "num_frames",
        "path",
    ] {
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                x[field], y[field],
                "field {field} differs after export/import:\noriginal {x}\nimported {y}"
            );
        }
    }
    assert_eq!(
        a, b,
        "list --json differs (apart from ids) after export/import"
    );

    let (clips, expected) = clips_of(&sandbox, &songs, "imported");
    let (run, results) = sandbox.identify_db(&imported_db, &paths(&clips));
    assert_all_match(
        "excerpts against the imported index",
        &run,
        &results,
        &expected,
    );

    // Importing the same export again adds nothing.
    let run = sandbox.run_with_db(
        &imported_db,
        &[],
        [
            OsStr::new("import"),
            OsStr::new("--json"),
            export.as_os_str(),
        ],
    );
    run.expect_code(0, "second import of the same export");
    let summary = run.json();
    assert_eq!(summary["imported"], 0, "{summary}");
    assert_eq!(summary["skipped"], NUM_SONGS, "{summary}");
    assert_eq!(sandbox.list_db(&imported_db).len(), NUM_SONGS);
}

/// `audiofp export` onto the index's own database (or the inverted index saved beside it)
/// would replace the library with its export: refused, the files untouched.
#[test]
fn export_onto_the_index_itself_is_refused_and_changes_nothing() {
    let sandbox = Sandbox::new();
    small_library(&sandbox);
    let database = sandbox.db();
    let saved_index = sandbox.saved_index();
    // The saved index is written by the first command that loads the library.
    sandbox.run([OsStr::new("stats")]).expect_code(0, "stats");
    assert!(
        saved_index.exists(),
        "no saved index at {}",
        saved_index.display()
    );
    let alias = sandbox.path("alias.db");
    std::os::unix::fs::symlink(&database, &alias).expect("a symlink to the database");
    for target in [&database, &saved_index, &alias] {
        let before = std::fs::read(target).expect("reading the index file");
        let run = sandbox.run([OsStr::new("export"), target.as_os_str()]);
        run.expect_code(2, &format!("export onto {}", target.display()));
        assert!(
            run.stderr.contains("the index's own file"),
            "export onto {}:\n{run}",
            target.display()
        );
        assert!(
            std::fs::read(target).expect("reading the index file") == before,
            "export onto {} changed it",
            target.display()
        );
    }
    assert_eq!(
        sandbox.list().len(),
        NUM_SONGS,
        "the library after the refusals"
    );
    assert_no_partial_exports(&sandbox);

    // The WAL is gone after a clean close; an export written under its name would be read
    // as the database's log at the next open. Refused by name.
    let wal = sandbox.path("index.db-wal");
    assert!(!wal.exists(), "a WAL left after the commands ended");
    let run = sandbox.run([OsStr::new("export"), wal.as_os_str()]);
    run.expect_code(2, "export onto the WAL's name");
    assert!(run.stderr.contains("the index's own file"), "{run}");
    assert!(!wal.exists(), "an export written as the WAL");
}

/// An export through a link writes the file the link points to (the link stays, the file
/// keeps its permissions); a folder, a device or a pipe is refused and left as it was; `-`
/// writes the same bytes to standard output.
#[cfg(unix)]
#[test]
fn export_writes_through_links_refuses_what_is_not_a_file_and_streams_to_stdout() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let sandbox = Sandbox::new();
    small_library(&sandbox);
    let (_, exported) = export_to(&sandbox, "plain.afpx");
    let summary = sandbox.run(["export", "--json", "summary.afpx"]);
    summary.expect_code(0, "export --json");
    assert_eq!(summary.json()["exported"], NUM_SONGS, "{summary}");
    assert_eq!(summary.json()["file"], "summary.afpx", "{summary}");

    // A link to an older backup with private permissions.
    let backup = sandbox.path("backup.afpx");
    std::fs::write(&backup, b"an older backup").expect("writing the old backup");
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o600))
        .expect("making it private");
    let link = sandbox.path("latest.afpx");
    std::os::unix::fs::symlink(&backup, &link).expect("a link to the backup");
    sandbox
        .run([OsStr::new("export"), link.as_os_str()])
        .expect_code(0, "export through a link");
    let link_meta = std::fs::symlink_metadata(&link).expect("the link");
    assert!(link_meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(std::fs::read(&backup).expect("the backup"), exported);
    let mode = std::fs::metadata(&backup)
        .expect("the backup")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "permissions of the replaced file");

    // A folder and a pipe: refused, named, untouched.
    let folder = sandbox.subdir("exports");
    let pipe = sandbox.path("pipe.afpx");
    let made = std::process::Command::new("mkfifo").arg(&pipe).status();
    assert!(made.is_ok_and(|status| status.success()), "mkfifo");
    for (target, what) in [(&folder, "folder"), (&pipe, "pipe")] {
        let run = sandbox.run([OsStr::new("export"), target.as_os_str()]);
        run.expect_code(2, &format!("export onto a {what}"));
        assert!(
            run.stderr.contains(&target.display().to_string()) && run.stderr.contains(what),
            "{run}"
        );
    }
    assert!(folder.is_dir(), "the folder is gone");
    let pipe_type = std::fs::symlink_metadata(&pipe)
        .expect("the pipe")
        .file_type();
    assert!(pipe_type.is_fifo(), "the pipe was replaced");

    // `-`: the export on standard output, the note on standard error.
    let output = sandbox
        .command_with_db(&sandbox.db(), &[], ["export", "-"])
        .output()
        .expect("running export -");
    assert!(output.status.success(), "{output:?}");
    assert!(
        output.stdout == exported,
        "export - differs from the file export"
    );
    let note = String::from_utf8_lossy(&output.stderr);
    assert!(
        note.contains(&format!("exported {NUM_SONGS} songs")),
        "{note}"
    );
    assert_no_partial_exports(&sandbox);
}

#[test]
fn importing_a_truncated_or_foreign_export_file_fails_with_a_clear_error() {
    let sandbox = Sandbox::new();
    let (_, songs) = small_library(&sandbox);
    let (_, bytes) = export_to(&sandbox, "library.afpx");

    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "cut-in-half.afpx",
            bytes[..bytes.len() / 2].to_vec(),
            &["truncated"],
        ),
        (
            "cut-before-end-marker.afpx",
            bytes[..bytes.len() - 6].to_vec(),
            &["truncated"],
        ),
        (
            "cut-in-header.afpx",
            bytes[..10].to_vec(),
            &["not a valid audiofp export"],
        ),
        ("empty.afpx", Vec::new(), &["not a valid audiofp export"]),
        (
            "a-song.afpx",
            std::fs::read(&songs[0].path).expect("reading a WAV"),
            &["not a valid audiofp export"],
        ),
        (
            "a-song-of-80-hours.afpx",
            with_first_song_frames(&bytes, 9_000_000),
            &["not a valid audiofp export", "hours long"],
        ),
        (
            "a-title-changed-in-storage.afpx",
            with_bytes_replaced(&bytes, b"\"lib-1\"", b"\"lib-7\""),
            &["not a valid audiofp export", "checksum does not match"],
        ),
        (
            "data-after-the-end.afpx",
            [bytes.as_slice(), b"junk"].concat(),
            &["not a valid audiofp export", "after the end"],
        ),
    ];
    for (i, (name, content, words)) in cases.iter().enumerate() {
        let file = sandbox.path(name);
        std::fs::write(&file, content).expect("writing a damaged export");
        let db = sandbox.path(&format!("fresh-{i}.db"));
        let run = sandbox.run_with_db(&db, &[], [OsStr::new("import"), file.as_os_str()]);
        run.expect_code(2, &format!("import of {name}"));
        let file_text = file.display().to_string();
        for word in words.iter().chain([&file_text.as_str()]) {
            assert!(
                run.stderr.contains(word),
                "import of {name}: stderr should contain {word:?}:\n{run}"
            );
        }
        // The whole file is checked before the first song is written.
        if db.exists() {
            let left = sandbox.list_db(&db);
            assert!(
                left.is_empty(),
                "import of {name} failed but left {} song(s) in the index",
                left.len()
            );
        }
    }
}

/// `bytes` with the first occurrence of `from` replaced by `to` (of the same length).
fn with_bytes_replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .position(|window| window == from)
        .expect("the bytes to replace");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

/// `bytes`, an export of this build, as an earlier build wrote it: songs' length named
/// `duration_secs` (the same record lengths: JSON takes the spaces), `version` in the header,
/// and the checksum of version 2 or none (version 1).
fn as_written_by_an_earlier_version(bytes: &[u8], version: u32) -> Vec<u8> {
    let body = &bytes[..bytes.len() - 32];
    let (new_name, old_name) = (&b"\"duration_seconds\""[..], &b"\"duration_secs\"   "[..]);
    let mut old = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < body.len() {
        if body[at..].starts_with(new_name) {
            old.extend_from_slice(old_name);
            at += new_name.len();
        } else {
            old.push(body[at]);
            at += 1;
        }
    }
    old[4..8].copy_from_slice(&version.to_le_bytes());
    if version >= 2 {
        let checksum = blake3::hash(&old);
        old.extend_from_slice(checksum.as_bytes());
    }
    old
}

/// Exports of format versions 1 (before the checksum) and 2 (before `duration_seconds`)
/// still import whole.
#[test]
fn exports_of_earlier_format_versions_still_import() {
    let sandbox = Sandbox::new();
    small_library(&sandbox);
    let (_, bytes) = export_to(&sandbox, "library.afpx");
    assert_eq!(
        &bytes[4..8],
        &3u32.to_le_bytes(),
        "this build writes version 3"
    );
    for version in [1u32, 2] {
        let old = as_written_by_an_earlier_version(&bytes, version);
        assert!(
            old.windows(15).any(|w| w == b"\"duration_secs\""),
            "the old field name is in the version {version} file"
        );
        let old_file = sandbox.path(&format!("v{version}.afpx"));
        std::fs::write(&old_file, &old).expect("writing the old file");
        let db = sandbox.path(&format!("from-v{version}.db"));
        sandbox
            .run_with_db(&db, &[], [OsStr::new("import"), old_file.as_os_str()])
            .expect_code(0, &format!("import of a version {version} export"));
        assert_eq!(sandbox.list_db(&db), sandbox.list());
    }
}

/// `export` (an AFPX file) with its first song's record claiming `num_frames` frames: the
/// records are length-prefixed JSON and peak blobs after an 8-byte magic and version; record
/// 0 is the header, record 1 the first song.
fn with_first_song_frames(export: &[u8], num_frames: u64) -> Vec<u8> {
    let record_at = |at: usize| {
        let len = u32::from_le_bytes(export[at..at + 4].try_into().expect("4 bytes")) as usize;
        (at + 4, len)
    };
    let (header_start, header_len) = record_at(8);
    let song_at = header_start + header_len;
    let (song_start, song_len) = record_at(song_at);
    let mut song: Value =
        serde_json::from_slice(&export[song_start..song_start + song_len]).expect("song JSON");
    song["num_frames"] = num_frames.into();
    let song = serde_json::to_vec(&song).expect("song JSON");
    let mut out = export[..song_at].to_vec();
    out.extend_from_slice(&(song.len() as u32).to_le_bytes());
    out.extend_from_slice(&song);
    out.extend_from_slice(&export[song_start + song_len..]);
    out
}

#[test]
fn remove_drops_the_song_from_list_and_matches_and_unknown_ids_exit_2() {
    let sandbox = Sandbox::new();
    let (folder, songs) = small_library(&sandbox);

    // Re-running index on the same folder skips everything.
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["skipped"], NUM_SONGS, "re-run of index: {summary}");
    assert_eq!(summary["indexed"], 0, "re-run of index: {summary}");
    assert_eq!(sandbox.list().len(), NUM_SONGS);

    let victim = &songs[1];
    let listed = sandbox.list();
    let id = common::find_song(&listed, &victim.title)
        .and_then(|s| s["id"].as_i64())
        .unwrap_or_else(|| panic!("{} not listed: {listed:?}", victim.title));
    let show = sandbox.run(["show", "--json", &id.to_string()]);
    show.expect_code(0, "show of an indexed song");
    assert_eq!(show.json()["title"], victim.title.as_str(), "{show}");

    let run = sandbox.run(["remove", "--json", &id.to_string()]);
    run.expect_code(0, "remove of an indexed song");
    assert_eq!(
        run.json(),
        serde_json::json!({ "removed": [id], "unknown": [] }),
        "{run}"
    );

    let listed = sandbox.list();
    assert_eq!(listed.len(), NUM_SONGS - 1, "{listed:?}");
    assert!(
        common::find_song(&listed, &victim.title).is_none(),
        "removed song still listed: {listed:?}"
    );
    let show = sandbox.run(["show", &id.to_string()]);
    show.expect_code(2, "show of a removed song");
    let stats = sandbox.run(["stats", "--json"]);
    stats.expect_code(0, "stats");
    assert_eq!(stats.json()["songs"], NUM_SONGS - 1, "{stats}");

    let (clips, expected) = clips_of(&sandbox, &songs, "after-remove");
    let (run, results) = sandbox.identify(&paths(&clips));
    assert_eq!(
        results[1]["found"], false,
        "an excerpt of the removed song still matches: {}",
        results[1]
    );
    assert_eq!(
        results[1]["matches"],
        Value::Array(vec![]),
        "{}",
        results[1]
    );
    for (i, (result, expect)) in results.iter().zip(&expected).enumerate() {
        if i != 1
            && let Err(e) = common::check_match(result, expect)
        {
            panic!("after removing another song: {e}");
        }
    }
    run.expect_code(1, "identify with one clip of the removed song");

    // Unknown ids.
    let run = sandbox.run(["remove", "9999"]);
    run.expect_code(2, "remove 9999");
    assert!(run.stderr.contains("no song with id 9999"), "{run}");
    let run = sandbox.run(["remove", "--json", "9999"]);
    run.expect_code(2, "remove --json 9999");
    assert_eq!(run.json()["unknown"], serde_json::json!([9999]), "{run}");
    let run = sandbox.run(["show", "9999"]);
    run.expect_code(2, "show 9999");
    assert!(run.stderr.contains("no song with id 9999"), "{run}");
    let run = sandbox.run(["show", "--json", "9999"]);
    run.expect_code(2, "show --json 9999");
    assert!(run.stderr.contains("no song with id 9999"), "{run}");
    // Under --json the error is JSON on standard output too, shaped like the API's.
    let error = &run.json()["error"];
    assert_eq!(error["code"], "song_not_found", "{run}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("no song with id 9999")),
        "{run}"
    );
    assert_eq!(sandbox.list().len(), NUM_SONGS - 1);

    // Indexing the folder again brings the removed song back, and only it.
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 1, "re-index after remove: {summary}");
    assert_eq!(summary["skipped"], NUM_SONGS - 1, "{summary}");
    let (run, results) = sandbox.identify(&[&clips[1]]);
    assert_all_match(
        "the removed song, indexed again",
        &run,
        &results,
        &expected[1..2],
    );
}

#[test]
fn saved_index_is_loaded_when_current_and_rebuilt_when_damaged() {
    let sandbox = Sandbox::new();
    let (_folder, songs) = small_library(&sandbox);
    let saved = sandbox.saved_index();
    let written = std::fs::metadata(&saved).unwrap_or_else(|e| {
        panic!(
            "`index` saves the inverted index at {}: {e}",
            saved.display()
        )
    });
    assert!(written.len() > 1000, "{} bytes", written.len());

    let (clips, expected) = clips_of(&sandbox, &songs, "saved");
    let (run, results) = sandbox.identify(&paths(&clips));
    common::assert_all_match("from the saved index", &run, &results, &expected);

    // A damaged file is not trusted: the index is rebuilt from the database (the answers
    // stay right) and saved again.
    std::fs::write(&saved, b"AFPOSTv1 and then nothing that makes sense").unwrap();
    let (run, results) = sandbox.identify(&paths(&clips));
    common::assert_all_match(
        "after the saved index was damaged",
        &run,
        &results,
        &expected,
    );
    // Rebuilt indexes are saved merged, so the size may differ from the first file's.
    let rewritten = std::fs::read(&saved).unwrap();
    assert!(
        rewritten.starts_with(b"AFPOSTv") && rewritten.len() > 1000,
        "the rebuilt index was saved again ({} bytes)",
        rewritten.len()
    );
}

/// Two open libraries (two processes, say `audiofp index` runs in two terminals) add songs to
/// one database. The one that saves the inverted index last never saw the other's song: the
/// saved file must not claim to be current, or the next process would load it and never find
/// that song.
#[test]
fn a_saved_index_never_hides_a_song_another_process_added() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::Library;
    use audiofp::testkit::distort;

    let dir = tempfile::tempdir().unwrap();
    let storage = StorageKind::Sqlite(dir.path().join("index.db"));
    let config = FingerprintConfig::default();
    let match_config = MatchConfig::default();
    let open = || Library::open(&storage, &config, &match_config, OpenMode::CreateIfMissing);
    let (first_meta, first_fingerprint, _) = fingerprinted_song(61, "Saved by the first");
    let (other_meta, other_fingerprint, other_samples) =
        fingerprinted_song(62, "Added by the other");

    let mut first = open().unwrap();
    let mut other = open().unwrap();
    other.add(&other_meta, &other_fingerprint).unwrap();
    first.add(&first_meta, &first_fingerprint).unwrap();
    first.save_index().unwrap();
    drop((first, other));

    let later = open().unwrap();
    let clip = distort::excerpt(&other_samples, SR, 6.0, 5.0);
    let found = later.identify_samples(&clip, SR).unwrap();
    assert_eq!(
        found.matches.first().map(|m| m.song.title.as_str()),
        Some("Added by the other"),
        "{found:?}"
    );
}

/// A library opened without a current saved index rebuilds it in memory and saves it once,
/// when it is closed: a command that goes on to change the library (`index`, `remove`) does
/// not write the whole index twice.
#[test]
fn a_rebuilt_index_is_saved_when_the_library_is_closed() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::Library;

    let sandbox = Sandbox::new();
    let (_folder, _songs) = small_library(&sandbox);
    let saved = sandbox.saved_index();
    std::fs::remove_file(&saved).unwrap();

    let library = Library::open(
        &StorageKind::Sqlite(sandbox.db()),
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        OpenMode::MustExist,
    )
    .unwrap();
    assert!(library.inverted_index().song_count() > 0);
    assert!(!saved.exists(), "not written at open");
    drop(library);
    let written = std::fs::read(&saved).expect("written when the library was closed");
    assert!(written.starts_with(b"AFPOSTv"));
}

/// A saved index that is out of date (songs were added and removed by a process that stopped
/// before saving, say) is loaded and brought up to date song by song instead of being rebuilt,
/// and answers as a rebuilt one would. In a database written by an earlier build (which did
/// not record the next song id), SQLite gives a removed song's id to the next song when it
/// was the last id: the new song must not be taken for the old one.
#[test]
fn an_out_of_date_saved_index_is_caught_up_even_when_an_id_was_given_again() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::{IndexOrigin, Library};
    use audiofp::testkit::distort;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let saved = dir.path().join("index.db.postings");
    let storage = StorageKind::Sqlite(db.clone());
    let config = FingerprintConfig::default();
    let match_config = MatchConfig::default();
    let open = || Library::open(&storage, &config, &match_config, OpenMode::CreateIfMissing);
    let songs: Vec<_> = (71..76)
        .map(|seed| fingerprinted_song(seed, &format!("song {seed}")))
        .collect();

    let mut first = open().unwrap();
    let ids: Vec<i64> = songs[..3]
        .iter()
        .map(|(meta, fingerprint, _)| first.add(meta, fingerprint).unwrap().id)
        .collect();
    first.save_index().unwrap();
    drop(first);
    let written = std::fs::read(&saved).expect("saved");

    let mut second = open().unwrap();
    assert_eq!(second.index_origin(), IndexOrigin::Saved);
    assert!(second.remove(ids[2]).unwrap());
    // As an earlier build left it: no record of the next id.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'next_song_id'", [])
        .unwrap();
    let reused = second.add(&songs[3].0, &songs[3].1).unwrap().id;
    assert_eq!(reused, ids[2], "SQLite gave the removed song's id again");
    // The library that removed the old song finds the new one under the same id.
    let clip = distort::excerpt(&songs[3].2, SR, 6.0, 5.0);
    let found = second.identify_samples(&clip, SR).unwrap();
    assert_eq!(
        found.matches.first().map(|m| m.song.id),
        Some(reused),
        "{found:?}"
    );
    second.add(&songs[4].0, &songs[4].1).unwrap();
    drop(second);
    // As if the second process had stopped before saving.
    std::fs::write(&saved, &written).unwrap();

    let caught_up = open().unwrap();
    assert_eq!(
        caught_up.index_origin(),
        IndexOrigin::CaughtUp {
            added: 2,
            removed: 1
        }
    );
    std::fs::remove_file(&saved).unwrap();
    let rebuilt = open().unwrap();
    assert_eq!(rebuilt.index_origin(), IndexOrigin::Rebuilt);
    for (meta, _, samples) in &songs {
        let clip = distort::excerpt(samples, SR, 6.0, 5.0);
        let answer = |library: &Library| {
            let found = library.identify_samples(&clip, SR).unwrap();
            found.matches.first().map(|m| {
                (
                    m.song.title.clone(),
                    m.aligned,
                    (m.offset_secs * 100.0).round(),
                )
            })
        };
        let expected = answer(&rebuilt);
        let removed = meta.title == songs[2].0.title;
        assert_eq!(
            expected.as_ref().map(|m| m.0.as_str()),
            (!removed).then_some(meta.title.as_str()),
            "rebuilt index, clip of {}",
            meta.title
        );
        assert_eq!(answer(&caught_up), expected, "clip of {}", meta.title);
    }
    // The rebuilt library saves the index when it closes; the caught-up one does too (3
    // changes in 4 songs are due).
    drop(rebuilt);
    std::fs::remove_file(&saved).unwrap();
    drop(caught_up);
    assert_eq!(open().unwrap().index_origin(), IndexOrigin::Saved);
}

/// A database written by an earlier build keeps no record of the next song id. When this build
/// removes its newest song, that id must still not be given again: a result card or a script
/// holding it would reach another song.
#[test]
fn removing_the_newest_song_of_an_earlier_builds_database_does_not_free_its_id() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::Library;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let storage = StorageKind::Sqlite(db.clone());
    let open = || {
        Library::open(
            &storage,
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::CreateIfMissing,
        )
    };
    let songs: Vec<_> = (81..84)
        .map(|seed| fingerprinted_song(seed, &format!("song {seed}")))
        .collect();
    let ids: Vec<i64> = {
        let mut library = open().unwrap();
        songs[..2]
            .iter()
            .map(|(meta, fingerprint, _)| library.add(meta, fingerprint).unwrap().id)
            .collect()
    };
    // As an earlier build left it: no record of the next id.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM meta WHERE key = 'next_song_id'", [])
        .unwrap();
    let mut library = open().unwrap();
    assert!(library.remove(ids[1]).unwrap());
    let new_id = library.add(&songs[2].0, &songs[2].1).unwrap().id;
    assert!(
        new_id > ids[1],
        "the removed newest song's id {} was given to a new song ({new_id})",
        ids[1]
    );
}

/// `audiofp index` of one song into a large library neither loads nor rewrites the saved
/// index (4.7 GB at 50,000 songs): the next command to open the library adds that song to it
/// from the database, and finds it.
#[test]
fn indexing_one_song_into_a_large_library_leaves_the_saved_index_for_the_next_command() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::engine::Fingerprint;
    use audiofp::engine::peaks::Peak;
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::Library;

    let sandbox = Sandbox::new();
    // 120 songs of generated peaks (2 % of them is 2 songs: one new song is not due).
    let config = FingerprintConfig::default();
    let mut library = Library::open(
        &StorageKind::Sqlite(sandbox.db()),
        &config,
        &MatchConfig::default(),
        OpenMode::CreateIfMissing,
    )
    .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |below: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(below)) as u32
    };
    for song in 0..120u64 {
        let frames = 3_000;
        let mut peaks: Vec<Peak> = (0..900)
            .map(|_| Peak {
                frame: next(frames),
                bin: next(config.band_bins() as u32) as u16,
            })
            .collect();
        peaks.sort_unstable();
        peaks.dedup();
        let fingerprint = Fingerprint {
            peaks,
            num_frames: frames,
            duration_secs: f64::from(frames) * config.frame_secs(),
            contrast: None,
        };
        let meta = new_song(&format!("generated {song}"), song, &fingerprint);
        library.add(&meta, &fingerprint).unwrap();
    }
    library.save_index().unwrap();
    drop(library);
    let saved = std::fs::read(sandbox.saved_index()).expect("saved");

    let folder = sandbox.subdir("new");
    let song = write_song(&folder, "the new one", 8100, 20.0);
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 1, "{summary}");
    assert!(
        std::fs::read(sandbox.saved_index()).unwrap() == saved,
        "the saved index was rewritten for one song"
    );

    let (clips, expected) = clips_of(&sandbox, std::slice::from_ref(&song), "new");
    let (run, results) = sandbox.identify(&paths(&clips));
    assert_all_match(
        "the song added after the index was saved",
        &run,
        &results,
        &expected,
    );
}

/// A library opened only to add songs (what `audiofp index` opens) has no index in memory:
/// every way of asking it a question is refused with `NotLoaded`, never answered from an
/// empty index; opened normally, the same library answers.
#[test]
fn a_library_opened_for_adding_refuses_every_query() {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::engine::{self, Side};
    use audiofp::index::{OpenMode, StorageKind};
    use audiofp::library::{Library, LibraryError};
    use audiofp::testkit::distort;

    let dir = tempfile::tempdir().unwrap();
    let storage = StorageKind::Sqlite(dir.path().join("index.db"));
    let config = FingerprintConfig::default();
    let match_config = MatchConfig::default();
    let (meta, fingerprint, samples) = fingerprinted_song(81, "Added without the index");
    let clip = distort::excerpt(&samples, SR, 6.0, 5.0);
    let clip_fingerprint =
        engine::fingerprint_samples(&clip, SR, &config, &match_config, Side::Query).unwrap();

    let mut adding =
        Library::open_for_adding(&storage, &config, &match_config, OpenMode::CreateIfMissing)
            .unwrap();
    let id = adding.add(&meta, &fingerprint).unwrap().id;
    let not_loaded = |what: &str, result: Result<(), LibraryError>| {
        assert!(
            matches!(result, Err(LibraryError::NotLoaded)),
            "{what} on a library opened for adding: {result:?}"
        );
    };
    not_loaded(
        "identify_samples",
        adding.identify_samples(&clip, SR).map(drop),
    );
    not_loaded(
        "identify_fingerprint",
        adding
            .identify_fingerprint(&clip_fingerprint, 0.0)
            .map(drop),
    );
    not_loaded(
        "evidence",
        adding.evidence(&clip_fingerprint, id, 6.0).map(drop),
    );
    drop(adding);

    let library = Library::open(&storage, &config, &match_config, OpenMode::MustExist).unwrap();
    let found = library
        .identify_fingerprint(&clip_fingerprint, 0.0)
        .unwrap();
    assert_eq!(
        found.matches.first().map(|m| m.song.id),
        Some(id),
        "{found:?}"
    );
    let evidence = library.evidence(&clip_fingerprint, id, 6.0).unwrap();
    assert!(
        evidence.aligned.iter().filter(|&&a| a).count() >= 5,
        "the clip's hits in its own song line up at 6 s"
    );
}

/// Each listed song's id and path, by title.
fn ids_and_paths(songs: &[Value]) -> std::collections::BTreeMap<String, (i64, PathBuf)> {
    songs
        .iter()
        .map(|song| {
            let title = song["title"].as_str().unwrap_or_default().to_string();
            let id = song["id"].as_i64().unwrap_or(-1);
            let path = PathBuf::from(song["path"].as_str().unwrap_or_default());
            (title, (id, path))
        })
        .collect()
}

#[test]
fn a_moved_library_is_found_again_by_content_and_paths_are_stored_absolute() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let songs: Vec<Song> = (0..3)
        .map(|i| write_song(&folder, &format!("moving-{i}"), 9100 + i, 12.0))
        .collect();

    // A folder given relative to the working directory (the sandbox root) is stored absolute,
    // so that the app, started from anywhere, finds the files.
    let run = sandbox.run(["index", "--json", "music"]);
    run.expect_code(0, "index of a relative folder");
    assert_eq!(run.json()["indexed"], 3, "{run}");
    let before = ids_and_paths(&sandbox.list());
    for song in &songs {
        let (_, path) = &before[&song.title];
        assert!(path.is_absolute(), "{} stored as {path:?}", song.title);
        assert_eq!(
            path.canonicalize().ok(),
            song.path.canonicalize().ok(),
            "{} stored as {path:?}",
            song.title
        );
    }

    // The library is reorganised: the folder moves, a file is renamed, another is copied.
    let archive = sandbox.subdir("archive");
    let albums = archive.join("albums");
    std::fs::rename(&folder, &albums).unwrap();
    let renamed = albums.join("renamed-0.wav");
    std::fs::rename(albums.join("moving-0.wav"), &renamed).unwrap();
    let dupes = sandbox.subdir("dupes");
    std::fs::copy(albums.join("moving-1.wav"), dupes.join("copy-1.wav")).unwrap();

    let run = sandbox.run([
        OsStr::new("--log-level"),
        OsStr::new("info"),
        OsStr::new("index"),
        OsStr::new("--json"),
        archive.as_os_str(),
        dupes.as_os_str(),
    ]);
    run.expect_code(0, "index of the reorganised library");
    let summary = run.json();
    assert_eq!(summary["indexed"], 0, "{summary}");
    assert_eq!(summary["skipped"], 4, "{summary}");
    // The three songs are found at their new paths; the copy is a duplicate of one of them.
    assert_eq!(summary["moved"], 3, "{summary}");
    assert_eq!(summary["failed"], serde_json::json!([]), "{summary}");
    assert!(
        run.stderr.contains("moved from") && run.stderr.contains("same audio as song"),
        "the log names neither the moves nor the duplicate: {run}"
    );

    let after = ids_and_paths(&sandbox.list());
    assert_eq!(after.len(), 3, "{after:?}");
    for song in &songs {
        let (id_before, _) = &before[&song.title];
        let (id_after, path) = &after[&song.title];
        assert_eq!(id_after, id_before, "{} got another id", song.title);
        assert!(path.is_file(), "{} points at {path:?}", song.title);
        assert!(
            path.starts_with(&albums) || path.starts_with(&dupes),
            "{path:?}"
        );
    }
    assert_eq!(after["moving-0"].1, renamed, "the renamed file");

    // Their new stamps are stored: a re-run skips every file unread.
    let summary = sandbox.index_json(&[&archive, &dupes], 0);
    assert_eq!(summary["skipped"], 4, "{summary}");
    assert_eq!(summary["moved"], 0, "{summary}");

    // A file touched without a change of content keeps its song and gets its new stamp.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&renamed)
        .and_then(|file| file.set_modified(later))
        .unwrap();
    let summary = sandbox.index_json(&[&archive], 0);
    assert_eq!(summary["skipped"], 3, "{summary}");
    assert_eq!(summary["moved"], 0, "{summary}");
    let touched = sandbox
        .list()
        .into_iter()
        .find(|song| song["title"] == "moving-0")
        .unwrap();
    let mtime = later
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(touched["file_mtime"], mtime, "{touched}");

    // The songs still identify, at the right offset.
    let (clips, expected) = clips_of(&sandbox, &songs[..1], "moved");
    let (run, results) = sandbox.identify(&paths(&clips));
    assert_all_match("a clip of a moved song", &run, &results, &expected);
}

#[test]
fn paths_with_dot_dot_are_stored_as_a_later_run_spells_them() {
    let sandbox = Sandbox::new();
    let music = sandbox.subdir("music");
    sandbox.subdir("work");
    write_song(&music, "upstairs", 9300, 12.0);
    let root = std::path::absolute(sandbox.root()).unwrap();

    // Given as `work/../music` (relative, through `..`), stored as `<root>/music/...`.
    let summary = sandbox.index_json(&[Path::new("work/../music")], 0);
    assert_eq!(summary["indexed"], 1, "{summary}");
    let stored = ids_and_paths(&sandbox.list());
    assert_eq!(
        stored["upstairs"].1,
        root.join("music/upstairs.wav"),
        "{stored:?}"
    );

    // The plain spelling is the same file: skipped unread, not a duplicate of itself.
    let summary = sandbox.index_json(&[&music], 0);
    assert_eq!(summary["skipped"], 1, "{summary}");
    assert_eq!(summary["duplicates"], serde_json::json!([]), "{summary}");
    assert_eq!(summary["moved"], 0, "{summary}");

    // After a link, `..` is the link target's parent, as the file system resolves it.
    let elsewhere = sandbox.subdir("deep/shelf");
    let other_music = sandbox.subdir("deep/music");
    write_song(&other_music, "downstairs", 9301, 12.0);
    std::os::unix::fs::symlink(&elsewhere, sandbox.path("shortcut")).unwrap();
    let summary = sandbox.index_json(&[Path::new("shortcut/../music")], 0);
    assert_eq!(summary["indexed"], 1, "{summary}");
    let stored = ids_and_paths(&sandbox.list());
    assert_eq!(
        stored["downstairs"].1.canonicalize().ok(),
        other_music.join("downstairs.wav").canonicalize().ok(),
        "{stored:?}"
    );
    assert!(
        !stored["downstairs"]
            .1
            .components()
            .any(|c| c == std::path::Component::ParentDir),
        "{stored:?}"
    );

    // The text summary counts paths that do not exist apart from files that failed.
    let run = sandbox.run(["index", "music", "no-such-folder"]);
    run.expect_code(2, "index with a missing path");
    assert!(
        run.stdout.contains("0 failed, 1 not found"),
        "the summary line: {run}"
    );
}

#[test]
fn index_of_nothing_that_exists_creates_no_index() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(["index", "no-such-folder", "no-such-file.mp3"]);
    run.expect_code(2, "index of paths that do not exist");
    assert!(
        run.stderr
            .contains("no-such-folder: no such file or folder"),
        "{run}"
    );
    assert!(
        run.stdout.contains("0 failed, 2 not found"),
        "the summary line: {run}"
    );
    assert!(
        !sandbox.db().exists(),
        "a mistyped path must not leave an empty index behind"
    );
}

/// File names that are not UTF-8 (Latin-1 names copied from an old disk) are stored exactly:
/// two names a lossy conversion would make one ("caf\u{FFFD}.wav") stay two songs, a re-run
/// skips both unread, and `show` prints a readable path.
#[cfg(unix)]
#[test]
fn file_names_that_are_not_utf8_stay_distinct_songs() {
    use std::os::unix::ffi::OsStrExt as _;
    let sandbox = Sandbox::new();
    let music = sandbox.subdir("latin1");
    for (seed, name) in [(9401, &b"caf\xe9.wav"[..]), (9402, &b"caf\xe8.wav"[..])] {
        let song = write_song(&music, &format!("song {seed}"), seed, 8.0);
        std::fs::rename(&song.path, music.join(OsStr::from_bytes(name))).unwrap();
    }
    let summary = sandbox.index_json(&[&music], 0);
    assert_eq!(summary["indexed"], 2, "{summary}");
    let summary = sandbox.index_json(&[&music], 0);
    assert_eq!(
        summary["indexed"], 0,
        "a second run indexes nothing again: {summary}"
    );
    assert_eq!(summary["replaced"], 0, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");
    let songs = sandbox.list();
    assert_eq!(songs.len(), 2, "{songs:?}");
    let id = songs[0]["id"].to_string();
    let show = sandbox.run(["show", &id]);
    show.expect_code(0, "show of a song with a Latin-1 file name");
    assert!(show.stdout.contains("latin1/caf\u{FFFD}.wav"), "{show}");
}

#[test]
fn index_flags_a_command_would_ignore_are_refused() {
    let sandbox = Sandbox::new();
    // `--db` with memory storage: the file would never be written.
    let run = sandbox.run_with_db(&sandbox.db(), &[("STORAGE_TYPE", "memory")], ["stats"]);
    run.expect_code(2, "--db with STORAGE_TYPE=memory");
    assert!(
        run.stderr.contains("--db") && run.stderr.contains("memory"),
        "{run}"
    );
    assert!(!sandbox.db().exists(), "no index file may be created");

    // From the environment (a .env naming a database) memory storage is just memory.
    let db = sandbox.db().display().to_string();
    let envs = [
        ("STORAGE_TYPE", "memory"),
        ("SQLITE_DATABASE_PATH", db.as_str()),
    ];
    let run = sandbox.run_without_db(&envs, ["stats", "--json"]);
    run.expect_code(0, "STORAGE_TYPE=memory with SQLITE_DATABASE_PATH");
    let stats = run.json();
    assert_eq!(stats["storage"], "memory", "{stats}");

    // demo and bench keep their own index.
    for command in [vec!["demo", "--songs", "1"], vec!["bench", "--limit", "1"]] {
        let run = sandbox.run(&command);
        run.expect_code(2, command[0]);
        assert!(
            run.stderr.contains("--db is not used") && run.stderr.contains(command[0]),
            "{run}"
        );
    }
    assert!(!sandbox.db().exists(), "no index file may be created");
}

/// What a script piping `audiofp` meets: output cut short by a reader that stops (`| head`)
/// ends quietly with exit 0, in text and in JSON; errors name their cause once; log lines
/// on a pipe carry no colour codes; a misspelt log level and a malformed `.env` are errors,
/// not settings silently dropped.
#[test]
fn output_to_pipes_and_bad_settings_behave_as_scripts_expect() {
    let sandbox = Sandbox::new();
    let (folder, _) = small_library(&sandbox);

    for args in [["list"].as_slice(), &["list", "--json"], &["stats"]] {
        let mut child = sandbox
            .command_with_db(&sandbox.db(), &[], args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting audiofp");
        // The reader goes away before audiofp has written a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("waiting for audiofp");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} into a closed pipe:\n{stderr}"
        );
        assert!(stderr.is_empty(), "{args:?} into a closed pipe:\n{stderr}");
    }

    let run = sandbox.run([
        OsStr::new("import"),
        sandbox.path("no-such.afpx").as_os_str(),
    ]);
    run.expect_code(2, "import of a missing file");
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "the cause once:\n{run}"
    );

    let run = sandbox.run_with_db(
        &sandbox.db(),
        &[("LOG_LEVEL", "info")],
        [OsStr::new("index"), folder.as_os_str()],
    );
    run.expect_code(0, "index again at LOG_LEVEL=info");
    assert!(run.stderr.contains("INFO"), "info lines expected:\n{run}");
    assert!(
        !run.stderr.contains('\u{1b}'),
        "colour codes in piped logs:\n{run}"
    );

    let run = sandbox.run(["--log-level", "verbose", "stats"]);
    run.expect_code(2, "--log-level verbose");
    assert!(
        run.stderr.contains("invalid log level \"verbose\""),
        "{run}"
    );

    std::fs::write(
        sandbox.path(".env"),
        "LOG_LEVEL=warn\nthis line is not a setting\nMATCH_THRESHOLD=0.5\n",
    )
    .expect("writing .env");
    let run = sandbox.run(["stats"]);
    run.expect_code(2, "stats with a malformed .env");
    assert!(
        run.stderr.contains(".env") && run.stderr.contains("this line is not a setting"),
        "{run}"
    );
}

/// Small things a user runs into: an id given twice to `remove`, `--top 0`, an empty folder,
/// an empty index, and `stats` of a memory index.
#[test]
fn remove_top_empty_folders_and_memory_stats_say_what_happened() {
    let sandbox = Sandbox::new();
    let (_, songs) = small_library(&sandbox);

    // A copy of an indexed song under another name is named as a duplicate of its song.
    let copies = sandbox.subdir("copies");
    let copy = copies.join("same-audio.wav");
    std::fs::copy(&songs[1].path, &copy).expect("copying a song");
    let song_id = sandbox
        .list()
        .into_iter()
        .find(|s| s["title"] == songs[1].title)
        .and_then(|s| s["id"].as_i64())
        .expect("the copied song's id");
    let summary = sandbox.index_json(&[&copies], 0);
    assert_eq!(
        summary["duplicates"],
        serde_json::json!([{ "path": copy, "song_id": song_id }]),
        "{summary}"
    );
    let run = sandbox.run([OsStr::new("index"), copies.as_os_str()]);
    run.expect_code(0, "index of a copy");
    assert!(
        run.stdout.contains(&format!(
            "duplicate: {} (the same audio as song {song_id}",
            copy.display()
        )),
        "{run}"
    );

    let first_id = sandbox.list()[0]["id"].as_i64().expect("an id");
    let id = first_id.to_string();
    let run = sandbox.run(["remove", id.as_str(), id.as_str()]);
    run.expect_code(0, "remove of one id given twice");
    assert_eq!(run.stdout.matches("removed song").count(), 1, "{run}");
    assert!(run.stderr.is_empty(), "{run}");
    assert_eq!(sandbox.list().len(), NUM_SONGS - 1);

    let clip = write_clip(&sandbox.path("silence.wav"), &vec![0.1; 22_050], SR);
    for top in ["0", "51"] {
        let run = sandbox.run([
            OsStr::new("identify"),
            OsStr::new("--top"),
            OsStr::new(top),
            clip.as_os_str(),
        ]);
        run.expect_code(2, &format!("identify --top {top}"));
        assert!(run.stderr.contains("--top must be within 1..=50"), "{run}");
    }

    let empty = sandbox.subdir("empty-folder");
    let run = sandbox.run([OsStr::new("index"), empty.as_os_str()]);
    run.expect_code(0, "index of an empty folder");
    assert!(run.stderr.contains("no audio files found"), "{run}");

    let empty_db = sandbox.path("empty.db");
    sandbox
        .run_with_db(&empty_db, &[], [OsStr::new("index"), empty.as_os_str()])
        .expect_code(0, "index of nothing into a new database");
    let song = common::write_song(&sandbox.subdir("clips"), "not-indexed", 7777, 5.0);
    let run = sandbox.run_with_db(
        &empty_db,
        &[],
        [OsStr::new("identify"), song.path.as_os_str()],
    );
    run.expect_code(1, "identify against an empty index");
    assert!(run.stderr.contains("holds no songs"), "{run}");

    let run = sandbox.run_without_db(&[("STORAGE_TYPE", "memory")], ["stats"]);
    run.expect_code(0, "stats of a memory index");
    assert!(run.stdout.contains("index:     in memory"), "{run}");
    assert!(run.stdout.contains("audio:     0.00 hours"), "{run}");
}

/// An export made with other fingerprint parameters is refused by name, before a new
/// database is created for it.
#[test]
fn an_export_of_other_parameters_is_refused_without_creating_a_database() {
    let sandbox = Sandbox::new();
    small_library(&sandbox);
    let export = sandbox.path("library.afpx");
    sandbox
        .run([OsStr::new("export"), export.as_os_str()])
        .expect_code(0, "export");
    let fresh = sandbox.path("fresh.db");
    let run = sandbox.run_with_db(
        &fresh,
        &[("FAN_VALUE", "6")],
        [OsStr::new("import"), export.as_os_str()],
    );
    run.expect_code(2, "import with FAN_VALUE=6");
    assert!(run.stderr.contains("FAN_VALUE 5 vs 6"), "{run}");
    assert!(
        !fresh.exists(),
        "a database was created for a refused import"
    );
}

/// A file changed since it was indexed (another song saved under its name, a retag, a
/// re-encode) is indexed again and the song of its earlier version removed: one song per
/// file, the one the file holds now.
#[test]
fn a_file_changed_since_it_was_indexed_replaces_its_earlier_song() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let first = write_song(&folder, "track", 9300, 15.0);
    let other = write_song(&folder, "other", 9301, 15.0);
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 2, "{summary}");
    let old_id = ids_and_paths(&sandbox.list())["track"].0;

    // Another song saved as "track.wav" (a later modification time, as a second later).
    let second = write_song(&folder, "track", 9302, 15.0);
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&second.path)
        .and_then(|file| file.set_modified(later))
        .expect("setting the modification time");
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(
        (
            &summary["indexed"],
            &summary["skipped"],
            &summary["replaced"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{summary}"
    );
    let songs = ids_and_paths(&sandbox.list());
    assert_eq!(songs.len(), 2, "{songs:?}");
    assert_ne!(
        songs["track"].0, old_id,
        "the earlier version's song is gone"
    );

    // The file's audio now is found; its earlier audio is no longer in the library.
    let now = write_clip(&sandbox.path("now.wav"), &second.excerpt(4.0, 5.0), SR);
    let before = write_clip(&sandbox.path("before.wav"), &first.excerpt(4.0, 5.0), SR);
    let kept = write_clip(&sandbox.path("kept.wav"), &other.excerpt(4.0, 5.0), SR);
    let (run, results) = sandbox.identify(&[&now, &before, &kept]);
    assert_eq!(results[0]["matches"][0]["title"], "track", "{run}");
    assert_eq!(
        results[0]["matches"][0]["song_id"], songs["track"].0,
        "{run}"
    );
    assert_eq!(results[1]["found"], false, "{run}");
    assert_eq!(results[2]["matches"][0]["title"], "other", "{run}");

    // Nothing changed since: a re-run replaces nothing.
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["replaced"], 0, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");
}

/// The id of a removed song is never given to another: a script holding it must not reach a
/// different song. (SQLite alone gives the highest id again once its row is gone.)
#[test]
fn the_id_of_a_removed_song_is_never_given_again() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    write_song(&folder, "first", 9400, 8.0);
    sandbox.index_json(&[&folder], 0);
    let second = sandbox.subdir("later");
    write_song(&second, "second", 9401, 8.0);
    sandbox.index_json(&[&second], 0);
    let ids = ids_and_paths(&sandbox.list());
    let highest = ids["second"].0;
    assert!(highest > ids["first"].0, "{ids:?}");

    sandbox
        .run(["remove", &highest.to_string()])
        .expect_code(0, "remove the song with the highest id");
    let third = sandbox.subdir("third");
    write_song(&third, "third", 9402, 8.0);
    sandbox.index_json(&[&third], 0);
    let ids = ids_and_paths(&sandbox.list());
    assert!(
        ids["third"].0 > highest,
        "id {highest} given again: {ids:?}"
    );
}

/// `duplicates` finds a song indexed twice (the same samples, quieter, so another file) as
/// one pair with the same audio, and a medley that plays the song's first 20 s after 10 s of
/// other music as holding each copy from 0:10; a song of its own is in neither.
#[test]
fn duplicates_finds_the_same_audio_twice_and_a_song_inside_a_medley() {
    let sandbox = Sandbox::new();
    let folder = sandbox.subdir("music");
    let song = audiofp::testkit::synth::song(2001, 30.0, SR);
    write_clip(&folder.join("Song A.wav"), &song, SR);
    let quieter: Vec<f32> = song.iter().map(|s| s * 0.7).collect();
    write_clip(&folder.join("Song A copy.wav"), &quieter, SR);
    write_song(&folder, "Song B", 2002, 25.0);
    let intro = audiofp::testkit::synth::song(2003, 10.0, SR);
    let medley = [intro.as_slice(), &song[..20 * SR as usize]].concat();
    write_clip(&folder.join("Medley.wav"), &medley, SR);
    let summary = sandbox.index_json(&[&folder], 0);
    assert_eq!(summary["indexed"], 4, "{summary}");
    let songs = sandbox.list();
    let id = |title: &str| {
        common::find_song(&songs, title)
            .and_then(|song| song["id"].as_i64())
            .unwrap_or_else(|| panic!("{title} not listed: {songs:?}"))
    };

    let run = sandbox.run(["duplicates", "--json"]);
    run.expect_code(0, "duplicates");
    let report = run.json();
    assert_eq!(report["songs"], 4, "{report}");
    let (a, copy, medley_id) = (id("Song A"), id("Song A copy"), id("Medley"));
    let pair = [a.min(copy), a.max(copy)];
    assert_eq!(
        report["same_audio"],
        serde_json::json!([{ "song_ids": pair }]),
        "{report}"
    );
    let heard = report["heard_in"].as_array().expect("a heard_in array");
    assert_eq!(heard.len(), 2, "{report}");
    for (entry, song_id) in heard.iter().zip(pair) {
        assert_eq!(entry["song_id"], song_id, "{report}");
        assert_eq!(entry["in_song_id"], medley_id, "{report}");
        let from = entry["from_seconds"].as_f64().unwrap_or(f64::NAN);
        assert!((from - 10.0).abs() <= 0.1, "from {from}: {report}");
    }

    let text = sandbox.run(["duplicates"]);
    text.expect_code(0, "duplicates");
    assert!(
        text.stdout
            .contains("4 songs checked: 1 pair with the same audio, 2 songs heard inside another"),
        "{text}"
    );

    // One song at a time: each side of the pair and of the medley.
    let one = |id: i64| {
        let run = sandbox.run(["duplicates", &id.to_string(), "--json"]);
        run.expect_code(0, "duplicates ID");
        run.json()
    };
    let side = one(a);
    assert_eq!(side["same_audio"], serde_json::json!([copy]), "{side}");
    assert_eq!(side["heard_in"][0]["song_id"], medley_id, "{side}");
    assert_eq!(side["contains"], serde_json::json!([]), "{side}");
    let side = one(medley_id);
    assert_eq!(side["same_audio"], serde_json::json!([]), "{side}");
    let inside: Vec<i64> = side["contains"]
        .as_array()
        .expect("a contains array")
        .iter()
        .filter_map(|at| at["song_id"].as_i64())
        .collect();
    assert_eq!(inside, pair, "{side}");
    let text = sandbox.run(["duplicates", &id("Song B").to_string()]);
    text.expect_code(0, "duplicates ID");
    assert!(
        text.stdout.contains("no other song shares its audio"),
        "{text}"
    );
    let text = sandbox.run(["duplicates", &medley_id.to_string()]);
    assert!(
        text.stdout
            .contains(&format!("contains:   {a} \"Song A\" from 0:10 (10.0 s)")),
        "{text}"
    );
    let missing = sandbox.run(["duplicates", "99999"]);
    missing.expect_code(2, "duplicates of an unknown id");
    assert!(
        missing.stderr.contains("no song with id 99999"),
        "{missing}"
    );
}
