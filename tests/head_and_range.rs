//! HEAD and Range the way mobile clients use them, through every way a
//! file can be served: from disk, from S3 through upslot, and from S3 by
//! the presigned-URL redirect (the client follows it, as HTTP clients do).
//! Conversations, for one, will not download a file automatically without
//! an exact size from HEAD, and resumes with `Range` and `If-Range`.
//!
//! One conformance run per path: HEAD gives the exact `Content-Length`, an
//! `ETag` and `Accept-Ranges: bytes` and no body; `bytes=0-1`, a suffix
//! (`bytes=-5`), an open end (`bytes=10-`) and `If-Range` with HEAD's
//! `ETag` each give the 206 and the bytes they name.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use common::s3::S3Server;
use common::{Upslot, client, client_without_redirects, data, put_request};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderName};

/// Large enough for several S3 parts' worth of ranges to differ.
const SIZE: usize = 200_000;
const SLOT: &str = "hr/photo.jpg";
const BUCKET: &str = "uploads";

#[tokio::test]
async fn from_disk() {
    conformance(&Upslot::start(""), false).await;
}

#[tokio::test]
async fn from_s3_through_upslot() {
    let s3 = S3Server::start(BUCKET);
    conformance(&Upslot::start(&s3.storage_toml(BUCKET)), false).await;
}

#[tokio::test]
async fn from_s3_by_presigned_redirect() {
    let s3 = S3Server::start(BUCKET);
    // A redirect hands out the stored bytes, so offload needs them in
    // plaintext.
    let offload = "[offload]\nmode = \"presigned\"\npresigned_ttl = \"1m\"\n\
                   [encryption]\nenabled = false\n";
    let server = Upslot::start(&format!("{}\n{offload}", s3.storage_toml(BUCKET)));
    conformance(&server, true).await;
}

/// A ranged GET: what it is, its headers, the first and last byte it asks for.
type Case<'a> = (&'a str, Vec<(HeaderName, &'a str)>, usize, usize);

/// Uploads a file to `server` and checks HEAD and every Range form against
/// it; `redirected`: GETs must be answered by a redirect, which the client
/// follows.
async fn conformance(server: &Upslot, redirected: bool) {
    let body = data(SIZE);
    let response = put_request(server, SLOT, body.clone())
        .header(header::CONTENT_TYPE, "image/jpeg")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // HEAD is always answered by upslot itself, never redirected.
    let head = client_without_redirects()
        .head(server.url(SLOT))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let value = |name: HeaderName| head.headers()[name].to_str().unwrap().to_string();
    assert_eq!(value(header::CONTENT_LENGTH), SIZE.to_string());
    assert_eq!(value(header::ACCEPT_RANGES), "bytes");
    assert_eq!(value(header::CONTENT_TYPE), "image/jpeg");
    let etag = value(header::ETAG);
    assert!(head.bytes().await.unwrap().is_empty(), "HEAD has no body");

    let first = client_without_redirects()
        .get(server.url(SLOT))
        .send()
        .await
        .unwrap();
    let expected = if redirected {
        StatusCode::TEMPORARY_REDIRECT
    } else {
        StatusCode::OK
    };
    assert_eq!(first.status(), expected, "how GET is answered");

    let end = SIZE - 1;
    let cases: [Case<'_>; 4] = [
        ("first two bytes", vec![(header::RANGE, "bytes=0-1")], 0, 1),
        ("suffix", vec![(header::RANGE, "bytes=-5")], SIZE - 5, end),
        ("open end", vec![(header::RANGE, "bytes=10-")], 10, end),
        (
            "If-Range with HEAD's ETag",
            vec![(header::RANGE, "bytes=100-199"), (header::IF_RANGE, &etag)],
            100,
            199,
        ),
    ];
    for (what, headers, from, to) in cases {
        let mut request = client().get(server.url(SLOT));
        for (name, value) in &headers {
            request = request.header(name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{what}");
        assert_eq!(
            response.headers()[header::CONTENT_RANGE],
            format!("bytes {from}-{to}/{SIZE}").as_str(),
            "{what}"
        );
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            (to - from + 1).to_string().as_str(),
            "{what}"
        );
        assert_eq!(response.bytes().await.unwrap(), &body[from..=to], "{what}");
    }
}
