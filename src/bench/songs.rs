//! Songs for `bench --scale`: fingerprints of thousands of songs that no one has to decode.
//!
//! What a large library costs a query depends on how many postings each of its keys meets,
//! which depends on how real music's peaks spread over the keys, not only on how many peaks
//! there are. Two generators, both deterministic (song `n` is always the same):
//!
//! - [`CorpusSongs`] (the default): every song is a chain of 5-20 s excerpts of real songs'
//!   constellations, each transposed by 1-6 semitones up or down and played 10 % slower to
//!   10 % faster. The excerpts keep real music's structure (chords, harmonics, repeated notes,
//!   the skew to the low band) and its tuning (transposed notes land on notes again), so the
//!   keys of different songs coincide about as often as real songs' do; transposition, tempo
//!   and cut make every song new, so a clip of a real song does not find its own audio in
//!   them.
//! - [`SyntheticSongs`]: peaks spread evenly in time, bins drawn independently (skewed low).
//!   The keys of two such songs coincide less than half as often as two real songs'
//!   (`scripts/key-spread.py`), so lookups meet fewer postings than in a real library of the
//!   same size: kept to compare with earlier figures.

use crate::config::FingerprintConfig;
use crate::engine::Peak;

/// Length of every generated song.
pub const SONG_SECS: f64 = 240.0;

/// Shortest and longest excerpt of a [`CorpusSongs`] song, seconds.
const EXCERPT_SECS: (f64, f64) = (5.0, 20.0);
/// Smallest and largest transposition of an excerpt, semitones (up or down; never 0).
const SEMITONES: (u32, u32) = (1, 6);
/// Largest change of an excerpt's tempo, as a fraction (0.1: 10 % slower to 10 % faster).
const TEMPO_CHANGE: f64 = 0.1;

/// A generator of scale-run songs.
#[derive(Clone, Debug)]
pub enum GeneratedSongs {
    /// Excerpts of real constellations, transposed and re-timed.
    Corpus(CorpusSongs),
    /// Independent peaks at a given density.
    Synthetic(SyntheticSongs),
}

impl GeneratedSongs {
    /// Frames of every generated song.
    pub fn frames_per_song(&self) -> u32 {
        match self {
            Self::Corpus(songs) => songs.frames_per_song,
            Self::Synthetic(songs) => songs.frames_per_song,
        }
    }

    /// The peaks of generated song `song`, into `out` (sorted by frame, then bin; no
    /// duplicates).
    pub fn peaks(&self, song: usize, out: &mut Vec<Peak>) {
        match self {
            Self::Corpus(songs) => songs.peaks(song, out),
            Self::Synthetic(songs) => songs.peaks(song, out),
        }
    }

    /// What the songs are, for the bench's report.
    pub fn describe(&self) -> String {
        match self {
            Self::Corpus(songs) => format!(
                "excerpts of {} corpus songs, transposed and re-timed",
                songs.sources.len()
            ),
            Self::Synthetic(songs) => {
                format!(
                    "synthetic peaks at {:.1} per second",
                    songs.peaks_per_second
                )
            }
        }
    }
}

/// Songs of independent peaks: frames spread evenly with jitter, bins skewed low as in real
/// music (more energy and more peaks in the lower band).
#[derive(Clone, Debug)]
pub struct SyntheticSongs {
    frames_per_song: u32,
    peaks_per_second: f64,
    peaks_per_song: usize,
    band_bins: u32,
}

impl SyntheticSongs {
    /// Songs for `config`'s analysis at `peaks_per_second`.
    pub fn new(config: &FingerprintConfig, peaks_per_second: f64) -> Self {
        Self {
            frames_per_song: (SONG_SECS * config.frames_per_second()) as u32,
            peaks_per_second,
            peaks_per_song: (SONG_SECS * peaks_per_second) as usize,
            band_bins: config.band_bins() as u32,
        }
    }

    fn peaks(&self, song: usize, out: &mut Vec<Peak>) {
        let mut random = SplitMix64::new(song as u64);
        out.clear();
        for i in 0..self.peaks_per_song {
            let frame = ((i as u64 * u64::from(self.frames_per_song)) / self.peaks_per_song as u64
                + random.next() % 3) as u32;
            let u = (random.next() % 1_000_000) as f64 / 1_000_000.0;
            let bin = ((u * u) * f64::from(self.band_bins - 1)) as u16;
            out.push(Peak { frame, bin });
        }
        out.sort_unstable();
        out.dedup();
    }
}

/// Songs made of excerpts of real constellations, each transposed and re-timed.
#[derive(Clone, Debug)]
pub struct CorpusSongs {
    frames_per_song: u32,
    excerpt_frames: (u32, u32),
    semitones: (u32, u32),
    tempo_change: f64,
    first_bin: f64,
    band_bins: u16,
    /// Each source song's peaks and frame count; only sources longer than the longest
    /// excerpt are kept.
    sources: Vec<(Vec<Peak>, u32)>,
}

impl CorpusSongs {
    /// Songs for `config`'s analysis cut from `sources` (each a song's peaks and its frame
    /// count), or `None` when no source is longer than the longest excerpt.
    pub fn new(config: &FingerprintConfig, sources: Vec<(Vec<Peak>, u32)>) -> Option<Self> {
        let fps = config.frames_per_second();
        let excerpt_frames = ((EXCERPT_SECS.0 * fps) as u32, (EXCERPT_SECS.1 * fps) as u32);
        let sources: Vec<_> = sources
            .into_iter()
            .filter(|(peaks, frames)| *frames > excerpt_frames.1 && !peaks.is_empty())
            .collect();
        (!sources.is_empty()).then(|| Self {
            frames_per_song: (SONG_SECS * fps) as u32,
            excerpt_frames,
            semitones: SEMITONES,
            tempo_change: TEMPO_CHANGE,
            first_bin: config.first_bin() as f64,
            band_bins: config.band_bins() as u16,
            sources,
        })
    }

    fn peaks(&self, song: usize, out: &mut Vec<Peak>) {
        // A different stream from the synthetic songs' for the same song number.
        let mut random = SplitMix64::new(!(song as u64));
        out.clear();
        let mut start_frame = 0u32;
        while start_frame < self.frames_per_song {
            let (source_peaks, source_frames) =
                &self.sources[(random.next() % self.sources.len() as u64) as usize];
            let (shortest, longest) = self.excerpt_frames;
            let length = shortest + (random.next() % u64::from(longest - shortest + 1)) as u32;
            let from = (random.next() % u64::from(source_frames - length + 1)) as u32;
            let (least, most) = self.semitones;
            let semitones = least + (random.next() % u64::from(most - least + 1)) as u32;
            let up = random.next().is_multiple_of(2);
            let pitch = 2f64.powf(f64::from(semitones) / 12.0);
            let pitch = if up { pitch } else { 1.0 / pitch };
            // Stretch in [1 - change, 1 + change].
            let stretch = 1.0 - self.tempo_change
                + 2.0 * self.tempo_change * (random.next() % 1_000_001) as f64 / 1_000_000.0;
            let first = source_peaks.partition_point(|peak| peak.frame < from);
            for peak in source_peaks[first..]
                .iter()
                .take_while(|peak| peak.frame < from + length)
            {
                let frame = start_frame + (f64::from(peak.frame - from) * stretch).round() as u32;
                let bin = ((f64::from(peak.bin) + self.first_bin) * pitch - self.first_bin).round();
                if frame < self.frames_per_song && (0.0..f64::from(self.band_bins)).contains(&bin) {
                    out.push(Peak {
                        frame,
                        bin: bin as u16,
                    });
                }
            }
            start_frame += (f64::from(length) * stretch).round().max(1.0) as u32;
        }
        // Rounding can bring two peaks onto one place, swap two bins of a frame, or put the
        // last peak of an excerpt on the next one's first frame.
        out.sort_unstable();
        out.dedup();
    }
}

/// SplitMix64: a small, fast, well-mixed deterministic generator (Steele, Lea, Flood 2014).
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::landmarks::{PairingRule, landmarks};
    use std::collections::{HashMap, HashSet};

    /// A source song of `secs` seconds: 15 peaks per second at random frames and bins.
    fn source(config: &FingerprintConfig, secs: f64, seed: u64) -> (Vec<Peak>, u32) {
        let frames = (secs * config.frames_per_second()) as u32;
        let mut random = SplitMix64::new(seed);
        let mut peaks: Vec<Peak> = (0..(secs * 15.0) as usize)
            .map(|_| Peak {
                frame: (random.next() % u64::from(frames)) as u32,
                bin: (random.next() % config.band_bins() as u64) as u16,
            })
            .collect();
        peaks.sort_unstable();
        peaks.dedup();
        (peaks, frames)
    }

    /// The largest number of `song`'s landmarks that agree on one time offset against
    /// `source`'s: what the matcher's histogram would find if `source` were a clip.
    fn best_alignment(source: &[Peak], song: &[Peak]) -> usize {
        let rule = PairingRule {
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
            dt_tolerance: false,
        };
        let (mut clip_landmarks, mut song_landmarks) = (Vec::new(), Vec::new());
        landmarks(source, rule, &mut clip_landmarks);
        landmarks(song, rule, &mut song_landmarks);
        let mut frames_of_key: HashMap<u32, Vec<u32>> = HashMap::new();
        for landmark in &clip_landmarks {
            frames_of_key
                .entry(landmark.key)
                .or_default()
                .push(landmark.frame);
        }
        let mut offsets: HashMap<i64, usize> = HashMap::new();
        for landmark in &song_landmarks {
            for &clip_frame in frames_of_key.get(&landmark.key).into_iter().flatten() {
                *offsets
                    .entry(i64::from(landmark.frame) - i64::from(clip_frame))
                    .or_default() += 1;
            }
        }
        offsets.into_values().max().unwrap_or(0)
    }

    #[test]
    fn corpus_songs_are_sorted_full_length_deterministic_and_all_different() {
        let config = FingerprintConfig::default();
        let songs = CorpusSongs::new(
            &config,
            vec![source(&config, 60.0, 1), source(&config, 90.0, 2)],
        )
        .expect("sources are long enough");
        let generated = GeneratedSongs::Corpus(songs);
        let (mut first, mut again) = (Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        for song in 0..20 {
            generated.peaks(song, &mut first);
            generated.peaks(song, &mut again);
            assert_eq!(first, again, "song {song} is deterministic");
            assert!(first.windows(2).all(|pair| pair[0] < pair[1]));
            assert!(first.last().expect("peaks").frame < generated.frames_per_song());
            // The sources' density (15 per second), give or take the tempo changes and the
            // peaks transposed out of the band.
            let per_second = first.len() as f64 / SONG_SECS;
            assert!((12.0..=17.0).contains(&per_second), "{per_second}");
            assert!(
                first
                    .iter()
                    .all(|peak| usize::from(peak.bin) < config.band_bins())
            );
            assert!(seen.insert(first.clone()), "song {song} repeats another");
        }
    }

    #[test]
    fn a_source_song_does_not_find_its_audio_in_generated_songs() {
        let config = FingerprintConfig::default();
        let (peaks, frames) = source(&config, 60.0, 3);
        let transposed = CorpusSongs::new(&config, vec![(peaks.clone(), frames)]).expect("long");
        // The same excerpts as they are: what the check below must catch.
        let copied = CorpusSongs {
            semitones: (0, 0),
            tempo_change: 0.0,
            ..transposed.clone()
        };
        let mut song = Vec::new();
        for number in 0..5 {
            copied.peaks(number, &mut song);
            let aligned = best_alignment(&peaks, &song);
            // An excerpt of at least 5 s holds hundreds of landmarks of the source.
            assert!(aligned > 200, "copied song {number}: {aligned}");

            transposed.peaks(number, &mut song);
            let chance = best_alignment(&peaks, &song);
            assert!(
                chance < 10,
                "transposed song {number}: {chance} landmarks align"
            );
        }
    }

    #[test]
    fn sources_too_short_for_an_excerpt_give_no_generator() {
        let config = FingerprintConfig::default();
        assert!(CorpusSongs::new(&config, vec![source(&config, 10.0, 1)]).is_none());
        assert!(CorpusSongs::new(&config, Vec::new()).is_none());
    }

    #[test]
    fn synthetic_songs_hold_the_density_asked_for() {
        let config = FingerprintConfig::default();
        let songs = GeneratedSongs::Synthetic(SyntheticSongs::new(&config, 15.0));
        let mut peaks = Vec::new();
        songs.peaks(7, &mut peaks);
        let per_second = peaks.len() as f64 / SONG_SECS;
        assert!((14.0..=15.0).contains(&per_second), "{per_second}");
        assert!(peaks.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
