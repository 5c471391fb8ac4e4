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
    /// The dashboard owner the bootstrap created, and its generated password.
    pub owner_email: String,
    pub owner_password: String,
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
            owner_email: first.owner_email,
            owner_password: first.owner_password,
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
    /// The bootstrap owner's dashboard login and password.
    pub owner: Option<(String, String)>,
    process: Running,
}

impl Process {
    pub fn spawn(url: &str, extra: &[&str]) -> Self {
        Self::spawn_with_env(url, extra, &[])
    }

    /// [`Process::spawn`] with more environment variables.
    pub fn spawn_with_env(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut binary = Binary::new(env!("CARGO_BIN_EXE_api-server"))
            .args(["--listen", "127.0.0.1:0", "--database-url", url])
            .args(extra)
            .env("LETTERMINT_LOG", "warn");
        for (name, value) in env {
            binary = binary.env(name, value);
        }
        let mut process = binary.listeners(1).start();
        let base = process.listener("http").url();
        // The bootstrap, if any, follows the listener line at once; a store that needs none
        // prints nothing more.
        let (mut project_token, mut team_token, mut login) = (None, None, None);
        let mut owner = None;
        let mut wait = Duration::from_millis(1000);
        while let Some(line) = process.next_line(wait) {
            // Once the bootstrap has begun, the rest of it is coming.
            wait = Duration::from_secs(60);
            let line = line.trim();
            if let Some(t) = line.strip_prefix("project token: ") {
                project_token = Some(t.to_owned());
            } else if let Some(t) = line.strip_prefix("team token: ") {
                team_token = Some(t.to_owned());
            } else if let Some(t) = line.strip_prefix("dashboard login: ") {
                login = Some(t.to_owned());
            } else if let Some(t) = line.strip_prefix("dashboard password: ") {
                owner = login.take().map(|l| (l, t.to_owned()));
                break;
            }
        }
        Self {
            base,
            project_token,
            team_token,
            owner,
            process,
        }
    }

    /// What the process wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        self.process.stderr()
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

/// A key pair made for the test, that signs leak reports the way GitHub does.
pub struct LeakSigner {
    pub id: String,
    key: p256::ecdsa::SigningKey,
}

impl LeakSigner {
    pub fn new(id: &str) -> Self {
        use p256::elliptic_curve::Generate as _;
        Self {
            id: id.to_owned(),
            key: p256::ecdsa::SigningKey::generate(),
        }
    }

    /// The configuration entry of its public key.
    pub fn config_key(&self) -> api_server::config::LeakReportKey {
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        api_server::config::LeakReportKey {
            id: self.id.clone(),
            pem_file: None,
            pem: Some(
                self.key
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap(),
            ),
        }
    }

    /// Base64 ASN.1 DER ECDSA P-256 / SHA-256 signature of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        use base64::Engine as _;
        use p256::ecdsa::signature::Signer as _;
        let signature: p256::ecdsa::DerSignature = self.key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(signature.as_bytes())
    }

    /// A signed `POST /v1/secret-scanning/report` of `body`.
    pub fn request(
        &self,
        http: &reqwest::Client,
        base: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        http.post(format!("{base}/v1/secret-scanning/report"))
            .header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", &self.id)
            .header("Github-Public-Key-Signature", self.sign(body))
            .body(body.to_vec())
    }
}

/// A report body in GitHub's format.
pub fn leak_report(values: &[&str]) -> Vec<u8> {
    let items: Vec<Value> = values
        .iter()
        .map(|v| {
            serde_json::json!({
                "token": v,
                "type": "lettermint_api_token",
                "url": "https://github.com/octo/app/blob/0123abc/.env",
                "source": "content"
            })
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}
