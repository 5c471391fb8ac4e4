//! What the two SQL dialects do differently, named once per store: how an instant is stored,
//! the few phrases the shared statements cannot write in common SQL, how a write transaction
//! begins, the row locks that order revocation against the send path and a team's last owner
//! against its demotion, and the bulk writes
//! (messages, usage) that each does fastest in its own way.

use std::collections::HashMap;
use std::future::Future;

use lettermint_core::{Error, Message, Settle, UsageBatch};
use sqlx::Database;
use sqlx::migrate::Migrator;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::LockedToken;

/// A dialect's connection.
pub type Connection<D> = <<D as Dialect>::Db as Database>::Connection;

/// One store's spelling of what the shared statements and queries leave open. Placeholders are
/// `$n` in both dialects (SQLite accepts them too).
pub trait Dialect: Send + Sync + 'static {
    /// The sqlx database.
    type Db: Database;
    /// An instant as the store binds and reads it.
    type Instant: PartialOrd + Send + Sync + Unpin + 'static;

    /// A literal instant before every other (what a NULL instant sorts as).
    const LOWEST_INSTANT: &'static str;
    /// The condition "`$2` is NULL, or `name` contains `$2` ignoring case", with `LIKE`
    /// wildcards taken literally.
    const NAME_CONTAINS_2: &'static str;
    /// What follows a text parameter that is only compared with NULL, so that its type is
    /// known (`::text`, or nothing).
    const TEXT_CAST: &'static str;
    /// The same for an instant parameter.
    const INSTANT_CAST: &'static str;
    /// The statement that begins a write transaction (`None`: the driver's `BEGIN`).
    const BEGIN_WRITE: Option<&'static str>;
    /// What ends a `SELECT` in a write transaction that reads a row to decide a change, so that
    /// every other transaction deciding the same waits until this one ends (` FOR UPDATE`;
    /// nothing where [`Dialect::BEGIN_WRITE`] already takes the one write lock).
    const FOR_UPDATE: &'static str;

    /// The migrations, written in this dialect.
    fn migrator() -> &'static Migrator;

    /// An instant as the store binds it.
    fn instant(at: OffsetDateTime) -> Self::Instant;

    /// An instant from its stored form.
    fn read_instant(stored: Self::Instant) -> Result<OffsetDateTime, Error>;

    /// An optional instant as the store binds it.
    fn opt_instant(at: Option<OffsetDateTime>) -> Option<Self::Instant> {
        at.map(Self::instant)
    }

    /// How many rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// Updates a non-revoked token in `table` (`$1` its id) with the assignments `set`. It
    /// must be ordered against every enqueue that holds the token: what revoke, regenerate,
    /// rotate and allowlist changes are written with.
    fn update_unrevoked(table: &str, set: &str) -> String;

    /// Reads the project tokens `ids` (sorted, distinct) in the send path's write transaction
    /// on `conn`, so that no revoke or regenerate of them can commit between this read and
    /// the transaction's commit, or else is ordered before the read.
    fn lock_tokens(
        conn: &mut Connection<Self>,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, LockedToken<Self::Instant>>, Error>> + Send;

    /// Inserts the accepted messages of a batch in the send path's transaction on `conn`.
    fn insert_messages(
        conn: &mut Connection<Self>,
        messages: &[&Message],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Writes a usage batch (log entries, then "last used") in a write transaction on `conn`.
    fn record_usage(
        conn: &mut Connection<Self>,
        batch: &UsageBatch,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Claims up to `limit` messages due at `now`, oldest due first, under `lease` until
    /// `lease_until` (the update [`claim_update!`](crate::claim_update) writes), so that
    /// concurrent claims take disjoint messages without waiting on each other. Answers the
    /// claimed messages' rows of [`message_columns!`](crate::message_columns).
    fn claim_rows(
        conn: &mut Connection<Self>,
        lease: Uuid,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<<Self::Db as Database>::Row>, Error>> + Send;

    /// Records how attempts ended, in a write transaction on `conn`: each message still under
    /// its settle's lease takes the settlement's status, reply and next due instant, and loses
    /// the lease. Answers, in the order of `settles`, the token and front door (`via`) of each
    /// message settled, `None` for one whose lease had moved on.
    fn settle_messages(
        conn: &mut Connection<Self>,
        settles: &[Settle],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Option<(Uuid, String)>>, Error>> + Send;
}

/// Messages with their delivery state (`d`), as a string literal (`concat!`): what message
/// rows are read from.
#[macro_export]
macro_rules! messages_with_delivery {
    () => {
        "messages JOIN deliveries AS d ON d.message_id = messages.id"
    };
}

/// The columns of a message row ([`crate::rows::MessageRow`]) as a string literal
/// (`concat!`): every column of `messages` and the delivery state of `d` (its `deliveries` row,
/// or what a claim's update returned).
#[macro_export]
macro_rules! message_columns {
    () => {
        "messages.*, d.status, d.attempts, d.last_reply, d.status_changed_at, d.due_at, \
         d.interrupted, d.interrupted_alone, d.delivered_to"
    };
}

/// A claim's update of the delivery state as a string literal (`$1` lease, `$2` lease end, `$3`
/// now, `$4` most messages): the due messages oldest due first, their sub-select ended by
/// `$lock`, go to `processed` under the lease; an attempt that was still `processed` (its
/// worker stopped before recording how it ended) counts as interrupted. Returns `$returning`.
#[macro_export]
macro_rules! claim_update {
    ($lock:literal, $returning:literal) => {
        concat!(
            "UPDATE deliveries SET status = 'processed', attempts = attempts + 1, lease_id = $1, \
             due_at = $2, status_changed_at = $3, \
             interrupted = CASE WHEN status = 'processed' THEN interrupted + 1 ELSE 0 END, \
             interrupted_alone = CASE WHEN status = 'processed' THEN interrupted_alone ELSE 0 END \
             WHERE message_id IN (SELECT message_id FROM deliveries WHERE due_at <= $3 \
             ORDER BY due_at, message_id LIMIT $4",
            $lock,
            ") RETURNING ",
            $returning
        )
    };
}

/// The statement that settles one attempt (`$1` status, `$2` reply, `$3` now, `$4` next due
/// instant, `$5` message, `$6` lease, `$7` [`delivered_to`] or NULL), for dialects that settle
/// row by row.
pub const SETTLE_ONE: &str = "UPDATE deliveries SET status = $1, last_reply = $2, \
     status_changed_at = $3, due_at = $4, lease_id = NULL, \
     delivered_to = COALESCE($7, delivered_to) WHERE message_id = $5 AND lease_id = $6 \
     RETURNING token_id, via";

/// A settle's [`Settle::delivered_to`] as stored (a JSON array), or `None` to keep the stored one.
pub fn delivered_to(settle: &Settle) -> Result<Option<String>, Error> {
    settle
        .delivered_to
        .as_ref()
        .map(crate::decode::to_json)
        .transpose()
}
