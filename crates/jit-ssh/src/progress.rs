//! Telling the engineer what is happening while they wait: a spinner on a
//! terminal, plain lines otherwise (and nothing with --quiet).

use std::io::{IsTerminal, Write};

pub struct Progress {
    tty: bool,
    quiet: bool,
    last: String,
    frame: usize,
}

const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            quiet,
            last: String::new(),
            frame: 0,
        }
    }

    /// Shows `status` (a spinner tick if it did not change).
    pub fn update(&mut self, status: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr();
        if self.tty {
            self.frame = (self.frame + 1) % FRAMES.len();
            let _ = write!(err, "\r\x1b[2K{} {status}", FRAMES[self.frame]);
            let _ = err.flush();
        } else if status != self.last {
            let _ = writeln!(err, "{status}");
        }
        self.last = status.to_owned();
    }

    pub fn done(&mut self) {
        if self.tty && !self.quiet && !self.last.is_empty() {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
