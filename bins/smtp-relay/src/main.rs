//! `smtp-relay`: opens the store, listens for SMTP submission (STARTTLS and implicit TLS) and
//! serves until SIGTERM or SIGINT.

mod config;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use lettermint_runtime::process::{self, LogStyle, say};
use lettermint_store::OpenOptions;
use smtp_relay::Relay;
use smtp_relay::tls::Identity;
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
    let identity = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => Identity::from_pem_files(cert, key)?,
        _ => {
            let identity = Identity::self_signed(vec![config.hostname.clone()])?;
            tracing::warn!(
                sha256 = %identity.fingerprint(),
                "no --cert/--key: using a self-signed certificate generated at start-up"
            );
            identity
        }
    };
    let acceptor = identity.acceptor()?;
    let store = lettermint_store::open(&config.database_url, OpenOptions::default()).await?;
    let backend = store.backend();
    let starttls = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let implicit = TcpListener::bind(config.tls_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.tls_listen))?;
    // Health and metrics are how operators see the relay: a relay that cannot serve them does
    // not start, like one that cannot listen for mail.
    let admin =
        Some(TcpListener::bind(config.admin_listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (admin): {e}", config.admin_listen)
        })?);
    let (relay, background) = smtp_relay::start(store.into_dyn(), config.relay(), Some(acceptor));
    let (starttls_addr, implicit_addr) = (starttls.local_addr()?, implicit.local_addr()?);
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
    tracing::info!(
        starttls = %starttls_addr,
        implicit_tls = %implicit_addr,
        admin = ?admin_addr,
        backend,
        "smtp-relay started"
    );
    say(&format!("listening on smtp://{starttls_addr} (STARTTLS)"));
    say(&format!(
        "listening on smtps://{implicit_addr} (implicit TLS)"
    ));
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin.zip(admin_addr).map(|(admin, admin_addr)| {
        say(&format!("listening on http://{admin_addr} (admin)"));
        tokio::spawn(
            axum::serve(admin, smtp_relay::admin::router(relay.clone(), metrics))
                .with_graceful_shutdown(async {
                    let _ = admin_stopped.await;
                })
                .into_future(),
        )
    });
    if let (Some(cert), Some(key)) = (config.cert.clone(), config.key.clone()) {
        tokio::spawn(reload_on_sighup(relay.clone(), cert, key));
    }
    let (abort, aborted) = tokio::sync::watch::channel(false);
    tokio::select! {
        () = accept(starttls, relay.clone(), false, aborted.clone()) => {},
        () = accept(implicit, relay.clone(), true, aborted) => {},
        () = shutdown_signal() => {},
    }
    // The listeners are dropped: no new sessions. Idle sessions are answered `421 4.3.2`;
    // messages being received get the grace period to finish.
    relay.shutdown();
    let grace = config.shutdown_grace();
    let drained = tokio::time::timeout(grace, async {
        while relay.active_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = relay.active_sessions(),
            "grace period over; closing the remaining sessions"
        );
        abort.send_replace(true);
    }
    let _ = admin_stop.send(());
    if let Some(admin_task) = admin_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), admin_task).await;
    }
    drop(relay);
    if tokio::time::timeout(Duration::from_secs(30), background.finish())
        .await
        .is_err()
    {
        tracing::warn!("stopped before pending commits and usage were written");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn accept(
    listener: TcpListener,
    relay: Arc<Relay>,
    implicit_tls: bool,
    aborted: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                // Replies to pipelined commands are small writes in a row: without this, Nagle's
                // algorithm holds the second until the client's delayed ACK (~40 ms).
                let _ = accepted.0.set_nodelay(true);
                accepted
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let relay = relay.clone();
        let mut aborted = aborted.clone();
        let span = tracing::info_span!("session", id = %uuid::Uuid::now_v7(), %peer, implicit_tls);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let session = async {
                    if implicit_tls {
                        relay.tls_session(stream, Some(peer.ip())).await
                    } else {
                        relay.session(stream, Some(peer.ip())).await
                    }
                };
                // After the shutdown grace period, a session still open is dropped.
                let result = tokio::select! {
                    result = session => result,
                    _ = aborted.wait_for(|stop| *stop) => Ok(()),
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "session ended with an error");
                }
            },
            span,
        ));
    }
}

/// Reloads the certificate and key from their files on SIGHUP; new TLS handshakes use them,
/// sessions already encrypted keep theirs. A file that does not load leaves the old ones.
async fn reload_on_sighup(relay: Arc<Relay>, cert: PathBuf, key: PathBuf) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        match Identity::from_pem_files(&cert, &key) {
            Ok(identity) => {
                let fingerprint = identity.fingerprint();
                match identity.acceptor() {
                    Ok(acceptor) => {
                        relay.reload_tls(acceptor);
                        tracing::info!(sha256 = %fingerprint, "reloaded the TLS certificate");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the new certificate does not fit its key; keeping the old one")
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the TLS certificate; keeping the old one")
            }
        }
    }
}

async fn shutdown_signal() {
    lettermint_runtime::signal::shutdown_requested().await;
    tracing::info!("shutting down");
}
