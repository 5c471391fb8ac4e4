//! `token-admin account create|list|reset-password`.

use lettermint_core::{Account, Error, Role, Scope, Team};
use serde::Serialize;

use crate::cli::{AccountCommand, PasswordOpt};
use crate::error::{CmdResult, Failure};
use crate::render::{self, AccountJson, Table, Times, details};
use crate::{Console, Ctx};

pub(crate) async fn run(cmd: AccountCommand, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    let accounts = &ctx.services.accounts;
    match cmd {
        AccountCommand::Create {
            email,
            name,
            password,
        } => {
            let password = given_password(password)?;
            let created = accounts
                .create_account(Scope::Operator, &email, &name, password)
                .await?;
            let account = &created.account;
            match &created.generated_password {
                Some(generated) => print_password(
                    ctx,
                    con,
                    AccountJson::new(account, &[]),
                    account,
                    generated.expose_secret(),
                )?,
                None => show(ctx, con, account, &[])?,
            }
            if !ctx.json {
                writeln!(
                    con.err,
                    "Next: token-admin member add --team TEAM --email {} --role member",
                    account.email
                )?;
            }
        }
        AccountCommand::List { time } => {
            let mut rows = Vec::new();
            for account in accounts.list_accounts().await? {
                let teams = accounts.teams_of(account.id).await?;
                rows.push((account, teams));
            }
            if ctx.json {
                let json: Vec<AccountJson> = rows
                    .iter()
                    .map(|(account, teams)| AccountJson::new(account, teams))
                    .collect();
                con.out.write_all(render::json(&json).as_bytes())?;
            } else if rows.is_empty() {
                writeln!(
                    con.out,
                    "No accounts yet. Create one with: token-admin account create --email EMAIL \
                     --name NAME"
                )?;
            } else {
                let times = Times {
                    now: ctx.now,
                    absolute: time.absolute,
                };
                let mut table = Table::new(vec![
                    "EMAIL",
                    "NAME",
                    "TEAMS",
                    "CREATED",
                    "PASSWORD CHANGED",
                    "ID",
                ]);
                for (account, teams) in &rows {
                    table.row(vec![
                        account.email.to_string(),
                        account.display_name.to_string(),
                        teams_cell(teams),
                        times.show(account.created_at),
                        times.show(account.password_changed_at),
                        account.id.to_string(),
                    ]);
                }
                con.out.write_all(table.render().as_bytes())?;
            }
        }
        AccountCommand::ResetPassword { email, password } => {
            let password = given_password(password)?;
            let account = find(ctx, &email).await?;
            let generated = accounts.reset_password(account.id, password).await?;
            let account = find(ctx, &email).await?;
            let teams = accounts.teams_of(account.id).await?;
            match &generated {
                Some(generated) => print_password(
                    ctx,
                    con,
                    AccountJson::new(&account, &teams),
                    &account,
                    generated.expose_secret(),
                )?,
                None => show(ctx, con, &account, &teams)?,
            }
            if !ctx.json {
                writeln!(con.err, "Every session of {} ended.", account.email)?;
            }
        }
    }
    Ok(())
}

/// The account with this email, or an error that says how to see the accounts.
pub(crate) async fn find(ctx: &Ctx, email: &str) -> CmdResult<Account> {
    match ctx.services.accounts.find_by_email(email).await {
        Ok(account) => Ok(account),
        Err(Error::NotFound { .. }) => Err(Failure::operational(format!(
            "no account with email {}; `token-admin account list` shows the accounts",
            email.trim()
        ))),
        Err(other) => Err(other.into()),
    }
}

/// The password read from standard input with `--password-stdin`, if it was asked for.
pub(crate) fn given_password(opt: PasswordOpt) -> CmdResult<Option<String>> {
    if !opt.password_stdin {
        return Ok(None);
    }
    opt.password
        .map(|p| Some(p.into_secret()))
        .ok_or_else(|| Failure::usage("--password-stdin: no password was read"))
}

/// Prints a generated password once: alone on stdout (or inside `json` as `password`), with
/// what to do with it on stderr.
pub(crate) fn print_password<J: Serialize + WithPassword>(
    ctx: &Ctx,
    con: &mut Console<'_>,
    mut json: J,
    account: &Account,
    password: &str,
) -> CmdResult {
    if ctx.json {
        json.set_password(password);
        con.out.write_all(render::json(&json).as_bytes())?;
    } else {
        writeln!(con.out, "{password}")?;
    }
    writeln!(
        con.err,
        "warning: this is the password of {} ({}); it is shown only once and cannot be shown \
         again. Hand it over privately and have it changed at the first login.",
        account.email, account.id
    )?;
    Ok(())
}

/// JSON bodies that can carry a just-generated password.
pub(crate) trait WithPassword {
    fn set_password(&mut self, password: &str);
}

impl WithPassword for AccountJson {
    fn set_password(&mut self, password: &str) {
        self.password = Some(password.to_owned());
    }
}

impl WithPassword for render::MemberJson {
    fn set_password(&mut self, password: &str) {
        self.password = Some(password.to_owned());
    }
}

fn teams_cell(teams: &[(Team, Role)]) -> String {
    if teams.is_empty() {
        return "-".to_owned();
    }
    teams
        .iter()
        .map(|(team, role)| format!("{} ({role})", team.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn show(ctx: &Ctx, con: &mut Console<'_>, account: &Account, teams: &[(Team, Role)]) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&AccountJson::new(account, teams)).as_bytes())?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute: false,
    };
    let text = details(&[
        ("email", account.email.to_string()),
        ("name", account.display_name.to_string()),
        ("id", account.id.to_string()),
        ("teams", teams_cell(teams)),
        ("created", times.both(Some(account.created_at), "-")),
        (
            "password changed",
            times.both(Some(account.password_changed_at), "-"),
        ),
    ]);
    con.out.write_all(text.as_bytes())?;
    Ok(())
}
