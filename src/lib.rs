//! audiofp
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
