//! A real PostgreSQL (15, Debian's) for tests: one cluster per test binary, started
//! on first use with a unix socket only (`listen_addresses=''`) in a temp
//! dir, and a fresh database per test. The cluster stops when the test
//! binary exits, however it exits: a watchdog child waits for this
//! process to end, then stops the cluster by its data directory (never by
//! process name) and removes the dir.
//!
//! Without the binaries the tests skip loudly; with JIT_SSH_REQUIRE_E2E=1
//! (CI) they fail instead.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jit_ssh_ca::config::storage::{PostgresConfig, SslMode};
use jit_ssh_ca::store::{PgStore, Store};

/// Debian's PostgreSQL binaries: 15 on bookworm (what CI installs); the
/// newest installed major version if another is there instead.
pub fn bin() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let preferred = root.join("15/bin");
    if preferred.join("initdb").exists() {
        return preferred;
    }
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max()
        .map_or(preferred, |(_, bin)| bin)
}

pub struct Cluster {
    dir: PathBuf,
    /// Names the unix socket (`.s.PGSQL.PORT`), and the TCP port if any.
    port: u16,
    /// The watchdog: stops the cluster once this process is gone.
    _watchdog: std::process::Child,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The binary's cluster, started on first call; `None` (after a loud
/// message) when PostgreSQL is not installed and not required.
pub fn cluster(test: &str) -> Option<&'static Cluster> {
    let c = CLUSTER
        .get_or_init(|| available(test).then(|| Cluster::start_with(5432, |_| String::new())));
    c.as_ref()
}

/// Whether the PostgreSQL binaries are here; says so loudly when not
/// (and fails the test when JIT_SSH_REQUIRE_E2E=1).
pub fn available(test: &str) -> bool {
    let bin = bin();
    if bin.join("initdb").exists() {
        return true;
    }
    let msg = format!(
        "{test}: missing {}/initdb (Debian: apt-get install -y postgresql)",
        bin.display()
    );
    if std::env::var("JIT_SSH_REQUIRE_E2E").as_deref() == Ok("1") {
        panic!("JIT_SSH_REQUIRE_E2E=1 but {msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED POSTGRESQL TEST {msg} !!!!!!!!\n");
    false
}

/// A fresh, migrated database on the binary's cluster.
pub fn database(test: &str) -> Option<PostgresConfig> {
    let cluster = cluster(test)?;
    Some(cluster.database())
}

/// A fresh migrated database opened as a store.
pub fn store(test: &str) -> Option<Arc<dyn Store>> {
    let cfg = database(test)?;
    Some(Arc::new(PgStore::open(&cfg).unwrap()))
}

/// Runs a PostgreSQL program as the `postgres` user when we are root
/// (initdb refuses root), as ourselves otherwise.
fn pg_command(program: &str) -> Command {
    let path = bin().join(program);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(mut c: Command, what: &str) {
    let out = c.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = c.status();
    }
}

impl Cluster {
    /// Starts a cluster; `extra(dir)` may write files into the cluster's
    /// dir and returns more postgresql.conf lines. A cluster a test owns
    /// (not the binary's shared one) stops when dropped.
    pub fn start_with(port: u16, extra: impl FnOnce(&Path) -> String) -> Cluster {
        let started = std::time::Instant::now();
        // Kept (not a TempDir): the watchdog removes it after the stop.
        let dir = tempfile::Builder::new()
            .prefix("jit-pg-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown",
            );
        }
        let data = dir.join("data");
        let mut initdb = pg_command("initdb");
        initdb
            .args(["-A", "trust", "-U", "jit", "--no-sync", "-D"])
            .arg(&data);
        run(initdb, "initdb");
        // In the config file, so a restart (tests/store_pg_restart.rs)
        // keeps them: no TCP at all, the socket in `dir`.
        let conf = format!(
            "\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
             port = {port}\nfsync = off\nmax_connections = 200\n{}\n",
            dir.display(),
            extra(&dir)
        );
        if is_root() {
            let mut c = Command::new("chown");
            c.arg("-R").arg("postgres:postgres").arg(&dir);
            run(c, "chown");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
            .unwrap();
        // Stops the cluster once this process is gone, however it ends
        // (the binary's shared cluster is a static, never dropped):
        // spawned before the server starts.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; \
                 {stop} -D '{data}' stop -m fast >/dev/null 2>&1; rm -rf '{dir}'",
                pid = std::process::id(),
                stop = if is_root() {
                    format!("runuser -u postgres -- {}/pg_ctl", bin().display())
                } else {
                    format!("{}/pg_ctl", bin().display())
                },
                data = data.display(),
                dir = dir.display(),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut start = pg_command("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "start"]);
        run(start, "pg_ctl start");
        eprintln!(
            "postgresql: cluster in {} up in {} ms",
            dir.display(),
            started.elapsed().as_millis()
        );
        Cluster {
            dir,
            port,
            _watchdog: watchdog,
        }
    }

    /// Stops the server (`-m mode`: fast, immediate), keeping its data.
    pub fn stop(&self, mode: &str) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", mode, "-w", "stop"]);
        run(c, "pg_ctl stop");
    }

    /// Starts it again after [`Cluster::stop`].
    pub fn restart(&self) {
        let mut c = pg_command("pg_ctl");
        c.arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-w", "start"]);
        run(c, "pg_ctl start");
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates `t<N>` and migrates it.
    pub fn database(&self) -> PostgresConfig {
        let name = format!("t{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        let mut admin = postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("jit")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let cfg = self.config(&name);
        PgStore::migrate(&cfg).unwrap();
        cfg
    }

    /// A `[storage]` for database `name` (not created).
    pub fn config(&self, name: &str) -> PostgresConfig {
        PostgresConfig {
            url: format!(
                "host={} port={} user=jit dbname={name}",
                self.dir.display(),
                self.port
            ),
            password_file: None,
            sslmode: SslMode::Disable,
            ca_file: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Runs SQL on database `name` (to tamper with it in tests).
    pub fn sql(&self, name: &str, sql: &str) {
        let mut c = postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("jit")
            .dbname(name)
            .connect(postgres::NoTls)
            .unwrap();
        c.batch_execute(sql).unwrap();
    }
}

/// The database name in a config made by [`Cluster::config`].
pub fn db_name(cfg: &PostgresConfig) -> String {
    cfg.url.rsplit("dbname=").next().unwrap().to_owned()
}

impl Cluster {
    pub fn port(&self) -> u16 {
        self.port
    }
}
