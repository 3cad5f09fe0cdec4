//! Audio degradations for robustness tests: additive noise at a given SNR, excerpts,
//! gain changes and a simple anti-aliased sample-rate converter.
//!
//! All functions take mono sample slices (for interleaved audio, de-interleave first)
//! and return new vectors; nothing is modified in place. Noise generators are seeded
//! and deterministic.

use std::f64::consts::PI;

use super::rng::Rng;

/// Root-mean-square level of `samples` (0 for an empty slice). Accumulates in f64.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

/// Multiply every sample by `factor` (no clipping is applied).
pub fn gain(samples: &[f32], factor: f32) -> Vec<f32> {
    samples.iter().map(|&x| x * factor).collect()
}

/// Convert seconds to a sample count, treating NaN and negative values as 0.
fn secs_to_samples(secs: f32, sample_rate_hz: u32) -> usize {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        (f64::from(secs) * f64::from(sample_rate_hz)).round() as usize
    }
}

/// The `len_secs` seconds of `samples` starting at `start_secs` (mono).
///
/// Start and length are rounded to whole samples; the excerpt is clamped to the end of
/// the input (so it may be shorter than asked, or empty if `start_secs` is past the
/// end). Negative or NaN times count as 0.
pub fn excerpt(samples: &[f32], sample_rate_hz: u32, start_secs: f32, len_secs: f32) -> Vec<f32> {
    let start = secs_to_samples(start_secs, sample_rate_hz).min(samples.len());
    let end = start
        .saturating_add(secs_to_samples(len_secs, sample_rate_hz))
        .min(samples.len());
    samples[start..end].to_vec()
}

/// Add `noise` scaled so that `rms(samples) / rms(added noise)` is `snr_db` dB.
///
/// A silent signal, a silent noise or a NaN/+inf SNR returns the signal unchanged.
fn mix_at_snr(samples: &[f32], noise: &[f32], snr_db: f32) -> Vec<f32> {
    let sig = f64::from(rms(samples));
    let nr = f64::from(rms(noise));
    if sig == 0.0 || nr == 0.0 || snr_db.is_nan() || snr_db == f32::INFINITY {
        return samples.to_vec();
    }
    let k = (sig / 10f64.powf(f64::from(snr_db) / 20.0) / nr) as f32;
    samples
        .iter()
        .zip(noise)
        .map(|(&s, &n)| s + k * n)
        .collect()
}

/// Gaussian white noise (Box-Muller), unit variance.
fn white(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::derive(seed, 0x0057_4817_E000);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - r.unit_f64(); // (0, 1]
        let u2 = r.unit_f64();
        let m = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * PI * u2).sin_cos();
        out.push((m * c) as f32);
        out.push((m * s) as f32);
    }
    out.truncate(n);
    out
}

/// Add Gaussian white noise at a signal-to-noise ratio of `snr_db` dB.
///
/// The noise RMS is set exactly to `rms(samples) / 10^(snr_db / 20)`, with the signal
/// RMS measured over the whole slice (silent passages included). Deterministic for a
/// given `seed`. Output is not clipped. A silent input is returned unchanged.
pub fn add_white_noise(samples: &[f32], snr_db: f32, seed: u64) -> Vec<f32> {
    mix_at_snr(samples, &white(samples.len(), seed), snr_db)
}

/// Add pink (1/f) noise at a signal-to-noise ratio of `snr_db` dB.
///
/// Same level convention as [`add_white_noise`]. The noise is white noise through
/// Paul Kellet's pink filter (accurate to about +-0.05 dB above 1/1000 of the sample
/// rate), warmed up so that it starts in steady state.
pub fn add_pink_noise(samples: &[f32], snr_db: f32, seed: u64) -> Vec<f32> {
    const WARMUP: usize = 8192;
    let w = white(samples.len() + WARMUP, seed ^ 0x7019_4E00);
    let mut b = [0.0f32; 7];
    let mut pink = Vec::with_capacity(samples.len());
    for (i, &x) in w.iter().enumerate() {
        b[0] = 0.99886 * b[0] + x * 0.055_517_9;
        b[1] = 0.99332 * b[1] + x * 0.075_075_9;
        b[2] = 0.96900 * b[2] + x * 0.153_852;
        b[3] = 0.86650 * b[3] + x * 0.310_485_6;
        b[4] = 0.55000 * b[4] + x * 0.532_952_2;
        b[5] = -0.7616 * b[5] - x * 0.016_898;
        let y = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + x * 0.5362;
        b[6] = x * 0.115_926;
        if i >= WARMUP {
            pink.push(y);
        }
    }
    mix_at_snr(samples, &pink, snr_db)
}

/// Windowed-sinc (Blackman) low-pass for decimating by `ratio = to / from < 1`:
/// -6 dB at 0.475 * the output rate, stop band from about 0.55 * the output rate.
fn lowpass_taps(ratio: f64) -> Vec<f32> {
    let fc = 0.475 * ratio; // cycles per input sample
    let transition = 0.15 * ratio;
    let n = ((5.5 / transition).ceil() as usize).clamp(15, 4095) | 1;
    let m = (n - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 - m;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * PI * fc * x).sin() / (PI * x)
            };
            let t = 2.0 * PI * i as f64 / (n - 1) as f64;
            let w = 0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos();
            sinc * w
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v /= sum;
    }
    h.into_iter().map(|v| v as f32).collect()
}

/// Input sample `i`, low-pass filtered by `h` (centred, zero-padded at the edges).
fn filtered_at(x: &[f32], h: &[f32], i: usize) -> f32 {
    let m = h.len() / 2;
    // Taps k with 0 <= i + k - m < x.len().
    let k_lo = m.saturating_sub(i);
    let k_hi = h.len().min((x.len() + m).saturating_sub(i));
    if k_lo >= k_hi {
        return 0.0;
    }
    let xs = &x[i + k_lo - m..i + k_hi - m];
    let hs = &h[k_lo..k_hi];
    let mut acc = [0.0f32; 4];
    let mut xc = xs.chunks_exact(4);
    let mut hc = hs.chunks_exact(4);
    for (a, b) in (&mut xc).zip(&mut hc) {
        acc[0] += a[0] * b[0];
        acc[1] += a[1] * b[1];
        acc[2] += a[2] * b[2];
        acc[3] += a[3] * b[3];
    }
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(hc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Resample mono audio from `from_hz` to `to_hz` by linear interpolation.
///
/// When downsampling, the input is first low-passed with a windowed-sinc FIR (cut-off
/// about 0.475 * `to_hz`, stop band from about 0.55 * `to_hz`, ~ -70 dB), evaluated only
/// at the input positions the interpolation needs, so e.g. 44.1 kHz -> 8 kHz does not
/// alias audibly. Upsampling uses plain linear interpolation. The output has
/// `round(len * to_hz / from_hz)` samples; output sample `j` is taken at input position
/// `j * from_hz / to_hz`. Equal rates return a copy; a zero rate returns an empty vector.
pub fn resample_linear(samples: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if from_hz == 0 || to_hz == 0 || samples.is_empty() {
        return Vec::new();
    }
    if from_hz == to_hz {
        return samples.to_vec();
    }
    let (from, to) = (u128::from(from_hz), u128::from(to_hz));
    let out_len = ((samples.len() as u128 * to + from / 2) / from) as usize;
    let fir = (to_hz < from_hz).then(|| lowpass_taps(f64::from(to_hz) / f64::from(from_hz)));
    let last = samples.len() - 1;
    // Cache of the two most recently filtered input positions.
    let mut cache = [(usize::MAX, 0.0f32); 2];
    let mut value = |i: usize| -> f32 {
        let Some(h) = &fir else {
            return samples[i];
        };
        if let Some(&(_, v)) = cache.iter().find(|(j, _)| *j == i) {
            return v;
        }
        let v = filtered_at(samples, h, i);
        cache[0] = cache[1];
        cache[1] = (i, v);
        v
    };
    let step = f64::from(from_hz) / f64::from(to_hz);
    let mut out = Vec::with_capacity(out_len);
    for j in 0..out_len {
        let pos = j as f64 * step;
        let i0 = (pos.floor() as usize).min(last);
        let frac = (pos - i0 as f64).clamp(0.0, 1.0) as f32;
        let i1 = (i0 + 1).min(last);
        let y0 = value(i0);
        let y = if frac > 0.0 {
            y0 + (value(i1) - y0) * frac
        } else {
            y0
        };
        out.push(y);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, sr: u32, secs: f32) -> Vec<f32> {
        let n = (secs * sr as f32) as usize;
        (0..n)
            .map(|i| (std::f32::consts::TAU * freq * i as f32 / sr as f32).sin() * 0.5)
            .collect()
    }

    fn zero_crossings(x: &[f32]) -> usize {
        x.windows(2)
            .filter(|w| (w[0] < 0.0 && w[1] >= 0.0) || (w[0] >= 0.0 && w[1] < 0.0))
            .count()
    }

    fn snr_db(clean: &[f32], noisy: &[f32]) -> f32 {
        let noise: Vec<f32> = noisy.iter().zip(clean).map(|(a, b)| a - b).collect();
        20.0 * (rms(clean) / rms(&noise)).log10()
    }

    fn lag1_autocorr(x: &[f32]) -> f64 {
        let num: f64 = x
            .windows(2)
            .map(|w| f64::from(w[0]) * f64::from(w[1]))
            .sum();
        let den: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        num / den
    }

    #[test]
    fn rms_and_gain() {
        assert_eq!(rms(&[]), 0.0);
        assert!((rms(&[1.0, -1.0, 1.0, -1.0]) - 1.0).abs() < 1e-6);
        assert!((rms(&[3.0, 4.0]) - (12.5f32).sqrt()).abs() < 1e-6);
        let t = tone(440.0, 8000, 1.0);
        assert!((rms(&t) - 0.5 / 2f32.sqrt()).abs() < 1e-3);
        assert_eq!(gain(&[0.5, -0.25], 2.0), vec![1.0, -0.5]);
        assert!((rms(&gain(&t, 0.5)) - rms(&t) * 0.5).abs() < 1e-6);
    }

    #[test]
    fn excerpt_clamps() {
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let e = excerpt(&x, 100, 2.0, 3.0);
        assert_eq!(e.len(), 300);
        assert_eq!(e[0], 200.0);
        assert_eq!(excerpt(&x, 100, 8.0, 5.0).len(), 200);
        assert!(excerpt(&x, 100, 12.0, 1.0).is_empty());
        assert_eq!(excerpt(&x, 100, -1.0, 1.0)[0], 0.0);
        assert!(excerpt(&x, 100, 1.0, f32::NAN).is_empty());
        assert_eq!(excerpt(&x, 100, 0.0, f32::INFINITY).len(), 1000);
    }

    #[test]
    fn white_noise_snr_is_accurate() {
        let clean = crate::testkit::synth::song(3, 5.0, 16_000);
        for snr in [-10.0f32, 0.0, 5.0, 10.0, 20.0, 40.0] {
            let noisy = add_white_noise(&clean, snr, 9);
            assert_eq!(noisy.len(), clean.len());
            assert!(noisy.iter().all(|v| v.is_finite()));
            let got = snr_db(&clean, &noisy);
            assert!((got - snr).abs() < 0.5, "asked {snr} dB, got {got} dB");
        }
        assert_eq!(
            add_white_noise(&clean, 10.0, 1),
            add_white_noise(&clean, 10.0, 1)
        );
        assert_ne!(
            add_white_noise(&clean, 10.0, 1),
            add_white_noise(&clean, 10.0, 2)
        );
        // Silent input stays silent; +inf SNR is a no-op.
        assert_eq!(add_white_noise(&[0.0; 10], 10.0, 1), vec![0.0; 10]);
        assert_eq!(add_white_noise(&clean, f32::INFINITY, 1), clean);
    }

    #[test]
    fn white_noise_is_white_and_gaussian() {
        let n = white(200_000, 4);
        assert!(lag1_autocorr(&n).abs() < 0.02);
        assert!((rms(&n) - 1.0).abs() < 0.02);
        let mean = n.iter().map(|&v| f64::from(v)).sum::<f64>() / n.len() as f64;
        assert!(mean.abs() < 0.01);
    }

    #[test]
    fn pink_noise_snr_and_colour() {
        let clean = tone(440.0, 16_000, 4.0);
        for snr in [0.0f32, 10.0, 25.0] {
            let noisy = add_pink_noise(&clean, snr, 5);
            let got = snr_db(&clean, &noisy);
            assert!((got - snr).abs() < 0.5, "asked {snr} dB, got {got} dB");
        }
        let noisy = add_pink_noise(&clean, 0.0, 5);
        let noise: Vec<f32> = noisy.iter().zip(&clean).map(|(a, b)| a - b).collect();
        // Pink noise is strongly low-frequency weighted: high lag-1 autocorrelation.
        assert!(lag1_autocorr(&noise) > 0.5);
        assert_eq!(
            add_pink_noise(&clean, 3.0, 8),
            add_pink_noise(&clean, 3.0, 8)
        );
    }

    #[test]
    fn resample_lengths() {
        let x = vec![0.1f32; 44_100];
        assert_eq!(resample_linear(&x, 44_100, 8_000).len(), 8_000);
        assert_eq!(resample_linear(&x, 44_100, 22_050).len(), 22_050);
        assert_eq!(resample_linear(&x, 44_100, 48_000).len(), 48_000);
        assert_eq!(resample_linear(&x[..1000], 44_100, 11_025).len(), 250);
        assert_eq!(resample_linear(&x[..3], 44_100, 8_000).len(), 1);
        assert_eq!(resample_linear(&x[..100], 8_000, 8_000), x[..100].to_vec());
        assert!(resample_linear(&x, 0, 8_000).is_empty());
        assert!(resample_linear(&[], 44_100, 8_000).is_empty());
        // DC gain is 1 (away from the zero-padded edges).
        let y = resample_linear(&x, 44_100, 8_000);
        assert!(y[100..7900].iter().all(|v| (v - 0.1).abs() < 1e-4));
    }

    #[test]
    fn resample_keeps_pitch() {
        for (from, to) in [
            (44_100, 8_000),
            (44_100, 11_025),
            (44_100, 22_050),
            (48_000, 44_100),
            (8_000, 44_100),
            (22_050, 16_000),
        ] {
            let x = tone(440.0, from, 2.0);
            let y = resample_linear(&x, from, to);
            assert_eq!(y.len(), 2 * to as usize);
            let zc = zero_crossings(&y[to as usize / 2..to as usize / 2 + to as usize]);
            assert!(
                (878..=882).contains(&zc),
                "{from}->{to}: {zc} zero crossings"
            );
            // Pass band keeps its level.
            let ratio = rms(&y[1000..y.len() - 1000]) / rms(&x);
            assert!(
                (0.97..1.03).contains(&ratio),
                "{from}->{to}: level ratio {ratio}"
            );
        }
    }

    #[test]
    fn resample_suppresses_aliasing() {
        for f in [4_500.0f32, 5_000.0, 6_000.0, 10_000.0, 15_000.0] {
            let x = tone(f, 44_100, 1.0);
            let y = resample_linear(&x, 44_100, 8_000);
            let ratio = rms(&y[200..7800]) / rms(&x);
            assert!(ratio < 0.01, "{f} Hz aliases at {ratio}");
        }
    }

    #[test]
    fn resampling_gives_the_length_of_the_new_rate() {
        let x = crate::testkit::synth::song(2, 30.0, 44_100);
        let y = resample_linear(&x, 44_100, 8_000);
        assert_eq!(y.len(), 240_000);
    }
}
