//! Configuration: defaults, then an optional TOML file, then environment variables
//! (`LETTERMINT_WORKER_*`, and `LETTERMINT_DATABASE_URL` shared with the other programs), then
//! command-line flags (each overriding the one before).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lettermint_core::RetryPolicy;
use lettermint_delivery::{SmarthostConfig, WorkerConfig};
use serde::{Deserialize, Serialize};

/// Everything the worker can be configured with. Durations are whole seconds unless named
/// otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` (default: `sqlite://lettermint.sqlite`) or `postgres://…`.
    pub database_url: String,
    /// `smtp://user:password@host:port` (STARTTLS required; `?tls=opportunistic|none` to relax)
    /// or `smtps://…` (implicit TLS). Unset: messages go to `maildir` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<String>,
    /// Extra CA certificates (PEM) trusted for the smarthost, beyond the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost_ca_file: Option<PathBuf>,
    /// Most connections kept open to the smarthost.
    pub smarthost_connections: u32,
    /// Seconds each SMTP command to the smarthost may take.
    pub smarthost_timeout: u64,
    /// Name sent in `EHLO` (default: the machine's host name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hello_name: Option<String>,
    /// Directory of the development sink used when no smarthost is set.
    pub maildir: PathBuf,
    /// Most messages claimed (and relayed concurrently) at once.
    pub batch: u32,
    /// Seconds a claim lasts before another worker may take the message over.
    pub lease: u64,
    /// Milliseconds to wait before looking again when nothing was due.
    pub idle_poll_ms: u64,
    /// Most delivery attempts started per second by this worker; 0: no limit.
    pub max_rate: u32,
    /// Seconds before the second attempt; doubles with each attempt.
    pub retry_first_delay: u64,
    /// Longest delay between attempts, in seconds.
    pub retry_max_delay: u64,
    /// Seconds after which a message still failing transiently fails for good.
    pub give_up_after: u64,
    /// Attempts of a message made alone that may be interrupted (the worker stopped during
    /// each) before the message fails without another try.
    pub crash_limit: u32,
    /// Address of the admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
}

impl Default for Config {
    fn default() -> Self {
        let worker = WorkerConfig::default();
        Self {
            database_url: lettermint_store::DEFAULT_DATABASE_URL.to_owned(),
            smarthost: None,
            smarthost_ca_file: None,
            smarthost_connections: 8,
            smarthost_timeout: 60,
            hello_name: None,
            maildir: PathBuf::from("mail"),
            batch: worker.batch,
            lease: worker.lease.as_secs(),
            idle_poll_ms: u64::try_from(worker.idle_poll.as_millis()).unwrap_or(500),
            max_rate: 0,
            retry_first_delay: whole_seconds(worker.retry.first_delay),
            retry_max_delay: whole_seconds(worker.retry.max_delay),
            give_up_after: whole_seconds(worker.retry.give_up_after),
            crash_limit: worker.crash_limit,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 1589)),
        }
    }
}

fn whole_seconds(d: time::Duration) -> u64 {
    u64::try_from(d.whole_seconds()).unwrap_or(0)
}

fn seconds(s: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
}

impl Config {
    /// How the worker paces itself.
    #[must_use]
    pub fn worker(&self) -> WorkerConfig {
        WorkerConfig {
            batch: self.batch,
            lease: Duration::from_secs(self.lease),
            idle_poll: Duration::from_millis(self.idle_poll_ms),
            retry: RetryPolicy {
                first_delay: seconds(self.retry_first_delay),
                max_delay: seconds(self.retry_max_delay),
                give_up_after: seconds(self.give_up_after),
            },
            max_rate: std::num::NonZeroU32::new(self.max_rate),
            crash_limit: self.crash_limit,
        }
    }

    /// The smarthost, when one is configured.
    pub fn smarthost(
        &self,
    ) -> Result<Option<SmarthostConfig>, lettermint_delivery::relay::ConfigError> {
        let Some(url) = &self.smarthost else {
            return Ok(None);
        };
        let mut smarthost = SmarthostConfig::from_url(url)?;
        smarthost.ca_file.clone_from(&self.smarthost_ca_file);
        smarthost.max_connections = self.smarthost_connections;
        smarthost.timeout = Duration::from_secs(self.smarthost_timeout);
        smarthost.hello_name.clone_from(&self.hello_name);
        Ok(Some(smarthost))
    }
}

/// Command-line flags. Every flag overrides the file and the environment.
#[derive(Debug, Default, Parser, Serialize)]
#[command(
    name = "mail-worker",
    version,
    about,
    long_about = concat!(
        env!("CARGO_PKG_DESCRIPTION"),
        "\n\nConfiguration is read from defaults, then the TOML file given with --config (or \
         LETTERMINT_WORKER_CONFIG), then environment variables, then these flags. Every setting \
         has a variable named after its flag, LETTERMINT_WORKER_<FLAG> \
         (LETTERMINT_WORKER_SMARTHOST, LETTERMINT_WORKER_BATCH, ...), except the database: \
         LETTERMINT_DATABASE_URL, as for the other programs. Prefer the environment or the file \
         for a smarthost URL with a password: flags are visible to other users of the machine."
    )
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "LETTERMINT_WORKER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database URL [env: LETTERMINT_DATABASE_URL] [default: sqlite://lettermint.sqlite]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Upstream smarthost: smtp://user:password@host:port (STARTTLS required; add
    /// ?tls=opportunistic or ?tls=none to relax; user, password and port are optional) or
    /// smtps://… (implicit TLS); unset, messages go to --maildir
    /// [env: LETTERMINT_WORKER_SMARTHOST]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<String>,
    /// Extra CA certificates (PEM) trusted for the smarthost
    /// [env: LETTERMINT_WORKER_SMARTHOST_CA_FILE]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost_ca_file: Option<PathBuf>,
    /// Most connections kept open to the smarthost
    /// [env: LETTERMINT_WORKER_SMARTHOST_CONNECTIONS] [default: 8]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost_connections: Option<u32>,
    /// Seconds each SMTP command to the smarthost may take
    /// [env: LETTERMINT_WORKER_SMARTHOST_TIMEOUT] [default: 60]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smarthost_timeout: Option<u64>,
    /// Name sent in EHLO [env: LETTERMINT_WORKER_HELLO_NAME] [default: the host name]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hello_name: Option<String>,
    /// Development sink used when no smarthost is set [env: LETTERMINT_WORKER_MAILDIR]
    /// [default: mail]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maildir: Option<PathBuf>,
    /// Most messages relayed at once (and claimed at once; half as many more are claimed
    /// ahead) [env: LETTERMINT_WORKER_BATCH] [default: 64]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Seconds a claim lasts before another worker may take the message over
    /// [env: LETTERMINT_WORKER_LEASE] [default: 300]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
    /// Milliseconds between looks when nothing is due
    /// [env: LETTERMINT_WORKER_IDLE_POLL_MS] [default: 500]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_poll_ms: Option<u64>,
    /// Most delivery attempts started per second by this worker (a smarthost's sending quota);
    /// 0: no limit [env: LETTERMINT_WORKER_MAX_RATE] [default: 0]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<u32>,
    /// Seconds before the second attempt, doubling with each attempt
    /// [env: LETTERMINT_WORKER_RETRY_FIRST_DELAY] [default: 30]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_first_delay: Option<u64>,
    /// Longest delay between attempts, in seconds
    /// [env: LETTERMINT_WORKER_RETRY_MAX_DELAY] [default: 3600]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_max_delay: Option<u64>,
    /// Seconds after which a transiently failing message fails for good
    /// [env: LETTERMINT_WORKER_GIVE_UP_AFTER] [default: 259200]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub give_up_after: Option<u64>,
    /// Attempts of a message made alone that may be interrupted (the worker stopped during
    /// each) before it fails without another try
    /// [env: LETTERMINT_WORKER_CRASH_LIMIT] [default: 3]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_limit: Option<u32>,
    /// Address of the admin HTTP listener (/healthz, /readyz, /metrics); port 0 picks one
    /// [env: LETTERMINT_WORKER_ADMIN_LISTEN] [default: 127.0.0.1:1589]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
}

/// The keys read from `LETTERMINT_WORKER_*` variables.
const ENV_KEYS: [&str; 15] = [
    "smarthost",
    "smarthost_ca_file",
    "smarthost_connections",
    "smarthost_timeout",
    "hello_name",
    "maildir",
    "batch",
    "lease",
    "idle_poll_ms",
    "max_rate",
    "retry_first_delay",
    "retry_max_delay",
    "give_up_after",
    "crash_limit",
    "admin_listen",
];

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// Layers defaults, file, environment and flags, then checks what no single layer can.
pub fn load(cli: &Cli) -> Result<Config, Box<figment::Error>> {
    let config: Config = lettermint_runtime::process::layered_config(
        cli.config.as_deref(),
        "LETTERMINT_WORKER_",
        &ENV_KEYS,
        cli,
    )?;
    let invalid = |what: String| Err(Box::new(figment::Error::from(what)));
    if config.batch == 0 {
        return invalid("`batch` must be at least 1".to_owned());
    }
    // Upper bounds far above any useful value, so that no setting can overflow a date; lower
    // bounds where zero would make a loop spin (a deferred message retried at once, again and
    // again; an idle worker querying the store without pause).
    for (name, value, least, most, unit) in [
        ("smarthost_timeout", config.smarthost_timeout, 0, HOUR, "s"),
        ("lease", config.lease, 0, DAY, "s"),
        (
            "retry_first_delay",
            config.retry_first_delay,
            1,
            30 * DAY,
            "s",
        ),
        ("retry_max_delay", config.retry_max_delay, 1, 30 * DAY, "s"),
        ("give_up_after", config.give_up_after, 0, 365 * DAY, "s"),
        ("idle_poll_ms", config.idle_poll_ms, 1, HOUR * 1000, "ms"),
        (
            "crash_limit",
            u64::from(config.crash_limit),
            1,
            1000,
            "attempts",
        ),
    ] {
        if value > most {
            return invalid(format!(
                "`{name}` ({value} {unit}) must be at most {most} {unit}"
            ));
        }
        if value < least {
            return invalid(format!("`{name}` must be at least {least} {unit}"));
        }
    }
    if config.smarthost_timeout == 0 || config.lease <= config.smarthost_timeout * 2 {
        return invalid(format!(
            "`lease` ({} s) must be more than twice `smarthost_timeout` ({} s): a claim must \
             outlast one attempt, or another worker takes the message over mid-delivery",
            config.lease, config.smarthost_timeout
        ));
    }
    if let Err(e) = config.smarthost() {
        return invalid(e.to_string());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

    use super::*;

    #[test]
    fn defaults_deliver_to_the_maildir_with_the_worker_defaults() {
        figment::Jail::expect_with(|_| {
            let config = load(&Cli::default()).map_err(|e| e.to_string())?;
            assert_eq!(config, Config::default());
            assert_eq!(config.worker(), WorkerConfig::default());
            assert_eq!(config.smarthost().unwrap(), None);
            assert_eq!(config.maildir, PathBuf::from("mail"));
            Ok(())
        });
    }

    #[test]
    fn flags_override_environment_override_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "worker.toml",
                "smarthost = \"smtp://file.example\"\nbatch = 7\nlease = 600\n",
            )?;
            jail.set_env(
                "LETTERMINT_WORKER_SMARTHOST",
                "smtps://u:p@env.example:2465",
            );
            jail.set_env("LETTERMINT_WORKER_BATCH", "8");
            jail.set_env("LETTERMINT_DATABASE_URL", "sqlite://env.sqlite");
            let cli = Cli {
                config: Some("worker.toml".into()),
                batch: Some(9),
                ..Cli::default()
            };
            let config = load(&cli).map_err(|e| e.to_string())?;
            assert_eq!(config.batch, 9);
            assert_eq!(config.lease, 600);
            assert_eq!(config.database_url, "sqlite://env.sqlite");
            let smarthost = config.smarthost().unwrap().unwrap();
            assert_eq!(
                (smarthost.host.as_str(), smarthost.port),
                ("env.example", 2465)
            );
            Ok(())
        });
    }

    #[test]
    fn inconsistent_settings_are_refused_with_the_setting_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LETTERMINT_WORKER_LEASE", "60");
            let err = load(&Cli::default()).unwrap_err().to_string();
            assert!(err.contains("`lease`"), "{err}");
            jail.set_env("LETTERMINT_WORKER_LEASE", "600");
            jail.set_env("LETTERMINT_WORKER_SMARTHOST", "http://nope");
            let err = load(&Cli::default()).unwrap_err().to_string();
            assert!(err.contains("smarthost"), "{err}");
            jail.set_env("LETTERMINT_WORKER_SMARTHOST", "smtp://h");
            jail.set_env("LETTERMINT_WORKER_BATCH", "0");
            let err = load(&Cli::default()).unwrap_err().to_string();
            assert!(err.contains("`batch`"), "{err}");
            jail.set_env("LETTERMINT_WORKER_BATCH", "8");
            for name in [
                "smarthost_timeout",
                "lease",
                "retry_first_delay",
                "retry_max_delay",
                "give_up_after",
            ] {
                jail.set_env(
                    format!("LETTERMINT_WORKER_{}", name.to_uppercase()),
                    "400000000000",
                );
                let err = load(&Cli::default()).unwrap_err().to_string();
                assert!(err.contains(&format!("`{name}`")), "{err}");
                jail.set_env(format!("LETTERMINT_WORKER_{}", name.to_uppercase()), "60");
            }
            jail.set_env("LETTERMINT_WORKER_LEASE", "600");
            // Zero would retry a deferred message at once, forever, or poll without pause.
            for name in ["retry_first_delay", "retry_max_delay", "idle_poll_ms"] {
                let key = format!("LETTERMINT_WORKER_{}", name.to_uppercase());
                jail.set_env(&key, "0");
                let err = load(&Cli::default()).unwrap_err().to_string();
                assert!(
                    err.contains(&format!("`{name}` must be at least 1")),
                    "{err}"
                );
                jail.set_env(&key, "1");
                load(&Cli::default()).unwrap();
            }
            // Zero would fail every message taken over from an interrupted attempt untried.
            jail.set_env("LETTERMINT_WORKER_CRASH_LIMIT", "0");
            let err = load(&Cli::default()).unwrap_err().to_string();
            assert!(err.contains("`crash_limit` must be at least 1"), "{err}");
            jail.set_env("LETTERMINT_WORKER_CRASH_LIMIT", "1001");
            let err = load(&Cli::default()).unwrap_err().to_string();
            assert!(err.contains("`crash_limit`"), "{err}");
            jail.set_env("LETTERMINT_WORKER_CRASH_LIMIT", "1");
            assert_eq!(load(&Cli::default()).unwrap().worker().crash_limit, 1);
            Ok(())
        });
    }
}
