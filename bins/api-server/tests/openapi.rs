//! The OpenAPI document describes exactly the routes the router serves.

mod common;

use common::{Backend, TestServer, client, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_documented() {
    let server = TestServer::start(Backend::Sqlite).await;
    let http = client();
    let (status, document) = json(
        http.get(format!("{}/v1/openapi.json", server.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let nil = uuid::Uuid::nil();
    for op in api_server::openapi::ROUTES {
        assert!(
            paths[op.path][op.method].is_object(),
            "{} {} is not in the document",
            op.method,
            op.path
        );
        // Served: whatever the answer, it is not the router's "no such route" or "wrong method".
        let url = format!(
            "{}{}",
            server.base,
            op.path
                .replace("{id}", &nil.to_string())
                .replace("{token}", &nil.to_string())
        );
        let method = reqwest::Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
        let response = http.request(method, &url).send().await.unwrap();
        let status = response.status().as_u16();
        let (_, body) = json(response).await;
        assert_ne!(status, 405, "{} {} is not routed", op.method, op.path);
        assert_ne!(
            body["message"], "Route not found.",
            "{} {} is not routed",
            op.method, op.path
        );
    }
    // Every schema reference resolves.
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved schema {name}");
    }
    assert!(paths["/v1/send"]["post"]["requestBody"].is_object());
    // Each operation appears once.
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(documented, api_server::openapi::ROUTES.len());
}
