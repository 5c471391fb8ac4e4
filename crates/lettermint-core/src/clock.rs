//! Time, behind a trait so that rules about expiry can be tested at fixed instants.

use time::OffsetDateTime;

/// Where services read the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC, truncated to whole microseconds (the precision every store
    /// keeps), so that a value read back from a store equals the value written.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that always answers the same instant; for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.0)
    }
}

/// Drops the sub-microsecond part of an instant and normalises it to UTC.
#[must_use]
pub fn truncate_to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}
