//! `jit-ssh host setup`: principals files for the accounts jit-ssh may log
//! in as on this host, and the sshd_config lines that use them.

use std::path::Path;

use crate::error::HostError;

/// Where sshd gets principals from (`setup`, `enroll`).
#[derive(Debug, Clone, clap::Args)]
pub struct PrincipalsSource {
    /// The jit-ssh-host sshd runs as its AuthorizedPrincipalsCommand
    /// (an absolute path, root's, in directories only root can write):
    /// it tells the host recorder of every login whose session runs
    /// through the wrapper, and the recorder ends one that skips it
    /// (docs/sessions.md).
    #[arg(
        long,
        value_name = "JIT_SSH_HOST",
        default_value = "/usr/local/bin/jit-ssh-host"
    )]
    pub principals_command: std::path::PathBuf,
    /// Use `AuthorizedPrincipalsFile DIR/principals/%u` instead of the
    /// command: no recorder needed for `record = "off"`, but a shell
    /// startup file that skips the session wrapper then keeps the
    /// session past its certificate's end (docs/sessions.md).
    #[arg(long, conflicts_with = "principals_command")]
    pub principals_file: bool,
}

impl PrincipalsSource {
    /// The command, unless the file was asked for.
    pub fn command(&self) -> Option<&Path> {
        (!self.principals_file).then_some(self.principals_command.as_path())
    }
}
use crate::files::{replace, CA_KEYS_FILE, KRL_FILE};

fn fail(why: impl Into<String>) -> HostError {
    HostError::SyncRefused(why.into())
}

fn simple_name(s: &str, what: &str) -> Result<(), HostError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(HostError::Usage(format!(
            "{what} {s:?} may hold only letters, digits, '.', '_' and '-'"
        )))
    }
}

/// Writes `DIR/principals/ACCOUNT` (one `ACCOUNT@HOST` line) for each
/// account and returns the sshd_config lines to add. With
/// `principals_command` (the path of `jit-ssh-host`; the CLI's default),
/// sshd asks `jit-ssh-host principals` instead of reading the files, so
/// the host recorder hears of every login whose session runs through the
/// wrapper before sshd accepts it, and ends one that skips the wrapper
/// (docs/sessions.md). `None` (`--principals-file`): sshd reads the files.
pub fn setup(
    dir: &Path,
    host: &str,
    accounts: &[String],
    principals_command: Option<&Path>,
) -> Result<String, HostError> {
    simple_name(host, "host")?;
    let host = host.to_ascii_lowercase();
    let principals = dir.join("principals");
    std::fs::create_dir_all(&principals)
        .map_err(|e| fail(format!("creating {}: {e}", principals.display())))?;
    // sshd wants absolute paths.
    let dir = std::fs::canonicalize(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    for a in accounts {
        simple_name(a, "account")?;
        replace(&principals.join(a), format!("{a}@{host}\n").as_bytes())?;
    }
    let principals = principals_lines(&dir, principals_command)?;
    Ok(format!(
        "# jit-ssh: add to /etc/ssh/sshd_config, then `sshd -t` and reload sshd.\n\
         # Run `jit-ssh host sync` first: a missing RevokedKeys file locks everyone out.\n\
         TrustedUserCAKeys {0}/{CA_KEYS_FILE}\nRevokedKeys {0}/{KRL_FILE}\n{principals}\
         # The session wrapper (`jit-ssh-host session`, which certificates' force-command\n\
         # runs) reads the certificate from the file sshd names in $SSH_USER_AUTH:\n\
         # without this line it refuses every login (docs/sessions.md).\n\
         ExposeAuthInfo yes\n\
         # Recorded sessions (the default policy), and with the principals command\n\
         # every session that runs through the wrapper, need the host recorder:\n\
         # without it they are refused. Install systemd/jit-ssh-host-recorder.socket and\n\
         # .service (set the CA URL), then `systemctl enable --now\n\
         # jit-ssh-host-recorder.socket jit-ssh-host-recorder.service`.\n",
        dir.display()
    ))
}

/// The sshd_config lines that give sshd an account's principals, for the
/// sync directory `dir` (absolute): the `AuthorizedPrincipalsCommand`
/// lines running `principals_command` (the path of `jit-ssh-host`), or,
/// with `None`, `AuthorizedPrincipalsFile DIR/principals/%u`. Shared by
/// `setup` and `enroll`'s drop-in.
pub fn principals_lines(
    dir: &Path,
    principals_command: Option<&Path>,
) -> Result<String, HostError> {
    Ok(match principals_command {
        None => format!("AuthorizedPrincipalsFile {}/principals/%u\n", dir.display()),
        Some(program) => {
            if !program.is_absolute() || program.to_string_lossy().contains(char::is_whitespace) {
                return Err(HostError::Usage(format!(
                    "--principals-command {}: an absolute path without spaces",
                    program.display()
                )));
            }
            format!(
                "# Principals from jit-ssh-host, which first tells the host recorder of a\n\
                 # login whose session runs through the wrapper, so that the recorder ends\n\
                 # it should a shell startup file skip the wrapper (no recorder, no such\n\
                 # login); never also from a file, whose match would skip the command.\n\
                 # `--principals-file` (setup, enroll) gives the file line instead.\n\
                 AuthorizedPrincipalsFile none\n\
                 AuthorizedPrincipalsCommand {} principals --dir {} %u %T %k\n\
                 AuthorizedPrincipalsCommandUser nobody\n",
                program.display(),
                dir.display()
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_the_principals_command_no_principals_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let accounts = vec!["postgres".to_owned()];
        let plain = setup(dir.path(), "db-1", &accounts, None).unwrap();
        assert!(plain.contains("AuthorizedPrincipalsFile /"), "{plain}");
        let cmd = setup(
            dir.path(),
            "db-1",
            &accounts,
            Some(Path::new("/usr/local/bin/jit-ssh-host")),
        )
        .unwrap();
        assert!(cmd.contains("\nAuthorizedPrincipalsFile none\n"), "{cmd}");
        assert!(
            cmd.contains(
                "AuthorizedPrincipalsCommand /usr/local/bin/jit-ssh-host principals --dir /"
            ) && cmd.contains(" %u %T %k\n"),
            "{cmd}"
        );
        assert!(
            cmd.contains("\nAuthorizedPrincipalsCommandUser nobody\n"),
            "{cmd}"
        );
        assert!(setup(
            dir.path(),
            "db-1",
            &accounts,
            Some(Path::new("jit-ssh-host"))
        )
        .is_err());
    }
}
