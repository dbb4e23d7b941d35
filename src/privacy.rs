//! Client addresses: which one a request comes from, and how much of it
//! may be written to logs (by default: nothing).

use std::net::IpAddr;

use crate::config::{Cidr, LogClientIp};

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which
/// case the right-most `X-Forwarded-For` entry that is not itself a trusted
/// proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
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

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let xff = Some("203.0.113.9, 10.1.1.1");
        assert_eq!(
            client_ip(ip("198.51.100.1"), xff, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("127.0.0.1"), xff, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("127.0.0.1"), None, &trusted), ip("127.0.0.1"));
        assert_eq!(
            client_ip(ip("127.0.0.1"), Some("junk"), &trusted),
            ip("127.0.0.1")
        );
        // A client cannot hide behind a spoofed left-most entry.
        let spoofed = Some("1.2.3.4, 203.0.113.9");
        assert_eq!(
            client_ip(ip("127.0.0.1"), spoofed, &trusted),
            ip("203.0.113.9")
        );
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
