//! Dashboard sessions: random opaque values held by the browser, stored as SHA-256 digests (the
//! same rule as tokens), with an idle and an absolute expiry.
//!
//! The session value also keys the CSRF token of every form: [`SessionSecret::csrf_token`] is a
//! SHA-256 of a fixed label and the value, which only the holder of the (`HttpOnly`) cookie can
//! know, so no second secret has to be stored.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

use crate::error::Result;
use crate::id::{AccountId, SessionId};
use crate::token::TokenDigest;

/// Characters of a session value: 43 base62 characters, ~256 bits.
pub const SESSION_SECRET_LEN: usize = 43;

/// The browser's half of a session: the cookie value. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// A new random value.
    pub fn mint() -> Result<Self> {
        Ok(Self(crate::token::random_base62(SESSION_SECRET_LEN)?))
    }

    /// Parses a cookie value; `None` unless it has the shape of a minted value (no lookup).
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == SESSION_SECRET_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(value.to_owned()))
    }

    /// What the store keeps.
    #[must_use]
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::from_bytes(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The CSRF token of forms shown in this session (hex, 64 characters).
    #[must_use]
    pub fn csrf_token(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"lettermint dashboard csrf v1\0");
        hasher.update(self.0.as_bytes());
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    #[must_use]
    pub fn csrf_matches(&self, presented: &str) -> bool {
        let expected = self.csrf_token();
        expected.len() == presented.len()
            && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The cookie value. Set it in the browser; never log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after login, used or not.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    /// 30 minutes idle, 12 hours absolute (OWASP session management guidance).
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id (not the secret).
    pub id: SessionId,
    /// Who is logged in.
    pub account_id: AccountId,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Last request seen (moved forward at most once a minute).
    pub last_seen_at: OffsetDateTime,
    /// Ends after this instant if unused.
    pub idle_expires_at: OffsetDateTime,
    /// Ends after this instant whatever happens.
    pub expires_at: OffsetDateTime,
}

impl Session {
    /// Whether the session is still valid at `now`.
    #[must_use]
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.idle_expires_at && now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_parse_and_derive_a_csrf_token() {
        let a = SessionSecret::mint().unwrap();
        let b = SessionSecret::mint().unwrap();
        assert_ne!(a, b);
        assert_ne!(a.digest(), b.digest());
        assert_eq!(SessionSecret::parse(a.expose_secret()), Some(a.clone()));
        assert_eq!(SessionSecret::parse("short"), None);
        assert_eq!(SessionSecret::parse(&"-".repeat(SESSION_SECRET_LEN)), None);
        assert!(a.csrf_matches(&a.csrf_token()));
        assert!(!a.csrf_matches(&b.csrf_token()));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_token().contains(a.expose_secret()));
        assert_eq!(format!("{a:?}"), "SessionSecret(<redacted>)");
    }
}
