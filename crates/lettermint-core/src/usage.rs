//! Token usage: the per-token log and the "last used" columns, both written behind requests.

use std::net::IpAddr;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::id::{LogEntryId, MessageId, TokenId};
use crate::model::{Channel, UnknownVariant};
use crate::rotation::CredentialSlot;

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored and wire name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
        }

        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownVariant(other.to_owned())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What the token was used for.
    Action {
        /// `POST /v1/send`.
        Send => "send",
        /// `POST /v1/send/batch`.
        SendBatch => "send_batch",
        /// `GET /v1/ping`.
        Ping => "ping",
        /// SMTP `AUTH`.
        SmtpAuth => "smtp_auth",
        /// A message submitted over SMTP.
        SmtpMessage => "smtp_message",
        /// A Team API request (team tokens).
        TeamApi => "team_api",
        /// The delivery of a message the token sent (logged when it is delivered or failed).
        Delivery => "delivery",
        /// `GET /v1/messages` or `GET /v1/messages/{id}`.
        Messages => "messages",
        /// A verified report that the token's value was found in public (secret scanning).
        LeakReport => "leak_report",
        /// A member created the token (dashboard).
        Create => "create",
        /// A member regenerated the token's value (dashboard).
        Regenerate => "regenerate",
        /// A member revoked the token (dashboard).
        Revoke => "revoke",
    }
);

string_enum!(
    /// How a use of the token ended.
    Outcome {
        /// The request was served.
        Accepted => "accepted",
        /// The token was revoked.
        RejectedRevoked => "rejected_revoked",
        /// The token had expired.
        RejectedExpired => "rejected_expired",
        /// The project does not allow SMTP.
        RejectedSmtpDisabled => "rejected_smtp_disabled",
        /// The client address is not in the token's allowlist.
        RejectedIp => "rejected_ip",
        /// A token of the other kind was used (a team token to send mail).
        RejectedWrongKind => "rejected_wrong_kind",
        /// The token lacked an ability.
        Forbidden => "forbidden",
        /// The request was authenticated but invalid.
        InvalidRequest => "invalid_request",
        /// The request was over a rate limit.
        RateLimited => "rate_limited",
        /// A message the token sent was delivered to the smarthost.
        Delivered => "delivered",
        /// A message the token sent could not be delivered.
        Failed => "failed",
        /// The token was revoked because a verified report found its value in public.
        RevokedLeaked => "revoked_leaked",
    }
);

/// One use of a token, as queued by a front door and flushed in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The token.
    pub token_id: TokenId,
    /// When.
    pub at: OffsetDateTime,
    /// Client address, if known.
    pub ip: Option<IpAddr>,
    /// Front door.
    pub via: Channel,
    /// What for.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status or SMTP reply code.
    pub status: u16,
    /// Messages accepted by the request.
    pub message_ids: Vec<MessageId>,
    /// HTTP `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// Which of the token's values was presented, when known.
    pub credential: Option<CredentialSlot>,
}

/// An entry of a token's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenLogEntry {
    /// Id (time-ordered).
    pub id: LogEntryId,
    /// The token.
    pub token_id: TokenId,
    /// When.
    pub at: OffsetDateTime,
    /// Client address, if known.
    pub ip: Option<IpAddr>,
    /// Front door.
    pub via: Channel,
    /// What for.
    pub action: Action,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status or SMTP reply code.
    pub status: u16,
    /// Messages accepted by the request.
    pub message_ids: Vec<MessageId>,
    /// HTTP `User-Agent`.
    pub user_agent: Option<String>,
    /// Which of the token's values was presented (`None`: not a use of a value, such as a
    /// delivery, or a refusal before the value was matched).
    pub credential: Option<CredentialSlot>,
    /// Where the token's value was found, for a leak report (the reporter's URL, as sent).
    pub leak_url: Option<String>,
    /// Who did it, for a change made by a dashboard member (their email).
    pub actor: Option<String>,
}

/// The latest use of one token within a flushed batch: what its "last used" columns become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUseUpdate {
    /// The token.
    pub token_id: TokenId,
    /// When.
    pub at: OffsetDateTime,
    /// From where.
    pub ip: Option<IpAddr>,
    /// Through which front door.
    pub via: Channel,
}

/// A batch of usage, ready for one store transaction: the log entries to append and, per token,
/// its latest use. Stores apply `last_use` only where it is newer than what they hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageBatch {
    /// Log entries to append.
    pub entries: Vec<TokenLogEntry>,
    /// The latest use of each token in the batch.
    pub last_use: Vec<LastUseUpdate>,
}

/// Longest `User-Agent` kept, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 255;

impl UsageBatch {
    /// Builds a batch from records: one log entry each, one last-use update per token.
    #[must_use]
    pub fn from_records(records: Vec<UsageRecord>) -> Self {
        let mut last_use: Vec<LastUseUpdate> = Vec::new();
        let mut entries = Vec::with_capacity(records.len());
        for record in records {
            match last_use.iter_mut().find(|u| u.token_id == record.token_id) {
                Some(update) if update.at <= record.at => {
                    update.at = record.at;
                    update.ip = record.ip;
                    update.via = record.via;
                }
                Some(_) => {}
                None => last_use.push(LastUseUpdate {
                    token_id: record.token_id,
                    at: record.at,
                    ip: record.ip,
                    via: record.via,
                }),
            }
            entries.push(TokenLogEntry {
                id: LogEntryId::new(),
                token_id: record.token_id,
                at: record.at,
                ip: record.ip,
                via: record.via,
                action: record.action,
                outcome: record.outcome,
                status: record.status,
                message_ids: record.message_ids,
                user_agent: record.user_agent.map(|ua| {
                    ua.chars()
                        .filter(|c| !c.is_control())
                        .take(MAX_USER_AGENT_CHARS)
                        .collect()
                }),
                credential: record.credential,
                leak_url: None,
                actor: None,
            });
        }
        Self { entries, last_use }
    }
}

/// Filters of a token's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFilter {
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only this action (the kind of event).
    pub action: Option<Action>,
    /// Only entries at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Only entries at or before this instant.
    pub to: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn record(token: TokenId, at: OffsetDateTime, ip: &str) -> UsageRecord {
        UsageRecord {
            token_id: token,
            at,
            ip: Some(ip.parse().unwrap()),
            via: Channel::Api,
            action: Action::Send,
            outcome: Outcome::Accepted,
            status: 202,
            message_ids: vec![],
            user_agent: Some(format!("agent\n{}", "x".repeat(400))),
            credential: Some(CredentialSlot::Current),
        }
    }

    #[test]
    fn a_batch_keeps_every_entry_and_the_latest_use_per_token() {
        let (a, b) = (TokenId::new(), TokenId::new());
        let batch = UsageBatch::from_records(vec![
            record(a, datetime!(2026-01-01 10:00:02 UTC), "10.0.0.2"),
            record(b, datetime!(2026-01-01 10:00:00 UTC), "10.0.0.9"),
            record(a, datetime!(2026-01-01 10:00:01 UTC), "10.0.0.1"),
        ]);
        assert_eq!(batch.entries.len(), 3);
        assert_eq!(batch.last_use.len(), 2);
        let a_use = batch.last_use.iter().find(|u| u.token_id == a).unwrap();
        assert_eq!(a_use.at, datetime!(2026-01-01 10:00:02 UTC));
        assert_eq!(a_use.ip, Some("10.0.0.2".parse().unwrap()));
        let ua = batch.entries[0].user_agent.as_deref().unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
        assert!(!ua.contains('\n'));
    }

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), *a);
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), *o);
        }
    }
}
