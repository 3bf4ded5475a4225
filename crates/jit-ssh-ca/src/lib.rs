//! The jit-ssh certificate authority.
//!
//! What it owns: the CA and host CA keys on disk ([`ca_key`]), who signs
//! ([`signer`]), the validated names a certificate is built from
//! ([`names`]), the certificate profile ([`profile`]), issuance that is
//! audited before it returns ([`issue`]), policy ([`policy`]), on-call
//! schedules ([`oncall`]), notifications ([`notify`]), configuration
//! ([`config`]), the state store ([`store`]), the operations ([`service`]),
//! HTTP ([`http`]), Prometheus metrics ([`metrics`]) and the running server with its admin socket
//! ([`server`]).
//!
//! The `jit-ssh-ca` binary: `serve` (`--dev` for a try-out), `init` (CA
//! and host CA keys), `check-config`, `invite`, `enable-user`,
//! `host-token`, `hosts`, `oncall`, `sign` (offline emergency issuance),
//! `krl build|show|check`, `backup` (of the running server) and `restore`
//! ([`backup`]; the data directory's layout version is [`data_format`]).
//!
//! What it does not own: KRL bytes (`jit-ssh-krl`), the audit record format
//! (`jit-ssh-audit`) and its storage (`jit-ssh-audit-disk`), wire types
//! (`jit-ssh-proto`).

pub mod atomic_file;
pub mod backup;
pub mod ca_key;
pub mod clock;
pub mod config;
pub mod data_format;
pub mod http;
pub mod issue;
pub mod logging;
pub mod match_code;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod oncall;
pub mod outbound;
pub mod policy;
pub mod profile;
pub mod recordings;
pub mod rotation_state;
pub mod server;
pub mod service;
pub mod signer;
pub mod store;
