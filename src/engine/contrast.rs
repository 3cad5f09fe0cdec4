//! A clip's spectral contrast map: for every frame and band bin, how far the bin stands above
//! the mean of its neighbourhood in the same frame (the measure the peak picker ranks
//! candidates by), in whole dB.
//!
//! Peaks keep only the few strongest points of a clip; under heavy noise most of a song's peaks
//! are no longer peaks of the clip, yet the song's energy is still there, a few dB above the
//! noise. Verification ([`super::verify`]) reads this map at the song's peak positions to use
//! that evidence. Only queries keep a map, and only for their first [`MAX_SECS`] seconds.

use super::landmarks::MAX_BAND_BINS;
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
        // A band wider than the hash layout holds is refused when the configuration is checked.
        if self.frames() >= self.max_frames
            || level_db.len() != self.bins
            || self.bins > MAX_BAND_BINS
        {
            return;
        }
        // prefix[i]: the sum of the first i levels (on the stack: this runs for every frame of
        // every query).
        let bins = self.bins;
        let mut prefix = [0.0f64; MAX_BAND_BINS + 1];
        for (i, &level) in level_db.iter().enumerate() {
            prefix[i + 1] = prefix[i] + f64::from(level);
        }
        let start = self.values.len();
        self.values.resize(start + bins, 0);
        let out = &mut self.values[start..];
        // A bin's contrast over the neighbourhood the band's edges leave it.
        let at_edge = |bin: usize| {
            let lo = bin.saturating_sub(CONTRAST_HALF_WIDTH);
            let hi = (bin + CONTRAST_HALF_WIDTH + 1).min(bins);
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            whole_db(f64::from(level_db[bin]) - mean)
        };
        let width = 2 * CONTRAST_HALF_WIDTH + 1;
        if bins <= width {
            for (bin, slot) in out.iter_mut().enumerate() {
                *slot = at_edge(bin);
            }
            return;
        }
        for bin in (0..CONTRAST_HALF_WIDTH).chain(bins - CONTRAST_HALF_WIDTH..bins) {
            out[bin] = at_edge(bin);
        }
        // Inside, every neighbourhood is whole: the same sums in a loop the compiler can
        // vectorise (twice as fast as computing each bin's bounds).
        let inside = bins - 2 * CONTRAST_HALF_WIDTH;
        let upper = &prefix[width..width + inside];
        let lower = &prefix[..inside];
        let levels = &level_db[CONTRAST_HALF_WIDTH..CONTRAST_HALF_WIDTH + inside];
        let slots = &mut out[CONTRAST_HALF_WIDTH..CONTRAST_HALF_WIDTH + inside];
        for (((slot, &upper), &lower), &level) in slots.iter_mut().zip(upper).zip(lower).zip(levels)
        {
            *slot = whole_db(f64::from(level) - (upper - lower) / width as f64);
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

/// `db` rounded to the nearest whole number, halves away from zero (as `f64::round`),
/// clamped to the `i8` range. Without SSE4.1 `f64::round` is a library call, and this runs for
/// every bin of every query frame.
fn whole_db(db: f64) -> i8 {
    let clamped = db.clamp(-127.0, 127.0);
    // Truncation toward zero; `clamped - whole` is exact, so the halves are judged exactly.
    let whole = clamped as i32;
    let fraction = clamped - f64::from(whole);
    (whole + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bin_gets_its_neighbourhoods_contrast_whatever_the_band_width() {
        let mut state = 17u64;
        let mut level = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            -90.0 + (state >> 40) as f32 / (1u64 << 24) as f32 * 70.0
        };
        let width = 2 * CONTRAST_HALF_WIDTH + 1;
        for bins in [
            1,
            5,
            width - 1,
            width,
            width + 1,
            width + 2,
            435,
            MAX_BAND_BINS,
        ] {
            let mut map = ContrastMap {
                bins,
                max_frames: 4,
                values: Vec::new(),
            };
            for frame in 0..3 {
                let levels: Vec<f32> = (0..bins).map(|_| level()).collect();
                map.push_frame(&levels);
                for (bin, &own) in levels.iter().enumerate() {
                    let lo = bin.saturating_sub(CONTRAST_HALF_WIDTH);
                    let hi = (bin + CONTRAST_HALF_WIDTH + 1).min(bins);
                    let sum: f64 = levels[lo..hi].iter().map(|&l| f64::from(l)).sum();
                    let expected = f64::from(own) - sum / (hi - lo) as f64;
                    let got = f64::from(map.get(frame, bin as i64).unwrap_or(i8::MIN));
                    assert!(
                        (got - expected.clamp(-127.0, 127.0)).abs() <= 0.5 + 1e-9,
                        "{bins} bins, bin {bin}: {got} for {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn whole_db_rounds_as_f64_round_does_and_clamps() {
        let mut x = -140.0f64;
        while x <= 140.0 {
            for value in [x, x + 0.5, x - 1e-12, x + 0.5 - 1e-12, x + 0.5 + 1e-12] {
                let expected = value.round().clamp(-127.0, 127.0) as i8;
                assert_eq!(whole_db(value), expected, "{value}");
            }
            x += 0.25;
        }
        assert_eq!(whole_db(0.499_999_999_999_999_94), 0);
        assert_eq!(whole_db(-0.499_999_999_999_999_94), 0);
        assert_eq!(whole_db(f64::NAN), 0);
    }

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
