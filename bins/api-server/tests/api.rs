//! The HTTP API end to end over real sockets, on both stores.

mod common;

use std::time::Duration;

use common::{Backend, TestServer, client, json, mail};
use lettermint_core::{MessageContent, MessageId, Scope};
use serde_json::{Value, json};

macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Backend::Sqlite).await }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Backend::Postgres).await }
            )+
        }
    };
}

on_both_stores!(
    sends_are_stored_complete_before_202,
    validation_names_every_bad_field,
    bodies_that_are_not_json_get_the_error_shape,
    idempotency_replays_and_conflicts,
    every_authentication_failure_looks_the_same,
    regenerate_and_revoke_take_effect_on_the_next_request,
    team_api_abilities_and_rate_limits,
    another_teams_ids_are_not_found_on_every_route,
    token_management_and_logs,
    shutdown_flushes_usage,
    a_known_token_revoked_since_gets_401_on_every_path,
    messages_are_shown_only_to_their_project,
    rotation_keeps_the_old_value_for_the_overlap_only,
    allowlists_refuse_other_addresses_like_a_bad_token,
);

async fn sends_are_stored_complete_before_202(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let response = http
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &server.project_token)
        .json(&mail("Your receipt"))
        .send()
        .await
        .unwrap();
    let (status, body) = json(response).await;
    assert_eq!(status, 202, "{body}");
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 2, "only message_id and status: {body}");
    assert_eq!(body["status"], "pending");
    let id: MessageId = body["message_id"].as_str().unwrap().parse().unwrap();

    let caller = server
        .services
        .auth
        .authenticate_project(
            Some(&server.project_token),
            lettermint_core::Channel::Api,
            None,
        )
        .await
        .unwrap();
    let stored = server
        .services
        .messages
        .get(caller.project_id, id)
        .await
        .unwrap();
    assert_eq!(stored.envelope_from, "shop@example.com");
    assert_eq!(stored.envelope_to, vec!["customer@example.com"]);
    assert_eq!(stored.tag.as_deref(), Some("receipt"));
    assert_eq!(stored.metadata.get("order").map(String::as_str), Some("42"));
    let MessageContent::Structured(email) = stored.content else {
        panic!("structured")
    };
    assert_eq!(email.subject, "Your receipt");
    assert_eq!(email.text.as_deref(), Some("Thanks for your order."));

    // A batch: same order, atomically.
    let batch = json!([mail("one"), mail("two"), mail("three")]);
    let (status, body) = json(
        http.post(format!("{}/v1/send/batch", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&batch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let replies = body.as_array().unwrap();
    assert_eq!(replies.len(), 3);
    for (reply, subject) in replies.iter().zip(["one", "two", "three"]) {
        let id: MessageId = reply["message_id"].as_str().unwrap().parse().unwrap();
        let stored = server
            .services
            .messages
            .get(caller.project_id, id)
            .await
            .unwrap();
        assert_eq!(stored.subject.as_deref(), Some(subject));
    }
    // A batch with one bad message stores nothing and names the index.
    let bad = json!([mail("fine"), {"from": "x"}]);
    let (status, body) = json(
        http.post(format!("{}/v1/send/batch", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["1.from"].is_array(), "{body}");
    assert!(body["errors"]["1.to"].is_array(), "{body}");
    // Scheduled sends answer with their time.
    let mut scheduled = mail("later");
    scheduled["scheduled_at"] = json!("2099-01-01T08:00:00");
    let (status, body) = json(
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&scheduled)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "scheduled");
    assert_eq!(body["scheduled_at"], "2099-01-01T08:00:00Z");
    // Ping with either kind of token.
    for (header, value) in [
        ("x-lettermint-token", server.project_token.clone()),
        ("authorization", format!("Bearer {}", server.team_token)),
    ] {
        let response = http
            .get(format!("{}/v1/ping", server.base))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "pong");
    }
}

async fn validation_names_every_bad_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = json(
        client()
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&json!({
                "from": "Name <not-an-address>",
                "to": ["ok@example.com", "nope"],
                "subject": "",
                "html": "hi",
                "route": "newsletter",
                "tags": [{"name": "bad name", "value": "x"}],
                "attachments": [{"filename": "a.pdf", "content": "not base64!"}],
                "headers": {"X Bad": "1"},
                "scheduled_at": "next tuesday"
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("more error"),
        "{body}"
    );
    let fields: Vec<&str> = body["errors"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "from",
        "to.1",
        "subject",
        "html",
        "tags.0.name",
        "attachments.0.content",
        "headers.X Bad",
        "scheduled_at",
    ] {
        assert!(fields.contains(&field), "{field} missing in {fields:?}");
    }
    // An unknown route is reported once the rest is valid.
    let mut routed = mail("x");
    routed["route"] = json!("newsletter");
    let (status, body) = json(
        client()
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&routed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["errors"]["route"][0]
            .as_str()
            .unwrap()
            .contains("newsletter")
    );
    let mut routed = mail("x");
    routed["route"] = json!("default");
    let response = client()
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &server.project_token)
        .json(&routed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

async fn bodies_that_are_not_json_get_the_error_shape(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.max_body_bytes = 4096).await;
    let http = client();
    let post = |body: reqwest::Body, content_type: &'static str| {
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, body) = json(
        post("{\"from\": ".into(), "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    let (status, body) = json(
        post("from=a".into(), "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 415);
    assert!(body["message"].is_string());
    let big = serde_json::to_vec(&json!({"text": "x".repeat(10_000)})).unwrap();
    let (status, body) = json(post(big.into(), "application/json").await.unwrap()).await;
    assert_eq!(status, 413);
    assert!(body["message"].is_string());
    // Unknown paths and methods: JSON too, never a redirect.
    let (status, body) = json(
        http.get(format!("{}/v1/sends", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, body) = json(
        http.put(format!("{}/v1/send", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert!(body["message"].is_string());
    let (status, body) = json(
        http.get(format!("{}/v1/send/", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 404 || status == 405, "{status} {body}");
}

async fn idempotency_replays_and_conflicts(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let send = |body: Value, key: &'static str, path: &'static str| {
        http.post(format!("{}{path}", server.base))
            .header("x-lettermint-token", &server.project_token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send(mail("once"), "order-1", "/v1/send").await.unwrap();
    assert_eq!(first.status(), 202);
    let (_, first) = json(first).await;
    // The same body with keys in another order is the same request.
    let reordered: Value = serde_json::from_str(
        r#"{"tag":"receipt","metadata":{"order":"42"},"text":"Thanks for your order.","subject":"once","to":["customer@example.com"],"from":"Shop <shop@example.com>"}"#,
    )
    .unwrap();
    let again = send(reordered, "order-1", "/v1/send").await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let (_, again) = json(again).await;
    assert_eq!(again, first);
    let (status, body) = json(
        send(mail("different"), "order-1", "/v1/send")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        body["message"].as_str().unwrap().contains("different"),
        "{body}"
    );
    // Batches too.
    let batch = json!([mail("a"), mail("b")]);
    let (s1, b1) = json(
        send(batch.clone(), "batch-1", "/v1/send/batch")
            .await
            .unwrap(),
    )
    .await;
    let (s2, b2) = json(send(batch, "batch-1", "/v1/send/batch").await.unwrap()).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(b1, b2);
    // Keys are per project: the same key in another project is a new request.
    let team = server.services.teams.list(Scope::Operator).await.unwrap()[0].clone();
    let (project, _) = server
        .services
        .projects
        .create(
            Scope::Operator,
            lettermint_core::NewProject {
                team_id: team.id,
                name: "Other".into(),
                smtp_enabled: false,
                first_token_name: Some("t".into()),
            },
        )
        .await
        .unwrap();
    let other = server
        .services
        .project_tokens
        .list(
            Scope::Operator,
            project.id,
            Default::default(),
            &lettermint_core::PageRequest::first(
                1,
                lettermint_core::Sort {
                    key: lettermint_core::page::TokenSortKey::Name,
                    direction: lettermint_core::Direction::Ascending,
                },
            ),
        )
        .await
        .unwrap();
    assert_eq!(other.items.len(), 1);
    // Only one replay stored; nothing sent twice: 3 messages in all for the key "order-1".
    let bad = http
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &server.project_token)
        .header("idempotency-key", "x".repeat(256))
        .json(&mail("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
}

async fn every_authentication_failure_looks_the_same(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let revoked = server
        .services
        .project_tokens
        .create(
            Scope::Operator,
            project_of(&server).await,
            "to revoke",
            (),
            None,
        )
        .await
        .unwrap();
    server
        .services
        .project_tokens
        .revoke(Scope::Operator, None, revoked.token.id)
        .await
        .unwrap();
    let unknown = lettermint_core::PlainToken::mint(lettermint_core::TokenKind::Project).unwrap();
    let mut bodies = Vec::new();
    for token in [
        None,
        Some("lm_malformed".to_owned()),
        Some(unknown.expose_secret().to_owned()),
        Some(revoked.secret.expose_secret().to_owned()),
        Some(server.team_token.clone()),
    ] {
        let mut request = http
            .post(format!("{}/v1/send", server.base))
            .json(&mail("x"));
        if let Some(token) = token {
            request = request.header("x-lettermint-token", token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        bodies.push(response.text().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(
        body,
        json!({"message": "Unauthenticated.", "error": {"code": "UNAUTHENTICATED", "message": "Unauthenticated."}})
    );
    // A project token never authenticates the Team API.
    let response = http
        .get(format!("{}/v1/projects", server.base))
        .bearer_auth(&server.project_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The revoked token's log says why (written behind, within about a second).
    let logs = wait_for_logs(&server, revoked.token.id, 1).await;
    assert_eq!(logs[0]["outcome"], "rejected_revoked");
    assert_eq!(logs[0]["status"], 401);
}

async fn project_of(server: &TestServer) -> lettermint_core::ProjectId {
    server
        .services
        .auth
        .authenticate_project(
            Some(&server.project_token),
            lettermint_core::Channel::Api,
            None,
        )
        .await
        .unwrap()
        .project_id
}

async fn wait_for_logs(
    server: &TestServer,
    token: lettermint_core::TokenId,
    at_least: usize,
) -> Vec<Value> {
    let http = client();
    let project = server
        .services
        .project_tokens
        .get(Scope::Operator, None, token)
        .await
        .unwrap()
        .owner;
    for _ in 0..50 {
        let (status, body) = json(
            http.get(format!(
                "{}/v1/projects/{project}/tokens/{token}/logs",
                server.base
            ))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().unwrap().clone();
        if data.len() >= at_least {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the token's log did not receive {at_least} entries");
}

async fn regenerate_and_revoke_take_effect_on_the_next_request(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let project = project_of(&server).await;
    let (status, created) = json(
        http.post(format!("{}/v1/projects/{project}/tokens", server.base))
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "checkout"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let old = created["token"].as_str().unwrap().to_owned();
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let send = |token: String| {
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", token)
            .json(&mail("x"))
            .send()
    };
    assert_eq!(send(old.clone()).await.unwrap().status(), 202);
    let (status, regenerated) = json(
        http.post(format!(
            "{}/v1/projects/{project}/tokens/{id}/regenerate",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{regenerated}");
    let new = regenerated["token"].as_str().unwrap().to_owned();
    assert_eq!(regenerated["data"]["id"], id.as_str());
    assert_eq!(regenerated["data"]["name"], "checkout");
    assert_eq!(send(old).await.unwrap().status(), 401);
    assert_eq!(send(new.clone()).await.unwrap().status(), 202);
    let (status, _) = json(
        http.delete(format!("{}/v1/projects/{project}/tokens/{id}", server.base))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(send(new).await.unwrap().status(), 401);
    // rotate-token (legacy): the project's first token gets a new value.
    let (status, rotated) = json(
        http.post(format!(
            "{}/v1/projects/{project}/rotate-token",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(
        send(server.project_token.clone()).await.unwrap().status(),
        401
    );
    assert_eq!(
        send(rotated["new_token"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        202
    );
}

async fn team_api_abilities_and_rate_limits(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let team = server.services.teams.list(Scope::Operator).await.unwrap()[0].id;
    let reader = server
        .services
        .team_tokens
        .create(
            Scope::Operator,
            team,
            "reader",
            lettermint_core::Abilities::parse("abilities", &["read:projects"]).unwrap(),
            None,
        )
        .await
        .unwrap();
    let reader = reader.secret.expose_secret().to_owned();
    let response = http
        .get(format!("{}/v1/projects", server.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit"], "300");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "299");
    assert!(response.headers().contains_key("x-ratelimit-reset"));
    let (status, body) = json(
        http.post(format!("{}/v1/projects", server.base))
            .bearer_auth(&reader)
            .json(&json!({"name": "Nope"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert_eq!(
        body["error"]["message"],
        "This token does not have the required abilities to perform this action."
    );
    let (status, _) = json(
        http.get(format!("{}/v1/team", server.base))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    // Team: show and rename with the all-abilities token.
    let (status, body) = json(
        http.get(format!("{}/v1/team", server.base))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["projects_count"], 1);
    let (status, body) = json(
        http.put(format!("{}/v1/team", server.base))
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "Renamed"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["data"]["name"].as_str()),
        (200, Some("Renamed"))
    );
    // Regenerations: 10 a minute.
    let project = project_of(&server).await;
    let created = server
        .services
        .project_tokens
        .create(Scope::Operator, project, "spin", (), None)
        .await
        .unwrap();
    let url = format!(
        "{}/v1/projects/{project}/tokens/{}/regenerate",
        server.base, created.token.id
    );
    for i in 0..10 {
        let response = http
            .post(&url)
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "regeneration {i}");
    }
    let response = http
        .post(&url)
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    let (_, body) = json(response).await;
    assert!(body["message"].is_string());
}

async fn another_teams_ids_are_not_found_on_every_route(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    // A second team with a project and a token, seen through the first team's token.
    let other = server
        .services
        .teams
        .create(Scope::Operator, "Other")
        .await
        .unwrap();
    let (their_project, first) = server
        .services
        .projects
        .create(
            Scope::Operator,
            lettermint_core::NewProject {
                team_id: other.id,
                name: "Theirs".into(),
                smtp_enabled: true,
                first_token_name: Some("t".into()),
            },
        )
        .await
        .unwrap();
    let their_token = first.unwrap().token.id;
    let p = their_project.id;
    let t = their_token;
    let routes: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, format!("/v1/projects/{p}"), None),
        (
            reqwest::Method::PUT,
            format!("/v1/projects/{p}"),
            Some(json!({"name": "x"})),
        ),
        (reqwest::Method::DELETE, format!("/v1/projects/{p}"), None),
        (
            reqwest::Method::POST,
            format!("/v1/projects/{p}/rotate-token"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/projects/{p}/tokens"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/projects/{p}/tokens"),
            Some(json!({"name": "x"})),
        ),
        (
            reqwest::Method::GET,
            format!("/v1/projects/{p}/tokens/{t}"),
            None,
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/projects/{p}/tokens/{t}"),
            Some(json!({"name": "x"})),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/projects/{p}/tokens/{t}/regenerate"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/projects/{p}/tokens/{t}/rotate"),
            Some(json!({"overlap": "1h"})),
        ),
        (
            reqwest::Method::PATCH,
            format!("/v1/projects/{p}/tokens/{t}"),
            Some(json!({"allowed_ips": ["10.0.0.0/8"]})),
        ),
        (
            reqwest::Method::DELETE,
            format!("/v1/projects/{p}/tokens/{t}"),
            None,
        ),
        (
            reqwest::Method::GET,
            format!("/v1/projects/{p}/tokens/{t}/logs"),
            None,
        ),
    ];
    // Every Team API route with a path id is covered.
    let covered = api_server::openapi::operations()
        .iter()
        .filter(|(_, path)| path.starts_with("/v1/projects/") && path.contains("{id}"))
        .count();
    // (PATCH is listed twice: a rename and an allowlist change.)
    assert_eq!(covered, routes.len() - 1);
    // Also: our own project with their token id.
    let mine = project_of(&server).await;
    let mixed = format!("/v1/projects/{mine}/tokens/{t}");
    for (method, path, body) in routes
        .into_iter()
        .chain([(reqwest::Method::GET, mixed, None)])
    {
        let mut request = http
            .request(method.clone(), format!("{}{path}", server.base))
            .bearer_auth(&server.team_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body) = json(request.send().await.unwrap()).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
    }
    // Nothing of theirs changed, and their project is not listed.
    let still = server
        .services
        .projects
        .get(Scope::Operator, p)
        .await
        .unwrap();
    assert_eq!(still.name.as_str(), "Theirs");
    assert!(
        server
            .services
            .project_tokens
            .get(Scope::Operator, None, t)
            .await
            .unwrap()
            .revoked_at
            .is_none()
    );
    let (_, listed) = json(
        http.get(format!("{}/v1/projects", server.base))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "Theirs")
    );
    // Ids that are not UUIDs are not found either.
    let (status, _) = json(
        http.get(format!("{}/v1/projects/not-a-uuid", server.base))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

async fn token_management_and_logs(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    let http = client();
    let project = project_of(&server).await;
    let base = format!("{}/v1/projects/{project}/tokens", server.base);
    for name in ["b", "c", "d"] {
        let (status, body) = json(
            http.post(&base)
                .bearer_auth(&server.team_token)
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert!(body["token"].as_str().unwrap().starts_with("lm_"));
        assert_eq!(body["data"]["status"], "active");
    }
    let (status, body) = json(
        http.post(&base)
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "b"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = json(
        http.post(&base)
            .bearer_auth(&server.team_token)
            .json(&json!({"name": " "}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["name"].is_array());
    let (status, body) = json(
        http.post(&base)
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "e", "expires_at": "2000-01-01T00:00:00Z"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["errors"]["expires_at"].is_array());

    // Pages of one, by name, following next_page_url.
    let mut url = format!("{base}?page[size]=1&sort=name");
    let mut names = Vec::new();
    loop {
        let (status, page) = json(
            http.get(&url)
                .bearer_auth(&server.team_token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["per_page"], 1);
        names.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
        match page["next_page_url"].as_str() {
            Some(next) => url = next.to_owned(),
            None => {
                assert!(page["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(names, ["Default", "b", "c", "d"]);

    // Rename, then use through a trusted proxy and read last use and the log.
    let (_, listed) = json(
        http.get(format!("{base}?sort=-name"))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let d = listed["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, renamed) = json(
        http.patch(format!("{base}/{d}"))
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "deploys"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, renamed["data"]["name"].as_str()),
        (200, Some("deploys"))
    );
    let response = http
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &server.project_token)
        .header("x-forwarded-for", "203.0.113.9")
        .header("user-agent", "shop/1.0")
        .json(&mail("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let (_, sent) = json(response).await;
    let default_id = server
        .services
        .auth
        .authenticate_project(
            Some(&server.project_token),
            lettermint_core::Channel::Api,
            None,
        )
        .await
        .unwrap()
        .credential
        .token_id;
    let logs = wait_for_logs(&server, default_id, 1).await;
    assert_eq!(logs[0]["ip"], "203.0.113.9");
    assert_eq!(logs[0]["via"], "api");
    assert_eq!(logs[0]["action"], "send");
    assert_eq!(logs[0]["outcome"], "accepted");
    assert_eq!(logs[0]["user_agent"], "shop/1.0");
    assert_eq!(logs[0]["message_ids"][0], sent["message_id"]);
    let (_, shown) = json(
        http.get(format!("{base}/{default_id}"))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["last_used_ip"], "203.0.113.9");
    assert_eq!(shown["last_used_via"], "api");
    assert!(shown["last_used_at"].as_str().unwrap().ends_with('Z'));
    // Log filters.
    let (_, none) = json(
        http.get(format!(
            "{base}/{default_id}/logs?filter[outcome]=rejected_revoked"
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let (status, _) = json(
        http.get(format!("{base}/{default_id}/logs?filter[outcome]=bogus"))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    // Status filter.
    http.delete(format!("{base}/{d}"))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap();
    let (_, revoked) = json(
        http.get(format!("{base}?filter[status]=revoked"))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(revoked["data"].as_array().unwrap().len(), 1);
    assert_eq!(revoked["data"][0]["status"], "revoked");
    let (_, active) = json(
        http.get(&base)
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(active["data"].as_array().unwrap().len(), 3);
}

async fn shutdown_flushes_usage(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let response = client()
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", &server.project_token)
        .json(&mail("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    server.stop().await;
    let caller = server
        .services
        .auth
        .authenticate_project(
            Some(&server.project_token),
            lettermint_core::Channel::Api,
            None,
        )
        .await
        .unwrap();
    let token = server
        .services
        .project_tokens
        .get(Scope::Operator, None, caller.credential.token_id)
        .await
        .unwrap();
    assert!(token.last_use.at.is_some(), "usage was flushed on shutdown");
}

/// A token that sent before (its identity is remembered) and was revoked since gets 401 for a
/// valid send, an invalid send (not 422) and an idempotent retry (not the replay).
async fn a_known_token_revoked_since_gets_401_on_every_path(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let project = project_of(&server).await;
    let issued = server
        .services
        .project_tokens
        .create(Scope::Operator, project, "known", (), None)
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let post = |body: Value, key: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    assert_eq!(post(mail("first"), None).await.unwrap().status(), 202);
    assert_eq!(
        post(mail("keyed"), Some("k-1")).await.unwrap().status(),
        202
    );
    assert_eq!(
        post(json!({"from": "bad"}), None).await.unwrap().status(),
        422
    );
    server
        .services
        .project_tokens
        .revoke(Scope::Operator, None, issued.token.id)
        .await
        .unwrap();
    assert_eq!(post(mail("second"), None).await.unwrap().status(), 401);
    assert_eq!(
        post(json!({"from": "bad"}), None).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(mail("keyed"), Some("k-1")).await.unwrap().status(),
        401
    );
    let logs = wait_for_logs(&server, issued.token.id, 6).await;
    let outcomes: Vec<&str> = logs
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "rejected_revoked")
            .count(),
        3,
        "{outcomes:?}"
    );
}

async fn messages_are_shown_only_to_their_project(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let mut ids = Vec::new();
    for subject in ["first", "second", "third"] {
        let response = http
            .post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &server.project_token)
            .json(&json!({
                "from": "Shop <shop@example.com>",
                "to": ["Ann <ann@example.net>"],
                "bcc": ["hidden@example.org"],
                "subject": subject,
                "text": "Thanks for your order.",
                "metadata": {"order": "42"},
                "tags": [{"name": "kind", "value": "receipt"}],
                "tag": "receipt",
                "attachments": [{"filename": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain"}]
            }))
            .send()
            .await
            .unwrap();
        let (status, body) = json(response).await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["message_id"].as_str().unwrap().to_owned());
    }
    let get = |path: String, token: String| {
        let http = http.clone();
        let base = server.base.clone();
        async move {
            json(
                http.get(format!("{base}{path}"))
                    .header("x-lettermint-token", token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let token = server.project_token.clone();
    let (status, one) = get(format!("/v1/messages/{}", ids[0]), token.clone()).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], ids[0].as_str());
    assert_eq!(one["status"], "pending");
    assert_eq!(one["type"], "outbound");
    assert_eq!(one["from_email"], "shop@example.com");
    assert_eq!(one["from_name"], "Shop");
    assert_eq!(one["to"][0]["email"], "ann@example.net");
    assert_eq!(one["to"][0]["name"], "Ann");
    assert_eq!(one["bcc"][0]["email"], "hidden@example.org");
    assert_eq!(one["subject"], "first");
    assert_eq!(one["tag"], "receipt");
    assert_eq!(one["tags"], json!([{"name": "kind", "value": "receipt"}]));
    assert_eq!(one["metadata"], json!({"order": "42"}));
    assert_eq!(
        one["attachments"],
        json!([{"size": 5, "filename": "a.txt", "content_id": null, "content_type": "text/plain"}])
    );
    assert_eq!(one["attempts"], 0);
    assert_eq!(one["via"], "api");
    assert!(one["last_reply"].is_null() && one["next_attempt_at"].is_null());

    // Newest first, in pages, with the upstream page shape.
    let (status, page) = get("/v1/messages?page[size]=2".to_owned(), token.clone()).await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()]);
    let next = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(
        format!("/v1/messages?page[size]=2&page[cursor]={next}"),
        token.clone(),
    )
    .await;
    assert_eq!(rest["data"][0]["id"], ids[0].as_str());
    assert!(rest["next_cursor"].is_null());
    let (_, none) = get(
        "/v1/messages?filter[status]=delivered".to_owned(),
        token.clone(),
    )
    .await;
    assert_eq!(none["data"], json!([]));
    let (status, bad) = get("/v1/messages?filter[status]=lost".to_owned(), token.clone()).await;
    assert_eq!(status, 422, "{bad}");
    assert!(bad["errors"]["filter.status"].is_array(), "{bad}");

    // Another project's token: the message does not exist for it.
    let caller = server
        .services
        .auth
        .authenticate_project(
            Some(&server.project_token),
            lettermint_core::Channel::Api,
            None,
        )
        .await
        .unwrap();
    let team = server
        .services
        .projects
        .get(Scope::Operator, caller.project_id)
        .await
        .unwrap()
        .team_id;
    let (_, other) = server
        .services
        .projects
        .create(
            Scope::Operator,
            lettermint_core::NewProject {
                team_id: team,
                name: "Other".into(),
                smtp_enabled: true,
                first_token_name: Some("t".into()),
            },
        )
        .await
        .unwrap();
    let other_token = other.unwrap().secret.expose_secret().to_owned();
    let (status, _) = get(format!("/v1/messages/{}", ids[0]), other_token.clone()).await;
    assert_eq!(status, 404);
    let (_, theirs) = get("/v1/messages".to_owned(), other_token).await;
    assert_eq!(theirs["data"], json!([]));
    let (status, _) = get("/v1/messages/not-an-id".to_owned(), token.clone()).await;
    assert_eq!(status, 404);
    let (status, _) = get(format!("/v1/messages/{}", ids[0]), "lm_nope".to_owned()).await;
    assert_eq!(status, 401);
}

/// Creates a project token through the Team API with `body`; its id and value.
async fn create_token(
    server: &TestServer,
    project: lettermint_core::ProjectId,
    body: Value,
) -> (String, String) {
    let (status, created) = json(
        client()
            .post(format!("{}/v1/projects/{project}/tokens", server.base))
            .bearer_auth(&server.team_token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    (
        created["data"]["id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

async fn send_status(server: &TestServer, token: &str) -> u16 {
    client()
        .post(format!("{}/v1/send", server.base))
        .header("x-lettermint-token", token)
        .json(&mail("x"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn rotation_keeps_the_old_value_for_the_overlap_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let project = project_of(&server).await;
    let (id, old) = create_token(&server, project, json!({"name": "rotating"})).await;
    let rotate = |overlap: Value| {
        http.post(format!(
            "{}/v1/projects/{project}/tokens/{id}/rotate",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .json(&json!({ "overlap": overlap }))
        .send()
    };
    // Bounds: at most 7 days, a duration with a unit.
    for bad in [
        json!("8d"),
        json!("0s"),
        json!("24"),
        json!(3600),
        Value::Null,
    ] {
        let (status, body) = json(rotate(bad.clone()).await.unwrap()).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["errors"]["overlap"].is_array(), "{body}");
    }
    // Warm the identity cache with the old value, then rotate with a short overlap.
    assert_eq!(send_status(&server, &old).await, 202);
    let (status, rotated) = json(rotate(json!("2s")).await.unwrap()).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(
        rotated["data"]["previous_expires_at"].is_string(),
        "{rotated}"
    );
    assert_eq!(send_status(&server, &old).await, 202);
    assert_eq!(send_status(&server, &new).await, 202);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(send_status(&server, &old).await, 401);
    assert_eq!(send_status(&server, &new).await, 202);
    let (_, shown) = json(
        http.get(format!("{}/v1/projects/{project}/tokens/{id}", server.base))
            .bearer_auth(&server.team_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["previous_expires_at"], Value::Null, "{shown}");
    // The log tells the two values apart.
    let token_id: lettermint_core::TokenId = id.parse().unwrap();
    let logs = wait_for_logs(&server, token_id, 4).await;
    let credentials: Vec<&str> = logs
        .iter()
        .filter(|e| e["outcome"] == "accepted")
        .map(|e| e["credential"].as_str().unwrap())
        .collect();
    assert!(credentials.contains(&"previous"), "{logs:?}");
    assert!(credentials.contains(&"current"), "{logs:?}");

    // Regenerate ends a running overlap at once.
    let (status, rotated) = json(rotate(json!("7d")).await.unwrap()).await;
    assert_eq!(status, 200, "{rotated}");
    let newest = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(send_status(&server, &new).await, 202);
    let (status, regenerated) = json(
        http.post(format!(
            "{}/v1/projects/{project}/tokens/{id}/regenerate",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{regenerated}");
    assert_eq!(send_status(&server, &new).await, 401);
    assert_eq!(send_status(&server, &newest).await, 401);
}

async fn allowlists_refuse_other_addresses_like_a_bad_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let http = client();
    let project = project_of(&server).await;
    // Bad entries are named by index.
    let (status, body) = json(
        http.post(format!("{}/v1/projects/{project}/tokens", server.base))
            .bearer_auth(&server.team_token)
            .json(&json!({"name": "bad", "allowed_ips": ["10.0.0.0/8", "nope"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["allowed_ips.1"].is_array(), "{body}");

    let (excluded, excluded_secret) = create_token(
        &server,
        project,
        json!({"name": "office", "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]}),
    )
    .await;
    let (status, refused) = json(
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", &excluded_secret)
            .json(&mail("x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, unknown) = json(
        http.post(format!("{}/v1/send", server.base))
            .header("x-lettermint-token", "lm_notarealtoken")
            .json(&mail("x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(refused, unknown, "same body as a bad token");
    let logs = wait_for_logs(&server, excluded.parse().unwrap(), 1).await;
    assert_eq!(logs[0]["outcome"], "rejected_ip", "{logs:?}");
    assert_eq!(logs[0]["ip"], "127.0.0.1", "{logs:?}");
    assert_eq!(logs[0]["status"], 401);

    let (included, included_secret) = create_token(
        &server,
        project,
        json!({"name": "local", "allowed_ips": ["127.0.0.0/8"]}),
    )
    .await;
    assert_eq!(send_status(&server, &included_secret).await, 202);
    // Narrowing the list applies to the next request, even with the identity cached.
    let (status, updated) = json(
        http.patch(format!(
            "{}/v1/projects/{project}/tokens/{included}",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .json(&json!({"allowed_ips": ["192.0.2.0/24"]}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["allowed_ips"], json!(["192.0.2.0/24"]));
    assert_eq!(send_status(&server, &included_secret).await, 401);
    let (status, updated) = json(
        http.patch(format!(
            "{}/v1/projects/{project}/tokens/{included}",
            server.base
        ))
        .bearer_auth(&server.team_token)
        .json(&json!({"allowed_ips": []}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(send_status(&server, &included_secret).await, 202);
}
