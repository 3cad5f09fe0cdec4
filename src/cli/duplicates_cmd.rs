//! `audiofp duplicates`: the songs of the library that share audio (see
//! [`crate::library::HeardIn`]): the same recording indexed twice, or a track that holds
//! another. Identical audio is printed once as a pair; a song heard inside a longer one is
//! printed with where. `audiofp duplicates ID` asks about one song
//! ([`crate::library::Library::shared_audio_of`]).

use std::collections::HashMap;

use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use super::output::{clock, outln, print_json, printable, progress_bar};
use super::{Cli, EXIT_OK, match_config};
use crate::index::{IndexError, OpenMode, SongRecord};
use crate::library::{HeardIn, Library, SongSharedAudio, classify_findings};

/// Arguments of `duplicates`.
#[derive(Debug, Args)]
pub struct DuplicatesArgs {
    /// Only this song (see `audiofp list`): the songs that share its audio.
    pub id: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `duplicates --json` (docs/CLI.md).
#[derive(Debug, Serialize)]
struct DuplicatesJson {
    /// Songs checked.
    songs: usize,
    /// Pairs of songs with the same audio from start to end, lower id first.
    same_audio: Vec<SameAudioJson>,
    /// Songs whose audio is heard inside a (longer) other song.
    heard_in: Vec<HeardInJson>,
}

#[derive(Debug, Serialize)]
struct SameAudioJson {
    song_ids: [i64; 2],
}

#[derive(Debug, Serialize)]
struct HeardInJson {
    song_id: i64,
    in_song_id: i64,
    /// Where the song starts in the other song, seconds.
    from_seconds: f64,
}

pub fn run(cli: &Cli, args: &DuplicatesArgs) -> anyhow::Result<u8> {
    let library = cli.open_library(OpenMode::MustExist, &match_config()?)?;
    if let Some(id) = args.id {
        return one_song(&library, id, args.json);
    }
    // The guard is dropped at once: matching reads the store too.
    let songs: Vec<SongRecord> = library.store().songs()?;
    let bar = progress_bar(songs.len() as u64, "songs");
    // The songs are checked on every core: each check is three clip matches, read-only.
    let found: Vec<Vec<HeardIn>> = songs
        .par_iter()
        .map(|song| {
            let found = library.heard_in_other_songs(song.id);
            bar.inc(1);
            found
        })
        .collect::<Result<_, _>>()?;
    bar.finish_and_clear();
    let report = report_json(songs.len(), &found.concat());
    if args.json {
        print_json(&report)?;
        return Ok(EXIT_OK);
    }
    let titles: HashMap<i64, &str> = songs.iter().map(|s| (s.id, s.title.as_str())).collect();
    let name = |id: i64| match titles.get(&id) {
        Some(title) => format!("{id} \"{}\"", printable(title)),
        None => format!("{id}"),
    };
    for pair in &report.same_audio {
        outln!(
            "same audio: {} = {}",
            name(pair.song_ids[0]),
            name(pair.song_ids[1])
        )?;
    }
    for heard in &report.heard_in {
        outln!(
            "heard in:   {} is in {} from {} ({:.1} s)",
            name(heard.song_id),
            name(heard.in_song_id),
            clock(heard.from_seconds),
            heard.from_seconds
        )?;
    }
    let count = |n: usize, one: &str, many: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    };
    outln!(
        "{} checked: {} with the same audio, {} heard inside another",
        count(report.songs, "song", "songs"),
        count(report.same_audio.len(), "pair", "pairs"),
        count(report.heard_in.len(), "song", "songs"),
    )?;
    Ok(EXIT_OK)
}

/// `duplicates ID`: one song's side, as the API gives it.
fn one_song(library: &Library, id: i64, json: bool) -> anyhow::Result<u8> {
    let Some(song) = library.store().song(id)? else {
        return Err(anyhow::Error::new(IndexError::UnknownSong(id))
            .context(format!("no song with id {id} (see `audiofp list`)")));
    };
    let side = SongSharedAudio::of_song(id, &library.shared_audio_of(id)?);
    if json {
        print_json(&side)?;
        return Ok(EXIT_OK);
    }
    let name = |id: i64| match library.store().song(id) {
        Ok(Some(song)) => format!("{id} \"{}\"", printable(&song.title)),
        _ => format!("{id}"),
    };
    outln!("{}:", name(song.id))?;
    for other in &side.same_audio {
        outln!("  same audio: {}", name(*other))?;
    }
    for (relation, songs) in [("heard in:", &side.heard_in), ("contains:", &side.contains)] {
        for at in songs {
            outln!(
                "  {relation:<11} {} from {} ({:.1} s)",
                name(at.song_id),
                clock(at.from_seconds),
                at.from_seconds
            )?;
        }
    }
    if side.same_audio.is_empty() && side.heard_in.is_empty() && side.contains.is_empty() {
        outln!("  no other song shares its audio")?;
    }
    Ok(EXIT_OK)
}

/// The report as `--json` prints it.
fn report_json(songs: usize, found: &[HeardIn]) -> DuplicatesJson {
    let report = classify_findings(found);
    DuplicatesJson {
        songs,
        same_audio: report
            .same_audio
            .into_iter()
            .map(|song_ids| SameAudioJson { song_ids })
            .collect(),
        heard_in: report
            .contained
            .into_iter()
            .map(|contained| HeardInJson {
                song_id: contained.song_id,
                in_song_id: contained.in_song_id,
                from_seconds: contained.from_secs,
            })
            .collect(),
    }
}
