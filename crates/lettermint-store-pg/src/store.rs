//! [`PgStore`]: every repository trait on one connection pool.

use std::collections::HashMap;
use std::str::FromStr;
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ResultExt, fix_error};
use crate::rows::{
    LOWEST_INSTANT, LogRow, MessageRow, PgDialect, ProjectRow, RouteRow, TeamRow, to_json,
};

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

#[async_trait]
impl StoreHealth for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.fix()?;
        Ok(())
    }
}

#[async_trait]
impl TeamRepository for PgStore {
    async fn insert_team(&self, team: &Team) -> Result<()> {
        sqlx::query("INSERT INTO teams (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(team.id.as_uuid())
            .bind(team.name.as_str())
            .bind(team.created_at)
            .bind(team.updated_at)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(())
    }

    async fn get_team(&self, id: TeamId) -> Result<Option<Team>> {
        let row: Option<TeamRow> = sqlx::query_as("SELECT * FROM teams WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .fix()?;
        row.map(|r| r.into_team(instant)).transpose()
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows: Vec<TeamRow> = sqlx::query_as("SELECT * FROM teams ORDER BY name, id")
            .fetch_all(&self.pool)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_team(instant)).collect()
    }

    async fn rename_team(&self, id: TeamId, name: &Name, at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query("UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn count_projects(&self, id: TeamId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE team_id = $1")
            .bind(id.as_uuid())
            .fetch_one(&self.pool)
            .await
            .fix()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl ProjectRepository for PgStore {
    async fn insert_project(
        &self,
        project: &Project,
        default_route: &Route,
        first_token: Option<NewProjectToken>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.fix()?;
        sqlx::query(
            "INSERT INTO projects (id, team_id, name, smtp_enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project.id.as_uuid())
        .bind(project.team_id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(project.created_at)
        .bind(project.updated_at)
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
        .bind(default_route.created_at)
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
            .fetch_optional(&self.pool)
            .await
            .fix()?;
        row.map(|r| r.into_project(instant)).transpose()
    }

    async fn list_projects(
        &self,
        team: TeamId,
        search: Option<String>,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<Project>> {
        let sql = projects::select_page::<PgDialect>(&keyset);
        let rows: Vec<ProjectRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(&self.pool)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_project(instant)).collect()
    }

    async fn list_projects_with_first_token(
        &self,
        team: TeamId,
        search: Option<String>,
        now: OffsetDateTime,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<ProjectWithFirstToken>> {
        let sql = projects::select_page_with_first_token::<PgDialect>(&keyset);
        let rows: Vec<ProjectWithTokenRow<OffsetDateTime>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_project(instant)).collect()
    }

    async fn update_project(&self, project: &Project) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE projects SET name = $2, smtp_enabled = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(project.id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(project.updated_at)
        .execute(&self.pool)
        .await
        .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_project(&self, id: ProjectId) -> Result<bool> {
        let mut tx = self.pool.begin().await.fix()?;
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
impl RouteRepository for PgStore {
    async fn get_route_by_slug(&self, project: ProjectId, slug: &str) -> Result<Option<Route>> {
        let row: Option<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND slug = $2")
                .bind(project.as_uuid())
                .bind(slug)
                .fetch_optional(&self.pool)
                .await
                .fix()?;
        row.map(|r| r.into_route(instant)).transpose()
    }

    async fn get_default_route(&self, project: ProjectId) -> Result<Option<Route>> {
        let row: Option<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND is_default")
                .bind(project.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .fix()?;
        row.map(|r| r.into_route(instant)).transpose()
    }

    async fn list_routes(&self, project: ProjectId) -> Result<Vec<Route>> {
        let rows: Vec<RouteRow> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 ORDER BY slug")
                .bind(project.as_uuid())
                .fetch_all(&self.pool)
                .await
                .fix()?;
        rows.into_iter().map(|r| r.into_route(instant)).collect()
    }
}

async fn insert_token<K: StoredKind>(
    conn: &mut sqlx::PgConnection,
    token: &Token<K>,
    digest: &TokenDigest,
) -> Result<()> {
    let mut query = sqlx::query(tokens::insert::<K>())
        .bind(token.id.as_uuid())
        .bind(token.owner.into())
        .bind(token.name.as_str())
        .bind(digest.as_bytes().as_slice())
        .bind(token.hint.as_str())
        .bind(token.created_at)
        .bind(token.updated_at)
        .bind(token.expires_at)
        .bind(token.revoked_at);
    if let Some(abilities) = K::store_abilities(&token.abilities)? {
        query = query.bind(abilities);
    }
    query.execute(conn).await.fix()?;
    Ok(())
}

/// Instants come back as they were stored.
fn instant(at: OffsetDateTime) -> Result<OffsetDateTime> {
    Ok(at)
}

#[async_trait]
impl<K: StoredKind> TokenRepository<K> for PgStore {
    async fn owner_team(&self, owner: K::Id) -> Result<Option<TeamId>> {
        let team: Option<Uuid> = sqlx::query_scalar(K::OWNER_TEAM)
            .bind(owner.into())
            .fetch_optional(&self.pool)
            .await
            .fix()?;
        Ok(team.map(TeamId::from_uuid))
    }

    async fn insert_token(&self, token: &Token<K>, digest: &TokenDigest) -> Result<()> {
        let mut conn = self.pool.acquire().await.fix()?;
        insert_token(&mut conn, token, digest).await
    }

    async fn get_token(&self, id: TokenId) -> Result<Option<Token<K>>> {
        let row: Option<TokenRow<OffsetDateTime>> = sqlx::query_as(tokens::select_by_id::<K>())
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .fix()?;
        row.map(|r| r.into_token(instant)).transpose()
    }

    async fn find_token_by_digest(&self, digest: &TokenDigest) -> Result<Option<K::Grant>> {
        let row: Option<TokenRow<OffsetDateTime>> = sqlx::query_as(tokens::select_by_digest::<K>())
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .fix()?;
        row.map(|r| r.into_grant::<K>(instant)).transpose()
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
        let rows: Vec<TokenRow<OffsetDateTime>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner.into())
            .bind(now)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(&self.pool)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_token(instant)).collect()
    }

    async fn rename_token(&self, id: TokenId, name: &Name, at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query(tokens::rename::<K>())
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(at)
            .execute(&self.pool)
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
        // FOR UPDATE, like revoke: ordered against every enqueue holding the token.
        let sql = format!(
            "WITH locked AS (SELECT id FROM {table} WHERE id = $1 AND revoked_at IS NULL \
             FOR UPDATE) \
             UPDATE {table} t SET digest = $2, hint = $3, updated_at = $4 \
             FROM locked WHERE t.id = locked.id",
            table = K::TABLE
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(digest.as_bytes().as_slice())
            .bind(hint.as_str())
            .bind(at)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }

    async fn revoke_token(&self, id: TokenId, at: OffsetDateTime) -> Result<bool> {
        // FOR UPDATE: waits for every enqueue holding the token (FOR KEY SHARE) to commit.
        let sql = format!(
            "WITH locked AS (SELECT id FROM {table} WHERE id = $1 AND revoked_at IS NULL \
             FOR UPDATE) \
             UPDATE {table} t SET revoked_at = $2 FROM locked WHERE t.id = locked.id",
            table = K::TABLE
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(at)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl UsageRepository for PgStore {
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

    async fn list_token_logs(
        &self,
        token: TokenId,
        filter: &LogFilter,
        keyset: Keyset<LogSortKey>,
    ) -> Result<Vec<TokenLogEntry>> {
        let sql = paginate(
            "SELECT * FROM token_logs WHERE token_id = $1 \
             AND ($2::text IS NULL OR outcome = $2) \
             AND ($5::timestamptz IS NULL OR at >= $5) \
             AND ($6::timestamptz IS NULL OR at <= $6)",
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
            .bind(filter.from)
            .bind(filter.to)
            .fetch_all(&self.pool)
            .await
            .fix()?;
        rows.into_iter().map(|r| r.into_entry(instant)).collect()
    }

    async fn prune_token_logs(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM token_logs WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(done.rows_affected())
    }
}

/// The state of a token as seen under its row lock.
struct LockedToken {
    project_id: Uuid,
    digest: Vec<u8>,
    revoked_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
}

impl LockedToken {
    fn accepts(&self, submission: &Submission, now: OffsetDateTime) -> bool {
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
impl MessageRepository for PgStore {
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
        let rows = sqlx::query(
            "SELECT id, project_id, digest, revoked_at, expires_at FROM project_tokens \
             WHERE id = ANY($1) ORDER BY id FOR KEY SHARE",
        )
        .bind(&token_ids)
        .fetch_all(&mut *tx)
        .await
        .fix()?;
        let mut locked = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.try_get("id").fix()?;
            locked.insert(
                id,
                LockedToken {
                    project_id: row.try_get("project_id").fix()?,
                    digest: row.try_get("digest").fix()?,
                    revoked_at: row.try_get("revoked_at").fix()?,
                    expires_at: row.try_get("expires_at").fix()?,
                },
            );
        }

        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut accepted: Vec<&Message> = Vec::new();
        for submission in submissions {
            let ok = locked
                .get(&submission.credential.token_id.as_uuid())
                .is_some_and(|t| t.accepts(submission, now));
            let outcome = if !ok {
                SubmissionOutcome::TokenInactive
            } else if let Some(record) = &submission.idempotency
                && !claim_idempotency_key(&mut tx, record, now - IDEMPOTENCY_TTL).await?
            {
                SubmissionOutcome::DuplicateIdempotencyKey
            } else {
                accepted.extend(submission.messages.iter());
                SubmissionOutcome::Accepted
            };
            outcomes.push(outcome);
        }
        if !accepted.is_empty() {
            insert_messages(&mut tx, &accepted).await?;
        }
        tx.commit().await.fix()?;
        Ok(outcomes)
    }

    async fn get_message(&self, project: ProjectId, id: MessageId) -> Result<Option<Message>> {
        let row: Option<MessageRow> =
            sqlx::query_as("SELECT * FROM messages WHERE id = $1 AND project_id = $2")
                .bind(id.as_uuid())
                .bind(project.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .fix()?;
        row.map(|r| r.into_message(instant)).transpose()
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
        .bind(not_before)
        .fetch_optional(&self.pool)
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
            created_at,
        }))
    }

    async fn prune_idempotency_records(&self, before: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .fix()?;
        Ok(done.rows_affected())
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

/// Inserts an idempotency record unless a live one holds the key; false when one does.
async fn claim_idempotency_key(
    conn: &mut sqlx::PgConnection,
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
    .bind(record.created_at)
    .bind(cutoff)
    .fetch_optional(conn)
    .await
    .fix()?;
    Ok(claimed.is_some())
}
