//! How SQLite does what the dialects do differently.

use std::collections::HashMap;

use lettermint_core::{Message, MessageContent, Result, Settle, UsageBatch};
use lettermint_store_sql::decode::{corrupt, to_json};
use lettermint_store_sql::dialect::Dialect;
use lettermint_store_sql::error::ResultExt;
use lettermint_store_sql::rows::LockedToken;
use sqlx::Sqlite;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnection, SqliteQueryResult, SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The send path's read of one token (`$1`: its id).
const LOCK_TOKEN: &str = concat!(
    "SELECT ",
    lettermint_store_sql::locked_token_columns!(),
    " FROM project_tokens WHERE id = $1"
);

/// The rows of the messages a claim took (`$1`: their ids, a JSON array of hex strings read
/// back into SQLite's 16-byte blobs).
const CLAIMED: &str = concat!(
    "SELECT ",
    lettermint_store_sql::message_columns!(),
    " FROM ",
    lettermint_store_sql::messages_with_delivery!(),
    " WHERE messages.id IN (SELECT unhex(value) FROM json_each($1))"
);

/// Stored form of an instant: microseconds since the Unix epoch.
fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// SQLite's dialect: instants are integer microseconds since the Unix epoch.
#[derive(Debug)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Instant = i64;

    const LOWEST_INSTANT: &'static str = "-9223372036854775808";
    const NAME_CONTAINS_2: &'static str = "($2 IS NULL OR instr(lower(name), lower($2)) > 0)";
    const TEXT_CAST: &'static str = "";
    const INSTANT_CAST: &'static str = "";
    // Takes the write lock at once: a transaction that reads and then writes never meets
    // another writer in between.
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");
    // BEGIN IMMEDIATE (above) holds the one write lock for the whole transaction.
    const FOR_UPDATE: &'static str = "";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn instant(at: OffsetDateTime) -> i64 {
        micros(at)
    }

    fn read_instant(micros: i64) -> Result<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map_err(|e| corrupt("timestamp", e))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    // One writer: this is ordered against every enqueue (`BEGIN IMMEDIATE`).
    fn update_unrevoked(table: &str, set: &str) -> String {
        format!("UPDATE {table} SET {set} WHERE id = $1 AND revoked_at IS NULL")
    }

    // Under BEGIN IMMEDIATE (see BEGIN_WRITE) the transaction holds SQLite's write lock
    // already: no revoke or regenerate, in this process or another, can commit until it does.
    async fn lock_tokens(
        conn: &mut SqliteConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, LockedToken<i64>>> {
        let mut tokens = HashMap::with_capacity(ids.len());
        for &id in ids {
            let token: Option<LockedToken<i64>> = sqlx::query_as(LOCK_TOKEN)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .fix()?;
            tokens.extend(token.map(|t| (id, t)));
        }
        Ok(tokens)
    }

    async fn insert_messages(conn: &mut SqliteConnection, messages: &[&Message]) -> Result<()> {
        for m in messages {
            let (content_json, raw_mime) = match &m.content {
                MessageContent::Structured(email) => (Some(to_json(email)?), None),
                MessageContent::Mime(bytes) => (None, Some(bytes.as_slice())),
            };
            // Both rows in one query: each statement is a hand-off to the connection's SQLite
            // thread and back, which bounds the send path on SQLite (a statement of its own
            // for the delivery state cost a fifth of `bench api`'s SQLite rate). sqlx binds
            // `$n` by number in each statement of the query.
            sqlx::query(
                "INSERT INTO messages (id, project_id, route_id, token_id, via, envelope_from, \
                 envelope_to, subject, tag, metadata, idempotency_key, scheduled_at, created_at, \
                 content_json, raw_mime) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15); \
                 INSERT INTO deliveries (message_id, token_id, via, status, due_at) \
                 VALUES ($1, $4, $5, $16, $17)",
            )
            .bind(m.id.as_uuid())
            .bind(m.project_id.as_uuid())
            .bind(m.route_id.as_uuid())
            .bind(m.token_id.as_uuid())
            .bind(m.via.as_str())
            .bind(m.envelope_from.as_str())
            .bind(to_json(&m.envelope_to)?)
            .bind(m.subject.as_deref())
            .bind(m.tag.as_deref())
            .bind(to_json(&m.metadata)?)
            .bind(m.idempotency_key.as_deref())
            .bind(Self::opt_instant(m.scheduled_at))
            .bind(micros(m.created_at))
            .bind(content_json)
            .bind(raw_mime)
            .bind(m.status.as_str())
            .bind(micros(m.first_due()))
            .execute(&mut *conn)
            .await
            .fix()?;
        }
        Ok(())
    }

    // SQLite's RETURNING sees only the updated table: the claim's update answers the ids, and
    // a read on the same connection joins them with their messages. Nothing else changes a
    // claimed message's row under its lease in between.
    async fn claim_rows(
        conn: &mut SqliteConnection,
        lease: Uuid,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<SqliteRow>> {
        let claimed: Vec<(Uuid,)> =
            sqlx::query_as(lettermint_store_sql::claim_update!("", "message_id"))
                .bind(lease)
                .bind(micros(lease_until))
                .bind(micros(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .fix()?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids = to_json(
            &claimed
                .iter()
                .map(|(id,)| id.simple().to_string())
                .collect::<Vec<_>>(),
        )?;
        sqlx::query(CLAIMED)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await
            .fix()
    }

    async fn settle_messages(
        conn: &mut SqliteConnection,
        settles: &[Settle],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<(Uuid, String)>>> {
        // A message named twice in one call (never by the worker) is settled statement by
        // statement, so that each settle gets its own answer.
        let mut seen = std::collections::HashSet::with_capacity(settles.len());
        if settles.iter().all(|s| seen.insert(s.message)) {
            let mut settled = Vec::with_capacity(settles.len());
            for chunk in settles.chunks(SETTLE_CHUNK) {
                settled.extend(settle_chunk(conn, chunk, now).await?);
            }
            return Ok(settled);
        }
        let mut settled = Vec::with_capacity(settles.len());
        for settle in settles {
            let row: Option<(Uuid, String)> =
                sqlx::query_as(lettermint_store_sql::dialect::SETTLE_ONE)
                    .bind(settle.settlement.status().as_str())
                    .bind(settle.settlement.reply().to_line())
                    .bind(Self::instant(now))
                    .bind(Self::opt_instant(settle.settlement.retry_at()))
                    .bind(settle.message.as_uuid())
                    .bind(settle.lease.as_uuid())
                    .bind(lettermint_store_sql::dialect::delivered_to(settle)?)
                    .fetch_optional(&mut *conn)
                    .await
                    .fix()?;
            settled.push(row);
        }
        Ok(settled)
    }

    async fn record_usage(conn: &mut SqliteConnection, batch: &UsageBatch) -> Result<()> {
        for e in &batch.entries {
            sqlx::query(
                "INSERT INTO token_logs (id, token_id, at, ip, via, action, outcome, status, \
                 message_ids, user_agent, credential, leak_url, actor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(e.id.as_uuid())
            .bind(e.token_id.as_uuid())
            .bind(micros(e.at))
            .bind(e.ip.map(|ip| ip.to_string()))
            .bind(e.via.as_str())
            .bind(e.action.as_str())
            .bind(e.outcome.as_str())
            .bind(i32::from(e.status))
            .bind(to_json(&e.message_ids)?)
            .bind(e.user_agent.as_deref())
            .bind(e.credential.map(|c| c.as_str()))
            .bind(e.leak_url.as_deref())
            .bind(e.actor.as_deref())
            .execute(&mut *conn)
            .await
            .fix()?;
        }
        for u in &batch.last_use {
            for sql in [
                "UPDATE project_tokens SET last_used_at = $2, last_used_ip = $3, last_used_via = $4 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2)",
                "UPDATE team_tokens SET last_used_at = $2, last_used_ip = $3, last_used_via = $4 \
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2)",
            ] {
                sqlx::query(sql)
                    .bind(u.token_id.as_uuid())
                    .bind(micros(u.at))
                    .bind(u.ip.map(|ip| ip.to_string()))
                    .bind(u.via.as_str())
                    .execute(&mut *conn)
                    .await
                    .fix()?;
            }
        }
        Ok(())
    }
}

/// Settles per statement, at most (6 parameters each, far below SQLite's 32,766).
const SETTLE_CHUNK: usize = 256;

/// Settles `settles` (each message named once) in one statement. Each statement is a hand-off
/// to the connection's SQLite thread and back; with one per attempt, a one-worker drain spent
/// more time switching threads than in SQLite (docs/performance.md).
async fn settle_chunk(
    conn: &mut SqliteConnection,
    settles: &[Settle],
    now: OffsetDateTime,
) -> Result<Vec<Option<(Uuid, String)>>> {
    use std::fmt::Write as _;
    // Rows of parameters for a power of two at least `settles.len()`, the rest bound to NULL
    // (matching no message): a few statement texts, each prepared once, instead of one per
    // size crowding the connection's statement cache.
    let rows = settles.len().next_power_of_two();
    let mut sql = String::with_capacity(256 + rows * 32);
    sql.push_str(
        "UPDATE deliveries AS d SET status = v.column3, last_reply = v.column4, \
         status_changed_at = $1, due_at = v.column5, lease_id = NULL, \
         delivered_to = COALESCE(v.column6, d.delivered_to) FROM (VALUES ",
    );
    for i in 0..rows {
        let first = 2 + i * 6;
        let _ = write!(
            sql,
            "{}(${first}, ${}, ${}, ${}, ${}, ${})",
            if i == 0 { "" } else { ", " },
            first + 1,
            first + 2,
            first + 3,
            first + 4,
            first + 5
        );
    }
    // SQLite's RETURNING sees only the updated table: the lease is matched by the WHERE.
    sql.push_str(
        ") AS v WHERE d.message_id = v.column1 AND d.lease_id = v.column2 \
         RETURNING message_id, token_id, via",
    );
    let mut query = sqlx::query_as::<_, (Uuid, Uuid, String)>(sqlx::AssertSqlSafe(sql))
        .bind(SqliteDialect::instant(now));
    for settle in settles {
        query = query
            .bind(settle.message.as_uuid())
            .bind(settle.lease.as_uuid())
            .bind(settle.settlement.status().as_str())
            .bind(settle.settlement.reply().to_line())
            .bind(SqliteDialect::opt_instant(settle.settlement.retry_at()))
            .bind(lettermint_store_sql::dialect::delivered_to(settle)?);
    }
    for _ in settles.len()..rows {
        query = query
            .bind(None::<Uuid>)
            .bind(None::<Uuid>)
            .bind(None::<&str>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<String>);
    }
    let rows = query.fetch_all(&mut *conn).await.fix()?;
    let mut by_message: HashMap<Uuid, (Uuid, String)> = rows
        .into_iter()
        .map(|(id, token, via)| (id, (token, via)))
        .collect();
    Ok(settles
        .iter()
        .map(|s| by_message.remove(&s.message.as_uuid()))
        .collect())
}
