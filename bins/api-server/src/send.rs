//! The Sending API: `POST /v1/send` and `POST /v1/send/batch`.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lettermint_core::message::valid_idempotency_key;
use lettermint_core::{
    Action, IdempotencyRecord, Message, MessageContent, MessageId, MessageStatus, Outcome,
    ProjectId, Submission, SubmissionOutcome, ValidationErrors,
};
use serde_json::Value;

use crate::AppState;
use crate::auth::ProjectAuth;
use crate::error::{ApiError, ApiResult};
use crate::openapi::SendErrors;
use crate::validate::{self, ValidSend, bare_address};
use crate::wire::{SendBatch, SendBatchResponse, SendRequest, SendResponse, SendStatus};

/// Most messages in one batch.
pub const MAX_BATCH: usize = 500;

/// A JSON body: declared as JSON, within the size limit, and parseable. Rejections use the
/// contract's error shapes (415, 413, 400).
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| {
                v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))
    }
}

/// Keys of requests being processed in this process, so that a concurrent retry gets 409.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<(ProjectId, String)>>);

struct InFlightGuard<'a> {
    set: &'a InFlight,
    key: (ProjectId, String),
}

impl InFlight {
    fn claim(&self, project: ProjectId, key: &str) -> Option<InFlightGuard<'_>> {
        let entry = (project, key.to_owned());
        let claimed = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.clone());
        // The lock is released before a guard exists: a guard's drop takes it again (and a guard
        // built for a key that is not ours would release the other request's claim).
        claimed.then(|| InFlightGuard {
            set: self,
            key: entry,
        })
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.key);
    }
}

/// Send an email
///
/// Answers `202` only after the message is committed to the store. With an `Idempotency-Key`,
/// a repeated request with the same body replays the first answer (`Idempotent-Replayed: true`)
/// and sends nothing again.
#[utoipa::path(
    post,
    path = "/v1/send",
    tag = "Sending API",
    operation_id = "send",
    security(("projectToken" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
            description = "Makes a retry safe for 24 hours: the same key and body replay the first answer; \
                           the same key with another body, or while the first is in flight, is `409`."),
    ),
    request_body(content = SendRequest, description = "The email."),
    responses(
        (status = 202, description = "Accepted: the message is stored and will be sent.", body = SendResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the replay of an earlier answer."))),
        SendErrors,
    )
)]
pub async fn send(
    State(state): State<AppState>,
    mut auth: ProjectAuth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    accept(&state, &mut auth, &headers, body, false).await
}

/// Send 1 to 500 emails atomically
///
/// Either every message is accepted or none is; the answers are in the order of the requests.
/// Field paths in a `422` start with the item's index (`0.subject`).
#[utoipa::path(
    post,
    path = "/v1/send/batch",
    tag = "Sending API",
    operation_id = "send_batch",
    security(("projectToken" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
            description = "Makes a retry safe for 24 hours: the same key and body replay the first answer; \
                           the same key with another body, or while the first is in flight, is `409`."),
    ),
    request_body(content = SendBatch, description = "1 to 500 emails."),
    responses(
        (status = 202, description = "Accepted: every message is stored and will be sent.", body = SendBatchResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when this is the replay of an earlier answer."))),
        SendErrors,
    )
)]
pub async fn send_batch(
    State(state): State<AppState>,
    mut auth: ProjectAuth,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    accept(&state, &mut auth, &headers, body, true).await
}

/// Answers an invalid request: after checking the token against the store (a refused token
/// gets its 401, not the 422), and logged against the token.
async fn invalid(
    state: &AppState,
    auth: &mut ProjectAuth,
    action: Action,
    err: ApiError,
) -> ApiError {
    if let Err(refused) = auth.confirm(state, action).await {
        return refused;
    }
    state.record_usage(
        auth.caller.credential.token_id,
        &auth.client,
        action,
        Outcome::InvalidRequest,
        err.status(),
        Vec::new(),
        Some(auth.caller.slot),
    );
    err
}

fn replay(record: &IdempotencyRecord, fingerprint: &[u8; 32]) -> ApiResult<Response> {
    if &record.request_hash != fingerprint {
        return Err(ApiError::Conflict(
            "This Idempotency-Key was already used with a different request body.".into(),
        ));
    }
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::ACCEPTED);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        record.response.clone(),
    )
        .into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

async fn accept(
    state: &AppState,
    auth: &mut ProjectAuth,
    headers: &HeaderMap,
    body: Value,
    batch: bool,
) -> ApiResult<Response> {
    let action = if batch {
        Action::SendBatch
    } else {
        Action::Send
    };
    // Answers that do not go through the conditional commit need the token's current state:
    // a request with an Idempotency-Key (it may be answered by a replay) is checked now, an
    // invalid request before its 422 (see `invalid`).
    if headers.contains_key("idempotency-key") {
        auth.confirm(state, action).await?;
    }

    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str().map(str::trim) {
            Ok(k) if valid_idempotency_key(k) => Some(k.to_owned()),
            _ => {
                return Err(invalid(
                    state,
                    auth,
                    action,
                    ApiError::invalid(
                        "Idempotency-Key",
                        "The Idempotency-Key header must be 1 to 255 printable characters.",
                    ),
                )
                .await);
            }
        },
    };

    let items: Vec<&Value> = if batch {
        match body.as_array() {
            Some(items) if (1..=MAX_BATCH).contains(&items.len()) => items.iter().collect(),
            Some(_) => {
                return Err(invalid(
                    state,
                    auth,
                    action,
                    ApiError::invalid(
                        "body",
                        format!("A batch holds between 1 and {MAX_BATCH} messages."),
                    ),
                )
                .await);
            }
            None => {
                return Err(invalid(
                    state,
                    auth,
                    action,
                    ApiError::invalid("body", "A batch is a JSON array of send requests."),
                )
                .await);
            }
        }
    } else {
        vec![&body]
    };
    let mut errors = ValidationErrors::default();
    let mut valid: Vec<ValidSend> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let prefix = if batch {
            format!("{i}.")
        } else {
            String::new()
        };
        if let Some(ok) = validate::send_request(item, &prefix, &mut errors) {
            valid.push(ok);
        }
    }
    let mut routes = Vec::with_capacity(valid.len());
    if errors.is_empty() {
        for (i, send) in valid.iter().enumerate() {
            match state
                .route_for(auth.caller.project_id, send.route.as_deref())
                .await
            {
                Ok(route) => routes.push(route),
                Err(ApiError::Validation(_)) => errors.add(
                    if batch {
                        format!("{i}.route")
                    } else {
                        "route".to_owned()
                    },
                    format!(
                        "The route `{}` does not exist in this project.",
                        send.route.as_deref().unwrap_or_default()
                    ),
                ),
                Err(other) => return Err(other),
            }
        }
    }
    if !errors.is_empty() {
        return Err(invalid(state, auth, action, ApiError::Validation(errors)).await);
    }
    let caller = auth.caller;
    let project = caller.project_id;

    let path: &[u8] = if batch {
        b"/v1/send/batch"
    } else {
        b"/v1/send"
    };
    // serde_json's maps are ordered by key, so the text is the same for the same JSON whatever
    // order the client wrote the keys in. Only requests with a key need it.
    let fingerprint = key
        .as_ref()
        .map(|_| IdempotencyRecord::fingerprint(&[path, body.to_string().as_bytes()]))
        .unwrap_or_default();
    let _guard = match &key {
        Some(key) => {
            if let Some(record) = state
                .services
                .messages
                .idempotency_record(project, key)
                .await?
            {
                return replay(&record, &fingerprint);
            }
            match state.in_flight.claim(project, key) {
                Some(guard) => Some(guard),
                None => {
                    return Err(ApiError::Conflict(
                        "A request with this Idempotency-Key is still being processed.".into(),
                    ));
                }
            }
        }
        None => None,
    };

    let now = state.clock.now();
    let mut messages = Vec::with_capacity(valid.len());
    let mut replies = Vec::with_capacity(valid.len());
    for (send, route) in valid.into_iter().zip(routes) {
        let id = MessageId::new();
        let scheduled_at = send.scheduled_at.filter(|at| *at > now);
        let status = if scheduled_at.is_some() {
            MessageStatus::Scheduled
        } else {
            MessageStatus::Pending
        };
        replies.push(crate::wire::to_value(SendResponse {
            message_id: id,
            status: if scheduled_at.is_some() {
                SendStatus::Scheduled
            } else {
                SendStatus::Pending
            },
            scheduled_at: scheduled_at.map(crate::team::rfc3339),
        }));
        messages.push(Message {
            id,
            project_id: project,
            route_id: route,
            token_id: caller.credential.token_id,
            via: lettermint_core::Channel::Api,
            status,
            envelope_from: bare_address(&send.email.from).to_owned(),
            envelope_to: send.recipients,
            subject: Some(send.email.subject.clone()),
            tag: send.tag,
            metadata: send.metadata,
            idempotency_key: key.clone(),
            scheduled_at,
            created_at: now,
            content: MessageContent::Structured(Box::new(send.email)),
            delivery: Default::default(),
        });
    }
    let response_body = if batch {
        Value::Array(replies)
    } else {
        replies.swap_remove(0)
    };
    let response_text = response_body.to_string();
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    let count = ids.len();
    let submission = Submission {
        client_ip: auth.client.ip,
        credential: caller.credential,
        messages,
        idempotency: key.as_ref().map(|key| IdempotencyRecord {
            project_id: project,
            key: key.clone(),
            request_hash: fingerprint,
            status: 202,
            response: response_text.clone(),
            created_at: now,
        }),
    };
    match state.committer.commit(submission).await {
        Ok(SubmissionOutcome::Accepted(slot)) => {
            metrics::counter!("lettermint_sends_accepted_total").increment(count as u64);
            metrics::histogram!("lettermint_send_batch_size").record(count as f64);
            state.record_usage(
                caller.credential.token_id,
                &auth.client,
                action,
                Outcome::Accepted,
                202,
                ids,
                Some(slot),
            );
            Ok((
                StatusCode::ACCEPTED,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                response_text,
            )
                .into_response())
        }
        Ok(SubmissionOutcome::TokenInactive) => {
            // Revoked, regenerated, expired, past its overlap or refused by the allowlist
            // before the commit. Ask the store why, so the token's log says so, and forget the
            // identity.
            state.identities.forget(&caller.credential.digest);
            auth.fresh = false;
            match auth.confirm(state, action).await {
                Err(refused) => Err(refused),
                Ok(()) => {
                    state.record_usage(
                        caller.credential.token_id,
                        &auth.client,
                        action,
                        Outcome::RejectedRevoked,
                        401,
                        Vec::new(),
                        Some(auth.caller.slot),
                    );
                    Err(ApiError::Unauthenticated)
                }
            }
        }
        Ok(SubmissionOutcome::DuplicateIdempotencyKey) => {
            let key = key.unwrap_or_default();
            match state
                .services
                .messages
                .idempotency_record(project, &key)
                .await?
            {
                Some(record) => replay(&record, &fingerprint),
                None => Err(ApiError::Conflict(
                    "A request with this Idempotency-Key is still being processed.".into(),
                )),
            }
        }
        Err(err) => {
            tracing::error!(error = %err, "could not commit messages");
            Err(ApiError::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on another thread; fails if it does not finish within two seconds (a deadlock).
    fn within_two_seconds(f: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(2))
            .expect("claiming a key twice finishes");
    }

    #[test]
    fn a_key_in_flight_is_refused_and_stays_claimed_until_released() {
        within_two_seconds(|| {
            let in_flight = InFlight::default();
            let project = ProjectId::new();
            let first = in_flight.claim(project, "k").expect("a new key is claimed");
            assert!(in_flight.claim(project, "k").is_none(), "a second claim");
            assert!(
                in_flight.claim(project, "k").is_none(),
                "the refused claim did not release the first one"
            );
            assert!(in_flight.claim(ProjectId::new(), "k").is_some());
            drop(first);
            assert!(in_flight.claim(project, "k").is_some(), "released");
        });
    }
}
