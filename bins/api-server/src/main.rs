//! `api-server`: reads configuration, opens the store, serves until SIGTERM or SIGINT.

use std::process::ExitCode;

use api_server::config::{self, Cli, LogFormat};
use clap::Parser;
use lettermint_runtime::process::{self, LogStyle, say};
use lettermint_store::OpenOptions;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    process::serve(
        match config.log_format {
            LogFormat::Json => LogStyle::Json,
            LogFormat::Human => LogStyle::Human,
        },
        run(config),
    )
}

async fn run(config: config::Config) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let store = lettermint_store::open(
        &config.database_url,
        OpenOptions {
            max_connections: config.database_max_connections,
        },
    )
    .await?;
    let backend = store.backend();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr()?;
    let bootstrap = config.bootstrap;
    let (state, background) = api_server::start(store.into_dyn(), config, metrics);
    tracing::info!(%address, backend, "api-server started");
    say(&format!("listening on http://{address}"));
    let dashboard = state.config.dashboard;
    if dashboard {
        tracing::info!("dashboard on http://{address}/");
    }
    if bootstrap && let Some(first) = api_server::bootstrap(&state.services).await? {
        print_bootstrap(&first, address, dashboard);
    }
    api_server::serve(listener, state, background, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_bootstrap(first: &api_server::Bootstrap, address: std::net::SocketAddr, dashboard: bool) {
    say("");
    say(
        "First start: created a team, a project, two tokens and the team's owner. They are shown only now.",
    );
    say(&format!("  project token: {}", first.project_token));
    say(&format!("  team token: {}", first.team_token));
    if dashboard {
        say(&format!("  dashboard: http://{address}/"));
    } else {
        say("  dashboard: off (--no-dashboard); log in once it is on");
    }
    say(&format!("  dashboard login: {}", first.owner_email));
    say(&format!("  dashboard password: {}", first.owner_password));
    say("  (change the password under Account after logging in)");
    say("");
    say("Send a first mail:");
    say(&format!(
        "  curl -sS http://{address}/v1/send -H 'x-lettermint-token: {}' -H 'content-type: application/json' \\\n    -d '{{\"from\":\"Me <me@example.com>\",\"to\":[\"you@example.com\"],\"subject\":\"Hello\",\"text\":\"It works.\"}}'",
        first.project_token
    ));
    say("");
}

async fn shutdown_signal() {
    lettermint_runtime::signal::shutdown_requested().await;
    tracing::info!("shutting down: finishing in-flight requests");
}
