//! Versioned export/import of a whole index (`audiofp export` / `audiofp import`).
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! "AFPX"  u32 format version ([`EXPORT_VERSION`])
//! u32 len, JSON header {fingerprint_config, songs, created_by}
//! per song: u32 len, JSON song record  |  u32 len, peak blob (see index::codec)
//! "AFPE"  u64 song count               (a missing trailer means a truncated file)
//! 32 bytes: BLAKE3 of every byte before them (from version 2)
//! ```
//!
//! The checksum finds a file damaged in storage or in transit (a flipped bit in a peak blob
//! would otherwise import as a slightly wrong song); nothing may follow it. Version 1 files
//! (without it) are still read. Version 3 names a song's length `duration_seconds` (before:
//! `duration_secs`, still read).
//!
//! Peaks are exported, not audio: the round trip is exact (same metadata, same peaks, same
//! `added_at`), and an import into an index with other fingerprint parameters is refused.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::{decode_peaks, encode_peaks};
use super::{IndexError, NewSong, SongRecord, Store};
use crate::config::FingerprintConfig;
use crate::engine::{Fingerprint, Peak};

/// Magic at the start of an export.
pub const EXPORT_MAGIC: &[u8; 4] = b"AFPX";
const TRAILER_MAGIC: &[u8; 4] = b"AFPE";
/// Current export format version.
pub const EXPORT_VERSION: u32 = 3;
/// The first version whose files end with a checksum.
const CHECKSUM_SINCE_VERSION: u32 = 2;
/// Largest JSON record or blob accepted (guards against garbage lengths).
const MAX_RECORD_BYTES: u32 = 256 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct ExportHeader {
    fingerprint_config: FingerprintConfig,
    songs: u64,
    created_by: String,
}

/// Errors of export and import.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or writing the export file failed.
    #[error("{path}: {source}")]
    Io {
        /// The export file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an audiofp export or is damaged.
    #[error("{path}: not a valid audiofp export: {reason}")]
    Invalid {
        /// The export file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The export's fingerprint parameters differ from the index's.
    #[error("{path}: exported with other fingerprint parameters (the export's vs this index's: {})", differences.join(", "))]
    ConfigMismatch {
        /// The export file.
        path: String,
        /// The differences.
        differences: Vec<String>,
    },
    /// The export would overwrite the index itself (its database or a file beside it).
    #[error("{path}: this is the index's own file ({}); export to another file", index.display())]
    IndexFile {
        /// The export file asked for.
        path: String,
        /// The index file it is.
        index: std::path::PathBuf,
    },
    /// The store changed while it was being exported (another process added or removed songs).
    #[error(
        "{path}: the index changed during the export ({expected} songs at the start, {written} written); run it again"
    )]
    Changed {
        /// The export file.
        path: String,
        /// Songs the header announced.
        expected: u64,
        /// Songs written.
        written: u64,
    },
    /// The export would replace something that is not a regular file.
    #[error("{path}: {what}; an export is written to a regular file (or `-`, standard output)")]
    NotAFile {
        /// The export file asked for.
        path: String,
        /// What is there instead.
        what: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Totals of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Songs added.
    pub imported: u64,
    /// Songs already present (same content hash).
    pub skipped: u64,
}

/// Writes every song of `store` to `path`. Returns the number of songs written.
///
/// The file is written beside `path` under a temporary name and renamed into place once
/// whole, so a failed export leaves neither a half-written file nor a stray temporary one.
/// A link at `path` stays a link: the file it points to is the one replaced, and keeps its
/// permissions. Anything but a regular file there (a folder, a device, a pipe) is refused,
/// and so is the index's own database or a file beside it (its WAL, its saved inverted
/// index): that would replace the library with its export.
pub fn export_store(store: &dyn Store, path: &Path) -> Result<u64, ExportError> {
    let name = path.display().to_string();
    let (target, permissions) = export_target(path)?;
    if let Some(index) = index_file_at(store, &target) {
        return Err(ExportError::IndexFile { path: name, index });
    }
    let tmp = temporary_beside(&target);
    let io = |source| ExportError::Io {
        path: name.clone(),
        source,
    };
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut out = BufWriter::new(file);
        let written = export_to_writer(store, &name, &mut out)?;
        let file = out.into_inner().map_err(|err| io(err.into_error()))?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions).map_err(io)?;
        }
        drop(file);
        std::fs::rename(&tmp, &target).map_err(io)?;
        Ok(written)
    })();
    if result.is_err() {
        std::fs::remove_file(&tmp).ok();
    }
    result
}

/// The file an export to `path` replaces (the file a link there points to) and its
/// permissions, or `path` itself when nothing is there yet.
fn export_target(
    path: &Path,
) -> Result<(std::path::PathBuf, Option<std::fs::Permissions>), ExportError> {
    let name = path.display().to_string();
    let not_a_file = |what| ExportError::NotAFile {
        path: name.clone(),
        what,
    };
    let io = |source| ExportError::Io {
        path: name.clone(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            let target = std::fs::canonicalize(path).map_err(io)?;
            Ok((target, Some(meta.permissions())))
        }
        Ok(meta) if meta.is_dir() => Err(not_a_file("this is a folder")),
        Ok(_) => Err(not_a_file("this is a device or a pipe, not a regular file")),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                Err(not_a_file("this is a link to a file that does not exist"))
            } else {
                Ok((path.to_path_buf(), None))
            }
        }
        Err(source) => Err(io(source)),
    }
}

/// Writes every song of `store` to `out` (standard output, a socket), named `name` in
/// messages. Returns the number of songs written. Unlike [`export_store`], a failure leaves
/// what was written so far: the reader sees a file without its trailer, which import refuses.
pub fn export_to_writer(
    store: &dyn Store,
    name: &str,
    out: &mut impl Write,
) -> Result<u64, ExportError> {
    let io = |source| ExportError::Io {
        path: name.to_string(),
        source,
    };
    let mut hashed = Hashing::new(&mut *out);
    let written = write_songs(store, name, &mut hashed)?;
    let digest = hashed.hasher.finalize();
    out.write_all(digest.as_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(written)
}

/// Everything of an export but its checksum.
fn write_songs(store: &dyn Store, name: &str, out: &mut impl Write) -> Result<u64, ExportError> {
    let io = |source| ExportError::Io {
        path: name.to_string(),
        source,
    };
    let mut songs = 0u64;
    let mut written = 0u64;
    let mut failure: Option<ExportError> = None;
    // The count in the header and the songs after it come from one state of the store.
    store.with_snapshot(&mut || {
        let result = (|| {
            songs = store.stats()?.songs;
            let header = ExportHeader {
                fingerprint_config: store.fingerprint_config().clone(),
                songs,
                created_by: concat!("audiofp ", env!("CARGO_PKG_VERSION")).to_string(),
            };
            out.write_all(EXPORT_MAGIC).map_err(io)?;
            out.write_all(&EXPORT_VERSION.to_le_bytes()).map_err(io)?;
            write_record(out, &serde_json::to_vec(&header).unwrap_or_default()).map_err(io)?;
            let mut write_failure = None;
            store.for_each_fingerprint(&mut |record, peaks| {
                if write_failure.is_some() {
                    return;
                }
                let result = write_record(out, &serde_json::to_vec(record).unwrap_or_default())
                    .and_then(|()| write_record(out, &encode_peaks(&peaks)));
                match result {
                    Ok(()) => written += 1,
                    Err(err) => write_failure = Some(err),
                }
            })?;
            write_failure.map_or(Ok(()), |err| Err(io(err)))
        })();
        failure = result.err();
    })?;
    if let Some(err) = failure {
        return Err(err);
    }
    if written != songs {
        return Err(ExportError::Changed {
            path: name.to_string(),
            expected: songs,
            written,
        });
    }
    out.write_all(TRAILER_MAGIC).map_err(io)?;
    out.write_all(&written.to_le_bytes()).map_err(io)?;
    Ok(written)
}

/// A reader or writer that hashes (BLAKE3) the bytes passing through it.
struct Hashing<T> {
    inner: T,
    hasher: blake3::Hasher,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The index file (`store`'s database, its WAL, shared-memory or journal file, or its saved
/// inverted index) that `path` is, if it is one of them: the same file through links, or,
/// for one that does not exist at the moment (a WAL after a clean close), the same name in
/// the same folder.
fn index_file_at(store: &dyn Store, path: &Path) -> Option<std::path::PathBuf> {
    if store.kind() != "sqlite" {
        return None;
    }
    let database = store.location();
    ["", "-wal", "-shm", "-journal", super::SAVED_INDEX_SUFFIX]
        .into_iter()
        .map(|suffix| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            std::path::PathBuf::from(name)
        })
        .find(|file| crate::paths::is_same_file(file, path) || is_same_place(file, path))
}

/// Whether `a` and `b` have the same name in the same folder, whether or not they exist.
fn is_same_place(a: &Path, b: &Path) -> bool {
    let folder = |p: &Path| {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty());
        parent.unwrap_or(Path::new(".")).canonicalize().ok()
    };
    a.file_name() == b.file_name() && folder(a).is_some_and(|folder_a| folder(b) == Some(folder_a))
}

/// A name beside `path` for the export while it is written: the target's name, the process
/// id and `.partial`, so that no other file (or another export in progress) is overwritten.
fn temporary_beside(path: &Path) -> std::path::PathBuf {
    let mut name = path
        .file_name()
        .map(std::ffi::OsStr::to_os_string)
        .unwrap_or_default();
    name.push(format!(".{}.partial", std::process::id()));
    path.with_file_name(name)
}

/// What a valid export holds.
#[derive(Clone, Debug)]
pub struct ExportInfo {
    /// Fingerprint parameters of the exported index.
    pub fingerprint_config: FingerprintConfig,
    /// Songs in the file.
    pub songs: u64,
}

/// Reads the whole export, checking every record and the end marker, without writing
/// anything. Import runs this first, so a damaged file adds nothing.
pub fn validate_export(path: &Path) -> Result<ExportInfo, ExportError> {
    read_export(path, &mut |_, _| Ok(()))
}

/// Adds the songs of the export at `path` to `store` (skipping content already there), calling
/// `on_song` after each with the record added (`None` when skipped). The file is validated
/// whole before the first song is written.
pub fn import_into(
    store: &mut dyn Store,
    path: &Path,
    on_song: impl FnMut(Option<&SongRecord>),
) -> Result<ImportSummary, ExportError> {
    let info = validate_export(path)?;
    import_validated(store, path, &info, on_song)
}

/// Refuses an export made with other fingerprint parameters than `config`.
pub fn check_parameters(
    info: &ExportInfo,
    config: &FingerprintConfig,
    path: &Path,
) -> Result<(), ExportError> {
    let differences = info.fingerprint_config.differences(config);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(ExportError::ConfigMismatch {
            path: path.display().to_string(),
            differences,
        })
    }
}

/// [`import_into`] for a file [`validate_export`] has already read whole (`info` is what it
/// returned), so that it is read once more, not twice.
pub fn import_validated(
    store: &mut dyn Store,
    path: &Path,
    info: &ExportInfo,
    mut on_song: impl FnMut(Option<&SongRecord>),
) -> Result<ImportSummary, ExportError> {
    check_parameters(info, store.fingerprint_config(), path)?;
    let mut summary = ImportSummary::default();
    read_export(path, &mut |record, peaks| {
        if store.find_by_content_hash(&record.content_hash)?.is_some() {
            summary.skipped += 1;
            on_song(None);
            return Ok(());
        }
        let song = NewSong {
            title: record.title,
            artist: record.artist,
            album: record.album,
            duration_secs: record.duration_secs,
            path: record.path,
            file_size: record.file_size,
            file_mtime: record.file_mtime,
            content_hash: record.content_hash,
            added_at: Some(record.added_at),
        };
        let fingerprint = Fingerprint {
            peaks,
            num_frames: record.num_frames,
            duration_secs: record.duration_secs,
            contrast: None,
        };
        let added = store.add_song(&song, &fingerprint)?;
        summary.imported += 1;
        on_song(Some(&added));
        Ok(())
    })?;
    Ok(summary)
}

type SongVisitor<'a> = dyn FnMut(SongRecord, Vec<Peak>) -> Result<(), IndexError> + 'a;

fn read_export(path: &Path, visit: &mut SongVisitor<'_>) -> Result<ExportInfo, ExportError> {
    let name = path.display().to_string();
    let invalid = |reason: &str| ExportError::Invalid {
        path: name.clone(),
        reason: reason.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|source| ExportError::Io {
        path: name.clone(),
        source,
    })?;
    if file.metadata().is_ok_and(|meta| meta.is_dir()) {
        return Err(invalid("this is a folder, not a file"));
    }
    let mut input = Hashing::new(BufReader::new(file));
    let mut magic = [0u8; 4];
    input
        .read_exact(&mut magic)
        .map_err(|_| invalid("file too short"))?;
    if &magic != EXPORT_MAGIC {
        return Err(invalid("missing AFPX magic"));
    }
    let mut version = [0u8; 4];
    input
        .read_exact(&mut version)
        .map_err(|_| invalid("file too short"))?;
    let version = u32::from_le_bytes(version);
    if version > EXPORT_VERSION {
        return Err(invalid(&format!(
            "export format version {version} is newer than this audiofp supports ({EXPORT_VERSION})"
        )));
    }
    let header: ExportHeader =
        serde_json::from_slice(&read_record(&mut input).map_err(|r| invalid(&r))?)
            .map_err(|e| invalid(&format!("header: {e}")))?;
    for _ in 0..header.songs {
        let record: SongRecord =
            serde_json::from_slice(&read_record(&mut input).map_err(|r| invalid(&r))?)
                .map_err(|e| invalid(&format!("song record: {e}")))?;
        let peaks = decode_peaks(&read_record(&mut input).map_err(|r| invalid(&r))?)
            .map_err(|r| invalid(&r))?;
        super::check_song_fits(record.num_frames, &peaks, &header.fingerprint_config)
            .map_err(|e| invalid(&format!("song {} ({}): {e}", record.id, record.title)))?;
        visit(record, peaks)?;
    }
    let mut trailer = [0u8; 12];
    input
        .read_exact(&mut trailer)
        .map_err(|_| invalid("truncated: the end marker is missing"))?;
    if &trailer[..4] != TRAILER_MAGIC {
        return Err(invalid("bad end marker"));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&trailer[4..]);
    if u64::from_le_bytes(count) != header.songs {
        return Err(invalid(
            "the end marker's song count differs from the header's",
        ));
    }
    if version >= CHECKSUM_SINCE_VERSION {
        let digest = input.hasher.finalize();
        let mut stored = [0u8; 32];
        input
            .inner
            .read_exact(&mut stored)
            .map_err(|_| invalid("truncated: the checksum is missing"))?;
        if digest != blake3::Hash::from_bytes(stored) {
            return Err(invalid(
                "the checksum does not match: the file was damaged after it was written",
            ));
        }
    }
    let mut after = [0u8; 1];
    if input
        .inner
        .read(&mut after)
        .map_err(|source| ExportError::Io {
            path: name.clone(),
            source,
        })?
        != 0
    {
        return Err(invalid("unexpected data after the end of the export"));
    }
    Ok(ExportInfo {
        fingerprint_config: header.fingerprint_config,
        songs: header.songs,
    })
}

fn write_record(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("record too large"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

fn read_record(input: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    input
        .read_exact(&mut len)
        .map_err(|_| "truncated: a record is cut short".to_string())?;
    let len = u32::from_le_bytes(len);
    if len > MAX_RECORD_BYTES {
        return Err(format!("record length {len} is implausible"));
    }
    // Read what is there rather than allocate what the length claims: a damaged length in a
    // short file must not cost 256 MB.
    let mut bytes = Vec::new();
    input
        .by_ref()
        .take(u64::from(len))
        .read_to_end(&mut bytes)
        .map_err(|err| format!("reading a record: {err}"))?;
    if bytes.len() != len as usize {
        return Err("truncated: a record is cut short".to_string());
    }
    Ok(bytes)
}
