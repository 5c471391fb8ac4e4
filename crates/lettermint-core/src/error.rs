//! The one error type of the domain. It names no storage library: stores map their driver errors
//! into [`Error::Conflict`] or [`Error::Storage`] in one place each.

use std::collections::BTreeMap;
use std::fmt;

use crate::auth::AuthFailure;

/// Everything a service can answer instead of a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid; every bad field is named.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// The resource does not exist, or exists in a scope the caller cannot see. The two are
    /// deliberately indistinguishable.
    #[error("{entity} not found")]
    NotFound {
        /// What was looked for (`project`, `token`, ...).
        entity: &'static str,
    },
    /// The request conflicts with the current state (a duplicate name, a revoked token).
    #[error("{message}")]
    Conflict {
        /// What conflicts, in words fit for the caller.
        message: String,
    },
    /// The caller's token does not authenticate. The reason is for logs; callers get one answer
    /// whatever it is.
    #[error("unauthenticated")]
    Unauthenticated(AuthFailure),
    /// The caller is authenticated but lacks an ability.
    #[error("the token lacks the `{required}` ability")]
    Forbidden {
        /// The ability that was needed.
        required: String,
    },
    /// The store failed (unreachable, timed out, corrupt). Carries the driver's error for logs;
    /// never show it to a client.
    #[error("storage failure: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The operating system could not provide randomness for a new token.
    #[error(transparent)]
    Randomness(#[from] crate::token::RandomnessUnavailable),
}

/// Shorthand for results of the domain.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A not-found error for `entity`.
    #[must_use]
    pub const fn not_found(entity: &'static str) -> Self {
        Error::NotFound { entity }
    }

    /// A conflict with a message for the caller.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }

    /// A validation error about a single field.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let mut errors = ValidationErrors::default();
        errors.add(field, problem);
        Error::Validation(errors)
    }

    /// Wraps a storage failure.
    pub fn storage(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Storage(Box::new(err))
    }
}

/// Validation problems keyed by field path (`to.0`, `name`), each with one or more messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    fields: BTreeMap<String, Vec<String>>,
}

impl ValidationErrors {
    /// Records a problem with `field`.
    pub fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.fields
            .entry(field.into())
            .or_default()
            .push(problem.into());
    }

    /// True when nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The problems, by field path, fields in lexical order.
    #[must_use]
    pub fn fields(&self) -> &BTreeMap<String, Vec<String>> {
        &self.fields
    }

    /// `Ok(())` when empty, the errors otherwise.
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self))
        }
    }
}

impl fmt::Display for ValidationErrors {
    /// The first problem, plus how many more there are: the shape of a `422` summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.fields.values().map(Vec::len).sum();
        match self
            .fields
            .iter()
            .next()
            .and_then(|(k, v)| v.first().map(|m| (k, m)))
        {
            None => f.write_str("the given data was invalid"),
            Some((_, first)) if total == 1 => write!(f, "{first}"),
            Some((_, first)) => write!(
                f,
                "{first} (and {} more error{})",
                total - 1,
                if total == 2 { "" } else { "s" }
            ),
        }
    }
}
