//! The integration tests, one test binary: each module is one area (bad input, the GUI, the
//! REST API, ...), run against the real `audiofp` binary, real SQLite files, real decoders and
//! a real HTTP server.
//!
//! One binary rather than one per file: every test binary links the whole crate (the GUI,
//! the server, the decoders), about 190 MB each in a debug build, so fifteen of them took
//! 2.8 GB of disk and fifteen slow links. Run one area with its module path, e.g.
//! `cargo test --test integration gui_app::`.

mod common;
mod sound_sandbox;

mod bad_input;
mod bench_cmd;
mod crash_safety;
mod formats;
mod gui_app;
mod gui_mic;
mod gui_worker;
mod identify;
mod index_file_safety;
mod library_cmds;
mod listening;
mod long_file;
mod server;
mod source_check;
mod speed_and_pitch;
mod sqlite_concurrency;
mod tracklist;
