//! Playing a verified recording: the events with the times to show them
//! at, and the plain asciicast v2 file stock `asciinema` reads.

use std::io::Write;
use std::time::Duration;

use crate::chunk::Chunk;
use crate::event::{Event, PayloadError};
use crate::verify::{chunk_events, Verified};

#[derive(Debug, Clone, Copy)]
pub struct PlayOptions {
    /// 2.0 plays twice as fast.
    pub speed: f64,
    /// Pauses longer than this are shortened to it (before `speed`
    /// applies, as `asciinema play -i` does).
    pub idle_limit: Option<Duration>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        PlayOptions {
            speed: 1.0,
            idle_limit: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("speed must be a positive number")]
    Speed,
    #[error("idle limit must be positive")]
    IdleLimit,
    #[error("chunk {position}: payload {source}")]
    Payload {
        position: u64,
        #[source]
        source: PayloadError,
    },
    #[error("writing the asciicast: {0}")]
    Io(#[from] std::io::Error),
}

/// One event and when to show it, since playing started.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub at: Duration,
    pub event: Event,
}

/// An iterator of [`Frame`]s; it never sleeps (the caller does).
pub struct Player<'a> {
    chunks: std::iter::Enumerate<std::slice::Iter<'a, Chunk>>,
    pending: std::vec::IntoIter<Event>,
    options: PlayOptions,
    last_time: Duration,
    at: Duration,
}

impl Verified {
    /// Plays the events with `options`.
    pub fn play(&self, options: PlayOptions) -> Result<Player<'_>, PlayError> {
        if !(options.speed.is_finite() && options.speed > 0.0) {
            return Err(PlayError::Speed);
        }
        if options.idle_limit == Some(Duration::ZERO) {
            return Err(PlayError::IdleLimit);
        }
        Ok(Player {
            chunks: self.chunks.iter().enumerate(),
            pending: Vec::new().into_iter(),
            options,
            last_time: Duration::ZERO,
            at: Duration::ZERO,
        })
    }

    /// Writes the plain asciicast v2 file: the header line and every
    /// chunk's event lines, in order.
    pub fn to_asciicast(&self, mut w: impl Write) -> Result<(), PlayError> {
        w.write_all(self.header_line.as_bytes())?;
        w.write_all(b"\n")?;
        for (position, chunk) in self.chunks.iter().enumerate() {
            let b = chunk.body();
            let raw = zstd::bulk::decompress(&b.payload, b.raw_len as usize).map_err(|e| {
                PlayError::Payload {
                    position: position as u64,
                    source: PayloadError::Decompress(e),
                }
            })?;
            w.write_all(&raw)?;
        }
        w.flush()?;
        Ok(())
    }
}

impl Iterator for Player<'_> {
    type Item = Result<Frame, PlayError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.pending.next() {
                let mut gap = event.time.saturating_sub(self.last_time);
                if let Some(limit) = self.options.idle_limit {
                    gap = gap.min(limit);
                }
                self.last_time = event.time;
                self.at += gap;
                let at = self.at.div_f64(self.options.speed);
                return Some(Ok(Frame { at, event }));
            }
            let (position, chunk) = self.chunks.next()?;
            match chunk_events(chunk) {
                Ok(events) => self.pending = events.into_iter(),
                Err(source) => {
                    return Some(Err(PlayError::Payload {
                        position: position as u64,
                        source,
                    }))
                }
            }
        }
    }
}
