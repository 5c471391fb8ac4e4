//! What the two SQL stores share.
//!
//! `lettermint-store-sqlite` and `lettermint-store-pg` speak the same schema in two dialects.
//! Everything that does not depend on the dialect lives here once: the SQL of both token kinds
//! ([`tokens`]), the mapping of stored values into domain types ([`decode`]), and keyset
//! pagination ([`keyset`]). What differs — how an instant is stored, row locks, bulk inserts,
//! connection handling — stays in the store crates.

#![warn(missing_docs)]

pub mod decode;
pub mod dialect;
pub mod keyset;
pub mod projects;
pub mod rows;
pub mod tokens;
