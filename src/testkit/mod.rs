//! Deterministic synthetic music and audio degradations for tests and benchmarks.
//!
//! No music files are committed to the repository, so tests and benchmarks of the
//! fingerprinting engine generate their audio with this module:
//!
//! * [`synth`]: seeded synthetic songs ([`synth::song`], [`synth::song_stereo`]) with
//!   melody, chords, bass and drums. Every seed gives clearly different music
//!   (tempo, tuning, key, scale, progressions, melodies, timbres and drum patterns
//!   are all randomised per seed), and the same seed always gives bit-identical
//!   samples.
//! * [`distort`]: degradations for robustness tests: white/pink noise at a given SNR,
//!   excerpts, gain, a simple anti-aliased resampler, plus [`distort::rms`].
//! * [`wav`]: writing (and reading back) WAV files via `hound`.
//!
//! ```
//! use audiofp::testkit::{distort, synth};
//!
//! let sr = 22_050;
//! let song = synth::song(42, 10.0, sr);
//! let clip = distort::excerpt(&song, sr, 3.0, 5.0);
//! let noisy = distort::add_white_noise(&clip, 10.0, 7);
//! let query = distort::resample_linear(&noisy, sr, 8_000);
//! assert_eq!(query.len(), 40_000);
//! ```
//!
//! All randomness comes from a small built-in SplitMix64 generator, so results do not
//! depend on any external crate's version.

pub mod distort;
pub(crate) mod rng;
pub mod synth;
pub mod wav;
