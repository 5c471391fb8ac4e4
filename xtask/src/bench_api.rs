//! `cargo xtask bench api`: `POST /v1/send` through the real server, driven by `wrk` over
//! keep-alive connections, on SQLite and on a throwaway PostgreSQL, beside a floor: a bare axum
//! handler in this process that parses the same JSON and stores nothing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lettermint_testkit::pg::{Durability, TempPostgres};

/// What one `wrk` run measured.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    peak_rss_mb: Option<f64>,
}

pub(crate) fn body() -> String {
    let html = format!(
        "<html><body><h1>Your receipt</h1><p>{}</p></body></html>",
        "Thank you for your order. ".repeat(26)
    );
    serde_json::json!({
        "from": "Shop <shop@example.com>",
        "to": ["customer@example.com"],
        "subject": "Your receipt for order 42",
        "html": html,
        "text": "Thank you for your order.",
        "metadata": {"order": "42", "customer": "1001"},
        "tag": "receipt"
    })
    .to_string()
}

/// Fails, saying how to install it, when wrk is not on `PATH`.
pub fn require_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!(
            "this benchmark drives the server with wrk: install it (Debian/Ubuntu: apt-get install wrk)"
        );
    }
    Ok(())
}

pub async fn run(window: Duration, connections: u32, stores: Vec<String>) -> Result<()> {
    let wanted = |name: &str| stores.is_empty() || stores.iter().any(|s| s == name);
    require_wrk()?;
    let body = body();
    println!(
        "machine: {} cores; wrk with 2 threads, {connections} keep-alive connections, {} s per run, {} byte bodies",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        window.as_secs(),
        body.len()
    );
    let server = crate::bench::build_release("api-server")?;
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("send.lua");

    let floor = floor(&script, &body, window, connections).await?;
    println!();
    println!(
        "{:<10} {:>12} {:>9} {:>9} {:>8} {:>10}",
        "target", "requests/s", "p50 ms", "p99 ms", "errors", "peak RSS"
    );
    report("floor", &floor, None);
    if wanted("sqlite") {
        let url = format!("sqlite://{}/bench.sqlite", dir.path().display());
        let run = server_run(&server, &url, &script, window, connections)?;
        report("sqlite", &run, Some(8_000.0));
    }
    if wanted("postgres") {
        let pg = TempPostgres::start(Durability::Production).map_err(|e| anyhow::anyhow!("{e}"))?;
        let url = pg.create_database().await;
        let run = server_run(&server, &url, &script, window, connections)?;
        report("postgres", &run, Some(12_000.0));
    }
    println!();
    println!(
        "targets: PostgreSQL >= 12000/s with p99 <= 15 ms, SQLite >= 8000/s, zero errors, RSS <= 150 MB"
    );
    Ok(())
}

fn report(name: &str, run: &Run, target: Option<f64>) {
    let rss = run
        .peak_rss_mb
        .map_or_else(|| "-".to_owned(), |mb| format!("{mb:.0} MB"));
    let verdict = match target {
        Some(t) if run.per_second >= t && run.errors == 0 => " (met)",
        Some(_) => " (NOT met)",
        None => "",
    };
    println!(
        "{name:<10} {:>12.0} {:>9.2} {:>9.2} {:>8} {:>10}{verdict}",
        run.per_second, run.p50_ms, run.p99_ms, run.errors, rss
    );
}

fn write_script(path: &Path, body: &str, token: &str) -> Result<()> {
    let escaped = body.replace('\\', "\\\\").replace('"', "\\\"");
    std::fs::write(
        path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{escaped}\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"x-lettermint-token\"] = \"{token}\"\n"
        ),
    )?;
    Ok(())
}

fn wrk(script: &Path, url: &str, window: Duration, connections: u32) -> Result<Run> {
    let output = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{}s", window.as_secs()),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => run.per_second = v.parse().unwrap_or(0.0),
            (Some("50%"), Some(v)) => run.p50_ms = millis(v),
            (Some("99%"), Some(v)) => run.p99_ms = millis(v),
            (Some("Non-2xx"), _) => {
                run.errors += line
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
            (Some("Socket"), Some("errors:")) => {
                run.errors += line
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    Ok(run)
}

fn millis(value: &str) -> f64 {
    let (number, factor) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

/// A bare axum handler that parses the same JSON and answers 202, in this process.
async fn floor(script: &Path, body: &str, window: Duration, connections: u32) -> Result<Run> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/send",
        post(
            |axum::Json(value): axum::Json<serde_json::Value>| async move {
                let id = uuid::Uuid::now_v7();
                std::hint::black_box(&value);
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({"message_id": id, "status": "pending"})),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    write_script(script, body, "none")?;
    let url = format!("http://{addr}/v1/send");
    let run = tokio::task::spawn_blocking({
        let script = script.to_owned();
        move || wrk(&script, &url, window, connections)
    })
    .await??;
    server.abort();
    Ok(run)
}

/// A running api-server (stopped with SIGTERM when dropped).
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The bootstrap project token.
    pub token: String,
    /// The bootstrap owner's dashboard login and password.
    pub owner: (String, String),
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the api-server `binary` on an empty database at `url` and reads its address and
    /// the bootstrap project token.
    pub(crate) fn start(binary: &Path, url: &str) -> Result<Self> {
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                url,
                "--database-max-connections",
                "16",
            ])
            .env("LETTERMINT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep reading for the server's whole life, so that it never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            token: String::new(),
            owner: (String::new(), String::new()),
        };
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            let line = line.trim();
            if let Some(addr) = line.strip_prefix("listening on ") {
                server.base = addr.to_owned();
            } else if let Some(t) = line.strip_prefix("project token: ") {
                server.token = t.to_owned();
            } else if let Some(t) = line.strip_prefix("dashboard login: ") {
                server.owner.0 = t.to_owned();
            } else if let Some(t) = line.strip_prefix("dashboard password: ") {
                server.owner.1 = t.to_owned();
                break;
            }
        }
        if server.base.is_empty() || server.token.is_empty() {
            bail!("the server printed no address or bootstrap token");
        }
        Ok(server)
    }

    /// `wrk` against `POST /v1/send` for `window`, after a 2 s warm-up.
    pub(crate) fn send_load(
        &self,
        script: &Path,
        window: Duration,
        connections: u32,
    ) -> Result<Run> {
        write_script(script, &body(), &self.token)?;
        let url = format!("{}/v1/send", self.base);
        // Warm up: connections, caches, the database's buffers.
        wrk(script, &url, Duration::from_secs(2), connections)?;
        let mut run = wrk(script, &url, window, connections)?;
        run.peak_rss_mb = crate::bench::memory_mb(self.child.id(), "VmHWM:");
        Ok(run)
    }
}

fn server_run(
    binary: &Path,
    url: &str,
    script: &Path,
    window: Duration,
    connections: u32,
) -> Result<Run> {
    Server::start(binary, url)?.send_load(script, window, connections)
}
