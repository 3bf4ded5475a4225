//! Issuance with two `jit-ssh-ca serve` replicas on one PostgreSQL against
//! one replica on the embedded store (sled + the chain file), the same
//! load in the same run: concurrent engineers over real HTTP, each login
//! five round trips (create, MFA start, soft passkey signs, MFA finish,
//! read the certificate). Prints a table.
//!
//! `cargo bench -p jit-ssh-ca --bench replicas` (JIT_SSH_BENCH_ISSUANCES,
//! default 2000; JIT_SSH_BENCH_CLIENTS, default 32)
//!
//! Clients, servers and PostgreSQL share the machine's cores, so the
//! figures are conservative. A second table gives the CPU time each part
//! spent per certificate (from /proc), which moves much less than the
//! rate when something else runs on the machine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/cpu.rs"]
mod cpu;
#[path = "../tests/pg/mod.rs"]
mod pg;
#[path = "../tests/replicas/mod.rs"]
mod replicas;

use std::time::{Duration, Instant};

use replicas::{init_ca, ssh_public_key, write_config, write_config_with, Client, Replica};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    issued: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// CPU spent per part (CA replicas, PostgreSQL, clients) in the run.
    cpu: Vec<(&'static str, Duration)>,
    /// Transactions the database committed or rolled back in the run
    /// (each statement outside BEGIN/COMMIT is one): round trips that
    /// change nothing with the load on the machine.
    transactions: Option<u64>,
}

/// Transactions ended in the bench's database so far, once the servers'
/// statistics have reached the collector.
fn transactions(c: &mut postgres::Client) -> u64 {
    // Backends report at most once a second while busy.
    std::thread::sleep(Duration::from_millis(1500));
    c.query_one(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database \
         WHERE datname = current_database()",
        &[],
    )
    .map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0))
}

/// `clients` engineers (each its own user) share `total` logins, spread
/// over the replicas of `client`.
fn load(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    config: &std::path::Path,
    clients: usize,
    total: usize,
    parts: &[(&'static str, cpu::Group)],
    mut db: Option<&mut postgres::Client>,
) -> Run {
    let mut keys = Vec::new();
    for i in 0..clients {
        keys.push(rt.block_on(client.enroll(config, &format!("u{i}"))));
    }
    let per = total / clients;
    let xacts_before = db.as_deref_mut().map(transactions);
    let before: Vec<_> = parts.iter().map(|(_, g)| g.sample()).collect();
    let started = Instant::now();
    let tasks: Vec<_> = keys
        .into_iter()
        .enumerate()
        .map(|(i, mut key)| {
            let client = client.clone();
            rt.spawn(async move {
                let public_key = ssh_public_key();
                let mut latencies = Vec::with_capacity(per);
                for _ in 0..per {
                    let mut at = i;
                    let t0 = Instant::now();
                    client
                        .issue(&mut at, &format!("u{i}"), &mut key, &public_key)
                        .await
                        .unwrap_or_else(|e| panic!("u{i}: {e:?}"));
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = tasks
        .into_iter()
        .flat_map(|t| rt.block_on(t).unwrap())
        .collect();
    let elapsed = started.elapsed();
    let cpu = parts
        .iter()
        .zip(&before)
        .map(|((name, g), b)| (*name, cpu::spent(b, &g.sample())))
        .collect();
    // The bench's own two queries are not counted.
    let transactions = xacts_before
        .zip(db.map(transactions))
        .map(|(b, a)| a.saturating_sub(b + 1));
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Run {
        issued: latencies.len(),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
        cpu,
        transactions,
    }
}

fn main() {
    let total = env_or("JIT_SSH_BENCH_ISSUANCES", 2000);
    let clients = env_or("JIT_SSH_BENCH_CLIENTS", 32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // One replica, embedded store.
    let embedded = {
        let tmp = tempfile::tempdir().unwrap();
        init_ca(tmp.path());
        let config = write_config_with(tmp.path(), "solo", "", clients);
        let solo = Replica::start(&config);
        let client = Client::new(vec![solo.base.clone()]);
        let parts = [
            ("CA replicas", cpu::Group::pids(vec![solo.pid()])),
            ("clients", cpu::Group::pids(vec![std::process::id()])),
        ];
        load(&rt, &client, &config, clients, total, &parts, None)
    };

    // Two replicas, one PostgreSQL.
    if !pg::available("bench replicas") {
        return;
    }
    // Durable, as a deployment runs it (the tests' shared cluster has
    // fsync off): every commit waits for its WAL on disk.
    let cluster = pg::Cluster::start_with(5434, |_| {
        format!(
            "fsync = on\nsynchronous_commit = on\n{}",
            std::env::var("JIT_SSH_BENCH_PG_CONF").unwrap_or_default()
        )
    });
    let cluster = &cluster;
    let db = cluster.database();
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path());
    let config_a = write_config(tmp.path(), "a", &db.url, clients);
    let a = Replica::start(&config_a);
    let b = Replica::start(&write_config(tmp.path(), "b", &db.url, clients));
    let client = Client::new(vec![a.base.clone(), b.base.clone()]);
    let postmaster = cpu::postmaster(&cluster.dir().join("data")).unwrap_or(0);
    let parts = [
        ("CA replicas", cpu::Group::pids(vec![a.pid(), b.pid()])),
        ("PostgreSQL", cpu::Group::with_children(postmaster)),
        ("clients", cpu::Group::pids(vec![std::process::id()])),
    ];
    let mut stats = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let replicated = load(
        &rt,
        &client,
        &config_a,
        clients,
        total,
        &parts,
        Some(&mut stats),
    );

    println!("| issuance over HTTP, {clients} concurrent engineers, 2 cores | certificates | certs/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for (name, r) in [
        ("1 replica, embedded (sled + chain file)", &embedded),
        ("2 replicas, PostgreSQL 15", &replicated),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.1} ms | {:.1} ms |",
            r.issued,
            r.issued as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3
        );
    }
    println!();
    println!("| CPU per certificate | CA replicas | PostgreSQL | clients | database transactions per certificate |");
    println!("|---|---|---|---|---|");
    for (name, r) in [
        ("1 replica, embedded", &embedded),
        ("2 replicas, PostgreSQL 15", &replicated),
    ] {
        let per = |part: &str| {
            r.cpu
                .iter()
                .find(|(n, _)| *n == part)
                .map_or("-".to_owned(), |(_, t)| {
                    format!("{:.0} µs", t.as_secs_f64() * 1e6 / r.issued as f64)
                })
        };
        let xacts = r.transactions.map_or("-".to_owned(), |n| {
            format!("{:.1}", n as f64 / r.issued as f64)
        });
        println!(
            "| {name} | {} | {} | {} | {xacts} |",
            per("CA replicas"),
            per("PostgreSQL"),
            per("clients")
        );
    }
    drop((a, b));
}
