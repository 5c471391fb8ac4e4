//! The two kinds of stored token, as types: what owns a token, and what it carries.
//!
//! Project tokens and team tokens share their whole life cycle (create, list, rename,
//! regenerate, revoke, logs); they differ only in their owner (a project or a team), in what
//! they carry (team tokens hold abilities, project tokens nothing) and in what authentication
//! needs to know about them. [`Token`](crate::model::Token),
//! [`TokenService`](crate::service::TokenService) and
//! [`TokenRepository`](crate::repo::TokenRepository) are written once over [`Owner`] and
//! used as `…<ForProject>` and `…<ForTeam>`.

use std::fmt;
use std::hash::Hash;

use uuid::Uuid;

use crate::ability::Abilities;
use crate::id::{ProjectId, TeamId};
use crate::repo::{ProjectTokenGrant, TeamTokenGrant};
use crate::token::TokenKind;

/// What owns a token of one kind, and what that kind carries. Implemented by [`ForProject`] and
/// [`ForTeam`] only.
pub trait Owner: fmt::Debug + Clone + Copy + PartialEq + Eq + Send + Sync + 'static {
    /// Id of the owner: [`ProjectId`] or [`TeamId`].
    type Id: fmt::Debug + fmt::Display + Copy + Eq + Hash + Into<Uuid> + Send + Sync + 'static;
    /// What a token of this kind carries besides the common fields: [`Abilities`] on team
    /// tokens, nothing (`()`) on project tokens.
    type Abilities: fmt::Debug + Clone + PartialEq + Eq + Send + Sync + 'static;
    /// What authentication reads in one lookup by digest.
    type Grant: fmt::Debug + Clone + Send + Sync + 'static;

    /// The token format of this kind (its prefix).
    const TOKEN_KIND: TokenKind;
    /// Name of the owner in messages (`project`, `team`).
    const OWNER_NAME: &'static str;

    /// Wraps a stored UUID as the owner's id.
    fn owner_id(uuid: Uuid) -> Self::Id;
}

/// Project tokens (`lm_…`): owned by a project, they send mail for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForProject {}

/// Team tokens (`lm_team_…`): owned by a team, they carry abilities over its resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForTeam {}

impl Owner for ForProject {
    type Id = ProjectId;
    type Abilities = ();
    type Grant = ProjectTokenGrant;

    const TOKEN_KIND: TokenKind = TokenKind::Project;
    const OWNER_NAME: &'static str = "project";

    fn owner_id(uuid: Uuid) -> ProjectId {
        ProjectId::from_uuid(uuid)
    }
}

impl Owner for ForTeam {
    type Id = TeamId;
    type Abilities = Abilities;
    type Grant = TeamTokenGrant;

    const TOKEN_KIND: TokenKind = TokenKind::Team;
    const OWNER_NAME: &'static str = "team";

    fn owner_id(uuid: Uuid) -> TeamId {
        TeamId::from_uuid(uuid)
    }
}
