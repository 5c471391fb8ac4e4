//! Group commit: requests hand their submission to a writer task and wait for its commit.
//!
//! Each writer takes every submission waiting (up to a cap), commits them in one transaction
//! through `MessageService::enqueue`, and answers each. A reply is sent only after the commit,
//! so an accepted message is durable; many requests share one commit, which is what makes
//! durable inserts fast.

use std::sync::Arc;

use lettermint_core::{MessageService, Submission, SubmissionOutcome};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

type Reply = oneshot::Sender<Result<SubmissionOutcome, Arc<lettermint_core::Error>>>;

struct Job {
    submission: Submission,
    reply: Reply,
}

/// Hands submissions to the writers.
#[derive(Debug, Clone)]
pub struct Committer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// The running writers; await [`Writers::finish`] after the last sender is gone to be sure
/// every queued submission was committed or answered.
#[derive(Debug)]
pub struct Writers(Vec<JoinHandle<()>>);

impl Writers {
    /// Waits until every writer has drained its queue and stopped.
    pub async fn finish(self) {
        for handle in self.0 {
            let _ = handle.await;
        }
    }
}

impl Committer {
    /// Starts `writers` writer tasks, each committing at most `max_messages` messages at once.
    pub fn start(messages: MessageService, writers: usize, max_messages: usize) -> (Self, Writers) {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let handles = (0..writers.max(1))
            .map(|_| {
                let (rx, messages) = (rx.clone(), messages.clone());
                tokio::spawn(async move { write_loop(rx, messages, max_messages.max(1)).await })
            })
            .collect();
        (Self { tx }, Writers(handles))
    }

    /// Commits `submission` (with others waiting at the same time) and returns its outcome.
    pub async fn commit(
        &self,
        submission: Submission,
    ) -> Result<SubmissionOutcome, Arc<lettermint_core::Error>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { submission, reply }).await.map_err(|_| {
            Arc::new(lettermint_core::Error::Storage(
                "the committer has stopped".into(),
            ))
        })?;
        answer.await.map_err(|_| {
            Arc::new(lettermint_core::Error::Storage(
                "the committer has stopped".into(),
            ))
        })?
    }
}

async fn write_loop(
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    messages: MessageService,
    max_messages: usize,
) {
    loop {
        let mut jobs = Vec::new();
        {
            // One writer gathers at a time; the others are committing meanwhile.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut count = first.submission.messages.len();
            jobs.push(first);
            while count < max_messages {
                match rx.try_recv() {
                    Ok(job) => {
                        count += job.submission.messages.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        metrics::histogram!("lettermint_group_commit_submissions").record(jobs.len() as f64);
        let (submissions, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.submission, j.reply)).unzip();
        match messages.enqueue(&submissions).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, submissions = submissions.len(), "group commit failed");
                let err = Arc::new(err);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use lettermint_core::repo::{MockMessageRepository, MockRouteRepository};
    use lettermint_core::{
        MessageContent, MessageId, MessageStatus, PlainToken, ProjectId, RouteId, SystemClock,
        TokenCredential, TokenId, TokenKind,
    };

    use super::*;

    fn submission() -> Submission {
        let token_id = TokenId::new();
        Submission {
            client_ip: None,
            credential: TokenCredential {
                token_id,
                digest: PlainToken::mint(TokenKind::Project).unwrap().digest(),
            },
            messages: vec![lettermint_core::Message {
                id: MessageId::new(),
                project_id: ProjectId::new(),
                route_id: RouteId::new(),
                token_id,
                via: lettermint_core::Channel::Api,
                status: MessageStatus::Pending,
                envelope_from: "a@example.com".into(),
                envelope_to: vec!["b@example.com".into()],
                subject: None,
                tag: None,
                metadata: Default::default(),
                idempotency_key: None,
                scheduled_at: None,
                created_at: time::OffsetDateTime::now_utc(),
                content: MessageContent::Mime(b"x".to_vec()),
                delivery: Default::default(),
            }],
            idempotency: None,
        }
    }

    fn service(repo: MockMessageRepository) -> MessageService {
        MessageService::new(
            Arc::new(MockRouteRepository::new()),
            Arc::new(repo),
            Arc::new(SystemClock),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_submissions_share_a_commit_and_get_their_own_outcome() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counter = commits.clone();
        let mut repo = MockMessageRepository::new();
        repo.expect_enqueue().returning(move |subs, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            // Odd submissions lost their token meanwhile.
            Ok(subs
                .iter()
                .map(|s| {
                    if s.messages[0].subject.is_some() {
                        SubmissionOutcome::TokenInactive
                    } else {
                        SubmissionOutcome::Accepted(lettermint_core::CredentialSlot::Current)
                    }
                })
                .collect())
        });
        let (committer, writers) = Committer::start(service(repo), 1, 1_000);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let committer = committer.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = submission();
                if i % 2 == 1 {
                    s.messages[0].subject = Some("inactive".into());
                }
                (i, committer.commit(s).await.unwrap())
            }));
        }
        for task in tasks {
            let (i, outcome) = task.await.unwrap();
            let expected = if i % 2 == 1 {
                SubmissionOutcome::TokenInactive
            } else {
                SubmissionOutcome::Accepted(lettermint_core::CredentialSlot::Current)
            };
            assert_eq!(outcome, expected, "submission {i}");
        }
        let commits = commits.load(Ordering::SeqCst);
        assert!(
            commits < 40,
            "40 concurrent submissions took {commits} commits"
        );
        drop(committer);
        writers.finish().await;
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_submission_in_it() {
        let mut repo = MockMessageRepository::new();
        repo.expect_enqueue()
            .returning(|_, _| Err(lettermint_core::Error::Storage("disk full".into())));
        let (committer, writers) = Committer::start(service(repo), 1, 1_000);
        let err = committer.commit(submission()).await.unwrap_err();
        assert!(matches!(*err, lettermint_core::Error::Storage(_)));
        drop(committer);
        writers.finish().await;
    }
}
