//! `cargo xtask bench …`. Benchmarks re-run themselves in release mode, so that
//! `cargo xtask bench auth` measures optimised code whatever profile xtask was built with.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use lettermint_core::{
    Channel, NewProject, PlainToken, Scope, Services, SystemClock, TokenId, TokenKind,
};
use lettermint_store::{AnyStore, OpenOptions};
use lettermint_testkit::pg::{Durability, TempPostgres};
use tokio::runtime::Runtime;

#[derive(Debug, Clone, Subcommand)]
pub enum Bench {
    /// Token authentication: parse+checksum+digest per token, and authentications per second
    /// through the core `authenticate` on SQLite and on a throwaway PostgreSQL, each beside a
    /// bare primary-key SELECT through the same pool.
    Auth {
        /// Seconds per measurement (each store is measured twice, alternating with its floor).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent tasks.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Only these stores (sqlite, postgres); default both.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
    },
    /// The release smtp-relay on SQLite and on a throwaway PostgreSQL: 16 connections with
    /// STARTTLS and AUTH once, 5 KB messages back to back; a connection per message; and the
    /// relay's memory with 1,000 idle connections.
    Smtp {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Only these stores (sqlite, postgres); default both.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
    },
    /// Delivery: messages per second from the store to an in-process SMTP sink with 1, 2 and 4
    /// workers on SQLite and a throwaway PostgreSQL, beside the sink fed directly; then
    /// `POST /v1/send` acceptance alone, with two workers delivering as fast as they can, and
    /// with two workers paced to `--worker-rate` (needs wrk).
    Delivery {
        /// Messages per run (drains shorter than about a second measure what a drain pays once
        /// as much as its rate)
        #[arg(long, default_value_t = 20000)]
        messages: usize,
        /// Seconds per acceptance run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Keep-alive connections of the acceptance runs.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// `max_rate` of each worker in the paced acceptance runs (messages per second).
        #[arg(long, default_value_t = 500)]
        worker_rate: u32,
        /// Rounds of acceptance runs (alone, unpaced, paced); the summary is their median.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Only these stores (sqlite, postgres); default both.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
        /// Each worker's `batch` (attempts in flight, messages claimed at once); also the
        /// floor's concurrency. The default is `mail-worker`'s.
        #[arg(long, default_value_t = lettermint_delivery::WorkerConfig::default().batch)]
        batch: u32,
        /// Only the floor and the drains: no acceptance runs (and no wrk needed).
        #[arg(long)]
        no_acceptance: bool,
        /// Where the floor and the drains run, in turn: `shared` (every process on every
        /// core), `apart` (PostgreSQL on a core of its own, as on its own host; the floor,
        /// workers and sink on the others; PostgreSQL drains only). The acceptance runs always
        /// use every core.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
            crate::bench_delivery::Layout::Shared,
            crate::bench_delivery::Layout::Apart,
        ])]
        layout: Vec<crate::bench_delivery::Layout>,
    },
    /// Dashboard logins (argon2id) through the release api-server: logins per second and
    /// latency with 32 concurrent clients, beside the in-process argon2id floor; and
    /// `POST /v1/send` p99 at a fixed rate, idle and while those logins run.
    Login {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Concurrent login clients.
        #[arg(long, default_value_t = 32)]
        logins: usize,
        /// `POST /v1/send` requests per second of the latency probe.
        #[arg(long, default_value_t = 200)]
        rate: u32,
    },
    /// `POST /v1/send` through the real api-server (release build) on SQLite and on a
    /// throwaway PostgreSQL, driven by wrk, beside a bare axum handler parsing the same JSON.
    Api {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: u32,
        /// Only these stores (sqlite, postgres); default both.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<String>,
    },
}

/// Runs `bench` as a task of the runtime's workers rather than on the thread that waits for
/// it, so that what it awaits wakes a worker, not a thread of its own.
async fn on_runtime(bench: impl Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    tokio::spawn(bench).await?
}

pub fn run(runtime: &Runtime, bench: Bench) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var_os("LETTERMINT_BENCH_ANY_PROFILE").is_none() {
        return rerun_in_release();
    }
    match bench {
        Bench::Auth {
            seconds,
            concurrency,
            stores,
        } => runtime.block_on(auth(Duration::from_secs(seconds), concurrency, stores)),
        Bench::Delivery {
            messages,
            seconds,
            connections,
            worker_rate,
            rounds,
            stores,
            batch,
            no_acceptance,
            layout,
        } => runtime.block_on(on_runtime(crate::bench_delivery::run(
            crate::bench_delivery::Options {
                messages,
                window: Duration::from_secs(seconds),
                connections,
                worker_rate: worker_rate.max(1),
                rounds: rounds.max(1),
                stores,
                batch: batch.max(1),
                acceptance: !no_acceptance,
                layouts: layout,
            },
        ))),
        Bench::Smtp { seconds, stores } => {
            runtime.block_on(crate::bench_smtp::run(Duration::from_secs(seconds), stores))
        }
        Bench::Login {
            seconds,
            logins,
            rate,
        } => runtime.block_on(crate::bench_login::run(
            Duration::from_secs(seconds),
            logins,
            rate,
        )),
        Bench::Api {
            seconds,
            connections,
            stores,
        } => runtime.block_on(crate::bench_api::run(
            Duration::from_secs(seconds),
            connections,
            stores,
        )),
    }
}

fn rerun_in_release() -> Result<()> {
    eprintln!("(building xtask in release mode for benchmarking)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(std::env::args_os().skip(1))
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("the release benchmark failed ({status})");
    }
    Ok(())
}

async fn auth(window: Duration, concurrency: usize, stores: Vec<String>) -> Result<()> {
    let wanted = |name: &str| stores.is_empty() || stores.iter().any(|s| s == name);
    println!(
        "machine: {} cores; {concurrency} concurrent tasks, {} s per measurement",
        cores(),
        window.as_secs()
    );
    println!();

    // 1. CPU cost of checking a presented token before any lookup.
    let tokens: Vec<String> = (0..1024)
        .map(|_| PlainToken::mint(TokenKind::Project).map(|t| t.expose_secret().to_owned()))
        .collect::<Result<_, _>>()?;
    let iterations = 2_000_000u32;
    let start = Instant::now();
    let mut sink = 0u8;
    for i in 0..iterations {
        let token = PlainToken::parse(std::hint::black_box(&tokens[i as usize % tokens.len()]))?;
        sink ^= token.digest().as_bytes()[0];
    }
    let per_token = start.elapsed() / iterations;
    std::hint::black_box(sink);
    println!(
        "parse + checksum + SHA-256 digest: {:>8.0} ns per token  (target < 1000 ns)",
        per_token.as_nanos()
    );

    // 2. What argon2id would cost per check instead (default parameters).
    let argon = argon2_verify_cost()?;
    println!(
        "argon2id verify (m=19 MiB, t=2, p=1): {:>6.1} ms per check  = {:.0} checks/s per core ({:.0}x the SHA-256 path)",
        argon.as_secs_f64() * 1e3,
        1.0 / argon.as_secs_f64(),
        argon.as_secs_f64() / per_token.as_secs_f64()
    );
    println!();

    println!(
        "{:<10} {:>16} {:>16} {:>8}",
        "store", "floor (PK/s)", "authenticate/s", "ratio"
    );
    if wanted("sqlite") {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}/bench.sqlite", dir.path().display());
        let store = lettermint_store::open(
            &url,
            OpenOptions {
                max_connections: concurrency as u32,
            },
        )
        .await?;
        report(
            "sqlite",
            store_auth(store, window, concurrency).await?,
            None,
        );
    }
    if wanted("postgres") {
        let server =
            TempPostgres::start(Durability::Production).map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = server.create_database().await;
        let store = lettermint_store::open(
            &url,
            OpenOptions {
                max_connections: concurrency as u32,
            },
        )
        .await?;
        report(
            "postgres",
            store_auth(store, window, concurrency).await?,
            Some(0.7),
        );
    }
    Ok(())
}

fn report(name: &str, (floor, auth): (f64, f64), target: Option<f64>) {
    let ratio = auth / floor;
    let verdict = match target {
        Some(t) if ratio >= t => format!("  (target >= {t}: met)"),
        Some(t) => format!("  (target >= {t}: NOT met)"),
        None => String::new(),
    };
    println!("{name:<10} {floor:>16.0} {auth:>16.0} {ratio:>8.2}{verdict}");
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn argon2_verify_cost() -> Result<Duration> {
    use argon2::Argon2;
    use argon2::password_hash::phc::PasswordHash;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    let argon = Argon2::default();
    let hash = argon
        .hash_password(b"correct horse battery staple")
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string();
    let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let rounds = 10;
    let start = Instant::now();
    for _ in 0..rounds {
        argon
            .verify_password(b"correct horse battery staple", &parsed)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    }
    Ok(start.elapsed() / rounds)
}

/// Seeds 64 tokens, then alternates floor and authentication runs; returns the better run of
/// each (the machine is shared, so the best run is the least disturbed).
async fn store_auth(store: AnyStore, window: Duration, concurrency: usize) -> Result<(f64, f64)> {
    let services = Services::new(store.clone().into_dyn(), Arc::new(SystemClock));
    let team = services.teams.create(Scope::Operator, "Bench").await?;
    let (project, _) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Bench".into(),
                smtp_enabled: true,
                first_token_name: None,
            },
        )
        .await?;
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for i in 0..64 {
        let issued = services
            .project_tokens
            .create(Scope::Operator, project.id, &format!("token {i}"), (), None)
            .await?;
        secrets.push(issued.secret.expose_secret().to_owned());
        ids.push(issued.token.id);
    }
    let secrets = Arc::new(secrets);
    let ids = Arc::new(ids);
    let mut best_floor: f64 = 0.0;
    let mut best_auth: f64 = 0.0;
    for _ in 0..2 {
        let floor = drive(window, concurrency, {
            let (store, ids) = (store.clone(), ids.clone());
            move |i| {
                let (store, ids) = (store.clone(), ids.clone());
                async move { primary_key_select(&store, ids[i % ids.len()]).await }
            }
        })
        .await?;
        let auth = drive(window, concurrency, {
            let (services, secrets) = (services.clone(), secrets.clone());
            move |i| {
                let (services, secrets) = (services.clone(), secrets.clone());
                async move {
                    services
                        .auth
                        .authenticate_project(Some(&secrets[i % secrets.len()]), Channel::Api, None)
                        .await
                        .map(drop)
                        .map_err(anyhow::Error::from)
                }
            }
        })
        .await?;
        best_floor = best_floor.max(floor);
        best_auth = best_auth.max(auth);
    }
    Ok((best_floor, best_auth))
}

async fn primary_key_select(store: &AnyStore, id: TokenId) -> Result<()> {
    let found: Option<uuid::Uuid> = match store {
        AnyStore::Postgres(pg) => {
            sqlx::query_scalar("SELECT id FROM project_tokens WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(pg.pool())
                .await?
        }
        AnyStore::Sqlite(lite) => {
            sqlx::query_scalar("SELECT id FROM project_tokens WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(lite.pool())
                .await?
        }
    };
    found.context("the row is there")?;
    Ok(())
}

/// Runs `op` from `concurrency` tasks for `window`; operations per second.
async fn drive<F, Fut>(window: Duration, concurrency: usize, op: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                op(i).await?;
                count.fetch_add(1, Ordering::Relaxed);
                i += concurrency;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let done = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    for task in tasks {
        task.await??;
    }
    Ok(done as f64 / elapsed.as_secs_f64())
}

/// Builds `package` in release mode and returns the path of its binary.
pub fn build_release(package: &str) -> Result<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--release", "--package", package])
        .status()
        .with_context(|| format!("building {package}"))?;
    if !status.success() {
        bail!("building {package} failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::PathBuf::from("target"),
        std::path::PathBuf::from,
    );
    Ok(target.join("release").join(package))
}

/// A memory figure of process `pid` from `/proc/<pid>/status`, in MB: `VmHWM:` is the peak
/// resident set, `VmRSS:` the current one.
pub fn memory_mb(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU time spent on this machine, from `/proc` (Linux): per program name (every PostgreSQL
/// server process counts as `postgres`) and for the whole machine, kernel threads included.
#[derive(Debug, Clone)]
pub struct CpuTime {
    at: Instant,
    /// Process id → (program, ticks).
    by_process: std::collections::HashMap<u32, (String, u64)>,
    /// This process's children that ended and were waited for (a load generator that ran to its
    /// end is counted here, no longer among the processes).
    ended_children: u64,
    machine_busy: u64,
}

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Where `utime` (then `stime`) and `cutime` (then `cstime`) stand among the fields of
/// `/proc/<pid>/stat` that follow the program's name (state, ppid, …).
const UTIME: usize = 11;
const CUTIME: usize = 13;

/// The program's name in a `/proc/<pid>/stat` text, and the sum of the two tick counts that
/// start at field `first` after the name.
fn process_ticks(stat: &str, first: usize) -> Option<(&str, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let mut fields = stat[close + 1..].split_whitespace().skip(first);
    let ticks = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    Some((&stat[open + 1..close], ticks))
}

/// Cores used over an interval (see [`CpuTime::cores_since`]).
#[derive(Debug, Clone)]
pub struct CoresUsed {
    /// Per program asked for, in order.
    pub programs: Vec<f64>,
    /// This process's children that ended and were waited for in the interval.
    pub ended_children: f64,
    /// The whole machine, kernel threads included.
    pub machine: f64,
    /// The interval's length, in seconds (cores × this = CPU seconds).
    pub seconds: f64,
}

impl CpuTime {
    /// Reads the counters now; `None` where `/proc` cannot be read.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let machine_busy = fields
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| *i != 3 && *i != 4)
            .map(|(_, v)| v)
            .sum();
        let mut by_process = std::collections::HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue; // exited meanwhile
            };
            let Some((program, ticks)) = process_ticks(&stat, UTIME) else {
                continue;
            };
            let program = if program.starts_with("postgres") || program.starts_with("postmaster") {
                "postgres"
            } else {
                program
            };
            by_process.insert(pid, (program.to_owned(), ticks));
        }
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (_, ended_children) = process_ticks(&own, CUTIME)?;
        Some(Self {
            at: Instant::now(),
            by_process,
            ended_children,
            machine_busy,
        })
    }

    /// Cores each of `programs` used on average since `earlier` (processes that exited in
    /// between are not counted), those of this process's children that ended in between, and
    /// the whole machine's busy cores.
    pub fn cores_since(&self, earlier: &Self, programs: &[&str]) -> CoresUsed {
        let seconds = self.at.duration_since(earlier.at).as_secs_f64().max(1e-3);
        let cores = |ticks: u64| ticks as f64 / USER_HZ / seconds;
        let programs = programs
            .iter()
            .map(|program| {
                let ticks = self
                    .by_process
                    .iter()
                    .filter(|(_, (name, _))| name == program)
                    .map(|(pid, (_, now))| {
                        let then = earlier.by_process.get(pid).map_or(0, |(_, t)| *t);
                        now.saturating_sub(then)
                    })
                    .sum();
                cores(ticks)
            })
            .collect();
        CoresUsed {
            programs,
            ended_children: cores(self.ended_children.saturating_sub(earlier.ended_children)),
            machine: cores(self.machine_busy.saturating_sub(earlier.machine_busy)),
            seconds,
        }
    }
}
