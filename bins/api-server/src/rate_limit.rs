//! Per-team-token rate limits in fixed one-minute windows: 300 reads, 60 writes and 10
//! regenerations a minute (a regeneration also counts as a write). Counted per process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettermint_core::TokenId;

/// What a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// GET requests.
    Read,
    /// Other requests.
    Write,
    /// Token regeneration (`regenerate`, `rotate-token`).
    Regenerate,
}

impl Class {
    fn limit(self) -> u32 {
        match self {
            Class::Read => 300,
            Class::Write => 60,
            Class::Regenerate => 10,
        }
    }
}

const WINDOW: Duration = Duration::from_secs(60);

/// The state of the limit a request was counted against, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// Counters per token and class.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<(TokenId, Class), (Instant, u32)>>,
}

impl RateLimiter {
    /// Counts a request of `classes` (all must allow it) for `token` at `now`.
    pub fn check(&self, token: TokenId, classes: &[Class], now: Instant) -> Verdict {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let mut verdicts = Vec::with_capacity(classes.len());
        for class in classes {
            let (start, count) = windows.entry((token, *class)).or_insert((now, 0));
            if now.duration_since(*start) >= WINDOW {
                *start = now;
                *count = 0;
            }
            let reset = WINDOW.saturating_sub(now.duration_since(*start));
            verdicts.push((*class, *count < class.limit(), *count, reset));
        }
        let allowed = verdicts.iter().all(|v| v.1);
        if allowed {
            for (class, ..) in &verdicts {
                if let Some((_, count)) = windows.get_mut(&(token, *class)) {
                    *count += 1;
                }
            }
        }
        // Report the tightest limit involved.
        let (class, _, count, reset) = verdicts
            .iter()
            .copied()
            .min_by_key(|(class, _, count, _)| class.limit().saturating_sub(*count))
            .unwrap_or((Class::Read, true, 0, WINDOW));
        let used = if allowed { count + 1 } else { count };
        Verdict {
            allowed,
            limit: class.limit(),
            remaining: class.limit().saturating_sub(used),
            reset_secs: reset.as_secs().max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_class_and_reset_after_a_minute() {
        let limiter = RateLimiter::default();
        let token = TokenId::new();
        let start = Instant::now();
        for i in 0..10 {
            let v = limiter.check(token, &[Class::Write, Class::Regenerate], start);
            assert!(v.allowed, "{i}");
            assert_eq!((v.limit, v.remaining), (10, 9 - i));
        }
        let refused = limiter.check(token, &[Class::Write, Class::Regenerate], start);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        // Writes still have room: 60 - 10 used.
        let write = limiter.check(token, &[Class::Write], start);
        assert!(write.allowed);
        assert_eq!(write.remaining, 49);
        // Another token is counted apart.
        assert!(
            limiter
                .check(TokenId::new(), &[Class::Regenerate], start)
                .allowed
        );
        // A minute later the window starts again.
        let later = start + Duration::from_secs(61);
        assert!(
            limiter
                .check(token, &[Class::Write, Class::Regenerate], later)
                .allowed
        );
        let reads = (0..300)
            .filter(|_| limiter.check(token, &[Class::Read], later).allowed)
            .count();
        assert_eq!(reads, 300);
        assert!(!limiter.check(token, &[Class::Read], later).allowed);
    }
}
