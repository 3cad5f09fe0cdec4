//! The `audiofp` binary: the CLI, and with no command (or `audiofp gui`) the desktop app.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: searches allocate and free multi-megabyte
/// buffers (uploads, decoded audio); glibc's malloc keeps such freed memory and a long-running
/// server's resident size creeps up a band, where mimalloc returns it (docs/API.md, memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    audiofp::cli::main_with(audiofp::gui::run)
}
