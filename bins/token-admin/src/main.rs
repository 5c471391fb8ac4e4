//! `token-admin`: reads the command line, the environment, the terminal and (for
//! `--password-stdin`) standard input, then runs the
//! command from the library and turns its failure into one line and an exit code.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use clap::error::ErrorKind;
use token_admin::cli::read_password;
use token_admin::error::one_line;
use token_admin::{Cli, Console, Failure};

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    if let Some(slot) = cli.password_from_stdin() {
        // Typed at a terminal, the password would be shown on screen.
        if io::stdin().is_terminal() {
            return fail(&Failure::usage(
                "--password-stdin reads the password from a pipe or a file, not from a terminal",
            ));
        }
        match read_password(io::stdin().lock()) {
            Ok(password) => *slot = Some(password),
            Err(failure) => return fail(&failure),
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&Failure::operational(format!("cannot start: {e}"))),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut err = io::stderr();
    let interactive = io::stdin().is_terminal() && io::stderr().is_terminal();
    let mut ask = |question: &str| -> io::Result<bool> {
        let mut stderr = io::stderr();
        write!(stderr, "{question} [y/N] ")?;
        stderr.flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
    };
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        confirm: if interactive { Some(&mut ask) } else { None },
    };
    match runtime.block_on(token_admin::run(cli, &mut console)) {
        Ok(()) | Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure),
    }
}

fn fail(failure: &Failure) -> ExitCode {
    let _ = writeln!(io::stderr(), "error: {failure}");
    ExitCode::from(u8::try_from(failure.exit_code()).unwrap_or(1))
}

/// Help and version go out as clap prints them; every other command-line error becomes one
/// line (exit code 2).
fn usage_error(e: &clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    let rendered = e.render().to_string();
    let mut line = String::new();
    for part in rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:"))
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
    {
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(part);
    }
    let _ = writeln!(
        io::stderr(),
        "error: {} (see --help)",
        one_line(line.trim_end_matches(':'))
    );
    ExitCode::from(2)
}
