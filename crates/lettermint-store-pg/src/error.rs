//! The one place where driver errors become domain errors.

use lettermint_core::Error;

/// Maps a sqlx error into the domain error. Unique violations become conflicts with a message
/// chosen by constraint name; everything else is a storage failure.
pub(crate) fn fix_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            let message = match db.constraint() {
                Some("project_tokens_active_name") => {
                    "A token with this name already exists in this project."
                }
                Some("team_tokens_active_name") => {
                    "A team token with this name already exists in this team."
                }
                Some("routes_project_slug") => "A route with this slug already exists.",
                Some("project_tokens_digest" | "team_tokens_digest") => {
                    "A token with this value already exists."
                }
                _ => "The resource already exists.",
            };
            return Error::conflict(message);
        }
        if db.is_foreign_key_violation() {
            return Error::not_found(match db.constraint() {
                Some(c) if c.contains("team") => "team",
                Some(c) if c.contains("route") => "route",
                Some(c) if c.contains("token") => "token",
                _ => "project",
            });
        }
    }
    Error::storage(err)
}

/// Shorthand for `.map_err(fix_error)`.
pub(crate) trait ResultExt<T> {
    fn fix(self) -> Result<T, Error>;
}

impl<T> ResultExt<T> for Result<T, sqlx::Error> {
    fn fix(self) -> Result<T, Error> {
        self.map_err(fix_error)
    }
}
