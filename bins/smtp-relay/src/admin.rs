//! The admin HTTP listener: liveness, readiness and Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::Relay;

#[derive(Clone)]
struct Admin {
    relay: Arc<Relay>,
    metrics: Option<PrometheusHandle>,
}

/// `GET /healthz`, `GET /readyz` and `GET /metrics`.
pub fn router(relay: Arc<Relay>, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(Admin { relay, metrics })
}

fn json(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The process is up.
async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// The store answers.
async fn readyz(State(admin): State<Admin>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), admin.relay.ready()).await {
        Ok(true) => json(StatusCode::OK, r#"{"status":"ready"}"#),
        _ => json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"unavailable","message":"The store is not reachable."}"#,
        ),
    }
}

/// Prometheus text.
async fn render_metrics(State(admin): State<Admin>) -> Response {
    match &admin.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            handle.render(),
        )
            .into_response(),
        None => json(
            StatusCode::NOT_FOUND,
            r#"{"status":"not_found","message":"Metrics are not enabled."}"#,
        ),
    }
}
