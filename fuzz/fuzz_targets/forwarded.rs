//! `privacy::client_ip` with any `Forwarded` / `X-Forwarded-For` values.
//! Fields: `peer` (the socket address, default 127.0.0.1), `trusted` (one
//! network per line, default 127.0.0.0/8, 10.0.0.0/8, ::1, fd00::/8);
//! every other line whose name and value make a valid header is appended
//! to the request's headers (so `forwarded …` and `x-forwarded-for …`,
//! repeated as often as wanted). Invalid header values are skipped.
//!
//! An untrusted peer is always the client; the answer never depends on
//! anything but the inputs; `privacy::loggable` accepts every answer.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use upslot::config::{Cidr, LogClientIp};
use upslot::privacy::{client_ip, loggable};
use upslot_fuzz::Fields;

const DEFAULT_TRUSTED: [&str; 4] = ["127.0.0.0/8", "10.0.0.0/8", "::1", "fd00::/8"];

fuzz_target!(|data: &[u8]| {
    let fields = Fields::parse(data);
    let peer = fields
        .number("peer")
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let mut trusted: Vec<Cidr> = fields
        .all("trusted")
        .filter_map(|line| std::str::from_utf8(line).ok()?.parse().ok())
        .collect();
    if fields.get("trusted").is_none() {
        trusted = DEFAULT_TRUSTED
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect();
    }
    let mut headers = HeaderMap::new();
    for (name, value) in fields.pairs() {
        if name == b"peer" || name == b"trusted" {
            continue;
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        headers.append(name, value);
    }

    let client = client_ip(peer, &headers, &trusted);
    if !trusted.iter().any(|net| net.contains(peer)) {
        assert_eq!(client, peer, "an untrusted peer chose its own address");
    }
    assert_eq!(client_ip(peer, &headers, &trusted), client);
    assert_eq!(loggable(client, LogClientIp::None), None);
    assert!(loggable(client, LogClientIp::Truncated).is_some());
    assert!(loggable(client, LogClientIp::Full).is_some());
});
