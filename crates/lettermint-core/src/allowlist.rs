//! Per-token IP allowlists: the client addresses a token may be used from.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result, ValidationErrors};

/// Most entries one token's list may hold.
pub const MAX_ALLOWED_IPS: usize = 100;

/// The networks (CIDRs, IPv4 or IPv6) a token may be used from. Empty means any address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// The list that allows every address.
    #[must_use]
    pub const fn any() -> Self {
        Self(Vec::new())
    }

    /// Parses entries given by a person: CIDRs (`203.0.113.0/24`, `2001:db8::/32`) or single
    /// addresses (a `/32` or `/128`). A bad entry is a validation error naming `field.N`.
    /// Duplicates are kept once; host bits are cleared (`10.0.0.7/8` is `10.0.0.0/8`).
    pub fn parse<S: AsRef<str>>(field: &str, entries: &[S]) -> Result<Self> {
        let mut errors = ValidationErrors::default();
        if entries.len() > MAX_ALLOWED_IPS {
            errors.add(
                field,
                format!("The {field} field must not have more than {MAX_ALLOWED_IPS} entries."),
            );
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            match parse_net(entry.as_ref()) {
                Some(net) if !nets.contains(&net) => nets.push(net),
                Some(_) => {}
                None => errors.add(
                    format!("{field}.{i}"),
                    format!(
                        "The {field}.{i} field must be an IPv4 or IPv6 network in CIDR notation \
                         (such as 203.0.113.0/24 or 2001:db8::/32) or an address."
                    ),
                ),
            }
        }
        errors.into_result()?;
        Ok(Self(nets))
    }

    /// The list as stored (entries separated by spaces; empty for any address).
    #[must_use]
    pub fn to_stored(&self) -> String {
        self.to_string()
    }

    /// The list from its stored form.
    pub fn from_stored(stored: &str) -> Result<Self> {
        stored
            .split_ascii_whitespace()
            .map(|e| {
                e.parse::<IpNet>()
                    .map_err(|_| Error::Storage(format!("stored allowlist entry `{e}`").into()))
            })
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// Whether the stored list `stored` allows `client` (see [`IpAllowlist::allows`]),
    /// without building the list: what the send path checks on every commit. An entry that
    /// does not parse allows nothing.
    #[must_use]
    pub fn stored_allows(stored: &str, client: Option<IpAddr>) -> bool {
        let mut entries = stored.split_ascii_whitespace().peekable();
        if entries.peek().is_none() {
            return true;
        }
        let Some(client) = client.map(canonical) else {
            return false;
        };
        entries.any(|e| e.parse::<IpNet>().is_ok_and(|net| net.contains(&client)))
    }

    /// Whether a request from `client` may use the token: always when the list is empty;
    /// otherwise only from a known address inside one of the networks. IPv4-mapped IPv6
    /// addresses (`::ffff:203.0.113.7`) count as their IPv4 address.
    #[must_use]
    pub fn allows(&self, client: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        client
            .map(canonical)
            .is_some_and(|ip| self.0.iter().any(|net| net.contains(&ip)))
    }

    /// True when every address is allowed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks, in the order given.
    #[must_use]
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// The networks as strings (`203.0.113.0/24`).
    #[must_use]
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for IpAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    Some(
        match net {
            // An IPv4-mapped network is kept as the IPv4 network it maps.
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?,
                None => net,
            },
            _ => net,
        }
        .trunc(),
    )
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn empty_list_allows_any_address_even_unknown() {
        let any = IpAllowlist::any();
        assert!(any.allows(ip("203.0.113.7")));
        assert!(any.allows(ip("2001:db8::1")));
        assert!(any.allows(None));
        assert!(IpAllowlist::stored_allows("", None));
    }

    #[test]
    fn ipv4_ipv6_and_mapped_addresses_match_their_networks() {
        let list = IpAllowlist::parse("allowed_ips", &["203.0.113.0/24", "2001:db8::/32"]).unwrap();
        assert!(list.allows(ip("203.0.113.200")));
        assert!(!list.allows(ip("203.0.114.1")));
        assert!(list.allows(ip("2001:db8:1::5")));
        assert!(!list.allows(ip("2001:db9::1")));
        // IPv4-mapped IPv6 is the IPv4 address.
        assert!(list.allows(ip("::ffff:203.0.113.9")));
        assert!(!list.allows(ip("::ffff:198.51.100.1")));
        // A list and an unknown client: refused.
        assert!(!list.allows(None));
        let stored = list.to_stored();
        assert_eq!(stored, "203.0.113.0/24 2001:db8::/32");
        assert_eq!(IpAllowlist::from_stored(&stored).unwrap(), list);
        assert!(IpAllowlist::stored_allows(
            &stored,
            ip("::ffff:203.0.113.9")
        ));
        assert!(!IpAllowlist::stored_allows(&stored, ip("192.0.2.1")));
        assert!(!IpAllowlist::stored_allows(&stored, None));
    }

    #[test]
    fn entries_are_normalised_and_bad_ones_named_by_index() {
        let list = IpAllowlist::parse(
            "allowed_ips",
            &["10.0.0.7/8", "127.0.0.1", "::ffff:192.0.2.0/120"],
        )
        .unwrap();
        assert_eq!(
            list.to_strings(),
            ["10.0.0.0/8", "127.0.0.1/32", "192.0.2.0/24"]
        );
        let Err(Error::Validation(errors)) =
            IpAllowlist::parse("allowed_ips", &["10.0.0.0/8", "nope", "10.0.0.0/33"])
        else {
            panic!("expected a validation error");
        };
        let fields: Vec<&String> = errors.fields().keys().collect();
        assert_eq!(fields, ["allowed_ips.1", "allowed_ips.2"]);
    }
}
