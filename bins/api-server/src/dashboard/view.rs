//! How pages show times and values.

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, macros::format_description};

/// "just now", "5 minutes ago", "in 3 days".
#[must_use]
pub fn relative(now: OffsetDateTime, at: OffsetDateTime) -> String {
    let delta = now - at;
    let (future, span) = if delta.is_negative() {
        (true, -delta)
    } else {
        (false, delta)
    };
    if span < Duration::seconds(45) {
        return if future { "in a moment" } else { "just now" }.to_owned();
    }
    let (n, unit) = if span < Duration::minutes(90) {
        (span.whole_minutes().max(1), "minute")
    } else if span < Duration::hours(36) {
        (span.whole_hours(), "hour")
    } else if span < Duration::days(60) {
        (span.whole_days(), "day")
    } else if span < Duration::days(730) {
        (span.whole_days() / 30, "month")
    } else {
        (span.whole_days() / 365, "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// "2026-12-03 11:40 UTC".
#[must_use]
pub fn absolute(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

/// RFC 3339, for `<time datetime>`.
#[must_use]
pub fn iso(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// Percent-encodes a query component.
#[must_use]
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A local path to return to after login: only paths on this site (`/…`, not `//host`).
#[must_use]
pub fn local_path(next: &str) -> &str {
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.starts_with("/login")
    {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn relative_times_read_naturally() {
        let now = datetime!(2026-12-03 12:00 UTC);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now, now - Duration::minutes(1)), "1 minute ago");
        assert_eq!(relative(now, now - Duration::minutes(5)), "5 minutes ago");
        assert_eq!(relative(now, now - Duration::hours(3)), "3 hours ago");
        assert_eq!(relative(now, now - Duration::days(2)), "2 days ago");
        assert_eq!(relative(now, now + Duration::days(7)), "in 7 days");
        assert_eq!(absolute(now), "2026-12-03 12:00 UTC");
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path("/teams/x"), "/teams/x");
        assert_eq!(local_path("//evil.example"), "/");
        assert_eq!(local_path("https://evil.example"), "/");
        assert_eq!(local_path("/\\evil.example"), "/");
        assert_eq!(local_path("/login?next=/x"), "/");
        assert_eq!(encode_component("/a b?c=d"), "/a%20b%3Fc%3Dd");
    }
}
