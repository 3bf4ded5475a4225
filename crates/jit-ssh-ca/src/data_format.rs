//! The layout version of a data directory: `DATA/format`, one line
//! holding an integer. It says how `state/`, `audit/`, `rotation.json` and
//! `keys/` are laid out, so a binary never reads (and then rewrites) a
//! layout it does not know.
//!
//! Version 1 is the layout every release so far wrote; a directory
//! without the file is version 1 and gets the file on first open. A newer
//! version is refused with both numbers and what to do, before anything
//! else in the directory is opened (docs/operations.md, "Upgrades").

use std::path::{Path, PathBuf};

/// The file, inside the data directory.
pub const FORMAT_FILE: &str = "format";

/// The newest layout this binary reads and writes.
pub const CURRENT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DataFormatError {
    #[error(
        "data directory {dir} has format version {found}, newer than this jit-ssh-ca {} reads (format {CURRENT} at most): upgrade jit-ssh-ca to the version that wrote it, or restore a backup taken by this version into an empty directory (docs/operations.md, \"Upgrades\")",
        env!("CARGO_PKG_VERSION")
    )]
    TooNew { dir: PathBuf, found: u32 },
    #[error("{path} does not hold a format version (one integer): {text:?}")]
    Unreadable { path: PathBuf, text: String },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The version recorded in `data`, or `None` when the file is absent
/// (a directory from before versioning, or a new one).
pub fn read(data: &Path) -> Result<Option<u32>, DataFormatError> {
    let path = data.join(FORMAT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataFormatError::Read { path, source }),
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| DataFormatError::Unreadable { path, text })
}

/// Refuses a directory newer than [`CURRENT`]; stamps an older or
/// unversioned one with [`CURRENT`] (version 1 needs no conversion).
pub fn check_and_stamp(data: &Path) -> Result<(), DataFormatError> {
    match read(data)? {
        Some(found) if found > CURRENT => Err(DataFormatError::TooNew {
            dir: data.to_owned(),
            found,
        }),
        Some(found) if found == CURRENT => Ok(()),
        _ => stamp(data),
    }
}

/// Records [`CURRENT`] in `data` (mode 0600, replaced atomically).
pub fn stamp(data: &Path) -> Result<(), DataFormatError> {
    let path = data.join(FORMAT_FILE);
    crate::atomic_file::write(&path, format!("{CURRENT}\n").as_bytes(), 0o600)
        .map_err(|source| DataFormatError::Write { path, source })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_unversioned_directory_is_stamped_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        check_and_stamp(dir.path()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(CURRENT));
        check_and_stamp(dir.path()).unwrap();

        std::fs::write(dir.path().join(FORMAT_FILE), "2\n").unwrap();
        let e = check_and_stamp(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format version 2"), "{e}");
        assert!(e.contains("format 1 at most"), "{e}");
        assert!(e.contains("upgrade jit-ssh-ca"), "{e}");
        // Refused, not overwritten.
        assert_eq!(read(dir.path()).unwrap(), Some(2));

        std::fs::write(dir.path().join(FORMAT_FILE), "two").unwrap();
        assert!(matches!(
            check_and_stamp(dir.path()),
            Err(DataFormatError::Unreadable { .. })
        ));
    }
}
