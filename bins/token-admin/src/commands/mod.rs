//! The commands, one module per noun.

mod account;
mod member;
mod message;
mod project;
mod team;
mod team_token;
mod token;
mod token_logs;

use lettermint_core::{Abilities, Email, IssuedToken, Name, Password, Token};
use time::OffsetDateTime;

use crate::cli::{
    AccountCommand, ExpiryOpt, MemberCommand, Noun, PasswordOpt, ProjectCommand, TeamTokenCommand,
};
use crate::error::{CmdResult, Failure};
use crate::render::{self, Times, TokenJson, TokenKindJson, details};
use crate::{Console, Ctx};

/// Checks what can be checked without the store, so that a bad command line fails before a
/// database is opened (or created).
pub(crate) fn validate(noun: &Noun) -> CmdResult {
    match noun {
        Noun::TeamToken(TeamTokenCommand::Create { abilities, .. }) => {
            Abilities::parse("abilities", abilities)?;
        }
        Noun::Project(ProjectCommand::Update { name, smtp, .. })
            if name.is_none() && smtp.value().is_none() =>
        {
            return Err(Failure::usage(
                "nothing to change: pass --name NAME, --smtp or --no-smtp",
            ));
        }
        Noun::Account(AccountCommand::Create {
            email,
            name,
            password,
        }) => {
            Email::parse("email", email)?;
            Name::parse("name", name)?;
            check_password(password)?;
        }
        Noun::Account(AccountCommand::ResetPassword { email, password }) => {
            Email::parse("email", email)?;
            check_password(password)?;
        }
        Noun::Member(MemberCommand::Add {
            email,
            name,
            password,
            ..
        }) => {
            Email::parse("email", email)?;
            if let Some(name) = name {
                Name::parse("name", name)?;
            }
            check_password(password)?;
        }
        Noun::Member(MemberCommand::Role { email, .. } | MemberCommand::Remove { email, .. }) => {
            Email::parse("email", email)?;
        }
        _ => {}
    }
    Ok(())
}

/// A password from standard input must meet the policy for new passwords.
fn check_password(opt: &PasswordOpt) -> CmdResult {
    if let Some(password) = &opt.password {
        Password::new_password("password", password.clone().into_secret())?;
    }
    Ok(())
}

/// Runs a command.
pub(crate) async fn dispatch(noun: Noun, ctx: &Ctx, con: &mut Console<'_>) -> CmdResult {
    match noun {
        Noun::Team(cmd) => team::run(cmd, ctx, con).await,
        Noun::Project(cmd) => project::run(cmd, ctx, con).await,
        Noun::Token(cmd) => token::run(cmd, ctx, con).await,
        Noun::TeamToken(cmd) => team_token::run(cmd, ctx, con).await,
        Noun::Message(cmd) => message::run(cmd, ctx, con).await,
        Noun::Account(cmd) => account::run(cmd, ctx, con).await,
        Noun::Member(cmd) => member::run(cmd, ctx, con).await,
    }
}

/// Asks `question` on the terminal unless `yes`; off a terminal, `--yes` is required.
pub(crate) fn confirm(con: &mut Console<'_>, yes: bool, question: &str, what: &str) -> CmdResult {
    if yes {
        return Ok(());
    }
    match con.confirm.as_mut() {
        None => Err(Failure::usage(format!(
            "{what} needs --yes when not run on a terminal"
        ))),
        Some(ask) => {
            if ask(question)? {
                Ok(())
            } else {
                Err(Failure::operational("aborted; nothing was changed"))
            }
        }
    }
}

/// The expiry instant asked for, if any.
pub(crate) fn expiry(opt: &ExpiryOpt, now: OffsetDateTime) -> Option<OffsetDateTime> {
    opt.expires_at.or_else(|| opt.expires_in.map(|d| now + d))
}

/// Prints a just-issued secret: alone on stdout (or inside the JSON), with a warning on stderr.
pub(crate) fn print_secret(con: &mut Console<'_>, json: Option<String>, secret: &str) -> CmdResult {
    match json {
        Some(json) => con.out.write_all(json.as_bytes())?,
        None => writeln!(con.out, "{secret}")?,
    }
    writeln!(
        con.err,
        "warning: this token is shown only once and cannot be shown again; store it now."
    )?;
    Ok(())
}

/// Prints a created or regenerated token: the value alone on stdout, or the JSON with it.
pub(crate) fn issue<K: TokenKindJson>(
    ctx: &Ctx,
    con: &mut Console<'_>,
    issued: &IssuedToken<K>,
) -> CmdResult {
    let secret = issued.secret.expose_secret();
    let json = ctx.json.then(|| {
        let mut json = TokenJson::new(&issued.token, ctx.now);
        json.token = Some(secret.to_owned());
        render::json(&json)
    });
    print_secret(con, json, secret)
}

/// Prints a token of either kind: JSON, or its details with `owner` (label, description).
pub(crate) fn show_token<K: TokenKindJson>(
    ctx: &Ctx,
    con: &mut Console<'_>,
    token: &Token<K>,
    owner: (&'static str, String),
    absolute: bool,
) -> CmdResult {
    if ctx.json {
        con.out
            .write_all(render::json(&TokenJson::new(token, ctx.now)).as_bytes())?;
        return Ok(());
    }
    let times = Times {
        now: ctx.now,
        absolute,
    };
    let when = |at: Option<OffsetDateTime>, none: &str| {
        if absolute {
            times.show_opt(at, none)
        } else {
            times.both(at, none)
        }
    };
    let mut rows = vec![
        ("name", token.name.to_string()),
        ("id", token.id.to_string()),
        owner,
        ("hint", token.hint.to_string()),
        ("status", render::status(token.status(ctx.now)).to_owned()),
    ];
    if let Some(abilities) = K::abilities(&token.abilities) {
        rows.push(("abilities", abilities.join(", ")));
    }
    rows.extend([
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
        (
            "allowed IPs",
            if token.allowed_ips.is_empty() {
                "any".to_owned()
            } else {
                token.allowed_ips.to_strings().join(", ")
            },
        ),
    ]);
    if let Some(until) = token.overlap_until(ctx.now) {
        rows.push(("previous value until", when(Some(until), "-")));
    }
    con.out.write_all(details(&rows).as_bytes())?;
    Ok(())
}
