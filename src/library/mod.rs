//! A [`Library`] is an open index ready to answer queries: the store of record plus the
//! in-memory inverted index derived from it, with the analysis settings. It is the one type the
//! CLI, the GUI worker and the server talk to: opening, adding and removing songs, and the
//! query paths (file, bytes, samples, fingerprint; the speed and pitch search).
//!
//! - `answer`: what a query returns ([`Identification`], [`Match`], [`Answer`],
//!   [`MatchEvidence`]).
//! - `saved_index`: the inverted index saved beside an SQLite store (`<db>.postings`) so that
//!   opening loads it rather than rebuilding it; a saved index that songs added or removed
//!   since have made out of date is brought up to date from the store at open, and it is
//!   rewritten only once 2 % of the library has changed ([`Library::save_index_if_due`]).
//! - `source_check`: the best candidate compared with its song's own audio, read from the
//!   song's file ([`engine::source_check`]).
//! - `shared_audio`: the songs that hold each other's audio ([`Library::shared_audio_of`]).
//! - `tracklist`: the songs of a long recording, when and from where ([`Library::tracklist`]).

mod answer;
mod saved_index;
mod shared_audio;
mod source_check;
mod tracklist;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::matcher::{self, ScoreOutcome};
use crate::engine::postings::{InvertedIndex, PostingsError};
use crate::engine::repeats::RepeatRule;
use crate::engine::verify::ClipEvidence;
use crate::engine::{self, AudioSource, EngineError, Fingerprint, Landmark, Side};
use crate::index::{IndexError, NewSong, OpenMode, SongRecord, StorageKind, Store, open_store};

pub use answer::{Answer, Identification, Match, MatchEvidence, Repeat};
pub use saved_index::IndexOrigin;
use saved_index::{
    NOT_SAVED, SongChanges, build_index, index_file_of, load_index, save_if_current, save_is_due,
};
pub use shared_audio::{
    ALIGNMENT_TOLERANCE_SECS, Containment, HeardIn, SharedAudioRelation, SharedAudioReport, SongAt,
    SongSharedAudio, classify_findings,
};
pub use tracklist::{
    LONG_RECORDING_SECS, Tracklist, TracklistEntry, TracklistEntryJson,
    WINDOW_SECS as TRACKLIST_WINDOW_SECS,
};

/// Errors of library operations.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// The store failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Analysis of a file or clip failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The in-memory index is full.
    #[error(transparent)]
    Postings(#[from] PostingsError),
    /// A library opened only to add songs ([`Library::open_for_adding`]) was queried.
    #[error("the library was opened to add songs, without its index: it cannot answer queries")]
    NotLoaded,
}

/// The part of a clip after its best match's evidence ends must be this long to be matched
/// on its own (see [`Library::add_song_heard_later`]).
const NEXT_SONG_MIN_SECS: f64 = 2.0;

/// Whether a query's answers are compared with the songs' audio ([`Library::search_speeds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// Yes, and the answer at the clip's own speed, if any, came from the landmarks.
    Yes,
    /// Yes, and the answer at the clip's own speed was made by the check.
    Provisional,
    /// No: a listening session's attempt.
    Never,
}

/// Clips up to this long are kept in memory after decoding, for the speed search.
const MAX_SPEED_SEARCH_SECS: f64 = 60.0;

/// A match lists the other offsets of its song where at least this share of the clip's peaks
/// that lie on the song's at the match's offset lie on them too (chosen on the development
/// corpus: docs/BENCHMARK.md, "Repeats") ...
const REPEAT_MIN_SHARE: f64 = 0.8;
/// ... at least this far from the match's offset and from each other, seconds ...
const REPEAT_MIN_SEPARATION_SECS: f64 = 1.0;
/// ... and at most this many.
const MAX_REPEATS: usize = 10;

/// An open index. Queries take `&self` and may run from several threads at once (the store
/// sits behind a mutex, held only for metadata look-ups); changes take `&mut self`.
pub struct Library {
    store: Mutex<Box<dyn Store>>,
    index: InvertedIndex,
    config: FingerprintConfig,
    match_config: MatchConfig,
    /// Where the inverted index is saved between runs (SQLite stores only).
    index_file: Option<PathBuf>,
    /// Where the index in memory came from when the library was opened.
    origin: IndexOrigin,
    /// Songs added or removed since the index in memory was last the saved one
    /// ([`NOT_SAVED`]: it never was, or there is no file). See [`Library::save_index_if_due`].
    unsaved_changes: usize,
}

impl Library {
    /// Opens the store and its inverted index: the saved one, brought up to date with the
    /// store if songs changed since it was written, or else one built from the stored peaks
    /// ([`index_origin`](Self::index_origin) says which).
    pub fn open(
        storage: &StorageKind,
        config: &FingerprintConfig,
        match_config: &MatchConfig,
        mode: OpenMode,
    ) -> Result<Self, LibraryError> {
        let store = open_store(storage, config, mode)?;
        Self::from_store(store, match_config)
    }

    /// Opens the store only, to add songs (`audiofp index`): that needs no inverted index,
    /// which a 50,000-song library holds in about 4.7 GB. The saved index is brought up to
    /// date and written when it is due ([`save_index_if_due`](Self::save_index_if_due));
    /// until then the next process to open the library catches it up. Such a library cannot
    /// answer queries ([`LibraryError::NotLoaded`]). A memory store is opened as by
    /// [`open`](Self::open).
    pub fn open_for_adding(
        storage: &StorageKind,
        config: &FingerprintConfig,
        match_config: &MatchConfig,
        mode: OpenMode,
    ) -> Result<Self, LibraryError> {
        let store = open_store(storage, config, mode)?;
        let Some(index_file) = index_file_of(store.as_ref()) else {
            return Self::from_store(store, match_config);
        };
        let config = store.fingerprint_config().clone();
        let rule = engine::pairing_rule(&config, match_config, Side::Reference);
        Ok(Self {
            store: Mutex::new(store),
            index: InvertedIndex::new(config.frame_secs(), rule),
            config,
            match_config: match_config.clone(),
            index_file: Some(index_file),
            origin: IndexOrigin::NotLoaded,
            unsaved_changes: 0,
        })
    }

    /// Wraps an already open store.
    pub fn from_store(
        store: Box<dyn Store>,
        match_config: &MatchConfig,
    ) -> Result<Self, LibraryError> {
        let config = store.fingerprint_config().clone();
        let index_file = index_file_of(store.as_ref());
        let (index, origin) =
            load_index(store.as_ref(), &config, match_config, index_file.as_deref())?;
        let unsaved_changes = match origin {
            _ if index_file.is_none() => 0,
            IndexOrigin::Rebuilt | IndexOrigin::NotLoaded => NOT_SAVED,
            IndexOrigin::Saved => 0,
            IndexOrigin::CaughtUp { added, removed } => added + removed,
        };
        Ok(Self {
            store: Mutex::new(store),
            index,
            config,
            match_config: match_config.clone(),
            index_file,
            origin,
            unsaved_changes,
        })
    }

    /// `Err(NotLoaded)` for a library opened only to add songs.
    fn ensure_loaded(&self) -> Result<(), LibraryError> {
        if self.origin == IndexOrigin::NotLoaded {
            return Err(LibraryError::NotLoaded);
        }
        Ok(())
    }

    /// Where the in-memory index came from when the library was opened.
    pub fn index_origin(&self) -> IndexOrigin {
        self.origin
    }

    /// Saves the index (see [`save_index`](Self::save_index)) when it was rebuilt, or when the
    /// songs added or removed since the saved file was written reach
    /// [`CATCH_UP_FRACTION`](saved_index::CATCH_UP_FRACTION) of the library: fewer are cheaper
    /// to add again at the next open than the whole index is to write.
    ///
    /// A library opened only to add songs ([`open_for_adding`](Self::open_for_adding)) loads
    /// its index first when saving is due, or when there is no saved index yet.
    pub fn save_index_if_due(&mut self) -> Result<(), LibraryError> {
        let Some(path) = self.index_file.clone() else {
            return Ok(());
        };
        if self.origin == IndexOrigin::NotLoaded {
            if self.unsaved_changes == 0 {
                return Ok(());
            }
            let songs = self.store().stats()?.songs as usize;
            if path.exists() && !save_is_due(songs, self.unsaved_changes) {
                return Ok(());
            }
            let (index, origin) = load_index(
                self.store().as_ref(),
                &self.config,
                &self.match_config,
                Some(&path),
            )?;
            self.index = index;
            self.origin = origin;
            return self.save_index();
        }
        if save_is_due(self.index.song_count(), self.unsaved_changes) {
            self.save_index()?;
        }
        Ok(())
    }

    /// Saves the inverted index beside the database, so that the next process to open the
    /// library loads it instead of rebuilding it (call after changing the library). Failing
    /// to save loses nothing: the next open rebuilds, as without the file.
    ///
    /// When another process changed the library since this one opened it, the index in
    /// memory is not the library's: nothing is saved (a file stamped with the library's
    /// state would hide that process's songs from the next one), and the next open rebuilds.
    pub fn save_index(&mut self) -> Result<(), LibraryError> {
        let Some(path) = self.index_file.clone() else {
            return Ok(());
        };
        let songs = {
            let store = self.store();
            let mut songs = Ok(Vec::new());
            store.with_snapshot(&mut || songs = store.songs())?;
            songs?
        };
        if save_if_current(&mut self.index, &songs, &path) {
            self.unsaved_changes = 0;
        }
        Ok(())
    }

    /// The store of record (locked while the guard lives).
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Store>> {
        // A panic while holding the lock cannot leave the store half-written (SQLite rolls
        // back), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds the in-memory index from the store (after an import).
    pub fn reload(&mut self) -> Result<(), LibraryError> {
        let index = build_index(self.store().as_ref(), &self.config, &self.match_config)?;
        self.index = index;
        self.origin = IndexOrigin::Rebuilt;
        self.unsaved_changes = if self.index_file.is_some() {
            NOT_SAVED
        } else {
            0
        };
        Ok(())
    }

    /// Whether another process (the CLI indexing or removing while the server or the app
    /// runs) has written to the store since the last call: one query of the database's
    /// change counter. When it has, [`catch_up_with_store`](Self::catch_up_with_store)
    /// brings the index up to date.
    pub fn store_changed_elsewhere(&self) -> Result<bool, LibraryError> {
        Ok(self.origin != IndexOrigin::NotLoaded && self.store().changed_elsewhere()?)
    }

    /// Makes the in-memory index hold exactly the store's songs again: songs it holds that
    /// the store no longer has (or has under the same id with other peaks) are removed, the
    /// store's songs it lacks are added from their stored peaks. Returns (added, removed).
    pub fn catch_up_with_store(&mut self) -> Result<(usize, usize), LibraryError> {
        if self.origin == IndexOrigin::NotLoaded {
            return Ok((0, 0));
        }
        let songs = self.store().songs()?;
        let wanted: HashMap<i64, (u32, u32)> = songs
            .iter()
            .map(|s| (s.id, (s.num_frames, s.num_peaks)))
            .collect();
        let changes = SongChanges::between(&self.index, &songs, |_, span| {
            wanted.get(&span.song_id) == Some(&(span.num_frames, span.num_peaks()))
        });
        // The store's guard and the index are borrowed apart (`store()` borrows all of self).
        let store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        let added = changes.apply(&mut self.index, store.as_ref())?;
        drop(store);
        let removed = changes.stale.len();
        if added + removed > 0 {
            tracing::info!(
                "songs changed in another process: {added} added to the index, {removed} removed"
            );
        }
        Ok((added, removed))
    }

    /// Makes songs added since the last call fast to search (sorts the new postings). Songs
    /// are searchable without it; call it after a batch of additions.
    pub fn prepare(&mut self) {
        self.index.prepare();
    }

    /// Fingerprint parameters.
    pub fn config(&self) -> &FingerprintConfig {
        &self.config
    }

    /// Query settings.
    pub fn match_config(&self) -> &MatchConfig {
        &self.match_config
    }

    /// Changes query settings (threshold, top N).
    pub fn set_match_config(&mut self, match_config: MatchConfig) {
        self.match_config = match_config;
    }

    /// The in-memory inverted index.
    pub fn inverted_index(&self) -> &InvertedIndex {
        &self.index
    }

    /// Stores a fingerprinted song and makes it searchable.
    pub fn add(
        &mut self,
        song: &NewSong,
        fingerprint: &Fingerprint,
    ) -> Result<SongRecord, LibraryError> {
        let record = self.store().add_song(song, fingerprint)?;
        self.unsaved_changes = self.unsaved_changes.saturating_add(1);
        if self.origin == IndexOrigin::NotLoaded {
            return Ok(record);
        }
        self.index
            .add_song(record.id, fingerprint.num_frames, &fingerprint.peaks)?;
        Ok(record)
    }

    /// Removes a song; `false` if there is none with that id.
    pub fn remove(&mut self, song_id: i64) -> Result<bool, LibraryError> {
        let removed = self.store().remove_song(song_id)?;
        if removed {
            self.unsaved_changes = self.unsaved_changes.saturating_add(1);
        }
        self.index.remove_song(song_id);
        Ok(removed)
    }

    /// Identifies an audio file.
    pub fn identify_file(
        &self,
        path: &Path,
        cancel: &CancelToken,
    ) -> Result<Identification, LibraryError> {
        Ok(self.query_file(path, cancel)?.identification)
    }

    /// Identifies an audio file, keeping the clip's fingerprint (see [`Answer`]).
    pub fn query_file(&self, path: &Path, cancel: &CancelToken) -> Result<Answer, LibraryError> {
        self.ensure_loaded()?;
        let top_n = self.match_config.top_n;
        self.query_source(AudioSource::File(path), cancel, top_n)
    }

    /// Identifies encoded audio held in memory (an upload), naming at most `top_n` songs
    /// (the settings' `top_n` need not be the caller's: a server serves requests that each
    /// ask for their own). One song asked for, a long clip can be answered from its opening
    /// (as [`Library::identify_file`] does with `top_n` 1).
    pub fn identify_bytes(
        &self,
        bytes: Vec<u8>,
        name: &str,
        top_n: usize,
    ) -> Result<Identification, LibraryError> {
        self.ensure_loaded()?;
        let source = AudioSource::Bytes { bytes, name };
        Ok(self
            .query_source(source, &CancelToken::new(), top_n.max(1))?
            .identification)
    }

    fn query_source(
        &self,
        source: AudioSource<'_>,
        cancel: &CancelToken,
        top_n: usize,
    ) -> Result<Answer, LibraryError> {
        let started = Instant::now();
        let (fingerprint, clip) = engine::fingerprint_query_source(
            source,
            &self.config,
            &self.match_config,
            cancel,
            MAX_SPEED_SEARCH_SECS,
        )?;
        let mut first = Answer {
            identification: self.match_fingerprint(&fingerprint, elapsed_ms(started), top_n)?,
            fingerprint,
        };
        match clip {
            Some(clip) => {
                let checked = self.check_first_answer(
                    &mut first.identification,
                    &clip.samples,
                    clip.sample_rate_hz,
                    true,
                );
                self.search_speeds(first, checked, &clip, started, top_n)
            }
            None => Ok(first),
        }
    }

    /// Identifies mono samples (a microphone recording).
    pub fn identify_samples(
        &self,
        samples: &[f32],
        sample_rate_hz: u32,
    ) -> Result<Identification, LibraryError> {
        Ok(self.query_samples(samples, sample_rate_hz)?.identification)
    }

    /// Identifies mono samples, keeping the clip's fingerprint (see [`Answer`]): a listening
    /// session's attempt, without the source check.
    pub fn query_samples(
        &self,
        samples: &[f32],
        sample_rate_hz: u32,
    ) -> Result<Answer, LibraryError> {
        self.query_samples_checked(samples, sample_rate_hz, false)
    }

    /// [`Library::query_samples`] for a recording identified once (the app's *Record*), with
    /// the source check, as a file is.
    pub fn query_recording(
        &self,
        samples: &[f32],
        sample_rate_hz: u32,
    ) -> Result<Answer, LibraryError> {
        self.query_samples_checked(samples, sample_rate_hz, true)
    }

    fn query_samples_checked(
        &self,
        samples: &[f32],
        sample_rate_hz: u32,
        source_check: bool,
    ) -> Result<Answer, LibraryError> {
        self.ensure_loaded()?;
        let started = Instant::now();
        let fingerprint = engine::fingerprint_samples(
            samples,
            sample_rate_hz,
            &self.config,
            &self.match_config,
            Side::Query,
        )?;
        let top_n = self.match_config.top_n;
        let mut first = Answer {
            identification: self.match_fingerprint(&fingerprint, elapsed_ms(started), top_n)?,
            fingerprint,
        };
        if samples.len() as f64 > MAX_SPEED_SEARCH_SECS * f64::from(sample_rate_hz) {
            return Ok(first);
        }
        // Not for a listening session's attempts (up to 14 a session): with the check the
        // app named unindexed music in 8 of 282 sessions instead of 1 (docs/BENCHMARK.md,
        // "Source check").
        let checked = self.check_first_answer(
            &mut first.identification,
            samples,
            sample_rate_hz,
            source_check,
        );
        let clip = engine::ClipAudio {
            samples: samples.to_vec(),
            sample_rate_hz,
        };
        self.search_speeds(first, checked, &clip, started, top_n)
    }

    /// Runs the source check, when `enabled`, on the answer at the clip's own speed, and says
    /// what [`Library::search_speeds`] must make of it.
    fn check_first_answer(
        &self,
        identification: &mut Identification,
        samples: &[f32],
        sample_rate_hz: u32,
        enabled: bool,
    ) -> Checked {
        if !enabled {
            Checked::Never
        } else if self.check_against_source(identification, samples, sample_rate_hz, 1.0) {
            Checked::Provisional
        } else {
            Checked::Yes
        }
    }

    /// When nothing matched at the clip's own speed, tries the configured playback speeds and
    /// keeps the first that matches. An answer the source check made (`Checked::Provisional`:
    /// the landmarks had found none) is kept only if no speed or pitch matches: played at another
    /// speed or pitch, a clip's drums still follow the song's beat, at the right song's bars
    /// but not always at the right one.
    ///
    /// Each attempt is one more chance for a clip of unindexed music to meet the threshold, so
    /// an attempt must be as many times less likely to be wrong as there are attempts (with 4
    /// and the default threshold 0.8: confidence 0.95): the search adds no false positives on
    /// average.
    fn search_speeds(
        &self,
        first: Answer,
        checked: Checked,
        clip: &engine::ClipAudio,
        started: Instant,
        top_n: usize,
    ) -> Result<Answer, LibraryError> {
        if first.identification.found() && checked != Checked::Provisional {
            return Ok(first);
        }
        let check = |attempt: &mut Identification, rate_hz: u32, pitch_factor: f64| {
            if checked != Checked::Never {
                self.check_against_source(attempt, &clip.samples, rate_hz, pitch_factor);
            }
        };
        let attempts =
            self.match_config.speed_search.len() + self.match_config.pitch_search_semitones.len();
        let clip_secs = clip.samples.len() as f64 / f64::from(clip.sample_rate_hz.max(1));
        let threshold =
            1.0 - (1.0 - self.match_config.threshold_for_clip(clip_secs)) / attempts.max(1) as f64;
        let confident = |mut attempt: Identification| {
            attempt.matches.retain(|m| m.confidence >= threshold);
            attempt
        };
        let found = |mut identification: Identification, fingerprint: Fingerprint| {
            identification.analysis_ms = elapsed_ms(started) - identification.match_ms;
            Answer {
                identification,
                fingerprint,
            }
        };
        for &speed in &self.match_config.speed_search {
            let Ok(fingerprint) =
                engine::fingerprint_at_speed(clip, speed, &self.config, &self.match_config)
            else {
                continue;
            };
            let mut attempt = self.match_fingerprint(&fingerprint, 0.0, top_n)?;
            // Analysed at this rate, the clip plays at the song's speed (fingerprint_at_speed).
            let unsped_rate = (f64::from(clip.sample_rate_hz) / speed).round().max(1.0) as u32;
            check(&mut attempt, unsped_rate, 1.0);
            let mut attempt = confident(attempt);
            if attempt.found() {
                attempt.speed = speed;
                return Ok(found(attempt, fingerprint));
            }
        }
        if let Ok(fingerprint) =
            engine::fingerprint_at_speed(clip, 1.0, &self.config, &self.match_config)
        {
            for &semitones in &self.match_config.pitch_search_semitones {
                let pitch_factor = 2f64.powf(semitones / 12.0);
                let shifted = engine::shift_pitch(&fingerprint, pitch_factor, &self.config);
                let mut attempt = self.match_fingerprint(&shifted, 0.0, top_n)?;
                check(&mut attempt, clip.sample_rate_hz, pitch_factor);
                let mut attempt = confident(attempt);
                if attempt.found() {
                    attempt.pitch_semitones = semitones;
                    return Ok(found(attempt, shifted));
                }
            }
        }
        Ok(found(first.identification, first.fingerprint))
    }

    /// Matches an already analysed clip (analysed with [`Side::Query`]).
    pub fn identify_fingerprint(
        &self,
        fingerprint: &Fingerprint,
        analysis_ms: f64,
    ) -> Result<Identification, LibraryError> {
        self.ensure_loaded()?;
        self.match_fingerprint(fingerprint, analysis_ms, self.match_config.top_n)
    }

    /// [`Library::identify_fingerprint`] for at most `top_n` songs, once the caller has
    /// checked that the index is loaded.
    fn match_fingerprint(
        &self,
        fingerprint: &Fingerprint,
        analysis_ms: f64,
        top_n: usize,
    ) -> Result<Identification, LibraryError> {
        let mut identification = self.match_fingerprint_top(fingerprint, analysis_ms, top_n)?;
        if top_n > 1 {
            self.add_song_heard_later(&mut identification, fingerprint, top_n)?;
        }
        Ok(identification)
    }

    /// A clip across two songs: the matcher places a clip's start inside its song, so a song
    /// that begins inside the clip is not found with it. When the best match's evidence ends
    /// [`NEXT_SONG_MIN_SECS`] or more before the clip does, the rest of the clip is matched
    /// on its own, and a song found there that is not among the matches yet is added, heard
    /// from where the rest starts (`clip_from_secs`); one that is, but on fewer hashes (at a
    /// repeat of the song), is replaced. Being a second attempt for the clip, it must meet a
    /// stricter threshold (the odds of error the threshold allows, halved).
    fn add_song_heard_later(
        &self,
        identification: &mut Identification,
        fingerprint: &Fingerprint,
        top_n: usize,
    ) -> Result<(), LibraryError> {
        let Some(best) = identification.matches.first() else {
            return Ok(());
        };
        let split_secs = best.aligned_from_secs + best.aligned_span_secs;
        if identification.matches.len() >= top_n
            || fingerprint.duration_secs - split_secs < NEXT_SONG_MIN_SECS
        {
            return Ok(());
        }
        let started = Instant::now();
        let frame_secs = self.config.frame_secs();
        let split_frame = (split_secs / frame_secs).round() as u32;
        let rest = engine::tail_of(fingerprint, split_frame, &self.config);
        let strict = 1.0 - (1.0 - self.match_config.threshold_for_clip(rest.duration_secs)) / 2.0;
        let clip_from_secs = f64::from(split_frame) * frame_secs;
        for mut found in self.match_fingerprint_top(&rest, 0.0, top_n)?.matches {
            if found.confidence < strict {
                continue;
            }
            found.clip_from_secs = clip_from_secs;
            found.aligned_from_secs += clip_from_secs;
            let known = identification
                .matches
                .iter()
                .position(|m| m.song.id == found.song.id);
            match known {
                // The whole clip can place a song it runs into at one of the song's repeats
                // (its opening bar played again later), on fewer hashes than the rest gives.
                Some(at) if at > 0 && found.aligned > identification.matches[at].aligned => {
                    identification.matches[at] = found;
                }
                Some(_) => {}
                // After the songs heard from the clip's start, whatever its confidence: the
                // first match stays the song the clip begins in.
                None if identification.matches.len() < top_n => identification.matches.push(found),
                None => {}
            }
        }
        identification.match_ms += elapsed_ms(started);
        Ok(())
    }

    /// [`Library::match_fingerprint`] for at most `top_n` songs.
    fn match_fingerprint_top(
        &self,
        fingerprint: &Fingerprint,
        analysis_ms: f64,
        top_n: usize,
    ) -> Result<Identification, LibraryError> {
        let started = Instant::now();
        let outcome = self.score_fingerprint(fingerprint, top_n);
        let repeats = outcome
            .matches
            .iter()
            .map(|scored| self.repeats_of(scored, &fingerprint.peaks))
            .collect();
        let match_ms = elapsed_ms(started);
        self.to_identification(
            outcome,
            repeats,
            fingerprint.duration_secs,
            analysis_ms,
            match_ms,
        )
    }

    /// The scorer's outcome for an analysed clip, at most `top_n` songs: the songs and
    /// offsets, before the store is read for their records.
    fn score_fingerprint(&self, fingerprint: &Fingerprint, top_n: usize) -> ScoreOutcome {
        let landmarks = self.query_landmarks(fingerprint);
        let opening_frames = (matcher::EARLY_ANSWER_SECS * self.config.frames_per_second()) as u32;
        let threshold = self
            .match_config
            .threshold_for_clip(fingerprint.duration_secs);
        let mut config = std::borrow::Cow::Borrowed(&self.match_config);
        if threshold > config.threshold {
            config.to_mut().threshold = threshold;
        }
        if top_n != config.top_n {
            config.to_mut().top_n = top_n;
        }
        matcher::score_early(
            &self.index,
            &landmarks,
            ClipEvidence {
                peaks: &fingerprint.peaks,
                contrast: fingerprint.contrast.as_ref(),
            },
            &config,
            opening_frames,
        )
    }

    fn query_landmarks(&self, fingerprint: &Fingerprint) -> Vec<Landmark> {
        engine::landmarks_of(
            &fingerprint.peaks,
            &self.config,
            &self.match_config,
            Side::Query,
        )
    }

    /// The answer from the scorer's `outcome` and the `repeats` of each of its matches.
    fn to_identification(
        &self,
        outcome: ScoreOutcome,
        repeats: Vec<Vec<Repeat>>,
        clip_secs: f64,
        analysis_ms: f64,
        match_ms: f64,
    ) -> Result<Identification, LibraryError> {
        let frame_secs = self.config.frame_secs();
        let store = self.store();
        // A song removed since the index was loaded (by another process) is no match; a
        // store that cannot be read is an error, not a "no match".
        let to_match = |scored: &matcher::ScoredSong,
                        repeats: Vec<Repeat>|
         -> Result<Option<Match>, LibraryError> {
            let Some(song) = store.song(scored.song_id)? else {
                return Ok(None);
            };
            Ok(Some(Match {
                song,
                confidence: scored.confidence,
                offset_secs: (scored.offset_frames * frame_secs).max(0.0),
                clip_from_secs: 0.0,
                aligned: scored.aligned,
                aligned_frames: scored.aligned_frames,
                aligned_from_secs: f64::from(scored.first_aligned_frame) * frame_secs,
                aligned_span_secs: f64::from(scored.spread_frames) * frame_secs,
                song_hits: scored.song_hits,
                background_secs: f64::from(scored.background_frames) * frame_secs,
                peaks: scored.peaks,
                source: None,
                repeats,
            }))
        };
        let mut matches = Vec::with_capacity(outcome.matches.len());
        for (scored, repeats) in outcome.matches.iter().zip(repeats) {
            matches.extend(to_match(scored, repeats)?);
        }
        let best_rejected = match &outcome.best_rejected {
            Some(scored) => to_match(scored, Vec::new())?,
            None => None,
        };
        Ok(Identification {
            matches,
            clip_secs,
            query_landmarks: outcome.query_landmarks,
            hits: outcome.hits,
            analysis_ms,
            match_ms,
            best_rejected,
            speed: 1.0,
            pitch_semitones: 0.0,
        })
    }

    /// The other places in `scored`'s song where the clip of `clip_peaks` fits nearly as well.
    fn repeats_of(&self, scored: &matcher::ScoredSong, clip_peaks: &[engine::Peak]) -> Vec<Repeat> {
        let Some(span) = self.index.span_of(scored.song_id) else {
            return Vec::new();
        };
        let frame_secs = self.config.frame_secs();
        let rule = RepeatRule {
            min_share: REPEAT_MIN_SHARE,
            min_separation_frames: REPEAT_MIN_SEPARATION_SECS / frame_secs,
            max_repeats: MAX_REPEATS,
        };
        engine::repeats::repeats(&self.index, clip_peaks, span, scored.offset_frames, rule)
            .into_iter()
            .map(|repeat| Repeat {
                offset_secs: (repeat.offset_frames * frame_secs).max(0.0),
                fit: repeat.fit,
            })
            .collect()
    }

    /// The hits of a clip in one song, for the match plot.
    pub fn evidence(
        &self,
        fingerprint: &Fingerprint,
        song_id: i64,
        offset_secs: f64,
    ) -> Result<MatchEvidence, LibraryError> {
        self.ensure_loaded()?;
        let landmarks = self.query_landmarks(fingerprint);
        let Some(span) = self.index.span_of(song_id).copied() else {
            return Ok(MatchEvidence::default());
        };
        let frame_secs = self.config.frame_secs();
        let offset_frames = offset_secs / frame_secs;
        let mut evidence = MatchEvidence::default();
        for landmark in &landmarks {
            self.index.for_each_posting(landmark.key, |global| {
                if global >= span.base && global < span.base + span.num_frames {
                    let song_frame = f64::from(global - span.base);
                    let query_frame = f64::from(landmark.frame);
                    evidence
                        .hits
                        .push((query_frame * frame_secs, song_frame * frame_secs));
                    evidence
                        .aligned
                        .push((song_frame - query_frame - offset_frames).abs() <= 1.5);
                }
            });
        }
        Ok(evidence)
    }
}

impl Drop for Library {
    /// Saves the index if it is due (see [`Library::save_index_if_due`]): a command that
    /// rebuilt a stale index and then changes the library writes it once, not twice.
    fn drop(&mut self) {
        if let Err(err) = self.save_index_if_due() {
            tracing::warn!("cannot save the index: {err}");
        }
    }
}

fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Removing an id the library does not hold changes nothing, so it must not count
    /// toward rewriting the saved index (a client repeating `DELETE` of a bad id would
    /// force full rewrites).
    #[test]
    fn removing_an_unknown_song_is_not_a_change() {
        let mut library = Library::open(
            &StorageKind::Memory,
            &FingerprintConfig::default(),
            &MatchConfig::default(),
            OpenMode::CreateIfMissing,
        )
        .expect("a memory library");
        let peaks = vec![crate::engine::Peak { frame: 0, bin: 4 }];
        let fingerprint = Fingerprint {
            peaks,
            num_frames: 10,
            duration_secs: 0.3,
            contrast: None,
        };
        let song = NewSong {
            title: "one".to_string(),
            content_hash: "one".to_string(),
            ..NewSong::default()
        };
        let id = library.add(&song, &fingerprint).expect("a song").id;
        let after_adding = library.unsaved_changes;
        assert!(!library.remove(id + 100).expect("a removal"));
        assert_eq!(library.unsaved_changes, after_adding);
        assert!(library.remove(id).expect("a removal"));
        assert_eq!(library.unsaved_changes, after_adding + 1);
    }
}
