//! The OpenAPI 3.1 document, derived from the code: every route is registered once, with its
//! `#[utoipa::path]` annotation, in [`crate::api`], which builds both the router and this
//! document; bodies are the `ToSchema` types of [`crate::wire`]. This module adds what is common
//! to many operations: the security schemes, the error responses of each front door, the
//! abilities Team API operations need (`x-required-ability`, also stated in the description) and
//! the `X-RateLimit-*` headers of the Team API.
//!
//! `tests/openapi.rs` checks that the router serves exactly the documented operations and that
//! real requests and responses of every operation validate against the document.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::wire;

/// Name of the security scheme of project tokens.
pub const PROJECT_TOKEN: &str = "projectToken";
/// Name of the security scheme of team tokens.
pub const TEAM_TOKEN: &str = "teamToken";
/// Extension naming the team token ability an operation needs.
pub const REQUIRED_ABILITY: &str = "x-required-ability";

/// What the annotations of the handlers do not say: title, security schemes, shared schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lettermint-compatible API",
        description = "The Lettermint Sending API (project tokens) and Team API (team tokens), \
                       with project tokens and their logs managed over the Team API.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(
        wire::ErrorBody,
        wire::ErrorDetail,
        wire::ErrorCode,
        wire::ValidationErrorBody,
        wire::MessageBody,
    )),
    tags(
        (name = "Sending API", description = "Send mail with a project token (`x-lettermint-token`)."),
        (name = "Team API", description = "Manage the team, its projects and their tokens with a team token (`Authorization: Bearer`)."),
        (name = "Secret scanning", description = "Leak reports from a secret scanner (GitHub's partner program), signed with a configured key."),
        (name = "Operations", description = "Health, readiness, metrics and this document."),
    )
)]
struct Base;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            PROJECT_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-lettermint-token",
                "A project token (`lm_…`): sends mail for its project.",
            ))),
        );
        components.add_security_scheme(
            TEAM_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A team token (`lm_team_…`) with abilities such as `read:projects` or \
                         `write:tokens`; write implies read.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's starting point, before the routes are added.
pub(crate) fn base() -> Document {
    let mut document = Base::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    document
}

/// The finished document.
#[must_use]
pub fn document() -> Document {
    let mut document = crate::api(None).into_openapi();
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            describe_ability(operation);
            if uses_scheme(operation, TEAM_TOKEN) && !uses_scheme(operation, PROJECT_TOKEN) {
                add_rate_limit_headers(operation);
            }
        }
    }
    document
}

/// The finished document as JSON text, built once.
#[must_use]
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_default())
}

/// Every documented operation as (lower-case method, path), in path order.
#[must_use]
pub fn operations() -> Vec<(&'static str, String)> {
    let document = document();
    let mut operations = Vec::new();
    for (path, item) in &document.paths.paths {
        for (method, operation) in [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("patch", &item.patch),
            ("head", &item.head),
            ("options", &item.options),
            ("trace", &item.trace),
        ] {
            if operation.is_some() {
                operations.push((method, path.clone()));
            }
        }
    }
    operations
}

fn uses_scheme(operation: &Operation, scheme: &str) -> bool {
    operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|v| v.get(scheme).cloned())
            .is_some()
    })
}

fn describe_ability(operation: &mut Operation) {
    let ability = operation
        .extensions
        .as_ref()
        .and_then(|e| e.get(REQUIRED_ABILITY))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if let Some(ability) = ability {
        let note = format!(
            "Needs a team token with the `{ability}` ability (or its `write:` form); without it \
             the answer is `403`."
        );
        operation.description = Some(match operation.description.take() {
            Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
            _ => note,
        });
    }
}

fn add_rate_limit_headers(operation: &mut Operation) {
    for (status, response) in &mut operation.responses.responses {
        // A refused token is answered before the rate limiter runs.
        if status == "401" {
            continue;
        }
        let RefOr::T(response) = response else {
            continue;
        };
        for (name, description) in [
            (
                "X-RateLimit-Limit",
                "Requests allowed in the current window.",
            ),
            (
                "X-RateLimit-Remaining",
                "Requests left in the current window.",
            ),
            ("X-RateLimit-Reset", "Seconds until the window resets."),
        ] {
            response
                .headers
                .entry(name.to_owned())
                .or_insert_with(|| seconds_header(description));
        }
    }
}

// --- error responses ---------------------------------------------------------------------------

fn json_response(description: &str, schema: &str, example: serde_json::Value) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .example(Some(example))
                .build(),
        )
        .build()
}

/// A response header holding a non-negative integer (seconds, or a request count).
fn seconds_header(description: &str) -> RefOr<utoipa::openapi::header::Header> {
    RefOr::T(
        HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            ))
            .description(Some(description))
            .build(),
    )
}

fn unauthenticated() -> Response {
    json_response(
        "The token is missing, malformed, unknown, revoked, expired or of the other kind (one \
         answer for every reason).",
        "ErrorBody",
        serde_json::json!({"message": "Unauthenticated.", "error": {"code": "UNAUTHENTICATED", "message": "Unauthenticated."}}),
    )
}

fn forbidden() -> Response {
    let message = "This token does not have the required abilities to perform this action.";
    json_response(
        "The team token lacks the ability this operation needs.",
        "ErrorBody",
        serde_json::json!({"message": message, "error": {"code": "FORBIDDEN", "message": message}}),
    )
}

fn not_found() -> Response {
    json_response(
        "No such resource in this team (resources of other teams are not found either).",
        "ErrorBody",
        serde_json::json!({"message": "Project not found.", "error": {"code": "NOT_FOUND", "message": "Project not found."}}),
    )
}

fn invalid(description: &str, example: serde_json::Value) -> Response {
    json_response(description, "ValidationErrorBody", example)
}

fn rate_limited() -> Response {
    let mut response = json_response(
        "Over the team token's rate limit; retry after `Retry-After` seconds.",
        "ErrorBody",
        serde_json::json!({"message": "Too many requests. Retry after the time in the Retry-After header."}),
    );
    response.headers.insert(
        "Retry-After".to_owned(),
        seconds_header("Seconds until the window resets."),
    );
    response
}

fn other_error() -> Response {
    let mut response = json_response(
        "Any other error, with a JSON body: `400` malformed JSON, `413` body too large, `415` \
         not declared as JSON, `503` the store is unavailable (with `Retry-After`), `500`.",
        "ErrorBody",
        serde_json::json!({"message": "The service is temporarily unavailable. Retry later.", "error": {"code": "SERVICE_UNAVAILABLE", "message": "Retry later."}}),
    );
    response.headers.insert(
        "Retry-After".to_owned(),
        seconds_header("With `503`: seconds to wait before retrying."),
    );
    response
}

fn responses(
    list: impl IntoIterator<Item = (&'static str, Response)>,
) -> BTreeMap<String, RefOr<Response>> {
    list.into_iter()
        .map(|(status, response)| (status.to_owned(), RefOr::T(response)))
        .collect()
}

/// Errors of the Sending API: `401`, `422` and the rest.
#[derive(Debug)]
pub struct SendErrors;

impl IntoResponses for SendErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            ("401", unauthenticated()),
            (
                "409",
                json_response(
                    "The `Idempotency-Key` was used with a different body, or its first request \
                     is still being processed.",
                    "ErrorBody",
                    serde_json::json!({"message": "This Idempotency-Key was already used with a different request body."}),
                ),
            ),
            (
                "422",
                invalid(
                    "Every bad field, by its path (`to.1`, or `0.subject` in a batch).",
                    serde_json::json!({"message": "The to.1 field must be a valid email address. (and 1 more error)", "errors": {"subject": ["The subject field is required."], "to.1": ["The to.1 field must be a valid email address."]}}),
                ),
            ),
            ("default", other_error()),
        ])
    }
}

/// Errors of `GET /v1/ping`.
#[derive(Debug)]
pub struct PingErrors;

impl IntoResponses for PingErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([("401", unauthenticated()), ("default", other_error())])
    }
}

/// Errors every Team API operation may answer: `401`, `403`, `422`, `429` and the rest.
#[derive(Debug)]
pub struct TeamErrors;

impl IntoResponses for TeamErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            ("401", unauthenticated()),
            ("403", forbidden()),
            (
                "422",
                invalid(
                    "A bad body field or query parameter, by name.",
                    serde_json::json!({"message": "The name field is required.", "errors": {"name": ["The name field is required."]}}),
                ),
            ),
            ("429", rate_limited()),
            ("default", other_error()),
        ])
    }
}

/// `404` of operations on one resource.
#[derive(Debug)]
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([("404", not_found())])
    }
}

/// `409` of operations that name or regenerate a token.
#[derive(Debug)]
pub struct TokenConflict;

impl IntoResponses for TokenConflict {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([(
            "409",
            json_response(
                "Another non-revoked token of the project has this name, or the token is \
                 revoked.",
                "ErrorBody",
                serde_json::json!({"message": "A token with this name already exists in this project."}),
            ),
        )])
    }
}

/// Errors of the leak report endpoint: `401` for any request whose signature does not verify,
/// `404` when no key is configured.
#[derive(Debug)]
pub struct LeakReportErrors;

impl IntoResponses for LeakReportErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([
            (
                "401",
                json_response(
                    "The signature is missing, malformed, made with an unknown key or not of \
                     this body. The same body whatever the reason; nothing was changed.",
                    "ErrorBody",
                    serde_json::json!({"message": "Unauthenticated.", "error": {"code": "UNAUTHENTICATED", "message": "Unauthenticated."}}),
                ),
            ),
            (
                "404",
                json_response(
                    "Leak reports are turned off (no key configured).",
                    "ErrorBody",
                    serde_json::json!({"message": "Route not found.", "error": {"code": "NOT_FOUND", "message": "Route not found."}}),
                ),
            ),
            ("default", other_error()),
        ])
    }
}

/// Errors of the operations endpoints (`/metrics` answers `404` when metrics are off).
#[derive(Debug)]
pub struct OpsErrors;

impl IntoResponses for OpsErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        responses([("default", other_error())])
    }
}
