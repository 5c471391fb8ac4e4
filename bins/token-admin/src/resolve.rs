//! Finding teams, projects and tokens by id or by name.
//!
//! An argument that parses as a UUID is an id; anything else is a name, matched exactly. Names
//! are not unique (two teams may have projects of the same name; a revoked token keeps its
//! name), so a name that matches several is an error listing the candidates.

use lettermint_core::page::{ProjectSortKey, TokenSortKey};
use lettermint_core::{
    Direction, Error, PageRequest, Project, ProjectId, ProjectToken, Scope, Services, Sort, Team,
    TeamId, TeamToken, TokenId, TokenStatusFilter,
};

use crate::error::{CmdResult, Failure};

const OP: Scope = Scope::Operator;
const PAGE: u32 = 100;

fn by_name<K>(key: K) -> Sort<K> {
    Sort {
        key,
        direction: Direction::Ascending,
    }
}

fn not_found_as(err: Error, message: impl FnOnce() -> String) -> Failure {
    match err {
        Error::NotFound { .. } => Failure::operational(message()),
        other => other.into(),
    }
}

/// The order lists are shown in: by name, ignoring case, whatever the store's collation.
pub fn name_order(name: &str) -> (String, String) {
    (name.to_lowercase(), name.to_owned())
}

/// Every team, by name.
pub async fn all_teams(services: &Services) -> CmdResult<Vec<Team>> {
    let mut teams = services.teams.list(OP).await?;
    teams.sort_by_cached_key(|t| (name_order(t.name.as_str()), t.id));
    Ok(teams)
}

/// A team by id or name.
pub async fn team(services: &Services, arg: &str) -> CmdResult<Team> {
    if let Ok(id) = arg.trim().parse::<TeamId>() {
        return services
            .teams
            .get(OP, id)
            .await
            .map_err(|e| not_found_as(e, || format!("no team with id {id}")));
    }
    let mut matches: Vec<Team> = all_teams(services)
        .await?
        .into_iter()
        .filter(|t| t.name.as_str() == arg.trim())
        .collect();
    match matches.len() {
        0 => Err(Failure::operational(format!(
            "no team named `{arg}`; `token-admin team list` shows the teams"
        ))),
        1 => Ok(matches.remove(0)),
        n => Err(Failure::operational(format!(
            "the team name `{arg}` is ambiguous: {n} teams have it ({}); use the team id",
            matches
                .iter()
                .map(|t| t.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The team named by `--team`, or the only team when it is left out.
pub async fn team_or_only(services: &Services, arg: Option<&str>) -> CmdResult<Team> {
    if let Some(arg) = arg {
        return team(services, arg).await;
    }
    let mut teams = all_teams(services).await?;
    match teams.len() {
        0 => Err(Failure::operational(
            "there are no teams yet; create one with `token-admin team create NAME`",
        )),
        1 => Ok(teams.remove(0)),
        _ => Err(Failure::operational(format!(
            "there are several teams; pass --team with one of: {}",
            teams
                .iter()
                .map(|t| format!("{} ({})", t.name, t.id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A team's projects, by name, optionally only those whose name contains `search`.
pub async fn projects_of(
    services: &Services,
    team: TeamId,
    search: Option<&str>,
) -> CmdResult<Vec<Project>> {
    let mut request = PageRequest::first(PAGE, by_name(ProjectSortKey::Name));
    let mut all = Vec::new();
    loop {
        let page = services.projects.list(OP, team, search, &request).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    all.sort_by_cached_key(|p| (name_order(p.name.as_str()), p.id));
    Ok(all)
}

/// A project by id or name; names are looked up in `team` when given, in every team otherwise.
pub async fn project(services: &Services, arg: &str, team_arg: Option<&str>) -> CmdResult<Project> {
    let team = match team_arg {
        Some(t) => Some(team(services, t).await?),
        None => None,
    };
    if let Ok(id) = arg.trim().parse::<ProjectId>() {
        let project = services
            .projects
            .get(OP, id)
            .await
            .map_err(|e| not_found_as(e, || format!("no project with id {id}")))?;
        if let Some(team) = &team
            && project.team_id != team.id
        {
            return Err(Failure::operational(format!(
                "project {id} does not belong to team {}",
                team.name
            )));
        }
        return Ok(project);
    }
    let name = arg.trim();
    let teams = match team {
        Some(t) => vec![t],
        None => all_teams(services).await?,
    };
    let mut candidates: Vec<(Project, String)> = Vec::new();
    for t in &teams {
        for p in projects_of(services, t.id, Some(name)).await? {
            if p.name.as_str() == name {
                candidates.push((p, t.name.to_string()));
            }
        }
    }
    match candidates.len() {
        0 => Err(Failure::operational(match team_arg {
            Some(t) => format!(
                "no project named `{name}` in team `{t}`; `token-admin project list --team {t}` \
                 shows its projects"
            ),
            None => {
                format!("no project named `{name}`; `token-admin project list` shows the projects")
            }
        })),
        1 => Ok(candidates.remove(0).0),
        n => Err(Failure::operational(format!(
            "the project name `{name}` is ambiguous: {n} projects have it ({}); pass --team or \
             use the project id",
            candidates
                .iter()
                .map(|(p, team)| format!("{} in team {team}", p.id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A project's tokens with `status`, by name.
pub async fn project_tokens(
    services: &Services,
    project: ProjectId,
    status: TokenStatusFilter,
) -> CmdResult<Vec<ProjectToken>> {
    let mut request = PageRequest::first(PAGE, by_name(TokenSortKey::Name));
    let mut all = Vec::new();
    loop {
        let page = services
            .project_tokens
            .list(OP, project, status, &request)
            .await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    all.sort_by_cached_key(|t| (name_order(t.name.as_str()), t.id));
    Ok(all)
}

/// A team's tokens with `status`, by name.
pub async fn team_tokens(
    services: &Services,
    team: TeamId,
    status: TokenStatusFilter,
) -> CmdResult<Vec<TeamToken>> {
    let mut request = PageRequest::first(PAGE, by_name(TokenSortKey::Name));
    let mut all = Vec::new();
    loop {
        let page = services
            .team_tokens
            .list(OP, team, status, &request)
            .await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    all.sort_by_cached_key(|t| (name_order(t.name.as_str()), t.id));
    Ok(all)
}

/// Picks the one token among those with the same name: the only one, or else the only one that
/// is not revoked (names are unique among those).
fn pick<T>(
    mut matches: Vec<T>,
    revoked: impl Fn(&T) -> bool,
    describe: impl Fn(&T) -> String,
    none: impl FnOnce() -> String,
    ambiguous: impl FnOnce(usize, String) -> String,
) -> CmdResult<T> {
    if matches.len() == 1 {
        return Ok(matches.remove(0));
    }
    if matches.is_empty() {
        return Err(Failure::operational(none()));
    }
    let live: Vec<usize> = (0..matches.len())
        .filter(|i| !revoked(&matches[*i]))
        .collect();
    if let [only] = live[..] {
        return Ok(matches.swap_remove(only));
    }
    let list = matches.iter().map(describe).collect::<Vec<_>>().join(", ");
    Err(Failure::operational(ambiguous(matches.len(), list)))
}

/// A project token by id, or by name within `--project`.
pub async fn project_token(
    services: &Services,
    arg: &str,
    project_arg: Option<&str>,
    team_arg: Option<&str>,
) -> CmdResult<ProjectToken> {
    let project = match project_arg {
        Some(p) => Some(project(services, p, team_arg).await?),
        None => None,
    };
    if let Ok(id) = arg.trim().parse::<TokenId>() {
        return services
            .project_tokens
            .get(OP, project.as_ref().map(|p| p.id), id)
            .await
            .map_err(|e| {
                not_found_as(e, || match &project {
                    Some(p) => format!("no token with id {id} in project {}", p.name),
                    None => format!("no project token with id {id}"),
                })
            });
    }
    let Some(project) = project else {
        return Err(Failure::usage(format!(
            "`{arg}` is not a token id; pass --project to look a token up by name"
        )));
    };
    let name = arg.trim();
    let now = lettermint_core::Clock::now(&lettermint_core::SystemClock);
    let matches: Vec<ProjectToken> = project_tokens(services, project.id, TokenStatusFilter::All)
        .await?
        .into_iter()
        .filter(|t| t.name.as_str() == name)
        .collect();
    pick(
        matches,
        |t| t.revoked_at.is_some(),
        |t| format!("{} ({})", t.id, t.status(now)),
        || {
            format!(
                "no token named `{name}` in project {}; `token-admin token list --project {} \
                 --status all` shows its tokens",
                project.name, project.id
            )
        },
        |n, list| {
            format!(
                "the token name `{name}` is ambiguous in project {}: {n} revoked tokens have it \
                 ({list}); use the token id",
                project.name
            )
        },
    )
}

/// A team token by id, or by name within `--team` (or across teams when left out).
pub async fn team_token(
    services: &Services,
    arg: &str,
    team_arg: Option<&str>,
) -> CmdResult<TeamToken> {
    let team = match team_arg {
        Some(t) => Some(team(services, t).await?),
        None => None,
    };
    if let Ok(id) = arg.trim().parse::<TokenId>() {
        let token = services
            .team_tokens
            .get(OP, None, id)
            .await
            .map_err(|e| not_found_as(e, || format!("no team token with id {id}")))?;
        if let Some(team) = &team
            && token.owner != team.id
        {
            return Err(Failure::operational(format!(
                "team token {id} does not belong to team {}",
                team.name
            )));
        }
        return Ok(token);
    }
    let name = arg.trim();
    let teams = match team {
        Some(t) => vec![t],
        None => all_teams(services).await?,
    };
    let now = lettermint_core::Clock::now(&lettermint_core::SystemClock);
    let mut matches: Vec<(TeamToken, String)> = Vec::new();
    for t in &teams {
        for token in team_tokens(services, t.id, TokenStatusFilter::All).await? {
            if token.name.as_str() == name {
                matches.push((token, t.name.to_string()));
            }
        }
    }
    pick(
        matches,
        |(t, _)| t.revoked_at.is_some(),
        |(t, team)| format!("{} in team {team} ({})", t.id, t.status(now)),
        || match team_arg {
            Some(t) => format!(
                "no team token named `{name}` in team `{t}`; `token-admin team-token list --team \
                 {t} --status all` shows them"
            ),
            None => format!("no team token named `{name}`"),
        },
        |n, list| {
            format!(
                "the team token name `{name}` is ambiguous: {n} tokens have it ({list}); pass \
                 --team or use the token id"
            )
        },
    )
    .map(|(t, _)| t)
}
