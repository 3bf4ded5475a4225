//! What `jit-ssh audit play` lets through to the auditor's terminal.
//!
//! A recording's output is whatever a program on the host printed, and
//! any user there decides that. Played raw, it can talk to the auditor's
//! terminal rather than just draw on it: set the clipboard (OSC 52) or
//! the title, make the terminal answer a query (cursor position, device
//! attributes, a title report), which the terminal types into the
//! auditor's shell once play exits, smuggle any of that through a
//! multiplexer (tmux's DCS passthrough), or switch on mouse reporting,
//! bracketed paste or application keys so what the auditor's mouse and
//! keys send afterwards changes. What the session *showed* still plays:
//! text, colours, cursor movement, clearing, the alternate screen.
//!
//! So: OSC, DCS, SOS, PM and APC strings are dropped whole; CSI sequences
//! that ask the terminal for an answer or change its input are dropped;
//! ENQ and 8-bit (C1) controls are dropped; everything else passes. The
//! filter keeps its state across events (a pty read may split a
//! sequence). [`PlayFilter::finish`] gives the terminal back: colours
//! reset, cursor shown, main screen. The raw recording is still what
//! `audit play --to FILE` writes.

/// Private modes (`CSI ? Pm h/l`) that change what the terminal sends:
/// cursor keys, mouse and focus reporting, bracketed paste, keypad and
/// meta-key handling, in-band resize reports.
const INPUT_MODES: &[u32] = &[
    1, 9, 66, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 1016, 1034, 1035, 1036, 1037, 1039,
    2004, 2048,
];
/// See [`PlayFilter::finish`].
const RESTORE: &str = "\x1b[0m\x1b[?25h\x0f\x1b(B\x1b[4l\x1b[?7h\x1b7\x1b[r\x1b8";
/// A longer CSI sequence is not one a terminal program sends: dropped.
const MAX_CSI: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// After ESC and an intermediate byte (`ESC ( B`, charsets), kept in
    /// `csi` until the final byte.
    EscIntermediate,
    /// Inside `ESC [` (or C1 CSI) up to the final byte.
    Csi,
    /// Inside an OSC/DCS/SOS/PM/APC string, dropped up to its end.
    Str,
    /// ESC seen inside a string: `\` ends it.
    StrEsc,
}

#[derive(Debug)]
pub struct PlayFilter {
    state: State,
    /// The CSI sequence so far, after `ESC [` (or the intermediate of an
    /// escape sequence).
    csi: String,
    /// Dropped: a C1-introduced or over-long CSI sequence.
    csi_dropped: bool,
    /// The alternate screen was switched on and not off again.
    alt_screen: bool,
}

impl Default for PlayFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl PlayFilter {
    pub fn new() -> Self {
        PlayFilter {
            state: State::Ground,
            csi: String::new(),
            csi_dropped: false,
            alt_screen: false,
        }
    }

    /// What of `data` may reach the terminal, given what came before.
    pub fn filter(&mut self, data: &str) -> String {
        let mut out = String::with_capacity(data.len());
        for c in data.chars() {
            self.step(c, &mut out);
        }
        out
    }

    /// What gives the terminal back after the last event: attributes
    /// reset, cursor shown, the ASCII character set (not line drawing),
    /// insert mode off, line wrap on, the whole screen scrolling (the
    /// cursor kept where it is), and the main screen if the recording
    /// left the alternate one on.
    pub fn finish(&mut self) -> String {
        let mut out = String::from(RESTORE);
        if self.alt_screen {
            out.push_str("\x1b[?1049l");
        }
        self.state = State::Ground;
        out
    }

    fn step(&mut self, c: char, out: &mut String) {
        // Nothing of a sequence is written until it is whole and allowed,
        // so the terminal is back in its ground state after every write
        // and reads what this filter took for text as text too. C0
        // controls inside a sequence act at once in a terminal and the
        // sequence goes on; they are written alone.
        match self.state {
            State::Ground => match c {
                '\x1b' => self.state = State::Esc,
                // ENQ makes a terminal send its answerback string.
                '\x05' => {}
                // 8-bit controls: some terminals act on them in UTF-8.
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = State::Str,
                '\u{9b}' => self.begin_csi(true),
                '\u{80}'..='\u{9f}' => {}
                c => out.push(c),
            },
            State::Esc => match c {
                '[' => self.begin_csi(false),
                ']' | 'P' | 'X' | '^' | '_' => self.state = State::Str,
                // DECID (the terminal answers), application keypad.
                'Z' | '=' => self.state = State::Ground,
                // Charset designations (`ESC ( B`) and DECALN (`ESC # 8`);
                // not `ESC %`, which can leave UTF-8 so that bytes of
                // later text act as 8-bit controls.
                '(' | ')' | '*' | '+' | '-' | '.' | '/' | '#' => {
                    self.csi.clear();
                    self.csi.push(c);
                    self.state = State::EscIntermediate;
                }
                '\x1b' => {}
                '\x18' | '\x1a' => self.state = State::Ground,
                '\x05' => {}
                '\0'..='\x1f' => out.push(c),
                '0'..='~' => {
                    out.push('\x1b');
                    out.push(c);
                    self.state = State::Ground;
                }
                _ => self.state = State::Ground,
            },
            State::EscIntermediate => match c {
                '0'..='~' => {
                    out.push('\x1b');
                    out.push_str(&self.csi);
                    out.push(c);
                    self.state = State::Ground;
                }
                '\x1b' => self.state = State::Esc,
                '\x05' => {}
                '\0'..='\x1f' => out.push(c),
                _ => self.state = State::Ground,
            },
            State::Csi => match c {
                '@'..='~' => {
                    self.state = State::Ground;
                    if !self.csi_dropped && self.csi_allowed(c) {
                        out.push_str("\x1b[");
                        out.push_str(&self.csi);
                        out.push(c);
                    }
                }
                // CAN, SUB abort; ESC aborts and starts another.
                '\x18' | '\x1a' => self.state = State::Ground,
                '\x1b' => self.state = State::Esc,
                '\x05' => {}
                '\0'..='\x1f' => out.push(c),
                ' '..='?' if self.csi.len() < MAX_CSI => self.csi.push(c),
                _ => self.csi_dropped = true,
            },
            State::Str => match c {
                '\x07' | '\u{9c}' | '\x18' | '\x1a' => self.state = State::Ground,
                '\x1b' => self.state = State::StrEsc,
                _ => {}
            },
            State::StrEsc => {
                self.state = match c {
                    '\\' => State::Ground,
                    '\x1b' => State::StrEsc,
                    _ => State::Str,
                }
            }
        }
    }

    fn begin_csi(&mut self, c1: bool) {
        self.state = State::Csi;
        self.csi.clear();
        self.csi_dropped = c1;
    }

    /// Whether the CSI sequence `ESC [ self.csi final` only draws.
    fn csi_allowed(&mut self, last: char) -> bool {
        let p = self.csi.as_str();
        let private = p.starts_with('?');
        let prefixed = p.starts_with(['?', '>', '<', '=']);
        match last {
            // Reports: device status, cursor position, device attributes,
            // window operations (title reports, resizing, iconifying),
            // terminal parameters, xterm version and key-format queries.
            'n' | 'c' | 't' | 'x' => false,
            // DECRQM (`CSI ? Ps $ p`), and any prefixed `p`.
            'p' if p.contains('$') || prefixed => false,
            'q' if prefixed => false,
            // modifyOtherKeys (`CSI > Ps m`) and kitty keyboard modes.
            'm' | 'u' if prefixed => false,
            // DEC private modes: only those that change input are dropped.
            'h' | 'l' if private => {
                let modes: Vec<u32> = p[1..].split(';').filter_map(|m| m.parse().ok()).collect();
                if modes.iter().any(|m| INPUT_MODES.contains(m)) {
                    return false;
                }
                if modes.iter().any(|m| matches!(m, 47 | 1047 | 1049)) {
                    self.alt_screen = last == 'h';
                }
                true
            }
            // ANSI modes: insert mode only (keyboard lock, local echo and
            // newline mode change what the terminal sends).
            'h' | 'l' => p == "4" || p.is_empty(),
            _ => !prefixed || private,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filtered(parts: &[&str]) -> String {
        let mut f = PlayFilter::new();
        parts.iter().map(|p| f.filter(p)).collect()
    }

    #[test]
    fn drawing_passes_and_talking_to_the_terminal_does_not() {
        let draw = "a\tb\r\n\x08\x07\x1b[1;31mX\x1b[0m\x1b[2J\x1b[H\x1b[10;5H\x1b[K\x1b(B\x1b)0\x1b7\x1b8\x1bM\x1b[?25l\x1b[?7h\x1b[1;24r\x1b[4h\x1b[s\x1b[u é 🔥";
        assert_eq!(filtered(&[draw]), draw);
        for talk in [
            "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
            "\x1b[5n",
            "\x1b[?6n",
            "\x1b[18t",
            "\x1b[8;100;100t",
            "\x1b[?12$p",
            "\x1b[>0q",
            "\x1b[>4;2m",
            "\x1b[>1u",
            "\x1b[?u",
            "\x1b[12l",
            "\x1b[20h",
            "\x1bZ",
            "\x1bX sos \x1b\\",
        ] {
            let got = filtered(&[talk]);
            assert!(
                !got.contains('\x1b'),
                "{talk:?} reached the terminal as {got:?}"
            );
        }
        // "link" is text between two dropped OSC 8 strings: it still shows.
        assert_eq!(
            filtered(&["\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"]),
            "link"
        );
    }

    #[test]
    fn a_sequence_started_inside_another_is_not_let_through_as_text() {
        // A terminal acts on BEL inside ESC and stays in the escape: the
        // `]` after it starts an OSC there, so it must not pass as text.
        assert_eq!(filtered(&["\x1b\x07]52;c;eA==\x07x"]), "\x07x");
        assert_eq!(filtered(&["\x1b(\x1b]52;c;eA==\x07x"]), "x");
        assert_eq!(filtered(&["\x1b[1\x1b]0;t\x07x"]), "x");
        // `ESC % @` leaves UTF-8: the 0x9B byte inside U+06DB would then
        // be an 8-bit CSI asking for the cursor position.
        assert!(!filtered(&["\x1b%@\u{6db}6n"]).contains("\x1b%"));
    }

    #[test]
    fn a_sequence_split_across_events_is_still_seen() {
        assert_eq!(filtered(&["a\x1b", "]52;c;eA", "==\x1b", "\\b"]), "ab");
        assert_eq!(filtered(&["a\x1b[", "6", "n", "b"]), "ab");
        assert_eq!(filtered(&["\x1b[3", "1mx"]), "\x1b[31mx");
    }

    #[test]
    fn an_unended_string_swallows_only_itself_and_the_end_restores_the_screen() {
        let mut f = PlayFilter::new();
        assert_eq!(f.filter("\x1b[?1049hx\x1b]0;never ended"), "\x1b[?1049hx");
        assert_eq!(f.finish(), format!("{RESTORE}\x1b[?1049l"));
        assert_eq!(f.filter("y"), "y");
        let mut f = PlayFilter::new();
        f.filter("\x1b[?1049h\x1b[?1049l");
        assert_eq!(f.finish(), RESTORE);
        // An over-long parameter list (no program sends one) is dropped.
        assert_eq!(filtered(&[&format!("\x1b[{}mx", "1;".repeat(100))]), "x");
    }
}
