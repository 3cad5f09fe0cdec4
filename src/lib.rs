//! audiofp
pub mod bench;
pub mod cancel;
pub mod cli;
pub mod config;
pub mod engine;
pub mod index;
pub mod indexer;
pub mod library;
pub mod testkit;
