//! Songs of the library that share audio: the same recording indexed from two files (a FLAC
//! and its MP3, a track on two albums), or a track that holds another (a medley, a mix).
//!
//! Each song's own peaks, as the index keeps them, are played back as clips at three places
//! (centred on a quarter, a half and three quarters of the song, [`EXCERPT_SECS`] each, or
//! the whole song when it is shorter) and matched like any clip. Another song that answers at
//! least two of them (the one clip of a short song) at one alignment, within
//! [`ALIGNMENT_TOLERANCE_SECS`], holds the song's audio: its start lies at that offset of the
//! other song. No file is read, so moved or deleted files are checked too.

use std::collections::HashMap;

use super::{Library, LibraryError};
use crate::engine::{Fingerprint, Peak};

/// Length of each excerpt played back, seconds.
pub const EXCERPT_SECS: f64 = 10.0;
/// Two excerpts agree on an alignment when their offsets differ by at most this.
pub const ALIGNMENT_TOLERANCE_SECS: f64 = 0.5;

/// One song's audio found in another song.
#[derive(Clone, Debug, PartialEq)]
pub struct HeardIn {
    /// The song whose excerpts were played.
    pub song_id: i64,
    /// The song that answered them.
    pub other_id: i64,
    /// Where the song's start lies in the other song, seconds (negative: the song starts
    /// before the other one does, which then lies inside it).
    pub offset_secs: f64,
    /// Excerpts the other song answered at that alignment, of those played.
    pub excerpts_matched: usize,
    /// Excerpts played.
    pub excerpts_played: usize,
}

impl Library {
    /// The other songs that hold the audio of song `song_id` (none when it has no peaks or is
    /// not in the index).
    pub fn heard_in_other_songs(&self, song_id: i64) -> Result<Vec<HeardIn>, LibraryError> {
        self.ensure_loaded()?;
        let Some(span) = self.index.span_of(song_id).copied() else {
            return Ok(Vec::new());
        };
        let frame_secs = self.config.frame_secs();
        let excerpt_frames = (EXCERPT_SECS / frame_secs).round() as u32;
        let starts: Vec<u32> = if span.num_frames <= excerpt_frames {
            vec![0]
        } else {
            [1, 2, 3]
                .iter()
                .map(|quarter| {
                    let centre = span.num_frames * quarter / 4;
                    centre
                        .saturating_sub(excerpt_frames / 2)
                        .min(span.num_frames - excerpt_frames)
                })
                .collect()
        };
        // (other song, its offset for the song's start) of each excerpt's answers.
        let mut answers: Vec<(i64, f64)> = Vec::new();
        for &start in &starts {
            let end = (start + excerpt_frames).min(span.num_frames);
            let peaks: Vec<Peak> = self
                .index
                .song_peaks_between(&span, start..end)
                .map(|peak| Peak {
                    frame: peak.frame - start,
                    bin: peak.bin,
                })
                .collect();
            let clip = Fingerprint {
                peaks,
                num_frames: end - start,
                duration_secs: f64::from(end - start) * frame_secs,
                contrast: None,
            };
            // The scorer's matches are enough: their songs' records and repeats are not needed.
            let outcome = self.score_fingerprint(&clip);
            answers.extend(
                outcome
                    .matches
                    .iter()
                    .filter(|found| found.song_id != song_id)
                    .map(|found| {
                        let offset_frames = found.offset_frames - f64::from(start);
                        (found.song_id, offset_frames * frame_secs)
                    }),
            );
        }
        Ok(agreeing_answers(song_id, &answers, starts.len()))
    }
}

/// The other songs that answered enough of the `played` excerpts at one alignment: at least
/// two, or the one excerpt of a short song. Each is reported at the median offset of the
/// largest group of answers that agree within [`ALIGNMENT_TOLERANCE_SECS`].
fn agreeing_answers(song_id: i64, answers: &[(i64, f64)], played: usize) -> Vec<HeardIn> {
    let needed = played.min(2);
    let mut by_song: HashMap<i64, Vec<f64>> = HashMap::new();
    for &(other_id, offset) in answers {
        by_song.entry(other_id).or_default().push(offset);
    }
    let mut found: Vec<HeardIn> = by_song
        .into_iter()
        .filter_map(|(other_id, mut offsets)| {
            offsets.sort_by(f64::total_cmp);
            let group = offsets
                .iter()
                .map(|&o| {
                    offsets
                        .iter()
                        .copied()
                        .filter(|p| (p - o).abs() <= ALIGNMENT_TOLERANCE_SECS)
                        .collect::<Vec<f64>>()
                })
                .max_by_key(Vec::len)?;
            (group.len() >= needed).then(|| HeardIn {
                song_id,
                other_id,
                offset_secs: group[group.len() / 2],
                excerpts_matched: group.len(),
                excerpts_played: played,
            })
        })
        .collect();
    found.sort_by_key(|heard| heard.other_id);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_agree_on_an_alignment_count() {
        // Song 2 answers all three excerpts, two of them at one alignment; song 3 twice but
        // 4 s apart (a loop of its own, not this song's audio); song 4 once.
        let answers = [
            (2, 10.1),
            (3, 5.0),
            (2, 10.3),
            (4, 1.0),
            (3, 9.0),
            (2, 40.0),
        ];
        let found = agreeing_answers(1, &answers, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].other_id, 2);
        // The median of the agreeing pair (10.1, 10.3) is the upper one.
        assert_eq!(found[0].offset_secs, 10.3);
        assert_eq!(
            (found[0].excerpts_matched, found[0].excerpts_played),
            (2, 3)
        );
        // A short song plays one excerpt; one answer is enough.
        assert_eq!(agreeing_answers(1, &[(5, 0.0)], 1).len(), 1);
    }
}
