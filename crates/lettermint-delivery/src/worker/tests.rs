use std::sync::Arc;

use lettermint_core::repo::MockDeliveryRepository;
use lettermint_core::{
    Channel, Claim, DeliveryState, FailureKind, FixedClock, LeaseId, Message, MessageContent,
    MessageId, MessageStatus, ProjectId, Reply, RouteId, Settle, Settlement, TokenId,
};
use mockall::predicate::{always, eq};
use time::macros::datetime;

use super::*;
use crate::relay::MockRelay;

const NOW: time::OffsetDateTime = datetime!(2026-12-03 08:00 UTC);

fn claim(attempts: u32, raw: &[u8]) -> Claim {
    Claim {
        message: Message {
            id: MessageId::new(),
            project_id: ProjectId::new(),
            route_id: RouteId::new(),
            token_id: TokenId::new(),
            via: Channel::Smtp,
            status: MessageStatus::Processed,
            envelope_from: "a@example.com".into(),
            envelope_to: vec!["b@example.com".into()],
            subject: None,
            tag: None,
            metadata: Default::default(),
            idempotency_key: None,
            scheduled_at: None,
            created_at: NOW - time::Duration::minutes(1),
            content: MessageContent::Mime(raw.to_vec()),
            delivery: DeliveryState {
                attempts,
                ..DeliveryState::default()
            },
        },
        lease: LeaseId::new(),
    }
}

fn reply(code: u16, text: &str) -> Reply {
    Reply {
        code: Some(code),
        text: text.into(),
    }
}

fn worker(store: MockDeliveryRepository, relay: MockRelay) -> Worker {
    worker_with(store, relay, WorkerConfig::default())
}

fn worker_with(store: MockDeliveryRepository, relay: MockRelay, config: WorkerConfig) -> Worker {
    Worker::new(
        Arc::new(store),
        Arc::new(relay),
        Arc::new(FixedClock(NOW)),
        config,
    )
}

fn claiming(store: &mut MockDeliveryRepository, claims: Vec<Claim>) {
    let lease_until = NOW + time::Duration::minutes(5);
    store
        .expect_claim_due()
        .with(eq(NOW), eq(lease_until), eq(WorkerConfig::default().batch))
        .times(1)
        .return_once(move |_, _, _| Ok(claims));
}

#[tokio::test]
async fn a_relayed_message_is_settled_delivered_with_the_servers_reply() {
    let c = claim(1, b"Subject: x\r\n\r\nbody\r\n");
    let (id, lease) = (c.message.id, c.lease);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .with(
            eq(vec![Settle {
                message: id,
                lease,
                settlement: Settlement::Delivered(reply(250, "2.0.0 queued as 1")),
                delivered_to: None,
            }]),
            eq(NOW),
        )
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .withf(|envelope, data, _| {
            envelope.to().len() == 1
                && envelope.from().map(ToString::to_string).as_deref() == Some("a@example.com")
                && data == b"Subject: x\r\n\r\nbody\r\n"
        })
        .times(1)
        .returning(|_, _, _| Ok(reply(250, "2.0.0 queued as 1")));
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 1,
            delivered: 1,
            ..Pass::default()
        }
    );
}

#[tokio::test]
async fn a_4xx_defers_with_backoff_and_a_5xx_fails_at_once() {
    let soft = claim(2, b"Subject: soft\r\n\r\n");
    let hard = claim(1, b"Subject: hard\r\n\r\n");
    let (soft_id, hard_id) = (soft.message.id, hard.message.id);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![soft, hard]);
    store
        .expect_settle()
        .withf(move |settles, _| {
            let soft = settles.iter().find(|s| s.message == soft_id);
            let hard = settles.iter().find(|s| s.message == hard_id);
            settles.len() == 2
                && matches!(soft.map(|s| &s.settlement), Some(Settlement::Deferred { reply, retry_at })
                    if reply.code == Some(451)
                    // Second attempt: 60 s, jittered down to no less than half.
                    && *retry_at >= NOW + time::Duration::seconds(30)
                    && *retry_at <= NOW + time::Duration::seconds(60))
                && hard.map(|s| &s.settlement)
                    == Some(&Settlement::Failed(reply(550, "5.1.1 no such user")))
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .times(2)
        .returning(|_, data, _| {
            if data.starts_with(b"Subject: soft") {
                Err(RelayError {
                    kind: FailureKind::Transient,
                    reply: reply(451, "4.3.0 try later"),
                })
            } else {
                Err(RelayError {
                    kind: FailureKind::Permanent,
                    reply: reply(550, "5.1.1 no such user"),
                })
            }
        });
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!((pass.claimed, pass.deferred, pass.failed), (2, 1, 1));
}

#[tokio::test]
async fn an_attempt_goes_to_the_recipients_still_without_the_message_and_records_those_reached() {
    let to = [
        "r1@example.com",
        "r2@example.com",
        "r3@example.com",
        "r4@example.com",
    ];
    let mut c = claim(2, b"Subject: x\r\n\r\nbody\r\n");
    c.message.envelope_to = to.iter().map(ToString::to_string).collect();
    // An earlier attempt reached r1.
    c.message.delivery.delivered_to = vec![to[0].into()];
    let (id, lease) = (c.message.id, c.lease);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .withf(move |settles, _| {
            matches!(settles, [Settle { message, lease: l, settlement: Settlement::Deferred { reply, .. }, delivered_to: Some(done) }]
                if *message == id && *l == lease && reply.code == Some(452)
                    && *done == [to[0], to[2]])
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .withf(move |envelope, _, _| {
            envelope
                .to()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                == to[1..]
        })
        .times(1)
        // This attempt reaches r3; r2 and r4 are refused for now.
        .returning(|_, _, reached| {
            reached.extend(["r3@example.com".to_owned()]);
            Err(RelayError {
                kind: FailureKind::Transient,
                reply: reply(452, "4.2.2 mailbox full"),
            })
        });
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!((pass.claimed, pass.deferred), (1, 1));
}

#[tokio::test]
async fn a_message_every_recipient_already_has_is_delivered_without_relaying() {
    let mut c = claim(3, b"Subject: x\r\n\r\nbody\r\n");
    c.message.delivery.delivered_to = c.message.envelope_to.clone();
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .withf(|settles, _| {
            matches!(settles, [Settle { settlement: Settlement::Delivered(reply), delivered_to: None, .. }]
                if reply.code.is_none())
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay.expect_relay_noting().never();
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!(pass.delivered, 1);
}

#[tokio::test]
async fn a_message_that_cannot_be_built_fails_without_reaching_the_relay() {
    let mut c = claim(1, b"");
    c.message.envelope_to = vec!["not an address".into()];
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .with(
            mockall::predicate::function(|s: &[Settle]| {
                matches!(s, [Settle { settlement: Settlement::Failed(reply), .. }]
                    if reply.code.is_none() && reply.text.contains("envelope_to"))
            }),
            always(),
        )
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay.expect_relay_noting().never();
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!(pass.failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_lease_or_a_store_error_leaves_the_message_to_its_lease() {
    let (a, b) = (claim(1, b"A\r\n\r\n"), claim(1, b"B\r\n\r\n"));
    let a_id = a.message.id;
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![a, b]);
    // The store refuses a's settlement (its lease ran out) and records b's.
    store
        .expect_settle()
        .times(1)
        .returning(move |settles, _| Ok(settles.iter().map(|s| s.message != a_id).collect()));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .times(2)
        .returning(|_, _, _| Ok(reply(250, "ok")));
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!((pass.claimed, pass.delivered, pass.unsettled), (2, 1, 1));

    let mut store = MockDeliveryRepository::new();
    claiming(
        &mut store,
        vec![claim(1, b"C\r\n\r\n"), claim(1, b"D\r\n\r\n")],
    );
    // A store that keeps failing: tried once and again after each wait, then left.
    store
        .expect_settle()
        .times(1 + SETTLE_RETRIES.len())
        .returning(|_, _| Err(lettermint_core::Error::Storage("connection reset".into())));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .times(2)
        .returning(|_, _, _| Ok(reply(250, "ok")));
    let started = tokio::time::Instant::now();
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!((pass.claimed, pass.delivered, pass.unsettled), (2, 0, 2));
    assert_eq!(
        started.elapsed(),
        SETTLE_RETRIES.iter().sum::<std::time::Duration>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_recording_that_fails_once_is_tried_again() {
    let c = claim(1, b"Subject: x\r\n\r\n");
    let (id, lease) = (c.message.id, c.lease);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    let mut seq = mockall::Sequence::new();
    store
        .expect_settle()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Err(lettermint_core::Error::Storage("connection reset".into())));
    store
        .expect_settle()
        .withf(move |settles, _| {
            settles.len() == 1 && settles[0].message == id && settles[0].lease == lease
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .times(1)
        .returning(|_, _, _| Ok(reply(250, "ok")));
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!((pass.claimed, pass.delivered, pass.unsettled), (1, 1, 0));
}

/// A smarthost client with a bug.
#[derive(Debug)]
struct Panicking;

#[async_trait::async_trait]
impl Relay for Panicking {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        _: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        panic!("a bug in the relay")
    }
}

#[tokio::test]
async fn a_panicking_attempt_is_settled_as_a_transient_failure() {
    let c = claim(1, b"Subject: x\r\n\r\n");
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .withf(|settles, _| {
            matches!(
                &settles[0].settlement,
                Settlement::Deferred { reply, .. } if reply.text.contains("ended unexpectedly")
            )
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(Panicking),
        Arc::new(FixedClock(NOW)),
        WorkerConfig::default(),
    );
    let pass = worker.pass().await.unwrap();
    assert_eq!((pass.claimed, pass.deferred), (1, 1));
}

#[tokio::test]
async fn run_records_ended_attempts_together_and_tops_up_claims() {
    let claims: Vec<Claim> = (0..6)
        .map(|i| claim(1, format!("M{i}\r\n\r\n").as_bytes()))
        .collect();
    let ids: Vec<_> = claims.iter().map(|c| c.message.id).collect();
    let mut store = MockDeliveryRepository::new();
    let mut queue = claims.into_iter();
    let limits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_limits = limits.clone();
    store.expect_claim_due().returning(move |_, _, limit| {
        seen_limits.lock().unwrap().push(limit);
        Ok(queue.by_ref().take(limit as usize).collect())
    });
    let recorded = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = recorded.clone();
    store.expect_settle().returning(move |settles, _| {
        seen.lock()
            .unwrap()
            .push(settles.iter().map(|s| s.message).collect::<Vec<_>>());
        Ok(vec![true; settles.len()])
    });
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .returning(|_, _, _| Ok(reply(250, "ok")));
    let worker = worker_with(
        store,
        relay,
        WorkerConfig {
            batch: 4,
            idle_poll: std::time::Duration::from_millis(5),
            ..WorkerConfig::default()
        },
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move { worker.run(shutdown).await });
    for _ in 0..200 {
        if recorded.lock().unwrap().iter().map(Vec::len).sum::<usize>() == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap();
    let batches = recorded.lock().unwrap().clone();
    let mut all: Vec<_> = batches.concat();
    all.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(all, expected, "every attempt recorded once");
    assert!(
        batches.len() < 6,
        "attempts are recorded together: {batches:?}"
    );
    let limits = limits.lock().unwrap().clone();
    assert_eq!(limits[0], 4, "the first claim fills the batch");
    assert!(
        limits.iter().all(|l| (2..=4).contains(l)),
        "claims top up half a batch or more: {limits:?}"
    );
}

/// A relay that takes the same time for every message, counting the attempts relaying at once,
/// those relayed, and how long it had none after the first.
#[derive(Debug)]
struct Counted {
    takes: std::time::Duration,
    state: std::sync::Mutex<CountedState>,
}

impl Counted {
    fn taking(ms: u64) -> Self {
        Self {
            takes: std::time::Duration::from_millis(ms),
            state: std::sync::Mutex::default(),
        }
    }
}

#[derive(Debug, Default)]
struct CountedState {
    now: usize,
    most: usize,
    /// Attempts relayed to their end.
    relayed: usize,
    /// Since when none has been relaying.
    idle_since: Option<tokio::time::Instant>,
    idle: std::time::Duration,
}

#[async_trait::async_trait]
impl Relay for Arc<Counted> {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        _: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        {
            let mut state = self.state.lock().unwrap();
            state.now += 1;
            state.most = state.most.max(state.now);
            if let Some(since) = state.idle_since.take() {
                state.idle += since.elapsed();
            }
        }
        tokio::time::sleep(self.takes).await;
        let mut state = self.state.lock().unwrap();
        state.now -= 1;
        state.relayed += 1;
        if state.now == 0 {
            state.idle_since = Some(tokio::time::Instant::now());
        }
        Ok(reply(250, "ok"))
    }
}

#[tokio::test(start_paused = true)]
async fn the_next_claim_is_taken_ahead_so_the_relay_never_waits_for_one() {
    let relay = Arc::new(Counted::taking(100));
    let store = Endless::claims_taking(20);
    run_for(batch_of_8(store.clone(), Arc::new(relay.clone())), 2000).await;
    let limits = store.limits.lock().unwrap().clone();
    assert_eq!(limits[0], 8, "the first claim fills the batch");
    assert!(limits.len() > 20, "{limits:?}");
    assert!(
        limits[1..].iter().all(|&l| l == 4),
        "then half a batch: {limits:?}"
    );
    let state = self_state(&relay);
    // Claims ran while attempts were relaying: once the first began, the relay was never left
    // without one (each claim takes 20 ms, so a claim made only once half the batch had ended
    // would leave it idle 20 ms in every 100).
    assert_eq!(state.idle, std::time::Duration::ZERO);
    // And never more than a batch relayed at once: those claimed ahead wait their turn.
    assert_eq!(state.most, 8);
}

#[tokio::test(start_paused = true)]
async fn a_claim_slower_than_the_relay_runs_beside_it_and_takes_the_room_freed_meanwhile() {
    // Claims take 30 ms and attempts 10 ms: each claim outlasts the attempts in flight when it
    // began. While it runs, the loop takes in the attempts that end (and records them), so the
    // next claim asks for all the room they freed, and a claimed message starts as soon as
    // there is room for it.
    let relay = Arc::new(Counted::taking(10));
    let store = Endless::claims_taking(30);
    run_for(batch_of_8(store.clone(), Arc::new(relay.clone())), 1000).await;
    let limits = store.limits.lock().unwrap().clone();
    let state = self_state(&relay);
    // A claim every 30 ms, alternately of 8 (the batch, freed while the one before ran) and 4
    // (half a batch, beside 8 in flight): 12 every 60 ms. A loop that waited for its claims
    // took in no ended attempt meanwhile, so each claim found only half a batch of room: 4
    // every 30 ms.
    assert!(
        limits[1..].iter().filter(|&&l| l == 8).count() >= limits.len() / 3,
        "claims of the room freed: {limits:?}"
    );
    assert!(state.relayed >= 180, "{} relayed in 1 s", state.relayed);
    // Recordings ran while claims did.
    let calls = store.calls.lock().unwrap().clone();
    let claims: Vec<_> = calls
        .iter()
        .filter(|c| c.0 == "claim")
        .map(|c| c.1)
        .collect();
    assert!(
        calls.iter().any(|&(what, at)| what == "settle"
            && claims
                .iter()
                .any(|&c| c < at && at < c + std::time::Duration::from_millis(30))),
        "{calls:?}"
    );
    assert_eq!(state.most, 8);
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_claim_records_what_ends_meanwhile_and_attempts_what_the_claim_took() {
    // Claims take 50 ms, attempts 10 ms. The first claim's 8 messages start at 50 ms with the
    // next claim (of 4) beside them; the stop comes at 55 ms. The 8 end at 60 ms and are
    // recorded then, not once the claim returns at 100 ms; the claim has leased its 4, which
    // are attempted and recorded before the stop returns.
    let relay = Arc::new(Counted::taking(10));
    let store = Endless::claims_taking(50);
    let started = tokio::time::Instant::now();
    run_for(batch_of_8(store.clone(), Arc::new(relay.clone())), 55).await;
    let (claimed, recorded, _) = *store.counts.lock().unwrap();
    assert_eq!((claimed, recorded), (12, 12));
    assert_eq!(self_state(&relay).relayed, 12);
    let calls = store.calls.lock().unwrap().clone();
    let at = |which: &str| {
        let mut at: Vec<u128> = calls
            .iter()
            .filter(|c| c.0 == which)
            .map(|c| (c.1 - started).as_millis())
            .collect();
        at.dedup();
        at
    };
    assert_eq!(at("claim"), [0, 50]);
    assert_eq!(at("settle"), [60, 110], "{calls:?}");
}

fn self_state(relay: &Counted) -> CountedState {
    let state = relay.state.lock().unwrap();
    CountedState {
        now: state.now,
        most: state.most,
        relayed: state.relayed,
        idle_since: state.idle_since,
        idle: state.idle,
    }
}

#[tokio::test(start_paused = true)]
async fn a_claim_that_finds_nothing_is_not_repeated_within_the_idle_interval() {
    // One claim of four messages relayed for 100 ms each, then nothing due.
    let relay = Arc::new(Counted::taking(100));
    let claims_at = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut store = MockDeliveryRepository::new();
    let seen = claims_at.clone();
    let mut first = true;
    store.expect_claim_due().returning(move |_, _, limit| {
        seen.lock().unwrap().push(tokio::time::Instant::now());
        let count = if std::mem::take(&mut first) { 4 } else { 0 };
        Ok((0..count.min(limit))
            .map(|_| claim(1, b"M\r\n\r\n"))
            .collect())
    });
    store
        .expect_settle()
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(relay),
        Arc::new(FixedClock(NOW)),
        WorkerConfig {
            batch: 8,
            idle_poll: std::time::Duration::from_millis(1000),
            ..WorkerConfig::default()
        },
    );
    let started = tokio::time::Instant::now();
    run_for(worker, 2500).await;
    let since: Vec<u128> = claims_at
        .lock()
        .unwrap()
        .iter()
        .map(|at| (*at - started).as_millis())
        .collect();
    // The claim of four and the claim ahead of them at once, which finds nothing; the attempts
    // ending and being recorded bring no claim; then one claim per idle interval.
    assert_eq!(since, [0, 0, 1000, 2000]);
}

#[tokio::test]
async fn run_stops_when_told_and_keeps_polling_through_store_errors() {
    let mut store = MockDeliveryRepository::new();
    let mut calls = 0;
    store.expect_claim_due().returning(move |_, _, _| {
        calls += 1;
        if calls == 1 {
            Err(lettermint_core::Error::Storage("down".into()))
        } else {
            Ok(vec![])
        }
    });
    let relay = MockRelay::new();
    let worker = worker_with(
        store,
        relay,
        WorkerConfig {
            idle_poll: std::time::Duration::from_millis(5),
            ..WorkerConfig::default()
        },
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move { worker.run(shutdown).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("stops promptly")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn max_rate_spaces_attempts_without_shrinking_claims() {
    // An endless supply of due messages: without a limit the worker would relay as fast as
    // the (instant) relay answers.
    let mut store = MockDeliveryRepository::new();
    let claimed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = claimed.clone();
    store.expect_claim_due().returning(move |_, _, limit| {
        seen.lock()
            .unwrap()
            .push((tokio::time::Instant::now(), limit));
        Ok((0..limit).map(|_| claim(1, b"M\r\n\r\n")).collect())
    });
    store
        .expect_settle()
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .returning(|_, _, _| Ok(reply(250, "ok")));
    let worker = worker_with(
        store,
        relay,
        WorkerConfig {
            batch: 8,
            max_rate: std::num::NonZeroU32::new(40),
            ..WorkerConfig::default()
        },
    );
    let started = tokio::time::Instant::now();
    run_for(worker, 5000).await;
    let claimed = claimed.lock().unwrap().clone();
    let total: u32 = claimed.iter().map(|(_, n)| n).sum();
    // 40 per second for 5 s, plus the first burst of half a batch.
    assert!((196..=204).contains(&total), "{total} attempts in 5 s");
    assert!(
        claimed.iter().all(|(_, n)| *n == 4),
        "claims stay half a batch: {claimed:?}"
    );
    // Evenly spread: no second holds more than its share and a burst.
    for second in 0..5 {
        let from = started + std::time::Duration::from_secs(second);
        let to = from + std::time::Duration::from_secs(1);
        let in_second: u32 = claimed
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, n)| n)
            .sum();
        assert!(in_second <= 44, "{in_second} attempts in second {second}");
    }
}

/// A smarthost that never answers.
#[derive(Debug)]
struct Silent;

#[async_trait::async_trait]
impl Relay for Silent {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        _: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_ends_within_half_its_lease() {
    let c = claim(1, b"Subject: x\r\n\r\nbody\r\n");
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c.clone()]);
    store
        .expect_settle()
        .withf(|settles, _| {
            matches!(
                &settles[0].settlement,
                Settlement::Deferred { reply, .. }
                    if reply.text.contains("within half the lease (150 s)")
            )
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(Silent),
        Arc::new(FixedClock(NOW)),
        WorkerConfig::default(),
    );
    let started = tokio::time::Instant::now();
    let pass = worker.pass().await.unwrap();
    assert_eq!(pass.deferred, 1);
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(150));
}

/// A smarthost that takes the message for the first recipient, then never answers again.
#[derive(Debug)]
struct SilentAfterOne;

#[async_trait::async_trait]
impl Relay for SilentAfterOne {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        _: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        unreachable!("the worker relays noting whom it reached")
    }

    async fn relay_noting(
        &self,
        envelope: &lettre::address::Envelope,
        _: &[u8],
        reached: &Reached,
    ) -> Result<Reply, crate::relay::RelayError> {
        reached.extend([envelope.to()[0].to_string()]);
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_cut_off_after_some_recipients_records_them() {
    let mut c = claim(1, b"Subject: x\r\n\r\nbody\r\n");
    c.message.envelope_to = vec!["first@example.com".into(), "second@example.com".into()];
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store
        .expect_settle()
        .withf(|settles, _| {
            matches!(
                &settles[0],
                Settle { settlement: Settlement::Deferred { reply, .. }, delivered_to: Some(done), .. }
                    if reply.text.contains("within half the lease") && *done == ["first@example.com"]
            )
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let worker = Worker::new(
        Arc::new(store),
        Arc::new(SilentAfterOne),
        Arc::new(FixedClock(NOW)),
        WorkerConfig::default(),
    );
    assert_eq!(worker.pass().await.unwrap().deferred, 1);
}

/// Runs `worker` for `ms` milliseconds, then stops it and waits until it has.
async fn run_for(worker: Worker, ms: u64) {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(async move { worker.run(shutdown).await });
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
}

/// A worker with a `batch` of 8 on `store` and `relay`.
fn batch_of_8(store: Arc<Endless>, relay: Arc<dyn Relay>) -> Worker {
    Worker::new(
        store,
        relay,
        Arc::new(FixedClock(NOW)),
        WorkerConfig {
            batch: 8,
            ..WorkerConfig::default()
        },
    )
}

/// A store with an endless supply of due messages, whose claims and settlements take the time
/// given.
#[derive(Debug, Default)]
struct Endless {
    claim_takes: std::time::Duration,
    commit_takes: std::time::Duration,
    /// When each claim and each settlement started, in order.
    calls: std::sync::Mutex<Vec<(&'static str, tokio::time::Instant)>>,
    /// The limit of each claim.
    limits: std::sync::Mutex<Vec<u32>>,
    /// Messages claimed, messages whose settlement committed, and the most claimed and not
    /// yet recorded at once.
    counts: std::sync::Mutex<(usize, usize, usize)>,
}

impl Endless {
    /// An endless store whose claims take `ms` milliseconds.
    fn claims_taking(ms: u64) -> Arc<Self> {
        Arc::new(Self {
            claim_takes: std::time::Duration::from_millis(ms),
            ..Self::default()
        })
    }
}

#[async_trait::async_trait]
impl lettermint_core::repo::DeliveryRepository for Endless {
    async fn claim_due(
        &self,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
        limit: u32,
    ) -> lettermint_core::Result<Vec<Claim>> {
        self.calls
            .lock()
            .unwrap()
            .push(("claim", tokio::time::Instant::now()));
        self.limits.lock().unwrap().push(limit);
        tokio::time::sleep(self.claim_takes).await;
        {
            let mut counts = self.counts.lock().unwrap();
            counts.0 += limit as usize;
            counts.2 = counts.2.max(counts.0 - counts.1);
        }
        Ok((0..limit).map(|_| claim(1, b"M\r\n\r\n")).collect())
    }

    async fn settle(
        &self,
        settles: &[Settle],
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<Vec<bool>> {
        self.calls
            .lock()
            .unwrap()
            .push(("settle", tokio::time::Instant::now()));
        tokio::time::sleep(self.commit_takes).await;
        self.counts.lock().unwrap().1 += settles.len();
        Ok(vec![true; settles.len()])
    }

    async fn begin_alone(
        &self,
        _: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        unreachable!("no claim here was taken over from an interrupted attempt")
    }

    async fn end_lease(
        &self,
        _: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        unreachable!("no claim here was taken over from an interrupted attempt")
    }
}

/// A smarthost that answers after 50 to 400 ms, in turn.
#[derive(Debug, Default)]
struct Staggered(std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl Relay for Staggered {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        _: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(50 * (1 + n % 8))).await;
        Ok(reply(250, "ok"))
    }
}

#[tokio::test(start_paused = true)]
async fn claims_and_relaying_go_on_while_a_recording_commits() {
    let store = Arc::new(Endless {
        commit_takes: std::time::Duration::from_secs(1),
        ..Endless::default()
    });
    run_for(
        batch_of_8(store.clone(), Arc::new(Staggered::default())),
        4500,
    )
    .await;
    let calls = store.calls.lock().unwrap().clone();
    let settles: Vec<_> = calls.iter().filter(|(what, _)| *what == "settle").collect();
    assert!(settles.len() >= 3, "{calls:?}");
    // Never two recordings at once: each starts after the one before has committed.
    for pair in settles.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= std::time::Duration::from_secs(1),
            "{calls:?}"
        );
    }
    // Claims went on while the first recording took its second.
    let first = settles[0].1;
    let during = calls
        .iter()
        .filter(|(what, at)| {
            *what == "claim" && *at > first && *at < first + std::time::Duration::from_secs(1)
        })
        .count();
    assert!(during > 0, "no claim while recording: {calls:?}");
    // And they stopped once a batch of ended attempts waited behind it, so that what is
    // claimed and not recorded stays bounded: a batch and a half in flight and claimed ahead,
    // under a batch ended, and the recording under way (what ended while the one before it
    // committed: under a batch before claims stopped, plus what was in flight and ahead).
    // Without the stop, about 35 attempts a second end here, and a recording of a second's
    // worth would commit while the next second's waits behind it.
    let (claimed, recorded, most) = *store.counts.lock().unwrap();
    assert_eq!(
        claimed, recorded,
        "everything claimed was recorded by the stop"
    );
    assert!(
        most <= 5 * 8,
        "{most} claimed and not recorded at once: {calls:?}"
    );
}

/// A store with one batch of due messages, recording when each settlement arrives.
#[derive(Debug, Default)]
struct OneBatch {
    claims: std::sync::Mutex<Vec<Claim>>,
    settled: std::sync::Mutex<Vec<(MessageId, tokio::time::Instant)>>,
}

#[async_trait::async_trait]
impl lettermint_core::repo::DeliveryRepository for OneBatch {
    async fn claim_due(
        &self,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
        _: u32,
    ) -> lettermint_core::Result<Vec<Claim>> {
        Ok(std::mem::take(&mut *self.claims.lock().unwrap()))
    }

    async fn settle(
        &self,
        settles: &[Settle],
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<Vec<bool>> {
        let at = tokio::time::Instant::now();
        self.settled
            .lock()
            .unwrap()
            .extend(settles.iter().map(|s| (s.message, at)));
        Ok(vec![true; settles.len()])
    }

    async fn begin_alone(
        &self,
        _: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        unreachable!("no claim here was taken over from an interrupted attempt")
    }

    async fn end_lease(
        &self,
        _: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        unreachable!("no claim here was taken over from an interrupted attempt")
    }
}

/// A smarthost that answers "fast" messages after 10 ms and the others after 100 s.
#[derive(Debug)]
struct FastAndSlow;

#[async_trait::async_trait]
impl Relay for FastAndSlow {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        data: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        let wait = if data.starts_with(b"fast") {
            10
        } else {
            100_000
        };
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        Ok(reply(250, "ok"))
    }
}

#[tokio::test(start_paused = true)]
async fn stopping_records_each_attempt_as_it_ends_not_after_the_slowest() {
    let (fast, slow) = (claim(1, b"fast\r\n\r\n"), claim(1, b"slow\r\n\r\n"));
    let (fast_id, slow_id) = (fast.message.id, slow.message.id);
    let store = Arc::new(OneBatch {
        claims: std::sync::Mutex::new(vec![fast, slow]),
        ..OneBatch::default()
    });
    let worker = Worker::new(
        store.clone(),
        Arc::new(FastAndSlow),
        Arc::new(FixedClock(NOW)),
        WorkerConfig::default(),
    );
    let started = tokio::time::Instant::now();
    // Told to stop before either attempt has ended (and before a recording was due).
    run_for(worker, 5).await;
    let settled = store.settled.lock().unwrap().clone();
    let when = |id| {
        settled
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, at)| at.duration_since(started))
            .unwrap()
    };
    assert_eq!(settled.len(), 2);
    assert!(
        when(fast_id) < std::time::Duration::from_secs(1),
        "{settled:?}"
    );
    assert!(when(slow_id) >= std::time::Duration::from_secs(100));
}

/// A claim taken over from `interrupted` attempts that never recorded an outcome, of which
/// `alone` were made alone.
fn taken_over_claim(raw: &[u8], interrupted: u32, alone: u32) -> Claim {
    let mut c = claim(interrupted + 1, raw);
    c.message.delivery.interrupted = interrupted;
    c.message.delivery.interrupted_alone = alone;
    c
}

#[tokio::test]
async fn a_message_taken_over_from_an_interrupted_attempt_is_counted_alone_before_its_attempt() {
    let c = taken_over_claim(b"Subject: x\r\n\r\nbody\r\n", 1, 0);
    let (id, lease) = (c.message.id, c.lease);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    let mut seq = mockall::Sequence::new();
    store
        .expect_begin_alone()
        .with(eq(id), eq(lease), eq(NOW + time::Duration::minutes(5)))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(true));
    let mut relay = MockRelay::new();
    relay
        .expect_relay_noting()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(reply(250, "ok")));
    store
        .expect_settle()
        .with(
            eq(vec![Settle {
                message: id,
                lease,
                settlement: Settlement::Delivered(reply(250, "ok")),
                delivered_to: None,
            }]),
            eq(NOW),
        )
        .times(1)
        .in_sequence(&mut seq)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 1,
            delivered: 1,
            ..Pass::default()
        }
    );
}

#[tokio::test]
async fn an_attempt_alone_that_cannot_be_counted_is_not_made() {
    let lost = taken_over_claim(b"Subject: lost\r\n\r\n", 1, 0);
    let unreachable = taken_over_claim(b"Subject: down\r\n\r\n", 2, 1);
    let lost_id = lost.message.id;
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![lost, unreachable]);
    store
        .expect_begin_alone()
        .returning(move |id, _, _| {
            if id == lost_id {
                Ok(false)
            } else {
                Err(lettermint_core::Error::Storage("connection refused".into()))
            }
        })
        .times(2);
    store.expect_settle().never();
    let mut relay = MockRelay::new();
    relay.expect_relay_noting().never();
    let pass = worker(store, relay).pass().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 2,
            unsettled: 2,
            ..Pass::default()
        }
    );
}

#[tokio::test]
async fn a_message_interrupted_alone_crash_limit_times_fails_untried() {
    let c = taken_over_claim(b"Subject: poison\r\n\r\n", 4, 2);
    let (id, lease) = (c.message.id, c.lease);
    let mut store = MockDeliveryRepository::new();
    claiming(&mut store, vec![c]);
    store.expect_begin_alone().never();
    store
        .expect_settle()
        .withf(move |settles, at| {
            *at == NOW
                && settles.len() == 1
                && settles[0].message == id
                && settles[0].lease == lease
                && matches!(&settles[0].settlement, Settlement::Failed(Reply { code: None, text })
                    if text.contains("2 attempts") && text.contains("interrupted"))
        })
        .times(1)
        .returning(|settles, _| Ok(vec![true; settles.len()]));
    let mut relay = MockRelay::new();
    relay.expect_relay_noting().never();
    let config = WorkerConfig {
        crash_limit: 2,
        ..WorkerConfig::default()
    };
    let pass = worker_with(store, relay, config).pass().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 1,
            failed: 1,
            ..Pass::default()
        }
    );
}

/// What a store and a smarthost were asked, in order.
#[derive(Debug, Default)]
struct Journal(std::sync::Mutex<Vec<String>>);

impl Journal {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A store handing out one batch of due messages (named by their content's first line), and
/// noting every call in a journal.
#[derive(Debug)]
struct JournalStore {
    claims: std::sync::Mutex<Vec<Claim>>,
    names: std::collections::HashMap<MessageId, String>,
    journal: Arc<Journal>,
}

impl JournalStore {
    fn new(claims: Vec<Claim>, journal: Arc<Journal>) -> Self {
        let names = claims
            .iter()
            .map(|c| {
                let MessageContent::Mime(raw) = &c.message.content else {
                    unreachable!()
                };
                let name = String::from_utf8_lossy(raw)
                    .lines()
                    .next()
                    .unwrap()
                    .to_owned();
                (c.message.id, name)
            })
            .collect();
        Self {
            claims: std::sync::Mutex::new(claims),
            names,
            journal,
        }
    }
}

#[async_trait::async_trait]
impl lettermint_core::repo::DeliveryRepository for JournalStore {
    async fn claim_due(
        &self,
        _: time::OffsetDateTime,
        _: time::OffsetDateTime,
        _: u32,
    ) -> lettermint_core::Result<Vec<Claim>> {
        let claims = std::mem::take(&mut *self.claims.lock().unwrap());
        if !claims.is_empty() {
            self.journal.push("claim".into());
        }
        Ok(claims)
    }

    async fn settle(
        &self,
        settles: &[Settle],
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<Vec<bool>> {
        let mut names: Vec<String> = settles
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    self.names[&s.message],
                    s.settlement.status().as_str()
                )
            })
            .collect();
        names.sort();
        self.journal.push(format!("settle {}", names.join(", ")));
        Ok(vec![true; settles.len()])
    }

    async fn begin_alone(
        &self,
        message: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        self.journal.push(format!("alone {}", self.names[&message]));
        Ok(true)
    }

    async fn end_lease(
        &self,
        message: MessageId,
        _: LeaseId,
        _: time::OffsetDateTime,
    ) -> lettermint_core::Result<bool> {
        self.journal
            .push(format!("handed back {}", self.names[&message]));
        Ok(true)
    }
}

/// A smarthost that takes 10 ms per message and notes each one's start and end.
#[derive(Debug)]
struct JournalRelay(Arc<Journal>);

#[async_trait::async_trait]
impl Relay for JournalRelay {
    async fn relay(
        &self,
        _: &lettre::address::Envelope,
        data: &[u8],
    ) -> Result<Reply, crate::relay::RelayError> {
        let name = String::from_utf8_lossy(data)
            .lines()
            .next()
            .unwrap()
            .to_owned();
        self.0.push(format!("relay {name}"));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        self.0.push(format!("relayed {name}"));
        Ok(reply(250, "ok"))
    }
}

/// What a worker asked of a [`JournalStore`] holding `claims` and of a [`JournalRelay`] in
/// five seconds of running (paused time).
async fn journal_of_a_run(claims: Vec<Claim>) -> Vec<String> {
    journal_of_a_run_stopped_after(claims, std::time::Duration::from_secs(5)).await
}

/// As [`journal_of_a_run`], the worker told to stop after `running`.
async fn journal_of_a_run_stopped_after(
    claims: Vec<Claim>,
    running: std::time::Duration,
) -> Vec<String> {
    let journal = Arc::new(Journal::default());
    let worker = Worker::new(
        Arc::new(JournalStore::new(claims, journal.clone())),
        Arc::new(JournalRelay(journal.clone())),
        Arc::new(FixedClock(NOW)),
        WorkerConfig::default(),
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(async move { worker.run(shutdown).await });
    tokio::time::sleep(running).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    journal.lines()
}

#[tokio::test(start_paused = true)]
async fn run_attempts_taken_over_messages_one_at_a_time_with_nothing_else_in_flight() {
    let lines = journal_of_a_run(vec![
        claim(1, b"n1\r\n\r\n"),
        taken_over_claim(b"s1\r\n\r\n", 1, 0),
        claim(1, b"n2\r\n\r\n"),
        taken_over_claim(b"poison\r\n\r\n", 5, 3),
        taken_over_claim(b"s2\r\n\r\n", 2, 2),
    ])
    .await;
    // The two others first, concurrently, and recorded together.
    let mut first: Vec<&str> = lines[1..5].iter().map(String::as_str).collect();
    first.sort_unstable();
    assert_eq!(
        (lines[0].as_str(), first, lines[5].as_str()),
        (
            "claim",
            vec!["relay n1", "relay n2", "relayed n1", "relayed n2"],
            "settle n1 delivered, n2 delivered"
        ),
        "{lines:#?}"
    );
    // Then each taken-over message alone, in claim order, counted before its attempt and
    // recorded before the next starts; the one interrupted alone `crash_limit` times is failed
    // untried.
    assert_eq!(
        lines[6..],
        [
            "alone s1",
            "relay s1",
            "relayed s1",
            "settle s1 delivered",
            "settle poison failed",
            "alone s2",
            "relay s2",
            "relayed s2",
            "settle s2 delivered",
        ],
        "{lines:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn run_attempts_a_claim_of_taken_over_messages_only() {
    assert_eq!(
        journal_of_a_run(vec![
            taken_over_claim(b"s1\r\n\r\n", 1, 0),
            taken_over_claim(b"s2\r\n\r\n", 1, 1),
        ])
        .await,
        [
            "claim",
            "alone s1",
            "relay s1",
            "relayed s1",
            "settle s1 delivered",
            "alone s2",
            "relay s2",
            "relayed s2",
            "settle s2 delivered",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stopping_worker_hands_back_the_taken_over_messages_still_waiting() {
    // Each attempt alone takes 10 ms: told to stop at 15 ms, the worker finishes s2's attempt,
    // then ends the leases of the two it has not started, for another worker to take over at
    // once.
    assert_eq!(
        journal_of_a_run_stopped_after(
            vec![
                taken_over_claim(b"s1\r\n\r\n", 1, 0),
                taken_over_claim(b"s2\r\n\r\n", 1, 0),
                taken_over_claim(b"s3\r\n\r\n", 1, 0),
                taken_over_claim(b"s4\r\n\r\n", 1, 0),
            ],
            std::time::Duration::from_millis(15),
        )
        .await,
        [
            "claim",
            "alone s1",
            "relay s1",
            "relayed s1",
            "settle s1 delivered",
            "alone s2",
            "relay s2",
            "relayed s2",
            "settle s2 delivered",
            "handed back s3",
            "handed back s4",
        ]
    );
}
