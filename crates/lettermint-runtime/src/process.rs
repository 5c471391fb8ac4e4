//! What every server binary does around its own work: logging set up from `LETTERMINT_LOG`, a
//! multi-thread runtime, layered configuration, exit codes, and the lines it prints on stdout
//! for people and scripts.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing_subscriber::EnvFilter;

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogStyle {
    /// For people.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Runs a server's `run` after its configuration was read: installs the log subscriber
/// (filter from `LETTERMINT_LOG`, default `info`), starts a multi-thread runtime, and turns the
/// outcome into the exit code (`0`, or `1` with the error and its causes on stderr).
pub fn serve<F>(logs: LogStyle, run: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let filter =
        EnvFilter::try_from_env("LETTERMINT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match logs {
        LogStyle::Json => subscriber.json().init(),
        LogStyle::Human => subscriber.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A service's settings layered the way every server reads them: `T::default()`, then the TOML
/// file (when given), then `LETTERMINT_DATABASE_URL` (one variable shared by all programs),
/// then the variables `<prefix><KEY>` for `keys`, then the command-line flags `cli` (which
/// serialise only the flags that were given).
pub fn layered_config<T, C>(
    file: Option<&Path>,
    prefix: &str,
    keys: &[&str],
    cli: &C,
) -> Result<T, Box<figment::Error>>
where
    T: Default + Serialize + DeserializeOwned,
    C: Serialize,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed("LETTERMINT_").only(&["database_url"]))
        .merge(Env::prefixed(prefix).only(keys))
        .merge(Serialized::defaults(cli))
        .extract()
        .map_err(Box::new)
}

/// Prints a line on stdout (`listening on …`, first-start tokens); a closed stdout (the reader
/// went away) is not an error.
pub fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
