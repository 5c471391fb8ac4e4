//! What a dashboard member does to tokens: the token rules of [`TokenService`], behind the
//! member's role, with every change written to the team's audit log and the token's own log.

use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::account::Member;
use crate::audit::{AuditAction, AuditEntry};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{AuditEntryId, LogEntryId, TokenId};
use crate::kind::Owner;
use crate::model::{Channel, Token};
use crate::repo::AuditRepository;
use crate::scope::Scope;
use crate::usage::{Action, Outcome, TokenLogEntry};

use super::tokens::{IssuedToken, TokenService};

/// Token changes made by members. Generic over the token kind: one set of rules for project
/// tokens (owner: a project) and team tokens (owner: the member's team).
#[derive(Debug, Clone)]
pub struct ConsoleService {
    audit: Arc<dyn AuditRepository>,
    clock: Arc<dyn Clock>,
}

/// Who acts, from where: the member and the client address.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The member.
    pub member: &'a Member,
    /// Their address.
    pub ip: Option<IpAddr>,
}

impl ConsoleService {
    /// Wires the service.
    pub fn new(audit: Arc<dyn AuditRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { audit, clock }
    }

    /// Creates a token of `owner` (a project of the member's team, or the team itself).
    /// Owners and admins only.
    pub async fn create<K: Owner>(
        &self,
        tokens: &TokenService<K>,
        actor: Actor<'_>,
        owner: K::Id,
        name: &str,
        abilities: K::Abilities,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedToken<K>> {
        require_token_manager(actor.member)?;
        let issued = tokens
            .create(
                Scope::Team(actor.member.team_id),
                owner,
                name,
                abilities,
                expires_at,
            )
            .await?;
        self.record(
            actor,
            &issued.token,
            AuditAction::TokenCreated,
            Action::Create,
            201,
        )
        .await?;
        Ok(issued)
    }

    /// Regenerates a token's value (the old value stops working when this returns). Owners and
    /// admins only.
    pub async fn regenerate<K: Owner>(
        &self,
        tokens: &TokenService<K>,
        actor: Actor<'_>,
        owner: K::Id,
        id: TokenId,
    ) -> Result<IssuedToken<K>> {
        require_token_manager(actor.member)?;
        let issued = tokens
            .regenerate(Scope::Team(actor.member.team_id), Some(owner), id)
            .await?;
        self.record(
            actor,
            &issued.token,
            AuditAction::TokenRegenerated,
            Action::Regenerate,
            200,
        )
        .await?;
        Ok(issued)
    }

    /// Revokes a token. Owners and admins only.
    pub async fn revoke<K: Owner>(
        &self,
        tokens: &TokenService<K>,
        actor: Actor<'_>,
        owner: K::Id,
        id: TokenId,
    ) -> Result<Token<K>> {
        require_token_manager(actor.member)?;
        let scope = Scope::Team(actor.member.team_id);
        let before = tokens.get(scope, Some(owner), id).await?;
        let token = tokens.revoke(scope, Some(owner), id).await?;
        if before.revoked_at.is_none() {
            self.record(
                actor,
                &token,
                AuditAction::TokenRevoked,
                Action::Revoke,
                200,
            )
            .await?;
        }
        Ok(token)
    }

    async fn record<K: Owner>(
        &self,
        actor: Actor<'_>,
        token: &Token<K>,
        action: AuditAction,
        log_action: Action,
        status: u16,
    ) -> Result<()> {
        let now = self.clock.now();
        let email = actor.member.account.email.as_str().to_owned();
        let entry = AuditEntry {
            id: AuditEntryId::new(),
            team_id: Some(actor.member.team_id),
            actor_id: Some(actor.member.account.id),
            actor_email: Some(email.clone()),
            action,
            target: Some(format!("token:{}", token.id)),
            detail: Some(format!(
                "{} {} ({})",
                K::OWNER_NAME,
                token.name.as_str(),
                token.hint.as_str()
            )),
            ip: actor.ip,
            at: now,
        };
        let log = TokenLogEntry {
            id: LogEntryId::new(),
            token_id: token.id,
            at: now,
            ip: actor.ip,
            via: Channel::Dashboard,
            action: log_action,
            outcome: Outcome::Accepted,
            status,
            message_ids: Vec::new(),
            user_agent: None,
            credential: None,
            leak_url: None,
            actor: Some(email),
        };
        self.audit.append_audit(&entry, Some(log)).await
    }
}

/// Owners and admins manage tokens; members get [`Error::Forbidden`].
pub fn require_token_manager(member: &Member) -> Result<()> {
    if member.role.manages_tokens() {
        Ok(())
    } else {
        Err(Error::Forbidden {
            required: "admin".to_owned(),
        })
    }
}
