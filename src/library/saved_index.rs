//! The inverted index saved beside an SQLite store (`<db>.postings`), a cache of what the
//! store's peaks give: building the index from the store, loading the saved file and checking
//! it against the store, catching it up with the songs added or removed since it was written
//! (or rebuilding when too many were), and writing it again once enough of the library has
//! changed ([`save_is_due`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::LibraryError;
use crate::config::{FingerprintConfig, MatchConfig};
use crate::engine::postings::{InvertedIndex, SavedIndex, SongSpan, Stamp};
use crate::engine::{self, Side};
use crate::index::{SongRecord, Store, content_stamp_of, song_identity};

/// `Library::unsaved_changes` of an index that no saved file describes.
pub(super) const NOT_SAVED: usize = usize::MAX;

/// The saved index is rewritten once the songs added or removed since it was written reach
/// this fraction of the library (at least one). Below it, the next process to open the
/// library loads the file and adds those songs from the store, which costs far less than
/// writing the whole index (about 94 MB per 1,000 songs) after every change.
pub(super) const CATCH_UP_FRACTION: f64 = 0.02;

/// Whether an index of `songs` songs, `unsaved_changes` of them added or removed since the
/// saved file was written, is due to be saved again.
pub(super) fn save_is_due(songs: usize, unsaved_changes: usize) -> bool {
    let due = ((songs as f64 * CATCH_UP_FRACTION) as usize).max(1);
    unsaved_changes >= due
}

/// A saved index is not caught up but rebuilt when more than this fraction of the library's
/// songs are missing from it, or of its songs are gone from the library.
const MAX_CATCH_UP_FRACTION: f64 = 0.5;

/// Where the in-memory index came from when the library was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum IndexOrigin {
    /// Built from every song's peaks in the store (no usable saved index, or a memory store).
    Rebuilt,
    /// Loaded from the saved index, which was current.
    Saved,
    /// Loaded from the saved index, then brought up to date: songs added to the library since
    /// it was written were added from the store, songs removed (or replaced) were removed.
    CaughtUp {
        /// Songs added from the store.
        added: usize,
        /// Songs of the file no longer in the library.
        removed: usize,
    },
    /// Not loaded: the library was opened to add songs
    /// ([`Library::open_for_adding`](super::Library::open_for_adding)).
    NotLoaded,
}

/// Builds the inverted index from the store's peaks.
pub(super) fn build_index(
    store: &dyn Store,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
) -> Result<InvertedIndex, LibraryError> {
    // Two passes (count, fill) over the stored peaks, inside one snapshot so that a song
    // committed meanwhile by another process cannot appear in one pass only. Landmarks are
    // regenerated each pass, which costs less than holding them all.
    let rule = engine::pairing_rule(config, match_config, Side::Reference);
    let mut store_error = None;
    let mut built = None;
    store.with_snapshot(&mut || {
        built = Some(InvertedIndex::build(config.frame_secs(), rule, |visit| {
            let result = store.for_each_fingerprint(&mut |record, peaks| {
                visit(record.id, record.num_frames, &peaks);
            });
            if let Err(err) = result {
                store_error = Some(err);
            }
        }));
    })?;
    if let Some(err) = store_error {
        return Err(err.into());
    }
    match built {
        Some(index) => Ok(index?),
        None => Ok(InvertedIndex::new(config.frame_secs(), rule)),
    }
}

/// The saved inverted index of a SQLite store: `<database>.postings` beside it.
pub(super) fn index_file_of(store: &dyn Store) -> Option<PathBuf> {
    (store.kind() == "sqlite").then(|| {
        let mut name = store.location().into_os_string();
        name.push(crate::index::SAVED_INDEX_SUFFIX);
        PathBuf::from(name)
    })
}

/// The library's inverted index: the saved one at `index_file` if there is a usable one
/// (brought up to date with the store), else rebuilt from the store.
pub(super) fn load_index(
    store: &dyn Store,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    index_file: Option<&Path>,
) -> Result<(InvertedIndex, IndexOrigin), LibraryError> {
    if let Some(loaded) =
        index_file.and_then(|path| read_index_file(store, config, match_config, path))
    {
        if let IndexOrigin::CaughtUp { added, removed } = loaded.1 {
            tracing::info!(
                "loaded the saved index and brought it up to date (songs added: {added}, removed: {removed})"
            );
        }
        return Ok(loaded);
    }
    let index = build_index(store, config, match_config)?;
    Ok((index, IndexOrigin::Rebuilt))
}

/// The saved index at `path`, brought up to date with the store if it is not current
/// (`None`: rebuild).
fn read_index_file(
    store: &dyn Store,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    path: &Path,
) -> Option<(InvertedIndex, IndexOrigin)> {
    let file = std::fs::File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let rule = engine::pairing_rule(config, match_config, Side::Reference);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut saved = match InvertedIndex::read_from(&mut reader, rule, config.frame_secs(), file_len)
    {
        Ok(Some(saved)) => Some(saved),
        Ok(None) => {
            tracing::debug!(
                "{}: saved index of another format; rebuilding",
                path.display()
            );
            return None;
        }
        Err(err) => {
            tracing::warn!(
                "{}: cannot read the saved index ({err}); rebuilding",
                path.display()
            );
            return None;
        }
    };
    // The songs, and the peaks of those to add, from one snapshot of the store.
    let mut caught_up = Ok(None);
    let snapshot = store.with_snapshot(&mut || {
        if let Some(saved) = saved.take() {
            caught_up = catch_up(store, saved);
        }
    });
    match snapshot.map_err(LibraryError::from).and(caught_up) {
        Ok(Some(loaded)) => Some(loaded),
        Ok(None) => {
            tracing::debug!("{}: saved index is out of date; rebuilding", path.display());
            None
        }
        Err(err) => {
            tracing::warn!(
                "{}: cannot bring the saved index up to date ({err}); rebuilding",
                path.display()
            );
            None
        }
    }
}

/// Brings a saved index up to date with the store: its songs that are no longer in the store
/// with the same identity are removed, and the store's songs it lacks are added from their
/// peaks. `None` when most of it, or most of the library, is out of date (rebuilding costs
/// no more).
fn catch_up(
    store: &dyn Store,
    saved: SavedIndex,
) -> Result<Option<(InvertedIndex, IndexOrigin)>, LibraryError> {
    let songs = store.songs()?;
    let SavedIndex {
        mut index,
        stamp,
        identities,
    } = saved;
    if stamp == content_stamp_of(&songs) {
        return Ok(Some((index, IndexOrigin::Saved)));
    }
    let wanted: HashMap<i64, u64> = songs.iter().map(|s| (s.id, song_identity(s))).collect();
    let changes = SongChanges::between(&index, &songs, |position, span| {
        wanted.get(&span.song_id) == identities.get(position)
    });
    if changes.missing.len() as f64 > songs.len() as f64 * MAX_CATCH_UP_FRACTION
        || changes.stale.len() as f64
            > (changes.current + changes.stale.len()) as f64 * MAX_CATCH_UP_FRACTION
    {
        return Ok(None);
    }
    let added = changes.apply(&mut index, store)?;
    let origin = IndexOrigin::CaughtUp {
        added,
        removed: changes.stale.len(),
    };
    Ok(Some((index, origin)))
}

/// How an inverted index differs from the store's songs.
pub(super) struct SongChanges<'a> {
    /// Live songs of the index that the store no longer has as they are there.
    pub(super) stale: Vec<i64>,
    /// Store songs the index lacks (or holds stale).
    missing: Vec<&'a SongRecord>,
    /// Live songs of the index that are current.
    current: usize,
}

impl<'a> SongChanges<'a> {
    /// Compares `index` with the store's `songs`: `is_current(position, span)` says whether
    /// the index's song at that position of its spans is the store's song of that id.
    pub(super) fn between(
        index: &InvertedIndex,
        songs: &'a [SongRecord],
        is_current: impl Fn(usize, &SongSpan) -> bool,
    ) -> Self {
        let mut current = HashSet::new();
        let mut stale = Vec::new();
        for (position, span) in index.spans().iter().enumerate() {
            if index.is_removed(span.song_id) {
                continue;
            }
            if is_current(position, span) {
                current.insert(span.song_id);
            } else {
                stale.push(span.song_id);
            }
        }
        let missing = songs.iter().filter(|s| !current.contains(&s.id)).collect();
        Self {
            stale,
            missing,
            current: current.len(),
        }
    }

    /// Removes the stale songs from `index` and adds the missing ones from their stored
    /// peaks (a song removed from the store since is passed over). Returns the songs added.
    pub(super) fn apply(
        &self,
        index: &mut InvertedIndex,
        store: &dyn Store,
    ) -> Result<usize, LibraryError> {
        for &song_id in &self.stale {
            index.remove_song(song_id);
        }
        // A removed song's id may have been given to a new song: its old postings are dropped
        // first (see `InvertedIndex::add_song`).
        let mut added = 0;
        for song in &self.missing {
            let Some(peaks) = store.peaks(song.id)? else {
                continue;
            };
            index.add_song(song.id, song.num_frames, &peaks)?;
            added += 1;
        }
        index.prepare();
        Ok(added)
    }
}

/// Saves `index` at `path` if it holds exactly the store's `songs` (read in one snapshot);
/// `true` if it was written. When another process changed the library since this one loaded
/// the index, a file stamped with the library's state would hide that process's songs from
/// the next one: nothing is written.
pub(super) fn save_if_current(
    index: &mut InvertedIndex,
    songs: &[SongRecord],
    path: &Path,
) -> bool {
    // Ids are given again after a removal: a song's frame and peak counts tell another
    // process's new song under an old id from the song this index holds.
    let mut in_memory: Vec<(i64, u32, u32)> = index
        .spans()
        .iter()
        .filter(|span| !index.is_removed(span.song_id))
        .map(|span| (span.song_id, span.num_frames, span.num_peaks()))
        .collect();
    in_memory.sort_unstable();
    let in_store: Vec<(i64, u32, u32)> = songs
        .iter()
        .map(|s| (s.id, s.num_frames, s.num_peaks))
        .collect();
    if in_memory != in_store {
        tracing::debug!(
            "{}: the library changed in another process; not saving the index",
            path.display()
        );
        return false;
    }
    let identities: HashMap<i64, u64> = songs.iter().map(|s| (s.id, song_identity(s))).collect();
    let identity_of = |id| identities.get(&id).copied().unwrap_or(0);
    let stamp = content_stamp_of(songs);
    write_index_file(index, &stamp, identity_of, path)
}

/// Saves `index` at `path` (through a temporary file and a rename, so a reader never sees a
/// half-written file); `false` if it could not. Failures are logged: the file is only a cache.
fn write_index_file(
    index: &mut InvertedIndex,
    stamp: &Stamp,
    identity_of: impl Fn(i64) -> u64,
    path: &Path,
) -> bool {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".tmp{}", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let written = std::fs::File::create(&temporary).and_then(|file| {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        index.write_to(&mut out, stamp, identity_of)?;
        let file = out.into_inner().map_err(|err| err.into_error())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    });
    match written {
        Ok(()) => true,
        Err(err) => {
            std::fs::remove_file(&temporary).ok();
            tracing::warn!("{}: cannot save the index ({err})", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_saved_index_is_rewritten_once_enough_of_the_library_changed() {
        assert!(!save_is_due(10, 0));
        assert!(
            save_is_due(10, 1),
            "a small library is saved after any change"
        );
        assert!(save_is_due(0, NOT_SAVED), "a rebuilt index is always saved");
        assert!(save_is_due(50_000, NOT_SAVED));
        // A 50,000-song library (4.7 GB of index) is not rewritten for one new song.
        assert!(!save_is_due(50_000, 1));
        assert!(!save_is_due(50_000, 999));
        assert!(save_is_due(50_000, 1_000));
    }
}
