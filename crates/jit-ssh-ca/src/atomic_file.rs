//! Replacing a file so readers see the old contents or the new, never half:
//! write a temporary file beside it, sync, rename over, sync the directory.
//!
//! The temporary file is `.NAME.tmp.PID.RANDOM`, created with `O_EXCL`
//! (so a symlink or file planted at that path is never followed or
//! reused, and a random part makes the path unguessable). A process killed
//! between create and rename leaves one behind; the next write of the same
//! file removes those whose process is gone.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rand::RngCore;

pub fn write(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.tmp.");
    remove_stale(dir, &prefix);
    let tmp = dir.join(format!(
        "{prefix}{}.{:016x}",
        std::process::id(),
        rand::thread_rng().next_u64()
    ));
    let result = (|| {
        // create_new is O_CREAT|O_EXCL: it fails on any existing path,
        // a symlink included, rather than following it.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        // rename replaces a symlink at `path`, never writes through it.
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `PREFIX PID[.anything]` entries in `dir` whose PID is not a
/// running process: temporary files of a write that was killed. Anything
/// else is left alone; a symlink is removed itself, never its target.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let pid = rest.split('.').next().unwrap_or("");
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if Path::new("/proc").join(pid).exists() {
            continue; // a write in progress (or a reused PID: next time)
        }
        let _ = fs::remove_file(entry.path());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A PID no process can have: above Linux's highest pid_max (2^22).
    /// (A PID that just exited was flaky: under load the next process
    /// takes PID + 1 between planting and cleaning.)
    fn dead_pid() -> u32 {
        u32::MAX - 1
    }

    #[test]
    fn leftovers_of_killed_writes_are_removed_and_planted_links_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let target = dir.join("u-cert.pub");
        let victim = dir.join("victim");
        fs::write(&victim, "precious").unwrap();
        let dead = dead_pid();
        // What a killed run leaves (old and new naming), and a symlink an
        // attacker planted at a temporary path.
        let old_style = dir.join(format!(".u-cert.pub.tmp.{dead}"));
        let new_style = dir.join(format!(".u-cert.pub.tmp.{dead}.00ff00ff00ff00ff"));
        let planted = dir.join(format!(".u-cert.pub.tmp.{}", dead + 1));
        fs::write(&old_style, "half").unwrap();
        fs::write(&new_style, "half").unwrap();
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        // The old predictable name for this very process, planted: it
        // used to make the write fail (O_EXCL); now it is simply not used.
        let predictable = dir.join(format!(".u-cert.pub.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &predictable).unwrap();
        // Not ours to remove: a live process's, and another file's.
        let live = dir.join(format!(".u-cert.pub.tmp.{}.1", std::process::id()));
        let other = dir.join(format!(".other.tmp.{dead}"));
        fs::write(&live, "in progress").unwrap();
        fs::write(&other, "someone else's").unwrap();

        write(&target, b"ssh-ed25519-cert-v01@openssh.com AAAA\n", 0o644).unwrap();

        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            "ssh-ed25519-cert-v01@openssh.com AAAA\n"
        );
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert!(!old_style.exists() && !new_style.exists());
        assert!(fs::symlink_metadata(&planted).is_err(), "planted link kept");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(live.exists() && other.exists());
        // Nothing else of ours is left behind.
        let left: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".u-cert.pub.tmp.") && !n.ends_with(".1"))
            .filter(|n| *n != format!(".u-cert.pub.tmp.{}", std::process::id()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let target = tmp.path().join("out");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write(&target, b"new", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(!fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    }
}
