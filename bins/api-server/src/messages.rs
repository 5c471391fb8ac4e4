//! A project's messages and their delivery status (project token).

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lettermint_core::page::MessageSortKey;
use lettermint_core::{Action, Direction, Message, MessageContent, MessageId, Outcome, Sort};

use crate::AppState;
use crate::auth::ProjectAuth;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{NotFound, PingErrors};
use crate::team::{page_json, page_request, query_value, rfc3339};
use crate::wire::{self, to_value};

/// A project's messages, newest first
///
/// The messages sent with any token of the caller's project, with their delivery status.
#[utoipa::path(
    get,
    path = "/v1/messages",
    tag = "Sending API",
    operation_id = "list_messages",
    security(("projectToken" = [])),
    params(
        wire::PageParams,
        ("sort" = Option<String>, Query, pattern = "^(-?created_at(,.*)?)?$", description = "`created_at` or `-created_at` (default). Ties are broken by id."),
        ("filter[status]" = inline(Option<wire::MessageStatusFilter>), Query, description = "Only messages with this status."),
    ),
    responses(
        (status = 200, description = "A page of messages.", body = wire::MessagePage),
        (status = 422, description = "A bad query parameter, by name.", body = wire::ErrorBody),
        PingErrors,
    )
)]
pub async fn list_messages(
    State(state): State<AppState>,
    auth: ProjectAuth,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let request = page_request(
        &query,
        Sort {
            key: MessageSortKey::CreatedAt,
            direction: Direction::Descending,
        },
    )?;
    let status = match query_value(&query, "filter[status]").filter(|v| !v.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::invalid("filter.status", "Unknown status."))?,
        ),
    };
    let page = state
        .services
        .messages
        .list(auth.caller.project_id, status, request)
        .await?;
    record(&state, &auth);
    Ok(Json(page_json(
        page,
        request.size,
        &uri,
        &headers,
        &query,
        message_json,
    ))
    .into_response())
}

/// A message and its delivery status
#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "Sending API",
    operation_id = "show_message",
    security(("projectToken" = [])),
    params(("id" = uuid::Uuid, Path, description = "The message's id (`message_id` of the send).")),
    responses(
        (status = 200, description = "The message.", body = wire::MessageData),
        NotFound,
        PingErrors,
    )
)]
pub async fn show_message(
    State(state): State<AppState>,
    auth: ProjectAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    // Another project's message, or no message: the same 404.
    let id: MessageId = id
        .parse()
        .map_err(|_| ApiError::from(lettermint_core::Error::not_found("message")))?;
    let message = state
        .services
        .messages
        .get(auth.caller.project_id, id)
        .await?;
    record(&state, &auth);
    Ok(Json(message_json(&message)).into_response())
}

fn record(state: &AppState, auth: &ProjectAuth) {
    state.record_usage(
        auth.caller.credential.token_id,
        &auth.client,
        Action::Messages,
        Outcome::Accepted,
        200,
        Vec::new(),
        Some(auth.caller.slot),
    );
}

/// `Name <addr>` or `addr`, split.
fn recipient(text: &str) -> wire::Recipient {
    match text.rsplit_once('<') {
        Some((name, rest)) => {
            let name = name.trim().trim_matches('"').trim();
            wire::Recipient {
                email: rest.trim_end_matches('>').trim().to_owned(),
                name: (!name.is_empty()).then(|| name.to_owned()),
                sandbox_result: None,
            }
        }
        None => wire::Recipient {
            email: text.trim().to_owned(),
            name: None,
            sandbox_result: None,
        },
    }
}

fn recipients(list: &[String]) -> Option<Vec<wire::Recipient>> {
    (!list.is_empty()).then(|| list.iter().map(|r| recipient(r)).collect())
}

/// A message in the upstream shape, with the delivery fields this server adds.
pub fn message_json(message: &Message) -> serde_json::Value {
    let (from, to, cc, bcc, reply_to, attachments, tags) = match &message.content {
        MessageContent::Structured(email) => (
            recipient(&email.from),
            recipients(&email.to),
            recipients(&email.cc),
            recipients(&email.bcc),
            (!email.reply_to.is_empty()).then(|| email.reply_to.clone()),
            Some(
                email
                    .attachments
                    .iter()
                    .map(|a| wire::MessageAttachment {
                        size: base64::engine::general_purpose::STANDARD
                            .decode(a.content.as_bytes())
                            .map_or(0, |b| b.len() as u64),
                        filename: a.filename.clone(),
                        content_id: a.content_id.clone(),
                        content_type: a
                            .content_type
                            .clone()
                            .unwrap_or_else(|| "application/octet-stream".to_owned()),
                    })
                    .collect(),
            ),
            email
                .tags
                .iter()
                .map(|t| wire::MessageTag {
                    name: t.name.clone(),
                    value: t.value.clone(),
                })
                .collect(),
        ),
        // SMTP messages: the envelope is what is known without parsing the message again.
        MessageContent::Mime(_) => (
            recipient(&message.envelope_from),
            recipients(&message.envelope_to),
            None,
            None,
            None,
            None,
            Vec::new(),
        ),
    };
    to_value(wire::MessageData {
        id: message.id,
        r#type: "outbound",
        status: message.status.as_str(),
        delivery_mode: "live",
        sandbox_result: None,
        status_changed_at: message.delivery.status_changed_at.map(rfc3339),
        scheduled_at: message.scheduled_at.map(rfc3339),
        tag: message.tag.clone(),
        tags,
        from_email: from.email,
        from_name: from.name,
        reply_to,
        subject: message.subject.clone(),
        to,
        cc,
        bcc,
        attachments,
        metadata: (!message.metadata.is_empty()).then(|| message.metadata.clone()),
        route_id: message.route_id.as_uuid(),
        created_at: rfc3339(message.created_at),
        via: message.via.as_str(),
        attempts: message.delivery.attempts,
        last_reply: message.delivery.last_reply.clone(),
        next_attempt_at: message.delivery.next_attempt_at.map(rfc3339),
        delivered_to: message.delivery.delivered_to.clone(),
    })
}
