//! Crash safety: under load the relay is killed with SIGKILL and restarted; every message that
//! got a 250 is in the store, complete.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, Client, Relay, world};
use lettermint_core::MessageContent;

async fn crash(backend: Backend) {
    let world = world(backend).await;
    let mut relay = Relay::spawn(&world.url);
    let stop = Arc::new(AtomicBool::new(false));
    let mut sessions = Vec::new();
    for worker in 0..8 {
        let (addr, token, stop) = (relay.addr.clone(), world.token.clone(), stop.clone());
        sessions.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await;
            assert_eq!(client.auth(&token).await, 235);
            let mut acknowledged = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let subject = format!("worker {worker} message {n}");
                match client.send(&subject).await {
                    Ok(id) => acknowledged.push((id, subject)),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for session in sessions {
        acknowledged.extend(session.await.unwrap());
    }
    assert!(
        acknowledged.len() > 20,
        "too little load to prove anything: {}",
        acknowledged.len()
    );

    let restarted = Relay::spawn(&world.url);
    let mut client = Client::connect(&restarted.addr).await;
    assert_eq!(client.auth(&world.token).await, 235);
    for (id, subject) in &acknowledged {
        let message = world
            .services
            .messages
            .get(world.project, *id)
            .await
            .expect("a 250 survived the crash");
        assert_eq!(message.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(message.envelope_to, vec!["rcpt@example.com"]);
        let MessageContent::Mime(raw) = message.content else {
            panic!("raw MIME")
        };
        let raw = String::from_utf8_lossy(&raw);
        assert!(
            raw.contains(subject.as_str()) && raw.contains("Hello."),
            "{raw}"
        );
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
