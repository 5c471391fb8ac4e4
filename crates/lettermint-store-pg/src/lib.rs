//! PostgreSQL implementation of the `lettermint-core` repository traits.
//!
//! All SQL for PostgreSQL lives in this crate. Migrations are plain SQL under
//! `migrations/postgres/`, embedded at build time and applied by [`PgStore::connect`] (under
//! PostgreSQL's advisory lock, so several processes may start at once).

#![warn(missing_docs)]

mod dialect;
mod store;

pub use store::{PgConfig, PgStore};
