//! Free text people type (reasons, comments) and how it is shown: the CA
//! refuses characters that make text display differently from what it is,
//! and clients escape them when printing older records.

use std::borrow::Cow;

/// Characters that make text display differently from what it is:
/// bidirectional embeddings, overrides, isolates and marks (a reason that
/// reads backwards in a terminal), line and paragraph separators (a forged
/// second line), zero-width and other invisible characters, tag characters
/// (hidden text), and C0/C1 controls (terminal escapes).
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Unicode's default-ignorable code points (rendered as nothing):
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{061C}'                    // Arabic letter mark
            | '\u{115F}' | '\u{1160}'       // Hangul choseong/jungseong fillers
            | '\u{17B4}' | '\u{17B5}'       // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}'       // Mongolian variation selectors, vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width space, (non-)joiner, LRM, RLM
            | '\u{2028}'..='\u{202E}'       // line/paragraph separators, bidi embeddings, overrides
            | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                    // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'       // variation selectors
            | '\u{FEFF}'                    // zero-width no-break space (BOM)
            | '\u{FFA0}'                    // halfwidth Hangul filler
            | '\u{FFF0}'..='\u{FFFB}'       // unassigned specials, interlinear annotations
            | '\u{1BCA0}'..='\u{1BCA3}'     // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}'     // musical format controls
            | '\u{E0000}'..='\u{E0FFF}'     // tags, variation selectors supplement
            // and blanks that look like nothing at all:
            | '\u{2800}' // braille pattern blank
        )
}

/// `s` safe to print on a terminal: every [`is_deceptive`] character as a
/// visible `\u{…}` escape (and `\` itself doubled when anything was
/// escaped, so an escape cannot be faked by typing one). Unchanged text is
/// borrowed.
pub fn escape_for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_deceptive) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if is_deceptive(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_what_deceives() {
        assert!(matches!(
            escape_for_terminal("fix db – ünïcode 🔥"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_for_terminal("a\u{202E}cba\nx\x1b[2J\\"),
            "a\\u{202e}cba\\u{000a}x\\u{001b}[2J\\\\"
        );
        for c in ['\u{2028}', '\u{200B}', '\u{FEFF}', '\u{2066}', '\u{061C}'] {
            assert!(!escape_for_terminal(&format!("x{c}y")).contains(c));
        }
        // Found by review: fillers, variation selectors, a combining
        // joiner, musical and Khmer format characters, a braille blank.
        for c in [
            '\u{115F}',
            '\u{1160}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{034F}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{1D173}',
            '\u{17B4}',
            '\u{17B5}',
            '\u{2800}',
        ] {
            assert!(is_deceptive(c), "{:04x}", c as u32);
        }
        // Visible spaces of other scripts stay allowed.
        for c in ['\u{3000}', '\u{202F}', '\u{00A0}'] {
            assert!(!is_deceptive(c), "{:04x}", c as u32);
        }
    }
}
