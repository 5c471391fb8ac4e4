//! The delivery loop: claim due messages, relay each, settle each.

use std::sync::Arc;
use std::time::Duration;

use lettermint_core::repo::DeliveryRepository;
use lettermint_core::{Claim, Clock, FailureKind, Reply, RetryPolicy, Settlement};
use rand::RngExt as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::mime;
use crate::relay::{Relay, RelayError};

/// How a worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Most messages claimed at once.
    pub batch: u32,
    /// How long a claim lasts: a message not settled by then is claimed again (by any worker).
    /// Keep it well above the smarthost timeout.
    pub lease: Duration,
    /// How long to wait before looking again when nothing was due.
    pub idle_poll: Duration,
    /// Retry schedule and give-up age.
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            lease: Duration::from_secs(300),
            idle_poll: Duration::from_millis(500),
            retry: RetryPolicy::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages claimed.
    pub claimed: usize,
    /// Delivered.
    pub delivered: usize,
    /// Deferred for a later attempt.
    pub deferred: usize,
    /// Failed for good.
    pub failed: usize,
    /// Settlements the store refused because the lease had run out (another worker owns the
    /// message now), or could not record.
    pub unsettled: usize,
}

/// Delivers due messages through a [`Relay`].
#[derive(Debug, Clone)]
pub struct Worker {
    store: Arc<dyn DeliveryRepository>,
    relay: Arc<dyn Relay>,
    clock: Arc<dyn Clock>,
    config: WorkerConfig,
}

impl Worker {
    /// A worker.
    pub fn new(
        store: Arc<dyn DeliveryRepository>,
        relay: Arc<dyn Relay>,
        clock: Arc<dyn Clock>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            relay,
            clock,
            config,
        }
    }

    /// Claims up to `limit` due messages under a new lease.
    async fn claim(&self, limit: u32) -> lettermint_core::Result<Vec<Claim>> {
        let now = self.clock.now();
        let lease_until =
            now + time::Duration::try_from(self.config.lease).unwrap_or(time::Duration::minutes(5));
        let claims = self.store.claim_due(now, lease_until, limit).await?;
        metrics::counter!("lettermint_delivery_claimed_total").increment(claims.len() as u64);
        Ok(claims)
    }

    /// Claims one batch and delivers it, all messages of the batch concurrently; returns when
    /// every claimed message is settled (or its settlement failed, leaving it to its lease).
    pub async fn pass(&self) -> lettermint_core::Result<Pass> {
        let claims = self.claim(self.config.batch).await?;
        let mut pass = Pass {
            claimed: claims.len(),
            ..Pass::default()
        };
        let mut tasks = JoinSet::new();
        for claim in claims {
            let worker = self.clone();
            tasks.spawn(async move { worker.deliver(claim).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Some(Settlement::Delivered(_))) => pass.delivered += 1,
                Ok(Some(Settlement::Deferred { .. })) => pass.deferred += 1,
                Ok(Some(Settlement::Failed(_))) => pass.failed += 1,
                Ok(None) | Err(_) => pass.unsettled += 1,
            }
        }
        Ok(pass)
    }

    /// One attempt: relay, then settle. `None` when the settlement was not recorded.
    async fn deliver(&self, claim: Claim) -> Option<Settlement> {
        let message = &claim.message;
        let outcome = match mime::render(message)
            .and_then(|data| mime::envelope(message).map(|envelope| (envelope, data)))
        {
            Ok((envelope, data)) => self.relay.relay(&envelope, &data).await,
            Err(e) => Err(RelayError {
                kind: FailureKind::Permanent,
                reply: Reply {
                    code: None,
                    text: e.to_string(),
                },
            }),
        };
        let now = self.clock.now();
        let settlement = match outcome {
            Ok(reply) => Settlement::Delivered(reply),
            Err(RelayError { kind, reply }) => {
                let jitter = rand::rng().random_range(0.5..=1.0);
                self.config
                    .retry
                    .settle_failure(message, kind, reply, now, jitter)
            }
        };
        let status = settlement.status().as_str();
        metrics::counter!("lettermint_delivery_attempts_total", "status" => status).increment(1);
        match self
            .store
            .settle(message.id, claim.lease, &settlement, now)
            .await
        {
            Ok(true) => {
                tracing::info!(
                    message_id = %message.id,
                    attempt = message.delivery.attempts,
                    status,
                    reply = %settlement.reply().to_line(),
                    "delivery attempt settled"
                );
                Some(settlement)
            }
            Ok(false) => {
                tracing::warn!(
                    message_id = %message.id,
                    "lease ran out before the attempt settled; the message was claimed again"
                );
                None
            }
            Err(error) => {
                tracing::error!(
                    message_id = %message.id,
                    %error,
                    "cannot record the attempt; the message is attempted again when its lease ends"
                );
                None
            }
        }
    }

    /// Delivers until `shutdown` turns true, then finishes the attempts in hand and returns.
    ///
    /// Up to `batch` attempts are in flight; once half of them have ended, the next claim tops
    /// the set up, so the relay never waits for the slowest message of a batch. Store errors
    /// are logged and retried after the idle interval.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let batch = usize::try_from(self.config.batch.max(1)).unwrap_or(usize::MAX);
        let mut in_flight = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let mut idle = false;
            let room = batch.saturating_sub(in_flight.len());
            if room * 2 >= batch {
                match self.claim(u32::try_from(room).unwrap_or(u32::MAX)).await {
                    Ok(claims) => {
                        idle = claims.is_empty();
                        for claim in claims {
                            let worker = self.clone();
                            in_flight.spawn(async move { worker.deliver(claim).await });
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot claim messages");
                        idle = true;
                    }
                }
            }
            if in_flight.is_empty() && idle {
                tokio::select! {
                    () = tokio::time::sleep(self.config.idle_poll) => {}
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                _ = in_flight.join_next(), if !in_flight.is_empty() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests;
