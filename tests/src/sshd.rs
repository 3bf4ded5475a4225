//! A private, real OpenSSH `sshd` on 127.0.0.1.
//!
//! sshd cannot listen on port 0 ("Badly formatted port number"), so the
//! test binds 127.0.0.1:0 itself and hands each accepted connection to
//! `sshd -i` (inetd mode, as socket activation runs it). sshd still does
//! all of its own authentication, reading the CA keys, principals and KRL
//! files on every login. Every process is stopped on drop.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{run_ok, SSHD, SSH_KEYGEN};

pub struct Sshd {
    port: u16,
    log: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    children: Arc<Mutex<Vec<Child>>>,
}

impl Sshd {
    /// Starts sshd trusting `ca_keys`, reading `revoked_keys` (a KRL) and
    /// principals from `principals_dir/%u`.
    pub fn start(dir: &Path, ca_keys: &Path, revoked_keys: &Path, principals_dir: &Path) -> Sshd {
        Self::start_with(dir, ca_keys, revoked_keys, principals_dir, "")
    }

    /// [`Sshd::start`] with `extra` sshd_config lines (e.g.
    /// `ExposeAuthInfo yes` for the session wrapper).
    pub fn start_with(
        dir: &Path,
        ca_keys: &Path,
        revoked_keys: &Path,
        principals_dir: &Path,
        extra: &str,
    ) -> Sshd {
        // Privilege separation needs this directory; nothing creates it
        // on a machine without systemd.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("ssh_host_ed25519_key");
        run_ok(
            Command::new(SSH_KEYGEN)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&host_key),
        );
        let config = dir.join("sshd_config");
        let log = dir.join("sshd.log");
        std::fs::write(
            &config,
            format!(
                "HostKey {}\nPidFile none\nTrustedUserCAKeys {}\nRevokedKeys {}\n\
                 AuthorizedPrincipalsFile {}/%u\nAuthorizedKeysFile none\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nLogLevel VERBOSE\nPermitRootLogin prohibit-password\n{}",
                host_key.display(),
                ca_keys.display(),
                revoked_keys.display(),
                principals_dir.display(),
                extra
            ),
        )
        .unwrap();
        Self::serve(&config, &log)
    }

    /// Serves connections on 127.0.0.1:0 with an sshd_config someone else
    /// wrote (its `Port` and `ListenAddress` are unused in inetd mode),
    /// logging to `log`.
    pub fn serve(config: &Path, log: &Path) -> Sshd {
        let _ = std::fs::create_dir_all("/run/sshd");
        run_ok(Command::new(SSHD).arg("-t").arg("-f").arg(config));
        let (config, log) = (config.to_owned(), log.to_owned());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let children: Arc<Mutex<Vec<Child>>> = Arc::default();
        let acceptor = {
            let (stop, children, config, log) =
                (stop.clone(), children.clone(), config.clone(), log.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            let out: OwnedFd = stream.try_clone().unwrap().into();
                            let child = Command::new(SSHD)
                                .arg("-i")
                                .arg("-f")
                                .arg(&config)
                                .arg("-E")
                                .arg(&log)
                                .stdin(Stdio::from(OwnedFd::from(stream)))
                                .stdout(Stdio::from(out))
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap();
                            children.lock().unwrap().push(child);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                    children
                        .lock()
                        .unwrap()
                        .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
                }
            })
        };
        Sshd {
            port,
            log,
            stop,
            acceptor: Some(acceptor),
            children,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything sshd has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        if let Ok(mut children) = self.children.lock() {
            for c in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // The logins just ended may have been the last in a cgroup a
        // stopped recorder could not remove yet.
        crate::recorder::remove_left_login_cgroups(Duration::from_secs(2));
    }
}

/// The public host key [`Sshd::start_with`] made in `dir`: what the host
/// recorder signs with, so what an auditor checks a recording against.
pub fn host_key(dir: &Path) -> ssh_key::PublicKey {
    ssh_key::PublicKey::read_openssh_file(&dir.join("ssh_host_ed25519_key.pub"))
        .expect("reading the host key sshd made")
}
