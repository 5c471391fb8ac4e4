//! [`SqliteStore`]: every repository trait on one connection pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use lettermint_core::{
    Error, Message, MessageContent, Result, Submission, SubmissionOutcome, UsageBatch,
};
use lettermint_store_sql::backend::Backend;
use lettermint_store_sql::decode::to_json;
use lettermint_store_sql::dialect::Dialect;
use lettermint_store_sql::error::ResultExt;
use lettermint_store_sql::repos::Sql;
use lettermint_store_sql::rows::LockedToken;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::dialect::{SqliteDialect, micros};

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Where the SQLite database lives and how it is opened.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file, or `None` for a private in-memory database (tests, examples).
    pub path: Option<PathBuf>,
    /// Connections used for reads (writes always use one connection: SQLite has one writer).
    pub max_readers: u32,
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// A database file at `path`, created if missing.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            max_readers: 8,
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// A private in-memory database that lives as long as the store.
    #[must_use]
    pub fn in_memory() -> Self {
        Self {
            path: None,
            max_readers: 1,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite store: one writer connection (SQLite serialises writers anyway, and one
/// connection never meets `SQLITE_BUSY` from itself) and a pool of readers, in WAL mode with
/// `synchronous = FULL`, so that a committed message survives a crash or power loss.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout);
        let store = match &config.path {
            Some(path) => {
                let options = base
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full);
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await
                    .fix()?;
                // Readers open after the writer created the file and switched it to WAL.
                let readers = SqlitePoolOptions::new()
                    .max_connections(config.max_readers.max(1))
                    .test_before_acquire(false)
                    .connect_lazy_with(options);
                Self { writer, readers }
            }
            None => {
                // An in-memory database exists per connection: one connection serves both roles.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(base.in_memory(true))
                    .await
                    .fix()?;
                Self {
                    writer: pool.clone(),
                    readers: pool,
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens `sqlite://path` (or `sqlite::memory:`) with default settings.
    pub async fn connect(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::invalid("database_url", "A SQLite URL starts with `sqlite:`."))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            Self::open(&SqliteConfig::in_memory()).await
        } else {
            Self::open(&SqliteConfig::file(path)).await
        }
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .map_err(|e| Error::Storage(Box::new(e)))
    }

    /// The reader pool, for benchmarks that measure the store itself.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.readers
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }
}

lettermint_store_sql::repositories!(SqliteStore);

impl Backend for SqliteStore {
    type Dialect = SqliteDialect;

    fn reader(&self) -> &SqlitePool {
        &self.readers
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn record_usage(&self, batch: &UsageBatch) -> Result<()> {
        let mut tx = Sql(self).begin_write().await?;
        for e in &batch.entries {
            sqlx::query(
                "INSERT INTO token_logs (id, token_id, at, ip, via, action, outcome, status, \
                 message_ids, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
            .execute(&mut *tx)
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
        // BEGIN IMMEDIATE takes SQLite's write lock before reading the tokens: no revoke or
        // regenerate (in this process or another) can commit between the check and the insert.
        let mut tx = Sql(self).begin_write().await?;
        let mut locked: HashMap<Uuid, Option<LockedToken<i64>>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(submissions.len());
        for submission in submissions {
            let id = submission.credential.token_id.as_uuid();
            if let std::collections::hash_map::Entry::Vacant(slot) = locked.entry(id) {
                let token = sqlx::query_as(
                    "SELECT id, project_id, digest, revoked_at, expires_at FROM project_tokens \
                     WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .fix()?;
                slot.insert(token);
            }
            let token = locked.get(&id).and_then(Option::as_ref);
            let outcome = Sql(self).admit(&mut tx, submission, token, now).await?;
            if matches!(outcome, SubmissionOutcome::Accepted) {
                for message in &submission.messages {
                    insert_message(&mut tx, message).await?;
                }
            }
            outcomes.push(outcome);
        }
        tx.commit().await.fix()?;
        Ok(outcomes)
    }
}

async fn insert_message(tx: &mut sqlx::SqliteConnection, m: &Message) -> Result<()> {
    let (content_json, raw_mime) = match &m.content {
        MessageContent::Structured(email) => (Some(to_json(email)?), None),
        MessageContent::Mime(bytes) => (None, Some(bytes.as_slice())),
    };
    sqlx::query(
        "INSERT INTO messages (id, project_id, route_id, token_id, via, status, envelope_from, \
         envelope_to, subject, tag, metadata, idempotency_key, scheduled_at, created_at, \
         content_json, raw_mime) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(m.id.as_uuid())
    .bind(m.project_id.as_uuid())
    .bind(m.route_id.as_uuid())
    .bind(m.token_id.as_uuid())
    .bind(m.via.as_str())
    .bind(m.status.as_str())
    .bind(m.envelope_from.as_str())
    .bind(to_json(&m.envelope_to)?)
    .bind(m.subject.as_deref())
    .bind(m.tag.as_deref())
    .bind(to_json(&m.metadata)?)
    .bind(m.idempotency_key.as_deref())
    .bind(SqliteDialect::opt_instant(m.scheduled_at))
    .bind(micros(m.created_at))
    .bind(content_json)
    .bind(raw_mime)
    .execute(tx)
    .await
    .fix()?;
    Ok(())
}
