//! `token-admin team-token create|list|show|regenerate|revoke`.

use lettermint_core::{Abilities, IssuedTeamToken, Scope, TeamToken};

use crate::cli::TeamTokenCommand;
use crate::commands::{confirm, expiry, print_secret};
use crate::error::CmdResult;
use crate::render::{self, Table, TeamTokenJson, Times, details};
use crate::{Console, Ctx, resolve};

pub(crate) async fn run(cmd: TeamTokenCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let services = &ctx.services;
    let tokens = &services.team_tokens;
    match cmd {
        TeamTokenCommand::Create {
            team,
            name,
            abilities,
            expiry: expiry_opt,
        } => {
            let team = resolve::team_or_only(services, team.as_deref()).await?;
            let issued = tokens
                .create(
                    Scope::Operator,
                    team.id,
                    &name,
                    Abilities::parse("abilities", &abilities)?,
                    expiry(&expiry_opt, ctx.now),
                )
                .await?;
            issue(ctx, con, &issued)?;
        }
        TeamTokenCommand::List { team, status, time } => {
            let team = resolve::team_or_only(services, team.as_deref()).await?;
            let list = resolve::team_tokens(services, team.id, status.filter()).await?;
            if ctx.json {
                let json: Vec<TeamTokenJson> = list
                    .iter()
                    .map(|t| TeamTokenJson::new(t, ctx.now))
                    .collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if list.is_empty() {
                let what = match status.as_str() {
                    "all" => String::new(),
                    s => format!("{s} "),
                };
                writeln!(
                    con.out,
                    "No {what}team tokens in team {}. Create one with: token-admin team-token \
                     create --team {} --name NAME --ability read:projects",
                    team.name, team.id
                )?;
            } else {
                let times = Times {
                    now: ctx.now,
                    absolute: time.absolute,
                };
                let mut table = Table::new(vec![
                    "NAME",
                    "HINT",
                    "STATUS",
                    "ABILITIES",
                    "LAST CHANGED",
                    "LAST USED",
                    "LAST IP",
                    "ID",
                ]);
                for t in &list {
                    table.row(vec![
                        t.name.to_string(),
                        t.hint.to_string(),
                        render::status(t.status(ctx.now)).to_owned(),
                        t.abilities.to_strings().join(","),
                        times.show(t.updated_at),
                        times.show_opt(t.last_use.at, "never"),
                        t.last_use
                            .ip
                            .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                        t.id.to_string(),
                    ]);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        TeamTokenCommand::Show { token, team, time } => {
            let token = resolve::team_token(services, &token, team.team.as_deref()).await?;
            show(ctx, con, &token, time.absolute).await?;
        }
        TeamTokenCommand::Regenerate { token, team, yes } => {
            let token = resolve::team_token(services, &token, team.team.as_deref()).await?;
            confirm(
                con,
                yes.yes,
                &format!(
                    "Regenerate team token {} ({})? Its current value stops working at once.",
                    token.name, token.id
                ),
                "regenerating a team token",
            )?;
            let issued = tokens.regenerate(Scope::Operator, None, token.id).await?;
            issue(ctx, con, &issued)?;
        }
        TeamTokenCommand::Revoke { token, team, yes } => {
            let token = resolve::team_token(services, &token, team.team.as_deref()).await?;
            confirm(
                con,
                yes.yes,
                &format!(
                    "Revoke team token {} ({}) for good? It is refused from the next request on.",
                    token.name, token.id
                ),
                "revoking a team token",
            )?;
            let already = token.revoked_at.is_some();
            let revoked = tokens.revoke(Scope::Operator, None, token.id).await?;
            if ctx.json {
                con.out
                    .write_all(render::json(&TeamTokenJson::new(&revoked, ctx.now)).as_bytes())?;
            } else if already {
                writeln!(
                    con.out,
                    "Team token {} ({}) was already revoked.",
                    revoked.name, revoked.id
                )?;
            } else {
                writeln!(
                    con.out,
                    "Revoked team token {} ({}).",
                    revoked.name, revoked.id
                )?;
            }
        }
    }
    Ok(())
}

fn issue(ctx: &Ctx, con: &mut Console<'_>, issued: &IssuedTeamToken) -> CmdResult {
    let secret = issued.secret.expose_secret();
    let json = ctx.json.then(|| {
        let mut json = TeamTokenJson::new(&issued.token, ctx.now);
        json.token = Some(secret.to_owned());
        render::json(&json)
    });
    print_secret(con, json, secret)
}

async fn show(ctx: &Ctx, con: &mut Console<'_>, token: &TeamToken, absolute: bool) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&TeamTokenJson::new(token, ctx.now)).as_bytes())?;
        return Ok(());
    }
    let team = ctx.services.teams.get(Scope::Operator, token.owner).await?;
    let times = Times {
        now: ctx.now,
        absolute,
    };
    let when = |at: Option<time::OffsetDateTime>, none: &str| {
        if absolute {
            times.show_opt(at, none)
        } else {
            times.both(at, none)
        }
    };
    let text = details(&[
        ("name", token.name.to_string()),
        ("id", token.id.to_string()),
        ("team", format!("{} ({})", team.name, team.id)),
        ("hint", token.hint.to_string()),
        ("status", render::status(token.status(ctx.now)).to_owned()),
        ("abilities", token.abilities.to_strings().join(", ")),
        ("created", when(Some(token.created_at), "-")),
        ("last changed", when(Some(token.updated_at), "-")),
        ("last used", when(token.last_use.at, "never")),
        (
            "last IP",
            token
                .last_use
                .ip
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
        ),
        (
            "via",
            token.last_use.via.map_or("-", |v| v.as_str()).to_owned(),
        ),
        ("expires", when(token.expires_at, "never")),
        ("revoked", when(token.revoked_at, "-")),
    ]);
    con.out.write_all(text.as_bytes())?;
    Ok(())
}
