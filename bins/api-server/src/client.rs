//! Who is on the other end: the client address (from the socket, or from `X-Forwarded-For` when
//! the socket peer is a trusted proxy) and the user agent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The client of a request.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// Client address, if known.
    pub ip: Option<IpAddr>,
    /// `User-Agent`, if sent.
    pub user_agent: Option<String>,
}

impl Client {
    /// Reads the client from a request.
    pub fn from_parts(parts: &Parts, trusted_proxies: &[IpAddr]) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Self {
            ip: peer.map(|peer| client_ip(peer, &parts.headers, trusted_proxies)),
            user_agent: parts
                .headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

/// The socket peer, unless it is a trusted proxy: then the right-most address in
/// `X-Forwarded-For` that is not itself a trusted proxy (addresses further left were written by
/// the client and could be anything).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !is_trusted_proxy(peer, trusted) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => chain.push(canonical(ip)),
                Err(_) => return peer,
            }
        }
    }
    chain
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Whether the socket peer is one of the trusted proxies (IPv4-mapped IPv6 peers match their
/// IPv4 entries).
pub fn is_trusted_proxy(peer: IpAddr, trusted: &[IpAddr]) -> bool {
    trusted.contains(&canonical(peer))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let h = headers(&["198.51.100.1, 203.0.113.7"]);
        assert_eq!(client_ip(proxy, &h, &[proxy]), client);
        // From an untrusted peer the header is ignored.
        assert_eq!(client_ip(client, &h, &[proxy]), client);
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &h, &[proxy]), stranger);
        // Chains of trusted proxies are skipped from the right.
        let inner: IpAddr = "10.0.0.2".parse().unwrap();
        let h = headers(&["203.0.113.7", "10.0.0.2"]);
        assert_eq!(client_ip(proxy, &h, &[proxy, inner]), client);
        // Garbage falls back to the peer.
        assert_eq!(client_ip(proxy, &headers(&["not an ip"]), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
        // IPv4-mapped IPv6 peers match IPv4 entries.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &headers(&["203.0.113.7"]), &[proxy]),
            client
        );
    }
}
