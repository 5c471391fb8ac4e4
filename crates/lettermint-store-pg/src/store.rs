//! [`PgStore`]: every repository trait on one connection pool.

use std::str::FromStr;
use std::time::Duration;

use lettermint_core::Result;
use lettermint_store_sql::backend::{Backend, Pools};
use lettermint_store_sql::error::ResultExt;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::dialect::PgDialect;

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl PgConfig {
    /// A configuration with defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pools: Pools<Postgres>,
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        let store = Self::connect_without_migrating(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without touching the schema.
    pub async fn connect_without_migrating(config: &PgConfig) -> Result<Self> {
        let options = PgConnectOptions::from_str(&config.url).fix()?;
        // A pool pings each connection before handing it out by default: a second round trip
        // on every query. Broken connections surface as errors on use instead.
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .fix()?;
        Ok(Self {
            pools: Pools::one(pool),
        })
    }
}

lettermint_store_sql::repositories!(PgStore);

impl Backend for PgStore {
    type Dialect = PgDialect;

    fn pools(&self) -> &Pools<Postgres> {
        &self.pools
    }
}
