//! The SMTP session state machine, fed arbitrary bytes in-process.
//!
//! Each input is what a client sends on one connection: it runs through `Relay::session` over an
//! in-memory pipe (no socket), against an in-memory SQLite store with a project whose token the
//! placeholder `{AUTH}` in an input stands for (as the base64 `AUTH PLAIN` response), so inputs
//! get past authentication into `MAIL`, `RCPT` and `DATA`. Invariants: no panic and no hang;
//! every reply line is `NNN` + space or dash + text without control characters; every message the
//! relay queued is stored with no header-bound value that could start a header line.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use base64::Engine as _;
use lettermint_core::header::line_breaking_field;
use lettermint_core::{MessageId, NewProject, ProjectId, Scope, Services, SystemClock};
use smtp_relay::{Config, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

use super::{Outcome, Target, hash};

/// How long one session may take before it counts as a hang.
const SESSION_LIMIT: Duration = Duration::from_secs(10);

/// `cargo xtask fuzz smtp`.
pub struct SmtpTarget {
    runtime: Runtime,
    relay: Arc<Relay>,
    services: Services,
    project: ProjectId,
    auth: Vec<u8>,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget").finish_non_exhaustive()
    }
}

impl SmtpTarget {
    /// A relay on a fresh in-memory store with one SMTP-enabled project.
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (relay, services, project, token) = runtime.block_on(async {
            let store =
                lettermint_store::open("sqlite::memory:", lettermint_store::OpenOptions::default())
                    .await?
                    .into_dyn();
            let services = Services::new(store.clone(), Arc::new(SystemClock));
            let team = services.teams.create(Scope::Operator, "Fuzz").await?;
            let (project, issued) = services
                .projects
                .create(
                    Scope::Operator,
                    NewProject {
                        team_id: team.id,
                        name: "Fuzz".into(),
                        smtp_enabled: true,
                        first_token_name: Some("fuzz".into()),
                    },
                )
                .await?;
            let token = issued
                .map(|i| i.secret.expose_secret().to_owned())
                .unwrap_or_default();
            let config = Config {
                allow_insecure_auth: true,
                max_message_size: 64 * 1024,
                max_recipients: 5,
                max_auth_failures: 3,
                idle_timeout: Duration::from_secs(5),
                ..Config::default()
            };
            let (relay, _background) = smtp_relay::start(store, config, None);
            anyhow::Ok((relay, services, project.id, token))
        })?;
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("\0lettermint\0{token}"))
            .into_bytes();
        Ok(Self {
            runtime,
            relay,
            services,
            project,
            auth,
        })
    }
}

impl Target for SmtpTarget {
    fn name(&self) -> &'static str {
        "smtp"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"\r\n",
            b"\n",
            b"\r",
            b"\0",
            b"EHLO x\r\n",
            b"HELO x\r\n",
            b"AUTH PLAIN {AUTH}\r\n",
            b"AUTH LOGIN\r\n",
            b"AUTH PLAIN\r\n",
            b"*\r\n",
            b"MAIL FROM:<a@example.com>\r\n",
            b"MAIL FROM:<a@example.com> SIZE=99999999\r\n",
            b"RCPT TO:<b@example.com>\r\n",
            b"DATA\r\n",
            b"\r\n.\r\n",
            b"..",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"VRFY x\r\n",
            b"STARTTLS\r\n",
            b"QUIT\r\n",
            b"From: a@example.com\r\n",
            b"Subject: =?utf-8?b?aGkNCkJjYzogZXZpbEB4LmNvbQ==?=\r\n",
            b"X-LM-Tag: ",
            b"X-LM-Metadata-",
            b"X-Lettermint-Route: ",
            b"Idempotency-Key: ",
            b" folded\r\n",
            b"BDAT 10\r\n",
        ]
    }

    fn run(&mut self, input: &[u8]) -> Outcome {
        let input = substitute(input, b"{AUTH}", &self.auth);
        let relay = self.relay.clone();
        let output = self.runtime.block_on(async move {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let session = tokio::spawn(async move { relay.session(server, None).await });
            let exchange = async {
                let (mut read, mut write) = tokio::io::split(&mut client);
                let writing = async {
                    // The relay may close first (QUIT, too many failures): that is not an error.
                    let _ = write.write_all(&input).await;
                    let _ = write.shutdown().await;
                };
                let mut output = Vec::new();
                let reading = read.read_to_end(&mut output);
                let ((), read) = tokio::join!(writing, reading);
                read.map(|_| output)
            };
            let output = tokio::time::timeout(SESSION_LIMIT, exchange)
                .await
                .map_err(|_| "the session did not end within 10 s of the input".to_owned())?
                .map_err(|e| format!("reading the replies: {e}"))?;
            match tokio::time::timeout(SESSION_LIMIT, session).await {
                Err(_) => Err("the session task did not end".to_owned()),
                Ok(Err(join)) if join.is_panic() => Err("the session panicked".to_owned()),
                Ok(_) => Ok(output),
            }
        })?;
        let mut codes = Vec::new();
        let mut queued = Vec::new();
        for line in output.split_inclusive(|b| *b == b'\n') {
            let Some(text) = line.strip_suffix(b"\r\n") else {
                return Err(format!(
                    "a reply line does not end with CRLF: {}",
                    line.escape_ascii()
                ));
            };
            let well_formed = text.len() >= 4
                && text[..3].iter().all(u8::is_ascii_digit)
                && (text[3] == b' ' || text[3] == b'-')
                && !text.iter().any(|b| b.is_ascii_control());
            if !well_formed {
                return Err(format!("a malformed reply line: {}", text.escape_ascii()));
            }
            codes.extend_from_slice(&text[..4]);
            if let Some(id) = text.strip_prefix(b"250 2.0.0 Ok: queued as ") {
                queued.push(String::from_utf8_lossy(id).into_owned());
            }
        }
        for id in queued {
            let id: MessageId = id
                .parse()
                .map_err(|_| format!("a queued reply with a bad id: {id}"))?;
            let stored = self
                .runtime
                .block_on(self.services.messages.get(self.project, id))
                .map_err(|e| format!("queued message {id} cannot be read back: {e}"))?;
            if let Some(field) = line_breaking_field(&stored) {
                return Err(format!(
                    "message {id} was stored with a line break in {field}"
                ));
            }
        }
        // The behaviour: which replies were seen, not how many or in which order.
        let mut codes: Vec<&[u8]> = codes.chunks(4).collect();
        codes.sort_unstable();
        codes.dedup();
        Ok(hash(&codes.concat()))
    }
}

fn substitute(input: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
