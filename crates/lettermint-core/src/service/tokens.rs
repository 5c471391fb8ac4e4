use std::sync::Arc;

use time::OffsetDateTime;

use crate::allowlist::IpAllowlist;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{TeamId, TokenId};
use crate::kind::{ForProject, ForTeam, Owner};
use crate::model::{Token, TokenStatusFilter};
use crate::name::Name;
use crate::page::{Direction, LogSortKey, Page, PageRequest, Sort, TokenSortKey};
use crate::repo::{TokenRepository, UsageRepository};
use crate::rotation::Overlap;
use crate::scope::Scope;
use crate::token::PlainToken;
use crate::usage::{LogFilter, TokenLogEntry};

use super::check_expiry;

/// A token just created or regenerated, with its secret: show `secret` once. `Debug` shows the
/// secret redacted (`PlainToken`'s own `Debug`).
#[derive(Debug, Clone)]
pub struct IssuedToken<K: Owner> {
    /// The token.
    pub token: Token<K>,
    /// The full value.
    pub secret: PlainToken,
}

/// A project token just created or regenerated, with its secret.
pub type IssuedProjectToken = IssuedToken<ForProject>;

/// A team token just created or regenerated, with its secret.
pub type IssuedTeamToken = IssuedToken<ForTeam>;

/// Tokens of one kind: create, list, show, rename, regenerate, revoke, logs. The same rules
/// for project tokens ([`ProjectTokenService`]) and team tokens ([`TeamTokenService`]).
#[derive(Debug, Clone)]
pub struct TokenService<K: Owner> {
    tokens: Arc<dyn TokenRepository<K>>,
    usage: Arc<dyn UsageRepository>,
    clock: Arc<dyn Clock>,
}

/// Project tokens.
pub type ProjectTokenService = TokenService<ForProject>;

/// Team tokens.
pub type TeamTokenService = TokenService<ForTeam>;

impl<K: Owner> TokenService<K> {
    /// Wires the service.
    pub fn new(
        tokens: Arc<dyn TokenRepository<K>>,
        usage: Arc<dyn UsageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            tokens,
            usage,
            clock,
        }
    }

    /// Checks that `owner` exists and is visible to `scope`; its team.
    async fn owner(&self, scope: Scope, owner: K::Id) -> Result<TeamId> {
        let team = self
            .tokens
            .owner_team(owner)
            .await?
            .ok_or(Error::not_found(K::OWNER_NAME))?;
        scope.check(team, K::OWNER_NAME)?;
        Ok(team)
    }

    /// Creates a token of `owner` carrying `abilities`. The name must not clash with the
    /// owner's other non-revoked tokens; `expires_at`, if set, must be in the future.
    pub async fn create(
        &self,
        scope: Scope,
        owner: K::Id,
        name: &str,
        abilities: K::Abilities,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken<K>> {
        self.create_with_allowlist(
            scope,
            owner,
            name,
            abilities,
            expires_at,
            IpAllowlist::any(),
        )
        .await
    }

    /// Like [`TokenService::create`], with an IP allowlist (empty: any address).
    pub async fn create_with_allowlist(
        &self,
        scope: Scope,
        owner: K::Id,
        name: &str,
        abilities: K::Abilities,
        expires_at: Option<OffsetDateTime>,
        allowed_ips: IpAllowlist,
    ) -> Result<IssuedToken<K>> {
        let name = Name::parse("name", name)?;
        let now = self.clock.now();
        check_expiry(expires_at, now)?;
        self.owner(scope, owner).await?;
        let mut issued = issue(owner, name, abilities, now, expires_at)?;
        issued.token.allowed_ips = allowed_ips;
        self.tokens
            .insert_token(&issued.token, &issued.secret.digest())
            .await?;
        Ok(issued)
    }

    /// A page of an owner's tokens with the given status.
    pub async fn list(
        &self,
        scope: Scope,
        owner: K::Id,
        status: TokenStatusFilter,
        request: &PageRequest<TokenSortKey>,
    ) -> Result<Page<Token<K>>> {
        self.owner(scope, owner).await?;
        let rows = self
            .tokens
            .list_tokens(owner, status, self.clock.now(), request.keyset())
            .await?;
        Ok(request.page(rows, |t| t.id.as_uuid()))
    }

    /// A token, if visible (and, when `owner` is given, of that owner).
    pub async fn get(&self, scope: Scope, owner: Option<K::Id>, id: TokenId) -> Result<Token<K>> {
        let token = self
            .tokens
            .get_token(id)
            .await?
            .ok_or(Error::not_found("token"))?;
        if owner.is_some_and(|o| o != token.owner) {
            return Err(Error::not_found("token"));
        }
        self.owner(scope, token.owner)
            .await
            .map_err(|_| Error::not_found("token"))?;
        Ok(token)
    }

    /// The owner's oldest active token: what the legacy `rotate-token` endpoint regenerates.
    pub async fn first_active(&self, scope: Scope, owner: K::Id) -> Result<Option<Token<K>>> {
        let request = PageRequest::first(
            1,
            Sort {
                key: TokenSortKey::CreatedAt,
                direction: Direction::Ascending,
            },
        );
        let page = self
            .list(scope, owner, TokenStatusFilter::Active, &request)
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// Renames a token (not a revoked one). Counts as a change (`updated_at`).
    pub async fn rename(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
        name: &str,
    ) -> Result<Token<K>> {
        let name = Name::parse("name", name)?;
        let token = self.get(scope, owner, id).await?;
        if token.revoked_at.is_some()
            || !self
                .tokens
                .rename_token(id, &name, self.clock.now())
                .await?
        {
            return Err(Error::conflict("A revoked token cannot be renamed."));
        }
        self.get(scope, owner, id).await
    }

    /// Replaces a token's secret, keeping its id, name and abilities. The old value (and a
    /// previous value still in a rotation's overlap) stops working when this returns. Revoked tokens cannot be regenerated.
    pub async fn regenerate(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
    ) -> Result<IssuedToken<K>> {
        let token = self.get(scope, owner, id).await?;
        if token.revoked_at.is_some() {
            return Err(Error::conflict("A revoked token cannot be regenerated."));
        }
        let secret = PlainToken::mint(K::TOKEN_KIND)?;
        if !self
            .tokens
            .replace_token_secret(id, &secret.digest(), &secret.hint(), self.clock.now())
            .await?
        {
            return Err(Error::conflict("A revoked token cannot be regenerated."));
        }
        let token = self.get(scope, owner, id).await?;
        Ok(IssuedToken { token, secret })
    }

    /// Rotates a token: a new value works at once, and the current value keeps working until
    /// `overlap` has passed (then it fails like a regenerated value). A value that was
    /// previous before (an earlier rotation's overlap) stops working when this returns.
    /// [`TokenService::regenerate`] and [`TokenService::revoke`] end the overlap at once.
    /// Revoked tokens cannot be rotated.
    pub async fn rotate(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
        overlap: Overlap,
    ) -> Result<IssuedToken<K>> {
        let token = self.get(scope, owner, id).await?;
        if token.revoked_at.is_some() {
            return Err(Error::conflict("A revoked token cannot be rotated."));
        }
        let secret = PlainToken::mint(K::TOKEN_KIND)?;
        let now = self.clock.now();
        let until = crate::clock::truncate_to_micros(now + overlap.duration());
        if !self
            .tokens
            .rotate_token_secret(id, &secret.digest(), &secret.hint(), now, until)
            .await?
        {
            return Err(Error::conflict("A revoked token cannot be rotated."));
        }
        let token = self.get(scope, owner, id).await?;
        Ok(IssuedToken { token, secret })
    }

    /// Replaces a token's IP allowlist (empty: any address); effective for every front door
    /// when this returns. Counts as a change (`updated_at`). Revoked tokens cannot be changed.
    pub async fn set_allowlist(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
        allowed_ips: &IpAllowlist,
    ) -> Result<Token<K>> {
        let token = self.get(scope, owner, id).await?;
        if token.revoked_at.is_some()
            || !self
                .tokens
                .set_token_allowlist(id, allowed_ips, self.clock.now())
                .await?
        {
            return Err(Error::conflict("A revoked token cannot be changed."));
        }
        self.get(scope, owner, id).await
    }

    /// Revokes a token, for good. Revoking a revoked token changes nothing and succeeds.
    pub async fn revoke(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
    ) -> Result<Token<K>> {
        let token = self.get(scope, owner, id).await?;
        if token.revoked_at.is_none() {
            self.tokens.revoke_token(id, self.clock.now()).await?;
        }
        self.get(scope, owner, id).await
    }

    /// Active tokens that expire within `within` from now, soonest first: of `owner`, or, with
    /// no owner, of every owner (operators only; a team scope sees nothing).
    pub async fn expiring(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        within: time::Duration,
    ) -> Result<Vec<Token<K>>> {
        match owner {
            Some(owner) => {
                self.owner(scope, owner).await?;
            }
            None if scope != Scope::Operator => return Ok(Vec::new()),
            None => {}
        }
        let now = self.clock.now();
        self.tokens
            .list_expiring_tokens(owner, now, now + within)
            .await
    }

    /// How many active tokens of every owner expire within `within` from now (for metrics).
    pub async fn count_expiring(&self, within: time::Duration) -> Result<u64> {
        let now = self.clock.now();
        self.tokens.count_expiring_tokens(now, now + within).await
    }

    /// A page of a token's log, newest first.
    pub async fn logs(
        &self,
        scope: Scope,
        owner: Option<K::Id>,
        id: TokenId,
        filter: &LogFilter,
        request: &PageRequest<LogSortKey>,
    ) -> Result<Page<TokenLogEntry>> {
        let token = self.get(scope, owner, id).await?;
        let rows = self
            .usage
            .list_token_logs(token.id, filter, request.keyset())
            .await?;
        Ok(request.page(rows, |e| e.id.as_uuid()))
    }
}

/// Mints a new token for `owner` (not yet stored).
pub(super) fn issue<K: Owner>(
    owner: K::Id,
    name: Name,
    abilities: K::Abilities,
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> Result<IssuedToken<K>> {
    let secret = PlainToken::mint(K::TOKEN_KIND)?;
    let token = Token {
        id: TokenId::new(),
        owner,
        name,
        hint: secret.hint(),
        abilities,
        created_at: now,
        updated_at: now,
        last_use: Default::default(),
        expires_at: expires_at.map(crate::clock::truncate_to_micros),
        revoked_at: None,
        previous_expires_at: None,
        allowed_ips: IpAllowlist::any(),
    };
    Ok(IssuedToken { token, secret })
}
