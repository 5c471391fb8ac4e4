use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::TeamId;
use crate::model::Team;
use crate::name::Name;
use crate::repo::TeamRepository;
use crate::scope::Scope;

/// A team with the counts the Team API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSummary {
    /// The team.
    pub team: Team,
    /// How many projects it has.
    pub projects_count: u64,
}

/// Teams.
#[derive(Debug, Clone)]
pub struct TeamService {
    teams: Arc<dyn TeamRepository>,
    clock: Arc<dyn Clock>,
}

impl TeamService {
    /// Wires the service.
    pub fn new(teams: Arc<dyn TeamRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { teams, clock }
    }

    /// Creates a team. Only operators create teams.
    pub async fn create(&self, scope: Scope, name: &str) -> Result<Team> {
        if scope != Scope::Operator {
            return Err(Error::Forbidden {
                required: "operator".to_owned(),
            });
        }
        let now = self.clock.now();
        let team = Team {
            id: TeamId::new(),
            name: Name::parse("name", name)?,
            created_at: now,
            updated_at: now,
        };
        self.teams.insert_team(&team).await?;
        Ok(team)
    }

    /// A team, if visible.
    pub async fn get(&self, scope: Scope, id: TeamId) -> Result<Team> {
        scope.check(id, "team")?;
        self.teams
            .get_team(id)
            .await?
            .ok_or(Error::not_found("team"))
    }

    /// A team with its project count.
    pub async fn summary(&self, scope: Scope, id: TeamId) -> Result<TeamSummary> {
        let team = self.get(scope, id).await?;
        let projects_count = self.teams.count_projects(id).await?;
        Ok(TeamSummary {
            team,
            projects_count,
        })
    }

    /// The visible teams, by name.
    pub async fn list(&self, scope: Scope) -> Result<Vec<Team>> {
        let mut teams = self.teams.list_teams().await?;
        teams.retain(|t| scope.sees(t.id));
        Ok(teams)
    }

    /// Renames a team.
    pub async fn rename(&self, scope: Scope, id: TeamId, name: &str) -> Result<Team> {
        scope.check(id, "team")?;
        let name = Name::parse("name", name)?;
        if !self.teams.rename_team(id, &name, self.clock.now()).await? {
            return Err(Error::not_found("team"));
        }
        self.get(scope, id).await
    }
}
