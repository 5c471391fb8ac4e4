//! Test support shared by the stores, the front doors and `xtask`:
//!
//! - [`pg`]: a throwaway PostgreSQL server started from the local binaries (`initdb`,
//!   `postgres`), on a random port with its socket and data in a temporary directory.
//! - [`conformance`]: the behaviours every store must show, run against each store by
//!   [`conformance_suite!`].
//! - [`process`]: a compiled binary run in its own process: started, waited for until it prints
//!   its `listening on` lines, stopped with SIGTERM (or killed when dropped).
//! - [`smtp_sink`]: an SMTP server on a loopback port that keeps what it receives and answers
//!   as a script says (the upstream of delivery tests and benchmarks).

#![warn(missing_docs)]

pub mod conformance;
pub mod pg;
pub mod process;
pub mod smtp_sink;
