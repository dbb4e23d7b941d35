//! When an idle connection is told to close, and when it is dropped.
//!
//! A connection is *serving* until it has been idle for `idle_limit`,
//! counted from accept, then from the end of its last request (see
//! [`super::activity`]). Then it is told to close (HTTP/2 GOAWAY, HTTP/1
//! keep-alive off) and is *closing*. A closing connection that stays idle
//! for `close_grace` more, because the client neither answers nor hangs
//! up, is dropped. A connection with a request in flight is never cut by
//! either rule. One whose last response is still being written (draining)
//! gets `idle_limit` from its last write in either state, so a slow reader
//! gets the end of its download. A server shutdown moves every connection
//! to closing at once.
//!
//! Pure: every decision takes `now` and a snapshot of the connection's
//! activity.

use std::time::Duration;

use tokio::time::Instant;

use super::activity::Idle;

/// Longest wait ever scheduled (30 years), so that `Instant + Duration`
/// cannot overflow whatever the configured limits are.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// The watchdog of one connection.
#[derive(Debug, Clone)]
pub(super) struct Watchdog {
    idle_limit: Duration,
    close_grace: Duration,
    closing_since: Option<Instant>,
}

/// What the connection task does after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Nothing yet; check again at this instant.
    Wait(Instant),
    /// Tell the connection to close (graceful shutdown), keep serving it,
    /// and check again at this instant.
    Close(Instant),
    /// Drop the connection.
    Drop,
}

impl Watchdog {
    /// A serving connection's watchdog.
    pub(super) fn new(idle_limit: Duration, close_grace: Duration) -> Watchdog {
        Watchdog {
            idle_limit,
            close_grace,
            closing_since: None,
        }
    }

    /// Whether the connection has been told to close.
    pub(super) fn is_closing(&self) -> bool {
        self.closing_since.is_some()
    }

    /// The connection was told to close at `now` (by a check or by the
    /// server shutting down); returns when to check next.
    pub(super) fn closing(&mut self, now: Instant) -> Instant {
        let since = *self.closing_since.get_or_insert(now);
        later(since, self.close_grace)
    }

    /// Decides at `now`, given what the connection is doing.
    pub(super) fn check(&mut self, idle: Idle, now: Instant) -> Action {
        let idle_limit = match self.closing_since {
            None => self.idle_limit,
            Some(_) => self.close_grace,
        };
        let mut deadline = match idle {
            Idle::Busy => return Action::Wait(later(now, idle_limit)),
            Idle::Draining(progress) => later(progress, self.idle_limit),
            Idle::Since(since) => later(since, idle_limit),
        };
        if let Some(closing_since) = self.closing_since {
            // Never sooner than the grace after the order to close.
            deadline = deadline.max(later(closing_since, self.close_grace));
        }
        if deadline > now {
            return Action::Wait(deadline);
        }
        match self.closing_since {
            None => Action::Close(self.closing(now)),
            Some(_) => Action::Drop,
        }
    }
}

/// `at + by`, with `by` capped at [`FAR`].
pub(super) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by.min(FAR)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);
    const GRACE: Duration = Duration::from_secs(1);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_silent_connection_is_told_to_close_after_the_limit_then_dropped() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(LIMIT, GRACE);
        let idle = Idle::Since(t0);
        assert_eq!(dog.check(idle, t0), Action::Wait(t0 + LIMIT));
        assert_eq!(dog.check(idle, t0 + secs(9)), Action::Wait(t0 + LIMIT));
        assert!(!dog.is_closing());
        assert_eq!(
            dog.check(idle, t0 + LIMIT),
            Action::Close(t0 + LIMIT + GRACE)
        );
        assert!(dog.is_closing());
        assert_eq!(
            dog.check(idle, t0 + LIMIT),
            Action::Wait(t0 + LIMIT + GRACE)
        );
        assert_eq!(dog.check(idle, t0 + LIMIT + GRACE), Action::Drop);
    }

    #[test]
    fn a_request_in_flight_is_never_cut() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(LIMIT, GRACE);
        // Busy long past the limit: only re-checks.
        assert_eq!(
            dog.check(Idle::Busy, t0 + secs(100)),
            Action::Wait(t0 + secs(110))
        );
        // Idle time counts from the end of the request.
        let end = t0 + secs(105);
        assert_eq!(
            dog.check(Idle::Since(end), t0 + secs(110)),
            Action::Wait(end + LIMIT)
        );
        // Closing, but a request came in (HTTP/2 before the last GOAWAY).
        let close_at = dog.closing(t0 + secs(200));
        assert_eq!(close_at, t0 + secs(201));
        assert_eq!(
            dog.check(Idle::Busy, t0 + secs(300)),
            Action::Wait(t0 + secs(301))
        );
        // Its end gives the connection the grace period to finish writing.
        let end = t0 + secs(300);
        assert_eq!(dog.check(Idle::Since(end), end), Action::Wait(end + GRACE));
        assert_eq!(dog.check(Idle::Since(end), end + GRACE), Action::Drop);
    }

    #[test]
    fn a_response_still_being_written_gets_the_idle_limit_from_its_last_write() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(LIMIT, GRACE);
        let write = t0 + secs(50);
        assert_eq!(
            dog.check(Idle::Draining(write), t0 + secs(55)),
            Action::Wait(write + LIMIT)
        );
        // Writes stopped (a stalled reader, a reset stream): closing...
        assert_eq!(
            dog.check(Idle::Draining(write), write + LIMIT),
            Action::Close(write + LIMIT + GRACE)
        );
        // ...and dropped after the grace unless writes resume.
        let resumed = write + LIMIT + GRACE;
        assert_eq!(
            dog.check(Idle::Draining(resumed), resumed),
            Action::Wait(resumed + LIMIT)
        );
        assert_eq!(
            dog.check(Idle::Draining(resumed), resumed + LIMIT),
            Action::Drop
        );
    }

    #[test]
    fn a_shutdown_keeps_a_draining_response_while_it_progresses() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(LIMIT, GRACE);
        assert_eq!(dog.closing(t0), t0 + GRACE);
        assert_eq!(
            dog.check(Idle::Draining(t0), t0 + GRACE),
            Action::Wait(t0 + LIMIT)
        );
        assert_eq!(dog.check(Idle::Draining(t0), t0 + LIMIT), Action::Drop);
    }

    #[test]
    fn a_shutdown_closes_at_once_and_drops_idle_connections_after_the_grace() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(LIMIT, GRACE);
        let now = t0 + secs(3);
        assert_eq!(dog.closing(now), now + GRACE);
        // A second order to close changes nothing.
        assert_eq!(dog.closing(now + secs(1)), now + GRACE);
        assert_eq!(dog.check(Idle::Since(t0), now), Action::Wait(now + GRACE));
        assert_eq!(dog.check(Idle::Since(t0), now + GRACE), Action::Drop);
    }

    #[test]
    fn huge_limits_do_not_overflow() {
        let t0 = Instant::now();
        let mut dog = Watchdog::new(Duration::MAX, Duration::MAX);
        assert_eq!(dog.check(Idle::Since(t0), t0), Action::Wait(t0 + FAR));
        assert_eq!(dog.closing(t0), t0 + FAR);
        assert_eq!(later(t0, Duration::MAX), t0 + FAR);
    }
}
