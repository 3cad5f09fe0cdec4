//! `audiofp tracklist <recording>...`: every song heard in a long recording (a DJ set, a
//! radio show), when, and from where in the song ([`crate::library::Library::tracklist`]).

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::output::{clock, outln, print_json, printable};
use super::{Cli, EXIT_ERROR, EXIT_NO_MATCH, EXIT_OK, match_config_with_threshold};
use crate::cancel::CancelToken;
use crate::engine::AudioSource;
use crate::index::OpenMode;
use crate::library::{Library, LibraryError, Tracklist, TracklistEntryJson};

/// Arguments of `tracklist`.
#[derive(Debug, Args)]
pub struct TracklistArgs {
    /// Recordings (any supported format, any length).
    #[arg(required = true, value_name = "RECORDING")]
    pub recordings: Vec<PathBuf>,
    /// Print JSON (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Minimum confidence of a window's answer, 0..1 [default: 0.8, env MATCH_THRESHOLD].
    #[arg(long)]
    pub threshold: Option<f64>,
}

/// One recording in `--json` output.
#[derive(Serialize)]
struct RecordingJson {
    recording: String,
    /// Length, seconds.
    recording_seconds: f64,
    /// Songs heard, in the order they start.
    songs: Vec<TracklistEntryJson>,
    /// Windows identified, and those that were silent.
    windows: usize,
    silent_windows: usize,
    processing_time_ms: f64,
    error: Option<super::identify_cmd::ErrorJson>,
}

pub fn run(cli: &Cli, args: &TracklistArgs) -> anyhow::Result<u8> {
    let match_config = match_config_with_threshold(args.threshold)?;
    let library = cli.open_library(OpenMode::MustExist, &match_config)?;
    let mut results = Vec::new();
    let (mut any_error, mut any_empty) = (false, false);
    for recording in &args.recordings {
        let outcome = tracklist_of(&library, recording);
        match &outcome {
            Err(err) => {
                any_error = true;
                if !args.json {
                    eprintln!("error: {err}");
                }
            }
            Ok(list) => {
                any_empty |= list.entries.is_empty();
                if !args.json {
                    print_human(recording, list, args.recordings.len() > 1)?;
                }
            }
        }
        if args.json {
            results.push(to_json(recording, &outcome));
        }
    }
    if args.json {
        print_json(&results)?;
    }
    Ok(if any_error {
        EXIT_ERROR
    } else if any_empty {
        EXIT_NO_MATCH
    } else {
        EXIT_OK
    })
}

/// The tracklist of one recording, with a spinner on a terminal.
fn tracklist_of(library: &Library, recording: &std::path::Path) -> Result<Tracklist, LibraryError> {
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        spinner.set_style(style);
    }
    let name = recording.display().to_string();
    let outcome = library.tracklist(
        AudioSource::File(recording),
        &CancelToken::new(),
        |done_secs| spinner.set_message(format!("{name}: {} listened to", clock(done_secs))),
    );
    spinner.finish_and_clear();
    outcome
}

fn print_human(recording: &std::path::Path, list: &Tracklist, prefix: bool) -> std::io::Result<()> {
    let lead = if prefix {
        format!("{}: ", recording.display())
    } else {
        String::new()
    };
    let songs = match list.entries.len() {
        0 => "no song heard".to_string(),
        1 => "1 song".to_string(),
        n => format!("{n} songs"),
    };
    outln!(
        "{lead}{songs} in {} ({} windows of {:.0} s, {:.0} ms)",
        clock(list.recording_secs),
        list.windows,
        crate::library::TRACKLIST_WINDOW_SECS,
        list.elapsed_ms
    )?;
    for entry in &list.entries {
        let artist = entry
            .song
            .artist
            .as_deref()
            .map(|a| format!(" - {}", printable(a)))
            .unwrap_or_default();
        outln!(
            "  {}-{}  {}{artist}  from {} of the song  confidence {:.2}  [song {}]",
            clock(entry.from_secs),
            clock(entry.to_secs),
            printable(&entry.song.title),
            clock(entry.song_from_secs),
            entry.confidence,
            entry.song.id
        )?;
    }
    Ok(())
}

fn to_json(
    recording: &std::path::Path,
    outcome: &Result<Tracklist, LibraryError>,
) -> RecordingJson {
    let recording = recording.to_string_lossy().to_string();
    match outcome {
        Ok(list) => RecordingJson {
            recording,
            recording_seconds: list.recording_secs,
            songs: list.entries.iter().map(TracklistEntryJson::from).collect(),
            windows: list.windows,
            silent_windows: list.silent_windows,
            processing_time_ms: list.elapsed_ms,
            error: None,
        },
        Err(err) => RecordingJson {
            recording,
            recording_seconds: 0.0,
            songs: Vec::new(),
            windows: 0,
            silent_windows: 0,
            processing_time_ms: 0.0,
            error: Some(super::identify_cmd::error_json(err)),
        },
    }
}
