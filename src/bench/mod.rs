//! `audiofp bench`: accuracy, speed, size and memory on a corpus laid out like
//! `shared/corpus` (`refs/` + `manifest.jsonl`), and a `--scale` mode for large libraries.
//!
//! Everything is measured in one run so the figures are comparable: decode-only speed of the
//! reference files, indexing speed of the same files into a real SQLite file, index bytes per
//! hour, top-1 accuracy per distortion x clip length, false positives on clips of unindexed
//! songs, warm query latency (engine only) and cold latency (a fresh `audiofp identify`
//! process), peak RSS, and what the desktop app's *Listen* answers ([`listening`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::decode::{AudioSource, CutStreams, decode_mono};
use crate::engine::landmarks::Landmark;
use crate::engine::postings::InvertedIndex;
use crate::engine::verify::ClipEvidence;
use crate::engine::{self, Fingerprint, Peak, Side, matcher};
use crate::index::{OpenMode, StorageKind};
use crate::indexer;
use crate::library::{Identification, Library};

pub mod listening;
pub mod songs;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The corpus has no reference files to index.
    #[error("{}: no reference files", dir.display())]
    NoReferences {
        /// The corpus's `refs/` folder.
        dir: PathBuf,
    },
    /// A file of the corpus could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the manifest is not a manifest entry.
    #[error("{}: line {line}: {source}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        source: serde_json::Error,
    },
    /// Some reference files could not be indexed: the figures would not be of the corpus.
    #[error("some references failed: {}", .0.join("; "))]
    ReferencesFailed(Vec<String>),
    /// A `audiofp identify` process for the cold queries could not be started.
    #[error("starting {} for the cold queries: {source}", exe.display())]
    ColdQuery {
        /// The binary.
        exe: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A track of the listening sessions could not be decoded.
    #[error("{}: {source}", path.display())]
    Decode {
        /// The track.
        path: PathBuf,
        /// The error.
        source: engine::EngineError,
    },
    /// The library failed.
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
}

pub use listening::ListeningReport;
pub use songs::{CorpusSongs, GeneratedSongs, SyntheticSongs};

/// One line of `manifest.jsonl`.
#[derive(Clone, Debug, Deserialize)]
pub struct ManifestEntry {
    /// Clip path relative to the corpus root.
    pub query: String,
    /// Track id of the song the clip comes from; `None` for unindexed songs.
    pub truth: Option<String>,
    /// Where the clip starts in the song, seconds.
    pub offset_s: f64,
    /// Clip length, seconds.
    pub length_s: f64,
    /// Distortion name.
    pub distortion: String,
}

impl ManifestEntry {
    /// Whether the clip is one of the 10 s ones the latencies are measured on.
    fn is_ten_seconds(&self) -> bool {
        (self.length_s - 10.0).abs() < 0.5
    }
}

/// Outcome of one clip.
#[derive(Clone, Debug, Serialize)]
pub struct ClipResult {
    /// Clip path.
    pub query: String,
    /// Distortion.
    pub distortion: String,
    /// Length, seconds.
    pub length_s: f64,
    /// Expected track id.
    pub truth: Option<String>,
    /// Track id of the top match.
    pub answer: Option<String>,
    /// Confidence of the top match (or of the best rejected candidate).
    pub confidence: f64,
    /// Aligned count of the top (or best rejected) candidate.
    pub aligned: usize,
    /// Distinct aligned clip frames of that candidate.
    pub aligned_frames: usize,
    /// Seconds spanned by them.
    pub aligned_span_secs: f64,
    /// Hits of the clip in the top song at offsets near the answer's.
    pub song_hits: usize,
    /// Seconds of offsets they were counted over.
    pub background_secs: f64,
    /// Duration of the top song, seconds.
    pub song_secs: f64,
    /// Clip peaks on the top song's peaks at the offset.
    pub peaks_matched: usize,
    /// The same count at other offsets of the song (median).
    pub peaks_chance: f64,
    /// Clip peaks compared.
    pub clip_peaks: usize,
    /// Mean clip contrast at the song's peaks, dB.
    pub contrast_db: f64,
    /// The same at other offsets, dB.
    pub chance_contrast_db: f64,
    /// Standard errors between the two.
    pub contrast_z: f64,
    /// Song peaks read.
    pub song_peaks: usize,
    /// Aligned count of the second-best song.
    pub second_aligned: usize,
    /// The source check's score, when the song's audio was compared.
    pub source_score: Option<f64>,
    /// Query landmarks.
    pub query_landmarks: usize,
    /// Hits.
    pub hits: usize,
    /// Offset error of a correct answer, seconds.
    pub offset_error_s: Option<f64>,
    /// The other offsets the top match lists (its repeats), seconds.
    pub repeat_offsets_s: Vec<f64>,
    /// How well the clip fits at each of them (see [`crate::library::Repeat::fit`]).
    pub repeat_fit: Vec<f64>,
    /// For a correct answer, the smallest offset error among its repeats, seconds.
    pub repeat_offset_error_s: Option<f64>,
    /// Engine time for this clip (decode + analysis + match), ms.
    pub latency_ms: f64,
    /// An error, when the clip could not be analysed.
    pub error: Option<String>,
}

impl ClipResult {
    /// The result of `entry` before its answer is known: no answer, every figure 0.
    fn unanswered(entry: &ManifestEntry, latency_ms: f64) -> Self {
        Self {
            query: entry.query.clone(),
            distortion: entry.distortion.clone(),
            length_s: entry.length_s,
            truth: entry.truth.clone(),
            answer: None,
            confidence: 0.0,
            aligned: 0,
            aligned_frames: 0,
            aligned_span_secs: 0.0,
            second_aligned: 0,
            source_score: None,
            peaks_matched: 0,
            peaks_chance: 0.0,
            clip_peaks: 0,
            contrast_db: 0.0,
            chance_contrast_db: 0.0,
            contrast_z: 0.0,
            song_peaks: 0,
            song_hits: 0,
            background_secs: 0.0,
            song_secs: 0.0,
            query_landmarks: 0,
            hits: 0,
            offset_error_s: None,
            repeat_offsets_s: Vec::new(),
            repeat_fit: Vec::new(),
            repeat_offset_error_s: None,
            latency_ms,
            error: None,
        }
    }

    /// Fills in the library's answer to the clip of `entry`: the top match (and its offset
    /// error when it is the right song), or else the best rejected candidate.
    fn record(&mut self, identification: &Identification, entry: &ManifestEntry) {
        self.query_landmarks = identification.query_landmarks;
        self.hits = identification.hits;
        self.second_aligned = identification.matches.get(1).map_or(0, |m| m.aligned);
        if let Some(top) = identification.matches.first() {
            self.answer = Some(track_id(&top.song));
            self.describe(top);
            self.repeat_offsets_s = top.repeats.iter().map(|r| r.offset_secs).collect();
            self.repeat_fit = top.repeats.iter().map(|r| r.fit).collect();
            if self.answer == entry.truth {
                self.offset_error_s = Some((top.offset_secs - entry.offset_s).abs());
                self.repeat_offset_error_s = self
                    .repeat_offsets_s
                    .iter()
                    .map(|offset| (offset - entry.offset_s).abs())
                    .min_by(f64::total_cmp);
            }
        } else if let Some(best) = &identification.best_rejected {
            self.describe(best);
        }
    }

    /// Copies the figures of the candidate the clip is judged by (its top match, or the best
    /// rejected candidate when there is none).
    fn describe(&mut self, candidate: &crate::library::Match) {
        self.confidence = candidate.confidence;
        self.aligned = candidate.aligned;
        self.aligned_frames = candidate.aligned_frames;
        self.aligned_span_secs = candidate.aligned_span_secs;
        self.song_hits = candidate.song_hits;
        self.background_secs = candidate.background_secs;
        self.peaks_matched = candidate.peaks.matched;
        self.peaks_chance = candidate.peaks.chance;
        self.clip_peaks = candidate.peaks.clip_peaks;
        self.contrast_db = candidate.peaks.contrast_db;
        self.chance_contrast_db = candidate.peaks.chance_contrast_db;
        self.contrast_z = candidate.peaks.contrast_z;
        self.song_peaks = candidate.peaks.song_peaks;
        self.song_secs = candidate.song.duration_secs;
        self.source_score = candidate.source.map(|s| s.score);
    }
}

/// Everything `bench` measured on a corpus.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusReport {
    /// Reference files indexed.
    pub songs: usize,
    /// Hours of reference audio.
    pub hours: f64,
    /// Analysis threads.
    pub workers: usize,
    /// Decode-only speed, x realtime (all workers).
    pub decode_x_realtime: f64,
    /// Indexing speed, x realtime (all workers).
    pub index_x_realtime: f64,
    /// Indexing speed relative to decode-only (the median of the rounds).
    pub index_vs_decode: f64,
    /// Rounds of (decode-only, indexing) measured.
    pub speed_rounds: usize,
    /// Songs per minute per core while indexing.
    pub songs_per_min_per_core: f64,
    /// The instruction set the analysis's vector loops ran with ("AVX2" or "baseline").
    pub analysis_vectors: String,
    /// Whether a generated song's peaks, analysed with those loops, are the baseline's.
    pub vectors_match_baseline: bool,
    /// Bytes of the SQLite index (+WAL) per hour of audio.
    pub index_bytes_per_hour: f64,
    /// Peaks per second of audio stored.
    pub peaks_per_second: f64,
    /// Landmarks per second of audio held in memory.
    pub landmarks_per_second: f64,
    /// Accuracy per distortion then clip length: (correct, total).
    pub accuracy: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    /// Clips of unindexed songs that got a match / such clips.
    pub false_positives: (usize, usize),
    /// Unindexed tracks (`negrefs/`) that contain an indexed song's audio: each track, played
    /// whole as a query, matches that song. Only looked for when there are false positives.
    pub shared_audio: Vec<SharedAudio>,
    /// False positives that name one of the `shared_audio` songs.
    pub false_positives_in_shared_audio: usize,
    /// Wrong-song answers on positives.
    pub wrong_song: usize,
    /// Warm engine latency of 10 s clips (decode + analysis + match), ms: median, p95.
    pub warm_10s_ms: (f64, f64),
    /// Warm matching only (no decoding/analysis) for 10 s clips, ms: median, p95.
    pub warm_10s_match_ms: (f64, f64),
    /// Cold CLI latency (process start to answer), ms: median, p95, over this many runs.
    pub cold_cli_ms: Option<(f64, f64, usize)>,
    /// Peak resident memory of this process through indexing and the clips (before the
    /// listening sessions), bytes.
    pub peak_rss_bytes: u64,
    /// The listening sessions, when run.
    pub listening: Option<ListeningReport>,
    /// Per-clip results.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clips: Vec<ClipResult>,
}

/// An unindexed track that contains audio of an indexed song.
#[derive(Clone, Debug, Serialize)]
pub struct SharedAudio {
    /// The unindexed track's id (its file name in `negrefs/`).
    pub unindexed: String,
    /// The indexed song's track id.
    pub indexed: String,
    /// Where the unindexed track starts in the song, seconds.
    pub offset_s: f64,
    /// The match's confidence.
    pub confidence: f64,
}

/// Options of a corpus benchmark.
pub struct CorpusOptions {
    /// Corpus root.
    pub corpus: PathBuf,
    /// Analysis threads.
    pub workers: usize,
    /// Where to write the SQLite index (a temp dir if `None`).
    pub db_path: PathBuf,
    /// Path of this executable, for the cold CLI measurement (skipped if `None`).
    pub cli_exe: Option<PathBuf>,
    /// Cold CLI runs.
    pub cold_runs: usize,
    /// Only clips whose distortion is in this list (all if empty).
    pub only: Vec<String>,
    /// Keep at most this many clips (0 = all), for quick runs.
    pub limit: usize,
    /// Rounds of (decode-only pass, indexing run) whose speeds are compared; the median
    /// round is reported, so that a burst of load on a shared machine skews one round only.
    pub speed_rounds: usize,
    /// Run the listening sessions ([`listening`]).
    pub listening: bool,
}

/// Runs the corpus benchmark: indexing speed (decode-only and indexing rounds), the clips
/// through a warm library, cold CLI runs, then the listening sessions, in that order.
pub fn run_corpus(
    options: &CorpusOptions,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    mut progress: impl FnMut(&str),
) -> Result<CorpusReport, BenchError> {
    let corpus = Corpus::read(options)?;
    // 0. The wide vector loops must give the baseline's peaks (src/engine/simd.rs).
    let (vectors_match_baseline, _) = same_peaks_as_baseline(30.0);
    // 1-2. Decode-only speed of the reference files, and indexing them into a real SQLite
    // file, in alternating rounds.
    let indexed = index_in_rounds(options, &corpus, config, match_config, &mut progress)?;
    let library = &indexed.library;
    let stats = library.store().stats()?;
    // 3. Queries, warm engine.
    progress(&format!("identifying {} clips", corpus.manifest.len()));
    let mut warm = identify_clips(library, &options.corpus, &corpus.manifest);
    // 4. Cold CLI: a fresh process per query, 10 s clips.
    let cold_cli_ms = time_cold_cli(options, &corpus.manifest, &mut progress)?;
    let tally = ClipTally::of(&warm.clips);
    // 5. Listening sessions, and the indexed audio inside the unindexed tracks that explains
    // their matches (and the clips').
    let Listened {
        shared_audio,
        peak_rss,
        listening,
    } = listen(library, options, tally.false_positives.0 > 0, &mut progress)?;
    let false_positives_in_shared_audio =
        false_positives_in_shared_audio(&warm.clips, &shared_audio);
    let landmarks = library.inverted_index().posting_count();
    let hours = stats.total_secs / 3600.0;
    let (decode_secs, index_secs) = indexed.median_round;
    Ok(CorpusReport {
        songs: stats.songs as usize,
        hours,
        workers: options.workers,
        decode_x_realtime: indexed.audio_secs / decode_secs.max(1e-9),
        index_x_realtime: stats.total_secs / index_secs.max(1e-9),
        index_vs_decode: decode_secs / index_secs.max(1e-9),
        speed_rounds: indexed.rounds,
        songs_per_min_per_core: stats.songs as f64
            / (index_secs / 60.0)
            / options.workers.max(1) as f64,
        analysis_vectors: crate::engine::simd::instruction_set().to_string(),
        vectors_match_baseline,
        index_bytes_per_hour: stats.bytes_on_disk as f64 / hours.max(1e-9),
        peaks_per_second: stats.peaks as f64 / stats.total_secs.max(1e-9),
        landmarks_per_second: landmarks as f64 / stats.total_secs.max(1e-9),
        accuracy: tally.accuracy,
        false_positives: tally.false_positives,
        shared_audio,
        false_positives_in_shared_audio,
        wrong_song: tally.wrong_song,
        warm_10s_ms: median_p95(&mut warm.latency_10s_ms),
        warm_10s_match_ms: median_p95(&mut warm.match_10s_ms),
        cold_cli_ms,
        peak_rss_bytes: peak_rss,
        listening,
        clips: warm.clips,
    })
}

/// What a benchmark reads of a corpus: its reference files and the clips to query.
struct Corpus {
    /// The `refs/` folder.
    refs_dir: PathBuf,
    /// The reference files under it, sorted.
    ref_files: Vec<PathBuf>,
    /// The clips of `manifest.jsonl`, filtered by `--only` and thinned by `--limit`.
    manifest: Vec<ManifestEntry>,
}

impl Corpus {
    fn read(options: &CorpusOptions) -> Result<Self, BenchError> {
        let refs_dir = options.corpus.join("refs");
        let mut ref_files = indexer::collect_audio_files(std::slice::from_ref(&refs_dir)).files;
        ref_files.sort();
        if ref_files.is_empty() {
            return Err(BenchError::NoReferences { dir: refs_dir });
        }
        let mut manifest = read_manifest(&options.corpus.join("manifest.jsonl"))?;
        if !options.only.is_empty() {
            manifest.retain(|m| options.only.contains(&m.distortion));
        }
        if options.limit > 0 && manifest.len() > options.limit {
            let step = manifest.len() as f64 / options.limit as f64;
            manifest = (0..options.limit)
                .filter_map(|i| manifest.get((i as f64 * step) as usize).cloned())
                .collect();
        }
        Ok(Self {
            refs_dir,
            ref_files,
            manifest,
        })
    }
}

/// The entries of `manifest.jsonl`, blank lines passed over.
pub fn read_manifest(manifest_path: &Path) -> Result<Vec<ManifestEntry>, BenchError> {
    let manifest_text =
        std::fs::read_to_string(manifest_path).map_err(|source| BenchError::Read {
            path: manifest_path.to_path_buf(),
            source,
        })?;
    manifest_text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| BenchError::Manifest {
                path: manifest_path.to_path_buf(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// The library the speed rounds built, and their timings.
struct IndexedCorpus {
    /// The last round's library.
    library: Library,
    /// (decode-only seconds, indexing seconds) of the median round.
    median_round: (f64, f64),
    /// Rounds run.
    rounds: usize,
    /// Seconds of audio the (last) decode-only pass decoded.
    audio_secs: f64,
}

/// Alternates a decode-only pass over the reference files with indexing them into a new SQLite
/// file at `options.db_path`, `options.speed_rounds` times (at least once).
fn index_in_rounds(
    options: &CorpusOptions,
    corpus: &Corpus,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    progress: &mut impl FnMut(&str),
) -> Result<IndexedCorpus, BenchError> {
    let storage = StorageKind::Sqlite(options.db_path.clone());
    let mut rounds: Vec<(f64, f64)> = Vec::new();
    let mut audio_secs = 0.0;
    let mut built = None;
    for round in 0..options.speed_rounds.max(1) {
        progress(&format!(
            "round {}: decode-only pass over the reference files",
            round + 1
        ));
        let (decode_secs, decoded_secs) = decode_only(&corpus.ref_files, options.workers);
        audio_secs = decoded_secs;
        progress(&format!(
            "round {}: indexing the reference files",
            round + 1
        ));
        // Close the previous round's index before its file is replaced.
        drop(built.take());
        remove_database_files(&options.db_path);
        let mut library = Library::open(&storage, config, match_config, OpenMode::CreateIfMissing)?;
        let index_secs = index_references(&mut library, &corpus.ref_files, options.workers)?;
        rounds.push((decode_secs, index_secs));
        built = Some(library);
    }
    // At least one round ran (`speed_rounds.max(1)`), and each one that ran built a library.
    let Some(library) = built else {
        return Err(BenchError::NoReferences {
            dir: corpus.refs_dir.clone(),
        });
    };
    rounds.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
    Ok(IndexedCorpus {
        library,
        median_round: rounds[rounds.len() / 2],
        rounds: rounds.len(),
        audio_secs,
    })
}

/// Removes the SQLite database at `db_path`, its journal files and its saved index.
fn remove_database_files(db_path: &Path) {
    for suffix in ["", "-wal", "-shm", ".postings"] {
        let mut path = db_path.to_path_buf().into_os_string();
        path.push(suffix);
        std::fs::remove_file(&path).ok();
    }
}

/// Indexes every reference file into `library`; the seconds it took. Any failure fails the
/// benchmark: the figures would not be of the corpus.
fn index_references(
    library: &mut Library,
    ref_files: &[PathBuf],
    workers: usize,
) -> Result<f64, BenchError> {
    let started = Instant::now();
    let summary = indexer::index_files(
        library,
        ref_files.to_vec(),
        workers,
        indexer::KnownFailures::Retry,
        &CancelToken::new(),
        |_: &_| {},
    )?;
    let index_secs = started.elapsed().as_secs_f64();
    if !summary.failed.is_empty() {
        return Err(BenchError::ReferencesFailed(
            summary.failed.iter().map(|f| f.message.clone()).collect(),
        ));
    }
    Ok(index_secs)
}

/// Every clip's result through the warm library, with the latencies of the 10 s ones.
struct WarmQueries {
    /// One result per manifest entry, in its order.
    clips: Vec<ClipResult>,
    /// Engine time (decode + analysis + match) of each answered 10 s clip, ms.
    latency_10s_ms: Vec<f64>,
    /// Matching time of each answered 10 s clip, ms.
    match_10s_ms: Vec<f64>,
}

/// Identifies each clip of `manifest` (paths relative to `corpus_root`) with `library`.
fn identify_clips(
    library: &Library,
    corpus_root: &Path,
    manifest: &[ManifestEntry],
) -> WarmQueries {
    let mut warm = WarmQueries {
        clips: Vec::with_capacity(manifest.len()),
        latency_10s_ms: Vec::new(),
        match_10s_ms: Vec::new(),
    };
    for entry in manifest {
        let path = corpus_root.join(&entry.query);
        let started = Instant::now();
        let result = library.identify_file(&path, &CancelToken::new());
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut clip = ClipResult::unanswered(entry, latency_ms);
        match result {
            Ok(identification) => {
                if entry.is_ten_seconds() {
                    warm.latency_10s_ms.push(latency_ms);
                    warm.match_10s_ms.push(identification.match_ms);
                }
                clip.record(&identification, entry);
            }
            Err(err) => clip.error = Some(err.to_string()),
        }
        warm.clips.push(clip);
    }
    warm
}

/// Times `options.cold_runs` fresh `audiofp identify` processes on clean 10 s clips: median,
/// p95 and the runs that answered (`None` without a binary, runs or answers).
fn time_cold_cli(
    options: &CorpusOptions,
    manifest: &[ManifestEntry],
    progress: &mut impl FnMut(&str),
) -> Result<Option<(f64, f64, usize)>, BenchError> {
    let Some(exe) = options.cli_exe.as_ref().filter(|_| options.cold_runs > 0) else {
        return Ok(None);
    };
    progress("cold CLI queries");
    let ten_second: Vec<&ManifestEntry> = manifest
        .iter()
        .filter(|m| m.is_ten_seconds() && m.distortion == "clean")
        .take(options.cold_runs)
        .collect();
    let mut times = Vec::new();
    for entry in ten_second {
        let started = Instant::now();
        let status = std::process::Command::new(exe)
            .arg("--db")
            .arg(&options.db_path)
            .arg("identify")
            .arg(options.corpus.join(&entry.query))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|source| BenchError::ColdQuery {
                exe: exe.to_path_buf(),
                source,
            })?;
        if status.code().is_some_and(|c| c <= 1) {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok((!times.is_empty()).then(|| {
        let (median, p95) = median_p95(&mut times);
        (median, p95, times.len())
    }))
}

/// The clips' results counted: right answers per distortion and length, wrong songs, false
/// positives.
struct ClipTally {
    /// (correct, total) per distortion then clip length.
    accuracy: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    /// Clips of unindexed songs that got a match / such clips.
    false_positives: (usize, usize),
    /// Clips of indexed songs that named another song.
    wrong_song: usize,
}

impl ClipTally {
    fn of(clips: &[ClipResult]) -> Self {
        let mut tally = Self {
            accuracy: BTreeMap::new(),
            false_positives: (0, 0),
            wrong_song: 0,
        };
        for clip in clips {
            match &clip.truth {
                Some(truth) => {
                    let cell = tally
                        .accuracy
                        .entry(clip.distortion.clone())
                        .or_default()
                        .entry(format!("{}s", clip.length_s))
                        .or_insert((0, 0));
                    cell.1 += 1;
                    if clip.answer.as_ref() == Some(truth) {
                        cell.0 += 1;
                    } else if clip.answer.is_some() {
                        tally.wrong_song += 1;
                    }
                }
                None => {
                    tally.false_positives.1 += 1;
                    if clip.answer.is_some() {
                        tally.false_positives.0 += 1;
                    }
                }
            }
        }
        tally
    }
}

/// What [`listen`] found.
struct Listened {
    /// Unindexed tracks that contain an indexed song's audio.
    shared_audio: Vec<SharedAudio>,
    /// Peak RSS before the listening sessions, bytes.
    peak_rss: u64,
    /// The listening sessions' figures, when they ran.
    listening: Option<ListeningReport>,
}

/// Runs the listening sessions when `options.listening` asks for them, after reading the peak
/// RSS of indexing and the clips. The unindexed tracks are searched for indexed audio when a
/// clip of an unindexed song matched (`clips_matched_unindexed`), before the sessions, or else
/// when a session on an unindexed track did.
fn listen(
    library: &Library,
    options: &CorpusOptions,
    clips_matched_unindexed: bool,
    progress: &mut impl FnMut(&str),
) -> Result<Listened, BenchError> {
    let negrefs = options.corpus.join("negrefs");
    let mut shared_audio = if clips_matched_unindexed {
        look_for_shared_audio(library, &negrefs, progress)
    } else {
        Vec::new()
    };
    // The peak through indexing and the clips (and the search above, as in earlier rounds);
    // the listening sessions come after.
    let peak_rss = peak_rss_bytes();
    let sessions = if options.listening {
        progress("listening sessions");
        Some(listening::run(library, &options.corpus)?)
    } else {
        None
    };
    if shared_audio.is_empty() && an_unindexed_session_matched(sessions.as_deref()) {
        shared_audio = look_for_shared_audio(library, &negrefs, progress);
    }
    let listening = sessions.map(|sessions| listening::summarize(sessions, &shared_audio));
    Ok(Listened {
        shared_audio,
        peak_rss,
        listening,
    })
}

/// [`find_shared_audio`], said in the progress first.
fn look_for_shared_audio(
    library: &Library,
    negrefs: &Path,
    progress: &mut impl FnMut(&str),
) -> Vec<SharedAudio> {
    progress("looking for indexed audio inside the unindexed tracks");
    find_shared_audio(library, negrefs)
}

/// Whether a listening session on an unindexed track answered at every attempt.
fn an_unindexed_session_matched(sessions: Option<&[listening::Session]>) -> bool {
    sessions
        .into_iter()
        .flatten()
        .any(|s| s.truth.is_none() && s.answer_at_every_attempt.is_some())
}

/// The false positives among `clips` that name a song whose audio an unindexed track shares.
fn false_positives_in_shared_audio(clips: &[ClipResult], shared_audio: &[SharedAudio]) -> usize {
    clips
        .iter()
        .filter(|c| c.truth.is_none())
        .filter_map(|c| c.answer.as_ref())
        .filter(|answer| shared_audio.iter().any(|s| &s.indexed == *answer))
        .count()
}

/// Plays every unindexed track whole as a query: the indexed songs it matches share its audio
/// (the same recording in two packages, or a medley), so a clip of it naming that song is no
/// false match of the engine, whatever the corpus's ground truth says.
fn find_shared_audio(library: &Library, negrefs: &Path) -> Vec<SharedAudio> {
    let Ok(entries) = std::fs::read_dir(negrefs) else {
        return Vec::new();
    };
    let mut tracks: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    tracks.sort();
    let mut shared = Vec::new();
    for track in tracks {
        let Ok(identification) = library.identify_file(&track, &CancelToken::new()) else {
            continue;
        };
        let unindexed = track
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        for found in &identification.matches {
            shared.push(SharedAudio {
                unindexed: unindexed.clone(),
                indexed: track_id(&found.song),
                offset_s: found.offset_secs,
                confidence: found.confidence,
            });
        }
    }
    shared
}

/// The track id of a corpus song: its file stem.
fn track_id(song: &crate::index::SongRecord) -> String {
    song.path
        .as_deref()
        .map(crate::paths::from_stored)
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .unwrap_or_else(|| song.title.clone())
}

/// Fingerprints `secs` of a generated song both ways, with the analysis's wide vector loops
/// and on the baseline ([`crate::engine::simd`]); whether the peaks are the same, and how many
/// there are.
pub fn same_peaks_as_baseline(secs: f32) -> (bool, usize) {
    let config = FingerprintConfig::default();
    let match_config = MatchConfig::default();
    let rate = 44_100;
    let song = crate::testkit::synth::song(11, secs, rate);
    let analyse = || {
        engine::fingerprint_samples(&song, rate, &config, &match_config, Side::Reference)
            .map(|fingerprint| fingerprint.peaks)
            .unwrap_or_default()
    };
    let wide = analyse();
    let baseline = engine::simd::on_baseline(analyse);
    (wide == baseline && !wide.is_empty(), wide.len())
}

/// Seconds taken to decode `files` on `workers` threads, and seconds of audio decoded (a file
/// that fails to decode counts for what decoded of it: indexing fails it too).
fn decode_only(files: &[PathBuf], workers: usize) -> (f64, f64) {
    // In the order indexing takes them, so that both passes schedule the same work.
    let files = indexer::largest_first_on_disk(files);
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let total_secs = std::sync::Mutex::new(0.0f64);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let mut sink = 0.0f32;
                    if let Ok(summary) = decode_mono(
                        AudioSource::File(path),
                        CutStreams::Refuse,
                        &CancelToken::new(),
                        |chunk, _| {
                            sink += chunk.first().copied().unwrap_or(0.0);
                            Ok(())
                        },
                    ) && let Ok(mut total) = total_secs.lock()
                    {
                        *total += summary.duration_secs();
                    }
                    std::hint::black_box(sink);
                }
            });
        }
    });
    let audio = total_secs.into_inner().unwrap_or(0.0);
    (started.elapsed().as_secs_f64(), audio)
}

/// Median and 95th percentile (nearest rank) of `values`, (0, 0) when empty.
pub fn median_p95(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at =
        |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
    (at(0.5), at(0.95))
}

/// Peak resident set size of this process (Linux `VmHWM`), bytes; 0 elsewhere.
pub fn peak_rss_bytes() -> u64 {
    read_status_kb("VmHWM:") * 1024
}

/// Current resident set size (Linux `VmRSS`), bytes; 0 elsewhere.
pub fn current_rss_bytes() -> u64 {
    read_status_kb("VmRSS:") * 1024
}

fn read_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Figures of a `--scale` run.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleReport {
    /// Songs in the index (generated + real).
    pub songs: usize,
    /// Postings held.
    pub postings: usize,
    /// Seconds to build the inverted index.
    pub build_secs: f64,
    /// Memory held by the inverted index, bytes.
    pub index_memory_bytes: usize,
    /// Process RSS after building, bytes.
    pub rss_bytes: u64,
    /// The query's postings budget per landmark in this run (0 = unlimited).
    pub hits_per_landmark: usize,
    /// Matching latency of 10 s queries, ms: median, p95.
    pub match_10s_ms: (f64, f64),
    /// Queries answered with the right song / queries.
    pub correct: (usize, usize),
    /// Clips of unindexed songs answered with some song / such clips.
    pub false_positives: (usize, usize),
    /// What those clips were answered with.
    pub false_positive_answers: Vec<ScaleFalsePositive>,
    /// Median postings hit per 10 s query.
    pub median_hits: usize,
    /// Generated songs added one by one after the build: postings in the side list.
    pub added_songs: usize,
}

/// A real song for the scale run: its peaks, its frame count, and the peaks of clips of it.
pub type RealSong = (Vec<Peak>, u32, Vec<Fingerprint>);

/// How a scale run generates its songs and queries the index.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    /// Generated songs in the index (besides the real ones).
    pub songs: usize,
    /// How they are generated.
    pub generated: GeneratedSongs,
    /// Postings budgets to query with (`HITS_PER_LANDMARK`, 0 = no limit), one report each.
    pub budgets: Vec<usize>,
    /// Rounds over all the queries; a query's time is its median over the rounds, so that a
    /// burst of load on the machine skews one round only.
    pub query_rounds: usize,
    /// How many of the generated songs are added one by one once the rest is built, as a
    /// library that grew since its postings were last merged: theirs wait in the side list.
    /// Adding more than a quarter of what was built merges them in.
    pub added_songs: usize,
}

/// Builds an index of generated fingerprints (plus `real` songs' peaks, whose 10 s excerpts
/// are then queried, as are the `negatives`: peaks of clips of unindexed songs) and measures
/// matching latency, accuracy and memory, once per postings budget.
pub fn run_scale(
    options: &ScaleOptions,
    real: &[RealSong],
    negatives: &[Fingerprint],
    config: &FingerprintConfig,
    match_config: &MatchConfig,
) -> Vec<ScaleReport> {
    let songs = options.songs;
    let generator = &options.generated;
    let rule = engine::pairing_rule(config, match_config, Side::Reference);
    let started = Instant::now();
    let added = options.added_songs.min(songs);
    let built = songs - added;
    let index = InvertedIndex::build(config.frame_secs(), rule, |visit| {
        let mut peaks = Vec::new();
        for (i, (real_peaks, frames, _)) in real.iter().enumerate() {
            visit(i as i64, *frames, real_peaks);
        }
        for song in 0..built {
            generator.peaks(song, &mut peaks);
            visit(
                (real.len() + song) as i64,
                generator.frames_per_song(),
                &peaks,
            );
        }
    })
    .and_then(|mut index| {
        let mut peaks = Vec::new();
        for song in built..songs {
            generator.peaks(song, &mut peaks);
            let id = (real.len() + song) as i64;
            index.add_song(id, generator.frames_per_song(), &peaks)?;
        }
        index.prepare();
        Ok(index)
    });
    let build_secs = started.elapsed().as_secs_f64();
    let Ok(index) = index else {
        return Vec::new();
    };
    options
        .budgets
        .iter()
        .map(|&hits_per_landmark| {
            let match_config = MatchConfig {
                hits_per_landmark,
                ..match_config.clone()
            };
            let rounds = options.query_rounds;
            let report = query_scale_index(&index, real, negatives, config, &match_config, rounds);
            ScaleReport {
                songs: songs + real.len(),
                build_secs,
                added_songs: added,
                ..report
            }
        })
        .collect()
}

/// A clip of an unindexed song that a scale index answered with a song.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleFalsePositive {
    /// Which of the negatives it was (their order as given).
    pub clip: usize,
    /// The song named: a real song's index in the given list, or a generated song's id.
    pub song_id: i64,
    /// The answer's confidence.
    pub confidence: f64,
}

/// Queries the real songs' clips and the negatives against a scale index, `rounds` times over;
/// answers are judged on the first round, times are each query's median over the rounds.
fn query_scale_index(
    index: &InvertedIndex,
    real: &[RealSong],
    negatives: &[Fingerprint],
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    rounds: usize,
) -> ScaleReport {
    let opening_frames = (matcher::EARLY_ANSWER_SECS * config.frames_per_second()) as u32;
    let landmarks_of =
        |query: &Fingerprint| engine::landmarks_of(&query.peaks, config, match_config, Side::Query);
    // Every query in order, with its landmarks (made once, not timed): the real songs' clips
    // (with the song they come from), then the negatives (with none).
    let all: Vec<(&Fingerprint, Vec<Landmark>, Option<i64>)> = real
        .iter()
        .enumerate()
        .flat_map(|(i, (_, _, clips))| clips.iter().map(move |q| (q, Some(i as i64))))
        .chain(negatives.iter().map(|q| (q, None)))
        .map(|(query, truth)| (query, landmarks_of(query), truth))
        .collect();
    let run_query = |query: &Fingerprint, landmarks: &[Landmark]| {
        let started = Instant::now();
        let clip = ClipEvidence {
            peaks: &query.peaks,
            contrast: query.contrast.as_ref(),
        };
        let outcome = matcher::score_early(index, landmarks, clip, match_config, opening_frames);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        (ms, outcome)
    };
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); all.len()];
    let mut hit_counts = Vec::new();
    let mut correct = (0, 0);
    let mut false_positives = (0, 0);
    let mut false_positive_answers = Vec::new();
    for round in 0..rounds.max(1) {
        for (n, (query, landmarks, truth)) in all.iter().enumerate() {
            let (ms, outcome) = run_query(query, landmarks);
            times[n].push(ms);
            if round > 0 {
                continue;
            }
            hit_counts.push(outcome.hits);
            let answer = outcome.matches.first().map(|m| (m.song_id, m.confidence));
            match *truth {
                Some(song) => {
                    correct.1 += 1;
                    if answer.is_some_and(|(song_id, _)| song_id == song) {
                        correct.0 += 1;
                    }
                }
                None => {
                    false_positives.1 += 1;
                    if let Some((song_id, confidence)) = answer {
                        false_positives.0 += 1;
                        false_positive_answers.push(ScaleFalsePositive {
                            clip: n - (all.len() - negatives.len()),
                            song_id,
                            confidence,
                        });
                    }
                }
            }
        }
    }
    let mut times: Vec<f64> = times
        .iter_mut()
        .map(|per_round| median_p95(per_round).0)
        .collect();
    ScaleReport {
        songs: real.len(),
        postings: index.posting_count(),
        build_secs: 0.0,
        hits_per_landmark: match_config.hits_per_landmark,
        index_memory_bytes: index.memory_bytes(),
        rss_bytes: current_rss_bytes(),
        match_10s_ms: median_p95(&mut times),
        correct,
        false_positives,
        false_positive_answers,
        median_hits: {
            hit_counts.sort_unstable();
            hit_counts.get(hit_counts.len() / 2).copied().unwrap_or(0)
        },
        added_songs: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_check_finds_the_same_peaks() {
        let (same, peaks) = same_peaks_as_baseline(6.0);
        assert!(same && peaks > 30, "{peaks} peaks, same: {same}");
    }
}
