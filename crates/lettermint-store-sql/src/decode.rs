//! Stored values into domain values. A value that does not parse is a storage error (the
//! database holds something this version did not write), never a panic.

use std::net::IpAddr;

use lettermint_core::{Channel, Error, LastUse};
use time::OffsetDateTime;

/// The error for a stored value that does not parse.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Storage(format!("stored {what} is invalid: {detail}").into())
}

/// Parses a stored string (an enum name, an address).
pub fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| corrupt(what, e))
}

/// Parses a stored, optional IP address.
pub fn parse_ip(value: Option<String>) -> Result<Option<IpAddr>, Error> {
    value.as_deref().map(|v| parse("ip", v)).transpose()
}

/// A token's last use from its three columns.
pub fn last_use(
    at: Option<OffsetDateTime>,
    ip: Option<String>,
    via: Option<String>,
) -> Result<LastUse, Error> {
    Ok(LastUse {
        at,
        ip: parse_ip(ip)?,
        via: via
            .as_deref()
            .map(|v| parse::<Channel>("via", v))
            .transpose()?,
    })
}

/// Parses a stored JSON text.
pub fn json<T: serde::de::DeserializeOwned>(what: &str, value: &str) -> Result<T, Error> {
    serde_json::from_str(value).map_err(|e| corrupt(what, e))
}

/// A value as the JSON text it is stored as.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Storage(Box::new(e)))
}
