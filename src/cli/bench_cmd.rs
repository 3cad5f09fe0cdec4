//! `audiofp bench`: prints the figures the README quotes (see [`crate::bench`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rayon::prelude::*;

use super::output::{bytes, out, outln, print_json};
use super::{Cli, EXIT_OK, fingerprint_config, match_config};
use crate::bench::{self, ClipResult, CorpusOptions, CorpusReport, ListeningReport};
use crate::cancel::CancelToken;
use crate::config::MatchConfig;
use crate::engine::{self, AudioSource, Side};
use crate::listening;

/// How `bench --scale` generates its songs (see [`crate::bench::songs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScaleSongs {
    /// Excerpts of the other corpus songs' constellations, each shifted in frequency: keys
    /// crowd as real music's do.
    Corpus,
    /// Independent peaks at the corpus's density: keys spread wider than real music's, so
    /// lookups are cheaper than in a real library (the generator of earlier figures).
    Synthetic,
}

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Corpus root with refs/ and manifest.jsonl [env DEV_CORPUS, default /var/tmp/audiofp-dev-corpus].
    #[arg(
        long,
        env = "DEV_CORPUS",
        default_value = "/var/tmp/audiofp-dev-corpus"
    )]
    pub corpus: PathBuf,
    /// Analysis threads for indexing and decode-only runs.
    #[arg(long, short = 'j')]
    pub workers: Option<usize>,
    /// Instead of the accuracy run: measure query latency and memory with this many songs
    /// (generated fingerprints, see `--scale-songs`, plus the first 20 corpus songs, whose
    /// clips are the queries).
    #[arg(long, value_name = "N", value_delimiter = ',')]
    pub scale: Vec<usize>,
    /// With `--scale`: how the songs are generated.
    #[arg(long, value_enum, default_value_t = ScaleSongs::Corpus)]
    pub scale_songs: ScaleSongs,
    /// With `--scale`: query with each of these `HITS_PER_LANDMARK` budgets (0 = no limit),
    /// on the same index, to show the speed/recall trade-off.
    #[arg(long, value_name = "B", value_delimiter = ',')]
    pub hit_budgets: Vec<usize>,
    /// With `--scale`: rounds over all the queries; each query's time is its median over
    /// the rounds.
    #[arg(long, default_value_t = 5)]
    pub query_rounds: usize,
    /// With `--scale`: add this percentage of the generated songs one by one after building
    /// the index from the others, as songs indexed since the library's postings were last
    /// merged (they wait in a side list until it holds a quarter of the rest). 0: one merged
    /// index.
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0, value_parser = percent)]
    pub scale_added: f64,
    /// With `--scale N`: instead of measuring, write a SQLite index of the first 20 corpus
    /// songs plus N generated fingerprints to this new file (for load-testing `audiofp serve`
    /// on a large library).
    #[arg(long, value_name = "PATH")]
    pub write_db: Option<PathBuf>,
    /// Only clips with these distortions (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Use at most this many clips, spread over the manifest (0 = all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Rounds of (decode-only pass, indexing run) for the indexing-speed ratio (median). On a
    /// shared machine a burst of load moves the median of 3 rounds by up to 0.05.
    #[arg(long, default_value_t = 9)]
    pub speed_rounds: usize,
    /// Cold CLI runs (a fresh `audiofp identify` process each).
    #[arg(long, default_value_t = 10)]
    pub cold_runs: usize,
    /// Include every clip's (and listening session's) result in the JSON output / list the
    /// misses.
    #[arg(long)]
    pub clips: bool,
    /// Skip the listening sessions (the desktop app's Listen, played 15 s windows of the
    /// corpus's tracks).
    #[arg(long)]
    pub no_listening: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<u8> {
    cli.refuse_index_flags(
        "bench",
        "measures an SQLite index it builds in a temporary folder (--write-db saves a --scale library)",
    )?;
    let config = fingerprint_config()?;
    // The bench measures the top answer, as `identify` gives it by default (and so with the
    // early answer of a clip whose opening is conclusive).
    let match_config = MatchConfig {
        top_n: 1,
        ..match_config()?
    };
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    if let Some(path) = &args.write_db {
        return write_scale_db(args, path, workers, &config, &match_config);
    }
    if !args.scale.is_empty() {
        return run_scale(args, &config, &match_config);
    }
    let mut report = run_corpus_in_temp_dir(args, workers, &config, &match_config)?;
    if args.json {
        if !args.clips {
            report.clips.clear();
            if let Some(listening) = &mut report.listening {
                listening.sessions.clear();
            }
        }
        print_json(&report)?;
        return Ok(EXIT_OK);
    }
    print_corpus_report(args, &report)?;
    Ok(EXIT_OK)
}

/// Runs the corpus benchmark with its index in a temporary folder, removed afterwards; the
/// stages go to standard error.
fn run_corpus_in_temp_dir(
    args: &BenchArgs,
    workers: usize,
    config: &crate::config::FingerprintConfig,
    match_config: &crate::config::MatchConfig,
) -> anyhow::Result<CorpusReport> {
    let temp = BenchTempDir::create()?;
    let options = CorpusOptions {
        corpus: args.corpus.clone(),
        workers,
        db_path: temp.join("bench-index.db"),
        cli_exe: std::env::current_exe().ok(),
        cold_runs: args.cold_runs,
        only: args.only.clone(),
        limit: args.limit,
        speed_rounds: args.speed_rounds,
        listening: !args.no_listening,
    };
    // `temp` goes when this returns: run_corpus has closed the library it built by then.
    let report = bench::run_corpus(&options, config, match_config, |stage| {
        eprintln!("bench: {stage}")
    })?;
    Ok(report)
}

/// The corpus benchmark as text: accuracy, wrong answers, listening, speed and size, and with
/// `--clips` the misses.
fn print_corpus_report(args: &BenchArgs, report: &CorpusReport) -> std::io::Result<()> {
    outln!(
        "corpus: {} ({} songs, {:.2} h), {} workers",
        args.corpus.display(),
        report.songs,
        report.hours,
        report.workers
    )?;
    outln!()?;
    print_accuracy(&report.accuracy)?;
    print_wrong_answers(report)?;
    if let Some(listening) = &report.listening {
        print_listening(listening)?;
    }
    outln!()?;
    print_speed_and_size(report)?;
    if args.clips {
        print_misses(report)?;
    }
    Ok(())
}

/// The top-1 accuracy table: a row per distortion, a column per clip length.
fn print_accuracy(
    accuracy: &BTreeMap<String, BTreeMap<String, (usize, usize)>>,
) -> std::io::Result<()> {
    outln!("top-1 accuracy (correct/total)")?;
    let lengths: std::collections::BTreeSet<String> =
        accuracy.values().flat_map(|m| m.keys().cloned()).collect();
    let mut lengths: Vec<String> = lengths.into_iter().collect();
    lengths.sort_by_key(|l| {
        l.trim_end_matches('s')
            .parse::<f64>()
            .map_or(0, |v| (v * 10.0) as i64)
    });
    out!("{:<14}", "distortion")?;
    for length in &lengths {
        out!("{length:>12}")?;
    }
    outln!()?;
    for (distortion, cells) in accuracy {
        out!("{distortion:<14}")?;
        for length in &lengths {
            match cells.get(length) {
                Some((ok, total)) => out!(
                    "{:>12}",
                    format!(
                        "{:.0}% {ok}/{total}",
                        100.0 * *ok as f64 / (*total).max(1) as f64
                    )
                )?,
                None => out!("{:>12}", "-")?,
            }
        }
        outln!()?;
    }
    Ok(())
}

/// False positives (and the shared audio that explains some), wrong songs, and how many right
/// answers have the offset right.
fn print_wrong_answers(report: &CorpusReport) -> std::io::Result<()> {
    let (fp, negatives) = report.false_positives;
    outln!()?;
    outln!(
        "false positives: {fp}/{negatives} clips of unindexed songs ({:.2} %)",
        100.0 * fp as f64 / negatives.max(1) as f64
    )?;
    if !report.shared_audio.is_empty() {
        let pairs: Vec<String> = report
            .shared_audio
            .iter()
            .map(|s| {
                format!(
                    "negrefs/{} = {} from {:.1} s (confidence {:.2})",
                    s.unindexed, s.indexed, s.offset_s, s.confidence
                )
            })
            .collect();
        outln!(
            "  of which {} name an indexed song whose audio an unindexed track contains: {}",
            report.false_positives_in_shared_audio,
            pairs.join("; ")
        )?;
    }
    outln!("wrong song on indexed clips: {}", report.wrong_song)?;
    let right: Vec<&ClipResult> = report
        .clips
        .iter()
        .filter(|c| c.offset_error_s.is_some())
        .collect();
    if !right.is_empty() {
        let close = |error: Option<f64>| error.is_some_and(|e| e <= 0.1);
        let within = right.iter().filter(|c| close(c.offset_error_s)).count();
        let at_a_repeat = right
            .iter()
            .filter(|c| !close(c.offset_error_s) && close(c.repeat_offset_error_s))
            .count();
        let listing = right.iter().filter(|c| !c.repeat_offsets_s.is_empty());
        let repeats_listed: usize = listing.clone().map(|c| c.repeat_offsets_s.len()).sum();
        outln!(
            "offset within 0.1 s: {within}/{} correct answers; {at_a_repeat} more at one of the repeats listed ({} answers list {repeats_listed} repeats)",
            right.len(),
            listing.count(),
        )?;
    }
    Ok(())
}

/// Query latencies (warm and cold), indexing speed, index size and peak memory.
fn print_speed_and_size(report: &CorpusReport) -> std::io::Result<()> {
    outln!(
        "warm query, 10 s clip (decode+analysis+match): median {:.2} ms, p95 {:.2} ms",
        report.warm_10s_ms.0,
        report.warm_10s_ms.1
    )?;
    outln!(
        "warm query, 10 s clip (matching only):          median {:.3} ms, p95 {:.3} ms",
        report.warm_10s_match_ms.0,
        report.warm_10s_match_ms.1
    )?;
    if let Some((median, p95, n)) = report.cold_cli_ms {
        outln!(
            "cold CLI `audiofp identify` (process start to answer): median {median:.0} ms, p95 {p95:.0} ms over {n} runs"
        )?;
    }
    outln!(
        "decode-only: {:.0}x realtime; indexing: {:.0}x realtime = {:.2} of decode-only speed (median of {} rounds); {:.1} songs/min per core",
        report.decode_x_realtime,
        report.index_x_realtime,
        report.index_vs_decode,
        report.speed_rounds,
        report.songs_per_min_per_core
    )?;
    outln!(
        "analysis vector loops: {} (a generated song's peaks the same as the baseline's: {})",
        report.analysis_vectors,
        if report.vectors_match_baseline {
            "yes"
        } else {
            "NO"
        }
    )?;
    outln!(
        "index: {} per hour of audio (SQLite file); {:.1} peaks/s stored, {:.0} hashes/s in memory",
        bytes(report.index_bytes_per_hour as u64),
        report.peaks_per_second,
        report.landmarks_per_second
    )?;
    outln!(
        "peak RSS: {} (indexing and clips, before the listening sessions)",
        bytes(report.peak_rss_bytes)
    )
}

/// `--clips`: every clip and listening session that did not name its song.
fn print_misses(report: &CorpusReport) -> std::io::Result<()> {
    outln!()?;
    for clip in report.clips.iter().filter(|c| c.answer != c.truth) {
        outln!(
            "miss: {} truth={:?} answer={:?} conf={:.3} aligned={} {}",
            clip.query,
            clip.truth,
            clip.answer,
            clip.confidence,
            clip.aligned,
            clip.error.as_deref().unwrap_or("")
        )?;
    }
    let sessions = report.listening.iter().flat_map(|l| &l.sessions);
    for session in sessions.filter(|s| s.answer.as_ref().map(|a| &a.0) != s.truth.as_ref()) {
        outln!(
            "listening miss: {} from {:.0} s{} truth={:?} answer={:?} (every attempt: {:?})",
            session.track,
            session.start_s,
            if session.noisy { " (noisy)" } else { "" },
            session.truth,
            session.answer,
            session.answer_at_every_attempt
        )?;
    }
    Ok(())
}

/// Writes the first 20 corpus songs and `--scale N` generated fingerprints into a new index.
fn write_scale_db(
    args: &BenchArgs,
    path: &std::path::Path,
    workers: usize,
    config: &crate::config::FingerprintConfig,
    match_config: &crate::config::MatchConfig,
) -> anyhow::Result<u8> {
    use crate::index::{NewSong, OpenMode, StorageKind};
    use crate::library::Library;
    let [songs] = args.scale[..] else {
        anyhow::bail!("--write-db needs exactly one --scale N");
    };
    anyhow::ensure!(
        !path.exists(),
        "{} exists; --write-db makes a new index",
        path.display()
    );
    let mut library = Library::open(
        &StorageKind::Sqlite(path.to_path_buf()),
        config,
        match_config,
        OpenMode::CreateIfMissing,
    )?;
    let mut refs = crate::indexer::collect_audio_files(&[args.corpus.join("refs")]).files;
    refs.sort();
    let sources = refs.split_off(QUERIED_SONGS.min(refs.len()));
    let summary = crate::indexer::index_files(
        &mut library,
        refs,
        workers,
        crate::indexer::KnownFailures::Retry,
        &CancelToken::new(),
        |_: &_| {},
    )?;
    anyhow::ensure!(summary.failed.is_empty(), "{:?}", summary.failed);
    let stats = library.store().stats()?;
    let density = stats.peaks as f64 / stats.total_secs.max(1.0);
    let generator = scale_generator(args.scale_songs, &sources, density, config, match_config)?;
    let mut peaks = Vec::new();
    for song in 0..songs {
        generator.peaks(song, &mut peaks);
        let fingerprint = engine::Fingerprint {
            peaks: std::mem::take(&mut peaks),
            num_frames: generator.frames_per_song(),
            duration_secs: bench::songs::SONG_SECS,
            contrast: None,
        };
        let new_song = NewSong {
            title: format!("Generated {song:06}"),
            artist: Some("audiofp bench".to_string()),
            album: None,
            duration_secs: fingerprint.duration_secs,
            path: None,
            file_size: None,
            file_mtime: None,
            content_hash: format!("generated-{song}"),
            added_at: None,
        };
        library.add(&new_song, &fingerprint)?;
        peaks = fingerprint.peaks;
        if (song + 1) % 1000 == 0 {
            eprintln!("bench: {} / {songs} generated songs written", song + 1);
        }
    }
    outln!(
        "{}: {} corpus songs + {songs} generated ({})",
        path.display(),
        summary.indexed,
        generator.describe()
    )?;
    Ok(EXIT_OK)
}

/// Corpus songs (the first, in name order) whose clips a scale run queries; the others are
/// the material of `--scale-songs corpus`.
const QUERIED_SONGS: usize = 20;

/// The generator `--scale-songs` asks for: excerpts of the constellations of `sources` (the
/// corpus songs that are not queried), or synthetic peaks at `density` per second.
fn scale_generator(
    kind: ScaleSongs,
    sources: &[PathBuf],
    density: f64,
    config: &crate::config::FingerprintConfig,
    match_config: &crate::config::MatchConfig,
) -> anyhow::Result<bench::GeneratedSongs> {
    if kind == ScaleSongs::Synthetic {
        let songs = bench::SyntheticSongs::new(config, density);
        return Ok(bench::GeneratedSongs::Synthetic(songs));
    }
    let constellations = sources
        .par_iter()
        .map(|path| {
            let fingerprint = fingerprint_file(path, Side::Reference, config, match_config)?;
            Ok((fingerprint.peaks, fingerprint.num_frames))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bench::CorpusSongs::new(config, constellations)
        .map(bench::GeneratedSongs::Corpus)
        .with_context(|| {
            format!(
                "--scale-songs corpus needs corpus songs besides the first {QUERIED_SONGS}, \
                 longer than 20 s (or use --scale-songs synthetic)"
            )
        })
}

/// The fingerprint of the audio file at `path`, analysed for `side`.
fn fingerprint_file(
    path: &std::path::Path,
    side: Side,
    config: &crate::config::FingerprintConfig,
    match_config: &crate::config::MatchConfig,
) -> anyhow::Result<engine::Fingerprint> {
    let source = AudioSource::File(path);
    let (fingerprint, _) =
        engine::fingerprint_source(source, config, match_config, side, &CancelToken::new())
            .with_context(|| format!("fingerprinting {}", path.display()))?;
    Ok(fingerprint)
}

fn budget_label(hits_per_landmark: usize) -> String {
    if hits_per_landmark == 0 {
        "unlimited".to_string()
    } else {
        hits_per_landmark.to_string()
    }
}

/// The bench's own folder for its index, removed when the run ends, whether it succeeded or
/// failed (a failed run would otherwise leave tens of MB behind each time).
struct BenchTempDir(PathBuf);

impl BenchTempDir {
    fn create() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("audiofp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for BenchTempDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!("cannot remove {}: {err}", self.0.display());
        }
    }
}

/// A percentage from 0 to 100 (`--scale-added`).
fn percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.0..=100.0).contains(&value) => Ok(value),
        _ => Err(format!("{text:?} is not a percentage from 0 to 100")),
    }
}

fn run_scale(
    args: &BenchArgs,
    config: &crate::config::FingerprintConfig,
    match_config: &crate::config::MatchConfig,
) -> anyhow::Result<u8> {
    // Real songs and their 10 s clips give the queries (and a density to generate at).
    let manifest = bench::read_manifest(&args.corpus.join("manifest.jsonl"))?;
    let mut refs = crate::indexer::collect_audio_files(&[args.corpus.join("refs")]).files;
    refs.sort();
    let sources = refs.split_off(QUERIED_SONGS.min(refs.len()));
    let mut real = Vec::new();
    let mut real_ids = Vec::new();
    let mut peaks_total = 0usize;
    let mut secs_total = 0.0;
    for path in &refs {
        let fingerprint = fingerprint_file(path, Side::Reference, config, match_config)?;
        peaks_total += fingerprint.peaks.len();
        secs_total += fingerprint.duration_secs;
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut queries = Vec::new();
        for entry in manifest
            .iter()
            .filter(|m| m.truth.as_deref() == Some(id.as_str()) && (m.length_s - 10.0).abs() < 0.5)
            .take(3)
        {
            let clip = args.corpus.join(&entry.query);
            if let Ok(q) = fingerprint_file(&clip, Side::Query, config, match_config) {
                queries.push(q);
            }
        }
        real.push((fingerprint.peaks, fingerprint.num_frames, queries));
        real_ids.push(id);
    }
    // 10 s clips of unindexed songs: what a large library must still answer "no match" to.
    let (negative_clips, negatives): (Vec<&str>, Vec<engine::Fingerprint>) = manifest
        .iter()
        .filter(|m| m.truth.is_none() && (m.length_s - 10.0).abs() < 0.5)
        .filter_map(|entry| {
            let clip = args.corpus.join(&entry.query);
            fingerprint_file(&clip, Side::Query, config, match_config)
                .ok()
                .map(|q| (entry.query.as_str(), q))
        })
        .unzip();
    let density = peaks_total as f64 / secs_total.max(1.0);
    let generator = scale_generator(args.scale_songs, &sources, density, config, match_config)?;
    let mut reports = Vec::new();
    for &songs in &args.scale {
        eprintln!(
            "bench: building an index of {songs} generated songs (4 min each, {}) + {} real; queries timed over {} rounds",
            generator.describe(),
            real.len(),
            args.query_rounds.max(1)
        );
        let budgets = if args.hit_budgets.is_empty() {
            vec![match_config.hits_per_landmark]
        } else {
            args.hit_budgets.clone()
        };
        let options = bench::ScaleOptions {
            songs,
            generated: generator.clone(),
            budgets,
            query_rounds: args.query_rounds,
            added_songs: (songs as f64 * args.scale_added / 100.0).round() as usize,
        };
        for report in bench::run_scale(&options, &real, &negatives, config, match_config) {
            if !args.json {
                outln!(
                    "{:>8} songs{}: {} postings, built in {:.1} s, index memory {}, RSS {}; hits/landmark {}: 10 s query matching median {:.2} ms, p95 {:.2} ms ({} postings hit); correct {}/{}, false positives {}/{}",
                    report.songs,
                    if report.added_songs > 0 {
                        format!(" ({} added since the last merge)", report.added_songs)
                    } else {
                        String::new()
                    },
                    report.postings,
                    report.build_secs,
                    bytes(report.index_memory_bytes as u64),
                    bytes(report.rss_bytes),
                    budget_label(report.hits_per_landmark),
                    report.match_10s_ms.0,
                    report.match_10s_ms.1,
                    report.median_hits,
                    report.correct.0,
                    report.correct.1,
                    report.false_positives.0,
                    report.false_positives.1
                )?;
                for answer in &report.false_positive_answers {
                    let song = usize::try_from(answer.song_id)
                        .ok()
                        .and_then(|i| real_ids.get(i))
                        .map_or_else(
                            || format!("generated song {}", answer.song_id),
                            Clone::clone,
                        );
                    outln!(
                        "          false positive: {} -> {song} (confidence {:.2})",
                        negative_clips.get(answer.clip).copied().unwrap_or("?"),
                        answer.confidence
                    )?;
                }
            }
            reports.push(report);
        }
    }
    if args.json {
        print_json(&reports)?;
    }
    Ok(EXIT_OK)
}

fn print_listening(report: &ListeningReport) -> std::io::Result<()> {
    outln!()?;
    outln!(
        "listening ({:.0} s sessions, clean and with white noise at {:.0} dB SNR; attempts every {:.0} s from {:.0} s):",
        report.session_secs,
        report.noise_snr_db,
        listening::ATTEMPT_EVERY_SECS,
        listening::FIRST_ATTEMPT_SECS
    )?;
    let rows = [
        (
            format!(
                "as the app answers (early only at {:.2}, at the threshold at the end)",
                listening::EARLY_ANSWER_CONFIDENCE
            ),
            &report.app,
        ),
        (
            "if every attempt answered at the threshold".to_string(),
            &report.every_attempt,
        ),
    ];
    for (how, figures) in rows {
        outln!("  {how}:")?;
        outln!(
            "    unindexed music: a song named in {}/{} sessions (+{} naming a song the track contains)",
            figures.false_matches,
            report.unindexed_sessions,
            figures.shared_audio_matches
        )?;
        outln!(
            "    indexed songs: right {}/{}, wrong {}; audio heard before the right answer: median {:.1} s, p95 {:.1} s",
            figures.right,
            report.indexed_sessions,
            figures.wrong,
            figures.secs_to_right_answer.0,
            figures.secs_to_right_answer.1
        )?;
    }
    Ok(())
}
