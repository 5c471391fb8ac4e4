//! The repository operations both stores run alike, written once over any [`Backend`]: the
//! statement, what is bound (instants in the dialect's stored form), which pool serves it, and
//! the rows read back. [`repositories!`](crate::repositories) implements the core's repository
//! traits with these for a store type.

use lettermint_core::id::{
    AccountId, AuditEntryId, LeaseId, LogEntryId, MessageId, ProjectId, SessionId, TeamId, TokenId,
};
use lettermint_core::message::IDEMPOTENCY_TTL;
use lettermint_core::page::{Keyset, LogSortKey, MessageSortKey, ProjectSortKey, TokenSortKey};
use lettermint_core::repo::{MemberChange, NewProjectToken, ProjectWithFirstToken};
use lettermint_core::{
    Account, Action, AuditEntry, Claim, Email, Error, IdempotencyRecord, IpAllowlist, LogFilter,
    Member, Message, MessageStatus, Name, Outcome, PasswordHash, Project, Reply, Result, Role,
    Route, Session, Settle, Settlement, Submission, SubmissionOutcome, Team, Token, TokenDigest,
    TokenHint, TokenLogEntry, TokenStatusFilter, UsageBatch,
};
use sqlx::migrate::Migrate;
use sqlx::{
    AssertSqlSafe, Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type,
};
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account_columns;
use crate::backend::{Backend, Db};
use crate::dialect::Dialect;
use crate::error::ResultExt;
use crate::keyset::paginate;
use crate::projects::{self, ProjectWithTokenRow};
use crate::rows::{
    AccountRow, AccountWithHashRow, AuditRow, FailureCountRow, IdempotencyRow, LockedToken, LogRow,
    MemberRow, MembershipRow, MessageRow, ProjectRow, RouteRow, SessionRow, TeamRow,
};
use crate::tokens::{self, StoredKind, TokenRow};
use crate::{message_columns, messages_with_delivery};

/// The shared repository operations on the store `S`.
#[derive(Debug)]
pub struct Sql<'s, S>(pub &'s S);

impl<'s, S: Backend> Sql<'s, S> {
    /// The pool for reads.
    fn reader(self) -> &'s Pool<Db<S>> {
        self.0.pools().reader()
    }

    /// The pool for writes, and for reads that must see the latest write.
    fn writer(self) -> &'s Pool<Db<S>> {
        self.0.pools().writer()
    }

    /// Applies the store's pending migrations on the writer.
    pub async fn migrate(self) -> Result<()>
    where
        <Db<S> as Database>::Connection: Migrate,
    {
        S::Dialect::migrator()
            .run(self.writer())
            .await
            .map_err(|e| Error::Storage(Box::new(e)))
    }
}

impl<S> Clone for Sql<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for Sql<'_, S> {}

// The bounds say what the shared statements need of a database: to bind the values they bind,
// to read the rows they read, and to run on a pool or a transaction. Both sqlx drivers meet
// them; they are written once, here, for every operation below.
impl<S, D, DB, I> Sql<'_, S>
where
    S: Backend<Dialect = D>,
    D: Dialect<Db = DB, Instant = I>,
    DB: Database,
    I: PartialOrd + Send + Sync + Unpin + 'static,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> I: Encode<'q, DB> + Type<DB>,
    for<'q> Option<I>: Encode<'q, DB> + Type<DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Uuid,): FromRow<'r, DB::Row>,
    for<'r> (Uuid, String): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> TeamRow<I>: FromRow<'r, DB::Row>,
    for<'r> ProjectRow<I>: FromRow<'r, DB::Row>,
    for<'r> ProjectWithTokenRow<I>: FromRow<'r, DB::Row>,
    for<'r> RouteRow<I>: FromRow<'r, DB::Row>,
    for<'r> TokenRow<I>: FromRow<'r, DB::Row>,
    for<'r> LogRow<I>: FromRow<'r, DB::Row>,
    for<'r> MessageRow<I>: FromRow<'r, DB::Row>,
    for<'r> IdempotencyRow<I>: FromRow<'r, DB::Row>,
    for<'r> LockedToken<I>: FromRow<'r, DB::Row>,
    for<'r> AccountRow<I>: FromRow<'r, DB::Row>,
    for<'r> AccountWithHashRow<I>: FromRow<'r, DB::Row>,
    for<'r> MemberRow<I>: FromRow<'r, DB::Row>,
    for<'r> MembershipRow<I>: FromRow<'r, DB::Row>,
    for<'r> SessionRow<I>: FromRow<'r, DB::Row>,
    for<'r> FailureCountRow<I>: FromRow<'r, DB::Row>,
    for<'r> AuditRow<I>: FromRow<'r, DB::Row>,
{
    /// Begins a write transaction on the writer.
    pub async fn begin_write(self) -> Result<Transaction<'static, DB>> {
        let writer = self.writer();
        match D::BEGIN_WRITE {
            Some(begin) => writer.begin_with(begin).await,
            None => writer.begin().await,
        }
        .fix()
    }

    /// See `StoreHealth::ping`.
    pub async fn ping(self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.reader()).await.fix()?;
        Ok(())
    }

    // Teams.

    /// See `TeamRepository::insert_team`.
    pub async fn insert_team(self, team: &Team) -> Result<()> {
        sqlx::query("INSERT INTO teams (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)")
            .bind(team.id.as_uuid())
            .bind(team.name.as_str())
            .bind(D::instant(team.created_at))
            .bind(D::instant(team.updated_at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(())
    }

    /// See `TeamRepository::get_team`.
    pub async fn get_team(self, id: TeamId) -> Result<Option<Team>> {
        let row: Option<TeamRow<I>> = sqlx::query_as("SELECT * FROM teams WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(self.reader())
            .await
            .fix()?;
        row.map(|r| r.into_team(D::read_instant)).transpose()
    }

    /// See `TeamRepository::list_teams`.
    pub async fn list_teams(self) -> Result<Vec<Team>> {
        let rows: Vec<TeamRow<I>> = sqlx::query_as("SELECT * FROM teams ORDER BY name, id")
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_team(D::read_instant))
            .collect()
    }

    /// See `TeamRepository::rename_team`.
    pub async fn rename_team(self, id: TeamId, name: &Name, at: OffsetDateTime) -> Result<bool> {
        let done = sqlx::query("UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(D::instant(at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `TeamRepository::count_projects`.
    pub async fn count_projects(self, id: TeamId) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM projects WHERE team_id = $1")
            .bind(id.as_uuid())
            .fetch_one(self.reader())
            .await
            .fix()?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    // Projects.

    /// See `ProjectRepository::insert_project`.
    pub async fn insert_project(
        self,
        project: &Project,
        default_route: &Route,
        first_token: Option<NewProjectToken>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO projects (id, team_id, name, smtp_enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(project.id.as_uuid())
        .bind(project.team_id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(D::instant(project.created_at))
        .bind(D::instant(project.updated_at))
        .execute(&mut *tx)
        .await
        .fix()?;
        sqlx::query(
            "INSERT INTO routes (id, project_id, slug, name, kind, is_default, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(default_route.id.as_uuid())
        .bind(default_route.project_id.as_uuid())
        .bind(default_route.slug.as_str())
        .bind(default_route.name.as_str())
        .bind(default_route.kind.as_str())
        .bind(default_route.is_default)
        .bind(D::instant(default_route.created_at))
        .execute(&mut *tx)
        .await
        .fix()?;
        if let Some(first) = first_token {
            self.insert_token_on(&mut tx, &first.token, &first.digest)
                .await?;
        }
        tx.commit().await.fix()
    }

    /// See `ProjectRepository::get_project`.
    pub async fn get_project(self, id: ProjectId) -> Result<Option<Project>> {
        let row: Option<ProjectRow<I>> = sqlx::query_as("SELECT * FROM projects WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(self.reader())
            .await
            .fix()?;
        row.map(|r| r.into_project(D::read_instant)).transpose()
    }

    /// See `ProjectRepository::list_projects`.
    pub async fn list_projects(
        self,
        team: TeamId,
        search: Option<String>,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<Project>> {
        let sql = projects::select_page::<D>(&keyset);
        let rows: Vec<ProjectRow<I>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_project(D::read_instant))
            .collect()
    }

    /// See `ProjectRepository::list_projects_with_first_token`.
    pub async fn list_projects_with_first_token(
        self,
        team: TeamId,
        search: Option<String>,
        now: OffsetDateTime,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<ProjectWithFirstToken>> {
        let sql = projects::select_page_with_first_token::<D>(&keyset);
        let rows: Vec<ProjectWithTokenRow<I>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(team.as_uuid())
            .bind(search)
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .bind(D::instant(now))
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_project(D::read_instant))
            .collect()
    }

    /// See `ProjectRepository::update_project`.
    pub async fn update_project(self, project: &Project) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE projects SET name = $2, smtp_enabled = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(project.id.as_uuid())
        .bind(project.name.as_str())
        .bind(project.smtp_enabled)
        .bind(D::instant(project.updated_at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `ProjectRepository::delete_project`.
    pub async fn delete_project(self, id: ProjectId) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        // Neither table has a foreign key to what the project's deletion cascades to.
        for sql in [
            "DELETE FROM token_logs WHERE token_id IN \
             (SELECT id FROM project_tokens WHERE project_id = $1)",
            "DELETE FROM deliveries WHERE message_id IN \
             (SELECT id FROM messages WHERE project_id = $1)",
        ] {
            sqlx::query(sql)
                .bind(id.as_uuid())
                .execute(&mut *tx)
                .await
                .fix()?;
        }
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await
            .fix()?;
        tx.commit().await.fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    // Routes.

    /// See `RouteRepository::get_route_by_slug`.
    pub async fn get_route_by_slug(self, project: ProjectId, slug: &str) -> Result<Option<Route>> {
        let row: Option<RouteRow<I>> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND slug = $2")
                .bind(project.as_uuid())
                .bind(slug)
                .fetch_optional(self.reader())
                .await
                .fix()?;
        row.map(|r| r.into_route(D::read_instant)).transpose()
    }

    /// See `RouteRepository::get_default_route`.
    pub async fn get_default_route(self, project: ProjectId) -> Result<Option<Route>> {
        let row: Option<RouteRow<I>> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 AND is_default")
                .bind(project.as_uuid())
                .fetch_optional(self.reader())
                .await
                .fix()?;
        row.map(|r| r.into_route(D::read_instant)).transpose()
    }

    /// See `RouteRepository::list_routes`.
    pub async fn list_routes(self, project: ProjectId) -> Result<Vec<Route>> {
        let rows: Vec<RouteRow<I>> =
            sqlx::query_as("SELECT * FROM routes WHERE project_id = $1 ORDER BY slug")
                .bind(project.as_uuid())
                .fetch_all(self.reader())
                .await
                .fix()?;
        rows.into_iter()
            .map(|r| r.into_route(D::read_instant))
            .collect()
    }

    // Tokens of either kind.

    /// Inserts a token on `conn` (a transaction's, or the writer's).
    async fn insert_token_on<K: StoredKind>(
        self,
        conn: &mut DB::Connection,
        token: &Token<K>,
        digest: &TokenDigest,
    ) -> Result<()> {
        let owner: Uuid = token.owner.into();
        let mut query = sqlx::query(tokens::insert::<K>())
            .bind(token.id.as_uuid())
            .bind(owner)
            .bind(token.name.as_str())
            .bind(digest.as_bytes().as_slice())
            .bind(token.hint.as_str())
            .bind(D::instant(token.created_at))
            .bind(D::instant(token.updated_at))
            .bind(D::opt_instant(token.expires_at))
            .bind(D::opt_instant(token.revoked_at))
            .bind(token.allowed_ips.to_stored());
        if let Some(abilities) = K::store_abilities(&token.abilities)? {
            query = query.bind(abilities);
        }
        query.execute(conn).await.fix()?;
        Ok(())
    }

    /// See `TokenRepository::owner_team`.
    pub async fn owner_team<K: StoredKind>(self, owner: K::Id) -> Result<Option<TeamId>> {
        let owner: Uuid = owner.into();
        let team: Option<Uuid> = sqlx::query_scalar(K::OWNER_TEAM)
            .bind(owner)
            .fetch_optional(self.reader())
            .await
            .fix()?;
        Ok(team.map(TeamId::from_uuid))
    }

    /// See `TokenRepository::insert_token`.
    pub async fn insert_token<K: StoredKind>(
        self,
        token: &Token<K>,
        digest: &TokenDigest,
    ) -> Result<()> {
        let mut conn = self.writer().acquire().await.fix()?;
        self.insert_token_on(&mut conn, token, digest).await
    }

    /// See `TokenRepository::get_token`.
    pub async fn get_token<K: StoredKind>(self, id: TokenId) -> Result<Option<Token<K>>> {
        let row: Option<TokenRow<I>> = sqlx::query_as(tokens::select_by_id::<K>())
            .bind(id.as_uuid())
            .fetch_optional(self.reader())
            .await
            .fix()?;
        row.map(|r| r.into_token(D::read_instant)).transpose()
    }

    /// See `TokenRepository::find_token_by_digest`: the hot path of authentication, one
    /// prebuilt statement on the reader.
    pub async fn find_token_by_digest<K: StoredKind>(
        self,
        digest: &TokenDigest,
    ) -> Result<Option<K::Grant>> {
        let row: Option<TokenRow<I>> = sqlx::query_as(tokens::select_by_digest::<K>())
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(self.reader())
            .await
            .fix()?;
        row.map(|r| r.into_grant::<K>(D::read_instant)).transpose()
    }

    /// See `TokenRepository::list_tokens`.
    pub async fn list_tokens<K: StoredKind>(
        self,
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
            D::LOWEST_INSTANT,
        );
        let owner: Uuid = owner.into();
        let rows: Vec<TokenRow<I>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(owner)
            .bind(D::instant(now))
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_token(D::read_instant))
            .collect()
    }

    /// See `TokenRepository::list_expiring_tokens`.
    pub async fn list_expiring_tokens<K: StoredKind>(
        self,
        owner: Option<K::Id>,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Token<K>>> {
        let sql = tokens::select_expiring::<K>(owner.is_some());
        let mut query = sqlx::query_as(AssertSqlSafe(sql))
            .bind(D::instant(now))
            .bind(D::instant(until));
        if let Some(owner) = owner {
            let owner: Uuid = owner.into();
            query = query.bind(owner);
        }
        let rows: Vec<TokenRow<I>> = query.fetch_all(self.reader()).await.fix()?;
        rows.into_iter()
            .map(|r| r.into_token(D::read_instant))
            .collect()
    }

    /// See `TokenRepository::count_expiring_tokens`.
    pub async fn count_expiring_tokens<K: StoredKind>(
        self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64> {
        let (count,): (i64,) = sqlx::query_as(AssertSqlSafe(tokens::count_expiring::<K>()))
            .bind(D::instant(now))
            .bind(D::instant(until))
            .fetch_one(self.reader())
            .await
            .fix()?;
        u64::try_from(count).map_err(|e| crate::decode::corrupt("count", e))
    }

    /// See `TokenRepository::rename_token`.
    pub async fn rename_token<K: StoredKind>(
        self,
        id: TokenId,
        name: &Name,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(tokens::rename::<K>())
            .bind(id.as_uuid())
            .bind(name.as_str())
            .bind(D::instant(at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `TokenRepository::replace_token_secret`: a rotation's previous digest goes with it.
    pub async fn replace_token_secret<K: StoredKind>(
        self,
        id: TokenId,
        digest: &TokenDigest,
        hint: &TokenHint,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let sql = D::update_unrevoked(
            K::TABLE,
            "digest = $2, hint = $3, updated_at = $4, previous_digest = NULL, \
             previous_expires_at = NULL",
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(digest.as_bytes().as_slice())
            .bind(hint.as_str())
            .bind(D::instant(at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `TokenRepository::rotate_token_secret`: the right-hand sides read the row as it was,
    /// so the current digest moves to `previous_digest` in the same statement.
    pub async fn rotate_token_secret<K: StoredKind>(
        self,
        id: TokenId,
        digest: &TokenDigest,
        hint: &TokenHint,
        at: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<bool> {
        let sql = D::update_unrevoked(
            K::TABLE,
            "previous_digest = digest, previous_expires_at = $5, digest = $2, hint = $3, \
             updated_at = $4",
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(digest.as_bytes().as_slice())
            .bind(hint.as_str())
            .bind(D::instant(at))
            .bind(D::instant(previous_until))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `TokenRepository::set_token_allowlist`.
    pub async fn set_token_allowlist<K: StoredKind>(
        self,
        id: TokenId,
        allowed_ips: &IpAllowlist,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let sql = D::update_unrevoked(K::TABLE, "allowed_ips = $2, updated_at = $3");
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(id.as_uuid())
            .bind(allowed_ips.to_stored())
            .bind(D::instant(at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `TokenRepository::revoke_token`. Revoking ends both values at once: the previous
    /// digest is kept, but a revoked token accepts neither.
    pub async fn revoke_token<K: StoredKind>(
        self,
        id: TokenId,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(AssertSqlSafe(D::update_unrevoked(
            K::TABLE,
            "revoked_at = $2",
        )))
        .bind(id.as_uuid())
        .bind(D::instant(at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    // Usage.

    /// See `UsageRepository::list_token_logs`.
    pub async fn list_token_logs(
        self,
        token: TokenId,
        filter: &LogFilter,
        keyset: Keyset<LogSortKey>,
    ) -> Result<Vec<TokenLogEntry>> {
        let sql = paginate(
            &format!(
                "SELECT * FROM token_logs WHERE token_id = $1 \
                 AND ($2{text} IS NULL OR outcome = $2) \
                 AND ($5{instant} IS NULL OR at >= $5) \
                 AND ($6{instant} IS NULL OR at <= $6) \
                 AND ($7{text} IS NULL OR action = $7)",
                text = D::TEXT_CAST,
                instant = D::INSTANT_CAST,
            ),
            "token_logs",
            &keyset,
            "$3",
            "$4",
            D::LOWEST_INSTANT,
        );
        let rows: Vec<LogRow<I>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(token.as_uuid())
            .bind(filter.outcome.map(|o| o.as_str()))
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .bind(D::opt_instant(filter.from))
            .bind(D::opt_instant(filter.to))
            .bind(filter.action.map(|a| a.as_str()))
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_entry(D::read_instant))
            .collect()
    }

    /// See `UsageRepository::record_usage`: one write transaction.
    pub async fn record_usage(self, batch: &UsageBatch) -> Result<()> {
        let mut tx = self.begin_write().await?;
        D::record_usage(&mut tx, batch).await?;
        tx.commit().await.fix()
    }

    /// Runs a pruning `DELETE` whose one parameter is an instant; how many rows went.
    async fn delete_before(self, sql: &'static str, at: OffsetDateTime) -> Result<u64> {
        let done = sqlx::query(sql)
            .bind(D::instant(at))
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done))
    }

    /// See `UsageRepository::prune_token_logs`.
    pub async fn prune_token_logs(self, before: OffsetDateTime) -> Result<u64> {
        self.delete_before("DELETE FROM token_logs WHERE at < $1", before)
            .await
    }

    // Messages.

    /// See `MessageRepository::enqueue`: one write transaction reads the submissions' tokens
    /// under the dialect's lock, claims idempotency keys, inserts what is accepted and
    /// commits. No submissions need no transaction.
    pub async fn enqueue(
        self,
        submissions: &[Submission],
        now: OffsetDateTime,
    ) -> Result<Vec<SubmissionOutcome>> {
        if submissions.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<Uuid> = submissions
            .iter()
            .map(|s| s.credential.token_id.as_uuid())
            .collect();
        ids.sort_unstable();
        ids.dedup();

        let mut tx = self.begin_write().await?;
        let locked = D::lock_tokens(&mut tx, &ids).await?;
        let mut outcomes = Vec::with_capacity(submissions.len());
        let mut accepted: Vec<&Message> = Vec::new();
        for submission in submissions {
            let token = locked.get(&submission.credential.token_id.as_uuid());
            let outcome = self.admit(&mut tx, submission, token, now).await?;
            if matches!(outcome, SubmissionOutcome::Accepted(_)) {
                accepted.extend(submission.messages.iter());
            }
            outcomes.push(outcome);
        }
        if !accepted.is_empty() {
            D::insert_messages(&mut tx, &accepted).await?;
        }
        tx.commit().await.fix()?;
        Ok(outcomes)
    }

    /// What becomes of `submission` at `now`, given its token as read under the send path's
    /// lock (`None`: no such project token). When the token accepts it and it carries an
    /// idempotency key, the key is claimed on `conn`, in the send path's transaction, so that
    /// the key and the messages commit together.
    async fn admit(
        self,
        conn: &mut DB::Connection,
        submission: &Submission,
        token: Option<&LockedToken<I>>,
        now: OffsetDateTime,
    ) -> Result<SubmissionOutcome> {
        let Some(slot) = token.and_then(|t| t.accepts(submission, &D::instant(now))) else {
            return Ok(SubmissionOutcome::TokenInactive);
        };
        if let Some(record) = &submission.idempotency
            && !self
                .claim_idempotency_key(conn, record, now - IDEMPOTENCY_TTL)
                .await?
        {
            return Ok(SubmissionOutcome::DuplicateIdempotencyKey);
        }
        Ok(SubmissionOutcome::Accepted(slot))
    }

    /// Inserts an idempotency record unless a live one (created at or after `cutoff`) holds
    /// the key; false when one does.
    async fn claim_idempotency_key(
        self,
        conn: &mut DB::Connection,
        record: &IdempotencyRecord,
        cutoff: OffsetDateTime,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (project_id, key, request_hash, status, response, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (project_id, key) DO UPDATE SET request_hash = excluded.request_hash, \
             status = excluded.status, response = excluded.response, \
             created_at = excluded.created_at \
             WHERE idempotency_keys.created_at < $7 \
             RETURNING 1",
        )
        .bind(record.project_id.as_uuid())
        .bind(record.key.as_str())
        .bind(record.request_hash.as_slice())
        .bind(i32::from(record.status))
        .bind(record.response.as_str())
        .bind(D::instant(record.created_at))
        .bind(D::instant(cutoff))
        .fetch_optional(conn)
        .await
        .fix()?;
        Ok(claimed.is_some())
    }

    /// See `MessageRepository::get_message`.
    pub async fn get_message(self, project: ProjectId, id: MessageId) -> Result<Option<Message>> {
        let row: Option<MessageRow<I>> = sqlx::query_as(concat!(
            "SELECT ",
            message_columns!(),
            " FROM ",
            messages_with_delivery!(),
            " WHERE messages.id = $1 AND project_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(project.as_uuid())
        .fetch_optional(self.reader())
        .await
        .fix()?;
        row.map(|r| r.into_message(D::read_instant)).transpose()
    }

    /// See `MessageRepository::get_idempotency_record`. Read on the writer, where enqueue
    /// claims the keys.
    pub async fn get_idempotency_record(
        self,
        project: ProjectId,
        key: &str,
        not_before: OffsetDateTime,
    ) -> Result<Option<IdempotencyRecord>> {
        let row: Option<IdempotencyRow<I>> = sqlx::query_as(
            "SELECT request_hash, status, response, created_at FROM idempotency_keys \
             WHERE project_id = $1 AND key = $2 AND created_at >= $3",
        )
        .bind(project.as_uuid())
        .bind(key)
        .bind(D::instant(not_before))
        .fetch_optional(self.writer())
        .await
        .fix()?;
        row.map(|r| r.into_record(project, key, D::read_instant))
            .transpose()
    }

    /// See `MessageRepository::prune_idempotency_records`.
    pub async fn prune_idempotency_records(self, before: OffsetDateTime) -> Result<u64> {
        self.delete_before("DELETE FROM idempotency_keys WHERE created_at < $1", before)
            .await
    }

    /// See `MessageRepository::list_messages`.
    pub async fn list_messages(
        self,
        project: ProjectId,
        status: Option<MessageStatus>,
        keyset: Keyset<MessageSortKey>,
    ) -> Result<Vec<Message>> {
        let sql = paginate(
            &format!(
                concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM ",
                    messages_with_delivery!(),
                    " WHERE project_id = $1 AND ($2{text} IS NULL OR d.status = $2)"
                ),
                text = D::TEXT_CAST,
            ),
            "messages",
            &keyset,
            "$3",
            "$4",
            D::LOWEST_INSTANT,
        );
        let rows: Vec<MessageRow<I>> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(project.as_uuid())
            .bind(status.map(MessageStatus::as_str))
            .bind(keyset.anchor)
            .bind(i64::from(keyset.limit))
            .fetch_all(self.reader())
            .await
            .fix()?;
        rows.into_iter()
            .map(|r| r.into_message(D::read_instant))
            .collect()
    }

    // Delivery.

    /// See `DeliveryRepository::claim_due`: on the writer, as the dialect claims
    /// (`Dialect::claim_rows`).
    pub async fn claim_due(
        self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        let lease = LeaseId::new();
        let mut conn = self.writer().acquire().await.fix()?;
        let rows = D::claim_rows(&mut conn, lease.as_uuid(), lease_until, now, limit).await?;
        drop(conn);
        // A row that cannot be read (edited by hand, or written by an incompatible version)
        // fails on its own: were the claim to fail as a whole, the same batch would be
        // claimed together again at every lease end and none of it delivered. Each row is
        // decoded by itself, and a decoder that panics on a value out of its range (sqlx's
        // timestamps do, on PostgreSQL's `infinity` or a year past 9999) fails only its row.
        let mut claims = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            // `message_columns!`: `id` is the first column of `messages` in both schemas.
            let Ok((id,)) = <(Uuid,)>::from_row(&row) else {
                // Without its id the row cannot even be failed: it comes back at its lease
                // end, and is logged each time.
                tracing::error!("a claimed message has no readable id; it is left to its lease");
                continue;
            };
            let id = MessageId::from_uuid(id);
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                MessageRow::<I>::from_row(&row)
            }))
            .unwrap_or_else(|_| {
                Err(sqlx::Error::Decode(
                    "a value is out of the range this program can represent".into(),
                ))
            })
            .fix()
            .and_then(|row| row.into_message(D::read_instant));
            match read {
                Ok(message) => claims.push(Claim { message, lease }),
                Err(error) => {
                    tracing::error!(message_id = %id, %error, "a claimed message cannot be read; it fails");
                    unreadable.push(Settle {
                        message: id,
                        lease,
                        settlement: Settlement::Failed(Reply {
                            code: None,
                            text: format!("the stored message cannot be read: {error}"),
                        }),
                        delivered_to: None,
                    });
                }
            }
        }
        // Failing them is best effort: the readable claims go on whatever happens here, and
        // an unreadable row left claimed comes back at its lease end.
        if !unreadable.is_empty()
            && let Err(error) = self.settle(&unreadable, now).await
        {
            tracing::error!(%error, "unreadable claimed messages could not be failed; they come back at their lease end");
        }
        claims.sort_by_key(|c| (c.message.first_due(), c.message.id));
        Ok(claims)
    }

    /// See `DeliveryRepository::begin_alone`.
    pub async fn begin_alone(
        self,
        message: MessageId,
        lease: LeaseId,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        self.move_lease_end(
            "UPDATE deliveries SET interrupted_alone = interrupted_alone + 1, due_at = $1 \
             WHERE message_id = $2 AND lease_id = $3 AND status = 'processed'",
            message,
            lease,
            lease_until,
        )
        .await
    }

    /// See `DeliveryRepository::end_lease`.
    pub async fn end_lease(
        self,
        message: MessageId,
        lease: LeaseId,
        now: OffsetDateTime,
    ) -> Result<bool> {
        self.move_lease_end(
            "UPDATE deliveries SET due_at = $1 \
             WHERE message_id = $2 AND lease_id = $3 AND status = 'processed'",
            message,
            lease,
            now,
        )
        .await
    }

    /// Runs `sql`, which moves the end of a claim's lease to `$1` for message `$2` while `$3`
    /// is still its lease; whether it was.
    async fn move_lease_end(
        self,
        sql: &'static str,
        message: MessageId,
        lease: LeaseId,
        until: OffsetDateTime,
    ) -> Result<bool> {
        let done = sqlx::query(sql)
            .bind(D::instant(until))
            .bind(message.as_uuid())
            .bind(lease.as_uuid())
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `DeliveryRepository::settle`: each status change conditional on its lease, and
    /// the token log entries of delivered and failed messages, in one write transaction.
    pub async fn settle(self, settles: &[Settle], now: OffsetDateTime) -> Result<Vec<bool>> {
        if settles.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let settled = D::settle_messages(&mut tx, settles, now).await?;
        // One log entry per token, channel and final reply code, naming every message it
        // covers (as a batch send's entry does): a row per message was a third of what
        // delivery cost the database.
        let mut log = UsageBatch::default();
        let mut entry_of: HashMap<(Uuid, &str, Outcome, u16), usize> = HashMap::new();
        for (settle, settled) in settles.iter().zip(&settled) {
            let Some((token, via)) = settled else {
                continue;
            };
            let outcome = match settle.settlement {
                Settlement::Delivered(_) => Outcome::Delivered,
                Settlement::Failed(_) => Outcome::Failed,
                Settlement::Deferred { .. } => continue,
            };
            let status = settle.settlement.reply().code.unwrap_or(0);
            let key = (*token, via.as_str(), outcome, status);
            if let Some(&at) = entry_of.get(&key) {
                log.entries[at].message_ids.push(settle.message);
                continue;
            }
            entry_of.insert(key, log.entries.len());
            log.entries.push(TokenLogEntry {
                id: LogEntryId::new(),
                token_id: TokenId::from_uuid(*token),
                at: now,
                ip: None,
                via: crate::decode::parse("via", via)?,
                action: Action::Delivery,
                outcome,
                status,
                message_ids: vec![settle.message],
                user_agent: None,
                credential: None,
                leak_url: None,
                actor: None,
            });
        }
        let done = settled.iter().map(Option::is_some).collect();
        if !log.entries.is_empty() {
            D::record_usage(&mut tx, &log).await?;
        }
        tx.commit().await.fix()?;
        Ok(done)
    }

    // Accounts.

    /// See `AccountRepository::insert_account`.
    pub async fn insert_account(self, account: &Account, password: &PasswordHash) -> Result<()> {
        sqlx::query(
            "INSERT INTO accounts (id, email, display_name, password_hash, created_at, \
             password_changed_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(account.id.as_uuid())
        .bind(account.email.as_str())
        .bind(account.display_name.as_str())
        .bind(password.as_str())
        .bind(D::instant(account.created_at))
        .bind(D::instant(account.password_changed_at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(())
    }

    /// See `AccountRepository::get_account`.
    pub async fn get_account(self, id: AccountId) -> Result<Option<Account>> {
        let row: Option<AccountRow<I>> = sqlx::query_as(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a WHERE a.id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(self.reader())
        .await
        .fix()?;
        row.map(|r| r.into_account(D::read_instant)).transpose()
    }

    /// See `AccountRepository::find_account_by_email`.
    pub async fn find_account_by_email(
        self,
        email: &Email,
    ) -> Result<Option<(Account, PasswordHash)>> {
        let row: Option<AccountWithHashRow<I>> = sqlx::query_as(concat!(
            "SELECT ",
            account_columns!(),
            ", a.password_hash FROM accounts a WHERE a.email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(self.reader())
        .await
        .fix()?;
        row.map(|r| r.into_account(D::read_instant)).transpose()
    }

    /// See `AccountRepository::get_password_hash`.
    pub async fn get_password_hash(self, id: AccountId) -> Result<Option<PasswordHash>> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
                .bind(id.as_uuid())
                .fetch_optional(self.reader())
                .await
                .fix()?;
        Ok(hash.map(PasswordHash::from_stored))
    }

    /// See `AccountRepository::set_password`: the new hash and the end of the account's other
    /// sessions commit together, so no session opened with the old password outlives it.
    pub async fn set_password(
        self,
        id: AccountId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        at: OffsetDateTime,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE accounts SET password_hash = $2, password_changed_at = $3 WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(hash.as_str())
        .bind(D::instant(at))
        .execute(&mut *tx)
        .await
        .fix()?;
        if D::rows_affected(&done) == 0 {
            tx.rollback().await.fix()?;
            return Ok(false);
        }
        self.delete_sessions_on(&mut tx, id, keep).await?;
        tx.commit().await.fix()?;
        Ok(true)
    }

    /// See `AccountRepository::list_accounts`.
    pub async fn list_accounts(self) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow<I>> = sqlx::query_as(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts a ORDER BY a.email"
        ))
        .fetch_all(self.reader())
        .await
        .fix()?;
        rows.into_iter()
            .map(|r| r.into_account(D::read_instant))
            .collect()
    }

    // Members.

    /// See `MemberRepository::insert_member`: an unknown team or account is not found.
    pub async fn insert_member(
        self,
        team: TeamId,
        account: AccountId,
        role: Role,
        at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_members (team_id, account_id, role, joined_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(team.as_uuid())
        .bind(account.as_uuid())
        .bind(role.as_str())
        .bind(D::instant(at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(())
    }

    /// See `MemberRepository::get_member`.
    pub async fn get_member(self, team: TeamId, account: AccountId) -> Result<Option<Member>> {
        let row: Option<MemberRow<I>> = sqlx::query_as(concat!(
            "SELECT m.team_id, m.role, m.joined_at, ",
            account_columns!(),
            " FROM team_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.team_id = $1 AND m.account_id = $2"
        ))
        .bind(team.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(self.reader())
        .await
        .fix()?;
        row.map(|r| r.into_member(D::read_instant)).transpose()
    }

    /// See `MemberRepository::list_members`: owners first, then everyone by email.
    pub async fn list_members(self, team: TeamId) -> Result<Vec<Member>> {
        let rows: Vec<MemberRow<I>> = sqlx::query_as(concat!(
            "SELECT m.team_id, m.role, m.joined_at, ",
            account_columns!(),
            " FROM team_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.team_id = $1 \
             ORDER BY CASE WHEN m.role = 'owner' THEN 0 ELSE 1 END, a.email"
        ))
        .bind(team.as_uuid())
        .fetch_all(self.reader())
        .await
        .fix()?;
        rows.into_iter()
            .map(|r| r.into_member(D::read_instant))
            .collect()
    }

    /// See `MemberRepository::list_memberships`.
    pub async fn list_memberships(self, account: AccountId) -> Result<Vec<(Team, Role)>> {
        let rows: Vec<MembershipRow<I>> = sqlx::query_as(
            "SELECT t.*, m.role FROM team_members m JOIN teams t ON t.id = m.team_id \
             WHERE m.account_id = $1 ORDER BY t.name, t.id",
        )
        .bind(account.as_uuid())
        .fetch_all(self.reader())
        .await
        .fix()?;
        rows.into_iter()
            .map(|r| r.into_membership(D::read_instant))
            .collect()
    }

    /// See `MemberRepository::set_member_role`. The role is all a member row holds besides
    /// when it joined, so `at` is not stored (the audit log says when roles changed).
    pub async fn set_member_role(
        self,
        team: TeamId,
        account: AccountId,
        role: Role,
        _at: OffsetDateTime,
    ) -> Result<MemberChange> {
        self.change_member(team, account, Some(role)).await
    }

    /// See `MemberRepository::delete_member`.
    pub async fn delete_member(self, team: TeamId, account: AccountId) -> Result<MemberChange> {
        self.change_member(team, account, None).await
    }

    /// Gives a member of `team` the role `role`, or removes them (`None`), unless that takes
    /// away the team's last owner. One write transaction that first locks the team's row
    /// (`FOR UPDATE` on PostgreSQL; SQLite's write lock is already held): every demotion and
    /// removal in the team takes the same lock, so each counts the owners left by the ones
    /// before it, and two concurrent demotions of the last two owners cannot both succeed.
    /// (Adding or promoting owners needs no lock: it never lowers the count.)
    async fn change_member(
        self,
        team: TeamId,
        account: AccountId,
        role: Option<Role>,
    ) -> Result<MemberChange> {
        let mut tx = self.begin_write().await?;
        let lock = format!("SELECT id FROM teams WHERE id = $1{}", D::FOR_UPDATE);
        let locked: Option<Uuid> = sqlx::query_scalar(AssertSqlSafe(lock))
            .bind(team.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .fix()?;
        let current: Option<String> = if locked.is_some() {
            sqlx::query_scalar(
                "SELECT role FROM team_members WHERE team_id = $1 AND account_id = $2",
            )
            .bind(team.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&mut *tx)
            .await
            .fix()?
        } else {
            None
        };
        let Some(current) = current else {
            tx.rollback().await.fix()?;
            return Ok(MemberChange::NotFound);
        };
        let current: Role = crate::decode::parse("role", &current)?;
        if current == Role::Owner && role != Some(Role::Owner) {
            let owners: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM team_members WHERE team_id = $1 AND role = 'owner'",
            )
            .bind(team.as_uuid())
            .fetch_one(&mut *tx)
            .await
            .fix()?;
            if owners <= 1 {
                tx.rollback().await.fix()?;
                return Ok(MemberChange::LastOwner);
            }
        }
        match role {
            Some(role) => {
                sqlx::query(
                    "UPDATE team_members SET role = $3 WHERE team_id = $1 AND account_id = $2",
                )
                .bind(team.as_uuid())
                .bind(account.as_uuid())
                .bind(role.as_str())
                .execute(&mut *tx)
                .await
            }
            None => {
                sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND account_id = $2")
                    .bind(team.as_uuid())
                    .bind(account.as_uuid())
                    .execute(&mut *tx)
                    .await
            }
        }
        .fix()?;
        tx.commit().await.fix()?;
        Ok(MemberChange::Done)
    }

    // Sessions.

    /// See `SessionRepository::insert_session`. An idle expiry past the absolute one is stored
    /// as the absolute one (the session ends at the earlier of the two either way).
    pub async fn insert_session(self, session: &Session, digest: &TokenDigest) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, digest, account_id, created_at, last_seen_at, \
             idle_expires_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session.id.as_uuid())
        .bind(digest.as_bytes().as_slice())
        .bind(session.account_id.as_uuid())
        .bind(D::instant(session.created_at))
        .bind(D::instant(session.last_seen_at))
        .bind(D::instant(session.idle_expires_at.min(session.expires_at)))
        .bind(D::instant(session.expires_at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(())
    }

    /// See `SessionRepository::find_session`.
    pub async fn find_session(self, digest: &TokenDigest) -> Result<Option<Session>> {
        let row: Option<SessionRow<I>> = sqlx::query_as(
            "SELECT id, account_id, created_at, last_seen_at, idle_expires_at, expires_at \
             FROM sessions WHERE digest = $1",
        )
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(self.reader())
        .await
        .fix()?;
        row.map(|r| r.into_session(D::read_instant)).transpose()
    }

    /// See `SessionRepository::touch_session`: both instants only move forward, and the idle
    /// expiry stops at the absolute one.
    pub async fn touch_session(
        self,
        id: SessionId,
        seen_at: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET \
             last_seen_at = CASE WHEN last_seen_at < $2 THEN $2 ELSE last_seen_at END, \
             idle_expires_at = CASE WHEN $3 >= expires_at THEN expires_at \
             WHEN $3 > idle_expires_at THEN $3 ELSE idle_expires_at END \
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(D::instant(seen_at))
        .bind(D::instant(idle_expires_at))
        .execute(self.writer())
        .await
        .fix()?;
        Ok(())
    }

    /// See `SessionRepository::delete_session`.
    pub async fn delete_session(self, id: SessionId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.as_uuid())
            .execute(self.writer())
            .await
            .fix()?;
        Ok(D::rows_affected(&done) == 1)
    }

    /// See `SessionRepository::delete_account_sessions`.
    pub async fn delete_account_sessions(
        self,
        account: AccountId,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let mut conn = self.writer().acquire().await.fix()?;
        self.delete_sessions_on(&mut conn, account, keep).await
    }

    /// Deletes the sessions of `account` but `keep` on `conn`; how many.
    async fn delete_sessions_on(
        self,
        conn: &mut DB::Connection,
        account: AccountId,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let done = match keep {
            Some(keep) => {
                sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
                    .bind(account.as_uuid())
                    .bind(keep.as_uuid())
                    .execute(conn)
                    .await
            }
            None => {
                sqlx::query("DELETE FROM sessions WHERE account_id = $1")
                    .bind(account.as_uuid())
                    .execute(conn)
                    .await
            }
        }
        .fix()?;
        Ok(D::rows_affected(&done))
    }

    /// See `SessionRepository::prune_sessions`. The idle expiry is never stored past the
    /// absolute one, so it alone says whether a session has ended.
    pub async fn prune_sessions(self, now: OffsetDateTime) -> Result<u64> {
        self.delete_before("DELETE FROM sessions WHERE idle_expires_at <= $1", now)
            .await
    }

    // Failed logins.

    /// See `LoginThrottleRepository::record_login_failures`: one write transaction.
    pub async fn record_login_failures(self, keys: &[String], at: OffsetDateTime) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key.as_str())
                .bind(D::instant(at))
                .execute(&mut *tx)
                .await
                .fix()?;
        }
        tx.commit().await.fix()
    }

    /// See `LoginThrottleRepository::count_login_failures`.
    pub async fn count_login_failures(
        self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>)> {
        let row: FailureCountRow<I> = sqlx::query_as(
            "SELECT count(*) AS failures, min(at) AS oldest FROM login_failures \
             WHERE key = $1 AND at >= $2",
        )
        .bind(key)
        .bind(D::instant(since))
        .fetch_one(self.reader())
        .await
        .fix()?;
        row.into_count(D::read_instant)
    }

    /// See `LoginThrottleRepository::clear_login_failures`.
    pub async fn clear_login_failures(self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(key)
            .execute(self.writer())
            .await
            .fix()?;
        Ok(())
    }

    /// See `LoginThrottleRepository::prune_login_failures`.
    pub async fn prune_login_failures(self, before: OffsetDateTime) -> Result<u64> {
        self.delete_before("DELETE FROM login_failures WHERE at < $1", before)
            .await
    }

    // Audit log.

    /// See `AuditRepository::append_audit`: the entry and the token's log entry in one write
    /// transaction. The token log entry goes through the dialect's usage write with no "last
    /// used" update: a member's change is not a use of the token's value.
    pub async fn append_audit(
        self,
        entry: &AuditEntry,
        token_log: Option<TokenLogEntry>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO audit_log (id, team_id, actor_id, actor_email, action, target, detail, \
             ip, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(entry.id.as_uuid())
        .bind(entry.team_id.map(|t| t.as_uuid()))
        .bind(entry.actor_id.map(|a| a.as_uuid()))
        .bind(entry.actor_email.as_deref())
        .bind(entry.action.as_str())
        .bind(entry.target.as_deref())
        .bind(entry.detail.as_deref())
        .bind(entry.ip.map(|ip| ip.to_string()))
        .bind(D::instant(entry.at))
        .execute(&mut *tx)
        .await
        .fix()?;
        if let Some(log) = token_log {
            let batch = UsageBatch {
                entries: vec![log],
                last_use: Vec::new(),
            };
            D::record_usage(&mut tx, &batch).await?;
        }
        tx.commit().await.fix()
    }

    /// See `AuditRepository::list_audit`: newest first (ids are time-ordered).
    pub async fn list_audit(
        self,
        team: TeamId,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_page("team_id", team.as_uuid(), before, limit)
            .await
    }

    /// See `AuditRepository::list_account_audit`: the entries the account is the actor of.
    pub async fn list_account_audit(
        self,
        account: AccountId,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.audit_page("actor_id", account.as_uuid(), before, limit)
            .await
    }

    /// A page of the audit entries whose `column` (`team_id` or `actor_id`, never input) is
    /// `value`, newest first, older than `before` when given.
    async fn audit_page(
        self,
        column: &'static str,
        value: Uuid,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow<I>> = match before {
            Some(before) => {
                let sql = format!(
                    "SELECT * FROM audit_log WHERE {column} = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                );
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(value)
                    .bind(before.as_uuid())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT * FROM audit_log WHERE {column} = $1 ORDER BY id DESC LIMIT $2"
                );
                sqlx::query_as(AssertSqlSafe(sql))
                    .bind(value)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await
            }
        }
        .fix()?;
        rows.into_iter()
            .map(|r| r.into_entry(D::read_instant))
            .collect()
    }
}
