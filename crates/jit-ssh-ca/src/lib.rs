//! The jit-ssh certificate authority.
//!
//! What it owns: the CA key on disk ([`ca_key`]), who signs ([`signer`]),
//! the validated names a certificate is built from ([`names`]), the
//! certificate profile ([`profile`]), and issuance that is audited before
//! it returns ([`issue`]). The `jit-ssh-ca` binary adds the operator's
//! commands (`init`, `sign`, `krl build|show|check`).
//!
//! What it does not own: KRL bytes (`jit-ssh-krl`), the audit record format
//! and storage (`jit-ssh-audit`).

pub mod atomic_file;
pub mod ca_key;
pub mod config;
pub mod http;
pub mod issue;
pub mod logging;
pub mod match_code;
pub mod names;
pub mod notify;
pub mod oncall;
pub mod outbound;
pub mod policy;
pub mod profile;
pub mod server;
pub mod service;
pub mod signer;
pub mod store;
