//! Repository traits: what the services need from a store, one small trait per concern.
//!
//! Stores implement all of them and, through the blanket impl, [`Store`]. Every method that
//! changes a token's secret or state is a single atomic operation, so two processes racing on
//! the same token cannot both win.

use async_trait::async_trait;
use time::OffsetDateTime;

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

use crate::allowlist::IpAllowlist;
use crate::delivery::{Claim, Settle};
use crate::error::Result;
use crate::id::{MessageId, ProjectId, TeamId, TokenId};
use crate::kind::{ForProject, ForTeam, Owner};
use crate::message::{IdempotencyRecord, Message, MessageStatus, Submission, SubmissionOutcome};
use crate::model::{Project, ProjectToken, Route, Team, TeamToken, Token, TokenStatusFilter};
use crate::name::Name;
use crate::page::{Keyset, LogSortKey, MessageSortKey, ProjectSortKey, TokenSortKey};
use crate::rotation::CredentialSlot;
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
    StoreHealth
);
