//! In-memory [`Store`]: the same contract as SQLite, nothing on disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{FileFailure, IndexError, NewSong, SongRecord, Store, StoreStats, unix_now};
use crate::config::FingerprintConfig;
use crate::engine::{Fingerprint, Peak};

/// Songs and peaks in a map.
pub struct MemoryStore {
    config: FingerprintConfig,
    songs: BTreeMap<i64, (SongRecord, Vec<Peak>)>,
    next_id: i64,
    failures: BTreeMap<String, FileFailure>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(config: FingerprintConfig) -> Self {
        Self {
            config,
            songs: BTreeMap::new(),
            next_id: 1,
            failures: BTreeMap::new(),
        }
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn location(&self) -> PathBuf {
        PathBuf::from("(memory)")
    }

    fn fingerprint_config(&self) -> &FingerprintConfig {
        &self.config
    }

    fn add_song(
        &mut self,
        song: &NewSong,
        fingerprint: &Fingerprint,
    ) -> Result<SongRecord, IndexError> {
        super::check_song_fits(fingerprint.num_frames, &fingerprint.peaks, &self.config)?;
        if let Some((existing, _)) = self
            .songs
            .values()
            .find(|(r, _)| r.content_hash == song.content_hash)
        {
            return Err(IndexError::DuplicateContent {
                song_id: existing.id,
            });
        }
        let added_at = song.added_at.unwrap_or_else(unix_now);
        let record = SongRecord::stored(self.next_id, song, fingerprint, added_at);
        self.next_id += 1;
        self.songs
            .insert(record.id, (record.clone(), fingerprint.peaks.clone()));
        Ok(record)
    }

    fn remove_song(&mut self, song_id: i64) -> Result<bool, IndexError> {
        Ok(self.songs.remove(&song_id).is_some())
    }

    fn song(&self, song_id: i64) -> Result<Option<SongRecord>, IndexError> {
        Ok(self.songs.get(&song_id).map(|(r, _)| r.clone()))
    }

    fn songs(&self) -> Result<Vec<SongRecord>, IndexError> {
        Ok(self.songs.values().map(|(r, _)| r.clone()).collect())
    }

    fn find_by_content_hash(&self, content_hash: &str) -> Result<Option<SongRecord>, IndexError> {
        Ok(self
            .songs
            .values()
            .find(|(r, _)| r.content_hash == content_hash)
            .map(|(r, _)| r.clone()))
    }

    fn relink_song(
        &mut self,
        song_id: i64,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<bool, IndexError> {
        let Some((record, _)) = self.songs.get_mut(&song_id) else {
            return Ok(false);
        };
        record.path = Some(path.to_string());
        record.file_size = Some(size);
        record.file_mtime = Some(mtime);
        Ok(true)
    }

    fn record_failure(&mut self, failure: &FileFailure) -> Result<(), IndexError> {
        self.failures.insert(failure.path.clone(), failure.clone());
        Ok(())
    }

    fn failures(&self) -> Result<Vec<FileFailure>, IndexError> {
        Ok(self.failures.values().cloned().collect())
    }

    fn forget_failure(&mut self, path: &str) -> Result<(), IndexError> {
        self.failures.remove(path);
        Ok(())
    }

    fn find_by_path(&self, path: &str) -> Result<Vec<SongRecord>, IndexError> {
        Ok(self
            .songs
            .values()
            .filter(|(r, _)| r.path.as_deref() == Some(path))
            .map(|(r, _)| r.clone())
            .collect())
    }

    fn find_by_file(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<Option<SongRecord>, IndexError> {
        Ok(self
            .songs
            .values()
            .find(|(r, _)| {
                r.path.as_deref() == Some(path)
                    && r.file_size == Some(size)
                    && r.file_mtime == Some(mtime)
            })
            .map(|(r, _)| r.clone()))
    }

    fn peaks(&self, song_id: i64) -> Result<Option<Vec<Peak>>, IndexError> {
        Ok(self.songs.get(&song_id).map(|(_, p)| p.clone()))
    }

    fn for_each_fingerprint(
        &self,
        visit: &mut dyn FnMut(&SongRecord, Vec<Peak>),
    ) -> Result<(), IndexError> {
        for (record, peaks) in self.songs.values() {
            visit(record, peaks.clone());
        }
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, IndexError> {
        Ok(StoreStats {
            songs: self.songs.len() as u64,
            // Summed from +0.0: an empty sum of f64 is -0.0, printed "-0.00 hours".
            total_secs: self
                .songs
                .values()
                .fold(0.0, |total, (r, _)| total + r.duration_secs),
            peaks: self.songs.values().map(|(_, p)| p.len() as u64).sum(),
            bytes_on_disk: 0,
        })
    }
}
