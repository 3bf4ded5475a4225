//! The README's "Five minutes with the CA", done as a newcomer would, from
//! the README's own text: its shell blocks are read out of README.md and
//! run with bash, so the walkthrough cannot drift from what works.
//!
//! What differs from a person at a terminal, and why:
//! - the CA listens on port 0 (tests never take fixed ports) and the
//!   blocks' `8722` becomes that port; `cargo run -q -p jit-ssh --` is the
//!   built binary;
//! - the browser is Chromium with a virtual authenticator (`$BROWSER`);
//! - sshd cannot bind port 0, so instead of the README's daemon on 2222
//!   the harness serves the README's own sshd_config in inetd mode on a
//!   port it bound, and the `ssh -p 2222` line uses that port.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jit_ssh_e2e::agent::SSH_AGENT;
use jit_ssh_e2e::{
    bin, browser_script, have_tools, run, run_ok, DevCa, SshAgent, Sshd, CHROMIUM, NODE, SSH, SSHD,
    SSH_KEYGEN,
};

/// The ```sh blocks of the README's walkthrough section.
fn walkthrough_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let start = readme.find("## Five minutes with the CA").unwrap();
    let end = start
        + readme[start..]
            .find("\n## ")
            .unwrap_or(readme.len() - start);
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in readme[start..end].lines() {
        let t = line.trim();
        match (&mut current, t) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(b), "```") => {
                blocks.push(b.join("\n"));
                current = None;
            }
            (Some(b), _) => b.push(t),
            _ => {}
        }
    }
    blocks
}

struct Newcomer {
    root: PathBuf,
    port: String,
    agent: PathBuf,
}

impl Newcomer {
    /// Enrolls `user` with `link` in Chromium; returns a $BROWSER that
    /// confirms as them.
    fn enroll(&self, user: &str, link: &str) -> PathBuf {
        let approve = browser_script().0.with_file_name("approve.mjs");
        let cred = self.root.join(format!("{user}.credential.json"));
        run_ok(
            Command::new(NODE)
                .arg(&approve)
                .arg("enroll")
                .arg(link)
                .arg(&cred),
        );
        let browser = self.root.join(format!("{user}.browser.sh"));
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nexec {NODE} {} approve \"$1\" {} >> {} 2>&1\n",
                approve.display(),
                cred.display(),
                self.root.join(format!("{user}.browser.log")).display()
            ),
        )
        .unwrap();
        run_ok(Command::new("chmod").arg("755").arg(&browser));
        browser
    }

    /// bash running README text, in the clone's place, as `user`.
    fn bash(&self, user: &str, script: &str) -> Command {
        let script = script
            .replace(
                "cargo run -q -p jit-ssh --",
                &bin("jit-ssh").display().to_string(),
            )
            .replace("8722", &self.port);
        let mut c = Command::new("bash");
        c.current_dir(&self.root)
            .arg("-c")
            .arg(format!("set -eu\nshopt -s expand_aliases\n{script}"))
            .env("SSH_AUTH_SOCK", &self.agent)
            .env("JIT_SSH_CONFIG", self.root.join("no-such-config.toml"))
            .env("XDG_RUNTIME_DIR", self.root.join(format!("{user}.run")))
            .env("BROWSER", self.root.join(format!("{user}.browser.sh")));
        std::fs::create_dir_all(self.root.join(format!("{user}.run"))).unwrap();
        c
    }

    fn jit_ssh_ca(&self, args: &[&str]) -> String {
        run_ok(
            Command::new(bin("jit-ssh-ca"))
                .current_dir(&self.root)
                .args(args),
        )
    }
}

fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    if !have_tools(
        "readme_walkthrough",
        &[
            SSHD,
            SSH,
            SSH_KEYGEN,
            SSH_AGENT,
            CHROMIUM,
            NODE,
            &playwright,
        ],
    ) {
        return;
    }
    let blocks = walkthrough_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "the walkthrough's shell blocks changed: {blocks:#?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_owned();

    // 1–2. Start the CA; enroll admin through the printed link.
    let ca = DevCa::start_in(&root);
    let port = ca.url.rsplit(':').next().unwrap().to_owned();
    let agent = SshAgent::start(&root);
    let me = Newcomer {
        root: root.clone(),
        port,
        agent: agent.socket.clone(),
    };
    me.enroll("admin", &ca.enroll_url);
    assert!(root.join(".jit-ssh-dev/ca.toml").exists());

    // 3. The login block, as written.
    let said = ok("step 3", &run(&mut me.bash("admin", &blocks[0])));
    assert!(said.contains("Logged in: "), "{said}");
    assert!(said.contains("Match code: "), "{said}");

    // 4. The host block, in the same shell session (step 3's exports and
    //    alias): up to the sshd line, then the harness serves its config,
    //    then the ssh line against that port.
    let session: String = blocks[0]
        .lines()
        .filter(|l| l.starts_with("export ") || l.starts_with("alias "))
        .map(|l| format!("{l}\n"))
        .collect();
    let _ = std::fs::create_dir_all("/run/sshd");
    let h = root.join("h");
    std::fs::create_dir(&h).unwrap();
    let host = blocks[1].replace("$(mktemp -d)", &h.display().to_string());
    let (setup, rest) = host.split_at(host.find("/usr/sbin/sshd").unwrap());
    ok(
        "step 4 (host set-up)",
        &run(&mut me.bash("admin", &format!("{session}{setup}"))),
    );
    let sshd = Sshd::serve(&h.join("sshd_config"), &h.join("sshd.log"));
    let ssh_line = &rest[rest.find("ssh -p").unwrap()..];
    let said = ok(
        "step 4 (ssh)",
        &run(&mut me.bash(
            "admin",
            &format!(
                "{session}H={}\n{}",
                h.display(),
                ssh_line.replace("-p 2222", &format!("-p {}", sshd.port()))
            ),
        )),
    );
    assert!(said.contains("in via jit-ssh"), "{said}\n{}", sshd.log());
    assert!(
        sshd.log().contains("Accepted publickey") && sshd.log().contains("ID jit-ssh:admin:"),
        "{}",
        sshd.log()
    );

    // 5. The others: invited from the dev folder, enrolled; alice asks for
    //    a *.stage host, carol approves with `jit-ssh approve ID`.
    for user in ["alice", "carol"] {
        let out = me.jit_ssh_ca(&["invite", user, "--dev-dir", ".jit-ssh-dev"]);
        let link = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("enroll {user}: ")))
            .unwrap()
            .to_owned();
        me.enroll(user, &link);
    }
    let mut alice = me
        .bash(
            "alice",
            "JIT_SSH_CA_URL=http://localhost:8722 JIT_SSH_USER=alice \
             cargo run -q -p jit-ssh -- login app-1.stage --as deploy --timeout 90s",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(alice.stderr.take().unwrap()).lines();
    let guard = Kill(&mut alice);
    let approve_url = loop {
        let line = lines.next().expect("alice's login ended early").unwrap();
        if line.contains("They can approve at:") {
            break lines.next().unwrap().unwrap();
        }
    };
    let id = approve_url.trim().rsplit('/').next().unwrap().to_owned();
    ok(
        "carol approves",
        &run(&mut me.bash(
            "carol",
            &format!(
                "JIT_SSH_CA_URL=http://localhost:8722 JIT_SSH_USER=carol \
                 cargo run -q -p jit-ssh -- approve {id}"
            ),
        )),
    );
    let status = guard.0.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(status.success(), "alice's login: {rest:?}");
    assert_eq!(agent.certificates().len(), 2, "admin's and alice's");
}
