//! Client addresses: which one a request comes from, how much of it may be
//! written to logs (by default: nothing), and the brief in-memory record of
//! failed attempts.

pub mod attempts;

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, header};

use crate::config::{Cidr, LogClientIp};

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which
/// case the right-most forwarded hop that is not itself a trusted proxy.
/// Hops come from `Forwarded` (RFC 7239) if present, else from
/// `X-Forwarded-For`; an unparsable hop stops the walk.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(*ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The forwarded-for hops, first (client side) to last; `None` for a hop
/// that is not an address (`unknown`, obfuscated names, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or(",").split(','))
            .map(str::trim)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let forwarded = values(header::FORWARDED);
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })?
            })
            .collect();
    }
    values(HeaderName::from_static("x-forwarded-for"))
        .iter()
        .map(|hop| parse_node(hop))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    text.rsplit_once(':')?
        .0
        .parse::<std::net::Ipv4Addr>()
        .ok()
        .map(IpAddr::V4)
}

/// What of `ip` may appear in a log line under `mode`.
pub fn loggable(ip: IpAddr, mode: LogClientIp) -> Option<String> {
    match mode {
        LogClientIp::None => None,
        LogClientIp::Full => Some(ip.to_string()),
        LogClientIp::Truncated => Some(match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &xff, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &xff, &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
            ip("127.0.0.1")
        );
        let junk = headers(&[("x-forwarded-for", "junk")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &junk, &trusted), ip("127.0.0.1"));
        // A client cannot hide behind a spoofed left-most entry.
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        let split = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &split, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn rfc_7239_forwarded() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap()];
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43")]);
        assert_eq!(client_ip(ip("127.0.0.1"), &fwd, &trusted), ip("192.0.2.60"));
        let v6 = headers(&[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &v6, &trusted),
            ip("2001:db8:cafe::17")
        );
        let port = headers(&[("forwarded", "for=\"192.0.2.43:47011\", for=198.51.100.17")]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &port, &trusted),
            ip("198.51.100.17")
        );
        // Forwarded wins over X-Forwarded-For; "unknown" stops the walk.
        let both = headers(&[
            ("forwarded", "for=unknown"),
            ("x-forwarded-for", "192.0.2.1"),
        ]);
        assert_eq!(client_ip(ip("127.0.0.1"), &both, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn log_modes() {
        assert_eq!(loggable(ip("192.0.2.77"), LogClientIp::None), None);
        assert_eq!(
            loggable(ip("192.0.2.77"), LogClientIp::Truncated).as_deref(),
            Some("192.0.2.0/24")
        );
        assert_eq!(
            loggable(ip("2001:db8:aa:bb::1"), LogClientIp::Truncated).as_deref(),
            Some("2001:db8:aa::/48")
        );
        assert_eq!(
            loggable(ip("192.0.2.77"), LogClientIp::Full).as_deref(),
            Some("192.0.2.77")
        );
    }
}
