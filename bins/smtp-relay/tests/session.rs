//! SMTP sessions over an in-memory pipe, against a real SQLite store.

use std::sync::Arc;

use base64::Engine as _;
use lettermint_core::{
    Channel, DEFAULT_ROUTE_SLUG, MessageContent, MessageId, NewProject, ProjectId, Scope, Services,
    SystemClock, TokenId,
};
use smtp_relay::{Config, Relay};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};

struct World {
    _dir: tempfile::TempDir,
    services: Services,
    relay: Arc<Relay>,
    project: ProjectId,
    token_id: TokenId,
    token: String,
}

async fn world(config: Config) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions::default())
        .await
        .unwrap()
        .into_dyn();
    let services = Services::new(store.clone(), Arc::new(SystemClock));
    let team = services
        .teams
        .create(Scope::Operator, "Acme")
        .await
        .unwrap();
    let (project, issued) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Shop".into(),
                smtp_enabled: true,
                first_token_name: Some("smtp".into()),
            },
        )
        .await
        .unwrap();
    let issued = issued.unwrap();
    let (relay, _background) = smtp_relay::start(store, config, None);
    World {
        _dir: dir,
        services,
        relay,
        project: project.id,
        token_id: issued.token.id,
        token: issued.secret.expose_secret().to_owned(),
    }
}

fn insecure() -> Config {
    Config {
        allow_insecure_auth: true,
        ..Config::default()
    }
}

struct Client {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
}

impl Client {
    async fn connect(relay: &Arc<Relay>) -> Self {
        Self::connect_from(relay, None).await
    }

    async fn connect_from(relay: &Arc<Relay>, peer: Option<std::net::IpAddr>) -> Self {
        let mut client = Self::open(relay, peer);
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    /// A session without reading the greeting.
    fn open(relay: &Arc<Relay>, peer: Option<std::net::IpAddr>) -> Self {
        let (client, server) = tokio::io::duplex(1 << 16);
        let relay = relay.clone();
        tokio::spawn(async move {
            let _ = relay.session(server, peer).await;
        });
        let (read, writer) = tokio::io::split(client);
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Whether the relay closed the session (nothing more to read).
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest).await, Ok(0) | Err(_))
    }

    /// Reads one reply (every line of a multiline reply).
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).await.unwrap();
            assert!(n > 0, "connection closed; got so far: {all:?}");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }

    async fn send(&mut self, raw: &str) {
        self.writer.write_all(raw.as_bytes()).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    async fn login(&mut self, token: &str) {
        assert!(self.cmd("EHLO client.example").await.starts_with("250-"));
        let reply = self
            .cmd(&format!("AUTH PLAIN {}", plain("lettermint", token)))
            .await;
        assert_eq!(reply, "235 2.7.0 Authentication successful\r\n");
    }

    /// MAIL, RCPT and DATA with `body` (already CRLF-terminated lines); the final reply.
    async fn submit(&mut self, body: &str) -> String {
        assert_eq!(
            self.cmd("MAIL FROM:<me@example.com>").await,
            "250 2.1.0 Ok\r\n"
        );
        assert_eq!(
            self.cmd("RCPT TO:<you@example.com>").await,
            "250 2.1.5 Ok\r\n"
        );
        assert!(self.cmd("DATA").await.starts_with("354 "));
        self.send(body).await;
        self.cmd(".").await
    }
}

fn plain(user: &str, password: &str) -> String {
    b64(&format!("\0{user}\0{password}"))
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn queued_id(reply: &str) -> MessageId {
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {reply}"))
        .trim();
    id.parse().unwrap()
}

const SIMPLE: &str =
    "From: Me <me@example.com>\r\nTo: you@example.com\r\nSubject: Hello\r\n\r\nHi.\r\n";

#[tokio::test]
async fn without_tls_auth_is_not_offered_and_refused() {
    let w = world(Config::default()).await;
    let mut c = Client::connect(&w.relay).await;
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.contains("250-PIPELINING\r\n"), "{ehlo}");
    assert!(ehlo.contains("250-8BITMIME\r\n"), "{ehlo}");
    assert!(ehlo.contains("250-SMTPUTF8\r\n"), "{ehlo}");
    assert!(ehlo.contains(&format!("SIZE {}", Config::default().max_message_size)));
    assert!(ehlo.contains("ENHANCEDSTATUSCODES"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await,
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(c.cmd("STARTTLS").await, "454 4.7.0 TLS not available\r\n");
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
}

#[tokio::test]
async fn a_message_is_stored_without_instruction_headers() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    let ehlo = c.cmd("EHLO client.example").await;
    assert!(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    let reply = c
        .cmd(&format!("AUTH PLAIN {}", plain("LetterMint", &w.token)))
        .await;
    assert_eq!(reply, "235 2.7.0 Authentication successful\r\n");
    let body = format!(
        "From: Me <me@example.com>\r\nTo: you@example.com\r\nSubject: Hello\r\nX-LM-Tag: welcome\r\nX-LM-Metadata-user: 42\r\nX-Lettermint-Route: {DEFAULT_ROUTE_SLUG}\r\n\r\nHi.\r\n..leading dot\r\n"
    );
    let reply = c.submit(&body).await;
    let id = queued_id(&reply);
    let stored = w.services.messages.get(w.project, id).await.unwrap();
    assert_eq!(stored.via, Channel::Smtp);
    assert_eq!(stored.token_id, w.token_id);
    assert_eq!(stored.envelope_from, "me@example.com");
    assert_eq!(stored.envelope_to, vec!["you@example.com".to_owned()]);
    assert_eq!(stored.subject.as_deref(), Some("Hello"));
    assert_eq!(stored.tag.as_deref(), Some("welcome"));
    assert_eq!(stored.metadata.get("user").map(String::as_str), Some("42"));
    assert_eq!(
        stored.content,
        MessageContent::Mime(
            b"From: Me <me@example.com>\r\nTo: you@example.com\r\nSubject: Hello\r\n\r\nHi.\r\n.leading dot\r\n"
                .to_vec()
        )
    );
    // A second transaction in the same session.
    let second = queued_id(&c.submit(SIMPLE).await);
    assert_ne!(second, id);
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
}

#[tokio::test]
async fn every_authentication_failure_has_the_same_answer() {
    let w = world(Config {
        max_auth_failures: 10,
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    c.cmd("EHLO client.example").await;
    let invalid = "535 5.7.8 Authentication credentials invalid\r\n";
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("someone", &w.token)))
            .await,
        invalid
    );
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", "lm_nope")))
            .await,
        invalid
    );
    let unknown = format!("lm_{}", "A".repeat(w.token.len() - 3));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &unknown)))
            .await,
        invalid
    );
    assert_eq!(c.cmd("AUTH PLAIN !!!notbase64").await, invalid);
    assert_eq!(
        c.cmd("AUTH CRAM-MD5").await,
        "504 5.5.4 Mechanism not supported; use PLAIN or LOGIN\r\n"
    );
    // Cancelled.
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd("*").await, "501 5.0.0 Authentication cancelled\r\n");
    // PLAIN with a continuation.
    assert_eq!(c.cmd("AUTH PLAIN").await, "334 \r\n");
    assert_eq!(
        c.cmd(&plain("lettermint", &w.token)).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(
        c.cmd("AUTH PLAIN x").await,
        "503 5.5.1 Already authenticated\r\n"
    );
}

#[tokio::test]
async fn auth_login_works() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.cmd("EHLO client.example").await;
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6\r\n");
    assert_eq!(c.cmd(&b64("lettermint")).await, "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(
        c.cmd(&b64(&w.token)).await,
        "235 2.7.0 Authentication successful\r\n"
    );
    queued_id(&c.submit(SIMPLE).await);
}

#[tokio::test]
async fn revocation_stops_an_open_session_at_the_next_transaction() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    queued_id(&c.submit(SIMPLE).await);
    w.services
        .project_tokens
        .revoke(Scope::Operator, None, w.token_id)
        .await
        .unwrap();
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    // Nothing more is accepted in this session.
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await,
        "530 5.7.0 Authentication required\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    // A new session with the revoked token is refused at AUTH.
    let mut d = Client::connect(&w.relay).await;
    d.cmd("EHLO client.example").await;
    assert_eq!(
        d.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await,
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
}

#[tokio::test]
async fn content_errors_have_their_codes() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert_eq!(
        c.submit("Subject: no sender\r\n\r\nHi.\r\n").await,
        "554 5.6.0 Message has no valid From header\r\n"
    );
    assert_eq!(
        c.submit("From: me@example.com\r\nX-Lettermint-Route: nope\r\n\r\nHi.\r\n")
            .await,
        "550 5.7.1 Unknown route nope\r\n"
    );
    // The session goes on.
    queued_id(&c.submit(SIMPLE).await);
}

#[tokio::test]
async fn limits_have_their_codes() {
    let w = world(Config {
        max_message_size: 100,
        max_recipients: 2,
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com> SIZE=101").await,
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com> SIZE=100").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.cmd("RCPT TO:<a@example.com>").await, "250 2.1.5 Ok\r\n");
    assert_eq!(c.cmd("RCPT TO:<b@example.com>").await, "250 2.1.5 Ok\r\n");
    assert_eq!(
        c.cmd("RCPT TO:<c@example.com>").await,
        "452 4.5.3 Too many recipients\r\n"
    );
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(&format!(
        "From: me@example.com\r\n\r\n{}\r\n",
        "x".repeat(200)
    ))
    .await;
    assert_eq!(
        c.cmd(".").await,
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    );
    assert_eq!(
        c.cmd(&format!("NOOP {}", "x".repeat(5000))).await,
        "500 5.5.2 Line too long\r\n"
    );
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok\r\n");
}

#[tokio::test]
async fn other_verbs_and_sequence_errors() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "503 5.5.1 Send EHLO or HELO first\r\n"
    );
    assert_eq!(c.cmd("HELO client.example").await, "250 localhost\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
    c.login(&w.token).await;
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok\r\n");
    assert!(c.cmd("VRFY someone").await.starts_with("252 2.5.0 "));
    assert!(c.cmd("HELP").await.starts_with("214 2.0.0 "));
    assert_eq!(
        c.cmd("RCPT TO:<you@example.com>").await,
        "503 5.5.1 Need MAIL before RCPT\r\n"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need MAIL before DATA\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 Need RCPT before DATA\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "503 5.5.1 Nested MAIL command\r\n"
    );
    assert_eq!(c.cmd("RSET").await, "250 2.0.0 Ok\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(
        c.cmd("FROBNICATE").await,
        "500 5.5.1 Command unrecognized\r\n"
    );
    assert_eq!(c.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    c.send("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.1.0 Ok\r\n");
    assert_eq!(c.reply().await, "250 2.1.5 Ok\r\n");
    assert_eq!(c.reply().await, "250 2.1.5 Ok\r\n");
    assert!(c.reply().await.starts_with("354 "));
    c.send(SIMPLE).await;
    let id = queued_id(&c.cmd(".").await);
    let stored = w.services.messages.get(w.project, id).await.unwrap();
    assert_eq!(stored.envelope_to.len(), 2);
}

#[tokio::test]
async fn revocation_during_data_is_refused_by_the_commit() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.cmd("RCPT TO:<you@example.com>").await, "250 2.1.5 Ok\r\n");
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(SIMPLE).await;
    w.services
        .project_tokens
        .revoke(Scope::Operator, None, w.token_id)
        .await
        .unwrap();
    assert_eq!(c.cmd(".").await, "530 5.7.0 Authentication required\r\n");
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "530 5.7.0 Authentication required\r\n"
    );
}

#[tokio::test]
async fn only_crlf_dot_crlf_ends_the_data() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    assert_eq!(c.cmd("RCPT TO:<you@example.com>").await, "250 2.1.5 Ok\r\n");
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(
        "From: me@example.com\r\n\r\nbare\n.\nstill content\n.\r\nMAIL FROM:<x@example.com>\r\n",
    )
    .await;
    let id = queued_id(&c.cmd(".").await);
    let stored = w.services.messages.get(w.project, id).await.unwrap();
    assert_eq!(
        stored.content,
        MessageContent::Mime(
            // Not ends of data, but still dot-unstuffed lines.
            b"From: me@example.com\r\n\r\nbare\n\nstill content\n\r\nMAIL FROM:<x@example.com>\r\n"
                .to_vec()
        )
    );
}

#[tokio::test]
async fn a_project_without_smtp_is_refused_at_auth() {
    let w = world(insecure()).await;
    w.services
        .projects
        .update(
            Scope::Operator,
            w.project,
            lettermint_core::ProjectUpdate {
                name: None,
                smtp_enabled: Some(false),
            },
        )
        .await
        .unwrap();
    let mut c = Client::connect(&w.relay).await;
    c.cmd("EHLO client.example").await;
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await,
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
}

#[tokio::test]
async fn authentication_messages_and_refusals_reach_the_token_log() {
    use lettermint_core::page::{Direction, LogSortKey, PageRequest, Sort};
    use lettermint_core::{Action, LogFilter, Outcome};
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    let id = queued_id(&c.submit(SIMPLE).await);
    w.services
        .project_tokens
        .revoke(Scope::Operator, None, w.token_id)
        .await
        .unwrap();
    assert!(
        c.cmd("MAIL FROM:<me@example.com>")
            .await
            .starts_with("530 ")
    );
    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = w
            .services
            .project_tokens
            .logs(
                Scope::Operator,
                None,
                w.token_id,
                &LogFilter::default(),
                &PageRequest::first(
                    100,
                    Sort {
                        key: LogSortKey::At,
                        direction: Direction::Ascending,
                    },
                ),
            )
            .await
            .unwrap()
            .items;
        if entries.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen: Vec<_> = entries
        .iter()
        .map(|e| (e.via, e.action, e.outcome, e.status, e.message_ids.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Channel::Smtp,
                Action::SmtpAuth,
                Outcome::Accepted,
                235,
                vec![]
            ),
            (
                Channel::Smtp,
                Action::SmtpMessage,
                Outcome::Accepted,
                250,
                vec![id]
            ),
            (
                Channel::Smtp,
                Action::SmtpMessage,
                Outcome::RejectedRevoked,
                530,
                vec![]
            ),
        ]
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    let body = "From: me@example.com\r\nIdempotency-Key: order-1\r\nSubject: Once\r\n\r\nHi.\r\n";
    let first = c.submit(body).await;
    let id = queued_id(&first);
    assert_eq!(c.submit(body).await, first);
    let stored = w.services.messages.get(w.project, id).await.unwrap();
    assert_eq!(stored.idempotency_key.as_deref(), Some("order-1"));
    assert_eq!(
        stored.content,
        MessageContent::Mime(b"From: me@example.com\r\nSubject: Once\r\n\r\nHi.\r\n".to_vec())
    );
    assert_eq!(
        c.submit(
            "From: me@example.com\r\nIdempotency-Key: order-1\r\nSubject: Other\r\n\r\nHi.\r\n"
        )
        .await,
        "554 5.6.0 This Idempotency-Key was already used with a different message\r\n"
    );
    assert_eq!(
        c.submit("From: me@example.com\r\nX-LM-Tag: not;valid\r\n\r\nHi.\r\n")
            .await,
        "554 5.6.0 Invalid X-LM-Tag header: must be words of letters, digits, `_` and `-` separated by single spaces (at most 255 characters)\r\n"
    );
}

#[tokio::test]
async fn instruction_headers_that_could_break_a_header_line_are_refused_by_name() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    // One case per header the relay reads; each value could end a header line, or hides
    // something a header must not hold.
    for (header, reply) in [
        (
            "X-LM-Tag: wel\0come",
            "Invalid X-LM-Tag header: must not contain NUL characters",
        ),
        (
            "X-Lettermint-Route: default\x07",
            "Invalid X-Lettermint-Route header: must not contain control characters",
        ),
        (
            "X-LM-Metadata-user: 4\x002",
            "Invalid X-LM-Metadata-user header: must not contain NUL characters",
        ),
        (
            "X-LM-Metadata-us\x1ber: 42",
            "Invalid X-LM-Metadata- header: must not contain control characters",
        ),
        (
            "Idempotency-Key: key\x7f",
            "Invalid Idempotency-Key header: must not contain control characters",
        ),
        // "hi\r\nBcc: evil@x.com" as an encoded word: the decoded subject is checked.
        (
            "Subject: =?utf-8?b?aGkNCkJjYzogZXZpbEB4LmNvbQ==?=",
            "Invalid Subject header: must not contain line breaks (CR or LF)",
        ),
    ] {
        let got = c
            .submit(&format!(
                "From: me@example.com\r\n{header}\r\nTo: you@example.com\r\n\r\nHi.\r\n"
            ))
            .await;
        assert!(
            got.starts_with(&format!("554 5.6.0 {reply}")),
            "{header:?}: {got:?}"
        );
    }
    // The session goes on, and accepts the same headers with clean values.
    let id = queued_id(
        &c.submit(
            "From: me@example.com\r\nX-LM-Tag: welcome\r\nX-LM-Metadata-user: 42\r\nSubject: =?utf-8?q?hi_there?=\r\n\r\nHi.\r\n",
        )
        .await,
    );
    let stored = w.services.messages.get(w.project, id).await.unwrap();
    assert_eq!(stored.subject.as_deref(), Some("hi there"));
    assert_eq!(lettermint_core::header::line_breaking_field(&stored), None);
}

fn ip(text: &str) -> Option<std::net::IpAddr> {
    Some(text.parse().unwrap())
}

#[tokio::test]
async fn connections_beyond_the_limits_are_refused() {
    let w = world(Config {
        max_connections: 3,
        max_connections_per_ip: 2,
        ..insecure()
    })
    .await;
    let _a = Client::connect_from(&w.relay, ip("192.0.2.1")).await;
    let _b = Client::connect_from(&w.relay, ip("192.0.2.1")).await;
    let mut c = Client::open(&w.relay, ip("192.0.2.1"));
    assert_eq!(
        c.reply().await,
        "421 4.7.0 localhost Too many connections, try again later\r\n"
    );
    assert!(c.closed().await);
    let mut d = Client::connect_from(&w.relay, ip("192.0.2.2")).await;
    let mut e = Client::open(&w.relay, ip("192.0.2.3"));
    assert_eq!(
        e.reply().await,
        "421 4.7.0 localhost Too many connections, try again later\r\n"
    );
    assert!(e.closed().await);
    // A session that ends frees its place.
    assert_eq!(d.cmd("QUIT").await, "221 2.0.0 Bye\r\n");
    assert!(d.closed().await);
    let mut freed = false;
    for _ in 0..50 {
        if w.relay.active_sessions() < 3 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed);
    Client::connect_from(&w.relay, ip("192.0.2.3")).await;
}

#[tokio::test]
async fn too_many_failed_authentications_close_the_session() {
    let w = world(Config {
        max_auth_failures: 3,
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    c.cmd("EHLO client.example").await;
    let wrong = format!("AUTH PLAIN {}", plain("lettermint", "lm_nope"));
    let invalid = "535 5.7.8 Authentication credentials invalid\r\n";
    assert_eq!(c.cmd(&wrong).await, invalid);
    assert_eq!(c.cmd(&wrong).await, invalid);
    assert_eq!(
        c.cmd(&wrong).await,
        "421 4.7.0 localhost Too many failed authentication attempts\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn too_many_messages_close_the_session() {
    let w = world(Config {
        max_messages_per_session: 2,
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    queued_id(&c.submit(SIMPLE).await);
    assert!(
        c.submit("Subject: no sender\r\n\r\nHi.\r\n")
            .await
            .starts_with("554 ")
    );
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "421 4.7.0 localhost Too many messages in this session, reconnect\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn an_idle_session_times_out() {
    let w = world(Config {
        idle_timeout: std::time::Duration::from_millis(200),
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok\r\n");
    assert_eq!(
        c.reply().await,
        "421 4.4.2 localhost Timeout waiting for the client, closing\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn slow_data_times_out() {
    let w = world(Config {
        idle_timeout: std::time::Duration::from_secs(5),
        data_timeout: std::time::Duration::from_millis(400),
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    c.cmd("MAIL FROM:<me@example.com>").await;
    c.cmd("RCPT TO:<you@example.com>").await;
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send("From: me@example.com\r\n\r\n").await;
    // Trickling keeps it from being idle, not from the DATA deadline.
    let trickle = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if c.writer.write_all(b"more\r\n").await.is_err() {
                break;
            }
        }
    };
    let mut reply = String::new();
    tokio::select! {
        () = trickle => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(3)) => {}
    }
    c.reader.read_line(&mut reply).await.unwrap();
    assert_eq!(
        reply,
        "421 4.4.2 localhost Timeout waiting for the message data, closing\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn a_session_has_a_lifetime() {
    let w = world(Config {
        session_timeout: std::time::Duration::from_millis(600),
        idle_timeout: std::time::Duration::from_secs(5),
        ..insecure()
    })
    .await;
    let mut c = Client::connect(&w.relay).await;
    // Activity does not extend the lifetime.
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(c.cmd("NOOP").await, "250 2.0.0 Ok\r\n");
    }
    assert_eq!(
        c.reply().await,
        "421 4.4.2 localhost Session time limit reached, closing\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_and_lets_data_finish() {
    let w = world(insecure()).await;
    let mut idle = Client::connect(&w.relay).await;
    let mut busy = Client::connect(&w.relay).await;
    busy.login(&w.token).await;
    busy.cmd("MAIL FROM:<me@example.com>").await;
    busy.cmd("RCPT TO:<you@example.com>").await;
    assert!(busy.cmd("DATA").await.starts_with("354 "));
    busy.send(SIMPLE).await;
    w.relay.shutdown();
    assert_eq!(idle.reply().await, "421 4.3.2 Shutting down\r\n");
    assert!(idle.closed().await);
    queued_id(&busy.cmd(".").await);
    assert_eq!(busy.reply().await, "421 4.3.2 Shutting down\r\n");
    assert!(busy.closed().await);
}

#[tokio::test]
async fn content_refusals_reach_the_token_log() {
    use lettermint_core::page::{Direction, LogSortKey, PageRequest, Sort};
    use lettermint_core::{Action, LogFilter, Outcome};
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert!(
        c.submit("Subject: no sender\r\n\r\nHi.\r\n")
            .await
            .starts_with("554 ")
    );
    assert!(
        c.submit("From: me@example.com\r\nX-Lettermint-Route: nope\r\n\r\nHi.\r\n")
            .await
            .starts_with("550 ")
    );
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = w
            .services
            .project_tokens
            .logs(
                Scope::Operator,
                None,
                w.token_id,
                &LogFilter::default(),
                &PageRequest::first(
                    100,
                    Sort {
                        key: LogSortKey::At,
                        direction: Direction::Ascending,
                    },
                ),
            )
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| (e.action, e.outcome, e.status))
            .collect();
        if seen.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen,
        vec![
            (Action::SmtpAuth, Outcome::Accepted, 235),
            (Action::SmtpMessage, Outcome::InvalidRequest, 554),
            (Action::SmtpMessage, Outcome::InvalidRequest, 550),
        ]
    );
}

/// One HTTP/1.1 GET against `addr`; the whole response.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn the_admin_listener_answers_health_readiness_and_metrics() {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let w = world(insecure()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = smtp_relay::admin::router(w.relay.clone(), handle.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut c = Client::connect(&w.relay).await;
    c.cmd("EHLO client.example").await;
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", "lm_nope")))
            .await
            .starts_with("535 ")
    );
    c.login(&w.token).await;
    queued_id(&c.submit(SIMPLE).await);

    let health = http_get(addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with(r#"{"status":"ok"}"#), "{health}");
    let ready = http_get(addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    if handle.is_some() {
        let metrics = http_get(addr, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        for name in [
            "lettermint_smtp_sessions_opened_total",
            "lettermint_smtp_sessions_active",
            "lettermint_smtp_auth_failures_total{reason=",
            "lettermint_smtp_messages_accepted_total",
            "lettermint_smtp_replies_total{class=\"2xx\"}",
        ] {
            assert!(metrics.contains(name), "{name} missing in {metrics}");
        }
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped() {
    let w = world(Config {
        write_timeout: std::time::Duration::from_millis(200),
        ..insecure()
    })
    .await;
    // A small pipe: replies the client never reads fill it.
    let (mut client, server) = tokio::io::duplex(256);
    let relay = w.relay.clone();
    let session = tokio::spawn(async move { relay.session(server, None).await });
    let noops = "NOOP\r\n".repeat(200);
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.write_all(noops.as_bytes()),
    )
    .await;
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), session)
        .await
        .expect("the session ends")
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    drop(client);
}

/// The binary: prints its three listeners, serves the admin listener, and on SIGTERM answers an
/// idle session `421 4.3.2` and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn the_binary_shuts_down_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let mut relay = lettermint_testkit::process::Binary::new(env!("CARGO_BIN_EXE_smtp-relay"))
        .args(["--database-url", &url])
        .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .env("LETTERMINT_LOG", "warn")
        .listeners(3)
        .start();
    let listener = |scheme: &str, label: &str| {
        let listener = relay.listener(scheme);
        assert_eq!(listener.label.as_deref(), Some(label), "{listener:?}");
        listener.addr
    };
    let smtp = listener("smtp", "STARTTLS");
    listener("smtps", "implicit TLS");
    let admin = listener("http", "admin");
    assert!(
        http_get(admin, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );

    let stream = tokio::net::TcpStream::connect(smtp).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("220 "), "{line}");
    write.write_all(b"EHLO client.example\r\n").await.unwrap();
    loop {
        line.clear();
        read.read_line(&mut line).await.unwrap();
        if line.starts_with("250 ") {
            break;
        }
    }
    relay.sigterm();
    line.clear();
    read.read_line(&mut line).await.unwrap();
    assert_eq!(line, "421 4.3.2 Shutting down\r\n");
    let exit = tokio::task::spawn_blocking(move || relay.wait())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn auth_in_the_middle_of_a_transaction_is_refused_and_the_transaction_goes_on() {
    let w = world(insecure()).await;
    let mut c = Client::connect(&w.relay).await;
    c.login(&w.token).await;
    assert_eq!(
        c.cmd("MAIL FROM:<me@example.com>").await,
        "250 2.1.0 Ok\r\n"
    );
    let again = c
        .cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
        .await;
    assert!(again.starts_with("503 "), "{again}");
    assert_eq!(c.cmd("RCPT TO:<you@example.com>").await, "250 2.1.5 Ok\r\n");
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(SIMPLE).await;
    queued_id(&c.cmd(".").await);
}

#[tokio::test]
async fn an_allowlist_refuses_other_addresses_at_auth_like_a_bad_token() {
    use lettermint_core::page::{Direction, LogSortKey, PageRequest, Sort};
    use lettermint_core::{IpAllowlist, LogFilter, Outcome};
    let w = world(insecure()).await;
    let local: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let excluding =
        IpAllowlist::parse("allowed_ips", &["203.0.113.0/24", "2001:db8::/32"]).unwrap();
    w.services
        .project_tokens
        .set_allowlist(Scope::Operator, None, w.token_id, &excluding)
        .await
        .unwrap();
    let mut c = Client::connect_from(&w.relay, Some(local)).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250-"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await,
        "535 5.7.8 Authentication credentials invalid\r\n"
    );
    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = w
            .services
            .project_tokens
            .logs(
                Scope::Operator,
                None,
                w.token_id,
                &LogFilter::default(),
                &PageRequest::first(
                    10,
                    Sort {
                        key: LogSortKey::At,
                        direction: Direction::Ascending,
                    },
                ),
            )
            .await
            .unwrap()
            .items;
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.outcome, e.ip, e.status))
            .collect::<Vec<_>>(),
        vec![(Outcome::RejectedIp, Some(local), 535)]
    );

    let including = IpAllowlist::parse("allowed_ips", &["127.0.0.0/8"]).unwrap();
    w.services
        .project_tokens
        .set_allowlist(Scope::Operator, None, w.token_id, &including)
        .await
        .unwrap();
    let mut c = Client::connect_from(&w.relay, Some(local)).await;
    c.login(&w.token).await;
    assert!(c.submit(SIMPLE).await.starts_with("250 "));
    // An unknown peer address cannot be in the list.
    let mut c = Client::connect_from(&w.relay, None).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250-"));
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await
            .starts_with("535 ")
    );
}

#[tokio::test]
async fn a_rotated_token_authenticates_with_both_values_during_the_overlap() {
    let w = world(insecure()).await;
    let rotated = w
        .services
        .project_tokens
        .rotate(
            Scope::Operator,
            None,
            w.token_id,
            lettermint_core::Overlap::parse("overlap", "1h").unwrap(),
        )
        .await
        .unwrap();
    for token in [w.token.clone(), rotated.secret.expose_secret().to_owned()] {
        let mut c = Client::connect(&w.relay).await;
        c.login(&token).await;
        assert!(c.submit(SIMPLE).await.starts_with("250 "));
    }
    w.services
        .project_tokens
        .regenerate(Scope::Operator, None, w.token_id)
        .await
        .unwrap();
    let mut c = Client::connect(&w.relay).await;
    assert!(c.cmd("EHLO client.example").await.starts_with("250-"));
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("lettermint", &w.token)))
            .await
            .starts_with("535 ")
    );
}
