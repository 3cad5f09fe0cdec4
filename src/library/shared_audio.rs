//! Songs of the library that share audio: the same recording indexed from two files (a FLAC
//! and its MP3, a track on two albums), or a track that holds another (a medley, a mix).
//!
//! Each song's own peaks, as the index keeps them, are played back as clips at three places
//! (centred on a quarter, a half and three quarters of the song, [`EXCERPT_SECS`] each, or
//! the whole song when it is shorter) and matched like any clip. Another song that answers at
//! least two of them (the one clip of a short song) at one alignment, within
//! [`ALIGNMENT_TOLERANCE_SECS`], holds the song's audio: its start lies at that offset of the
//! other song. No file is read, so moved or deleted files are checked too.
//!
//! [`classify_findings`] turns the findings of several songs into what a user reads: pairs
//! that hold each other at the same alignment are the same audio, a song found in another
//! from its start on is heard in it. `audiofp duplicates` checks every song;
//! [`Library::shared_audio_of`] checks one song and the songs that answered it.

use std::collections::HashMap;

use serde::Serialize;

use super::{Library, LibraryError};
use crate::engine::{Fingerprint, Peak};

/// Length of each excerpt played back, seconds.
pub const EXCERPT_SECS: f64 = 10.0;
/// Two excerpts agree on an alignment when their offsets differ by at most this. A copy's
/// excerpts agree within a frame or two (32 ms each); at 0.5 s, two chance answers of one song
/// 0.41 s apart made one false finding among 50,000 generated songs (docs/BENCHMARK.md,
/// "Finding shared audio").
pub const ALIGNMENT_TOLERANCE_SECS: f64 = 0.1;

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
    /// The song's length, seconds (as the index holds it).
    pub song_secs: f64,
    /// The other song's length, seconds.
    pub other_secs: f64,
}

/// Two songs that hold each other from the start are the same audio when their lengths
/// differ by at most this (a copy may carry a little more silence at its end); otherwise the
/// shorter one is heard in the longer one (a mix that starts with a song).
pub const SAME_LENGTH_TOLERANCE_SECS: f64 = 2.0;

/// A song whose audio lies inside another, longer song.
#[derive(Clone, Debug, PartialEq)]
pub struct Containment {
    /// The song heard inside the other.
    pub song_id: i64,
    /// The song that holds it.
    pub in_song_id: i64,
    /// Where the song starts in the other song, seconds.
    pub from_secs: f64,
}

/// What findings say, in the order found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SharedAudioReport {
    /// Pairs of songs with the same audio from start to end, lower id first.
    pub same_audio: Vec<[i64; 2]>,
    /// Songs heard inside another song.
    pub contained: Vec<Containment>,
}

/// How another song shares a song's audio, from the song's side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SharedAudioRelation {
    /// The same audio from start to end (the same recording in another file).
    SameAudio,
    /// The song is heard inside the other one from this time, seconds.
    HeardIn(f64),
    /// The other song is heard inside this one from this time, seconds.
    Contains(f64),
}

impl SharedAudioReport {
    /// Song `song_id`'s side of the report: each other song it names with `song_id`, and how
    /// they share audio; the same audio first, then the songs it is heard in, then those it
    /// contains, each by id.
    pub fn relations_of(&self, song_id: i64) -> Vec<(i64, SharedAudioRelation)> {
        let same = self.same_audio.iter().filter_map(|&[a, b]| {
            let other = if a == song_id { b } else { a };
            (a == song_id || b == song_id).then_some((other, SharedAudioRelation::SameAudio))
        });
        let contained = self.contained.iter().filter_map(|c| {
            if c.song_id == song_id {
                Some((c.in_song_id, SharedAudioRelation::HeardIn(c.from_secs)))
            } else {
                (c.in_song_id == song_id)
                    .then_some((c.song_id, SharedAudioRelation::Contains(c.from_secs)))
            }
        });
        let rank = |relation: &SharedAudioRelation| match relation {
            SharedAudioRelation::SameAudio => 0,
            SharedAudioRelation::HeardIn(_) => 1,
            SharedAudioRelation::Contains(_) => 2,
        };
        let mut relations: Vec<_> = same.chain(contained).collect();
        relations.sort_by_key(|(other, relation)| (rank(relation), *other));
        relations
    }
}

/// One song's shared audio, as `GET /api/v1/songs/{id}/shared-audio` and
/// `audiofp duplicates ID --json` write it (docs/API.md).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SongSharedAudio {
    /// The song asked about.
    pub song_id: i64,
    /// Songs with the same audio from start to end (the same recording in another file).
    pub same_audio: Vec<i64>,
    /// Songs this song is heard inside (a medley, a mix), with where it starts in them.
    pub heard_in: Vec<SongAt>,
    /// Songs heard inside this one, with where they start in it.
    pub contains: Vec<SongAt>,
}

/// A song and where the shorter of two songs starts in the longer one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SongAt {
    /// Song id.
    pub song_id: i64,
    /// Where the shorter song starts in the longer one, seconds.
    pub from_seconds: f64,
}

impl SongSharedAudio {
    /// Song `song_id`'s side of `report`, in [`SharedAudioReport::relations_of`]'s order.
    pub fn of_song(song_id: i64, report: &SharedAudioReport) -> Self {
        let mut side = Self {
            song_id,
            same_audio: Vec::new(),
            heard_in: Vec::new(),
            contains: Vec::new(),
        };
        for (other, relation) in report.relations_of(song_id) {
            let at = |from_seconds| SongAt {
                song_id: other,
                from_seconds,
            };
            match relation {
                SharedAudioRelation::SameAudio => side.same_audio.push(other),
                SharedAudioRelation::HeardIn(from) => side.heard_in.push(at(from)),
                SharedAudioRelation::Contains(from) => side.contains.push(at(from)),
            }
        }
        side
    }
}

/// Pairs of songs of the same length that each hold the other at the same alignment are the
/// same audio; a song found in another from its start on (the other does not start inside
/// it), and not longer than it, is heard in it. Findings whose song starts before the other
/// (a negative offset), or is the longer of the two, are the other's side of a containment,
/// reported from that side.
pub fn classify_findings(found: &[HeardIn]) -> SharedAudioReport {
    let mutual = |a: &HeardIn| {
        (a.song_secs - a.other_secs).abs() <= SAME_LENGTH_TOLERANCE_SECS
            && found.iter().any(|b| {
                b.song_id == a.other_id
                    && b.other_id == a.song_id
                    && a.offset_secs.abs() <= ALIGNMENT_TOLERANCE_SECS
                    && b.offset_secs.abs() <= ALIGNMENT_TOLERANCE_SECS
            })
    };
    let mut report = SharedAudioReport::default();
    for heard in found {
        if mutual(heard) {
            if heard.song_id < heard.other_id {
                report.same_audio.push([heard.song_id, heard.other_id]);
            }
        } else if heard.offset_secs >= -ALIGNMENT_TOLERANCE_SECS
            && heard.song_secs <= heard.other_secs + SAME_LENGTH_TOLERANCE_SECS
        {
            report.contained.push(Containment {
                song_id: heard.song_id,
                in_song_id: heard.other_id,
                from_secs: heard.offset_secs.max(0.0),
            });
        }
    }
    report
}

/// The answers of one song's excerpts: (other song, its offset for the song's start, seconds)
/// of each excerpt's matches, and how many excerpts were played.
struct ExcerptAnswers {
    answers: Vec<(i64, f64)>,
    played: usize,
}

impl Library {
    /// What the library holds of song `song_id`'s audio, as [`classify_findings`] tells it
    /// from the song's findings and those of every song that answered one of its excerpts
    /// (each pair is checked from both sides, as `audiofp duplicates` does). Every entry
    /// names `song_id`. An answering song is checked back even when its answers did not agree:
    /// a song inside this one may answer at one of its own repeats. A song lying inside this
    /// one that answered none of its excerpts (one shorter than an excerpt's overlap with it)
    /// is found from its own side only.
    pub fn shared_audio_of(&self, song_id: i64) -> Result<SharedAudioReport, LibraryError> {
        let excerpts = self.excerpt_answers(song_id)?;
        let mut found = self.agreeing_answers(song_id, &excerpts);
        let mut answering: Vec<i64> = excerpts.answers.iter().map(|&(id, _)| id).collect();
        answering.sort_unstable();
        answering.dedup();
        tracing::debug!(
            "song {song_id}: {} excerpts answered {} times by {} other songs, each checked back",
            excerpts.played,
            excerpts.answers.len(),
            answering.len()
        );
        for other in answering {
            let back = self.heard_in_other_songs(other)?;
            found.extend(back.into_iter().filter(|b| b.other_id == song_id));
        }
        Ok(classify_findings(&found))
    }

    /// The other songs that hold the audio of song `song_id` (none when it has no peaks or is
    /// not in the index).
    pub fn heard_in_other_songs(&self, song_id: i64) -> Result<Vec<HeardIn>, LibraryError> {
        let excerpts = self.excerpt_answers(song_id)?;
        Ok(self.agreeing_answers(song_id, &excerpts))
    }

    /// [`agreeing_answers`] of song `song_id`'s excerpts, with the songs' lengths.
    fn agreeing_answers(&self, song_id: i64, excerpts: &ExcerptAnswers) -> Vec<HeardIn> {
        let frame_secs = self.config.frame_secs();
        let length_secs = |id: i64| {
            self.index
                .span_of(id)
                .map_or(0.0, |span| f64::from(span.num_frames) * frame_secs)
        };
        agreeing_answers(song_id, &excerpts.answers, excerpts.played, length_secs)
    }

    /// Plays song `song_id`'s excerpts and gathers the other songs' answers.
    fn excerpt_answers(&self, song_id: i64) -> Result<ExcerptAnswers, LibraryError> {
        self.ensure_loaded()?;
        let Some(span) = self.index.span_of(song_id).copied() else {
            return Ok(ExcerptAnswers {
                answers: Vec::new(),
                played: 0,
            });
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
            let outcome = self.score_fingerprint(&clip, self.match_config.top_n);
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
        tracing::trace!(
            "song {song_id}: excerpts at frames {starts:?} answered by (song, offset s) {answers:?}"
        );
        Ok(ExcerptAnswers {
            answers,
            played: starts.len(),
        })
    }
}

/// The other songs that answered enough of the `played` excerpts at one alignment: at least
/// two, or the one excerpt of a short song. Each is reported at the median offset of the
/// largest group of answers that agree within [`ALIGNMENT_TOLERANCE_SECS`], with the two
/// songs' lengths from `length_secs` (asked only of what is reported).
fn agreeing_answers(
    song_id: i64,
    answers: &[(i64, f64)],
    played: usize,
    length_secs: impl Fn(i64) -> f64,
) -> Vec<HeardIn> {
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
                song_secs: length_secs(song_id),
                other_secs: length_secs(other_id),
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
        // 4 s apart (a loop of its own, not this song's audio), song 5 twice 0.4 s apart
        // (chance answers); song 4 once.
        let answers = [
            (2, 10.1),
            (3, 5.0),
            (2, 10.15),
            (4, 1.0),
            (5, 22.1),
            (3, 9.0),
            (2, 40.0),
            (5, 21.7),
        ];
        let found = agreeing_answers(1, &answers, 3, |id| 100.0 + id as f64);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].other_id, 2);
        // The median of the agreeing pair (10.1, 10.15) is the upper one.
        assert_eq!(found[0].offset_secs, 10.15);
        assert_eq!(
            (found[0].excerpts_matched, found[0].excerpts_played),
            (2, 3)
        );
        // A short song plays one excerpt; one answer is enough.
        assert_eq!((found[0].song_secs, found[0].other_secs), (101.0, 102.0));
        assert_eq!(agreeing_answers(1, &[(5, 0.0)], 1, |_| 10.0).len(), 1);
    }

    /// Song `song_id` found in `other_id` at `offset_secs`, both 100 s long.
    fn heard(song_id: i64, other_id: i64, offset_secs: f64) -> HeardIn {
        HeardIn {
            song_id,
            other_id,
            offset_secs,
            excerpts_matched: 2,
            excerpts_played: 3,
            song_secs: 100.0,
            other_secs: 100.0,
        }
    }

    #[test]
    fn findings_are_classified_from_both_sides() {
        // 1 and 2 hold each other at 0 s: one pair. 3 lies in 4 from 10 s (4's side of it,
        // at -10 s, is not reported again). 5 finds 6 at 0.05 s but 6 finds 5 at 30 s: a
        // loop, not the same audio; 5 is heard in 6 from 0.05 s, 6 in 5 from 30 s.
        let found = [
            heard(1, 2, 0.05),
            heard(2, 1, -0.05),
            heard(3, 4, 10.0),
            heard(4, 3, -10.0),
            heard(5, 6, 0.05),
            heard(6, 5, 30.0),
        ];
        let report = classify_findings(&found);
        assert_eq!(report.same_audio, vec![[1, 2]]);
        let contained: Vec<(i64, i64, f64)> = report
            .contained
            .iter()
            .map(|c| (c.song_id, c.in_song_id, c.from_secs))
            .collect();
        assert_eq!(contained, vec![(3, 4, 10.0), (5, 6, 0.05), (6, 5, 30.0)]);
        // Song 5's side: heard in 6 from 0.05 s, and 6 heard in it from 30 s; song 2's: 1.
        assert_eq!(
            report.relations_of(5),
            vec![
                (6, SharedAudioRelation::HeardIn(0.05)),
                (6, SharedAudioRelation::Contains(30.0))
            ]
        );
        assert_eq!(
            report.relations_of(2),
            vec![(1, SharedAudioRelation::SameAudio)]
        );
        assert_eq!(
            report.relations_of(4),
            vec![(3, SharedAudioRelation::Contains(10.0))]
        );
        assert_eq!(report.relations_of(9), vec![]);
        let side = SongSharedAudio::of_song(5, &report);
        assert_eq!(side.same_audio, Vec::<i64>::new());
        assert_eq!(
            (side.heard_in[0].song_id, side.heard_in[0].from_seconds),
            (6, 0.05)
        );
        assert_eq!(
            (side.contains[0].song_id, side.contains[0].from_seconds),
            (6, 30.0)
        );
        // A song found in another a little before its start is heard from 0 s.
        let report = classify_findings(&[heard(7, 8, -0.08)]);
        assert_eq!(report.contained[0].from_secs, 0.0);

        // A 60 s mix that starts with a 30 s song: both hold each other from the start, but
        // the song is heard in the mix, not the same audio; a copy 1.5 s longer (silence at
        // its end) is still the same audio.
        let song_in_mix = HeardIn {
            other_secs: 60.0,
            song_secs: 30.0,
            ..heard(11, 10, 0.02)
        };
        let mix_in_song = HeardIn {
            other_secs: 30.0,
            song_secs: 60.0,
            ..heard(10, 11, -0.02)
        };
        let report = classify_findings(&[song_in_mix, mix_in_song]);
        assert_eq!(report.same_audio, Vec::<[i64; 2]>::new());
        assert_eq!(
            report.relations_of(10),
            vec![(11, SharedAudioRelation::Contains(0.02))]
        );
        let longer_copy = HeardIn {
            other_secs: 101.5,
            ..heard(12, 13, 0.0)
        };
        let copy_side = HeardIn {
            song_secs: 101.5,
            ..heard(13, 12, 0.0)
        };
        assert_eq!(
            classify_findings(&[longer_copy, copy_side]).same_audio,
            vec![[12, 13]]
        );
    }
}
