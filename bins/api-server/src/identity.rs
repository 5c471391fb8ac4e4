//! Who a project token belongs to, remembered between requests.
//!
//! This caches **identity, never state**: the digest of a token value → (token, project, team).
//! That mapping never changes for a digest (a regenerated token gets a new digest; a token never
//! moves between projects). Whether the token may send is decided by the store in the same
//! transaction that commits the messages (`MessageRepository::enqueue` checks that the digest is
//! still current and the token active, under a row lock), so a revoked, expired or regenerated
//! token whose identity is cached still has nothing accepted. Every answer that does not go
//! through that commit (a validation error, an idempotent replay, ping, the Team API)
//! authenticates against the store afresh.

use std::collections::HashMap;
use std::sync::Mutex;

use lettermint_core::{ProjectCaller, TokenDigest};

/// Most identities kept; beyond it the cache starts over.
const CAPACITY: usize = 100_000;

/// Digest → caller identity.
#[derive(Debug, Default)]
pub struct IdentityCache(Mutex<HashMap<TokenDigest, ProjectCaller>>);

impl IdentityCache {
    /// The identity behind `digest`, if known.
    pub fn get(&self, digest: &TokenDigest) -> Option<ProjectCaller> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(digest)
            .copied()
    }

    /// Remembers an identity just authenticated against the store.
    pub fn insert(&self, caller: ProjectCaller) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(caller.credential.digest, caller);
    }

    /// Forgets an identity whose token was refused at commit.
    pub fn forget(&self, digest: &TokenDigest) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(digest);
    }
}
