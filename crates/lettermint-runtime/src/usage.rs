//! Usage written behind: requests queue a record and move on; a task flushes the queue in
//! batches at least every second, and on shutdown. When the queue is full the record is dropped
//! and counted (`lettermint_usage_records_dropped_total`): bookkeeping never blocks or fails a
//! send.

use std::time::Duration;

use lettermint_core::{UsageRecord, UsageService};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records per store transaction: small enough that a flush holds locks (SQLite's single
/// writer) only briefly.
const MAX_BATCH: usize = 500;

/// Queues usage records.
#[derive(Debug, Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageRecord>,
}

impl UsageRecorder {
    /// Starts the flusher; the handle finishes after every sender is dropped and the rest of
    /// the queue is flushed.
    pub fn start(usage: UsageService, capacity: usize) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = tokio::spawn(flush_loop(rx, usage));
        (Self { tx }, handle)
    }

    /// Queues a record without waiting; drops it (and counts the drop) when the queue is full.
    pub fn record(&self, record: UsageRecord) {
        if self.tx.try_send(record).is_err() {
            metrics::counter!("lettermint_usage_records_dropped_total").increment(1);
        }
    }
}

async fn flush_loop(mut rx: mpsc::Receiver<UsageRecord>, usage: UsageService) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        let open = tokio::select! {
            received = rx.recv() => match received {
                Some(record) => {
                    batch.push(record);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                    batch.len() < MAX_BATCH
                        || { flush(&usage, &mut batch).await; true }
                }
                None => false,
            },
            _ = tick.tick() => {
                flush(&usage, &mut batch).await;
                true
            }
        };
        if !open {
            flush(&usage, &mut batch).await;
            return;
        }
    }
}

async fn flush(usage: &UsageService, batch: &mut Vec<UsageRecord>) {
    if batch.is_empty() {
        return;
    }
    let records = std::mem::take(batch);
    let count = records.len();
    if let Err(err) = usage.flush(records).await {
        tracing::warn!(error = %err, records = count, "could not write usage; dropped");
        metrics::counter!("lettermint_usage_records_dropped_total").increment(count as u64);
    }
}
