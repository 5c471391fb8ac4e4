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
    /// Public keys that sign secret-scanning leak reports (`POST /v1/secret-scanning/report`),
    /// by the id the reporter names in `Github-Public-Key-Identifier`. None: the endpoint
    /// answers 404.
    pub leak_report_keys: Vec<LeakReportKey>,
    /// Seconds between two runs of the maintenance task (pruning, token gauges).
    pub maintenance_interval_secs: u64,
    /// Serve the dashboard under `/` (the APIs stay under `/v1`).
    pub dashboard: bool,
    /// Minutes a dashboard session may stay unused before it ends.
    pub session_idle_minutes: u32,
    /// Hours a dashboard session lasts after login, used or not.
    pub session_absolute_hours: u32,
    /// Mark dashboard cookies `Secure` (set it when a TLS proxy fronts the server; a trusted
    /// proxy's `X-Forwarded-Proto: https` turns it on per request as well).
    pub secure_cookies: bool,
    /// Failed logins allowed per email address within 15 minutes.
    pub login_failures_per_account: u32,
    /// Failed logins allowed per client address within 15 minutes.
    pub login_failures_per_ip: u32,
    /// Password hashes computed at once (argon2id, ~20 MiB and tens of ms each); 0: one fewer
    /// than the cores, at least one.
    pub password_hash_concurrency: usize,
}

/// A public key that signs leak reports.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakReportKey {
    /// The id the reporter sends in `Github-Public-Key-Identifier`.
    pub id: String,
    /// A PEM file holding the ECDSA P-256 public key; read when the configuration is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<PathBuf>,
    /// The PEM text itself (filled from `pem_file` on load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

impl std::fmt::Debug for LeakReportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakReportKey")
            .field("id", &self.id)
            .field("pem_file", &self.pem_file)
            .finish_non_exhaustive()
    }
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
            leak_report_keys: Vec::new(),
            maintenance_interval_secs: 3600,
            dashboard: true,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            secure_cookies: false,
            login_failures_per_account: 5,
            login_failures_per_ip: 20,
            password_hash_concurrency: 0,
        }
    }
}

impl Config {
    /// The request timeout.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// The time between two maintenance runs.
    #[must_use]
    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance_interval_secs.max(1))
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
        LETTERMINT_LOG_RETENTION_DAYS, LETTERMINT_LOG_FORMAT, LETTERMINT_DASHBOARD, \
        LETTERMINT_SESSION_IDLE_MINUTES, LETTERMINT_SECURE_COOKIES, \
        LETTERMINT_LEAK_REPORT_KEYS='[{id=\"...\", pem_file=\"/etc/lettermint/github.pem\"}]', \
        ...), then these flags."
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
    /// Do not serve the dashboard (only the APIs under /v1).
    #[arg(long)]
    #[serde(skip)]
    pub no_dashboard: bool,
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
    /// Id of one more key that signs leak reports (GitHub's Github-Public-Key-Identifier);
    /// needs --leak-report-key-file. Added to the keys of the file and the environment.
    #[arg(
        long,
        env = "LETTERMINT_LEAK_REPORT_KEY_ID",
        requires = "leak_report_key_file"
    )]
    #[serde(skip)]
    pub leak_report_key_id: Option<String>,
    /// PEM file of that key (an ECDSA P-256 public key).
    #[arg(
        long,
        env = "LETTERMINT_LEAK_REPORT_KEY_FILE",
        requires = "leak_report_key_id"
    )]
    #[serde(skip)]
    pub leak_report_key_file: Option<PathBuf>,
}

/// The keys read from `LETTERMINT_*` variables (other `LETTERMINT_` variables belong to other
/// programs and are ignored).
const ENV_KEYS: [&str; 21] = [
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
    "leak_report_keys",
    "maintenance_interval_secs",
    "dashboard",
    "session_idle_minutes",
    "session_absolute_hours",
    "secure_cookies",
    "login_failures_per_account",
    "login_failures_per_ip",
    "password_hash_concurrency",
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
    if cli.no_dashboard {
        figment = figment.merge(("dashboard", false));
    }
    let mut config: Config = figment.extract().map_err(Box::new)?;
    if let (Some(id), Some(file)) = (&cli.leak_report_key_id, &cli.leak_report_key_file) {
        config.leak_report_keys.push(LeakReportKey {
            id: id.clone(),
            pem_file: Some(file.clone()),
            pem: None,
        });
    }
    for key in &mut config.leak_report_keys {
        if let (None, Some(file)) = (&key.pem, &key.pem_file) {
            let pem = std::fs::read_to_string(file).map_err(|e| {
                Box::new(figment::Error::from(format!(
                    "cannot read the PEM file {} of leak report key {:?}: {e}",
                    file.display(),
                    key.id
                )))
            })?;
            key.pem = Some(pem);
        }
    }
    crate::leaks::LeakReportKeys::parse(&config.leak_report_keys)
        .map_err(|e| Box::new(figment::Error::from(e)))?;
    Ok(config)
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
    fn leak_report_keys_come_from_the_file_and_the_flags_with_their_pem_read() {
        use p256::ecdsa::SigningKey;
        use p256::elliptic_curve::Generate as _;
        use p256::pkcs8::{EncodePublicKey as _, LineEnding};
        figment::Jail::expect_with(|jail| {
            let pem = |_| {
                SigningKey::generate()
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .unwrap()
            };
            jail.create_file("a.pem", &pem(1))?;
            jail.create_file("b.pem", &pem(2))?;
            jail.create_file(
                "api.toml",
                "leak_report_keys = [{id = \"a\", pem_file = \"a.pem\"}]\n",
            )?;
            let cli = Cli {
                config: Some("api.toml".into()),
                leak_report_key_id: Some("b".into()),
                leak_report_key_file: Some("b.pem".into()),
                ..Cli::default()
            };
            let config = load(&cli).map_err(|e| e.to_string())?;
            let ids: Vec<&str> = config
                .leak_report_keys
                .iter()
                .map(|k| k.id.as_str())
                .collect();
            assert_eq!(ids, ["a", "b"]);
            assert!(config.leak_report_keys.iter().all(|k| k.pem.is_some()));
            assert!(!format!("{config:?}").contains("BEGIN PUBLIC KEY"));

            jail.create_file("bad.pem", "not a key")?;
            let cli = Cli {
                leak_report_key_id: Some("bad".into()),
                leak_report_key_file: Some("bad.pem".into()),
                ..Cli::default()
            };
            let err = load(&cli).unwrap_err().to_string();
            assert!(err.contains("\"bad\""), "{err}");
            let cli = Cli {
                leak_report_key_id: Some("gone".into()),
                leak_report_key_file: Some("missing.pem".into()),
                ..Cli::default()
            };
            let err = load(&cli).unwrap_err().to_string();
            assert!(err.contains("missing.pem"), "{err}");
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
