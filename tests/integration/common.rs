//! Shared helpers of the integration tests: a sandbox (temp dir + index file) to run the real
//! `audiofp` binary in, synthetic songs written as WAV files, excerpts, and checks of
//! `identify --json` answers.
//!
//! Each test module uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use audiofp::testkit::{distort, synth, wav};
use serde_json::Value;
use tempfile::TempDir;

/// Sample rate of the synthetic library songs.
pub const SR: u32 = 22_050;

/// Largest accepted error of a reported `offset_seconds`.
pub const OFFSET_TOLERANCE_SECS: f64 = 0.1;

/// The binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_audiofp")
}

/// The outcome of one run of the binary.
pub struct Run {
    /// What was run (for messages).
    pub cmdline: String,
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            self.code,
            truncate(&self.stdout, 6000),
            truncate(&self.stderr, 6000)
        )
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [{} more bytes]", &text[..cut], text.len() - cut)
}

impl Run {
    /// Standard output parsed as JSON (panics with the whole run when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// Panics unless the exit code is `code`.
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "{what}: expected exit code {code}, got {}\n{self}",
            self.code
        );
        self
    }
}

/// A temporary directory with an index file `index.db` in it, to run `audiofp` in. `HOME` and
/// the working directory of every run are the temp dir, and the environment is cleared, so the
/// user's default index, `.env` and settings are never touched or used.
pub struct Sandbox {
    dir: TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A new sandbox.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("audiofp-it-")
                .tempdir()
                .expect("creating a temp dir"),
        }
    }

    /// The temp dir.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `<root>/<name>`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new (created) sub-directory.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(&path).expect("creating a sub-directory");
        path
    }

    /// The sandbox's index file.
    pub fn db(&self) -> PathBuf {
        self.path("index.db")
    }

    /// The inverted index saved beside the sandbox's index file (`<db>.postings`).
    pub fn saved_index(&self) -> PathBuf {
        self.path("index.db.postings")
    }

    /// `audiofp args...`, with a cleared environment (plus `envs`), in the sandbox.
    pub fn command<I, S>(&self, envs: &[(&str, &str)], args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(exe());
        cmd.env_clear()
            .env("HOME", self.root())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.root())
            .stdin(Stdio::null())
            .args(args);
        for (key, value) in envs {
            cmd.env(key, value);
        }
        cmd
    }

    /// `audiofp --db <db> ...`, with a cleared environment (plus `envs`).
    pub fn command_with_db<I, S>(&self, db: &Path, envs: &[(&str, &str)], args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(envs, [OsStr::new("--db"), db.as_os_str()]);
        cmd.args(args);
        cmd
    }

    /// Runs `audiofp --db <db> args...` to completion.
    pub fn run_with_db<I, S>(&self, db: &Path, envs: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command_with_db(db, envs, args);
        run_to_completion(&mut cmd, envs)
    }

    /// Runs `audiofp args...` to completion, without `--db` (for commands that keep their own
    /// index, or settings from the environment alone).
    pub fn run_without_db<I, S>(&self, envs: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(envs, args);
        run_to_completion(&mut cmd, envs)
    }

    /// Runs `audiofp --db <sandbox db> args...`.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_db(&self.db(), &[], args)
    }

    /// `index --json <paths>`: the summary, after checking the exit code.
    pub fn index_json(&self, paths: &[&Path], expected_code: i32) -> Value {
        let mut args: Vec<&OsStr> = vec![OsStr::new("index"), OsStr::new("--json")];
        args.extend(paths.iter().map(|p| p.as_os_str()));
        let run = self.run(&args);
        run.expect_code(expected_code, "index");
        run.json()
    }

    /// `list --json`: the songs.
    pub fn list(&self) -> Vec<Value> {
        self.list_db(&self.db())
    }

    /// `list --json` of another index file.
    pub fn list_db(&self, db: &Path) -> Vec<Value> {
        let run = self.run_with_db(db, &[], ["list", "--json"]);
        run.expect_code(0, "list");
        match run.json() {
            Value::Array(songs) => songs,
            other => panic!("list --json is not an array: {other}"),
        }
    }

    /// `identify --json --top 3 <clips>` against `db`: the run and one result per clip.
    pub fn identify_db(&self, db: &Path, clips: &[&Path]) -> (Run, Vec<Value>) {
        let mut args: Vec<&OsStr> = ["identify", "--json", "--top", "3"]
            .into_iter()
            .map(OsStr::new)
            .collect();
        args.extend(clips.iter().map(|p| p.as_os_str()));
        let run = self.run_with_db(db, &[], &args);
        let results = match run.json() {
            Value::Array(results) => results,
            other => panic!("identify --json is not an array: {other}\n{run}"),
        };
        assert_eq!(
            results.len(),
            clips.len(),
            "identify --json: one result per clip expected\n{run}"
        );
        (run, results)
    }

    /// `identify --json --top 3 <clips>` against the sandbox's index.
    pub fn identify(&self, clips: &[&Path]) -> (Run, Vec<Value>) {
        self.identify_db(&self.db(), clips)
    }
}

/// Runs `cmd` and collects its outcome; the command line shown in messages starts with
/// the `envs` it was given.
fn run_to_completion(cmd: &mut Command, envs: &[(&str, &str)]) -> Run {
    let envline: String = envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let cmdline = std::iter::once("audiofp".to_string())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().expect("running the audiofp binary");
    Run {
        cmdline: format!("{envline}{cmdline}"),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// A synthetic song written as a WAV file.
pub struct Song {
    /// Generator seed.
    pub seed: u64,
    /// Mono samples at [`Song::rate`].
    pub samples: Vec<f32>,
    /// Sample rate of `samples`.
    pub rate: u32,
    /// The file.
    pub path: PathBuf,
    /// Its expected title (the file stem).
    pub title: String,
}

impl Song {
    /// Duration in seconds.
    pub fn secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate)
    }

    /// `len_secs` seconds from `start_secs` (mono, at `self.rate`).
    pub fn excerpt(&self, start_secs: f64, len_secs: f64) -> Vec<f32> {
        let clip = distort::excerpt(&self.samples, self.rate, start_secs as f32, len_secs as f32);
        assert!(
            (clip.len() as f64 - len_secs * f64::from(self.rate)).abs() <= 1.0,
            "excerpt {start_secs}+{len_secs} s does not fit in the {:.1} s song {}",
            self.secs(),
            self.title
        );
        clip
    }
}

/// Renders `song(seed, secs, SR)` mono and writes it as 16-bit WAV `<dir>/<title>.wav`.
pub fn write_song(dir: &Path, title: &str, seed: u64, secs: f32) -> Song {
    write_song_at(dir, title, seed, secs, SR)
}

/// Like [`write_song`] at another sample rate.
pub fn write_song_at(dir: &Path, title: &str, seed: u64, secs: f32, rate: u32) -> Song {
    let samples = synth::song(seed, secs, rate);
    let path = dir.join(format!("{title}.wav"));
    wav::write_wav_i16(&path, &samples, rate, 1).expect("writing a song WAV");
    Song {
        seed,
        samples,
        rate,
        path,
        title: title.to_string(),
    }
}

/// Writes mono `samples` as a 16-bit WAV.
pub fn write_clip(path: &Path, samples: &[f32], rate: u32) -> PathBuf {
    wav::write_wav_i16(path, samples, rate, 1).expect("writing a clip WAV");
    path.to_path_buf()
}

/// Writes mono `samples` as a 32-bit float WAV (no clipping of noisy clips).
pub fn write_clip_f32(path: &Path, samples: &[f32], rate: u32) -> PathBuf {
    wav::write_wav_f32(path, samples, rate, 1).expect("writing a clip WAV");
    path.to_path_buf()
}

/// What a clip should identify as.
pub struct Expect<'a> {
    /// A description of the clip, for messages.
    pub clip: String,
    /// Expected title of the top match.
    pub title: &'a str,
    /// Expected offset (seconds) of the clip in the song.
    pub offset_secs: f64,
}

/// Checks one `identify --json` result: found, top match `expected.title`, offset within
/// [`OFFSET_TOLERANCE_SECS`]. Returns a description of what is wrong.
pub fn check_match(result: &Value, expected: &Expect<'_>) -> Result<(), String> {
    let describe = |why: String| {
        format!(
            "{}: expected {:?} at {:.2} s, {why}",
            expected.clip, expected.title, expected.offset_secs
        )
    };
    if result["found"] != Value::Bool(true) {
        return Err(describe(format!(
            "got no match (error: {}, query_hashes: {})",
            result["error"], result["query_hashes"]
        )));
    }
    let top = &result["matches"][0];
    let title = top["title"].as_str().unwrap_or("<no title>");
    let offset = top["offset_seconds"].as_f64().unwrap_or(f64::NAN);
    if title != expected.title {
        return Err(describe(format!(
            "got {title:?} at {offset:.3} s (confidence {}, aligned {}); all matches: {}",
            top["confidence"], top["aligned_hashes"], result["matches"]
        )));
    }
    let error = (offset - expected.offset_secs).abs();
    if error.is_nan() || error > OFFSET_TOLERANCE_SECS {
        return Err(describe(format!(
            "got the right song at offset {offset:.3} s (off by {error:.3} s; confidence {})",
            top["confidence"]
        )));
    }
    Ok(())
}

/// Checks every result; panics listing every failure (with the run) if any.
pub fn assert_all_match(what: &str, run: &Run, results: &[Value], expected: &[Expect<'_>]) {
    let failures: Vec<String> = results
        .iter()
        .zip(expected)
        .filter_map(|(r, e)| check_match(r, e).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} clips misidentified:\n  {}\n(run: `{}`, exit {})",
        failures.len(),
        expected.len(),
        failures.join("\n  "),
        run.cmdline,
        run.code
    );
    run.expect_code(0, what);
}

/// Panics unless `tool` can be run (`tool <version_arg>`), naming the missing tool.
pub fn require_tool(tool: &str, version_arg: &str) {
    match Command::new(tool)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => panic!(
            "required external tool `{tool}` cannot be run ({e}); install it (CI installs flac, lame, \
             vorbis-tools and ffmpeg)"
        ),
    }
}

/// Runs an external tool, panicking with its output when it fails.
pub fn run_tool<S: AsRef<OsStr>>(tool: &str, args: &[S]) {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("required external tool `{tool}` cannot be run ({e}); install it")
        });
    assert!(
        out.status.success(),
        "`{tool} {}` failed ({}):\n{}\n{}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An argument vector from strings and paths alike.
pub fn argv(items: &[&dyn AsRef<OsStr>]) -> Vec<std::ffi::OsString> {
    items.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Polls `cond` every `every` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = cond() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Waits until an `audiofp` process that is creating `db` has committed the schema (read-only
/// look, so that no other `audiofp` process takes part in the creation of the file).
pub fn wait_for_schema(db: &Path) {
    wait_for(
        "the index schema to be created",
        Duration::from_secs(60),
        Duration::from_millis(2),
        || {
            let conn = rusqlite::Connection::open_with_flags(
                db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .ok()?;
            (version >= 1).then_some(())
        },
    );
}

/// `title` of every song of a `list --json` answer.
pub fn titles(songs: &[Value]) -> Vec<String> {
    songs
        .iter()
        .map(|s| s["title"].as_str().unwrap_or("<no title>").to_string())
        .collect()
}

/// Finds the song titled `title` in a `list --json` answer.
pub fn find_song<'a>(songs: &'a [Value], title: &str) -> Option<&'a Value> {
    songs.iter().find(|s| s["title"] == title)
}

/// A generated song of 20 s, fingerprinted for the index, with the metadata `Library::add`
/// takes (its content hash made from the seed) and its samples.
pub fn fingerprinted_song(
    seed: u64,
    title: &str,
) -> (
    audiofp::index::NewSong,
    audiofp::engine::Fingerprint,
    Vec<f32>,
) {
    use audiofp::config::{FingerprintConfig, MatchConfig};
    use audiofp::engine::{self, Side};
    let samples = audiofp::testkit::synth::song(seed, 20.0, SR);
    let fingerprint = engine::fingerprint_samples(
        &samples,
        SR,
        &FingerprintConfig::default(),
        &MatchConfig::default(),
        Side::Reference,
    )
    .unwrap_or_else(|err| panic!("fingerprinting generated song {seed}: {err}"));
    (new_song(title, seed, &fingerprint), fingerprint, samples)
}

/// Metadata for `Library::add` of `fingerprint`, with a content hash made from `seed`.
pub fn new_song(
    title: &str,
    seed: u64,
    fingerprint: &audiofp::engine::Fingerprint,
) -> audiofp::index::NewSong {
    audiofp::index::NewSong {
        title: title.to_string(),
        artist: None,
        album: None,
        duration_secs: fingerprint.duration_secs,
        path: None,
        file_size: None,
        file_mtime: None,
        content_hash: format!("{seed:064x}"),
        added_at: None,
    }
}
