//! Types shared by the jit-ssh CA and its client, with no I/O: what goes
//! over the wire and what both sides must spell the same way — request
//! and response bodies ([`api`]), error bodies and codes ([`error`]),
//! route paths ([`routes`]), serials as strings ([`serial`]), the documents
//! the CA signs for hosts ([`signed`], [`hosts`], [`host_checkin`]), the human duration format
//! ([`duration`]) and which characters free text may hold ([`text`]).

pub mod api;
pub mod duration;
pub mod error;
pub mod host_checkin;
pub mod hosts;
pub mod reach;
pub mod recordings;
pub mod routes;
pub mod serial;
pub mod signed;
pub mod size;
pub mod text;

pub use duration::{format_duration, parse_duration, DurationError};
pub use size::{format_size, parse_size, SizeError};
