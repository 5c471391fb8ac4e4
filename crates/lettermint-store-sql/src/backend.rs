//! What a store supplies to the shared repositories.

use std::future::Future;

use lettermint_core::{Result, Submission, SubmissionOutcome, UsageBatch};
use sqlx::Pool;
use time::OffsetDateTime;

use crate::dialect::Dialect;

/// The sqlx database of a backend.
pub type Db<S> = <<S as Backend>::Dialect as Dialect>::Db;

/// A store as the shared repositories see it: its dialect, which pool serves reads and which
/// writes, and the two operations each store does its own way because each is fastest there
/// in its own way (the send path's enqueue and the usage flush).
pub trait Backend: Send + Sync {
    /// How the store spells what the dialects do differently.
    type Dialect: Dialect;

    /// The pool for reads.
    fn reader(&self) -> &Pool<Db<Self>>;

    /// The pool for writes, and for reads that must see the latest write.
    fn writer(&self) -> &Pool<Db<Self>>;

    /// See `lettermint_core::repo::MessageRepository::enqueue`.
    fn enqueue(
        &self,
        submissions: &[Submission],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<SubmissionOutcome>>> + Send;

    /// See `lettermint_core::repo::UsageRepository::record_usage`.
    fn record_usage(&self, batch: &UsageBatch) -> impl Future<Output = Result<()>> + Send;
}
