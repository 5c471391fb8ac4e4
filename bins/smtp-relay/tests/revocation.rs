//! Revocation reaches open sessions: clients keep sessions open sending messages while the token
//! is revoked through the core; once the revoke returned, every next transaction is refused, and
//! the store holds exactly the messages that got a 250 — with one relay, and with two relay
//! processes on one PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, Client, Relay, world};
use lettermint_core::Scope;
use tokio::time::Instant;

async fn race(backend: Backend, relays: usize) {
    let world = world(backend).await;
    let relays: Vec<Relay> = (0..relays).map(|_| Relay::spawn(&world.url)).collect();
    let revoked_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut sessions = Vec::new();
    for i in 0..4 {
        let addr = relays[i % relays.len()].addr.clone();
        let (token, stop, revoked_at) = (world.token.clone(), stop.clone(), revoked_at.clone());
        sessions.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await;
            assert_eq!(client.auth(&token).await, 235);
            let mut accepted = Vec::new();
            let mut refused = 0;
            while !stop.load(Ordering::Relaxed) {
                // Paced, to stay under the relay's messages-per-session limit.
                tokio::time::sleep(Duration::from_millis(15)).await;
                let started = Instant::now();
                let returned_before = revoked_at.lock().unwrap().is_some_and(|at| at <= started);
                match client.send("race").await {
                    Ok(id) => {
                        assert!(
                            !returned_before,
                            "a transaction that started after the revoke returned got a 250"
                        );
                        accepted.push(id);
                    }
                    Err(code) => {
                        assert_eq!(code, 530, "refused with {code}");
                        refused += 1;
                        break;
                    }
                }
            }
            (accepted, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let token_id = world
        .services
        .auth
        .authenticate_project(Some(&world.token), lettermint_core::Channel::Smtp, None)
        .await
        .unwrap()
        .credential
        .token_id;
    world
        .services
        .project_tokens
        .revoke(Scope::Operator, None, token_id)
        .await
        .unwrap();
    *revoked_at.lock().unwrap() = Some(Instant::now());
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for session in sessions {
        let (accepted, refused) = session.await.unwrap();
        assert_eq!(
            refused, 1,
            "every open session was refused after the revoke"
        );
        for id in accepted {
            world
                .services
                .messages
                .get(world.project, id)
                .await
                .expect("every 250 is a stored message");
            total += 1;
        }
    }
    assert!(total > 0, "nothing was accepted before the revoke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reaches_open_sessions_on_sqlite() {
    race(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reaches_open_sessions_on_postgres() {
    race(Backend::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_reaches_open_sessions_on_two_relays_sharing_postgres() {
    race(Backend::Postgres, 2).await;
}
