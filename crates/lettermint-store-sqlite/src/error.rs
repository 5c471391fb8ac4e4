//! The one place where driver errors become domain errors.

use lettermint_core::Error;

/// Maps a sqlx error into the domain error. Unique violations become conflicts with a message
/// chosen by constraint name; everything else is a storage failure.
pub(crate) fn fix_error(err: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &err {
        // SQLite names the columns, not the index: "UNIQUE constraint failed: t.a, t.b".
        let text = db.message();
        if db.is_unique_violation() {
            let message = if text.contains("project_tokens.project_id, project_tokens.name") {
                "A token with this name already exists in this project."
            } else if text.contains("team_tokens.team_id, team_tokens.name") {
                "A team token with this name already exists in this team."
            } else if text.contains("routes.project_id, routes.slug") {
                "A route with this slug already exists."
            } else if text.contains("tokens.digest") {
                "A token with this value already exists."
            } else {
                "The resource already exists."
            };
            return Error::conflict(message);
        }
        if db.is_foreign_key_violation() {
            // SQLite does not say which reference failed.
            return Error::not_found("resource");
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
