//! `cargo xtask`: the project's own tasks, in Rust.

mod bench;
mod bench_api;
mod bench_delivery;
mod bench_smtp;
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
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let Some(task) = cli.task else {
        Cli::command().print_help()?;
        return Ok(());
    };
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
    }
}
