//! Identifiers: newtypes over UUID v7, so a `ProjectId` can never be passed where a `TokenId` is
//! expected, and ids sort by creation time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (for example one read back from a store).
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// Identifies a team, the owner of projects and team tokens.
    TeamId
);
id_type!(
    /// Identifies a project, the unit that sends mail.
    ProjectId
);
id_type!(
    /// Identifies a route of a project (for example its `default` route).
    RouteId
);
id_type!(
    /// Identifies a token of either kind (project or team). Ids are unique across both kinds,
    /// so a log entry can name its token by id alone.
    TokenId
);
id_type!(
    /// Identifies an entry of a token's log.
    LogEntryId
);
id_type!(
    /// Identifies an accepted message.
    MessageId
);
id_type!(
    /// Identifies one delivery worker's claim on a message: only the holder of the current
    /// lease can settle it, so a worker that stalled past its lease cannot overwrite the
    /// outcome of the worker that took the message over.
    LeaseId
);

id_type!(
    /// Identifies an account: a person who logs in to the dashboard, member of one or more teams.
    AccountId
);
id_type!(
    /// Identifies a dashboard session (not its secret: the browser holds a random value whose
    /// digest is stored).
    SessionId
);
id_type!(
    /// Identifies an entry of the audit log.
    AuditEntryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_v7_and_round_trip_through_strings() {
        let id = ProjectId::new();
        assert_eq!(id.as_uuid().get_version_num(), 7);
        let parsed: ProjectId = id.to_string().parse().unwrap();
        assert_eq!(parsed, id);
        assert!("not-a-uuid".parse::<ProjectId>().is_err());
    }
}
