//! Revocation under load: 32 clients send continuously with one token while it is revoked (or
//! regenerated) through the Team API, or reported leaked by a signed secret-scanning report. Every 202 is a stored message, and no request that started
//! after the revoke returned is accepted — on one server, and on two server processes sharing one
//! PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Backend, LeakSigner, Process, TestServer, client, leak_report, mail, services};
use lettermint_core::{MessageId, ProjectId, Scope, Services};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
enum Change {
    Revoke,
    Regenerate,
    LeakReport,
}

/// The key the servers of these tests accept leak reports from.
fn signer() -> &'static LeakSigner {
    static SIGNER: std::sync::OnceLock<LeakSigner> = std::sync::OnceLock::new();
    SIGNER.get_or_init(|| LeakSigner::new("race-key"))
}

struct Outcome {
    started: Instant,
    status: u16,
    message_id: Option<MessageId>,
}

/// Runs the race against `bases` (clients spread over them) and checks the outcome.
async fn race(
    services: &Services,
    bases: &[String],
    team_token: &str,
    project: ProjectId,
    change: Change,
) {
    let issued = services
        .project_tokens
        .create(
            Scope::Operator,
            project,
            &format!("raced {change:?}"),
            (),
            None,
        )
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let http = client();
    let mut clients = Vec::new();
    for i in 0..32 {
        let (http, stop, token) = (http.clone(), stop.clone(), token.clone());
        let base = bases[i % bases.len()].clone();
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .post(format!("{base}/v1/send"))
                    .header("x-lettermint-token", &token)
                    .json(&mail("race"))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                let message_id = body["message_id"].as_str().map(|s| s.parse().unwrap());
                outcomes.push(Outcome {
                    started,
                    status,
                    message_id,
                });
            }
            outcomes
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let tokens = format!(
        "{}/v1/projects/{project}/tokens/{}",
        bases[0], issued.token.id
    );
    let request = match change {
        Change::Revoke => http.delete(tokens).bearer_auth(team_token),
        Change::Regenerate => http
            .post(format!("{tokens}/regenerate"))
            .bearer_auth(team_token),
        Change::LeakReport => signer().request(&http, &bases[0], &leak_report(&[&token])),
    };
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    if let Change::LeakReport = change {
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer[0]["label"], "true_positive");
    }
    let returned = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut accepted = Vec::new();
    let (mut after, mut refused_after) = (0, 0);
    for task in clients {
        for outcome in task.await.unwrap() {
            match outcome.status {
                202 => {
                    assert!(
                        outcome.started < returned,
                        "a request that started after the {change:?} returned was accepted"
                    );
                    accepted.push(outcome.message_id.unwrap());
                }
                401 => {}
                other => panic!("unexpected status {other}"),
            }
            if outcome.started >= returned {
                after += 1;
                refused_after += usize::from(outcome.status == 401);
            }
        }
    }
    assert!(
        !accepted.is_empty(),
        "nothing was accepted before the {change:?}"
    );
    assert!(
        after > 0,
        "no request started after the {change:?} returned"
    );
    assert_eq!(refused_after, after);
    for id in accepted {
        services
            .messages
            .get(project, id)
            .await
            .expect("every 202 is a stored message");
    }
}

async fn project_of(services: &Services, token: &str) -> ProjectId {
    services
        .auth
        .authenticate_project(Some(token), lettermint_core::Channel::Api, None)
        .await
        .unwrap()
        .project_id
}

async fn one_server(backend: Backend, change: Change) {
    let key = signer().config_key();
    let server =
        TestServer::start_with(backend, move |config| config.leak_report_keys = vec![key]).await;
    let project = project_of(&server.services, &server.project_token).await;
    race(
        &server.services,
        std::slice::from_ref(&server.base),
        &server.team_token,
        project,
        change,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_under_load_on_sqlite() {
    one_server(Backend::Sqlite, Change::Revoke).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_under_load_on_sqlite() {
    one_server(Backend::Sqlite, Change::Regenerate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_report_under_load_on_sqlite() {
    one_server(Backend::Sqlite, Change::LeakReport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_report_under_load_on_postgres() {
    one_server(Backend::Postgres, Change::LeakReport).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_under_load_on_postgres() {
    one_server(Backend::Postgres, Change::Revoke).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_under_load_on_postgres() {
    one_server(Backend::Postgres, Change::Regenerate).await;
}

async fn two_processes(change: Change) {
    let (url, _) = common::database(Backend::Postgres).await;
    let first = Process::spawn(&url, &[]);
    let second = Process::spawn(&url, &["--no-bootstrap"]);
    let team_token = first.team_token.clone().unwrap();
    let services = services(&url).await;
    let project = project_of(&services, first.project_token.as_deref().unwrap()).await;
    race(
        &services,
        &[first.base.clone(), second.base.clone()],
        &team_token,
        project,
        change,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_under_load_across_two_processes_on_postgres() {
    two_processes(Change::Revoke).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_under_load_across_two_processes_on_postgres() {
    two_processes(Change::Regenerate).await;
}
