//! How a command fails: one line for the operator and an exit code.

use std::fmt;
use std::io;

use lettermint_core::Error;
use lettermint_store::OpenError;

/// A failed command. Its text is one line, shown after `error: `.
#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong, whatever the store holds (exit code 2).
    Usage(String),
    /// The command is well formed but could not be carried out (exit code 1).
    Operational(String),
    /// Standard output was closed (for example piped into `head`): stop quietly.
    BrokenPipe,
}

/// Shorthand for command results.
pub type CmdResult<T = ()> = Result<T, Failure>;

impl Failure {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::Usage(message.into())
    }

    /// An operational error.
    pub fn operational(message: impl Into<String>) -> Self {
        Failure::Operational(message.into())
    }

    /// The process exit code.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Operational(_) => 1,
            Failure::BrokenPipe => 0,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Failure::Usage(m) | Failure::Operational(m) => m.as_str(),
            Failure::BrokenPipe => "standard output was closed",
        };
        f.write_str(&one_line(text))
    }
}

/// Collapses line breaks so that an error is always one line.
#[must_use]
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::Validation(v) => Failure::Usage(
                v.fields()
                    .values()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Error::NotFound { entity } => Failure::Operational(format!("{entity} not found")),
            Error::Conflict { message } => Failure::Operational(message),
            Error::Storage(source) => Failure::Operational(format!("storage failure: {source}")),
            other => Failure::Operational(other.to_string()),
        }
    }
}

impl From<OpenError> for Failure {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::UnsupportedUrl(_) => Failure::Usage(err.to_string()),
            OpenError::Backend(Error::Storage(source)) => {
                Failure::Operational(format!("cannot open the database: {source}"))
            }
            other => Failure::Operational(other.to_string()),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Operational(format!("cannot write the output: {err}"))
        }
    }
}
