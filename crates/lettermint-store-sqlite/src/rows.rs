//! Row types: what a query returns, kept apart from the domain types, and their conversion.

use std::collections::BTreeMap;

use lettermint_core::id::{LogEntryId, MessageId, ProjectId, RouteId, TeamId, TokenId};
use lettermint_core::{Error, Message, MessageContent, Name, Project, Route, Team, TokenLogEntry};
pub(crate) use lettermint_store_sql::decode::to_json;
use lettermint_store_sql::decode::{corrupt, json, parse, parse_ip};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a NULL instant sorts as: before every stored instant.
pub(crate) const LOWEST_INSTANT: &str = "-9223372036854775808";

/// Stored form of an instant: microseconds since the Unix epoch.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Stored form of an optional instant.
pub(crate) fn opt_micros(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(micros)
}

pub(crate) fn ts(micros: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| corrupt("timestamp", e))
}

pub(crate) fn opt_ts(micros: Option<i64>) -> Result<Option<OffsetDateTime>, Error> {
    micros.map(ts).transpose()
}

/// How Sqlite spells what the shared statements leave to the dialect.
#[derive(Debug)]
pub(crate) struct SqliteDialect;

impl lettermint_store_sql::dialect::Dialect for SqliteDialect {
    const LOWEST_INSTANT: &'static str = LOWEST_INSTANT;
    const NAME_CONTAINS_2: &'static str = "($2 IS NULL OR instr(lower(name), lower($2)) > 0)";
}

#[derive(sqlx::FromRow)]
pub(crate) struct TeamRow {
    id: Uuid,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<TeamRow> for Team {
    type Error = Error;

    fn try_from(r: TeamRow) -> Result<Self, Error> {
        Ok(Team {
            id: TeamId::from_uuid(r.id),
            name: Name::from_stored(r.name),
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    smtp_enabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ProjectRow> for Project {
    type Error = Error;

    fn try_from(r: ProjectRow) -> Result<Self, Error> {
        Ok(Project {
            id: ProjectId::from_uuid(r.id),
            team_id: TeamId::from_uuid(r.team_id),
            name: Name::from_stored(r.name),
            smtp_enabled: r.smtp_enabled,
            created_at: ts(r.created_at)?,
            updated_at: ts(r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RouteRow {
    id: Uuid,
    project_id: Uuid,
    slug: String,
    name: String,
    kind: String,
    is_default: bool,
    created_at: i64,
}

impl TryFrom<RouteRow> for Route {
    type Error = Error;

    fn try_from(r: RouteRow) -> Result<Self, Error> {
        Ok(Route {
            id: RouteId::from_uuid(r.id),
            project_id: ProjectId::from_uuid(r.project_id),
            slug: r.slug,
            name: Name::from_stored(r.name),
            kind: parse("route kind", &r.kind)?,
            is_default: r.is_default,
            created_at: ts(r.created_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LogRow {
    id: Uuid,
    token_id: Uuid,
    at: i64,
    ip: Option<String>,
    via: String,
    action: String,
    outcome: String,
    status: i32,
    message_ids: String,
    user_agent: Option<String>,
}

impl TryFrom<LogRow> for TokenLogEntry {
    type Error = Error;

    fn try_from(r: LogRow) -> Result<Self, Error> {
        Ok(TokenLogEntry {
            id: LogEntryId::from_uuid(r.id),
            token_id: TokenId::from_uuid(r.token_id),
            at: ts(r.at)?,
            ip: parse_ip(r.ip)?,
            via: parse("via", &r.via)?,
            action: parse("action", &r.action)?,
            outcome: parse("outcome", &r.outcome)?,
            status: u16::try_from(r.status).map_err(|e| corrupt("status", e))?,
            message_ids: json::<Vec<MessageId>>("message ids", &r.message_ids)?,
            user_agent: r.user_agent,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: Uuid,
    project_id: Uuid,
    route_id: Uuid,
    token_id: Uuid,
    via: String,
    status: String,
    envelope_from: String,
    envelope_to: String,
    subject: Option<String>,
    tag: Option<String>,
    metadata: String,
    idempotency_key: Option<String>,
    scheduled_at: Option<i64>,
    created_at: i64,
    content_json: Option<String>,
    raw_mime: Option<Vec<u8>>,
}

impl TryFrom<MessageRow> for Message {
    type Error = Error;

    fn try_from(r: MessageRow) -> Result<Self, Error> {
        let content = match (r.content_json, r.raw_mime) {
            (Some(json_text), None) => {
                MessageContent::Structured(Box::new(json("content", &json_text)?))
            }
            (None, Some(mime)) => MessageContent::Mime(mime),
            _ => {
                return Err(corrupt(
                    "message content",
                    "expected exactly one of json or mime",
                ));
            }
        };
        Ok(Message {
            id: MessageId::from_uuid(r.id),
            project_id: ProjectId::from_uuid(r.project_id),
            route_id: RouteId::from_uuid(r.route_id),
            token_id: TokenId::from_uuid(r.token_id),
            via: parse("via", &r.via)?,
            status: parse("status", &r.status)?,
            envelope_from: r.envelope_from,
            envelope_to: json("envelope", &r.envelope_to)?,
            subject: r.subject,
            tag: r.tag,
            metadata: json::<BTreeMap<String, String>>("metadata", &r.metadata)?,
            idempotency_key: r.idempotency_key,
            scheduled_at: opt_ts(r.scheduled_at)?,
            created_at: ts(r.created_at)?,
            content,
        })
    }
}
