//! Row types: what a query returns, kept apart from the domain types, and their conversion.
//! Each is generic over `T`, the store's type for an instant, and converts with the store's
//! function from `T` to an instant.

use std::collections::BTreeMap;

use lettermint_core::id::{
    AccountId, AuditEntryId, LogEntryId, MessageId, ProjectId, RouteId, SessionId, TeamId, TokenId,
};
use lettermint_core::{
    Account, AuditEntry, CredentialSlot, DeliveryState, Email, Error, IdempotencyRecord,
    IpAllowlist, Member, Message, MessageContent, MessageStatus, Name, PasswordHash, Project, Role,
    Route, Session, Submission, Team, TokenLogEntry,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::decode::{corrupt, json, parse, parse_ip};

/// A team (`SELECT * FROM teams`).
#[derive(Debug, sqlx::FromRow)]
pub struct TeamRow<T> {
    id: Uuid,
    name: String,
    created_at: T,
    updated_at: T,
}

impl<T> TeamRow<T> {
    /// The team, reading instants with `instant`.
    pub fn into_team(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Team, Error> {
        Ok(Team {
            id: TeamId::from_uuid(self.id),
            name: Name::from_stored(self.name),
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
        })
    }
}

/// A project (`SELECT * FROM projects`).
#[derive(Debug, sqlx::FromRow)]
pub struct ProjectRow<T> {
    id: Uuid,
    team_id: Uuid,
    name: String,
    smtp_enabled: bool,
    created_at: T,
    updated_at: T,
}

impl<T> ProjectRow<T> {
    /// The project, reading instants with `instant`.
    pub fn into_project(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Project, Error> {
        Ok(Project {
            id: ProjectId::from_uuid(self.id),
            team_id: TeamId::from_uuid(self.team_id),
            name: Name::from_stored(self.name),
            smtp_enabled: self.smtp_enabled,
            created_at: instant(self.created_at)?,
            updated_at: instant(self.updated_at)?,
        })
    }
}

/// A route (`SELECT * FROM routes`).
#[derive(Debug, sqlx::FromRow)]
pub struct RouteRow<T> {
    id: Uuid,
    project_id: Uuid,
    slug: String,
    name: String,
    kind: String,
    is_default: bool,
    created_at: T,
}

impl<T> RouteRow<T> {
    /// The route, reading instants with `instant`.
    pub fn into_route(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Route, Error> {
        Ok(Route {
            id: RouteId::from_uuid(self.id),
            project_id: ProjectId::from_uuid(self.project_id),
            slug: self.slug,
            name: Name::from_stored(self.name),
            kind: parse("route kind", &self.kind)?,
            is_default: self.is_default,
            created_at: instant(self.created_at)?,
        })
    }
}

/// A token log entry (`SELECT * FROM token_logs`).
#[derive(Debug, sqlx::FromRow)]
pub struct LogRow<T> {
    id: Uuid,
    token_id: Uuid,
    at: T,
    ip: Option<String>,
    via: String,
    action: String,
    outcome: String,
    status: i32,
    message_ids: String,
    user_agent: Option<String>,
    credential: Option<String>,
    leak_url: Option<String>,
    actor: Option<String>,
}

impl<T> LogRow<T> {
    /// The entry, reading instants with `instant`.
    pub fn into_entry(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<TokenLogEntry, Error> {
        Ok(TokenLogEntry {
            id: LogEntryId::from_uuid(self.id),
            token_id: TokenId::from_uuid(self.token_id),
            at: instant(self.at)?,
            ip: parse_ip(self.ip)?,
            via: parse("via", &self.via)?,
            action: parse("action", &self.action)?,
            outcome: parse("outcome", &self.outcome)?,
            status: u16::try_from(self.status).map_err(|e| corrupt("status", e))?,
            message_ids: json::<Vec<MessageId>>("message ids", &self.message_ids)?,
            user_agent: self.user_agent,
            credential: self
                .credential
                .map(|c| parse("credential", &c))
                .transpose()?,
            leak_url: self.leak_url,
            actor: self.actor,
        })
    }
}

/// A message (`SELECT * FROM messages`).
#[derive(Debug, sqlx::FromRow)]
pub struct MessageRow<T> {
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
    scheduled_at: Option<T>,
    created_at: T,
    content_json: Option<String>,
    raw_mime: Option<Vec<u8>>,
    attempts: i32,
    last_reply: Option<String>,
    status_changed_at: Option<T>,
    due_at: Option<T>,
    interrupted: i32,
    interrupted_alone: i32,
    delivered_to: String,
}

impl<T> MessageRow<T> {
    /// The message, reading instants with `instant`.
    pub fn into_message(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Message, Error> {
        let content = match (self.content_json, self.raw_mime) {
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
        let status: MessageStatus = parse("status", &self.status)?;
        Ok(Message {
            id: MessageId::from_uuid(self.id),
            project_id: ProjectId::from_uuid(self.project_id),
            route_id: RouteId::from_uuid(self.route_id),
            token_id: TokenId::from_uuid(self.token_id),
            via: parse("via", &self.via)?,
            status,
            envelope_from: self.envelope_from,
            envelope_to: json("envelope", &self.envelope_to)?,
            subject: self.subject,
            tag: self.tag,
            metadata: json::<BTreeMap<String, String>>("metadata", &self.metadata)?,
            idempotency_key: self.idempotency_key,
            scheduled_at: self.scheduled_at.map(&instant).transpose()?,
            created_at: instant(self.created_at)?,
            content,
            delivery: DeliveryState {
                attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
                last_reply: self.last_reply,
                status_changed_at: self.status_changed_at.map(&instant).transpose()?,
                // Due again after a deferral; a pending message is due at once, and a processed
                // one is in the hands of a worker (its due instant is the end of the lease).
                next_attempt_at: if status == MessageStatus::Deferred {
                    self.due_at.map(&instant).transpose()?
                } else {
                    None
                },
                interrupted: u32::try_from(self.interrupted)
                    .map_err(|e| corrupt("interrupted", e))?,
                interrupted_alone: u32::try_from(self.interrupted_alone)
                    .map_err(|e| corrupt("interrupted_alone", e))?,
                delivered_to: json("delivered_to", &self.delivered_to)?,
            },
        })
    }
}

/// An idempotency record (`SELECT request_hash, status, response, created_at`).
#[derive(Debug, sqlx::FromRow)]
pub struct IdempotencyRow<T> {
    request_hash: Vec<u8>,
    status: i32,
    response: String,
    created_at: T,
}

impl<T> IdempotencyRow<T> {
    /// The record of `key` in `project`, reading instants with `instant`.
    pub fn into_record(
        self,
        project: ProjectId,
        key: &str,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<IdempotencyRecord, Error> {
        Ok(IdempotencyRecord {
            project_id: project,
            key: key.to_owned(),
            request_hash: self
                .request_hash
                .try_into()
                .map_err(|_| Error::Storage("stored request hash is not 32 bytes".into()))?,
            status: u16::try_from(self.status)
                .map_err(|_| Error::Storage("stored status is out of range".into()))?,
            response: self.response,
            created_at: instant(self.created_at)?,
        })
    }
}

/// The state of a project token as the send path reads it, under a lock that orders it against
/// revoke, regenerate, rotate and allowlist changes (`SELECT` [`locked_token_columns!`](crate::locked_token_columns)).
#[derive(Debug, sqlx::FromRow)]
pub struct LockedToken<T> {
    /// The token's id.
    pub id: Uuid,
    project_id: Uuid,
    digest: Vec<u8>,
    previous_digest: Option<Vec<u8>>,
    previous_expires_at: Option<T>,
    allowed_ips: String,
    revoked_at: Option<T>,
    expires_at: Option<T>,
}

/// The columns of [`LockedToken`] as a string literal, for the dialects' `lock_tokens`
/// statements (`concat!`): all from the token's own row.
#[macro_export]
macro_rules! locked_token_columns {
    () => {
        "id, project_id, digest, previous_digest, previous_expires_at, allowed_ips, revoked_at, \
         expires_at"
    };
}

impl<T: PartialOrd> LockedToken<T> {
    /// Under which of its values the token may send `submission` at `now`, if it may: the digest
    /// presented is the current one, or the previous one before its overlap ends; the token is
    /// neither revoked nor expired; the client's address is in its allowlist (if it has one);
    /// and every message is for its project.
    pub fn accepts(&self, submission: &Submission, now: &T) -> Option<CredentialSlot> {
        let presented = submission.credential.digest.as_bytes().as_slice();
        let slot = if self.digest.as_slice() == presented {
            CredentialSlot::Current
        } else if self.previous_digest.as_deref() == Some(presented)
            && self.previous_expires_at.as_ref().is_some_and(|e| now < e)
        {
            CredentialSlot::Previous
        } else {
            return None;
        };
        (self.revoked_at.is_none()
            && self.expires_at.as_ref().is_none_or(|e| e > now)
            && IpAllowlist::stored_allows(&self.allowed_ips, submission.client_ip)
            && submission
                .messages
                .iter()
                .all(|m| m.project_id.as_uuid() == self.project_id))
        .then_some(slot)
    }
}

/// The columns of an account, password hash aside, as [`AccountRow`] reads them (`a`: the
/// `accounts` table).
#[macro_export]
macro_rules! account_columns {
    () => {
        "a.id AS account_id, a.email, a.display_name, a.created_at AS account_created_at, \
         a.password_changed_at"
    };
}

/// An account (`SELECT` [`account_columns!`](crate::account_columns)).
#[derive(Debug, sqlx::FromRow)]
pub struct AccountRow<T> {
    account_id: Uuid,
    email: String,
    display_name: String,
    account_created_at: T,
    password_changed_at: T,
}

impl<T> AccountRow<T> {
    /// The account, reading instants with `instant`.
    pub fn into_account(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Account, Error> {
        Ok(Account {
            id: AccountId::from_uuid(self.account_id),
            email: Email::from_stored(self.email),
            display_name: Name::from_stored(self.display_name),
            created_at: instant(self.account_created_at)?,
            password_changed_at: instant(self.password_changed_at)?,
        })
    }
}

/// An account and its password hash (`SELECT` [`account_columns!`](crate::account_columns)`,
/// a.password_hash`).
#[derive(Debug, sqlx::FromRow)]
pub struct AccountWithHashRow<T> {
    #[sqlx(flatten)]
    account: AccountRow<T>,
    password_hash: String,
}

impl<T> AccountWithHashRow<T> {
    /// The account and its hash, reading instants with `instant`.
    pub fn into_account(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<(Account, PasswordHash), Error> {
        Ok((
            self.account.into_account(instant)?,
            PasswordHash::from_stored(self.password_hash),
        ))
    }
}

/// A member with their account (`SELECT m.team_id, m.role, m.joined_at,`
/// [`account_columns!`](crate::account_columns) `FROM team_members m JOIN accounts a`).
#[derive(Debug, sqlx::FromRow)]
pub struct MemberRow<T> {
    team_id: Uuid,
    role: String,
    joined_at: T,
    #[sqlx(flatten)]
    account: AccountRow<T>,
}

impl<T> MemberRow<T> {
    /// The member, reading instants with `instant`.
    pub fn into_member(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Member, Error> {
        Ok(Member {
            team_id: TeamId::from_uuid(self.team_id),
            role: parse::<Role>("role", &self.role)?,
            joined_at: instant(self.joined_at)?,
            account: self.account.into_account(instant)?,
        })
    }
}

/// A team and an account's role in it (`SELECT t.*, m.role FROM teams t JOIN team_members m`).
#[derive(Debug, sqlx::FromRow)]
pub struct MembershipRow<T> {
    #[sqlx(flatten)]
    team: TeamRow<T>,
    role: String,
}

impl<T> MembershipRow<T> {
    /// The team and the role, reading instants with `instant`.
    pub fn into_membership(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<(Team, Role), Error> {
        Ok((
            self.team.into_team(instant)?,
            parse::<Role>("role", &self.role)?,
        ))
    }
}

/// A session (`SELECT id, account_id, created_at, last_seen_at, idle_expires_at, expires_at`):
/// never its digest, which only finds it.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow<T> {
    id: Uuid,
    account_id: Uuid,
    created_at: T,
    last_seen_at: T,
    idle_expires_at: T,
    expires_at: T,
}

impl<T> SessionRow<T> {
    /// The session, reading instants with `instant`.
    pub fn into_session(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<Session, Error> {
        Ok(Session {
            id: SessionId::from_uuid(self.id),
            account_id: AccountId::from_uuid(self.account_id),
            created_at: instant(self.created_at)?,
            last_seen_at: instant(self.last_seen_at)?,
            idle_expires_at: instant(self.idle_expires_at)?,
            expires_at: instant(self.expires_at)?,
        })
    }
}

/// How many failed logins a key has in a window, and the oldest
/// (`SELECT count(*) AS failures, min(at) AS oldest`).
#[derive(Debug, sqlx::FromRow)]
pub struct FailureCountRow<T> {
    failures: i64,
    oldest: Option<T>,
}

impl<T> FailureCountRow<T> {
    /// The count and the oldest instant, reading instants with `instant`.
    pub fn into_count(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<(u64, Option<OffsetDateTime>), Error> {
        Ok((
            u64::try_from(self.failures).map_err(|e| corrupt("failure count", e))?,
            self.oldest.map(instant).transpose()?,
        ))
    }
}

/// An audit log entry (`SELECT * FROM audit_log`).
#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow<T> {
    id: Uuid,
    team_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    actor_email: Option<String>,
    action: String,
    target: Option<String>,
    detail: Option<String>,
    ip: Option<String>,
    at: T,
}

impl<T> AuditRow<T> {
    /// The entry, reading instants with `instant`.
    pub fn into_entry(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<AuditEntry, Error> {
        Ok(AuditEntry {
            id: AuditEntryId::from_uuid(self.id),
            team_id: self.team_id.map(TeamId::from_uuid),
            actor_id: self.actor_id.map(AccountId::from_uuid),
            actor_email: self.actor_email,
            action: parse("audit action", &self.action)?,
            target: self.target,
            detail: self.detail,
            ip: parse_ip(self.ip)?,
            at: instant(self.at)?,
        })
    }
}
