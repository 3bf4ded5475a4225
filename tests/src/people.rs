//! People using a CA started from a config file: each invited and
//! enrolled through the real enrollment page (Chromium, a virtual
//! authenticator), with a `$BROWSER` that confirms as them and a `jit-ssh`
//! command running as them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::world::ok_json;
use crate::{bin, browser_script, run, run_ok, DevCa, SshAgent, NODE};

pub struct People {
    pub root: PathBuf,
    pub ca_url: String,
    pub agent: PathBuf,
}

impl People {
    /// `users` invited and enrolled with `ca` (started from `config`), all
    /// loading their certificates into `agent`.
    pub fn enrolled(
        root: &Path,
        ca: &DevCa,
        agent: &SshAgent,
        config: &Path,
        users: &[&str],
    ) -> People {
        let people = People {
            root: root.to_owned(),
            ca_url: ca.url.clone(),
            agent: agent.socket.clone(),
        };
        for user in users {
            people.enroll(config, user);
        }
        people
    }

    pub fn approve_mjs() -> PathBuf {
        browser_script().0.with_file_name("approve.mjs")
    }

    /// Invites and enrolls `user` through the real enrollment page; writes
    /// a $BROWSER for them that confirms with their credential.
    pub fn enroll(&self, config: &Path, user: &str) {
        let out = run_ok(
            Command::new(bin("jit-ssh-ca"))
                .args(["invite", user, "--config"])
                .arg(config),
        );
        let link = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("enroll {user}: ")))
            .unwrap_or_else(|| panic!("no link in {out:?}"))
            .to_owned();
        let cred = self.root.join(format!("{user}.credential.json"));
        let out = run(Command::new(NODE)
            .arg(Self::approve_mjs())
            .arg("enroll")
            .arg(&link)
            .arg(&cred));
        assert!(
            out.status.success(),
            "enrolling {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let browser = self.root.join(format!("{user}.browser.sh"));
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nexec {NODE} {} approve \"$1\" {} >> {} 2>&1\n",
                Self::approve_mjs().display(),
                cred.display(),
                self.root.join(format!("{user}.browser.log")).display()
            ),
        )
        .unwrap();
        run_ok(Command::new("chmod").arg("755").arg(&browser));
    }

    pub fn jit_ssh(&self, user: &str) -> Command {
        let home = self.root.join(format!("{user}.run"));
        std::fs::create_dir_all(&home).unwrap();
        let mut c = Command::new(bin("jit-ssh"));
        c.env("JIT_SSH_CA_URL", &self.ca_url)
            .env("JIT_SSH_USER", user)
            .env("JIT_SSH_CONFIG", self.root.join("no-such-config.toml"))
            .env("SSH_AUTH_SOCK", &self.agent)
            .env("XDG_RUNTIME_DIR", &home)
            .env("BROWSER", self.root.join(format!("{user}.browser.sh")));
        c
    }

    /// Carol or Dave on the approve page in Chromium; the page's answer.
    pub fn on_page(&self, url: &str, user: &str, verdict: &str) -> String {
        let out = run(Command::new(NODE)
            .arg(Self::approve_mjs())
            .arg("decide")
            .arg(url)
            .arg(self.root.join(format!("{user}.credential.json")))
            .args([user, verdict, "checked the incident"]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `jit-ssh login HOST --as ACCOUNT --ttl 10m` as `user`, which must
    /// succeed; the serial of the certificate now in the agent.
    pub fn login(&self, user: &str, host: &str, account: &str) -> String {
        let issued = ok_json(&run(self.jit_ssh(user).args([
            "--json",
            "login",
            host,
            "--as",
            account,
            "--ttl",
            "10m",
            "--timeout",
            "60s",
        ])));
        issued["serial"].as_str().unwrap().to_owned()
    }

    /// `jit-ssh --json audit sessions` as `user`: one JSON line per
    /// recording the CA holds.
    pub fn audit_sessions(&self, user: &str) -> String {
        run_ok(
            self.jit_ssh(user)
                .args(["--json", "audit", "sessions", "--timeout", "60s"]),
        )
    }

    /// `jit-ssh audit play SESSION --cat` as `user`, which must succeed:
    /// the recording as an asciicast.
    pub fn play(&self, user: &str, session: &str) -> String {
        let played =
            run(self
                .jit_ssh(user)
                .args(["audit", "play", session, "--cat", "--timeout", "60s"]));
        assert!(
            played.status.success(),
            "{}",
            String::from_utf8_lossy(&played.stderr)
        );
        String::from_utf8_lossy(&played.stdout).into_owned()
    }
}
