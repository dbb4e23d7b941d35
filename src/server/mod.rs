//! Accepting connections and serving HTTP/1.1 and HTTP/2 on them.
//!
//! [`run`] takes already-bound listeners and a shutdown token. On shutdown
//! it stops accepting, lets in-flight requests finish for the grace period,
//! then drops what is left (dropping an upload removes its partial blob).

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http;
use crate::http::App;

/// Limits applied at the edge, before any handler runs.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Time allowed to send request headers.
    pub header_timeout: Duration,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time in-flight requests get after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Largest request head (request line and headers) accepted, in bytes.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Which service a listener runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Public,
    Admin,
}

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
    let graceful = Arc::new(GracefulShutdown::new());
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
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
    let ctx = Arc::new(Context {
        app,
        builder,
        tls,
        limits,
        connections,
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
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        let graceful = Arc::clone(&graceful);
        let tracker = tracker.clone();
        loops.spawn(async move {
            accept_loop(listener, service, ctx, shutdown, graceful, tracker).await;
        });
    }
    shutdown.cancelled().await;
    while loops.join_next().await.is_some() {}
    // The accept loops are gone, and with them every other handle.
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
    tracing::info!(
        connections = graceful.count(),
        grace_s = ctx.limits.shutdown_grace.as_secs(),
        "shutting down: finishing in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(ctx.limits.shutdown_grace) => {
            tracing::warn!("grace period over: closing the remaining connections");
            hard_stop.cancel();
        }
    }
    tracker.close();
    tracker.wait().await;
}

struct Context {
    app: Arc<App>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<tls::Tls>,
    limits: Limits,
    connections: Arc<Semaphore>,
    hard_stop: CancellationToken,
}

async fn accept_loop(
    listener: TcpListener,
    service: Service,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    tracker: TaskTracker,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
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
        let Ok(permit) = Arc::clone(&ctx.connections).try_acquire_owned() else {
            // Over the cap: refuse at once rather than queue.
            drop(stream);
            tracing::warn!("connection limit reached; connection refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let watcher = graceful.watcher();
        tracker.spawn(async move {
            serve_connection(stream, peer, service, &ctx, watcher).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Service,
    ctx: &Context,
    graceful: hyper_util::server::graceful::Watcher,
) {
    match (&ctx.tls, service) {
        (Some(tls), Service::Public) => {
            let handshake = tokio::time::timeout(
                ctx.limits.tls_handshake_timeout,
                tls.acceptor().accept(stream),
            );
            match handshake.await {
                Ok(Ok(tls_stream)) => serve_io(tls_stream, peer, service, ctx, graceful).await,
                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
        _ => serve_io(stream, peer, service, ctx, graceful).await,
    }
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    service: Service,
    ctx: &Context,
    graceful: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = Arc::clone(&ctx.app);
    let svc = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move {
            match service {
                Service::Public => http::serve_public(app, peer, request).await,
                Service::Admin => http::serve_admin(app, request).await,
            }
        }
    });
    let connection = ctx
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    tokio::select! {
        result = graceful.watch(connection) => {
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        }
        () = ctx.hard_stop.cancelled() => {}
    }
}
