//! `cargo xtask`: the project's own tasks, in Rust.

mod bench;
mod bench_api;
mod bench_delivery;
mod bench_login;
mod bench_smtp;
mod fuzz;
mod seed;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use lettermint_store::{DEFAULT_DATABASE_URL, OpenOptions};

/// Project tasks. Run `cargo xtask <task> --help` for the options of each.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Apply pending migrations to a database (SQLite or PostgreSQL). Idempotent.
    Migrate {
        /// sqlite://path/to/file.sqlite or postgres://user@host/db.
        #[arg(long, env = "LETTERMINT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Create a demo team, project and tokens, and print the new tokens once.
    Seed {
        /// sqlite://path/to/file.sqlite or postgres://user@host/db.
        #[arg(long, env = "LETTERMINT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Benchmarks; each prints its figures next to a floor measured in the same run.
    Bench {
        #[command(subcommand)]
        bench: bench::Bench,
    },
    /// Fuzz a target for a time budget on stable Rust: `token` (the token parser), `smtp` (the
    /// relay's session fed arbitrary bytes) or `send` (the send-request validator fed arbitrary
    /// JSON); `all` runs each in turn. Seeds come from `fuzz/corpus/<target>/`.
    Fuzz {
        /// Targets: token, smtp, send, or all.
        #[arg(default_value = "all")]
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Seed of the input generator (default: from the clock); the same seed replays a run.
        #[arg(long)]
        seed: Option<u64>,
        /// Instead of fuzzing, run these saved inputs through the (single) target once each.
        #[arg(long, num_args = 1..)]
        replay: Vec<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let Some(task) = cli.task else {
        Cli::command().print_help()?;
        return Ok(());
    };
    if let Task::Fuzz {
        targets,
        seconds,
        seed,
        replay,
    } = &task
    {
        return if replay.is_empty() {
            fuzz::run(targets, *seconds, *seed)
        } else {
            fuzz::replay(targets.first().map_or("all", String::as_str), replay)
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match task {
        Task::Migrate { database_url } => runtime.block_on(async {
            let store = lettermint_store::open(&database_url, OpenOptions::default()).await?;
            println!("{} database is up to date", store.backend());
            Ok(())
        }),
        Task::Seed { database_url } => runtime.block_on(seed::run(&database_url)),
        Task::Bench { bench } => bench::run(&runtime, bench),
        Task::Fuzz { .. } => Ok(()),
    }
}
