//! The domain of Lettermint-compatible API tokens.
//!
//! A team owns projects; each project owns named **project tokens** (`lm_…`) that send mail for
//! it through the Sending API and the SMTP relay. **Team tokens** (`lm_team_…`) carry abilities
//! and manage the team's projects and project tokens.
//!
//! This crate holds the entities, the token format, the rules and the services, over small
//! repository traits ([`repo`]). It does no I/O and names no database, HTTP or SMTP type: the
//! `lettermint-store-sqlite` and `lettermint-store-pg` crates implement the traits, and front
//! doors wire a [`Services`] to a [`Store`].
//!
//! # Example
//!
//! Create a team, a project and a token, then authenticate with the token:
//!
//! ```
//! use std::sync::Arc;
//! use lettermint_core::{Channel, Error, NewProject, Scope, Services, SystemClock};
//! use lettermint_store_sqlite::{SqliteStore, SqliteConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqliteStore::open(&SqliteConfig::in_memory()).await?;
//! let services = Services::new(Arc::new(store), Arc::new(SystemClock));
//!
//! let team = services.teams.create(Scope::Operator, "Acme").await?;
//! let (project, _) = services.projects.create(Scope::Operator, NewProject {
//!     team_id: team.id,
//!     name: "Shop".into(),
//!     smtp_enabled: true,
//!     first_token_name: None,
//! }).await?;
//! let issued = services.project_tokens.create(Scope::Team(team.id), project.id, "checkout", (), None).await?;
//!
//! // Shown once; only its SHA-256 digest is stored.
//! let secret = issued.secret.expose_secret().to_owned();
//! let caller = services.auth.authenticate_project(Some(&secret), Channel::Api, None).await?;
//! assert_eq!(caller.project_id, project.id);
//!
//! // After a revoke, the same value is refused.
//! services.project_tokens.revoke(Scope::Operator, None, issued.token.id).await?;
//! let refused = services.auth.authenticate_project(Some(&secret), Channel::Api, None).await;
//! assert!(matches!(refused, Err(Error::Unauthenticated(_))));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod ability;
pub mod account;
pub mod allowlist;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod delivery;
pub mod error;
pub mod header;
pub mod id;
pub mod kind;
pub mod message;
pub mod model;
pub mod name;
pub mod page;
pub mod repo;
pub mod rotation;
pub mod scope;
pub mod service;
pub mod session;
pub mod token;
pub mod usage;

pub use ability::{Abilities, Ability, Access, Resource};
pub use account::{Account, Argon2id, Email, Member, Password, PasswordHash, PasswordHasher, Role};
pub use allowlist::IpAllowlist;
pub use audit::{AuditAction, AuditEntry};
pub use auth::{AuthFailure, AuthService, ProjectCaller, TeamCaller};
pub use clock::{Clock, FixedClock, SystemClock};
pub use delivery::{Claim, FailureKind, Reply, RetryPolicy, Settle, Settlement};
pub use error::{Error, Result, ValidationErrors};
pub use id::{
    AccountId, AuditEntryId, LeaseId, LogEntryId, MessageId, ProjectId, RouteId, SessionId, TeamId,
    TokenId,
};
pub use kind::{ForProject, ForTeam, Owner};
pub use message::{
    Attachment, DeliveryState, IdempotencyRecord, Message, MessageContent, MessageStatus,
    StructuredEmail, Submission, SubmissionOutcome, Tag, TokenCredential,
};
pub use model::{
    Channel, DEFAULT_ROUTE_SLUG, LastUse, Project, ProjectToken, Route, RouteKind, Team, TeamToken,
    Token, TokenStatus, TokenStatusFilter,
};
pub use name::Name;
pub use page::{Cursor, Direction, Page, PageRequest, PageSize, Sort};
pub use repo::Store;
pub use rotation::{CredentialSlot, Overlap};
pub use scope::Scope;
pub use service::{
    AccountRepos, AccountService, Actor, ConsoleService, CreatedAccount, IssuedProjectToken,
    IssuedTeamToken, IssuedToken, LeakReporter, LeakService, LeakVerdict, LeakedValue, LoginError,
    LoginThrottle, MessageService, NewProject, ProjectService, ProjectTokenService, ProjectUpdate,
    Services, StartedSession, TeamService, TeamSummary, TeamTokenService, TokenService,
    UsageService,
};
pub use session::{Session, SessionPolicy, SessionSecret};
pub use token::{PlainToken, TokenDigest, TokenFormatError, TokenHint, TokenKind};
pub use usage::{Action, LogFilter, Outcome, TokenLogEntry, UsageBatch, UsageRecord};
