//! audiofp: local, Shazam-style music identification.
//!
//! ```text
//! file/clip ─► engine::decode (symphonia, mono) ─► engine::front_end (rubato to 11,025 Hz,
//!   STFT) ─► engine::peaks (constellation) ─► engine::landmarks (anchor + target zone hashes)
//!   ─► index (SQLite store of record) + engine::postings (in-memory inverted index)
//! clip ─► the same analysis ─► engine::matcher (offset histogram, verification, confidence)
//! ```
//!
//! - [`engine`]: the signal path and matching, no storage.
//! - [`index`]: the stores (SQLite, memory), export/import.
//! - [`library`]: a store plus its inverted index: add, remove, identify.
//! - [`indexer`]: indexing many files (parallel analysis, one writer).
//! - [`worker`], [`gui`], [`capture`], [`listening`]: the desktop app, its background worker,
//!   the microphone and the listening loop.
//! - [`cli`], [`server`], [`bench`]: the `audiofp` commands, the REST API, the benchmark.
//! - [`config`], [`cancel`], [`calendar`], [`paths`]: settings and small shared pieces.
//! - [`testkit`]: the synthetic music and distortions the tests and the benchmark use.
pub mod bench;
pub mod calendar;
pub mod cancel;
pub mod capture;
pub mod cli;
pub mod config;
pub mod engine;
pub mod gui;
pub mod index;
pub mod indexer;
pub mod library;
pub mod listening;
pub mod paths;
pub mod server;
pub mod testkit;
pub mod worker;
