//! Delivery of accepted messages.
//!
//! A [`Worker`] claims due messages from a store ([`lettermint_core::repo::DeliveryRepository`]),
//! renders each ([`mime`]: API messages built into MIME, SMTP messages byte for byte), hands it
//! to a [`Relay`] (an upstream smarthost, [`SmtpRelay`], or the development maildir,
//! [`MaildirRelay`]) and settles the attempt: `delivered`, `deferred` (retried with exponential
//! backoff and jitter) or `failed`. See [`lettermint_core::delivery`] for the state rules and
//! the at-least-once guarantee.
//!
//! This crate names no HTTP type; the `mail-worker` binary wires it to a store and a config.

#![warn(missing_docs)]

pub mod mime;
pub mod relay;
pub mod smtp;
pub mod worker;

pub use relay::{MaildirRelay, Reached, Relay, RelayError, SmarthostConfig, SmtpRelay, TlsMode};
pub use worker::{Pass, Worker, WorkerConfig};
