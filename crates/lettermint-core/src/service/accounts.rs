//! Accounts, members, logins and sessions: the dashboard's rules.

use std::net::IpAddr;
use std::sync::Arc;

use time::Duration;

use crate::account::{
    Account, Argon2id, Email, Member, Password, PasswordHash, PasswordHasher, Role,
};
use crate::audit::{AuditAction, AuditEntry};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{AccountId, AuditEntryId, SessionId, TeamId};
use crate::model::Team;
use crate::name::Name;
use crate::repo::{
    AccountRepository, AuditRepository, LoginThrottleRepository, MemberChange, MemberRepository,
    SessionRepository,
};
use crate::scope::Scope;
use crate::session::{Session, SessionPolicy, SessionSecret};

/// How many failed logins are allowed before the dashboard refuses further tries for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures counted over this window.
    pub window: Duration,
    /// Failures allowed per email address within the window.
    pub per_account: u64,
    /// Failures allowed per client address within the window.
    pub per_ip: u64,
}

impl Default for LoginThrottle {
    /// 5 failures per account and 20 per address in 15 minutes.
    fn default() -> Self {
        Self {
            window: Duration::minutes(15),
            per_account: 5,
            per_ip: 20,
        }
    }
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email or wrong password: one answer for both.
    #[error("These credentials do not match our records.")]
    InvalidCredentials,
    /// Too many failures; try again after `retry_after`.
    #[error("Too many login attempts. Please try again in {} seconds.", retry_after.whole_seconds().max(1))]
    Throttled {
        /// How long until the oldest counted failure leaves the window.
        retry_after: Duration,
    },
    /// Anything else (the store failed, the input was invalid).
    #[error(transparent)]
    Other(#[from] Error),
}

/// A session just started: its value goes into the cookie, once.
#[derive(Debug, Clone)]
pub struct StartedSession {
    /// The stored session.
    pub session: Session,
    /// The cookie value.
    pub secret: SessionSecret,
}

/// An account just created, with the password to hand over when it was generated.
#[derive(Debug, Clone)]
pub struct CreatedAccount {
    /// The account.
    pub account: Account,
    /// The generated one-time password, when none was given.
    pub generated_password: Option<Password>,
}

/// Accounts, members, logins and sessions.
#[derive(Debug, Clone)]
pub struct AccountService {
    accounts: Arc<dyn AccountRepository>,
    members: Arc<dyn MemberRepository>,
    sessions: Arc<dyn SessionRepository>,
    throttle_repo: Arc<dyn LoginThrottleRepository>,
    audit: Arc<dyn AuditRepository>,
    hasher: Arc<dyn PasswordHasher>,
    clock: Arc<dyn Clock>,
    policy: SessionPolicy,
    throttle: LoginThrottle,
}

/// The repositories [`AccountService`] needs.
#[derive(Debug, Clone)]
pub struct AccountRepos {
    /// Accounts.
    pub accounts: Arc<dyn AccountRepository>,
    /// Members.
    pub members: Arc<dyn MemberRepository>,
    /// Sessions.
    pub sessions: Arc<dyn SessionRepository>,
    /// Login failures.
    pub throttle: Arc<dyn LoginThrottleRepository>,
    /// Audit log.
    pub audit: Arc<dyn AuditRepository>,
}

/// Seconds between two writes of a session's last use: reads within this are free.
const TOUCH_EVERY: Duration = Duration::seconds(60);

impl AccountService {
    /// Wires the service with argon2id on the calling thread, default session lifetimes and
    /// throttling. Front doors swap the hasher for one on a blocking pool
    /// ([`AccountService::with_hasher`]).
    pub fn new(repos: AccountRepos, clock: Arc<dyn Clock>) -> Self {
        Self {
            accounts: repos.accounts,
            members: repos.members,
            sessions: repos.sessions,
            throttle_repo: repos.throttle,
            audit: repos.audit,
            hasher: Arc::new(Argon2id),
            clock,
            policy: SessionPolicy::default(),
            throttle: LoginThrottle::default(),
        }
    }

    /// The same service with another password hasher.
    #[must_use]
    pub fn with_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = hasher;
        self
    }

    /// The same service with other session lifetimes.
    #[must_use]
    pub fn with_session_policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The same service with other login limits.
    #[must_use]
    pub fn with_login_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = throttle;
        self
    }

    /// The session lifetimes in force.
    #[must_use]
    pub fn session_policy(&self) -> SessionPolicy {
        self.policy
    }

    /// Creates an account (operators only). With no password, one is generated and returned
    /// for a one-time display.
    pub async fn create_account(
        &self,
        scope: Scope,
        email: &str,
        display_name: &str,
        password: Option<String>,
    ) -> Result<CreatedAccount> {
        if scope != Scope::Operator {
            return Err(Error::Forbidden {
                required: "operator".to_owned(),
            });
        }
        let email = Email::parse("email", email);
        let name = Name::parse("display_name", display_name);
        let password = match password {
            Some(p) => Password::new_password("password", p).map(|p| (p, false)),
            None => Password::generate().map(|p| (p, true)),
        };
        let (email, display_name, (password, generated)) = merge_validation(email, name, password)?;
        let hash = self.hasher.hash(password.clone()).await?;
        let now = self.clock.now();
        let account = Account {
            id: AccountId::new(),
            email,
            display_name,
            created_at: now,
            password_changed_at: now,
        };
        self.accounts.insert_account(&account, &hash).await?;
        Ok(CreatedAccount {
            account,
            generated_password: generated.then_some(password),
        })
    }

    /// An account by email (operators).
    pub async fn find_by_email(&self, email: &str) -> Result<Account> {
        let email = Email::parse("email", email)?;
        self.accounts
            .find_account_by_email(&email)
            .await?
            .map(|(account, _)| account)
            .ok_or(Error::not_found("account"))
    }

    /// Every account (operators).
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        self.accounts.list_accounts().await
    }

    /// Sets a new password for an account (operators: a reset), ending all its sessions.
    pub async fn reset_password(
        &self,
        account: AccountId,
        password: Option<String>,
    ) -> Result<Option<Password>> {
        let (password, generated) = match password {
            Some(p) => (Password::new_password("password", p)?, false),
            None => (Password::generate()?, true),
        };
        let hash = self.hasher.hash(password.clone()).await?;
        if !self
            .accounts
            .set_password(account, &hash, None, self.clock.now())
            .await?
        {
            return Err(Error::not_found("account"));
        }
        self.audit(
            None,
            Some(account),
            AuditAction::PasswordChanged,
            None,
            Some("reset by operator"),
            None,
        )
        .await?;
        Ok(generated.then_some(password))
    }

    /// Checks an email and password, throttled per email and per client address. Failures are
    /// counted in the store, so every instance sees them; a success clears the email's count.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> std::result::Result<StartedSession, LoginError> {
        let now = self.clock.now();
        let since = now - self.throttle.window;
        let email_key = format!("email:{}", email.trim().to_lowercase());
        let ip_key = ip.map(|ip| format!("ip:{ip}"));
        let mut retry_after = None;
        let (n, oldest) = self
            .throttle_repo
            .count_login_failures(&email_key, since)
            .await?;
        if n >= self.throttle.per_account {
            retry_after = oldest;
        }
        if let Some(key) = &ip_key {
            let (n, oldest) = self.throttle_repo.count_login_failures(key, since).await?;
            if n >= self.throttle.per_ip {
                retry_after = retry_after.max(oldest).or(oldest);
            }
        }
        let found = match Email::parse("email", email) {
            Ok(parsed) => self.accounts.find_account_by_email(&parsed).await?,
            Err(_) => None,
        };
        if let Some(oldest) = retry_after {
            self.audit(
                None,
                found.as_ref().map(|(a, _)| a.id),
                AuditAction::LoginFailed,
                None,
                Some("throttled"),
                ip,
            )
            .await?;
            return Err(LoginError::Throttled {
                retry_after: (oldest + self.throttle.window - now).max(Duration::SECOND),
            });
        }
        let password = Password::for_login(password).map_err(|_| LoginError::InvalidCredentials);
        let verified = match (&found, password) {
            (Some((_, hash)), Ok(password)) => self.hasher.verify(password, hash.clone()).await?,
            (None, Ok(password)) => {
                // Same work as for a known account, so timing does not tell which emails exist.
                let dummy = PasswordHash::from_stored(Argon2id::DUMMY_HASH.to_owned());
                let _ = self.hasher.verify(password, dummy).await?;
                false
            }
            (_, Err(_)) => false,
        };
        match found {
            Some((account, _)) if verified => {
                self.throttle_repo.clear_login_failures(&email_key).await?;
                let started = self.start_session(account.id).await?;
                self.audit(None, Some(account.id), AuditAction::Login, None, None, ip)
                    .await?;
                Ok(started)
            }
            found => {
                let mut keys = vec![email_key];
                keys.extend(ip_key);
                self.throttle_repo.record_login_failures(&keys, now).await?;
                self.audit(
                    None,
                    found.map(|(a, _)| a.id),
                    AuditAction::LoginFailed,
                    None,
                    Some("wrong password"),
                    ip,
                )
                .await?;
                Err(LoginError::InvalidCredentials)
            }
        }
    }

    async fn start_session(&self, account: AccountId) -> Result<StartedSession> {
        let now = self.clock.now();
        let secret = SessionSecret::mint()?;
        let expires_at = now + self.policy.absolute;
        let session = Session {
            id: SessionId::new(),
            account_id: account,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: (now + self.policy.idle).min(expires_at),
            expires_at,
        };
        self.sessions
            .insert_session(&session, &secret.digest())
            .await?;
        Ok(StartedSession { session, secret })
    }

    /// The live session and account of a cookie value, moving its idle expiry forward; `None`
    /// when the value is unknown, expired (then it is deleted) or its account is gone.
    pub async fn resume(&self, secret: &SessionSecret) -> Result<Option<(Session, Account)>> {
        let Some(mut session) = self.sessions.find_session(&secret.digest()).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if !session.is_live(now) {
            self.sessions.delete_session(session.id).await?;
            return Ok(None);
        }
        if now - session.last_seen_at >= TOUCH_EVERY {
            session.last_seen_at = now;
            session.idle_expires_at = (now + self.policy.idle).min(session.expires_at);
            self.sessions
                .touch_session(session.id, now, session.idle_expires_at)
                .await?;
        }
        let Some(account) = self.accounts.get_account(session.account_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, account)))
    }

    /// Ends one session (logout).
    pub async fn logout(&self, session: &Session, ip: Option<IpAddr>) -> Result<()> {
        self.sessions.delete_session(session.id).await?;
        self.audit(
            None,
            Some(session.account_id),
            AuditAction::Logout,
            None,
            None,
            ip,
        )
        .await
    }

    /// Ends every session of the account, this one included.
    pub async fn logout_everywhere(&self, session: &Session, ip: Option<IpAddr>) -> Result<u64> {
        let ended = self
            .sessions
            .delete_account_sessions(session.account_id, None)
            .await?;
        self.audit(
            None,
            Some(session.account_id),
            AuditAction::LogoutEverywhere,
            None,
            Some(&format!("{ended} sessions")),
            ip,
        )
        .await?;
        Ok(ended)
    }

    /// Changes the logged-in account's password after checking the current one; every other
    /// session of the account ends.
    pub async fn change_password(
        &self,
        session: &Session,
        current: String,
        new: String,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        let new = Password::new_password("new_password", new)?;
        let hash = self
            .accounts
            .get_password_hash(session.account_id)
            .await?
            .ok_or(Error::not_found("account"))?;
        let current = Password::for_login(current)?;
        if !self.hasher.verify(current, hash).await? {
            return Err(Error::invalid(
                "current_password",
                "The current password is incorrect.",
            ));
        }
        let hash = self.hasher.hash(new).await?;
        if !self
            .accounts
            .set_password(
                session.account_id,
                &hash,
                Some(session.id),
                self.clock.now(),
            )
            .await?
        {
            return Err(Error::not_found("account"));
        }
        self.audit(
            None,
            Some(session.account_id),
            AuditAction::PasswordChanged,
            None,
            None,
            ip,
        )
        .await
    }

    /// The teams an account belongs to.
    pub async fn teams_of(&self, account: AccountId) -> Result<Vec<(Team, Role)>> {
        self.members.list_memberships(account).await
    }

    /// The account's membership of `team`, or not-found (another team's pages look like pages
    /// that do not exist).
    pub async fn member_of(&self, account: AccountId, team: TeamId) -> Result<Member> {
        self.members
            .get_member(team, account)
            .await?
            .ok_or(Error::not_found("team"))
    }

    /// A team's members (any member may see them).
    pub async fn members(&self, actor: &Member) -> Result<Vec<Member>> {
        self.members.list_members(actor.team_id).await
    }

    /// A team's members, owners first, then by email, for a caller who is not a member
    /// (operators; a team scope sees only its own team).
    pub async fn team_members(&self, scope: Scope, team: TeamId) -> Result<Vec<Member>> {
        scope.check(team, "team")?;
        self.members.list_members(team).await
    }

    /// Adds an account to a team. `actor` `None` is the operator; otherwise owners add anyone,
    /// admins add members and admins.
    pub async fn add_member(
        &self,
        actor: Option<&Member>,
        team: TeamId,
        account: AccountId,
        role: Role,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        check_member_change(actor, team, role)?;
        self.members
            .insert_member(team, account, role, self.clock.now())
            .await?;
        self.audit(
            Some(team),
            actor.map(|a| a.account.id),
            AuditAction::MemberAdded,
            Some(format!("member:{account}")),
            Some(role.as_str()),
            ip,
        )
        .await
    }

    /// Changes a member's role; the last owner stays an owner.
    pub async fn set_role(
        &self,
        actor: Option<&Member>,
        team: TeamId,
        account: AccountId,
        role: Role,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        check_member_change(actor, team, role)?;
        self.check_target(actor, team, account).await?;
        let change = self
            .members
            .set_member_role(team, account, role, self.clock.now())
            .await?;
        member_change(change)?;
        self.audit(
            Some(team),
            actor.map(|a| a.account.id),
            AuditAction::MemberRoleChanged,
            Some(format!("member:{account}")),
            Some(role.as_str()),
            ip,
        )
        .await
    }

    /// Removes a member; the last owner cannot be removed.
    pub async fn remove_member(
        &self,
        actor: Option<&Member>,
        team: TeamId,
        account: AccountId,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        self.check_target(actor, team, account).await?;
        member_change(self.members.delete_member(team, account).await?)?;
        self.audit(
            Some(team),
            actor.map(|a| a.account.id),
            AuditAction::MemberRemoved,
            Some(format!("member:{account}")),
            None,
            ip,
        )
        .await
    }

    /// Whether `actor` (`None`: the operator) may change the member `account` of `team` as it
    /// is now (admins do not touch owners). The actor's own team is checked before anything
    /// of the team is read.
    async fn check_target(
        &self,
        actor: Option<&Member>,
        team: TeamId,
        account: AccountId,
    ) -> Result<()> {
        let Some(actor) = actor else {
            return Ok(());
        };
        if actor.team_id != team {
            return Err(Error::not_found("team"));
        }
        let target = self
            .member_of(account, team)
            .await
            .map_err(|_| Error::not_found("member"))?;
        check_member_change(Some(actor), team, target.role)
    }

    /// A page of a team's audit log, newest first.
    pub async fn audit_log(
        &self,
        actor: &Member,
        before: Option<AuditEntryId>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        self.audit
            .list_audit(actor.team_id, before, limit.clamp(1, 100))
            .await
    }

    /// Deletes expired sessions and login failures older than the throttle window.
    pub async fn prune(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let sessions = self.sessions.prune_sessions(now).await?;
        let failures = self
            .throttle_repo
            .prune_login_failures(now - self.throttle.window)
            .await?;
        Ok((sessions, failures))
    }

    async fn audit(
        &self,
        team: Option<TeamId>,
        actor: Option<AccountId>,
        action: AuditAction,
        target: Option<String>,
        detail: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        let actor_email = match actor {
            Some(id) => self
                .accounts
                .get_account(id)
                .await?
                .map(|a| a.email.as_str().to_owned()),
            None => None,
        };
        let entry = AuditEntry {
            id: AuditEntryId::new(),
            team_id: team,
            actor_id: actor,
            actor_email,
            action,
            target,
            detail: detail.map(str::to_owned),
            ip,
            at: self.clock.now(),
        };
        self.audit.append_audit(&entry, None).await
    }
}

/// Whether `actor` (`None`: the operator) may give or take `role` in `team`: owners manage
/// every role, admins manage members and admins, members manage nobody.
fn check_member_change(actor: Option<&Member>, team: TeamId, role: Role) -> Result<()> {
    match actor {
        None => Ok(()),
        Some(actor) if actor.team_id != team => Err(Error::not_found("team")),
        Some(actor) if actor.role == Role::Owner => Ok(()),
        Some(actor) if actor.role.manages_members() && role != Role::Owner => Ok(()),
        Some(_) => Err(Error::Forbidden {
            required: if role == Role::Owner {
                "owner"
            } else {
                "admin"
            }
            .to_owned(),
        }),
    }
}

fn member_change(change: MemberChange) -> Result<()> {
    match change {
        MemberChange::Done => Ok(()),
        MemberChange::NotFound => Err(Error::not_found("member")),
        MemberChange::LastOwner => Err(Error::conflict(
            "A team must keep at least one owner: make another member an owner first.",
        )),
    }
}

/// Every validation problem of three fields at once.
fn merge_validation<A, B, C>(a: Result<A>, b: Result<B>, c: Result<C>) -> Result<(A, B, C)> {
    match (a, b, c) {
        (Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
        (a, b, c) => {
            let mut errors = crate::error::ValidationErrors::default();
            for err in [a.err(), b.err(), c.err()].into_iter().flatten() {
                match err {
                    Error::Validation(v) => {
                        for (field, problems) in v.fields() {
                            for p in problems {
                                errors.add(field.clone(), p.clone());
                            }
                        }
                    }
                    other => return Err(other),
                }
            }
            Err(Error::Validation(errors))
        }
    }
}
