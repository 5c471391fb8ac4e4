//! Operations: health, readiness, metrics, request counting, JSON bodies for every error,
//! background maintenance, and the OpenAPI document.

use std::any::Any;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lettermint_core::Services;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::openapi::OpsErrors;
use crate::wire::{ErrorBody, Health, Readiness, to_value};

/// The process is up
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "Operations",
    operation_id = "healthz",
    responses((status = 200, description = "Up.", body = Health), OpsErrors)
)]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(to_value(Health { status: "ok" }))
}

/// The store is reachable
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "Operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "The store does not answer.", body = Readiness,
            example = json!({"status": "unavailable", "message": "The store is not reachable."})),
        OpsErrors,
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Json(to_value(Readiness {
            status: "ready",
            message: None,
        }))
        .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(to_value(Readiness {
                status: "unavailable",
                message: Some("The store is not reachable.".to_owned()),
            })),
        )
            .into_response(),
    }
}

/// Prometheus metrics
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "Operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "The Prometheus text format.", body = String, content_type = "text/plain"),
        (status = 404, description = "Metrics are turned off.", body = ErrorBody),
        OpsErrors,
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
        None => ApiError::NotFound("metrics").into_response(),
    }
}

/// Fallback for unknown paths: a JSON 404, never a redirect.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

/// Unknown routes: JSON under `/v1` (what SDKs parse), the dashboard's 404 page elsewhere.
pub async fn not_found_or_page(uri: axum::http::Uri) -> Response {
    if uri.path() == "/v1" || uri.path().starts_with("/v1/") {
        ApiError::NotFound("route").into_response()
    } else {
        crate::dashboard::not_found().await
    }
}

/// A panic in a handler becomes a JSON 500 without internals.
pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::Internal.into_response()
}

/// Counts requests by route and status, and gives every error response a JSON body (the
/// router's own 405, the timeout's 408, ...), because SDKs parse every error body as JSON.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    metrics::counter!("lettermint_http_requests_total", "route" => route, "status" => status.as_u16().to_string())
        .increment(1);
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let message = status.canonical_reason().unwrap_or("Error").to_owned() + ".";
        let mut replaced = (status, Json(json!({"message": message}))).into_response();
        for name in ["retry-after", "allow", "x-request-id"] {
            if let Some(v) = response.headers().get(name) {
                replaced.headers_mut().insert(name, v.clone());
            }
        }
        return replaced;
    }
    response
}

/// Prunes token logs past retention and expired idempotency keys, and sets the gauge of tokens
/// about to expire (`lettermint_tokens_expiring_7d{kind}`), every `interval` (hourly by
/// default), starting at once.
pub async fn maintenance(services: Services, retention_days: u32, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let retention = time::Duration::days(i64::from(retention_days.max(1)));
        match services.usage.prune_logs(retention).await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned token logs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune token logs"),
        }
        match services.messages.prune_idempotency_records().await {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned idempotency keys"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune idempotency keys"),
        }
        match services.accounts.prune().await {
            Ok((sessions, failures)) if sessions + failures > 0 => {
                tracing::info!(
                    sessions,
                    failures,
                    "pruned dashboard sessions and login failures"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune dashboard sessions"),
        }
        count_expiring_tokens(&services).await;
    }
}

/// Sets `lettermint_tokens_expiring_7d{kind="project"|"team"}`: active tokens that expire within
/// seven days, one count query per kind. A failed count leaves the gauge as it was.
async fn count_expiring_tokens(services: &Services) {
    let week = time::Duration::days(7);
    let counts = [
        (
            "project",
            services.project_tokens.count_expiring(week).await,
        ),
        ("team", services.team_tokens.count_expiring(week).await),
    ];
    for (kind, count) in counts {
        match count {
            #[allow(clippy::cast_precision_loss)]
            Ok(n) => metrics::gauge!("lettermint_tokens_expiring_7d", "kind" => kind).set(n as f64),
            Err(e) => tracing::warn!(error = %e, kind, "could not count expiring tokens"),
        }
    }
}

/// This document
///
/// The OpenAPI 3.1 description of every route, derived from the code.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "Operations",
    operation_id = "openapi",
    responses(
        (status = 200, description = "An OpenAPI 3.1 document.", body = Object, content_type = "application/json"),
        OpsErrors,
    )
)]
pub async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from(crate::openapi::json()),
    )
        .into_response()
}
