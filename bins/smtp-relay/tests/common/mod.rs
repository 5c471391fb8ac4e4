//! Running the `smtp-relay` binary and talking to it: a plain-text SMTP client (the relay is
//! started with `--allow-insecure-auth`; TLS is covered by `tests/tls.rs` and the interop tests),
//! and fresh databases on SQLite or a throwaway PostgreSQL.

#![allow(dead_code)]

use std::sync::Arc;

use base64::Engine as _;
use lettermint_core::{MessageId, NewProject, ProjectId, Scope, Services, SystemClock};
use lettermint_testkit::process::{Binary, Running};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database, services on it, a project with SMTP enabled and one token.
pub struct World {
    pub url: String,
    pub services: Services,
    pub project: ProjectId,
    pub token: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn world(backend: Backend) -> World {
    let (url, dir) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (
                format!("sqlite://{}/lettermint.sqlite", dir.path().display()),
                Some(dir),
            )
        }
        Backend::Postgres => (
            lettermint_testkit::pg::shared().create_database().await,
            None,
        ),
    };
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions { max_connections: 4 })
        .await
        .unwrap()
        .into_dyn();
    let services = Services::new(store, Arc::new(SystemClock));
    let team = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let (project, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Mail".into(),
                smtp_enabled: true,
                first_token_name: Some("smtp".into()),
            },
        )
        .await
        .unwrap();
    World {
        url,
        services,
        project: project.id,
        token: first.unwrap().secret.expose_secret().to_owned(),
        _dir: dir,
    }
}

/// The compiled relay in its own process.
pub struct Relay {
    /// The STARTTLS listener, `host:port`.
    pub addr: String,
    process: Running,
}

impl Relay {
    pub fn spawn(url: &str) -> Self {
        let process = Binary::new(env!("CARGO_BIN_EXE_smtp-relay"))
            .args(["--database-url", url])
            // Every listener on a free port, so that relays of parallel tests never collide.
            .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0", "--allow-insecure-auth"])
            .env("LETTERMINT_LOG", "warn")
            .env("RUST_LOG", "warn")
            // STARTTLS, implicit TLS, admin.
            .listeners(3)
            .start();
        Self {
            addr: process.listener("smtp").addr.to_string(),
            process,
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A minimal SMTP client over plain TCP.
pub struct Client {
    reader: tokio::io::BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: &str) -> Self {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = Self {
            reader: tokio::io::BufReader::new(read),
            writer: write,
        };
        let (code, _) = client.reply().await;
        assert_eq!(code, 220);
        let (code, _) = client.command("EHLO tests.example").await;
        assert_eq!(code, 250);
        client
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return (0, text);
            }
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            text.push_str(line.trim_end());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text);
            }
            text.push('\n');
        }
    }

    pub async fn command(&mut self, line: &str) -> (u16, String) {
        if self
            .writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_err()
        {
            return (0, String::new());
        }
        self.reply().await
    }

    pub async fn auth(&mut self, token: &str) -> u16 {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0lettermint\0{token}"));
        self.command(&format!("AUTH PLAIN {credentials}")).await.0
    }

    /// One transaction; the message id of a 250, or the first refusing code.
    pub async fn send(&mut self, subject: &str) -> Result<MessageId, u16> {
        let (code, _) = self.command("MAIL FROM:<sender@example.com>").await;
        if code != 250 {
            return Err(code);
        }
        let (code, _) = self.command("RCPT TO:<rcpt@example.com>").await;
        if code != 250 {
            return Err(code);
        }
        let (code, _) = self.command("DATA").await;
        if code != 354 {
            return Err(code);
        }
        let body = format!(
            "From: sender@example.com\r\nTo: rcpt@example.com\r\nSubject: {subject}\r\n\r\nHello.\r\n."
        );
        let (code, text) = self.command(&body).await;
        if code != 250 {
            return Err(code);
        }
        Ok(text
            .rsplit(' ')
            .next()
            .and_then(|id| id.parse().ok())
            .expect("a message id in the 250"))
    }
}
