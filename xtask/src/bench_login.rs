//! `cargo xtask bench login`: dashboard logins through the release api-server. argon2id is
//! meant to be slow; what matters is that logins queue for their CPU time on a bounded blocking
//! pool instead of taking the machine from the Sending API. Measured here:
//!
//! 1. the floor: one argon2id verification in this process (logins per second per hashing
//!    thread cannot beat its inverse);
//! 2. logins per second and latency with `--logins` concurrent clients;
//! 3. `POST /v1/send` latency at a fixed rate (`--rate`), idle and while those logins run.
//!    The send path's p99 under logins should stay within 2x its idle p99.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::bench_api::Server;

pub async fn run(window: Duration, logins: usize, rate: u32) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashers = cores.saturating_sub(1).max(1);
    println!(
        "machine: {cores} cores; api-server hashes {hashers} password(s) at once (the default); {logins} login clients; /v1/send probe at {rate}/s; {} s per run",
        window.as_secs()
    );
    let verify = crate::bench::argon2_verify_cost()?;
    let floor = hashers as f64 / verify.as_secs_f64();
    println!(
        "floor: argon2id verify (m=19 MiB, t=2, p=1) {:.1} ms in this process = {floor:.0} logins/s with {hashers} hashing thread(s)",
        verify.as_secs_f64() * 1e3
    );

    let binary = crate::bench::build_release("api-server")?;
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/bench.sqlite", dir.path().display());
    let server = Server::start(&binary, &url)?;
    if server.owner.1.is_empty() {
        bail!("the server printed no dashboard login");
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .build()?;

    // Warm up both paths.
    probe(&http, &server, rate, Duration::from_secs(2)).await?;
    login_load(&http, &server, 4, Duration::from_secs(2)).await?;

    let idle = probe(&http, &server, rate, window).await?;
    let (under, logged_in) = tokio::join!(
        probe(&http, &server, rate, window),
        login_load(&http, &server, logins, window)
    );
    let (under, logged_in) = (under?, logged_in?);

    println!();
    println!(
        "{:<28} {:>10} {:>9} {:>9} {:>8}",
        "run", "per second", "p50 ms", "p99 ms", "errors"
    );
    report(&format!("logins ({logins} clients)"), &logged_in);
    report("/v1/send idle", &idle);
    report("/v1/send during logins", &under);
    println!();
    let ratio = under.p99_ms / idle.p99_ms;
    println!(
        "logins/s: {:.1} ({:.2} of the floor); /v1/send p99 during logins / idle = {ratio:.2} (target <= 2.0: {})",
        logged_in.per_second,
        logged_in.per_second / floor,
        if ratio <= 2.0 && under.errors == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

#[derive(Debug, Default)]
struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn report(name: &str, m: &Measured) {
    println!(
        "{name:<28} {:>10.1} {:>9.2} {:>9.2} {:>8}",
        m.per_second, m.p50_ms, m.p99_ms, m.errors
    );
}

fn summarize(mut latencies: Vec<Duration>, errors: u64, window: Duration) -> Measured {
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Measured {
        per_second: latencies.len() as f64 / window.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        errors,
    }
}

/// `POST /v1/send` at a fixed rate: one request per tick, each on its own task, so a slow
/// answer never delays the next request (no coordinated omission).
async fn probe(
    http: &reqwest::Client,
    server: &Server,
    rate: u32,
    window: Duration,
) -> Result<Measured> {
    let body = crate::bench_api::body();
    let url = format!("{}/v1/send", server.base);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < window {
        tick.tick().await;
        let request = http
            .post(&url)
            .header("x-lettermint-token", &server.token)
            .header("content-type", "application/json")
            .body(body.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let ok = request
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED);
            (start.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for task in tasks {
        let (latency, ok) = task.await?;
        if ok {
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    Ok(summarize(latencies, errors, window))
}

/// `clients` loops of `POST /login` with the right password for `window`.
async fn login_load(
    http: &reqwest::Client,
    server: &Server,
    clients: usize,
    window: Duration,
) -> Result<Measured> {
    let url = format!("{}/login", server.base);
    // The login form's CSRF check is a double submit: the same value as cookie and field.
    let csrf = "BenchCsrfBenchCsrfBenchCsrfBenchCsrfBenchCs";
    let form = format!(
        "_csrf={csrf}&email={}&password={}&next=%2F",
        server.owner.0.replace('@', "%40"),
        server.owner.1
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, form) = (http.clone(), url.clone(), form.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while started.elapsed() < window {
                let start = Instant::now();
                let ok = http
                    .post(&url)
                    .header("cookie", format!("lm_csrf={csrf}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == reqwest::StatusCode::SEE_OTHER);
                if ok {
                    latencies.push(start.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    Ok(summarize(latencies, errors, started.elapsed()))
}
