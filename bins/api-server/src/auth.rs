//! Authentication of both token kinds, with the failure recorded where the token is known.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lettermint_core::{
    Action, Channel, CredentialSlot, Error, Outcome, ProjectCaller, TeamCaller, UsageRecord,
};

use crate::AppState;
use crate::client::Client;
use crate::error::ApiError;
use crate::openapi::PingErrors;
use crate::rate_limit::Class;
use crate::wire::Pong;

/// A request authenticated with a project token (`x-lettermint-token`).
///
/// On the send routes a known token's identity may come from the [`crate::identity`] cache
/// (`fresh` is then false): such a caller may only be answered through the conditional commit,
/// or after [`ProjectAuth::confirm`].
#[derive(Debug, Clone)]
pub struct ProjectAuth {
    /// Who.
    pub caller: ProjectCaller,
    /// From where.
    pub client: Client,
    /// Whether the token's state was read from the store for this request.
    pub fresh: bool,
}

impl ProjectAuth {
    /// Authenticates against the store now (unless that was already done for this request);
    /// refusals are logged and answered like any authentication failure.
    pub async fn confirm(&mut self, state: &AppState, action: Action) -> Result<(), ApiError> {
        if self.fresh {
            return Ok(());
        }
        let presented = self.caller.credential.digest;
        match state
            .services
            .auth
            .authenticate_project_digest(&presented, Channel::Api, self.client.ip)
            .await
        {
            Ok(caller) => {
                self.caller = caller;
                self.fresh = true;
                Ok(())
            }
            Err(err) => {
                state.identities.forget(&presented);
                state.record_auth_failure(&err, &self.client, action);
                Err(err.into())
            }
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The log action of a Sending API path.
pub fn action_of(path: &str) -> Action {
    match path {
        "/v1/send/batch" => Action::SendBatch,
        "/v1/ping" => Action::Ping,
        "/v1/send" => Action::Send,
        _ => Action::TeamApi,
    }
}

impl AppState {
    /// Logs a refused authentication against its token when the token is known, and counts it.
    pub(crate) fn record_auth_failure(&self, err: &Error, client: &Client, action: Action) {
        let Error::Unauthenticated(failure) = err else {
            return;
        };
        metrics::counter!("lettermint_auth_failures_total", "reason" => failure.reason())
            .increment(1);
        tracing::info!(reason = failure.reason(), "authentication refused");
        if let Some((token_id, outcome)) = failure.loggable() {
            self.record_usage(token_id, client, action, outcome, 401, Vec::new(), None);
        }
    }

    /// Queues a usage record; `credential` is the token value used, when one was accepted.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_usage(
        &self,
        token_id: lettermint_core::TokenId,
        client: &Client,
        action: Action,
        outcome: Outcome,
        status: u16,
        message_ids: Vec<lettermint_core::MessageId>,
        credential: Option<CredentialSlot>,
    ) {
        self.usage.record(UsageRecord {
            token_id,
            at: self.clock.now(),
            ip: client.ip,
            via: Channel::Api,
            action,
            outcome,
            status,
            message_ids,
            user_agent: client.user_agent.clone(),
            credential,
        });
    }
}

impl FromRequestParts<AppState> for ProjectAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = Client::from_parts(parts, &state.config.trusted_proxies);
        let presented = header(&parts.headers, "x-lettermint-token");
        let sending = matches!(parts.uri.path(), "/v1/send" | "/v1/send/batch");
        if sending
            && let Some(digest) = presented
                .and_then(|p| {
                    lettermint_core::PlainToken::parse_kind(
                        p.trim(),
                        lettermint_core::TokenKind::Project,
                    )
                    .ok()
                })
                .map(|t| t.digest())
            && let Some(caller) = state.identities.get(&digest)
        {
            return Ok(Self {
                caller,
                client,
                fresh: false,
            });
        }
        match state
            .services
            .auth
            .authenticate_project(presented, Channel::Api, client.ip)
            .await
        {
            Ok(caller) => {
                if sending {
                    state.identities.insert(caller);
                }
                Ok(Self {
                    caller,
                    client,
                    fresh: true,
                })
            }
            Err(err) => {
                state.record_auth_failure(&err, &client, action_of(parts.uri.path()));
                Err(err.into())
            }
        }
    }
}

/// A Team API request authenticated with a team token and counted against its rate limits;
/// put in the request's extensions by [`team_api`].
#[derive(Debug, Clone)]
pub struct TeamAuth {
    /// Who.
    pub caller: TeamCaller,
    /// From where.
    pub client: Client,
}

fn classes(method: &Method, path: &str) -> &'static [Class] {
    if method == Method::GET || method == Method::HEAD {
        &[Class::Read]
    } else if path.ends_with("/regenerate")
        || path.ends_with("/rotate")
        || path.ends_with("/rotate-token")
    {
        &[Class::Write, Class::Regenerate]
    } else {
        &[Class::Write]
    }
}

/// Middleware of the Team API: authenticates the bearer token, applies its rate limits and
/// adds the `X-RateLimit-*` headers.
pub async fn team_api(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = Client::from_parts(&parts, &state.config.trusted_proxies);
    let caller = match state
        .services
        .auth
        .authenticate_team(bearer(&parts.headers), client.ip)
        .await
    {
        Ok(caller) => caller,
        Err(err) => {
            state.record_auth_failure(&err, &client, Action::TeamApi);
            return ApiError::from(err).into_response();
        }
    };
    let verdict = state.limits.check(
        caller.token_id,
        classes(&parts.method, parts.uri.path()),
        std::time::Instant::now(),
    );
    let slot = Some(caller.slot);
    let mut response = if verdict.allowed {
        let token_id = caller.token_id;
        parts.extensions.insert(TeamAuth {
            caller,
            client: client.clone(),
        });
        let response = next.run(Request::from_parts(parts, body)).await;
        let status = response.status().as_u16();
        let outcome = match status {
            200..=299 => Outcome::Accepted,
            403 => Outcome::Forbidden,
            _ => Outcome::InvalidRequest,
        };
        state.record_usage(
            token_id,
            &client,
            Action::TeamApi,
            outcome,
            status,
            Vec::new(),
            slot,
        );
        response
    } else {
        state.record_usage(
            caller.token_id,
            &client,
            Action::TeamApi,
            Outcome::RateLimited,
            429,
            Vec::new(),
            slot,
        );
        ApiError::RateLimited {
            retry_after: verdict.reset_secs,
        }
        .into_response()
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_secs));
    response
}

/// Check a token (either kind); answers `pong`
///
/// A project token in `x-lettermint-token` or a team token as `Authorization: Bearer` (either
/// kind is also accepted in the other header).
#[utoipa::path(
    get,
    path = "/v1/ping",
    tag = "Sending API",
    operation_id = "ping",
    security(("projectToken" = []), ("teamToken" = [])),
    responses(
        (status = 200, description = "The token is valid.", body = Pong, content_type = "text/plain", example = "pong"),
        PingErrors,
    )
)]
pub async fn ping(State(state): State<AppState>, parts: Parts) -> Result<&'static str, ApiError> {
    let client = Client::from_parts(&parts, &state.config.trusted_proxies);
    let presented = header(&parts.headers, "x-lettermint-token").or_else(|| bearer(&parts.headers));
    let is_team = presented.is_some_and(|p| p.trim().starts_with("lm_team_"));
    let token_id = if is_team {
        state
            .services
            .auth
            .authenticate_team(presented, client.ip)
            .await
            .map(|c| (c.token_id, c.slot))
    } else {
        state
            .services
            .auth
            .authenticate_project(presented, Channel::Api, client.ip)
            .await
            .map(|c| (c.credential.token_id, c.slot))
    };
    match token_id {
        Ok((token_id, slot)) => {
            state.record_usage(
                token_id,
                &client,
                Action::Ping,
                Outcome::Accepted,
                200,
                Vec::new(),
                Some(slot),
            );
            Ok("pong")
        }
        Err(err) => {
            state.record_auth_failure(&err, &client, Action::Ping);
            Err(err.into())
        }
    }
}
