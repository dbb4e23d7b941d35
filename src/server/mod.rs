//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them.
//!
//! [`run`] takes already-bound listeners and a shutdown token. Each accepted
//! connection gets its own task ([`connection`]), which closes it once it
//! has been idle (no request in flight, no response bytes left to send) for
//! `header_timeout` ([`watchdog`], [`activity`]). On shutdown [`run`] stops
//! accepting, tells every connection to close, lets in-flight requests
//! finish for the grace period, then drops what is left (dropping an upload
//! removes its partial blob).

mod activity;
mod connection;
pub mod tls;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::App;
use connection::{Accepted, Service, Shared};

/// Limits applied at the edge, before any handler runs.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time a connection may be idle: from accept (TLS handshake included)
    /// to its first complete request head, and from the end of each
    /// response (its last byte written) to the next request head. HTTP/1
    /// and HTTP/2.
    pub header_timeout: Duration,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time in-flight requests get after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `public` listeners (over TLS when `tls` is given) and the
/// `admin` listener until `shutdown` is cancelled, then drains.
pub async fn run(
    app: Arc<App>,
    public: Vec<TcpListener>,
    admin: Option<TcpListener>,
    tls: Option<tls::Tls>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    // Connections served at once (server.max_connections); more are closed
    // at accept. /metrics counts the slots taken.
    let connections = Arc::clone(app.traffic.connection_slots());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let shared = Arc::new(Shared {
        app,
        builder,
        tls,
        header_timeout: limits.header_timeout,
        tls_handshake_timeout: limits.tls_handshake_timeout,
        shutdown: shutdown.clone(),
        hard_stop: hard_stop.clone(),
    });

    let mut accept_loops = Vec::new();
    for listener in public {
        accept_loops.push((listener, Service::Public));
    }
    if let Some(listener) = admin {
        accept_loops.push((listener, Service::Admin));
    }
    let mut loops = tokio::task::JoinSet::new();
    for (listener, service) in accept_loops {
        let shared = Arc::clone(&shared);
        let connections = Arc::clone(&connections);
        let tracker = tracker.clone();
        loops.spawn(async move {
            accept_loop(listener, service, shared, connections, tracker).await;
        });
    }
    shutdown.cancelled().await;
    while loops.join_next().await.is_some() {}
    // The accept loops are gone: no connection task starts any more, and
    // every running one has been told to close (it watches `shutdown`).
    tracker.close();
    tracing::info!(
        connections = tracker.len(),
        grace_s = limits.shutdown_grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    tokio::select! {
        () = tracker.wait() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("grace period over: closing the remaining connections");
            hard_stop.cancel();
        }
    }
    tracker.wait().await;
}

async fn accept_loop(
    listener: TcpListener,
    service: Service,
    shared: Arc<Shared>,
    connections: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let at = Instant::now();
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            // Over the cap: refuse at once rather than queue.
            drop(stream);
            shared.app.traffic.refuse_connection();
            tracing::warn!("connection limit reached; connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let accepted = Accepted {
            stream,
            peer,
            service,
            at,
        };
        tracker.spawn(async move {
            connection::serve(accepted, &shared).await;
            drop(permit);
        });
    }
}
