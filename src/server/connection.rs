//! One connection, from accept to close: the TLS handshake, HTTP/1.1 or
//! HTTP/2, and the idle watchdog.
//!
//! hyper's own timers leave gaps the watchdog closes: hyper-util's automatic
//! HTTP/1-or-2 builder reads the first bytes (looking for the HTTP/2
//! preface) with no timer, hyper's HTTP/1 `header_read_timeout` starts only
//! once that is done, and an HTTP/2 connection has no idle timer at all. So
//! here the clock starts at accept (for TLS it includes the handshake): a
//! connection idle for `header_timeout` (no request in flight, no response
//! bytes left to send) is told to close (GOAWAY for HTTP/2) and dropped if
//! it is still idle a moment later. See [`super::watchdog`] for the rule
//! and [`super::activity`] for what keeps a connection busy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::activity::{self, Activity, Metered};
use super::tls::Tls;
use super::watchdog::{Action, Watchdog, later};
use crate::http::{self, App};

/// How long a connection told to close may stay idle before it is dropped:
/// time for an HTTP/2 client to answer the GOAWAY ping, and for the last
/// response bytes to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Which service a listener runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Service {
    /// Uploads and downloads.
    Public,
    /// Health, metrics and the erase API.
    Admin,
}

/// What every connection shares.
pub(super) struct Shared {
    /// The application the services call.
    pub(super) app: Arc<App>,
    /// hyper's HTTP/1.1 and HTTP/2 settings.
    pub(super) builder: auto::Builder<TokioExecutor>,
    /// TLS for the public listeners, if configured.
    pub(super) tls: Option<Tls>,
    /// Longest time a connection may be idle, counted from accept.
    pub(super) header_timeout: Duration,
    /// Longest TLS handshake.
    pub(super) tls_handshake_timeout: Duration,
    /// Cancelled when the server starts shutting down: connections are
    /// told to close and finish their requests.
    pub(super) shutdown: CancellationToken,
    /// Cancelled when the grace period is over: connections are dropped.
    pub(super) hard_stop: CancellationToken,
}

/// A connection just accepted.
#[derive(Debug)]
pub(super) struct Accepted {
    /// The socket.
    pub(super) stream: TcpStream,
    /// The peer address (the handlers decide what to do with it).
    pub(super) peer: SocketAddr,
    /// The listener's service.
    pub(super) service: Service,
    /// When it was accepted.
    pub(super) at: Instant,
}

/// Serves one connection until it closes, idles out, or the server stops.
pub(super) async fn serve(accepted: Accepted, shared: &Shared) {
    let Accepted {
        stream,
        peer,
        service,
        at,
    } = accepted;
    let activity = Activity::new(at);
    // Below TLS, so that bytes still in TLS buffers count as unsent.
    let stream = Metered::new(stream, activity.clone());
    let Some(tls) = shared.tls.as_ref().filter(|_| service == Service::Public) else {
        return serve_http(stream, peer, service, activity, shared).await;
    };
    // The handshake counts against header_timeout too.
    let limit = shared.tls_handshake_timeout.min(shared.header_timeout);
    let handshake = tokio::time::timeout_at(later(at, limit), tls.acceptor().accept(stream));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
        // No request yet: nothing to finish.
        () = shared.shutdown.cancelled() => return,
    };
    serve_http(stream, peer, service, activity, shared).await;
}

/// Runs HTTP on `io` under the watchdog.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    service: Service,
    activity: Activity,
    shared: &Shared,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let requests = activity.clone();
    let app = Arc::clone(&shared.app);
    let svc = service_fn(move |request| {
        // hyper calls the service once a request head is complete.
        let guard = requests.start();
        let app = Arc::clone(&app);
        async move {
            let response = match service {
                Service::Public => http::serve_public(app, peer, request).await,
                Service::Admin => http::serve_admin(app, request).await,
            };
            response.map(|response| activity::track(response, guard))
        }
    });
    let connection = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), svc);
    let mut connection = std::pin::pin!(connection);
    let mut watchdog = Watchdog::new(shared.header_timeout, CLOSE_GRACE);
    // The first check runs at once and arms the timer from the idle clock,
    // which started at accept.
    let mut check = std::pin::pin!(tokio::time::sleep_until(Instant::now()));
    loop {
        // Biased: the connection is polled first, so right after a
        // `graceful_shutdown()` it runs again and sees it (hyper-util's
        // version detection only checks for it when polled).
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = shared.hard_stop.cancelled() => return,
            () = shared.shutdown.cancelled(), if !watchdog.is_closing() => {
                connection.as_mut().graceful_shutdown();
                check.as_mut().reset(watchdog.closing(Instant::now()));
            }
            () = check.as_mut() => match watchdog.check(activity.idle(), Instant::now()) {
                Action::Wait(next) => check.as_mut().reset(next),
                Action::Close(next) => {
                    tracing::debug!(
                        timeout_ms = shared.header_timeout.as_millis() as u64,
                        "no request within header_timeout: closing the connection"
                    );
                    connection.as_mut().graceful_shutdown();
                    check.as_mut().reset(next);
                }
                Action::Drop => {
                    tracing::debug!("idle connection did not close: dropping it");
                    return;
                }
            },
        }
    }
}
