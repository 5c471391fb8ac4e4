//! Rotation with an overlap: a token's new value works at once, its previous value keeps working
//! until the overlap ends, so that clients can move to the new value without an outage.

use std::str::FromStr;

use time::Duration;

use crate::error::{Error, Result};
use crate::model::UnknownVariant;

/// Longest overlap a rotation may keep the previous value for.
pub const MAX_OVERLAP: Duration = Duration::days(7);

/// How long the previous value of a rotated token keeps working: more than zero, at most
/// [`MAX_OVERLAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Overlap(Duration);

impl Overlap {
    /// Parses a duration written as a number and a unit (`90s`, `30m`, `24h`, `7d`); errors
    /// name `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                field,
                format!(
                    "The {field} field must be a duration such as 30m, 24h or 7d (s, m, h or d), \
                     of at most 7 days."
                ),
            )
        };
        let text = text.trim();
        let unit_at = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (number, unit) = text.split_at(unit_at);
        let number: i64 = number.parse().map_err(|_| invalid())?;
        let seconds = match unit {
            "s" => Some(number),
            "m" => number.checked_mul(60),
            "h" => number.checked_mul(3_600),
            "d" => number.checked_mul(86_400),
            _ => None,
        }
        .ok_or_else(invalid)?;
        Self::new(Duration::seconds(seconds)).map_err(|_| invalid())
    }

    /// An overlap of `duration`; a validation error (naming `overlap`) unless it is more than
    /// zero and at most [`MAX_OVERLAP`].
    pub fn new(duration: Duration) -> Result<Self> {
        if duration <= Duration::ZERO || duration > MAX_OVERLAP {
            return Err(Error::invalid(
                "overlap",
                "The overlap field must be more than zero and at most 7 days.",
            ));
        }
        Ok(Self(duration))
    }

    /// The duration.
    #[must_use]
    pub const fn duration(self) -> Duration {
        self.0
    }
}

/// Which of a token's values was presented: its current value, or the previous one during a
/// rotation's overlap. Logged with each use, so that operators see when the previous value is no
/// longer in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialSlot {
    /// The value issued last.
    Current,
    /// The value replaced by a rotation, valid until the overlap ends.
    Previous,
}

impl CredentialSlot {
    /// Stored and wire name (`current`, `previous`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialSlot::Current => "current",
            CredentialSlot::Previous => "previous",
        }
    }
}

impl FromStr for CredentialSlot {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "current" => Ok(CredentialSlot::Current),
            "previous" => Ok(CredentialSlot::Previous),
            other => Err(UnknownVariant(other.to_owned())),
        }
    }
}

impl std::fmt::Display for CredentialSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_parse_with_units_and_are_bounded() {
        assert_eq!(
            Overlap::parse("overlap", "30m").unwrap().duration(),
            Duration::minutes(30)
        );
        assert_eq!(
            Overlap::parse("overlap", "24h").unwrap().duration(),
            Duration::hours(24)
        );
        assert_eq!(
            Overlap::parse("overlap", "7d").unwrap().duration(),
            MAX_OVERLAP
        );
        assert_eq!(
            Overlap::parse("overlap", "2s").unwrap().duration(),
            Duration::seconds(2)
        );
        for bad in [
            "",
            "0h",
            "8d",
            "169h",
            "24",
            "h",
            "1w",
            "-1h",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(
                matches!(Overlap::parse("overlap", bad), Err(Error::Validation(_))),
                "{bad}"
            );
        }
    }
}
