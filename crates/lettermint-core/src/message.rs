//! Messages: what a front door accepted, stored complete before the caller is told so.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::id::{MessageId, ProjectId, RouteId, TokenId};
use crate::model::{Channel, UnknownVariant};
use crate::token::TokenDigest;

/// Delivery status of a message (the upstream set we model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Accepted for a later time.
    Scheduled,
    /// Accepted, waiting to be processed.
    Pending,
    /// Handed to the delivery queue.
    Queued,
    /// Processed.
    Processed,
    /// Delivered.
    Delivered,
    /// Temporarily refused by the recipient's server.
    SoftBounced,
    /// Permanently refused.
    HardBounced,
    /// Failed.
    Failed,
    /// Canceled before delivery.
    Canceled,
    /// Temporarily refused by the smarthost or unreachable; retried later.
    Deferred,
}

impl MessageStatus {
    /// Lower-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Pending => "pending",
            MessageStatus::Queued => "queued",
            MessageStatus::Processed => "processed",
            MessageStatus::Delivered => "delivered",
            MessageStatus::SoftBounced => "soft_bounced",
            MessageStatus::HardBounced => "hard_bounced",
            MessageStatus::Failed => "failed",
            MessageStatus::Canceled => "canceled",
            MessageStatus::Deferred => "deferred",
        }
    }
}

impl MessageStatus {
    /// Every status, in declaration order.
    pub const ALL: [MessageStatus; 10] = [
        MessageStatus::Scheduled,
        MessageStatus::Pending,
        MessageStatus::Queued,
        MessageStatus::Processed,
        MessageStatus::Delivered,
        MessageStatus::SoftBounced,
        MessageStatus::HardBounced,
        MessageStatus::Failed,
        MessageStatus::Canceled,
        MessageStatus::Deferred,
    ];
}

impl FromStr for MessageStatus {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVariant(s.to_owned()))
    }
}

/// A file attached to a structured message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// Content, base64 as received (validated by the front door).
    pub content: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// Content-ID for inline use, with `@lm` appended when it had no `@`.
    pub content_id: Option<String>,
}

/// A tag with a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A message as the Sending API describes it, after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StructuredEmail {
    /// Sender, `addr` or `Name <addr>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon copies.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Blind carbon copies.
    #[serde(default)]
    pub bcc: Vec<String>,
    /// Reply-to addresses.
    #[serde(default)]
    pub reply_to: Vec<String>,
    /// Subject.
    pub subject: String,
    /// HTML body.
    pub html: Option<String>,
    /// Text body.
    pub text: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Tags with values.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Attachments.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

/// The content of a message: structured (Sending API) or raw MIME (SMTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageContent {
    /// From the Sending API.
    Structured(Box<StructuredEmail>),
    /// From the SMTP relay: the message as received, minus the headers that only instruct us.
    Mime(Vec<u8>),
}

/// A message, complete: everything needed to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Id, returned to the caller as `message_id`.
    pub id: MessageId,
    /// Project it was sent for.
    pub project_id: ProjectId,
    /// Route it goes through.
    pub route_id: RouteId,
    /// Token that sent it.
    pub token_id: TokenId,
    /// Front door.
    pub via: Channel,
    /// Status.
    pub status: MessageStatus,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients (to, cc and bcc, or SMTP `RCPT TO`).
    pub envelope_to: Vec<String>,
    /// Subject, if any.
    pub subject: Option<String>,
    /// Tag.
    pub tag: Option<String>,
    /// Metadata (never added as headers).
    pub metadata: BTreeMap<String, String>,
    /// The `Idempotency-Key` it was sent with.
    pub idempotency_key: Option<String>,
    /// When to send it, for scheduled messages.
    pub scheduled_at: Option<OffsetDateTime>,
    /// When it was accepted.
    pub created_at: OffsetDateTime,
    /// Content.
    pub content: MessageContent,
    /// How delivery went so far.
    pub delivery: DeliveryState,
}

impl Message {
    /// When the message is due for its first delivery attempt: its scheduled time, or its
    /// acceptance.
    #[must_use]
    pub fn first_due(&self) -> OffsetDateTime {
        self.scheduled_at.unwrap_or(self.created_at)
    }
}

/// How delivery of a message went so far: what the delivery worker records on each attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryState {
    /// Attempts started (a claim counts as an attempt, even if the worker crashed during it).
    pub attempts: u32,
    /// The last reply of the smarthost (or why it could not be reached).
    pub last_reply: Option<String>,
    /// When the status last changed after acceptance.
    pub status_changed_at: Option<OffsetDateTime>,
    /// When a deferred message is due again (`None` in every other status).
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Attempts in a row, before the current one, whose worker stopped before recording how
    /// they ended (the process died or lost the store). Counted by the claim that takes the
    /// message over; 0 again once an outcome is recorded.
    pub interrupted: u32,
    /// Of [`DeliveryState::interrupted`], the attempts made alone: with nothing else in flight
    /// in their worker, so that the message itself is the likely cause (see
    /// [`crate::repo::DeliveryRepository::begin_alone`]).
    pub interrupted_alone: u32,
    /// Recipients the smarthost already took the message for, in attempts that did not reach
    /// every recipient (some were refused for now): later attempts go to the others only.
    /// Empty until such an attempt.
    pub delivered_to: Vec<String>,
}

/// Proof that a caller authenticated with a token: the token and the digest it presented.
/// Stores accept messages only while that digest is still the token's current digest (or its
/// previous one, during a rotation's overlap) and the token is active, in the same transaction as
/// the insert, so acceptance and revocation are ordered by the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCredential {
    /// The token.
    pub token_id: TokenId,
    /// The digest of the value presented.
    pub digest: TokenDigest,
}

/// How long an `Idempotency-Key` is remembered.
pub const IDEMPOTENCY_TTL: time::Duration = time::Duration::hours(24);

/// Longest `Idempotency-Key`, in characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// Longest tag, in characters (tags are ASCII, so also in bytes).
pub const MAX_TAG_CHARS: usize = 255;

/// Whether `tag` is a valid tag (`^[a-zA-Z0-9_-]+( [a-zA-Z0-9_-]+)*$`, at most
/// [`MAX_TAG_CHARS`]): words of ASCII letters, digits, `_` and `-` separated by single spaces.
/// The same rule for the Sending API's `tag` and the relay's `X-LM-Tag`.
#[must_use]
pub fn valid_tag(tag: &str) -> bool {
    tag.len() <= MAX_TAG_CHARS
        && tag.split(' ').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// Whether `key` is a valid `Idempotency-Key`: 1 to [`MAX_IDEMPOTENCY_KEY_CHARS`] characters,
/// none of them a control character (so none can break a header line).
#[must_use]
pub fn valid_idempotency_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS
        && !key.chars().any(char::is_control)
}

/// The response a request with an `Idempotency-Key` got, stored in the same transaction as its
/// messages so that a retry is answered with it and sends nothing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Project the key is scoped to.
    pub project_id: ProjectId,
    /// The key.
    pub key: String,
    /// Fingerprint of the request body (see [`IdempotencyRecord::fingerprint`]).
    pub request_hash: [u8; 32],
    /// HTTP status of the response.
    pub status: u16,
    /// Body of the response.
    pub response: String,
    /// When the first request was accepted.
    pub created_at: OffsetDateTime,
}

impl IdempotencyRecord {
    /// The SHA-256 of a request's identifying parts (route, body), to tell a retry from a
    /// different request reusing a key.
    #[must_use]
    pub fn fingerprint(parts: &[&[u8]]) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.finalize().into()
    }
}

/// Messages to accept together (one request: one send or one batch): all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Who is sending.
    pub credential: TokenCredential,
    /// The messages (all of the credential's project).
    pub messages: Vec<Message>,
    /// The key and response to remember, for requests with an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyRecord>,
    /// The client's address, checked against the token's allowlist in the same commit.
    pub client_ip: Option<std::net::IpAddr>,
}

/// What became of one [`Submission`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionOutcome {
    /// Every message is committed, under the token value in this slot (current, or previous
    /// during a rotation's overlap).
    Accepted(crate::rotation::CredentialSlot),
    /// Nothing was stored: the token was revoked, regenerated or expired before the commit, the
    /// value's overlap had ended, or the client's address is not in the token's allowlist.
    TokenInactive,
    /// Nothing was stored: the project already has a live record for this idempotency key.
    DuplicateIdempotencyKey,
}
