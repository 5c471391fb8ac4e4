//! The commands, one module per noun.

mod project;
mod team;
mod team_token;
mod token;
mod token_logs;

use lettermint_core::Abilities;
use time::OffsetDateTime;

use crate::cli::{ExpiryOpt, Noun, ProjectCommand, TeamTokenCommand};
use crate::error::{CmdResult, Failure};
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
        _ => {}
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
