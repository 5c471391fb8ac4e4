//! [`SqliteStore`]: every repository trait on one connection pool.

use std::path::PathBuf;
use std::time::Duration;

use lettermint_core::{Error, Result};
use lettermint_store_sql::backend::{Backend, Pools};
use lettermint_store_sql::error::ResultExt;
use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::dialect::SqliteDialect;

/// Where the SQLite database lives and how it is opened.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file, or `None` for a private in-memory database (tests, examples).
    pub path: Option<PathBuf>,
    /// Connections used for reads (writes always use one connection: SQLite has one writer).
    pub max_readers: u32,
    /// How long a statement waits for a lock held by another process before failing.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// A database file at `path`, created if missing.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            max_readers: 8,
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// A private in-memory database that lives as long as the store.
    #[must_use]
    pub fn in_memory() -> Self {
        Self {
            path: None,
            max_readers: 1,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite store: one writer connection (SQLite serialises writers anyway, and one
/// connection never meets `SQLITE_BUSY` from itself) and a pool of readers, in WAL mode with
/// `synchronous = FULL`, so that a committed message survives a crash or power loss.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pools: Pools<Sqlite>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database.
    pub async fn open(config: &SqliteConfig) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .foreign_keys(true)
            .busy_timeout(config.busy_timeout);
        let store = match &config.path {
            Some(path) => {
                let options = base
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full);
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .connect_with(options.clone())
                    .await
                    .fix()?;
                // Readers open after the writer created the file and switched it to WAL.
                let readers = SqlitePoolOptions::new()
                    .max_connections(config.max_readers.max(1))
                    .test_before_acquire(false)
                    .connect_lazy_with(options);
                Self {
                    pools: Pools::split(readers, writer),
                }
            }
            None => {
                // An in-memory database exists per connection: one connection serves both roles.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(base.in_memory(true))
                    .await
                    .fix()?;
                Self {
                    pools: Pools::one(pool),
                }
            }
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Opens `sqlite://path` (or `sqlite::memory:`) with default settings.
    pub async fn connect(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| Error::invalid("database_url", "A SQLite URL starts with `sqlite:`."))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            Self::open(&SqliteConfig::in_memory()).await
        } else {
            Self::open(&SqliteConfig::file(path)).await
        }
    }
}

lettermint_store_sql::repositories!(SqliteStore);

impl Backend for SqliteStore {
    type Dialect = SqliteDialect;

    fn pools(&self) -> &Pools<Sqlite> {
        &self.pools
    }
}
