//! Indexing many files: parallel analysis, one writer.
//!
//! ```text
//! paths -> collect_audio_files -> skip unchanged (path + size + mtime already stored)
//!       -> report, without decoding, unchanged files that failed in an earlier run
//!          (and forget the failures of files that no longer exist)
//!       -> largest file first
//!       -> N analysis threads (hash the bytes, decode, fingerprint)
//!       -> this thread: skip duplicate content, store each song in its own transaction
//! ```
//!
//! A bad file is reported and skipped; the run goes on. Its failure is remembered in the store,
//! so that the next run reports it again without decoding it while it is unchanged
//! ([`KnownFailures`]). Cancelling stops the analysis threads between packets; songs already
//! written stay, and a re-run completes the job.

use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use crossbeam_channel::{bounded, unbounded};
use serde::Serialize;

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::{self, AudioSource, EngineError, Fingerprint, Side};
use crate::index::{FileFailure, IndexError, NewSong, SongRecord, unix_now};
use crate::library::{Library, LibraryError};

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
    /// The same content is already indexed (maybe from another path).
    Duplicate {
        /// The song.
        song_id: i64,
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

/// Totals of an indexing run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndexSummary {
    /// Files looked at.
    pub total: usize,
    /// Songs stored.
    pub indexed: usize,
    /// Files skipped (unchanged or duplicate).
    pub skipped: usize,
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
    pub path: PathBuf,
    /// Machine-readable code.
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// The failure is an earlier run's: the file is unchanged since and was not decoded.
    pub remembered: bool,
}

/// Expands folders (recursively, sorted; files with audio extensions, including those of
/// formats that cannot be decoded, so that they are reported) and keeps files as given.
/// Paths that do not exist are returned in the second list.
pub fn collect_audio_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            missing.push(path.clone());
        }
    }
    (files, missing)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else if has_audio_extension(&path) || engine::undecodable_format_name(&path).is_some() {
            // Formats that cannot be decoded are taken too: they fail with a reason that
            // names the format, instead of being left out without a word.
            out.push(path);
        }
    }
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

/// Analysis of one file, done off the writer thread.
struct Analysed {
    job: Job,
    result: Result<(NewSong, Fingerprint), EngineError>,
}

/// Indexes `files` into `library` with `workers` analysis threads, reporting through `on_event`.
pub fn index_files(
    library: &mut Library,
    files: Vec<PathBuf>,
    workers: usize,
    known_failures: KnownFailures,
    cancel: &CancelToken,
    mut on_event: impl FnMut(&IndexEvent),
) -> Result<IndexSummary, LibraryError> {
    let started = Instant::now();
    let mut summary = IndexSummary {
        total: files.len(),
        ..IndexSummary::default()
    };
    on_event(&IndexEvent::Started { total: files.len() });

    // Unchanged files are skipped without reading them, and so are unchanged files that
    // failed before (reported again). Files whose earlier failure is out of date are noted so
    // that it is forgotten if they are indexed now.
    let mut todo = Vec::with_capacity(files.len());
    let remembered: std::collections::HashMap<String, FileFailure> = library
        .store()
        .failures()?
        .into_iter()
        .map(|failure| (failure.path.clone(), failure))
        .collect();
    forget_failures_of_deleted_files(library, &remembered);
    let mut earlier_failures = std::collections::HashSet::new();
    for path in files {
        let stamp = file_stamp(&path);
        let path_text = path.to_string_lossy().to_string();
        if let Some((size, mtime)) = stamp
            && let Some(song) = library.store().find_by_file(&path_text, size, mtime)?
        {
            summary.skipped += 1;
            on_event(&IndexEvent::Skipped {
                path,
                reason: SkipReason::Unchanged { song_id: song.id },
            });
            continue;
        }
        if let Some(failure) = remembered.get(&path_text) {
            let unchanged = stamp == Some((failure.file_size, failure.file_mtime))
                && failure.audiofp_version == AUDIOFP_VERSION;
            if unchanged && known_failures == KnownFailures::Report {
                report_failure(
                    &mut summary,
                    &mut on_event,
                    path,
                    failure.code.clone(),
                    failure.message.clone(),
                    true,
                );
                continue;
            }
            earlier_failures.insert(path.clone());
        }
        let size = stamp.map_or(0, |(size, _)| size);
        todo.push((Job { path, stamp }, size));
    }
    let todo = largest_first(todo);

    let config = library.config().clone();
    let match_config = library.match_config().clone();
    let (job_tx, job_rx) = unbounded::<Job>();
    for job in todo {
        job_tx.send(job).ok(); // The receiver lives until the scope ends.
    }
    drop(job_tx);
    let (result_tx, result_rx) = bounded::<Analysed>(workers.max(1) * 2);
    let mut store_error = None;
    std::thread::scope(|scope| {
        for worker in 0..workers.max(1) {
            let job_rx = job_rx.clone();
            let result_tx = result_tx.clone();
            let (config, match_config, cancel) = (&config, &match_config, cancel);
            let spawned = std::thread::Builder::new()
                .name(format!("audiofp-analyse-{worker}"))
                .spawn_scoped(scope, move || {
                    for job in job_rx.iter() {
                        if cancel.is_cancelled() {
                            break;
                        }
                        let result = analyse_stamped_file(
                            &job.path,
                            job.stamp,
                            config,
                            match_config,
                            cancel,
                        );
                        if result_tx.send(Analysed { job, result }).is_err() {
                            break;
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!("cannot start an analysis thread: {err}");
            }
        }
        drop(result_tx);
        for analysed in result_rx.iter() {
            if store_error.is_some() {
                cancel.cancel();
                continue;
            }
            let Job { path, stamp } = analysed.job;
            match analysed.result {
                Err(EngineError::Cancelled) => {}
                Err(err) => {
                    remember_failure(library, &path, stamp, &err);
                    let (code, message) = (err.code().to_string(), err.to_string());
                    report_failure(&mut summary, &mut on_event, path, code, message, false);
                }
                Ok((song, fingerprint)) => match store_song(library, &song, &fingerprint) {
                    Ok(Ok(record)) => {
                        if earlier_failures.contains(&path) {
                            forget_failure(library, &path);
                        }
                        summary.indexed += 1;
                        summary.audio_secs += record.duration_secs;
                        on_event(&IndexEvent::Indexed { path, song: record });
                    }
                    Ok(Err(reason)) => {
                        if earlier_failures.contains(&path) {
                            forget_failure(library, &path);
                        }
                        summary.skipped += 1;
                        on_event(&IndexEvent::Skipped { path, reason });
                    }
                    Err(err) => store_error = Some(err),
                },
            }
        }
    });
    if let Some(err) = store_error {
        return Err(err);
    }
    library.prepare();
    library.store().flush()?;
    // The next process to open the library (a one-shot `audiofp identify`) loads the saved
    // index instead of rebuilding it from every song; a few songs added since it was written
    // are added from the store then, so it is only rewritten once enough have changed.
    library.save_index_if_due()?;
    summary.cancelled = cancel.is_cancelled();
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// How a failure reads to a user: its message, noting when it is an earlier run's.
pub fn describe_failure(message: &str, remembered: bool) -> String {
    if remembered {
        format!("{message} (in an earlier run; the file is unchanged since)")
    } else {
        message.to_string()
    }
}

/// Counts a failed file and reports it.
fn report_failure(
    summary: &mut IndexSummary,
    on_event: &mut impl FnMut(&IndexEvent),
    path: PathBuf,
    code: String,
    message: String,
    remembered: bool,
) {
    on_event(&IndexEvent::Failed {
        path: path.clone(),
        code: code.clone(),
        message: message.clone(),
        remembered,
    });
    summary.failed.push(FailedFile {
        path,
        code,
        message,
        remembered,
    });
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
        path: path.to_string_lossy().to_string(),
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
fn forget_failures_of_deleted_files(
    library: &Library,
    remembered: &std::collections::HashMap<String, FileFailure>,
) {
    for path in remembered.keys() {
        if matches!(Path::new(path).try_exists(), Ok(false)) {
            tracing::info!("{path}: no longer exists; forgetting its earlier failure");
            forget_failure(library, Path::new(path));
        }
    }
}

/// Forgets the earlier failure of `path`, now indexed (or a duplicate); only logged if the
/// store cannot, as the stale record only makes the next run decode the file again.
fn forget_failure(library: &Library, path: &Path) {
    if let Err(err) = library.store().forget_failure(&path.to_string_lossy()) {
        tracing::warn!(
            "{}: cannot forget its earlier failure ({err})",
            path.display()
        );
    }
}

fn store_song(
    library: &mut Library,
    song: &NewSong,
    fingerprint: &Fingerprint,
) -> Result<Result<SongRecord, SkipReason>, LibraryError> {
    if let Some(existing) = library.store().find_by_content_hash(&song.content_hash)? {
        return Ok(Err(SkipReason::Duplicate {
            song_id: existing.id,
        }));
    }
    match library.add(song, fingerprint) {
        Ok(record) => Ok(Ok(record)),
        Err(LibraryError::Index(IndexError::DuplicateContent { song_id })) => {
            Ok(Err(SkipReason::Duplicate { song_id }))
        }
        Err(err) => Err(err),
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

fn file_stamp(path: &Path) -> Option<FileStamp> {
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
    analyse_stamped_file(path, file_stamp(path), config, match_config, cancel)
}

/// [`analyse_file`] for a file whose stamp was taken before it was read: the song keeps that
/// stamp, so a file that changes while it is analysed is not later taken as unchanged.
fn analyse_stamped_file(
    path: &Path,
    stamp: Option<FileStamp>,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    cancel: &CancelToken,
) -> Result<(NewSong, Fingerprint), EngineError> {
    let content_hash = hash_file(path)?;
    let (fingerprint, decoded) = engine::fingerprint_source(
        AudioSource::File(path),
        config,
        match_config,
        Side::Reference,
        cancel,
    )?;
    let file_title = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string());
    let song = NewSong {
        title: decoded.tags.title.unwrap_or(file_title),
        artist: decoded.tags.artist,
        album: decoded.tags.album,
        duration_secs: fingerprint.duration_secs,
        path: Some(path.to_string_lossy().to_string()),
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
