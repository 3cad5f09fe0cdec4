//! Streaming sample-rate conversion of mono audio to the analysis rate, with exact integer
//! pre-decimation stages and, where a ratio is left over, rubato's synchronous FFT resampler.
//!
//! Input: mono chunks of any length at `from_hz`. Output: mono samples at `to_hz`, appended to
//! the caller's buffer, with the resampler's start-up delay removed so that sample `n` of the
//! output is time `n / to_hz` of the input. When the rates are equal the samples pass through.
//!
//! Only the analysis band has to survive: the caller names its top (`keep_hz`), and what lies
//! above it may be attenuated or carry aliases. Common music rates are far above the analysis
//! rate, and rubato's FFT resampler costs about as much per input sample whatever the ratio. So
//! while the rate is even and its half is still at least the output rate, the signal is halved
//! by a half-band low-pass ([`HalfBand`]: a zero-phase, Kaiser-windowed sinc whose every other
//! tap is zero, flat to just above `keep_hz`, at least 80 dB down wherever an alias could land
//! below it). Rubato then does the remaining ratio, if any, at a fraction of the cost. At an
//! analysis rate of 11,025 Hz a 44.1 kHz file needs two half-band stages and no rubato at all;
//! 48 kHz is halved twice to 12 kHz, then rubato does 12,000 -> 11,025.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler, WindowFunction};

use super::simd::{self, Simd, WithSimd};

/// Input frames handed to rubato per call, at most (rounded to whole FFT blocks).
const CHUNK_FRAMES: usize = 2048;

/// Rubato's FFT block, in input frames, is the smallest power-of-two multiple of the rate
/// pair's minimum block that reaches this (so 12 -> 8 kHz uses 384 frames, not 258).
const MIN_FFT_BLOCK: usize = 256;

/// The band the half-band stages keep intact reaches this far above the caller's `keep_hz`.
const KEEP_MARGIN_HZ: f64 = 100.0;

/// ... but at most this part of the output rate, so that rubato's own low-pass, which removes
/// the rest, has room for its transition (0.4625 x 8 kHz = 3.7 kHz).
const MAX_PROTECTED_FRACTION: f64 = 0.4625;

/// A half-band stage runs only while its transition band (from the protected band up to where
/// aliases would land in it) is at least this part of its input rate, which keeps the filter
/// short: 44.1 -> 22.05 kHz and 22.05 -> 11.025 kHz qualify for a 3.7 kHz band, 16 -> 8 kHz
/// does not.
const MIN_TRANSITION_FRACTION: f64 = 0.1;

/// Outputs a half-band stage computes together.
const LANES: usize = 32;

/// Stop-band attenuation the half-band filters are designed for, dB.
const STOPBAND_DB: f64 = 80.0;

/// A resampler that accepts arbitrary chunk lengths.
pub struct StreamResampler {
    stages: Vec<HalfBand>,
    /// Scratch buffers between the stages.
    stage_out: Vec<f32>,
    stage_in: Vec<f32>,
    inner: Option<Fft<f32>>,
    chunk_frames: usize,
    ratio: f64,
    pending: Vec<f32>,
    out_scratch: Vec<f32>,
    delay_left: usize,
    frames_in: u64,
    frames_out: u64,
}

/// Why a stream cannot be resampled.
#[derive(Debug, thiserror::Error)]
pub enum ResampleError {
    /// The rates, or the band to keep, do not allow it (a file declaring a rate of 0, say).
    #[error("cannot resample {from_hz} Hz to {to_hz} Hz keeping {keep_hz} Hz")]
    Rates {
        /// The stream's rate.
        from_hz: u32,
        /// The rate asked for.
        to_hz: u32,
        /// The band to keep intact.
        keep_hz: f32,
    },
    /// The resampler failed (a fault of this program, not of the audio).
    #[error("resampling failed: {0}")]
    Failed(String),
}

impl StreamResampler {
    /// A resampler from `from_hz` to `to_hz` that keeps the band below `keep_hz` intact.
    pub fn new(from_hz: u32, to_hz: u32, keep_hz: f32) -> Result<Self, ResampleError> {
        if from_hz == 0 || to_hz == 0 || !(keep_hz > 0.0 && keep_hz <= to_hz as f32 / 2.0) {
            return Err(ResampleError::Rates {
                from_hz,
                to_hz,
                keep_hz,
            });
        }
        let protected_hz =
            (f64::from(keep_hz) + KEEP_MARGIN_HZ).min(MAX_PROTECTED_FRACTION * f64::from(to_hz));
        let halving_pays = |rate: u32| {
            let transition = f64::from(rate) / 2.0 - 2.0 * protected_hz;
            rate.is_multiple_of(2)
                && rate / 2 >= to_hz
                && transition >= MIN_TRANSITION_FRACTION * f64::from(rate)
        };
        let mut stages = Vec::new();
        let mut rate = from_hz;
        while halving_pays(rate) {
            stages.push(HalfBand::new(rate, protected_hz));
            rate /= 2;
        }
        let (inner, chunk_frames) = if rate == to_hz {
            (None, CHUNK_FRAMES)
        } else {
            let err = |err: rubato::ResamplerConstructionError| {
                ResampleError::Failed(format!("cannot resample {from_hz} Hz to {to_hz} Hz: {err}"))
            };
            let gcd = gcd(rate as usize, to_hz as usize);
            let min_block = rate as usize / gcd;
            let block = min_block * MIN_FFT_BLOCK.div_ceil(min_block).next_power_of_two();
            let blocks = (CHUNK_FRAMES / block).max(1);
            let resampler = Fft::<f32>::new_custom(
                rate as usize,
                to_hz as usize,
                block * blocks,
                blocks,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .map_err(err)?;
            (Some(resampler), block * blocks)
        };
        let delay_left = inner.as_ref().map_or(0, |r| r.output_delay());
        let out_len = inner.as_ref().map_or(0, |r| r.output_frames_max());
        Ok(Self {
            stages,
            stage_out: Vec::new(),
            stage_in: Vec::new(),
            inner,
            chunk_frames,
            ratio: f64::from(to_hz) / f64::from(rate),
            pending: Vec::with_capacity(chunk_frames * 2),
            out_scratch: vec![0.0; out_len],
            delay_left,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if self.stages.is_empty() {
            return self.push_rubato(input, out);
        }
        let mut stage_in = std::mem::take(&mut self.stage_in);
        let mut stage_out = std::mem::take(&mut self.stage_out);
        stage_out.clear();
        self.stages[0].push(input, &mut stage_out);
        for stage in &mut self.stages[1..] {
            std::mem::swap(&mut stage_in, &mut stage_out);
            stage_out.clear();
            stage.push(&stage_in, &mut stage_out);
        }
        let result = self.push_rubato(&stage_out, out);
        self.stage_in = stage_in;
        self.stage_out = stage_out;
        result
    }

    /// Flushes the last partial chunk and the resampler's tail.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), ResampleError> {
        if !self.stages.is_empty() {
            // Flush each stage in turn, feeding its tail through the stages after it.
            let mut tail = Vec::new();
            for i in 0..self.stages.len() {
                let mut flushed = Vec::new();
                self.stages[i].finish(&mut flushed);
                let mut carried = flushed;
                for stage in &mut self.stages[i + 1..] {
                    let mut next = Vec::new();
                    stage.push(&carried, &mut next);
                    carried = next;
                }
                tail.extend_from_slice(&carried);
            }
            self.push_rubato(&tail, out)?;
        }
        if self.inner.is_none() {
            return Ok(());
        }
        let expected = (self.frames_in as f64 * self.ratio).round() as u64;
        let pending = std::mem::take(&mut self.pending);
        let mut padded = pending.clone();
        padded.resize(self.chunk_frames, 0.0);
        let produced = self.process(&padded, Some(pending.len()))?;
        self.emit(produced, out);
        let zeros = vec![0.0; self.chunk_frames];
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

    /// Hands (pre-decimated) samples to rubato.
    fn push_rubato(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), ResampleError> {
        self.frames_in += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.frames_out += input.len() as u64;
            return Ok(());
        }
        let chunk = self.chunk_frames;
        let mut pending = std::mem::take(&mut self.pending);
        let mut result = Ok(());
        let mut input = input;
        // Whole chunks are taken straight from the input once `pending` is empty.
        while !input.is_empty() {
            if pending.is_empty() && input.len() >= chunk {
                let (head, rest) = input.split_at(chunk);
                match self.process(head, None) {
                    Ok(produced) => self.emit(produced, out),
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
                input = rest;
                continue;
            }
            let take = (chunk - pending.len()).min(input.len());
            pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if pending.len() == chunk {
                match self.process(&pending, None) {
                    Ok(produced) => self.emit(produced, out),
                    Err(err) => {
                        result = Err(err);
                        break;
                    }
                }
                pending.clear();
            }
        }
        self.pending = pending;
        result
    }

    fn process(
        &mut self,
        chunk: &[f32],
        partial_len: Option<usize>,
    ) -> Result<usize, ResampleError> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        let failed = |err: &dyn std::fmt::Display| ResampleError::Failed(err.to_string());
        let input = InterleavedSlice::new(chunk, 1, chunk.len()).map_err(|e| failed(&e))?;
        let out_len = self.out_scratch.len();
        let mut output = InterleavedSlice::new_mut(&mut self.out_scratch[..], 1, out_len)
            .map_err(|e| failed(&e))?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: 0,
            active_channels_mask: None,
            partial_len,
        };
        let (_, produced) = inner
            .process_into_buffer(&input, &mut output, Some(&indexing))
            .map_err(|e| failed(&e))?;
        Ok(produced)
    }

    fn emit(&mut self, produced: usize, out: &mut Vec<f32>) {
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_scratch[skip..produced]);
        self.frames_out += (produced - skip) as u64;
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Streaming decimation by two with a zero-phase half-band FIR: output `m` is the filtered
/// signal at input sample `2m`, so timing is kept exactly and there is no start-up delay.
///
/// The filter is `y[m] = c x[2m] + sum_i g_i (x[2m - 2i - 1] + x[2m + 2i + 1])` (the even
/// taps of a half-band filter are zero). Input is split into its even and odd samples as it
/// arrives (pair `j` is `x[2j]` and `x[2j + 1]`), so that the loop over outputs reads
/// contiguous slices and vectorises.
struct HalfBand {
    center: f32,
    /// `g_i`, the taps at odd offsets `2i + 1`.
    pairs: Vec<f32>,
    /// Even and odd samples of the pairs not yet consumed; index 0 is pair `first_pair`
    /// (negative: zero padding before the start).
    evens: Vec<f32>,
    odds: Vec<f32>,
    first_pair: i64,
    /// The last input sample when the input so far has odd length: its pair's even half.
    unpaired: Option<f32>,
    /// Index of the next output.
    next_out: i64,
    inputs: u64,
}

impl HalfBand {
    /// A stage from `rate_hz` to half of it that keeps `0..protected_hz` and removes what
    /// would alias into it.
    fn new(rate_hz: u32, protected_hz: f64) -> Self {
        let rate = f64::from(rate_hz);
        // Transition from `protected_hz` up to (half the rate - protected_hz), symmetric about
        // a quarter of the rate, as a half-band filter's is.
        let transition = (rate / 2.0 - 2.0 * protected_hz).max(rate * 0.02);
        let delta_omega = 2.0 * std::f64::consts::PI * transition / rate;
        // Kaiser's estimate of the length, rounded up to 4P - 1 taps (half-length 2P - 1).
        let order = (STOPBAND_DB - 7.95) / (2.285 * delta_omega);
        let half_len = (order / 2.0).ceil() as usize;
        let pairs_len = (half_len + 1).div_ceil(2).max(1);
        let half_len = 2 * pairs_len - 1;
        let beta = 0.1102 * (STOPBAND_DB - 8.7);
        let kaiser = |n: usize| {
            let x = n as f64 / (half_len + 1) as f64;
            bessel_i0(beta * (1.0 - x * x).sqrt()) / bessel_i0(beta)
        };
        let mut pairs: Vec<f64> = (0..pairs_len)
            .map(|i| {
                let n = 2 * i + 1;
                let arg = std::f64::consts::PI * n as f64 / 2.0;
                0.5 * arg.sin() / arg * kaiser(n)
            })
            .collect();
        // Unit gain at DC.
        let mut center = 0.5;
        let sum = center + 2.0 * pairs.iter().sum::<f64>();
        center /= sum;
        for g in &mut pairs {
            *g /= sum;
        }
        Self {
            center: center as f32,
            pairs: pairs.into_iter().map(|g| g as f32).collect(),
            // Zeros before the start complete the windows of the first outputs.
            evens: vec![0.0; pairs_len],
            odds: vec![0.0; pairs_len],
            first_pair: -(pairs_len as i64),
            unpaired: None,
            next_out: 0,
            inputs: 0,
        }
    }

    /// Feeds input samples; appends the outputs that are complete to `out`.
    fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.inputs += input.len() as u64;
        simd::dispatch(Decimate {
            stage: self,
            input,
            out,
        });
    }

    /// Ends the stream: appends the last outputs, one per two inputs (rounded up).
    fn finish(&mut self, out: &mut Vec<f32>) {
        let wanted = self.inputs.div_ceil(2) as i64;
        // Zeros after the end complete the windows of the last outputs.
        let zeros = vec![0.0; 2 * self.pairs.len() + 1];
        self.split(&zeros);
        self.unpaired = None;
        let before = out.len();
        self.run(out);
        let extra = (self.next_out - wanted).max(0) as usize;
        out.truncate(out.len().saturating_sub(extra).max(before));
        self.next_out = wanted;
    }

    /// Appends `input` to the even and odd samples.
    #[inline(always)]
    fn split(&mut self, mut input: &[f32]) {
        if let Some(even) = self.unpaired
            && let Some((&odd, rest)) = input.split_first()
        {
            self.evens.push(even);
            self.odds.push(odd);
            self.unpaired = None;
            input = rest;
        }
        let pairs = input.chunks_exact(2);
        self.unpaired = pairs.remainder().first().copied();
        let old_len = self.evens.len();
        self.evens.resize(old_len + pairs.len(), 0.0);
        self.odds.resize(old_len + pairs.len(), 0.0);
        for ((e, o), pair) in self.evens[old_len..]
            .iter_mut()
            .zip(&mut self.odds[old_len..])
            .zip(pairs)
        {
            *e = pair[0];
            *o = pair[1];
        }
    }

    /// Appends the outputs whose inputs have all arrived to `out`.
    #[inline(always)]
    fn run(&mut self, out: &mut Vec<f32>) {
        let p = self.pairs.len();
        // Output m needs pairs m - p ..= m + p - 1; `at` is the index of pair `next_out`.
        let at = (self.next_out - self.first_pair) as usize;
        let count = (self.evens.len() + 1).saturating_sub(at + p);
        if count == 0 {
            return;
        }
        out.reserve(count);
        let mut k = 0;
        // LANES outputs at a time in a fixed-size accumulator: it vectorises, and the lanes'
        // sums are independent, so the adds of consecutive taps overlap.
        while k + LANES <= count {
            let mut acc = [0.0f32; LANES];
            if let Some(evens) = self.evens[at + k..].first_chunk::<LANES>() {
                for (a, &e) in acc.iter_mut().zip(evens) {
                    *a = e * self.center;
                }
            }
            for (i, &g) in self.pairs.iter().enumerate() {
                let before = self.odds[at + k - 1 - i..].first_chunk::<LANES>();
                let after = self.odds[at + k + i..].first_chunk::<LANES>();
                if let (Some(before), Some(after)) = (before, after) {
                    for ((a, &x), &y) in acc.iter_mut().zip(before).zip(after) {
                        *a += g * (x + y);
                    }
                }
            }
            out.extend_from_slice(&acc);
            k += LANES;
        }
        for k in k..count {
            let mut y = self.evens[at + k] * self.center;
            for (i, &g) in self.pairs.iter().enumerate() {
                y += g * (self.odds[at + k - 1 - i] + self.odds[at + k + i]);
            }
            out.push(y);
        }
        self.next_out += count as i64;
        // Keep what the next outputs need: from pair next_out - p on.
        let drop = (at + count - p).min(self.evens.len());
        self.evens.drain(..drop);
        self.odds.drain(..drop);
        self.first_pair += drop as i64;
    }
}

/// One push through a decimator, run with the CPU's widest vectors ([`simd`]).
struct Decimate<'a> {
    stage: &'a mut HalfBand,
    input: &'a [f32],
    out: &'a mut Vec<f32>,
}

impl WithSimd for Decimate<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        self.stage.split(self.input);
        self.stage.run(self.out);
    }
}

/// The modified Bessel function of the first kind, order 0 (Kaiser windows).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

/// Resamples a whole mono clip in memory, keeping the band below `keep_hz`.
pub fn resample_clip(
    samples: &[f32],
    from_hz: u32,
    to_hz: u32,
    keep_hz: f32,
) -> Result<Vec<f32>, ResampleError> {
    let mut resampler = StreamResampler::new(from_hz, to_hz, keep_hz)?;
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

    /// Top of the analysis band the tests keep, Hz.
    const KEEP_HZ: f32 = 3600.0;

    /// The analysis rates the resampler is tested for: the default, and the former default.
    const ANALYSIS_RATES: [u32; 2] = [11_025, 8000];

    fn tone(freq_hz: f32, rate_hz: u32, secs: f32) -> Vec<f32> {
        let n = (rate_hz as f32 * secs) as usize;
        (0..n)
            .map(|i| {
                // In f64: an f32 phase is too coarse for a clean high tone.
                let phase = f64::from(freq_hz) * i as f64 / f64::from(rate_hz);
                (2.0 * std::f64::consts::PI * phase.fract()).sin() as f32
            })
            .collect()
    }

    #[test]
    fn length_and_alignment_are_kept() {
        for to in ANALYSIS_RATES {
            for from in [44_100, 48_000, 16_000, 8000, 11_025, 22_050, 192_000] {
                // An impulse at 0.5 s must come out at 0.5 s.
                let mut input = vec![0.0f32; from as usize];
                input[from as usize / 2] = 1.0;
                let out = resample_clip(&input, from, to, KEEP_HZ).unwrap();
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
    }

    #[test]
    fn streaming_equals_whole_clip() {
        for (from, to) in [(44_100, 8000), (44_100, 11_025), (48_000, 11_025)] {
            let input = tone(440.0, from, 1.3);
            let whole = resample_clip(&input, from, to, KEEP_HZ).unwrap();
            let mut resampler = StreamResampler::new(from, to, KEEP_HZ).unwrap();
            let mut out = Vec::new();
            for chunk in input.chunks(777) {
                resampler.push(chunk, &mut out).unwrap();
            }
            resampler.finish(&mut out).unwrap();
            assert_eq!(out.len(), whole.len(), "{from}->{to}");
            for (a, b) in out.iter().zip(&whole) {
                assert!((a - b).abs() < 1e-5, "{from}->{to}");
            }
        }
    }

    /// RMS of `samples` after skipping the edges.
    fn rms(samples: &[f32]) -> f64 {
        let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
        (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt()
    }

    #[test]
    fn half_band_keeps_the_band_and_rejects_what_would_alias_into_it() {
        let protected = f64::from(KEEP_HZ) + KEEP_MARGIN_HZ;
        for rate in [44_100u32, 22_050, 48_000, 24_000, 96_000] {
            let half = f64::from(rate) / 2.0;
            let gain = |freq: f64| {
                let input = tone(freq as f32, rate, 1.0);
                let mut stage = HalfBand::new(rate, protected);
                let mut out = Vec::new();
                for chunk in input.chunks(1000) {
                    stage.push(chunk, &mut out);
                }
                stage.finish(&mut out);
                assert_eq!(out.len(), input.len().div_ceil(2));
                rms(&out) / rms(&input)
            };
            // Flat across the analysis band (1 kHz tone and the band's edges) ...
            for freq in [200.0, 1000.0, 3600.0, protected] {
                let db = 20.0 * gain(freq).log10();
                assert!(db.abs() < 0.01, "{rate} Hz, {freq} Hz tone: {db:.4} dB");
            }
            // ... and at least 75 dB down wherever the output would fold it back into the band.
            for freq in [half - protected, half - 1000.0, half - 200.0, half + 1000.0] {
                let db = 20.0 * gain(freq).log10();
                assert!(db < -75.0, "{rate} Hz, {freq} Hz alias source: {db:.1} dB");
            }
        }
    }

    #[test]
    fn half_band_streams_exactly_like_a_whole() {
        let input = tone(3000.0, 44_100, 0.5);
        let protected = f64::from(KEEP_HZ) + KEEP_MARGIN_HZ;
        let whole = {
            let mut stage = HalfBand::new(44_100, protected);
            let mut out = Vec::new();
            stage.push(&input, &mut out);
            stage.finish(&mut out);
            out
        };
        // Odd and even chunk lengths, down to single samples.
        for chunk in [1, 2, 7, 64, 777] {
            let mut stage = HalfBand::new(44_100, protected);
            let mut out = Vec::new();
            for part in input.chunks(chunk) {
                stage.push(part, &mut out);
            }
            stage.finish(&mut out);
            assert_eq!(out, whole, "chunks of {chunk}");
        }
    }

    /// Mean power of `samples` (middle half, Hann-windowed) at or below `KEEP_HZ`, in dB
    /// relative to the mean power of `reference`.
    fn in_band_db(samples: &[f32], rate_hz: u32, reference: &[f32]) -> f64 {
        let middle = &samples[samples.len() / 4..samples.len() * 3 / 4];
        let n = middle.len() & !1;
        let window: Vec<f64> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let mut frame: Vec<f64> = middle
            .iter()
            .zip(&window)
            .map(|(&x, w)| f64::from(x) * w)
            .collect();
        let fft = realfft::RealFftPlanner::<f64>::new().plan_fft_forward(n);
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut frame, &mut spectrum).unwrap();
        let band_bins = (f64::from(KEEP_HZ) * n as f64 / f64::from(rate_hz)) as usize;
        let band_energy: f64 = spectrum[1..=band_bins].iter().map(|c| c.norm_sqr()).sum();
        let window_energy: f64 = window.iter().map(|w| w * w).sum();
        let band_power = 2.0 * band_energy / (n as f64 * window_energy);
        10.0 * (band_power / rms(reference).powi(2)).log10()
    }

    #[test]
    fn alias_sources_are_rejected_end_to_end() {
        for to in ANALYSIS_RATES {
            for from in [44_100u32, 48_000] {
                let in_band = |freq: f32| {
                    let input = tone(freq, from, 2.0);
                    let out = resample_clip(&input, from, to, KEEP_HZ).unwrap();
                    in_band_db(&out, to, &input)
                };
                for freq in [200.0, 1000.0, KEEP_HZ - 20.0] {
                    let pass = in_band(freq);
                    assert!(
                        pass.abs() < 0.1,
                        "{from}->{to}: {freq} Hz tone at {pass:.2} dB"
                    );
                }
                // Every tone above the band must stay out of it: whatever of it the stages
                // let through lands above 3.6 kHz, and the rest is at least 60 dB down.
                let mut freq = KEEP_HZ + 300.0;
                while freq < from as f32 / 2.0 {
                    let db = in_band(freq);
                    assert!(
                        db < -60.0,
                        "{from}->{to}: a {freq} Hz tone puts {db:.1} dB into the band"
                    );
                    freq += 997.0;
                }
            }
        }
    }

    #[test]
    fn pre_decimation_only_where_it_is_cheap_and_exact() {
        let stages = |from, to| {
            let resampler = StreamResampler::new(from, to, KEEP_HZ).unwrap();
            (resampler.stages.len(), resampler.inner.is_some())
        };
        // At 11,025 Hz, 44.1 kHz music is halved twice and needs no rubato at all.
        assert_eq!(stages(44_100, 11_025), (2, false));
        assert_eq!(stages(22_050, 11_025), (1, false));
        assert_eq!(stages(48_000, 11_025), (2, true)); // -> 12,000 Hz, then rubato
        assert_eq!(stages(32_000, 11_025), (1, true)); // -> 16,000 Hz
        assert_eq!(stages(16_000, 11_025), (0, true));
        assert_eq!(stages(8000, 11_025), (0, true)); // phone clips are upsampled
        assert_eq!(stages(11_025, 11_025), (0, false));
        // At 8 kHz.
        assert_eq!(stages(44_100, 8000), (2, true)); // -> 11,025 Hz, then rubato
        assert_eq!(stages(48_000, 8000), (2, true)); // -> 12,000 Hz
        assert_eq!(stages(22_050, 8000), (1, true));
        // 16 -> 8 kHz would leave the half-band filter a 600 Hz transition: rubato does it.
        assert_eq!(stages(16_000, 8000), (0, true));
        assert_eq!(stages(8000, 8000), (0, false));
    }

    #[test]
    fn a_band_the_output_rate_cannot_carry_is_refused() {
        assert!(StreamResampler::new(44_100, 8000, 4001.0).is_err());
        assert!(StreamResampler::new(44_100, 0, 3600.0).is_err());
        assert!(StreamResampler::new(0, 8000, 3600.0).is_err());
    }
}
