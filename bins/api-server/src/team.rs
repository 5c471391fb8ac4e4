//! The Team API (team tokens): the team, its projects, and each project's tokens and their logs.
//! Every route runs behind [`crate::auth::team_api`], which authenticates and rate-limits.

use axum::Extension;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lettermint_core::page::{LogSortKey, ProjectSortKey, TokenSortKey};
use lettermint_core::{
    Ability, Cursor, Direction, IpAllowlist, LogFilter, NewProject, Overlap, Page, PageRequest,
    PageSize, Project, ProjectId, ProjectToken, ProjectUpdate, Resource, Scope, Sort, TeamSummary,
    TokenId, TokenLogEntry, TokenStatusFilter,
};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppState;
use crate::auth::TeamAuth;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{NotFound, TeamErrors, TokenConflict};
use crate::send::JsonBody;
use crate::validate::parse_instant;
use crate::wire::{self, to_value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The Team API routes with their documentation (without their middleware).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_team, update_team))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(show_project, update_project, delete_project))
        .routes(routes!(rotate_token))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(show_token, rename_token, revoke_token))
        .routes(routes!(regenerate_token))
        .routes(routes!(rotate_token_with_overlap))
        .routes(routes!(token_logs))
}

// --- rendering ---------------------------------------------------------------------------------

/// RFC 3339 in UTC with `Z`.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn opt_rfc3339(at: Option<OffsetDateTime>) -> Option<String> {
    at.map(rfc3339)
}

fn team_json(summary: &TeamSummary) -> Value {
    to_value(wire::Team {
        id: summary.team.id,
        name: summary.team.name.as_str().to_owned(),
        created_at: rfc3339(summary.team.created_at),
        updated_at: rfc3339(summary.team.updated_at),
        projects_count: summary.projects_count,
    })
}

/// A project, with the upstream fields that describe its first active token.
fn project_json(project: &Project, first: Option<&ProjectToken>) -> Value {
    to_value(wire::Project {
        id: project.id,
        name: project.name.as_str().to_owned(),
        smtp_enabled: project.smtp_enabled,
        created_at: rfc3339(project.created_at),
        updated_at: rfc3339(project.updated_at),
        token_generated_at: opt_rfc3339(first.map(|t| t.updated_at)),
        token_last_used_at: opt_rfc3339(first.and_then(|t| t.last_use.at)),
        token_last_used_ip: first.and_then(|t| t.last_use.ip).map(|ip| ip.to_string()),
    })
}

/// A project token (contract section B).
pub fn token_json(token: &ProjectToken, now: OffsetDateTime) -> Value {
    to_value(wire::Token {
        id: token.id,
        project_id: token.owner,
        name: token.name.as_str().to_owned(),
        hint: token.hint.as_str().to_owned(),
        status: token.status(now).as_str(),
        created_at: rfc3339(token.created_at),
        updated_at: rfc3339(token.updated_at),
        last_used_at: opt_rfc3339(token.last_use.at),
        last_used_ip: token.last_use.ip.map(|ip| ip.to_string()),
        last_used_via: token.last_use.via.map(|v| v.as_str()),
        expires_at: opt_rfc3339(token.expires_at),
        revoked_at: opt_rfc3339(token.revoked_at),
        previous_expires_at: opt_rfc3339(token.overlap_until(now)),
        allowed_ips: token.allowed_ips.to_strings(),
    })
}

fn log_json(entry: &TokenLogEntry) -> Value {
    to_value(wire::LogEntry {
        id: entry.id,
        token_id: entry.token_id,
        at: rfc3339(entry.at),
        ip: entry.ip.map(|ip| ip.to_string()),
        via: entry.via.as_str(),
        action: entry.action.as_str(),
        outcome: entry.outcome.as_str(),
        status: entry.status,
        message_ids: entry.message_ids.clone(),
        user_agent: entry.user_agent.clone(),
        credential: entry.credential.map(|c| c.as_str()),
        leak_url: entry.leak_url.clone(),
        actor: entry.actor.clone(),
    })
}

// --- query strings and pages -------------------------------------------------------------------

/// The query of a list request, in order.
type QueryPairs = Query<Vec<(String, String)>>;

pub(crate) fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) fn page_request<K: std::str::FromStr + Copy>(
    query: &[(String, String)],
    default_sort: Sort<K>,
) -> ApiResult<PageRequest<K>> {
    let size = match query_value(query, "page[size]") {
        None => PageSize::default(),
        Some(s) => s
            .parse::<u32>()
            .map(PageSize::clamped)
            .map_err(|_| ApiError::invalid("page.size", "The page size must be a whole number."))?,
    };
    let cursor = query_value(query, "page[cursor]")
        .filter(|c| !c.is_empty())
        .map(str::parse::<Cursor>)
        .transpose()?;
    let sort = match query_value(query, "sort").filter(|s| !s.is_empty()) {
        None => default_sort,
        // Only the first key is used: ties are broken by id.
        Some(s) => Sort::parse(s.split(',').next().unwrap_or_default())?,
    };
    Ok(PageRequest { size, cursor, sort })
}

pub(crate) fn page_json<T>(
    page: Page<T>,
    size: PageSize,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    query: &[(String, String)],
    render: impl Fn(&T) -> Value,
) -> Value {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    let path = format!("{scheme}://{host}{}", uri.path());
    let url = |cursor: Option<Cursor>| -> Value {
        let Some(cursor) = cursor else {
            return Value::Null;
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k != "page[cursor]")
            .cloned()
            .collect();
        pairs.push(("page[cursor]".into(), cursor.to_string()));
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        Value::String(format!("{path}?{}", encoded.join("&")))
    };
    json!({
        "data": page.items.iter().map(render).collect::<Vec<_>>(),
        "path": path,
        "per_page": size.get(),
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
        "next_page_url": url(page.next_cursor),
        "prev_cursor": page.prev_cursor.map(|c| c.to_string()),
        "prev_page_url": url(page.prev_cursor),
    })
}

/// Percent-encodes `text` for a URL query component (RFC 3986 unreserved characters kept).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// --- bodies ------------------------------------------------------------------------------------

fn object(body: &Value) -> ApiResult<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| ApiError::invalid("body", "The request body must be a JSON object."))
}

fn opt_string(body: &Map<String, Value>, field: &str) -> ApiResult<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("The {field} field must be a string."),
        )),
    }
}

fn required_string(body: &Map<String, Value>, field: &str) -> ApiResult<String> {
    opt_string(body, field)?
        .ok_or_else(|| ApiError::invalid(field, format!("The {field} field is required.")))
}

fn opt_bool(body: &Map<String, Value>, field: &str) -> ApiResult<Option<bool>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("The {field} field must be true or false."),
        )),
    }
}

fn opt_instant(body: &Map<String, Value>, field: &str) -> ApiResult<Option<OffsetDateTime>> {
    match opt_string(body, field)? {
        None => Ok(None),
        Some(text) => parse_instant(&text).map(Some).ok_or_else(|| {
            ApiError::invalid(
                field,
                format!("The {field} field must be an ISO 8601 date."),
            )
        }),
    }
}

/// An optional list of CIDRs (`allowed_ips`); entries that are not strings, or not networks,
/// are named by index (`allowed_ips.2`).
fn opt_allowlist(body: &Map<String, Value>, field: &str) -> ApiResult<Option<IpAllowlist>> {
    let entries = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(ApiError::invalid(
                field,
                format!("The {field} field must be an array of CIDR strings."),
            ));
        }
    };
    let mut texts = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        match entry {
            Value::String(text) => texts.push(text.as_str()),
            _ => {
                return Err(ApiError::invalid(
                    format!("{field}.{i}"),
                    format!("The {field}.{i} field must be a string."),
                ));
            }
        }
    }
    Ok(Some(IpAllowlist::parse(field, &texts)?))
}

fn project_id(raw: &str) -> ApiResult<ProjectId> {
    raw.parse().map_err(|_| ApiError::NotFound("project"))
}

fn token_id(raw: &str) -> ApiResult<TokenId> {
    raw.parse().map_err(|_| ApiError::NotFound("token"))
}

fn scope(auth: &TeamAuth) -> Scope {
    Scope::Team(auth.caller.team_id)
}

fn done(data: Value, message: &str) -> Response {
    Json(json!({"data": data, "message": message})).into_response()
}

use axum::Json;

// --- team --------------------------------------------------------------------------------------

/// Show the team
#[utoipa::path(
    get,
    path = "/v1/team",
    tag = "Team API",
    operation_id = "show_team",
    security(("teamToken" = [])),
    responses(
        (status = 200, description = "The team.", body = wire::Team),
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:team"))),
)]
async fn show_team(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Team))?;
    let summary = state
        .services
        .teams
        .summary(scope(&auth), auth.caller.team_id)
        .await?;
    Ok(Json(team_json(&summary)).into_response())
}

/// Rename the team
#[utoipa::path(
    put,
    path = "/v1/team",
    tag = "Team API",
    operation_id = "update_team",
    security(("teamToken" = [])),
    request_body = wire::NameBody,
    responses(
        (status = 200, description = "The renamed team.", body = wire::TeamMutation),
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:team"))),
)]
async fn update_team(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Team))?;
    let name = required_string(object(&body)?, "name")?;
    state
        .services
        .teams
        .rename(scope(&auth), auth.caller.team_id, &name)
        .await?;
    let summary = state
        .services
        .teams
        .summary(scope(&auth), auth.caller.team_id)
        .await?;
    Ok(done(
        team_json(&summary),
        "Team settings updated successfully.",
    ))
}

// --- projects ----------------------------------------------------------------------------------

async fn render_project(state: &AppState, scope: Scope, project: &Project) -> ApiResult<Value> {
    let first = state
        .services
        .project_tokens
        .first_active(scope, project.id)
        .await?;
    Ok(project_json(project, first.as_ref()))
}

/// List projects
///
/// A cursor page of the team's projects.
#[utoipa::path(
    get,
    path = "/v1/projects",
    tag = "Team API",
    operation_id = "list_projects",
    security(("teamToken" = [])),
    params(
        wire::PageParams,
        ("sort" = Option<String>, Query, pattern = "^(-?(name|created_at)(,.*)?)?$", description = "Sort key, `-` for descending: one of `name`, `created_at`; default `-created_at`. Only the first key counts; ties are broken by id."),
        ("filter[search]" = Option<String>, Query, description = "Only projects whose name contains this text."),
    ),
    responses(
        (status = 200, description = "A page of projects.", body = wire::ProjectPage),
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:projects"))),
)]
async fn list_projects(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(query): QueryPairs,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Projects))?;
    let request = page_request(
        &query,
        Sort {
            key: ProjectSortKey::CreatedAt,
            direction: Direction::Descending,
        },
    )?;
    let search = query_value(&query, "filter[search]");
    let page = state
        .services
        .projects
        .list_with_first_token(scope(&auth), auth.caller.team_id, search, &request)
        .await?;
    Ok(Json(page_json(
        page,
        request.size,
        &uri,
        &headers,
        &query,
        |p: &lettermint_core::repo::ProjectWithFirstToken| {
            project_json(&p.project, p.first_token.as_ref())
        },
    ))
    .into_response())
}

/// Create a project with its first token
///
/// The first project token is in `api_token`, shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/projects",
    tag = "Team API",
    operation_id = "create_project",
    security(("teamToken" = [])),
    request_body = wire::NewProjectBody,
    responses(
        (status = 201, description = "The project and its first token.", body = wire::ProjectCreated),
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:projects"))),
)]
async fn create_project(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Projects))?;
    let body = object(&body)?;
    let name = required_string(body, "name")?;
    let smtp_enabled = opt_bool(body, "smtp_enabled")?.unwrap_or(false);
    let (project, first) = state
        .services
        .projects
        .create(
            scope(&auth),
            NewProject {
                team_id: auth.caller.team_id,
                name,
                smtp_enabled,
                first_token_name: Some("Default".into()),
            },
        )
        .await?;
    let token = first.ok_or(ApiError::Internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "data": project_json(&project, Some(&token.token)),
            "message": "Project created successfully.",
            "api_token": token.secret.expose_secret(),
        })),
    )
        .into_response())
}

/// Show a project
#[utoipa::path(
    get,
    path = "/v1/projects/{id}",
    tag = "Team API",
    operation_id = "show_project",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
    ),
    responses(
        (status = 200, description = "The project.", body = wire::Project),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:projects"))),
)]
async fn show_project(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Projects))?;
    let project = state
        .services
        .projects
        .get(scope(&auth), project_id(&id)?)
        .await?;
    Ok(Json(render_project(&state, scope(&auth), &project).await?).into_response())
}

/// Update a project's name or SMTP setting
#[utoipa::path(
    put,
    path = "/v1/projects/{id}",
    tag = "Team API",
    operation_id = "update_project",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
    ),
    request_body = wire::ProjectUpdateBody,
    responses(
        (status = 200, description = "The updated project.", body = wire::ProjectMutation),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:projects"))),
)]
async fn update_project(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Projects))?;
    let id = project_id(&id)?;
    let body = object(&body)?;
    let update = ProjectUpdate {
        name: opt_string(body, "name")?,
        smtp_enabled: opt_bool(body, "smtp_enabled")?,
    };
    let project = state
        .services
        .projects
        .update(scope(&auth), id, update)
        .await?;
    Ok(done(
        render_project(&state, scope(&auth), &project).await?,
        "Project updated successfully.",
    ))
}

/// Delete a project and everything it owns
///
/// Its tokens stop working before this answers.
#[utoipa::path(
    delete,
    path = "/v1/projects/{id}",
    tag = "Team API",
    operation_id = "delete_project",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = wire::MessageBody),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:projects"))),
)]
async fn delete_project(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Projects))?;
    state
        .services
        .projects
        .delete(scope(&auth), project_id(&id)?)
        .await?;
    Ok(Json(json!({"message": "Project deleted successfully."})).into_response())
}

/// Regenerate the project's first token
///
/// The upstream endpoint: the first active token gets a new value (`new_token`, shown only in this answer) and the old value stops working before this answers; a project without an active token gets a new one.
#[utoipa::path(
    post,
    path = "/v1/projects/{id}/rotate-token",
    tag = "Team API",
    operation_id = "rotate_project_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
    ),
    responses(
        (status = 200, description = "The project and the new value.", body = wire::ProjectRotated),
        NotFound,
        TokenConflict,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:projects"))),
)]
async fn rotate_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Projects))?;
    let id = project_id(&id)?;
    let s = scope(&auth);
    let project = state.services.projects.get(s, id).await?;
    let issued = match state.services.project_tokens.first_active(s, id).await? {
        Some(first) => {
            state
                .services
                .project_tokens
                .regenerate(s, Some(id), first.id)
                .await?
        }
        // A project without an active token gets a new one.
        None => {
            state
                .services
                .project_tokens
                .create(s, id, "Default", (), None)
                .await?
        }
    };
    Ok(Json(json!({
        "data": project_json(&project, Some(&issued.token)),
        "new_token": issued.secret.expose_secret(),
        "message": "API token rotated successfully. Please update your integrations.",
    }))
    .into_response())
}

// --- project tokens ----------------------------------------------------------------------------

/// List project tokens
///
/// A cursor page of the project's tokens (never their values).
#[utoipa::path(
    get,
    path = "/v1/projects/{id}/tokens",
    tag = "Team API",
    operation_id = "list_tokens",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        wire::PageParams,
        ("sort" = Option<String>, Query, pattern = "^(-?(name|created_at|updated_at|last_used_at)(,.*)?)?$", description = "Sort key, `-` for descending: one of `name`, `created_at`, `updated_at`, `last_used_at`; default `-created_at`. Only the first key counts; ties are broken by id."),
        ("filter[status]" = inline(Option<wire::TokenStatusFilter>), Query, description = "Which tokens: `active` (default), `revoked`, `expired` or `all`."),
    ),
    responses(
        (status = 200, description = "A page of tokens.", body = wire::TokenPage),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:tokens"))),
)]
async fn list_tokens(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(query): QueryPairs,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Tokens))?;
    let id = project_id(&id)?;
    let request = page_request(
        &query,
        Sort {
            key: TokenSortKey::CreatedAt,
            direction: Direction::Descending,
        },
    )?;
    let status = match query_value(&query, "filter[status]") {
        None | Some("") => TokenStatusFilter::Active,
        Some(s) => s.parse().map_err(|_| {
            ApiError::invalid(
                "filter.status",
                "The status filter must be one of active, revoked, expired, all.",
            )
        })?,
    };
    let page = state
        .services
        .project_tokens
        .list(scope(&auth), id, status, &request)
        .await?;
    let now = state.clock.now();
    Ok(
        Json(page_json(page, request.size, &uri, &headers, &query, |t| {
            token_json(t, now)
        }))
        .into_response(),
    )
}

/// Create a project token
///
/// The full value is in `token`, shown only in this answer.
#[utoipa::path(
    post,
    path = "/v1/projects/{id}/tokens",
    tag = "Team API",
    operation_id = "create_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
    ),
    request_body = wire::NewTokenBody,
    responses(
        (status = 201, description = "The token and its value.", body = wire::TokenIssued),
        NotFound,
        TokenConflict,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:tokens"))),
)]
async fn create_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Tokens))?;
    let id = project_id(&id)?;
    let body = object(&body)?;
    let name = required_string(body, "name")?;
    let expires_at = opt_instant(body, "expires_at")?;
    let allowed_ips = opt_allowlist(body, "allowed_ips")?.unwrap_or_default();
    let issued = state
        .services
        .project_tokens
        .create_with_allowlist(scope(&auth), id, &name, (), expires_at, allowed_ips)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "data": token_json(&issued.token, state.clock.now()),
            "message": "Token created successfully. It is shown only once.",
            "token": issued.secret.expose_secret(),
        })),
    )
        .into_response())
}

/// Show a project token
#[utoipa::path(
    get,
    path = "/v1/projects/{id}/tokens/{token}",
    tag = "Team API",
    operation_id = "show_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
    ),
    responses(
        (status = 200, description = "The token.", body = wire::Token),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:tokens"))),
)]
async fn show_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Tokens))?;
    let token = state
        .services
        .project_tokens
        .get(scope(&auth), Some(project_id(&id)?), token_id(&token)?)
        .await?;
    Ok(Json(token_json(&token, state.clock.now())).into_response())
}

/// Update a project token
///
/// Renames it, replaces its IP allowlist, or both. A new allowlist applies to every front door
/// before this answers.
#[utoipa::path(
    patch,
    path = "/v1/projects/{id}/tokens/{token}",
    tag = "Team API",
    operation_id = "rename_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body = wire::TokenUpdateBody,
    responses(
        (status = 200, description = "The updated token.", body = wire::TokenMutation),
        NotFound,
        TokenConflict,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:tokens"))),
)]
async fn rename_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Tokens))?;
    let (id, token) = (project_id(&id)?, token_id(&token)?);
    let body = object(&body)?;
    let name = opt_string(body, "name")?;
    let allowed_ips = opt_allowlist(body, "allowed_ips")?;
    if name.is_none() && allowed_ips.is_none() {
        return Err(ApiError::invalid(
            "name",
            "The name field is required when allowed_ips is not present.",
        ));
    }
    let tokens = &state.services.project_tokens;
    let mut updated = None;
    if let Some(name) = name {
        updated = Some(tokens.rename(scope(&auth), Some(id), token, &name).await?);
    }
    if let Some(list) = allowed_ips {
        updated = Some(
            tokens
                .set_allowlist(scope(&auth), Some(id), token, &list)
                .await?,
        );
    }
    let token = updated.ok_or(ApiError::NotFound("token"))?;
    Ok(done(
        token_json(&token, state.clock.now()),
        "Token updated successfully.",
    ))
}

/// Regenerate a project token
///
/// The new value is in `token`, shown only in this answer; the old value stops working before this answers.
#[utoipa::path(
    post,
    path = "/v1/projects/{id}/tokens/{token}/regenerate",
    tag = "Team API",
    operation_id = "regenerate_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
    ),
    responses(
        (status = 200, description = "The token and its new value.", body = wire::TokenIssued),
        NotFound,
        TokenConflict,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:tokens"))),
)]
async fn regenerate_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Tokens))?;
    let (id, token) = (project_id(&id)?, token_id(&token)?);
    let issued = state
        .services
        .project_tokens
        .regenerate(scope(&auth), Some(id), token)
        .await?;
    Ok(Json(json!({
        "data": token_json(&issued.token, state.clock.now()),
        "message": "Token regenerated successfully. The previous value no longer works.",
        "token": issued.secret.expose_secret(),
    }))
    .into_response())
}

/// Rotate a project token with an overlap
///
/// The new value is in `token`, shown only in this answer. The current value keeps working until
/// `data.previous_expires_at` (now plus `overlap`, at most 7 days), then fails like a
/// regenerated value. Regenerating or revoking ends the overlap at once; rotating again ends the
/// overlap of the value that was previous.
#[utoipa::path(
    post,
    path = "/v1/projects/{id}/tokens/{token}/rotate",
    tag = "Team API",
    operation_id = "rotate_project_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
    ),
    request_body = wire::RotateBody,
    responses(
        (status = 200, description = "The token and its new value.", body = wire::TokenIssued),
        NotFound,
        TokenConflict,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:tokens"))),
)]
async fn rotate_token_with_overlap(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Tokens))?;
    let (id, token) = (project_id(&id)?, token_id(&token)?);
    let overlap = required_string(object(&body)?, "overlap")?;
    let overlap = Overlap::parse("overlap", &overlap)?;
    let issued = state
        .services
        .project_tokens
        .rotate(scope(&auth), Some(id), token, overlap)
        .await?;
    Ok(Json(json!({
        "data": token_json(&issued.token, state.clock.now()),
        "message": "Token rotated successfully. The previous value works until data.previous_expires_at.",
        "token": issued.secret.expose_secret(),
    }))
    .into_response())
}

/// Revoke a project token
///
/// Final, and effective before this answers.
#[utoipa::path(
    delete,
    path = "/v1/projects/{id}/tokens/{token}",
    tag = "Team API",
    operation_id = "revoke_token",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
    ),
    responses(
        (status = 200, description = "Revoked.", body = wire::MessageBody),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("write:tokens"))),
)]
async fn revoke_token(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult<Response> {
    auth.caller.require(Ability::write(Resource::Tokens))?;
    let (id, token) = (project_id(&id)?, token_id(&token)?);
    state
        .services
        .project_tokens
        .revoke(scope(&auth), Some(id), token)
        .await?;
    Ok(Json(json!({"message": "Token revoked successfully."})).into_response())
}

/// A token's log, newest first
#[utoipa::path(
    get,
    path = "/v1/projects/{id}/tokens/{token}/logs",
    tag = "Team API",
    operation_id = "token_logs",
    security(("teamToken" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The project's id."),
        ("token" = uuid::Uuid, Path, description = "The token's id."),
        wire::PageParams,
        ("sort" = Option<String>, Query, pattern = "^(-?(at|created_at)(,.*)?)?$", description = "Sort key, `-` for descending: one of `at`, `created_at`; default `-at`. Only the first key counts; ties are broken by id."),
        ("filter[outcome]" = inline(Option<wire::OutcomeFilter>), Query, description = "Only entries with this outcome."),
        ("filter[action]" = inline(Option<wire::ActionFilter>), Query, description = "Only entries of this action (`send`, `smtp_auth`, `create`, `regenerate`, `revoke`, ...)."),
        ("filter[from]" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?| ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]))?$", description = "Only entries at or after this instant (ISO 8601; without a zone it is UTC)."),
        ("filter[to]" = Option<String>, Query, pattern = r"^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?| ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]))?$", description = "Only entries at or before this instant (ISO 8601; without a zone it is UTC)."),
    ),
    responses(
        (status = 200, description = "A page of log entries.", body = wire::LogPage),
        NotFound,
        TeamErrors,
    ),
    extensions(("x-required-ability" = json!("read:tokens"))),
)]
async fn token_logs(
    State(state): State<AppState>,
    Extension(auth): Extension<TeamAuth>,
    Path((id, token)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(query): QueryPairs,
) -> ApiResult<Response> {
    auth.caller.require(Ability::read(Resource::Tokens))?;
    let (id, token) = (project_id(&id)?, token_id(&token)?);
    let request = page_request(
        &query,
        Sort {
            key: LogSortKey::At,
            direction: Direction::Descending,
        },
    )?;
    let instant = |field: &str, key: &str| -> ApiResult<Option<OffsetDateTime>> {
        query_value(&query, key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_instant(v).ok_or_else(|| {
                    ApiError::invalid(
                        field,
                        format!("The {field} filter must be an ISO 8601 date."),
                    )
                })
            })
            .transpose()
    };
    let filter = LogFilter {
        outcome: match query_value(&query, "filter[outcome]").filter(|v| !v.is_empty()) {
            None => None,
            Some(o) => Some(
                o.parse()
                    .map_err(|_| ApiError::invalid("filter.outcome", "Unknown outcome."))?,
            ),
        },
        action: match query_value(&query, "filter[action]").filter(|v| !v.is_empty()) {
            None => None,
            Some(a) => Some(
                a.parse()
                    .map_err(|_| ApiError::invalid("filter.action", "Unknown action."))?,
            ),
        },
        from: instant("filter.from", "filter[from]")?,
        to: instant("filter.to", "filter[to]")?,
    };
    let page = state
        .services
        .project_tokens
        .logs(scope(&auth), Some(id), token, &filter, &request)
        .await?;
    Ok(Json(page_json(
        page,
        request.size,
        &uri,
        &headers,
        &query,
        log_json,
    ))
    .into_response())
}
