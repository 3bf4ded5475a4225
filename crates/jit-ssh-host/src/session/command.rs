//! What the wrapper runs in place of sshd's default: the login shell, the
//! command the user asked for (sshd keeps it in `SSH_ORIGINAL_COMMAND`
//! when a `force-command` replaces it), or the sftp server. And how the
//! child's end becomes the wrapper's exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

/// sshd's name for its built-in sftp server (`Subsystem sftp
/// internal-sftp`): under a force-command sshd puts this name, not a
/// program, in `SSH_ORIGINAL_COMMAND`, so the wrapper runs the packaged
/// server instead.
pub const INTERNAL_SFTP: &str = "internal-sftp";

/// Put before the subsystem's own arguments: sftp-server logs every
/// operation (open, close with byte counts, rename, remove, mkdir…, with
/// paths) to syslog at INFO, under sshd's default facility, so file
/// transfers are logged as operations rather than recorded as bytes.
/// sftp-server's getopt lets a later `-l`/`-f` (from the `Subsystem`
/// line) override these.
pub const SFTP_LOG_ARGS: [&str; 4] = ["-l", "INFO", "-f", "AUTH"];

/// A program with its arguments, and the name it sees as `argv[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub program: PathBuf,
    pub arg0: OsString,
    pub args: Vec<OsString>,
}

/// What to run for `original` (`SSH_ORIGINAL_COMMAND`; `None` for a
/// login) with the account's `shell`.
pub fn plan(original: Option<&str>, shell: &Path, sftp_server: &Path) -> Plan {
    let shell_name = shell
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sh".into());
    match original {
        None => Plan {
            program: shell.to_owned(),
            // A leading '-' makes it a login shell, as sshd does.
            arg0: format!("-{shell_name}").into(),
            args: vec![],
        },
        Some(cmd) => {
            let mut words = cmd.split_whitespace();
            if words.next() == Some(INTERNAL_SFTP) {
                return Plan {
                    program: sftp_server.to_owned(),
                    arg0: sftp_server.as_os_str().to_owned(),
                    args: SFTP_LOG_ARGS
                        .iter()
                        .copied()
                        .chain(words)
                        .map(OsString::from)
                        .collect(),
                };
            }
            Plan {
                program: shell.to_owned(),
                arg0: shell_name.into(),
                args: vec!["-c".into(), cmd.into()],
            }
        }
    }
}

/// The wrapper's exit status for the child's: its exit code, or 128 + the
/// signal that killed it (as shells report it).
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from((128 + sig) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    const SFTP: &str = "/usr/lib/openssh/sftp-server";

    #[test]
    fn a_login_runs_the_shell_as_a_login_shell() {
        let p = plan(None, Path::new("/bin/bash"), Path::new(SFTP));
        assert_eq!(p.program, Path::new("/bin/bash"));
        assert_eq!(p.arg0, "-bash");
        assert!(p.args.is_empty());
    }

    #[test]
    fn a_command_runs_through_the_shell_untouched() {
        let cmd = "printf '%s' \"$HOME\" | wc -c; exit 3";
        let p = plan(Some(cmd), Path::new("/bin/sh"), Path::new(SFTP));
        assert_eq!(p.program, Path::new("/bin/sh"));
        assert_eq!(p.args, [OsString::from("-c"), OsString::from(cmd)]);
    }

    #[test]
    fn the_internal_sftp_subsystem_runs_the_packaged_server_logging_at_info() {
        let p = plan(Some("internal-sftp"), Path::new("/bin/sh"), Path::new(SFTP));
        assert_eq!(p.program, Path::new(SFTP));
        assert_eq!(p.args, ["-l", "INFO", "-f", "AUTH"].map(OsString::from));
        // The Subsystem line's own arguments come last, so they win.
        let p = plan(
            Some("internal-sftp -l VERBOSE -f LOCAL5"),
            Path::new("/bin/sh"),
            Path::new(SFTP),
        );
        assert_eq!(
            p.args,
            ["-l", "INFO", "-f", "AUTH", "-l", "VERBOSE", "-f", "LOCAL5"].map(OsString::from)
        );
        // A configured server path is an ordinary command.
        let p = plan(Some(SFTP), Path::new("/bin/sh"), Path::new(SFTP));
        assert_eq!(p.program, Path::new("/bin/sh"));
    }

    #[test]
    fn exit_codes_and_signals_map_as_shells_report_them() {
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        assert_eq!(exit_code(ExitStatus::from_raw(1 << 8)), 1);
        assert_eq!(exit_code(ExitStatus::from_raw(255 << 8)), 255);
        // Killed by SIGKILL (9) and SIGHUP (1).
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(1)), 129);
    }
}
