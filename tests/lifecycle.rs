//! The process around the HTTP handlers: the CLI contract, running with no
//! config at all, TLS with certificate reload on SIGHUP, graceful shutdown.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::pki;
use common::{Upslot, raw, v1_query};
use reqwest::{Client, StatusCode};

fn upslot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upslot"));
    cmd.env_remove("UPSLOT_CONFIG");
    cmd
}

#[test]
fn check_config_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[upload]\nsecret = \"x\"\nmax_size = \"1GiB\"\n").unwrap();
    let out = upslot()
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration OK"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"x\""));
    // The daily quota defaults to ten times the largest upload.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("quotas: per account 10 GiB per 24 h"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let cases = [
        ("[upload]\nsecrt = \"x\"\n", "secrt"),
        ("[server]\nbase_path = \"up\"\n", "server.base_path"),
        ("[retention]\nkeep = \"forever\"\n", "forever"),
        (
            "[upload]\nsecret_file = \"/nonexistent/upslot-secret\"\n",
            "/nonexistent/upslot-secret",
        ),
        (
            "[server]\ntls = { cert = \"/nonexistent/c.pem\", key = \"/nonexistent/k.pem\" }\n",
            "/nonexistent/c.pem",
        ),
        ("this is not toml", "bad.toml"),
        (
            "[upload]\nmax_size = \"1GiB\"\n[quota]\nper_owner_stored = \"100MiB\"\n",
            "quota.per_owner_stored",
        ),
    ];
    for (text, needle) in cases {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        for command in ["check-config", "serve"] {
            let out = upslot()
                .arg(command)
                .arg("--config")
                .arg(&bad)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{command} {text:?}: {stderr}");
            assert!(stderr.contains(needle), "{command} {text:?}: {stderr}");
        }
    }
    // A bad environment override is a config error too.
    let out = upslot()
        .args(["check-config", "--config"])
        .arg(&good)
        .env("UPSLOT_SERVER__MAX_CONNECTIONS", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UPSLOT_SERVER__MAX_CONNECTIONS"));
    // UPSLOT_CONFIG names the file when --config is absent.
    let out = upslot()
        .arg("check-config")
        .env("UPSLOT_CONFIG", &good)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("1073741824 bytes"));
}

#[tokio::test]
async fn runs_with_no_config_and_prints_the_xmpp_lines_once() {
    let env = [
        ("UPSLOT_SERVER__LISTEN", "127.0.0.1:0"),
        ("UPSLOT_SERVER__ADMIN_LISTEN", "127.0.0.1:0"),
    ];
    let server = Upslot::start_without_config(None, &env);
    let printed = server.startup_stdout.join("\n");
    let secret_path = server.data_dir.join("keys/upload.secret");
    let secret = std::fs::read_to_string(&secret_path)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(secret.len(), 64);
    assert!(
        printed.contains(&format!("http_file_share_secret = \"{secret}\"")),
        "{printed}"
    );
    assert!(printed.contains(&format!("http_upload_external_secret = \"{secret}\"")));
    assert!(printed.contains(&format!("external_secret: \"{secret}\"")));
    // The generated secret signs uploads.
    let body = b"hello".to_vec();
    let mac = common::mac_hex(&secret, b"s/a.txt 5");
    let r = Client::new()
        .put(server.url(&format!("s/a.txt?v={mac}")))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A restart keeps the secret and the file, and prints no secret again.
    let dir = server.into_dir();
    let server = Upslot::start_without_config(Some(dir), &env);
    assert!(!server.startup_stdout.join("\n").contains(&secret));
    let r = Client::new()
        .get(server.url("s/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hello");
    // The secret is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0);
}

fn tls_client(ca_pem: &str) -> Client {
    Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn tls_serves_h2_and_reloads_the_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("fullchain.pem");
    let key = dir.path().join("privkey.pem");
    let first = pki("first");
    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let server = Upslot::start_with(
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}",
            cert.display().to_string(),
            key.display().to_string()
        ),
        "",
        "",
        &[],
    );
    assert!(
        server.base_url.starts_with("https://"),
        "{}",
        server.base_url
    );

    let client = tls_client(&first.ca_pem);
    let q = v1_query("tls/a.txt", 6);
    let r = client
        .put(server.url(&format!("tls/a.txt?{q}")))
        .body("secure")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client.get(server.url("tls/a.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    assert_eq!(r.text().await.unwrap(), "secure");
    let http1 = Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(first.ca_pem.as_bytes()).unwrap())
        .http1_only()
        .build()
        .unwrap();
    let r = http1.get(server.url("tls/a.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // A renewal: new files, SIGHUP, and new connections get the new certificate.
    let second = pki("second");
    std::fs::write(&cert, &second.cert_pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Fresh clients: no pooled connection from before the reload.
        if tls_client(&second.ca_pem)
            .get(server.url("tls/a.txt"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tls_client(&first.ca_pem)
            .get(server.url("tls/a.txt"))
            .send()
            .await
            .is_err()
    );

    // A broken renewal keeps the working certificate.
    std::fs::write(&cert, "garbage").unwrap();
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = tls_client(&second.ca_pem)
        .get(server.url("tls/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn sighup_without_tls_keeps_serving() {
    let mut server = Upslot::start("");
    server.signal("HUP");
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.wait_exit(Duration::from_millis(10)),
        None,
        "SIGHUP ended the process"
    );
    let r = Client::new().get(server.url("a/b")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    let mut server = Upslot::start("");
    let len = 2 << 20;
    let mut stream = raw::start_put(&server.base_url, "term/a.bin", len);
    stream.write_all(&vec![7u8; len / 2]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.files().iter().any(|f| f.starts_with("tmp/")) {
        assert!(Instant::now() < deadline, "upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    // New connections are no longer accepted...
    let addr = server.base_url.trim_start_matches("http://").to_string();
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "still accepting after SIGTERM"
    );
    // ...but the upload in flight completes.
    stream.write_all(&vec![7u8; len / 2]).unwrap();
    let (status, text) = raw::read_response(&mut stream);
    assert_eq!(status, 201, "{text}");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let files = server.files();
    assert!(files.iter().all(|f| !f.starts_with("tmp/")), "{files:?}");
    assert_eq!(files.iter().filter(|f| f.starts_with("blobs/")).count(), 1);
}

#[test]
fn a_stalled_upload_is_dropped_after_the_grace_period_without_leftovers() {
    let mut server = Upslot::start_with("shutdown_grace = \"1s\"", "", "", &[]);
    let len = 2 << 20;
    let mut stream = raw::start_put(&server.base_url, "stall/a.bin", len);
    stream.write_all(&vec![1u8; 1000]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.files().iter().any(|f| f.starts_with("tmp/")) {
        assert!(Instant::now() < deadline, "upload never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        server
            .files()
            .iter()
            .all(|f| !f.starts_with("tmp/") && !f.starts_with("blobs/"))
    );
}

#[test]
fn a_silent_tls_client_is_dropped_after_the_handshake_timeout() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("fullchain.pem");
    let key = dir.path().join("privkey.pem");
    let pki = pki("silent");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let server = Upslot::start_with(
        &format!(
            "tls = {{ cert = {:?}, key = {:?} }}\ntls_handshake_timeout = \"1s\"",
            cert.display().to_string(),
            key.display().to_string()
        ),
        "",
        "",
        &[],
    );
    let addr = server.base_url.trim_start_matches("https://").to_string();
    let mut silent = std::net::TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    // No ClientHello: the server closes the connection after the timeout.
    let read = silent.read(&mut buf);
    assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(8),
        "not closed by the timeout: {waited:?}"
    );
}
