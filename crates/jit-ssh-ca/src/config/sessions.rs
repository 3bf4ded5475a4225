//! `[sessions]`: the command a certificate's `force-command` runs on the
//! host when its rule's session policy asks for anything (see
//! docs/sessions.md). One command for every host: hosts install
//! `jit-ssh-host` at the same path.

use serde::Deserialize;
use toml::Spanned;

use super::Collector;

/// Where `jit-ssh-host` lives on hosts unless `[sessions] wrapper` says.
pub const DEFAULT_WRAPPER: &str = "/usr/local/bin/jit-ssh-host session";

/// The checked section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionsConfig {
    /// The whole command line sshd runs (via the account's shell).
    pub wrapper: String,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            wrapper: DEFAULT_WRAPPER.to_owned(),
        }
    }
}

/// The `[sessions]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsFile {
    /// The host's session wrapper, an absolute path with its arguments
    /// (default "/usr/local/bin/jit-ssh-host session"). sshd runs it
    /// through the account's shell, so it must not need quoting.
    pub wrapper: Option<Spanned<String>>,
}

/// Why a wrapper command line is refused, if it is.
pub fn wrapper_problem(w: &str) -> Option<&'static str> {
    if !w.starts_with('/') {
        return Some("must start with an absolute path (sshd runs it from the user's home)");
    }
    if w.len() > 1024 {
        return Some("is longer than 1024 characters");
    }
    // The user's shell runs it: anything it would interpret could differ
    // from one account's shell to the next.
    let allowed = |c: char| c.is_ascii_alphanumeric() || " /._-=,:@+".contains(c);
    if !w.chars().all(allowed) {
        return Some("may hold only letters, digits, spaces and / . _ - = , : @ +");
    }
    None
}

pub(super) fn sessions(f: &SessionsFile, c: &mut Collector<'_>) -> SessionsConfig {
    let Some(w) = &f.wrapper else {
        return SessionsConfig::default();
    };
    if let Some(why) = wrapper_problem(w.get_ref()) {
        c.at(
            w.span(),
            format!("sessions.wrapper {:?} {why}", w.get_ref()),
        );
    }
    SessionsConfig {
        wrapper: w.get_ref().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_must_be_an_absolute_plain_command_line() {
        assert_eq!(wrapper_problem(DEFAULT_WRAPPER), None);
        assert_eq!(
            wrapper_problem("/opt/jit-ssh/bin/jit-ssh-host session --dir /etc/ssh/jit-ssh"),
            None
        );
        for bad in [
            "jit-ssh-host session",
            "/bin/jit-ssh-host session; rm -rf ~",
            "/bin/jit-ssh-host session $(id)",
            "/bin/jit-ssh-host\nsession",
            "/bin/x 'quoted'",
        ] {
            assert!(wrapper_problem(bad).is_some(), "{bad:?} accepted");
        }
    }
}
