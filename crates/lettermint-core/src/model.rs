//! Entities: teams, projects, routes and tokens.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::allowlist::IpAllowlist;
use crate::id::{ProjectId, RouteId, TeamId, TokenId};
use crate::kind::{ForProject, ForTeam, Owner};
use crate::name::Name;
use crate::token::TokenHint;

/// A team: owns projects and team tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Id.
    pub id: TeamId,
    /// Display name.
    pub name: Name,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// A project: the unit that sends mail, owner of routes and project tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Id.
    pub id: ProjectId,
    /// The team that owns it.
    pub team_id: TeamId,
    /// Display name.
    pub name: Name,
    /// Whether its tokens may authenticate the SMTP relay.
    pub smtp_enabled: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub updated_at: OffsetDateTime,
}

/// What kind of mail a route carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// One-to-one mail triggered by an application (receipts, password resets).
    Transactional,
    /// One-to-many mail (newsletters).
    Broadcast,
}

impl RouteKind {
    /// Lower-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteKind::Transactional => "transactional",
            RouteKind::Broadcast => "broadcast",
        }
    }
}

impl FromStr for RouteKind {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transactional" => Ok(RouteKind::Transactional),
            "broadcast" => Ok(RouteKind::Broadcast),
            other => Err(UnknownVariant(other.to_owned())),
        }
    }
}

/// Slug of the route every project is created with.
pub const DEFAULT_ROUTE_SLUG: &str = "default";

/// A route of a project; a send names it by slug, or gets the project's default route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Id.
    pub id: RouteId,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// Slug, unique within the project.
    pub slug: String,
    /// Display name.
    pub name: Name,
    /// Transactional or broadcast.
    pub kind: RouteKind,
    /// Whether sends without a route use this one (exactly one per project).
    pub is_default: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl Route {
    /// The default route a new project gets.
    #[must_use]
    pub fn default_for(project_id: ProjectId, at: OffsetDateTime) -> Self {
        Self {
            id: RouteId::new(),
            project_id,
            slug: DEFAULT_ROUTE_SLUG.to_owned(),
            name: Name::from_stored("Default".to_owned()),
            kind: RouteKind::Transactional,
            is_default: true,
            created_at: at,
        }
    }
}

/// Which front door a token was used through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The HTTP APIs.
    Api,
    /// The SMTP relay.
    Smtp,
    /// The dashboard (a member managing the token, not a use of its value).
    Dashboard,
}

impl Channel {
    /// Lower-case name (`api`, `smtp`, `dashboard`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Smtp => "smtp",
            Channel::Dashboard => "dashboard",
        }
    }
}

impl FromStr for Channel {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api" => Ok(Channel::Api),
            "smtp" => Ok(Channel::Smtp),
            "dashboard" => Ok(Channel::Dashboard),
            other => Err(UnknownVariant(other.to_owned())),
        }
    }
}

/// A stored enum value that this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownVariant(pub String);

/// Whether a token can be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// Not revoked and not past its expiry.
    Active,
    /// Revoked: final.
    Revoked,
    /// Past its `expires_at`.
    Expired,
}

impl TokenStatus {
    /// Lower-case name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
        }
    }

    fn of(
        revoked_at: Option<OffsetDateTime>,
        expires_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Self {
        if revoked_at.is_some() {
            TokenStatus::Revoked
        } else if expires_at.is_some_and(|e| e <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tokens a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TokenStatusFilter {
    /// Active tokens only (the default).
    #[default]
    Active,
    /// Revoked tokens only.
    Revoked,
    /// Expired (not revoked) tokens only.
    Expired,
    /// Every token.
    All,
}

impl FromStr for TokenStatusFilter {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "revoked" => Ok(Self::Revoked),
            "expired" => Ok(Self::Expired),
            "all" => Ok(Self::All),
            other => Err(UnknownVariant(other.to_owned())),
        }
    }
}

/// Last use of a token, written behind the request that used it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastUse {
    /// When.
    pub at: Option<OffsetDateTime>,
    /// From which client address.
    pub ip: Option<IpAddr>,
    /// Through which front door.
    pub via: Option<Channel>,
}

/// A token of either kind, without its secret (which is never stored): a project token
/// ([`ProjectToken`]) or a team token ([`TeamToken`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<K: Owner> {
    /// Id; kept across regenerations. Unique across both kinds.
    pub id: TokenId,
    /// What owns it: its project, or its team.
    pub owner: K::Id,
    /// Name, unique among its owner's non-revoked tokens.
    pub name: Name,
    /// Non-secret fragment for recognising it.
    pub hint: TokenHint,
    /// What it may do: abilities on team tokens, nothing on project tokens.
    pub abilities: K::Abilities,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed: creation, rename or regeneration.
    pub updated_at: OffsetDateTime,
    /// When and how it was last used.
    pub last_use: LastUse,
    /// When it stops working, if ever.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// When the value replaced by the last rotation stops (or stopped) working; `None` when the
    /// token was never rotated with an overlap, or was regenerated since.
    pub previous_expires_at: Option<OffsetDateTime>,
    /// The client addresses it may be used from (empty: any).
    pub allowed_ips: IpAllowlist,
}

impl<K: Owner> Token<K> {
    /// When the previous value stops working, if a rotation's overlap is still running at
    /// `now`.
    #[must_use]
    pub fn overlap_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.previous_expires_at
            .filter(|until| *until > now && self.revoked_at.is_none())
    }

    /// Its status at `now`.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime) -> TokenStatus {
        TokenStatus::of(self.revoked_at, self.expires_at, now)
    }
}

/// A project token: sends mail for one project.
pub type ProjectToken = Token<ForProject>;

/// A team token: manages its team's resources, as far as its abilities go.
pub type TeamToken = Token<ForTeam>;

impl ProjectToken {
    /// The project it sends for.
    #[must_use]
    pub fn project_id(&self) -> ProjectId {
        self.owner
    }
}

impl TeamToken {
    /// The team it manages.
    #[must_use]
    pub fn team_id(&self) -> TeamId {
        self.owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn status_prefers_revoked_over_expired() {
        let now = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(TokenStatus::of(None, None, now), TokenStatus::Active);
        assert_eq!(TokenStatus::of(None, Some(now), now), TokenStatus::Expired);
        assert_eq!(
            TokenStatus::of(None, Some(datetime!(2026-01-01 12:00:01 UTC)), now),
            TokenStatus::Active
        );
        assert_eq!(
            TokenStatus::of(Some(now), Some(now), now),
            TokenStatus::Revoked
        );
    }
}
