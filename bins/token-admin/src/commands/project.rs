//! `token-admin project create|list|show|update|delete`.

use lettermint_core::{NewProject, Project, ProjectUpdate, Scope};
use serde::Serialize;

use crate::cli::ProjectCommand;
use crate::commands::{confirm, print_secret};
use crate::error::CmdResult;
use crate::render::{self, ProjectJson, Table, Times, TokenJson, details};
use crate::{Console, Ctx, resolve};

pub(crate) async fn run(cmd: ProjectCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let services = &ctx.services;
    match cmd {
        ProjectCommand::Create {
            name,
            team,
            smtp,
            with_token,
        } => {
            let team = resolve::team_or_only(services, team.as_deref()).await?;
            let (project, issued) = services
                .projects
                .create(
                    Scope::Operator,
                    NewProject {
                        team_id: team.id,
                        name,
                        smtp_enabled: smtp.value().unwrap_or(false),
                        first_token_name: with_token,
                    },
                )
                .await?;
            match issued {
                None => {
                    show(ctx, con, &project, &team.name.to_string())?;
                    if !ctx.json {
                        writeln!(
                            con.err,
                            "Next: token-admin token create --project {} --name NAME",
                            project.id
                        )?;
                    }
                }
                Some(issued) if ctx.json => {
                    let json = ProjectWithToken {
                        project: ProjectJson::from(&project),
                        first_token: TokenJson::new(&issued.token, ctx.now),
                        token: issued.secret.expose_secret().to_owned(),
                    };
                    print_secret(con, Some(render::json(&json)), "")?;
                }
                Some(issued) => {
                    writeln!(
                        con.err,
                        "Created project {} ({}) in team {} with token {} ({}):",
                        project.name, project.id, team.name, issued.token.name, issued.token.id
                    )?;
                    print_secret(con, None, issued.secret.expose_secret())?;
                }
            }
        }
        ProjectCommand::List { team, search } => {
            let teams = match team {
                Some(t) => vec![resolve::team(services, &t).await?],
                None => resolve::all_teams(services).await?,
            };
            let mut rows: Vec<(Project, String)> = Vec::new();
            for t in &teams {
                for p in resolve::projects_of(services, t.id, search.as_deref()).await? {
                    rows.push((p, t.name.to_string()));
                }
            }
            rows.sort_by_cached_key(|(p, team)| {
                (
                    resolve::name_order(p.name.as_str()),
                    resolve::name_order(team),
                    p.id,
                )
            });
            if ctx.json {
                let json: Vec<ProjectJson> = rows.iter().map(|(p, _)| p.into()).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if rows.is_empty() {
                let hint = if teams.is_empty() {
                    "No teams yet. Create one with: token-admin team create NAME".to_owned()
                } else if search.is_some() {
                    "No projects match. `token-admin project list` shows them all.".to_owned()
                } else {
                    "No projects yet. Create one with: token-admin project create NAME --team TEAM"
                        .to_owned()
                };
                writeln!(con.out, "{hint}")?;
            } else {
                let times = Times {
                    now: ctx.now,
                    absolute: false,
                };
                let mut table = Table::new(vec!["NAME", "TEAM", "SMTP", "CREATED", "ID"]);
                for (p, team) in &rows {
                    table.row(vec![
                        p.name.to_string(),
                        team.clone(),
                        yes_no(p.smtp_enabled),
                        times.show(p.created_at),
                        p.id.to_string(),
                    ]);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        ProjectCommand::Show { project, team } => {
            let project = resolve::project(services, &project, team.team.as_deref()).await?;
            let team = services.teams.get(Scope::Operator, project.team_id).await?;
            show(ctx, con, &project, team.name.as_str())?;
        }
        ProjectCommand::Update {
            project,
            team,
            name,
            smtp,
        } => {
            let project = resolve::project(services, &project, team.team.as_deref()).await?;
            let updated = services
                .projects
                .update(
                    Scope::Operator,
                    project.id,
                    ProjectUpdate {
                        name,
                        smtp_enabled: smtp.value(),
                    },
                )
                .await?;
            let team = services.teams.get(Scope::Operator, project.team_id).await?;
            show(ctx, con, &updated, team.name.as_str())?;
        }
        ProjectCommand::Delete { project, team, yes } => {
            let project = resolve::project(services, &project, team.team.as_deref()).await?;
            confirm(
                con,
                yes.yes,
                &format!(
                    "Delete project {} ({}) with all its tokens, logs and messages? Its tokens \
                     stop working at once.",
                    project.name, project.id
                ),
                "deleting a project",
            )?;
            services
                .projects
                .delete(Scope::Operator, project.id)
                .await?;
            if ctx.json {
                let json = serde_json::json!({
                    "message": format!("Project {} deleted.", project.name),
                    "id": project.id.to_string(),
                });
                con.out.write_all(render::json(&json).as_bytes())?;
            } else {
                writeln!(
                    con.out,
                    "Deleted project {} ({}).",
                    project.name, project.id
                )?;
            }
        }
    }
    Ok(())
}

/// `project create --with-token --json`: the project's fields, its first token, and that
/// token's value as `token`.
#[derive(Debug, Serialize)]
struct ProjectWithToken {
    #[serde(flatten)]
    project: ProjectJson,
    first_token: TokenJson,
    token: String,
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

fn show(ctx: &Ctx, con: &mut Console<'_>, project: &Project, team: &str) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&ProjectJson::from(project)).as_bytes())?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute: false,
    };
    let text = details(&[
        ("name", project.name.to_string()),
        ("id", project.id.to_string()),
        ("team", format!("{team} ({})", project.team_id)),
        ("smtp", yes_no(project.smtp_enabled)),
        ("created", times.both(Some(project.created_at), "-")),
        ("last changed", times.both(Some(project.updated_at), "-")),
    ]);
    con.out.write_all(text.as_bytes())?;
    Ok(())
}
