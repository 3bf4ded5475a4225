//! Sizes as people write them: `512KiB`, `64MiB`, `1GiB`, `2TiB` (also
//! `K`, `M`, `G`, `T`, and a bare number of bytes). Powers of 1024 only:
//! `GB` is refused rather than guessed at.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size {0:?}: write it like 512MiB or 1GiB (a whole number; units KiB, MiB, GiB, TiB)")]
    Invalid(String),
    #[error("size {0:?} is too large")]
    Overflow(String),
}

/// Parses `"1GiB"` and friends into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let invalid = || SizeError::Invalid(text.to_owned());
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => return Err(invalid()),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(text.to_owned()))
}

/// Bytes for people: `512 B`, `64.0 KiB`, `1.0 GiB`.
pub fn format_size(b: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_powers_of_1024_and_print_back() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "1.5GiB", "1GB", "-1G", "GiB"] {
            assert_eq!(
                parse_size(bad),
                Err(SizeError::Invalid(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("99999999999TiB"),
            Err(SizeError::Overflow(_))
        ));
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(65536), "64.0 KiB");
        assert_eq!(format_size(5 << 30), "5.0 GiB");
    }
}
