//! How PostgreSQL does what the dialects do differently.

use std::collections::HashMap;

use lettermint_core::{Message, MessageContent, Result, Settle, UsageBatch};
use lettermint_store_sql::decode::to_json;
use lettermint_store_sql::dialect::Dialect;
use lettermint_store_sql::error::{ResultExt, fix_error};
use lettermint_store_sql::rows::LockedToken;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnection, PgQueryResult, PgRow};
use sqlx::{AssertSqlSafe, Postgres};
use time::OffsetDateTime;
use uuid::Uuid;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// The send path's read of its tokens (`$1`: their ids), under a lock that conflicts with
/// [`PgDialect::update_unrevoked`].
const LOCK_TOKENS: &str = concat!(
    "SELECT ",
    lettermint_store_sql::locked_token_columns!(),
    " FROM project_tokens WHERE id = ANY($1) ORDER BY id FOR KEY SHARE"
);

/// A claim (see [`Dialect::claim_rows`]): the update returns the new delivery state, joined
/// with the messages it names.
const CLAIM: &str = concat!(
    "WITH d AS (",
    lettermint_store_sql::claim_update!(" FOR UPDATE SKIP LOCKED", "*"),
    ") SELECT ",
    lettermint_store_sql::message_columns!(),
    " FROM d JOIN messages ON messages.id = d.message_id"
);

/// PostgreSQL's dialect: instants are `timestamptz`, bound and read as they are.
#[derive(Debug)]
pub struct PgDialect;

impl Dialect for PgDialect {
    type Db = Postgres;
    type Instant = OffsetDateTime;

    const LOWEST_INSTANT: &'static str = "'-infinity'::timestamptz";
    const NAME_CONTAINS_2: &'static str =
        "($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)";
    const TEXT_CAST: &'static str = "::text";
    const INSTANT_CAST: &'static str = "::timestamptz";
    const BEGIN_WRITE: Option<&'static str> = None;
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    fn migrator() -> &'static Migrator {
        &MIGRATOR
    }

    fn instant(at: OffsetDateTime) -> OffsetDateTime {
        at
    }

    fn read_instant(stored: OffsetDateTime) -> Result<OffsetDateTime> {
        Ok(stored)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    // FOR KEY SHARE conflicts with the FOR UPDATE lock that revoke and regenerate take: either
    // that commits first and we read its result, or it waits for this transaction to commit.
    // Acceptance and revocation are thus ordered by the database, across every process. (It
    // does not conflict with the plain UPDATEs of "last used", so usage bookkeeping never
    // stalls sends.)
    async fn lock_tokens(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, LockedToken<OffsetDateTime>>> {
        let tokens: Vec<LockedToken<OffsetDateTime>> = sqlx::query_as(LOCK_TOKENS)
            .bind(ids)
            .fetch_all(conn)
            .await
            .fix()?;
        Ok(tokens.into_iter().map(|t| (t.id, t)).collect())
    }

    // One statement for the whole batch: one round trip.
    async fn insert_messages(conn: &mut PgConnection, messages: &[&Message]) -> Result<()> {
        let n = messages.len();
        let mut content_json: Vec<Option<String>> = Vec::with_capacity(n);
        let mut raw_mime: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
        let mut envelope_to = Vec::with_capacity(n);
        let mut metadata = Vec::with_capacity(n);
        for m in messages {
            match &m.content {
                MessageContent::Structured(email) => {
                    content_json.push(Some(to_json(email)?));
                    raw_mime.push(None);
                }
                MessageContent::Mime(bytes) => {
                    content_json.push(None);
                    raw_mime.push(Some(bytes.clone()));
                }
            }
            envelope_to.push(to_json(&m.envelope_to)?);
            metadata.push(to_json(&m.metadata)?);
        }
        sqlx::query(
            "WITH m AS (INSERT INTO messages (id, project_id, route_id, token_id, via, envelope_from, \
             envelope_to, subject, tag, metadata, idempotency_key, scheduled_at, created_at, \
             content_json, raw_mime) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
             $13::timestamptz[], $14::timestamptz[], $15::text[], $16::bytea[]) \
             RETURNING id, token_id, via) \
             INSERT INTO deliveries (message_id, token_id, via, status, due_at) \
             SELECT m.id, m.token_id, m.via, s.status, s.due_at FROM m \
             JOIN UNNEST($1::uuid[], $6::text[], $17::timestamptz[]) AS s(id, status, due_at) \
             ON s.id = m.id",
        )
        .bind(ids(&messages.iter().map(|m| m.id).collect::<Vec<_>>()))
        .bind(ids(&messages
            .iter()
            .map(|m| m.project_id)
            .collect::<Vec<_>>()))
        .bind(ids(&messages
            .iter()
            .map(|m| m.route_id)
            .collect::<Vec<_>>()))
        .bind(ids(&messages
            .iter()
            .map(|m| m.token_id)
            .collect::<Vec<_>>()))
        .bind(messages.iter().map(|m| m.via.as_str()).collect::<Vec<_>>())
        .bind(
            messages
                .iter()
                .map(|m| m.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            messages
                .iter()
                .map(|m| m.envelope_from.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(envelope_to)
        .bind(
            messages
                .iter()
                .map(|m| m.subject.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            messages
                .iter()
                .map(|m| m.tag.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(metadata)
        .bind(
            messages
                .iter()
                .map(|m| m.idempotency_key.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(messages.iter().map(|m| m.scheduled_at).collect::<Vec<_>>())
        .bind(messages.iter().map(|m| m.created_at).collect::<Vec<_>>())
        .bind(content_json)
        .bind(raw_mime)
        .bind(messages.iter().map(|m| m.first_due()).collect::<Vec<_>>())
        .execute(conn)
        .await
        .map_err(fix_error)?;
        Ok(())
    }

    // One statement. SKIP LOCKED: concurrent claims pass over each other's rows.
    async fn claim_rows(
        conn: &mut PgConnection,
        lease: Uuid,
        lease_until: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<PgRow>> {
        sqlx::query(CLAIM)
            .bind(lease)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .fix()
    }

    async fn settle_messages(
        conn: &mut PgConnection,
        settles: &[Settle],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<(Uuid, String)>>> {
        // One statement for the whole batch: a round trip per attempt was most of what the
        // workers cost the database.
        let rows: Vec<(Uuid, Uuid, Uuid, String)> = sqlx::query_as(
            "UPDATE deliveries AS d SET status = v.status, last_reply = v.reply, \
             status_changed_at = $1, due_at = v.due_at, lease_id = NULL, \
             delivered_to = COALESCE(v.delivered_to, d.delivered_to) \
             FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::timestamptz[], \
             $7::text[]) AS v(id, lease, status, reply, due_at, delivered_to) \
             WHERE d.message_id = v.id AND d.lease_id = v.lease \
             RETURNING d.message_id, v.lease, d.token_id, d.via",
        )
        .bind(now)
        .bind(
            settles
                .iter()
                .map(|s| s.message.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            settles
                .iter()
                .map(|s| s.lease.as_uuid())
                .collect::<Vec<_>>(),
        )
        .bind(
            settles
                .iter()
                .map(|s| s.settlement.status().as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            settles
                .iter()
                .map(|s| s.settlement.reply().to_line())
                .collect::<Vec<_>>(),
        )
        .bind(
            settles
                .iter()
                .map(|s| s.settlement.retry_at())
                .collect::<Vec<_>>(),
        )
        .bind(
            settles
                .iter()
                .map(lettermint_store_sql::dialect::delivered_to)
                .collect::<Result<Vec<_>>>()?,
        )
        .fetch_all(&mut *conn)
        .await
        .fix()?;
        let mut by_claim: HashMap<(Uuid, Uuid), (Uuid, String)> = rows
            .into_iter()
            .map(|(id, lease, token, via)| ((id, lease), (token, via)))
            .collect();
        // Each settled row answers the first settle that names it, as statement by statement.
        Ok(settles
            .iter()
            .map(|s| by_claim.remove(&(s.message.as_uuid(), s.lease.as_uuid())))
            .collect())
    }

    async fn record_usage(conn: &mut PgConnection, batch: &UsageBatch) -> Result<()> {
        if !batch.entries.is_empty() {
            let e = &batch.entries;
            let message_ids = e
                .iter()
                .map(|x| to_json(&x.message_ids))
                .collect::<Result<Vec<_>>>()?;
            sqlx::query(
                "INSERT INTO token_logs (id, token_id, at, ip, via, action, outcome, status, \
                 message_ids, user_agent, credential, leak_url, actor) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::text[], \
                 $11::text[], $12::text[], $13::text[])",
            )
            .bind(e.iter().map(|x| x.id.as_uuid()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| x.token_id.as_uuid()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| x.at).collect::<Vec<_>>())
            .bind(
                e.iter()
                    .map(|x| x.ip.map(|ip| ip.to_string()))
                    .collect::<Vec<_>>(),
            )
            .bind(e.iter().map(|x| x.via.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| x.action.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| x.outcome.as_str()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| i32::from(x.status)).collect::<Vec<_>>())
            .bind(message_ids)
            .bind(e.iter().map(|x| x.user_agent.clone()).collect::<Vec<_>>())
            .bind(
                e.iter()
                    .map(|x| x.credential.map(|c| c.as_str()))
                    .collect::<Vec<_>>(),
            )
            .bind(e.iter().map(|x| x.leak_url.clone()).collect::<Vec<_>>())
            .bind(e.iter().map(|x| x.actor.clone()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await
            .fix()?;
        }
        // Last: these updates take row locks that sends also need, so hold them briefly.
        // Sorted by id so that concurrent flushes lock rows in the same order.
        let mut updates: Vec<_> = batch.last_use.iter().collect();
        updates.sort_by_key(|u| u.token_id);
        if !updates.is_empty() {
            let token_ids: Vec<Uuid> = updates.iter().map(|u| u.token_id.as_uuid()).collect();
            let ats: Vec<OffsetDateTime> = updates.iter().map(|u| u.at).collect();
            let ips: Vec<Option<String>> = updates
                .iter()
                .map(|u| u.ip.map(|ip| ip.to_string()))
                .collect();
            let vias: Vec<&str> = updates.iter().map(|u| u.via.as_str()).collect();
            for table in ["project_tokens", "team_tokens"] {
                let sql = format!(
                    "UPDATE {table} t SET last_used_at = u.at, last_used_ip = u.ip, \
                     last_used_via = u.via \
                     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[]) \
                     AS u(id, at, ip, via) \
                     WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at <= u.at)"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&token_ids)
                    .bind(&ats)
                    .bind(&ips)
                    .bind(&vias)
                    .execute(&mut *conn)
                    .await
                    .fix()?;
            }
        }
        Ok(())
    }

    // FOR UPDATE: waits for every enqueue holding the token (FOR KEY SHARE) to commit, so
    // revoke, regenerate, rotate and allowlist changes are ordered against acceptance.
    fn update_unrevoked(table: &str, set: &str) -> String {
        format!(
            "WITH locked AS (SELECT id FROM {table} WHERE id = $1 AND revoked_at IS NULL \
             FOR UPDATE) \
             UPDATE {table} t SET {set} FROM locked WHERE t.id = locked.id"
        )
    }
}

fn ids<T: Into<Uuid> + Copy>(items: &[T]) -> Vec<Uuid> {
    items.iter().map(|i| (*i).into()).collect()
}
