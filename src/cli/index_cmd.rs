//! `audiofp index <files or folders>...`

use std::path::PathBuf;

use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;

use super::output::{outln, print_json, progress_bar};
use super::{Cli, EXIT_ERROR, EXIT_OK, match_config};
use crate::cancel::CancelToken;
use crate::index::OpenMode;
use crate::indexer::{self, IndexEvent, KnownFailures, SkipReason};

/// Arguments of `index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Audio files, or folders to search recursively for audio files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Analysis threads [default: the number of cores].
    #[arg(long, short = 'j')]
    pub workers: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Decode again the files that failed in an earlier run and are unchanged since (by default
    /// their failure is reported again without decoding them).
    #[arg(long)]
    pub retry_failed: bool,
}

/// Duplicates listed in the human summary; `--json` lists them all.
const MAX_DUPLICATES_LISTED: usize = 20;

/// A file skipped because the library holds its audio from another file.
#[derive(Serialize)]
struct Duplicate {
    #[serde(serialize_with = "indexer::path_as_lossy_string")]
    path: PathBuf,
    /// The song with that audio.
    song_id: i64,
}

/// `index --json` (docs/CLI.md).
#[derive(Serialize)]
struct IndexJson<'a> {
    total: usize,
    indexed: usize,
    skipped: usize,
    moved: usize,
    replaced: usize,
    failed: &'a [indexer::FailedFile],
    duplicates: &'a [Duplicate],
    /// Paths given that do not exist, as given.
    missing: Vec<std::borrow::Cow<'a, str>>,
    audio_seconds: f64,
    elapsed_seconds: f64,
    cancelled: bool,
}

pub fn run(cli: &Cli, args: &IndexArgs) -> anyhow::Result<u8> {
    let indexer::Collected {
        files,
        missing,
        unreadable,
    } = indexer::collect_audio_files(&args.paths);
    report_unusable_paths(&files, &missing, &unreadable);
    let mut duplicates = Vec::new();
    // When every path given is missing or unreadable, a mistyped path say, no index is
    // created. An empty folder still opens (or creates) the index, as asked.
    let nothing_there = files.is_empty() && !(missing.is_empty() && unreadable.is_empty());
    let mut summary = if nothing_there {
        indexer::IndexSummary::default()
    } else {
        index_found_files(cli, args, files, &mut duplicates)?
    };
    summary.total += unreadable.len();
    summary.failed.splice(0..0, unreadable);

    if args.json {
        print_json(&IndexJson {
            total: summary.total,
            indexed: summary.indexed,
            skipped: summary.skipped,
            moved: summary.moved,
            replaced: summary.replaced,
            failed: &summary.failed,
            duplicates: &duplicates,
            missing: missing.iter().map(|p| p.to_string_lossy()).collect(),
            audio_seconds: summary.audio_secs,
            elapsed_seconds: summary.elapsed_secs,
            cancelled: summary.cancelled,
        })?;
    } else {
        print_summary(&summary, &duplicates, missing.len())?;
    }
    Ok(
        if summary.failed.is_empty() && missing.is_empty() && !summary.cancelled {
            EXIT_OK
        } else {
            EXIT_ERROR
        },
    )
}

/// Says on standard error which paths given do not exist or cannot be read, and when there
/// is no audio file at all.
fn report_unusable_paths(
    files: &[PathBuf],
    missing: &[PathBuf],
    unreadable: &[indexer::FailedFile],
) {
    for path in missing {
        eprintln!("error: {}: no such file or folder", path.display());
    }
    for failure in unreadable {
        eprintln!("error: {}", failure.message);
    }
    if files.is_empty() && missing.is_empty() && unreadable.is_empty() {
        eprintln!(
            "note: no audio files found (looked for {} files)",
            indexer::AUDIO_EXTENSIONS.join(", ")
        );
    }
}

/// The human summary: the totals line, then the failures, the duplicates (the first
/// [`MAX_DUPLICATES_LISTED`]) and notes on remembered failures and on cancelling.
fn print_summary(
    summary: &indexer::IndexSummary,
    duplicates: &[Duplicate],
    not_found: usize,
) -> std::io::Result<()> {
    outln!("{}", totals_line(summary, not_found))?;
    for failed in &summary.failed {
        let text = indexer::describe_failure(&failed.message, failed.remembered);
        outln!("  failed: {text}")?;
    }
    for duplicate in duplicates.iter().take(MAX_DUPLICATES_LISTED) {
        outln!(
            "  duplicate: {} (the same audio as song {}, not indexed again)",
            duplicate.path.display(),
            duplicate.song_id
        )?;
    }
    if duplicates.len() > MAX_DUPLICATES_LISTED {
        outln!(
            "  ... and {} more duplicates (--json lists them all)",
            duplicates.len() - MAX_DUPLICATES_LISTED
        )?;
    }
    if summary.failed.iter().any(|f| f.remembered) {
        outln!(
            "(files that failed in an earlier run and are unchanged were not decoded again; \
             --retry-failed decodes them)"
        )?;
    }
    if summary.cancelled {
        outln!("cancelled: songs indexed so far are kept; run the same command again to finish")?;
    }
    Ok(())
}

/// "9 indexed, 0 skipped (already indexed), 1 failed in 1.8 s (5.1 songs/s, 820x realtime)",
/// with the moved, replaced and `not_found` counts when there are any.
fn totals_line(summary: &indexer::IndexSummary, not_found: usize) -> String {
    // A rate only means something when songs were analysed: a re-run that skips (or
    // relinks) everything just says how long it took.
    let speed = if summary.elapsed_secs <= 0.0 {
        String::new()
    } else if summary.indexed == 0 {
        format!(" in {:.2} s", summary.elapsed_secs)
    } else {
        format!(
            " in {:.1} s ({:.1} songs/s, {:.0}x realtime)",
            summary.elapsed_secs,
            summary.indexed as f64 / summary.elapsed_secs,
            summary.audio_secs / summary.elapsed_secs
        )
    };
    let moved = match summary.moved {
        0 => String::new(),
        1 => "; 1 found at a new path".to_string(),
        n => format!("; {n} found at new paths"),
    };
    let replaced = match summary.replaced {
        0 => String::new(),
        1 => " (1 changed since it was indexed: its earlier version removed)".to_string(),
        n => format!(" ({n} changed since they were indexed: their earlier versions removed)"),
    };
    // As in `--json`: paths that do not exist are not files that failed.
    let not_found = match not_found {
        0 => String::new(),
        n => format!(", {n} not found"),
    };
    format!(
        "{} indexed{replaced}, {} skipped (already indexed{moved}), {} failed{not_found}{speed}",
        summary.indexed,
        summary.skipped,
        summary.failed.len()
    )
}

/// Indexes `files` with a progress bar, noting the duplicates found.
fn index_found_files(
    cli: &Cli,
    args: &IndexArgs,
    files: Vec<PathBuf>,
    duplicates: &mut Vec<Duplicate>,
) -> anyhow::Result<indexer::IndexSummary> {
    // Adding songs needs only the store: the inverted index of a large library is not loaded
    // unless it is due to be saved.
    let mut library = cli.open_library_for_adding(OpenMode::CreateIfMissing, &match_config()?)?;
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let cancel = cancel_on_ctrl_c();
    let bar = progress_bar(files.len() as u64, "files");
    let known_failures = if args.retry_failed {
        KnownFailures::Retry
    } else {
        KnownFailures::Report
    };
    let summary = indexer::index_files(
        &mut library,
        files,
        workers,
        known_failures,
        &cancel,
        |event: &IndexEvent| on_index_event(event, &bar, duplicates),
    )?;
    bar.finish_and_clear();
    Ok(summary)
}

/// A token that Ctrl-C cancels: the song being written is finished and the run stops; a
/// second Ctrl-C is the default kill.
fn cancel_on_ctrl_c() -> CancelToken {
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        ctrlc::set_handler(move || {
            if cancel.is_cancelled() {
                std::process::exit(130);
            }
            cancel.cancel();
        })
        .ok();
    }
    cancel
}

/// Shows an indexing event: the progress bar moves on each file (errors are printed above
/// it), the details go to the log, and duplicates are noted for the summary.
fn on_index_event(event: &IndexEvent, bar: &ProgressBar, duplicates: &mut Vec<Duplicate>) {
    match event {
        IndexEvent::Started { .. } => {}
        IndexEvent::Replaced { path, song_ids } => tracing::info!(
            "{}: changed since it was indexed; removed the songs of its earlier version ({song_ids:?})",
            path.display()
        ),
        IndexEvent::Indexed { path, song } => {
            tracing::info!(
                "{}: indexed as song {} ({:.1} s of audio, {} peaks)",
                path.display(),
                song.id,
                song.duration_secs,
                song.num_peaks
            );
            // The file name: a long path would show only its start.
            let name = path.file_name().unwrap_or(path.as_os_str());
            bar.set_message(name.to_string_lossy().to_string());
            bar.inc(1);
        }
        IndexEvent::Skipped { path, reason } => {
            if let SkipReason::Duplicate { song_id } = reason {
                duplicates.push(Duplicate {
                    path: path.clone(),
                    song_id: *song_id,
                });
            }
            tracing::info!("{}: skipped ({})", path.display(), skip_text(reason));
            bar.inc(1);
        }
        IndexEvent::Failed {
            message,
            remembered,
            ..
        } => {
            let text = indexer::describe_failure(message, *remembered);
            bar.suspend(|| eprintln!("error: {text}"));
            bar.inc(1);
        }
    }
}

/// Why a file was skipped, for the log.
fn skip_text(reason: &SkipReason) -> String {
    match reason {
        SkipReason::Unchanged { song_id } => format!("unchanged, song {song_id}"),
        SkipReason::Duplicate { song_id } => format!("same audio as song {song_id}"),
        SkipReason::Moved { song_id, from } => format!(
            "song {song_id}, moved from {}",
            from.as_deref().unwrap_or("(no file)")
        ),
    }
}
