//! `mail-worker`: opens the store and delivers accepted messages until SIGTERM or SIGINT.

mod config;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Parser;
use lettermint_core::{Store, SystemClock};
use lettermint_delivery::{MaildirRelay, Relay, SmtpRelay, Worker};
use lettermint_runtime::process::{self, LogStyle, say};
use lettermint_store::OpenOptions;
use tokio::net::TcpListener;

use crate::config::{Cli, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    process::serve(LogStyle::Human, run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let store = lettermint_store::open(&config.database_url, OpenOptions::default()).await?;
    let backend = store.backend();
    let store = store.into_dyn();
    let (relay, target): (Arc<dyn Relay>, String) = match config.smarthost()? {
        Some(smarthost) => {
            let target =
                lettermint_delivery::relay::redact(config.smarthost.as_deref().unwrap_or_default());
            (Arc::new(SmtpRelay::new(smarthost)?), target)
        }
        None => {
            let maildir = MaildirRelay::new(&config.maildir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create the maildir {}: {e}",
                    config.maildir.display()
                )
            })?;
            let target = format!("maildir {}", maildir.dir().display());
            tracing::warn!(
                maildir = %maildir.dir().display(),
                "no smarthost configured: messages are written to the development maildir, \
                 not delivered"
            );
            (Arc::new(maildir), target)
        }
    };
    let admin = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (admin): {e}", config.admin_listen))?;
    let admin_addr = admin.local_addr()?;
    let worker = Worker::new(store.clone(), relay, Arc::new(SystemClock), config.worker());
    tracing::info!(%target, backend, admin = %admin_addr, "mail-worker started");
    say(&format!("delivering to {target}"));
    say(&format!("listening on http://{admin_addr} (admin)"));
    let admin_router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(move || async move { metrics.map(|m| m.render()).unwrap_or_default() }),
        )
        .with_state(store);
    let admin_task = tokio::spawn(axum::serve(admin, admin_router).into_future());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut delivering = tokio::spawn(async move { worker.run(stopped).await });
    tokio::select! {
        () = lettermint_runtime::signal::shutdown_requested() => {}
        // The loop ends only when asked to. Ended otherwise (a panic), the process must not
        // stay up looking healthy while it delivers nothing: it exits with an error for its
        // supervisor to restart it, and the messages it held come back when their lease ends.
        ended = &mut delivering => {
            admin_task.abort();
            let why = match ended {
                Err(e) if e.is_panic() => "it panicked (see the message above)",
                _ => "it returned without being asked to",
            };
            tracing::error!("the delivery loop stopped: {why}");
            anyhow::bail!("the delivery loop stopped: {why}");
        }
    }
    tracing::info!("shutting down: finishing the messages in hand");
    let _ = stop.send(true);
    // Messages in hand finish their attempt; one cut short stays claimed until its lease ends
    // and is then delivered again (at least once).
    if tokio::time::timeout(Duration::from_secs(90), &mut delivering)
        .await
        .is_err()
    {
        tracing::warn!("stopped with attempts in flight; they are retried when their lease ends");
    }
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn readyz(State(store): State<Arc<dyn Store>>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unreachable"),
    }
}
