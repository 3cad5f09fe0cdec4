//! Short-time Fourier transform with realfft: mono samples at the analysis rate in, one
//! log-power spectrum per hop out, restricted to the analysis band.
//!
//! Frame `k` covers samples `k * hop .. k * hop + n_fft` (Hann window). Values are dB relative to
//! a full-scale sine, so a -20 dBFS tone gives about -20 at its bin. Samples are accepted in
//! chunks of any length; a trailing partial frame is dropped.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::config::FingerprintConfig;

/// Power floor added before the logarithm (about -150 dB).
const POWER_FLOOR: f32 = 1e-15;

/// A streaming STFT.
pub struct Stft {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    hop: usize,
    first_bin: usize,
    band_bins: usize,
    power_norm: f32,
    pending: Vec<f32>,
    frame_in: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    band_db: Vec<f32>,
}

impl Stft {
    /// An STFT with the configuration's FFT size, hop and band.
    pub fn new(config: &FingerprintConfig) -> Self {
        let n_fft = config.n_fft;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        let window: Vec<f32> = (0..n_fft)
            .map(|i| {
                let phase = 2.0 * std::f32::consts::PI * i as f32 / n_fft as f32;
                0.5 - 0.5 * phase.cos()
            })
            .collect();
        let window_sum: f32 = window.iter().sum();
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        Self {
            window,
            hop: config.hop_length,
            first_bin: config.first_bin(),
            band_bins: config.band_bins(),
            // |X|^2 of a unit sine at its bin is (window_sum / 2)^2.
            power_norm: 1.0 / (window_sum * window_sum / 4.0),
            pending: Vec::with_capacity(n_fft * 2),
            frame_in: vec![0.0; n_fft],
            spectrum,
            scratch,
            band_db: vec![0.0; config.band_bins()],
            fft,
        }
    }

    /// Feeds samples; calls `on_frame(band_db)` for each completed frame, in order.
    pub fn push(&mut self, samples: &[f32], mut on_frame: impl FnMut(&[f32])) {
        self.pending.extend_from_slice(samples);
        let n_fft = self.window.len();
        let mut start = 0;
        while self.pending.len() - start >= n_fft {
            for ((dst, src), w) in self
                .frame_in
                .iter_mut()
                .zip(&self.pending[start..start + n_fft])
                .zip(&self.window)
            {
                *dst = src * w;
            }
            // The buffers have the planner's sizes, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut self.frame_in, &mut self.spectrum, &mut self.scratch)
                .is_ok()
            {
                let band = &self.spectrum[self.first_bin..self.first_bin + self.band_bins];
                for (db, c) in self.band_db.iter_mut().zip(band) {
                    let power = c.norm_sqr() * self.power_norm + POWER_FLOOR;
                    *db = power_db(power);
                }
                on_frame(&self.band_db);
            }
            start += self.hop;
        }
        self.pending.drain(..start);
    }
}

/// `10 * log10(power)` for a positive, normal `power`, within 1e-4 dB.
///
/// A polynomial on the mantissa instead of libm's `log10f`: the STFT takes the logarithm of
/// every band bin of every frame, and this form is several times cheaper and vectorises.
#[inline]
pub fn power_db(power: f32) -> f32 {
    // log2(1 + t) on t in [0, 1), least-squares fit on Chebyshev nodes (max error 1.7e-5).
    const C: [f32; 5] = [1.441_88, -0.708_863_9, 0.415_241, -0.193_510_4, 0.045_265_5];
    const DB_PER_OCTAVE: f32 = 3.010_3; // 10 * log10(2)
    let bits = power.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let t = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) - 1.0;
    let log2_mantissa = t * (C[0] + t * (C[1] + t * (C[2] + t * (C[3] + t * C[4]))));
    (exponent as f32 + log2_mantissa) * DB_PER_OCTAVE
}

/// The whole spectrogram of a clip (frames x band bins, dB), for display and tests.
pub fn spectrogram(samples: &[f32], config: &FingerprintConfig) -> Vec<Vec<f32>> {
    let mut stft = Stft::new(config);
    let mut frames = Vec::new();
    stft.push(samples, |frame| frames.push(frame.to_vec()));
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_lands_in_its_bin_at_its_level() {
        let config = FingerprintConfig::default();
        let freq = 1000.0;
        let amplitude = 0.1; // -20 dBFS
        let rate = config.sample_rate_hz as usize;
        let samples: Vec<f32> = (0..rate)
            .map(|i| amplitude * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect();
        let frames = spectrogram(&samples, &config);
        assert_eq!(frames.len(), (rate - config.n_fft) / config.hop_length + 1);
        let frame = &frames[10];
        let (best, level) = frame
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        let expected_bin = (freq / config.bin_hz()).round() as usize - config.first_bin();
        assert_eq!(best, expected_bin);
        assert!((level + 20.0).abs() < 1.0, "level {level}");
    }

    #[test]
    fn power_db_agrees_with_log10() {
        let mut power = 1e-15f32;
        while power < 1e6 {
            let exact = 10.0 * f64::from(power).log10();
            let fast = f64::from(super::power_db(power));
            assert!((exact - fast).abs() < 1e-3, "{power}: {exact} vs {fast}");
            power *= 1.013;
        }
    }
}
