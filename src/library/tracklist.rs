//! Tracklist: every song heard in a long recording (a DJ set, a radio show), and when.
//!
//! The recording is cut into windows of [`WINDOW_SECS`] that start every [`HOP_SECS`]
//! ([`engine::windows`]); each window is identified as a clip of that length is, for its best
//! [`SONGS_PER_WINDOW`] songs (two songs play at once in a crossfade). Windows that name one
//! song at one place (the song's start lies at the same moment of the recording, within
//! [`SAME_PLACE_SECS`]) with at most one window between them become one entry: from where the
//! first window's evidence for the song starts to where the last one's ends. A song that
//! begins inside a window is found from the next one, whose alignment then shows where in the
//! window before it starts; an entry starts and ends where the song's landmarks are dense
//! ([`DENSE_HITS`]), so that chance hits do not stretch it. A song's entries that follow on from
//! one another are then joined (see [`merge_continuations`]).
//!
//! An entry must come from at least [`MIN_WINDOWS`] windows (any recording of one window
//! excepted): each window is a chance for unindexed music to meet the threshold, and a chance
//! match rarely repeats at the same place in the next window. A song heard for less than a
//! window and a half can miss that; a song mixed in at another speed than its own is not
//! searched for (as `identify` searches a clip that names nothing).

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::{Identification, Library, LibraryError, elapsed_ms};
use crate::cancel::CancelToken;
use crate::engine::windows::{self, WindowPlan};
use crate::engine::{self, AudioSource, EngineError, Fingerprint, Side};
use crate::index::SongRecord;

/// A clip at least this long may hold several songs (a DJ set, a radio show): the app lists
/// it song by song, and `identify` points to `tracklist`.
pub const LONG_RECORDING_SECS: f64 = 30.0;
/// Length of a window, seconds: the clip length whose answers the bench measures best.
pub const WINDOW_SECS: f64 = 10.0;
/// Seconds between the starts of two windows.
pub const HOP_SECS: f64 = 5.0;
/// Songs taken from each window.
pub const SONGS_PER_WINDOW: usize = 2;
/// Two windows' answers are one place in a song when they put the song's start at the same
/// moment of the recording within this many seconds (answers are within 0.05 s of the truth
/// nearly always; a bar-long loop moves the place by a second or more).
pub const SAME_PLACE_SECS: f64 = 0.25;
/// Windows an entry needs.
pub const MIN_WINDOWS: usize = 2;
/// A window's second song counts when it has at least this share of the first's aligned
/// hashes: a song mixed in or out does, a short motif two songs share does not (on the
/// development corpus, d0081's opening sting heard in d0061 gives 2-4 %).
pub const SECOND_SONG_MIN_SHARE: f64 = 0.1;

/// One song heard in a recording.
#[derive(Clone, Debug, Serialize)]
pub struct TracklistEntry {
    /// The song.
    pub song: SongRecord,
    /// Where it is first heard in the recording, seconds.
    pub from_secs: f64,
    /// Where it is last heard, seconds.
    pub to_secs: f64,
    /// The song's own position at `from_secs`, seconds.
    pub song_from_secs: f64,
    /// The highest confidence of the windows that named it.
    pub confidence: f64,
    /// Windows that named it there.
    pub windows: usize,
}

/// An entry as the CLI's `tracklist --json` and the API's `POST /api/v1/tracklist` show it
/// (docs/CLI.md, docs/API.md).
#[derive(Clone, Debug, Serialize)]
pub struct TracklistEntryJson {
    pub song_id: i64,
    pub title: String,
    pub artist: Option<String>,
    pub album: Option<String>,
    /// Song file path at indexing time.
    pub path: Option<String>,
    /// Where the song is heard in the recording, seconds.
    pub from_seconds: f64,
    pub to_seconds: f64,
    /// Where in the song the recording picks it up, seconds.
    pub song_from_seconds: f64,
    pub confidence: f64,
    /// Windows that named it there.
    pub windows: usize,
}

impl From<&TracklistEntry> for TracklistEntryJson {
    fn from(entry: &TracklistEntry) -> Self {
        Self {
            song_id: entry.song.id,
            title: entry.song.title.clone(),
            artist: entry.song.artist.clone(),
            album: entry.song.album.clone(),
            path: entry.song.path.clone(),
            from_seconds: entry.from_secs,
            to_seconds: entry.to_secs,
            song_from_seconds: entry.song_from_secs,
            confidence: entry.confidence,
            windows: entry.windows,
        }
    }
}

/// The songs of a recording, in the order they start.
#[derive(Clone, Debug, Default)]
pub struct Tracklist {
    /// Songs heard, by `from_secs`.
    pub entries: Vec<TracklistEntry>,
    /// Length of the recording, seconds.
    pub recording_secs: f64,
    /// Windows identified.
    pub windows: usize,
    /// Windows with nothing to identify (silence between songs).
    pub silent_windows: usize,
    /// Time taken, decoding included, ms.
    pub elapsed_ms: f64,
}

impl Library {
    /// The songs heard in a recording, and when (see the module's documentation).
    /// `on_progress` is called after each window with the seconds of the recording done.
    ///
    /// This thread decodes and cuts the windows; a second one takes them in batches, has the
    /// thread pool analyse each batch, and identifies its windows in order.
    pub fn tracklist(
        &self,
        source: AudioSource<'_>,
        cancel: &CancelToken,
        on_progress: impl FnMut(f64) + Send,
    ) -> Result<Tracklist, LibraryError> {
        self.ensure_loaded()?;
        let started = Instant::now();
        let name = source.display_path().display().to_string();
        let plan = WindowPlan {
            window_secs: WINDOW_SECS,
            hop_secs: HOP_SECS,
        };
        let (window_tx, window_rx) = crossbeam_channel::bounded::<CutWindow>(WINDOWS_IN_FLIGHT);
        let (walked, listened) = std::thread::scope(|scope| {
            let listener = scope.spawn(move || self.listen_to_windows(window_rx, on_progress));
            let walked = windows::for_each_window(source, plan, cancel, |window| {
                let cut = CutWindow {
                    start_secs: window.start_secs,
                    samples: window.samples.to_vec(),
                    sample_rate_hz: window.sample_rate_hz,
                };
                // The listener stops taking windows only when it failed: stop decoding too
                // (its error is the one returned).
                window_tx.send(cut).map_err(|_| EngineError::Cancelled)
            });
            drop(window_tx);
            let listened = listener
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (walked, listened)
        });
        let (mut places, mut tracklist) = listened?;
        tracklist.recording_secs = walked?;
        if tracklist.recording_secs < self.match_config.min_clip_secs {
            return Err(EngineError::TooShort {
                source_name: name,
                secs: tracklist.recording_secs,
                min_secs: self.match_config.min_clip_secs,
            }
            .into());
        }
        if tracklist.silent_windows == tracklist.windows {
            return Err(EngineError::Silent { source_name: name }.into());
        }
        let min_windows = if tracklist.windows == 1 {
            1
        } else {
            MIN_WINDOWS
        };
        // The places still open at the end.
        for place in &mut places.open {
            self.find_end(place)?;
        }
        tracklist.entries = places.into_entries(min_windows);
        tracklist.elapsed_ms = elapsed_ms(started);
        Ok(tracklist)
    }

    /// Analyses and identifies the windows `windows` hands over, in order, until it closes:
    /// the places of the songs heard, and the window counts. Windows are analysed
    /// [`WINDOWS_PER_BATCH`] at a time on the thread pool, then identified one by one (each
    /// window's songs are placed from the places the windows before it left).
    fn listen_to_windows(
        &self,
        windows: crossbeam_channel::Receiver<CutWindow>,
        mut on_progress: impl FnMut(f64),
    ) -> Result<(Places, Tracklist), LibraryError> {
        let mut places = Places::default();
        let mut tracklist = Tracklist::default();
        // The window before, where a song the current window finds may already start.
        let mut previous: Option<Seen> = None;
        let mut batch: Vec<CutWindow> = Vec::with_capacity(WINDOWS_PER_BATCH);
        loop {
            batch.extend(windows.iter().take(WINDOWS_PER_BATCH));
            if batch.is_empty() {
                break;
            }
            let analysed: Vec<Result<Fingerprint, EngineError>> = batch
                .par_iter()
                .map(|window| {
                    engine::fingerprint_samples(
                        &window.samples,
                        window.sample_rate_hz,
                        &self.config,
                        &self.match_config,
                        Side::Query,
                    )
                })
                .collect();
            for (window, fingerprint) in batch.drain(..).zip(analysed) {
                tracklist.windows += 1;
                let fingerprint = match fingerprint {
                    Ok(fingerprint) => fingerprint,
                    Err(EngineError::Silent { .. } | EngineError::TooShort { .. }) => {
                        tracklist.silent_windows += 1;
                        continue;
                    }
                    Err(err) => return Err(err.into()),
                };
                on_progress(window.start_secs + fingerprint.duration_secs);
                let seen = Seen {
                    start_secs: window.start_secs,
                    fingerprint: Arc::new(fingerprint),
                };
                self.add_window(&mut places, previous.as_ref(), &seen)?;
                previous = Some(seen);
            }
        }
        Ok((places, tracklist))
    }
}

/// Windows cut but not yet taken for analysis, at most: each holds 10 s of decoded audio.
const WINDOWS_IN_FLIGHT: usize = 2;
/// Windows analysed together on the thread pool. With those in the channel, at most 6
/// windows (11 MB of mono audio at 44.1 kHz) are held.
const WINDOWS_PER_BATCH: usize = 4;

/// A window as the decoding thread hands it over.
struct CutWindow {
    start_secs: f64,
    samples: Vec<f32>,
    sample_rate_hz: u32,
}

/// A window analysed: where it starts in the recording, and its fingerprint.
#[derive(Clone)]
struct Seen {
    start_secs: f64,
    fingerprint: Arc<Fingerprint>,
}

/// A song is heard where at least this many of a window's landmarks land on it at its place
/// within [`DENSE_SECS`]: a few chance hits at the same offset, anywhere in a window, do not
/// make an entry start early or end late.
pub const DENSE_HITS: usize = 5;
/// See [`DENSE_HITS`].
pub const DENSE_SECS: f64 = 1.0;

impl Library {
    /// Identifies the window `seen` and adds its songs to `places`: a place it opens gets its
    /// start (from `previous` too), and a place the next window can no longer continue gets
    /// its end now, releasing its last window.
    fn add_window(
        &self,
        places: &mut Places,
        previous: Option<&Seen>,
        seen: &Seen,
    ) -> Result<(), LibraryError> {
        let identification =
            self.match_fingerprint_top(&seen.fingerprint, 0.0, SONGS_PER_WINDOW)?;
        for (place, opened) in places.add(seen.start_secs, identification) {
            let place = &mut places.open[place];
            if opened {
                self.find_start(place, previous, seen)?;
            }
            place.last_seen = Some(seen.clone());
        }
        let next_window = places.windows;
        for place in places.open.iter_mut().filter(|p| p.last_seen.is_some()) {
            if !can_continue(place, next_window) {
                self.find_end(place)?;
            }
        }
        Ok(())
    }

    /// Where `place`'s song starts, from the window that opened it (`seen`) and the one
    /// before. A song that begins inside a window is not found there (a match places the
    /// clip's start inside its song), so its entry would start with the next window, up to
    /// a hop late; with the alignment known, the window before only needs its landmarks that
    /// land on the song there. The start is the first dense run of them ([`DENSE_HITS`]);
    /// without one the match's first aligned landmark stays.
    fn find_start(
        &self,
        place: &mut Place,
        previous: Option<&Seen>,
        seen: &Seen,
    ) -> Result<(), LibraryError> {
        for window in previous.into_iter().chain(std::iter::once(seen)) {
            let times = self.aligned_times(place, window)?;
            let first_run = times
                .windows(DENSE_HITS)
                .find(|run| run[DENSE_HITS - 1] - run[0] <= DENSE_SECS);
            if let Some(run) = first_run {
                place.entry.from_secs = window.start_secs + run[0];
                place.entry.song_from_secs = place.entry.from_secs - place.song_start_secs;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Where `place`'s song ends: the end of the last dense run of its landmarks in the last
    /// window that named it (without one, the match's last aligned landmark stays).
    fn find_end(&self, place: &mut Place) -> Result<(), LibraryError> {
        let Some(seen) = place.last_seen.take() else {
            return Ok(());
        };
        let times = self.aligned_times(place, &seen)?;
        let last_run = times
            .windows(DENSE_HITS)
            .rev()
            .find(|run| run[DENSE_HITS - 1] - run[0] <= DENSE_SECS);
        if let Some(run) = last_run {
            place.entry.to_secs = seen.start_secs + run[DENSE_HITS - 1];
        }
        Ok(())
    }

    /// The times (seconds into `window`) of the window's landmarks that land on `place`'s
    /// song at its place, sorted.
    fn aligned_times(&self, place: &Place, window: &Seen) -> Result<Vec<f64>, LibraryError> {
        let offset_secs = window.start_secs - place.song_start_secs;
        let evidence = self.evidence(&window.fingerprint, place.entry.song.id, offset_secs)?;
        let mut times: Vec<f64> = evidence
            .hits
            .iter()
            .zip(&evidence.aligned)
            .filter(|&(_, &aligned)| aligned)
            .map(|(&(clip_secs, _), _)| clip_secs)
            .collect();
        times.sort_by(f64::total_cmp);
        Ok(times)
    }
}

/// Whether the window of index `window` may still join `place`: at most one window (that
/// named other songs) lies between.
fn can_continue(place: &Place, window: usize) -> bool {
    window - place.last_window <= 2
}

/// The places found so far: an entry and where its song starts in the recording.
#[derive(Default)]
struct Places {
    open: Vec<Place>,
    /// Windows seen.
    windows: usize,
}

struct Place {
    entry: TracklistEntry,
    /// Moment of the recording where the song's start lies, seconds.
    song_start_secs: f64,
    /// Index of the last window that named it.
    last_window: usize,
    /// That window, to find where the song ends in it.
    last_seen: Option<Seen>,
}

impl Places {
    /// Adds the answer of the window starting at `start_secs`; returns the places (indices
    /// in `open`) it named, each with whether it opened it.
    fn add(&mut self, start_secs: f64, identification: Identification) -> Vec<(usize, bool)> {
        let mut named = Vec::new();
        let window = self.windows;
        self.windows += 1;
        let first_aligned = identification.matches.first().map_or(0, |m| m.aligned);
        let min_aligned = SECOND_SONG_MIN_SHARE * first_aligned as f64;
        for found in identification.matches {
            if (found.aligned as f64) < min_aligned {
                continue;
            }
            let song_start_secs = start_secs - found.offset_secs;
            let from_secs = start_secs + found.aligned_from_secs;
            let to_secs = from_secs + found.aligned_span_secs;
            let same_place = |place: &Place| {
                place.entry.song.id == found.song.id
                    && can_continue(place, window)
                    && (place.song_start_secs - song_start_secs).abs() <= SAME_PLACE_SECS
            };
            if let Some(index) = self.open.iter().rposition(same_place) {
                let place = &mut self.open[index];
                let entry = &mut place.entry;
                entry.to_secs = entry.to_secs.max(to_secs);
                entry.confidence = entry.confidence.max(found.confidence);
                entry.windows += 1;
                place.last_window = window;
                named.push((index, false));
                continue;
            }
            named.push((self.open.len(), true));
            self.open.push(Place {
                entry: TracklistEntry {
                    song: found.song,
                    from_secs,
                    to_secs,
                    song_from_secs: found.offset_secs + found.aligned_from_secs,
                    confidence: found.confidence,
                    windows: 1,
                },
                song_start_secs,
                last_window: window,
                last_seen: None,
            });
        }
        named
    }

    /// The entries named by at least `min_windows` windows (counted once continuations are
    /// joined), by their start.
    fn into_entries(self, min_windows: usize) -> Vec<TracklistEntry> {
        let mut entries: Vec<TracklistEntry> =
            self.open.into_iter().map(|place| place.entry).collect();
        entries.sort_by(|a, b| {
            a.from_secs
                .total_cmp(&b.from_secs)
                .then(a.song.id.cmp(&b.song.id))
        });
        let (kept, dropped): (Vec<TracklistEntry>, Vec<TracklistEntry>) =
            merge_continuations(entries)
                .into_iter()
                .partition(|entry| entry.windows >= min_windows);
        for entry in dropped {
            tracing::debug!(
                "tracklist: song {} at {:.1}-{:.1} s (confidence {:.3}) named by {} window(s) only: left out",
                entry.song.id,
                entry.from_secs,
                entry.to_secs,
                entry.confidence,
                entry.windows
            );
        }
        kept
    }
}

/// Entries in start order with each song's entries that follow on from one another (the next
/// starts within a hop of the previous one's end) joined: a song built on loops, heard under
/// noise, is matched by some windows at another repeat than the one playing (and a window
/// a song fades in on, at a bar like the one playing), which is still one song playing on.
/// The joined entry takes the place in the song of its part named by most windows, counted
/// back to the joined entry's start (unless that falls before the song's start).
fn merge_continuations(entries: Vec<TracklistEntry>) -> Vec<TracklistEntry> {
    // Each joined entry, with the windows of its strongest part so far.
    let mut merged: Vec<(TracklistEntry, usize)> = Vec::with_capacity(entries.len());
    for entry in entries {
        let previous = merged
            .iter_mut()
            .rev()
            .find(|(earlier, _)| earlier.song.id == entry.song.id);
        match previous {
            Some((earlier, strongest)) if entry.from_secs <= earlier.to_secs + HOP_SECS => {
                // Counted back, a part at another repeat can put the start before the song's.
                let counted_back = entry.song_from_secs - (entry.from_secs - earlier.from_secs);
                if entry.windows > *strongest && counted_back >= 0.0 {
                    *strongest = entry.windows;
                    earlier.song_from_secs = counted_back;
                }
                earlier.to_secs = earlier.to_secs.max(entry.to_secs);
                earlier.confidence = earlier.confidence.max(entry.confidence);
                earlier.windows += entry.windows;
            }
            _ => {
                let windows = entry.windows;
                merged.push((entry, windows));
            }
        }
    }
    merged.into_iter().map(|(entry, _)| entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        song_id: i64,
        from_secs: f64,
        to_secs: f64,
        song_from_secs: f64,
        windows: usize,
    ) -> TracklistEntry {
        TracklistEntry {
            song: SongRecord {
                id: song_id,
                title: format!("song {song_id}"),
                artist: None,
                album: None,
                duration_secs: 300.0,
                path: None,
                file_size: None,
                file_mtime: None,
                content_hash: String::new(),
                added_at: 0,
                num_frames: 0,
                num_peaks: 0,
            },
            from_secs,
            to_secs,
            song_from_secs,
            confidence: 0.9,
            windows,
        }
    }

    fn summary(entries: &[TracklistEntry]) -> Vec<(i64, f64, f64, f64, usize)> {
        entries
            .iter()
            .map(|e| {
                (
                    e.song.id,
                    e.from_secs,
                    e.to_secs,
                    e.song_from_secs,
                    e.windows,
                )
            })
            .collect()
    }

    #[test]
    fn parts_of_a_song_that_follow_on_are_joined_at_the_strongest_part_s_place() {
        let joined = merge_continuations(vec![
            // A fade-in window at a bar like the one playing, then the song for 40 s.
            entry(1, 10.0, 14.0, 31.0, 1),
            entry(2, 12.0, 30.0, 0.0, 4),
            entry(1, 15.0, 55.0, 35.0, 8),
            // The same song again a minute later: another entry.
            entry(1, 120.0, 150.0, 90.0, 6),
        ]);
        assert_eq!(
            summary(&joined),
            [
                (1, 10.0, 55.0, 30.0, 9),
                (2, 12.0, 30.0, 0.0, 4),
                (1, 120.0, 150.0, 90.0, 6),
            ]
        );
    }

    #[test]
    fn a_place_counted_back_before_the_song_s_start_is_not_taken() {
        let joined = merge_continuations(vec![
            entry(1, 70.0, 80.0, 21.0, 2),
            entry(1, 84.0, 110.0, 9.0, 5),
        ]);
        assert_eq!(summary(&joined), [(1, 70.0, 110.0, 21.0, 7)]);
    }
}
