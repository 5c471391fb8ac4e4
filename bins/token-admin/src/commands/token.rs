//! `token-admin token create|list|show|rename|regenerate|revoke|logs`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use lettermint_core::{IpAllowlist, Overlap, ProjectId, ProjectToken, Scope};

use crate::cli::TokenCommand;
use crate::commands::{confirm, expiry, issue, show_token, token_logs};
use crate::error::{CmdResult, Failure};
use crate::render::{self, Table, Times, TokenJson};
use crate::{Console, Ctx, resolve};

pub(crate) async fn run(cmd: TokenCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let services = &ctx.services;
    let tokens = &services.project_tokens;
    match cmd {
        TokenCommand::Create {
            project,
            team,
            name,
            expiry: expiry_opt,
            allow_ip,
        } => {
            let allowed = IpAllowlist::parse("allow-ip", &allow_ip)?;
            let project = resolve::project(services, &project, team.as_deref()).await?;
            let issued = tokens
                .create_with_allowlist(
                    Scope::Operator,
                    project.id,
                    &name,
                    (),
                    expiry(&expiry_opt, ctx.now),
                    allowed,
                )
                .await?;
            issue(ctx, con, &issued)?;
        }
        TokenCommand::List {
            project,
            team,
            status,
            expiring,
            time,
        } => {
            let times = Times {
                now: ctx.now,
                absolute: time.absolute,
            };
            let project = match &project {
                Some(p) => Some(resolve::project(services, p, team.as_deref()).await?),
                None => None,
            };
            let list = match (expiring, &project) {
                (Some(within), _) => {
                    tokens
                        .expiring(Scope::Operator, project.as_ref().map(|p| p.id), within)
                        .await?
                }
                (None, Some(project)) => {
                    resolve::project_tokens(services, project.id, status.filter()).await?
                }
                (None, None) => {
                    return Err(Failure::usage(
                        "give --project, or --expiring to list across projects",
                    ));
                }
            };
            if ctx.json {
                let json: Vec<TokenJson> =
                    list.iter().map(|t| TokenJson::new(t, ctx.now)).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if list.is_empty() {
                match (expiring, &project) {
                    (Some(within), Some(project)) => writeln!(
                        con.out,
                        "No active tokens of project {} expire within {within}.",
                        project.name
                    )?,
                    (Some(within), None) => {
                        writeln!(con.out, "No active tokens expire within {within}.")?;
                    }
                    (None, project) => {
                        let Some(project) = project else {
                            return Ok(());
                        };
                        let what = match status.as_str() {
                            "all" => String::new(),
                            s => format!("{s} "),
                        };
                        writeln!(
                            con.out,
                            "No {what}tokens in project {}. Create one with: token-admin token \
                             create --project {} --name NAME",
                            project.name, project.id
                        )?;
                    }
                }
            } else {
                // Across every project, each token's project is a column.
                let mut projects: HashMap<ProjectId, String> = HashMap::new();
                if project.is_none() {
                    for t in &list {
                        if let Entry::Vacant(slot) = projects.entry(t.owner) {
                            let p = services.projects.get(Scope::Operator, t.owner).await?;
                            slot.insert(p.name.to_string());
                        }
                    }
                }
                let mut columns = vec!["NAME"];
                if project.is_none() {
                    columns.push("PROJECT");
                }
                columns.extend([
                    "HINT",
                    "STATUS",
                    "EXPIRES",
                    "LAST CHANGED",
                    "LAST USED",
                    "LAST IP",
                    "VIA",
                    "ID",
                ]);
                let mut table = Table::new(columns);
                for t in &list {
                    let mut row = vec![t.name.to_string()];
                    if let Some(name) = projects.get(&t.owner) {
                        row.push(name.clone());
                    }
                    row.extend([
                        t.hint.to_string(),
                        render::status(t.status(ctx.now)).to_owned(),
                        times.show_opt(t.expires_at, "never"),
                        times.show(t.updated_at),
                        times.show_opt(t.last_use.at, "never"),
                        t.last_use
                            .ip
                            .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
                        t.last_use.via.map_or("-", |v| v.as_str()).to_owned(),
                        t.id.to_string(),
                    ]);
                    table.row(row);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        TokenCommand::Show {
            token,
            project,
            time,
        } => {
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            show(ctx, con, &token, time.absolute).await?;
        }
        TokenCommand::Rename {
            token,
            new_name,
            project,
        } => {
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            let renamed = tokens
                .rename(Scope::Operator, None, token.id, &new_name)
                .await?;
            show(ctx, con, &renamed, false).await?;
        }
        TokenCommand::Regenerate {
            token,
            project,
            yes,
        } => {
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            confirm(
                con,
                yes.yes,
                &format!(
                    "Regenerate token {} ({})? Its current value stops working at once.",
                    token.name, token.id
                ),
                "regenerating a token",
            )?;
            let issued = tokens.regenerate(Scope::Operator, None, token.id).await?;
            issue(ctx, con, &issued)?;
        }
        TokenCommand::Rotate {
            token,
            overlap,
            project,
        } => {
            let overlap = Overlap::parse("overlap", &overlap)?;
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            let issued = tokens
                .rotate(Scope::Operator, None, token.id, overlap)
                .await?;
            issue(ctx, con, &issued)?;
        }
        TokenCommand::Allow {
            token,
            allow_ip,
            any: _,
            project,
        } => {
            let allowed = IpAllowlist::parse("allow-ip", &allow_ip)?;
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            let updated = tokens
                .set_allowlist(Scope::Operator, None, token.id, &allowed)
                .await?;
            show(ctx, con, &updated, false).await?;
        }
        TokenCommand::Revoke {
            token,
            project,
            yes,
        } => {
            let token = resolve::project_token(
                services,
                &token,
                project.project.as_deref(),
                project.team.as_deref(),
            )
            .await?;
            confirm(
                con,
                yes.yes,
                &format!(
                    "Revoke token {} ({}) for good? It is refused from the next request on.",
                    token.name, token.id
                ),
                "revoking a token",
            )?;
            let already = token.revoked_at.is_some();
            let revoked = tokens.revoke(Scope::Operator, None, token.id).await?;
            if ctx.json {
                con.out
                    .write_all(render::json(&TokenJson::new(&revoked, ctx.now)).as_bytes())?;
            } else if already {
                writeln!(
                    con.out,
                    "Token {} ({}) was already revoked.",
                    revoked.name, revoked.id
                )?;
            } else {
                writeln!(con.out, "Revoked token {} ({}).", revoked.name, revoked.id)?;
            }
        }
        TokenCommand::Logs(args) => token_logs::run(args, ctx, con).await?,
    }
    Ok(())
}

async fn show(ctx: &Ctx, con: &mut Console<'_>, token: &ProjectToken, absolute: bool) -> CmdResult {
    if ctx.json {
        return show_token(ctx, con, token, ("", String::new()), absolute);
    }
    let project = ctx
        .services
        .projects
        .get(Scope::Operator, token.owner)
        .await?;
    show_token(
        ctx,
        con,
        token,
        ("project", format!("{} ({})", project.name, project.id)),
        absolute,
    )
}
