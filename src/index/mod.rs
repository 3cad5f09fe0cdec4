//! The fingerprint store: songs and their peaks, behind one [`Store`] trait.
//!
//! - [`sqlite::SqliteStore`]: the default and the store of record (one file, WAL, one
//!   transaction per song, append-only migrations, refuses foreign or newer files).
//! - [`memory::MemoryStore`]: the same contract in memory, for tests and benchmarks
//!   (`STORAGE_TYPE=memory`).
//!
//! The store keeps peaks, not hashes: the search structure ([`crate::engine::postings`]) is
//! derived from them when a library is opened.

pub mod codec;
pub mod error;
pub mod export;
pub mod memory;
pub mod sqlite;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use error::IndexError;

use crate::config::FingerprintConfig;
use crate::engine::{Fingerprint, Peak};

/// Refuses a song the in-memory index cannot hold: one of
/// [`MAX_SONG_FRAMES`](crate::engine::postings::MAX_SONG_FRAMES) frames or more (about 74
/// hours at the default analysis), or with a peak that far in. Both stores check it before
/// writing anything, and import checks every song of an export before the first is added, so
/// no such song is ever stored.
pub fn check_song_fits(
    num_frames: u32,
    peaks: &[Peak],
    config: &FingerprintConfig,
) -> Result<(), IndexError> {
    use crate::engine::postings::MAX_SONG_FRAMES;
    let last_frame = peaks.iter().map(|p| p.frame).max().unwrap_or(0);
    let frames = num_frames.max(last_frame.saturating_add(1));
    if frames < MAX_SONG_FRAMES {
        return Ok(());
    }
    let hours = |frames: u32| f64::from(frames) * config.frame_secs() / 3600.0;
    Err(IndexError::SongTooLong {
        hours: hours(frames),
        max_hours: hours(MAX_SONG_FRAMES),
    })
}

/// What the inverted index saved beside an SQLite database adds to its name
/// (`index.db.postings`): a cache of the library's search structure, never the store of record.
pub const SAVED_INDEX_SUFFIX: &str = ".postings";

/// Metadata of a song about to be stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewSong {
    /// Title (from tags, else the file name).
    pub title: String,
    /// Artist, when known.
    pub artist: Option<String>,
    /// Album, when known.
    pub album: Option<String>,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Where the file was when indexed.
    pub path: Option<String>,
    /// File size in bytes (with `file_mtime`, lets a re-run skip unchanged files unread).
    pub file_size: Option<u64>,
    /// File modification time, seconds since the epoch.
    pub file_mtime: Option<i64>,
    /// BLAKE3 of the file's bytes (hex): the same content is indexed once.
    pub content_hash: String,
    /// When the song was first indexed (kept by import); `None` means now.
    pub added_at: Option<i64>,
}

/// A stored song.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SongRecord {
    /// Song id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Duration in seconds (`duration_seconds` in JSON, like every other span of time the CLI
    /// and the API write; exports before version 3 named it `duration_secs`).
    #[serde(rename = "duration_seconds", alias = "duration_secs")]
    pub duration_secs: f64,
    /// Path at indexing time.
    pub path: Option<String>,
    /// File size at indexing time.
    pub file_size: Option<u64>,
    /// File mtime at indexing time.
    pub file_mtime: Option<i64>,
    /// BLAKE3 of the file (hex).
    pub content_hash: String,
    /// When it was indexed, seconds since the epoch.
    pub added_at: i64,
    /// STFT frames analysed.
    pub num_frames: u32,
    /// Peaks stored.
    pub num_peaks: u32,
}

impl SongRecord {
    /// The record of `song`, stored under `id` at `added_at` with `fingerprint`.
    pub fn stored(id: i64, song: &NewSong, fingerprint: &Fingerprint, added_at: i64) -> Self {
        Self {
            id,
            title: song.title.clone(),
            artist: song.artist.clone(),
            album: song.album.clone(),
            duration_secs: song.duration_secs,
            path: song.path.clone(),
            file_size: song.file_size,
            file_mtime: song.file_mtime,
            content_hash: song.content_hash.clone(),
            added_at,
            num_frames: fingerprint.num_frames,
            num_peaks: fingerprint.peaks.len() as u32,
        }
    }
}

/// Totals for `audiofp stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Songs stored.
    pub songs: u64,
    /// Total audio, seconds.
    pub total_secs: f64,
    /// Peaks stored.
    pub peaks: u64,
    /// Bytes on disk (database + WAL), 0 for memory.
    pub bytes_on_disk: u64,
}

/// A file that could not be indexed, remembered so that the next run does not decode it
/// again while it is unchanged (same path, size and modification time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileFailure {
    /// The file's path.
    pub path: String,
    /// Its size in bytes when it failed.
    pub file_size: u64,
    /// Its modification time (Unix seconds) when it failed.
    pub file_mtime: i64,
    /// The error's stable code (as in `--json` output).
    pub code: String,
    /// The error's message.
    pub message: String,
    /// When it failed (Unix seconds).
    pub failed_at: i64,
    /// The audiofp version it failed with: another version may decode it.
    pub audiofp_version: String,
}

/// A fingerprint store.
pub trait Store: Send {
    /// "sqlite" or "memory".
    fn kind(&self) -> &'static str;
    /// Where the store lives ("(memory)" for the memory store).
    fn location(&self) -> PathBuf;
    /// The fingerprint parameters the store was created with.
    fn fingerprint_config(&self) -> &FingerprintConfig;
    /// Stores a song and its peaks atomically: afterwards it is there whole, or not at all.
    fn add_song(
        &mut self,
        song: &NewSong,
        fingerprint: &Fingerprint,
    ) -> Result<SongRecord, IndexError>;
    /// Removes a song; `false` if there was none with that id.
    fn remove_song(&mut self, song_id: i64) -> Result<bool, IndexError>;
    /// One song.
    fn song(&self, song_id: i64) -> Result<Option<SongRecord>, IndexError>;
    /// All songs, by id.
    fn songs(&self) -> Result<Vec<SongRecord>, IndexError>;
    /// The song with this content hash.
    fn find_by_content_hash(&self, content_hash: &str) -> Result<Option<SongRecord>, IndexError>;
    /// The songs indexed from this path, whatever its size and mtime were then.
    fn find_by_path(&self, path: &str) -> Result<Vec<SongRecord>, IndexError>;
    /// The song indexed from this path with this size and mtime.
    fn find_by_file(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<Option<SongRecord>, IndexError>;
    /// Points a song at the file it is now found in (moved, renamed, or touched without a
    /// change of content); `false` if there is no song with that id.
    fn relink_song(
        &mut self,
        song_id: i64,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<bool, IndexError>;
    /// Remembers that a file could not be indexed (replacing what was remembered for its path).
    fn record_failure(&mut self, failure: &FileFailure) -> Result<(), IndexError>;
    /// Every remembered failure (there are few: one per bad file given to `index`).
    fn failures(&self) -> Result<Vec<FileFailure>, IndexError>;
    /// Forgets the failure remembered for the file at `path`, if any.
    fn forget_failure(&mut self, path: &str) -> Result<(), IndexError>;
    /// A song's peaks.
    fn peaks(&self, song_id: i64) -> Result<Option<Vec<Peak>>, IndexError>;
    /// Visits every song with its peaks, by id.
    fn for_each_fingerprint(
        &self,
        visit: &mut dyn FnMut(&SongRecord, Vec<Peak>),
    ) -> Result<(), IndexError>;
    /// Totals.
    fn stats(&self) -> Result<StoreStats, IndexError>;
    /// Runs `read` on one consistent snapshot of the store: songs committed by other processes
    /// meanwhile are not seen half-way (two passes over the fingerprints agree).
    fn with_snapshot(&self, read: &mut dyn FnMut()) -> Result<(), IndexError> {
        read();
        Ok(())
    }
    /// Makes everything written so far compact on disk (folds the WAL into the database).
    fn flush(&mut self) -> Result<(), IndexError> {
        Ok(())
    }
    /// Whether another process has written to the store since the last call (the first
    /// call: since it was opened). A store no other process can reach says `false`.
    fn changed_elsewhere(&self) -> Result<bool, IndexError> {
        Ok(false)
    }
}

/// A digest of a library holding `songs` (in id order): every song's id, content hash,
/// frames and peak count. It changes whenever a song is added, removed or replaced, so it
/// tells whether data derived from the store (the saved inverted index) is still current.
pub fn content_stamp_of(songs: &[SongRecord]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for song in songs {
        hash_song(&mut hasher, song);
    }
    *hasher.finalize().as_bytes()
}

/// One song's identity in a saved inverted index: its id, content and fingerprint size. Ids
/// can be given again after a removal; the identity tells the new song from the old one.
pub fn song_identity(song: &SongRecord) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hash_song(&mut hasher, song);
    let mut identity = [0u8; 8];
    identity.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(identity)
}

/// What tells one stored song from another for the saved index: id, content and
/// fingerprint size.
fn hash_song(hasher: &mut blake3::Hasher, song: &SongRecord) {
    hasher.update(&song.id.to_le_bytes());
    hasher.update(song.content_hash.as_bytes());
    hasher.update(&song.num_frames.to_le_bytes());
    hasher.update(&song.num_peaks.to_le_bytes());
}

/// Which store to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// Memory only.
    Memory,
}

/// Whether opening may create a new index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the index if there is none (indexing, import).
    CreateIfMissing,
    /// The index must exist (identify, list, ...).
    MustExist,
}

/// Opens (or creates) a store.
pub fn open_store(
    kind: &StorageKind,
    config: &FingerprintConfig,
    mode: OpenMode,
) -> Result<Box<dyn Store>, IndexError> {
    match kind {
        StorageKind::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path, config, mode)?)),
        StorageKind::Memory => Ok(Box::new(memory::MemoryStore::new(config.clone()))),
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::postings::MAX_SONG_FRAMES;

    fn song(name: &str) -> NewSong {
        NewSong {
            title: name.to_string(),
            content_hash: format!("hash of {name}"),
            ..NewSong::default()
        }
    }

    fn fingerprint(num_frames: u32, last_peak_frame: u32) -> Fingerprint {
        Fingerprint {
            peaks: vec![
                Peak { frame: 0, bin: 3 },
                Peak {
                    frame: last_peak_frame,
                    bin: 7,
                },
            ],
            num_frames,
            duration_secs: 1.0,
            contrast: None,
        }
    }

    /// Export then import gives back every field bit for bit, durations included (JSON
    /// floats must be parsed exactly, not to the nearest of a faster approximation).
    #[test]
    fn an_export_round_trip_keeps_durations_to_the_last_bit() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = FingerprintConfig::default();
        let mut source = memory::MemoryStore::new(config.clone());
        let durations = [
            111.999_999_999_995_71,
            0.1 + 0.2,
            1.0 / 3.0,
            242.127_346_938_775_5,
        ];
        for (i, &duration_secs) in durations.iter().enumerate() {
            let song = NewSong {
                duration_secs,
                ..song(&format!("song {i}"))
            };
            source
                .add_song(&song, &fingerprint(100, 99))
                .expect("a song");
        }
        let file = dir.path().join("library.afpx");
        export::export_store(&source, &file).expect("an export");
        let mut copy = memory::MemoryStore::new(config);
        export::import_into(&mut copy, &file, |_| {}).expect("an import");
        let bits = |store: &dyn Store| -> Vec<u64> {
            store
                .songs()
                .expect("songs")
                .iter()
                .map(|s| s.duration_secs.to_bits())
                .collect()
        };
        assert_eq!(bits(&copy), bits(&source));
        assert_eq!(
            bits(&source),
            durations.iter().map(|d| d.to_bits()).collect::<Vec<_>>()
        );
    }

    /// A song the in-memory index cannot hold is refused before anything is written, by both
    /// stores: stored, it would make every later open of the library fail.
    #[test]
    fn both_stores_refuse_a_song_too_long_for_the_index_and_keep_the_others() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = FingerprintConfig::default();
        let sqlite = sqlite::SqliteStore::open(
            &dir.path().join("index.db"),
            &config,
            OpenMode::CreateIfMissing,
        )
        .expect("a new SQLite index");
        let stores: [Box<dyn Store>; 2] = [
            Box::new(memory::MemoryStore::new(config.clone())),
            Box::new(sqlite),
        ];
        for mut store in stores {
            let kind = store.kind();
            store
                .add_song(&song("short"), &fingerprint(100, 99))
                .expect("a short song is stored");
            for (name, too_long) in [
                ("long", fingerprint(MAX_SONG_FRAMES, 10)),
                ("late peak", fingerprint(100, MAX_SONG_FRAMES)),
            ] {
                let err = store
                    .add_song(&song(name), &too_long)
                    .expect_err("a song too long for the index");
                assert!(
                    matches!(err, IndexError::SongTooLong { max_hours, .. } if (max_hours - 74.0).abs() < 1.0),
                    "{kind}, {name}: {err}"
                );
            }
            let titles: Vec<String> = store
                .songs()
                .expect("songs")
                .into_iter()
                .map(|s| s.title)
                .collect();
            assert_eq!(titles, ["short"], "{kind}");
        }
    }
}
