//! `cargo xtask bench smtp`: the release `smtp-relay` on SQLite and on a throwaway PostgreSQL.
//! 16 connections each do STARTTLS and AUTH once and then send 5 KB messages back to back
//! (pipelining MAIL, RCPT and DATA); then the same with a new connection per message; then 1,000
//! idle connections, to read the relay's memory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use lettermint_core::{NewProject, Scope, Services, SystemClock};
use lettermint_testkit::pg::{Durability, TempPostgres};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader as AsyncBufReader,
};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 16;

#[derive(Debug, Default)]
struct Run {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

pub async fn run(window: Duration, stores: Vec<String>) -> Result<()> {
    let wanted = |name: &str| stores.is_empty() || stores.iter().any(|s| s == name);
    let relay = crate::bench::build_release("smtp-relay")?;
    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem())?;
    std::fs::write(&key, certified.signing_key.serialize_pem())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(certified.cert.der().to_vec()))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ));
    let body = message_body();
    println!(
        "machine: {} cores; {CONNECTIONS} connections, {} s per run, {} byte messages, STARTTLS + AUTH PLAIN",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        window.as_secs(),
        body.len()
    );
    println!();
    println!(
        "{:<10} {:<22} {:>12} {:>9} {:>9} {:>8} {:>10}",
        "store", "mode", "messages/s", "p50 ms", "p99 ms", "errors", "peak RSS"
    );
    let mut targets = Vec::new();
    if wanted("sqlite") {
        let url = format!("sqlite://{}/bench.sqlite", dir.path().display());
        targets.push(("sqlite", url, 2_000.0));
    }
    let pg = if wanted("postgres") {
        Some(TempPostgres::start(Durability::Production).map_err(|e| anyhow::anyhow!("{e}"))?)
    } else {
        None
    };
    if let Some(pg) = &pg {
        targets.push(("postgres", pg.create_database().await, 2_500.0));
    }
    for (name, url, target) in targets {
        let token = seed(&url).await?;
        let server = Relay::start(&relay, &url, &cert, &key)?;
        let reused = drive(&server.addr, &tls, &token, &body, window, true).await?;
        let rss = server.peak_rss_mb();
        let verdict = if reused.per_second >= target && reused.errors == 0 {
            "(met)"
        } else {
            "(NOT met)"
        };
        report(
            name,
            "reused connections",
            &reused,
            rss,
            &format!("{verdict} target >= {target:.0}/s"),
        );
        let fresh = drive(&server.addr, &tls, &token, &body, window, false).await?;
        report(
            name,
            "connection per message",
            &fresh,
            server.peak_rss_mb(),
            "",
        );
        let (open, rss) = idle(&server, 1_000).await?;
        println!(
            "{name:<10} {:<22} {open:>12} idle connections open; RSS {:.0} MB {}",
            "idle",
            rss,
            if open == 1_000 && rss <= 100.0 {
                "(met: <= 100 MB)"
            } else {
                "(NOT met: 1000 open, <= 100 MB)"
            }
        );
    }
    Ok(())
}

fn report(store: &str, mode: &str, run: &Run, rss: Option<f64>, note: &str) {
    let rss = rss.map_or_else(|| "-".to_owned(), |mb| format!("{mb:.0} MB"));
    println!(
        "{store:<10} {mode:<22} {:>12.0} {:>9.2} {:>9.2} {:>8} {:>10} {note}",
        run.per_second, run.p50_ms, run.p99_ms, run.errors, rss
    );
}

fn message_body() -> String {
    let line =
        "Thank you for your order. Your receipt is attached below, with every item listed.\r\n";
    let mut body = String::from(
        "From: Shop <shop@example.com>\r\nTo: customer@example.com\r\nSubject: Your receipt\r\nX-LM-Tag: receipt\r\n\r\n",
    );
    while body.len() < 5 * 1024 {
        body.push_str(line);
    }
    body.push_str(".\r\n");
    body
}

async fn seed(url: &str) -> Result<String> {
    let store =
        lettermint_store::open(url, lettermint_store::OpenOptions { max_connections: 2 }).await?;
    let services = Services::new(store.into_dyn(), Arc::new(SystemClock));
    let team = services.teams.create(Scope::Operator, "Bench").await?;
    let (_, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Bench".into(),
                smtp_enabled: true,
                first_token_name: Some("smtp".into()),
            },
        )
        .await?;
    Ok(first
        .context("first token")?
        .secret
        .expose_secret()
        .to_owned())
}

struct Relay {
    child: Child,
    addr: String,
}

impl Relay {
    fn start(binary: &Path, url: &str, cert: &Path, key: &Path) -> Result<Self> {
        let mut child = Command::new(binary)
            .args([
                "--database-url",
                url,
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
            ])
            .args(["--admin-listen", "127.0.0.1:0"])
            // Each benchmark connection authenticates once and keeps sending.
            .args(["--max-messages-per-session", "100000000"])
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .env("RUST_LOG", "warn")
            .env("LETTERMINT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut relay = Self {
            child,
            addr: String::new(),
        };
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
            if let Some(rest) = line.trim().strip_prefix("listening on smtp://") {
                relay.addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                break;
            }
        }
        if relay.addr.is_empty() {
            bail!("smtp-relay did not print its address");
        }
        Ok(relay)
    }

    fn peak_rss_mb(&self) -> Option<f64> {
        crate::bench::memory_mb(self.child.id(), "VmHWM:")
    }

    fn rss_mb(&self) -> Option<f64> {
        crate::bench::memory_mb(self.child.id(), "VmRSS:")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn reply<S: AsyncRead + Unpin>(stream: &mut AsyncBufReader<S>) -> Result<u16> {
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
        }
    }
}

async fn expect<S: AsyncRead + Unpin>(stream: &mut AsyncBufReader<S>, code: u16) -> Result<()> {
    let got = reply(stream).await?;
    if got != code {
        bail!("expected {code}, got {got}");
    }
    Ok(())
}

type Session = AsyncBufReader<tokio_rustls::client::TlsStream<TcpStream>>;

/// Connects, STARTTLS, AUTH PLAIN.
async fn open(addr: &str, tls: &tokio_rustls::TlsConnector, token: &str) -> Result<Session> {
    let mut plain = AsyncBufReader::new(TcpStream::connect(addr).await?);
    expect(&mut plain, 220).await?;
    plain
        .get_mut()
        .write_all(b"EHLO bench.example\r\nSTARTTLS\r\n")
        .await?;
    expect(&mut plain, 250).await?;
    expect(&mut plain, 220).await?;
    let stream = tls
        .connect(ServerName::try_from("localhost")?, plain.into_inner())
        .await?;
    let mut session = AsyncBufReader::new(stream);
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("\0lettermint\0{token}"));
    session
        .get_mut()
        .write_all(format!("EHLO bench.example\r\nAUTH PLAIN {credentials}\r\n").as_bytes())
        .await?;
    expect(&mut session, 250).await?;
    expect(&mut session, 235).await?;
    Ok(session)
}

/// One transaction, pipelined; the time from the end of DATA to the 250, or the refusing code.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    session: &mut AsyncBufReader<S>,
    body: &str,
) -> Result<Result<Duration, u16>> {
    session
        .get_mut()
        .write_all(b"MAIL FROM:<shop@example.com>\r\nRCPT TO:<customer@example.com>\r\nDATA\r\n")
        .await?;
    for code in [250, 250, 354] {
        let got = reply(session).await?;
        if got != code {
            return Ok(Err(got));
        }
    }
    session.get_mut().write_all(body.as_bytes()).await?;
    let sent = Instant::now();
    let got = reply(session).await?;
    Ok(if got == 250 {
        Ok(sent.elapsed())
    } else {
        Err(got)
    })
}

async fn drive(
    addr: &str,
    tls: &tokio_rustls::TlsConnector,
    token: &str,
    body: &str,
    window: Duration,
    reuse: bool,
) -> Result<Run> {
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (addr, tls, token, body) = (
            addr.to_owned(),
            tls.clone(),
            token.to_owned(),
            body.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut session: Option<Session> = None;
            while Instant::now() < deadline {
                let mut current = match session.take() {
                    Some(s) => s,
                    None => match open(&addr, &tls, &token).await {
                        Ok(s) => s,
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    },
                };
                match transaction(&mut current, &body).await {
                    Ok(Ok(latency)) => latencies.push(latency),
                    // The relay closed the session (a per-session limit): open another one.
                    Ok(Err(421)) => continue,
                    Ok(Err(_)) | Err(_) => {
                        errors += 1;
                        continue;
                    }
                }
                if reuse {
                    session = Some(current);
                } else {
                    // Like a real client: QUIT and wait for the goodbye before the next connection.
                    if current.get_mut().write_all(b"QUIT\r\n").await.is_ok() {
                        let _ = reply(&mut current).await;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().max(window);
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    Ok(Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        errors,
    })
}

/// Opens `count` connections that greet and then sit idle (from many loopback addresses, so
/// per-address limits are not what is measured); how many were accepted, and the relay's RSS.
async fn idle(relay: &Relay, count: usize) -> Result<(usize, f64)> {
    let target: std::net::SocketAddr = relay.addr.parse()?;
    let mut open = Vec::new();
    for i in 0..count {
        let source =
            std::net::SocketAddr::from(([127, 0, (i / 250) as u8 + 1, (i % 250) as u8 + 2], 0));
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(source)?;
        let Ok(stream) = socket.connect(target).await else {
            continue;
        };
        let mut stream = AsyncBufReader::new(stream);
        if matches!(reply(&mut stream).await, Ok(220)) {
            let _ = stream.get_mut().write_all(b"EHLO idle.example\r\n").await;
            if matches!(reply(&mut stream).await, Ok(250)) {
                open.push(stream);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = relay.rss_mb().unwrap_or(f64::NAN);
    Ok((open.len(), rss))
}
