//! Password hashing off the request path: argon2id on tokio's blocking pool, with at most
//! `permits` hashes at once, so a burst of logins queues for its CPU time instead of taking
//! every core from the requests around it.

use std::sync::Arc;

use async_trait::async_trait;
use lettermint_core::{Argon2id, Error, Password, PasswordHash, PasswordHasher, Result};
use tokio::sync::Semaphore;

/// argon2id ([`Argon2id`]) on the blocking pool, bounded.
#[derive(Debug, Clone)]
pub struct BlockingHasher {
    permits: Arc<Semaphore>,
}

impl BlockingHasher {
    /// At most `concurrent` hashes run at once (at least one).
    #[must_use]
    pub fn new(concurrent: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
        }
    }

    /// One fewer than the machine's cores (at least one): a core stays free for requests.
    #[must_use]
    pub fn default_concurrency() -> usize {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get().saturating_sub(1))
            .max(1)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::storage(std::io::Error::other(e)))?;
        metrics::gauge!("lettermint_password_hashes_running").increment(1.0);
        let result = tokio::task::spawn_blocking(work).await;
        metrics::gauge!("lettermint_password_hashes_running").decrement(1.0);
        result.map_err(|e| Error::storage(std::io::Error::other(e)))
    }
}

#[async_trait]
impl PasswordHasher for BlockingHasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash> {
        self.run(move || Argon2id::hash_now(&password)).await?
    }

    async fn verify(&self, password: Password, hash: PasswordHash) -> Result<bool> {
        self.run(move || Argon2id::verify_now(&password, &hash))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn hashes_on_the_blocking_pool_without_stalling_the_runtime() {
        let hasher = BlockingHasher::new(1);
        let password = Password::new_password("password", "correct horse battery".into()).unwrap();
        let hash = hasher.hash(password.clone()).await.unwrap();
        // A single-threaded runtime keeps ticking while the verification runs elsewhere.
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        assert!(hasher.verify(password, hash.clone()).await.unwrap());
        let wrong = Password::for_login("wrong".into()).unwrap();
        assert!(!hasher.verify(wrong, hash).await.unwrap());
        ticker.abort();
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 2);
    }
}
