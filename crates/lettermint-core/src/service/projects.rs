use std::sync::Arc;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{ProjectId, TeamId};
use crate::model::{Project, Route};
use crate::name::Name;
use crate::page::{Page, PageRequest, ProjectSortKey};
use crate::repo::{NewProjectToken, ProjectRepository, ProjectWithFirstToken, TeamRepository};
use crate::scope::Scope;

use super::IssuedProjectToken;

/// What a new project needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Owner.
    pub team_id: TeamId,
    /// Name.
    pub name: String,
    /// Whether SMTP is allowed.
    pub smtp_enabled: bool,
    /// Name of a first token to create with it, shown once.
    pub first_token_name: Option<String>,
}

/// Changes to a project; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectUpdate {
    /// New name.
    pub name: Option<String>,
    /// New SMTP setting.
    pub smtp_enabled: Option<bool>,
}

/// Projects.
#[derive(Debug, Clone)]
pub struct ProjectService {
    teams: Arc<dyn TeamRepository>,
    projects: Arc<dyn ProjectRepository>,
    clock: Arc<dyn Clock>,
}

impl ProjectService {
    /// Wires the service.
    pub fn new(
        teams: Arc<dyn TeamRepository>,
        projects: Arc<dyn ProjectRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            teams,
            projects,
            clock,
        }
    }

    /// Creates a project with its default route and, if asked, its first token, atomically.
    pub async fn create(
        &self,
        scope: Scope,
        new: NewProject,
    ) -> Result<(Project, Option<IssuedProjectToken>)> {
        scope.check(new.team_id, "team")?;
        let name = Name::parse("name", &new.name)?;
        let token_name = new
            .first_token_name
            .as_deref()
            .map(|n| Name::parse("token_name", n))
            .transpose()?;
        if self.teams.get_team(new.team_id).await?.is_none() {
            return Err(Error::not_found("team"));
        }
        let now = self.clock.now();
        let project = Project {
            id: ProjectId::new(),
            team_id: new.team_id,
            name,
            smtp_enabled: new.smtp_enabled,
            created_at: now,
            updated_at: now,
        };
        let route = Route::default_for(project.id, now);
        let issued = token_name
            .map(|name| super::tokens::issue(project.id, name, (), now, None))
            .transpose()?;
        let first = issued.as_ref().map(|i| NewProjectToken {
            token: i.token.clone(),
            digest: i.secret.digest(),
        });
        self.projects
            .insert_project(&project, &route, first)
            .await?;
        Ok((project, issued))
    }

    /// A project, if visible.
    pub async fn get(&self, scope: Scope, id: ProjectId) -> Result<Project> {
        let project = self
            .projects
            .get_project(id)
            .await?
            .ok_or(Error::not_found("project"))?;
        scope.check(project.team_id, "project")?;
        Ok(project)
    }

    /// A page of a team's projects, optionally only those whose name contains `search`.
    pub async fn list(
        &self,
        scope: Scope,
        team: TeamId,
        search: Option<&str>,
        request: &PageRequest<ProjectSortKey>,
    ) -> Result<Page<Project>> {
        scope.check(team, "team")?;
        let search = search_term(search);
        let rows = self
            .projects
            .list_projects(team, search, request.keyset())
            .await?;
        Ok(request.page(rows, |p| p.id.as_uuid()))
    }

    /// The same page as [`Self::list`], each project with its first active token (the one the
    /// legacy `rotate-token` endpoint regenerates), read in one query.
    pub async fn list_with_first_token(
        &self,
        scope: Scope,
        team: TeamId,
        search: Option<&str>,
        request: &PageRequest<ProjectSortKey>,
    ) -> Result<Page<ProjectWithFirstToken>> {
        scope.check(team, "team")?;
        let search = search_term(search);
        let rows = self
            .projects
            .list_projects_with_first_token(team, search, self.clock.now(), request.keyset())
            .await?;
        Ok(request.page(rows, |p| p.project.id.as_uuid()))
    }

    /// Changes name and/or SMTP setting.
    pub async fn update(
        &self,
        scope: Scope,
        id: ProjectId,
        update: ProjectUpdate,
    ) -> Result<Project> {
        let mut project = self.get(scope, id).await?;
        if let Some(name) = update.name.as_deref() {
            project.name = Name::parse("name", name)?;
        }
        if let Some(smtp) = update.smtp_enabled {
            project.smtp_enabled = smtp;
        }
        project.updated_at = self.clock.now();
        if !self.projects.update_project(&project).await? {
            return Err(Error::not_found("project"));
        }
        Ok(project)
    }

    /// Deletes a project with everything it owns. Its tokens stop working at once.
    pub async fn delete(&self, scope: Scope, id: ProjectId) -> Result<()> {
        self.get(scope, id).await?;
        if !self.projects.delete_project(id).await? {
            return Err(Error::not_found("project"));
        }
        Ok(())
    }
}

/// A search term as the store takes it: trimmed, and `None` when nothing is left.
fn search_term(search: Option<&str>) -> Option<String> {
    search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
