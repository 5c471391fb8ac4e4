//! How this store holds instants, and the shared row types with them.

use lettermint_core::Error;
use lettermint_store_sql::decode::corrupt;
pub(crate) use lettermint_store_sql::decode::to_json;
use time::OffsetDateTime;

/// What a NULL instant sorts as: before every stored instant.
pub(crate) const LOWEST_INSTANT: &str = "-9223372036854775808";

/// Stored form of an instant: microseconds since the Unix epoch.
pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Stored form of an optional instant.
pub(crate) fn opt_micros(at: Option<OffsetDateTime>) -> Option<i64> {
    at.map(micros)
}

/// An instant from its stored form.
pub(crate) fn ts(micros: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| corrupt("timestamp", e))
}

/// How SQLite spells what the shared statements leave to the dialect.
#[derive(Debug)]
pub(crate) struct SqliteDialect;

impl lettermint_store_sql::dialect::Dialect for SqliteDialect {
    const LOWEST_INSTANT: &'static str = LOWEST_INSTANT;
    const NAME_CONTAINS_2: &'static str = "($2 IS NULL OR instr(lower(name), lower($2)) > 0)";
}

/// The shared row types, with instants as this store holds them.
pub(crate) type TeamRow = lettermint_store_sql::rows::TeamRow<i64>;
pub(crate) type ProjectRow = lettermint_store_sql::rows::ProjectRow<i64>;
pub(crate) type RouteRow = lettermint_store_sql::rows::RouteRow<i64>;
pub(crate) type LogRow = lettermint_store_sql::rows::LogRow<i64>;
pub(crate) type MessageRow = lettermint_store_sql::rows::MessageRow<i64>;
