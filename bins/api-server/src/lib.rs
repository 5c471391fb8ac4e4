//! The HTTP front door: the Lettermint-compatible Sending API (project tokens) and Team API
//! (team tokens) under `/v1`, and the dashboard ([`dashboard`]) under `/`, wired to
//! `lettermint-core` and either store.
//!
//! [`router`] builds the whole application from an [`AppState`]; `main.rs` only reads the
//! configuration, opens the store and calls [`serve`].

pub mod auth;
pub mod client;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod identity;
pub mod leaks;
pub mod messages;
pub mod openapi;
pub mod ops;
pub mod rate_limit;
pub mod send;
pub mod team;
pub mod validate;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode, header};
use lettermint_core::{
    Abilities, Clock, NewProject, ProjectId, RouteId, Scope, Services, Store, SystemClock,
};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::ApiError;
use crate::rate_limit::RateLimiter;
use crate::send::InFlight;
use lettermint_runtime::{Committer, UsageRecorder, Writers};

/// Shared state of the handlers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The core services.
    pub services: Services,
    /// Group commit of messages.
    pub committer: Committer,
    /// Write-behind usage.
    pub usage: UsageRecorder,
    /// Team API rate limits.
    pub limits: RateLimiter,
    /// Idempotency keys being processed here.
    pub in_flight: InFlight,
    /// Project token identities (never their state); see [`identity`].
    pub identities: identity::IdentityCache,
    /// Configuration.
    pub config: Config,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The store (for readiness).
    pub store: Arc<dyn Store>,
    /// Routes by (project, slug); routes only change with their project, so a short-lived cache
    /// is safe. Token state is never cached.
    routes: Mutex<RouteCache>,
    /// Prometheus exporter.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Keys that sign leak reports (none: the endpoint is off).
    pub leak_keys: leaks::LeakReportKeys,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

type RouteCache = HashMap<(ProjectId, Option<String>), (RouteId, Instant)>;

const ROUTE_CACHE_TTL: Duration = Duration::from_secs(30);

impl AppState {
    /// The route a send goes through (cached briefly); an unknown slug is a validation error.
    pub async fn route_for(
        &self,
        project: ProjectId,
        slug: Option<&str>,
    ) -> Result<RouteId, ApiError> {
        let key = (project, slug.map(str::to_owned));
        let cached = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(_, at)| at.elapsed() < ROUTE_CACHE_TTL)
            .map(|(id, _)| *id);
        if let Some(id) = cached {
            return Ok(id);
        }
        let route = self.services.messages.resolve_route(project, slug).await?;
        let mut cache = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(key, (route.id, Instant::now()));
        Ok(route.id)
    }
}

/// A running application's background tasks, to be drained on shutdown.
#[derive(Debug)]
pub struct Background {
    writers: Writers,
    usage: tokio::task::JoinHandle<()>,
    maintenance: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Waits for queued messages to be committed and usage to be flushed. Call after every
    /// [`AppState`] clone is dropped (that is, after the server stopped).
    pub async fn drain(self) {
        self.maintenance.abort();
        self.writers.finish().await;
        let _ = self.usage.await;
    }
}

/// Builds the state and starts the background tasks (group commit, usage flushing, pruning).
pub fn start(
    store: Arc<dyn Store>,
    config: Config,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> (AppState, Background) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut services = Services::new(store.clone(), clock.clone());
    let hashes = match config.password_hash_concurrency {
        0 => lettermint_runtime::BlockingHasher::default_concurrency(),
        n => n,
    };
    services.accounts = services
        .accounts
        .clone()
        .with_hasher(Arc::new(lettermint_runtime::BlockingHasher::new(hashes)))
        .with_session_policy(lettermint_core::SessionPolicy {
            idle: time::Duration::minutes(i64::from(config.session_idle_minutes.max(1))),
            absolute: time::Duration::hours(i64::from(config.session_absolute_hours.max(1))),
        })
        .with_login_throttle(lettermint_core::LoginThrottle {
            per_account: u64::from(config.login_failures_per_account.max(1)),
            per_ip: u64::from(config.login_failures_per_ip.max(1)),
            ..lettermint_core::LoginThrottle::default()
        });
    let (committer, writers) = Committer::start(
        services.messages.clone(),
        config.commit_writers,
        config.commit_max_messages,
    );
    let (usage, usage_task) =
        UsageRecorder::start(services.usage.clone(), config.usage_queue_capacity);
    let maintenance = tokio::spawn(ops::maintenance(
        services.clone(),
        config.log_retention_days,
        config.maintenance_interval(),
    ));
    // `config::load` has checked them; a hand-built `Config` with a bad key is a start-up bug.
    let leak_keys = leaks::LeakReportKeys::parse(&config.leak_report_keys)
        .unwrap_or_else(|e| panic!("invalid leak_report_keys: {e}"));
    let state = AppState(Arc::new(Inner {
        services,
        committer,
        usage,
        limits: RateLimiter::default(),
        in_flight: InFlight::default(),
        identities: identity::IdentityCache::default(),
        config,
        clock,
        store,
        routes: Mutex::new(HashMap::new()),
        metrics,
        leak_keys,
    }));
    (
        state,
        Background {
            writers,
            usage: usage_task,
            maintenance,
        },
    )
}

/// Every route, each registered once with its OpenAPI annotation: both the router and the
/// OpenAPI document ([`openapi::document`]) are built from this. With a state, the Team API
/// routes run behind their middleware ([`auth::team_api`]).
pub fn api(state: Option<&AppState>) -> OpenApiRouter<AppState> {
    let mut team_api = team::routes();
    if let Some(state) = state {
        team_api = team_api.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::team_api,
        ));
    }
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(send::send))
        .routes(routes!(send::send_batch))
        .routes(routes!(auth::ping))
        .routes(routes!(messages::list_messages))
        .routes(routes!(messages::show_message))
        .merge(team_api)
        .routes(routes!(leaks::report))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let (mut routes, _) = api(Some(&state)).split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    if state.config.dashboard {
        routes = routes
            .merge(dashboard::routes())
            .fallback(ops::not_found_or_page);
    } else {
        routes = routes.fallback(ops::not_found);
    }
    routes
        .layer(axum::middleware::from_fn(ops::count_requests))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout(),
        ))
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            HeaderName::from_static("x-lettermint-token"),
        ]))
        .with_state(state)
}

/// What a first start of an empty store created, shown once.
#[derive(Debug)]
pub struct Bootstrap {
    /// The project token.
    pub project_token: String,
    /// The team token (every ability).
    pub team_token: String,
    /// The dashboard login of the team's owner.
    pub owner_email: String,
    /// Its generated password.
    pub owner_password: String,
}

/// Email of the owner a first start creates.
pub const BOOTSTRAP_OWNER_EMAIL: &str = "admin@localhost";

/// On an empty store, creates a team, a project with SMTP enabled, a project token, a team
/// token with every ability, and the team's owner for the dashboard (a generated password). `None` when the store already has a team.
pub async fn bootstrap(services: &Services) -> lettermint_core::Result<Option<Bootstrap>> {
    if !services.teams.list(Scope::Operator).await?.is_empty() {
        return Ok(None);
    }
    let team = services
        .teams
        .create(Scope::Operator, "Default team")
        .await?;
    let (_, first) = services
        .projects
        .create(
            Scope::Operator,
            NewProject {
                team_id: team.id,
                name: "Default project".into(),
                smtp_enabled: true,
                first_token_name: Some("Default".into()),
            },
        )
        .await?;
    let team_token = services
        .team_tokens
        .create(
            Scope::Operator,
            team.id,
            "Bootstrap",
            Abilities::all(),
            None,
        )
        .await?;
    let owner = services
        .accounts
        .create_account(Scope::Operator, BOOTSTRAP_OWNER_EMAIL, "Admin", None)
        .await?;
    services
        .accounts
        .add_member(
            None,
            team.id,
            owner.account.id,
            lettermint_core::Role::Owner,
            None,
        )
        .await?;
    Ok(Some(Bootstrap {
        owner_email: owner.account.email.as_str().to_owned(),
        owner_password: owner
            .generated_password
            .map(|p| p.expose_secret().to_owned())
            .unwrap_or_default(),
        project_token: first
            .map(|f| f.secret.expose_secret().to_owned())
            .unwrap_or_default(),
        team_token: team_token.secret.expose_secret().to_owned(),
    }))
}

/// Serves on `listener` until `shutdown` resolves, then drains: in-flight requests finish,
/// queued messages commit, usage is flushed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    background: Background,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    background.drain().await;
    Ok(())
}
