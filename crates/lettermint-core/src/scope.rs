//! Who is asking: an operator (sees everything) or a team (sees only its own resources).

use crate::error::{Error, Result};
use crate::id::TeamId;

/// The visibility of a caller. Services check it on every lookup, and answer
/// [`Error::NotFound`] for resources outside it, so another team's ids look like ids that do
/// not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The operator's tools (`token-admin`, `xtask`): every team.
    Operator,
    /// A team token's caller: that team only.
    Team(TeamId),
}

impl Scope {
    /// Whether resources of `team` are visible.
    #[must_use]
    pub fn sees(&self, team: TeamId) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Team(own) => *own == team,
        }
    }

    /// `Ok` when `team` is visible, not-found for `entity` otherwise.
    pub fn check(&self, team: TeamId, entity: &'static str) -> Result<()> {
        if self.sees(team) {
            Ok(())
        } else {
            Err(Error::not_found(entity))
        }
    }
}
