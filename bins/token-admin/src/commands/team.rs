//! `token-admin team create|list|show|rename`.

use lettermint_core::{Scope, Team};

use crate::cli::TeamCommand;
use crate::error::CmdResult;
use crate::render::{self, Table, TeamJson, Times, details};
use crate::{Console, Ctx, resolve};

pub(crate) async fn run(cmd: TeamCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let teams = &ctx.services.teams;
    match cmd {
        TeamCommand::Create { name } => {
            let team = teams.create(Scope::Operator, &name).await?;
            show(ctx, con, &team, 0)?;
            if !ctx.json {
                writeln!(
                    con.err,
                    "Next: token-admin project create NAME --team {}",
                    team.id
                )?;
            }
        }
        TeamCommand::List => {
            let all = resolve::all_teams(&ctx.services).await?;
            let mut rows = Vec::with_capacity(all.len());
            for team in all {
                let count = teams
                    .summary(Scope::Operator, team.id)
                    .await?
                    .projects_count;
                rows.push((team, count));
            }
            if ctx.json {
                let json: Vec<TeamJson> = rows.iter().map(|(t, n)| TeamJson::new(t, *n)).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if rows.is_empty() {
                writeln!(
                    con.out,
                    "No teams yet. Create one with: token-admin team create NAME"
                )?;
            } else {
                let times = Times {
                    now: ctx.now,
                    absolute: false,
                };
                let mut table = Table::new(vec!["NAME", "PROJECTS", "CREATED", "ID"]);
                for (team, count) in &rows {
                    table.row(vec![
                        team.name.to_string(),
                        count.to_string(),
                        times.show(team.created_at),
                        team.id.to_string(),
                    ]);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        TeamCommand::Show { team } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let count = teams
                .summary(Scope::Operator, team.id)
                .await?
                .projects_count;
            show(ctx, con, &team, count)?;
        }
        TeamCommand::Rename { team, new_name } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let renamed = teams.rename(Scope::Operator, team.id, &new_name).await?;
            let count = teams
                .summary(Scope::Operator, team.id)
                .await?
                .projects_count;
            show(ctx, con, &renamed, count)?;
        }
    }
    Ok(())
}

fn show(ctx: &Ctx, con: &mut Console<'_>, team: &Team, projects_count: u64) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&TeamJson::new(team, projects_count)).as_bytes())?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute: false,
    };
    let text = details(&[
        ("name", team.name.to_string()),
        ("id", team.id.to_string()),
        ("projects", projects_count.to_string()),
        ("created", times.both(Some(team.created_at), "-")),
        ("last changed", times.both(Some(team.updated_at), "-")),
    ]);
    con.out.write_all(text.as_bytes())?;
    Ok(())
}
