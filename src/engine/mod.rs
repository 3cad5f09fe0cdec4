//! The analysis pipeline, as a straight line:
//!
//! ```text
//! decode (symphonia) -> mono -> resample to SAMPLE_RATE (rubato) -> STFT (realfft)
//!   -> peaks (constellation) -> landmarks (anchor + fan-out hashes)
//! ```
//!
//! Everything up to the peaks streams, so memory does not grow with the file's length beyond
//! the peak list (~15 peaks per second). Landmarks are derived from peaks on demand: the index
//! stores peaks, which are several times smaller than the hashes they generate.

pub mod contrast;
pub mod decode;
pub mod error;
pub mod front_end;
pub mod landmarks;
pub mod matcher;
pub mod peaks;
pub mod postings;
pub mod repeats;
pub mod resample;
pub mod simd;
pub mod source_check;
pub mod stft;
pub mod verify;
pub mod windows;

pub use decode::{AudioSource, DecodeSummary, Tags, undecodable_format_name};
pub use error::EngineError;
pub use landmarks::{Landmark, PairingRule};
pub use peaks::Peak;

use crate::cancel::CancelToken;
use crate::config::{FingerprintConfig, MatchConfig};
use contrast::ContrastMap;
use front_end::FrontEnd;
use peaks::PeakPicker;

/// RMS below this (about -80 dBFS) counts as silence.
const SILENCE_RMS: f64 = 1e-4;

/// The constellation of one song or clip.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fingerprint {
    /// Peaks sorted by frame, then bin.
    pub peaks: Vec<Peak>,
    /// Number of STFT frames analysed.
    pub num_frames: u32,
    /// Length of the audio in seconds.
    pub duration_secs: f64,
    /// The clip's spectral contrast, for verifying candidates (queries only).
    pub contrast: Option<ContrastMap>,
}

/// How densely to analyse: the index side or the query side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// Songs being indexed: the configured density and fan-out.
    Reference,
    /// Clips being identified: denser peaks and a wider fan-out (see [`MatchConfig`]).
    Query,
}

/// Streaming analyser from mono samples at any rate to a [`Fingerprint`]: the
/// [`FrontEnd`]'s frames through the peak picker (and, for queries, the contrast map).
pub struct Analyzer {
    peaks_per_second: f32,
    front_end: FrontEnd,
    picker: PeakPicker,
    peaks: Vec<Peak>,
    contrast: Option<ContrastMap>,
}

impl Analyzer {
    /// An analyser for `side`.
    pub fn new(config: &FingerprintConfig, match_config: &MatchConfig, side: Side) -> Self {
        let peaks_per_second = match side {
            Side::Reference => config.peaks_per_second,
            Side::Query => config.peaks_per_second * match_config.query_density_factor,
        };
        Self {
            peaks_per_second,
            front_end: FrontEnd::new(config),
            picker: PeakPicker::new(config, peaks_per_second),
            peaks: Vec::new(),
            contrast: (side == Side::Query).then(|| ContrastMap::new(config)),
        }
    }

    /// The peak density this analyser aims at.
    pub fn peaks_per_second(&self) -> f32 {
        self.peaks_per_second
    }

    /// Feeds mono samples at `sample_rate_hz`.
    pub fn push(
        &mut self,
        samples: &[f32],
        sample_rate_hz: u32,
        source_name: &str,
    ) -> Result<(), EngineError> {
        let Self {
            front_end,
            picker,
            peaks,
            contrast,
            ..
        } = self;
        front_end.push(samples, sample_rate_hz, source_name, |frame| {
            analyse_frame(frame, picker, peaks, contrast)
        })
    }

    /// Ends the stream and returns the fingerprint, or why there is none.
    pub fn finish(mut self, source_name: &str, min_secs: f64) -> Result<Fingerprint, EngineError> {
        let Self {
            front_end,
            picker,
            peaks,
            contrast,
            ..
        } = &mut self;
        front_end.finish(source_name, |frame| {
            analyse_frame(frame, picker, peaks, contrast)
        })?;
        picker.finish(peaks);
        let duration_secs = front_end.seconds_in();
        // Added over a chained stream's links, a length can miss by a rounding error.
        if duration_secs < min_secs - 1e-6 {
            return Err(EngineError::TooShort {
                source_name: source_name.to_string(),
                secs: duration_secs,
                min_secs,
            });
        }
        if front_end.rms() < SILENCE_RMS || peaks.is_empty() {
            return Err(EngineError::Silent {
                source_name: source_name.to_string(),
            });
        }
        Ok(Fingerprint {
            num_frames: self.picker.frames_seen(),
            peaks: self.peaks,
            duration_secs,
            contrast: self.contrast,
        })
    }
}

/// One front-end frame into the peak picker and the contrast map.
fn analyse_frame(
    frame: &[f32],
    picker: &mut PeakPicker,
    peaks: &mut Vec<Peak>,
    contrast: &mut Option<ContrastMap>,
) {
    picker.push_frame(frame, peaks);
    if let Some(map) = contrast.as_mut() {
        map.push_frame(frame);
    }
}

/// Fingerprints mono samples held in memory (a recorded or uploaded clip).
pub fn fingerprint_samples(
    samples: &[f32],
    sample_rate_hz: u32,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    side: Side,
) -> Result<Fingerprint, EngineError> {
    if sample_rate_hz == 0 {
        return Err(EngineError::BadFormat {
            source_name: "clip".to_string(),
            reason: "sample rate 0".to_string(),
        });
    }
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(EngineError::BadFormat {
            source_name: "clip".to_string(),
            reason: "samples contain NaN or infinity".to_string(),
        });
    }
    let mut analyzer = Analyzer::new(config, match_config, side);
    analyzer.push(samples, sample_rate_hz, "clip")?;
    let min_secs = match side {
        Side::Reference => 1.0,
        Side::Query => match_config.min_clip_secs,
    };
    analyzer.finish("clip", min_secs)
}

/// Decodes and fingerprints a file or upload, streaming.
pub fn fingerprint_source(
    source: AudioSource<'_>,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    side: Side,
    cancel: &CancelToken,
) -> Result<(Fingerprint, DecodeSummary), EngineError> {
    let name = match &source {
        AudioSource::File(path) => path.display().to_string(),
        AudioSource::Bytes { name, .. } => (*name).to_string(),
    };
    let mut analyzer = Analyzer::new(config, match_config, side);
    let cut_streams = match side {
        Side::Reference => decode::CutStreams::Refuse,
        Side::Query => decode::CutStreams::Accept,
    };
    let summary = decode::decode_mono(source, cut_streams, cancel, |chunk, rate| {
        analyzer.push(chunk, rate, &name)
    })?;
    let min_secs = match side {
        Side::Reference => 1.0,
        Side::Query => match_config.min_clip_secs,
    };
    let fingerprint = analyzer.finish(&name, min_secs)?;
    Ok((fingerprint, summary))
}

/// A clip's decoded mono audio, kept to re-analyse it (e.g. at other playback speeds).
#[derive(Clone, Debug)]
pub struct ClipAudio {
    /// Mono samples.
    pub samples: Vec<f32>,
    /// Their sample rate.
    pub sample_rate_hz: u32,
}

/// Decodes and fingerprints a clip for a query, also keeping its audio when it is at most
/// `keep_secs` long (and at one sample rate), so it can be analysed again without decoding.
pub fn fingerprint_query_source(
    source: AudioSource<'_>,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    cancel: &CancelToken,
    keep_secs: f64,
) -> Result<(Fingerprint, Option<ClipAudio>), EngineError> {
    let name = match &source {
        AudioSource::File(path) => path.display().to_string(),
        AudioSource::Bytes { name, .. } => (*name).to_string(),
    };
    let mut analyzer = Analyzer::new(config, match_config, Side::Query);
    let mut kept: Option<ClipAudio> = Some(ClipAudio {
        samples: Vec::new(),
        sample_rate_hz: 0,
    });
    decode::decode_mono(source, decode::CutStreams::Accept, cancel, |chunk, rate| {
        if let Some(clip) = kept.as_mut() {
            if clip.sample_rate_hz == 0 {
                clip.sample_rate_hz = rate;
            }
            let too_long = (clip.samples.len() + chunk.len()) as f64 > keep_secs * f64::from(rate);
            if clip.sample_rate_hz != rate || too_long {
                kept = None;
            } else {
                clip.samples.extend_from_slice(chunk);
            }
        }
        analyzer.push(chunk, rate, &name)
    })?;
    let fingerprint = analyzer.finish(&name, match_config.min_clip_secs)?;
    Ok((fingerprint, kept.filter(|c| !c.samples.is_empty())))
}

/// The part of a clip's fingerprint from `first_frame` on, as the fingerprint of a clip
/// starting there (the part of a clip after one song ends, where another may begin).
pub fn tail_of(
    fingerprint: &Fingerprint,
    first_frame: u32,
    config: &FingerprintConfig,
) -> Fingerprint {
    let num_frames = fingerprint.num_frames.saturating_sub(first_frame);
    Fingerprint {
        peaks: fingerprint
            .peaks
            .iter()
            .filter(|peak| peak.frame >= first_frame)
            .map(|peak| Peak {
                frame: peak.frame - first_frame,
                bin: peak.bin,
            })
            .collect(),
        num_frames,
        duration_secs: (fingerprint.duration_secs - f64::from(first_frame) * config.frame_secs())
            .max(0.0),
        contrast: fingerprint
            .contrast
            .as_ref()
            .map(|map| map.from_frame(first_frame as usize)),
    }
}

/// Fingerprints a clip as if it had been played `speed` times faster than the original
/// (radio, vinyl and DJ pitch changes move time and pitch together): analysing its samples at
/// `rate / speed` undoes the change.
pub fn fingerprint_at_speed(
    clip: &ClipAudio,
    speed: f64,
    config: &FingerprintConfig,
    match_config: &MatchConfig,
) -> Result<Fingerprint, EngineError> {
    let rate = (f64::from(clip.sample_rate_hz) / speed).round().max(1.0) as u32;
    fingerprint_samples(&clip.samples, rate, config, match_config, Side::Query)
}

/// The clip's peaks moved as if its pitch were scaled by `1 / pitch_factor` with the timing
/// kept (a key change by a DJ's pitch shifter: `pitch_factor = 2^(1/12)` for one semitone up).
pub fn shift_pitch(
    fingerprint: &Fingerprint,
    pitch_factor: f64,
    config: &FingerprintConfig,
) -> Fingerprint {
    let first_bin = config.first_bin() as f64;
    let band = config.band_bins() as f64;
    let mut peaks: Vec<Peak> = fingerprint
        .peaks
        .iter()
        .filter_map(|peak| {
            let absolute = (f64::from(peak.bin) + first_bin) / pitch_factor;
            let bin = (absolute - first_bin).round();
            (bin >= 0.0 && bin < band).then_some(Peak {
                frame: peak.frame,
                bin: bin as u16,
            })
        })
        .collect();
    peaks.sort_unstable();
    peaks.dedup();
    Fingerprint {
        peaks,
        num_frames: fingerprint.num_frames,
        duration_secs: fingerprint.duration_secs,
        contrast: fingerprint
            .contrast
            .as_ref()
            .map(|map| map.pitch_shifted(pitch_factor, config.first_bin())),
    }
}

/// The pairing rule for `side`.
pub fn pairing_rule(
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    side: Side,
) -> PairingRule {
    let fan_value = match side {
        Side::Reference => config.fan_value,
        Side::Query => config.fan_value * match_config.query_fan_factor.max(1),
    };
    PairingRule {
        fan_value,
        max_delta_frames: config.max_delta_frames,
        max_delta_bins: config.max_delta_bins,
        dt_tolerance: side == Side::Query && match_config.query_dt_tolerance,
    }
}

/// The landmarks of a fingerprint for `side`.
pub fn landmarks_of(
    fingerprint_peaks: &[Peak],
    config: &FingerprintConfig,
    match_config: &MatchConfig,
    side: Side,
) -> Vec<Landmark> {
    let rule = pairing_rule(config, match_config, side);
    let mut out = Vec::with_capacity(fingerprint_peaks.len() * rule.fan_value);
    landmarks::landmarks(fingerprint_peaks, rule, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length is counted in samples, not summed chunk by chunk: one second is 1.0, which
    /// the JSON output shows and the 1 s minimum compares with; over a chained stream's links
    /// at two rates the seconds add up.
    #[test]
    fn a_clip_s_length_is_exact_whatever_its_chunks() {
        let config = FingerprintConfig::default();
        let song = crate::testkit::synth::song(5, 2.0, 44_100);
        let analyse = |parts: &[(&[f32], u32)]| {
            let mut analyzer = Analyzer::new(&config, &MatchConfig::default(), Side::Query);
            for &(samples, rate) in parts {
                for chunk in samples.chunks(1_152) {
                    analyzer.push(chunk, rate, "clip").expect("a push");
                }
            }
            analyzer
                .finish("clip", 1.0)
                .expect("a fingerprint")
                .duration_secs
        };
        assert_eq!(analyse(&[(&song[..44_100], 44_100)]), 1.0);
        let chained = analyse(&[(&song[..22_050], 44_100), (&song[22_050..46_050], 48_000)]);
        assert!((chained - 1.0).abs() < 1e-12, "{chained}");
    }

    #[test]
    fn shift_pitch_scales_frequencies_and_keeps_time() {
        let config = FingerprintConfig::default();
        let first = config.first_bin() as u16;
        let fingerprint = Fingerprint {
            peaks: vec![
                Peak {
                    frame: 3,
                    bin: 200 - first,
                },
                Peak { frame: 9, bin: 0 },
            ],
            num_frames: 20,
            duration_secs: 1.0,
            contrast: None,
        };
        let semitone_up = 2f64.powf(1.0 / 12.0);
        let shifted = shift_pitch(&fingerprint, semitone_up, &config);
        // 200 / 1.0595 = 188.8 -> bin 189; the lowest bin falls out of the band.
        assert_eq!(
            shifted.peaks,
            vec![Peak {
                frame: 3,
                bin: 189 - first
            }]
        );
        assert_eq!(shifted.num_frames, 20);
    }
}
