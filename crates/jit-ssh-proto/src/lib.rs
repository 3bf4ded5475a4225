//! Types shared by the jit-ssh CA and its client, with no I/O: what goes
//! over the wire and what both sides must spell the same way.
//!
//! Today that is the human duration format (`"10m"`) used by TTL flags and
//! config. HTTP request/response types, route paths and error codes join
//! here with the CA server.

pub mod duration;

pub use duration::{format_duration, parse_duration, DurationError};
