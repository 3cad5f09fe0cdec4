//! Streaming sample-rate conversion of mono audio to the analysis rate, with rubato's
//! synchronous FFT resampler.
//!
//! Input: mono chunks of any length at `from_hz`. Output: mono samples at `to_hz`, appended to
//! the caller's buffer, with the resampler's start-up delay removed so that sample `n` of the
//! output is time `n / to_hz` of the input. When the rates are equal the samples pass through.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

/// Input frames handed to rubato per call.
const CHUNK_FRAMES: usize = 2048;

/// A resampler that accepts arbitrary chunk lengths.
pub struct StreamResampler {
    inner: Option<Fft<f32>>,
    ratio: f64,
    pending: Vec<f32>,
    out_scratch: Vec<f32>,
    delay_left: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A resampler from `from_hz` to `to_hz`.
    pub fn new(from_hz: u32, to_hz: u32) -> Result<Self, String> {
        if from_hz == 0 || to_hz == 0 {
            return Err(format!("cannot resample {from_hz} Hz to {to_hz} Hz"));
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    from_hz as usize,
                    to_hz as usize,
                    CHUNK_FRAMES,
                    1,
                    FixedSync::Input,
                )
                .map_err(|err| format!("cannot resample {from_hz} Hz to {to_hz} Hz: {err}"))?,
            )
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        let out_len = inner.as_ref().map_or(0, |r| r.output_frames_max());
        Ok(Self {
            inner,
            ratio: f64::from(to_hz) / f64::from(from_hz),
            pending: Vec::with_capacity(CHUNK_FRAMES * 2),
            out_scratch: vec![0.0; out_len],
            delay_left,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.frames_in += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.frames_out += input.len() as u64;
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(input);
        let mut consumed = 0;
        let mut result = Ok(());
        while pending.len() - consumed >= CHUNK_FRAMES {
            match self.process(&pending[consumed..consumed + CHUNK_FRAMES], None) {
                Ok(produced) => self.emit(produced, out),
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
            consumed += CHUNK_FRAMES;
        }
        pending.drain(..consumed);
        self.pending = pending;
        result
    }

    /// Flushes the last partial chunk and the resampler's tail.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = (self.frames_in as f64 * self.ratio).round() as u64;
        let pending = std::mem::take(&mut self.pending);
        let mut padded = pending.clone();
        padded.resize(CHUNK_FRAMES, 0.0);
        let produced = self.process(&padded, Some(pending.len()))?;
        self.emit(produced, out);
        let zeros = vec![0.0; CHUNK_FRAMES];
        // Pump silence until the delayed tail has come out (bounded: the delay is < 2 chunks).
        for _ in 0..4 {
            if self.frames_out >= expected {
                break;
            }
            let produced = self.process(&zeros, Some(0))?;
            self.emit(produced, out);
        }
        if self.frames_out > expected {
            let extra = (self.frames_out - expected) as usize;
            out.truncate(out.len().saturating_sub(extra));
            self.frames_out = expected;
        }
        Ok(())
    }

    fn process(&mut self, chunk: &[f32], partial_len: Option<usize>) -> Result<usize, String> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let input = InterleavedSlice::new(chunk, 1, chunk.len()).map_err(|e| e.to_string())?;
        let out_len = self.out_scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out_scratch[..], 1, out_len)
            .map_err(|e| e.to_string())?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len,
        };
        let (_, produced) = inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| format!("resampling failed: {e}"))?;
        Ok(produced)
    }

    fn emit(&mut self, produced: usize, out: &mut Vec<f32>) {
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_scratch[skip..produced]);
        self.frames_out += (produced - skip) as u64;
    }
}

/// Resamples a whole mono clip in memory.
pub fn resample_clip(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>, String> {
    let mut resampler = StreamResampler::new(from_hz, to_hz)?;
    let mut out = Vec::with_capacity(
        (samples.len() as f64 * f64::from(to_hz) / f64::from(from_hz.max(1))) as usize + 16,
    );
    resampler.push(samples, &mut out)?;
    resampler.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq_hz: f32, rate_hz: u32, secs: f32) -> Vec<f32> {
        let n = (rate_hz as f32 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq_hz * i as f32 / rate_hz as f32).sin())
            .collect()
    }

    #[test]
    fn length_and_alignment_are_kept() {
        for (from, to) in [
            (44_100, 8000),
            (48_000, 8000),
            (16_000, 8000),
            (8000, 8000),
            (22_050, 8000),
            (192_000, 8000),
        ] {
            // An impulse at 0.5 s must come out at 0.5 s.
            let mut input = vec![0.0f32; from as usize];
            input[from as usize / 2] = 1.0;
            let out = resample_clip(&input, from, to).unwrap();
            assert!(
                (out.len() as i64 - to as i64).abs() <= 1,
                "{from}->{to}: {}",
                out.len()
            );
            let peak = out
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap()
                .0;
            assert!(
                (peak as i64 - to as i64 / 2).abs() <= 2,
                "{from}->{to}: impulse at {peak}"
            );
        }
    }

    #[test]
    fn streaming_equals_whole_clip() {
        let input = tone(440.0, 44_100, 1.3);
        let whole = resample_clip(&input, 44_100, 8000).unwrap();
        let mut resampler = StreamResampler::new(44_100, 8000).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(777) {
            resampler.push(chunk, &mut out).unwrap();
        }
        resampler.finish(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        for (a, b) in out.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
