//! Restore reads a backup once: every file is copied into a private
//! staging directory (0700, ours) and everything after — the hashes, the
//! chain check, the import — reads the staged copy. Someone who can write
//! where backups are kept cannot then show the checks one content and the
//! import another (a file rewritten in between, a FIFO answering each
//! open differently). Only directories and regular files are taken:
//! a symlink, FIFO, socket or device in a backup is refused by name.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::restore::{io, RestoreError};

/// The staged copy; removed when dropped.
pub struct Staged {
    dir: PathBuf,
}

impl Staged {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `from` into a new private directory beside `near` (the target,
/// so the copy is on the disk the restore writes to).
pub fn stage(from: &Path, near: &Path) -> Result<Staged, RestoreError> {
    let parent = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let dir = parent.join(format!(".jit-ssh-restore-{}", hex::encode(suffix)));
    // `create`, not `create_all`: a path someone placed there is refused.
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io("creating the staging directory", &dir))?;
    let staged = Staged { dir };
    copy_tree(from, staged.path(), "")?;
    Ok(staged)
}

fn copy_tree(from: &Path, to: &Path, rel: &str) -> Result<(), RestoreError> {
    for e in std::fs::read_dir(from).map_err(io("reading", from))? {
        let e = e.map_err(io("reading", from))?;
        let name = e.file_name();
        let shown = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        let src = e.path();
        // Not followed: the entry itself must be a directory or a file.
        let kind = std::fs::symlink_metadata(&src)
            .map_err(io("reading", &src))?
            .file_type();
        let dest = to.join(&name);
        if kind.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dest)
                .map_err(io("creating", &dest))?;
            copy_tree(&src, &dest, &shown)?;
        } else if kind.is_file() {
            // O_NOFOLLOW: a file swapped for a symlink since the look above
            // is not followed either.
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                .open(&src)
                .map_err(io("opening", &src))?;
            let mut output = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&dest)
                .map_err(io("writing", &dest))?;
            std::io::copy(&mut input, &mut output).map_err(io("copying", &src))?;
        } else {
            return Err(RestoreError::NotAFile(shown));
        }
    }
    Ok(())
}
