//! Projects in SQL: a team's page of projects, alone or each with its first active token.

use lettermint_core::page::{Keyset, ProjectSortKey};
use lettermint_core::repo::ProjectWithFirstToken;
use lettermint_core::{Error, ForProject, Name, Project, ProjectId, TeamId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::decode::corrupt;
use crate::dialect::Dialect;
use crate::keyset::{SortColumn, paginate};
use crate::tokens::TokenRow;

/// A team's (`$1`) projects whose name contains `$2` (NULL: all), in keyset order (`$3` anchor,
/// `$4` limit).
pub fn select_page<D: Dialect>(keyset: &Keyset<ProjectSortKey>) -> String {
    paginate_projects::<D>("*", keyset)
}

/// `SELECT {columns} FROM projects` with the team, search and keyset conditions of
/// [`select_page`].
fn paginate_projects<D: Dialect>(columns: &str, keyset: &Keyset<ProjectSortKey>) -> String {
    paginate(
        &format!(
            "SELECT {columns} FROM projects WHERE team_id = $1 AND {}",
            D::NAME_CONTAINS_2
        ),
        "projects",
        keyset,
        "$3",
        "$4",
        D::LOWEST_INSTANT,
    )
}

/// The page of [`select_page`], each project with its first active token at `$5`: the oldest
/// by creation, ties broken by id, like the first token of an ascending token list. Rows are
/// [`ProjectWithTokenRow`]s.
pub fn select_page_with_first_token<D: Dialect>(keyset: &Keyset<ProjectSortKey>) -> String {
    let page = paginate_projects::<D>(
        "*, (SELECT f.id FROM project_tokens f WHERE f.project_id = projects.id \
         AND f.revoked_at IS NULL AND (f.expires_at IS NULL OR f.expires_at > $5) \
         ORDER BY f.created_at ASC, f.id ASC LIMIT 1) AS first_token_id",
        keyset,
    );
    // Project sort keys are never NULL: the page's order is the plain column's.
    let dir = match keyset.direction {
        lettermint_core::Direction::Ascending => "ASC",
        lettermint_core::Direction::Descending => "DESC",
    };
    format!(
        "SELECT p.id AS project_id, p.team_id AS project_team_id, p.name AS project_name, \
         p.smtp_enabled AS project_smtp_enabled, p.created_at AS project_created_at, \
         p.updated_at AS project_updated_at, t.id AS token_id, t.name AS token_name, \
         t.hint AS token_hint, t.created_at AS token_created_at, \
         t.updated_at AS token_updated_at, t.last_used_at AS token_last_used_at, \
         t.last_used_ip AS token_last_used_ip, t.last_used_via AS token_last_used_via, \
         t.expires_at AS token_expires_at, t.revoked_at AS token_revoked_at, \
         t.previous_expires_at AS token_previous_expires_at, \
         t.allowed_ips AS token_allowed_ips \
         FROM ({page}) p LEFT JOIN project_tokens t ON t.id = p.first_token_id \
         ORDER BY p.{column} {dir}, p.id {dir}",
        column = keyset.key.column(),
    )
}

/// A row of [`select_page_with_first_token`], whatever the store's type `T` for instants.
#[derive(Debug, sqlx::FromRow)]
pub struct ProjectWithTokenRow<T> {
    project_id: Uuid,
    project_team_id: Uuid,
    project_name: String,
    project_smtp_enabled: bool,
    project_created_at: T,
    project_updated_at: T,
    token_id: Option<Uuid>,
    token_name: Option<String>,
    token_hint: Option<String>,
    token_created_at: Option<T>,
    token_updated_at: Option<T>,
    token_last_used_at: Option<T>,
    token_last_used_ip: Option<String>,
    token_last_used_via: Option<String>,
    token_expires_at: Option<T>,
    token_revoked_at: Option<T>,
    token_previous_expires_at: Option<T>,
    token_allowed_ips: Option<String>,
}

impl<T> ProjectWithTokenRow<T> {
    /// The project and its token, reading instants with `instant`.
    pub fn into_project(
        self,
        instant: impl Fn(T) -> Result<OffsetDateTime, Error>,
    ) -> Result<ProjectWithFirstToken, Error> {
        let project = Project {
            id: ProjectId::from_uuid(self.project_id),
            team_id: TeamId::from_uuid(self.project_team_id),
            name: Name::from_stored(self.project_name),
            smtp_enabled: self.project_smtp_enabled,
            created_at: instant(self.project_created_at)?,
            updated_at: instant(self.project_updated_at)?,
        };
        let first_token = match self.token_id {
            None => None,
            Some(id) => {
                let missing = |what: &str| corrupt("token", format!("{what} is missing"));
                let row = TokenRow {
                    id,
                    owner_id: self.project_id,
                    name: self.token_name.ok_or_else(|| missing("name"))?,
                    hint: self.token_hint.ok_or_else(|| missing("hint"))?,
                    abilities: None,
                    created_at: self.token_created_at.ok_or_else(|| missing("created_at"))?,
                    updated_at: self.token_updated_at.ok_or_else(|| missing("updated_at"))?,
                    last_used_at: self.token_last_used_at,
                    last_used_ip: self.token_last_used_ip,
                    last_used_via: self.token_last_used_via,
                    expires_at: self.token_expires_at,
                    revoked_at: self.token_revoked_at,
                    previous_expires_at: self.token_previous_expires_at,
                    allowed_ips: self.token_allowed_ips.unwrap_or_default(),
                    grant_team_id: None,
                    grant_smtp_enabled: None,
                    grant_current: None,
                };
                Some(row.into_token::<ForProject>(instant)?)
            }
        };
        Ok(ProjectWithFirstToken {
            project,
            first_token,
        })
    }
}
