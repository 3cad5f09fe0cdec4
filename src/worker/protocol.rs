//! The messages between the GUI (or a test) and the [worker](super): the only types that
//! cross threads.
//!
//! ```text
//! GUI --Request--> worker (owns the Library)  --Event--> GUI
//!                    ^
//! capture thread ----+ AudioChunk (while a Listen request runs)
//! ```
//!
//! Every long request carries a [`JobId`] chosen by the sender and a [`CancelToken`] the
//! sender keeps a clone of; events about that job repeat the id, so a GUI can ignore events of
//! jobs it no longer shows.

use std::path::PathBuf;

use crossbeam_channel::Receiver;

use crate::cancel::CancelToken;
use crate::engine::Peak;
use crate::index::SongRecord;
use crate::indexer::IndexSummary;
#[cfg(doc)]
use crate::library::LONG_RECORDING_SECS;
use crate::library::{Identification, MatchEvidence, SharedAudioRelation, Tracklist};

/// Identifies one request's work in the events it produces.
pub type JobId = u64;

/// Mono samples from a capture device (or a test), in arrival order.
#[derive(Clone, Debug)]
pub struct AudioChunk {
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Their sample rate.
    pub sample_rate_hz: u32,
}

/// GUI → worker. Sent over an unbounded channel: sending never blocks.
#[derive(Debug)]
pub enum Request {
    /// Send the whole song list again ([`Event::Library`]).
    RefreshLibrary,
    /// Index files and folders (folders are searched recursively).
    IndexPaths {
        /// The job.
        job: JobId,
        /// Files and folders.
        paths: Vec<PathBuf>,
        /// Stops the run between packets and files.
        cancel: CancelToken,
    },
    /// Identify an audio file.
    IdentifyFile {
        /// The job.
        job: JobId,
        /// The clip.
        path: PathBuf,
        /// Stops decoding.
        cancel: CancelToken,
    },
    /// Identify mono samples held in memory.
    IdentifyClip {
        /// The job.
        job: JobId,
        /// Mono samples.
        samples: Vec<f32>,
        /// Their sample rate.
        sample_rate_hz: u32,
        /// What to call the clip in results ("microphone", a file name).
        label: String,
    },
    /// Identify what `chunks` delivers, repeatedly (every ~1 s of new audio) on the growing
    /// recording, until a confident match, `timeout_secs` of audio without one, cancellation,
    /// or the sender of `chunks` going away.
    Listen {
        /// The job.
        job: JobId,
        /// The audio, e.g. from [`crate::capture`].
        chunks: Receiver<AudioChunk>,
        /// Give up after this much audio without a confident match.
        timeout_secs: f64,
        /// Stops listening.
        cancel: CancelToken,
    },
    /// Remove a song from the index.
    Remove {
        /// The song.
        song_id: i64,
    },
    /// Load a song's spectrogram and peaks ([`Event::SongDetail`]).
    LoadSongDetail {
        /// The song.
        song_id: i64,
        /// When given, the song must still have this content: an answer naming `song_id` may
        /// come from another index or from before the song was removed. Otherwise the song
        /// counts as gone.
        content_hash: Option<String>,
    },
    /// Change the confidence a match needs (0..1).
    SetMatchThreshold {
        /// The new threshold.
        threshold: f64,
    },
    /// Cancel a job, queued or running (same as cancelling its token).
    Cancel {
        /// The job.
        job: JobId,
    },
}

/// One row of the library list.
#[derive(Clone, Debug, PartialEq)]
pub struct SongRow {
    /// Song id in the index.
    pub song_id: i64,
    /// Title.
    pub title: String,
    /// Artist, empty when unknown.
    pub artist: String,
    /// Album, empty when unknown.
    pub album: String,
    /// Length in seconds.
    pub duration_secs: f64,
    /// When it was indexed, seconds since the Unix epoch.
    pub added_at_unix_secs: i64,
    /// Where the file was when indexed.
    pub path: Option<String>,
}

impl From<&SongRecord> for SongRow {
    fn from(record: &SongRecord) -> Self {
        Self {
            song_id: record.id,
            title: record.title.clone(),
            artist: record.artist.clone().unwrap_or_default(),
            album: record.album.clone().unwrap_or_default(),
            duration_secs: record.duration_secs,
            added_at_unix_secs: record.added_at,
            path: record.path.as_deref().map(crate::paths::display_stored),
        }
    }
}

/// An identification with what the match plots need.
#[derive(Clone, Debug)]
pub struct MatchReport {
    /// The job.
    pub job: JobId,
    /// What was identified: a file name or "microphone".
    pub label: String,
    /// Matches (best first) and timings.
    pub identification: Identification,
    /// The hits of the clip in the best (or best rejected) song.
    pub evidence: MatchEvidence,
    /// Histogram of (song time − clip time) over those hits: (offset seconds, count), sorted.
    pub offset_histogram: Vec<(f64, u32)>,
    /// Wall time from request to answer, milliseconds (includes decoding).
    pub elapsed_ms: f64,
    /// Seconds of audio that were analysed.
    pub clip_secs: f64,
    /// When it finished, seconds since the Unix epoch.
    pub finished_at_unix_secs: i64,
    /// The songs of a long recording (a file of [`LONG_RECORDING_SECS`] or more), when and
    /// from where (see [`crate::library::Library::tracklist`]).
    pub tracklist: Option<Tracklist>,
}

impl MatchReport {
    /// Whether the clip was identified with confidence.
    pub fn found(&self) -> bool {
        self.identification.found()
    }
}

/// A song's picture: the spectrogram as image tiles and the fingerprint peaks.
#[derive(Clone, Debug)]
pub struct SongDetail {
    /// The song.
    pub song: SongRow,
    /// BLAKE3 of the song's file: tells it from another song given the same id elsewhere.
    pub content_hash: String,
    /// Spectrogram tiles, left to right, each at most [`SPECTROGRAM_TILE_FRAMES`] frames wide
    /// and `band_bins` tall (row 0 = highest frequency). Empty when the file is missing.
    pub tiles: Vec<egui::ColorImage>,
    /// Frames per tile (the last one may be narrower).
    pub tile_frames: usize,
    /// Total frames of the spectrogram.
    pub num_frames: usize,
    /// The stored peaks (band-relative bins).
    pub peaks: Vec<Peak>,
    /// Seconds per spectrogram column (analysis frames, pooled for long songs).
    pub frame_secs: f64,
    /// Seconds per analysis frame (the peaks' time unit).
    pub peak_frame_secs: f64,
    /// Hz of band bin 0.
    pub band_start_hz: f64,
    /// Hz per bin.
    pub bin_hz: f64,
    /// Bins in the analysis band.
    pub band_bins: usize,
    /// Why there is no spectrogram (file moved or unreadable), if so.
    pub note: Option<String>,
    /// Other songs of the library that share this song's audio, by id.
    pub shared_audio: Vec<SharedAudioLink>,
}

/// Another song that shares a song's audio ([`crate::library::Library::shared_audio_of`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedAudioLink {
    /// The other song.
    pub song_id: i64,
    /// Its title.
    pub title: String,
    /// How the two share audio.
    pub relation: SharedAudioRelation,
}

/// Frames per spectrogram tile (a texture's width).
pub const SPECTROGRAM_TILE_FRAMES: usize = 2048;

/// How a listening session ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ListenOutcome {
    /// A confident match; the report was sent as [`Event::Matches`] just before.
    Matched,
    /// No confident match in the time allowed.
    NoMatch {
        /// Audio heard, seconds.
        heard_secs: f64,
    },
    /// The audio source delivered nothing.
    NoAudio,
    /// The audio source delivered only silence (a muted or unplugged microphone).
    OnlySilence {
        /// Audio heard, seconds.
        heard_secs: f64,
    },
    /// Cancelled by the user.
    Cancelled,
    /// The audio source stopped before a result (device gone).
    SourceEnded {
        /// Audio heard, seconds.
        heard_secs: f64,
    },
}

/// Worker → GUI.
#[derive(Clone, Debug)]
pub enum Event {
    /// The index is open.
    Opened {
        /// Where it lives.
        location: String,
        /// Songs in it.
        songs: usize,
    },
    /// The index could not be opened; every later request fails with this reason.
    OpenFailed {
        /// Why.
        reason: String,
    },
    /// The whole song list, by id.
    Library {
        /// The songs.
        rows: Vec<SongRow>,
    },
    /// An indexing job has its work list.
    IndexStarted {
        /// The job.
        job: JobId,
        /// Files to look at.
        total: usize,
    },
    /// Indexing progress (at most ~10 per second, plus one at the end).
    Progress {
        /// The job.
        job: JobId,
        /// Files done (indexed, skipped or failed).
        done: usize,
        /// Files in the job.
        total: usize,
        /// Songs stored so far.
        indexed: usize,
        /// Files skipped (unchanged or duplicate).
        skipped: usize,
        /// Files that failed.
        failed: usize,
        /// The file finished last.
        current: Option<PathBuf>,
    },
    /// Songs stored since the last such event.
    Indexed {
        /// The job.
        job: JobId,
        /// The new rows.
        rows: Vec<SongRow>,
    },
    /// A file could not be indexed (the job goes on).
    Failed {
        /// The job.
        job: JobId,
        /// The file.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// An indexing job ended (also when cancelled).
    IndexFinished {
        /// The job.
        job: JobId,
        /// Totals.
        summary: IndexSummary,
    },
    /// An identification result (also "no match": look at [`MatchReport::found`]).
    Matches(Box<MatchReport>),
    /// An identification could not run (unreadable file, too short, silent).
    IdentifyFailed {
        /// The job.
        job: JobId,
        /// Why, in words.
        reason: String,
    },
    /// An identification was cancelled (the app asked for another, or for none) before it
    /// answered.
    IdentifyCancelled {
        /// The job.
        job: JobId,
    },
    /// A listening session tried again.
    ListenProgress {
        /// The job.
        job: JobId,
        /// Audio heard so far, seconds.
        heard_secs: f64,
        /// Identification attempts so far.
        attempts: usize,
        /// Best candidate so far, not conclusive yet (see [`crate::listening`]), and its
        /// confidence.
        best_guess: Option<(String, f64)>,
    },
    /// A listening session ended.
    ListenFinished {
        /// The job.
        job: JobId,
        /// How.
        outcome: ListenOutcome,
    },
    /// A song was removed.
    Removed {
        /// The song.
        song_id: i64,
    },
    /// An indexing run found files changed since they were indexed and removed the songs of
    /// their earlier versions (the new versions come as [`Event::Indexed`] rows).
    Superseded {
        /// The job.
        job: JobId,
        /// The songs removed.
        song_ids: Vec<i64>,
    },
    /// A song's spectrogram and peaks.
    SongDetail(Box<SongDetail>),
    /// A song's detail could not be loaded.
    SongDetailFailed {
        /// The song.
        song_id: i64,
        /// Why.
        reason: String,
        /// Whether the song is no longer in the library (removed meanwhile, e.g. by another
        /// process).
        gone: bool,
    },
    /// Something failed that belongs to no job (remove, detail).
    Error {
        /// What was being done.
        context: String,
        /// Why it failed.
        reason: String,
    },
}
