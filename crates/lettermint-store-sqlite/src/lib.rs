//! SQLite implementation of the `lettermint-core` repository traits: the embedded default, for
//! one machine with no database server to run.
//!
//! All SQL for SQLite lives in this crate. Migrations are plain SQL under `migrations/sqlite/`,
//! embedded at build time and applied by [`SqliteStore::open`].

#![warn(missing_docs)]

mod dialect;
mod store;

pub use store::{SqliteConfig, SqliteStore};
