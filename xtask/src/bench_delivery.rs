//! `cargo xtask bench delivery`: messages per second from the store to an SMTP sink through
//! 1, 2 and 4 delivery workers, on SQLite and on a throwaway PostgreSQL, beside a floor measured
//! in the same run (the same sink fed directly by one client with the workers' concurrency);
//! then `POST /v1/send` acceptance through the release api-server alone, with two workers
//! delivering from the same PostgreSQL as fast as they can, and with two paced to a rate.
//!
//! The floor and the drains run in each chosen [`Layout`]: every process on every core, and
//! PostgreSQL on a core of its own (as with the database on its own host), the rest on the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lettermint_core::repo::DeliveryRepository;
use lettermint_core::{
    Channel, Message, MessageContent, MessageId, MessageStatus, NewProject, PlainToken, Scope,
    Services, StructuredEmail, Submission, SubmissionOutcome, SystemClock, TokenCredential,
    TokenKind,
};
use lettermint_delivery::{Relay, SmarthostConfig, SmtpRelay, Worker, WorkerConfig};
use lettermint_store::OpenOptions;
use lettermint_testkit::pg::{Durability, TempPostgres};
use lettermint_testkit::smtp_sink::SmtpSink;

use crate::bench::{CoresUsed, CpuTime};

/// Connections each worker (and the floor) keeps to the sink.
const CONNECTIONS: u32 = 8;

/// What `bench delivery` runs (its command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// Messages per drain.
    pub messages: usize,
    /// Length of each acceptance run.
    pub window: Duration,
    /// wrk's keep-alive connections.
    pub connections: u32,
    /// `max_rate` of each paced worker.
    pub worker_rate: u32,
    /// Rounds of acceptance runs.
    pub rounds: u32,
    /// Only these stores (empty: both).
    pub stores: Vec<String>,
    /// Each worker's `batch`, and the floor's concurrency.
    pub batch: u32,
    /// Whether the acceptance runs follow the drains.
    pub acceptance: bool,
    /// Where the floor and the drains run, one layout after the other.
    pub layouts: Vec<Layout>,
}

/// Where the processes of the floor and the drains may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Every process on every core: the machine as it is, PostgreSQL sharing the cores with the
    /// workers, the relay clients and the sink.
    Shared,
    /// PostgreSQL on a core of its own, this process (floor, workers, relay clients and sink)
    /// on the others: as when the database runs on its own host. PostgreSQL drains only
    /// (SQLite runs inside the workers' process).
    Apart,
}

pub async fn run(options: Options) -> Result<()> {
    let Options {
        messages,
        ref stores,
        batch,
        ref layouts,
        ..
    } = options;
    // Layout apart pins processes to CPUs: it needs to know them (Linux) and two or more.
    let apart_cpus = match allowed_cpus() {
        _ if !layouts.contains(&Layout::Apart) => None,
        Ok(cpus) if cpus.len() >= 2 => Some(cpus),
        Ok(cpus) => {
            eprintln!(
                "layout apart needs two cores or more (this process may use CPU {}): skipped",
                cpu_list(&cpus)
            );
            None
        }
        Err(error) => {
            eprintln!("layout apart skipped: {error:#}");
            None
        }
    };
    let wanted = |name: &str| stores.is_empty() || stores.iter().any(|s| s == name);
    // Found missing before the drains rather than after them.
    if options.acceptance
        && wanted("postgres")
        && let Err(error) = crate::bench_api::require_wrk()
    {
        bail!("{error}, or pass --no-acceptance to run the floor and the drains only");
    }
    println!(
        "machine: {} cores; {messages} API messages (~1.2 KB of MIME each) per run; workers keep \
         {batch} attempts in flight over {CONNECTIONS} connections to an in-process SMTP sink",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let dir = tempfile::tempdir()?;
    let pg = if wanted("postgres") {
        Some(TempPostgres::start(Durability::Production).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    for &layout in layouts {
        // The CPUs to pin to: none in the shared layout.
        let cpus = match (layout, &apart_cpus) {
            (Layout::Shared, _) => None,
            (Layout::Apart, None) => continue,
            (Layout::Apart, Some(cpus)) => Some(cpus.as_slice()),
        };
        if let Some(cpus) = cpus {
            place(layout, cpus, pg.as_ref())?;
        }
        println!();
        println!("{}", describe(cpus));
        let floor_run = floor(messages, batch).await?;
        let floor = floor_run.rate;
        println!(
            "{:<28} {:>12} {:>10} {:>13} {:>10} {:>11}",
            "run", "messages/s", "of floor", "bench µs/msg", "pg µs/msg", "all µs/msg"
        );
        report("floor (sink, one client)", &floor_run, floor);
        for workers in [1, 2, 4] {
            // SQLite runs inside the workers' process: it has no layout apart.
            if wanted("sqlite") && layout == Layout::Shared {
                let url = format!(
                    "sqlite://{}/delivery-{workers}.sqlite",
                    dir.path().display()
                );
                let run = drain(&url, messages, workers, batch).await?;
                report(&format!("sqlite, {workers} worker(s)"), &run, floor);
            }
            if let Some(pg) = &pg {
                let url = pg.create_database().await;
                let run = drain(&url, messages, workers, batch).await?;
                report(&format!("postgres, {workers} worker(s)"), &run, floor);
            }
        }
        // Every core again, for the next layout and the acceptance runs.
        if let Some(cpus) = cpus {
            place(Layout::Shared, cpus, pg.as_ref())?;
        }
    }
    println!();
    println!(
        "target: every run >= 0.70 of the floor of its layout. CPU per message: this process \
         (workers, relay clients, the sink; SQLite runs in it), PostgreSQL, and the whole machine"
    );
    if let Some(pg) = pg.as_ref().filter(|_| options.acceptance) {
        acceptance(pg, &options).await?;
    }
    Ok(())
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`, e.g.
/// `0-3,6`).
fn allowed_cpus() -> Result<Vec<u32>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list in /proc/self/status")?;
    parse_cpu_list(list).with_context(|| format!("reading Cpus_allowed_list {list:?}"))
}

/// The CPUs of a list as the kernel writes it (`0-3,6`).
fn parse_cpu_list(list: &str) -> Result<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) = (first.trim().parse()?, last.trim().parse()?);
        cpus.extend(first..=last);
    }
    if cpus.is_empty() {
        bail!("no CPU");
    }
    Ok(cpus)
}

fn cpu_list(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// What a layout puts where, as the header of its table: with `cpus` (apart), pinned within
/// them; without, every process on every core (shared).
fn describe(cpus: Option<&[u32]>) -> String {
    match cpus {
        None => "layout shared: every process on every core (PostgreSQL shares them with the \
                 workers and the sink)"
            .to_owned(),
        Some(cpus) => {
            let (own, database) = split(Layout::Apart, cpus);
            format!(
                "layout apart: PostgreSQL on CPU {}, this process (floor, workers, relay clients, \
                 sink) on CPU {}; PostgreSQL drains only",
                cpu_list(database),
                cpu_list(own)
            )
        }
    }
}

/// The CPUs of this process and of PostgreSQL in `layout` (`apart` needs two or more).
fn split(layout: Layout, cpus: &[u32]) -> (&[u32], &[u32]) {
    match layout {
        Layout::Shared => (cpus, cpus),
        Layout::Apart => cpus.split_at(cpus.len().saturating_sub(1).max(1)),
    }
}

/// Pins this process and `pg`'s server processes for `layout`, within `cpus`: threads and
/// backends started later inherit the pinning of the thread or server that starts them.
fn place(layout: Layout, cpus: &[u32], pg: Option<&TempPostgres>) -> Result<()> {
    let (own, database) = split(layout, cpus);
    pin(std::process::id(), own)?;
    if let Some(pg) = pg {
        let server = pg
            .server_pid()
            .context("the PostgreSQL server's process id is unknown")?;
        for pid in std::iter::once(server).chain(children(server)) {
            pin(pid, database)?;
        }
    }
    Ok(())
}

/// The processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`; the name may hold spaces and parentheses.
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid = rest.split_whitespace().nth(1)?.parse::<u32>().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

/// Pins every thread of process `pid` to `cpus` with util-linux's `taskset`. A process that
/// ended meanwhile (a backend closing its connection) is passed over.
fn pin(pid: u32, cpus: &[u32]) -> Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu_list(cpus), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux), which places the benchmark's processes")?;
    if !status.success() && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!(
            "taskset could not pin process {pid} to CPU {}",
            cpu_list(cpus)
        );
    }
    Ok(())
}

fn report(name: &str, run: &Timed, floor: f64) {
    // Shown rounded down, so that a ratio just short of the target does not read as meeting it.
    let ratio = (run.rate / floor * 100.0).floor() / 100.0;
    let cpu = run.cpu.map_or_else(String::new, |[bench, pg, machine]| {
        format!(" {bench:>13.0} {pg:>10.0} {machine:>11.0}")
    });
    let verdict = if ratio >= 0.7 { "" } else { "  (below 0.70)" };
    println!("{name:<28} {:>12.0} {ratio:>10.2}{cpu}{verdict}", run.rate);
}

fn email(n: usize) -> StructuredEmail {
    StructuredEmail {
        from: "Shop <shop@example.com>".into(),
        to: vec![format!("customer{n}@example.net")],
        subject: format!("Your receipt for order {n}"),
        html: Some(format!(
            "<html><body><h1>Your receipt</h1><p>{}</p></body></html>",
            "Thank you for your order. ".repeat(26)
        )),
        text: Some("Thank you for your order.".into()),
        ..StructuredEmail::default()
    }
}

fn relay_to(sink: &SmtpSink) -> Result<Arc<dyn Relay>> {
    let mut config = SmarthostConfig::from_url(&sink.url())?;
    config.max_connections = CONNECTIONS;
    Ok(Arc::new(SmtpRelay::new(config)?))
}

/// The API message every run sends (each copy gets its own id and recipient).
fn template(
    project: lettermint_core::ProjectId,
    route: lettermint_core::RouteId,
    token: lettermint_core::TokenId,
) -> Message {
    Message {
        id: MessageId::new(),
        project_id: project,
        route_id: route,
        token_id: token,
        via: Channel::Api,
        status: MessageStatus::Pending,
        envelope_from: "shop@example.com".into(),
        envelope_to: vec!["customer@example.net".into()],
        subject: Some("Your receipt".into()),
        tag: None,
        metadata: BTreeMap::new(),
        idempotency_key: None,
        scheduled_at: None,
        created_at: time::OffsetDateTime::now_utc(),
        content: MessageContent::Structured(Box::new(email(0))),
        delivery: Default::default(),
    }
}

/// The sink fed directly: the same relay client, `batch` messages in flight, no store.
async fn floor(messages: usize, batch: u32) -> Result<Timed> {
    let sink = SmtpSink::start().await?;
    let relay = relay_to(&sink)?;
    let template = template(
        lettermint_core::ProjectId::new(),
        lettermint_core::RouteId::new(),
        lettermint_core::TokenId::new(),
    );
    // Warm the pool, then measure.
    send_direct(&relay, &template, batch, batch as usize).await?;
    let cpu = CpuTime::now();
    let started = Instant::now();
    send_direct(&relay, &template, batch, messages).await?;
    let elapsed = started.elapsed();
    Ok(Timed::new(messages, elapsed, cpu))
}

/// A timed run: messages per second, and the CPU each message took.
struct Timed {
    rate: f64,
    /// Microseconds of CPU per message: this process (workers, relay clients, the sink, and
    /// SQLite), PostgreSQL, and the whole machine. `None` where `/proc` cannot be read.
    cpu: Option<[f64; 3]>,
}

impl Timed {
    /// `messages` in `elapsed`, the CPU counters read when it started in `cpu`.
    fn new(messages: usize, elapsed: Duration, cpu: Option<CpuTime>) -> Self {
        let cpu = cpu.and_then(|before| {
            let used = CpuTime::now()?.cores_since(&before, &["xtask", "postgres"]);
            // Over the counters' own interval, which holds `elapsed` and the reads of `/proc`.
            let per_message = |cores: f64| cores * used.seconds * 1e6 / messages as f64;
            Some([
                per_message(used.programs[0]),
                per_message(used.programs[1]),
                per_message(used.machine),
            ])
        });
        Self {
            rate: messages as f64 / elapsed.as_secs_f64(),
            cpu,
        }
    }
}

async fn send_direct(
    relay: &Arc<dyn Relay>,
    template: &Message,
    in_flight: u32,
    count: usize,
) -> Result<()> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(in_flight as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let permit = semaphore.clone().acquire_owned().await?;
        let relay = relay.clone();
        let mut message = template.clone();
        message.id = MessageId::new();
        tasks.spawn(async move {
            // The worker renders each message; so does the floor.
            let data = lettermint_delivery::mime::render(&message)?;
            let envelope = lettermint_delivery::mime::envelope(&message)?;
            let reply = relay.relay(&envelope, &data).await;
            drop(permit);
            reply.map_err(|e| anyhow::anyhow!("{:?}", e.reply))?;
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Opens a fresh store at `url` with a project and a token; its services and the token's
/// credential.
async fn project(
    url: &str,
) -> Result<(
    Arc<dyn lettermint_core::Store>,
    Services,
    Message,
    TokenCredential,
)> {
    let store = lettermint_store::open(url, OpenOptions::default())
        .await?
        .into_dyn();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let team = services.teams.create(Scope::Operator, "Bench").await?;
    let (project, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Bench".into(),
                smtp_enabled: true,
                first_token_name: Some("bench".into()),
            },
        )
        .await?;
    let first = first.context("first token")?;
    let route = services.messages.resolve_route(project.id, None).await?;
    let template = template(project.id, route.id, first.token.id);
    let digest = PlainToken::parse_kind(first.secret.expose_secret(), TokenKind::Project)?.digest();
    let credential = TokenCredential {
        token_id: first.token.id,
        digest,
    };
    Ok((store, services, template, credential))
}

/// Enqueues `count` messages like `template` in submissions of one message, 200 per commit.
async fn fill(
    services: &Services,
    template: &Message,
    credential: TokenCredential,
    count: usize,
) -> Result<()> {
    let mut left = count;
    while left > 0 {
        let chunk = left.min(200);
        let now = time::OffsetDateTime::now_utc();
        let submissions: Vec<Submission> = (0..chunk)
            .map(|i| {
                let mut message = template.clone();
                message.id = MessageId::new();
                message.created_at = now;
                message.content = MessageContent::Structured(Box::new(email(i)));
                message.envelope_to = vec![format!("customer{i}@example.net")];
                Submission {
                    client_ip: None,
                    credential,
                    messages: vec![message],
                    idempotency: None,
                }
            })
            .collect();
        let outcomes = services.messages.enqueue(&submissions).await?;
        if outcomes
            .iter()
            .any(|o| *o != SubmissionOutcome::Accepted(lettermint_core::CredentialSlot::Current))
        {
            bail!("the store refused a submission: {outcomes:?}");
        }
        left -= chunk;
    }
    Ok(())
}

type Running = Vec<tokio::task::JoinHandle<()>>;

/// Starts `count` workers delivering from `store` to `sink`; the switch that stops them.
fn start_workers(
    store: &Arc<dyn lettermint_core::Store>,
    sink: &SmtpSink,
    count: usize,
    batch: u32,
) -> Result<(tokio::sync::watch::Sender<bool>, Running)> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    for _ in 0..count {
        let worker = Worker::new(
            store.clone() as Arc<dyn DeliveryRepository>,
            relay_to(sink)?,
            Arc::new(SystemClock),
            WorkerConfig {
                batch,
                idle_poll: Duration::from_millis(20),
                ..WorkerConfig::default()
            },
        );
        let stopped = stopped.clone();
        running.push(tokio::spawn(async move { worker.run(stopped).await }));
    }
    Ok((stop, running))
}

/// Fills a fresh store with `messages` and times `workers` workers delivering all of them.
async fn drain(url: &str, messages: usize, workers: usize, batch: u32) -> Result<Timed> {
    let (store, services, template, credential) = project(url).await?;
    // As the floor warms its pool before it measures, the workers open their connections (to
    // the sink and the store) on a first batch each, and the timing starts once that arrived.
    let warm_up = workers * batch as usize;
    let total = messages + warm_up;
    fill(&services, &template, credential, total).await?;
    let sink = SmtpSink::start().await?;
    let (stop, running) = start_workers(&store, &sink, workers, batch)?;
    let warmed = sink.wait_for_count(warm_up, Duration::from_secs(600)).await;
    if warmed < warm_up {
        bail!("only {warmed} of the first {warm_up} messages arrived within 600 s");
    }
    let cpu = CpuTime::now();
    let started = Instant::now();
    // Those that arrived while the warm-up ended are not timed.
    let timed_messages = total.saturating_sub(sink.accepted_count()).max(1);
    let arrived = sink.wait_for_count(total, Duration::from_secs(600)).await;
    let elapsed = started.elapsed();
    let timed = Timed::new(timed_messages, elapsed, cpu);
    let _ = stop.send(true);
    for task in running {
        let _ = task.await;
    }
    // Counted again once the workers stopped: a message sent twice may come after the last one.
    let accepted = sink.accepted_count().max(arrived);
    if accepted < total {
        bail!("only {accepted} of {total} messages arrived within 600 s");
    }
    if accepted > total {
        bail!("{accepted} deliveries for {total} messages: a message went out twice");
    }
    let delivered = services
        .messages
        .list(
            template.project_id,
            Some(MessageStatus::Delivered),
            lettermint_core::PageRequest::first(
                1,
                lettermint_core::Sort {
                    key: lettermint_core::page::MessageSortKey::CreatedAt,
                    direction: lettermint_core::Direction::Descending,
                },
            ),
        )
        .await?;
    if delivered.items.is_empty() {
        bail!("no message is marked delivered");
    }
    Ok(timed)
}

/// `POST /v1/send` through the release api-server on PostgreSQL: alone, then with two
/// `mail-worker` processes (release build) delivering into the in-process sink unpaced, then
/// paced to `worker_rate` each; `rounds` times (the machine's speed drifts: each row is compared
/// with the "alone" run of its round), then the median ratio of each kind. The workers always
/// have a backlog here (acceptance outruns them).
async fn acceptance(pg: &TempPostgres, options: &Options) -> Result<()> {
    let &Options {
        window,
        connections,
        worker_rate,
        rounds,
        batch,
        ..
    } = options;
    let binary = crate::bench::build_release("api-server")?;
    let worker_binary = crate::bench::build_release("mail-worker")?;
    let url = pg.create_database().await;
    let server = Arc::new(crate::bench_api::Server::start(&binary, &url)?);
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("send.lua");
    // wrk blocks: run it off the runtime, so that the sink keeps its threads. Each load
    // answers the cores used while it ran.
    let load = |server: Arc<crate::bench_api::Server>, script: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            let before = CpuTime::now();
            let run = server.send_load(&script, window, connections)?;
            let cores = before.and_then(|b| Some(CpuTime::now()?.cores_since(&b, &PROGRAMS)));
            Ok::<_, anyhow::Error>((run, cores))
        })
    };
    let sink = SmtpSink::start().await?;
    println!();
    println!(
        "{:<32} {:>12} {:>9} {:>9} {:>8} {:>12} {:>9}",
        "POST /v1/send (postgres)",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "delivered/s",
        "of alone"
    );
    // Of alone, per round: two unpaced workers, two paced ones.
    let mut unpaced = Vec::new();
    let mut paced = Vec::new();
    for round in 1..=rounds {
        quiesce(&url).await?;
        let (alone, cores) = load(server.clone(), script.clone()).await??;
        print_row(&format!("alone ({round})"), &alone, None, 1.0);
        print_cores(cores);
        for rate in [None, Some(worker_rate)] {
            quiesce(&url).await?;
            let before = sink.accepted_count();
            let workers = (0..2)
                .map(|_| spawn_worker(&worker_binary, &url, &sink.url(), rate, batch))
                .collect::<Result<Vec<_>>>()?;
            let (with, cores) = load(server.clone(), script.clone()).await??;
            let delivered = sink.accepted_count() - before;
            for mut worker in workers {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &worker.id().to_string()])
                    .status();
                let _ = worker.wait();
            }
            // The load runs a 2 s warm-up before its window; deliveries are counted over both.
            let delivered_per_second = delivered as f64 / (window.as_secs_f64() + 2.0);
            let name = match rate {
                None => format!("2 workers, no limit ({round})"),
                Some(rate) => format!("2 workers, {rate}/s each ({round})"),
            };
            let ratio = with.per_second / alone.per_second;
            print_row(&name, &with, Some(delivered_per_second), ratio);
            print_cores(cores);
            match rate {
                None => unpaced.push(ratio),
                Some(_) => paced.push(ratio),
            }
        }
    }
    println!();
    for (name, ratios) in [
        ("2 workers, no limit".to_owned(), unpaced),
        (format!("2 workers, {worker_rate}/s each"), paced),
    ] {
        let (median, low, high) = spread(ratios);
        let verdict = if median >= 0.85 { "" } else { "  (below 0.85)" };
        println!(
            "{name:<32} median {median:.2} of alone over {rounds} round(s) (lowest {low:.2}, \
             highest {high:.2}){verdict}"
        );
    }
    println!("target: acceptance with workers >= 0.85 of alone");
    Ok(())
}

/// Vacuums the database and ends with a checkpoint (untimed), so that every acceptance row
/// starts from the same state: the cleanup of one row's updates (autovacuum, the writes of the
/// next checkpoint) is not charged to the row after it.
async fn quiesce(url: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(&mut conn).await?;
    sqlx::raw_sql("CHECKPOINT").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// The median, lowest and highest of `ratios` (not empty).
fn spread(mut ratios: Vec<f64>) -> (f64, f64, f64) {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    let median = if n % 2 == 1 {
        ratios[n / 2]
    } else {
        (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0
    };
    (median, ratios[0], ratios[n - 1])
}

/// The programs whose CPU each acceptance row reports; `xtask` is this process (the sink).
const PROGRAMS: [&str; 4] = ["api-server", "postgres", "mail-worker", "xtask"];

/// Prints the cores [`PROGRAMS`], wrk (the child that ended) and the whole machine used.
fn print_cores(cores: Option<CoresUsed>) {
    let Some(cores) = cores else {
        return;
    };
    let programs: Vec<String> = PROGRAMS
        .iter()
        .zip(cores.programs)
        .map(|(name, cores)| {
            let name = if *name == "xtask" { "sink" } else { name };
            format!("{name} {cores:.2}")
        })
        .collect();
    println!(
        "  cores used: {}, wrk {:.2}; whole machine {:.2}",
        programs.join(", "),
        cores.ended_children,
        cores.machine
    );
}

fn print_row(name: &str, run: &crate::bench_api::Run, delivered: Option<f64>, ratio: f64) {
    let delivered = delivered.map_or_else(|| "-".to_owned(), |d| format!("{d:.0}"));
    println!(
        "{name:<32} {:>12.0} {:>9.2} {:>9.2} {:>8} {delivered:>12} {ratio:>9.2}",
        run.per_second, run.p50_ms, run.p99_ms, run.errors
    );
}

/// A `mail-worker` on `url`, relaying to `smarthost`, as the benchmark's own workers are
/// configured (batch, connections, idle poll).
fn spawn_worker(
    binary: &std::path::Path,
    url: &str,
    smarthost: &str,
    max_rate: Option<u32>,
    batch: u32,
) -> Result<std::process::Child> {
    std::process::Command::new(binary)
        .env(
            "LETTERMINT_WORKER_MAX_RATE",
            max_rate.unwrap_or(0).to_string(),
        )
        .env("LETTERMINT_DATABASE_URL", url)
        .env("LETTERMINT_WORKER_SMARTHOST", smarthost)
        .env(
            "LETTERMINT_WORKER_SMARTHOST_CONNECTIONS",
            CONNECTIONS.to_string(),
        )
        .env("LETTERMINT_WORKER_BATCH", batch.to_string())
        .env("LETTERMINT_WORKER_IDLE_POLL_MS", "20")
        .env("LETTERMINT_WORKER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("LETTERMINT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_read_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-1\n").unwrap(), [0, 1]);
        assert_eq!(parse_cpu_list("0-3,6,8-9").unwrap(), [0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("5").unwrap(), [5]);
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("0-x").is_err());
    }

    #[test]
    fn apart_gives_the_database_the_last_cpu_and_this_process_the_others() {
        let text = describe(Some(&[0, 1, 2, 3]));
        assert!(text.contains("PostgreSQL on CPU 3,"), "{text}");
        assert!(text.contains("on CPU 0,1,2;"), "{text}");
        assert!(describe(None).contains("every core"));
    }
}
