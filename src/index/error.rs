//! Errors of the fingerprint store.

use std::path::PathBuf;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An SQLite error, with the database path.
    #[error("{}: database error: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The file exists but is not an audiofp index; it is left untouched.
    #[error("{}: not an audiofp index ({reason}); refusing to use or modify it", path.display())]
    NotAnIndex {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The index was written by a newer audiofp; it is left untouched.
    #[error("{}: index schema version {found} is newer than this audiofp supports ({supported}); upgrade audiofp", path.display())]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Schema version in the file.
        found: i64,
        /// Newest schema this build knows.
        supported: i64,
    },
    /// The index was built with other fingerprint parameters.
    #[error("{}: the index was built with other fingerprint parameters (the index's vs this run's: {}); set them to the index's values (environment or .env) to use it, or index into a new database", path.display(), differences.join(", "))]
    ConfigMismatch {
        /// The file.
        path: PathBuf,
        /// `NAME index value vs requested value`, one per parameter that differs.
        differences: Vec<String>,
    },
    /// No index exists at the path (for commands that only read).
    #[error("{}: no index here yet; run `audiofp index <files>` first (or pass --db)", path.display())]
    Missing {
        /// The expected file.
        path: PathBuf,
    },
    /// Stored data could not be decoded.
    #[error("{}: damaged index data: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The same audio content is already stored.
    #[error("the same audio is already indexed as song {song_id}")]
    DuplicateContent {
        /// The song holding that content.
        song_id: i64,
    },
    /// A song longer than one song's stretch of the in-memory index can hold.
    #[error("the song is {hours:.1} hours long; one song may be at most {max_hours:.0} hours")]
    SongTooLong {
        /// The song's length (its last frame's, when a peak lies past its stated end).
        hours: f64,
        /// The longest song that fits.
        max_hours: f64,
    },
    /// A song id that does not exist.
    #[error("no song with id {0}")]
    UnknownSong(i64),
    /// File system error.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl IndexError {
    /// A stable machine-readable code (`--json` error output, docs/CLI.md).
    pub fn code(&self) -> &'static str {
        match self {
            IndexError::Sqlite { .. } => "database_error",
            IndexError::NotAnIndex { .. } => "not_an_index",
            IndexError::NewerSchema { .. } => "newer_schema",
            IndexError::ConfigMismatch { .. } => "config_mismatch",
            IndexError::Missing { .. } => "no_index",
            IndexError::Damaged { .. } => "damaged_index",
            IndexError::DuplicateContent { .. } => "duplicate",
            IndexError::SongTooLong { .. } => "song_too_long",
            IndexError::UnknownSong(_) => "song_not_found",
            IndexError::Io { .. } => "io_error",
        }
    }
}
