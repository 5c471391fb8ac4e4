//! [`SqliteStore`]: every repository trait on one connection pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettermint_core::id::{MessageId, ProjectId, TeamId, TokenId};
use lettermint_core::message::IDEMPOTENCY_TTL;
use lettermint_core::page::{Keyset, LogSortKey, ProjectSortKey, TokenSortKey};
use lettermint_core::repo::{
    MessageRepository, NewProjectToken, ProjectRepository, ProjectWithFirstToken, RouteRepository,
    StoreHealth, TeamRepository, TokenRepository, UsageRepository,
};
use lettermint_core::{
    Error, IdempotencyRecord, LogFilter, Message, MessageContent, Name, Project, Result, Route,
    Submission, SubmissionOutcome, Team, Token, TokenDigest, TokenHint, TokenLogEntry,
    TokenStatusFilter, UsageBatch,
};
use lettermint_store_sql::keyset::paginate;
use lettermint_store_sql::projects::{self, ProjectWithTokenRow};
use lettermint_store_sql::tokens::{self, StoredKind, TokenRow};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ResultExt;
use crate::rows::{
    LOWEST_INSTANT, LogRow, MessageRow, ProjectRow, RouteRow, SqliteDialect, TeamRow, micros,
    opt_micros, to_json, ts,
};

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

#[async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await.fix()?;
        Ok(())
    }
}

#[async_trait]
impl TeamRepository for SqliteStore {
    async fn insert_team(&self, team: &Team) -> Result<()> {
        sqlx::query("INSERT INTO teams (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(team.id.as_uuid())
            .bind(team.name.as_str())
            .bind(micros(team.created_at))
            .bind(micros(team.updated_at))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(())
    }

    async fn get_team(&self, id: TeamId) -> Result<Option<Team>> {
        let row: Option<TeamRow> = sqlx::query_as("SELECT * FROM teams WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.readers)
            .await
            .fix()?;
        row.map(|r| r.into_team(ts)).transpose()
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows: Vec<TeamRow> = sqlx::query_as("SELECT * FROM teams ORDER BY name, id")
            .fetch_all(&self.readers)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_team(ts)).collect()
    }

    async fn rename_team(&self, id: TeamId, name: &Name, at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query("UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(micros(at))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_projects(&self, id: TeamId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE team_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.readers)
            .await
            .fix()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl ProjectRepository for SqliteStore {
    async fn insert_project(
        &self,
        project: &Project,
        default_route: &Route,
        first_token: Option<NewProjectToken>,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.fix()?;
        sqlx::query(
            "INSERT INTO projects (id, team_id, name, smtp_enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project.id.as_uuid())
        .bind(project.team_id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(micros(project.created_at))
        .bind(micros(project.updated_at))
        .execute(&mut *tx)
        .await
        .fix()?;
        sqlx::query(
            "INSERT INTO routes (id, project_id, slug, name, kind, is_default, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(default_route.id.as_uuid())
        .bind(default_route.project_id.as_uuid())
        .bind(&default_route.slug)
        .bind(default_route.name.as_str())
        .bind(default_route.kind.as_str())
        .bind(default_route.is_default)
        .bind(micros(default_route.created_at))
        .execute(&mut *tx)
        .await
        .fix()?;
        if let Some(first) = first_token {
            insert_token(&mut tx, &first.token, &first.digest).await?;
        }
        tx.commit().await.fix()
    }

    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as("SELECT * FROM projects WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.readers)
            .await
            .fix()?;
        row.map(|r| r.into_project(ts)).transpose()
    }

    async fn list_projects(
        &self,
        team: TeamId,
        search: Option<String>,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<Project>> {
        let sql = projects::select_page::<SqliteDialect>(&keyset);
        let rows: Vec<ProjectRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(&self.readers)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_project(ts)).collect()
    }

    async fn list_projects_with_first_token(
        &self,
        team: TeamId,
        search: Option<String>,
        now: OffsetDateTime,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<ProjectWithFirstToken>> {
        let sql = projects::select_page_with_first_token::<SqliteDialect>(&keyset);
        let rows: Vec<ProjectWithTokenRow<i64>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .bind(micros(now))
            .fetch_all(&self.readers)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_project(ts)).collect()
    }

    async fn update_project(&self, project: &Project) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE projects SET name = $2, smtp_enabled = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(project.id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(micros(project.updated_at))
        .execute(&self.writer)
        .await
        .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_project(&self, id: ProjectId) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.fix()?;
        sqlx::query(
            "DELETE FROM token_logs WHERE token_id IN \
             (SELECT id FROM project_tokens WHERE project_id = $1)",
        )
        .bind(id.as_uuid())
        .execute(&mut *tx)
        .await
        .fix()?;
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .fix()?;
        tx.commit().await.fix()?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl RouteRepository for SqliteStore {
    async fn get_route_by_slug(&self, project: ProjectId, slug: &str) -> Result<Option<Route>> {
        let row: Option<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND slug = $2")
                .bind(project.as_uuid())
                .bind(slug)
                .fetch_optional(&self.readers)
                .await
                .fix()?;
        row.map(|r| r.into_route(ts)).transpose()
    }

    async fn get_default_route(&self, project: ProjectId) -> Result<Option<Route>> {
        let row: Option<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND is_default")
                .bind(project.as_uuid())
                .fetch_optional(&self.readers)
                .await
                .fix()?;
        row.map(|r| r.into_route(ts)).transpose()
    }

    async fn list_routes(&self, project: ProjectId) -> Result<Vec<Route>> {
        let rows: Vec<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 ORDER BY slug")
                .bind(project.as_uuid())
                .fetch_all(&self.readers)
                .await
                .fix()?;
        rows.into_iter().map(|r| r.into_route(ts)).collect()
    }
}

async fn insert_token<K: StoredKind>(
    conn: &mut sqlx::SqliteConnection,
    token: &Token<K>,
    digest: &TokenDigest,
) -> Result<()> {
    let mut query = sqlx::query(tokens::insert::<K>())
        .bind(token.id.as_uuid())
        .bind(token.owner.into())
        .bind(token.name.as_str())
        .bind(digest.as_bytes().as_slice())
        .bind(token.hint.as_str())
        .bind(micros(token.created_at))
        .bind(micros(token.updated_at))
        .bind(opt_micros(token.expires_at))
        .bind(opt_micros(token.revoked_at));
    if let Some(abilities) = K::store_abilities(&token.abilities)? {
        query = query.bind(abilities);
    }
    query.execute(conn).await.fix()?;
    Ok(())
}

#[async_trait]
impl<K: StoredKind> TokenRepository<K> for SqliteStore {
    async fn owner_team(&self, owner: K::Id) -> Result<Option<TeamId>> {
        let team: Option<Uuid> = sqlx::query_scalar(K::OWNER_TEAM)
            .bind(owner.into())
            .fetch_optional(&self.readers)
            .await
            .fix()?;
        Ok(team.map(TeamId::from_uuid))
    }

    async fn insert_token(&self, token: &Token<K>, digest: &TokenDigest) -> Result<()> {
        let mut conn = self.writer.acquire().await.fix()?;
        insert_token(&mut conn, token, digest).await
    }

    async fn get_token(&self, id: TokenId) -> Result<Option<Token<K>>> {
        let row: Option<TokenRow<i64>> = sqlx::query_as(tokens::select_by_id::<K>())
            .bind(id.as_uuid())
            .fetch_optional(&self.readers)
            .await
            .fix()?;
        row.map(|r| r.into_token(ts)).transpose()
    }

    async fn find_token_by_digest(&self, digest: &TokenDigest) -> Result<Option<K::Grant>> {
        let row: Option<TokenRow<i64>> = sqlx::query_as(tokens::select_by_digest::<K>())
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.readers)
            .await
            .fix()?;
        row.map(|r| r.into_grant::<K>(ts)).transpose()
    }

    async fn list_tokens(
        &self,
        owner: K::Id,
        status: TokenStatusFilter,
        now: OffsetDateTime,
        keyset: Keyset<TokenSortKey>,
    ) -> Result<Vec<Token<K>>> {
        let sql = paginate(
            &tokens::select_owned::<K>(status),
            K::TABLE,
            &keyset,
            "$3",
            "$4",
            LOWEST_INSTANT,
        );
        let rows: Vec<TokenRow<i64>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner.into())
            .bind(micros(now))
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(&self.readers)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_token(ts)).collect()
    }

    async fn rename_token(&self, id: TokenId, name: &Name, at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query(tokens::rename::<K>())
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(micros(at))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_token_secret(
        &self,
        id: TokenId,
        digest: &TokenDigest,
        hint: &TokenHint,
        at: OffsetDateTime,
    ) -> Result<bool> {
        // One writer: this is ordered against every enqueue (`BEGIN IMMEDIATE`).
        let sql = format!(
            "UPDATE {} SET digest = $2, hint = $3, updated_at = $4 \
             WHERE id = $1 AND revoked_at IS NULL",
            K::TABLE
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(digest.as_bytes().as_slice())
            .bind(hint.as_str())
            .bind(micros(at))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_token(&self, id: TokenId, at: OffsetDateTime) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            K::TABLE
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(micros(at))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl UsageRepository for SqliteStore {
    async fn record_usage(&self, batch: &UsageBatch) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.fix()?;
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

    async fn list_token_logs(
        &self,
        token: TokenId,
        filter: &LogFilter,
        keyset: Keyset<LogSortKey>,
    ) -> Result<Vec<TokenLogEntry>> {
        let sql = paginate(
            "SELECT * FROM token_logs WHERE token_id = $1 \
             AND ($2 IS NULL OR outcome = $2) \
             AND ($5 IS NULL OR at >= $5) \
             AND ($6 IS NULL OR at <= $6)",
            "token_logs",
            &keyset,
            "$3",
            "$4",
            LOWEST_INSTANT,
        );
        let rows: Vec<LogRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(token.as_uuid())
            .bind(filter.outcome.map(|o| o.as_str()))
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .bind(opt_micros(filter.from))
            .bind(opt_micros(filter.to))
            .fetch_all(&self.readers)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_entry(ts)).collect()
    }

    async fn prune_token_logs(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM token_logs WHERE at < $1")
            .bind(micros(before))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected())
    }
}

/// The state of a token as read inside the writing transaction.
struct LockedToken {
    project_id: Uuid,
    digest: Vec<u8>,
    revoked_at: Option<i64>,
    expires_at: Option<i64>,
}

impl LockedToken {
    fn accepts(&self, submission: &Submission, now: i64) -> bool {
        self.digest.as_slice() == submission.credential.digest.as_bytes().as_slice()
            && self.revoked_at.is_none()
            && self.expires_at.is_none_or(|e| e > now)
            && submission
                .messages
                .iter()
                .all(|m| m.project_id.as_uuid() == self.project_id)
    }
}

#[async_trait]
impl MessageRepository for SqliteStore {
    async fn enqueue(
        &self,
        submissions: &[Submission],
        now: OffsetDateTime,
    ) -> Result<Vec<SubmissionOutcome>> {
        if submissions.is_empty() {
            return Ok(Vec::new());
        }
        let cutoff = now - IDEMPOTENCY_TTL;
        let now = micros(now);
        // BEGIN IMMEDIATE takes SQLite's write lock before reading the tokens: no revoke or
        // regenerate (in this process or another) can commit between the check and the insert.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.fix()?;
        let mut locked: HashMap<Uuid, Option<LockedToken>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(submissions.len());
        for submission in submissions {
            let id = submission.credential.token_id.as_uuid();
            if let std::collections::hash_map::Entry::Vacant(slot) = locked.entry(id) {
                let row = sqlx::query(
                    "SELECT project_id, digest, revoked_at, expires_at FROM project_tokens \
                     WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .fix()?;
                let token = match row {
                    Some(row) => Some(LockedToken {
                        project_id: row.try_get("project_id").fix()?,
                        digest: row.try_get("digest").fix()?,
                        revoked_at: row.try_get("revoked_at").fix()?,
                        expires_at: row.try_get("expires_at").fix()?,
                    }),
                    None => None,
                };
                slot.insert(token);
            }
            let ok = locked
                .get(&id)
                .and_then(Option::as_ref)
                .is_some_and(|t| t.accepts(submission, now));
            let outcome = if !ok {
                SubmissionOutcome::TokenInactive
            } else if let Some(record) = &submission.idempotency
                && !claim_idempotency_key(&mut tx, record, cutoff).await?
            {
                SubmissionOutcome::DuplicateIdempotencyKey
            } else {
                for message in &submission.messages {
                    insert_message(&mut tx, message).await?;
                }
                SubmissionOutcome::Accepted
            };
            outcomes.push(outcome);
        }
        tx.commit().await.fix()?;
        Ok(outcomes)
    }

    async fn get_message(&self, project: ProjectId, id: MessageId) -> Result<Option<Message>> {
        let row: Option<MessageRow> =
            sqlx::query_as("SELECT * FROM messages WHERE id = $1 AND project_id = $2")
                .bind(id.as_uuid())
                .bind(project.as_uuid())
                .fetch_optional(&self.readers)
                .await
                .fix()?;
        row.map(|r| r.into_message(ts)).transpose()
    }

    async fn get_idempotency_record(
        &self,
        project: ProjectId,
        key: &str,
        not_before: OffsetDateTime,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = sqlx::query(
            "SELECT request_hash, status, response, created_at FROM idempotency_keys \
             WHERE project_id = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(project.as_uuid())
        .bind(key)
        .bind(micros(not_before))
        .fetch_optional(&self.writer)
        .await
        .fix()?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = row.try_get("request_hash").fix()?;
        let status: i32 = row.try_get("status").fix()?;
        let created_at = row.try_get("created_at").fix()?;
        Ok(Some(IdempotencyRecord {
            project_id: project,
            key: key.to_owned(),
            request_hash: hash
                .try_into()
                .map_err(|_| Error::Storage("stored request hash is not 32 bytes".into()))?,
            status: u16::try_from(status)
                .map_err(|_| Error::Storage("stored status is out of range".into()))?,
            response: row.try_get("response").fix()?,
            created_at: ts(created_at)?,
        }))
    }

    async fn prune_idempotency_records(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(micros(before))
            .execute(&self.writer)
            .await
            .fix()?;
        Ok(done.rows_affected())
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
    .bind(opt_micros(m.scheduled_at))
    .bind(micros(m.created_at))
    .bind(content_json)
    .bind(raw_mime)
    .execute(tx)
    .await
    .fix()?;
    Ok(())
}

/// Inserts an idempotency record unless a live one holds the key; false when one does.
async fn claim_idempotency_key(
    conn: &mut sqlx::SqliteConnection,
    record: &IdempotencyRecord,
    cutoff: OffsetDateTime,
) -> Result<bool> {
    let claimed = sqlx::query(
        "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (project_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
         status = excluded.status, response = excluded.response, created_at = excluded.created_at \
         WHERE idempotency_keys.created_at < $7 \
         RETURNING 1",
    )
    .bind(record.project_id.as_uuid())
    .bind(record.key.as_str())
    .bind(record.request_hash.as_slice())
    .bind(i32::from(record.status))
    .bind(record.response.as_str())
    .bind(micros(record.created_at))
    .bind(micros(cutoff))
    .fetch_optional(conn)
    .await
    .fix()?;
    Ok(claimed.is_some())
}
