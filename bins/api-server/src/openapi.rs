//! The OpenAPI 3.1 document, built from the route table below (`tests/openapi.rs` requests
//! every operation in it and checks that the router serves it).

use serde_json::{Value, json};

/// How a route authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `x-lettermint-token` (project token).
    Project,
    /// `Authorization: Bearer` (team token).
    Team,
    /// Either kind.
    Either,
    /// None.
    None,
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path, with `{name}` parameters.
    pub path: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// How it authenticates.
    pub auth: Auth,
    /// Status of a success.
    pub status: u16,
    /// Ability a team token needs.
    pub ability: Option<&'static str>,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    status: u16,
    ability: Option<&'static str>,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        auth,
        status,
        ability,
    }
}

/// Every operation the router serves.
pub const ROUTES: &[Operation] = &[
    op(
        "post",
        "/v1/send",
        "Send an email",
        Auth::Project,
        202,
        None,
    ),
    op(
        "post",
        "/v1/send/batch",
        "Send 1 to 500 emails atomically",
        Auth::Project,
        202,
        None,
    ),
    op(
        "get",
        "/v1/ping",
        "Check a token (either kind); answers `pong`",
        Auth::Either,
        200,
        None,
    ),
    op(
        "get",
        "/v1/team",
        "Show the team",
        Auth::Team,
        200,
        Some("read:team"),
    ),
    op(
        "put",
        "/v1/team",
        "Rename the team",
        Auth::Team,
        200,
        Some("write:team"),
    ),
    op(
        "get",
        "/v1/projects",
        "List projects (cursor page; filter[search]; sort name, created_at)",
        Auth::Team,
        200,
        Some("read:projects"),
    ),
    op(
        "post",
        "/v1/projects",
        "Create a project with its first token (`api_token`, shown once)",
        Auth::Team,
        201,
        Some("write:projects"),
    ),
    op(
        "get",
        "/v1/projects/{id}",
        "Show a project",
        Auth::Team,
        200,
        Some("read:projects"),
    ),
    op(
        "put",
        "/v1/projects/{id}",
        "Update a project's name or SMTP setting",
        Auth::Team,
        200,
        Some("write:projects"),
    ),
    op(
        "delete",
        "/v1/projects/{id}",
        "Delete a project and everything it owns",
        Auth::Team,
        200,
        Some("write:projects"),
    ),
    op(
        "post",
        "/v1/projects/{id}/rotate-token",
        "Regenerate the project's first token (`new_token`, shown once)",
        Auth::Team,
        200,
        Some("write:projects"),
    ),
    op(
        "get",
        "/v1/projects/{id}/tokens",
        "List project tokens (filter[status] = active, revoked, expired, all)",
        Auth::Team,
        200,
        Some("read:tokens"),
    ),
    op(
        "post",
        "/v1/projects/{id}/tokens",
        "Create a project token (`token`, shown once)",
        Auth::Team,
        201,
        Some("write:tokens"),
    ),
    op(
        "get",
        "/v1/projects/{id}/tokens/{token}",
        "Show a project token",
        Auth::Team,
        200,
        Some("read:tokens"),
    ),
    op(
        "patch",
        "/v1/projects/{id}/tokens/{token}",
        "Rename a project token",
        Auth::Team,
        200,
        Some("write:tokens"),
    ),
    op(
        "delete",
        "/v1/projects/{id}/tokens/{token}",
        "Revoke a project token (final, effective before the answer)",
        Auth::Team,
        200,
        Some("write:tokens"),
    ),
    op(
        "post",
        "/v1/projects/{id}/tokens/{token}/regenerate",
        "Regenerate a project token (old value dead before the answer)",
        Auth::Team,
        200,
        Some("write:tokens"),
    ),
    op(
        "get",
        "/v1/projects/{id}/tokens/{token}/logs",
        "A token's log, newest first (filter[outcome], filter[from], filter[to])",
        Auth::Team,
        200,
        Some("read:tokens"),
    ),
    op(
        "get",
        "/v1/openapi.json",
        "This document",
        Auth::None,
        200,
        None,
    ),
    op(
        "get",
        "/healthz",
        "The process is up",
        Auth::None,
        200,
        None,
    ),
    op(
        "get",
        "/readyz",
        "The store is reachable",
        Auth::None,
        200,
        None,
    ),
    op(
        "get",
        "/metrics",
        "Prometheus metrics",
        Auth::None,
        200,
        None,
    ),
];

/// The document, as JSON text.
#[must_use]
pub fn document() -> String {
    let mut paths = serde_json::Map::new();
    for Operation {
        method,
        path,
        summary,
        auth,
        status,
        ability,
    } in ROUTES
    {
        let security = match auth {
            Auth::Project => json!([{"projectToken": []}]),
            Auth::Team => json!([{"teamToken": []}]),
            Auth::Either => json!([{"projectToken": []}, {"teamToken": []}]),
            Auth::None => json!([]),
        };
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}))
            .collect();
        let mut responses = serde_json::Map::new();
        responses.insert(status.to_string(), json!({"description": "Success"}));
        for (code, description) in [
            ("401", "Unauthenticated"),
            ("403", "Missing ability"),
            ("404", "Not found"),
            ("409", "Conflict"),
            ("422", "Validation error naming every bad field"),
            ("429", "Rate limited; see Retry-After"),
        ] {
            responses.insert(code.into(), json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
        }
        let mut operation = json!({
            "summary": summary,
            "security": security,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(ability) = ability {
            operation["x-required-ability"] = json!(ability);
        }
        if *method == "post"
            && path.starts_with("/v1/send")
            && let Some(parameters) = operation["parameters"].as_array_mut()
        {
            {
                parameters.push(json!({"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
            }
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Lettermint-compatible API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "projectToken": {"type": "apiKey", "in": "header", "name": "x-lettermint-token"},
                "teamToken": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "properties": {
                    "message": {"type": "string"},
                    "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
                }}
            }
        }
    })
    .to_string()
}
