use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::id::{ProjectId, TokenId};
use crate::model::{Project, ProjectToken, TokenStatusFilter};
use crate::name::Name;
use crate::page::{Direction, LogSortKey, Page, PageRequest, Sort, TokenSortKey};
use crate::repo::{ProjectRepository, ProjectTokenRepository, UsageRepository};
use crate::scope::Scope;
use crate::token::{PlainToken, TokenKind};
use crate::usage::{LogFilter, TokenLogEntry};

use super::check_expiry;

/// A project token just created or regenerated, with its secret: show `secret` once.
#[derive(Clone)]
pub struct IssuedProjectToken {
    /// The token.
    pub token: ProjectToken,
    /// The full value.
    pub secret: PlainToken,
}

impl fmt::Debug for IssuedProjectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedProjectToken")
            .field("token", &self.token)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Project tokens: create, list, show, rename, regenerate, revoke, logs.
#[derive(Debug, Clone)]
pub struct ProjectTokenService {
    projects: Arc<dyn ProjectRepository>,
    tokens: Arc<dyn ProjectTokenRepository>,
    usage: Arc<dyn UsageRepository>,
    clock: Arc<dyn Clock>,
}

impl ProjectTokenService {
    /// Wires the service.
    pub fn new(
        projects: Arc<dyn ProjectRepository>,
        tokens: Arc<dyn ProjectTokenRepository>,
        usage: Arc<dyn UsageRepository>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            projects,
            tokens,
            usage,
            clock,
        }
    }

    async fn project(&self, scope: Scope, id: ProjectId) -> Result<Project> {
        let project = self
            .projects
            .get_project(id)
            .await?
            .ok_or(Error::not_found("project"))?;
        scope.check(project.team_id, "project")?;
        Ok(project)
    }

    /// Creates a token in a project. The name must not clash with the project's other
    /// non-revoked tokens; `expires_at`, if set, must be in the future.
    pub async fn create(
        &self,
        scope: Scope,
        project: ProjectId,
        name: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<IssuedProjectToken> {
        let name = Name::parse("name", name)?;
        let now = self.clock.now();
        check_expiry(expires_at, now)?;
        let project = self.project(scope, project).await?;
        let secret = PlainToken::mint(TokenKind::Project)?;
        let token = ProjectToken {
            id: TokenId::new(),
            project_id: project.id,
            name,
            hint: secret.hint(),
            created_at: now,
            updated_at: now,
            last_use: Default::default(),
            expires_at: expires_at.map(crate::clock::truncate_to_micros),
            revoked_at: None,
        };
        self.tokens
            .insert_project_token(&token, &secret.digest())
            .await?;
        Ok(IssuedProjectToken { token, secret })
    }

    /// A page of a project's tokens with the given status.
    pub async fn list(
        &self,
        scope: Scope,
        project: ProjectId,
        status: TokenStatusFilter,
        request: &PageRequest<TokenSortKey>,
    ) -> Result<Page<ProjectToken>> {
        let project = self.project(scope, project).await?;
        let rows = self
            .tokens
            .list_project_tokens(project.id, status, self.clock.now(), request.keyset())
            .await?;
        Ok(request.page(rows, |t| t.id.as_uuid()))
    }

    /// A token, if visible (and, when `project` is given, of that project).
    pub async fn get(
        &self,
        scope: Scope,
        project: Option<ProjectId>,
        id: TokenId,
    ) -> Result<ProjectToken> {
        let token = self
            .tokens
            .get_project_token(id)
            .await?
            .ok_or(Error::not_found("token"))?;
        if project.is_some_and(|p| p != token.project_id) {
            return Err(Error::not_found("token"));
        }
        self.project(scope, token.project_id)
            .await
            .map_err(|_| Error::not_found("token"))?;
        Ok(token)
    }

    /// The project's oldest active token: what the legacy `rotate-token` endpoint regenerates.
    pub async fn first_active(
        &self,
        scope: Scope,
        project: ProjectId,
    ) -> Result<Option<ProjectToken>> {
        let request = PageRequest::first(
            1,
            Sort {
                key: TokenSortKey::CreatedAt,
                direction: Direction::Ascending,
            },
        );
        let page = self
            .list(scope, project, TokenStatusFilter::Active, &request)
            .await?;
        Ok(page.items.into_iter().next())
    }

    /// Renames a token (not a revoked one). Counts as a change (`updated_at`).
    pub async fn rename(
        &self,
        scope: Scope,
        project: Option<ProjectId>,
        id: TokenId,
        name: &str,
    ) -> Result<ProjectToken> {
        let name = Name::parse("name", name)?;
        let token = self.get(scope, project, id).await?;
        if token.revoked_at.is_some() {
            return Err(Error::conflict("A revoked token cannot be renamed."));
        }
        if !self
            .tokens
            .rename_project_token(id, &name, self.clock.now())
            .await?
        {
            return Err(Error::conflict("A revoked token cannot be renamed."));
        }
        self.get(scope, project, id).await
    }

    /// Replaces a token's secret, keeping its id and name. The old value stops working when
    /// this returns. Revoked tokens cannot be regenerated.
    pub async fn regenerate(
        &self,
        scope: Scope,
        project: Option<ProjectId>,
        id: TokenId,
    ) -> Result<IssuedProjectToken> {
        let token = self.get(scope, project, id).await?;
        if token.revoked_at.is_some() {
            return Err(Error::conflict("A revoked token cannot be regenerated."));
        }
        let secret = PlainToken::mint(TokenKind::Project)?;
        if !self
            .tokens
            .replace_project_token_secret(id, &secret.digest(), &secret.hint(), self.clock.now())
            .await?
        {
            return Err(Error::conflict("A revoked token cannot be regenerated."));
        }
        let token = self.get(scope, project, id).await?;
        Ok(IssuedProjectToken { token, secret })
    }

    /// Revokes a token, for good. Revoking a revoked token changes nothing and succeeds.
    pub async fn revoke(
        &self,
        scope: Scope,
        project: Option<ProjectId>,
        id: TokenId,
    ) -> Result<ProjectToken> {
        let token = self.get(scope, project, id).await?;
        if token.revoked_at.is_none() {
            self.tokens
                .revoke_project_token(id, self.clock.now())
                .await?;
        }
        self.get(scope, project, id).await
    }

    /// A page of a token's log, newest first.
    pub async fn logs(
        &self,
        scope: Scope,
        project: Option<ProjectId>,
        id: TokenId,
        filter: &LogFilter,
        request: &PageRequest<LogSortKey>,
    ) -> Result<Page<TokenLogEntry>> {
        let token = self.get(scope, project, id).await?;
        let rows = self
            .usage
            .list_token_logs(token.id, filter, request.keyset())
            .await?;
        Ok(request.page(rows, |e| e.id.as_uuid()))
    }
}
