//! Every row of DESIGN.md §3, over HTTP, against the real binary.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::time::Duration;

use common::{
    SECRET, Upslot, client, data, health, jwt, mac_hex, raw, unix_now, v1_query, v2_query,
};
use reqwest::{Client, StatusCode, header};

/// PUTs `body` to `wire_path` with a v1 token signed for `decoded_path`.
async fn put_v1(
    server: &Upslot,
    wire_path: &str,
    decoded_path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let query = v1_query(decoded_path, body.len() as u64);
    client()
        .put(server.url(&format!("{wire_path}?{query}")))
        .body(body)
        .send()
        .await
        .expect("put")
}

#[tokio::test]
async fn v1_upload_then_download_with_all_file_headers() {
    let server = Upslot::start("");
    let body = data(12_345);
    let query = v1_query("abc123/photo 1.jpg", body.len() as u64);
    let response = client()
        .put(server.url(&format!("abc123/photo%201.jpg?{query}")))
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let response = client()
        .get(server.url("abc123/photo%201.jpg"))
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
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
    let response = client()
        .head(server.url("abc123/photo%201.jpg"))
        .header(header::ACCEPT_ENCODING, "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "12345");
    assert_eq!(response.headers()[header::ETAG], h[header::ETAG]);
    assert!(response.bytes().await.unwrap().is_empty());

    // Clients may encode the same name with upper-case escapes.
    let response = client()
        .get(server.url("abc123/photo%201.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn v2_token_and_jwt_uploads() {
    let server = Upslot::start_with("", "delete_secret = \"d3l3t3\"", "", &[]);
    // v2 signs the Content-Type.
    let name = "slot-v2/tr%C3%A8s%20cool.jpg";
    let query = v2_query("slot-v2/très cool.jpg", 3, "image/jpeg");
    let r = client()
        .put(server.url(&format!("{name}?{query}")))
        .header(header::CONTENT_TYPE, "image/jpeg")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Lower-case escapes reach the same file.
    let r = client()
        .get(server.url("slot-v2/tr%c3%a8s%20cool.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_DISPOSITION],
        "inline; filename=\"tr_s cool.jpg\"; filename*=UTF-8''tr%C3%A8s%20cool.jpg"
    );

    // v2 without any Content-Type signs application/octet-stream.
    let query = v2_query("slot-v2b/file.bin", 3, "application/octet-stream");
    let r = client()
        .put(server.url(&format!("slot-v2b/file.bin?{query}")))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .get(server.url("slot-v2b/file.bin"))
        .send()
        .await
        .unwrap();
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
    let mac = mac_hex(SECRET, b"slot-tok/a.txt\x003\x00text/plain");
    let r = client()
        .put(server.url(&format!("slot-tok/a.txt?token={mac}")))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Prosody mod_http_file_share: the JWT's filetype is stored.
    let now = unix_now();
    let token = jwt(&format!(
        r#"{{"slot":"jwtslot","filename":"x.png","filesize":4,"filetype":"image/png","sub":"romeo@montague.tld","iat":{now},"exp":{}}}"#,
        now + 300
    ));
    let r = client()
        .put(server.url("jwtslot/x.png"))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body("\u{89}PNG")
        .send()
        .await
        .unwrap();
    // "\u{89}" is two bytes in UTF-8: the body is 5 bytes, the token says 4.
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = client()
        .put(server.url("jwtslot/x.png"))
        .bearer_auth(&token)
        .body(vec![0x89, b'P', b'N', b'G'])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .get(server.url("jwtslot/x.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");

    // Metronome's signed DELETE: 204, then the file is gone.
    let bad = client()
        .delete(server.url("slot-tok/a.txt?token=00"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    let mac = mac_hex(SECRET, b"slot-tok/a.txt\x00d3l3t3");
    let r = client()
        .delete(server.url(&format!("slot-tok/a.txt?token={mac}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client()
        .get(server.url("slot-tok/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn refused_tokens() {
    let server = Upslot::start("");
    let put = |url: String| client().put(url).body("hello");
    // No token at all.
    let r = put(server.url("s1/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.text().await.unwrap().split(':').next(),
        Some("token_missing")
    );
    // Wrong MAC, wrong size under the MAC, wrong secret.
    let r = put(server.url("s1/a.txt?v=00ff")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let q = v1_query("s1/a.txt", 6);
    let r = put(server.url(&format!("s1/a.txt?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let q = format!("v={}", mac_hex("other", b"s1/a.txt 5"));
    let r = put(server.url(&format!("s1/a.txt?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A MAC for another path.
    let q = v1_query("s1/b.txt", 5);
    let r = put(server.url(&format!("s1/a.txt?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let now = unix_now();
    let claims = |slot: &str, exp: i64| {
        format!(
            r#"{{"slot":"{slot}","filesize":5,"filetype":"text/plain","exp":{exp},"iat":{now}}}"#
        )
    };
    // Expired JWT, JWT for another slot, tampered JWT.
    let r = put(server.url("s2/a.txt"))
        .bearer_auth(jwt(&claims("s2", now - 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = put(server.url("s2/a.txt"))
        .bearer_auth(jwt(&claims("other", now + 300)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut tampered = jwt(&claims("s2", now + 300));
    tampered.push('A');
    let r = put(server.url("s2/a.txt"))
        .bearer_auth(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
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
    let q = v1_query("s/a.txt", 1);
    let r = client()
        .put(server.url(&format!("s/a.txt?{q}")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
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
    let r = client().get(server.url("len/a.bin")).send().await.unwrap();
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
    let now = unix_now();
    let token = jwt(&format!(
        r#"{{"slot":"jwtc","filesize":10,"exp":{}}}"#,
        now + 300
    ));
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
    let r = put_v1(&server, "len/a.bin", "len/a.bin", b"0123456789".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(
        server.files().iter().all(|f| !f.starts_with("tmp/")),
        "{:?}",
        server.files()
    );
}

#[tokio::test]
async fn completed_slot_is_never_overwritten() {
    let server = Upslot::start("");
    let r = put_v1(&server, "dup/a.txt", "dup/a.txt", b"first".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = put_v1(&server, "dup/a.txt", "dup/a.txt", b"other".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let body = client()
        .get(server.url("dup/a.txt"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), b"first");
}

#[tokio::test]
async fn upload_larger_than_every_buffer_round_trips() {
    let server = Upslot::start("");
    let body = data(24 << 20);
    let r = put_v1(&server, "big/blob.bin", "big/blob.bin", body.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let got = client()
        .get(server.url("big/blob.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got.as_ref() == &body[..], "bytes differ");
    // A range deep inside the file.
    let r = client()
        .get(server.url("big/blob.bin"))
        .header(header::RANGE, "bytes=10000000-10999999")
        .send()
        .await
        .unwrap();
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
    let r = client().get(server.url("drop/a.bin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = put_v1(&server, "drop/a.bin", "drop/a.bin", data(len)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn concurrent_puts_to_one_slot_have_one_winner() {
    let server = Upslot::start("");
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let url = server.url(&format!("race/a.bin?{}", v1_query("race/a.bin", 2 << 20)));
        tasks.push(tokio::spawn(async move {
            let r = client()
                .put(url)
                .body(vec![i; 2 << 20])
                .send()
                .await
                .unwrap();
            (r.status(), i)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, i) = task.await.unwrap();
        match status {
            StatusCode::CREATED => winners.push(i),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one upload wins");
    let body = client()
        .get(server.url("race/a.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
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
    let r = put_v1(&server, "exp/a.txt", "exp/a.txt", b"soon gone".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client().get(server.url("exp/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = client().get(server.url("exp/a.txt")).send().await.unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served after expiry"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = client().head(server.url("exp/a.txt")).send().await.unwrap();
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
    let now = unix_now();
    let token = jwt(&format!(
        r#"{{"slot":"jexp","filesize":1,"expires":{},"exp":{}}}"#,
        now - 5,
        now + 300
    ));
    let r = client()
        .put(server.url("jexp/a"))
        .bearer_auth(token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn ranges_and_conditionals() {
    let server = Upslot::start("");
    let body = data(1000);
    let r = put_v1(&server, "rng/v.mp4", "rng/v.mp4", body.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let get = |range: &str| {
        client()
            .get(server.url("rng/v.mp4"))
            .header(header::RANGE, range.to_string())
            .send()
    };

    let r = get("bytes=0-1").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 0-1/1000");
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "2");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[..2]);

    let r = get("bytes=-500").await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 500-999/1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[500..]);

    let r = get("bytes=990-").await.unwrap();
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes 990-999/1000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[990..]);

    let r = get("bytes=1000-").await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */1000");

    let r = get("bytes=0-1,5-6").await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "multiple ranges: the whole file"
    );
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    let full = client().get(server.url("rng/v.mp4")).send().await.unwrap();
    let etag = full.headers()[header::ETAG].to_str().unwrap().to_string();
    let modified = full.headers()[header::LAST_MODIFIED]
        .to_str()
        .unwrap()
        .to_string();

    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()[header::ETAG], etag.as_str());
    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::IF_NONE_MATCH, "\"nope\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::IF_MODIFIED_SINCE, &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::IF_MODIFIED_SINCE, "Sun, 06 Nov 1994 08:49:37 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // If-Range: the range only applies while the validator matches.
    let r = get("bytes=0-9").await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let r = client()
        .get(server.url("rng/v.mp4"))
        .header(header::RANGE, "bytes=0-9")
        .header(header::IF_RANGE, "\"stale\"")
        .send()
        .await
        .unwrap();
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
    let r = client()
        .get(listed.url("s/a.jpg"))
        .header(header::ORIGIN, "https://converse.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://converse.example"
    );
    let r = client()
        .get(listed.url("s/a.jpg"))
        .header(header::ORIGIN, "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn unknown_paths_methods_and_risky_types() {
    let server = Upslot::start("");
    for path in ["", "favicon.ico", "nope/missing.jpg"] {
        let r = client().get(server.url(path)).send().await.unwrap();
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
    let q = v2_query("xss/page.html", 24, "text/html");
    let r = client()
        .put(server.url(&format!("xss/page.html?{q}")))
        .header(header::CONTENT_TYPE, "text/html")
        .body("<script>alert(1)</script")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .get(server.url("xss/page.html"))
        .send()
        .await
        .unwrap();
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
    let q = v2_query("xss/i.svg", 5, "image/svg+xml");
    let r = client()
        .put(server.url(&format!("xss/i.svg?{q}")))
        .header(header::CONTENT_TYPE, "image/svg+xml")
        .body("<svg>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client().get(server.url("xss/i.svg")).send().await.unwrap();
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
    let q = v1_query("b/a.txt", 2);
    let r = client()
        .put(server.url(&format!("upload/b/a.txt?{q}")))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .get(server.url("upload/b/a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "hi");
    let r = client().get(server.url("b/a.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn storage_full_and_storage_down() {
    // A real full filesystem: an 8 MiB tmpfs holds the data directory.
    let mount = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(mount.path())
        .status()
        .expect("mount (the suite runs as root in CI)");
    assert!(
        status.success(),
        "cannot mount a tmpfs: run the suite as root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.path().to_path_buf());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [upload]\nsecret = \"{SECRET}\"\n[storage]\npath = \"{}/data\"\nmin_free = \"2MiB\"\n",
        mount.path().display()
    );
    let server = Upslot::start_raw(&config, &[]);
    let small = data(100_000);
    let r = put_v1(&server, "full/keep.bin", "full/keep.bin", small.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // Past the reserve: refused before the body is read.
    let q = v1_query("full/huge.bin", 7 << 20);
    let head = format!(
        "PUT /full/huge.bin?{q} HTTP/1.1\r\nContent-Length: {}\r\nExpect: 100-continue",
        7 << 20
    );
    let (status, text) = raw::exchange(&server.base_url, &head, b"", false);
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("storage_full"));

    // Space runs out mid-write: two uploads that each fit alone.
    let uploads = (0..2).map(|i| {
        let url = server.url(&format!(
            "full/half{i}.bin?{}",
            v1_query(&format!("full/half{i}.bin"), 4 << 20)
        ));
        tokio::spawn(async move {
            client()
                .put(url)
                .body(data(4 << 20))
                .send()
                .await
                .map(|r| r.status())
        })
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
    let got = client()
        .get(server.url("full/keep.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(got.as_ref() == &small[..]);

    // Service resumes by itself once space is freed (here: the operator
    // removes the stored halves).
    for entry in std::fs::read_dir(mount.path().join("data/blobs")).unwrap() {
        for blob in std::fs::read_dir(entry.unwrap().path()).unwrap() {
            let blob = blob.unwrap();
            if blob.metadata().unwrap().len() == 4 << 20 {
                std::fs::remove_file(blob.path()).unwrap();
            }
        }
    }
    let r = put_v1(&server, "full/after.bin", "full/after.bin", data(1 << 20)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    drop(server);

    // Storage gone: 503 and /health says so.
    let server = Upslot::start("");
    std::fs::remove_dir_all(server.data_dir.join("tmp")).unwrap();
    let r = put_v1(&server, "down/a.txt", "down/a.txt", b"x".to_vec()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health(&server).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    std::fs::create_dir(server.data_dir.join("tmp")).unwrap();
    let r = put_v1(&server, "down/a.txt", "down/a.txt", b"x".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let answer = health(&server).await;
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text} {:?}", server.log_lines());
}

#[tokio::test]
async fn http2_cleartext() {
    let server = Upslot::start("");
    let r = put_v1(&server, "h2/a.txt", "h2/a.txt", b"over h2".to_vec()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let h2 = Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(server.url("h2/a.txt")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "7");
    assert_eq!(r.text().await.unwrap(), "over h2");
    let q = v1_query("h2/b.txt", 3);
    let r = h2
        .put(server.url(&format!("h2/b.txt?{q}")))
        .body("abc")
        .send()
        .await
        .unwrap();
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
    let r = put_v1(&server, "idle/a.bin", "idle/a.bin", data(1000)).await;
    assert_eq!(r.status(), StatusCode::CREATED, "a retry works");
}
