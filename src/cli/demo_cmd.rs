//! `audiofp demo`: a self-contained tour without any music at hand. Generates synthetic songs,
//! indexes them into a temporary index, and identifies degraded clips of them (and of a song
//! that was not indexed), printing what a user would see.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;

use super::output::{clock, outln};
use super::{Cli, EXIT_ERROR, EXIT_OK, fingerprint_config, match_config};
use crate::cancel::CancelToken;
use crate::index::{OpenMode, StorageKind};
use crate::indexer;
use crate::library::Library;
use crate::testkit::{distort, synth, wav};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the generated songs, clips and index [default: a temporary folder].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Number of songs to generate.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub songs: u64,
}

const RATE_HZ: u32 = 44_100;
const SONG_SECS: f32 = 30.0;

pub fn run(cli: &Cli, args: &DemoArgs) -> anyhow::Result<u8> {
    cli.refuse_index_flags(
        "demo",
        "writes its own index in --dir (a temporary folder by default)",
    )?;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("audiofp-demo-{}", std::process::id())),
    };
    let songs_dir = generate_songs(&dir, args.songs)?;
    let library = index_songs(&dir, &songs_dir)?;
    let all_as_expected = identify_clips(&library, &dir, args.songs)?;
    outln!("files are in {}", dir.display())?;
    Ok(if all_as_expected { EXIT_OK } else { EXIT_ERROR })
}

/// Step 1: writes `songs` synthetic songs into `dir/songs`, which it returns.
fn generate_songs(dir: &Path, songs: u64) -> anyhow::Result<PathBuf> {
    let songs_dir = dir.join("songs");
    std::fs::create_dir_all(&songs_dir)
        .with_context(|| format!("creating {}", songs_dir.display()))?;
    outln!(
        "1. generating {songs} synthetic songs of {SONG_SECS:.0} s in {}",
        songs_dir.display()
    )?;
    for seed in 1..=songs {
        let samples = synth::song_stereo(seed, SONG_SECS, RATE_HZ);
        let path = songs_dir.join(format!("Demo song {seed}.wav"));
        wav::write_wav_i16(&path, &samples, RATE_HZ, 2)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(songs_dir)
}

/// Step 2: indexes the songs of `songs_dir` into a new index in `dir`.
fn index_songs(dir: &Path, songs_dir: &Path) -> anyhow::Result<Library> {
    let db = dir.join("demo-index.db");
    std::fs::remove_file(&db).ok();
    outln!("2. indexing them into {}", db.display())?;
    let mut library = Library::open(
        &StorageKind::Sqlite(db),
        &fingerprint_config()?,
        &match_config()?,
        OpenMode::CreateIfMissing,
    )?;
    let files = indexer::collect_audio_files(&[songs_dir.to_path_buf()]).files;
    let summary = indexer::index_files(
        &mut library,
        files,
        2,
        indexer::KnownFailures::Retry,
        &CancelToken::new(),
        |_: &_| {},
    )?;
    outln!(
        "   {} songs indexed in {:.2} s",
        summary.indexed,
        summary.elapsed_secs
    )?;
    Ok(library)
}

/// Step 3: identifies degraded clips of the middle one of the `songs` songs, and a clip of a
/// song that was not indexed, written into `dir/clips`; whether each got the answer it should.
fn identify_clips(library: &Library, dir: &Path, songs: u64) -> anyhow::Result<bool> {
    outln!("3. identifying clips")?;
    let clips_dir = dir.join("clips");
    std::fs::create_dir_all(&clips_dir)?;
    let target_seed = 1 + songs / 2;
    let start = 12.5;
    let cases = clips_of(target_seed, start);
    outln!(
        "   (the clips come from \"Demo song {target_seed}\" at {}, except the last)",
        clock(f64::from(start))
    )?;
    let mut all_as_expected = true;
    for (index, (label, samples, rate)) in cases.into_iter().enumerate() {
        let path = clips_dir.join(format!("clip{}.wav", index + 1));
        wav::write_wav_i16(&path, &samples, rate, 1)?;
        let answer = library.identify_file(&path, &CancelToken::new())?;
        let expect_match = index < 3;
        match answer.matches.first() {
            Some(top) => {
                outln!(
                    "   {label:<36} -> {} at {} (confidence {:.2}, {:.0} ms)",
                    top.song.title,
                    clock(top.offset_secs),
                    top.confidence,
                    answer.processing_ms()
                )?;
                all_as_expected &=
                    expect_match && top.song.title == format!("Demo song {target_seed}");
            }
            None => {
                outln!(
                    "   {label:<36} -> no match ({:.0} ms)",
                    answer.processing_ms()
                )?;
                all_as_expected &= !expect_match;
            }
        }
    }
    Ok(all_as_expected)
}

/// The demo's clips (label, mono samples, rate): three 5 s clips of song `target_seed` from
/// `start` seconds (clean, noisy, telephone), then one of a song that is not indexed.
fn clips_of(target_seed: u64, start: f32) -> Vec<(&'static str, Vec<f32>, u32)> {
    let song = synth::song(target_seed, SONG_SECS, RATE_HZ);
    let excerpt = distort::excerpt(&song, RATE_HZ, start, 5.0);
    let unknown = distort::excerpt(&synth::song(10_000, SONG_SECS, RATE_HZ), RATE_HZ, 5.0, 5.0);
    vec![
        ("clean 5 s clip", excerpt.clone(), RATE_HZ),
        (
            "same clip, noise at 5 dB SNR",
            distort::add_white_noise(&excerpt, 5.0, 7),
            RATE_HZ,
        ),
        (
            "same clip, telephone (8 kHz)",
            distort::resample_linear(&excerpt, RATE_HZ, 8000),
            8000,
        ),
        ("5 s of a song that is not indexed", unknown, RATE_HZ),
    ]
}
