//! A dev CA with an enrolled user, a private ssh-agent and a stand-in
//! browser (`$BROWSER`) that confirms with that user's credential: what
//! the client's end-to-end tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{
    bin, browser_script, login_name, run, run_ok, ssh_command, DevCa, SshAgent, Sshd, NODE,
    SSH_KEYGEN,
};

pub struct World {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub ca: DevCa,
    pub agent: SshAgent,
    pub account: String,
    pub browser: PathBuf,
}

impl World {
    /// Dev CA, enrolled user (credential saved for the fake browser), agent.
    pub fn start() -> World {
        Self::start_with("")
    }

    /// [`World::start`] with `extra` lines added to the dev CA's config
    /// (written by a first start, before anyone enrolls).
    pub fn start_with(extra: &str) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let account = login_name();
        let dev = root.join("dev");
        if !extra.is_empty() {
            DevCa::start(&dev, &account).stop();
            let config = dev.join("ca.toml");
            let text = std::fs::read_to_string(&config).unwrap();
            std::fs::write(&config, format!("{text}\n{extra}")).unwrap();
        }
        let ca = DevCa::start(&dev, &account);
        let (flow, _) = browser_script();
        let approve = flow.with_file_name("approve.mjs");
        let cred = root.join("credential.json");
        let out = run(Command::new(NODE)
            .arg(&approve)
            .arg("enroll")
            .arg(&ca.enroll_url)
            .arg(&cred));
        assert!(
            out.status.success(),
            "enrollment failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // jit-ssh runs $BROWSER with the link; this one approves it.
        let browser = root.join("browser.sh");
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nexec {NODE} {} approve \"$1\" {} >> {} 2>&1\n",
                approve.display(),
                cred.display(),
                root.join("browser.log").display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&browser)
            .status()
            .unwrap();
        let agent = SshAgent::start(&root);
        World {
            _tmp: tmp,
            root,
            ca,
            agent,
            account,
            browser,
        }
    }

    pub fn jit_ssh(&self) -> Command {
        let mut c = Command::new(bin("jit-ssh"));
        c.env("JIT_SSH_CA_URL", &self.ca.url)
            .env("JIT_SSH_USER", &self.account)
            .env("JIT_SSH_CONFIG", self.root.join("no-such-config.toml"))
            .env("SSH_AUTH_SOCK", &self.agent.socket)
            // Saved sign-ins stay inside the test's directory.
            .env("XDG_RUNTIME_DIR", &self.root)
            .env("BROWSER", &self.browser);
        c
    }

    pub fn login(&self, host: &str, ttl: &str) -> Output {
        run(self.jit_ssh().args([
            "--json",
            "login",
            host,
            "--as",
            &self.account,
            "--ttl",
            ttl,
            "--timeout",
            "60s",
        ]))
    }
}

/// A host trusting the dev CA the way production hosts do: `jit-ssh host
/// sync` (trust on first use by fingerprint) into its own directory,
/// principals for the account, and a real sshd reading them.
pub struct Host {
    pub dir: PathBuf,
    pub sshd: Sshd,
    ca_url: String,
}

impl Host {
    /// One more `jit-ssh host sync`, which must succeed.
    pub fn sync(&self) {
        sync(&self.ca_url, &self.dir, None);
    }
}

fn sync(ca_url: &str, dir: &Path, bootstrap: Option<&str>) {
    let mut c = Command::new(bin("jit-ssh"));
    c.args(["host", "sync", "--ca-url", ca_url, "--dir"])
        .arg(dir);
    if let Some(fp) = bootstrap {
        c.args(["--bootstrap-fingerprint", fp]);
    }
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "host sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl World {
    /// A host accepting the account on `hosts` (one principal each).
    pub fn host(&self, hosts: &[&str]) -> Host {
        let dir = self.root.join("etc-ssh-jit-ssh");
        let fp = run_ok(
            Command::new(SSH_KEYGEN)
                .arg("-lf")
                .arg(self.ca.ca_public_key()),
        )
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
        sync(&self.ca.url, &dir, Some(&fp));
        let principals = dir.join("principals");
        std::fs::create_dir_all(&principals).unwrap();
        let lines: String = hosts
            .iter()
            .map(|h| format!("{}@{h}\n", self.account))
            .collect();
        std::fs::write(principals.join(&self.account), lines).unwrap();
        let sshd = Sshd::start(
            &self.root,
            &dir.join("ca-keys"),
            &dir.join("revoked.krl"),
            &principals,
        );
        Host {
            dir,
            sshd,
            ca_url: self.ca.url.clone(),
        }
    }
}

pub fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "jit-ssh failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

pub fn ssh_via_agent(port: u16, user: &str, agent: &Path) -> Output {
    run(ssh_command(port)
        .arg("-o")
        .arg(format!("IdentityAgent={}", agent.display()))
        .arg(format!("{user}@127.0.0.1"))
        .args(["echo", "via-agent"]))
}
