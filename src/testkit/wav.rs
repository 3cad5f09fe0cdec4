//! Writing (and reading back) WAV files for tests and benchmarks, via `hound`.
//!
//! Multi-channel audio is interleaved (`L, R, L, R, ...` for stereo). Errors from
//! `hound` are mapped to [`std::io::Error`] (I/O errors are passed through unchanged,
//! format errors become [`std::io::ErrorKind::Other`]).

use std::io;
use std::path::Path;

fn to_io(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other),
    }
}

fn check_layout(samples: &[f32], sample_rate_hz: u32, channels: u16) -> io::Result<()> {
    if channels == 0 || sample_rate_hz == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "channels and sample rate must be non-zero",
        ));
    }
    if !samples.len().is_multiple_of(usize::from(channels)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} samples is not a whole number of {channels}-channel frames",
                samples.len()
            ),
        ));
    }
    Ok(())
}

fn write_with(
    path: &Path,
    samples: &[f32],
    spec: hound::WavSpec,
    write: impl Fn(&mut hound::WavWriter<io::BufWriter<std::fs::File>>, f32) -> hound::Result<()>,
) -> io::Result<()> {
    check_layout(samples, spec.sample_rate, spec.channels)?;
    let mut writer = hound::WavWriter::create(path, spec).map_err(to_io)?;
    for &s in samples {
        write(&mut writer, s).map_err(to_io)?;
    }
    writer.finalize().map_err(to_io)
}

/// Write 16-bit PCM. `samples` are interleaved if `channels > 1`; values are clamped to
/// `[-1, 1]`, scaled by 32767 and rounded (NaN is written as 0).
///
/// Fails with [`io::ErrorKind::InvalidInput`] if `channels` or the sample rate is 0 or
/// `samples.len()` is not a multiple of `channels`.
pub fn write_wav_i16(
    path: &Path,
    samples: &[f32],
    sample_rate_hz: u32,
    channels: u16,
) -> io::Result<()> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: sample_rate_hz,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    write_with(path, samples, spec, |w, s| {
        let v = if s.is_nan() { 0.0 } else { s.clamp(-1.0, 1.0) };
        w.write_sample((v * 32767.0).round() as i16)
    })
}

/// Write 32-bit IEEE float WAV. `samples` are interleaved if `channels > 1` and are
/// written as is (no clamping).
///
/// Fails with [`io::ErrorKind::InvalidInput`] if `channels` or the sample rate is 0 or
/// `samples.len()` is not a multiple of `channels`.
pub fn write_wav_f32(
    path: &Path,
    samples: &[f32],
    sample_rate_hz: u32,
    channels: u16,
) -> io::Result<()> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: sample_rate_hz,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    write_with(path, samples, spec, |w, s| w.write_sample(s))
}

/// Read a WAV file (integer PCM of 8-32 bits or 32-bit float) as interleaved f32 in
/// `[-1, 1]`. Returns `(samples, sample_rate_hz, channels)`.
pub fn read_wav(path: &Path) -> io::Result<(Vec<f32>, u32, u16)> {
    let mut reader = hound::WavReader::open(path).map_err(to_io)?;
    let spec = reader.spec();
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(to_io)?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<Vec<_>, _>>()
                .map_err(to_io)?
        }
    };
    Ok((samples, spec.sample_rate, spec.channels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::synth;

    #[test]
    fn i16_round_trip_mono_and_stereo() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let mono = synth::song(4, 1.0, 16_000);
        let p = dir.path().join("mono.wav");
        write_wav_i16(&p, &mono, 16_000, 1)?;
        let mut r = hound::WavReader::open(&p)?;
        let spec = r.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 16_000, 16)
        );
        let raw: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
        assert_eq!(raw.len(), mono.len());
        for (a, &b) in mono.iter().zip(&raw) {
            assert!((a * 32767.0 - f32::from(b)).abs() <= 0.5 + 1e-3);
        }

        let stereo = synth::song_stereo(4, 1.0, 22_050);
        let p = dir.path().join("stereo.wav");
        write_wav_i16(&p, &stereo, 22_050, 2)?;
        let (back, sr, ch) = read_wav(&p)?;
        assert_eq!((sr, ch, back.len()), (22_050, 2, stereo.len()));
        assert!(back.iter().zip(&stereo).all(|(a, b)| (a - b).abs() < 1e-4));
        Ok(())
    }

    #[test]
    fn i16_clamps() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("clamp.wav");
        write_wav_i16(&p, &[1.5, -2.0, 0.5, f32::NAN], 8_000, 1)?;
        let raw: Vec<i16> = hound::WavReader::open(&p)?
            .samples::<i16>()
            .collect::<Result<_, _>>()?;
        assert_eq!(raw, vec![32767, -32767, 16384, 0]);
        Ok(())
    }

    #[test]
    fn f32_round_trip_is_exact() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let x = synth::song_stereo(9, 0.5, 44_100);
        let p = dir.path().join("f.wav");
        write_wav_f32(&p, &x, 44_100, 2)?;
        let (back, sr, ch) = read_wav(&p)?;
        assert_eq!((sr, ch), (44_100, 2));
        assert_eq!(back, x);
        Ok(())
    }

    #[test]
    fn bad_layout_is_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("bad.wav");
        let e = write_wav_i16(&p, &[0.0; 3], 8_000, 2).expect_err("odd stereo");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = write_wav_f32(&p, &[0.0; 4], 8_000, 0).expect_err("zero channels");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let missing = dir.path().join("no/such/dir/x.wav");
        let e = write_wav_i16(&missing, &[0.0; 4], 8_000, 1).expect_err("missing dir");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(read_wav(&dir.path().join("absent.wav")).is_err());
    }
}
