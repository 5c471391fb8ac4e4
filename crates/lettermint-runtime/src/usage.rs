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

    /// Queues a record without waiting; when the queue is full the record is dropped (and the
    /// drop counted) and `false` is returned.
    pub fn record(&self, record: UsageRecord) -> bool {
        let queued = self.tx.try_send(record).is_ok();
        if !queued {
            metrics::counter!("lettermint_usage_records_dropped_total").increment(1);
        }
        queued
    }
}

async fn flush_loop(mut rx: mpsc::Receiver<UsageRecord>, usage: UsageService) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(record) => {
                    batch.push(record);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                    if batch.len() >= MAX_BATCH {
                        flush(&usage, &mut batch).await;
                    }
                }
                // Every sender is gone: write what is left and stop.
                None => {
                    flush(&usage, &mut batch).await;
                    return;
                }
            },
            _ = tick.tick() => flush(&usage, &mut batch).await,
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use lettermint_core::repo::MockUsageRepository;
    use lettermint_core::{Action, Channel, Outcome, SystemClock, TokenId};

    use super::*;

    fn record() -> UsageRecord {
        UsageRecord {
            credential: None,
            token_id: TokenId::new(),
            at: time::OffsetDateTime::now_utc(),
            ip: None,
            via: Channel::Api,
            action: Action::Send,
            outcome: Outcome::Accepted,
            status: 202,
            message_ids: Vec::new(),
            user_agent: None,
        }
    }

    /// On a single-threaded runtime the flusher cannot run while this test records, as if the
    /// store were stuck: recording still returns at once, and what does not fit is dropped.
    #[tokio::test]
    async fn recording_never_waits_and_a_full_queue_drops() {
        let usage = UsageService::new(Arc::new(MockUsageRepository::new()), Arc::new(SystemClock));
        let (recorder, _flusher) = UsageRecorder::start(usage, 8);
        let start = Instant::now();
        let queued = (0..1_000).filter(|_| recorder.record(record())).count();
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "recording waited"
        );
        assert_eq!(queued, 8);
    }

    #[tokio::test]
    async fn what_is_queued_is_written_when_the_last_sender_goes() {
        let written = Arc::new(Mutex::new(0usize));
        let sink = written.clone();
        let mut repo = MockUsageRepository::new();
        repo.expect_record_usage().returning(move |batch| {
            *sink.lock().unwrap() += batch.entries.len();
            Ok(())
        });
        let usage = UsageService::new(Arc::new(repo), Arc::new(SystemClock));
        let (recorder, flusher) = UsageRecorder::start(usage, 10_000);
        for _ in 0..1_234 {
            assert!(recorder.record(record()));
        }
        drop(recorder);
        flusher.await.unwrap();
        assert_eq!(*written.lock().unwrap(), 1_234);
    }
}
