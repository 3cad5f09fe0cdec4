//! The `audiofp` binary: the CLI, and with no command (or `audiofp gui`) the desktop app.

use std::process::ExitCode;

fn main() -> ExitCode {
    audiofp::cli::main_with(audiofp::gui::run)
}
