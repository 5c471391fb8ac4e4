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

/// Component schemas of an operation's request body and success response.
fn schemas_for(method: &str, path: &str) -> (Option<&'static str>, Option<&'static str>) {
    match (method, path) {
        ("post", "/v1/send") => (Some("SendRequest"), Some("SendResponse")),
        ("post", "/v1/send/batch") => (Some("SendBatch"), Some("SendBatchResponse")),
        ("get", "/v1/team") => (None, Some("Team")),
        ("put", "/v1/team") => (Some("NameBody"), Some("TeamMutation")),
        ("get", "/v1/projects") => (None, Some("ProjectPage")),
        ("post", "/v1/projects") => (Some("ProjectBody"), Some("ProjectCreated")),
        ("get", "/v1/projects/{id}") => (None, Some("Project")),
        ("put", "/v1/projects/{id}") => (Some("ProjectBody"), Some("ProjectMutation")),
        ("post", "/v1/projects/{id}/rotate-token") => (None, Some("ProjectRotated")),
        ("get", "/v1/projects/{id}/tokens") => (None, Some("TokenPage")),
        ("post", "/v1/projects/{id}/tokens") => (Some("TokenBody"), Some("TokenIssued")),
        ("get", "/v1/projects/{id}/tokens/{token}") => (None, Some("Token")),
        ("patch", "/v1/projects/{id}/tokens/{token}") => (Some("NameBody"), Some("TokenMutation")),
        ("post", "/v1/projects/{id}/tokens/{token}/regenerate") => (None, Some("TokenIssued")),
        ("get", "/v1/projects/{id}/tokens/{token}/logs") => (None, Some("LogPage")),
        ("delete", _) => (None, Some("Message")),
        _ => (None, None),
    }
}

fn page_of(item: &str) -> Value {
    json!({"type": "object", "required": ["data", "path", "per_page", "next_cursor", "next_page_url", "prev_cursor", "prev_page_url"], "properties": {
        "data": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
        "path": {"type": "string"}, "per_page": {"type": "integer"},
        "next_cursor": {"type": ["string", "null"]}, "next_page_url": {"type": ["string", "null"]},
        "prev_cursor": {"type": ["string", "null"]}, "prev_page_url": {"type": ["string", "null"]}
    }})
}

fn mutation_of(item: &str) -> Value {
    json!({"type": "object", "properties": {"data": {"$ref": format!("#/components/schemas/{item}")}, "message": {"type": "string"}}})
}

fn schemas() -> Value {
    let instant = json!({"type": "string", "format": "date-time"});
    let nullable_instant = json!({"type": ["string", "null"], "format": "date-time"});
    let addresses = json!({"type": "array", "items": {"type": "string"}});
    let send = json!({"type": "object", "required": ["from", "to", "subject"], "properties": {
        "from": {"type": "string", "description": "addr or Name <addr>"},
        "to": addresses, "cc": addresses, "bcc": addresses, "reply_to": addresses,
        "subject": {"type": "string", "maxLength": 998},
        "html": {"type": ["string", "null"], "minLength": 3},
        "text": {"type": ["string", "null"], "minLength": 3},
        "route": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "tag": {"type": "string", "maxLength": 255, "pattern": "^[a-zA-Z0-9_-]+( [a-zA-Z0-9_-]+)*$"},
        "tags": {"type": "array", "maxItems": 20, "items": {"type": "object", "required": ["name", "value"], "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}, "value": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}}},
        "attachments": {"type": "array", "items": {"type": "object", "required": ["filename", "content"], "properties": {
            "filename": {"type": "string"}, "content": {"type": "string", "contentEncoding": "base64"},
            "content_type": {"type": "string", "maxLength": 255}, "content_id": {"type": "string", "pattern": "^[a-zA-Z0-9._@-]+$"}}}},
        "scheduled_at": {"type": "string", "description": "ISO 8601; without a zone it is UTC"}
    }});
    let sent = json!({"type": "object", "required": ["message_id", "status"], "properties": {
        "message_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["pending", "scheduled"]},
        "scheduled_at": instant
    }});
    let project = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "smtp_enabled": {"type": "boolean"},
        "created_at": instant, "updated_at": instant, "token_generated_at": nullable_instant,
        "token_last_used_at": nullable_instant, "token_last_used_ip": {"type": ["string", "null"]}
    }});
    let token = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "project_id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"}, "hint": {"type": "string"},
        "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
        "created_at": instant, "updated_at": instant, "last_used_at": nullable_instant,
        "last_used_ip": {"type": ["string", "null"]}, "last_used_via": {"type": ["string", "null"], "enum": ["api", "smtp", null]},
        "expires_at": nullable_instant, "revoked_at": nullable_instant
    }});
    let log = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "token_id": {"type": "string", "format": "uuid"}, "at": instant,
        "ip": {"type": ["string", "null"]}, "via": {"type": "string", "enum": ["api", "smtp"]},
        "action": {"type": "string"}, "outcome": {"type": "string"}, "status": {"type": "integer"},
        "message_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
        "user_agent": {"type": ["string", "null"]}
    }});
    let team = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "created_at": instant,
        "updated_at": instant, "projects_count": {"type": "integer"}
    }});
    json!({
        "Error": {"type": "object", "properties": {
            "message": {"type": "string"},
            "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}
        }},
        "Message": {"type": "object", "properties": {"message": {"type": "string"}}},
        "SendRequest": send,
        "SendBatch": {"type": "array", "minItems": 1, "maxItems": 500, "items": {"$ref": "#/components/schemas/SendRequest"}},
        "SendResponse": sent,
        "SendBatchResponse": {"type": "array", "items": {"$ref": "#/components/schemas/SendResponse"}},
        "NameBody": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 100}}},
        "ProjectBody": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 100}, "smtp_enabled": {"type": "boolean"}}},
        "TokenBody": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 100}, "expires_at": instant}},
        "Team": team,
        "TeamMutation": mutation_of("Team"),
        "Project": project,
        "ProjectPage": page_of("Project"),
        "ProjectMutation": mutation_of("Project"),
        "ProjectCreated": {"type": "object", "properties": {"data": {"$ref": "#/components/schemas/Project"}, "message": {"type": "string"}, "api_token": {"type": "string", "description": "shown once"}}},
        "ProjectRotated": {"type": "object", "properties": {"data": {"$ref": "#/components/schemas/Project"}, "message": {"type": "string"}, "new_token": {"type": "string", "description": "shown once"}}},
        "Token": token,
        "TokenPage": page_of("Token"),
        "TokenMutation": mutation_of("Token"),
        "TokenIssued": {"type": "object", "properties": {"data": {"$ref": "#/components/schemas/Token"}, "message": {"type": "string"}, "token": {"type": "string", "description": "shown once"}}},
        "LogEntry": log,
        "LogPage": page_of("LogEntry"),
    })
}

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
        let (request, response) = schemas_for(method, path);
        if let Some(schema) = response {
            responses.insert(
                status.to_string(),
                json!({"description": "Success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}}),
            );
        }
        let mut operation = json!({
            "summary": summary,
            "security": security,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(schema) = request {
            operation["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
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
            "schemas": schemas()
        }
    })
    .to_string()
}
