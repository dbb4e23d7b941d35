//! Every row of DESIGN.md §3, over HTTP, against the real binary.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::time::Duration;

use common::{
    Claims, Put, SECRET, Upslot, client, data, get, get_with, head, head_request, health, put,
    put_request, raw, signed_delete, unix_now, v1_query,
};
use reqwest::{Client, StatusCode, header};

#[tokio::test]
async fn v1_upload_then_download_with_all_file_headers() {
    let server = Upslot::start("");
    let body = data(12_345);
    let r = Put::v1("abc123/photo%201.jpg", body.clone())
        .decoded("abc123/photo 1.jpg")
        .content_type("image/jpeg")
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let response = get_with(
        &server,
        "abc123/photo%201.jpg",
        [(header::ACCEPT_ENCODING, "gzip, br")],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers().clone();
    assert_eq!(h[header::CONTENT_LENGTH], "12345");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(h[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(
        h[header::CONTENT_DISPOSITION],
        "inline; filename=\"photo 1.jpg\"; filename*=UTF-8''photo%201.jpg"
    );
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(
        h[header::CONTENT_SECURITY_POLICY],
        "default-src 'none'; media-src 'self'; frame-ancestors 'none'; sandbox"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(h.contains_key(header::ETAG));
    assert!(h.contains_key(header::LAST_MODIFIED));
    assert!(
        !h.contains_key(header::CONTENT_ENCODING),
        "never compressed"
    );
    let max_age: i64 = h[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        max_age > 0 && max_age <= 30 * 86_400,
        "Cache-Control must not outlive the file"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &body[..]);

    // HEAD, as Conversations sends it.
    let response = head_request(&server, "abc123/photo%201.jpg")
        .header(header::ACCEPT_ENCODING, "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "12345");
    assert_eq!(response.headers()[header::ETAG], h[header::ETAG]);
    assert!(response.bytes().await.unwrap().is_empty());

    // Clients may encode the same name with other escapes, in either case
    // (`%2E` and `%2e` are both '.').
    for wire in ["abc123/photo%201%2Ejpg", "abc123/photo%201%2ejpg"] {
        let response = get(&server, wire).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire}");
    }
    let response = get(&server, "abc123/photo%201.jpg").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn v2_token_and_jwt_uploads() {
    let server = Upslot::start_with("", "delete_secret = \"d3l3t3\"", "", &[]);
    // v2 signs the Content-Type.
    let r = Put::v2("slot-v2/tr%C3%A8s%20cool.jpg", "abc")
        .decoded("slot-v2/très cool.jpg")
        .content_type("image/jpeg")
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Lower-case escapes reach the same file.
    let r = get(&server, "slot-v2/tr%c3%a8s%20cool.jpg").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_DISPOSITION],
        "inline; filename=\"tr_s cool.jpg\"; filename*=UTF-8''tr%C3%A8s%20cool.jpg"
    );

    // v2 without any Content-Type signs application/octet-stream.
    let r = Put::v2("slot-v2b/file.bin", "abc").send(&server).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get(&server, "slot-v2b/file.bin").await;
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );

    // Metronome's token= uses the v2 message.
    let r = Put::token("slot-tok/a.txt", "abc")
        .content_type("text/plain")
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Prosody mod_http_file_share: the JWT's filetype is stored.
    let token = Claims::prosody("jwtslot", "x.png", 4)
        .filetype("image/png")
        .jwt();
    let r = Put::bearer("jwtslot/x.png", &token, "\u{89}PNG")
        .content_type("application/octet-stream")
        .send(&server)
        .await;
    // "\u{89}" is two bytes in UTF-8: the body is 5 bytes, the token says 4.
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = Put::bearer("jwtslot/x.png", &token, vec![0x89, b'P', b'N', b'G'])
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get(&server, "jwtslot/x.png").await;
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");

    // Metronome's signed DELETE: 204, then the file is gone.
    let bad = client()
        .delete(server.url("slot-tok/a.txt?token=00"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    let path = "slot-tok/a.txt";
    let r = signed_delete(&client(), &server, path, path, "d3l3t3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = get(&server, "slot-tok/a.txt").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refused_tokens() {
    let server = Upslot::start("");
    let unsigned = |url: String| client().put(url).body("hello");
    // No token at all.
    let r = unsigned(server.url("s1/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.headers()["upslot-error"], "token_missing");
    assert_eq!(
        r.text().await.unwrap(),
        "This upload link carries no authorization; please upload the file again.\n"
    );
    // Wrong MAC, wrong size under the MAC, wrong secret.
    let r = unsigned(server.url("s1/a.txt?v=00ff"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let wrong_size = Put::v1("s1/a.txt", "hello").signed_size(6);
    assert_eq!(wrong_size.status(&server).await, StatusCode::FORBIDDEN);
    let wrong_secret = Put::v1("s1/a.txt", "hello").secret("other");
    assert_eq!(wrong_secret.status(&server).await, StatusCode::FORBIDDEN);
    // A MAC for another path.
    let wrong_path = Put::v1("s1/a.txt", "hello").decoded("s1/b.txt");
    assert_eq!(wrong_path.status(&server).await, StatusCode::FORBIDDEN);

    let now = unix_now();
    let claims = |slot: &str, exp: i64| {
        Claims::new(slot, 5)
            .exp(exp)
            .filetype("text/plain")
            .iat(now)
    };
    // Expired JWT, JWT for another slot, tampered JWT.
    let expired = Put::bearer("s2/a.txt", &claims("s2", now - 1).jwt(), "hello");
    assert_eq!(expired.status(&server).await, StatusCode::FORBIDDEN);
    let elsewhere = Put::bearer("s2/a.txt", &claims("other", now + 300).jwt(), "hello");
    assert_eq!(elsewhere.status(&server).await, StatusCode::FORBIDDEN);
    let mut tampered = claims("s2", now + 300).jwt();
    tampered.push('A');
    let tampered = Put::bearer("s2/a.txt", &tampered, "hello");
    assert_eq!(tampered.status(&server).await, StatusCode::FORBIDDEN);
    // None of this stored anything.
    assert!(server.files().iter().all(|f| !f.starts_with("blobs/2")));
}

#[tokio::test]
async fn jwt_only_mode_asks_for_a_bearer_token() {
    let server = Upslot::start_with("", "protocols = [\"jwt\"]", "", &[]);
    let r = client()
        .put(server.url("s/a.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    // A v1 token is refused when v1 is disabled.
    assert_eq!(put(&server, "s/a.txt", "x").await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn length_rules() {
    let server = Upslot::start_with("", "max_size = \"1MiB\"", "", &[]);
    let q = v1_query("len/a.bin", 10);

    // Chunked in a MAC mode: 411.
    let head = format!("PUT /len/a.bin?{q} HTTP/1.1\r\nTransfer-Encoding: chunked");
    let (status, _) = raw::exchange(
        &server.base_url,
        &head,
        b"a\r\n0123456789\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(status, 411);

    // A body shorter than declared: 400, and nothing stored.
    let head = format!("PUT /len/a.bin?{q} HTTP/1.1\r\nContent-Length: 10");
    let (status, _) = raw::exchange(&server.base_url, &head, b"01234", true);
    assert_eq!(status, 400);
    let r = get(&server, "len/a.bin").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Larger than the limit: 413 before any body byte is sent.
    let big = 2 << 20;
    let q_big = v1_query("len/big.bin", big);
    let head = format!(
        "PUT /len/big.bin?{q_big} HTTP/1.1\r\nContent-Length: {big}\r\nExpect: 100-continue"
    );
    let (status, text) = raw::exchange(&server.base_url, &head, b"", false);
    assert_eq!(status, 413, "{text}");
    assert!(
        !text.contains("100 Continue"),
        "the body must not be invited"
    );

    // JWT with chunked body: the token's filesize is enforced while streaming.
    let token = Claims::new("jwtc", 10).jwt();
    let head = format!(
        "PUT /jwtc/c.bin HTTP/1.1\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked"
    );
    let (status, text) = raw::exchange(
        &server.base_url,
        &head,
        b"c\r\n0123456789ab\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(status, 413, "{text}");
    let (status, text) = raw::exchange(
        &server.base_url,
        &head,
        b"a\r\n0123456789\r\n0\r\n\r\n",
        false,
    );
    assert_eq!(status, 201, "{text}");

    // Afterwards the retry of the short upload works.
    assert_eq!(
        put(&server, "len/a.bin", b"0123456789").await,
        StatusCode::CREATED
    );
    assert!(
        server.files().iter().all(|f| !f.starts_with("tmp/")),
        "{:?}",
        server.files()
    );
}

#[tokio::test]
async fn completed_slot_is_never_overwritten() {
    let server = Upslot::start("");
    assert_eq!(
        put(&server, "dup/a.txt", b"first").await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&server, "dup/a.txt", b"other").await,
        StatusCode::CONFLICT
    );
    let body = get(&server, "dup/a.txt").await.bytes().await.unwrap();
    assert_eq!(body.as_ref(), b"first");
}

#[tokio::test]
async fn upload_larger_than_every_buffer_round_trips() {
    let server = Upslot::start("");
    let body = data(24 << 20);
    assert_eq!(
        put(&server, "big/blob.bin", body.clone()).await,
        StatusCode::CREATED
    );
    let got = get(&server, "big/blob.bin").await.bytes().await.unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got.as_ref() == &body[..], "bytes differ");
    // A range deep inside the file.
    let r = get_with(
        &server,
        "big/blob.bin",
        [(header::RANGE, "bytes=10000000-10999999")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &body[10_000_000..11_000_000]
    );
}

#[tokio::test]
async fn dropped_upload_leaves_nothing_and_can_be_retried() {
    use std::io::Write;
    let server = Upslot::start("");
    let len = 4 << 20;
    let mut stream = raw::start_put(&server.base_url, "drop/a.bin", len);
    stream.write_all(&data(1 << 20)).unwrap();
    // Wait until the partial upload is on disk, then vanish.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.files().iter().any(|f| f.starts_with("tmp/")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stream);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.files().iter().any(|f| f.starts_with("tmp/")) {
        assert!(
            std::time::Instant::now() < deadline,
            "temp file left behind"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = get(&server, "drop/a.bin").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        put(&server, "drop/a.bin", data(len)).await,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn concurrent_puts_to_one_slot_have_one_winner() {
    let server = Upslot::start("");
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let put = put_request(&server, "race/a.bin", vec![i; 2 << 20]);
        tasks.push(tokio::spawn(async move {
            // A PUT whose head arrives after the winner finished is refused
            // (409) before its body: the client may see the connection
            // close mid-send instead of the status.
            (put.send().await.map(|r| r.status()), i)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, i) = task.await.unwrap();
        match status {
            Ok(StatusCode::CREATED) => winners.push(i),
            Ok(StatusCode::CONFLICT) => {}
            Err(error) if error.is_request() => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one upload wins");
    let body = get(&server, "race/a.bin").await.bytes().await.unwrap();
    assert!(
        body.iter().all(|&b| b == winners[0]),
        "the winner's bytes are served"
    );
    let blobs = server
        .files()
        .into_iter()
        .filter(|f| f.starts_with("blobs/"))
        .count();
    assert_eq!(blobs, 1, "losers leave no blobs");
}

#[tokio::test]
async fn expired_files_are_never_served() {
    let server = Upslot::start("[retention]\nkeep = \"2s\"\nsweep_every = \"200ms\"\n");
    assert_eq!(
        put(&server, "exp/a.txt", b"soon gone").await,
        StatusCode::CREATED
    );
    let r = get(&server, "exp/a.txt").await;
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&server, "exp/a.txt").await;
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served after expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = head(&server, "exp/a.txt").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The sweeper deletes the blob soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.files().iter().any(|f| f.starts_with("blobs/")) {
        assert!(
            std::time::Instant::now() < deadline,
            "blob not swept: {:?}",
            server.files()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A JWT whose `expires` is earlier than `keep` wins: here, already past.
    let token = Claims::new("jexp", 1).expires(unix_now() - 5).jwt();
    let r = Put::bearer("jexp/a", &token, "x").send(&server).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ranges_and_conditionals() {
    let server = Upslot::start("");
    let body = data(1000);
    assert_eq!(
        put(&server, "rng/v.mp4", body.clone()).await,
        StatusCode::CREATED
    );
    let ranged = |range: &'static str| get_with(&server, "rng/v.mp4", [(header::RANGE, range)]);

    let r = ranged("bytes=0-1").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 0-1/1000");
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "2");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..2]);

    let r = ranged("bytes=-500").await;
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 500-999/1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[500..]);

    let r = ranged("bytes=990-").await;
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 990-999/1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[990..]);

    let r = ranged("bytes=1000-").await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");

    let r = ranged("bytes=0-1,5-6").await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "multiple ranges: the whole file"
    );
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    let full = get(&server, "rng/v.mp4").await;
    let etag = full.headers()[header::ETAG].to_str().unwrap().to_string();
    let modified = full.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_string();

    let r = get_with(&server, "rng/v.mp4", [(header::IF_NONE_MATCH, &etag)]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[header::ETAG], etag.as_str());
    let r = get_with(&server, "rng/v.mp4", [(header::IF_NONE_MATCH, "\"nope\"")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = get_with(
        &server,
        "rng/v.mp4",
        [(header::IF_MODIFIED_SINCE, &modified)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = get_with(
        &server,
        "rng/v.mp4",
        [(header::IF_MODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    // If-Range: the range only applies while the validator matches.
    let r = ranged("bytes=0-9").await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = get_with(
        &server,
        "rng/v.mp4",
        [(header::RANGE, "bytes=0-9"), (header::IF_RANGE, &etag)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = get_with(
        &server,
        "rng/v.mp4",
        [
            (header::RANGE, "bytes=0-9"),
            (header::IF_RANGE, "\"stale\""),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn preflight_and_cors() {
    let server = Upslot::start("");
    let r = client()
        .request(reqwest::Method::OPTIONS, server.url("s/a.jpg"))
        .header(header::ORIGIN, "https://converse.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PUT")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let h = r.headers();
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_METHODS],
        "GET, HEAD, PUT, OPTIONS"
    );
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "Authorization, Content-Type"
    );
    assert!(h.contains_key(header::ACCESS_CONTROL_MAX_AGE));
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

    let listed = Upslot::start_with("cors_origins = [\"https://converse.example\"]", "", "", &[]);
    let r = get_with(
        &listed,
        "s/a.jpg",
        [(header::ORIGIN, "https://converse.example")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://converse.example"
    );
    let r = get_with(
        &listed,
        "s/a.jpg",
        [(header::ORIGIN, "https://elsewhere.example")],
    )
    .await;
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn unknown_paths_methods_and_risky_types() {
    let server = Upslot::start("");
    for path in ["", "favicon.ico", "nope/missing.jpg"] {
        let r = get(&server, path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let r = client()
        .post(server.url("a/b"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().contains_key(header::ALLOW));
    let (status, _) = raw::exchange(
        &server.base_url,
        "PUT /a/b%zz HTTP/1.1\r\nContent-Length: 0",
        b"",
        false,
    );
    assert_eq!(status, 400);

    // A file whose token says HTML is served as an attachment in a sandbox.
    let r = Put::v2("xss/page.html", "<script>alert(1)</script")
        .content_type("text/html")
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get(&server, "xss/page.html").await;
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    let r = Put::v2("xss/i.svg", "<svg>")
        .content_type("image/svg+xml")
        .send(&server)
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = get(&server, "xss/i.svg").await;
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
}

#[tokio::test]
async fn base_path_is_stripped_before_the_mac() {
    let server = Upslot::start_with("base_path = \"/upload/\"", "", "", &[]);
    // The URL carries the base prefix; the MAC covers the path after it.
    let upload = Put::v1("upload/b/a.txt", "hi").decoded("b/a.txt");
    assert_eq!(upload.status(&server).await, StatusCode::CREATED);
    let r = get(&server, "upload/b/a.txt").await;
    assert_eq!(r.text().await.unwrap(), "hi");
    let r = get(&server, "b/a.txt").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// An 8 MiB tmpfs, a real filesystem that fills up; unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount_8m() -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (the suite runs as root in CI)");
        assert!(
            status.success(),
            "cannot mount a tmpfs: run the suite as root"
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Free bytes on the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|line| line.trim().parse().ok())
        .expect("df --output=avail")
}

#[tokio::test]
async fn an_index_commit_on_a_full_disk_fails_and_the_index_recovers() {
    // The blob takes the last free bytes, so the index's commit finds the
    // disk full: redb refuses every later operation on that handle.
    let mount = Tmpfs::mount_8m();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [upload]\nsecret = \"{SECRET}\"\n[storage]\npath = \"{}/data\"\nmin_free = \"0\"\n\
         [encryption]\nenabled = false\n",
        mount.path().display()
    );
    let server = Upslot::start_raw(&config, &[]);
    assert_eq!(
        put(&server, "tight/first.bin", data(1000)).await,
        StatusCode::CREATED
    );
    let filler = mount.path().join("filler");
    let room = free_bytes(mount.path());
    std::fs::write(&filler, vec![0u8; (room - 1_000_000) as usize]).unwrap();
    let size = free_bytes(mount.path());
    assert_eq!(
        put(&server, "tight/last.bin", data(size as usize)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("No space left on device")),
        "the index's commit should have hit the full disk: {:?}",
        server.log_lines()
    );
    // Nothing of it is served or left, and once space is freed the index
    // works again without a restart.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        get(&server, "tight/last.bin").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        put(&server, "tight/after.bin", data(1000)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        get(&server, "tight/first.bin").await.status(),
        StatusCode::OK
    );
    assert_eq!(health(&server).await.status(), StatusCode::OK);
    let blobs = common::files_below(&mount.path().join("data/blobs"));
    assert_eq!(
        blobs.len(),
        2,
        "the refused upload's blob is gone: {blobs:?}"
    );
}

#[tokio::test]
async fn storage_full_and_storage_down() {
    // A real full filesystem: an 8 MiB tmpfs holds the data directory.
    let mount = Tmpfs::mount_8m();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [upload]\nsecret = \"{SECRET}\"\n[storage]\npath = \"{}/data\"\nmin_free = \"2MiB\"\n",
        mount.path().display()
    );
    let server = Upslot::start_raw(&config, &[]);
    let small = data(100_000);
    assert_eq!(
        put(&server, "full/keep.bin", small.clone()).await,
        StatusCode::CREATED
    );
    // Past the reserve: refused before the body is read.
    let q = v1_query("full/huge.bin", 7 << 20);
    let head = format!(
        "PUT /full/huge.bin?{q} HTTP/1.1\r\nContent-Length: {}\r\nExpect: 100-continue",
        7 << 20
    );
    let (status, text) = raw::exchange(&server.base_url, &head, b"", false);
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("upslot-error: storage_full"), "{text}");
    assert!(text.contains("out of storage space"), "{text}");

    // Space runs out mid-write: two uploads that each fit alone.
    let uploads = (0..2).map(|i| {
        let put = put_request(&server, &format!("full/half{i}.bin"), data(4 << 20));
        tokio::spawn(async move { put.send().await.map(|r| r.status()) })
    });
    let mut statuses = Vec::new();
    for upload in uploads.collect::<Vec<_>>() {
        statuses.push(upload.await.unwrap());
    }
    assert!(
        statuses
            .iter()
            .any(|s| matches!(s, Ok(StatusCode::INSUFFICIENT_STORAGE))),
        "{statuses:?}"
    );
    // Nothing partial stays, and earlier files are intact.
    let leftovers: Vec<_> = std::fs::read_dir(mount.path().join("data/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty());
    let got = get(&server, "full/keep.bin").await.bytes().await.unwrap();
    assert!(got.as_ref() == &small[..]);

    // Service resumes by itself once space is freed (here: the operator
    // removes the stored half, if one got through: 4 MiB and, encrypted,
    // its tags).
    for entry in std::fs::read_dir(mount.path().join("data/blobs")).unwrap() {
        for blob in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            if blob.metadata().unwrap().len() >= 4 << 20 {
                std::fs::remove_file(blob.path()).unwrap();
            }
        }
    }
    assert_eq!(
        put(&server, "full/after.bin", data(1 << 20)).await,
        StatusCode::CREATED
    );
    drop(server);

    // Storage gone: 503 and /health says so.
    let server = Upslot::start("");
    std::fs::remove_dir_all(server.data_dir.join("tmp")).unwrap();
    assert_eq!(
        put(&server, "down/a.txt", b"x").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        health(&server).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    std::fs::create_dir(server.data_dir.join("tmp")).unwrap();
    assert_eq!(put(&server, "down/a.txt", b"x").await, StatusCode::CREATED);
    let answer = health(&server).await;
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text} {:?}", server.log_lines());
}

#[tokio::test]
async fn http2_cleartext() {
    let server = Upslot::start("");
    assert_eq!(
        put(&server, "h2/a.txt", b"over h2").await,
        StatusCode::CREATED
    );
    let h2 = Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(server.url("h2/a.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "7");
    assert_eq!(r.text().await.unwrap(), "over h2");
    let r = Put::v1("h2/b.txt", "abc").via(&h2).send(&server).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_leaves_nothing() {
    use std::io::Write;
    let server = Upslot::start_with("body_idle_timeout = \"1s\"", "", "", &[]);
    let mut stream = raw::start_put(&server.base_url, "idle/a.bin", 1000);
    stream.write_all(&[0u8; 100]).unwrap();
    let (status, text) = raw::read_response(&mut stream);
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("body_timeout"));
    assert!(
        server
            .files()
            .iter()
            .all(|f| !f.starts_with("tmp/") && !f.starts_with("blobs/"))
    );
    assert_eq!(
        put(&server, "idle/a.bin", data(1000)).await,
        StatusCode::CREATED,
        "a retry works"
    );
}
