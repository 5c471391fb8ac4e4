//! The delivery loop: claim due messages, relay each, settle each.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use lettermint_core::repo::DeliveryRepository;
use lettermint_core::{Claim, Clock, Reply, RetryPolicy, Settle, Settlement};
use rand::RngExt as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::mime;
use crate::relay::{Reached, Relay, RelayError};

/// How a worker paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Most attempts in flight, and most messages claimed at once; half a batch more is
    /// claimed ahead of those in flight (see [`Worker::run`]).
    pub batch: u32,
    /// How long a claim lasts: a message not settled by then is claimed again (by any worker).
    /// Keep it well above the smarthost timeout.
    pub lease: Duration,
    /// How long to wait before looking again when nothing was due.
    pub idle_poll: Duration,
    /// Retry schedule and give-up age.
    pub retry: RetryPolicy,
    /// Most attempts this worker starts per second, on average (`None`: as many as the store
    /// and the smarthost allow). For smarthosts with a sending quota, and to bound what a
    /// worker takes from a machine it shares.
    pub max_rate: Option<std::num::NonZeroU32>,
    /// A message taken over from an attempt that never recorded its outcome (its worker
    /// stopped) is attempted alone, with nothing else in flight in this worker; once this many
    /// of its attempts alone were interrupted too, it fails without another try, since it is
    /// then most likely what stops workers. At least 1.
    pub crash_limit: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 64,
            lease: Duration::from_secs(300),
            idle_poll: Duration::from_millis(500),
            retry: RetryPolicy::default(),
            max_rate: None,
            crash_limit: 3,
        }
    }
}

/// A token bucket that spaces attempt starts to a rate. Claims stay as large as without it
/// (up to half a batch, fewer when the rate is below that per second), so pacing costs the
/// store no extra round trips.
#[derive(Debug)]
struct Pacer {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Pacer {
    fn new(rate: std::num::NonZeroU32, half_batch: usize) -> Self {
        let per_second = f64::from(rate.get());
        let capacity = (half_batch as f64).min(per_second).max(1.0);
        Self {
            per_second,
            capacity,
            tokens: capacity,
            at: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.at = now;
    }

    /// Takes what a claim of up to `room` attempts may start now: all of `room`, or the whole
    /// bucket when `room` is larger, or nothing until the bucket holds that much.
    fn take(&mut self, room: usize) -> usize {
        self.refill();
        let want = (room as f64).min(self.capacity);
        if self.tokens < want {
            return 0;
        }
        self.tokens -= want;
        want as usize
    }

    /// Returns what a claim took and did not use (fewer messages were due).
    fn give_back(&mut self, unused: usize) {
        self.tokens = (self.tokens + unused as f64).min(self.capacity);
    }

    /// When a claim of up to `room` attempts may start.
    fn ready_at(&self, room: usize) -> tokio::time::Instant {
        let want = (room as f64).min(self.capacity);
        let missing = (want - self.tokens).max(0.0);
        // Rounded up a millisecond, so that a token short by a rounding error is not waited
        // for with a zero sleep.
        self.at + Duration::from_secs_f64(missing / self.per_second) + Duration::from_millis(1)
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

    /// When a lease taken now ends.
    fn lease_until(&self, now: time::OffsetDateTime) -> time::OffsetDateTime {
        time::Duration::try_from(self.config.lease)
            .ok()
            .and_then(|lease| now.checked_add(lease))
            .unwrap_or(now + time::Duration::minutes(5))
    }

    /// Claims up to `limit` due messages under a new lease.
    async fn claim(&self, limit: u32) -> lettermint_core::Result<Vec<Claim>> {
        let now = self.clock.now();
        let claims = self
            .store
            .claim_due(now, self.lease_until(now), limit)
            .await?;
        metrics::counter!("lettermint_delivery_claimed_total").increment(claims.len() as u64);
        Ok(claims)
    }

    /// Claims one batch, relays its messages concurrently (those taken over from an
    /// interrupted attempt one at a time afterwards, see [`WorkerConfig::crash_limit`]), and
    /// records their outcomes.
    pub async fn pass(&self) -> lettermint_core::Result<Pass> {
        let claims = self.claim(self.config.batch).await?;
        let mut pass = Pass {
            claimed: claims.len(),
            ..Pass::default()
        };
        let (alone, claims): (Vec<Claim>, Vec<Claim>) = claims.into_iter().partition(taken_over);
        let mut tasks = JoinSet::new();
        for claim in claims {
            let worker = self.clone();
            tasks.spawn(async move { worker.attempt(claim).await });
        }
        let mut ended = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(attempt) => ended.push(attempt),
                Err(_) => pass.unsettled += 1,
            }
        }
        pass.add(&self.record(ended).await);
        for claim in alone {
            pass.add(&self.attempt_alone(claim).await);
        }
        Ok(pass)
    }

    /// One attempt of a message taken over from an interrupted attempt, made while nothing
    /// else is in flight in this worker (the caller sees to it) and recorded before it
    /// returns; or, past [`WorkerConfig::crash_limit`] interrupted attempts alone, no attempt
    /// and a failure.
    async fn attempt_alone(&self, claim: Claim) -> Pass {
        let message = claim.message.id;
        let crashes = claim.message.delivery.interrupted_alone;
        if crashes >= self.config.crash_limit {
            tracing::error!(
                message_id = %message,
                interrupted_alone = crashes,
                "the message's attempts alone were all interrupted (the worker stopped); it fails \
                 without another try"
            );
            metrics::counter!("lettermint_delivery_attempts_total", "status" => "failed")
                .increment(1);
            let settlement = Settlement::Failed(Reply {
                code: None,
                text: format!(
                    "not attempted again: {crashes} attempts of this message, each made with no \
                     other message in flight, were interrupted (the worker stopped during each); \
                     the message may be what stops workers"
                ),
            });
            let attempt = Attempt {
                attempts: claim.message.delivery.attempts,
                settle: Settle {
                    message,
                    lease: claim.lease,
                    settlement,
                    delivered_to: None,
                },
            };
            return self.record(vec![attempt]).await;
        }
        let lease_until = self.lease_until(self.clock.now());
        match self
            .store
            .begin_alone(message, claim.lease, lease_until)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(message_id = %message, "not attempted: the lease ran out and the message was claimed again");
                return Pass::one_unsettled();
            }
            Err(error) => {
                tracing::error!(message_id = %message, %error, "cannot begin an attempt alone; the message is attempted again when its lease ends");
                return Pass::one_unsettled();
            }
        }
        tracing::warn!(
            message_id = %message,
            interrupted = claim.message.delivery.interrupted,
            interrupted_alone = crashes,
            "attempting alone a message whose last attempt was interrupted"
        );
        let worker = self.clone();
        let attempted = tokio::spawn(async move { worker.attempt(claim).await }).await;
        match log_abnormal_end(Some(attempted), "an attempt alone") {
            Some(attempt) => self.record(vec![attempt]).await,
            None => Pass::one_unsettled(),
        }
    }

    /// One attempt: render, relay, and decide what it comes to (not yet recorded).
    async fn attempt(&self, claim: Claim) -> Attempt {
        let message = &claim.message;
        // Recipients the message reached in this attempt, known even if the attempt is cut off
        // or panics after some of them.
        let reached = Reached::default();
        // A panic while building or relaying (a bug) ends the attempt as a transient failure,
        // so that the message is still settled, retried and in the end given up on.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mime::render(message)
                .and_then(|data| mime::pending_envelope(message).map(|envelope| (envelope, data)))
        }));
        let outcome = match built {
            // Earlier attempts reached every recipient (only a hand-edited row gets here: the
            // attempt that reaches the last one records the message delivered).
            Ok(Ok((None, _))) => Ok(Reply {
                code: None,
                text: "every recipient already has the message".to_owned(),
            }),
            // An attempt must end (and be recorded) inside its lease, or another worker could
            // claim the message and send it alongside this one.
            Ok(Ok((Some(envelope), data))) => {
                let limit = self.config.lease / 2;
                let relay = self.relay.clone();
                let reached = reached.clone();
                let relayed = tokio::spawn(async move {
                    tokio::time::timeout(limit, relay.relay_noting(&envelope, &data, &reached))
                        .await
                });
                match relayed.await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(RelayError::transient(format!(
                        "the attempt did not end within half the lease ({} s)",
                        limit.as_secs()
                    ))),
                    Err(e) => Err(RelayError::transient(format!(
                        "the attempt ended unexpectedly: {e}"
                    ))),
                }
            }
            Ok(Err(e)) => Err(RelayError::permanent(e.to_string())),
            Err(_) => Err(RelayError::transient(
                "building the message failed unexpectedly (a panic; see the worker's log)",
            )),
        };
        let (settlement, delivered_to) = match outcome {
            Ok(reply) => (Settlement::Delivered(reply), None),
            Err(RelayError { kind, reply }) => {
                let jitter = rand::rng().random_range(0.5..=1.0);
                let settlement = self.config.retry.settle_failure(
                    message,
                    kind,
                    reply,
                    self.clock.now(),
                    jitter,
                );
                // Recipients reached now join those reached before, for the next attempt.
                let delivered_to = (!reached.is_empty()).then(|| {
                    let mut all = message.delivery.delivered_to.clone();
                    all.extend(reached.to_vec());
                    all
                });
                (settlement, delivered_to)
            }
        };
        metrics::counter!("lettermint_delivery_attempts_total", "status" => settlement.status().as_str())
            .increment(1);
        Attempt {
            attempts: message.delivery.attempts,
            settle: Settle {
                message: message.id,
                lease: claim.lease,
                settlement,
                delivered_to,
            },
        }
    }

    /// Starts attempts of messages claimed ahead while fewer than `batch` are in flight.
    fn start_ready(
        &self,
        ready: &mut VecDeque<Claim>,
        in_flight: &mut JoinSet<Attempt>,
        batch: usize,
    ) {
        while in_flight.len() < batch
            && let Some(claim) = ready.pop_front()
        {
            let worker = self.clone();
            in_flight.spawn(async move { worker.attempt(claim).await });
        }
    }

    /// Takes in what the claim under way answered (`asked` messages asked for): its messages
    /// wait for room in flight, those taken over from an interrupted attempt for their turn
    /// alone. Answers the instant before which no claim follows: after a claim that found
    /// nothing due or failed, the idle interval.
    fn take_claimed(
        &self,
        done: Result<lettermint_core::Result<Vec<Claim>>, tokio::task::JoinError>,
        asked: usize,
        pacer: Option<&mut Pacer>,
        ready: &mut VecDeque<Claim>,
        alone: &mut VecDeque<Claim>,
    ) -> Option<tokio::time::Instant> {
        let claims = match done {
            Ok(Ok(claims)) => claims,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot claim messages");
                Vec::new()
            }
            Err(error) => {
                tracing::error!(%error, "a claim task ended abnormally; what it claimed is retried when its lease ends");
                Vec::new()
            }
        };
        if let Some(pacer) = pacer {
            pacer.give_back(asked.saturating_sub(claims.len()));
        }
        let idle = claims.is_empty();
        for claim in claims {
            if taken_over(&claim) {
                alone.push_back(claim);
            } else {
                ready.push_back(claim);
            }
        }
        idle.then(|| tokio::time::Instant::now() + self.config.idle_poll)
    }

    /// Records the ended attempts beside the loop (the caller keeps one recording at a time).
    fn start_recording(&self, recording: &mut JoinSet<Pass>, ended: &mut Vec<Attempt>) {
        let worker = self.clone();
        let attempts = std::mem::take(ended);
        recording.spawn(async move { worker.record(attempts).await });
    }

    /// Records ended attempts in one store transaction; what was recorded.
    async fn record(&self, ended: Vec<Attempt>) -> Pass {
        let mut pass = Pass::default();
        if ended.is_empty() {
            return pass;
        }
        let (attempts, settles): (Vec<u32>, Vec<Settle>) =
            ended.into_iter().map(|a| (a.attempts, a.settle)).unzip();
        // A failed commit is tried again a few times (a settlement is conditional on its
        // lease, so one that did commit before its answer was lost is not applied twice):
        // giving up at once would send every delivered message of the group again once
        // its lease ended.
        let mut result = self.store.settle(&settles, self.clock.now()).await;
        for delay in SETTLE_RETRIES {
            let Err(error) = &result else { break };
            tracing::warn!(%error, attempts = settles.len(), "cannot record attempts; trying again");
            tokio::time::sleep(delay).await;
            result = self.store.settle(&settles, self.clock.now()).await;
        }
        match result {
            Ok(recorded) => {
                for ((settle, attempt), recorded) in settles.iter().zip(attempts).zip(recorded) {
                    if !recorded {
                        tracing::warn!(
                            message_id = %settle.message,
                            "attempt not recorded: its lease is no longer the message's (it ran \
                             out and the message was claimed again, or a try of this recording \
                             whose answer was lost had recorded it)"
                        );
                        pass.unsettled += 1;
                        continue;
                    }
                    tracing::info!(
                        message_id = %settle.message,
                        attempt,
                        status = settle.settlement.status().as_str(),
                        reply = %settle.settlement.reply().to_line(),
                        "delivery attempt settled"
                    );
                    match settle.settlement {
                        Settlement::Delivered(_) => pass.delivered += 1,
                        Settlement::Deferred { .. } => pass.deferred += 1,
                        Settlement::Failed(_) => pass.failed += 1,
                    }
                }
            }
            Err(error) => {
                tracing::error!(
                    %error,
                    attempts = settles.len(),
                    "cannot record attempts; their messages are attempted again when their leases end"
                );
                pass.unsettled += settles.len();
            }
        }
        pass
    }

    /// Delivers until `shutdown` turns true, then finishes the attempts in hand, records them
    /// and returns.
    ///
    /// Up to `batch` attempts are in flight, and up to half a batch more is claimed ahead and
    /// waits to start: a claim asks for all the room there is (at most a batch, or what the
    /// pacer allows) as soon as half a batch fits in flight and waiting together, so the next
    /// claim runs while the relay still has a batch of attempts, and the relay never waits for
    /// the slowest message of a batch. One claim at a time runs beside the loop: while it does,
    /// ended attempts are taken in and recorded and claimed messages start as room frees, so a
    /// claim slower than the relay leaves the next one the room freed meanwhile. A claim that finds
    /// nothing due is not repeated for the idle interval. Ended attempts are recorded together,
    /// in one transaction, when half a batch has ended, when nothing else is in flight, or
    /// [`RECORD_WITHIN`] after the oldest ended. One recording at a time runs beside the loop,
    /// so claims and relaying go on while it commits. Store errors are logged and retried after
    /// the idle interval.
    ///
    /// Claimed messages taken over from an interrupted attempt wait until everything in flight
    /// has ended and been recorded, and are then attempted one at a time, each recorded before
    /// the next, with no claim meanwhile (see [`WorkerConfig::crash_limit`]). Those not yet
    /// attempted at a stop are handed back, their leases ended at once; messages claimed ahead
    /// (and by a claim under way at the stop) are attempted before the stop returns, as those
    /// in flight.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let batch = usize::try_from(self.config.batch.max(1)).unwrap_or(usize::MAX);
        let half = batch.div_ceil(2);
        let mut pacer = self.config.max_rate.map(|rate| Pacer::new(rate, half));
        let mut in_flight = JoinSet::new();
        // Claimed ahead, waiting for room in flight.
        let mut ready: VecDeque<Claim> = VecDeque::new();
        // The claim under way beside the loop, if any (at most one: no other starts before it
        // is taken in), and how many messages it asked for.
        let mut claiming: JoinSet<lettermint_core::Result<Vec<Claim>>> = JoinSet::new();
        let mut asked = 0;
        // After a claim that found nothing due: no other before this instant.
        let mut claim_after: Option<tokio::time::Instant> = None;
        let mut ended: Vec<Attempt> = Vec::new();
        let mut oldest_ended = tokio::time::Instant::now();
        // The recording under way, if any (at most one).
        let mut recording: JoinSet<Pass> = JoinSet::new();
        // Claimed messages taken over from interrupted attempts, to be attempted alone.
        let mut alone: VecDeque<Claim> = VecDeque::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let overdue = !ended.is_empty() && oldest_ended.elapsed() >= RECORD_WITHIN;
            if recording.is_empty()
                && (ended.len() * 2 >= batch
                    || (!ended.is_empty() && in_flight.is_empty())
                    || overdue)
            {
                self.start_recording(&mut recording, &mut ended);
            }
            self.start_ready(&mut ready, &mut in_flight, batch);
            let idle = claim_after.is_some_and(|at| tokio::time::Instant::now() < at);
            // When the pacer holds the next claim back: the instant it allows it.
            let mut paced_until = None;
            let room = (batch + half)
                .saturating_sub(in_flight.len() + ready.len())
                .min(batch);
            // A batch of ended attempts waiting behind a slow recording: claim no more (their
            // leases are running) until it commits.
            let held = !recording.is_empty() && ended.len() >= batch;
            if claiming.is_empty() && room >= half && !held && !idle && alone.is_empty() {
                let allowed = match &mut pacer {
                    Some(pacer) => pacer.take(room),
                    None => room,
                };
                if allowed == 0 {
                    paced_until = pacer.as_ref().map(|p| p.ready_at(room));
                } else {
                    asked = allowed;
                    let worker = self.clone();
                    let limit = u32::try_from(allowed).unwrap_or(u32::MAX);
                    claiming.spawn(async move { worker.claim(limit).await });
                }
            }
            // Taken-over messages, once nothing else is in flight, claimed or waiting to be
            // recorded.
            if in_flight.is_empty()
                && ready.is_empty()
                && claiming.is_empty()
                && ended.is_empty()
                && recording.is_empty()
                && let Some(claim) = alone.pop_front()
            {
                self.attempt_alone(claim).await;
                continue;
            }
            if in_flight.is_empty()
                && claiming.is_empty()
                && (idle || held || paced_until.is_some())
            {
                let wake = paced_until.unwrap_or_else(|| {
                    claim_after
                        .unwrap_or_else(|| tokio::time::Instant::now() + self.config.idle_poll)
                });
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    done = recording.join_next(), if !recording.is_empty() => { log_abnormal_end(done, "a recording"); }
                    changed = shutdown.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
                continue;
            }
            let record_by = oldest_ended + RECORD_WITHIN;
            tokio::select! {
                Some(done) = claiming.join_next(), if !claiming.is_empty() => {
                    let asked = std::mem::take(&mut asked);
                    claim_after = self.take_claimed(done, asked, pacer.as_mut(), &mut ready, &mut alone);
                }
                done = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Some(attempt) = log_abnormal_end(done, "an attempt") {
                        if ended.is_empty() {
                            oldest_ended = tokio::time::Instant::now();
                        }
                        ended.push(attempt);
                    }
                }
                () = tokio::time::sleep_until(record_by), if !ended.is_empty() && recording.is_empty() => {}
                done = recording.join_next(), if !recording.is_empty() => { log_abnormal_end(done, "a recording"); }
                () = tokio::time::sleep_until(paced_until.unwrap_or(record_by)), if paced_until.is_some() => {}
                // Claim again once the idle interval after a claim that found nothing is over.
                () = tokio::time::sleep_until(claim_after.unwrap_or(record_by)), if idle => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        // Stopping: no more claims. A claim under way has leased its messages: they are
        // attempted (or, taken over, handed back) as those claimed before it. Attempts in hand
        // are recorded as they end (one recording at a time, as above), not after the slowest
        // nor after the claim, so that a stop cut short by the caller leaves only the attempts
        // still in flight to be retried when their leases end.
        loop {
            if recording.is_empty() && !ended.is_empty() {
                self.start_recording(&mut recording, &mut ended);
            }
            self.start_ready(&mut ready, &mut in_flight, batch);
            if in_flight.is_empty() && recording.is_empty() && claiming.is_empty() {
                break;
            }
            tokio::select! {
                Some(done) = claiming.join_next(), if !claiming.is_empty() => {
                    self.take_claimed(done, asked, pacer.as_mut(), &mut ready, &mut alone);
                }
                done = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Some(attempt) = log_abnormal_end(done, "an attempt") {
                        ended.push(attempt);
                    }
                }
                done = recording.join_next(), if !recording.is_empty() => { log_abnormal_end(done, "a recording"); }
            }
        }
        // Taken-over messages still waiting for their turn are handed back, their leases ended
        // now, for the next claim (of any worker) to take over at once rather than when their
        // leases run out.
        let now = self.clock.now();
        for claim in alone {
            let id = claim.message.id;
            if let Err(error) = self.store.end_lease(id, claim.lease, now).await {
                tracing::warn!(message_id = %id, %error, "cannot hand a claimed message back; it is taken over when its lease ends");
            }
        }
    }
}

/// Whether a claim took its message over from an attempt that never recorded its outcome.
fn taken_over(claim: &Claim) -> bool {
    claim.message.delivery.interrupted > 0
}

/// The waits before trying a failed recording again.
const SETTLE_RETRIES: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(4),
];

/// Longest time an ended attempt waits to be recorded with others.
pub const RECORD_WITHIN: Duration = Duration::from_millis(50);

/// An attempt that has ended, before it is recorded.
#[derive(Debug)]
struct Attempt {
    /// Attempts of the message, this one included.
    attempts: u32,
    /// What to record.
    settle: Settle,
}

impl Pass {
    /// One attempt that was not recorded (or not made) and is left to its lease.
    fn one_unsettled() -> Self {
        Self {
            unsettled: 1,
            ..Self::default()
        }
    }

    fn add(&mut self, other: &Pass) {
        self.delivered += other.delivered;
        self.deferred += other.deferred;
        self.failed += other.failed;
        self.unsettled += other.unsettled;
    }
}

#[cfg(test)]
mod tests;

/// The output of a task that ended, if it ended normally; a task that panicked is logged (its
/// messages stay claimed and come back when their lease ends).
fn log_abnormal_end<T>(done: Option<Result<T, tokio::task::JoinError>>, what: &str) -> Option<T> {
    match done? {
        Ok(output) => Some(output),
        Err(error) => {
            tracing::error!(%error, "{what} task ended abnormally; its messages are retried when their lease ends");
            None
        }
    }
}
