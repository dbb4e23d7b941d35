//! Privacy and abuse resistance with the real binary: bans from failed
//! attempts, per source address.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Upslot, v1_query};
use reqwest::{Client, StatusCode, header};

/// A client whose connections come from `source` (any 127.0.0.0/8 address
/// is local on Linux).
fn client_from(source: &str) -> Client {
    Client::builder()
        .no_proxy()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test]
async fn failed_attempts_ban_one_address_only() {
    let server =
        Upslot::start("[privacy]\nban_after = 5\nban_window = \"1m\"\nban_for = \"10m\"\n");
    let attacker = client_from("127.0.0.7");
    let neighbour = client_from("127.0.0.8");
    for i in 0..5 {
        let r = attacker
            .put(server.url(&format!("guess/{i}.txt?v=00")))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "attempt {i}");
    }
    // Banned now, even with a valid token.
    let q = v1_query("ok/a.txt", 1);
    let r = attacker
        .put(server.url(&format!("ok/a.txt?{q}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "Retry-After {retry}");
    assert!(r.text().await.unwrap().starts_with("too_many_failures"));
    let r = attacker.get(server.url("ok/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // The neighbour is unaffected and its successes record nothing.
    let r = neighbour
        .put(server.url(&format!("ok/a.txt?{q}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        neighbour
            .get(server.url("ok/a.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Metrics count, never name, the addresses.
    let metrics = client_from("127.0.0.1")
        .get(format!("{}/metrics", server.admin_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("upslot_failed_attempts_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("upslot_bans_total 1"), "{metrics}");
    assert!(
        metrics.contains("upslot_banned_requests_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("upslot_remembered_addresses 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("127.0.0.7"));
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_trusted_proxies() {
    // Behind a trusted proxy (127.0.0.1), the forwarded client is banned,
    // not the proxy.
    let server = Upslot::start_with(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        "",
        "[privacy]\nban_after = 2\n",
        &[],
    );
    let proxy = client_from("127.0.0.1");
    for _ in 0..2 {
        let r = proxy
            .put(server.url("g/a.txt?v=00"))
            .header("x-forwarded-for", "203.0.113.5")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let banned = proxy
        .get(server.url("g/a.txt"))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(banned.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = proxy
        .get(server.url("g/a.txt"))
        .header("forwarded", "for=198.51.100.9")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::NOT_FOUND,
        "another client behind the proxy"
    );

    // An untrusted peer cannot shift the blame with a forged header.
    let liar = client_from("127.0.0.9");
    for _ in 0..2 {
        liar.put(server.url("g/a.txt?v=00"))
            .header("x-forwarded-for", "198.51.100.77")
            .body("x")
            .send()
            .await
            .unwrap();
    }
    let r = liar.get(server.url("g/a.txt")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the peer itself is banned"
    );
    let r = proxy
        .get(server.url("g/a.txt"))
        .header("x-forwarded-for", "198.51.100.77")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "the forged address is not"
    );
}
