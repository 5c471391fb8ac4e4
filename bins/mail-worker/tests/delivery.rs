//! `mail-worker` as a process, delivering what api-server accepted to an SMTP server on a
//! loopback socket (the test sink), on SQLite and on a throwaway PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettermint_core::{
    Action, Channel, Direction, LogFilter, Message, MessageContent, MessageId, MessageStatus,
    Outcome, PageRequest, PlainToken, Scope, Services, Sort, Submission, SubmissionOutcome,
    TokenCredential, TokenKind,
};
use lettermint_store::OpenOptions;
use lettermint_testkit::process::{Binary, Running};
use lettermint_testkit::smtp_sink::{Received, SinkOptions, SmtpSink, Verdict};
use serde_json::{Value, json};

/// api-server in this process, on a fresh database.
struct Api {
    base: String,
    token: String,
    url: String,
    services: Services,
    _dir: Option<tempfile::TempDir>,
    _task: tokio::task::JoinHandle<()>,
}

async fn api(postgres: bool) -> Api {
    let (url, dir) = if postgres {
        (
            lettermint_testkit::pg::shared().create_database().await,
            None,
        )
    } else {
        let dir = tempfile::tempdir().unwrap();
        (
            format!("sqlite://{}/lettermint.sqlite", dir.path().display()),
            Some(dir),
        )
    };
    let store = lettermint_store::open(&url, OpenOptions::default())
        .await
        .unwrap();
    let config = api_server::config::Config {
        database_url: url.clone(),
        ..api_server::config::Config::default()
    };
    let (state, background) = api_server::start(store.into_dyn(), config, None);
    let first = api_server::bootstrap(&state.services)
        .await
        .unwrap()
        .unwrap();
    let services = state.services.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        api_server::serve(listener, state, background, std::future::pending())
            .await
            .unwrap();
    });
    Api {
        base,
        token: first.project_token,
        url,
        services,
        _dir: dir,
        _task: task,
    }
}

impl Api {
    async fn send(&self, body: Value) -> MessageId {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/send", self.base))
            .header("x-lettermint-token", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["message_id"].as_str().unwrap().parse().unwrap()
    }

    async fn message(&self, id: MessageId) -> Value {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/messages/{id}", self.base))
            .header("x-lettermint-token", &self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls the message until `done` holds, or panics after 30 s.
    async fn wait_for(&self, id: MessageId, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let message = self.message(id).await;
            if done(&message) {
                return message;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "message {id} never reached the expected state: {}",
            self.message(id).await
        );
    }

    /// Stores `count` messages directly, as the SMTP relay stores what it accepts.
    async fn enqueue_smtp(&self, raw: &[u8], count: usize) -> Vec<MessageId> {
        let secret = PlainToken::parse_kind(&self.token, TokenKind::Project).unwrap();
        let caller = self
            .services
            .auth
            .authenticate_project(Some(&self.token), Channel::Smtp, None)
            .await
            .unwrap();
        let route = self
            .services
            .messages
            .resolve_route(caller.project_id, None)
            .await
            .unwrap();
        let credential = TokenCredential {
            token_id: caller.credential.token_id,
            digest: secret.digest(),
        };
        let now = time::OffsetDateTime::now_utc();
        let submissions: Vec<Submission> = (0..count)
            .map(|i| Submission {
                client_ip: None,
                credential,
                messages: vec![Message {
                    id: MessageId::new(),
                    project_id: caller.project_id,
                    route_id: route.id,
                    token_id: credential.token_id,
                    via: Channel::Smtp,
                    status: MessageStatus::Pending,
                    envelope_from: "relay@example.com".into(),
                    envelope_to: vec![format!("r{i}@example.net")],
                    subject: Some("raw".into()),
                    tag: None,
                    metadata: Default::default(),
                    idempotency_key: None,
                    scheduled_at: None,
                    created_at: now,
                    content: MessageContent::Mime(raw.to_vec()),
                    delivery: Default::default(),
                }],
                idempotency: None,
            })
            .collect();
        let mut ids = Vec::new();
        for chunk in submissions.chunks(100) {
            let outcomes = self.services.messages.enqueue(chunk).await.unwrap();
            assert!(outcomes.iter().all(
                |o| *o == SubmissionOutcome::Accepted(lettermint_core::CredentialSlot::Current)
            ));
            ids.extend(chunk.iter().map(|s| s.messages[0].id));
        }
        ids
    }

    /// The token's delivery log, one item per message it names.
    async fn delivery_log(&self) -> Vec<(Outcome, u16, MessageId)> {
        let caller = self
            .services
            .auth
            .authenticate_project(Some(&self.token), Channel::Api, None)
            .await
            .unwrap();
        let page = self
            .services
            .project_tokens
            .logs(
                Scope::Operator,
                None,
                caller.credential.token_id,
                &LogFilter::default(),
                &PageRequest::first(
                    100,
                    Sort {
                        key: lettermint_core::page::LogSortKey::At,
                        direction: Direction::Descending,
                    },
                ),
            )
            .await
            .unwrap();
        page.items
            .into_iter()
            .filter(|e| e.action == Action::Delivery)
            .flat_map(|e| {
                e.message_ids
                    .into_iter()
                    .map(move |id| (e.outcome, e.status, id))
            })
            .collect()
    }
}

fn worker(url: &str, smarthost: &str, extra: &[&str]) -> Running {
    Binary::new(env!("CARGO_BIN_EXE_mail-worker"))
        .args([
            "--database-url",
            url,
            "--smarthost",
            smarthost,
            "--admin-listen",
            "127.0.0.1:0",
            "--idle-poll-ms",
            "50",
        ])
        .args(extra)
        .env("LETTERMINT_LOG", "info")
        .listeners(1)
        .start()
}

fn message_id_of(received: &Received) -> Option<MessageId> {
    let parsed = mail_parser::MessageParser::default().parse(&received.data)?;
    parsed.header_raw("X-LM-Message-Id")?.trim().parse().ok()
}

#[tokio::test]
async fn api_and_smtp_messages_arrive_with_their_envelope_and_headers() {
    let api = api(false).await;
    let sink = SmtpSink::start().await.unwrap();
    let id = api
        .send(json!({
            "from": "Shop <shop@example.com>",
            "to": ["Ann <ann@example.net>"],
            "cc": ["cc@example.net"],
            "bcc": ["hidden@example.org"],
            "reply_to": ["help@example.com"],
            "subject": "Your receipt",
            "text": "Thanks for your order.",
            "html": "<p>Thanks for your order.</p>",
            "headers": {"X-Campaign": "spring"},
            "metadata": {"order": "42"},
            "tag": "receipt"
        }))
        .await;
    let raw = b"From: relay@example.com\r\nTo: r0@example.net\r\nSubject: raw\r\n\r\n..dot-stuffed line\r\nbody\r\n";
    let smtp_ids = api.enqueue_smtp(raw, 1).await;
    let mut running = worker(&api.url, &sink.url(), &[]);
    let got = sink.wait_for_accepted(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "{}", running.stderr());

    let built = got.iter().find(|r| r.from == "shop@example.com").unwrap();
    assert_eq!(
        built.to,
        ["ann@example.net", "cc@example.net", "hidden@example.org"]
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&built.data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("Your receipt"));
    assert_eq!(
        parsed.header_raw("X-Campaign").map(str::trim),
        Some("spring")
    );
    assert_eq!(
        parsed.header_raw("X-LM-Tag").map(str::trim),
        Some("receipt")
    );
    assert_eq!(message_id_of(built), Some(id));
    assert!(parsed.bcc().is_none());
    assert!(!String::from_utf8_lossy(&built.data).contains("hidden@example.org"));
    assert!(parsed.header_raw("X-LM-Metadata-order").is_none());
    assert_eq!(
        parsed.body_text(0).as_deref(),
        Some("Thanks for your order.")
    );

    let relayed = got.iter().find(|r| r.from == "relay@example.com").unwrap();
    assert_eq!(relayed.to, ["r0@example.net"]);
    assert_eq!(relayed.data, raw, "SMTP messages go out byte for byte");

    let shown = api.wait_for(id, |m| m["status"] == "delivered").await;
    assert_eq!(shown["attempts"], 1);
    assert!(
        shown["last_reply"].as_str().unwrap().starts_with("250 "),
        "{shown}"
    );
    assert!(shown["status_changed_at"].is_string());
    assert!(shown["next_attempt_at"].is_null());
    api.wait_for(smtp_ids[0], |m| m["status"] == "delivered")
        .await;

    let log = api.delivery_log().await;
    assert!(log.contains(&(Outcome::Delivered, 250, id)), "{log:?}");
    assert!(
        log.contains(&(Outcome::Delivered, 250, smtp_ids[0])),
        "{log:?}"
    );
    assert_eq!(running.terminate().code(), Some(0), "{}", running.stderr());
}

#[tokio::test]
async fn a_4xx_defers_and_later_delivers_and_a_5xx_fails_at_once() {
    let api = api(false).await;
    let soft_refused = Arc::new(AtomicBool::new(false));
    let sink = {
        let soft_refused = soft_refused.clone();
        SmtpSink::with_script(move |message, _| {
            if message.to[0].starts_with("hard") {
                Verdict::Reply(550, "5.1.1 no such mailbox".into())
            } else if !soft_refused.swap(true, Ordering::SeqCst) {
                Verdict::Reply(451, "4.3.0 try again later".into())
            } else {
                Verdict::Accept
            }
        })
        .await
        .unwrap()
    };
    let soft = api
        .send(json!({"from": "shop@example.com", "to": ["soft@example.net"], "subject": "s", "text": "soft"}))
        .await;
    let hard = api
        .send(json!({"from": "shop@example.com", "to": ["hard@example.net"], "subject": "h", "text": "hard"}))
        .await;
    let mut running = worker(&api.url, &sink.url(), &["--retry-first-delay", "1"]);

    let failed = api.wait_for(hard, |m| m["status"] == "failed").await;
    assert_eq!(failed["attempts"], 1, "a 5xx is not retried");
    assert_eq!(failed["last_reply"], "550 5.1.1 no such mailbox");

    let delivered = api.wait_for(soft, |m| m["status"] == "delivered").await;
    assert_eq!(delivered["attempts"], 2, "{delivered}");
    assert!(soft_refused.load(Ordering::SeqCst));
    let accepted = sink.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].to, ["soft@example.net"]);

    let log = api.delivery_log().await;
    assert!(log.contains(&(Outcome::Failed, 550, hard)), "{log:?}");
    assert!(log.contains(&(Outcome::Delivered, 250, soft)), "{log:?}");
    assert_eq!(log.len(), 2, "a deferral is not a log event: {log:?}");
    assert_eq!(running.terminate().code(), Some(0));
}

#[tokio::test]
async fn a_recipient_refused_for_now_is_retried_alone_and_no_recipient_gets_two_copies() {
    // The smarthost takes two recipients per transaction, and defers the first transaction
    // that holds `c@` (its data, after taking `a@` and `b@` in the transaction before).
    let api = api(false).await;
    let deferred_once = Arc::new(AtomicBool::new(false));
    let sink = {
        let deferred_once = deferred_once.clone();
        SmtpSink::with_options(
            SinkOptions {
                max_recipients: Some(2),
                ..SinkOptions::default()
            },
            move |message, _| {
                if message.to.iter().any(|to| to.starts_with("c@"))
                    && !deferred_once.swap(true, Ordering::SeqCst)
                {
                    Verdict::Reply(451, "4.7.1 greylisted, try again".into())
                } else {
                    Verdict::Accept
                }
            },
        )
        .await
        .unwrap()
    };
    let id = api
        .send(
            json!({"from": "shop@example.com", "to": ["a@example.net", "b@example.net"],
                     "bcc": ["c@example.net"], "subject": "s", "text": "three recipients"}),
        )
        .await;
    let mut running = worker(&api.url, &sink.url(), &["--retry-first-delay", "1"]);
    let delivered = api.wait_for(id, |m| m["status"] == "delivered").await;
    assert_eq!(delivered["attempts"], 2, "{delivered}");
    // What the first attempt reached, as recorded with its deferral.
    assert_eq!(
        delivered["delivered_to"],
        json!(["a@example.net", "b@example.net"]),
        "{delivered}"
    );
    assert!(deferred_once.load(Ordering::SeqCst));
    let transactions: Vec<(Vec<String>, bool)> = sink
        .received()
        .into_iter()
        .map(|m| (m.to, m.accepted))
        .collect();
    assert_eq!(
        transactions,
        [
            (vec!["a@example.net".into(), "b@example.net".into()], true),
            (vec!["c@example.net".into()], false),
            // The second attempt goes to the recipient still without the message only.
            (vec!["c@example.net".into()], true),
        ]
    );
    assert_eq!(running.terminate().code(), Some(0));
}

#[tokio::test]
async fn a_deferred_message_shows_its_reply_and_next_attempt() {
    let api = api(false).await;
    let sink = SmtpSink::with_script(|_, _| Verdict::Reply(421, "4.7.0 slow down".into()))
        .await
        .unwrap();
    let id = api
        .send(json!({"from": "shop@example.com", "to": ["a@example.net"], "subject": "s", "text": "text"}))
        .await;
    let mut running = worker(&api.url, &sink.url(), &["--retry-first-delay", "600"]);
    let deferred = api.wait_for(id, |m| m["status"] == "deferred").await;
    assert_eq!(deferred["last_reply"], "421 4.7.0 slow down");
    assert!(deferred["next_attempt_at"].is_string());
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v1/messages?filter[status]=deferred", api.base))
        .header("x-lettermint-token", &api.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id.to_string());
    running.terminate();
}

#[tokio::test]
async fn sigkill_of_a_worker_mid_batch_loses_no_message() {
    let api = api(false).await;
    let stall = Arc::new(AtomicBool::new(true));
    let (arrived, first_data) = std::sync::mpsc::channel::<()>();
    let sink = {
        let stall = stall.clone();
        SmtpSink::with_script(move |_, _| {
            if stall.load(Ordering::SeqCst) {
                let _ = arrived.send(());
                // An upstream that never answers this attempt.
                Verdict::Delay(Duration::from_secs(3600))
            } else {
                Verdict::Accept
            }
        })
        .await
        .unwrap()
    };
    let ids = api
        .enqueue_smtp(b"Subject: batch\r\n\r\nbody\r\n", 20)
        .await;
    // A short lease, so that the messages of the killed worker come back soon.
    let mut first = worker(
        &api.url,
        &sink.url(),
        &["--lease", "3", "--smarthost-timeout", "1", "--batch", "20"],
    );
    tokio::task::spawn_blocking(move || first_data.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the worker relayed a message");
    first.kill();
    // Mid-batch: the claimed messages are `processed`, none is settled.
    let before = api.services.messages.get(
        api.services
            .auth
            .authenticate_project(Some(&api.token), Channel::Api, None)
            .await
            .unwrap()
            .project_id,
        ids[0],
    );
    assert_eq!(before.await.unwrap().status, MessageStatus::Processed);

    stall.store(false, Ordering::SeqCst);
    let mut second = worker(&api.url, &sink.url(), &[]);
    // At least once: a message whose data reached the sink before the kill may arrive twice
    // (the duplicate window); every message must arrive.
    let expected: BTreeSet<String> = (0..ids.len())
        .map(|i| format!("r{i}@example.net"))
        .collect();
    let mut delivered = BTreeSet::new();
    for _ in 0..600 {
        delivered = sink.accepted().iter().flat_map(|r| r.to.clone()).collect();
        if delivered == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered, expected, "{}", second.stderr());
    for id in &ids {
        api.wait_for(*id, |m| m["status"] == "delivered").await;
    }
    assert_eq!(second.terminate().code(), Some(0));
}

/// A message that stops every worker that attempts it (here: the worker is killed whenever its
/// data reaches the sink) is attempted alone once it has interrupted a batch, and fails untried
/// after `crash_limit` interrupted attempts alone; the messages around it are delivered.
#[tokio::test]
async fn a_message_that_stops_every_worker_fails_and_spares_its_batch() {
    let api = api(false).await;
    let (arrived, poison_data) = std::sync::mpsc::channel::<()>();
    let sink = SmtpSink::with_script(move |received, _| {
        if received.data.windows(6).any(|w| w == b"poison") {
            let _ = arrived.send(());
            // Never answered: the worker is killed meanwhile.
            Verdict::Delay(Duration::from_secs(3600))
        } else {
            Verdict::Accept
        }
    })
    .await
    .unwrap();
    let bystanders = api
        .enqueue_smtp(b"Subject: bystander\r\n\r\nbody\r\n", 6)
        .await;
    let poison = api
        .enqueue_smtp(b"Subject: poison\r\n\r\nbody\r\n", 1)
        .await[0];
    let poison_data = Arc::new(std::sync::Mutex::new(poison_data));
    let next_poison = || {
        let poison_data = poison_data.clone();
        tokio::task::spawn_blocking(move || {
            poison_data
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(30))
                .is_ok()
        })
    };
    let args = [
        "--lease",
        "3",
        "--smarthost-timeout",
        "1",
        "--crash-limit",
        "2",
    ];
    // The first attempt, beside its batch; then two attempts alone: each time the worker dies.
    for round in 0..3 {
        let mut running = worker(&api.url, &sink.url(), &args);
        assert!(
            next_poison().await.unwrap(),
            "round {round}: the poison message was not attempted: {}",
            running.stderr()
        );
        running.kill();
        let stored = api.message(poison).await;
        assert_eq!(stored["status"], "processed", "round {round}: {stored}");
    }
    let mut last = worker(&api.url, &sink.url(), &args);
    let failed = api.wait_for(poison, |m| m["status"] == "failed").await;
    assert!(
        failed["last_reply"]
            .as_str()
            .is_some_and(|r| r.contains("2 attempts") && r.contains("interrupted")),
        "{failed}"
    );
    for id in &bystanders {
        api.wait_for(*id, |m| m["status"] == "delivered").await;
    }
    assert!(
        !next_poison().await.unwrap(),
        "the failed message was attempted again"
    );
    let log = api.delivery_log().await;
    assert!(log.contains(&(Outcome::Failed, 0, poison)), "{log:?}");
    for id in &bystanders {
        assert!(log.contains(&(Outcome::Delivered, 250, *id)), "{log:?}");
    }
    let stderr = last.stderr();
    assert!(stderr.contains("fails without another try"), "{stderr}");
    assert_eq!(last.terminate().code(), Some(0));
}

#[tokio::test]
async fn two_workers_on_postgres_deliver_each_message_exactly_once() {
    let api = api(true).await;
    let sink = SmtpSink::start().await.unwrap();
    let ids = api
        .enqueue_smtp(b"Subject: once\r\n\r\nbody\r\n", 300)
        .await;
    let mut a = worker(&api.url, &sink.url(), &["--batch", "8"]);
    let mut b = worker(&api.url, &sink.url(), &["--batch", "8"]);
    let got = sink
        .wait_for_accepted(ids.len(), Duration::from_secs(120))
        .await;
    assert_eq!(got.len(), ids.len(), "{}\n{}", a.stderr(), b.stderr());
    for id in &ids {
        api.wait_for(*id, |m| m["status"] == "delivered").await;
    }
    // Nothing more arrives: every message went out exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recipients: Vec<String> = sink.accepted().iter().flat_map(|r| r.to.clone()).collect();
    let unique: BTreeSet<&String> = recipients.iter().collect();
    assert_eq!(recipients.len(), ids.len());
    assert_eq!(unique.len(), ids.len());
    let (a_log, b_log) = (a.stderr(), b.stderr());
    assert!(
        a_log.contains("delivery attempt settled") && b_log.contains("delivery attempt settled"),
        "both workers took part:\n{a_log}\n{b_log}"
    );
    assert_eq!(a.terminate().code(), Some(0));
    assert_eq!(b.terminate().code(), Some(0));
}

#[tokio::test]
async fn without_a_smarthost_messages_land_in_the_development_maildir() {
    let api = api(false).await;
    let id = api
        .send(json!({"from": "shop@example.com", "to": ["a@example.net"], "subject": "Look", "text": "here"}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let mut running = Binary::new(env!("CARGO_BIN_EXE_mail-worker"))
        .args(["--database-url", &api.url, "--admin-listen", "127.0.0.1:0"])
        .arg("--maildir")
        .arg(&maildir)
        .listeners(1)
        .start();
    api.wait_for(id, |m| m["status"] == "delivered").await;
    let files: Vec<_> = std::fs::read_dir(maildir.join("new")).unwrap().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(text.starts_with("Return-Path: <shop@example.com>\r\nDelivered-To: a@example.net\r\n"));
    assert!(text.contains("Subject: Look"));
    assert_eq!(running.terminate().code(), Some(0));
}

#[tokio::test]
async fn health_and_readiness_are_served_on_the_admin_listener() {
    let api = api(false).await;
    let sink = SmtpSink::start().await.unwrap();
    let mut running = worker(&api.url, &sink.url(), &[]);
    let admin = running.labelled("admin").url();
    for (path, body) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = reqwest::get(format!("{admin}{path}")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), body);
    }
    running.terminate();
}

#[test]
fn a_bad_smarthost_url_is_a_configuration_error_naming_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mail-worker"))
        .args(["--smarthost", "http://user:secret@example.com"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("smarthost"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
