use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::error::Result;
use crate::repo::UsageRepository;
use crate::usage::{UsageBatch, UsageRecord};

/// Usage bookkeeping: the batched write-behind of "last used" and the token logs.
#[derive(Debug, Clone)]
pub struct UsageService {
    usage: Arc<dyn UsageRepository>,
    clock: Arc<dyn Clock>,
}

impl UsageService {
    /// Wires the service.
    pub fn new(usage: Arc<dyn UsageRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { usage, clock }
    }

    /// Writes a batch of usage records in one store transaction. Nothing is written for an
    /// empty batch.
    pub async fn flush(&self, records: Vec<UsageRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.usage
            .record_usage(&UsageBatch::from_records(records))
            .await
    }

    /// Deletes log entries older than `retention`; how many were deleted.
    pub async fn prune_logs(&self, retention: Duration) -> Result<u64> {
        self.usage
            .prune_token_logs(self.clock.now() - retention)
            .await
    }
}
