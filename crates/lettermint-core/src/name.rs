//! Names people give to teams, projects, routes and tokens.

use std::fmt;

use crate::error::{Error, Result};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A validated display name: trimmed, 1–100 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    /// Validates `input` as the value of `field`; the error names the field.
    pub fn parse(field: &str, input: &str) -> Result<Self> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(Error::invalid(
                field,
                format!("The {field} field is required."),
            ));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(
                field,
                format!("The {field} field must not be greater than {MAX_NAME_CHARS} characters."),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Error::invalid(
                field,
                format!("The {field} field must not contain control characters."),
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// Wraps a name read back from a store, which only ever holds validated names.
    #[must_use]
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: Error) -> String {
        match err {
            Error::Validation(v) => v.fields().keys().next().unwrap().clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(
            Name::parse("name", "  Production  ").unwrap().as_str(),
            "Production"
        );
    }

    #[test]
    fn bad_names_are_rejected_naming_the_field() {
        assert_eq!(field_of(Name::parse("name", "   ").unwrap_err()), "name");
        assert_eq!(
            field_of(Name::parse("name", &"x".repeat(101)).unwrap_err()),
            "name"
        );
        assert_eq!(
            field_of(Name::parse("label", "a\u{0}b").unwrap_err()),
            "label"
        );
        assert_eq!(
            field_of(Name::parse("name", "tab\there").unwrap_err()),
            "name"
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(Name::parse("name", &"é".repeat(100)).is_ok());
        assert!(Name::parse("name", &"🚀".repeat(100)).is_ok());
        assert!(Name::parse("name", &"🚀".repeat(101)).is_err());
    }
}
