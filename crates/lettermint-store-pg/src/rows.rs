//! How this store holds instants, and the shared row types with them.

pub(crate) use lettermint_store_sql::decode::to_json;
use time::OffsetDateTime;

/// What a NULL instant sorts as: before every stored instant.
pub(crate) const LOWEST_INSTANT: &str = "'-infinity'::timestamptz";

/// How PostgreSQL spells what the shared statements leave to the dialect.
#[derive(Debug)]
pub(crate) struct PgDialect;

impl lettermint_store_sql::dialect::Dialect for PgDialect {
    const LOWEST_INSTANT: &'static str = LOWEST_INSTANT;
    const NAME_CONTAINS_2: &'static str =
        "($2::text IS NULL OR strpos(lower(name), lower($2)) > 0)";
}

/// The shared row types, with instants as this store holds them.
pub(crate) type TeamRow = lettermint_store_sql::rows::TeamRow<OffsetDateTime>;
pub(crate) type ProjectRow = lettermint_store_sql::rows::ProjectRow<OffsetDateTime>;
pub(crate) type RouteRow = lettermint_store_sql::rows::RouteRow<OffsetDateTime>;
pub(crate) type LogRow = lettermint_store_sql::rows::LogRow<OffsetDateTime>;
pub(crate) type MessageRow = lettermint_store_sql::rows::MessageRow<OffsetDateTime>;
