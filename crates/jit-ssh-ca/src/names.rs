//! The names a certificate is built from, validated once at the edge.
//!
//! They end up in places with their own syntax: principals are
//! comma-separated in certificates and listed one per line in sshd's
//! principals files, key ids are `:`-separated and show up in sshd's logs.
//! So each name allows a small, boring alphabet and nothing that could
//! split, join or forge an entry in any of those places.

use std::fmt;

/// Why a name was refused. `value` is shown with escapes, never raw.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn check(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    let err = |why| NameError {
        what,
        value: value.chars().take(80).collect(),
        why,
    };
    if value.is_empty() {
        return Err(err("it is empty"));
    }
    if value.len() > max {
        return Err(err("it is too long"));
    }
    if !value.chars().all(allowed) {
        return Err(err("it contains a character that is not allowed here"));
    }
    // `.` and `..` are path components: as an account they name a home
    // directory's parent, and sshd's `%u` is expanded into paths.
    if value == "." || value == ".." {
        return Err(err("it must not be \".\" or \"..\""));
    }
    Ok(())
}

pub use jit_ssh_proto::text::is_deceptive;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A jit-ssh user: letters, digits, `.`, `_`, `-`, `@`; up to 64.
    UserName
);
name_type!(
    /// A host name as sshd's principals will name it: DNS labels of
    /// letters, digits and `-`, joined by dots; stored lower-case.
    HostName
);
name_type!(
    /// A Unix account: letters, digits, `.`, `_`, `-`, not starting with
    /// `-` (POSIX portable user names); up to 32.
    AccountName
);
name_type!(
    /// Why someone needs access, for the audit log: up to 500 characters,
    /// no control, bidi, separator or invisible characters ([`is_deceptive`]).
    Reason
);

/// Names are stored and sent as their plain string, and read back through
/// `parse`: a stored record cannot carry a name the edge would refuse.
macro_rules! serde_as_parsed_string {
    ($($name:ident),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_parsed_string!(UserName, HostName, AccountName, Reason);

impl UserName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check("user name", s, 64, |c| {
            c.is_ascii_alphanumeric() || "._-@".contains(c)
        })?;
        Ok(Self(s.to_owned()))
    }
}

impl HostName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check("host name", s, 253, |c| {
            c.is_ascii_alphanumeric() || c == '.' || c == '-'
        })?;
        let bad_label = s
            .split('.')
            .any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'));
        if bad_label {
            return Err(NameError {
                what: "host name",
                value: s.to_owned(),
                why:
                    "each dot-separated label must be 1-63 characters and not start or end with '-'",
            });
        }
        Ok(Self(s.to_ascii_lowercase()))
    }
}

impl AccountName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check("account", s, 32, |c| {
            c.is_ascii_alphanumeric() || "._-".contains(c)
        })?;
        if s.starts_with('-') {
            return Err(NameError {
                what: "account",
                value: s.to_owned(),
                why: "it must not start with '-'",
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl Reason {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let trimmed = s.trim();
        check("reason", trimmed, 500, |c| !is_deceptive(c)).map_err(|e| NameError {
            why: "it contains a control, bidirectional, line-separator or invisible character",
            ..e
        })?;
        Ok(Self(trimmed.to_owned()))
    }
}

/// The principal a host accepts for an account: `ACCOUNT@HOST`. Only
/// that host lists it, so a certificate is good for that host alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Principal(String);

impl Principal {
    pub fn for_host(account: &AccountName, host: &HostName) -> Self {
        Self(format!("{account}@{host}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A certificate serial: random, never 0 (OpenSSH cannot revoke 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(std::num::NonZeroU64);

impl Serial {
    pub fn new(v: u64) -> Option<Self> {
        std::num::NonZeroU64::new(v).map(Self)
    }

    pub fn random(rng: &mut impl rand::RngCore) -> Self {
        loop {
            if let Some(s) = Self::new(rng.next_u64()) {
                return s;
            }
        }
    }

    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies a grant: 128 random bits as 32 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantId(String);

impl GrantId {
    pub fn random(rng: &mut impl rand::RngCore) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        Self(hex::encode(b))
    }

    pub fn parse(s: &str) -> Result<Self, NameError> {
        check("grant id", s, 32, |c| {
            c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        })?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `jit-ssh:USER:GRANT:SERIAL`. sshd logs it on every login, which is how
/// host logs join the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId(String);

impl KeyId {
    /// `jit-ssh:USER:GRANT:SERIAL`, with `:break-glass` appended for
    /// break-glass certificates so every sshd log line shows it.
    pub fn new(user: &UserName, grant: &GrantId, serial: Serial, break_glass: bool) -> Self {
        let mark = if break_glass { ":break-glass" } else { "" };
        Self(format!("jit-ssh:{user}:{grant}:{serial}{mark}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_what_breaks_principals_and_files() {
        for bad in [
            "",
            "a,b",
            "a b",
            "a\tb",
            "a\nb",
            "a\0b",
            "a:b",
            "a/b",
            "a*",
            "ä",
            "-x",
            &"x".repeat(33),
        ] {
            assert!(AccountName::parse(bad).is_err(), "account {bad:?} accepted");
        }
        for bad in [
            "", "a,b", "a b", "db..prod", ".db", "db.", "-db.x", "db-.x", "db_1", "a@b", "db\n",
            "*.dev",
        ] {
            assert!(HostName::parse(bad).is_err(), "host {bad:?} accepted");
        }
        assert!(HostName::parse(&format!("{}.x", "a".repeat(64))).is_err());
        for bad in ["", "a:b", "a b", "a,b", "a\n", &"u".repeat(65)] {
            assert!(UserName::parse(bad).is_err(), "user {bad:?} accepted");
        }
        assert!(Reason::parse("line\nbreak").is_err());
        assert!(Reason::parse("  ").is_err());
    }

    #[test]
    fn dot_names_are_refused() {
        for bad in [".", ".."] {
            assert!(AccountName::parse(bad).is_err(), "account {bad:?} accepted");
            assert!(UserName::parse(bad).is_err(), "user {bad:?} accepted");
            assert!(HostName::parse(bad).is_err(), "host {bad:?} accepted");
        }
        // Dots inside a name stay allowed.
        assert!(AccountName::parse("a.b").is_ok());
        assert!(AccountName::parse("...").is_ok());
    }

    #[test]
    fn reasons_with_invisible_or_reordering_characters_are_refused() {
        let bad = [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200E}',
            '\u{200F}',
            '\u{061C}',
            '\u{2028}',
            '\u{2029}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{0085}',
            '\u{001B}',
            '\u{007F}',
            '\u{0009}',
            '\u{E0041}',
        ];
        for c in bad {
            let text = format!("deploy {c}fix");
            let e = Reason::parse(&text).expect_err(&format!("U+{:04X} accepted", c as u32));
            assert!(e.to_string().contains("bidirectional"), "{e}");
            // The error shows the value escaped, never the raw character.
            assert!(!e.to_string().contains(c), "raw U+{:04X} in {e}", c as u32);
        }
        // Ordinary non-ASCII text is fine.
        assert!(Reason::parse("Störung #42 – 修复 🔥").is_ok());
    }

    #[test]
    fn good_names_pass_and_hosts_are_lowercased() {
        assert_eq!(HostName::parse("DB-1.Prod").unwrap().as_str(), "db-1.prod");
        assert_eq!(AccountName::parse("postgres").unwrap().as_str(), "postgres");
        assert_eq!(
            UserName::parse("alice.smith@corp").unwrap().as_str(),
            "alice.smith@corp"
        );
        let p = Principal::for_host(
            &AccountName::parse("oncall").unwrap(),
            &HostName::parse("db-1.prod").unwrap(),
        );
        assert_eq!(p.as_str(), "oncall@db-1.prod");
        assert!(Serial::new(0).is_none());
    }
}
