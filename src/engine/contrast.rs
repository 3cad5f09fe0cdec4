//! A clip's spectral contrast map: for every frame and band bin, how far the bin stands above
//! the mean of its neighbourhood in the same frame (the measure the peak picker ranks
//! candidates by), in whole dB.
//!
//! Peaks keep only the few strongest points of a clip; under heavy noise most of a song's peaks
//! are no longer peaks of the clip, yet the song's energy is still there, a few dB above the
//! noise. Verification ([`super::verify`]) reads this map at the song's peak positions to use
//! that evidence. Only queries keep a map, and only for their first [`MAX_SECS`] seconds.

use super::peaks::CONTRAST_HALF_WIDTH;
use crate::config::FingerprintConfig;

/// Seconds of a clip the map covers (about 0.8 MB at the default band).
pub const MAX_SECS: f64 = 60.0;

/// Contrast in dB (clamped to the `i8` range) per frame and band bin, frame-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContrastMap {
    bins: usize,
    max_frames: usize,
    values: Vec<i8>,
}

impl ContrastMap {
    /// An empty map for `config`'s band.
    pub fn new(config: &FingerprintConfig) -> Self {
        Self {
            bins: config.band_bins(),
            max_frames: (MAX_SECS * config.frames_per_second()).ceil() as usize,
            values: Vec::new(),
        }
    }

    /// Appends one frame of band levels (dB); frames past [`MAX_SECS`] are ignored.
    pub fn push_frame(&mut self, level_db: &[f32]) {
        if self.frames() >= self.max_frames || level_db.len() != self.bins {
            return;
        }
        // prefix[i]: the sum of the first i levels.
        let prefix: Vec<f64> = std::iter::once(0.0)
            .chain(level_db.iter().scan(0.0, |sum, &level| {
                *sum += f64::from(level);
                Some(*sum)
            }))
            .collect();
        for (bin, &level) in level_db.iter().enumerate() {
            let lo = bin.saturating_sub(CONTRAST_HALF_WIDTH);
            let hi = (bin + CONTRAST_HALF_WIDTH + 1).min(self.bins);
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            let contrast = (f64::from(level) - mean).round().clamp(-127.0, 127.0);
            self.values.push(contrast as i8);
        }
    }

    /// Frames held.
    pub fn frames(&self) -> usize {
        self.values.len() / self.bins.max(1)
    }

    /// Contrast at a frame and bin, if the map covers it.
    pub fn get(&self, frame: i64, bin: i64) -> Option<i8> {
        if frame < 0 || bin < 0 || bin as usize >= self.bins || frame as usize >= self.frames() {
            return None;
        }
        self.values
            .get(frame as usize * self.bins + bin as usize)
            .copied()
    }

    /// The map of the clip's part from `first_frame` on (its frames from 0).
    pub fn from_frame(&self, first_frame: usize) -> Self {
        let start = (first_frame * self.bins).min(self.values.len());
        Self {
            bins: self.bins,
            max_frames: self.max_frames,
            values: self.values[start..].to_vec(),
        }
    }

    /// The map of the clip with its pitch scaled by `1 / pitch_factor` (as
    /// [`super::shift_pitch`] moves peaks): bin `b` reads the bin it came from.
    pub fn pitch_shifted(&self, pitch_factor: f64, first_bin: usize) -> Self {
        let mut shifted = Self {
            bins: self.bins,
            max_frames: self.max_frames,
            values: Vec::with_capacity(self.values.len()),
        };
        let sources: Vec<Option<usize>> = (0..self.bins)
            .map(|bin| {
                let absolute = (bin + first_bin) as f64 * pitch_factor;
                let source = (absolute - first_bin as f64).round();
                (source >= 0.0 && (source as usize) < self.bins).then_some(source as usize)
            })
            .collect();
        for frame in self.values.chunks(self.bins.max(1)) {
            shifted.values.extend(
                sources
                    .iter()
                    .map(|source| source.map_or(i8::MIN, |s| frame[s])),
            );
        }
        shifted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_stands_out_of_its_neighbourhood() {
        let config = FingerprintConfig::default();
        let mut map = ContrastMap::new(&config);
        let mut frame = vec![-60.0f32; config.band_bins()];
        frame[100] = -20.0;
        map.push_frame(&frame);
        map.push_frame(&vec![-60.0f32; config.band_bins()]);
        assert_eq!(map.frames(), 2);
        // 40 dB above a neighbourhood of 33 bins whose mean it lifts by 40/33 dB.
        assert_eq!(map.get(0, 100), Some(39));
        assert_eq!(map.get(0, 101), Some(-1));
        assert_eq!(map.get(1, 100), Some(0));
        assert_eq!(map.get(2, 100), None);
        assert_eq!(map.get(0, config.band_bins() as i64), None);

        let tail = map.from_frame(1);
        assert_eq!(tail.frames(), 1);
        assert_eq!(tail.get(0, 100), Some(0));
        assert_eq!(map.from_frame(5).frames(), 0);

        let up = map.pitch_shifted(2f64.powf(1.0 / 12.0), config.first_bin());
        let expected = ((100 + config.first_bin()) as f64 / 2f64.powf(1.0 / 12.0)).round() as i64
            - config.first_bin() as i64;
        assert_eq!(up.get(0, expected), Some(39));
    }

    #[test]
    fn the_map_stops_at_its_length_limit() {
        let config = FingerprintConfig::default();
        let mut map = ContrastMap::new(&config);
        let frame = vec![-60.0f32; config.band_bins()];
        for _ in 0..(MAX_SECS * config.frames_per_second()) as usize + 50 {
            map.push_frame(&frame);
        }
        assert_eq!(
            map.frames(),
            (MAX_SECS * config.frames_per_second()).ceil() as usize
        );
    }
}
