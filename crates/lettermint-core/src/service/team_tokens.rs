use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::ability::Abilities;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{TeamId, TokenId};
use crate::model::{TeamToken, TokenStatusFilter};
use crate::name::Name;
use crate::page::{LogSortKey, Page, PageRequest, TokenSortKey};
use crate::repo::{TeamRepository, TeamTokenRepository, UsageRepository};
use crate::scope::Scope;
use crate::token::{PlainToken, TokenKind};
use crate::usage::{LogFilter, TokenLogEntry};

use super::check_expiry;

/// A team token just created or regenerated, with its secret: show `secret` once.
#[derive(Clone)]
pub struct IssuedTeamToken {
    /// The token.
    pub token: TeamToken,
    /// The full value.
    pub secret: PlainToken,
}

impl fmt::Debug for IssuedTeamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedTeamToken")
            .field("token", &self.token)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Team tokens: create, list, show, rename, regenerate, revoke, logs.
#[derive(Debug, Clone)]
pub struct TeamTokenService {
    teams: Arc<dyn TeamRepository>,
    tokens: Arc<dyn TeamTokenRepository>,
    usage: Arc<dyn UsageRepository>,
    clock: Arc<dyn Clock>,
}

impl TeamTokenService {
    /// Wires the service.
    pub fn new(
        teams: Arc<dyn TeamRepository>,
        tokens: Arc<dyn TeamTokenRepository>,
        usage: Arc<dyn UsageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            teams,
            tokens,
            usage,
            clock,
        }
    }

    /// Creates a team token with `abilities` (ability names; unknown ones are rejected with the
    /// list of valid names).
    pub async fn create<S: AsRef<str> + Sync>(
        &self,
        scope: Scope,
        team: TeamId,
        name: &str,
        abilities: &[S],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedTeamToken> {
        let name = Name::parse("name", name)?;
        let abilities = Abilities::parse("abilities", abilities)?;
        let now = self.clock.now();
        check_expiry(expires_at, now)?;
        scope.check(team, "team")?;
        if self.teams.get_team(team).await?.is_none() {
            return Err(Error::not_found("team"));
        }
        let secret = PlainToken::mint(TokenKind::Team)?;
        let token = TeamToken {
            id: TokenId::new(),
            team_id: team,
            name,
            hint: secret.hint(),
            abilities,
            created_at: now,
            updated_at: now,
            last_use: Default::default(),
            expires_at: expires_at.map(crate::clock::truncate_to_micros),
            revoked_at: None,
        };
        self.tokens
            .insert_team_token(&token, &secret.digest())
            .await?;
        Ok(IssuedTeamToken { token, secret })
    }

    /// A page of a team's tokens with the given status.
    pub async fn list(
        &self,
        scope: Scope,
        team: TeamId,
        status: TokenStatusFilter,
        request: &PageRequest<TokenSortKey>,
    ) -> Result<Page<TeamToken>> {
        scope.check(team, "team")?;
        let rows = self
            .tokens
            .list_team_tokens(team, status, self.clock.now(), request.keyset())
            .await?;
        Ok(request.page(rows, |t| t.id.as_uuid()))
    }

    /// A team token, if visible.
    pub async fn get(&self, scope: Scope, id: TokenId) -> Result<TeamToken> {
        let token = self
            .tokens
            .get_team_token(id)
            .await?
            .ok_or(Error::not_found("token"))?;
        scope.check(token.team_id, "token")?;
        Ok(token)
    }

    /// Renames a team token (not a revoked one).
    pub async fn rename(&self, scope: Scope, id: TokenId, name: &str) -> Result<TeamToken> {
        let name = Name::parse("name", name)?;
        let token = self.get(scope, id).await?;
        if token.revoked_at.is_some()
            || !self
                .tokens
                .rename_team_token(id, &name, self.clock.now())
                .await?
        {
            return Err(Error::conflict("A revoked token cannot be renamed."));
        }
        self.get(scope, id).await
    }

    /// Replaces a team token's secret, keeping id, name and abilities. The old value stops
    /// working when this returns.
    pub async fn regenerate(&self, scope: Scope, id: TokenId) -> Result<IssuedTeamToken> {
        let token = self.get(scope, id).await?;
        let secret = PlainToken::mint(TokenKind::Team)?;
        if token.revoked_at.is_some()
            || !self
                .tokens
                .replace_team_token_secret(id, &secret.digest(), &secret.hint(), self.clock.now())
                .await?
        {
            return Err(Error::conflict("A revoked token cannot be regenerated."));
        }
        let token = self.get(scope, id).await?;
        Ok(IssuedTeamToken { token, secret })
    }

    /// Revokes a team token for good; revoking a revoked token succeeds and changes nothing.
    pub async fn revoke(&self, scope: Scope, id: TokenId) -> Result<TeamToken> {
        let token = self.get(scope, id).await?;
        if token.revoked_at.is_none() {
            self.tokens.revoke_team_token(id, self.clock.now()).await?;
        }
        self.get(scope, id).await
    }

    /// A page of a team token's log, newest first.
    pub async fn logs(
        &self,
        scope: Scope,
        id: TokenId,
        filter: &LogFilter,
        request: &PageRequest<LogSortKey>,
    ) -> Result<Page<TokenLogEntry>> {
        let token = self.get(scope, id).await?;
        let rows = self
            .usage
            .list_token_logs(token.id, filter, request.keyset())
            .await?;
        Ok(request.page(rows, |e| e.id.as_uuid()))
    }
}
