//! Ranged downloads of sealed files over HTTP, against the real binary on
//! disk and on S3 (`s3s-fs`): with encryption at rest on (the default),
//! every answer, be it the whole file, a range on, before, after or across
//! a 64 KiB segment boundary, a suffix, a conditional or a 416, is the one
//! a server storing plaintext gives for the same file, byte for byte.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::PathBuf;

use common::s3::S3Server;
use common::{Upslot, data, get_with, head_request, metric, metrics, put};
use reqwest::header::{self, HeaderName};
use reqwest::{Response, StatusCode};
use upslot::encryption::sealed_size;

/// Plaintext bytes per sealed segment (format version 1).
const SEGMENT: u64 = 65_536;
/// The big file: three full segments and a short fourth one.
const SIZE: u64 = 3 * SEGMENT + 7;
const BIG: &str = "rng/big.bin";
const EMPTY: &str = "rng/empty.bin";
/// The config of the server that stores plaintext.
const PLAINTEXT: &str = "[encryption]\nenabled = false\n";

/// Two servers on the same kind of backend: one sealing files (the
/// default), one storing them in plaintext; the S3 server behind both, if
/// any.
struct Pair {
    sealed: Upslot,
    plain: Upslot,
    s3: Option<S3Server>,
}

impl Pair {
    fn disk() -> Pair {
        Pair {
            sealed: Upslot::start(""),
            plain: Upslot::start(PLAINTEXT),
            s3: None,
        }
    }

    /// One `s3s-fs` with a bucket per server.
    fn s3() -> Pair {
        let s3 = S3Server::start("sealed");
        std::fs::create_dir(s3.root.join("plain")).unwrap();
        Pair {
            sealed: Upslot::start(&s3.storage_toml("sealed")),
            plain: Upslot::start(&format!("{}\n{PLAINTEXT}", s3.storage_toml("plain"))),
            s3: Some(s3),
        }
    }

    /// The sizes of the blobs `server` (one of the pair) has stored.
    fn blob_sizes(&self, server: &Upslot) -> Vec<u64> {
        let files: Vec<PathBuf> = match &self.s3 {
            None => server
                .files()
                .into_iter()
                .filter(|path| path.starts_with("blobs"))
                .map(|path| server.data_dir.join(path))
                .collect(),
            Some(s3) => {
                let bucket = if std::ptr::eq(server, &self.sealed) {
                    "sealed"
                } else {
                    "plain"
                };
                s3.keys(bucket)
                    .into_iter()
                    .map(|key| s3.root.join(bucket).join(key))
                    .collect()
            }
        };
        let mut sizes: Vec<u64> = files
            .iter()
            .map(|path| std::fs::metadata(path).unwrap().len())
            .collect();
        sizes.sort_unstable();
        sizes
    }
}

/// What an answer must be.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 with the whole file.
    Whole,
    /// 206 with bytes `first..=last`.
    Part(u64, u64),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// What the tests compare of an answer.
struct Answer {
    status: StatusCode,
    content_length: Option<String>,
    content_range: Option<String>,
    content_type: Option<String>,
    accept_ranges: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    async fn of(response: Response) -> Answer {
        let header = |name: HeaderName| {
            response
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_string())
        };
        Answer {
            status: response.status(),
            content_length: header(header::CONTENT_LENGTH),
            content_range: header(header::CONTENT_RANGE),
            content_type: header(header::CONTENT_TYPE),
            accept_ranges: header(header::ACCEPT_RANGES),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

/// GETs `path` from both servers of `pair` with `headers`, checks that the
/// two answers are the same (status, length, range, type, body), and
/// returns the sealed server's.
async fn same_from_both(pair: &Pair, path: &str, headers: &[(HeaderName, String)]) -> Answer {
    let answer = async |server: &Upslot| {
        let mut request = common::get_request(server, path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        Answer::of(request.send().await.unwrap()).await
    };
    let sealed = answer(&pair.sealed).await;
    let plain = answer(&pair.plain).await;
    let what = format!("GET {path} {headers:?}");
    assert_eq!(sealed.status, plain.status, "{what}: status");
    assert_eq!(
        sealed.content_length, plain.content_length,
        "{what}: Content-Length"
    );
    assert_eq!(
        sealed.content_range, plain.content_range,
        "{what}: Content-Range"
    );
    assert_eq!(
        sealed.content_type, plain.content_type,
        "{what}: Content-Type"
    );
    assert_eq!(
        sealed.accept_ranges, plain.accept_ranges,
        "{what}: Accept-Ranges"
    );
    assert!(
        sealed.body == plain.body,
        "{what}: the sealed server sent {} bytes, the plaintext one {}, not the same",
        sealed.body.len(),
        plain.body.len()
    );
    sealed
}

/// Checks `answer`, to a request for (part of) `body`, against `expect`.
fn check(answer: &Answer, body: &[u8], expect: Expect, what: &str) {
    let size = body.len();
    let (status, range, bytes) = match expect {
        Expect::Whole => (StatusCode::OK, None, body),
        Expect::Part(first, last) => (
            StatusCode::PARTIAL_CONTENT,
            Some(format!("bytes {first}-{last}/{size}")),
            &body[first as usize..=last as usize],
        ),
        Expect::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some(format!("bytes */{size}")),
            &[][..],
        ),
    };
    assert_eq!(answer.status, status, "{what}: status");
    assert_eq!(answer.content_range, range, "{what}: Content-Range");
    if matches!(expect, Expect::Unsatisfiable) {
        return;
    }
    assert_eq!(
        answer.content_length,
        Some(bytes.len().to_string()),
        "{what}: Content-Length"
    );
    assert_eq!(
        answer.accept_ranges.as_deref(),
        Some("bytes"),
        "{what}: Accept-Ranges"
    );
    assert!(
        answer.body == bytes,
        "{what}: {} bytes received, not the {} expected",
        answer.body.len(),
        bytes.len()
    );
}

/// GETs `path` (whose content is `body`) with `Range: range` (none if
/// `None`) from both servers: the same answer, and the one `expect` says.
async fn ranged(pair: &Pair, path: &str, body: &[u8], range: Option<&str>, expect: Expect) {
    let headers: Vec<(HeaderName, String)> = range
        .map(|range| (header::RANGE, range.to_string()))
        .into_iter()
        .collect();
    let answer = same_from_both(pair, path, &headers).await;
    check(
        &answer,
        body,
        expect,
        &format!("GET {path} Range {range:?}"),
    );
}

/// The whole suite, on one pair of servers.
async fn ranges_of_sealed_files_are_served_as_plaintext(pair: Pair) {
    let big = data(SIZE as usize);
    for server in [&pair.sealed, &pair.plain] {
        assert_eq!(put(server, BIG, big.clone()).await, StatusCode::CREATED);
        assert_eq!(put(server, EMPTY, Vec::new()).await, StatusCode::CREATED);
    }
    // One server seals, the other does not: otherwise the comparisons
    // below would prove nothing.
    assert_eq!(
        metric(&metrics(&pair.sealed).await, "upslot_encryption_enabled"),
        1.0
    );
    assert_eq!(
        metric(&metrics(&pair.plain).await, "upslot_encryption_enabled"),
        0.0
    );
    assert_eq!(
        pair.blob_sizes(&pair.sealed),
        vec![sealed_size(0), sealed_size(SIZE)],
        "sealed blobs at rest"
    );
    assert_eq!(
        pair.blob_sizes(&pair.plain),
        vec![0, SIZE],
        "plaintext blobs at rest"
    );

    let last = SIZE - 1;
    let cases: Vec<(Option<String>, Expect)> = vec![
        (None, Expect::Whole),
        (Some("bytes=0-0".into()), Expect::Part(0, 0)),
        (Some("bytes=0-1".into()), Expect::Part(0, 1)),
        (Some(format!("bytes={last}-")), Expect::Part(last, last)),
        (
            Some(format!("bytes={last}-{last}")),
            Expect::Part(last, last),
        ),
        (Some("bytes=-1".into()), Expect::Part(last, last)),
        (Some("bytes=-500".into()), Expect::Part(SIZE - 500, last)),
        (
            Some("bytes=-70000".into()),
            Expect::Part(SIZE - 70_000, last),
        ),
        (Some(format!("bytes=-{SIZE}")), Expect::Part(0, last)),
        (Some("bytes=-1000000".into()), Expect::Part(0, last)),
        // Ending exactly on a segment boundary, starting on one, one byte
        // either side of one, across one.
        (Some("bytes=10-65535".into()), Expect::Part(10, 65_535)),
        (
            Some("bytes=65535-65535".into()),
            Expect::Part(65_535, 65_535),
        ),
        (
            Some("bytes=65536-65536".into()),
            Expect::Part(65_536, 65_536),
        ),
        (
            Some("bytes=65536-65539".into()),
            Expect::Part(65_536, 65_539),
        ),
        (
            Some("bytes=65535-65536".into()),
            Expect::Part(65_535, 65_536),
        ),
        (
            Some("bytes=131071-131072".into()),
            Expect::Part(131_071, 131_072),
        ),
        (
            Some("bytes=65536-131071".into()),
            Expect::Part(65_536, 131_071),
        ),
        (Some("bytes=196608-".into()), Expect::Part(196_608, last)),
        (Some("bytes=100-196610".into()), Expect::Part(100, 196_610)),
        (
            Some("bytes=196000-999999".into()),
            Expect::Part(196_000, last),
        ),
        // The whole file as a range, and as several (served whole).
        (Some("bytes=0-".into()), Expect::Part(0, last)),
        (Some(format!("bytes=0-{last}")), Expect::Part(0, last)),
        (Some("bytes=0-1,65536-65537".into()), Expect::Whole),
        // Beyond the end.
        (Some(format!("bytes={SIZE}-")), Expect::Unsatisfiable),
        (
            Some(format!("bytes={}-{}", SIZE + 5, SIZE + 10)),
            Expect::Unsatisfiable,
        ),
        (Some("bytes=-0".into()), Expect::Unsatisfiable),
    ];
    for (range, expect) in &cases {
        ranged(&pair, BIG, &big, range.as_deref(), *expect).await;
    }

    // HEAD: the same headers, no body.
    for range in [None, Some("bytes=65535-65536"), Some("bytes=-500")] {
        let mut answers = Vec::new();
        for server in [&pair.sealed, &pair.plain] {
            let mut request = head_request(server, BIG);
            if let Some(range) = range {
                request = request.header(header::RANGE, range);
            }
            answers.push(Answer::of(request.send().await.unwrap()).await);
        }
        let what = format!("HEAD Range {range:?}");
        assert_eq!(answers[0].status, answers[1].status, "{what}");
        assert_eq!(
            answers[0].content_length, answers[1].content_length,
            "{what}"
        );
        assert_eq!(answers[0].content_range, answers[1].content_range, "{what}");
        assert!(answers[0].body.is_empty(), "{what}: no body");
    }

    // Validators: each server has its own ETag (it names the blob), and
    // honours it in If-None-Match and If-Range alike.
    for server in [&pair.sealed, &pair.plain] {
        let full = get_with(server, BIG, []).await;
        let etag = full.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.len() > 2, "ETag {etag}");
        drop(full);
        let r = get_with(server, BIG, [(header::IF_NONE_MATCH, etag.as_str())]).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[header::ETAG], etag.as_str());
        assert!(r.bytes().await.unwrap().is_empty());
        let r = get_with(
            server,
            BIG,
            [
                (header::RANGE, "bytes=65535-65536"),
                (header::IF_RANGE, etag.as_str()),
            ],
        )
        .await;
        check(
            &Answer::of(r).await,
            &big,
            Expect::Part(65_535, 65_536),
            "If-Range with the ETag",
        );
        let r = get_with(
            server,
            BIG,
            [
                (header::RANGE, "bytes=65535-65536"),
                (header::IF_RANGE, "\"stale\""),
            ],
        )
        .await;
        check(
            &Answer::of(r).await,
            &big,
            Expect::Whole,
            "If-Range with another ETag",
        );
    }

    // The empty file: served whole, and no range of it can be satisfied.
    ranged(&pair, EMPTY, &[], None, Expect::Whole).await;
    for range in [
        "bytes=0-0",
        "bytes=0-",
        "bytes=0-1",
        "bytes=-1",
        "bytes=-500",
    ] {
        ranged(&pair, EMPTY, &[], Some(range), Expect::Unsatisfiable).await;
    }
    let r = head_request(&pair.sealed, EMPTY).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_LENGTH], "0");
}

#[tokio::test]
async fn ranges_of_sealed_files_on_disk_are_served_as_plaintext() {
    ranges_of_sealed_files_are_served_as_plaintext(Pair::disk()).await;
}

#[tokio::test]
async fn ranges_of_sealed_files_on_s3_are_served_as_plaintext() {
    ranges_of_sealed_files_are_served_as_plaintext(Pair::s3()).await;
}
