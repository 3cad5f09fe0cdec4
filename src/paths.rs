//! How paths given by the user are spelled and compared: one absolute spelling for what is
//! stored, file identity (through links) for what must not be confused, and the title a
//! file's name gives a song without tags.

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
