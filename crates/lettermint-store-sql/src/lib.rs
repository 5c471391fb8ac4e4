//! What the SQL stores share.
//!
//! `lettermint-store-sqlite` and `lettermint-store-pg` speak the same schema in two dialects.
//! Everything that does not depend on the dialect lives here once: the repository operations
//! ([`repos`], over a store's [`Backend`](backend::Backend)), the SQL of both token kinds
//! ([`tokens`]) and of project pages ([`projects`]), the row types ([`rows`]) and the mapping of
//! stored values into domain types ([`decode`]), keyset pagination ([`keyset`]) and the mapping
//! of driver errors ([`error`]). What differs is named by [`Dialect`](dialect::Dialect) (how an
//! instant is stored, a few phrases of SQL, row locks, the bulk writes of messages and usage)
//! and [`Backend`](backend::Backend) (which pool serves reads and which writes).

#![warn(missing_docs)]

pub mod backend;
pub mod decode;
pub mod dialect;
pub mod error;
pub mod keyset;
pub mod projects;
pub mod repos;
pub mod rows;
pub mod tokens;

#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use lettermint_core::id::{
        AccountId, AuditEntryId, LeaseId, MessageId, ProjectId, SessionId, TeamId, TokenId,
    };
    pub use lettermint_core::page::{
        Keyset, LogSortKey, MessageSortKey, ProjectSortKey, TokenSortKey,
    };
    pub use lettermint_core::repo::{
        AccountRepository, AuditRepository, DeliveryRepository, LoginThrottleRepository,
        MemberChange, MemberRepository, MessageRepository, NewProjectToken, ProjectRepository,
        ProjectWithFirstToken, RouteRepository, SessionRepository, StoreHealth, TeamRepository,
        TokenRepository, UsageRepository,
    };
    pub use lettermint_core::{
        Account, AuditEntry, Claim, Email, IdempotencyRecord, IpAllowlist, LogFilter, Member,
        Message, MessageStatus, Name, PasswordHash, Project, Result, Role, Route, Session, Settle,
        Submission, SubmissionOutcome, Team, Token, TokenDigest, TokenHint, TokenLogEntry,
        TokenStatusFilter, UsageBatch,
    };
    pub use sqlx::Pool;
    pub use time::OffsetDateTime;
}

/// Implements every repository trait of `lettermint-core` for a store type that implements
/// [`Backend`](backend::Backend), with the shared operations of [`repos::Sql`]; and gives the type the inherent methods both
/// stores offer (`migrate`, `pool`, `close`).
///
/// A macro only because of the orphan rule: the traits belong to `lettermint-core`, so this
/// crate cannot implement them for every `Backend`, and each store crate must write the
/// implementations for its own type. Every method here is one call; the logic, and the bounds
/// that say what it needs of a database, are typed code in [`repos`].
///
/// ```text
/// lettermint_store_sql::repositories!(PgStore);
/// ```
#[macro_export]
macro_rules! repositories {
    ($store:ty) => {
        const _: () = {
            use $crate::__private::*;
            use $crate::backend::Backend as _;
            use $crate::repos::Sql;
            use $crate::tokens::StoredKind;

            impl $store {
                /// Applies pending migrations (idempotent; PostgreSQL takes an advisory lock,
                /// so several processes may migrate at once).
                pub async fn migrate(&self) -> Result<()> {
                    Sql(self).migrate().await
                }

                /// The pool for reads (on PostgreSQL, the only pool), for benchmarks and tools
                /// that measure the store itself.
                #[must_use]
                pub fn pool(&self) -> &Pool<$crate::backend::Db<$store>> {
                    self.pools().reader()
                }

                /// Closes every connection.
                pub async fn close(&self) {
                    self.pools().close().await
                }
            }

            #[async_trait]
            impl DeliveryRepository for $store {
                async fn claim_due(
                    &self,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                    limit: u32,
                ) -> Result<Vec<Claim>> {
                    Sql(self).claim_due(now, lease_until, limit).await
                }

                async fn settle(
                    &self,
                    settles: &[Settle],
                    now: OffsetDateTime,
                ) -> Result<Vec<bool>> {
                    Sql(self).settle(settles, now).await
                }

                async fn begin_alone(
                    &self,
                    message: MessageId,
                    lease: LeaseId,
                    lease_until: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self).begin_alone(message, lease, lease_until).await
                }

                async fn end_lease(
                    &self,
                    message: MessageId,
                    lease: LeaseId,
                    now: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self).end_lease(message, lease, now).await
                }
            }

            #[async_trait]
            impl StoreHealth for $store {
                async fn ping(&self) -> Result<()> {
                    Sql(self).ping().await
                }
            }

            #[async_trait]
            impl TeamRepository for $store {
                async fn insert_team(&self, team: &Team) -> Result<()> {
                    Sql(self).insert_team(team).await
                }

                async fn get_team(&self, id: TeamId) -> Result<Option<Team>> {
                    Sql(self).get_team(id).await
                }

                async fn list_teams(&self) -> Result<Vec<Team>> {
                    Sql(self).list_teams().await
                }

                async fn rename_team(
                    &self,
                    id: TeamId,
                    name: &Name,
                    at: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self).rename_team(id, name, at).await
                }

                async fn count_projects(&self, id: TeamId) -> Result<u64> {
                    Sql(self).count_projects(id).await
                }
            }

            #[async_trait]
            impl ProjectRepository for $store {
                async fn insert_project(
                    &self,
                    project: &Project,
                    default_route: &Route,
                    first_token: Option<NewProjectToken>,
                ) -> Result<()> {
                    Sql(self)
                        .insert_project(project, default_route, first_token)
                        .await
                }

                async fn get_project(&self, id: ProjectId) -> Result<Option<Project>> {
                    Sql(self).get_project(id).await
                }

                async fn list_projects(
                    &self,
                    team: TeamId,
                    search: Option<String>,
                    keyset: Keyset<ProjectSortKey>,
                ) -> Result<Vec<Project>> {
                    Sql(self).list_projects(team, search, keyset).await
                }

                async fn list_projects_with_first_token(
                    &self,
                    team: TeamId,
                    search: Option<String>,
                    now: OffsetDateTime,
                    keyset: Keyset<ProjectSortKey>,
                ) -> Result<Vec<ProjectWithFirstToken>> {
                    Sql(self)
                        .list_projects_with_first_token(team, search, now, keyset)
                        .await
                }

                async fn update_project(&self, project: &Project) -> Result<bool> {
                    Sql(self).update_project(project).await
                }

                async fn delete_project(&self, id: ProjectId) -> Result<bool> {
                    Sql(self).delete_project(id).await
                }
            }

            #[async_trait]
            impl RouteRepository for $store {
                async fn get_route_by_slug(
                    &self,
                    project: ProjectId,
                    slug: &str,
                ) -> Result<Option<Route>> {
                    Sql(self).get_route_by_slug(project, slug).await
                }

                async fn get_default_route(&self, project: ProjectId) -> Result<Option<Route>> {
                    Sql(self).get_default_route(project).await
                }

                async fn list_routes(&self, project: ProjectId) -> Result<Vec<Route>> {
                    Sql(self).list_routes(project).await
                }
            }

            #[async_trait]
            impl<K: StoredKind> TokenRepository<K> for $store {
                async fn owner_team(&self, owner: K::Id) -> Result<Option<TeamId>> {
                    Sql(self).owner_team::<K>(owner).await
                }

                async fn insert_token(&self, token: &Token<K>, digest: &TokenDigest) -> Result<()> {
                    Sql(self).insert_token(token, digest).await
                }

                async fn get_token(&self, id: TokenId) -> Result<Option<Token<K>>> {
                    Sql(self).get_token::<K>(id).await
                }

                async fn find_token_by_digest(
                    &self,
                    digest: &TokenDigest,
                ) -> Result<Option<K::Grant>> {
                    Sql(self).find_token_by_digest::<K>(digest).await
                }

                async fn list_tokens(
                    &self,
                    owner: K::Id,
                    status: TokenStatusFilter,
                    now: OffsetDateTime,
                    keyset: Keyset<TokenSortKey>,
                ) -> Result<Vec<Token<K>>> {
                    Sql(self).list_tokens::<K>(owner, status, now, keyset).await
                }

                async fn rename_token(
                    &self,
                    id: TokenId,
                    name: &Name,
                    at: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self).rename_token::<K>(id, name, at).await
                }

                async fn replace_token_secret(
                    &self,
                    id: TokenId,
                    digest: &TokenDigest,
                    hint: &TokenHint,
                    at: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self)
                        .replace_token_secret::<K>(id, digest, hint, at)
                        .await
                }

                async fn rotate_token_secret(
                    &self,
                    id: TokenId,
                    digest: &TokenDigest,
                    hint: &TokenHint,
                    at: OffsetDateTime,
                    previous_until: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self)
                        .rotate_token_secret::<K>(id, digest, hint, at, previous_until)
                        .await
                }

                async fn set_token_allowlist(
                    &self,
                    id: TokenId,
                    allowed_ips: &IpAllowlist,
                    at: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self)
                        .set_token_allowlist::<K>(id, allowed_ips, at)
                        .await
                }

                async fn revoke_token(&self, id: TokenId, at: OffsetDateTime) -> Result<bool> {
                    Sql(self).revoke_token::<K>(id, at).await
                }

                async fn list_expiring_tokens(
                    &self,
                    owner: Option<K::Id>,
                    now: OffsetDateTime,
                    until: OffsetDateTime,
                ) -> Result<Vec<Token<K>>> {
                    Sql(self).list_expiring_tokens::<K>(owner, now, until).await
                }

                async fn count_expiring_tokens(
                    &self,
                    now: OffsetDateTime,
                    until: OffsetDateTime,
                ) -> Result<u64> {
                    Sql(self).count_expiring_tokens::<K>(now, until).await
                }
            }

            #[async_trait]
            impl UsageRepository for $store {
                async fn record_usage(&self, batch: &UsageBatch) -> Result<()> {
                    Sql(self).record_usage(batch).await
                }

                async fn list_token_logs(
                    &self,
                    token: TokenId,
                    filter: &LogFilter,
                    keyset: Keyset<LogSortKey>,
                ) -> Result<Vec<TokenLogEntry>> {
                    Sql(self).list_token_logs(token, filter, keyset).await
                }

                async fn prune_token_logs(&self, before: OffsetDateTime) -> Result<u64> {
                    Sql(self).prune_token_logs(before).await
                }
            }

            #[async_trait]
            impl MessageRepository for $store {
                async fn enqueue(
                    &self,
                    submissions: &[Submission],
                    now: OffsetDateTime,
                ) -> Result<Vec<SubmissionOutcome>> {
                    Sql(self).enqueue(submissions, now).await
                }

                async fn get_message(
                    &self,
                    project: ProjectId,
                    id: MessageId,
                ) -> Result<Option<Message>> {
                    Sql(self).get_message(project, id).await
                }

                async fn list_messages(
                    &self,
                    project: ProjectId,
                    status: Option<MessageStatus>,
                    keyset: Keyset<MessageSortKey>,
                ) -> Result<Vec<Message>> {
                    Sql(self).list_messages(project, status, keyset).await
                }

                async fn get_idempotency_record(
                    &self,
                    project: ProjectId,
                    key: &str,
                    not_before: OffsetDateTime,
                ) -> Result<Option<IdempotencyRecord>> {
                    Sql(self)
                        .get_idempotency_record(project, key, not_before)
                        .await
                }

                async fn prune_idempotency_records(&self, before: OffsetDateTime) -> Result<u64> {
                    Sql(self).prune_idempotency_records(before).await
                }
            }

            #[async_trait]
            impl AccountRepository for $store {
                async fn insert_account(
                    &self,
                    account: &Account,
                    password: &PasswordHash,
                ) -> Result<()> {
                    Sql(self).insert_account(account, password).await
                }

                async fn get_account(&self, id: AccountId) -> Result<Option<Account>> {
                    Sql(self).get_account(id).await
                }

                async fn find_account_by_email(
                    &self,
                    email: &Email,
                ) -> Result<Option<(Account, PasswordHash)>> {
                    Sql(self).find_account_by_email(email).await
                }

                async fn get_password_hash(&self, id: AccountId) -> Result<Option<PasswordHash>> {
                    Sql(self).get_password_hash(id).await
                }

                async fn set_password(
                    &self,
                    id: AccountId,
                    hash: &PasswordHash,
                    keep: Option<SessionId>,
                    at: OffsetDateTime,
                ) -> Result<bool> {
                    Sql(self).set_password(id, hash, keep, at).await
                }

                async fn list_accounts(&self) -> Result<Vec<Account>> {
                    Sql(self).list_accounts().await
                }
            }

            #[async_trait]
            impl MemberRepository for $store {
                async fn insert_member(
                    &self,
                    team: TeamId,
                    account: AccountId,
                    role: Role,
                    at: OffsetDateTime,
                ) -> Result<()> {
                    Sql(self).insert_member(team, account, role, at).await
                }

                async fn get_member(
                    &self,
                    team: TeamId,
                    account: AccountId,
                ) -> Result<Option<Member>> {
                    Sql(self).get_member(team, account).await
                }

                async fn list_members(&self, team: TeamId) -> Result<Vec<Member>> {
                    Sql(self).list_members(team).await
                }

                async fn list_memberships(&self, account: AccountId) -> Result<Vec<(Team, Role)>> {
                    Sql(self).list_memberships(account).await
                }

                async fn set_member_role(
                    &self,
                    team: TeamId,
                    account: AccountId,
                    role: Role,
                    at: OffsetDateTime,
                ) -> Result<MemberChange> {
                    Sql(self).set_member_role(team, account, role, at).await
                }

                async fn delete_member(
                    &self,
                    team: TeamId,
                    account: AccountId,
                ) -> Result<MemberChange> {
                    Sql(self).delete_member(team, account).await
                }
            }

            #[async_trait]
            impl SessionRepository for $store {
                async fn insert_session(
                    &self,
                    session: &Session,
                    digest: &TokenDigest,
                ) -> Result<()> {
                    Sql(self).insert_session(session, digest).await
                }

                async fn find_session(&self, digest: &TokenDigest) -> Result<Option<Session>> {
                    Sql(self).find_session(digest).await
                }

                async fn touch_session(
                    &self,
                    id: SessionId,
                    seen_at: OffsetDateTime,
                    idle_expires_at: OffsetDateTime,
                ) -> Result<()> {
                    Sql(self).touch_session(id, seen_at, idle_expires_at).await
                }

                async fn delete_session(&self, id: SessionId) -> Result<bool> {
                    Sql(self).delete_session(id).await
                }

                async fn delete_account_sessions(
                    &self,
                    account: AccountId,
                    keep: Option<SessionId>,
                ) -> Result<u64> {
                    Sql(self).delete_account_sessions(account, keep).await
                }

                async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64> {
                    Sql(self).prune_sessions(now).await
                }
            }

            #[async_trait]
            impl LoginThrottleRepository for $store {
                async fn record_login_failures(
                    &self,
                    keys: &[String],
                    at: OffsetDateTime,
                ) -> Result<()> {
                    Sql(self).record_login_failures(keys, at).await
                }

                async fn count_login_failures(
                    &self,
                    key: &str,
                    since: OffsetDateTime,
                ) -> Result<(u64, Option<OffsetDateTime>)> {
                    Sql(self).count_login_failures(key, since).await
                }

                async fn clear_login_failures(&self, key: &str) -> Result<()> {
                    Sql(self).clear_login_failures(key).await
                }

                async fn prune_login_failures(&self, before: OffsetDateTime) -> Result<u64> {
                    Sql(self).prune_login_failures(before).await
                }
            }

            #[async_trait]
            impl AuditRepository for $store {
                async fn append_audit(
                    &self,
                    entry: &AuditEntry,
                    token_log: Option<TokenLogEntry>,
                ) -> Result<()> {
                    Sql(self).append_audit(entry, token_log).await
                }

                async fn list_audit(
                    &self,
                    team: TeamId,
                    before: Option<AuditEntryId>,
                    limit: u32,
                ) -> Result<Vec<AuditEntry>> {
                    Sql(self).list_audit(team, before, limit).await
                }

                async fn list_account_audit(
                    &self,
                    account: AccountId,
                    before: Option<AuditEntryId>,
                    limit: u32,
                ) -> Result<Vec<AuditEntry>> {
                    Sql(self).list_account_audit(account, before, limit).await
                }
            }
        };
    };
}
