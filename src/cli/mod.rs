//! The `audiofp` command line: argument parsing, settings resolution and dispatch.
//!
//! Settings come from, in order of precedence: flags, environment variables (also read from a
//! `.env` file in the working directory), built-in defaults. Exit codes (ripgrep-style):
//! 0 = success, 1 = a clip had no match, 2 = an error (including files that failed to index).

mod bench_cmd;
mod demo_cmd;
mod duplicates_cmd;
mod identify_cmd;
mod index_cmd;
mod library_cmds;
mod output;
mod tracklist_cmd;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::config::{FingerprintConfig, MatchConfig};
use crate::index::{OpenMode, StorageKind};
use crate::library::{Library, LibraryError};

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a clip had no match.
pub const EXIT_NO_MATCH: u8 = 1;
/// Exit code: an error happened.
pub const EXIT_ERROR: u8 = 2;

/// Identify music locally, Shazam-style: index your library, then name the song (and the
/// second) a clip or a recording comes from. With no command, opens the desktop app.
#[derive(Debug, Parser)]
#[command(name = "audiofp", version, about, long_about = None)]
pub struct Cli {
    /// Index database file [default: the platform data dir, e.g. ~/.local/share/audiofp/index.db].
    #[arg(long, global = true, env = "SQLITE_DATABASE_PATH", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Where the index lives: `sqlite` (a file, the default) or `memory` (gone at exit).
    #[arg(long, global = true, env = "STORAGE_TYPE", value_enum, ignore_case = true, default_value_t = StorageType::Sqlite)]
    pub storage: StorageType,

    /// Log level: error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, global = true, env = "LOG_LEVEL", default_value = "warn")]
    pub log_level: String,

    /// Append logs to this file instead of standard error.
    #[arg(long, global = true, env = "LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Which of `--db` and `--storage` were given on the command line (not taken from the
    /// environment), to refuse a flag that would be ignored.
    #[arg(skip)]
    pub given_flags: GivenFlags,
}

/// Index flags given on the command line itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct GivenFlags {
    /// `--db PATH`.
    pub db: bool,
    /// `--storage KIND`.
    pub storage: bool,
}

/// Storage backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageType {
    /// An SQLite file.
    Sqlite,
    /// In memory only.
    Memory,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add audio files or folders (searched recursively) to the index.
    Index(index_cmd::IndexArgs),
    /// Name the song each clip comes from, and where in the song.
    Identify(identify_cmd::IdentifyArgs),
    /// List the indexed songs.
    List(library_cmds::ListArgs),
    /// Show one song.
    Show(library_cmds::ShowArgs),
    /// Remove songs from the index, by id.
    Remove(library_cmds::RemoveArgs),
    /// Totals: songs, hours, hashes, bytes on disk.
    Stats(library_cmds::JsonFlag),
    /// Name every song heard in a long recording (a DJ set, a radio show), when, and from
    /// where in the song.
    Tracklist(tracklist_cmd::TracklistArgs),
    /// Find songs that share audio: the same recording indexed twice (a FLAC and its MP3),
    /// or a track that holds another (a medley, a mix); in the whole library, or for one song.
    Duplicates(duplicates_cmd::DuplicatesArgs),
    /// Write the whole index to a portable file.
    Export(library_cmds::ExportArgs),
    /// Add the songs of an exported file to the index.
    Import(library_cmds::ImportArgs),
    /// Measure accuracy, speed, size and memory on a corpus (see docs/BENCHMARK.md).
    Bench(bench_cmd::BenchArgs),
    /// Generate synthetic songs, index them in a temporary index and identify clips of them.
    Demo(demo_cmd::DemoArgs),
    /// Open the desktop app (the same as giving no command); given paths are added to the
    /// library, or identified when it is a single file.
    Gui(crate::gui::GuiArgs),
    /// Serve the REST API over the index (see docs/API.md).
    Serve(crate::server::ServeArgs),
}

impl Cli {
    /// Whether the command was asked for JSON output (its errors are then JSON too).
    pub fn wants_json(&self) -> bool {
        match &self.command {
            Some(Command::Index(args)) => args.json,
            Some(Command::Identify(args)) => args.json,
            Some(Command::List(args)) => args.json,
            Some(Command::Show(args)) => args.json,
            Some(Command::Remove(args)) => args.json,
            Some(Command::Stats(args)) => args.json,
            Some(Command::Tracklist(args)) => args.json,
            Some(Command::Duplicates(args)) => args.json,
            // `export -` writes the export itself to standard output: no JSON may follow it.
            Some(Command::Export(args)) => args.json && args.file.as_os_str() != "-",
            Some(Command::Import(args)) => args.json,
            Some(Command::Bench(args)) => args.json,
            Some(Command::Demo(_) | Command::Gui(_) | Command::Serve(_)) | None => false,
        }
    }

    /// The store selected by flags and environment.
    pub fn storage(&self) -> anyhow::Result<StorageKind> {
        Ok(match self.storage {
            StorageType::Memory if self.given_flags.db => anyhow::bail!(
                "--db names an index file, but the storage is `memory` (--storage or \
                 STORAGE_TYPE), which keeps the index in RAM and writes no file; give one or \
                 the other"
            ),
            StorageType::Memory => StorageKind::Memory,
            StorageType::Sqlite => StorageKind::Sqlite(match &self.db {
                Some(path) => path.clone(),
                None => default_db_path()?,
            }),
        })
    }

    /// Refuses `--db` and `--storage` given on the command line to a command that keeps its
    /// own index (`what` says where), instead of ignoring them.
    pub fn refuse_index_flags(&self, command: &str, what: &str) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            (self.given_flags.db, "--db"),
            (self.given_flags.storage, "--storage"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} {} not used by `{command}`: it {what}",
            given.join(" and "),
            if given.len() == 1 { "is" } else { "are" }
        )
    }

    /// Opens the library.
    pub fn open_library(
        &self,
        mode: OpenMode,
        match_config: &MatchConfig,
    ) -> anyhow::Result<Library> {
        self.open_library_with(Library::open, mode, match_config)
    }

    /// Opens the library to add songs, without loading its index (see
    /// [`Library::open_for_adding`]).
    pub fn open_library_for_adding(
        &self,
        mode: OpenMode,
        match_config: &MatchConfig,
    ) -> anyhow::Result<Library> {
        self.open_library_with(Library::open_for_adding, mode, match_config)
    }

    fn open_library_with(
        &self,
        open: fn(
            &StorageKind,
            &FingerprintConfig,
            &MatchConfig,
            OpenMode,
        ) -> Result<Library, LibraryError>,
        mode: OpenMode,
        match_config: &MatchConfig,
    ) -> anyhow::Result<Library> {
        let config = fingerprint_config()?;
        let storage = self.storage()?;
        Ok(open(&storage, &config, match_config, mode)?)
    }
}

/// The platform data directory's index file.
pub fn default_db_path() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("org", "audiofp", "audiofp")
        .context("cannot determine a data directory for the index; pass --db PATH")?;
    Ok(dirs.data_dir().join("index.db"))
}

/// Fingerprint parameters from the defaults and the environment.
pub fn fingerprint_config() -> anyhow::Result<FingerprintConfig> {
    FingerprintConfig::default()
        .with_env()
        .map_err(|e| anyhow::anyhow!("invalid fingerprint settings: {e}"))
}

/// Match settings from the defaults and the environment.
pub fn match_config() -> anyhow::Result<MatchConfig> {
    MatchConfig::default()
        .with_env()
        .map_err(|e| anyhow::anyhow!("invalid match settings: {e}"))
}

/// [`match_config`] with a `--threshold` given on the command line, if any.
pub fn match_config_with_threshold(threshold: Option<f64>) -> anyhow::Result<MatchConfig> {
    let mut config = match_config()?;
    if let Some(threshold) = threshold {
        anyhow::ensure!(
            (0.0..=1.0).contains(&threshold),
            "--threshold must be within 0..1"
        );
        config.threshold = threshold;
    }
    Ok(config)
}

/// The tracing filter for a `--log-level`: at `error` and `warn` (the default) the decoders'
/// own messages are left out. They do not name the file, and audiofp reports every file that
/// fails to decode with its path and the reason. A more verbose level, or a filter that names
/// them (`warn,symphonia=warn`), shows them.
fn log_filter(level: &str) -> String {
    let quiet = matches!(level.trim().to_ascii_lowercase().as_str(), "error" | "warn");
    if quiet {
        format!("{level},symphonia=off")
    } else {
        level.to_string()
    }
}

/// Whether `level` is a level name or a filter naming targets (`warn,audiofp=debug`). A lone
/// word is not checked by tracing (it reads as a target), so `--log-level verbose` would
/// silently log nothing.
fn is_log_level(level: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let level = level.trim().to_ascii_lowercase();
    LEVELS.contains(&level.as_str()) || level.contains('=') || level.contains(',')
}

fn init_logging(cli: &Cli) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_log_level(&cli.log_level),
        "invalid log level {:?}: use error, warn, info, debug, trace or off, or a tracing filter such as warn,audiofp=debug",
        cli.log_level
    );
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(&cli.log_level))
        .with_context(|| format!("invalid log level {:?}", cli.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &cli.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init()
                .ok();
        }
        None => {
            // Colours only on a terminal: not in a file or a pipe that stderr was sent to.
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init()
                .ok();
        }
    }
    Ok(())
}

/// Parses the command line and runs it. `run_gui` is called when no command is given.
pub fn main_with(run_gui: impl FnOnce(&Cli) -> anyhow::Result<()>) -> ExitCode {
    // A missing .env is normal. A malformed one is an error: dotenvy stops at the bad line,
    // and going on without the settings after it could, say, index into the default database
    // instead of the one the file names.
    if let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        match err {
            dotenvy::Error::LineParse(line, at) => eprintln!(
                "error: .env: cannot read the line {line:?} (at character {}); lines are NAME=value, or # comments",
                at + 1
            ),
            other => eprintln!("error: .env: {other}"),
        }
        return ExitCode::from(EXIT_ERROR);
    }
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let from_command_line =
        |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    cli.given_flags = GivenFlags {
        db: from_command_line("db"),
        storage: from_command_line("storage"),
    };
    match run(&cli, run_gui) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::from(EXIT_OK);
            }
            let message = describe(&err);
            eprintln!("error: {message}");
            if cli.wants_json() {
                // The same shape as the API's errors, so a script reads one field either way.
                let body = serde_json::json!({
                    "error": { "code": error_code(&err), "message": message }
                });
                output::print_json(&body).ok();
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The machine-readable code of a command's error: the first code a cause in its chain has,
/// else `error`. A [`LibraryError`] is looked into: it wraps the store's and the engine's
/// errors transparently, so they are not links of the chain themselves.
fn error_code(err: &anyhow::Error) -> &'static str {
    err.chain()
        .find_map(|cause| {
            if let Some(index) = cause.downcast_ref::<crate::index::IndexError>() {
                Some(index.code())
            } else if let Some(engine) = cause.downcast_ref::<crate::engine::EngineError>() {
                Some(engine.code())
            } else if let Some(library) = cause.downcast_ref::<LibraryError>() {
                match library {
                    LibraryError::Index(index) => Some(index.code()),
                    LibraryError::Engine(engine) => Some(engine.code()),
                    LibraryError::Postings(_) | LibraryError::NotLoaded => None,
                }
            } else {
                cause.is::<std::io::Error>().then_some("io_error")
            }
        })
        .unwrap_or("error")
}

/// The error and its causes, joined by ": ", leaving out a cause whose text the message
/// already holds (the library's errors name their cause in their own message, so `{:#}`
/// would say "No such file or directory" twice).
fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: &Cli, run_gui: impl FnOnce(&Cli) -> anyhow::Result<()>) -> anyhow::Result<u8> {
    init_logging(cli)?;
    match &cli.command {
        None | Some(Command::Gui(_)) => run_gui(cli).map(|()| EXIT_OK),
        Some(Command::Index(args)) => index_cmd::run(cli, args),
        Some(Command::Identify(args)) => identify_cmd::run(cli, args),
        Some(Command::List(args)) => library_cmds::list(cli, args),
        Some(Command::Show(args)) => library_cmds::show(cli, args),
        Some(Command::Remove(args)) => library_cmds::remove(cli, args),
        Some(Command::Stats(args)) => library_cmds::stats(cli, args),
        Some(Command::Tracklist(args)) => tracklist_cmd::run(cli, args),
        Some(Command::Duplicates(args)) => duplicates_cmd::run(cli, args),
        Some(Command::Export(args)) => library_cmds::export(cli, args),
        Some(Command::Import(args)) => library_cmds::import(cli, args),
        Some(Command::Bench(args)) => bench_cmd::run(cli, args),
        Some(Command::Demo(args)) => demo_cmd::run(cli, args),
        Some(Command::Serve(args)) => crate::server::run(cli, args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn identify_help_states_the_default_threshold() {
        let mut command = super::Cli::command();
        let identify = command
            .find_subcommand_mut("identify")
            .expect("an identify command");
        let help = identify.render_long_help().to_string();
        let default = crate::config::MatchConfig::default().threshold;
        assert!(
            help.contains(&format!("[default: {default}, env MATCH_THRESHOLD]")),
            "{help}"
        );
    }
}
