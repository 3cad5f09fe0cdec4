//! `audiofp identify <clip>...`

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::output::{clock, outln, print_json, printable};
use super::{Cli, EXIT_ERROR, EXIT_NO_MATCH, EXIT_OK, match_config_with_threshold};
use crate::cancel::CancelToken;
use crate::config::MAX_TOP_MATCHES;
use crate::engine::EngineError;
use crate::index::OpenMode;
use crate::library::{Identification, LONG_RECORDING_SECS, Library, LibraryError, Repeat};

/// Arguments of `identify`.
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// Audio clips to identify (any supported format, any sample rate); `-` reads one from
    /// standard input.
    #[arg(required = true, value_name = "CLIP")]
    pub clips: Vec<PathBuf>,
    /// Print results as JSON (see docs/CLI.md for the schema).
    #[arg(long)]
    pub json: bool,
    /// Report at most this many matches per clip.
    #[arg(long, default_value_t = 1)]
    pub top: usize,
    /// Minimum confidence for a match, 0..1 [default: 0.8, env MATCH_THRESHOLD].
    #[arg(long)]
    pub threshold: Option<f64>,
}

/// One clip's result in `--json` output.
#[derive(Serialize)]
pub struct ClipJson {
    /// The clip.
    #[serde(serialize_with = "crate::indexer::path_as_lossy_string")]
    pub clip: PathBuf,
    /// Whether anything matched.
    pub found: bool,
    /// Matches, best first.
    pub matches: Vec<MatchJson>,
    /// Clip length, seconds.
    pub clip_seconds: f64,
    /// Engine time, ms.
    pub processing_time_ms: f64,
    /// Landmark hashes of the clip.
    pub query_hashes: usize,
    /// Playback speed at which it matched (1.02 = the clip plays 2 % fast).
    pub speed: f64,
    /// Pitch shift at which it matched, semitones.
    pub pitch_semitones: f64,
    /// Error, when the clip could not be analysed.
    pub error: Option<ErrorJson>,
}

/// One match in `--json` output.
#[derive(Serialize)]
pub struct MatchJson {
    /// Song id.
    pub song_id: i64,
    /// Title.
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Where the clip starts in the song, seconds (for a song heard from inside the clip,
    /// its position at `clip_from_seconds`).
    pub offset_seconds: f64,
    /// Where in the clip the song is heard from: 0 unless the clip runs into it from another.
    pub clip_from_seconds: f64,
    /// Hashes aligned at that offset.
    pub aligned_hashes: usize,
    /// Whether the song's own audio, read from its file, was compared with the clip (the
    /// best match, when its file is at hand as it was indexed): the confidence includes it.
    pub source_checked: bool,
    /// Song file path at indexing time.
    pub path: Option<String>,
    /// Other places in the song where the clip fits nearly as well (a loop, a chorus, a
    /// repeated bar), in time order; empty for a passage the song plays once.
    pub repeats: Vec<Repeat>,
}

/// An error in `--json` output.
#[derive(Serialize)]
pub struct ErrorJson {
    /// Machine-readable code.
    pub code: String,
    /// Message naming the file and the reason.
    pub message: String,
}

pub fn run(cli: &Cli, args: &IdentifyArgs) -> anyhow::Result<u8> {
    let mut match_config = match_config_with_threshold(args.threshold)?;
    anyhow::ensure!(
        (1..=MAX_TOP_MATCHES).contains(&args.top),
        "--top must be within 1..={MAX_TOP_MATCHES}"
    );
    match_config.top_n = args.top;
    let library = cli.open_library(OpenMode::MustExist, &match_config)?;
    if library.inverted_index().song_count() == 0 {
        eprintln!(
            "note: {} holds no songs, so nothing can match; add some with `audiofp index <files or folders>`",
            library.store().location().display()
        );
    }
    let mut results = Vec::new();
    let mut any_error = false;
    let mut any_miss = false;
    for clip in &args.clips {
        let outcome = identify_one(&library, clip);
        if let Ok(id) = &outcome {
            tracing::info!(
                "{}: {:.1} s, {} landmarks looked up, {} hits; analysis {:.1} ms, matching {:.1} ms; {}",
                clip.display(),
                id.clip_secs,
                id.query_landmarks,
                id.hits,
                id.analysis_ms,
                id.match_ms,
                match (id.matches.first(), &id.best_rejected) {
                    (Some(best), _) =>
                        format!("song {} at confidence {:.3}", best.song.id, best.confidence),
                    (None, Some(rejected)) => format!(
                        "no match (best: song {} at confidence {:.3})",
                        rejected.song.id, rejected.confidence
                    ),
                    (None, None) => "no candidate".to_string(),
                }
            );
        }
        match &outcome {
            Ok(id) if !id.found() => any_miss = true,
            Err(_) => any_error = true,
            Ok(_) => {}
        }
        if args.json {
            results.push(to_json(clip, outcome));
        } else {
            print_human(clip, &outcome, args.clips.len() > 1)?;
            if let Ok(id) = &outcome
                && id.clip_secs >= LONG_RECORDING_SECS
            {
                eprintln!(
                    "note: {} is {} long; `audiofp tracklist` lists every song in it, and when",
                    clip.display(),
                    clock(id.clip_secs)
                );
            }
        }
    }
    if args.json {
        print_json(&results)?;
    }
    Ok(if any_error {
        EXIT_ERROR
    } else if any_miss {
        EXIT_NO_MATCH
    } else {
        EXIT_OK
    })
}

/// Identifies the clip at `clip`: a file, or `-` for standard input. Standard input and what
/// is not a regular file (a pipe such as `<(ffmpeg ...)` or /dev/stdin, whose size is not
/// known before it is read) are read whole first.
fn identify_one(library: &Library, clip: &Path) -> Result<Identification, LibraryError> {
    let is_stdin = clip.as_os_str() == "-";
    let streamed =
        is_stdin || std::fs::metadata(clip).is_ok_and(|meta| !meta.is_file() && !meta.is_dir());
    if !streamed {
        return library.identify_file(clip, &CancelToken::new());
    }
    let name = if is_stdin {
        "standard input".to_string()
    } else {
        clip.display().to_string()
    };
    let read = if is_stdin {
        read_clip(std::io::stdin().lock())
    } else {
        std::fs::File::open(clip).and_then(read_clip)
    };
    let bytes = read.map_err(|source| EngineError::Io {
        path: PathBuf::from(&name),
        source,
    })?;
    library.identify_bytes(bytes, &name, library.match_config().top_n)
}

/// Most bytes read from standard input or a pipe (an hour of CD-quality WAV is 635 MB).
const MAX_STREAMED_CLIP_BYTES: u64 = 1 << 30;

fn read_clip(source: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    source
        .take(MAX_STREAMED_CLIP_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STREAMED_CLIP_BYTES {
        return Err(std::io::Error::other(format!(
            "more than {} MiB: give a file instead",
            MAX_STREAMED_CLIP_BYTES >> 20
        )));
    }
    Ok(bytes)
}

fn to_json(clip: &std::path::Path, outcome: Result<Identification, LibraryError>) -> ClipJson {
    match outcome {
        Ok(id) => ClipJson {
            clip: clip.to_path_buf(),
            found: id.found(),
            clip_seconds: id.clip_secs,
            processing_time_ms: id.processing_ms(),
            query_hashes: id.query_landmarks,
            speed: id.speed,
            pitch_semitones: id.pitch_semitones,
            matches: id
                .matches
                .into_iter()
                .map(|m| MatchJson {
                    song_id: m.song.id,
                    title: m.song.title,
                    artist: m.song.artist,
                    album: m.song.album,
                    confidence: m.confidence,
                    offset_seconds: m.offset_secs,
                    clip_from_seconds: m.clip_from_secs,
                    aligned_hashes: m.aligned,
                    source_checked: m.source.is_some(),
                    path: m.song.path,
                    repeats: m.repeats,
                })
                .collect(),
            error: None,
        },
        Err(err) => ClipJson {
            clip: clip.to_path_buf(),
            found: false,
            matches: Vec::new(),
            // How long a too-short clip is, when the error says; 0 when nothing was measured.
            clip_seconds: match &err {
                LibraryError::Engine(EngineError::TooShort { secs, .. }) => *secs,
                _ => 0.0,
            },
            processing_time_ms: 0.0,
            query_hashes: 0,
            speed: 1.0,
            pitch_semitones: 0.0,
            error: Some(error_json(&err)),
        },
    }
}

/// A library error in `--json` output.
pub fn error_json(err: &LibraryError) -> ErrorJson {
    ErrorJson {
        code: error_code(err).to_string(),
        message: err.to_string(),
    }
}

/// Machine-readable code of a library error.
pub fn error_code(err: &LibraryError) -> &'static str {
    match err {
        LibraryError::Engine(e) => e.code(),
        LibraryError::Index(_) => "index_error",
        LibraryError::Postings(_) => "index_full",
        LibraryError::NotLoaded => "index_not_loaded",
    }
}

fn print_human(
    clip: &std::path::Path,
    outcome: &Result<Identification, LibraryError>,
    prefix: bool,
) -> std::io::Result<()> {
    let lead = if prefix {
        format!("{}: ", clip.display())
    } else {
        String::new()
    };
    match outcome {
        Err(err) => eprintln!("error: {err}"),
        Ok(id) if !id.found() => outln!(
            "{lead}no match ({:.1} s clip, {} hashes, {:.0} ms)",
            id.clip_secs,
            id.query_landmarks,
            id.processing_ms()
        )?,
        Ok(id) => {
            let altered = id
                .alteration()
                .map(|words| format!("  ({words})"))
                .unwrap_or_default();
            for (rank, m) in id.matches.iter().enumerate() {
                let artist = m
                    .song
                    .artist
                    .as_deref()
                    .map(|a| format!(" - {}", printable(a)))
                    .unwrap_or_default();
                let rank = if id.matches.len() > 1 {
                    format!("#{} ", rank + 1)
                } else {
                    String::new()
                };
                let heard_from = if m.clip_from_secs > 0.0 {
                    format!(" from {:.1} s into the clip", m.clip_from_secs)
                } else {
                    String::new()
                };
                outln!(
                    "{lead}{rank}{}{artist}  at {} ({:.1} s){heard_from}  confidence {:.2}  [{} aligned hashes, song {}, {:.0} ms]{altered}",
                    printable(&m.song.title),
                    clock(m.offset_secs),
                    m.offset_secs,
                    m.confidence,
                    m.aligned,
                    m.song.id,
                    id.processing_ms()
                )?;
                if !m.repeats.is_empty() {
                    let places: Vec<String> = m
                        .repeats
                        .iter()
                        .map(|r| {
                            format!(
                                "{} ({:.1} s, {:.0} %)",
                                clock(r.offset_secs),
                                r.offset_secs,
                                r.fit * 100.0
                            )
                        })
                        .collect();
                    outln!("{lead}    repeats: also fits at {}", places.join(", "))?;
                }
            }
        }
    }
    Ok(())
}
