//! Indexing many files: parallel analysis, one writer.
//!
//! ```text
//! paths -> collect_audio_files -> skip unchanged (path + size + mtime already stored)
//!       -> report, without decoding, unchanged files that failed in an earlier run
//!          (and forget the failures of files that no longer exist)
//!       -> largest file first
//!       -> N analysis threads (hash the bytes; decode and fingerprint unless the library
//!          already holds that content)
//!       -> this thread: point a song whose file moved at its new path, skip duplicate
//!          content, store each new song in its own transaction
//! ```
//!
//! Paths are stored absolute, so that the app (started from anywhere) finds the files that
//! `audiofp index Music/` was given. A file whose content is already indexed is never decoded
//! again: a reorganised library is re-indexed at the speed of reading it.
//!
//! A bad file is reported and skipped; the run goes on. Its failure is remembered in the store,
//! so that the next run reports it again without decoding it while it is unchanged
//! ([`KnownFailures`]). Cancelling stops the analysis threads between packets; songs already
//! written stay, and a re-run completes the job.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use serde::Serialize;

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::{self, AudioSource, EngineError, Fingerprint, Side};
use crate::index::{FileFailure, IndexError, NewSong, SongRecord, unix_now};
use crate::library::{Library, LibraryError};
use crate::paths;

/// File extensions picked up when walking a folder (explicitly named files are always tried).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "mp2", "ogg", "oga", "m4a", "mp4", "m4b", "aac", "mkv", "mka",
    "webm", "aif", "aiff", "caf",
];

/// Why a file was not indexed although nothing is wrong with it.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Same path, size and modification time as an indexed song.
    Unchanged {
        /// The song.
        song_id: i64,
    },
    /// The same content is already indexed from another file, which is still there.
    Duplicate {
        /// The song.
        song_id: i64,
    },
    /// The same content as a song whose file is no longer where it was (moved or renamed):
    /// the song now points to this file.
    Moved {
        /// The song.
        song_id: i64,
        /// Where the song's file was (none for a song imported without its file).
        from: Option<String>,
    },
}

/// What to do with a file that failed in an earlier run and is unchanged since (same path,
/// size and modification time, and the same version of audiofp, which another version might
/// decode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownFailures {
    /// Report the earlier failure again without decoding the file.
    Report,
    /// Decode the file again.
    Retry,
}

/// Progress reports of an indexing run.
#[derive(Clone, Debug)]
pub enum IndexEvent {
    /// The work list is known.
    Started {
        /// Files to look at.
        total: usize,
    },
    /// A file was stored.
    Indexed {
        /// The file.
        path: PathBuf,
        /// The stored song.
        song: SongRecord,
    },
    /// A file needed no work.
    Skipped {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: SkipReason,
    },
    /// A file's content changed since it was indexed (retagged, re-encoded, replaced): the
    /// songs of its earlier versions were removed. Its new content is reported next, as
    /// [`Indexed`](Self::Indexed) or [`Skipped`](Self::Skipped).
    Replaced {
        /// The file.
        path: PathBuf,
        /// The songs removed.
        song_ids: Vec<i64>,
    },
    /// A file could not be indexed.
    Failed {
        /// The file.
        path: PathBuf,
        /// Machine-readable code.
        code: String,
        /// Human-readable reason (names the file).
        message: String,
        /// The failure is an earlier run's: the file is unchanged since and was not decoded.
        remembered: bool,
    },
}

/// What an indexing run reports to, and lends the library to between songs.
///
/// A closure `FnMut(&IndexEvent)` is an observer that only listens.
pub trait IndexObserver {
    /// A file was stored, skipped or failed (or the run has its work list).
    fn on_event(&mut self, event: &IndexEvent);

    /// Called after each file the run finishes and, while the analysis threads are still
    /// busy, at least every [`LEND_INTERVAL`]. No transaction is open then, so the library
    /// can answer queries, show a song or remove one: an app identifies a clip dropped on it
    /// while a long run goes on. The time spent here delays the next song's write, not its
    /// analysis (the threads go on until two songs each wait).
    fn between_songs(&mut self, _library: &mut Library) {}
}

impl<F: FnMut(&IndexEvent)> IndexObserver for F {
    fn on_event(&mut self, event: &IndexEvent) {
        self(event);
    }
}

/// While waiting for the analysis threads, the run lends the library to its observer at least
/// this often.
pub const LEND_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Analysed songs that may wait per analysis thread for the writer.
const ANALYSED_AHEAD_PER_THREAD: usize = 2;

/// Totals of an indexing run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexSummary {
    /// Files looked at.
    pub total: usize,
    /// Songs stored.
    pub indexed: usize,
    /// Files skipped (unchanged, duplicate or moved).
    pub skipped: usize,
    /// Of the skipped files, those found at a new path: their songs now point to them.
    pub moved: usize,
    /// Files whose content changed since they were indexed: the songs of their earlier
    /// versions were removed (the files themselves are counted as indexed or skipped).
    pub replaced: usize,
    /// Files that failed, with reasons.
    pub failed: Vec<FailedFile>,
    /// Seconds of audio stored.
    pub audio_secs: f64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
    /// Whether the run was cancelled before the end.
    pub cancelled: bool,
}

/// A file that could not be indexed.
#[derive(Clone, Debug, Serialize)]
pub struct FailedFile {
    /// The file.
    #[serde(serialize_with = "path_as_lossy_string")]
    pub path: PathBuf,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// The failure is an earlier run's: the file is unchanged since and was not decoded.
    pub remembered: bool,
}

/// Serialises a path as a string, any bytes that are not UTF-8 replaced by U+FFFD: serde
/// refuses such paths, and one odd file name must not cost a whole `--json` report.
pub fn path_as_lossy_string<S: serde::Serializer>(
    path: &Path,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// What [`collect_audio_files`] found.
#[derive(Debug, Default)]
pub struct Collected {
    /// The audio files, absolute, in the order given and walked, each once.
    pub files: Vec<PathBuf>,
    /// Given paths that do not exist, as given.
    pub missing: Vec<PathBuf>,
    /// Folders (given or found in the walk) and given files that exist but cannot be read,
    /// as failures (`io_error`) naming the path and the reason.
    pub unreadable: Vec<FailedFile>,
}

/// Expands folders (recursively, sorted; files with audio extensions, including those of
/// formats that cannot be decoded, so that they are reported) and keeps files as given,
/// made absolute (against the working directory).
///
/// Links to folders are followed, each real folder once: a link back up the tree (or two
/// paths given for one folder) does not list the same files again. A file reached by two
/// paths is listed once, under the first. macOS's `._` resource-fork files are not audio
/// and are passed over in folders.
pub fn collect_audio_files(paths: &[PathBuf]) -> Collected {
    let mut found = Collected::default();
    let mut seen = Walked::default();
    for given in paths {
        let absolute = crate::paths::absolute_path(given);
        let path = absolute.as_ref();
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut seen, &mut found),
            Ok(_) => seen.add_file(path, &mut found.files),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                found.missing.push(given.clone());
            }
            Err(err) => found
                .unreadable
                .push(unreadable(path, "cannot read it", &err)),
        }
    }
    found
}

/// The folders and files a walk has taken, by their real paths.
#[derive(Default)]
struct Walked {
    folders: HashSet<PathBuf>,
    files: HashSet<PathBuf>,
}

impl Walked {
    /// Whether the folder at `dir` is new to the walk (and marks it taken).
    fn first_visit(&mut self, dir: &Path) -> bool {
        self.folders
            .insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
    }

    /// Adds `path` to `files` unless the file it names was added already.
    fn add_file(&mut self, path: &Path, files: &mut Vec<PathBuf>) {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if self.files.insert(real) {
            files.push(path.to_path_buf());
        }
    }
}

fn unreadable(path: &Path, what: &str, err: &std::io::Error) -> FailedFile {
    FailedFile {
        path: path.to_path_buf(),
        code: "io_error".to_string(),
        message: format!("{}: {what}: {err}", path.display()),
        remembered: false,
    }
}

fn walk(dir: &Path, seen: &mut Walked, found: &mut Collected) {
    if !seen.first_visit(dir) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            found
                .unreadable
                .push(unreadable(dir, "cannot read this folder", &err));
            return;
        }
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, seen, found);
        } else if is_resource_fork(&path) {
            continue;
        } else if has_audio_extension(&path) || engine::undecodable_format_name(&path).is_some() {
            // Formats that cannot be decoded are taken too: they fail with a reason that
            // names the format, instead of being left out without a word.
            seen.add_file(&path, &mut found.files);
        }
    }
}

/// macOS's AppleDouble files (`._name.mp3` beside `name.mp3` on non-Apple disks): metadata,
/// never audio.
fn is_resource_fork(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("._"))
}

/// Whether the file name ends in a known audio extension.
pub fn has_audio_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file's size and modification time (Unix seconds): with its path, what tells a later run
/// that it is unchanged.
type FileStamp = (u64, i64);

/// A file to analyse, with its stamp as the run found it, before reading it.
struct Job {
    path: PathBuf,
    stamp: Option<FileStamp>,
}

/// What an analysis thread made of a file.
enum Analysis {
    /// The library already holds this content: the file was hashed, not decoded.
    Known {
        /// The file's content hash.
        content_hash: String,
    },
    /// New content, decoded and fingerprinted.
    New(Box<(NewSong, Fingerprint)>),
}

/// Analysis of one file, done off the writer thread.
struct Analysed {
    job: Job,
    result: Result<Analysis, EngineError>,
}

/// Indexes `files` into `library` with `workers` analysis threads, reporting to `observer`.
pub fn index_files(
    library: &mut Library,
    files: Vec<PathBuf>,
    workers: usize,
    known_failures: KnownFailures,
    cancel: &CancelToken,
    mut observer: impl IndexObserver,
) -> Result<IndexSummary, LibraryError> {
    let started = Instant::now();
    let mut run = Run {
        summary: IndexSummary {
            total: files.len(),
            ..IndexSummary::default()
        },
        library,
        observer: &mut observer,
        cancel,
        earlier_failures: HashSet::new(),
    };
    run.observer
        .on_event(&IndexEvent::Started { total: files.len() });
    let todo = run.work_list(files, known_failures)?;
    run.analyse_and_store(todo, workers)?;
    finish_writing(run.library)?;
    let mut summary = run.summary;
    summary.cancelled = cancel.is_cancelled();
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// One indexing run: the library it writes to, whom it reports to, and its totals so far.
struct Run<'a, O: IndexObserver> {
    library: &'a mut Library,
    observer: &'a mut O,
    cancel: &'a CancelToken,
    summary: IndexSummary,
    /// Files of the work list that failed in an earlier run and changed since: once one is
    /// taken now (indexed, or known content), it is no longer a failure.
    earlier_failures: HashSet<PathBuf>,
}

impl<O: IndexObserver> Run<'_, O> {
    /// The files that need analysing, largest first. Unchanged files are skipped without
    /// reading them, and so are unchanged files that failed before (reported again, with
    /// [`KnownFailures::Report`]). Files whose earlier failure is out of date are noted so that
    /// it is forgotten if they are indexed now.
    fn work_list(
        &mut self,
        files: Vec<PathBuf>,
        known_failures: KnownFailures,
    ) -> Result<Vec<Job>, LibraryError> {
        let mut todo = Vec::with_capacity(files.len());
        let remembered: HashMap<String, FileFailure> = self
            .library
            .store()
            .failures()?
            .into_iter()
            .map(|failure| (failure.path.clone(), failure))
            .collect();
        forget_failures_of_deleted_files(self.library, &remembered);
        for path in files {
            let stamp = file_stamp(&path);
            let path_text = paths::to_stored(&path);
            if let Some((size, mtime)) = stamp
                && let Some(song) = self.library.store().find_by_file(&path_text, size, mtime)?
            {
                self.summary.skipped += 1;
                self.observer.on_event(&IndexEvent::Skipped {
                    path,
                    reason: SkipReason::Unchanged { song_id: song.id },
                });
                continue;
            }
            if let Some(failure) = remembered.get(&path_text) {
                let unchanged = stamp == Some((failure.file_size, failure.file_mtime))
                    && failure.audiofp_version == AUDIOFP_VERSION;
                if unchanged && known_failures == KnownFailures::Report {
                    let (code, message) = (failure.code.clone(), failure.message.clone());
                    self.report_failure(path, code, message, true);
                    continue;
                }
                self.earlier_failures.insert(path.clone());
            }
            let size = stamp.map_or(0, |(size, _)| size);
            todo.push((Job { path, stamp }, size));
        }
        Ok(largest_first(todo))
    }

    /// Analyses `todo` on up to `workers` threads while this thread stores each file as its
    /// analysis arrives. After a store error the analysis is cancelled and the error returned.
    fn analyse_and_store(&mut self, todo: Vec<Job>, workers: usize) -> Result<(), LibraryError> {
        let todo_count = todo.len();
        // Content already in the library is recognised by its hash before it is decoded. A
        // run with nothing to analyse (every file unchanged) does not read the song list.
        let known_content: HashSet<String> = if todo.is_empty() {
            HashSet::new()
        } else {
            self.library
                .store()
                .songs()?
                .into_iter()
                .map(|song| song.content_hash)
                .collect()
        };
        let config = self.library.config().clone();
        let match_config = self.library.match_config().clone();
        let analyser = Analyser {
            known_content: &known_content,
            config: &config,
            match_config: &match_config,
            cancel: self.cancel,
        };
        let (job_tx, job_rx) = unbounded::<Job>();
        for job in todo {
            job_tx.send(job).ok(); // The receiver lives until the scope ends.
        }
        drop(job_tx);
        // More threads than files would only wait.
        let workers = workers.clamp(1, todo_count.max(1));
        let (result_tx, result_rx) = bounded::<Analysed>(workers * ANALYSED_AHEAD_PER_THREAD);
        std::thread::scope(|scope| {
            for worker in 0..workers {
                let (job_rx, result_tx) = (job_rx.clone(), result_tx.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("audiofp-analyse-{worker}"))
                    .spawn_scoped(scope, move || analyser.analyse_all(job_rx, result_tx));
                if let Err(err) = spawned {
                    tracing::error!("cannot start an analysis thread: {err}");
                }
            }
            drop(result_tx);
            self.store_all(&result_rx, &analyser)
        })
    }

    /// Stores the analysed files as they arrive, until every analysis thread is done, lending
    /// the library to the observer between them. After a store error, what still arrives is
    /// dropped and the analysis cancelled; the error is returned at the end.
    fn store_all(
        &mut self,
        results: &Receiver<Analysed>,
        analyser: &Analyser<'_>,
    ) -> Result<(), LibraryError> {
        let mut store_error = None;
        loop {
            if store_error.is_none() {
                self.observer.between_songs(self.library);
            }
            let analysed = match results.recv_timeout(LEND_INTERVAL) {
                Ok(analysed) => analysed,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if store_error.is_some() {
                self.cancel.cancel();
                continue;
            }
            if let Err(err) = self.store(analysed, analyser) {
                store_error = Some(err);
            }
        }
        store_error.map_or(Ok(()), Err)
    }

    /// Settles one analysed file: removes the songs of its earlier versions, then points the
    /// song that holds its content at it, or stores its new song, or reports its failure.
    fn store(&mut self, analysed: Analysed, analyser: &Analyser<'_>) -> Result<(), LibraryError> {
        let Job { path, stamp } = analysed.job;
        let new_content = match &analysed.result {
            Ok(Analysis::Known { content_hash }) => Some(content_hash.as_str()),
            Ok(Analysis::New(new)) => Some(new.0.content_hash.as_str()),
            Err(_) => None,
        };
        if let Some(content_hash) = new_content {
            let song_ids = remove_earlier_versions(self.library, &path, content_hash)?;
            if !song_ids.is_empty() {
                self.summary.replaced += 1;
                let path = path.clone();
                self.observer
                    .on_event(&IndexEvent::Replaced { path, song_ids });
            }
        }
        let result = match analysed.result {
            Ok(Analysis::Known { content_hash }) => {
                match place_known_file(self.library, &path, stamp, &content_hash)? {
                    Some(reason) => {
                        self.skip(path, reason);
                        return Ok(());
                    }
                    // The song was removed (by another process) since the run began.
                    None => analyser.fingerprint(&path, stamp, content_hash),
                }
            }
            Ok(Analysis::New(analysed)) => Ok(*analysed),
            Err(err) => Err(err),
        };
        match result {
            Err(EngineError::Cancelled) => {}
            Err(err) => {
                remember_failure(self.library, &path, stamp, &err);
                let (code, message) = (err.code().to_string(), err.to_string());
                self.report_failure(path, code, message, false);
            }
            Ok((song, fingerprint)) => match store_song(self.library, &song, &fingerprint)? {
                Ok(record) => {
                    self.forget_earlier_failure(&path);
                    self.summary.indexed += 1;
                    self.summary.audio_secs += record.duration_secs;
                    self.observer
                        .on_event(&IndexEvent::Indexed { path, song: record });
                }
                Err(reason) => self.skip(path, reason),
            },
        }
        Ok(())
    }

    /// Counts and reports a file taken without storing a song for it (its content is held).
    fn skip(&mut self, path: PathBuf, reason: SkipReason) {
        self.forget_earlier_failure(&path);
        self.summary.skipped += 1;
        if matches!(reason, SkipReason::Moved { .. }) {
            self.summary.moved += 1;
        }
        self.observer
            .on_event(&IndexEvent::Skipped { path, reason });
    }

    /// A file that failed in an earlier run and is taken now (indexed, or known content) is
    /// no longer a failure.
    fn forget_earlier_failure(&self, path: &Path) {
        if self.earlier_failures.contains(path) {
            forget_failure(self.library, path);
        }
    }

    /// Counts a failed file and reports it.
    fn report_failure(&mut self, path: PathBuf, code: String, message: String, remembered: bool) {
        self.observer.on_event(&IndexEvent::Failed {
            path: path.clone(),
            code: code.clone(),
            message: message.clone(),
            remembered,
        });
        self.summary.failed.push(FailedFile {
            path,
            code,
            message,
            remembered,
        });
    }
}

/// Makes the songs just added fast to search and durable, and saves the inverted index when
/// it is due.
fn finish_writing(library: &mut Library) -> Result<(), LibraryError> {
    library.prepare();
    library.store().flush()?;
    // The next process to open the library (a one-shot `audiofp identify`) loads the saved
    // index instead of rebuilding it from every song; a few songs added since it was written
    // are added from the store then, so it is only rewritten once enough have changed.
    library.save_index_if_due()?;
    Ok(())
}

/// How a failure reads to a user: its message, noting when it is an earlier run's.
pub fn describe_failure(message: &str, remembered: bool) -> String {
    if remembered {
        format!("{message} (in an earlier run; the file is unchanged since)")
    } else {
        message.to_string()
    }
}

/// The version of audiofp a remembered failure is valid for.
const AUDIOFP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Remembers that `path` failed with `err`, so that the next run does not decode it again while
/// it is unchanged. `stamp` is the file's as it was before it was read: a file still being
/// written then has another stamp once complete, and is decoded again. Only failures of the
/// file's content are remembered: an I/O error may pass (a disk or share that comes back). The
/// store being unable to remember it loses nothing (the next run decodes the file again), so
/// that is only logged.
fn remember_failure(library: &Library, path: &Path, stamp: Option<FileStamp>, err: &EngineError) {
    if matches!(err, EngineError::Io { .. } | EngineError::Cancelled) {
        return;
    }
    let Some((file_size, file_mtime)) = stamp else {
        return; // Unreadable: nothing to compare with next time.
    };
    let failure = FileFailure {
        path: paths::to_stored(path),
        file_size,
        file_mtime,
        code: err.code().to_string(),
        message: err.to_string(),
        failed_at: unix_now(),
        audiofp_version: AUDIOFP_VERSION.to_string(),
    };
    if let Err(store_err) = library.store().record_failure(&failure) {
        tracing::warn!(
            "{}: cannot remember its failure ({store_err})",
            path.display()
        );
    }
}

/// Forgets the remembered failures of files that no longer exist, so that the table holds the
/// library's bad files, not its history. A file that cannot be checked (a share that is not
/// mounted answers "not found" too) is at worst decoded again once when it comes back.
fn forget_failures_of_deleted_files(library: &Library, remembered: &HashMap<String, FileFailure>) {
    for path in remembered.keys() {
        let file = paths::from_stored(path);
        if matches!(file.try_exists(), Ok(false)) {
            tracing::info!(
                "{}: no longer exists; forgetting its earlier failure",
                file.display()
            );
            forget_failure(library, &file);
        }
    }
}

/// Forgets the earlier failure of `path`, now indexed (or a duplicate); only logged if the
/// store cannot, as the stale record only makes the next run decode the file again.
fn forget_failure(library: &Library, path: &Path) {
    if let Err(err) = library.store().forget_failure(&paths::to_stored(path)) {
        tracing::warn!(
            "{}: cannot forget its earlier failure ({err})",
            path.display()
        );
    }
}

/// Settles a file whose content the library already holds, without decoding it: the song is
/// pointed at this file when its own file is gone (moved, renamed), when it is this file under
/// another spelling of its path (a relative path stored by an older version), or when it is
/// this very path with a new stamp (touched, copied back): so that the next run skips it
/// unread. Otherwise the file is a duplicate of a file that is still there. `None`: no song
/// holds this content any more (removed since the run began).
fn place_known_file(
    library: &Library,
    path: &Path,
    stamp: Option<FileStamp>,
    content_hash: &str,
) -> Result<Option<SkipReason>, LibraryError> {
    let Some(song) = library.store().find_by_content_hash(content_hash)? else {
        return Ok(None);
    };
    let song_id = song.id;
    let path_text = paths::to_stored(path);
    let stored = song.path.as_deref().map(paths::from_stored);
    let same_spelling = song.path.as_deref() == Some(path_text.as_str());
    let same_file = same_spelling
        || stored
            .as_deref()
            .is_some_and(|stored| std::path::absolute(stored).is_ok_and(|s| s == path));
    let stored_is_gone = stored.as_deref().is_none_or(|stored| !stored.is_file());
    let Some((size, mtime)) = stamp else {
        return Ok(Some(SkipReason::Duplicate { song_id }));
    };
    if !(same_file || stored_is_gone) {
        return Ok(Some(SkipReason::Duplicate { song_id }));
    }
    if !library
        .store()
        .relink_song(song_id, &path_text, size, mtime)?
    {
        return Ok(None);
    }
    Ok(Some(if same_spelling {
        SkipReason::Unchanged { song_id }
    } else {
        SkipReason::Moved {
            song_id,
            from: song.path.as_deref().map(paths::display_stored),
        }
    }))
}

/// Removes the songs indexed from `path` whose content is not `content_hash`: the file was
/// changed (retagged, re-encoded, or another song saved under its name) since. Their ids.
///
/// Done before the new content is stored, each removal in its own transaction: a run stopped
/// in between leaves the file unindexed, which the next run completes, never two songs for
/// one file.
fn remove_earlier_versions(
    library: &mut Library,
    path: &Path,
    content_hash: &str,
) -> Result<Vec<i64>, LibraryError> {
    let earlier: Vec<i64> = library
        .store()
        .find_by_path(&paths::to_stored(path))?
        .into_iter()
        .filter(|song| song.content_hash != content_hash)
        .map(|song| song.id)
        .collect();
    for &song_id in &earlier {
        library.remove(song_id)?;
    }
    Ok(earlier)
}

fn store_song(
    library: &mut Library,
    song: &NewSong,
    fingerprint: &Fingerprint,
) -> Result<Result<SongRecord, SkipReason>, LibraryError> {
    if let Some(existing) = library.store().find_by_content_hash(&song.content_hash)? {
        return Ok(Err(already_held(&existing, song)));
    }
    match library.add(song, fingerprint) {
        Ok(record) => Ok(Ok(record)),
        Err(LibraryError::Index(IndexError::DuplicateContent { song_id })) => {
            Ok(Err(match library.store().song(song_id)? {
                Some(existing) => already_held(&existing, song),
                None => SkipReason::Duplicate { song_id },
            }))
        }
        Err(err) => Err(err),
    }
}

/// Why `song` is not stored when the library holds its content as `existing`: the same file,
/// which another process (a second `audiofp index`, the app) stored while this run analysed
/// it, is no duplicate of itself.
fn already_held(existing: &SongRecord, song: &NewSong) -> SkipReason {
    let song_id = existing.id;
    if existing.path.is_some() && existing.path == song.path {
        SkipReason::Unchanged { song_id }
    } else {
        SkipReason::Duplicate { song_id }
    }
}

/// Orders files by size, largest first (ties keep their order).
///
/// Analysis threads take the next file as they free up, so a long file started last would
/// leave the other threads idle while it alone runs (a two-hour mix sorted after a folder of
/// tracks); started first, it overlaps with the rest. Files whose size is unknown count as
/// empty: they fail fast anyway.
pub fn largest_first<T>(mut files: Vec<(T, u64)>) -> Vec<T> {
    files.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    files.into_iter().map(|(file, _)| file).collect()
}

/// [`largest_first`] for files not yet looked at.
pub fn largest_first_on_disk(files: &[PathBuf]) -> Vec<PathBuf> {
    largest_first(
        files
            .iter()
            .map(|path| (path.clone(), file_stamp(path).map_or(0, |(size, _)| size)))
            .collect(),
    )
}

/// The size and modification time (whole seconds since 1970) of the file at `path`.
pub(crate) fn file_stamp(path: &Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some((meta.len(), mtime))
}

/// Hashes, decodes and fingerprints one file for the index.
pub fn analyse_file(
    path: &Path,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    cancel: &CancelToken,
) -> Result<(NewSong, Fingerprint), EngineError> {
    let stamp = file_stamp(path);
    let content_hash = hash_file(path)?;
    fingerprint_file(path, stamp, content_hash, config, match_config, cancel)
}

/// What the analysis threads work with: the content the library already holds and the
/// analysis settings, as they were when the run began.
#[derive(Clone, Copy)]
struct Analyser<'a> {
    known_content: &'a HashSet<String>,
    config: &'a FingerprintConfig,
    match_config: &'a MatchConfig,
    cancel: &'a CancelToken,
}

impl Analyser<'_> {
    /// An analysis thread: analyses the jobs it takes from `jobs` and sends the results to the
    /// writer, until there are no more jobs, the run is cancelled or the writer is gone.
    fn analyse_all(&self, jobs: Receiver<Job>, results: Sender<Analysed>) {
        for job in jobs.iter() {
            if self.cancel.is_cancelled() {
                break;
            }
            let result = self.analyse(&job);
            if results.send(Analysed { job, result }).is_err() {
                break;
            }
        }
    }

    /// An analysis thread's work on one file: hash it, and decode and fingerprint it unless
    /// the library already holds its content.
    fn analyse(&self, job: &Job) -> Result<Analysis, EngineError> {
        let content_hash = hash_file(&job.path)?;
        if self.known_content.contains(&content_hash) {
            return Ok(Analysis::Known { content_hash });
        }
        let (song, fingerprint) = self.fingerprint(&job.path, job.stamp, content_hash)?;
        Ok(Analysis::New(Box::new((song, fingerprint))))
    }

    /// [`fingerprint_file`] with the run's settings.
    fn fingerprint(
        &self,
        path: &Path,
        stamp: Option<FileStamp>,
        content_hash: String,
    ) -> Result<(NewSong, Fingerprint), EngineError> {
        fingerprint_file(
            path,
            stamp,
            content_hash,
            self.config,
            self.match_config,
            self.cancel,
        )
    }
}

/// Decodes and fingerprints a file whose stamp was taken before it was read: the song keeps
/// that stamp, so a file that changes while it is analysed is not later taken as unchanged.
fn fingerprint_file(
    path: &Path,
    stamp: Option<FileStamp>,
    content_hash: String,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    cancel: &CancelToken,
) -> Result<(NewSong, Fingerprint), EngineError> {
    let (fingerprint, decoded) = engine::fingerprint_source(
        AudioSource::File(path),
        config,
        match_config,
        Side::Reference,
        cancel,
    )?;
    let song = NewSong {
        title: decoded
            .tags
            .title
            .unwrap_or_else(|| crate::paths::title_from_file_name(path)),
        artist: decoded.tags.artist,
        album: decoded.tags.album,
        duration_secs: fingerprint.duration_secs,
        path: Some(paths::to_stored(path)),
        file_size: stamp.map(|s| s.0),
        file_mtime: stamp.map(|s| s.1),
        content_hash,
        added_at: None,
    };
    Ok((song, fingerprint))
}

fn hash_file(path: &Path) -> Result<String, EngineError> {
    let io = |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(io)?;
    hasher.update_reader(file).map_err(io)?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{OpenMode, StorageKind};
    use crate::testkit::{synth, wav};

    /// The same folder or file given twice, or reached again through a link, is listed once;
    /// resource forks are passed over in folders; a path that cannot be a folder's is reported
    /// with its reason, one that does not exist as missing.
    #[test]
    fn collected_files_are_listed_once_whatever_the_paths_to_them() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let music = dir.path().join("music");
        std::fs::create_dir_all(music.join("album")).expect("folders");
        for name in ["album/one.flac", "two.mp3", "._two.mp3", "notes.txt"] {
            std::fs::write(music.join(name), b"x").expect("a file");
        }
        std::os::unix::fs::symlink(&music, music.join("album/loop")).expect("a link");
        let given = [
            music.clone(),
            music.join("two.mp3"),
            music.join("album"),
            music.join("two.mp3/inside"),
            dir.path().join("absent"),
        ];
        let found = collect_audio_files(&given);
        assert_eq!(
            found.files,
            [music.join("album/one.flac"), music.join("two.mp3")],
            "{found:?}"
        );
        assert_eq!(found.missing, [dir.path().join("absent")], "{found:?}");
        let unreadable: Vec<(&Path, &str)> = found
            .unreadable
            .iter()
            .map(|f| (f.path.as_path(), f.code.as_str()))
            .collect();
        assert_eq!(
            unreadable,
            [(music.join("two.mp3/inside").as_path(), "io_error")],
            "{found:?}"
        );
    }

    /// Indexes `files` into `library` with two threads, returning each file's skip reason.
    fn skip_reasons(library: &mut Library, files: &[PathBuf]) -> Vec<(PathBuf, SkipReason)> {
        let mut skipped = Vec::new();
        let summary = index_files(
            library,
            files.to_vec(),
            2,
            KnownFailures::Report,
            &CancelToken::new(),
            |event: &IndexEvent| {
                if let IndexEvent::Skipped { path, reason } = event {
                    skipped.push((path.clone(), reason.clone()));
                }
            },
        )
        .unwrap();
        assert!(summary.failed.is_empty(), "{:?}", summary.failed);
        skipped.sort_by(|a, b| a.0.cmp(&b.0));
        skipped
    }

    /// Another process stores a file while this run analyses it (two `audiofp index` runs of
    /// one folder): the file is skipped as already indexed, not reported as a duplicate of
    /// itself. The other process's write is made from the observer, before this run stores
    /// anything.
    #[test]
    fn a_file_another_process_stored_meanwhile_is_no_duplicate_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("shared.wav");
        wav::write_wav_i16(&file, &synth::song(35, 4.0, 22_050), 22_050, 1).unwrap();
        let storage = StorageKind::Sqlite(dir.path().join("index.db"));
        let open = || {
            Library::open(
                &storage,
                &FingerprintConfig::default(),
                &MatchConfig::default(),
                OpenMode::CreateIfMissing,
            )
            .unwrap()
        };
        let mut this_run = open();
        let mut other_process = Some(open());
        let files = collect_audio_files(std::slice::from_ref(&file)).files;

        /// Lets the other process index the file the first time this run lends its library.
        struct Race<'a> {
            other_process: &'a mut Option<Library>,
            files: &'a [PathBuf],
            skipped: &'a mut Vec<SkipReason>,
        }
        impl IndexObserver for Race<'_> {
            fn on_event(&mut self, event: &IndexEvent) {
                if let IndexEvent::Skipped { reason, .. } = event {
                    self.skipped.push(reason.clone());
                }
            }
            fn between_songs(&mut self, _library: &mut Library) {
                if let Some(mut other) = self.other_process.take() {
                    let summary = index_files(
                        &mut other,
                        self.files.to_vec(),
                        1,
                        KnownFailures::Report,
                        &CancelToken::new(),
                        |_: &IndexEvent| {},
                    )
                    .unwrap();
                    assert_eq!(summary.indexed, 1, "the other process stores it");
                }
            }
        }
        let mut skipped = Vec::new();
        let race = Race {
            other_process: &mut other_process,
            files: &files,
            skipped: &mut skipped,
        };
        let summary = index_files(
            &mut this_run,
            files.clone(),
            1,
            KnownFailures::Report,
            &CancelToken::new(),
            race,
        )
        .unwrap();
        assert_eq!((summary.indexed, summary.skipped), (0, 1), "{summary:?}");
        assert!(
            matches!(skipped.as_slice(), [SkipReason::Unchanged { .. }]),
            "{skipped:?}"
        );
    }

    #[test]
    fn the_memory_store_follows_a_moved_file_and_keeps_a_copy_as_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("a.wav");
        wav::write_wav_i16(&first, &synth::song(31, 4.0, 22_050), 22_050, 1).unwrap();
        let mut library = Library::open(
            &StorageKind::Memory,
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::CreateIfMissing,
        )
        .unwrap();
        assert_eq!(skip_reasons(&mut library, std::slice::from_ref(&first)), []);
        let song_id = library.store().songs().unwrap()[0].id;

        // A copy while the file is still there: a duplicate, the song keeps its file.
        let copy = dir.path().join("b.wav");
        std::fs::copy(&first, &copy).unwrap();
        assert_eq!(
            skip_reasons(&mut library, std::slice::from_ref(&copy)),
            [(copy.clone(), SkipReason::Duplicate { song_id })]
        );
        // The file is gone: the copy becomes the song's file.
        std::fs::remove_file(&first).unwrap();
        assert_eq!(
            skip_reasons(&mut library, std::slice::from_ref(&copy)),
            [(
                copy.clone(),
                SkipReason::Moved {
                    song_id,
                    from: Some(first.to_string_lossy().to_string()),
                }
            )]
        );
        let song = library.store().song(song_id).unwrap().unwrap();
        assert_eq!(song.path.as_deref(), Some(copy.to_string_lossy().as_ref()));
        let (size, mtime) = file_stamp(&copy).unwrap();
        assert_eq!((song.file_size, song.file_mtime), (Some(size), Some(mtime)));
        assert_eq!(library.store().songs().unwrap().len(), 1);
    }

    #[test]
    fn largest_files_go_first_and_equal_sizes_keep_their_order() {
        let files = [
            ("a", 10),
            ("b", 300),
            ("c", 10),
            ("d", 0),
            ("e", 300),
            ("f", 50),
        ]
        .map(|(name, size)| (PathBuf::from(name), size))
        .to_vec();
        let order: Vec<String> = largest_first(files)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(order, ["b", "e", "f", "a", "c", "d"]);
    }
}
