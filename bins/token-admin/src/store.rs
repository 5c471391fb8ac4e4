//! Opening the store named by `--database-url`.

use std::path::Path;
use std::sync::Arc;

use lettermint_core::{Services, SystemClock};
use lettermint_store::OpenOptions;

use crate::error::{CmdResult, Failure};

/// The file a `sqlite:` URL names, if it names a file (not `:memory:`).
#[must_use]
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Opens the store and wires the services. Opening a SQLite URL creates the file, so unless
/// `may_create` is set, a missing file is an error that says how to create one, rather than a
/// new empty database.
pub async fn open(url: &str, may_create: bool) -> CmdResult<Services> {
    if let Some(path) = sqlite_path(url)
        && !may_create
        && !Path::new(path).exists()
    {
        return Err(Failure::operational(format!(
            "no database at {path}; create one with `token-admin team create NAME` (or `cargo \
             xtask migrate`), or point --database-url / LETTERMINT_DATABASE_URL at an existing one"
        )));
    }
    let store = lettermint_store::open(url, OpenOptions { max_connections: 2 }).await?;
    Ok(Services::new(store.into_dyn(), Arc::new(SystemClock)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://lettermint.sqlite"),
            Some("lettermint.sqlite")
        );
        assert_eq!(
            sqlite_path("sqlite:/var/lib/x.db?mode=rwc"),
            Some("/var/lib/x.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }
}
