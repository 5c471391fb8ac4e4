//! The OpenAPI document describes exactly the routes the router serves, and what they really
//! accept and answer.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use axum::body::Body;
use common::{Backend, LeakSigner, TestServer, client, mail};
use lettermint_core::Scope;
use serde_json::{Value, json};
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every documented operation, as (method, path template).
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| METHODS.contains(&m.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect()
}

fn concrete(template: &str) -> String {
    let nil = uuid::Uuid::nil().to_string();
    template.replace("{id}", &nil).replace("{token}", &nil)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_documented() {
    let key = LeakSigner::new("k").config_key();
    let server =
        TestServer::start_with(Backend::Sqlite, move |c| c.leak_report_keys = vec![key]).await;
    let http = client();
    let response = http
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "served as JSON"
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document,
        serde_json::to_value(api_server::openapi::document()).unwrap(),
        "the served document is the one the code builds"
    );
    let operations = operations(&document);
    assert_eq!(operations.len(), 26, "{operations:?}");
    let listed: BTreeSet<(String, String)> = api_server::openapi::operations()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p))
        .collect();
    assert_eq!(listed, operations, "no other methods are documented");
    for (method, path) in &operations {
        // Served: whatever the answer, it is not the router's "no such route" or "wrong method".
        let url = format!("{}{}", server.base, concrete(path));
        let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = http.request(verb, &url).send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path} is not routed");
        assert_ne!(
            body["message"], "Route not found.",
            "{method} {path} is not routed"
        );
        let operation = &document["paths"][path][method];
        assert!(operation["summary"].is_string(), "{method} {path}: summary");
        assert!(
            operation["responses"].as_object().unwrap().len() >= 2,
            "{method} {path}: success and error responses"
        );
        // Team API operations name their ability and authenticate with team tokens.
        if path.starts_with("/v1/team") || path.starts_with("/v1/projects") {
            let ability = operation["x-required-ability"].as_str().unwrap();
            assert!(
                operation["description"].as_str().unwrap().contains(ability),
                "{method} {path}: the description names {ability}"
            );
            assert_eq!(operation["security"], json!([{"teamToken": []}]));
            for status in ["401", "403", "422", "429"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path}: {status}"
                );
            }
            assert!(
                operation["responses"]["429"]["headers"]["Retry-After"].is_object(),
                "{method} {path}: 429 names Retry-After"
            );
        }
    }
    // Every schema reference resolves.
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved schema {name}");
    }
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["projectToken"]["name"], "x-lettermint-token");
    assert_eq!(schemes["projectToken"]["in"], "header");
    assert_eq!(schemes["teamToken"]["scheme"], "bearer");
    // The contract's shapes, as the document states them.
    let send = &document["paths"]["/v1/send/batch"]["post"];
    assert_eq!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendBatch"
    );
    assert_eq!(schemas["SendBatch"]["type"], "array");
    assert_eq!(
        send["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SendBatchResponse"
    );
    assert_eq!(schemas["SendBatchResponse"]["type"], "array");
    assert!(
        document["paths"]["/v1/ping"]["get"]["responses"]["200"]["content"]["text/plain"]
            .is_object()
    );
    assert_eq!(
        schemas["Token"]["properties"]["revoked_at"]["type"],
        json!(["string", "null"])
    );
}

/// The OpenAPI Initiative's JSON Schema of OpenAPI 3.1 documents
/// (`https://spec.openapis.org/oas/3.1/schema/2022-10-07`, Apache-2.0).
const OPENAPI_3_1_SCHEMA: &str = include_str!("fixtures/openapi-3.1-schema.json");

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = serde_json::to_value(api_server::openapi::document()).unwrap();
    let schema: Value = serde_json::from_str(OPENAPI_3_1_SCHEMA).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // Every component schema is a valid JSON Schema (2020-12) on its own terms.
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let mut root = document.clone();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        jsonschema::meta::validate(schema)
            .unwrap_or_else(|e| panic!("{name} is not a valid JSON Schema: {e}"));
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&root)
            .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
    }
    // A broken document is refused (the check can fail).
    let mut broken = document.clone();
    broken["paths"]["/v1/send"]["post"]["responses"] = json!("none");
    assert!(!validator.is_valid(&broken));
}

/// The routes of a router, read from its `Debug` output (axum keeps no other public list).
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let start = text
        .find("path_router")
        .expect("axum's Router debug output");
    let end = text
        .find("fallback_router")
        .expect("axum's Router debug output");
    let section = &text[start..end];
    let paths: BTreeSet<String> = section
        .split("): \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect();
    assert!(
        paths.iter().all(|p| p.starts_with('/')),
        "unexpected debug output: {paths:?}"
    );
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_route_is_documented() {
    let (url, _dir) = common::database(Backend::Sqlite).await;
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions::default())
        .await
        .unwrap();
    // The dashboard's HTML pages are not API: they are left out here, and none lives under
    // /v1 (checked below).
    let config = api_server::config::Config {
        database_url: url,
        dashboard: false,
        ..Default::default()
    };
    let with_dashboard = api_server::config::Config {
        dashboard: true,
        ..config.clone()
    };
    let (state, _background) = api_server::start(store.into_dyn(), config, None);
    let services = state.services.clone();
    let team = api_server::bootstrap(&services).await.unwrap().unwrap();
    let team_id = services.teams.list(Scope::Operator).await.unwrap()[0].id;
    let router = api_server::router(state.clone());
    let api_paths = router_paths(&router);
    let all_paths = {
        let store = lettermint_store::open(
            &with_dashboard.database_url,
            lettermint_store::OpenOptions::default(),
        )
        .await
        .unwrap();
        let (state, _background) = api_server::start(store.into_dyn(), with_dashboard, None);
        router_paths(&api_server::router(state))
    };
    for page in all_paths.difference(&api_paths) {
        assert!(
            !page.starts_with("/v1"),
            "{page} is a dashboard page under /v1"
        );
    }
    assert!(all_paths.contains("/login") && all_paths.is_superset(&api_paths));
    let document = serde_json::to_value(api_server::openapi::document()).unwrap();
    let documented = operations(&document);

    let paths = router_paths(&router);
    let documented_paths: BTreeSet<String> = documented.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(paths, documented_paths, "the router's paths are documented");

    // Every method the router answers on those paths is documented (HEAD comes with GET), and
    // every other one is the router's 405. The Team API authenticates before the method is
    // checked, so the requests carry a team token (ids are nil: nothing is changed).
    // A fresh token for each path keeps the requests under the rate limits.
    assert!(!team.team_token.is_empty());
    let mut served = BTreeSet::new();
    for path in &paths {
        let token = services
            .team_tokens
            .create(
                Scope::Operator,
                team_id,
                &format!("probe {path}"),
                lettermint_core::Abilities::all(),
                None,
            )
            .await
            .unwrap();
        let bearer = format!("Bearer {}", token.secret.expose_secret());
        for method in METHODS.iter().chain(&["options", "trace"]) {
            let request = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(concrete(path))
                .header("authorization", &bearer)
                .body(Body::empty())
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_ne!(response.status(), 429, "{method} {path}");
            if response.status() != 405 {
                served.insert((method.to_string(), path.clone()));
            }
        }
    }
    assert_eq!(served, documented, "served operations == documented ones");
}

// --- requests and responses against the document -----------------------------------------------

/// Validates instances against the schemas of the document, resolving `$ref`s in it.
struct Checker {
    document: Value,
    validators: Mutex<HashMap<String, jsonschema::Validator>>,
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl Checker {
    fn new(document: Value) -> Self {
        Self {
            document,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// Errors of `instance` against the schema at `pointer` (a JSON pointer into the document).
    fn errors(&self, pointer: &str, instance: &Value) -> Vec<String> {
        assert!(
            self.document.pointer(pointer).is_some(),
            "no schema at {pointer}"
        );
        let mut validators = self.validators.lock().unwrap();
        let validator = validators.entry(pointer.to_owned()).or_insert_with(|| {
            // The document is the root resource, so `#/components/schemas/...` resolves in it.
            let mut root = self.document.clone();
            root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
            // A JSON pointer in a URI fragment: `{` and `}` are percent-encoded.
            let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
            root["$ref"] = json!(format!("#{fragment}"));
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"))
        });
        validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    }

    fn operation_pointer(&self, method: &str, template: &str) -> String {
        let pointer = format!("/paths/{}/{method}", escape(template));
        assert!(
            self.document.pointer(&pointer).is_some(),
            "{method} {template} is not documented"
        );
        pointer
    }

    fn request(&self, call: &Call<'_>) {
        let operation = self.operation_pointer(call.method, call.template);
        let parameters = self.document["paths"][call.template][call.method]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut given: Vec<(&str, &str, Value)> = Vec::new();
        let names: Vec<&str> = call
            .template
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(names.len(), call.path_params.len(), "{}", call.template);
        for (name, value) in names.iter().zip(call.path_params) {
            given.push(("path", name, json!(value)));
        }
        for (name, value) in call.query {
            given.push(("query", name, json!(value)));
        }
        for (name, value) in call.headers {
            given.push(("header", name, json!(value)));
        }
        let sent: Vec<String> = given.iter().map(|(_, n, _)| n.to_lowercase()).collect();
        for (location, name, value) in given {
            let index = parameters
                .iter()
                .position(|p| p["in"] == location && p["name"] == name)
                .unwrap_or_else(|| {
                    panic!(
                        "{} {}: {location} parameter {name} is not documented",
                        call.method, call.template
                    )
                });
            let schema = &parameters[index]["schema"];
            // Query values are text; integer parameters are compared as numbers.
            let value = match (schema["type"].as_str(), value.as_str()) {
                (Some("integer"), Some(text)) => {
                    text.parse::<i64>().map_or(value.clone(), |n| json!(n))
                }
                _ => value,
            };
            let errors = self.errors(&format!("{operation}/parameters/{index}/schema"), &value);
            assert!(
                errors.is_empty(),
                "{} {}: {location} parameter {name}: {errors:?}",
                call.method,
                call.template
            );
        }
        for parameter in &parameters {
            if parameter["required"] == true {
                let name = parameter["name"].as_str().unwrap();
                // Header names are case-insensitive; path and query names are lower case here.
                assert!(
                    sent.contains(&name.to_lowercase()),
                    "{} {}: required {name} not sent",
                    call.method,
                    call.template
                );
            }
        }
        let documented_body = self.document.pointer(&format!("{operation}/requestBody"));
        match (&call.body, documented_body) {
            (Some(body), Some(_)) => {
                let errors = self.errors(
                    &format!("{operation}/requestBody/content/application~1json/schema"),
                    body,
                );
                assert!(
                    errors.is_empty(),
                    "{} {}: the sample request does not match its schema: {errors:?}\n{body}",
                    call.method,
                    call.template
                );
            }
            (Some(_), None) => panic!(
                "{} {}: sends a body the document does not describe",
                call.method, call.template
            ),
            (None, Some(documented)) => assert_ne!(
                documented["required"], true,
                "{} {}: the body is required",
                call.method, call.template
            ),
            (None, None) => {}
        }
    }

    /// Checks a real response; returns whether it was a documented success.
    fn response(
        &self,
        call: &Call<'_>,
        status: u16,
        headers: &axum::http::HeaderMap,
        text: &str,
    ) -> bool {
        let operation = self.operation_pointer(call.method, call.template);
        let responses = &self.document["paths"][call.template][call.method]["responses"];
        let key = if responses[status.to_string()].is_object() {
            status.to_string()
        } else {
            assert!(
                status >= 400 && responses["default"].is_object(),
                "{} {}: status {status} is not documented ({text})",
                call.method,
                call.template
            );
            "default".to_owned()
        };
        let pointer = format!("{operation}/responses/{key}");
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let contents = &self.document.pointer(&pointer).unwrap()["content"];
        if !text.is_empty() || contents.is_object() {
            assert!(
                contents[media].is_object(),
                "{} {}: {status} answered {media}, documented {contents}",
                call.method,
                call.template
            );
            let instance = if media == "application/json" {
                serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
            } else {
                Value::String(text.to_owned())
            };
            let errors = self.errors(
                &format!("{pointer}/content/{}/schema", escape(media)),
                &instance,
            );
            assert!(
                errors.is_empty(),
                "{} {}: the {status} response does not match its schema: {errors:?}\n{text}",
                call.method,
                call.template
            );
        }
        // Documented headers that are present match their schemas.
        if let Some(documented) = self.document.pointer(&format!("{pointer}/headers")) {
            for (name, header) in documented.as_object().unwrap() {
                let Some(value) = headers.get(name.as_str()) else {
                    continue;
                };
                let value = value.to_str().unwrap();
                let instance = if header["schema"]["type"] == "integer" {
                    json!(value.parse::<i64>().unwrap_or(-1))
                } else {
                    json!(value)
                };
                let errors = self.errors(
                    &format!("{pointer}/headers/{}/schema", escape(name)),
                    &instance,
                );
                assert!(errors.is_empty(), "{name}: {errors:?}");
            }
        }
        (200..300).contains(&status)
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Project(&'a str),
    Team(&'a str),
}

struct Call<'a> {
    method: &'a str,
    template: &'a str,
    path_params: &'a [&'a str],
    query: &'a [(&'a str, &'a str)],
    headers: &'a [(&'a str, &'a str)],
    auth: Auth<'a>,
    body: Option<Value>,
}

impl<'a> Call<'a> {
    fn new(method: &'a str, template: &'a str) -> Self {
        Self {
            method,
            template,
            path_params: &[],
            query: &[],
            headers: &[],
            auth: Auth::None,
            body: None,
        }
    }

    fn on(mut self, path_params: &'a [&'a str]) -> Self {
        self.path_params = path_params;
        self
    }

    fn query(mut self, query: &'a [(&'a str, &'a str)]) -> Self {
        self.query = query;
        self
    }

    fn headers(mut self, headers: &'a [(&'a str, &'a str)]) -> Self {
        self.headers = headers;
        self
    }

    fn auth(mut self, auth: Auth<'a>) -> Self {
        self.auth = auth;
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

struct Exercise<'s> {
    server: &'s TestServer,
    http: reqwest::Client,
    checker: Checker,
    succeeded: BTreeSet<(String, String)>,
    statuses: BTreeSet<(String, String, u16)>,
}

impl Exercise<'_> {
    /// Sends `call` (a request the document says is valid), checks the request and the response
    /// against the document, and returns the status and JSON body.
    async fn send(&mut self, call: Call<'_>) -> (u16, Value) {
        self.checker.request(&call);
        self.send_unchecked(call).await
    }

    /// Sends `call` without checking the request (requests that are meant to be refused), and
    /// checks the response.
    async fn send_unchecked(&mut self, call: Call<'_>) -> (u16, Value) {
        let mut path = call.template.to_owned();
        let names: Vec<&str> = call
            .template
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (name, value) in names.iter().zip(call.path_params) {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let method = reqwest::Method::from_bytes(call.method.to_uppercase().as_bytes()).unwrap();
        let query: Vec<String> = call
            .query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    api_server::team::encode(k),
                    api_server::team::encode(v)
                )
            })
            .collect();
        let url = if query.is_empty() {
            format!("{}{path}", self.server.base)
        } else {
            format!("{}{path}?{}", self.server.base, query.join("&"))
        };
        let mut request = self.http.request(method, url);
        for (name, value) in call.headers {
            request = request.header(*name, *value);
        }
        request = match call.auth {
            Auth::None => request,
            Auth::Project(token) => request.header("x-lettermint-token", token),
            Auth::Team(token) => request.bearer_auth(token),
        };
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        self.record(&call, status, &headers, &text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Checks a response against the document and counts it.
    fn record(
        &mut self,
        call: &Call<'_>,
        status: u16,
        headers: &axum::http::HeaderMap,
        text: &str,
    ) {
        if self.checker.response(call, status, headers, text) {
            self.succeeded
                .insert((call.method.to_owned(), call.template.to_owned()));
        }
        self.statuses
            .insert((call.method.to_owned(), call.template.to_owned(), status));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_and_responses_match_the_document() {
    let signer = LeakSigner::new("github-key");
    let key = signer.config_key();
    let server =
        TestServer::start_with(Backend::Sqlite, move |c| c.leak_report_keys = vec![key]).await;
    let document = serde_json::to_value(api_server::openapi::document()).unwrap();
    let all = operations(&document);
    let mut x = Exercise {
        server: &server,
        http: client(),
        checker: Checker::new(document),
        succeeded: BTreeSet::new(),
        statuses: BTreeSet::new(),
    };
    let project = server.project_token.clone();
    let team = server.team_token.clone();
    let (p, t) = (Auth::Project(&project), Auth::Team(&team));
    let nil = uuid::Uuid::nil().to_string();

    // Operations.
    x.send(Call::new("get", "/healthz")).await;
    x.send(Call::new("get", "/readyz")).await;
    x.send(Call::new("get", "/metrics")).await;
    x.send(Call::new("get", "/v1/openapi.json")).await;

    // Ping, with either kind of token.
    assert_eq!(x.send(Call::new("get", "/v1/ping").auth(p)).await.0, 200);
    assert_eq!(x.send(Call::new("get", "/v1/ping").auth(t)).await.0, 200);
    assert_eq!(x.send(Call::new("get", "/v1/ping")).await.0, 401);

    // Sending.
    let full = json!({
        "from": "Shop <shop@example.com>",
        "to": "customer@example.com",
        "cc": ["c@example.com"],
        "bcc": null,
        "reply_to": ["Support <support@example.com>"],
        "subject": "Your receipt",
        "html": "<p>Thanks!</p>",
        "text": null,
        "route": "default",
        "headers": {"X-Campaign": "spring"},
        "metadata": {"order": "42"},
        "tag": "receipt mail",
        "tags": [{"name": "kind", "value": "receipt"}],
        "attachments": [{"filename": "a.txt", "content": "aGVsbG8=", "content_type": "text/plain", "content_id": "logo"}],
        "scheduled_at": null
    });
    assert_eq!(
        x.send(Call::new("post", "/v1/send").auth(p).body(full.clone()))
            .await
            .0,
        202
    );
    let (status, body) = x
        .send(
            Call::new("post", "/v1/send")
                .auth(p)
                .body(json!({"from": "a@example.com", "to": ["b@example.com"], "subject": "Later", "text": "Later on", "scheduled_at": "2099-01-01 10:00:00"})),
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (202, Some("scheduled")));
    let key = [("Idempotency-Key", "openapi-1")];
    let once = mail("Once");
    assert_eq!(
        x.send(
            Call::new("post", "/v1/send")
                .auth(p)
                .headers(&key)
                .body(once.clone())
        )
        .await
        .0,
        202
    );
    assert_eq!(
        x.send(
            Call::new("post", "/v1/send")
                .auth(p)
                .headers(&key)
                .body(once)
        )
        .await
        .0,
        202,
        "replayed"
    );
    assert_eq!(
        x.send(
            Call::new("post", "/v1/send")
                .auth(p)
                .headers(&key)
                .body(mail("Other"))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        x.send_unchecked(
            Call::new("post", "/v1/send")
                .auth(p)
                .body(json!({"from": "nope", "to": [], "subject": ""}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        x.send(Call::new("post", "/v1/send").body(mail("Anonymous")))
            .await
            .0,
        401
    );
    assert_eq!(
        x.send(
            Call::new("post", "/v1/send/batch")
                .auth(p)
                .body(json!([mail("One"), full]))
        )
        .await
        .0,
        202
    );
    assert_eq!(
        x.send_unchecked(Call::new("post", "/v1/send/batch").auth(p).body(json!([])))
            .await
            .0,
        422
    );

    // Messages, newest first, and one of them.
    let (status, listed) = x
        .send(
            Call::new("get", "/v1/messages")
                .auth(p)
                .query(&[("page[size]", "2"), ("sort", "-created_at")]),
        )
        .await;
    assert_eq!(status, 200);
    let first = listed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        x.send(Call::new("get", "/v1/messages/{id}").auth(p).on(&[&first]))
            .await
            .0,
        200
    );
    assert_eq!(
        x.send(
            Call::new("get", "/v1/messages")
                .auth(p)
                .query(&[("filter[status]", "scheduled")])
        )
        .await
        .0,
        200
    );
    assert_eq!(
        x.send(Call::new("get", "/v1/messages/{id}").auth(p).on(&[&nil]))
            .await
            .0,
        404
    );
    assert_eq!(x.send(Call::new("get", "/v1/messages")).await.0, 401);

    // The team.
    let (_, team_body) = x.send(Call::new("get", "/v1/team").auth(t)).await;
    let team_id: lettermint_core::TeamId = team_body["id"].as_str().unwrap().parse().unwrap();
    x.send(
        Call::new("put", "/v1/team")
            .auth(t)
            .body(json!({"name": "Renamed team"})),
    )
    .await;
    assert_eq!(
        x.send_unchecked(Call::new("put", "/v1/team").auth(t).body(json!({})))
            .await
            .0,
        422
    );
    assert_eq!(x.send(Call::new("get", "/v1/team")).await.0, 401);

    // Projects.
    let (status, created) = x
        .send(
            Call::new("post", "/v1/projects")
                .auth(t)
                .body(json!({"name": "Shop", "smtp_enabled": true})),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    x.send(
        Call::new("post", "/v1/projects")
            .auth(t)
            .body(json!({"name": "Blog"})),
    )
    .await;
    let (_, page) = x
        .send(Call::new("get", "/v1/projects").auth(t).query(&[
            ("page[size]", "1"),
            ("sort", "-name"),
            ("filter[search]", ""),
        ]))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    x.send(Call::new("get", "/v1/projects").auth(t).query(&[
        ("page[size]", "1"),
        ("sort", "-name"),
        ("page[cursor]", &cursor),
    ]))
    .await;
    let ids = [id.as_str()];
    x.send(Call::new("get", "/v1/projects/{id}").auth(t).on(&ids))
        .await;
    x.send(
        Call::new("put", "/v1/projects/{id}")
            .auth(t)
            .on(&ids)
            .body(json!({"name": "Shop 2", "smtp_enabled": null})),
    )
    .await;
    assert_eq!(
        x.send(Call::new("get", "/v1/projects/{id}").auth(t).on(&[&nil]))
            .await
            .0,
        404
    );
    let (_, rotated) = x
        .send(
            Call::new("post", "/v1/projects/{id}/rotate-token")
                .auth(t)
                .on(&ids),
        )
        .await;
    let rotated_token = rotated["new_token"].as_str().unwrap().to_owned();
    // The rotated token works, so the token's log gets entries.
    assert_eq!(
        x.send(Call::new("get", "/v1/ping").auth(Auth::Project(&rotated_token)))
            .await
            .0,
        200
    );

    // Project tokens.
    let (status, issued) = x
        .send(
            Call::new("post", "/v1/projects/{id}/tokens")
                .auth(t)
                .on(&ids)
                .body(json!({"name": "CI", "expires_at": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 201);
    let token_id = issued["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        x.send(
            Call::new("post", "/v1/projects/{id}/tokens")
                .auth(t)
                .on(&ids)
                .body(json!({"name": "CI"}))
        )
        .await
        .0,
        409
    );
    let (_, tokens) = x
        .send(
            Call::new("get", "/v1/projects/{id}/tokens")
                .auth(t)
                .on(&ids)
                .query(&[("filter[status]", "all"), ("sort", "last_used_at")]),
        )
        .await;
    let first_token = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Default")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let both = [id.as_str(), token_id.as_str()];
    x.send(
        Call::new("get", "/v1/projects/{id}/tokens/{token}")
            .auth(t)
            .on(&both),
    )
    .await;
    x.send(
        Call::new("patch", "/v1/projects/{id}/tokens/{token}")
            .auth(t)
            .on(&both)
            .body(json!({"name": "CI runner"})),
    )
    .await;
    x.send(
        Call::new("patch", "/v1/projects/{id}/tokens/{token}")
            .auth(t)
            .on(&both)
            .body(json!({"allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]})),
    )
    .await;
    assert_eq!(
        x.send(
            Call::new("patch", "/v1/projects/{id}/tokens/{token}")
                .auth(t)
                .on(&both)
                .body(json!({"allowed_ips": ["not a network"]})),
        )
        .await
        .0,
        422
    );
    x.send(
        Call::new("post", "/v1/projects/{id}/tokens/{token}/rotate")
            .auth(t)
            .on(&both)
            .body(json!({"overlap": "24h"})),
    )
    .await;
    assert_eq!(
        x.send(
            Call::new("post", "/v1/projects/{id}/tokens/{token}/rotate")
                .auth(t)
                .on(&both)
                .body(json!({"overlap": "8d"})),
        )
        .await
        .0,
        422
    );
    x.send(
        Call::new("post", "/v1/projects/{id}/tokens/{token}/regenerate")
            .auth(t)
            .on(&both),
    )
    .await;
    // The log of the rotated first token: its ping, once flushed (every second).
    let used = [id.as_str(), first_token.as_str()];
    let mut entries = 0;
    for _ in 0..50 {
        let (_, logs) = x
            .send(
                Call::new("get", "/v1/projects/{id}/tokens/{token}/logs")
                    .auth(t)
                    .on(&used)
                    .query(&[
                        ("page[size]", "10"),
                        ("filter[outcome]", "accepted"),
                        ("filter[from]", "2000-01-01T00:00:00Z"),
                        ("filter[to]", "2099-01-01 00:00:00"),
                    ]),
            )
            .await;
        entries = logs["data"].as_array().unwrap().len();
        if entries > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(entries > 0, "the log was checked with entries in it");
    // Used tokens carry their last use.
    x.send(
        Call::new("get", "/v1/projects/{id}/tokens/{token}")
            .auth(t)
            .on(&used),
    )
    .await;
    x.send(
        Call::new("get", "/v1/projects/{id}/tokens")
            .auth(t)
            .on(&ids),
    )
    .await;
    x.send(
        Call::new("delete", "/v1/projects/{id}/tokens/{token}")
            .auth(t)
            .on(&both),
    )
    .await;
    assert_eq!(
        x.send(
            Call::new("post", "/v1/projects/{id}/tokens/{token}/regenerate")
                .auth(t)
                .on(&both)
        )
        .await
        .0,
        409,
        "a revoked token cannot be regenerated"
    );
    assert_eq!(
        x.send(
            Call::new("get", "/v1/projects/{id}/tokens/{token}")
                .auth(t)
                .on(&[&id, &nil])
        )
        .await
        .0,
        404
    );

    // A token without the abilities gets 403; a token over its rate limit gets 429.
    let limited = server
        .services
        .team_tokens
        .create(
            Scope::Operator,
            team_id,
            "Limited",
            lettermint_core::Abilities::parse("abilities", &["read:team"]).unwrap(),
            None,
        )
        .await
        .unwrap();
    let limited = limited.secret.expose_secret().to_owned();
    assert_eq!(
        x.send(Call::new("get", "/v1/projects").auth(Auth::Team(&limited)))
            .await
            .0,
        403
    );
    let busy = server
        .services
        .team_tokens
        .create(
            Scope::Operator,
            team_id,
            "Busy",
            lettermint_core::Abilities::all(),
            None,
        )
        .await
        .unwrap();
    let busy = busy.secret.expose_secret().to_owned();
    let mut limited_status = 0;
    for _ in 0..12 {
        limited_status = x
            .send(
                Call::new("post", "/v1/projects/{id}/rotate-token")
                    .auth(Auth::Team(&busy))
                    .on(&ids),
            )
            .await
            .0;
    }
    assert_eq!(limited_status, 429);

    x.send(Call::new("delete", "/v1/projects/{id}").auth(t).on(&ids))
        .await;

    // Leak reports: signed over the exact bytes sent (what `.json()` serialises).
    let bootstrap_project = server
        .services
        .auth
        .authenticate_project(Some(&project), lettermint_core::Channel::Api, None)
        .await
        .unwrap()
        .project_id;
    let leaked = server
        .services
        .project_tokens
        .create(Scope::Operator, bootstrap_project, "leaked", (), None)
        .await
        .unwrap();
    let report = json!([
        {"token": leaked.secret.expose_secret(), "type": "lettermint_api_token",
         "url": "https://github.com/octo/app/blob/0123abc/.env", "source": "content"},
        {"token": "lm_notAToken", "type": "lettermint_api_token", "url": null, "source": null},
    ]);
    let signature = signer.sign(&serde_json::to_vec(&report).unwrap());
    let signed = [
        ("Github-Public-Key-Identifier", "github-key"),
        ("Github-Public-Key-Signature", signature.as_str()),
    ];
    let (status, labels) = x
        .send(
            Call::new("post", "/v1/secret-scanning/report")
                .headers(&signed)
                .body(report.clone()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(labels[0]["label"], "true_positive");
    assert_eq!(labels[1]["label"], "false_positive");
    let unsigned = [("Github-Public-Key-Identifier", "github-key")];
    assert_eq!(
        x.send_unchecked(
            Call::new("post", "/v1/secret-scanning/report")
                .headers(&unsigned)
                .body(report)
        )
        .await
        .0,
        401
    );

    // Metrics, from a server that has them turned on.
    let (url, _dir) = common::database(Backend::Sqlite).await;
    let store = lettermint_store::open(&url, lettermint_store::OpenOptions::default())
        .await
        .unwrap();
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .build_recorder()
        .handle();
    let config = api_server::config::Config {
        database_url: url,
        ..Default::default()
    };
    let (state, _background) = api_server::start(store.into_dyn(), config, Some(handle));
    let call = Call::new("get", "/metrics");
    x.checker.request(&call);
    let request = axum::http::Request::get("/metrics")
        .body(Body::empty())
        .unwrap();
    let response = api_server::router(state).oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(status, 200);
    x.record(&call, status, &headers, &String::from_utf8_lossy(&bytes));

    // Every operation was checked with a success.
    let missing: Vec<_> = all.difference(&x.succeeded).collect();
    assert!(missing.is_empty(), "no successful sample for {missing:?}");
    // And the contract's error shapes were all met.
    let statuses: BTreeSet<u16> = x.statuses.iter().map(|(_, _, s)| *s).collect();
    for status in [401, 403, 404, 409, 422, 429] {
        assert!(statuses.contains(&status), "no {status} was checked");
    }
}

/// The patterns of the document admit only what the server's validation accepts.
#[test]
fn patterns_admit_only_what_the_server_accepts() {
    let document = serde_json::to_value(api_server::openapi::document()).unwrap();
    let checker = Checker::new(document);
    let scheduled = "/components/schemas/SendRequest/allOf/0/properties/scheduled_at";
    let from = "/components/schemas/SendRequest/allOf/0/properties/from";
    // `html` or `text` is required (and null is absent).
    let request = "/components/schemas/SendRequest";
    let bare = json!({"from": "a@b.c", "to": "d@e.f", "subject": "s", "html": null});
    assert!(!checker.errors(request, &bare).is_empty());
    let mut with_text = bare.clone();
    with_text["text"] = json!("abc");
    assert!(checker.errors(request, &with_text).is_empty());
    let instants = [
        "2030-01-01T10:00:00Z",
        "2030-01-01T10:00:00.123456789+02:00",
        "2030-01-01T10:00:00-23:59",
        "2030-01-01T10:00:00",
        "2030-01-01T10:00:00.5",
        "2030-01-01 10:00:00",
        "2030-02-28T23:59:59Z",
        "0001-01-01T00:00:00Z",
    ];
    for text in instants {
        assert!(checker.errors(scheduled, &json!(text)).is_empty(), "{text}");
        assert!(
            api_server::validate::parse_instant(text).is_some(),
            "{text} matches the pattern but is refused"
        );
    }
    for text in [
        "tomorrow",
        "2030-01-01",
        "2030-13-01T10:00:00Z",
        "2030-01-01T10:00",
    ] {
        assert!(
            !checker.errors(scheduled, &json!(text)).is_empty(),
            "{text}"
        );
    }
    let addresses = [
        "a@example.com",
        "Shop <shop@example.com>",
        "  \"Shop, Inc.\" <o'brien+tag@mail.example-shop.co>  ",
        "x@localhost",
        "first.last@a.b.c",
        "<a@b.c>",
        "\t a@b.c \t",
    ];
    let longest = format!("{}.{}@example.com", "a".repeat(32), "b".repeat(31));
    let too_long = format!("{}.{}@example.com", "a".repeat(32), "b".repeat(32));
    let addresses = addresses.iter().copied().chain([longest.as_str()]);
    for text in addresses {
        assert!(checker.errors(from, &json!(text)).is_empty(), "{text}");
        let mut errors = lettermint_core::ValidationErrors::default();
        let body = json!({"from": text, "to": [text], "subject": "s", "text": "abc"});
        api_server::validate::send_request(&body, "", &mut errors);
        assert!(
            errors.is_empty(),
            "{text} matches the pattern but is refused: {errors:?}"
        );
    }
    // Attachments: what matches the content pattern decodes.
    let content = "/components/schemas/SendAttachment/properties/content";
    for text in ["", "aGVsbG8=", "aGk=", "aGVsbG8gd29ybGQ=", "AAAA", "+/+/"] {
        assert!(checker.errors(content, &json!(text)).is_empty(), "{text}");
        let mut errors = lettermint_core::ValidationErrors::default();
        let body = json!({"from": "a@b.c", "to": "d@e.f", "subject": "s", "text": "abc",
                          "attachments": [{"filename": "f", "content": text}]});
        api_server::validate::send_request(&body, "", &mut errors);
        assert!(errors.is_empty(), "{text}: {errors:?}");
    }
    for text in ["aGl=", "aGVsbG8", "a", "%%%"] {
        assert!(!checker.errors(content, &json!(text)).is_empty(), "{text}");
    }
    for text in [
        "nope",
        "a@",
        "@b.c",
        "a b@c.d",
        "Name <a@b.c",
        "a@b..c",
        "a@-b.c",
        "a@b.c\r\n",
        "Evil\r\nBcc: x@y.z <a@b.c>",
        "Na\0me <a@b.c>",
        too_long.as_str(),
    ] {
        assert!(!checker.errors(from, &json!(text)).is_empty(), "{text}");
    }
}
