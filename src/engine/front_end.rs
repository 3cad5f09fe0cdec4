//! The analysis front end: mono samples at any rate in, the band's log-power spectrum at the
//! analysis rate out, one frame per hop.
//!
//! ```text
//! mono chunks (any rate) -> resample to SAMPLE_RATE -> STFT -> band levels (dB) per frame
//! ```
//!
//! Both the fingerprint ([`super::Analyzer`]) and the app's song spectrogram go through this one
//! front end, so the spectrogram's frames are the frames the stored peaks were picked from. A
//! chained stream may change its rate between links: the last link's resampler is drained first,
//! and a new one starts at the new rate, so the frames go on without a gap. The front end also
//! counts the input's length and the level of what it analysed (for the silence test).

use super::EngineError;
use super::resample::{ResampleError, StreamResampler};
use super::stft::Stft;
use crate::config::FingerprintConfig;

/// Streaming resampler + STFT.
pub struct FrontEnd {
    analysis_rate_hz: u32,
    keep_hz: f32,
    resampler: Option<(u32, StreamResampler)>,
    resampled: Vec<f32>,
    stft: Stft,
    /// Seconds of audio at earlier sample rates (a chained stream's earlier links).
    seconds_before: f64,
    /// Samples at the current rate: the length is counted, not summed chunk by chunk, so a
    /// clip of 44,100 samples at 44.1 kHz is 1 s, not 0.9999999999999994.
    samples_at_rate: u64,
    sum_squares: f64,
    analysed_samples: u64,
}

impl FrontEnd {
    /// A front end for `config`'s analysis rate, FFT and band.
    pub fn new(config: &FingerprintConfig) -> Self {
        Self {
            analysis_rate_hz: config.sample_rate_hz,
            keep_hz: config.max_freq_hz,
            resampler: None,
            resampled: Vec::new(),
            stft: Stft::new(config),
            seconds_before: 0.0,
            samples_at_rate: 0,
            sum_squares: 0.0,
            analysed_samples: 0,
        }
    }

    /// Feeds mono samples at `sample_rate_hz`; calls `on_frame(band_db)` for each completed
    /// frame, in order. `source_name` names the input in errors.
    pub fn push(
        &mut self,
        samples: &[f32],
        sample_rate_hz: u32,
        source_name: &str,
        mut on_frame: impl FnMut(&[f32]),
    ) -> Result<(), EngineError> {
        if self
            .resampler
            .as_ref()
            .is_none_or(|(rate, _)| *rate != sample_rate_hz)
        {
            // The previous link's tail first, so that frames go on where it ended.
            self.end_link(source_name, &mut on_frame)?;
            let resampler =
                StreamResampler::new(sample_rate_hz, self.analysis_rate_hz, self.keep_hz)
                    .map_err(|source| resample_error(source_name, source))?;
            self.resampler = Some((sample_rate_hz, resampler));
        }
        self.samples_at_rate += samples.len() as u64;
        self.resampled.clear();
        if let Some((_, resampler)) = self.resampler.as_mut() {
            resampler
                .push(samples, &mut self.resampled)
                .map_err(|source| resample_error(source_name, source))?;
        }
        self.analyse_resampled(&mut on_frame);
        Ok(())
    }

    /// Ends the stream: the resampler's tail goes through the STFT (a trailing partial frame
    /// is dropped).
    pub fn finish(
        &mut self,
        source_name: &str,
        mut on_frame: impl FnMut(&[f32]),
    ) -> Result<(), EngineError> {
        self.end_link(source_name, &mut on_frame)
    }

    /// Seconds of audio pushed so far.
    pub fn seconds_in(&self) -> f64 {
        let rate = self.resampler.as_ref().map_or(1, |(rate, _)| *rate);
        self.seconds_before + self.samples_at_rate as f64 / f64::from(rate)
    }

    /// RMS of the resampled audio analysed so far (0 before any).
    pub fn rms(&self) -> f64 {
        (self.sum_squares / self.analysed_samples.max(1) as f64).sqrt()
    }

    /// Ends the current link, if any: flushes and drops its resampler and moves its length
    /// into `seconds_before` (a later push starts a new link).
    fn end_link(
        &mut self,
        source_name: &str,
        on_frame: &mut impl FnMut(&[f32]),
    ) -> Result<(), EngineError> {
        let Some((rate, mut resampler)) = self.resampler.take() else {
            return Ok(());
        };
        self.seconds_before += self.samples_at_rate as f64 / f64::from(rate);
        self.samples_at_rate = 0;
        self.resampled.clear();
        resampler
            .finish(&mut self.resampled)
            .map_err(|source| resample_error(source_name, source))?;
        self.analyse_resampled(on_frame);
        Ok(())
    }

    fn analyse_resampled(&mut self, on_frame: &mut impl FnMut(&[f32])) {
        self.sum_squares += sum_of_squares(&self.resampled);
        self.analysed_samples += self.resampled.len() as u64;
        self.stft.push(&self.resampled, on_frame);
    }
}

fn resample_error(source_name: &str, source: ResampleError) -> EngineError {
    EngineError::Resample {
        source_name: source_name.to_string(),
        source,
    }
}

/// The sum of the squares of `samples`, in f64.
///
/// Accumulated in independent lanes, which vectorises (a single running sum waits on each
/// add); it only feeds the silence test, so the order of the additions does not matter.
fn sum_of_squares(samples: &[f32]) -> f64 {
    const LANES: usize = 8;
    let chunks = samples.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>();
    let mut lanes = [0.0f64; LANES];
    for chunk in chunks {
        for (lane, &s) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(s) * f64::from(s);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, secs: f64, freq: f32) -> Vec<f32> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|i| 0.1 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn frames_of(front_end: &mut FrontEnd, chunks: &[(&[f32], u32)]) -> Vec<Vec<f32>> {
        let mut frames = Vec::new();
        for (samples, rate) in chunks {
            front_end
                .push(samples, *rate, "test", |frame| frames.push(frame.to_vec()))
                .expect("push");
        }
        front_end
            .finish("test", |frame| frames.push(frame.to_vec()))
            .expect("finish");
        frames
    }

    #[test]
    fn chunking_does_not_change_the_frames() {
        let config = FingerprintConfig::default();
        let samples = tone(44_100, 2.0, 1000.0);
        let whole = frames_of(&mut FrontEnd::new(&config), &[(&samples, 44_100)]);
        let (a, b) = samples.split_at(12_345);
        let mut chunked = FrontEnd::new(&config);
        let parts = frames_of(&mut chunked, &[(a, 44_100), (b, 44_100)]);
        assert_eq!(whole, parts);
        assert!((chunked.seconds_in() - 2.0).abs() < 1e-12);
        // A -20 dBFS sine: RMS 0.1 / sqrt(2).
        assert!(
            (chunked.rms() - 0.1 / 2f64.sqrt()).abs() < 0.005,
            "{}",
            chunked.rms()
        );
    }

    #[test]
    fn a_rate_change_continues_the_frames_and_the_length() {
        let config = FingerprintConfig::default();
        let first = tone(44_100, 1.5, 1000.0);
        let second = tone(22_050, 1.5, 1000.0);
        let mut front_end = FrontEnd::new(&config);
        let frames = frames_of(&mut front_end, &[(&first, 44_100), (&second, 22_050)]);
        assert!((front_end.seconds_in() - 3.0).abs() < 1e-9);
        // 3 s at the analysis rate, less the last partial frame (and the resampler's edges).
        let expected = (3.0 * f64::from(config.sample_rate_hz) - config.n_fft as f64)
            / config.hop_length as f64;
        assert!(
            (frames.len() as f64 - expected).abs() <= 2.0,
            "{} frames, expected about {expected}",
            frames.len()
        );
        let tone_bin = (1000.0 / config.bin_hz()).round() as usize - config.first_bin();
        for (i, frame) in frames.iter().enumerate() {
            let loudest = frame
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(bin, _)| bin);
            assert_eq!(loudest, Some(tone_bin), "frame {i}");
        }
    }

    #[test]
    fn an_impossible_rate_names_the_source() {
        let mut front_end = FrontEnd::new(&FingerprintConfig::default());
        let error = front_end
            .push(&[0.0; 10], 0, "odd.wav", |_| {})
            .expect_err("rate 0");
        assert!(error.to_string().contains("odd.wav"), "{error}");
        // The file's fault, not the program's.
        assert_eq!(error.code(), "bad_format", "{error}");
    }
}
