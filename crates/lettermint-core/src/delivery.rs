//! Delivery: how an accepted message moves on, and the rules for retrying it.
//!
//! A message is accepted as `pending` (or `scheduled`) with a due instant. A delivery worker
//! *claims* due messages ([`crate::repo::DeliveryRepository::claim_due`]): the store marks each
//! `processed`, counts the attempt, and pushes its due instant to the end of a lease. The worker
//! then relays the message and *settles* the claim with a [`Settlement`]: `delivered`,
//! `deferred` (due again at a later instant) or `failed`. A worker that dies mid-attempt leaves
//! the message `processed` with a lease that runs out; the next claim after that takes it over.
//! Delivery is therefore at least once: a message whose relay had answered but whose settlement
//! was not committed is sent again once its lease has expired.

use time::{Duration, OffsetDateTime};

use crate::id::{LeaseId, MessageId};
use crate::message::{Message, MessageStatus};

/// A message claimed for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The message; its `delivery.attempts` already counts this attempt.
    pub message: Message,
    /// The lease: the key to settle this attempt.
    pub lease: LeaseId,
}

/// How one claimed attempt ended, to be recorded under its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    /// The message.
    pub message: MessageId,
    /// The lease it was claimed under.
    pub lease: LeaseId,
    /// How the attempt ended.
    pub settlement: Settlement,
    /// Every recipient that has the message so far, when this attempt reached some of them
    /// without reaching all (`None`: what the store holds stays).
    pub delivered_to: Option<Vec<String>>,
}

/// What an upstream server answered, or why none could be reached: kept on the message as its
/// last reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// SMTP reply code; `None` when no server answered (connection or TLS failure, timeout).
    pub code: Option<u16>,
    /// The reply text (or the error), one line.
    pub text: String,
}

impl Reply {
    /// The reply as stored: `"250 2.0.0 Ok: queued"`, or the error text alone.
    #[must_use]
    pub fn to_line(&self) -> String {
        let text = one_line(&self.text, MAX_REPLY_CHARS);
        match self.code {
            Some(code) => format!("{code} {text}"),
            None => text,
        }
    }
}

/// Longest reply kept on a message, in characters.
pub const MAX_REPLY_CHARS: usize = 500;

fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out.trim().to_owned()
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The upstream server took responsibility for the message.
    Delivered(Reply),
    /// Try again at the given instant.
    Deferred {
        /// The reply that deferred it.
        reply: Reply,
        /// When it is due again.
        retry_at: OffsetDateTime,
    },
    /// Given up: permanently refused, or transient failures for longer than allowed.
    Failed(Reply),
}

impl Settlement {
    /// The status the message gets.
    #[must_use]
    pub const fn status(&self) -> MessageStatus {
        match self {
            Settlement::Delivered(_) => MessageStatus::Delivered,
            Settlement::Deferred { .. } => MessageStatus::Deferred,
            Settlement::Failed(_) => MessageStatus::Failed,
        }
    }

    /// The reply it records.
    #[must_use]
    pub const fn reply(&self) -> &Reply {
        match self {
            Settlement::Delivered(reply)
            | Settlement::Deferred { reply, .. }
            | Settlement::Failed(reply) => reply,
        }
    }

    /// When the message is due again (only when deferred).
    #[must_use]
    pub const fn retry_at(&self) -> Option<OffsetDateTime> {
        match self {
            Settlement::Deferred { retry_at, .. } => Some(*retry_at),
            _ => None,
        }
    }
}

/// Whether an attempt's failure may pass with time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 4xx replies, connection and TLS errors, timeouts: retried.
    Transient,
    /// 5xx replies, and messages that cannot be built: failed at once.
    Permanent,
}

/// When to retry a transiently failed message, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt; it doubles with each attempt after that.
    pub first_delay: Duration,
    /// The delay never grows beyond this.
    pub max_delay: Duration,
    /// A message still undelivered this long after it was due for the first time fails.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::seconds(30),
            max_delay: Duration::hours(1),
            give_up_after: Duration::days(3),
        }
    }
}

impl RetryPolicy {
    /// The settlement of a failed attempt: `Failed` when the failure is permanent or the message
    /// was first due [`RetryPolicy::give_up_after`] ago or longer, else `Deferred` after an
    /// exponential delay (`first_delay * 2^(attempts-1)`, capped at `max_delay`) scaled by
    /// `jitter` (a factor in `0.5..=1.0` drawn by the caller, so the rule stays deterministic),
    /// but never later than that age: the last attempt is made when it is reached.
    #[must_use]
    pub fn settle_failure(
        &self,
        message: &Message,
        kind: FailureKind,
        reply: Reply,
        now: OffsetDateTime,
        jitter: f64,
    ) -> Settlement {
        if kind == FailureKind::Permanent {
            return Settlement::Failed(reply);
        }
        let first_due = message.first_due();
        let exponent = message.delivery.attempts.saturating_sub(1).min(30);
        let delay = self
            .first_delay
            .checked_mul(1_i32 << exponent.min(30))
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        // Checked throughout: a retry instant past what a date can hold is past any give-up
        // age, so it fails rather than overflow.
        let retry_at =
            time::Duration::checked_seconds_f64(delay.as_seconds_f64() * jitter.clamp(0.5, 1.0))
                .and_then(|delay| now.checked_add(delay));
        let deadline = first_due.checked_add(self.give_up_after);
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Settlement::Failed(reply);
        }
        match (retry_at, deadline) {
            (Some(retry_at), Some(deadline)) => Settlement::Deferred {
                reply,
                retry_at: retry_at.min(deadline),
            },
            (None, Some(retry_at)) | (Some(retry_at), None) => {
                Settlement::Deferred { reply, retry_at }
            }
            (None, None) => Settlement::Failed(reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ProjectId, RouteId, TokenId};
    use crate::message::{DeliveryState, MessageContent};
    use crate::model::Channel;
    use time::macros::datetime;

    fn message(attempts: u32) -> Message {
        Message {
            id: MessageId::new(),
            project_id: ProjectId::new(),
            route_id: RouteId::new(),
            token_id: TokenId::new(),
            via: Channel::Api,
            status: MessageStatus::Processed,
            envelope_from: "a@example.com".into(),
            envelope_to: vec!["b@example.com".into()],
            subject: None,
            tag: None,
            metadata: Default::default(),
            idempotency_key: None,
            scheduled_at: None,
            created_at: datetime!(2026-01-01 00:00 UTC),
            content: MessageContent::Mime(b"Subject: x\r\n\r\nx\r\n".to_vec()),
            delivery: DeliveryState {
                attempts,
                ..DeliveryState::default()
            },
        }
    }

    fn reply(code: u16) -> Reply {
        Reply {
            code: Some(code),
            text: "4.4.1 try later".into(),
        }
    }

    #[test]
    fn permanent_failures_fail_at_once() {
        let policy = RetryPolicy::default();
        let now = datetime!(2026-01-01 00:01 UTC);
        let settled =
            policy.settle_failure(&message(1), FailureKind::Permanent, reply(550), now, 1.0);
        assert_eq!(settled, Settlement::Failed(reply(550)));
    }

    #[test]
    fn delays_double_up_to_the_cap_and_jitter_shortens_them() {
        let policy = RetryPolicy::default();
        let now = datetime!(2026-01-01 00:01 UTC);
        let delay = |attempts, jitter| {
            policy
                .settle_failure(
                    &message(attempts),
                    FailureKind::Transient,
                    reply(451),
                    now,
                    jitter,
                )
                .retry_at()
                .map(|at| at - now)
        };
        assert_eq!(delay(1, 1.0), Some(Duration::seconds(30)));
        assert_eq!(delay(2, 1.0), Some(Duration::seconds(60)));
        assert_eq!(delay(3, 1.0), Some(Duration::seconds(120)));
        assert_eq!(delay(20, 1.0), Some(Duration::hours(1)));
        assert_eq!(delay(u32::MAX, 1.0), Some(Duration::hours(1)));
        assert_eq!(delay(2, 0.5), Some(Duration::seconds(30)));
        // Jitter outside its range is clamped, never a negative or longer delay.
        assert_eq!(delay(2, -3.0), Some(Duration::seconds(30)));
        assert_eq!(delay(2, 7.0), Some(Duration::seconds(60)));
    }

    #[test]
    fn transient_failures_give_up_after_the_configured_age() {
        let policy = RetryPolicy {
            give_up_after: Duration::hours(2),
            ..RetryPolicy::default()
        };
        let early = datetime!(2026-01-01 01:00 UTC);
        let late = datetime!(2026-01-01 02:00 UTC);
        assert!(matches!(
            policy.settle_failure(&message(5), FailureKind::Transient, reply(451), early, 1.0),
            Settlement::Deferred { .. }
        ));
        // A retry that would come after the age is made when the age is reached, not skipped.
        let just_before = datetime!(2026-01-01 01:59:50 UTC);
        assert_eq!(
            policy
                .settle_failure(
                    &message(5),
                    FailureKind::Transient,
                    reply(451),
                    just_before,
                    1.0
                )
                .retry_at(),
            Some(late)
        );
        assert_eq!(
            policy.settle_failure(&message(6), FailureKind::Transient, reply(451), late, 1.0),
            Settlement::Failed(reply(451))
        );
    }

    #[test]
    fn delays_beyond_the_calendar_fail_instead_of_overflowing() {
        let policy = RetryPolicy {
            first_delay: Duration::MAX,
            max_delay: Duration::MAX,
            give_up_after: Duration::MAX,
        };
        let now = datetime!(2026-01-01 00:01 UTC);
        for attempts in [1, 2, 40] {
            assert_eq!(
                policy.settle_failure(
                    &message(attempts),
                    FailureKind::Transient,
                    reply(451),
                    now,
                    1.0
                ),
                Settlement::Failed(reply(451))
            );
        }
    }

    #[test]
    fn replies_are_stored_on_one_bounded_line() {
        let reply = Reply {
            code: Some(451),
            text: "4.3.0 temporary\r\nBcc: x@example.com".into(),
        };
        assert_eq!(reply.to_line(), "451 4.3.0 temporary  Bcc: x@example.com");
        let long = Reply {
            code: None,
            text: "x".repeat(2 * MAX_REPLY_CHARS),
        };
        assert_eq!(long.to_line().chars().count(), MAX_REPLY_CHARS);
    }
}
