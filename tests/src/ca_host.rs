//! A host of a running CA ([`DevCa`]) the way production hosts join one:
//! synced into its own directory (trust on first use by the CA key's
//! fingerprint), principals for the login account, a real sshd with the
//! session wrapper's lines, and optionally enrolled with sshd's host key
//! (the key its recorder signs with).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::session_host::SSHD_SESSION_LINES;
use crate::signed_ca::fingerprint;
use crate::{bin, run, run_ok, ssh_command, DevCa, Sshd};

/// Which program a host runs `sync` with.
#[derive(Clone, Copy)]
pub enum SyncProgram {
    /// `jit-ssh-host sync`, the host's own binary (what the systemd unit runs).
    Host,
    /// `jit-ssh host sync`, the client's alias (as older hosts run it).
    Client,
}

pub struct CaHost {
    /// Where sshd keeps its config, log and host key.
    pub root: PathBuf,
    /// What sync keeps: ca-keys, revoked.krl, principals/.
    pub dir: PathBuf,
    pub sshd: Sshd,
    pub account: String,
    ca_url: String,
    /// The CA key's fingerprint, given on every sync as the first one did.
    bootstrap: String,
    program: SyncProgram,
}

impl CaHost {
    /// The host directory a host started in `root` syncs into: what a CA's
    /// session wrapper line must name before the host exists.
    pub fn dir_in(root: &Path) -> PathBuf {
        root.join("etc-ssh-jit-ssh")
    }

    /// Syncs `root/etc-ssh-jit-ssh` from `ca`, lets `account` in as
    /// `account@principal_host`, and starts sshd for the session wrapper
    /// (which makes the host key in `root`).
    pub fn start(
        root: &Path,
        ca: &DevCa,
        account: &str,
        principal_host: &str,
        program: SyncProgram,
    ) -> CaHost {
        let dir = Self::dir_in(root);
        let principals = dir.join("principals");
        std::fs::create_dir_all(&principals).unwrap();
        std::fs::write(
            principals.join(account),
            format!("{account}@{principal_host}\n"),
        )
        .unwrap();
        let bootstrap = fingerprint(&ca.ca_public_key());
        sync(program, &ca.url, &dir, &bootstrap);
        let sshd = Sshd::start_with(
            root,
            &dir.join("ca-keys"),
            &dir.join("revoked.krl"),
            &principals,
            SSHD_SESSION_LINES,
        );
        CaHost {
            root: root.to_owned(),
            dir,
            sshd,
            account: account.to_owned(),
            ca_url: ca.url.clone(),
            bootstrap,
            program,
        }
    }

    /// One more sync (a revocation reaches sshd by it); it must succeed.
    pub fn sync(&self) {
        sync(self.program, &self.ca_url, &self.dir, &self.bootstrap);
    }

    /// Enrolls the host as `name` with sshd's host key, by a host token
    /// the operator of the dev CA in `dev` makes for group `dev`.
    pub fn enroll(&self, dev: &Path, name: &str) {
        let token = run_ok(
            Command::new(bin("jit-ssh-ca"))
                .args(["host-token", "--group", "dev", "--dev-dir"])
                .arg(dev),
        )
        .trim()
        .to_owned();
        let out = run(Command::new(bin("jit-ssh-host"))
            .args([
                "enroll",
                "--ca-url",
                &self.ca_url,
                "--token",
                &token,
                "--name",
                name,
                "--key",
            ])
            .arg(self.root.join("ssh_host_ed25519_key"))
            .arg("--dir")
            .arg(&self.dir));
        assert!(
            out.status.success(),
            "enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `ssh` to the account here, offering what the agent at `agent`
    /// holds (the certificate `jit-ssh login` loaded).
    pub fn ssh(&self, agent: &Path) -> Command {
        let mut c = ssh_command(self.sshd.port());
        c.arg("-o")
            .arg(format!("IdentityAgent={}", agent.display()))
            .arg(format!("{}@127.0.0.1", self.account));
        c
    }
}

/// `PROGRAM sync` from the CA at `ca_url` into `dir`, which must succeed.
fn sync(program: SyncProgram, ca_url: &str, dir: &Path, bootstrap: &str) {
    let mut c = match program {
        SyncProgram::Host => Command::new(bin("jit-ssh-host")),
        SyncProgram::Client => {
            let mut c = Command::new(bin("jit-ssh"));
            c.arg("host");
            c
        }
    };
    let out = run(c
        .args(["sync", "--ca-url", ca_url, "--dir"])
        .arg(dir)
        .args(["--bootstrap-fingerprint", bootstrap]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
