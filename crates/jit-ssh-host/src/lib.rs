//! Everything jit-ssh runs on an SSH host, with no browser or agent code:
//! `sync` keeps sshd's CA keys and KRL current ([`sync`]: fetched by
//! [`fetch`], judged by [`trust`], written by [`files`]); `setup` writes
//! principals files ([`setup`]); `enroll` gets a host certificate with an
//! enrollment token ([`enroll`]), which sync then renews at each check-in
//! ([`checkin`]); `session` is the wrapper sshd runs logins through, which
//! ends them at certificate expiry or revocation ([`session`]). The `jit-ssh-host` binary and the
//! client's `jit-ssh host …` run the same [`cli`].

pub mod checkin;
pub mod cli;
pub mod enroll;
pub mod error;
pub mod failover;
pub mod fetch;
pub mod files;
pub mod principals;
pub mod proc_stat;
pub mod recorder;
pub mod session;
pub mod setup;
pub mod sync;
#[cfg(test)]
mod test_cert;
pub mod trust;

pub use error::HostError;
