//! Leak reports (secret scanning) over a real socket: a report signed with a configured key
//! revokes the listed tokens before it is answered; anything unsigned or badly signed is one
//! 401 that changes nothing; without a key the endpoint does not exist.

mod common;

use common::{Backend, LeakSigner, TestServer, client, json, leak_report, mail};
use lettermint_core::{Abilities, Channel, PlainToken, Scope, TokenKind};
use serde_json::{Value, json};

async fn server_with(backend: Backend, signer: &LeakSigner) -> TestServer {
    let key = signer.config_key();
    TestServer::start_with(backend, move |config| config.leak_report_keys = vec![key]).await
}

async fn send_status(base: &str, token: &str) -> u16 {
    client()
        .post(format!("{base}/v1/send"))
        .header("x-lettermint-token", token)
        .json(&mail("after the leak"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn signed_report_revokes_listed_tokens(backend: Backend) {
    let signer = LeakSigner::new("github-key-1");
    let server = server_with(backend, &signer).await;
    let caller = server
        .services
        .auth
        .authenticate_project(Some(&server.project_token), Channel::Api, None)
        .await
        .unwrap();
    let leaked = server
        .services
        .project_tokens
        .create(Scope::Operator, caller.project_id, "leaked", (), None)
        .await
        .unwrap();
    let leaked_team = server
        .services
        .team_tokens
        .create(
            Scope::Operator,
            caller.team_id,
            "leaked ci",
            Abilities::all(),
            None,
        )
        .await
        .unwrap();
    let (project_value, team_value) = (
        leaked.secret.expose_secret().to_owned(),
        leaked_team.secret.expose_secret().to_owned(),
    );
    assert_eq!(send_status(&server.base, &project_value).await, 202);
    let unknown = PlainToken::mint(TokenKind::Project).unwrap();
    let body = leak_report(&[
        &project_value,
        &team_value,
        unknown.expose_secret(),
        "lm_notEvenAToken",
    ]);
    let http = client();
    let (status, answer) = json(
        signer
            .request(&http, &server.base, &body)
            .header("user-agent", "GitHub-Secret-Scanning/1.0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!([
            {"token_raw": project_value, "token_type": "lettermint_api_token", "label": "true_positive"},
            {"token_raw": team_value, "token_type": "lettermint_api_token", "label": "true_positive"},
            {"token_raw": unknown.expose_secret(), "token_type": "lettermint_api_token", "label": "false_positive"},
            {"token_raw": "lm_notEvenAToken", "token_type": "lettermint_api_token", "label": "false_positive"},
        ])
    );
    // Both are dead from the answer on.
    assert_eq!(send_status(&server.base, &project_value).await, 401);
    let team_status = http
        .get(format!("{}/v1/team", server.base))
        .bearer_auth(&team_value)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(team_status, 401);
    // The innocent tokens still work.
    assert_eq!(send_status(&server.base, &server.project_token).await, 202);
    // The revocation is in the token's log, with where it leaked, over the Team API.
    let (status, token) = json(
        http.get(format!(
            "{}/v1/projects/{}/tokens/{}",
            server.base, caller.project_id, leaked.token.id
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(token["status"], "revoked");
    let (status, logs) = json(
        http.get(format!(
            "{}/v1/projects/{}/tokens/{}/logs?filter%5Boutcome%5D=revoked_leaked",
            server.base, caller.project_id, leaked.token.id
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{logs}");
    let entries = logs["data"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{logs}");
    assert_eq!(entries[0]["action"], "leak_report");
    assert_eq!(
        entries[0]["leak_url"],
        "https://github.com/octo/app/blob/0123abc/.env"
    );
    assert_eq!(entries[0]["user_agent"], "GitHub-Secret-Scanning/1.0");
    assert_eq!(entries[0]["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_report_revokes_listed_tokens_on_sqlite() {
    signed_report_revokes_listed_tokens(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_report_revokes_listed_tokens_on_postgres() {
    signed_report_revokes_listed_tokens(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_reports_get_one_401_and_change_nothing() {
    let signer = LeakSigner::new("github-key-1");
    let server = server_with(Backend::Sqlite, &signer).await;
    let body = leak_report(&[&server.project_token]);
    let url = format!("{}/v1/secret-scanning/report", server.base);
    let http = client();
    let impostor = LeakSigner::new("github-key-1");
    let mut tampered = leak_report(&[&server.project_token]);
    tampered.extend_from_slice(b" ");
    let unsigned = http.post(&url).body(body.clone());
    let id_only = http
        .post(&url)
        .header("Github-Public-Key-Identifier", &signer.id)
        .body(body.clone());
    let wrong_key = impostor.request(&http, &server.base, &body);
    let tampered_body = http
        .post(&url)
        .header("Github-Public-Key-Identifier", &signer.id)
        .header("Github-Public-Key-Signature", signer.sign(&body))
        .body(tampered);
    let unknown_id = http
        .post(&url)
        .header("Github-Public-Key-Identifier", "another-key")
        .header("Github-Public-Key-Signature", signer.sign(&body))
        .body(body.clone());
    let garbage_signature = http
        .post(&url)
        .header("Github-Public-Key-Identifier", &signer.id)
        .header("Github-Public-Key-Signature", "bm90IGEgc2lnbmF0dXJl")
        .body(body.clone());
    let mut answers: Vec<(u16, String)> = Vec::new();
    for request in [
        unsigned,
        id_only,
        wrong_key,
        tampered_body,
        unknown_id,
        garbage_signature,
    ] {
        let response = request.send().await.unwrap();
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    let first = answers[0].clone();
    assert_eq!(first.0, 401);
    let parsed: Value = serde_json::from_str(&first.1).unwrap();
    assert_eq!(parsed["error"]["code"], "UNAUTHENTICATED");
    for answer in &answers {
        assert_eq!(
            answer, &first,
            "every unverified report gets the same answer"
        );
    }
    // Nothing was revoked.
    assert_eq!(send_status(&server.base, &server.project_token).await, 202);
    // The genuine signature of the same body is accepted.
    let response = signer
        .request(&http, &server.base, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(send_status(&server.base, &server.project_token).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_the_endpoint_does_not_exist() {
    let server = TestServer::start(Backend::Sqlite).await;
    let signer = LeakSigner::new("github-key-1");
    let body = leak_report(&[&server.project_token]);
    let (status, answer) = json(
        signer
            .request(&client(), &server.base, &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "NOT_FOUND");
    assert_eq!(send_status(&server.base, &server.project_token).await, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_body_that_is_not_a_report_is_400_and_changes_nothing() {
    let signer = LeakSigner::new("github-key-1");
    let server = server_with(Backend::Sqlite, &signer).await;
    let body = format!("{{\"token\": \"{}\"}}", server.project_token).into_bytes();
    let response = signer
        .request(&client(), &server.base, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(send_status(&server.base, &server.project_token).await, 202);
}
