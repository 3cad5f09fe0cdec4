//! SQLite store: the default and the store of record.
//!
//! ## Layout
//! `songs` (metadata, one row per song), `fingerprints` (the song's peaks as one compact blob,
//! see [`super::codec`]) and `meta` (the fingerprint parameters the index was built with,
//! and the id the next song gets: ids of removed songs are never given again).
//!
//! ## Safety
//! - `application_id` marks the file as ours and `user_version` is the schema version. A file
//!   that is not SQLite, carries another application id, has tables of its own, or comes from a
//!   newer schema is refused *before* anything is written (no pragma, no WAL file).
//! - Each song is written in one transaction: a crash or Ctrl-C leaves whole songs only, and a
//!   re-run skips what is there and completes the rest.
//! - WAL journal, `synchronous=NORMAL`: readers (the GUI, the server) never block on a writer.
//!
//! ## Migrations
//! Append-only: never edit or reorder an entry of [`MIGRATIONS`]; add a new one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::codec::{decode_peaks, encode_peaks};
use super::{FileFailure, IndexError, NewSong, OpenMode, SongRecord, Store, StoreStats, unix_now};
use crate::config::FingerprintConfig;
use crate::engine::{Fingerprint, Peak};

/// `PRAGMA application_id` of an audiofp index ("AFP1").
pub const APPLICATION_ID: i32 = 0x4146_5031;

/// Schema migrations, applied in order past `PRAGMA user_version`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: songs, their fingerprints, and index-wide settings.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE songs (
        id            INTEGER PRIMARY KEY,
        title         TEXT NOT NULL,
        artist        TEXT,
        album         TEXT,
        duration_secs REAL NOT NULL,
        path          TEXT,
        file_size     INTEGER,
        file_mtime    INTEGER,
        content_hash  TEXT NOT NULL UNIQUE,
        added_at      INTEGER NOT NULL,
        num_frames    INTEGER NOT NULL,
        num_peaks     INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX songs_by_path ON songs(path);
    CREATE TABLE fingerprints (
        song_id INTEGER PRIMARY KEY REFERENCES songs(id) ON DELETE CASCADE,
        peaks   BLOB NOT NULL
    ) STRICT;",
    // 2: files that could not be indexed, so that unchanged ones are not decoded every run.
    "CREATE TABLE failed_files (
        path       TEXT PRIMARY KEY,
        file_size  INTEGER NOT NULL,
        file_mtime INTEGER NOT NULL,
        code       TEXT NOT NULL,
        message    TEXT NOT NULL,
        failed_at  INTEGER NOT NULL,
        audiofp_version TEXT NOT NULL
    ) STRICT;",
];

/// Records in `meta` that the next song id is at least `next_id`: ids below it have been given
/// and are never given again.
fn keep_ids_below_used(tx: &rusqlite::Transaction<'_>, next_id: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value)
         SELECT ?1, MAX(?2, COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1), 1))
         WHERE true
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![NEXT_SONG_ID, next_id],
    )?;
    Ok(())
}

/// Runs `attempt` again while SQLite answers SQLITE_BUSY without having waited (what it does
/// for lock states its busy handler cannot resolve, such as a journal-mode switch racing
/// another connection), for up to 10 s.
fn retry_while_busy<T>(mut attempt: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let started = std::time::Instant::now();
    loop {
        match attempt() {
            Err(rusqlite::Error::SqliteFailure(err, _))
                if err.code == rusqlite::ErrorCode::DatabaseBusy
                    && started.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// The `meta` key of the id the next song gets.
const NEXT_SONG_ID: &str = "next_song_id";

/// Newest schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const SONG_COLUMNS: &str = "id, title, artist, album, duration_secs, path, file_size, file_mtime, content_hash, added_at, num_frames, num_peaks";

/// An SQLite-backed store.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    config: FingerprintConfig,
    /// SQLite's `data_version` when [`Store::changed_elsewhere`] last looked: it changes
    /// when another connection commits.
    seen_data_version: AtomicI64,
}

fn read_data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
}

impl SqliteStore {
    /// Opens the index at `path`, creating it when `mode` allows. Refuses foreign files, newer
    /// schemas and indexes built with other fingerprint parameters, without modifying them.
    pub fn open(
        path: &Path,
        config: &FingerprintConfig,
        mode: OpenMode,
    ) -> Result<Self, IndexError> {
        let sqlite_err = |source| IndexError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let existing_len = match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(IndexError::NotAnIndex {
                    path: path.to_path_buf(),
                    reason: "it is a directory".to_string(),
                });
            }
            Ok(meta) => Some(meta.len()),
            Err(_) => None,
        };
        if existing_len.is_none() {
            if mode == OpenMode::MustExist {
                return Err(IndexError::Missing {
                    path: path.to_path_buf(),
                });
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| IndexError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        if existing_len.is_some_and(|len| len > 0) {
            check_sqlite_header(path)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sqlite_err)?;

        // Inspect before touching anything: a foreign or newer file is refused unmodified.
        let found = {
            // One read transaction, so a concurrent creator is seen before or after, never
            // half-way (tables without the application id).
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
                .map_err(sqlite_err)?;
            let found = inspect(&tx).map_err(|source| not_an_index(path, source))?;
            tx.commit().map_err(sqlite_err)?;
            found
        };
        found.check(path)?;
        if found.is_fresh() && mode == OpenMode::MustExist {
            // An empty file (or an empty SQLite database) is not an index yet.
            return Err(IndexError::Missing {
                path: path.to_path_buf(),
            });
        }
        if found.user_version < SCHEMA_VERSION {
            // Another process may be creating or migrating the same file right now: decide
            // again under an exclusive lock.
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
                .map_err(sqlite_err)?;
            let locked = inspect(&tx).map_err(|source| not_an_index(path, source))?;
            locked.check(path)?;
            for sql in MIGRATIONS.iter().skip(locked.user_version.max(0) as usize) {
                tx.execute_batch(sql).map_err(sqlite_err)?;
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(sqlite_err)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(sqlite_err)?;
            tx.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('fingerprint_config', ?1), ('created_by', ?2)",
                params![
                    serde_json::to_string(config).unwrap_or_default(),
                    concat!("audiofp ", env!("CARGO_PKG_VERSION"))
                ],
            )
            .map_err(sqlite_err)?;
            tx.commit().map_err(sqlite_err)?;
        }
        // Switching a new file to WAL needs the file to itself for a moment; a second process
        // opening it at the same time can get SQLITE_BUSY at once, without the busy timeout.
        retry_while_busy(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(sqlite_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sqlite_err)?;

        let stored: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'fingerprint_config'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sqlite_err)?;
        match stored {
            // Creating and migrating write the parameters in the transaction that sets the
            // schema version: an index without them is damaged, and left as it is.
            None => {
                return Err(IndexError::Damaged {
                    path: path.to_path_buf(),
                    reason: "its fingerprint parameters are missing".to_string(),
                });
            }
            Some(json) => {
                let stored: FingerprintConfig =
                    serde_json::from_str(&json).map_err(|err| IndexError::Damaged {
                        path: path.to_path_buf(),
                        reason: format!("fingerprint parameters unreadable: {err}"),
                    })?;
                let differences = stored.differences(config);
                if !differences.is_empty() {
                    return Err(IndexError::ConfigMismatch {
                        path: path.to_path_buf(),
                        differences,
                    });
                }
            }
        }
        let data_version = read_data_version(&conn).map_err(sqlite_err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            config: config.clone(),
            seen_data_version: AtomicI64::new(data_version),
        })
    }

    fn err(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn query_songs(
        &self,
        where_clause: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<SongRecord>, IndexError> {
        let sql = format!("SELECT {SONG_COLUMNS} FROM songs {where_clause} ORDER BY id");
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, song_from_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

fn not_an_index(path: &Path, source: rusqlite::Error) -> IndexError {
    IndexError::NotAnIndex {
        path: path.to_path_buf(),
        reason: source.to_string(),
    }
}

fn check_sqlite_header(path: &Path) -> Result<(), IndexError> {
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(|source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let read = file.read(&mut header).map_err(|source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if read > 0 && (read < 16 || &header != b"SQLite format 3\0") {
        return Err(IndexError::NotAnIndex {
            path: path.to_path_buf(),
            reason: "not an SQLite database".to_string(),
        });
    }
    Ok(())
}

/// What an existing file holds, read without modifying it.
struct Inspection {
    application_id: i32,
    user_version: i64,
    tables: Vec<String>,
}

impl Inspection {
    fn is_fresh(&self) -> bool {
        self.application_id == 0 && self.user_version == 0 && self.tables.is_empty()
    }

    /// Refuses files of other applications and newer schemas.
    fn check(&self, path: &Path) -> Result<(), IndexError> {
        if !self.is_fresh() && self.application_id != APPLICATION_ID {
            return Err(IndexError::NotAnIndex {
                path: path.to_path_buf(),
                reason: if self.tables.is_empty() {
                    format!(
                        "SQLite database with application id {:#x}",
                        self.application_id
                    )
                } else {
                    format!(
                        "SQLite database with other tables: {}",
                        self.tables.join(", ")
                    )
                },
            });
        }
        if self.user_version > SCHEMA_VERSION {
            return Err(IndexError::NewerSchema {
                path: path.to_path_buf(),
                found: self.user_version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(())
    }
}

fn inspect(conn: &Connection) -> rusqlite::Result<Inspection> {
    let application_id = conn.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let user_version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
    let tables = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Inspection {
        application_id,
        user_version,
        tables,
    })
}

fn song_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SongRecord> {
    Ok(SongRecord {
        id: row.get(0)?,
        title: row.get(1)?,
        artist: row.get(2)?,
        album: row.get(3)?,
        duration_secs: row.get(4)?,
        path: row.get(5)?,
        file_size: row.get::<_, Option<i64>>(6)?.map(|v| v.max(0) as u64),
        file_mtime: row.get(7)?,
        content_hash: row.get(8)?,
        added_at: row.get(9)?,
        num_frames: row.get::<_, i64>(10)?.clamp(0, i64::from(u32::MAX)) as u32,
        num_peaks: row.get::<_, i64>(11)?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn location(&self) -> PathBuf {
        self.path.clone()
    }

    fn fingerprint_config(&self) -> &FingerprintConfig {
        &self.config
    }

    fn add_song(
        &mut self,
        song: &NewSong,
        fingerprint: &Fingerprint,
    ) -> Result<SongRecord, IndexError> {
        super::check_song_fits(fingerprint.num_frames, &fingerprint.peaks, &self.config)?;
        let blob = encode_peaks(&fingerprint.peaks);
        let added_at = song.added_at.unwrap_or_else(unix_now);
        let path = self.path.clone();
        let err = |source| IndexError::Sqlite {
            path: path.clone(),
            source,
        };
        // IMMEDIATE: take the write lock up front (waiting out other writers), so the check
        // below and the inserts see one state of the database.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM songs WHERE content_hash = ?1",
                params![song.content_hash],
                |row| row.get(0),
            )
            .optional()
            .map_err(err)?;
        if let Some(song_id) = existing {
            // Another process indexed the same audio since the caller last looked.
            return Err(IndexError::DuplicateContent { song_id });
        }
        // Ids are never reused: a script or an API client holding the id of a removed song
        // must not reach another with it. SQLite would give the highest id again once its
        // song is removed, so the next id is kept in `meta` (a database written before it was
        // kept starts from the highest id in use).
        let id: i64 = tx
            .query_row(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM songs), 0) + 1,
                            COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1), 1))",
                params![NEXT_SONG_ID],
                |row| row.get(0),
            )
            .map_err(err)?;
        keep_ids_below_used(&tx, id + 1).map_err(err)?;
        tx.execute(
            "INSERT INTO songs (id, title, artist, album, duration_secs, path, file_size, file_mtime, content_hash, added_at, num_frames, num_peaks)
             VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                song.title,
                song.artist,
                song.album,
                song.duration_secs,
                song.path,
                song.file_size.map(|v| v as i64),
                song.file_mtime,
                song.content_hash,
                added_at,
                i64::from(fingerprint.num_frames),
                fingerprint.peaks.len() as i64,
                id,
            ],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO fingerprints (song_id, peaks) VALUES (?1, ?2)",
            params![id, blob],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(SongRecord::stored(id, song, fingerprint, added_at))
    }

    fn remove_song(&mut self, song_id: i64) -> Result<bool, IndexError> {
        let path = self.path.clone();
        let err = |source| IndexError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let changed = tx
            .execute("DELETE FROM songs WHERE id = ?1", params![song_id])
            .map_err(err)?;
        if changed > 0 {
            // The removed id stays used, also in a database written before the next id was
            // kept (where `add_song` would otherwise start again from the highest id left).
            keep_ids_below_used(&tx, song_id + 1).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(changed > 0)
    }

    fn song(&self, song_id: i64) -> Result<Option<SongRecord>, IndexError> {
        Ok(self
            .query_songs("WHERE id = ?1", &[&song_id])?
            .into_iter()
            .next())
    }

    fn songs(&self) -> Result<Vec<SongRecord>, IndexError> {
        self.query_songs("", &[])
    }

    fn find_by_content_hash(&self, content_hash: &str) -> Result<Option<SongRecord>, IndexError> {
        Ok(self
            .query_songs("WHERE content_hash = ?1", &[&content_hash])?
            .into_iter()
            .next())
    }

    fn find_by_path(&self, path: &str) -> Result<Vec<SongRecord>, IndexError> {
        self.query_songs("WHERE path = ?1", &[&path])
    }

    fn find_by_file(
        &self,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<Option<SongRecord>, IndexError> {
        let size = size as i64;
        Ok(self
            .query_songs(
                "WHERE path = ?1 AND file_size = ?2 AND file_mtime = ?3",
                &[&path, &size, &mtime],
            )?
            .into_iter()
            .next())
    }

    fn relink_song(
        &mut self,
        song_id: i64,
        path: &str,
        size: u64,
        mtime: i64,
    ) -> Result<bool, IndexError> {
        let size = size as i64;
        let changed = self
            .conn
            .execute(
                "UPDATE songs SET path = ?2, file_size = ?3, file_mtime = ?4 WHERE id = ?1",
                params![song_id, path, size, mtime],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed > 0)
    }

    fn record_failure(&mut self, failure: &FileFailure) -> Result<(), IndexError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO failed_files
                 (path, file_size, file_mtime, code, message, failed_at, audiofp_version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    failure.path,
                    failure.file_size as i64,
                    failure.file_mtime,
                    failure.code,
                    failure.message,
                    failure.failed_at,
                    failure.audiofp_version
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn failures(&self) -> Result<Vec<FileFailure>, IndexError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT path, file_size, file_mtime, code, message, failed_at, audiofp_version
                 FROM failed_files",
            )
            .map_err(|e| self.err(e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(FileFailure {
                    path: row.get(0)?,
                    file_size: row.get::<_, i64>(1)? as u64,
                    file_mtime: row.get(2)?,
                    code: row.get(3)?,
                    message: row.get(4)?,
                    failed_at: row.get(5)?,
                    audiofp_version: row.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    fn forget_failure(&mut self, path: &str) -> Result<(), IndexError> {
        self.conn
            .execute("DELETE FROM failed_files WHERE path = ?1", params![path])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn peaks(&self, song_id: i64) -> Result<Option<Vec<Peak>>, IndexError> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT peaks FROM fingerprints WHERE song_id = ?1",
                params![song_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        blob.map(|b| {
            decode_peaks(&b).map_err(|reason| IndexError::Damaged {
                path: self.path.clone(),
                reason: format!("song {song_id}: {reason}"),
            })
        })
        .transpose()
    }

    fn for_each_fingerprint(
        &self,
        visit: &mut dyn FnMut(&SongRecord, Vec<Peak>),
    ) -> Result<(), IndexError> {
        let sql = format!(
            "SELECT {}, f.peaks FROM songs s JOIN fingerprints f ON f.song_id = s.id ORDER BY s.id",
            SONG_COLUMNS
                .split(", ")
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let record = song_from_row(row).map_err(|e| self.err(e))?;
            let blob: Vec<u8> = row.get(12).map_err(|e| self.err(e))?;
            let peaks = decode_peaks(&blob).map_err(|reason| IndexError::Damaged {
                path: self.path.clone(),
                reason: format!("song {}: {reason}", record.id),
            })?;
            visit(&record, peaks);
        }
        Ok(())
    }

    fn with_snapshot(&self, read: &mut dyn FnMut()) -> Result<(), IndexError> {
        // In WAL mode a read transaction sees one snapshot until it ends.
        retry_while_busy(|| {
            let begun = self
                .conn
                .execute_batch("BEGIN DEFERRED; SELECT COUNT(*) FROM songs;");
            if begun.is_err() && !self.conn.is_autocommit() {
                self.conn.execute_batch("ROLLBACK").ok();
            }
            begun
        })
        .map_err(|e| self.err(e))?;
        read();
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    fn changed_elsewhere(&self) -> Result<bool, IndexError> {
        let now = read_data_version(&self.conn).map_err(|e| self.err(e))?;
        Ok(self.seen_data_version.swap(now, Ordering::Relaxed) != now)
    }

    fn flush(&mut self) -> Result<(), IndexError> {
        // Readers may hold the WAL open (GUI, server); then the truncate is simply partial.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    fn stats(&self) -> Result<StoreStats, IndexError> {
        let (songs, total_secs, peaks): (i64, f64, i64) = self
            .conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(duration_secs), 0.0), COALESCE(SUM(num_peaks), 0) FROM songs",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .map_err(|e| self.err(e))?;
        let file_len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(StoreStats {
            songs: songs as u64,
            total_secs,
            peaks: peaks as u64,
            bytes_on_disk: file_len(&self.path) + file_len(Path::new(&wal)),
        })
    }
}
