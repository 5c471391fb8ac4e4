//! How SQLite does what the dialects do differently.

use lettermint_core::Error;
use lettermint_store_sql::decode::corrupt;
use lettermint_store_sql::dialect::Dialect;
use sqlx::Sqlite;
use sqlx::sqlite::SqliteQueryResult;
use time::OffsetDateTime;

/// Stored form of an instant: microseconds since the Unix epoch.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// SQLite's dialect: instants are integer microseconds since the Unix epoch.
#[derive(Debug)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Instant = i64;

    const LOWEST_INSTANT: &'static str = "-9223372036854775808";
    const NAME_CONTAINS_2: &'static str = "($2 IS NULL OR instr(lower(name), lower($2)) > 0)";
    const TEXT_CAST: &'static str = "";
    const INSTANT_CAST: &'static str = "";
    // Takes the write lock at once: a transaction that reads and then writes never meets
    // another writer in between.
    const BEGIN_WRITE: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn instant(at: OffsetDateTime) -> i64 {
        micros(at)
    }

    fn read_instant(micros: i64) -> Result<OffsetDateTime, Error> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map_err(|e| corrupt("timestamp", e))
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    // One writer: this is ordered against every enqueue (`BEGIN IMMEDIATE`).
    fn replace_secret(table: &str) -> String {
        format!(
            "UPDATE {table} SET digest = $2, hint = $3, updated_at = $4 \
             WHERE id = $1 AND revoked_at IS NULL"
        )
    }

    fn revoke(table: &str) -> String {
        format!("UPDATE {table} SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
    }
}
