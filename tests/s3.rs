//! The real binary on a real S3-compatible server (`s3s-fs`): multipart
//! uploads, ranged downloads, expiry, aborted uploads, an outage and
//! download offload by redirect.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::time::{Duration, Instant};

use common::s3::S3Server;
use common::{
    Upslot, client, client_without_redirects, data, health, metric, metrics, put_request, raw,
    wait_for,
};
use reqwest::{StatusCode, header};

const BUCKET: &str = "uploads";

/// PUTs `body` to `path` as an image/png.
async fn put(server: &Upslot, path: &str, body: Vec<u8>) -> StatusCode {
    put_request(server, path, body)
        .header(header::CONTENT_TYPE, "image/png")
        .send()
        .await
        .unwrap()
        .status()
}

fn start(s3: &S3Server, rest: &str) -> Upslot {
    Upslot::start_with("", "", &format!("{}\n{rest}", s3.storage_toml(BUCKET)), &[])
}

/// Whether `key` has the shape upslot gives every object.
fn anonymous_key(key: &str) -> bool {
    let Some((day, id)) = key.split_once('/') else {
        return false;
    };
    day.len() == 10 && id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn multipart_uploads_ranges_and_expiry_on_s3() {
    let s3 = S3Server::start(BUCKET);
    let server = start(&s3, "[retention]\nkeep = \"4s\"\nsweep_every = \"1s\"\n");
    // 20 MiB: three parts of 8 MiB (the default part size), the last short.
    let big = data(20 << 20);
    assert_eq!(
        put(&server, "s3/big photo.png", big.clone()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&server, "s3/small.png", b"tiny".to_vec()).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&server, "s3/small.png", b"tiny".to_vec()).await,
        StatusCode::CONFLICT
    );

    let response = client()
        .get(server.url("s3/big%20photo.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert!(response.bytes().await.unwrap() == big);

    let response = client()
        .get(server.url("s3/big%20photo.png"))
        .header(header::RANGE, "bytes=10000000-10000099")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.bytes().await.unwrap(),
        &big[10_000_000..10_000_100]
    );
    let response = client()
        .head(server.url("s3/small.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "4");

    // Objects are named by day and random id only.
    let keys = s3.keys(BUCKET);
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| anonymous_key(k)), "{keys:?}");

    // Expiry: refused, then deleted from the bucket by the sweeper.
    wait_for("the files to expire", async || {
        client()
            .get(server.url("s3/small.png"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::NOT_FOUND
    })
    .await;
    wait_for("the objects to be deleted", async || {
        s3.keys(BUCKET).is_empty()
    })
    .await;
    assert_eq!(
        put(&server, "s3/small.png", b"tiny".to_vec()).await,
        StatusCode::CONFLICT,
        "a swept slot stays used"
    );
}

#[tokio::test]
async fn a_dropped_multipart_upload_is_aborted() {
    use std::io::Write;
    let s3 = S3Server::start(BUCKET);
    let server = start(&s3, "");
    let len = 24 << 20;
    let mut stream = raw::start_put(&server.base_url, "drop/a.bin", len);
    // Two parts' worth, so a multipart upload has started, then vanish.
    stream.write_all(&data(18 << 20)).unwrap();
    let stored = || dir_bytes(&s3.root);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stored() < 8 << 20 {
        assert!(Instant::now() < deadline, "no part reached the server");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
    wait_for("the parts to be aborted", async || stored() < 1 << 20).await;
    assert!(s3.keys(BUCKET).is_empty());
    let response = client().get(server.url("drop/a.bin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The slot is still free: a retry succeeds.
    assert_eq!(
        put(&server, "drop/a.bin", data(len)).await,
        StatusCode::CREATED
    );
}

/// Bytes of every file below `dir`, s3s-fs's in-progress parts included.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                dir_bytes(&path)
            } else {
                entry.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

#[tokio::test]
async fn an_s3_outage_gives_503_and_service_resumes() {
    let mut s3 = S3Server::start(BUCKET);
    let server = start(&s3, "");
    assert_eq!(
        put(&server, "up/before.png", b"before".to_vec()).await,
        StatusCode::CREATED
    );
    assert_eq!(health(&server).await.status(), StatusCode::OK);

    let (root, port) = (s3.root.clone(), s3.port());
    s3.stop();
    let response = health(&server).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("\"storage\":\"failed\"")
    );
    assert_eq!(
        put(&server, "down/a.png", data(1000)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        put(&server, "down/b.png", data(10 << 20)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let response = client()
        .get(server.url("up/before.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "upslot_storage_up"), 0.0);
    assert_eq!(metric(&text, "upslot_index_up"), 1.0);

    // The same server comes back: nothing to restart on upslot's side.
    let s3 = S3Server::start_at(&root, port);
    wait_for("health to recover", async || {
        health(&server).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        put(&server, "down/a.png", data(1000)).await,
        StatusCode::CREATED
    );
    let response = client()
        .get(server.url("up/before.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.bytes().await.unwrap(), &b"before"[..]);
    // Only the two complete uploads are stored.
    assert_eq!(s3.keys(BUCKET).len(), 2, "{:?}", s3.keys(BUCKET));
}

#[tokio::test]
async fn downloads_offloaded_to_presigned_urls() {
    let s3 = S3Server::start(BUCKET);
    let server = start(
        &s3,
        "[offload]\nmode = \"presigned\"\npresigned_ttl = \"1m\"\n\
         [encryption]\nenabled = false\n",
    );
    let body = data(300_000);
    assert_eq!(
        put(&server, "off/a b.png", body.clone()).await,
        StatusCode::CREATED
    );

    let response = client_without_redirects()
        .get(server.url("off/a%20b.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(&s3.endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(
        !location.contains("off/"),
        "the slot path stays out of the URL"
    );

    // A client following the redirect gets the bytes, ranges included.
    let response = client()
        .get(server.url("off/a%20b.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The signed URL carries the headers upslot would have sent.
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    let disposition = response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(
        disposition.starts_with("inline; filename=\"a b.png\""),
        "{disposition}"
    );
    assert!(response.bytes().await.unwrap() == body);
    let response = client()
        .get(server.url("off/a%20b.png"))
        .header(header::RANGE, "bytes=0-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), &body[..2]);

    // HEAD is answered by upslot with every header clients rely on.
    let response = client_without_redirects()
        .head(server.url("off/a%20b.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "300000");
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    assert_eq!(response.headers()[header::ACCEPT_RANGES], "bytes");
    // Unknown files are refused by upslot, not redirected.
    let response = client_without_redirects()
        .get(server.url("off/none.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn downloads_offloaded_to_a_cdn() {
    let s3 = S3Server::start(BUCKET);
    let server = start(
        &s3,
        "[offload]\nmode = \"cdn\"\ncdn_url = \"https://cdn.example.org/files/\"\n\
         [encryption]\nenabled = false\n",
    );
    assert_eq!(
        put(&server, "cdn/a.png", b"cdn bytes".to_vec()).await,
        StatusCode::CREATED
    );
    let response = client_without_redirects()
        .get(server.url("cdn/a.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    let key = location
        .strip_prefix("https://cdn.example.org/files/")
        .unwrap();
    assert_eq!(s3.keys(BUCKET), vec![key.to_string()]);
    assert!(anonymous_key(key));
}
