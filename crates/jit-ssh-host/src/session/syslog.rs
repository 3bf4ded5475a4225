//! One line to the host's syslog (authpriv, where sshd logs), best
//! effort: a refused login is logged on the host, not only told to the
//! person refused. No syslog socket (a container): stderr still says it.

use std::os::unix::net::UnixDatagram;

/// authpriv (10) * 8 + warning (4).
const AUTHPRIV_WARNING: u8 = 84;

pub fn warn(line: &str) {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let msg = format!(
        "<{AUTHPRIV_WARNING}>jit-ssh-session[{}]: {}",
        std::process::id(),
        line.replace(['\n', '\r'], " ")
    );
    let _ = sock.send_to(msg.as_bytes(), "/dev/log");
}
