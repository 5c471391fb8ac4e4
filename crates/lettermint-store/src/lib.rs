//! Opens "a store" from a database URL: `sqlite://path/to/file.sqlite` (the embedded default)
//! or `postgres://…`. Front doors and tools use this so that they never name a backend.

#![warn(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use lettermint_core::Store;
use lettermint_store_pg::{PgConfig, PgStore};
use lettermint_store_sqlite::{SqliteConfig, SqliteStore};

/// The database used when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://lettermint.sqlite";

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL `{0}`: use sqlite://path/to/file.sqlite or postgres://user@host/db"
    )]
    UnsupportedUrl(String),
    /// The directory for a SQLite file could not be created.
    #[error("cannot create the directory for the SQLite database `{path}`: {source}")]
    Directory {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The backend refused to open or migrate.
    #[error("cannot open the database: {0}")]
    Backend(#[from] lettermint_core::Error),
}

/// A store of either backend.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PgStore),
}

impl AnyStore {
    /// The store as the trait object services are wired with.
    #[must_use]
    pub fn into_dyn(self) -> Arc<dyn Store> {
        match self {
            AnyStore::Sqlite(s) => Arc::new(s),
            AnyStore::Postgres(s) => Arc::new(s),
        }
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// Settings that apply whatever the backend.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Connection pool size (PostgreSQL) or reader count (SQLite).
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
        }
    }
}

/// Opens the store at `url` and applies pending migrations.
pub async fn open(url: &str, options: OpenOptions) -> Result<AnyStore, OpenError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut config = PgConfig::new(url);
        config.max_connections = options.max_connections;
        return Ok(AnyStore::Postgres(PgStore::connect(&config).await?));
    }
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Ok(AnyStore::Sqlite(
                SqliteStore::open(&SqliteConfig::in_memory()).await?,
            ));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut config = SqliteConfig::file(path);
        config.max_readers = options.max_connections;
        return Ok(AnyStore::Sqlite(SqliteStore::open(&config).await?));
    }
    Err(OpenError::UnsupportedUrl(redact(url)))
}

/// Hides a password in a URL before it is shown.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_sqlite_files_in_new_directories_and_refuses_unknown_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/dir/db.sqlite", dir.path().display());
        let store = open(&url, OpenOptions::default()).await.unwrap();
        assert_eq!(store.backend(), "sqlite");
        store.into_dyn().ping().await.unwrap();
        assert!(dir.path().join("nested/dir/db.sqlite").exists());

        let err = open("mysql://root:hunter2@db/x", OpenOptions::default())
            .await
            .unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("unsupported database URL"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
