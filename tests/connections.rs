//! Connection slots with the real binary: a connection with no request in
//! flight for `header_timeout` is closed, counted from accept (silent TCP
//! and TLS clients, idle HTTP/2 connections, which get a GOAWAY first), and
//! a request in progress is never cut, however slow.
//!
//! Timing: upper bounds are generous (the CI machine is slow and loaded);
//! lower bounds are measured from before the client connects or sends, so
//! they hold however slow the machine is.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Upslot, data, put, raw, v1_query};
use reqwest::{StatusCode, Version, header};

/// How long anything the server should do within a few seconds may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// `host:port` of the public listener.
fn addr(server: &Upslot) -> String {
    let (_, addr) = server.base_url.split_once("://").unwrap();
    addr.to_string()
}

/// Reads and discards until the server closes `stream` (end of stream or
/// a reset); false if it is still open after [`PATIENCE`].
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test]
async fn silent_connections_lose_their_slots_after_the_header_timeout() {
    const CAP: usize = 8;
    let server = Upslot::start_with(
        &format!("max_connections = {CAP}\nheader_timeout = \"2s\""),
        "",
        "",
        &[],
    );
    let addr = addr(&server);
    let connected = Instant::now();
    // Never a byte, never closed by the test.
    let mut silent: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();

    let deadline = Instant::now() + PATIENCE;
    loop {
        // A fresh client every time: nothing pooled from a refused attempt.
        let answer = common::client().get(server.url("a/b")).send().await;
        match answer {
            Ok(r) if r.status() == StatusCode::NOT_FOUND => {
                // Accepted after the silent ones (one listen queue), so
                // only once one of them had timed out.
                let waited = connected.elapsed();
                assert!(
                    waited >= Duration::from_millis(1900),
                    "served after {waited:?} while {CAP} silent connections held every slot"
                );
                break;
            }
            Ok(r) => panic!("unexpected answer {}", r.status()),
            Err(_) => {} // refused at accept: over the cap
        }
        assert!(
            Instant::now() < deadline,
            "service never resumed while the silent connections stayed open"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, stream) in silent.iter_mut().enumerate() {
        assert!(closed_by_server(stream), "silent connection {i} still open");
    }
}

/// Just enough HTTP/2 framing (RFC 9113) to talk to the server by hand.
mod h2 {
    use std::io::{ErrorKind, Read};
    use std::net::TcpStream;

    pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub(super) const DATA: u8 = 0x0;
    pub(super) const HEADERS: u8 = 0x1;
    pub(super) const RST_STREAM: u8 = 0x3;
    pub(super) const SETTINGS: u8 = 0x4;
    pub(super) const PING: u8 = 0x6;
    pub(super) const GOAWAY: u8 = 0x7;
    /// END_STREAM on HEADERS and DATA, ACK on SETTINGS and PING.
    pub(super) const END_STREAM_OR_ACK: u8 = 0x1;
    pub(super) const END_HEADERS: u8 = 0x4;

    #[derive(Debug)]
    pub(super) struct Frame {
        pub(super) kind: u8,
        pub(super) flags: u8,
        pub(super) stream: u32,
        pub(super) payload: Vec<u8>,
    }

    /// One frame on the wire.
    pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// The HPACK block of `GET path` over http, literals only.
    pub(super) fn get(path: &str, authority: &str) -> Vec<u8> {
        assert!(path.len() < 127 && authority.len() < 127);
        // :method GET and :scheme http from the static table, then :path
        // and :authority as literals without indexing (name indices 4, 1).
        let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
        block.extend_from_slice(path.as_bytes());
        block.extend_from_slice(&[0x01, authority.len() as u8]);
        block.extend_from_slice(authority.as_bytes());
        block
    }

    /// The next frame, or `None` once the server has closed the
    /// connection (end of stream or a reset). Panics on the read timeout.
    pub(super) fn read(stream: &mut TcpStream) -> Option<Frame> {
        let mut head = [0u8; 9];
        match stream.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither sent a frame nor closed the connection")
            }
            Err(_) => return None,
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).is_err() {
            return None;
        }
        Some(Frame {
            kind: head[3],
            flags: head[4],
            stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
            payload,
        })
    }

    /// The error code of a GOAWAY frame.
    pub(super) fn goaway_code(frame: &Frame) -> u32 {
        u32::from_be_bytes(frame.payload[4..8].try_into().unwrap())
    }
}

/// Opens an h2c (prior knowledge) connection and sends the preface and a
/// SETTINGS frame with `settings` (empty: the defaults).
fn h2c_connect(server: &Upslot, settings: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr(server)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(h2::PREFACE).unwrap();
    stream
        .write_all(&h2::frame(h2::SETTINGS, 0, 0, settings))
        .unwrap();
    stream
}

/// Sends a GET of `path` as the whole of stream 1.
fn h2_get_on_stream_1(stream: &mut TcpStream, server: &Upslot, path: &str) {
    let block = h2::get(path, &addr(server));
    stream
        .write_all(&h2::frame(
            h2::HEADERS,
            h2::END_HEADERS | h2::END_STREAM_OR_ACK,
            1,
            &block,
        ))
        .unwrap();
}

#[test]
fn a_silent_http2_connection_gets_a_goaway_and_is_closed() {
    let server = Upslot::start_with("header_timeout = \"2s\"", "", "", &[]);
    let connected = Instant::now();
    let mut stream = h2c_connect(&server, &[]);
    // The client answers nothing, not even the GOAWAY ping: the server
    // closes the connection on its own a moment after the GOAWAY.
    let mut goaway = None;
    while let Some(frame) = h2::read(&mut stream) {
        if frame.kind == h2::GOAWAY && goaway.is_none() {
            assert_eq!(h2::goaway_code(&frame), 0, "NO_ERROR");
            goaway = Some(connected.elapsed());
        }
        assert!(connected.elapsed() < PATIENCE, "never closed");
    }
    let goaway = goaway.expect("closed without a GOAWAY");
    assert!(
        goaway >= Duration::from_millis(1900),
        "GOAWAY before header_timeout: {goaway:?}"
    );
}

#[test]
fn an_http2_connection_idle_after_a_request_gets_a_goaway_and_is_closed() {
    let server = Upslot::start_with("header_timeout = \"2s\"", "", "", &[]);
    let mut stream = h2c_connect(&server, &[]);
    let sent = Instant::now();
    h2_get_on_stream_1(&mut stream, &server, "/idle/none.txt");
    // A polite client this time: it acknowledges SETTINGS and PINGs, so
    // the server can finish its graceful shutdown and close by itself.
    let mut response_headers = false;
    let mut response_ended = false;
    let mut goaway = None;
    while let Some(frame) = h2::read(&mut stream) {
        let ack = frame.flags & h2::END_STREAM_OR_ACK != 0;
        match frame.kind {
            h2::SETTINGS | h2::PING if !ack => {
                // A SETTINGS ack is empty, a PING ack echoes the ping.
                let payload = if frame.kind == h2::PING {
                    &frame.payload[..]
                } else {
                    &[]
                };
                // The server may have closed already; a failed write is fine.
                let _ = stream.write_all(&h2::frame(frame.kind, h2::END_STREAM_OR_ACK, 0, payload));
            }
            h2::HEADERS | h2::DATA if frame.stream == 1 => {
                response_headers |= frame.kind == h2::HEADERS;
                response_ended |= ack;
            }
            h2::GOAWAY if goaway.is_none() => {
                assert!(response_ended, "GOAWAY before the response ended");
                assert_eq!(h2::goaway_code(&frame), 0, "NO_ERROR");
                goaway = Some(sent.elapsed());
            }
            _ => {}
        }
        assert!(sent.elapsed() < PATIENCE, "never closed");
    }
    assert!(response_headers && response_ended, "no complete response");
    let goaway = goaway.expect("closed without a GOAWAY");
    assert!(
        goaway >= Duration::from_millis(1900),
        "GOAWAY before header_timeout: {goaway:?}"
    );
}

#[tokio::test]
async fn an_http2_stream_reset_with_its_body_unsent_does_not_hold_the_connection() {
    let server = Upslot::start_with("header_timeout = \"2s\"", "", "", &[]);
    assert_eq!(
        put(&server, "reset/a.bin", data(1 << 20)).await,
        StatusCode::CREATED
    );
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no body byte may leave.
    let mut stream = h2c_connect(&server, &[0, 4, 0, 0, 0, 0]);
    h2_get_on_stream_1(&mut stream, &server, "/reset/a.bin");
    loop {
        let frame = h2::read(&mut stream).expect("closed before the response head");
        if frame.kind == h2::HEADERS && frame.stream == 1 {
            break;
        }
    }
    // Let the server queue the first chunk behind the closed window, then
    // cancel: those bytes are never written.
    std::thread::sleep(Duration::from_millis(500));
    stream
        .write_all(&h2::frame(h2::RST_STREAM, 0, 1, &8u32.to_be_bytes()))
        .unwrap();
    let reset = Instant::now();
    let mut goaway = false;
    while let Some(frame) = h2::read(&mut stream) {
        goaway |= frame.kind == h2::GOAWAY;
        assert!(reset.elapsed() < PATIENCE, "never closed");
    }
    assert!(goaway, "closed without a GOAWAY");
}

#[tokio::test]
async fn a_tls_client_silent_after_the_handshake_is_dropped() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = common::tls::pki("idle");
    let server = Upslot::start_with(
        &format!("{}\nheader_timeout = \"2s\"", pki.server_line(dir.path())),
        "",
        "",
        &[],
    );
    let addr = addr(&server);
    let connected = Instant::now();
    let h2 = pki.connect(&addr, &[b"h2"]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let plain = pki.connect(&addr, &[]).await;
    for (name, mut stream) in [("h2", h2), ("no ALPN", plain)] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{name}: still open"));
        // Dropped: end of stream, or an EOF without close_notify.
        assert!(matches!(read, Ok(0)) || read.is_err(), "{name}: {read:?}");
    }
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "dropped before header_timeout: {waited:?}"
    );
}

/// Sleeps until `bytes` are due at `per_second` since `started`.
async fn pace(started: Instant, bytes: usize, per_second: usize) {
    let due = started + Duration::from_secs_f64(bytes as f64 / per_second as f64);
    tokio::time::sleep_until(due.into()).await;
}

/// GETs `path` over HTTP/1.1 on a socket with a small receive buffer,
/// reading `per_second` bytes a second; the body, after checking the head.
async fn slow_http1_get(server: &Upslot, path: &str, per_second: usize) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut stream = socket.connect(addr(server).parse().unwrap()).await.unwrap();
    let request = format!("GET /{path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the HTTP/1.1 download stalled")
            .unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        pace(started, received.len(), per_second).await;
    }
    let head_end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    received.split_off(head_end)
}

/// GETs `path` over HTTP/2 (prior knowledge) with 64 KiB flow control
/// windows, so the server cannot run ahead of a client that reads
/// `per_second` bytes a second.
async fn slow_http2_get(server: &Upslot, path: &str, per_second: usize) -> Vec<u8> {
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .http2_initial_stream_window_size(64 * 1024)
        .http2_initial_connection_window_size(64 * 1024)
        .build()
        .unwrap();
    let mut r = h2.get(server.url(path)).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::OK);
    let started = Instant::now();
    let mut received = Vec::new();
    while let Some(chunk) = tokio::time::timeout(PATIENCE, r.chunk())
        .await
        .expect("the HTTP/2 download stalled")
        .unwrap()
    {
        received.extend_from_slice(&chunk);
        pace(started, received.len(), per_second).await;
    }
    received
}

#[tokio::test]
async fn a_download_slower_than_the_header_timeout_completes() {
    let server = Upslot::start_with("header_timeout = \"1s\"", "", "", &[]);
    // HTTP/1.1: 16 MiB, more than every buffer on the way (the kernel's
    // included), read at 4 MiB/s: the body streams for seconds.
    let big = data(16 << 20);
    assert_eq!(
        put(&server, "slow/big.bin", big.clone()).await,
        StatusCode::CREATED
    );
    // HTTP/2: 1 MiB, two 512 KiB chunks from disk, read at 128 KiB/s. hyper
    // is done with the body once it has queued the last chunk, about 4 s
    // before the client's window lets that chunk out.
    let small = data(1 << 20);
    assert_eq!(
        put(&server, "slow/small.bin", small.clone()).await,
        StatusCode::CREATED
    );

    let started = Instant::now();
    let (http1, http2) = tokio::join!(
        slow_http1_get(&server, "slow/big.bin", 4 << 20),
        slow_http2_get(&server, "slow/small.bin", 128 << 10),
    );
    assert_eq!(http1.len(), big.len(), "HTTP/1.1 body length");
    assert!(http1 == big, "HTTP/1.1 body corrupted");
    assert_eq!(http2.len(), small.len(), "HTTP/2 body length");
    assert!(http2 == small, "HTTP/2 body corrupted");
    assert!(started.elapsed() > Duration::from_secs(3));
}

#[tokio::test]
async fn an_upload_slower_than_the_header_timeout_completes() {
    use futures_util::StreamExt;
    const CHUNK: usize = 64 * 1024;
    const PAUSE: Duration = Duration::from_millis(400);
    let server = Upslot::start_with("header_timeout = \"1s\"", "", "", &[]);
    let body = data(8 * CHUNK);

    // HTTP/1.1: the head, then the body in chunks with pauses (3.2 s).
    let mut stream = raw::start_put(&server.base_url, "slowup/a.bin", body.len());
    for chunk in body.chunks(CHUNK) {
        std::thread::sleep(PAUSE);
        stream.write_all(chunk).unwrap();
    }
    // The connection closes once idle, which ends the read.
    let (status, text) = raw::read_response(&mut stream);
    assert_eq!(status, 201, "{text}");

    // HTTP/2: a streamed body with the same pauses.
    let chunks: Vec<bytes::Bytes> = body
        .chunks(CHUNK)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let slow = futures_util::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(PAUSE).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let q = v1_query("slowup/b.bin", body.len() as u64);
    let r = h2
        .put(server.url(&format!("slowup/b.bin?{q}")))
        .header(header::CONTENT_LENGTH, body.len())
        .body(reqwest::Body::wrap_stream(slow))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::CREATED);

    for path in ["slowup/a.bin", "slowup/b.bin"] {
        let r = h2.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.bytes().await.unwrap() == body, "{path} corrupted");
    }
}
