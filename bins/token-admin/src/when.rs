//! Durations (`30d`, `1h30m`) and instants (RFC 3339 or a date) given on the command line.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

const DURATION_HINT: &str = "use a number followed by s, m, h, d or w, e.g. 30d, 12h, 90m or 1h30m";

/// Parses `30d`, `12h`, `15m`, `45s`, `2w` and sums like `1h30m`.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration `{input}`: {why}; {DURATION_HINT}");
    let text = input.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total = Duration::ZERO;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.is_empty() {
            return Err(bad("expected a number"));
        }
        let n: i64 = digits.parse().map_err(|_| bad("the number is too large"))?;
        digits.clear();
        let unit = match c {
            's' => Duration::SECOND,
            'm' => Duration::MINUTE,
            'h' => Duration::HOUR,
            'd' => Duration::DAY,
            'w' => Duration::WEEK,
            other => return Err(bad(&format!("unknown unit `{other}`"))),
        };
        let part = unit
            .checked_mul(i32::try_from(n).map_err(|_| bad("the number is too large"))?)
            .ok_or_else(|| bad("it is too long"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| bad("it is too long"))?;
    }
    if !digits.is_empty() {
        return Err(bad("the number has no unit"));
    }
    if total <= Duration::ZERO {
        return Err(bad("it must be longer than zero"));
    }
    if total > Duration::days(365 * 100) {
        return Err(bad("it is longer than 100 years"));
    }
    Ok(total)
}

/// Parses an RFC 3339 instant or a date (midnight UTC).
pub fn parse_instant(input: &str) -> Result<OffsetDateTime, String> {
    let text = input.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.to_offset(UtcOffset::UTC));
    }
    if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        return Ok(date.midnight().assume_utc());
    }
    Err(format!(
        "invalid time `{input}`: use RFC 3339 (2026-12-31T23:59:59Z) or a date (2026-12-31)"
    ))
}

/// `--since`: a duration back from now, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long ago.
    Ago(Duration),
    /// From this instant.
    At(OffsetDateTime),
}

impl Since {
    /// Parses `1h` (a duration) or an instant.
    pub fn parse(input: &str) -> Result<Self, String> {
        match parse_duration(input) {
            Ok(d) => Ok(Since::Ago(d)),
            Err(duration_error) => parse_instant(input)
                .map(Since::At)
                .map_err(|_| format!("{duration_error}, or an RFC 3339 instant")),
        }
    }

    /// The instant it names, `now` being now.
    #[must_use]
    pub fn instant(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Since::Ago(d) => now - d,
            Since::At(at) => at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn durations_sum_their_parts() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        assert_eq!(parse_duration("45s").unwrap(), Duration::seconds(45));
    }

    #[test]
    fn bad_durations_say_what_is_wrong() {
        for (input, why) in [
            ("", "it is empty"),
            ("3x", "unknown unit `x`"),
            ("30", "the number has no unit"),
            ("d", "expected a number"),
            ("0h", "longer than zero"),
            ("99999999999d", "too large"),
            ("-1h", "expected a number"),
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.contains("30d"), "{err}");
        }
    }

    #[test]
    fn instants_are_rfc3339_or_dates_in_utc() {
        assert_eq!(
            parse_instant("2026-12-31T23:59:59+01:00").unwrap(),
            datetime!(2026-12-31 22:59:59 UTC)
        );
        assert_eq!(
            parse_instant("2026-12-31").unwrap(),
            datetime!(2026-12-31 0:00 UTC)
        );
        assert!(parse_instant("tomorrow").is_err());
    }

    #[test]
    fn since_takes_a_duration_or_an_instant() {
        let now = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(
            Since::parse("1h").unwrap().instant(now),
            datetime!(2026-01-01 11:00 UTC)
        );
        assert_eq!(
            Since::parse("2025-12-31").unwrap().instant(now),
            datetime!(2025-12-31 0:00 UTC)
        );
        assert!(Since::parse("yesterday").is_err());
    }
}
