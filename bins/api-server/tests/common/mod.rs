//! Test harness: servers on real sockets, in this process or as the compiled binary, on
//! SQLite (temp file) or a throwaway PostgreSQL.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api_server::config::Config;
use lettermint_core::{Services, SystemClock};
use lettermint_store::OpenOptions;
use lettermint_testkit::process::{Binary, Running};
use serde_json::Value;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of `backend`; the guard keeps a SQLite file's directory alive.
pub async fn database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/lettermint.sqlite", dir.path().display());
            (url, Some(dir))
        }
        Backend::Postgres => (
            lettermint_testkit::pg::shared().create_database().await,
            None,
        ),
    }
}

/// Services on the same database, for checking what the server stored.
pub async fn services(url: &str) -> Services {
    let store = lettermint_store::open(url, OpenOptions { max_connections: 4 })
        .await
        .unwrap();
    Services::new(store.into_dyn(), Arc::new(SystemClock))
}

/// A server running inside the test process.
pub struct TestServer {
    pub base: String,
    pub project_token: String,
    pub team_token: String,
    pub url: String,
    pub services: Services,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        let (url, dir) = database(backend).await;
        let mut config = Config {
            database_url: url.clone(),
            ..Config::default()
        };
        configure(&mut config);
        let store = lettermint_store::open(&url, OpenOptions::default())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, background) = api_server::start(store.into_dyn(), config, None);
        let first = api_server::bootstrap(&state.services)
            .await
            .unwrap()
            .unwrap();
        let services = state.services.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            api_server::serve(listener, state, background, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            project_token: first.project_token,
            team_token: first.team_token,
            url,
            services,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Graceful shutdown: waits until in-flight work is committed and usage flushed.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// The compiled `api-server` binary, in its own process, with the tokens it printed if it
/// bootstrapped an empty store.
pub struct Process {
    pub base: String,
    pub project_token: Option<String>,
    pub team_token: Option<String>,
    process: Running,
}

impl Process {
    pub fn spawn(url: &str, extra: &[&str]) -> Self {
        let mut process = Binary::new(env!("CARGO_BIN_EXE_api-server"))
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .args(extra)
            .env("LETTERMINT_LOG", "warn")
            .listeners(1)
            .start();
        let base = process.listener("http").url();
        // The bootstrap, if any, follows the listener line at once; a store that needs none
        // prints nothing more.
        let (mut project_token, mut team_token) = (None, None);
        let mut wait = Duration::from_millis(200);
        while let Some(line) = process.next_line(wait) {
            // Once the bootstrap has begun, the rest of it is coming.
            wait = Duration::from_secs(60);
            let line = line.trim();
            if let Some(t) = line.strip_prefix("project token: ") {
                project_token = Some(t.to_owned());
            } else if let Some(t) = line.strip_prefix("team token: ") {
                team_token = Some(t.to_owned());
                break;
            }
        }
        Self {
            base,
            project_token,
            team_token,
            process,
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM and wait for exit; the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process.terminate()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

pub fn mail(subject: &str) -> Value {
    serde_json::json!({
        "from": "Shop <shop@example.com>",
        "to": ["customer@example.com"],
        "subject": subject,
        "text": "Thanks for your order.",
        "metadata": {"order": "42"},
        "tag": "receipt"
    })
}

pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}
