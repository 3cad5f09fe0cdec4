//! The index file is never damaged by mistake: files that are not audiofp indexes, indexes of a
//! newer schema and indexes built with other fingerprint parameters are refused, with a clear
//! error and without a byte changed.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{Run, Sandbox, write_clip, write_song};

/// Sidecar files SQLite would create next to `db`.
fn sidecars(db: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut name = db.as_os_str().to_os_string();
            name.push(suffix);
            PathBuf::from(name)
        })
        .filter(|p| p.exists())
        .collect()
}

/// A folder with one song and a clip of it.
fn song_and_clip(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let folder = sandbox.subdir("music");
    let song = write_song(&folder, "a-song", 6100, 20.0);
    let clip = write_clip(
        &sandbox.path("clip.wav"),
        &song.excerpt(5.0, 5.0),
        common::SR,
    );
    (folder, clip)
}

/// Runs index, identify, list, stats and import against `db`; each must fail with exit code 2
/// and a message containing every one of `words`, and leave `db` byte-identical with no
/// sidecar files.
fn assert_refused_untouched(
    sandbox: &Sandbox,
    db: &Path,
    envs: &[(&str, &str)],
    words: &[&str],
    what: &str,
) {
    let (folder, clip) = song_and_clip(sandbox);
    let before = std::fs::read(db).expect("reading the db before");
    // A valid export (from a valid index elsewhere), so that `import` fails only for `db`.
    let export = sandbox.path("valid-export.afpx");
    if !export.exists() {
        let valid_db = sandbox.path("valid.db");
        sandbox
            .run_with_db(&valid_db, &[], [OsStr::new("index"), folder.as_os_str()])
            .expect_code(0, "index into a valid db");
        sandbox
            .run_with_db(&valid_db, &[], [OsStr::new("export"), export.as_os_str()])
            .expect_code(0, "export of a valid db");
    }
    let commands: Vec<Vec<&OsStr>> = vec![
        vec![OsStr::new("index"), folder.as_os_str()],
        vec![
            OsStr::new("identify"),
            OsStr::new("--json"),
            clip.as_os_str(),
        ],
        vec![OsStr::new("list"), OsStr::new("--json")],
        vec![OsStr::new("stats")],
        vec![OsStr::new("remove"), OsStr::new("1")],
        vec![OsStr::new("import"), export.as_os_str()],
    ];
    let mut problems = Vec::new();
    for args in &commands {
        let run: Run = sandbox.run_with_db(db, envs, args);
        if run.code != 2 {
            problems.push(format!("exit code {} (expected 2):\n{run}", run.code));
        }
        let missing: Vec<&&str> = words.iter().filter(|w| !run.stderr.contains(**w)).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "stderr lacks {missing:?} (a clear reason naming the file):\n{run}"
            ));
        }
        let after = std::fs::read(db).expect("reading the db after");
        if after != before {
            problems.push(format!(
                "{} was modified ({} -> {} bytes) by:\n{run}",
                db.display(),
                before.len(),
                after.len()
            ));
        }
        let extra = sidecars(db);
        if !extra.is_empty() {
            problems.push(format!("left sidecar files {extra:?} after:\n{run}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn a_text_file_passed_as_db_is_refused_and_left_byte_identical() {
    let sandbox = Sandbox::new();
    let db = sandbox.path("notes.txt");
    std::fs::write(
        &db,
        "Remember: buy milk.\nThis is not a database.\n".repeat(50),
    )
    .expect("writing the text file");
    let db_text = db.display().to_string();
    assert_refused_untouched(
        &sandbox,
        &db,
        &[],
        &[&db_text, "not an audiofp index"],
        "text file as --db",
    );
}

#[test]
fn another_apps_sqlite_database_is_refused_and_left_byte_identical() {
    let sandbox = Sandbox::new();
    let db = sandbox.path("other-app.sqlite");
    {
        let conn = rusqlite::Connection::open(&db).expect("creating the foreign db");
        conn.execute_batch(
            "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO foo (name) VALUES ('precious'), ('data');",
        )
        .expect("filling the foreign db");
    }
    assert!(sidecars(&db).is_empty());
    let db_text = db.display().to_string();
    assert_refused_untouched(
        &sandbox,
        &db,
        &[],
        &[&db_text, "not an audiofp index", "foo"],
        "foreign SQLite database as --db",
    );
    // A script asking for JSON gets the refusal as JSON, with a code to branch on, whether
    // the command reads the store (list) or opens the whole library (the others).
    for command in ["list", "stats", "duplicates"] {
        let run = sandbox.run_with_db(&db, &[], [command, "--json"]);
        run.expect_code(2, &format!("{command} --json on a foreign database"));
        assert_eq!(run.json()["error"]["code"], "not_an_index", "{run}");
    }
    let missing = sandbox.path("nothing-here.db");
    for command in ["stats", "duplicates"] {
        let run = sandbox.run_with_db(&missing, &[], [command, "--json"]);
        run.expect_code(2, &format!("{command} --json without an index"));
        assert_eq!(run.json()["error"]["code"], "no_index", "{run}");
    }
    let conn = rusqlite::Connection::open(&db).expect("reopening the foreign db");
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM foo", [], |r| r.get(0))
        .expect("reading foo");
    assert_eq!(rows, 2);
}

#[test]
fn an_index_with_a_newer_schema_version_is_refused_saying_newer() {
    let sandbox = Sandbox::new();
    let (folder, _) = song_and_clip(&sandbox);
    let db = sandbox.db();
    sandbox.index_json(&[&folder], 0);
    {
        let conn = rusqlite::Connection::open(&db).expect("opening the index");
        let app_id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .expect("application_id");
        assert_eq!(app_id, 0x4146_5031, "application_id of a new index");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(
            version,
            audiofp::index::sqlite::SCHEMA_VERSION,
            "schema version of a new index"
        );
        conn.pragma_update(None, "user_version", 99)
            .expect("setting user_version");
    }
    assert!(
        sidecars(&db).is_empty(),
        "sidecars left by rusqlite: {:?}",
        sidecars(&db)
    );
    let db_text = db.display().to_string();
    assert_refused_untouched(
        &sandbox,
        &db,
        &[],
        &[&db_text, "newer", "99"],
        "index with user_version 99",
    );
}

/// An index whose fingerprint parameters are gone (damaged, or edited by hand) is refused as
/// damaged and left as it is: it used to get this run's parameters written into it.
#[test]
fn an_index_without_its_fingerprint_parameters_is_refused_and_left_untouched() {
    let sandbox = Sandbox::new();
    let (folder, _) = song_and_clip(&sandbox);
    let db = sandbox.db();
    sandbox.index_json(&[&folder], 0);
    {
        let conn = rusqlite::Connection::open(&db).expect("opening the index");
        let deleted = conn
            .execute("DELETE FROM meta WHERE key = 'fingerprint_config'", [])
            .expect("deleting the parameters");
        assert_eq!(deleted, 1);
    }
    let db_text = db.display().to_string();
    assert_refused_untouched(
        &sandbox,
        &db,
        &[],
        &[&db_text, "damaged", "fingerprint parameters are missing"],
        "index without its fingerprint parameters",
    );
}

#[test]
fn an_index_of_the_first_schema_is_migrated_and_keeps_its_songs() {
    let sandbox = Sandbox::new();
    let (folder, clip) = song_and_clip(&sandbox);
    let db = sandbox.db();
    sandbox.index_json(&[&folder], 0);
    {
        // Back to schema 1: no table of failed files.
        let conn = rusqlite::Connection::open(&db).expect("opening the index");
        conn.execute_batch("DROP TABLE failed_files; PRAGMA user_version = 1;")
            .expect("going back to schema 1");
    }
    // A run that remembers a failure needs the new table.
    let broken = folder.join("broken.wav");
    std::fs::write(&broken, b"RIFF, and then nothing that makes sense")
        .expect("writing broken.wav");
    let run = sandbox.run([
        OsStr::new("index"),
        OsStr::new("--json"),
        folder.as_os_str(),
    ]);
    run.expect_code(2, "index into a schema-1 index, with a broken file");
    let conn = rusqlite::Connection::open(&db).expect("opening the index");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, audiofp::index::sqlite::SCHEMA_VERSION);
    let remembered: i64 = conn
        .query_row("SELECT count(*) FROM failed_files", [], |row| row.get(0))
        .expect("counting remembered failures");
    assert_eq!(remembered, 1, "{run}");
    // The song indexed under schema 1 is still there and found.
    let found = sandbox.run([
        OsStr::new("identify"),
        OsStr::new("--json"),
        clip.as_os_str(),
    ]);
    found.expect_code(0, "identify after the migration");
    assert_eq!(found.json()[0]["found"], true, "{found}");
}

#[test]
fn an_index_built_with_fan_value_7_is_refused_by_default_settings_naming_fan_value() {
    let sandbox = Sandbox::new();
    let (folder, clip) = song_and_clip(&sandbox);
    let db = sandbox.db();
    let run = sandbox.run_with_db(
        &db,
        &[("FAN_VALUE", "7")],
        [
            OsStr::new("index"),
            OsStr::new("--json"),
            folder.as_os_str(),
        ],
    );
    run.expect_code(0, "index with FAN_VALUE=7");
    assert_eq!(run.json()["indexed"], 1, "{run}");

    // With the same settings the index works...
    let run = sandbox.run_with_db(
        &db,
        &[("FAN_VALUE", "7")],
        [
            OsStr::new("identify"),
            OsStr::new("--json"),
            clip.as_os_str(),
        ],
    );
    run.expect_code(
        0,
        "identify with FAN_VALUE=7 against an index built with it",
    );
    assert_eq!(run.json()[0]["matches"][0]["title"], "a-song", "{run}");

    // ...with the defaults it is refused, naming the parameter, and left alone.
    let run = sandbox.run([
        OsStr::new("identify"),
        OsStr::new("--json"),
        clip.as_os_str(),
    ]);
    run.expect_code(
        2,
        "identify with default settings against a FAN_VALUE=7 index",
    );
    assert!(
        run.stderr.contains("FAN_VALUE 7 vs 5")
            && run.stderr.contains("other fingerprint parameters"),
        "the error must name FAN_VALUE and both values:\n{run}"
    );
    let db_text = db.display().to_string();
    assert_refused_untouched(
        &sandbox,
        &db,
        &[],
        &[&db_text, "FAN_VALUE"],
        "FAN_VALUE=7 index opened with defaults",
    );
}
