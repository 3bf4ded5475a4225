//! The dev CA (`serve --dev`) set up to record sessions: its first rule
//! records output, and the certificates it signs run the session wrapper
//! of a host directory, telling that host's recorder of each session.
//! And what a host's recorder does with such a CA: upload until its spool
//! is empty.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ca_host::{CaHost, SyncProgram};
use crate::recorder::Recorder;
use crate::{bin, login_name, DevCa};

/// Where the lines a test adds begin in the CA's config: everything after
/// it is rewritten on each start, so a restart can change them.
const TEST_EXTRA: &str = "\n# test-extra\n";

/// A dev CA and one host of it, under one temp dir: where the CA keeps
/// its folder and where the host's directory and recorder socket will be,
/// which the CA's session wrapper line names before the host exists.
pub struct RecordingSite {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    /// The login account, on the host and as the CA's dev user.
    pub account: String,
    /// The dev CA's folder (`--dev-dir`): its key, data and `ca.toml`.
    pub dev: PathBuf,
    /// The host directory ([`CaHost::dir_in`] of `root`).
    pub host_dir: PathBuf,
    /// The socket of the host's recorder ([`Self::recorder`]).
    pub socket: PathBuf,
}

impl RecordingSite {
    /// A fresh temp dir for both, removed when the site is dropped.
    pub fn in_temp_dir() -> RecordingSite {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        RecordingSite {
            account: login_name(),
            dev: root.join("dev"),
            host_dir: CaHost::dir_in(&root),
            socket: root.join("run-jit-ssh").join("recorder.sock"),
            root,
            _tmp: tmp,
        }
    }

    /// The host, synced from `ca` by its own binary, letting the account in
    /// as `ACCOUNT@name`, and enrolled as `name` with sshd's host key.
    pub fn enrolled_host(&self, ca: &DevCa, name: &str) -> CaHost {
        let host = CaHost::start(&self.root, ca, &self.account, name, SyncProgram::Host);
        host.enroll(&self.dev, name);
        host
    }

    /// The host's recorder at [`Self::socket`], uploading to `ca_url` when
    /// given, with `extra` arguments.
    pub fn recorder(&self, ca_url: Option<&str>, extra: &[&str]) -> Recorder {
        Recorder::start_at_with(&self.root, &self.host_dir, ca_url, extra)
    }

    /// The dev CA's config file (people are invited from it).
    pub fn config(&self) -> PathBuf {
        self.dev.join("ca.toml")
    }

    /// Starts the dev CA with its first rule recording output through the
    /// host's wrapper, plus `extra` config lines. The first start lets
    /// `serve --dev` write its config; later ones keep it and replace only
    /// the lines this adds.
    pub fn start_ca(&self, extra: &str) -> DevCa {
        let config = self.config();
        if !config.exists() {
            DevCa::start(&self.dev, &self.account).stop();
        }
        let text = std::fs::read_to_string(&config).unwrap();
        let base = text.split(TEST_EXTRA).next().unwrap().replacen(
            "session = { end_at_expiry = false, record = \"off\" }",
            "session = { record = \"output\" }",
            1,
        );
        let wrapper = format!(
            "\n[sessions]\nwrapper = \"{} session --dir {} --recorder-socket {}\"\n",
            bin("jit-ssh-host").display(),
            self.host_dir.display(),
            self.socket.display()
        );
        // A test machine's disk may be fuller than the default 5 % floor
        // allows; only tests of the floor set one.
        let floor = if extra.contains("[recordings]") {
            ""
        } else {
            "\n[recordings]\nmin_free = \"16MiB\"\nmin_free_percent = 0\n"
        };
        std::fs::write(
            &config,
            format!("{base}{TEST_EXTRA}{wrapper}{floor}{extra}"),
        )
        .unwrap();
        DevCa::start(&self.dev, &self.account)
    }
}

/// Waits until `rec` has uploaded every spooled session to `ca` (every
/// chunk acknowledged: the session leaves the spool).
pub fn wait_uploaded(rec: &Recorder, ca: &DevCa, within: Duration) {
    let until = Instant::now() + within;
    while !rec.sessions().is_empty() {
        assert!(
            Instant::now() < until,
            "the spool did not drain: the recording was not uploaded; recorder log:\n{}\nCA log:\n{}",
            rec.log_text(),
            std::fs::read_to_string(&ca.stderr_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
