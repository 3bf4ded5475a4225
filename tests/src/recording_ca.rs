//! The dev CA (`serve --dev`) set up to record sessions: its first rule
//! records output, and the certificates it signs run the session wrapper
//! of a host directory, telling that host's recorder of each session.
//! And what a host's recorder does with such a CA: upload until its spool
//! is empty.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::recorder::Recorder;
use crate::{bin, DevCa};

/// Where the lines a test adds begin in the CA's config: everything after
/// it is rewritten on each start, so a restart can change them.
const TEST_EXTRA: &str = "\n# test-extra\n";

/// Starts the dev CA in `dev` for `account` recording output through the
/// wrapper in `host_dir` (its recorder at `socket`), with `extra` config
/// lines. The first start lets `serve --dev` write its config; later ones
/// keep it and replace only the lines this adds.
pub fn start_recording_dev_ca(
    dev: &Path,
    account: &str,
    host_dir: &Path,
    socket: &Path,
    extra: &str,
) -> DevCa {
    let config = dev.join("ca.toml");
    if !config.exists() {
        DevCa::start(dev, account).stop();
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
        host_dir.display(),
        socket.display()
    );
    std::fs::write(&config, format!("{base}{TEST_EXTRA}{wrapper}{extra}")).unwrap();
    DevCa::start(dev, account)
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
