//! Errors of the analysis pipeline. Each names the file (or "clip") and the reason.

use std::path::PathBuf;

/// Why a file or clip could not be fingerprinted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty (zero bytes).
    #[error("{}: empty file (0 bytes)", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// No decoder recognised the file as audio.
    #[error("{}: not a supported audio file ({reason})", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The container has no audio track (e.g. a video without sound).
    #[error("{}: no audio track", path.display())]
    NoAudioTrack {
        /// The file.
        path: PathBuf,
    },
    /// The audio stream is damaged beyond what can be skipped.
    #[error("{}: corrupt audio: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file ends before the length its header announces.
    #[error("{}: truncated: decoded {decoded_secs:.1} s of the {expected_secs:.1} s the header announces", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Seconds that could be decoded.
        decoded_secs: f64,
        /// Seconds the header announced.
        expected_secs: f64,
    },
    /// The stream stops in the middle (no length in the header to compare with).
    #[error("{}: truncated: the stream breaks off after {decoded_secs:.1} s ({reason})", path.display())]
    CutShort {
        /// The file.
        path: PathBuf,
        /// Seconds that could be decoded.
        decoded_secs: f64,
        /// What the demuxer reported.
        reason: String,
    },
    /// The audio is shorter than the minimum.
    #[error("{source_name}: too short: {secs:.2} s of audio, at least {min_secs:.1} s needed")]
    TooShort {
        /// File path or "clip".
        source_name: String,
        /// Length found.
        secs: f64,
        /// Minimum length.
        min_secs: f64,
    },
    /// The audio holds no signal to fingerprint.
    #[error("{source_name}: silent: no audible signal to fingerprint")]
    Silent {
        /// File path or "clip".
        source_name: String,
    },
    /// A sample rate or channel layout the pipeline cannot use.
    #[error("{source_name}: unusable audio format: {reason}")]
    BadFormat {
        /// File path or "clip".
        source_name: String,
        /// Why.
        reason: String,
    },
    /// The stream could not be resampled to the analysis rate.
    #[error("{source_name}: {source}")]
    Resample {
        /// File path or "clip".
        source_name: String,
        /// Why.
        source: super::resample::ResampleError,
    },
    /// The work was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl EngineError {
    /// A short machine-readable code (used in `--json` output and the REST API).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Io { .. } => "io_error",
            EngineError::EmptyFile { .. } => "empty_file",
            EngineError::Unsupported { .. } => "unsupported_format",
            EngineError::NoAudioTrack { .. } => "no_audio_track",
            EngineError::Corrupt { .. } => "corrupt_audio",
            EngineError::Truncated { .. } | EngineError::CutShort { .. } => "truncated",
            EngineError::TooShort { .. } => "too_short",
            EngineError::Silent { .. } => "silent",
            EngineError::BadFormat { .. }
            | EngineError::Resample {
                source: super::resample::ResampleError::Rates { .. },
                ..
            } => "bad_format",
            EngineError::Resample { .. } => "internal_error",
            EngineError::Cancelled => "cancelled",
        }
    }
}
