//! Shared harness for the end-to-end tests: locating the jit-ssh binaries,
//! deciding whether a test that needs OpenSSH may run, and driving real
//! `sshd`, `ssh` and `ssh-keygen`.
//!
//! Tests that need a tool skip with a loud message when it is absent,
//! unless `JIT_SSH_REQUIRE_E2E=1` (set by CI), where a missing tool fails.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod agent;
pub mod ca_host;
pub mod ca_server;
pub mod fake_ca;
pub mod people;
pub mod recorder;
pub mod recording_ca;
pub mod session_host;
pub mod signed_ca;
pub mod sshd;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use agent::SshAgent;
pub use ca_server::DevCa;
pub use sshd::Sshd;

/// A binary of this workspace, built by `cargo test --workspace`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds every binary)",
        path.display()
    );
    // The crates each binary is built from.
    let crates: &[&str] = match name {
        "jit-ssh-ca" => &[
            "jit-ssh-ca",
            "jit-ssh-krl",
            "jit-ssh-audit",
            "jit-ssh-audit-disk",
            "jit-ssh-proto",
        ],
        "jit-ssh-host" => &["jit-ssh-host", "jit-ssh-proto", "jit-ssh-krl"],
        _ => &[
            "jit-ssh",
            "jit-ssh-host",
            "jit-ssh-proto",
            "jit-ssh-audit",
            "jit-ssh-krl",
        ],
    };
    refuse_stale(&path, crates);
    path
}

/// `cargo test -p jit-ssh-e2e` does not rebuild the binaries: one older
/// than any source file of the crates it is built from would test old code.
fn refuse_stale(binary: &Path, crates: &[&str]) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built = modified(binary).expect("binary mtime");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
    let mut stack: Vec<PathBuf> = crates.iter().map(|c| root.join(c).join("src")).collect();
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && name != "tests" && name != "benches" {
                    stack.push(path);
                }
            } else if let Some(t) = modified(&path) {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, path));
                }
            }
        }
    }
    if let Some((source_time, source)) = newest {
        assert!(
            built >= source_time,
            "{} is older than {}: it would test stale code. Run `cargo test --workspace` (or `cargo build --workspace --bins` first).",
            binary.display(),
            source.display()
        );
    }
}

/// Whether the OpenSSH tools this test needs are present. Absent: a loud
/// skip, or a failure when `JIT_SSH_REQUIRE_E2E=1`.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    skip(&format!(
        "{test}: missing {missing:?} (Debian: apt-get install -y openssh-server openssh-client)"
    ));
    false
}

/// Whether the tests run as root, which the host recorder needs: it reads
/// other users' /proc entries and ends their processes. Not root: the same
/// loud skip (or failure) as a missing tool.
pub fn runs_as_root(test: &str) -> bool {
    let root = run(Command::new("id").arg("-u")).stdout == b"0\n";
    if !root {
        skip(&format!(
            "{test}: the host recorder runs as root; run the tests as root"
        ));
    }
    root
}

/// [`have_tools`] for a recorded session on a host: sshd, ssh and
/// ssh-keygen, run as root ([`runs_as_root`]).
pub fn have_recorder_tools(test: &str) -> bool {
    have_tools(test, &[SSHD, SSH, SSH_KEYGEN]) && runs_as_root(test)
}

/// A test that cannot run here says so loudly, and fails instead where CI
/// promised every tool (`JIT_SSH_REQUIRE_E2E=1`): a skip must never pass
/// for a success there.
fn skip(msg: &str) {
    if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("JIT_SSH_REQUIRE_E2E=1 but {msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED END-TO-END TEST {msg} !!!!!!!!\n");
}

/// [`have_tools`] for a login as a person makes it: sshd and ssh, the agent,
/// and Chromium driven by playwright-core (`npm ci` in tests/browser).
pub fn have_login_tools(test: &str) -> bool {
    let (_, playwright) = browser_script();
    let playwright = playwright.to_string_lossy().into_owned();
    have_tools(
        test,
        &[
            SSHD,
            SSH,
            SSH_KEYGEN,
            agent::SSH_AGENT,
            agent::SSH_ADD,
            CHROMIUM,
            NODE,
            &playwright,
        ],
    )
}

pub const SSHD: &str = "/usr/sbin/sshd";
pub const SSH: &str = "/usr/bin/ssh";
pub const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const NODE: &str = "/usr/bin/node";

/// The browser driver and its installed dependency (`npm ci` in tests/browser).
pub fn browser_script() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    (
        dir.join("webauthn-flow.mjs"),
        dir.join("node_modules").join("playwright-core"),
    )
}

/// Runs a command, returning its output (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// `python3` runs `cmd` (its program, arguments and the environment it
/// sets) and reports the child's peak RSS (KiB).
pub fn with_max_rss(cmd: &mut Command) -> (Output, u64) {
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(ToOwned::to_owned).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let out = run(Command::new("python3")
        .arg("-c")
        .arg("import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:])\nsys.stderr.write('\\nmaxrss_kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)")
        .arg(prog)
        .args(args)
        .envs(envs));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let kib = said
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("python3 printed the child's maxrss");
    (out, kib)
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Unix account the tests run as: sshd can only log a non-root test
/// runner into its own account, and root into any, so both use this one.
pub fn login_name() -> String {
    let out = run_ok(Command::new("id").arg("-un"));
    out.trim().to_owned()
}

/// Makes an unencrypted ed25519 key pair `dir/name` + `dir/name.pub`.
pub fn keygen(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    run_ok(
        Command::new(SSH_KEYGEN)
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&path),
    );
    path
}

/// A CA made by `jit-ssh-ca init`, with a data directory for its audit log.
pub struct Ca {
    pub dir: PathBuf,
    pub key: PathBuf,
    pub public_key: PathBuf,
    pub data: PathBuf,
}

impl Ca {
    pub fn init(root: &Path) -> Ca {
        let dir = root.join("ca");
        run_ok(
            Command::new(bin("jit-ssh-ca"))
                .args(["init", "--dir"])
                .arg(&dir),
        );
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        Ca {
            key: dir.join("ca_key"),
            public_key: dir.join("ca_key.pub"),
            dir,
            data,
        }
    }

    /// `jit-ssh-ca sign` for `pubkey` with extra arguments; returns the output.
    pub fn sign(
        &self,
        pubkey: &Path,
        user: &str,
        host: &str,
        account: &str,
        ttl: &str,
        extra: &[&str],
    ) -> Output {
        run(Command::new(bin("jit-ssh-ca"))
            .arg("sign")
            .arg("--data")
            .arg(&self.data)
            .arg("--ca-key")
            .arg(&self.key)
            .args([
                "--user", user, "--host", host, "--as", account, "--ttl", ttl, "--reason",
                "e2e test",
            ])
            .args(extra)
            .arg(pubkey))
    }

    /// Signs and returns the certificate's path and serial.
    pub fn sign_ok(
        &self,
        key: &Path,
        user: &str,
        host: &str,
        account: &str,
        ttl: &str,
        extra: &[&str],
    ) -> (PathBuf, u64) {
        let pubkey = key.with_extension("pub");
        let out = self.sign(&pubkey, user, host, account, ttl, extra);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sign failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let serial = stdout
            .lines()
            .find_map(|l| l.strip_prefix("serial:"))
            .and_then(|s| s.trim().parse().ok())
            .expect("serial in sign output");
        (PathBuf::from(format!("{}-cert.pub", key.display())), serial)
    }

    /// `jit-ssh-ca krl build --ca CA.pub SPEC -o OUT` from spec text.
    pub fn build_krl(&self, spec: &str, out: &Path) {
        let spec_path = out.with_extension("spec");
        std::fs::write(&spec_path, spec).unwrap();
        run_ok(
            Command::new(bin("jit-ssh-ca"))
                .args(["krl", "build", "--ca"])
                .arg(&self.public_key)
                .arg(&spec_path)
                .arg("-o")
                .arg(out),
        );
    }
}

/// `ssh` with no config file and no known_hosts, in batch mode, to
/// 127.0.0.1:`port`.
pub fn ssh_command(port: u16) -> Command {
    let mut c = Command::new(SSH);
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
    ])
    .args([
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
    ])
    .args(["-p", &port.to_string()]);
    c
}

/// `ssh` offering only the given key and certificate (no agent).
pub fn ssh_with_cert(port: u16, user: &str, key: &Path, cert: &Path, command: &[&str]) -> Output {
    run(ssh_command(port)
        .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.display()))
        .arg("-i")
        .arg(key)
        .arg(format!("{user}@127.0.0.1"))
        .args(command))
}

/// A plain HTTP/1.0 GET to a loopback URL; returns the body.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let addr = authority.replace("localhost", "127.0.0.1");
    let mut s =
        std::net::TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}
