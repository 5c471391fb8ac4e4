//! Configuration: defaults, then an optional TOML file, then environment variables
//! (`LETTERMINT_SMTP_*`, and `LETTERMINT_DATABASE_URL` shared with the other programs), then
//! command-line flags (each overriding the one before).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Everything the relay can be configured with. Durations are whole seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` (default: `sqlite://lettermint.sqlite`) or `postgres://…`.
    pub database_url: String,
    /// Address for submission with STARTTLS.
    pub listen: SocketAddr,
    /// Address for submission over implicit TLS.
    pub tls_listen: SocketAddr,
    /// Address of the admin HTTP listener (`/healthz`, `/readyz`, `/metrics`).
    pub admin_listen: SocketAddr,
    /// PEM certificate chain; without it (and `key`), a self-signed certificate is generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Name announced in the greeting and in the self-signed certificate.
    pub hostname: String,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Offer AUTH without TLS (local development only).
    pub allow_insecure_auth: bool,
    /// Most sessions at once.
    pub max_connections: usize,
    /// Most sessions at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Failed AUTH attempts per session before it is closed.
    pub max_auth_failures: usize,
    /// Messages per session before it is closed.
    pub max_messages_per_session: usize,
    /// Seconds to wait for the next command (and for the TLS handshake).
    pub idle_timeout: u64,
    /// Seconds a client may take to send one message after `354`.
    pub data_timeout: u64,
    /// Longest session, in seconds.
    pub session_timeout: u64,
    /// Seconds one reply may take to be written before the session is dropped.
    pub write_timeout: u64,
    /// Seconds to let messages being received finish at shutdown.
    pub shutdown_grace: u64,
}

impl Default for Config {
    /// The session limits come from [`smtp_relay::Config::default`], so the two never disagree.
    fn default() -> Self {
        let relay = smtp_relay::Config::default();
        Self {
            database_url: lettermint_store::DEFAULT_DATABASE_URL.to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 1587)),
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 1465)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 1588)),
            cert: None,
            key: None,
            hostname: relay.hostname,
            max_message_size: relay.max_message_size,
            max_recipients: relay.max_recipients,
            allow_insecure_auth: relay.allow_insecure_auth,
            max_connections: relay.max_connections,
            max_connections_per_ip: relay.max_connections_per_ip,
            max_auth_failures: relay.max_auth_failures,
            max_messages_per_session: relay.max_messages_per_session,
            idle_timeout: relay.idle_timeout.as_secs(),
            data_timeout: relay.data_timeout.as_secs(),
            session_timeout: relay.session_timeout.as_secs(),
            write_timeout: relay.write_timeout.as_secs(),
            shutdown_grace: 30,
        }
    }
}

impl Config {
    /// What the sessions are run with.
    #[must_use]
    pub fn relay(&self) -> smtp_relay::Config {
        smtp_relay::Config {
            hostname: self.hostname.clone(),
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            allow_insecure_auth: self.allow_insecure_auth,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_auth_failures: self.max_auth_failures,
            max_messages_per_session: self.max_messages_per_session,
            idle_timeout: Duration::from_secs(self.idle_timeout),
            data_timeout: Duration::from_secs(self.data_timeout),
            session_timeout: Duration::from_secs(self.session_timeout),
            write_timeout: Duration::from_secs(self.write_timeout),
            ..smtp_relay::Config::default()
        }
    }

    /// How long sessions still receiving a message may take to finish at shutdown.
    #[must_use]
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace)
    }
}

/// Command-line flags. Every flag overrides the file and the environment.
#[derive(Debug, Default, Parser, Serialize)]
#[command(
    name = "smtp-relay",
    version,
    about,
    long_about = concat!(
        env!("CARGO_PKG_DESCRIPTION"),
        "\n\nConfiguration is read from defaults, then the TOML file given with --config (or \
         LETTERMINT_SMTP_CONFIG), then environment variables, then these flags. Every setting \
         has a variable named after its flag, LETTERMINT_SMTP_<FLAG> (LETTERMINT_SMTP_LISTEN, \
         LETTERMINT_SMTP_MAX_CONNECTIONS_PER_IP, ...), except the database: \
         LETTERMINT_DATABASE_URL, as for api-server and token-admin."
    )
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "LETTERMINT_SMTP_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://path/to/file.sqlite or postgres://user:password@host/db
    /// [env: LETTERMINT_DATABASE_URL] [default: sqlite://lettermint.sqlite]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Address for submission with STARTTLS; port 0 picks a free port
    /// [env: LETTERMINT_SMTP_LISTEN] [default: 127.0.0.1:1587]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Address for submission over implicit TLS
    /// [env: LETTERMINT_SMTP_TLS_LISTEN] [default: 127.0.0.1:1465]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    /// Address of the admin HTTP listener (/healthz, /readyz, /metrics)
    /// [env: LETTERMINT_SMTP_ADMIN_LISTEN] [default: 127.0.0.1:1588]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// PEM certificate chain; without it (and --key), a self-signed certificate is generated
    /// [env: LETTERMINT_SMTP_CERT]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key for the certificate [env: LETTERMINT_SMTP_KEY]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Name announced in the greeting and in the self-signed certificate
    /// [env: LETTERMINT_SMTP_HOSTNAME] [default: localhost]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Largest message accepted, in bytes
    /// [env: LETTERMINT_SMTP_MAX_MESSAGE_SIZE] [default: 26214400]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<usize>,
    /// Most recipients per message [env: LETTERMINT_SMTP_MAX_RECIPIENTS] [default: 50]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_recipients: Option<usize>,
    /// Offer AUTH without TLS (local development only: the token crosses the network in clear)
    /// [env: LETTERMINT_SMTP_ALLOW_INSECURE_AUTH=true]
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub allow_insecure_auth: bool,
    /// Most sessions at once [env: LETTERMINT_SMTP_MAX_CONNECTIONS] [default: 1000]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most sessions at once from one IP address
    /// [env: LETTERMINT_SMTP_MAX_CONNECTIONS_PER_IP] [default: 20]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Failed AUTH attempts per session before it is closed
    /// [env: LETTERMINT_SMTP_MAX_AUTH_FAILURES] [default: 3]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_auth_failures: Option<usize>,
    /// Messages per session before it is closed
    /// [env: LETTERMINT_SMTP_MAX_MESSAGES_PER_SESSION] [default: 100]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_messages_per_session: Option<usize>,
    /// Seconds to wait for the next command (and for the TLS handshake)
    /// [env: LETTERMINT_SMTP_IDLE_TIMEOUT] [default: 300]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Seconds a client may take to send one message after 354
    /// [env: LETTERMINT_SMTP_DATA_TIMEOUT] [default: 600]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_timeout: Option<u64>,
    /// Longest session, in seconds [env: LETTERMINT_SMTP_SESSION_TIMEOUT] [default: 3600]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<u64>,
    /// Seconds one reply may take to be written before the session is dropped
    /// [env: LETTERMINT_SMTP_WRITE_TIMEOUT] [default: 60]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_timeout: Option<u64>,
    /// Seconds to let messages being received finish at shutdown
    /// [env: LETTERMINT_SMTP_SHUTDOWN_GRACE] [default: 30]
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<u64>,
}

/// `--allow-insecure-auth` absent says nothing: the file or the environment may have set it.
fn is_false(value: &bool) -> bool {
    !*value
}

/// The keys read from `LETTERMINT_SMTP_*` variables (`LETTERMINT_SMTP_CONFIG` names the file
/// and is read with the flags; other variables are ignored).
const ENV_KEYS: [&str; 18] = [
    "listen",
    "tls_listen",
    "admin_listen",
    "cert",
    "key",
    "hostname",
    "max_message_size",
    "max_recipients",
    "allow_insecure_auth",
    "max_connections",
    "max_connections_per_ip",
    "max_auth_failures",
    "max_messages_per_session",
    "idle_timeout",
    "data_timeout",
    "session_timeout",
    "write_timeout",
    "shutdown_grace",
];

/// Layers defaults, file, environment and flags, then checks what no single layer can.
pub fn load(cli: &Cli) -> Result<Config, Box<figment::Error>> {
    // The database is shared with api-server and token-admin: one variable for all three.
    let config: Config = lettermint_runtime::process::layered_config(
        cli.config.as_deref(),
        "LETTERMINT_SMTP_",
        &ENV_KEYS,
        cli,
    )?;
    if config.cert.is_some() != config.key.is_some() {
        return Err(Box::new(figment::Error::from(
            "`cert` and `key` go together: give both (--cert and --key, LETTERMINT_SMTP_CERT and \
             LETTERMINT_SMTP_KEY, or both keys in the file), or neither for a self-signed \
             certificate"
                .to_owned(),
        )));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

    use super::*;

    fn cli_with_file(path: &str) -> Cli {
        Cli {
            config: Some(path.into()),
            ..Cli::default()
        }
    }

    #[test]
    fn without_file_environment_or_flags_the_defaults_match_the_relay() {
        figment::Jail::expect_with(|_| {
            let config = load(&Cli::default()).map_err(|e| e.to_string())?;
            assert_eq!(config, Config::default());
            assert_eq!(
                format!("{:?}", config.relay()),
                format!("{:?}", smtp_relay::Config::default())
            );
            assert_eq!(config.listen, "127.0.0.1:1587".parse().unwrap());
            assert_eq!(config.tls_listen, "127.0.0.1:1465".parse().unwrap());
            assert_eq!(config.admin_listen, "127.0.0.1:1588".parse().unwrap());
            assert_eq!(config.database_url, lettermint_store::DEFAULT_DATABASE_URL);
            assert_eq!(config.write_timeout, 60);
            assert_eq!(config.shutdown_grace(), Duration::from_secs(30));
            Ok(())
        });
    }

    #[test]
    fn flags_override_environment_override_file_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "smtp.toml",
                "listen = \"127.0.0.1:2587\"\n\
                 hostname = \"from-file.example\"\n\
                 max_recipients = 7\n\
                 write_timeout = 5\n\
                 database_url = \"sqlite://file.sqlite\"\n",
            )?;
            jail.set_env("LETTERMINT_SMTP_HOSTNAME", "from-env.example");
            jail.set_env("LETTERMINT_SMTP_MAX_RECIPIENTS", "8");
            jail.set_env("LETTERMINT_DATABASE_URL", "sqlite://env.sqlite");
            let cli = Cli {
                max_recipients: Some(9),
                idle_timeout: Some(11),
                ..cli_with_file("smtp.toml")
            };
            let config = load(&cli).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:2587".parse().unwrap());
            assert_eq!(config.write_timeout, 5);
            assert_eq!(config.hostname, "from-env.example");
            assert_eq!(config.database_url, "sqlite://env.sqlite");
            assert_eq!(config.max_recipients, 9);
            assert_eq!(config.idle_timeout, 11);
            assert_eq!(config.data_timeout, 600);
            let relay = config.relay();
            assert_eq!(relay.hostname, "from-env.example");
            assert_eq!(relay.max_recipients, 9);
            assert_eq!(relay.idle_timeout, Duration::from_secs(11));
            assert_eq!(relay.write_timeout, Duration::from_secs(5));
            Ok(())
        });
    }

    #[test]
    fn every_setting_keeps_its_lettermint_smtp_variable() {
        figment::Jail::expect_with(|jail| {
            for (name, value) in [
                ("LETTERMINT_DATABASE_URL", "postgres://u:p@db.internal/lm"),
                ("LETTERMINT_SMTP_LISTEN", "0.0.0.0:587"),
                ("LETTERMINT_SMTP_TLS_LISTEN", "0.0.0.0:465"),
                ("LETTERMINT_SMTP_ADMIN_LISTEN", "0.0.0.0:9587"),
                ("LETTERMINT_SMTP_CERT", "/etc/relay/cert.pem"),
                ("LETTERMINT_SMTP_KEY", "/etc/relay/key.pem"),
                ("LETTERMINT_SMTP_HOSTNAME", "smtp.example.com"),
                ("LETTERMINT_SMTP_MAX_MESSAGE_SIZE", "1000"),
                ("LETTERMINT_SMTP_MAX_RECIPIENTS", "2"),
                ("LETTERMINT_SMTP_ALLOW_INSECURE_AUTH", "true"),
                ("LETTERMINT_SMTP_MAX_CONNECTIONS", "3"),
                ("LETTERMINT_SMTP_MAX_CONNECTIONS_PER_IP", "4"),
                ("LETTERMINT_SMTP_MAX_AUTH_FAILURES", "5"),
                ("LETTERMINT_SMTP_MAX_MESSAGES_PER_SESSION", "6"),
                ("LETTERMINT_SMTP_IDLE_TIMEOUT", "7"),
                ("LETTERMINT_SMTP_DATA_TIMEOUT", "8"),
                ("LETTERMINT_SMTP_SESSION_TIMEOUT", "9"),
                ("LETTERMINT_SMTP_WRITE_TIMEOUT", "10"),
                ("LETTERMINT_SMTP_SHUTDOWN_GRACE", "11"),
                // Not the relay's: ignored.
                ("LETTERMINT_LISTEN", "127.0.0.1:1"),
                ("LETTERMINT_SMTP_SOMETHING_ELSE", "x"),
            ] {
                jail.set_env(name, value);
            }
            let config = load(&Cli::default()).map_err(|e| e.to_string())?;
            assert_eq!(
                config,
                Config {
                    database_url: "postgres://u:p@db.internal/lm".into(),
                    listen: "0.0.0.0:587".parse().unwrap(),
                    tls_listen: "0.0.0.0:465".parse().unwrap(),
                    admin_listen: "0.0.0.0:9587".parse().unwrap(),
                    cert: Some("/etc/relay/cert.pem".into()),
                    key: Some("/etc/relay/key.pem".into()),
                    hostname: "smtp.example.com".into(),
                    max_message_size: 1000,
                    max_recipients: 2,
                    allow_insecure_auth: true,
                    max_connections: 3,
                    max_connections_per_ip: 4,
                    max_auth_failures: 5,
                    max_messages_per_session: 6,
                    idle_timeout: 7,
                    data_timeout: 8,
                    session_timeout: 9,
                    write_timeout: 10,
                    shutdown_grace: 11,
                }
            );
            Ok(())
        });
    }

    #[test]
    fn the_file_is_named_by_lettermint_smtp_config_and_the_flag_wins() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("env.toml", "hostname = \"env-file.example\"\n")?;
            jail.create_file("flag.toml", "hostname = \"flag-file.example\"\n")?;
            jail.set_env("LETTERMINT_SMTP_CONFIG", "env.toml");
            let cli = Cli::try_parse_from(["smtp-relay"]).map_err(|e| e.to_string())?;
            assert_eq!(load(&cli).unwrap().hostname, "env-file.example");
            let cli = Cli::try_parse_from(["smtp-relay", "--config", "flag.toml"])
                .map_err(|e| e.to_string())?;
            assert_eq!(load(&cli).unwrap().hostname, "flag-file.example");
            Ok(())
        });
    }

    #[test]
    fn allow_insecure_auth_set_in_the_file_is_not_undone_by_an_absent_flag() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("smtp.toml", "allow_insecure_auth = true\n")?;
            let config = load(&cli_with_file("smtp.toml")).map_err(|e| e.to_string())?;
            assert!(config.allow_insecure_auth);
            jail.set_env("LETTERMINT_SMTP_ALLOW_INSECURE_AUTH", "false");
            let config = load(&cli_with_file("smtp.toml")).map_err(|e| e.to_string())?;
            assert!(!config.allow_insecure_auth);
            let cli = Cli {
                allow_insecure_auth: true,
                ..cli_with_file("smtp.toml")
            };
            assert!(load(&cli).map_err(|e| e.to_string())?.allow_insecure_auth);
            Ok(())
        });
    }

    #[test]
    fn flags_parse_as_before() {
        let cli = Cli::try_parse_from([
            "smtp-relay",
            "--database-url",
            "sqlite://x.sqlite",
            "--listen",
            "127.0.0.1:0",
            "--tls-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--allow-insecure-auth",
            "--write-timeout",
            "3",
        ])
        .unwrap();
        assert_eq!(cli.database_url.as_deref(), Some("sqlite://x.sqlite"));
        assert_eq!(cli.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(cli.allow_insecure_auth);
        assert_eq!(cli.write_timeout, Some(3));
        assert_eq!(cli.hostname, None);
    }

    #[test]
    fn the_help_names_every_variable_and_the_defaults_it_shows_are_the_defaults() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("LETTERMINT_SMTP_CONFIG"), "{help}");
        assert!(help.contains("[env: LETTERMINT_DATABASE_URL]"), "{help}");
        for key in ENV_KEYS {
            let variable = format!("[env: LETTERMINT_SMTP_{}", key.to_ascii_uppercase());
            assert!(help.contains(&variable), "{variable} missing in:\n{help}");
        }
        let defaults = Config::default();
        for shown in [
            format!("[default: {}]", defaults.database_url),
            format!("[default: {}]", defaults.listen),
            format!("[default: {}]", defaults.tls_listen),
            format!("[default: {}]", defaults.admin_listen),
            format!("[default: {}]", defaults.hostname),
            format!("[default: {}]", defaults.max_message_size),
            format!("[default: {}]", defaults.max_recipients),
            format!("[default: {}]", defaults.max_connections),
            format!("[default: {}]", defaults.max_connections_per_ip),
            format!("[default: {}]", defaults.max_auth_failures),
            format!("[default: {}]", defaults.max_messages_per_session),
            format!("[default: {}]", defaults.idle_timeout),
            format!("[default: {}]", defaults.data_timeout),
            format!("[default: {}]", defaults.session_timeout),
            format!("[default: {}]", defaults.write_timeout),
            format!("[default: {}]", defaults.shutdown_grace),
        ] {
            assert!(help.contains(&shown), "{shown} missing in:\n{help}");
        }
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("smtp.toml", "max_recipents = 10\n")?;
            let err = load(&cli_with_file("smtp.toml")).unwrap_err().to_string();
            assert!(err.contains("max_recipents"), "{err}");
            assert!(err.contains("smtp.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        figment::Jail::expect_with(|_| {
            let err = load(&cli_with_file("missing.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_errors_naming_the_key_and_where_it_came_from() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LETTERMINT_SMTP_MAX_RECIPIENTS", "lots");
            let err = load(&Cli::default()).unwrap_err().to_string();
            // figment names the key and its source: `for key "MAX_RECIPIENTS" in
            // `LETTERMINT_SMTP_` environment variable(s)`.
            assert!(err.contains("\"lots\""), "{err}");
            assert!(err.contains("MAX_RECIPIENTS"), "{err}");
            assert!(err.contains("`LETTERMINT_SMTP_` environment"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("smtp.toml", "listen = \"localhost:fivehundred\"\n")?;
            let err = load(&cli_with_file("smtp.toml")).unwrap_err().to_string();
            assert!(err.contains("listen"), "{err}");
            assert!(err.contains("smtp.toml"), "{err}");
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("smtp.toml", "idle_timeout = -1\n")?;
            let err = load(&cli_with_file("smtp.toml")).unwrap_err().to_string();
            assert!(err.contains("idle_timeout"), "{err}");
            Ok(())
        });
        assert!(Cli::try_parse_from(["smtp-relay", "--max-connections", "many"]).is_err());
    }

    #[test]
    fn a_certificate_without_its_key_is_an_error_whichever_layer_sets_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("smtp.toml", "cert = \"cert.pem\"\n")?;
            let err = load(&cli_with_file("smtp.toml")).unwrap_err().to_string();
            assert!(err.contains("`cert` and `key` go together"), "{err}");
            // The key may come from another layer.
            jail.set_env("LETTERMINT_SMTP_KEY", "key.pem");
            let config = load(&cli_with_file("smtp.toml")).map_err(|e| e.to_string())?;
            assert_eq!(config.cert, Some("cert.pem".into()));
            assert_eq!(config.key, Some("key.pem".into()));
            Ok(())
        });
    }
}
