//! What one connection is doing, for its idle watchdog.
//!
//! A connection is *busy* while a request is in flight. A request starts
//! when hyper calls the service (its head is complete) and ends when its
//! response body has ended, failed, or been dropped; so an upload still
//! streaming its body, or a download still streaming to a slow reader,
//! keeps the connection busy however long it takes.
//!
//! hyper is done with a body before its last bytes are sent, though: HTTP/2
//! queues the last chunk (up to 512 KiB from disk) until the client's flow
//! control window lets it go, HTTP/1 keeps up to its buffer size. So the
//! body bytes handed to hyper are counted ([`TrackedBody`]) against the
//! bytes written to the socket ([`Metered`]); while writes have not caught
//! up, the connection is *draining*, and each write counts as progress.
//! Draining is not busy: a client that stops reading, or resets the stream
//! (so the queued bytes are never written), lets the idle clock run from
//! the last write.
//!
//! Bytes written count whatever they carry (headers, framing, TLS records),
//! so the count catches up a little early, by that overhead since it was
//! last caught up; the rest has the watchdog's whole idle limit to leave.
//! Writes with no body bytes owed (pings, settings) are not progress.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Buf;
use http::Response;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The requests of one connection, shared by its service and its watchdog.
#[derive(Debug, Clone)]
pub(super) struct Activity {
    state: Arc<Mutex<State>>,
}

/// A snapshot of a connection's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// A request is in flight.
    Busy,
    /// No request in flight, response bytes not all written; the last
    /// progress (end of the last request, or a write) at this instant.
    Draining(Instant),
    /// Nothing in flight or owed since this instant.
    Since(Instant),
}

#[derive(Debug)]
struct State {
    /// Requests whose response body has not ended.
    in_flight: usize,
    /// Response body bytes handed to hyper and not yet matched by bytes
    /// written to the socket.
    unsent: u64,
    /// The last progress: accept, the end of a request, or, while
    /// draining, a write.
    progress: Instant,
}

impl State {
    fn start(&mut self) {
        self.in_flight += 1;
    }

    fn finish(&mut self, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.progress = now;
        }
    }

    fn produced(&mut self, bytes: u64) {
        self.unsent = self.unsent.saturating_add(bytes);
    }

    fn sent(&mut self, bytes: u64, now: Instant) {
        if self.unsent == 0 {
            return;
        }
        self.unsent = self.unsent.saturating_sub(bytes);
        if self.in_flight == 0 {
            self.progress = now;
        }
    }

    fn idle(&self) -> Idle {
        if self.in_flight > 0 {
            Idle::Busy
        } else if self.unsent > 0 {
            Idle::Draining(self.progress)
        } else {
            Idle::Since(self.progress)
        }
    }
}

impl Activity {
    /// A connection accepted at `accepted_at`, idle since then.
    pub(super) fn new(accepted_at: Instant) -> Activity {
        Activity {
            state: Arc::new(Mutex::new(State {
                in_flight: 0,
                unsent: 0,
                progress: accepted_at,
            })),
        }
    }

    /// Marks a request as started; it ends when the guard is dropped.
    pub(super) fn start(&self) -> RequestGuard {
        self.lock().start();
        RequestGuard {
            state: Arc::clone(&self.state),
        }
    }

    /// What the connection is doing.
    pub(super) fn idle(&self) -> Idle {
        self.lock().idle()
    }

    /// Counts `bytes` written to the socket. Writes with no body bytes
    /// owed (pings, settings, most writes of a connection at rest) read no
    /// clock.
    fn sent(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut state = self.lock();
        // The same test as in `State::sent`, first: most writes owe nothing,
        // and they should not pay for reading the clock.
        if state.unsent > 0 {
            state.sent(bytes as u64, Instant::now());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request in flight; dropping it ends the request.
#[derive(Debug)]
pub(super) struct RequestGuard {
    state: Arc<Mutex<State>>,
}

impl RequestGuard {
    /// Counts `bytes` of response body handed to hyper.
    fn produced(&self, bytes: usize) {
        if bytes > 0 {
            lock(&self.state).produced(bytes as u64);
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        lock(&self.state).finish(Instant::now());
    }
}

/// Moves `guard` into the body of `response`, so the request lasts until
/// that body is finished or dropped.
pub(super) fn track<B>(response: Response<B>, guard: RequestGuard) -> Response<TrackedBody<B>> {
    response.map(|inner| TrackedBody {
        inner,
        guard: Some(guard),
    })
}

/// A response body that counts its bytes and ends its request when it ends.
#[derive(Debug)]
pub(super) struct TrackedBody<B> {
    inner: B,
    guard: Option<RequestGuard>,
}

impl<B> Body for TrackedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(guard), Some(data)) = (&this.guard, frame.data_ref()) {
                    guard.produced(data.remaining());
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.guard = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that counts the bytes written to it against the connection's
/// unsent response bytes. Below TLS, so TLS buffering is covered too.
#[derive(Debug)]
pub(super) struct Metered<IO> {
    io: IO,
    activity: Activity,
}

impl<IO> Metered<IO> {
    /// Wraps `io`, counting for `activity`.
    pub(super) fn new(io: IO, activity: Activity) -> Metered<IO> {
        Metered { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Metered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Metered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.activity.sent(n);
        }
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            this.activity.sent(n);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn state(at: Instant) -> State {
        State {
            in_flight: 0,
            unsent: 0,
            progress: at,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn busy_while_any_request_is_in_flight_and_idle_from_the_last_end() {
        let t0 = Instant::now();
        let mut state = state(t0);
        assert_eq!(state.idle(), Idle::Since(t0));
        state.start();
        state.start();
        assert_eq!(state.idle(), Idle::Busy);
        state.finish(t0 + secs(1));
        assert_eq!(state.idle(), Idle::Busy);
        state.finish(t0 + secs(2));
        assert_eq!(state.idle(), Idle::Since(t0 + secs(2)));
        // An unmatched end cannot make the count wrap.
        state.finish(t0 + secs(3));
        state.start();
        assert_eq!(state.idle(), Idle::Busy);
    }

    #[test]
    fn draining_until_the_body_bytes_are_written_each_write_is_progress() {
        let t0 = Instant::now();
        let mut state = state(t0);
        state.start();
        state.produced(1000);
        state.sent(200, t0 + secs(1));
        assert_eq!(state.idle(), Idle::Busy, "in flight");
        state.finish(t0 + secs(2));
        assert_eq!(state.idle(), Idle::Draining(t0 + secs(2)));
        state.sent(600, t0 + secs(3));
        assert_eq!(state.idle(), Idle::Draining(t0 + secs(3)));
        state.sent(600, t0 + secs(4));
        assert_eq!(state.idle(), Idle::Since(t0 + secs(4)));
        // Writes with nothing owed (pings, settings) are not progress.
        state.sent(17, t0 + secs(5));
        assert_eq!(state.idle(), Idle::Since(t0 + secs(4)));
        // Nor do they count against a later body (no credit below zero).
        state.start();
        state.produced(100);
        state.finish(t0 + secs(6));
        assert_eq!(state.idle(), Idle::Draining(t0 + secs(6)));
    }

    #[test]
    fn bytes_never_written_leave_the_connection_draining_not_busy() {
        // An HTTP/2 stream reset after its body was queued: no writes come.
        let t0 = Instant::now();
        let mut state = state(t0);
        state.start();
        state.produced(512 * 1024);
        state.finish(t0 + secs(1));
        assert_eq!(state.idle(), Idle::Draining(t0 + secs(1)));
    }

    #[tokio::test]
    async fn a_request_lasts_until_its_body_ends_then_drains_until_written() {
        let activity = Activity::new(Instant::now());
        let response = track(
            Response::new(Full::new(Bytes::from_static(b"data"))),
            activity.start(),
        );
        assert_eq!(activity.idle(), Idle::Busy);
        let mut body = response.into_body();
        let frame = body.frame().await;
        assert!(matches!(frame, Some(Ok(_))));
        assert_eq!(activity.idle(), Idle::Busy, "still in the body");
        assert!(body.frame().await.is_none());
        drop(body);
        assert!(matches!(activity.idle(), Idle::Draining(_)));
        let mut socket = Metered::new(Vec::new(), activity.clone());
        socket.write_all(b"da").await.unwrap();
        assert!(matches!(activity.idle(), Idle::Draining(_)));
        socket.write_all(b"ta").await.unwrap();
        assert!(matches!(activity.idle(), Idle::Since(_)));
        assert_eq!(socket.io, b"data");
    }

    #[test]
    fn a_dropped_body_or_request_ends_the_request() {
        let activity = Activity::new(Instant::now());
        let response = track(Response::new(Full::new(Bytes::new())), activity.start());
        let other = activity.start();
        drop(response);
        assert_eq!(activity.idle(), Idle::Busy);
        drop(other);
        assert!(matches!(activity.idle(), Idle::Since(_)));
    }
}
