//! The recorder's socket: the one systemd passes (socket activation,
//! `LISTEN_FDS`/`LISTEN_PID`, systemd/jit-ssh-host-recorder.socket), or
//! one it binds itself at `--socket`. Any local user may connect (mode
//! 0666): who they are is what SO_PEERCRED says, not what they send. The
//! directory holding it is root's and 0755, so nobody else can put a
//! socket of their own in its place.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("the socket systemd passed: {0}")]
    Inherited(#[source] std::io::Error),
    #[error("{path}: {source}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The listener: systemd's when it passed one, else `path` bound here.
pub fn listener(path: &Path) -> Result<tokio::net::UnixListener, ListenError> {
    let mut fds = listenfd::ListenFd::from_env();
    if let Some(l) = fds.take_unix_listener(0).map_err(ListenError::Inherited)? {
        l.set_nonblocking(true).map_err(ListenError::Inherited)?;
        return tokio::net::UnixListener::from_std(l).map_err(ListenError::Inherited);
    }
    bind(path)
}

fn bind(path: &Path) -> Result<tokio::net::UnixListener, ListenError> {
    let failed = |source| ListenError::Bind {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(failed)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(failed)?;
    }
    // A socket left by a recorder that died: nothing listens on it.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let l = tokio::net::UnixListener::bind(path).map_err(failed)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(failed)?;
    Ok(l)
}
