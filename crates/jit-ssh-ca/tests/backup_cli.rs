//! `jit-ssh-ca backup` and `restore` as an operator runs them, and the data
//! directory's format version: a running server is backed up without a
//! stop, the backup restores into a new directory that `serve` opens, a
//! directory of a newer format is refused with both versions named, and
//! today's (unversioned) directories are stamped.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn ca() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jit-ssh-ca"))
}

/// Stops the server by pid with SIGTERM (then SIGKILL) even on failure.
struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `serve --config FILE` and waits for its "listening" line.
fn serve(config: &Path) -> Server {
    let mut child = ca()
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("serve printed no listening line");
        if line.starts_with("jit-ssh-ca listening on") {
            return server;
        }
    }
}

/// A CA key in `dir/ca` and a config using `data`.
fn write_config(dir: &Path, data: &Path) -> PathBuf {
    if !dir.join("ca").exists() {
        jit_ssh_ca::ca_key::init(&dir.join("ca"), None).unwrap();
    }
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_url = "http://localhost:0"
data_dir = "{data}"
ca_key = {{ kind = "file", path = "{dir}/ca/ca_key" }}

[[users]]
name = "alice"
groups = ["sre"]
"#,
        dir = dir.display(),
        data = data.display()
    );
    let path = dir.join(format!(
        "ca-{}.toml",
        data.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_data_directory_of_a_newer_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .unwrap();
    std::fs::write(data.join("format"), "2\n").unwrap();
    let config = write_config(dir.path(), &data);
    let (ok, _, err) = run(ca().args(["serve", "--config"]).arg(&config));
    assert!(!ok);
    assert!(err.contains("format version 2"), "{err}");
    assert!(err.contains("format 1 at most"), "{err}");
    assert!(err.contains("upgrade jit-ssh-ca"), "{err}");
    // Nothing was opened or created beside it.
    assert!(!data.join("state").exists() && !data.join("audit").exists());
    assert_eq!(std::fs::read_to_string(data.join("format")).unwrap(), "2\n");
}

#[test]
fn backup_of_a_running_ca_restores_into_a_directory_serve_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data);
    let server = serve(&config);
    // Today's directories have no format file: the first open stamps it.
    assert_eq!(std::fs::read_to_string(data.join("format")).unwrap(), "1\n");
    let (ok, out, err) = run(ca().args(["invite", "alice", "--config"]).arg(&config));
    assert!(ok, "{err}");
    assert!(out.contains("/enroll/"), "{out}");

    let backup = dir.path().join("backup");
    let (ok, out, err) = run(ca()
        .args(["backup", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&backup));
    assert!(ok, "{err}");
    assert!(out.contains("private keys:  not included"), "{out}");
    // A second backup into the same directory is refused.
    let (ok, _, err) = run(ca()
        .args(["backup", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&backup));
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");
    drop(server);

    let restored = dir.path().join("restored");
    let (ok, out, err) = run(ca()
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--data")
        .arg(&restored)
        .arg("--ca-public-key")
        .arg(dir.path().join("ca/ca_key.pub")));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{}/ca/ca_key", dir.path().display())),
        "restore says where the key goes: {out}"
    );
    // Into the same directory again: refused, nothing overwritten.
    let (ok, _, err) = run(ca()
        .args(["restore", "--from"])
        .arg(&backup)
        .arg("--data")
        .arg(&restored));
    assert!(!ok);
    assert!(err.contains("is not empty"), "{err}");

    let config = write_config(dir.path(), &restored);
    let _restored = serve(&config);
    let (ok, out, err) = run(ca().args(["ready", "--config"]).arg(&config));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(ca().args(["invite", "alice", "--config"]).arg(&config));
    assert!(ok && out.contains("/enroll/"), "{out}{err}");
}

#[test]
fn private_keys_are_in_a_backup_only_with_include_key_and_a_rotation_moves_with_the_data() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data);
    let server = serve(&config);
    let (ok, _, err) = run(ca().args(["rotate", "stage", "--config"]).arg(&config));
    assert!(ok, "{err}");
    let staged = std::fs::read_dir(data.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| !n.ends_with(".pub"))
        .unwrap();

    let plain = dir.path().join("plain");
    let (ok, _, err) = run(ca()
        .args(["backup", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&plain));
    assert!(ok, "{err}");
    let with_key = dir.path().join("with-key");
    let (ok, out, err) = run(ca()
        .args(["backup", "--include-key", "--config"])
        .arg(&config)
        .arg("--to")
        .arg(&with_key));
    assert!(ok, "{err}");
    assert!(out.contains("private keys:  2 included"), "{out}");
    drop(server);

    // Without --include-key: no private key byte in the backup.
    let secret = std::fs::read(dir.path().join("ca/ca_key")).unwrap();
    let staged_secret = std::fs::read(data.join("keys").join(&staged)).unwrap();
    let mut stack = vec![plain.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                assert!(bytes != secret && bytes != staged_secret, "{}", p.display());
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("PRIVATE KEY"),
                    "{}",
                    p.display()
                );
            }
        }
    }
    assert_eq!(
        std::fs::read(with_key.join("ca-keys/user")).unwrap(),
        secret
    );
    let copy = with_key.join("keys").join(&staged);
    assert_eq!(std::fs::read(&copy).unwrap(), staged_secret);
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Restored without the keys: it says where both go.
    let bare = dir.path().join("bare");
    let (ok, out, err) = run(ca()
        .args(["restore", "--from"])
        .arg(&plain)
        .arg("--data")
        .arg(&bare));
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{}/keys/{staged}", bare.display())),
        "{out}"
    );

    // Restored with them: the rotation names the new directory's files,
    // and the restored CA serves with the rotation where it stood.
    let restored = dir.path().join("restored");
    let (ok, out, err) = run(ca()
        .args(["restore", "--from"])
        .arg(&with_key)
        .arg("--data")
        .arg(&restored));
    assert!(ok, "{err}");
    assert!(out.contains("ca-keys/user"), "{out}");
    let rotation = std::fs::read_to_string(restored.join("rotation.json")).unwrap();
    assert!(
        rotation.contains(&format!("{}/keys/{staged}", restored.display())),
        "{rotation}"
    );
    assert!(
        !rotation.contains(&format!("{}/", data.display())),
        "{rotation}"
    );
    let config = write_config(dir.path(), &restored);
    let _server = serve(&config);
    let (ok, out, err) = run(ca().args(["rotate", "status", "--config"]).arg(&config));
    assert!(ok, "{err}");
    assert!(
        out.contains("staged:   ") && out.contains(&restored.display().to_string()),
        "{out}"
    );
}
