//! How PostgreSQL does what the dialects do differently.

use lettermint_core::Error;
use lettermint_store_sql::dialect::Dialect;
use sqlx::Postgres;
use sqlx::postgres::PgQueryResult;
use time::OffsetDateTime;

/// PostgreSQL's dialect: instants are `timestamptz`, bound and read as they are.
#[derive(Debug)]
pub struct PgDialect;

impl Dialect for PgDialect {
    type Db = Postgres;
    type Instant = OffsetDateTime;

    const LOWEST_INSTANT: &'static str = "'-infinity'::timestamptz";
    const NAME_CONTAINS_2: &'static str =
        "($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)";
    const TEXT_CAST: &'static str = "::text";
    const INSTANT_CAST: &'static str = "::timestamptz";
    const BEGIN_WRITE: Option<&'static str> = None;

    fn instant(at: OffsetDateTime) -> OffsetDateTime {
        at
    }

    fn read_instant(stored: OffsetDateTime) -> Result<OffsetDateTime, Error> {
        Ok(stored)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    // FOR UPDATE, like revoke: ordered against every enqueue holding the token.
    fn replace_secret(table: &str) -> String {
        format!(
            "WITH locked AS (SELECT id FROM {table} WHERE id = $1 AND revoked_at IS NULL \
             FOR UPDATE) \
             UPDATE {table} t SET digest = $2, hint = $3, updated_at = $4 \
             FROM locked WHERE t.id = locked.id"
        )
    }

    // FOR UPDATE: waits for every enqueue holding the token (FOR KEY SHARE) to commit.
    fn revoke(table: &str) -> String {
        format!(
            "WITH locked AS (SELECT id FROM {table} WHERE id = $1 AND revoked_at IS NULL \
             FOR UPDATE) \
             UPDATE {table} t SET revoked_at = $2 FROM locked WHERE t.id = locked.id"
        )
    }
}
