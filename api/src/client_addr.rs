//! The client's address: the one every limit, log line and audit record names.
//!
//! Behind proxies listed in `TRUSTED_PROXIES`, the client is the rightmost
//! `X-Forwarded-For` (else `Forwarded: for=`) hop that is not itself a trusted proxy: hops
//! to its left were written by the client and prove nothing. Otherwise it is the peer.

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::state::AppState;

/// The client's address as [`client_ip`] finds it (`unknown` without a socket peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl ClientAddr {
    /// The address of the client that sent `req`, by the app's `TRUSTED_PROXIES`.
    pub fn of(req: &HttpRequest) -> Self {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.trusted_proxies.as_slice())
            .unwrap_or_default();
        Self(client_ip(
            req.peer_addr().map(|a| a.ip()),
            req.headers(),
            trusted,
        ))
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl FromRequest for ClientAddr {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

/// The client behind `peer`: `peer` itself unless it is in `trusted`; then, walking the
/// forwarded hops from the right, the first that is not trusted. A hop that cannot be read
/// ends the walk at the trusted proxy that reported it; all hops trusted, the leftmost.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical())?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_hops(headers).iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

/// The forwarded hops, leftmost first: every `X-Forwarded-For` value, or if there is none,
/// the `for=` of every `Forwarded` element.
fn forwarded_hops(headers: &HeaderMap) -> Vec<String> {
    let split = |name| {
        headers
            .get_all(name)
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .map(|hop| hop.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let hops = split(header::X_FORWARDED_FOR);
    if !hops.is_empty() {
        return hops;
    }
    split(header::FORWARDED)
        .iter()
        .map(|element| {
            element
                .split(';')
                .find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| value.trim_matches('"').to_owned())
                })
                .unwrap_or_default()
        })
        .collect()
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_even_when_proxies_are_trusted() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        // The client wrote `1.1.1.1` itself; the ingress appended the real address.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9")]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn chained_trusted_proxies_are_skipped_across_header_lines() {
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.9"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_proxy_without_forwarded_headers_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let none = HeaderMap::new();
        assert_eq!(client_ip(ip("10.0.0.5"), &none, &trusted), ip("10.0.0.5"));
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_reported_it() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9, garbage, 10.0.0.7")]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("10.0.0.7"));
    }

    #[test]
    fn all_hops_trusted_gives_the_leftmost() {
        let h = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_when_x_forwarded_for_is_absent() {
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.5"#,
        )]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &trusted),
            ip("2001:db8:cafe::17")
        );
    }

    #[test]
    fn ports_and_ipv4_mapped_addresses_are_read_as_plain_addresses() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn no_peer_is_unknown() {
        assert_eq!(client_ip(None, &HeaderMap::new(), &[]), None);
        assert_eq!(ClientAddr(None).to_string(), "unknown");
    }
}
