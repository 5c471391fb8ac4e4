//! The one place where driver errors become domain errors, for both stores.

use lettermint_core::Error;

/// A unique key of the schema, as each dialect names it when it is violated, and what the
/// caller is told.
struct UniqueKey {
    /// PostgreSQL names the constraint.
    constraint: &'static str,
    /// SQLite names the columns: "UNIQUE constraint failed: t.a, t.b".
    columns: &'static str,
    message: &'static str,
}

const UNIQUE_KEYS: &[UniqueKey] = &[
    UniqueKey {
        constraint: "project_tokens_active_name",
        columns: "project_tokens.project_id, project_tokens.name",
        message: "A token with this name already exists in this project.",
    },
    UniqueKey {
        constraint: "team_tokens_active_name",
        columns: "team_tokens.team_id, team_tokens.name",
        message: "A team token with this name already exists in this team.",
    },
    UniqueKey {
        constraint: "routes_project_slug",
        columns: "routes.project_id, routes.slug",
        message: "A route with this slug already exists.",
    },
    UniqueKey {
        constraint: "project_tokens_digest",
        columns: "project_tokens.digest",
        message: "A token with this value already exists.",
    },
    UniqueKey {
        constraint: "team_tokens_digest",
        columns: "team_tokens.digest",
        message: "A token with this value already exists.",
    },
    UniqueKey {
        constraint: "accounts_email",
        columns: "accounts.email",
        message: "An account with this email already exists.",
    },
    UniqueKey {
        constraint: "team_members_pkey",
        columns: "team_members.team_id, team_members.account_id",
        message: "This account is already a member of this team.",
    },
    UniqueKey {
        constraint: "sessions_digest",
        columns: "sessions.digest",
        message: "A session with this value already exists.",
    },
];

/// Maps a sqlx error into the domain error. Unique violations become conflicts with a message
/// chosen by the key; foreign key violations say what is missing; everything else is a storage
/// failure.
pub fn fix_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        let constraint = db.constraint();
        if db.is_unique_violation() {
            let key = UNIQUE_KEYS.iter().find(|key| match constraint {
                Some(name) => name == key.constraint,
                None => db.message().contains(key.columns),
            });
            return Error::conflict(key.map_or("The resource already exists.", |k| k.message));
        }
        if db.is_foreign_key_violation() {
            return Error::not_found(match constraint {
                // SQLite does not say which reference failed.
                None => "resource",
                // Before "team": `team_members_account_id_fkey` names both.
                Some(c) if c.contains("account") => "account",
                Some(c) if c.contains("team") => "team",
                Some(c) if c.contains("route") => "route",
                Some(c) if c.contains("token") => "token",
                Some(_) => "project",
            });
        }
    }
    Error::storage(err)
}

/// Shorthand for `.map_err(fix_error)`.
pub trait ResultExt<T> {
    /// The result with its error mapped by [`fix_error`].
    fn fix(self) -> Result<T, Error>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn fix(self) -> Result<T, Error> {
        self.map_err(fix_error)
    }
}
