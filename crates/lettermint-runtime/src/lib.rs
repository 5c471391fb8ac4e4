//! What every front door (the HTTP API, the SMTP relay) runs beside its protocol, on tokio:
//!
//! - [`committer`]: group commit. Requests hand their messages to writer tasks that commit many
//!   submissions in one transaction and answer each only after the commit.
//! - [`usage`]: the bounded write-behind queue of token usage, flushed at least every second and
//!   on shutdown; overflow is dropped and counted, never blocking a request.
//! - [`signal`]: waiting for SIGTERM or SIGINT.
//! - [`hashing`]: argon2id password hashing on the blocking pool, bounded.
//! - [`process`]: a server binary's frame: logging, the runtime, exit codes, stdout lines.

#![warn(missing_docs)]

pub mod committer;
pub mod hashing;
pub mod process;
pub mod signal;
pub mod usage;

pub use committer::{Committer, Writers};
pub use hashing::BlockingHasher;
pub use usage::UsageRecorder;
