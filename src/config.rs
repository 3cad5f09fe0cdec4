//! Analysis and matching parameters.
//!
//! [`FingerprintConfig`] holds every parameter that changes the fingerprints themselves. It is
//! stored in the index when the index is created, and an index is refused when opened with a
//! configuration that differs (fingerprints made with other parameters never match). Parameters
//! are grouped by pipeline stage. [`MatchConfig`] holds query-side settings that can change freely.
//!
//! Environment variables (see the README) override the defaults; the CLI flags override those.

use serde::{Deserialize, Serialize};

/// A fingerprint or match setting that cannot be used: from the environment (or `.env`), the
/// command line, or a caller.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// An environment variable that does not hold a number.
    #[error("environment variable {name}={text:?} is not a valid number")]
    NotANumber {
        /// The variable.
        name: String,
        /// What it holds.
        text: String,
    },
    /// An item of a list setting (`SPEED_SEARCH`, `PITCH_SEARCH`) outside its range.
    #[error("{name}: {item:?} is not {what} within {low}..={high}")]
    BadListItem {
        /// The setting.
        name: String,
        /// The item.
        item: String,
        /// What an item is.
        what: &'static str,
        /// Lowest value allowed.
        low: f64,
        /// Highest value allowed.
        high: f64,
    },
    /// Values out of their ranges, each problem naming its setting.
    #[error("{}", .0.join("; "))]
    OutOfRange(Vec<String>),
}

/// Parameters that determine the fingerprints stored in an index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FingerprintConfig {
    // ------ Resampling
    /// Analysis sample rate (`SAMPLE_RATE`). 11,025 Hz is a quarter of 44.1 kHz, so most music
    /// reaches it through two exact half-band stages and no fractional resampler; the analysis
    /// band (below) stays inside what telephone (8 kHz) and voice-app (16 kHz) clips carry.
    pub sample_rate_hz: u32,

    // ------ STFT
    /// FFT length in samples (`N_FFT`, even); a Hann window of the same length. 1408 samples
    /// at 11,025 Hz are 128 ms, bins 7.83 Hz wide.
    pub n_fft: usize,
    /// Hop between frames in samples (`HOP_LENGTH`): 352 samples at 11,025 Hz are 31.9 ms.
    pub hop_length: usize,
    /// Lowest frequency that can hold a peak (`MIN_FREQ`), above the rumble phone mics cut.
    pub min_freq_hz: f32,
    /// Highest frequency that can hold a peak (`MAX_FREQ`), below the GSM/telephone band edge.
    pub max_freq_hz: f32,

    // ------ Peaks (constellation)
    /// Half-width of the local-maximum neighbourhood in frequency bins (`PEAK_NEIGHBORHOOD_SIZE`).
    pub peak_neighborhood_size: usize,
    /// Half-width of the local-maximum neighbourhood in frames (`PEAK_NEIGHBORHOOD_FRAMES`).
    pub peak_neighborhood_frames: usize,
    /// Amplitude floor in dB relative to a full-scale sine (`MIN_AMPLITUDE`): quieter maxima are
    /// never peaks, so digital silence and dither give none.
    pub min_amplitude_db: f32,
    /// Density control (`PEAKS_PER_SECOND`): a peak is kept only if it is among this many
    /// strongest candidates within one second centred on it, so loud and quiet passages both
    /// give peaks and the density does not depend on where a clip starts.
    pub peaks_per_second: f32,

    // ------ Landmark hashes
    /// How many later peaks each anchor is paired with (`FAN_VALUE`).
    pub fan_value: usize,
    /// Target zone length in frames (1..=this after the anchor), at most 63.
    pub max_delta_frames: u32,
    /// Target zone half-height in frequency bins, at most 127.
    pub max_delta_bins: u32,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        Self {
            sample_rate_hz: 11_025,
            n_fft: 1408,
            hop_length: 352,
            min_freq_hz: 200.0,
            max_freq_hz: 3600.0,
            peak_neighborhood_size: 10,
            peak_neighborhood_frames: 4,
            min_amplitude_db: -70.0,
            peaks_per_second: 15.0,
            fan_value: 5,
            max_delta_frames: 63,
            max_delta_bins: 127,
        }
    }
}

impl FingerprintConfig {
    /// Width of one FFT bin in Hz.
    pub fn bin_hz(&self) -> f32 {
        self.sample_rate_hz as f32 / self.n_fft as f32
    }

    /// Seconds between two frames.
    pub fn frame_secs(&self) -> f64 {
        self.hop_length as f64 / f64::from(self.sample_rate_hz)
    }

    /// Frames per second (the time resolution of offsets).
    pub fn frames_per_second(&self) -> f64 {
        1.0 / self.frame_secs()
    }

    /// First FFT bin of the analysis band.
    pub fn first_bin(&self) -> usize {
        (self.min_freq_hz / self.bin_hz()).ceil().max(1.0) as usize
    }

    /// Last FFT bin (inclusive) of the analysis band.
    pub fn last_bin(&self) -> usize {
        ((self.max_freq_hz / self.bin_hz()).floor() as usize).min(self.n_fft / 2)
    }

    /// Number of bins in the analysis band.
    pub fn band_bins(&self) -> usize {
        self.last_bin().saturating_sub(self.first_bin()) + 1
    }

    /// Checks that the parameters are usable and fit the landmark bit layout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("MIN_FREQ", self.min_freq_hz),
            ("MAX_FREQ", self.max_freq_hz),
            ("MIN_AMPLITUDE", self.min_amplitude_db),
            ("PEAKS_PER_SECOND", self.peaks_per_second),
        ] {
            if !value.is_finite() {
                problems.push(format!("{name} must be a finite number, not {value}"));
            }
        }
        if !(4000..=48_000).contains(&self.sample_rate_hz) {
            problems.push("SAMPLE_RATE must be within 4000..=48000".to_string());
        }
        if !self.n_fft.is_multiple_of(2) || !(64..=8192).contains(&self.n_fft) {
            problems.push("N_FFT must be an even number within 64..=8192".to_string());
        }
        if self.hop_length == 0 || self.hop_length > self.n_fft {
            problems.push("HOP_LENGTH must be within 1..=N_FFT".to_string());
        }
        if self.min_freq_hz < 0.0 || self.max_freq_hz <= self.min_freq_hz {
            problems.push("MIN_FREQ must be below MAX_FREQ".to_string());
        }
        if self.max_freq_hz > self.sample_rate_hz as f32 / 2.0 {
            problems.push("MAX_FREQ must be at most SAMPLE_RATE / 2".to_string());
        }
        if self.band_bins() > crate::engine::landmarks::MAX_BAND_BINS {
            problems.push(format!(
                "the analysis band has {} bins; at most {} fit the hash layout (narrow the band or lower N_FFT)",
                self.band_bins(),
                crate::engine::landmarks::MAX_BAND_BINS
            ));
        }
        if self.peaks_per_second <= 0.0 {
            problems.push("PEAKS_PER_SECOND must be positive".to_string());
        }
        if self.peak_neighborhood_size > 64 {
            problems.push("PEAK_NEIGHBORHOOD_SIZE must be within 0..=64 bins".to_string());
        }
        if self.peak_neighborhood_frames > 32 {
            problems.push("PEAK_NEIGHBORHOOD_FRAMES must be within 0..=32 frames".to_string());
        }
        if self.fan_value == 0 || self.fan_value > 64 {
            problems.push("FAN_VALUE must be within 1..=64".to_string());
        }
        if !(1..=63).contains(&self.max_delta_frames) {
            problems.push("the target zone length must be within 1..=63 frames".to_string());
        }
        if !(1..=127).contains(&self.max_delta_bins) {
            problems.push("the target zone height must be within 1..=127 bins".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange(problems))
        }
    }

    /// Human-readable list of the parameters that differ between `self` and `other`, each as
    /// "NAME self_value vs other_value", named by its environment variable where it has one.
    pub fn differences(&self, other: &Self) -> Vec<String> {
        let a = serde_json::to_value(self).unwrap_or_default();
        let b = serde_json::to_value(other).unwrap_or_default();
        let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
            return vec!["unreadable parameters".to_string()];
        };
        let absent = serde_json::Value::String("(absent)".to_string());
        let mut keys: Vec<&String> = a.keys().collect();
        keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
        keys.into_iter()
            .filter_map(|key| {
                let (x, y) = (a.get(key).unwrap_or(&absent), b.get(key).unwrap_or(&absent));
                (x != y).then(|| format!("{} {x} vs {y}", parameter_name(key)))
            })
            .collect()
    }

    /// Applies the fingerprint environment variables (`SAMPLE_RATE`, `N_FFT`, `HOP_LENGTH`,
    /// `PEAK_NEIGHBORHOOD_SIZE`, `MIN_AMPLITUDE`, `FAN_VALUE`, ...) on top of `self`.
    pub fn with_env(mut self) -> Result<Self, ConfigError> {
        read_env("SAMPLE_RATE", &mut self.sample_rate_hz)?;
        read_env("N_FFT", &mut self.n_fft)?;
        read_env("HOP_LENGTH", &mut self.hop_length)?;
        read_env("MIN_FREQ", &mut self.min_freq_hz)?;
        read_env("MAX_FREQ", &mut self.max_freq_hz)?;
        read_env("PEAK_NEIGHBORHOOD_SIZE", &mut self.peak_neighborhood_size)?;
        read_env(
            "PEAK_NEIGHBORHOOD_FRAMES",
            &mut self.peak_neighborhood_frames,
        )?;
        read_env("MIN_AMPLITUDE", &mut self.min_amplitude_db)?;
        read_env("PEAKS_PER_SECOND", &mut self.peaks_per_second)?;
        read_env("FAN_VALUE", &mut self.fan_value)?;
        self.validate()?;
        Ok(self)
    }
}

/// The environment variable that sets the parameter serialised as `field`, or the field's
/// own name for the ones without one (the target zone's size).
fn parameter_name(field: &str) -> &str {
    match field {
        "sample_rate_hz" => "SAMPLE_RATE",
        "n_fft" => "N_FFT",
        "hop_length" => "HOP_LENGTH",
        "min_freq_hz" => "MIN_FREQ",
        "max_freq_hz" => "MAX_FREQ",
        "peak_neighborhood_size" => "PEAK_NEIGHBORHOOD_SIZE",
        "peak_neighborhood_frames" => "PEAK_NEIGHBORHOOD_FRAMES",
        "min_amplitude_db" => "MIN_AMPLITUDE",
        "peaks_per_second" => "PEAKS_PER_SECOND",
        "fan_value" => "FAN_VALUE",
        other => other,
    }
}

/// Most matches a query may ask for (`identify --top`, the API's `top`).
pub const MAX_TOP_MATCHES: usize = 50;

/// Query-side settings: they change how a clip is analysed and scored, not the index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchConfig {
    /// The query keeps this many times the reference peak density, so that reference peaks
    /// masked in the clip's ranking by noise peaks are still found.
    pub query_density_factor: f32,
    /// The query pairs each anchor with this many times `fan_value` targets, so that the
    /// reference's pairs are formed even when extra query peaks sit between them.
    pub query_fan_factor: usize,
    /// The query also looks up each pair with its frame distance one more and one less, since
    /// a clip's frame grid sits a fraction of a hop off the song's.
    pub query_dt_tolerance: bool,
    /// Playback speeds tried, in order, when a clip matches nothing at its own speed
    /// (1.02 = played 2 % fast). Empty disables the search (`SPEED_SEARCH=0`).
    pub speed_search: Vec<f64>,
    /// Pitch shifts tried, in semitones, when nothing matched at the clip's speed or at the
    /// `speed_search` speeds (tempo kept, key changed). Empty disables it (`PITCH_SEARCH=0`).
    pub pitch_search_semitones: Vec<f64>,
    /// Matches with a confidence below this are not reported (`MATCH_THRESHOLD`).
    pub threshold: f64,
    /// Fewer aligned hashes than this is never a match, whatever the statistics say.
    pub min_aligned: usize,
    /// Number of matches to return at most.
    pub top_n: usize,
    /// Shortest clip accepted, in seconds.
    pub min_clip_secs: f64,
    /// Postings a query may look up, per query landmark (`HITS_PER_LANDMARK`; 0 = no limit).
    /// In a large library the most common keys hit thousands of songs by chance and tell
    /// little; when a query's keys would hit more than this budget, the keys with the longest
    /// posting lists are skipped (an IDF cut), which bounds matching time whatever the library
    /// size. Small libraries never reach the budget. 16 answers the scale run's clips as 32
    /// does at 10,000 and 100,000 songs (and as no limit does at 10,000), a quarter faster
    /// (docs/BENCHMARK.md, "Stop 27: the code is not slower; the default budget is now 16").
    pub hits_per_landmark: usize,
    /// When to compare the best candidate's song, read from its file, with the clip
    /// (`SOURCE_CHECK`): it revises the confidence where the file is at hand
    /// (docs/BENCHMARK.md, "Source check"). Off, or without the file, the landmarks alone
    /// decide.
    #[serde(default)]
    pub source_check: SourceCheck,
}

/// When the source check runs ([`MatchConfig::source_check`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceCheck {
    /// Never (`SOURCE_CHECK=0`).
    Off,
    /// When it can change the answer or its offset (`SOURCE_CHECK=1`, the default): not for
    /// an answer that would stand with the lowest score and fits one place in its song.
    #[default]
    Deciding,
    /// For every best candidate (`SOURCE_CHECK=always`): for fitting its weights, and tests.
    Always,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            query_density_factor: 2.0,
            query_fan_factor: 3,
            query_dt_tolerance: true,
            speed_search: vec![1.02, 0.98],
            pitch_search_semitones: vec![1.0, -1.0],
            threshold: 0.8,
            min_aligned: 5,
            top_n: 5,
            min_clip_secs: 0.9,
            hits_per_landmark: 16,
            source_check: SourceCheck::Deciding,
        }
    }
}

/// Clips at least this long are answered at the threshold; shorter ones need more confidence
/// ([`MatchConfig::threshold_for_clip`]).
pub const FULL_EVIDENCE_SECS: f64 = 3.0;

impl MatchConfig {
    /// The confidence a clip of `clip_secs` must reach to be answered: the threshold for clips
    /// of [`FULL_EVIDENCE_SECS`] or more. Below, the odds of a wrong answer that the threshold
    /// allows, (1 - t) / t, shrink in proportion to the clip's length: at the default 0.8, a
    /// 1 s clip needs 0.92 (odds of 1 in 12 instead of 1 in 4), a 2 s clip 0.86. Thresholds
    /// of 0 and 1 stay what they are.
    ///
    /// A second or two of audio holds so few landmarks that music not in the library reaches
    /// the threshold by chance far more often than in longer clips: of 3,000 clips of the
    /// development corpus's unindexed tracks, 13 of the 600 one-second clips and 12 of the
    /// 600 two-second ones named an indexed song at 0.8 when only clips under 2 s were held
    /// to more, against 4, 3 and 1 of 600 at 3, 5 and 10 s (docs/BENCHMARK.md, "Short clips").
    pub fn threshold_for_clip(&self, clip_secs: f64) -> f64 {
        let scale = FULL_EVIDENCE_SECS / clip_secs.max(f64::MIN_POSITIVE);
        // A clip cut at 3 s may measure a rounding error less.
        if scale <= 1.0 + 1e-9 {
            return self.threshold;
        }
        let weighted = self.threshold * scale;
        weighted / (weighted + 1.0 - self.threshold)
    }

    /// Applies `MATCH_THRESHOLD`, `MIN_ALIGNED`, `QUERY_DENSITY_FACTOR`, `QUERY_FAN_FACTOR`,
    /// `HITS_PER_LANDMARK`, `SOURCE_CHECK`, `SPEED_SEARCH` and `PITCH_SEARCH` from the environment.
    pub fn with_env(mut self) -> Result<Self, ConfigError> {
        read_env("MATCH_THRESHOLD", &mut self.threshold)?;
        read_env("MIN_ALIGNED", &mut self.min_aligned)?;
        read_env("QUERY_DENSITY_FACTOR", &mut self.query_density_factor)?;
        read_env("QUERY_FAN_FACTOR", &mut self.query_fan_factor)?;
        read_env("HITS_PER_LANDMARK", &mut self.hits_per_landmark)?;
        if let Ok(text) = std::env::var("SPEED_SEARCH") {
            self.speed_search = parse_search_list("SPEED_SEARCH", &text, "a speed", 0.8..=1.25)?;
        }
        if let Ok(text) = std::env::var("SOURCE_CHECK") {
            self.source_check = match text.trim() {
                "1" => SourceCheck::Deciding,
                "0" => SourceCheck::Off,
                "always" => SourceCheck::Always,
                _ => {
                    return Err(ConfigError::OutOfRange(vec![format!(
                        "SOURCE_CHECK must be 1, 0 or always, not {text:?}"
                    )]));
                }
            };
        }
        if let Ok(text) = std::env::var("PITCH_SEARCH") {
            self.pitch_search_semitones =
                parse_search_list("PITCH_SEARCH", &text, "a shift in semitones", -3.0..=3.0)?;
        }
        self.validate()?;
        Ok(self)
    }

    /// Checks that the settings are usable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.threshold) {
            problems.push("MATCH_THRESHOLD must be within 0..1".to_string());
        }
        if !(1..=MAX_TOP_MATCHES).contains(&self.top_n) {
            problems.push(format!(
                "at most {MAX_TOP_MATCHES} matches (and at least 1) can be asked for"
            ));
        }
        if !(self.query_density_factor.is_finite()
            && self.query_density_factor > 0.0
            && self.query_density_factor <= 16.0)
        {
            problems
                .push("QUERY_DENSITY_FACTOR must be a number within 0..=16 (above 0)".to_string());
        }
        if !(1..=16).contains(&self.query_fan_factor) {
            problems.push("QUERY_FAN_FACTOR must be within 1..=16".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange(problems))
        }
    }
}

/// A comma-separated list of search attempts (`1.02,0.98`) within `range`; `0` or an empty
/// text is no attempt at all.
fn parse_search_list(
    name: &str,
    text: &str,
    what: &'static str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<Vec<f64>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "0")
        .map(|t| {
            t.parse::<f64>()
                .ok()
                .filter(|v| range.contains(v) && *v != 0.0)
                .ok_or_else(|| ConfigError::BadListItem {
                    name: name.to_string(),
                    item: t.to_string(),
                    what,
                    low: *range.start(),
                    high: *range.end(),
                })
        })
        .collect()
}

/// Sets `slot` from the environment variable `name` when it is set, or says which variable
/// does not hold a valid number.
fn read_env<T: std::str::FromStr>(name: &str, slot: &mut T) -> Result<(), ConfigError> {
    if let Ok(text) = std::env::var(name) {
        *slot = text.trim().parse().map_err(|_| ConfigError::NotANumber {
            name: name.to_string(),
            text: text.clone(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_band_fits() {
        let config = FingerprintConfig::default();
        config.validate().unwrap();
        assert_eq!(config.first_bin(), 26);
        assert_eq!(config.last_bin(), 459);
    }

    /// NaN passes every `<=` test; stored in a new index, it would become JSON `null` and
    /// the index could never be opened again.
    #[test]
    fn parameters_that_are_not_finite_numbers_are_refused() {
        for (name, set) in [
            (
                "MIN_FREQ",
                (|c: &mut FingerprintConfig| c.min_freq_hz = f32::NAN) as fn(&mut _),
            ),
            ("MAX_FREQ", |c| c.max_freq_hz = f32::NAN),
            ("MIN_AMPLITUDE", |c| c.min_amplitude_db = f32::NAN),
            ("PEAKS_PER_SECOND", |c| c.peaks_per_second = f32::NAN),
            ("PEAKS_PER_SECOND", |c| c.peaks_per_second = f32::INFINITY),
        ] {
            let mut config = FingerprintConfig::default();
            set(&mut config);
            let problems = config.validate().expect_err(name).to_string();
            assert!(problems.contains(name), "{name}: {problems}");
        }
    }

    /// Out of range, they would make the peak picker or the query's pairing allocate without
    /// bound (or overflow).
    #[test]
    fn neighbourhoods_and_query_factors_out_of_range_are_refused() {
        let config = FingerprintConfig {
            peak_neighborhood_size: 1 << 40,
            ..FingerprintConfig::default()
        };
        let problems = config
            .validate()
            .expect_err("a huge neighbourhood")
            .to_string();
        assert!(problems.contains("PEAK_NEIGHBORHOOD_SIZE"), "{problems}");
        let config = FingerprintConfig {
            peak_neighborhood_frames: 33,
            ..FingerprintConfig::default()
        };
        let problems = config
            .validate()
            .expect_err("a long neighbourhood")
            .to_string();
        assert!(problems.contains("PEAK_NEIGHBORHOOD_FRAMES"), "{problems}");

        let refused = |change: fn(&mut MatchConfig), name: &str| {
            let mut config = MatchConfig::default();
            change(&mut config);
            let problem = config.validate().expect_err(name).to_string();
            assert!(problem.contains(name), "{name}: {problem}");
        };
        refused(|c| c.query_fan_factor = usize::MAX / 2, "QUERY_FAN_FACTOR");
        refused(|c| c.query_fan_factor = 0, "QUERY_FAN_FACTOR");
        refused(|c| c.query_density_factor = 1e30, "QUERY_DENSITY_FACTOR");
        refused(|c| c.top_n = 5_000_000_000, "matches");
        refused(|c| c.top_n = 0, "matches");
        MatchConfig::default().validate().expect("the defaults");
    }

    #[test]
    fn short_clips_need_more_confidence() {
        let config = MatchConfig::default();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        // At t = 0.8, a clip of L seconds needs 3t / L / (3t / L + 1 - t).
        assert!(close(config.threshold_for_clip(1.0), 12.0 / 13.0));
        assert!(close(config.threshold_for_clip(1.5), 8.0 / 9.0));
        assert!(close(config.threshold_for_clip(2.0), 6.0 / 7.0));
        assert_eq!(config.threshold_for_clip(3.0), config.threshold);
        assert_eq!(
            config.threshold_for_clip(2.999_999_999_999_999_6),
            config.threshold
        );
        assert_eq!(config.threshold_for_clip(600.0), config.threshold);
        assert!(config.threshold_for_clip(0.9) > config.threshold_for_clip(1.0));
        for threshold in [0.0, 1.0] {
            let config = MatchConfig {
                threshold,
                ..MatchConfig::default()
            };
            assert_eq!(config.threshold_for_clip(1.0), threshold);
        }
    }

    #[test]
    fn differences_name_the_parameter() {
        let a = FingerprintConfig::default();
        let b = FingerprintConfig {
            fan_value: 9,
            ..FingerprintConfig::default()
        };
        let diffs = a.differences(&b);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs, ["FAN_VALUE 5 vs 9"]);
    }
}
