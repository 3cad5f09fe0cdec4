//! How paths given by the user are spelled and compared: one absolute spelling for what is
//! stored, file identity (through links) for what must not be confused, the title a file's
//! name gives a song without tags, and the text a path is stored as.
//!
//! The index stores paths as text. A path that is valid UTF-8 (nearly all) is stored as it
//! is. One that is not (a Latin-1 name copied from an old disk) is stored as [`ENCODED`]
//! followed by its bytes, printable ASCII as itself and every other byte as `%XX`, so that it
//! is found again, opened again and never taken for another path that differs only in the
//! bytes a lossy conversion would turn into U+FFFD. No stored UTF-8 path starts with
//! [`ENCODED`] (an absolute path starts with `/`; a path that does anyway is encoded too).

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

/// The title a song takes from its file's name when its tags have none: the name without
/// its extension ("Track 01.flac" is "Track 01"), or the whole path if it has no name.
pub fn title_from_file_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |stem| stem.to_string_lossy().to_string(),
    )
}

/// `given` made absolute against the working directory, with `.` and `..` taken out, so that
/// `../Music/a.mp3` is stored as `/home/me/Music/a.mp3`, the spelling a later run from
/// elsewhere gives. `..` is taken out by the text (as a shell's `cd ..` does) only when that
/// names the same file; after a link it does not, and then the real path is used.
pub fn absolute_path(given: &Path) -> Cow<'_, Path> {
    let Ok(absolute) = std::path::absolute(given) else {
        return given.into();
    };
    if !absolute
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return absolute.into();
    }
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    if is_same_file(&lexical, &absolute) {
        return lexical.into();
    }
    match std::fs::canonicalize(&absolute) {
        Ok(real) => real.into(),
        Err(_) => absolute.into(),
    }
}

/// Whether `a` and `b` name the same existing file (through links too).
pub fn is_same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// The first character of a stored path that is written as escaped bytes (see the module
/// documentation).
pub const ENCODED: char = '\u{1}';

/// The text `path` is stored as: itself when it is UTF-8, else its escaped bytes.
pub fn to_stored(path: &Path) -> String {
    match path.to_str() {
        Some(text) if !text.starts_with(ENCODED) => text.to_string(),
        _ => encode_bytes(&path_bytes(path)),
    }
}

/// The path stored as `text` by [`to_stored`] (or by an earlier version, which stored UTF-8
/// paths the same way).
pub fn from_stored(text: &str) -> PathBuf {
    match text.strip_prefix(ENCODED).and_then(decode_bytes) {
        Some(bytes) => path_from_bytes(bytes),
        None => PathBuf::from(text),
    }
}

/// A stored path as a person reads it (bytes that are not UTF-8 shown as U+FFFD).
pub fn display_stored(text: &str) -> String {
    if text.starts_with(ENCODED) {
        from_stored(text).to_string_lossy().into_owned()
    } else {
        text.to_string()
    }
}

fn encode_bytes(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 1);
    text.push(ENCODED);
    for &byte in bytes {
        if (byte.is_ascii_graphic() && byte != b'%') || byte == b' ' {
            text.push(char::from(byte));
        } else {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(text, "%{byte:02X}");
        }
    }
    text
}

fn decode_bytes(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(after.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    Some(bytes)
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt as _;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

// Elsewhere a path that is not Unicode is stored lossily, as before.
#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt as _;

    fn path(bytes: &[u8]) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
    }

    #[test]
    fn a_utf8_path_is_stored_as_itself() {
        let stored = to_stored(Path::new("/music/Café 100%.flac"));
        assert_eq!(stored, "/music/Café 100%.flac");
        assert_eq!(from_stored(&stored), Path::new("/music/Café 100%.flac"));
    }

    #[test]
    fn paths_that_are_not_utf8_round_trip_and_stay_apart() {
        let e_acute = path(b"/music/caf\xe9 50%.wav");
        let e_grave = path(b"/music/caf\xe8 50%.wav");
        let (a, b) = (to_stored(&e_acute), to_stored(&e_grave));
        assert_ne!(a, b, "a lossy conversion makes them one path");
        assert_eq!(a, "\u{1}/music/caf%E9 50%25.wav");
        assert_eq!(from_stored(&a), e_acute);
        assert_eq!(from_stored(&b), e_grave);
        assert_eq!(display_stored(&a), "/music/caf\u{FFFD} 50%.wav");
    }

    #[test]
    fn a_utf8_path_that_starts_like_an_encoded_one_is_encoded_too() {
        let odd = Path::new("\u{1}%41");
        let stored = to_stored(odd);
        assert_ne!(stored, "\u{1}%41");
        assert_eq!(from_stored(&stored), odd);
    }
}
