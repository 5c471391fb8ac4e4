//! [`PgStore`]: every repository trait on one connection pool.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use lettermint_core::{
    Error, Message, MessageContent, Result, Submission, SubmissionOutcome, UsageBatch,
};
use lettermint_store_sql::backend::Backend;
use lettermint_store_sql::decode::to_json;
use lettermint_store_sql::error::{ResultExt, fix_error};
use lettermint_store_sql::repos::Sql;
use lettermint_store_sql::rows::LockedToken;
use sqlx::AssertSqlSafe;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::PgDialect;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl PgConfig {
    /// A configuration with defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        let store = Self::connect_without_migrating(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without touching the schema.
    pub async fn connect_without_migrating(config: &PgConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(&config.url).fix()?;
        // A pool pings each connection before handing it out by default: a second round trip
        // on every query. Broken connections surface as errors on use instead.
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .fix()?;
        Ok(Self { pool })
    }

    /// Applies pending migrations (idempotent; safe with concurrent processes).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::Storage(Box::new(e)))
    }

    /// The connection pool, for benchmarks and operational tools that measure the store itself.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn ids<T: Into<Uuid> + Copy>(items: &[T]) -> Vec<Uuid> {
    items.iter().map(|i| (*i).into()).collect()
}

lettermint_store_sql::repositories!(PgStore);

impl Backend for PgStore {
    type Dialect = PgDialect;

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn record_usage(&self, batch: &UsageBatch) -> Result<()> {
        let mut tx = self.pool.begin().await.fix()?;
        if !batch.entries.is_empty() {
            let e = &batch.entries;
            let message_ids = e
                .iter()
                .map(|x| to_json(&x.message_ids))
                .collect::<Result<Vec<_>>>()?;
            sqlx::query(
                "INSERT INTO token_logs (id, token_id, at, ip, via, action, outcome, status, \
                 message_ids, user_agent) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::text[])",
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
            .execute(&mut *tx)
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
                    .execute(&mut *tx)
                    .await
                    .fix()?;
            }
        }
        tx.commit().await.fix()
    }

    async fn enqueue(
        &self,
        submissions: &[Submission],
        now: OffsetDateTime,
    ) -> Result<Vec<SubmissionOutcome>> {
        if submissions.is_empty() {
            return Ok(Vec::new());
        }
        let mut token_ids: Vec<Uuid> = submissions
            .iter()
            .map(|s| s.credential.token_id.as_uuid())
            .collect();
        token_ids.sort_unstable();
        token_ids.dedup();

        let mut tx = self.pool.begin().await.fix()?;
        // FOR KEY SHARE conflicts with the FOR UPDATE lock that revoke and regenerate take:
        // either that commits first and we read its result, or it waits for this transaction to
        // commit. Acceptance and revocation are thus ordered by the database, across every
        // process. (It does not conflict with the plain UPDATEs of "last used", so usage
        // bookkeeping never stalls sends.)
        let locked: HashMap<Uuid, _> = sqlx::query_as(
            "SELECT id, project_id, digest, revoked_at, expires_at FROM project_tokens \
             WHERE id = ANY($1) ORDER BY id FOR KEY SHARE",
        )
        .bind(&token_ids)
        .fetch_all(&mut *tx)
        .await
        .fix()?
        .into_iter()
        .map(|token: LockedToken<OffsetDateTime>| (token.id, token))
        .collect();

        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut accepted: Vec<&Message> = Vec::new();
        for submission in submissions {
            let token = locked.get(&submission.credential.token_id.as_uuid());
            let outcome = Sql(self).admit(&mut tx, submission, token, now).await?;
            if matches!(outcome, SubmissionOutcome::Accepted) {
                accepted.extend(submission.messages.iter());
            }
            outcomes.push(outcome);
        }
        if !accepted.is_empty() {
            insert_messages(&mut tx, &accepted).await?;
        }
        tx.commit().await.fix()?;
        Ok(outcomes)
    }
}

/// Inserts many messages with one statement (one round trip per batch).
async fn insert_messages(tx: &mut sqlx::PgConnection, messages: &[&Message]) -> Result<()> {
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
        "INSERT INTO messages (id, project_id, route_id, token_id, via, status, envelope_from, \
         envelope_to, subject, tag, metadata, idempotency_key, scheduled_at, created_at, \
         content_json, raw_mime) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
         $13::timestamptz[], $14::timestamptz[], $15::text[], $16::bytea[])",
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
    .execute(tx)
    .await
    .map_err(fix_error)?;
    Ok(())
}
