//! Services: the rules, over the repository traits.

mod accounts;
mod console;
mod leaks;
mod messages;
mod projects;
mod teams;
mod tokens;
mod usage;

#[cfg(test)]
mod accounts_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use accounts::{
    AccountRepos, AccountService, CreatedAccount, LoginError, LoginThrottle, StartedSession,
};
pub use console::{Actor, ConsoleService, require_token_manager};
pub use leaks::{LeakReporter, LeakService, LeakVerdict, LeakedValue, MAX_LEAK_URL_CHARS};
pub use messages::MessageService;
pub use projects::{NewProject, ProjectService, ProjectUpdate};
pub use teams::{TeamService, TeamSummary};
pub use tokens::{
    IssuedProjectToken, IssuedTeamToken, IssuedToken, ProjectTokenService, TeamTokenService,
    TokenService,
};
pub use usage::UsageService;

use crate::auth::AuthService;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::repo::Store;
use time::OffsetDateTime;

/// Every service, wired to one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Services {
    /// Teams.
    pub teams: TeamService,
    /// Projects.
    pub projects: ProjectService,
    /// Project tokens.
    pub project_tokens: ProjectTokenService,
    /// Team tokens.
    pub team_tokens: TeamTokenService,
    /// Authentication.
    pub auth: AuthService,
    /// Messages.
    pub messages: MessageService,
    /// Usage.
    pub usage: UsageService,
    /// Leak reports.
    pub leaks: LeakService,
    /// Accounts, members, logins and sessions (the dashboard).
    pub accounts: AccountService,
    /// Token changes made by dashboard members.
    pub console: ConsoleService,
}

impl Services {
    /// Wires every service to `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            teams: TeamService::new(store.clone(), clock.clone()),
            projects: ProjectService::new(store.clone(), store.clone(), clock.clone()),
            project_tokens: TokenService::new(store.clone(), store.clone(), clock.clone()),
            team_tokens: TokenService::new(store.clone(), store.clone(), clock.clone()),
            auth: AuthService::new(store.clone(), store.clone(), clock.clone()),
            messages: MessageService::new(store.clone(), store.clone(), clock.clone()),
            leaks: LeakService::new(store.clone(), store.clone(), store.clone(), clock.clone()),
            accounts: AccountService::new(
                AccountRepos {
                    accounts: store.clone(),
                    members: store.clone(),
                    sessions: store.clone(),
                    throttle: store.clone(),
                    audit: store.clone(),
                },
                clock.clone(),
            ),
            console: ConsoleService::new(store.clone(), clock.clone()),
            usage: UsageService::new(store, clock),
        }
    }
}

/// Checks an optional expiry against `now`.
fn check_expiry(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> Result<()> {
    match expires_at {
        Some(at) if at <= now => Err(Error::invalid(
            "expires_at",
            "The expires at field must be a date in the future.",
        )),
        _ => Ok(()),
    }
}
