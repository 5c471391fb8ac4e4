//! What a store supplies to the shared repositories.

use sqlx::{Database, Pool};

use crate::dialect::Dialect;

/// The sqlx database of a backend.
pub type Db<S> = <<S as Backend>::Dialect as Dialect>::Db;

/// A store as the shared repositories see it: its dialect and its pools.
pub trait Backend: Send + Sync {
    /// How the store spells what the dialects do differently.
    type Dialect: Dialect;

    /// The store's connections.
    fn pools(&self) -> &Pools<Db<Self>>;
}

/// A store's connections: a pool for reads and a pool for writes (and for reads that must see
/// the latest write), which may be one pool.
#[derive(Debug)]
pub struct Pools<DB: Database> {
    reader: Pool<DB>,
    writer: Pool<DB>,
}

impl<DB: Database> Clone for Pools<DB> {
    fn clone(&self) -> Self {
        Self {
            reader: self.reader.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl<DB: Database> Pools<DB> {
    /// One pool for reads and writes.
    #[must_use]
    pub fn one(pool: Pool<DB>) -> Self {
        Self {
            reader: pool.clone(),
            writer: pool,
        }
    }

    /// Reads on `reader`, writes on `writer`.
    #[must_use]
    pub fn split(reader: Pool<DB>, writer: Pool<DB>) -> Self {
        Self { reader, writer }
    }

    /// The pool for reads.
    #[must_use]
    pub fn reader(&self) -> &Pool<DB> {
        &self.reader
    }

    /// The pool for writes.
    #[must_use]
    pub fn writer(&self) -> &Pool<DB> {
        &self.writer
    }

    /// Closes every connection (one pool serving both is closed twice, which is harmless).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
