//! Privacy and abuse resistance with the real binary: bans from failed
//! attempts, per source address.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::time::Duration;

use common::{
    Claims, Put, Upslot, client_from, ejabberd_path, erase_request, erase_sig, metrics, unix_now,
};
use reqwest::{StatusCode, header};

const ROMEO: &str = "romeo@montague.tld";
const JULIET: &str = "juliet@capulet.lit";

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
    let valid = Put::v1("ok/a.txt", "x");
    let r = valid.clone().via(&attacker).send(&server).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.headers()["upslot-error"], "too_many_failures");
    assert_eq!(
        r.text().await.unwrap(),
        "Too many failed attempts; please try again in 10 minutes.\n"
    );
    let r = attacker.get(server.url("ok/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // The neighbour is unaffected and its successes record nothing.
    let r = valid.via(&neighbour).send(&server).await;
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
    let metrics = metrics(&server).await;
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

#[tokio::test]
async fn erasing_an_account_deletes_all_its_files_and_only_those() {
    let server = Upslot::start("");
    let http = client_from("127.0.0.1");
    let now = unix_now();
    for (sub, slot) in [(ROMEO, "r1"), (ROMEO, "r2"), (JULIET, "j1")] {
        let token = Claims::new(slot, 4)
            .sub(sub)
            .filetype("text/plain")
            .iat(now)
            .jwt();
        let r = Put::bearer(&format!("{slot}/note.txt"), &token, "note")
            .via(&http)
            .send(&server)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // ejabberd names the uploader by sha1(user@host) in the path.
    let path = ejabberd_path(ROMEO, "abcdef0123456789", "photo.jpg");
    let r = Put::v1(&path, "jpg").via(&http).send(&server).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        server
            .files()
            .iter()
            .filter(|f| f.starts_with("blobs/"))
            .count(),
        4
    );

    // Refused: a wrong signature, and a stale one.
    let r = erase_request(&server, ROMEO, now, &erase_sig(JULIET, now))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let stale = now - 600;
    let r = erase_request(&server, ROMEO, stale, &erase_sig(ROMEO, stale))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server
            .files()
            .iter()
            .filter(|f| f.starts_with("blobs/"))
            .count(),
        4
    );

    // The CLI signs with the configured secret and asks the running server.
    server.pin_admin_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_upslot"))
        .args(["erase", "--jid", ROMEO, "--config"])
        .arg(&server.config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "{\"deleted\":3}"
    );

    for gone in ["r1/note.txt", "r2/note.txt", &path] {
        let r = http.get(server.url(gone)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{gone}");
    }
    let r = http.get(server.url("j1/note.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "another account's file stays");
    assert_eq!(
        server
            .files()
            .iter()
            .filter(|f| f.starts_with("blobs/"))
            .count(),
        1
    );
    // A second erase finds nothing more (the JID percent-encoded this time).
    let r = erase_request(&server, "romeo%40montague.tld", now, &erase_sig(ROMEO, now))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().trim(), "{\"deleted\":0}");
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_idle_connections_do_not_block_uploads() {
    use std::io::{Read, Write};
    use std::time::Instant;
    let server = Upslot::start_with("header_timeout = \"2s\"", "", "", &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();

    // Slowloris: one header byte per second.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /a/b HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                closed = true; // an error response, then close
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never disconnected"
        );
    }
    assert!(closed, "the slow client was not disconnected");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Many idle connections do not stop a normal upload.
    let idle: Vec<_> = (0..300)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let r = Put::v1("busy/a.txt", "data")
        .via(&client_from("127.0.0.1"))
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(idle);
}

#[tokio::test]
async fn over_the_connection_cap_new_connections_are_refused_at_once() {
    use std::io::Read;
    let server = Upslot::start_with("max_connections = 4\nheader_timeout = \"60s\"", "", "", &[]);
    let addr = server.base_url.trim_start_matches("http://").to_string();
    let held: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = std::net::TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 16];
    // Refused at once: end of stream or a reset, not a read that waits.
    let waited = matches!(
        extra.read(&mut buf),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    );
    assert!(!waited, "the connection over the cap was left waiting");
    // Once the held connections go, service resumes.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match client_from("127.0.0.1").get(server.url("a/b")).send().await {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => break,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
