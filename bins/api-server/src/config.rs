//! Configuration: defaults, then an optional TOML file, then `LETTERMINT_*` environment
//! variables, then command-line flags (each overriding the one before).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Everything the server can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://path` (default: `sqlite://lettermint.sqlite`) or `postgres://…`.
    pub database_url: String,
    /// Database connections (PostgreSQL pool size, or SQLite readers).
    pub database_max_connections: u32,
    /// On the first start of an empty store, create a team, project and tokens and print them.
    pub bootstrap: bool,
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Seconds a request may take before it is answered with 408.
    pub request_timeout_secs: u64,
    /// Peers whose `X-Forwarded-For` header is trusted (exact addresses).
    pub trusted_proxies: Vec<IpAddr>,
    /// Days token log entries are kept.
    pub log_retention_days: u32,
    /// Log format.
    pub log_format: LogFormat,
    /// Capacity of the in-memory usage queue; records beyond it are dropped and counted.
    pub usage_queue_capacity: usize,
    /// Concurrent group-commit writers (transactions in flight at once).
    pub commit_writers: usize,
    /// Most messages in one group commit.
    pub commit_max_messages: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: lettermint_store::DEFAULT_DATABASE_URL.to_owned(),
            database_max_connections: 16,
            bootstrap: true,
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout_secs: 30,
            trusted_proxies: Vec::new(),
            log_retention_days: 30,
            log_format: LogFormat::Human,
            usage_queue_capacity: 65_536,
            commit_writers: 2,
            commit_max_messages: 1_000,
        }
    }
}

impl Config {
    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }
}

/// Command-line flags. Every flag overrides the file and the environment.
#[derive(Debug, Default, Parser, Serialize)]
#[command(
    name = "api-server",
    version,
    about = "Lettermint-compatible Sending API and Team API.",
    long_about = "Lettermint-compatible Sending API and Team API.\n\n\
        Configuration is read from defaults, then the TOML file given with --config (or \
        LETTERMINT_CONFIG), then LETTERMINT_* environment variables (LETTERMINT_LISTEN, \
        LETTERMINT_DATABASE_URL, LETTERMINT_BOOTSTRAP, LETTERMINT_MAX_BODY_BYTES, \
        LETTERMINT_REQUEST_TIMEOUT_SECS, LETTERMINT_TRUSTED_PROXIES='[\"10.0.0.1\"]', \
        LETTERMINT_LOG_RETENTION_DAYS, LETTERMINT_LOG_FORMAT, ...), then these flags."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "LETTERMINT_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Database URL: sqlite://path/to/file.sqlite [default: sqlite://lettermint.sqlite] or
    /// postgres://user:password@host/db.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Database connections [default: 16].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_max_connections: Option<u32>,
    /// Do not create and print a first team, project and tokens on an empty store (production).
    #[arg(long)]
    #[serde(skip)]
    pub no_bootstrap: bool,
    /// Largest request body in bytes [default: 10485760].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Request timeout in seconds [default: 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_secs: Option<u64>,
    /// A proxy whose X-Forwarded-For is trusted; repeat for several.
    #[arg(long = "trusted-proxy")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Days token log entries are kept [default: 30].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_days: Option<u32>,
    /// Log format [default: human].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// The keys read from `LETTERMINT_*` variables (other `LETTERMINT_` variables belong to other
/// programs and are ignored).
const ENV_KEYS: [&str; 12] = [
    "listen",
    "database_url",
    "database_max_connections",
    "bootstrap",
    "max_body_bytes",
    "request_timeout_secs",
    "trusted_proxies",
    "log_retention_days",
    "log_format",
    "usage_queue_capacity",
    "commit_writers",
    "commit_max_messages",
];

/// Layers defaults, file, environment and flags.
pub fn load(cli: &Cli) -> Result<Config, Box<figment::Error>> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &cli.config {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(Env::prefixed("LETTERMINT_").only(&ENV_KEYS))
        .merge(Serialized::defaults(cli));
    if cli.no_bootstrap {
        figment = figment.merge(("bootstrap", false));
    }
    figment.extract().map_err(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)]
    fn flags_override_environment_override_file_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "api.toml",
                "listen = \"127.0.0.1:9000\"\nlog_retention_days = 7\nmax_body_bytes = 1000\n",
            )?;
            jail.set_env("LETTERMINT_LOG_RETENTION_DAYS", "14");
            jail.set_env("LETTERMINT_MAX_BODY_BYTES", "2000");
            let cli = Cli {
                config: Some("api.toml".into()),
                max_body_bytes: Some(3000),
                no_bootstrap: true,
                ..Cli::default()
            };
            let config = load(&cli).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(config.log_retention_days, 14);
            assert_eq!(config.max_body_bytes, 3000);
            assert!(!config.bootstrap);
            assert_eq!(config.database_url, lettermint_store::DEFAULT_DATABASE_URL);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_keys_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("api.toml", "listne = \"127.0.0.1:9000\"\n")?;
            let cli = Cli {
                config: Some("api.toml".into()),
                ..Cli::default()
            };
            let err = load(&cli).unwrap_err().to_string();
            assert!(err.contains("listne"), "{err}");
            Ok(())
        });
    }
}
