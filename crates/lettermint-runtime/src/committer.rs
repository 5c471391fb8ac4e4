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
