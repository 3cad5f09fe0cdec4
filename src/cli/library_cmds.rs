//! `list`, `show`, `remove`, `stats`, `export`, `import`: looking after the library.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::output::{bytes, clock, outln, print_json, printable, progress_bar};
use super::{Cli, EXIT_ERROR, EXIT_OK, match_config};
use crate::calendar::utc_date_time;
use crate::index::export::{
    check_parameters, export_store, export_to_writer, import_validated, validate_export,
};
use crate::index::{IndexError, OpenMode, Store, open_store};
use crate::library::IndexOrigin;

/// Just a `--json` flag.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only songs whose title, artist or album contains this text (case-insensitive).
    #[arg(long, short = 'q')]
    pub filter: Option<String>,
    /// List the files that failed to index instead: each is reported again, without being
    /// decoded, until it changes (or `index --retry-failed`).
    #[arg(long)]
    pub failed: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Song id (see `audiofp list`).
    pub id: i64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Song ids to remove.
    #[arg(required = true)]
    pub ids: Vec<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File to write (replaced whole once written), or `-` for standard output.
    pub file: PathBuf,
    /// Print the summary as JSON (on stderr when the export goes to standard output).
    #[arg(long)]
    pub json: bool,
}

/// `export --json` (docs/CLI.md).
#[derive(Serialize)]
struct ExportJson<'a> {
    exported: u64,
    file: std::borrow::Cow<'a, str>,
}

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// File written by `audiofp export`.
    pub file: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Opens just the store (no search structure needed).
fn store(cli: &Cli, mode: OpenMode) -> anyhow::Result<Box<dyn Store>> {
    Ok(open_store(
        &cli.storage()?,
        &super::fingerprint_config()?,
        mode,
    )?)
}

pub fn list(cli: &Cli, args: &ListArgs) -> anyhow::Result<u8> {
    let store = store(cli, OpenMode::MustExist)?;
    if args.failed {
        return list_failures(store.as_ref(), args);
    }
    let mut songs = store.songs()?;
    if let Some(filter) = &args.filter {
        let needle = filter.to_lowercase();
        songs.retain(|s| {
            [Some(&s.title), s.artist.as_ref(), s.album.as_ref()]
                .into_iter()
                .flatten()
                .any(|f| f.to_lowercase().contains(&needle))
        });
    }
    if args.json {
        print_json(&songs)?;
        return Ok(EXIT_OK);
    }
    if songs.is_empty() {
        outln!("no songs")?;
        return Ok(EXIT_OK);
    }
    outln!(
        "{:>6}  {:>7}  {:<40}  {:<24}  ALBUM",
        "ID",
        "LENGTH",
        "TITLE",
        "ARTIST"
    )?;
    for song in &songs {
        outln!(
            "{:>6}  {:>7}  {:<40}  {:<24}  {}",
            song.id,
            clock(song.duration_secs),
            truncate(&printable(&song.title), 40),
            truncate(&printable(song.artist.as_deref().unwrap_or("-")), 24),
            printable(song.album.as_deref().unwrap_or("-"))
        )?;
    }
    Ok(EXIT_OK)
}

/// `list --failed`: the remembered failures, by path.
fn list_failures(store: &dyn Store, args: &ListArgs) -> anyhow::Result<u8> {
    let mut failures = store.failures()?;
    if let Some(filter) = &args.filter {
        let needle = filter.to_lowercase();
        failures.retain(|f| {
            crate::paths::display_stored(&f.path)
                .to_lowercase()
                .contains(&needle)
        });
    }
    failures.sort_by(|a, b| a.path.cmp(&b.path));
    if args.json {
        print_json(&failures)?;
        return Ok(EXIT_OK);
    }
    if failures.is_empty() {
        outln!("no failed files")?;
        return Ok(EXIT_OK);
    }
    for failure in &failures {
        // The message names the file, already on the line above.
        let shown = crate::paths::display_stored(&failure.path);
        let prefix = format!("{shown}: ");
        let reason = failure
            .message
            .strip_prefix(&prefix)
            .unwrap_or(&failure.message);
        outln!("{}", printable(&shown))?;
        outln!(
            "    {} ({}; {}, audiofp {})",
            reason,
            failure.code,
            utc_date_time(failure.failed_at),
            failure.audiofp_version
        )?;
    }
    let (count, each) = match failures.len() {
        1 => ("1 failed file".to_string(), "it is"),
        n => (format!("{n} failed files"), "each is"),
    };
    outln!(
        "{count}; {each} reported again by `audiofp index` until it changes \
         (--retry-failed decodes again)"
    )?;
    Ok(EXIT_OK)
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

pub fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<u8> {
    let store = store(cli, OpenMode::MustExist)?;
    let Some(song) = store.song(args.id)? else {
        return Err(anyhow::Error::new(IndexError::UnknownSong(args.id))
            .context(format!("no song with id {} (see `audiofp list`)", args.id)));
    };
    if args.json {
        print_json(&song)?;
        return Ok(EXIT_OK);
    }
    outln!("id:        {}", song.id)?;
    outln!("title:     {}", printable(&song.title))?;
    outln!(
        "artist:    {}",
        printable(song.artist.as_deref().unwrap_or("-"))
    )?;
    outln!(
        "album:     {}",
        printable(song.album.as_deref().unwrap_or("-"))
    )?;
    outln!(
        "duration:  {} ({:.1} s)",
        clock(song.duration_secs),
        song.duration_secs
    )?;
    outln!(
        "path:      {}",
        printable(
            &song
                .path
                .as_deref()
                .map_or_else(|| "-".to_string(), crate::paths::display_stored)
        )
    )?;
    outln!("added:     {}", utc_date_time(song.added_at))?;
    outln!(
        "peaks:     {} ({:.1} per second)",
        song.num_peaks,
        f64::from(song.num_peaks) / song.duration_secs.max(1e-9)
    )?;
    outln!("blake3:    {}", song.content_hash)?;
    Ok(EXIT_OK)
}

pub fn remove(cli: &Cli, args: &RemoveArgs) -> anyhow::Result<u8> {
    let mut store = store(cli, OpenMode::MustExist)?;
    let mut removed = Vec::new();
    let mut unknown = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // An id given twice is removed once (not reported unknown the second time).
    for &id in args.ids.iter().filter(|&&id| seen.insert(id)) {
        if store.remove_song(id)? {
            removed.push(id);
        } else {
            unknown.push(id);
        }
    }
    if args.json {
        print_json(&serde_json::json!({ "removed": removed, "unknown": unknown }))?;
    } else {
        for id in &removed {
            outln!("removed song {id}")?;
        }
        for id in &unknown {
            eprintln!("error: no song with id {id}");
        }
    }
    Ok(if unknown.is_empty() {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}

/// `stats --json` (docs/CLI.md), its fields in the documented order.
#[derive(Serialize)]
struct StatsJson<'a> {
    songs: u64,
    hours: f64,
    peaks: u64,
    hashes: usize,
    failed_files: usize,
    bytes_on_disk: u64,
    bytes_per_hour: f64,
    memory_index_bytes: usize,
    index_loaded: IndexOrigin,
    storage: &'a str,
    location: PathBuf,
}

pub fn stats(cli: &Cli, args: &JsonFlag) -> anyhow::Result<u8> {
    let library = cli.open_library(OpenMode::MustExist, &match_config()?)?;
    // One guard for the whole command: the store's lock is not re-entrant.
    let store = library.store();
    let stats = store.stats()?;
    let failed_files = store.failures()?.len();
    let hashes = library.inverted_index().posting_count();
    let hours = stats.total_secs / 3600.0;
    if args.json {
        print_json(&StatsJson {
            songs: stats.songs,
            hours,
            peaks: stats.peaks,
            hashes,
            failed_files,
            bytes_on_disk: stats.bytes_on_disk,
            bytes_per_hour: if hours > 0.0 {
                stats.bytes_on_disk as f64 / hours
            } else {
                0.0
            },
            memory_index_bytes: library.inverted_index().memory_bytes(),
            index_loaded: library.index_origin(),
            storage: store.kind(),
            location: store.location(),
        })?;
        return Ok(EXIT_OK);
    }
    if store.kind() == "memory" {
        outln!("index:     in memory (STORAGE_TYPE=memory: gone when the process ends)")?;
    } else {
        outln!(
            "index:     {} ({})",
            store.location().display(),
            store.kind()
        )?;
    }
    outln!("songs:     {}", stats.songs)?;
    outln!("audio:     {:.2} hours", hours)?;
    outln!("peaks:     {}", stats.peaks)?;
    outln!(
        "hashes:    {} (in memory: {})",
        hashes,
        bytes(library.inverted_index().memory_bytes() as u64)
    )?;
    let per_hour = if hours > 0.0 {
        format!(
            " ({} per hour of audio)",
            bytes((stats.bytes_on_disk as f64 / hours) as u64)
        )
    } else {
        String::new()
    };
    outln!("on disk:   {}{per_hour}", bytes(stats.bytes_on_disk))?;
    if failed_files > 0 {
        outln!("failed:    {failed_files} files (see `audiofp list --failed`)")?;
    }
    if store.kind() == "memory" {
        // Nothing was loaded: the index lives and dies with this process.
        return Ok(EXIT_OK);
    }
    outln!(
        "loaded:    {}",
        match library.index_origin() {
            IndexOrigin::Rebuilt => "index rebuilt from the database".to_string(),
            IndexOrigin::Saved => "saved index (current)".to_string(),
            IndexOrigin::CaughtUp { added, removed } => format!(
                "saved index, brought up to date (songs added: {added}, removed: {removed})"
            ),
            IndexOrigin::NotLoaded => "index not loaded".to_string(),
        }
    )?;
    Ok(EXIT_OK)
}

pub fn export(cli: &Cli, args: &ExportArgs) -> anyhow::Result<u8> {
    let store = store(cli, OpenMode::MustExist)?;
    if args.file.as_os_str() == "-" {
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            anyhow::bail!(
                "standard output is a terminal: redirect it to a file or a pipe (`audiofp export - > library.afpx`)"
            );
        }
        let mut out = std::io::BufWriter::new(stdout.lock());
        let written = export_to_writer(store.as_ref(), "standard output", &mut out)?;
        // Standard output holds the export; the note goes to the terminal.
        if args.json {
            let summary = ExportJson {
                exported: written,
                file: "-".into(),
            };
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
        } else {
            eprintln!("exported {written} songs to standard output");
        }
        return Ok(EXIT_OK);
    }
    let written = export_store(store.as_ref(), &args.file)?;
    if args.json {
        print_json(&ExportJson {
            exported: written,
            file: args.file.to_string_lossy(),
        })?;
    } else {
        outln!("exported {written} songs to {}", args.file.display())?;
    }
    Ok(EXIT_OK)
}

pub fn import(cli: &Cli, args: &ImportArgs) -> anyhow::Result<u8> {
    // Check the whole file, and that its parameters are this run's, before creating or
    // touching the index: a refused import leaves no new database behind.
    let info = validate_export(&args.file)?;
    check_parameters(&info, &super::fingerprint_config()?, &args.file)?;
    let mut store = store(cli, OpenMode::CreateIfMissing)?;
    let bar = progress_bar(info.songs, "songs");
    let summary = import_validated(store.as_mut(), &args.file, &info, |_| bar.inc(1))?;
    store.flush()?;
    bar.finish_and_clear();
    if args.json {
        print_json(&summary)?;
    } else {
        outln!(
            "imported {} songs, skipped {} already in the index",
            summary.imported,
            summary.skipped
        )?;
    }
    Ok(EXIT_OK)
}
