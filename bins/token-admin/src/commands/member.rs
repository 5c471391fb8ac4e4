//! `token-admin member add|list|role|remove`.

use lettermint_core::{Error, Member, Scope, Team};

use crate::cli::MemberCommand;
use crate::commands::account::{find, given_password, print_password};
use crate::error::{CmdResult, Failure};
use crate::render::{self, MemberJson, Table, Times, details};
use crate::{Console, Ctx, resolve};

pub(crate) async fn run(cmd: MemberCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let accounts = &ctx.services.accounts;
    match cmd {
        MemberCommand::Add {
            team,
            email,
            role,
            name,
            password,
        } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let given = given_password(password)?;
            let (account, generated) = match accounts.find_by_email(&email).await {
                Ok(account) => {
                    if given.is_some() {
                        return Err(Failure::operational(format!(
                            "{} already has an account: --password-stdin only sets the \
                             password of an account this command creates (use `token-admin \
                             account reset-password`)",
                            account.email
                        )));
                    }
                    (account, None)
                }
                Err(Error::NotFound { .. }) => {
                    let Some(name) = name else {
                        return Err(Failure::operational(format!(
                            "no account with email {}; pass --name NAME to create it",
                            email.trim()
                        )));
                    };
                    let created = accounts
                        .create_account(Scope::Operator, &email, &name, given)
                        .await?;
                    (created.account, created.generated_password)
                }
                Err(other) => return Err(other.into()),
            };
            accounts
                .add_member(None, team.id, account.id, role, None)
                .await
                .map_err(|e| match e {
                    Error::Conflict { .. } => Failure::operational(format!(
                        "{} is already a member of {}; change their role with `token-admin \
                         member role`",
                        account.email, team.name
                    )),
                    other => other.into(),
                })?;
            let member = accounts.member_of(account.id, team.id).await?;
            match &generated {
                Some(generated) => print_password(
                    ctx,
                    con,
                    MemberJson::from(&member),
                    &account,
                    generated.expose_secret(),
                )?,
                None => show(ctx, con, &member, &team)?,
            }
            if !ctx.json {
                writeln!(
                    con.err,
                    "{} is now {} of {}.",
                    account.email,
                    article(member.role.as_str()),
                    team.name
                )?;
            }
        }
        MemberCommand::List { team, time } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let members = accounts.team_members(Scope::Operator, team.id).await?;
            if ctx.json {
                let json: Vec<MemberJson> = members.iter().map(MemberJson::from).collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if members.is_empty() {
                writeln!(
                    con.out,
                    "No members in team {}. Add one with: token-admin member add --team {} \
                     --email EMAIL --role owner",
                    team.name, team.id
                )?;
            } else {
                let times = Times {
                    now: ctx.now,
                    absolute: time.absolute,
                };
                let mut table = Table::new(vec!["EMAIL", "NAME", "ROLE", "JOINED", "ACCOUNT ID"]);
                for m in &members {
                    table.row(vec![
                        m.account.email.to_string(),
                        m.account.display_name.to_string(),
                        m.role.to_string(),
                        times.show(m.joined_at),
                        m.account.id.to_string(),
                    ]);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        MemberCommand::Role { team, email, role } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let account = find(ctx, &email).await?;
            accounts
                .set_role(None, team.id, account.id, role, None)
                .await
                .map_err(|e| not_a_member(e, &account.email.to_string(), &team))?;
            let member = accounts.member_of(account.id, team.id).await?;
            show(ctx, con, &member, &team)?;
        }
        MemberCommand::Remove { team, email } => {
            let team = resolve::team(&ctx.services, &team).await?;
            let account = find(ctx, &email).await?;
            accounts
                .remove_member(None, team.id, account.id, None)
                .await
                .map_err(|e| not_a_member(e, &account.email.to_string(), &team))?;
            if ctx.json {
                let json = serde_json::json!({
                    "message": format!("{} removed from team {}.", account.email, team.name),
                    "team_id": team.id.to_string(),
                    "account_id": account.id.to_string(),
                });
                con.out.write_all(render::json(&json).as_bytes())?;
            } else {
                writeln!(
                    con.out,
                    "Removed {} from team {} ({}).",
                    account.email, team.name, team.id
                )?;
            }
        }
    }
    Ok(())
}

fn not_a_member(err: Error, email: &str, team: &Team) -> Failure {
    match err {
        Error::NotFound { .. } => Failure::operational(format!(
            "{email} is not a member of team {}; `token-admin member list --team {}` shows its \
             members",
            team.name, team.id
        )),
        other => other.into(),
    }
}

fn article(role: &str) -> String {
    if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {role}")
    } else {
        format!("a {role}")
    }
}

fn show(ctx: &Ctx, con: &mut Console<'_>, member: &Member, team: &Team) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&MemberJson::from(member)).as_bytes())?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute: false,
    };
    let text = details(&[
        ("email", member.account.email.to_string()),
        ("name", member.account.display_name.to_string()),
        ("team", format!("{} ({})", team.name, team.id)),
        ("role", member.role.to_string()),
        ("joined", times.both(Some(member.joined_at), "-")),
        ("account id", member.account.id.to_string()),
    ]);
    con.out.write_all(text.as_bytes())?;
    Ok(())
}
