//! `token-admin`: the operator's command line for Lettermint tokens.
//!
//! It works straight against the store the servers use, through the `lettermint-core`
//! services with [`Scope::Operator`](lettermint_core::Scope::Operator), never with SQL of its
//! own. [`cli::Cli`] is the command line; [`run`] carries a parsed command out, writing to the
//! given [`Console`], so that commands are testable without spawning the binary. Only
//! `main.rs` reads the process's arguments, environment, terminal and standard input.

#![warn(missing_docs)]

pub mod cli;
mod commands;
pub mod error;
pub mod render;
mod resolve;
mod store;
pub mod when;

use std::io::{self, Write};

use lettermint_core::{Clock, Services, SystemClock};
use time::OffsetDateTime;

pub use cli::Cli;
pub use error::{CmdResult, Failure};

/// Asks a yes/no question on the terminal.
pub type Confirm<'a> = &'a mut dyn FnMut(&str) -> io::Result<bool>;

/// Where a command writes, and how it asks for confirmation.
pub struct Console<'a> {
    /// Results: tables, JSON, and issued tokens (alone, so `$(…)` captures them).
    pub out: &'a mut dyn Write,
    /// Warnings and notes for the operator.
    pub err: &'a mut dyn Write,
    /// Asks a yes/no question on the terminal; `None` when not on a terminal, in which case
    /// commands that need confirmation need `--yes`.
    pub confirm: Option<Confirm<'a>>,
}

impl std::fmt::Debug for Console<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("interactive", &self.confirm.is_some())
            .finish_non_exhaustive()
    }
}

/// What every command works with.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub services: Services,
    pub json: bool,
    pub now: OffsetDateTime,
}

/// Carries out a parsed command against the store named by `cli.database_url`.
pub async fn run(cli: Cli, console: &mut Console<'_>) -> CmdResult {
    commands::validate(&cli.command)?;
    let services = store::open(&cli.database_url, cli.may_create_database()).await?;
    let ctx = Ctx {
        services,
        json: cli.json,
        now: SystemClock.now(),
    };
    let result = commands::dispatch(cli.command, &ctx, console).await;
    console.out.flush()?;
    result
}
