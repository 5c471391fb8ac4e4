//! Repository traits: what the services need from a store, one small trait per concern.
//!
//! Stores implement all of them and, through the blanket impl, [`Store`]. Every method that
//! changes a token's secret or state is a single atomic operation, so two processes racing on
//! the same token cannot both win.

use async_trait::async_trait;
use time::OffsetDateTime;

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

use crate::account::{Account, Email, Member, PasswordHash, Role};
use crate::allowlist::IpAllowlist;
use crate::audit::AuditEntry;
use crate::delivery::{Claim, Settle};
use crate::error::Result;
use crate::id::{
    AccountId, AuditEntryId, LeaseId, MessageId, ProjectId, SessionId, TeamId, TokenId,
};
use crate::kind::{ForProject, ForTeam, Owner};
use crate::message::{IdempotencyRecord, Message, MessageStatus, Submission, SubmissionOutcome};
use crate::model::{Project, ProjectToken, Route, Team, TeamToken, Token, TokenStatusFilter};
use crate::name::Name;
use crate::page::{Keyset, LogSortKey, MessageSortKey, ProjectSortKey, TokenSortKey};
use crate::rotation::CredentialSlot;
use crate::session::Session;
use crate::token::{TokenDigest, TokenHint};
use crate::usage::{LogFilter, TokenLogEntry, UsageBatch};

/// Teams.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait TeamRepository: Send + Sync {
    /// Inserts a team.
    async fn insert_team(&self, team: &Team) -> Result<()>;
    /// A team by id.
    async fn get_team(&self, id: TeamId) -> Result<Option<Team>>;
    /// Every team, by name.
    async fn list_teams(&self) -> Result<Vec<Team>>;
    /// Renames a team; false when it does not exist.
    async fn rename_team(&self, id: TeamId, name: &Name, at: OffsetDateTime) -> Result<bool>;
    /// How many projects the team has.
    async fn count_projects(&self, id: TeamId) -> Result<u64>;
}

/// A project's first token, inserted with the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProjectToken {
    /// The token.
    pub token: ProjectToken,
    /// Its digest.
    pub digest: TokenDigest,
}

/// Projects.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait ProjectRepository: Send + Sync {
    /// Inserts a project, its default route and optionally its first token, atomically.
    async fn insert_project(
        &self,
        project: &Project,
        default_route: &Route,
        first_token: Option<NewProjectToken>,
    ) -> Result<()>;
    /// A project by id, whatever its team.
    async fn get_project(&self, id: ProjectId) -> Result<Option<Project>>;
    /// A team's projects whose name contains `search` (case-insensitive), in keyset order.
    async fn list_projects(
        &self,
        team: TeamId,
        search: Option<String>,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<Project>>;
    /// The same page as [`Self::list_projects`], each project with its first active token at
    /// `now` (the oldest by creation, ties broken by id), read in one query.
    async fn list_projects_with_first_token(
        &self,
        team: TeamId,
        search: Option<String>,
        now: OffsetDateTime,
        keyset: Keyset<ProjectSortKey>,
    ) -> Result<Vec<ProjectWithFirstToken>>;
    /// Saves a project's name and `smtp_enabled`; false when it does not exist.
    async fn update_project(&self, project: &Project) -> Result<bool>;
    /// Deletes a project with its routes, tokens, their logs and its messages; false when it did
    /// not exist.
    async fn delete_project(&self, id: ProjectId) -> Result<bool>;
}

/// A project with its first active token: what the Team API shows of a project's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectWithFirstToken {
    /// The project.
    pub project: Project,
    /// Its oldest active token, if it has an active one.
    pub first_token: Option<ProjectToken>,
}

/// Routes.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait RouteRepository: Send + Sync {
    /// A project's route by slug.
    async fn get_route_by_slug(&self, project: ProjectId, slug: &str) -> Result<Option<Route>>;
    /// A project's default route.
    async fn get_default_route(&self, project: ProjectId) -> Result<Option<Route>>;
    /// A project's routes, by slug.
    async fn list_routes(&self, project: ProjectId) -> Result<Vec<Route>>;
}

/// What authentication needs about a project token, read in one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectTokenGrant {
    /// The token.
    pub token: ProjectToken,
    /// Team of its project.
    pub team_id: TeamId,
    /// Whether its project allows SMTP.
    pub smtp_enabled: bool,
    /// Which of the token's values the digest is.
    pub slot: CredentialSlot,
}

/// What authentication needs about a team token, read in one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamTokenGrant {
    /// The token.
    pub token: TeamToken,
    /// Which of the token's values the digest is.
    pub slot: CredentialSlot,
}

/// Tokens of one kind ([`ForProject`] or [`ForTeam`]); a store implements it for both.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait TokenRepository<K: Owner>: Send + Sync {
    /// The team of the token owner `owner` (a project's team, or the team itself); `None` when
    /// no such owner exists.
    async fn owner_team(&self, owner: K::Id) -> Result<Option<TeamId>>;
    /// Inserts a token. A non-revoked token of the same owner with the same name is a
    /// [`crate::Error::Conflict`].
    async fn insert_token(&self, token: &Token<K>, digest: &TokenDigest) -> Result<()>;
    /// A token by id.
    async fn get_token(&self, id: TokenId) -> Result<Option<Token<K>>>;
    /// The token whose current digest, or previous digest (kept by a rotation with an overlap,
    /// whether or not the overlap has ended), is `digest`, with what authentication needs and
    /// which of the two it is. One indexed lookup.
    async fn find_token_by_digest(&self, digest: &TokenDigest) -> Result<Option<K::Grant>>;
    /// An owner's tokens with `status` at `now`, in keyset order.
    async fn list_tokens(
        &self,
        owner: K::Id,
        status: TokenStatusFilter,
        now: OffsetDateTime,
        keyset: Keyset<TokenSortKey>,
    ) -> Result<Vec<Token<K>>>;
    /// Renames a non-revoked token; false when there is none with this id. A name clash is a
    /// [`crate::Error::Conflict`].
    async fn rename_token(&self, id: TokenId, name: &Name, at: OffsetDateTime) -> Result<bool>;
    /// Replaces the digest and hint of a non-revoked token in one statement, ordered against
    /// every message insert that holds the token (the old digest is dead when this returns);
    /// false when there is no such non-revoked token. Any previous digest is dropped with it
    /// (regenerating ends a rotation's overlap).
    async fn replace_token_secret(
        &self,
        id: TokenId,
        digest: &TokenDigest,
        hint: &TokenHint,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Rotates a non-revoked token: the current digest becomes the previous one, valid until
    /// `previous_until`, and `digest` the current one, in one statement ordered like
    /// [`TokenRepository::replace_token_secret`] (a digest that was previous before is dead when
    /// this returns); false when there is no such non-revoked token.
    async fn rotate_token_secret(
        &self,
        id: TokenId,
        digest: &TokenDigest,
        hint: &TokenHint,
        at: OffsetDateTime,
        previous_until: OffsetDateTime,
    ) -> Result<bool>;
    /// Replaces the IP allowlist of a non-revoked token; false when there is none with this id.
    /// Ordered like [`TokenRepository::replace_token_secret`]: no message is accepted under the
    /// old list once this returned.
    async fn set_token_allowlist(
        &self,
        id: TokenId,
        allowed_ips: &IpAllowlist,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Revokes a non-revoked token, ordered like [`TokenRepository::replace_token_secret`];
    /// false when there is none with this id.
    async fn revoke_token(&self, id: TokenId, at: OffsetDateTime) -> Result<bool>;
    /// Tokens active at `now` (not revoked, not expired) that expire at or before `until`, of
    /// `owner` or of every owner, soonest first.
    async fn list_expiring_tokens(
        &self,
        owner: Option<K::Id>,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<Token<K>>>;
    /// How many tokens of every owner are active at `now` and expire at or before `until`, in
    /// one query.
    async fn count_expiring_tokens(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<u64>;
}

impl<K: Owner> std::fmt::Debug for dyn TokenRepository<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenRepository<{}>", K::OWNER_NAME)
    }
}

/// Token usage and logs.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait UsageRepository: Send + Sync {
    /// Appends the batch's log entries and moves each token's "last used" forward (never
    /// backward), in one transaction.
    async fn record_usage(&self, batch: &UsageBatch) -> Result<()>;
    /// A token's log entries matching `filter`, in keyset order.
    async fn list_token_logs(
        &self,
        token: TokenId,
        filter: &LogFilter,
        keyset: Keyset<LogSortKey>,
    ) -> Result<Vec<TokenLogEntry>>;
    /// Deletes log entries older than `before`; how many.
    async fn prune_token_logs(&self, before: OffsetDateTime) -> Result<u64>;
}

/// Messages.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// Commits submissions in one transaction (group commit). Each submission is stored whole
    /// only if its credential is still the token's current digest and the token is active at
    /// `now`, checked under a lock that orders it against revocation and regeneration, and, when
    /// it carries an idempotency record, only if its project holds no record for that key
    /// created after `now - IDEMPOTENCY_TTL` (older ones are replaced); otherwise nothing of it
    /// is stored. Outcomes are in the order of `submissions`.
    async fn enqueue(
        &self,
        submissions: &[Submission],
        now: OffsetDateTime,
    ) -> Result<Vec<SubmissionOutcome>>;
    /// A project's message by id.
    async fn get_message(&self, project: ProjectId, id: MessageId) -> Result<Option<Message>>;
    /// A project's messages (all, or those with `status`), in keyset order.
    async fn list_messages(
        &self,
        project: ProjectId,
        status: Option<MessageStatus>,
        keyset: Keyset<MessageSortKey>,
    ) -> Result<Vec<Message>>;
    /// The record of an idempotency key created at or after `not_before`.
    async fn get_idempotency_record(
        &self,
        project: ProjectId,
        key: &str,
        not_before: OffsetDateTime,
    ) -> Result<Option<IdempotencyRecord>>;
    /// Deletes idempotency records created before `before`; how many.
    async fn prune_idempotency_records(&self, before: OffsetDateTime) -> Result<u64>;
}

/// What delivery workers need: claiming due messages and settling attempts (see
/// [`crate::delivery`]).
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait DeliveryRepository: Send + Sync {
    /// Claims up to `limit` messages due at `now` (pending, scheduled or deferred messages whose
    /// due instant has come, and processed ones whose lease ran out), oldest due first: each
    /// becomes `processed` under a new lease that runs until `lease_until`, with one more
    /// attempt counted. Concurrent claims never return the same message while its lease runs.
    ///
    /// A message taken over from a lease that ran out (its attempt was interrupted) has one
    /// more [`DeliveryState::interrupted`](crate::DeliveryState::interrupted) attempt and
    /// keeps its `interrupted_alone` count; any other message has both at 0.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Claim>>;
    /// Records how attempts ended, in one transaction: each only if its lease is still its
    /// message's lease (false for it otherwise: the lease ran out and another claim took the
    /// message over). A delivered or failed message gets an entry in its token's log in the
    /// same transaction. Answers are in the order of `settles`.
    async fn settle(&self, settles: &[Settle], now: OffsetDateTime) -> Result<Vec<bool>>;
    /// Records, before it starts, that a claimed attempt is made alone (nothing else in flight
    /// in its worker): one more `interrupted_alone` attempt, which stands if the attempt never
    /// records an outcome. The lease is extended to `lease_until`. False when `lease` is no
    /// longer the message's lease (the attempt must not start).
    async fn begin_alone(
        &self,
        message: MessageId,
        lease: LeaseId,
        lease_until: OffsetDateTime,
    ) -> Result<bool>;
    /// Hands a claimed message back without an attempt (its worker is stopping): its lease
    /// ends at `now`, so that the next claim takes it over at once, as from an interrupted
    /// attempt. The message stays `processed` and keeps its counts. False when `lease` is no
    /// longer the message's lease.
    async fn end_lease(
        &self,
        message: MessageId,
        lease: LeaseId,
        now: OffsetDateTime,
    ) -> Result<bool>;
}

/// Accounts: the people who log in to the dashboard.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AccountRepository: Send + Sync {
    /// Inserts an account with its password hash. An account with the same email is a
    /// [`crate::Error::Conflict`].
    async fn insert_account(&self, account: &Account, password: &PasswordHash) -> Result<()>;
    /// An account by id.
    async fn get_account(&self, id: AccountId) -> Result<Option<Account>>;
    /// An account and its password hash by email (login).
    async fn find_account_by_email(&self, email: &Email)
    -> Result<Option<(Account, PasswordHash)>>;
    /// An account's password hash.
    async fn get_password_hash(&self, id: AccountId) -> Result<Option<PasswordHash>>;
    /// Replaces an account's password hash and, in the same transaction, deletes every session
    /// of the account but `keep`; false when there is no such account.
    async fn set_password(
        &self,
        id: AccountId,
        hash: &PasswordHash,
        keep: Option<SessionId>,
        at: OffsetDateTime,
    ) -> Result<bool>;
    /// Every account, by email.
    async fn list_accounts(&self) -> Result<Vec<Account>>;
}

/// What a change to a team's members came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Done.
    Done,
    /// No such member.
    NotFound,
    /// Refused: it would leave the team without an owner.
    LastOwner,
}

/// Team members. Changes that could remove a team's last owner are checked and applied under
/// a lock on the team, so two concurrent demotions cannot both succeed.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait MemberRepository: Send + Sync {
    /// Makes `account` a member of `team`. Already a member: [`crate::Error::Conflict`].
    async fn insert_member(
        &self,
        team: TeamId,
        account: AccountId,
        role: Role,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// A member of a team.
    async fn get_member(&self, team: TeamId, account: AccountId) -> Result<Option<Member>>;
    /// A team's members, owners first, then by email.
    async fn list_members(&self, team: TeamId) -> Result<Vec<Member>>;
    /// The teams an account belongs to (as members), by team name.
    async fn list_memberships(&self, account: AccountId) -> Result<Vec<(Team, Role)>>;
    /// Changes a member's role, unless that leaves the team without an owner.
    async fn set_member_role(
        &self,
        team: TeamId,
        account: AccountId,
        role: Role,
        at: OffsetDateTime,
    ) -> Result<MemberChange>;
    /// Removes a member, unless that leaves the team without an owner.
    async fn delete_member(&self, team: TeamId, account: AccountId) -> Result<MemberChange>;
}

/// Dashboard sessions, stored by the SHA-256 digest of their value.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Inserts a session.
    async fn insert_session(&self, session: &Session, digest: &TokenDigest) -> Result<()>;
    /// The session whose value has `digest` (live or not).
    async fn find_session(&self, digest: &TokenDigest) -> Result<Option<Session>>;
    /// Moves a session's last use and idle expiry forward (never past its absolute expiry).
    async fn touch_session(
        &self,
        id: SessionId,
        seen_at: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<()>;
    /// Deletes a session; false when it was gone.
    async fn delete_session(&self, id: SessionId) -> Result<bool>;
    /// Deletes every session of an account but `keep`; how many.
    async fn delete_account_sessions(
        &self,
        account: AccountId,
        keep: Option<SessionId>,
    ) -> Result<u64>;
    /// Deletes sessions expired (idle or absolute) at `now`; how many.
    async fn prune_sessions(&self, now: OffsetDateTime) -> Result<u64>;
}

/// Failed logins, counted per key (`email:<address>`, `ip:<address>`) so every api-server
/// instance throttles against the same count.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait LoginThrottleRepository: Send + Sync {
    /// Records one failure under each key.
    async fn record_login_failures(&self, keys: &[String], at: OffsetDateTime) -> Result<()>;
    /// How many failures `key` has at or after `since`, and the oldest of them.
    async fn count_login_failures(
        &self,
        key: &str,
        since: OffsetDateTime,
    ) -> Result<(u64, Option<OffsetDateTime>)>;
    /// Forgets the failures of `key` (after a successful login).
    async fn clear_login_failures(&self, key: &str) -> Result<()>;
    /// Deletes failures older than `before`; how many.
    async fn prune_login_failures(&self, before: OffsetDateTime) -> Result<u64>;
}

/// The audit log.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Appends an entry and, when the action concerns a token, that token's log entry, in one
    /// transaction.
    async fn append_audit(
        &self,
        entry: &AuditEntry,
        token_log: Option<TokenLogEntry>,
    ) -> Result<()>;
    /// A team's entries, newest first, older than `before` when given.
    async fn list_audit(
        &self,
        team: TeamId,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
    /// An account's entries (account-wide and in any team), newest first.
    async fn list_account_audit(
        &self,
        account: AccountId,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>>;
}

/// Liveness of the store.
#[cfg_attr(any(test, feature = "mocks"), automock)]
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<()>;
}

/// Everything a store provides; what front doors are wired with.
pub trait Store:
    TeamRepository
    + ProjectRepository
    + RouteRepository
    + TokenRepository<ForProject>
    + TokenRepository<ForTeam>
    + UsageRepository
    + MessageRepository
    + DeliveryRepository
    + AccountRepository
    + MemberRepository
    + SessionRepository
    + LoginThrottleRepository
    + AuditRepository
    + StoreHealth
    + std::fmt::Debug
{
}

impl<T> Store for T where
    T: TeamRepository
        + ProjectRepository
        + RouteRepository
        + TokenRepository<ForProject>
        + TokenRepository<ForTeam>
        + UsageRepository
        + MessageRepository
        + DeliveryRepository
        + AccountRepository
        + MemberRepository
        + SessionRepository
        + LoginThrottleRepository
        + AuditRepository
        + StoreHealth
        + std::fmt::Debug
{
}

macro_rules! debug_dyn {
    ($($trait:ident),+) => {$(
        impl std::fmt::Debug for dyn $trait {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(stringify!($trait))
            }
        }
    )+};
}

debug_dyn!(
    TeamRepository,
    ProjectRepository,
    RouteRepository,
    UsageRepository,
    MessageRepository,
    DeliveryRepository,
    AccountRepository,
    MemberRepository,
    SessionRepository,
    LoginThrottleRepository,
    AuditRepository,
    StoreHealth
);
