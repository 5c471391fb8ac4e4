//! Crash safety: under load the server is killed with SIGKILL and restarted; every message
//! whose `message_id` a client received in a 202 is in the store, complete.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, Process, client, services};
use lettermint_core::{MessageContent, MessageId};
use serde_json::json;

async fn crash(backend: Backend) {
    let (url, _dir) = common::database(backend).await;
    let mut server = Process::spawn(&url, &[]);
    let token = server.project_token.clone().unwrap();
    let base = server.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let http = client();
    let mut clients = Vec::new();
    for worker in 0..16 {
        let (http, stop, token, base) = (http.clone(), stop.clone(), token.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged: Vec<(MessageId, String)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let subject = format!("worker {worker} message {n}");
                let sent = http
                    .post(format!("{base}/v1/send"))
                    .header("x-lettermint-token", &token)
                    .json(&json!({"from": "a@example.com", "to": ["b@example.com"], "subject": subject, "text": "body text"}))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != 202 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else { break };
                acknowledged.push((body["message_id"].as_str().unwrap().parse().unwrap(), subject));
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for task in clients {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() > 50,
        "too little load to prove anything: {}",
        acknowledged.len()
    );

    // Restart on the same database: it starts, and everything acknowledged is there.
    let restarted = Process::spawn(&url, &[]);
    assert!(
        restarted.project_token.is_none(),
        "no second bootstrap on a used store"
    );
    let ping = http
        .get(format!("{}/v1/ping", restarted.base))
        .header("x-lettermint-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200);
    let services = services(&url).await;
    let project = services
        .auth
        .authenticate_project(Some(&token), lettermint_core::Channel::Api, None)
        .await
        .unwrap()
        .project_id;
    for (id, subject) in &acknowledged {
        let message = services
            .messages
            .get(project, *id)
            .await
            .expect("an acknowledged message survived the crash");
        assert_eq!(message.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(message.envelope_to, vec!["b@example.com"]);
        let MessageContent::Structured(email) = message.content else {
            panic!("structured content")
        };
        assert_eq!(email.text.as_deref(), Some("body text"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_on_sqlite() {
    crash(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_on_postgres() {
    crash(Backend::Postgres).await;
}

/// SIGTERM: requests finish, usage is flushed, the process exits 0; metrics, health and
/// readiness answer while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let (url, _dir) = common::database(Backend::Sqlite).await;
    let mut server = Process::spawn(&url, &[]);
    let token = server.project_token.clone().unwrap();
    let http = client();
    let response = http
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &token)
        .json(&json!({"from": "a@example.com", "to": ["b@example.com"], "subject": "s", "text": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            http.get(format!("{}{path}", server.base))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let bad = http
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", "lm_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "lettermint_sends_accepted_total",
        "lettermint_http_requests_total",
        "lettermint_auth_failures_total{reason=\"malformed\"}",
        "lettermint_send_batch_size",
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from /metrics:\n{metrics}"
        );
    }
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    // The usage queued by the send was flushed on the way out.
    let services = services(&url).await;
    let caller = services
        .auth
        .authenticate_project(Some(&token), lettermint_core::Channel::Api, None)
        .await
        .unwrap();
    let stored = services
        .project_tokens
        .get(
            lettermint_core::Scope::Operator,
            None,
            caller.credential.token_id,
        )
        .await
        .unwrap();
    assert!(stored.last_use.at.is_some());
}
