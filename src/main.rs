//! The `audiofp` binary: the CLI, and with no command the desktop app.

use std::process::ExitCode;

fn main() -> ExitCode {
    audiofp::cli::main_with(|_cli| {
        // The desktop GUI lands with its own issue; until then, say so and show the commands.
        use clap::CommandFactory as _;
        audiofp::cli::Cli::command().print_help()?;
        println!();
        Ok(())
    })
}
