//! Host patterns: `*` matches any run of characters (dots included), `?`
//! one character; everything else matches itself, case-insensitively
//! (host names are compared lower-case).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGlob(String);

impl HostGlob {
    /// Accepts the characters of host names plus `*` and `?`.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() || pattern.len() > 253 {
            return Err(format!("host pattern {pattern:?} must be 1-253 characters"));
        }
        if !pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-*?".contains(c))
        {
            return Err(format!(
                "host pattern {pattern:?} may hold only letters, digits, '.', '-', '*' and '?'"
            ));
        }
        Ok(Self(pattern.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, host: &str) -> bool {
        matches(self.0.as_bytes(), host.to_ascii_lowercase().as_bytes())
    }
}

/// Iterative wildcard match with one backtrack point: linear in practice
/// and never exponential.
fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = HostGlob::parse("*.dev").unwrap();
        assert!(g.matches("db-1.dev") && g.matches("a.b.dev") && g.matches("DB.DEV"));
        assert!(!g.matches("dev") && !g.matches("db.dev.evil") && !g.matches("db.prod"));
        let g = HostGlob::parse("db-?.prod").unwrap();
        assert!(g.matches("db-1.prod") && !g.matches("db-10.prod"));
        assert!(HostGlob::parse("*").unwrap().matches("anything"));
        assert!(HostGlob::parse("a,b").is_err() && HostGlob::parse("").is_err());
        let g = HostGlob::parse("*a*a*a*a*a*b").unwrap();
        assert!(!g.matches(&"a".repeat(200)));
    }
}
