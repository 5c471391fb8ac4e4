//! Authentication: from a presented token value to who the caller is, or why not.

use std::net::IpAddr;
use std::sync::Arc;

use crate::ability::{Abilities, Ability};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{ProjectId, TeamId, TokenId};
use crate::kind::Owner;
use crate::kind::{ForProject, ForTeam};
use crate::message::TokenCredential;
use crate::model::{Channel, Token, TokenStatus};
use crate::repo::TokenRepository;
use crate::rotation::CredentialSlot;
use crate::token::{PlainToken, TokenDigest, TokenFormatError, TokenKind};
use crate::usage::Outcome;

/// Why a token did not authenticate. Clients get one answer whatever the reason; the reason
/// goes to logs and metrics, and to the token's own log when the token is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No token was presented.
    Missing,
    /// The value is not a well-formed token (prefix, length, alphabet or checksum).
    Malformed(TokenFormatError),
    /// Well-formed, but no token has this value (never existed, regenerated since, or the
    /// previous value of a rotated token whose overlap has ended).
    Unknown,
    /// A token of the other kind (for example a team token used to send mail).
    WrongKind {
        /// The token, when it exists.
        token_id: Option<TokenId>,
    },
    /// The token was revoked.
    Revoked {
        /// The token.
        token_id: TokenId,
    },
    /// The token expired.
    Expired {
        /// The token.
        token_id: TokenId,
    },
    /// The project does not allow SMTP.
    SmtpDisabled {
        /// The token.
        token_id: TokenId,
    },
    /// The token has an IP allowlist and the client's address is not in it (or is unknown).
    IpNotAllowed {
        /// The token.
        token_id: TokenId,
    },
}

impl AuthFailure {
    /// A short machine name, for metrics labels.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed(_) => "malformed",
            AuthFailure::Unknown => "unknown",
            AuthFailure::WrongKind { .. } => "wrong_kind",
            AuthFailure::Revoked { .. } => "revoked",
            AuthFailure::Expired { .. } => "expired",
            AuthFailure::SmtpDisabled { .. } => "smtp_disabled",
            AuthFailure::IpNotAllowed { .. } => "ip_not_allowed",
        }
    }

    /// The token the failure can be logged against, and the outcome to log.
    #[must_use]
    pub const fn loggable(&self) -> Option<(TokenId, Outcome)> {
        match *self {
            AuthFailure::WrongKind {
                token_id: Some(token_id),
            } => Some((token_id, Outcome::RejectedWrongKind)),
            AuthFailure::Revoked { token_id } => Some((token_id, Outcome::RejectedRevoked)),
            AuthFailure::Expired { token_id } => Some((token_id, Outcome::RejectedExpired)),
            AuthFailure::SmtpDisabled { token_id } => {
                Some((token_id, Outcome::RejectedSmtpDisabled))
            }
            AuthFailure::IpNotAllowed { token_id } => Some((token_id, Outcome::RejectedIp)),
            _ => None,
        }
    }
}

/// A caller authenticated with a project token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectCaller {
    /// Team of the project.
    pub team_id: TeamId,
    /// The project it may send for.
    pub project_id: ProjectId,
    /// The token and the digest presented; messages are accepted only while it is current (or
    /// previous, during a rotation's overlap).
    pub credential: TokenCredential,
    /// Which of the token's values the digest was when it authenticated.
    pub slot: CredentialSlot,
}

/// A caller authenticated with a team token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamCaller {
    /// The team.
    pub team_id: TeamId,
    /// The token.
    pub token_id: TokenId,
    /// What it may do.
    pub abilities: Abilities,
    /// Which of the token's values was presented.
    pub slot: CredentialSlot,
}

impl TeamCaller {
    /// `Ok` when the token holds `required` (or its write form), [`Error::Forbidden`] otherwise.
    pub fn require(&self, required: Ability) -> Result<()> {
        if self.abilities.allows(required) {
            Ok(())
        } else {
            Err(Error::Forbidden {
                required: required.to_string(),
            })
        }
    }
}

/// Authenticates both kinds of token.
#[derive(Debug, Clone)]
pub struct AuthService {
    project_tokens: Arc<dyn TokenRepository<ForProject>>,
    team_tokens: Arc<dyn TokenRepository<ForTeam>>,
    clock: Arc<dyn Clock>,
}

impl AuthService {
    /// Wires the service.
    pub fn new(
        project_tokens: Arc<dyn TokenRepository<ForProject>>,
        team_tokens: Arc<dyn TokenRepository<ForTeam>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            project_tokens,
            team_tokens,
            clock,
        }
    }

    /// Authenticates a project token presented through `via` by a client at `client_ip`
    /// (`None`: unknown, which a token with an IP allowlist refuses). Malformed values are
    /// refused before any lookup. Failures are [`Error::Unauthenticated`]; store failures are
    /// [`Error::Storage`].
    pub async fn authenticate_project(
        &self,
        presented: Option<&str>,
        via: Channel,
        client_ip: Option<IpAddr>,
    ) -> Result<ProjectCaller> {
        let token = parse(presented)?;
        let digest = token.digest();
        if token.kind() == TokenKind::Team {
            let known = self.team_tokens.find_token_by_digest(&digest).await?;
            return Err(Error::Unauthenticated(AuthFailure::WrongKind {
                token_id: known.map(|g| g.token.id),
            }));
        }
        self.authenticate_project_digest(&digest, via, client_ip)
            .await
    }

    /// Authenticates the project token whose digest is `digest` (the value was parsed before,
    /// for example by an earlier request of the same client); same answers as
    /// [`AuthService::authenticate_project`].
    pub async fn authenticate_project_digest(
        &self,
        digest: &TokenDigest,
        via: Channel,
        client_ip: Option<IpAddr>,
    ) -> Result<ProjectCaller> {
        let grant = self
            .project_tokens
            .find_token_by_digest(digest)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::Unknown))?;
        let token_id = grant.token.id;
        check(&grant.token, grant.slot, self.clock.now(), client_ip)?;
        if via == Channel::Smtp && !grant.smtp_enabled {
            return Err(Error::Unauthenticated(AuthFailure::SmtpDisabled {
                token_id,
            }));
        }
        Ok(ProjectCaller {
            team_id: grant.team_id,
            project_id: grant.token.owner,
            credential: TokenCredential {
                token_id,
                digest: *digest,
            },
            slot: grant.slot,
        })
    }

    /// Authenticates a team token (the Team API) presented by a client at `client_ip`. A
    /// project token here is [`AuthFailure::WrongKind`].
    pub async fn authenticate_team(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<TeamCaller> {
        let token = parse(presented)?;
        let digest = token.digest();
        if token.kind() == TokenKind::Project {
            let known = self.project_tokens.find_token_by_digest(&digest).await?;
            return Err(Error::Unauthenticated(AuthFailure::WrongKind {
                token_id: known.map(|g| g.token.id),
            }));
        }
        let grant = self
            .team_tokens
            .find_token_by_digest(&digest)
            .await?
            .ok_or(Error::Unauthenticated(AuthFailure::Unknown))?;
        check(&grant.token, grant.slot, self.clock.now(), client_ip)?;
        Ok(TeamCaller {
            team_id: grant.token.owner,
            token_id: grant.token.id,
            abilities: grant.token.abilities,
            slot: grant.slot,
        })
    }
}

/// The checks both kinds share, in the order a refusal is reported: a previous value past its
/// overlap is unknown (exactly like a regenerated value); then revoked, expired; then the
/// client's address against the allowlist.
fn check<K: Owner>(
    token: &Token<K>,
    slot: CredentialSlot,
    now: time::OffsetDateTime,
    client_ip: Option<IpAddr>,
) -> Result<()> {
    let token_id = token.id;
    if slot == CredentialSlot::Previous && token.previous_expires_at.is_none_or(|e| now >= e) {
        return Err(Error::Unauthenticated(AuthFailure::Unknown));
    }
    match token.status(now) {
        TokenStatus::Revoked => Err(Error::Unauthenticated(AuthFailure::Revoked { token_id })),
        TokenStatus::Expired => Err(Error::Unauthenticated(AuthFailure::Expired { token_id })),
        TokenStatus::Active if !token.allowed_ips.allows(client_ip) => {
            Err(Error::Unauthenticated(AuthFailure::IpNotAllowed {
                token_id,
            }))
        }
        TokenStatus::Active => Ok(()),
    }
}

fn parse(presented: Option<&str>) -> Result<PlainToken> {
    let presented = presented
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or(Error::Unauthenticated(AuthFailure::Missing))?;
    PlainToken::parse(presented).map_err(|e| Error::Unauthenticated(AuthFailure::Malformed(e)))
}
