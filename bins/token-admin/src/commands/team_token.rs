//! `token-admin team-token create|list|show|regenerate|revoke`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use lettermint_core::{Abilities, Scope, TeamId, TeamToken};

use crate::cli::TeamTokenCommand;
use crate::commands::{confirm, expiry, issue, show_token};
use crate::error::{CmdResult, Failure};
use crate::render::{self, Table, Times, TokenJson};
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
        TeamTokenCommand::List {
            team,
            status,
            expiring,
            time,
        } => {
            let times = Times {
                now: ctx.now,
                absolute: time.absolute,
            };
            let team = match (&team, expiring) {
                // --expiring without --team: every team.
                (None, Some(_)) => None,
                (team, _) => Some(resolve::team_or_only(services, team.as_deref()).await?),
            };
            let list = match (expiring, &team) {
                (Some(within), team) => {
                    tokens
                        .expiring(Scope::Operator, team.as_ref().map(|t| t.id), within)
                        .await?
                }
                (None, Some(team)) => {
                    resolve::team_tokens(services, team.id, status.filter()).await?
                }
                (None, None) => {
                    return Err(Failure::usage(
                        "give --team, or --expiring to list across teams",
                    ));
                }
            };
            if ctx.json {
                let json: Vec<TokenJson> =
                    list.iter().map(|t| TokenJson::new(t, ctx.now)).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if list.is_empty() {
                match (expiring, &team) {
                    (Some(within), Some(team)) => writeln!(
                        con.out,
                        "No active team tokens of team {} expire within {within}.",
                        team.name
                    )?,
                    (Some(within), None) => {
                        writeln!(con.out, "No active team tokens expire within {within}.")?;
                    }
                    (None, team) => {
                        let Some(team) = team else {
                            return Ok(());
                        };
                        let what = match status.as_str() {
                            "all" => String::new(),
                            s => format!("{s} "),
                        };
                        writeln!(
                            con.out,
                            "No {what}team tokens in team {}. Create one with: token-admin \
                             team-token create --team {} --name NAME --ability read:projects",
                            team.name, team.id
                        )?;
                    }
                }
            } else {
                // Across every team, each token's team is a column.
                let mut teams: HashMap<TeamId, String> = HashMap::new();
                if team.is_none() {
                    for t in &list {
                        if let Entry::Vacant(slot) = teams.entry(t.owner) {
                            let team = services.teams.get(Scope::Operator, t.owner).await?;
                            slot.insert(team.name.to_string());
                        }
                    }
                }
                let mut columns = vec!["NAME"];
                if team.is_none() {
                    columns.push("TEAM");
                }
                columns.extend([
                    "HINT",
                    "STATUS",
                    "EXPIRES",
                    "ABILITIES",
                    "LAST CHANGED",
                    "LAST USED",
                    "LAST IP",
                    "ID",
                ]);
                let mut table = Table::new(columns);
                for t in &list {
                    let mut row = vec![t.name.to_string()];
                    if let Some(name) = teams.get(&t.owner) {
                        row.push(name.clone());
                    }
                    row.extend([
                        t.hint.to_string(),
                        render::status(t.status(ctx.now)).to_owned(),
                        times.show_opt(t.expires_at, "never"),
                        t.abilities.to_strings().join(","),
                        times.show(t.updated_at),
                        times.show_opt(t.last_use.at, "never"),
                        t.last_use
                            .ip
                            .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                        t.id.to_string(),
                    ]);
                    table.row(row);
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
        TeamTokenCommand::Rotate {
            token,
            overlap,
            team,
        } => {
            let overlap = lettermint_core::Overlap::parse("overlap", &overlap)?;
            let token = resolve::team_token(services, &token, team.team.as_deref()).await?;
            let issued = tokens
                .rotate(Scope::Operator, None, token.id, overlap)
                .await?;
            issue(ctx, con, &issued)?;
        }
        TeamTokenCommand::Allow {
            token,
            allow_ip,
            any: _,
            team,
        } => {
            let allowed = lettermint_core::IpAllowlist::parse("allow-ip", &allow_ip)?;
            let token = resolve::team_token(services, &token, team.team.as_deref()).await?;
            let updated = tokens
                .set_allowlist(Scope::Operator, None, token.id, &allowed)
                .await?;
            show(ctx, con, &updated, false).await?;
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
                    .write_all(render::json(&TokenJson::new(&revoked, ctx.now)).as_bytes())?;
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

async fn show(ctx: &Ctx, con: &mut Console<'_>, token: &TeamToken, absolute: bool) -> CmdResult {
    if ctx.json {
        return show_token(ctx, con, token, ("", String::new()), absolute);
    }
    let team = ctx.services.teams.get(Scope::Operator, token.owner).await?;
    show_token(
        ctx,
        con,
        token,
        ("team", format!("{} ({})", team.name, team.id)),
        absolute,
    )
}
