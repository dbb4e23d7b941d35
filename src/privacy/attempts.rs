//! Failed attempts: client addresses that presented a missing, invalid or
//! expired token, remembered in memory only and briefly, to stop brute
//! force.
//!
//! An address is remembered from its first failure for at most
//! `privacy.failed_attempt_memory` (never more than 6 hours), then
//! forgotten, whatever it does meanwhile. Successful requests record
//! nothing. `ban_after` failures within `ban_window` ban the address for
//! `ban_for` (429 with `Retry-After`). IPv6 addresses count per /64, since
//! one host usually owns a whole /64. The number of addresses remembered is
//! bounded; nothing is ever written to disk or logs.
//!
//! Decisions take `now` (Unix seconds) so they can be tested with a
//! controllable clock; the cache's own expiry only bounds memory.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

use crate::metrics::{Counter, Exposition};
use crate::time::secs;

/// The longest an address may be remembered.
pub const MAX_MEMORY: Duration = Duration::from_secs(6 * 3_600);

/// When to ban.
#[derive(Debug, Clone, Copy)]
pub struct BanPolicy {
    /// How long an address is remembered from its first failure.
    pub memory: Duration,
    /// Failures within `window` that lead to a ban.
    pub threshold: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
    /// Most addresses remembered at once.
    pub max_addresses: u64,
}

/// What is remembered of an address: times and a count, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4([u8; 4]),
    /// The /64 prefix.
    V6([u8; 8]),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.octets()),
                None => {
                    let octets = v6.octets();
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&octets[..8]);
                    Client::V6(prefix)
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first_seen: i64,
    window_start: i64,
    failures: u32,
    banned_until: i64,
}

/// Entries expire `memory` after they were created; updates do not extend
/// their life.
struct ExpireFromFirstFailure(Duration);

impl Expiry<Client, Record> for ExpireFromFirstFailure {
    fn expire_after_create(&self, _: &Client, _: &Record, _: Instant) -> Option<Duration> {
        Some(self.0)
    }
}

/// The in-memory record of failed attempts, and counters of what it did.
pub struct FailedAttempts {
    policy: BanPolicy,
    records: Cache<Client, Record>,
    failures: Counter,
    bans: Counter,
    refused: Counter,
}

/// Outcome of [`FailedAttempts::record_failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; no ban (yet).
    Counted,
    /// This failure started a ban.
    Banned,
}

impl FailedAttempts {
    /// An empty record under `policy` (its memory is capped at [`MAX_MEMORY`]).
    pub fn new(mut policy: BanPolicy) -> FailedAttempts {
        policy.memory = policy.memory.min(MAX_MEMORY);
        let records = Cache::builder()
            .max_capacity(policy.max_addresses)
            .expire_after(ExpireFromFirstFailure(policy.memory))
            .build();
        FailedAttempts {
            policy,
            records,
            failures: Counter::default(),
            bans: Counter::default(),
            refused: Counter::default(),
        }
    }

    /// How long a ban lasts.
    pub fn ban_duration(&self) -> Duration {
        self.policy.ban
    }

    /// The record of `client` as of `now`, if still remembered.
    fn current(&self, client: &Client, now: i64) -> Option<Record> {
        self.records
            .get(client)
            .filter(|record| now.saturating_sub(record.first_seen) < secs(self.policy.memory))
    }

    /// If `ip` is banned at `now`, the seconds until the ban ends.
    pub fn banned(&self, ip: IpAddr, now: i64) -> Option<u64> {
        let record = self.current(&Client::of(ip), now)?;
        (record.banned_until > now).then(|| u64::try_from(record.banned_until - now).unwrap_or(1))
    }

    /// Counts a request refused because its address is banned.
    pub fn record_refusal(&self) {
        self.refused.inc();
    }

    /// Counts a failed attempt by `ip` at `now`.
    pub fn record_failure(&self, ip: IpAddr, now: i64) -> Failure {
        self.failures.inc();
        let client = Client::of(ip);
        let window = secs(self.policy.window);
        let mut record = self.current(&client, now).unwrap_or(Record {
            first_seen: now,
            window_start: now,
            failures: 0,
            banned_until: 0,
        });
        if now.saturating_sub(record.window_start) >= window {
            record.window_start = now;
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        let newly_banned = record.failures >= self.policy.threshold && record.banned_until <= now;
        if newly_banned {
            // A ban never outlasts the memory of the address.
            let forget_at = record.first_seen.saturating_add(secs(self.policy.memory));
            record.banned_until = now.saturating_add(secs(self.policy.ban)).min(forget_at);
        }
        if now.saturating_sub(record.first_seen) >= secs(self.policy.memory) {
            // Past the memory window (possible only with a test clock):
            // a fresh record replaces the old one.
            self.records.invalidate(&client);
        }
        self.records.insert(client, record);
        if newly_banned {
            self.bans.inc();
            Failure::Banned
        } else {
            Failure::Counted
        }
    }

    /// How many addresses (or /64s) are remembered now.
    pub fn remembered(&self) -> u64 {
        self.records.run_pending_tasks();
        self.records.entry_count()
    }

    /// Writes the failed-attempt metrics into `out`.
    pub fn expose(&self, out: &mut Exposition) {
        out.counter(
            "upslot_failed_attempts_total",
            "Requests refused for a missing, invalid or expired token.",
            self.failures.get(),
        );
        out.counter(
            "upslot_bans_total",
            "Client addresses banned after repeated failed attempts.",
            self.bans.get(),
        );
        out.counter(
            "upslot_banned_requests_total",
            "Requests answered 429 because their address was banned.",
            self.refused.get(),
        );
        out.gauge(
            "upslot_remembered_addresses",
            "Addresses (IPv6: /64s) with failed attempts held in memory (never written anywhere).",
            self.remembered(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BanPolicy {
        BanPolicy {
            memory: Duration::from_secs(6 * 3_600),
            threshold: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(600),
            max_addresses: 1000,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn bans_after_the_threshold_within_the_window() {
        let attempts = FailedAttempts::new(policy());
        let bad = ip("127.0.0.7");
        assert_eq!(attempts.record_failure(bad, 1000), Failure::Counted);
        assert_eq!(attempts.record_failure(bad, 1010), Failure::Counted);
        assert_eq!(attempts.banned(bad, 1010), None);
        assert_eq!(attempts.record_failure(bad, 1020), Failure::Banned);
        assert_eq!(attempts.banned(bad, 1020), Some(600));
        assert_eq!(attempts.banned(bad, 1619), Some(1));
        assert_eq!(attempts.banned(bad, 1620), None, "the ban ends");
        assert_eq!(
            attempts.banned(ip("127.0.0.8"), 1020),
            None,
            "others are unaffected"
        );
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_ban() {
        let attempts = FailedAttempts::new(policy());
        let slow = ip("192.0.2.1");
        for t in [0, 50, 110, 170, 230] {
            assert_eq!(attempts.record_failure(slow, t), Failure::Counted);
        }
        assert_eq!(attempts.banned(slow, 230), None);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let attempts = FailedAttempts::new(policy());
        attempts.record_failure(ip("2001:db8:1:2::1"), 0);
        attempts.record_failure(ip("2001:db8:1:2::2"), 1);
        attempts.record_failure(ip("2001:db8:1:2:ffff::3"), 2);
        assert!(attempts.banned(ip("2001:db8:1:2::99"), 3).is_some());
        assert!(attempts.banned(ip("2001:db8:1:3::1"), 3).is_none());
        // IPv4-mapped addresses are their IPv4 address.
        attempts.record_failure(ip("::ffff:10.0.0.1"), 0);
        attempts.record_failure(ip("10.0.0.1"), 0);
        attempts.record_failure(ip("10.0.0.1"), 0);
        assert!(attempts.banned(ip("10.0.0.1"), 1).is_some());
    }

    #[test]
    fn forgotten_after_the_memory_window() {
        let attempts = FailedAttempts::new(BanPolicy {
            ban: Duration::from_secs(100 * 3_600),
            ..policy()
        });
        let bad = ip("127.0.0.7");
        for t in 0..3 {
            attempts.record_failure(bad, t);
        }
        let memory = 6 * 3_600;
        assert!(
            attempts.banned(bad, memory - 1).is_some(),
            "a ban is capped by the memory"
        );
        assert_eq!(
            attempts.banned(bad, memory),
            None,
            "forgotten at the window's end"
        );
        // A new failure starts a fresh record, not a continued one.
        assert_eq!(attempts.record_failure(bad, memory + 5), Failure::Counted);
        assert_eq!(attempts.banned(bad, memory + 5), None);
    }

    #[test]
    fn memory_is_capped_at_six_hours_and_bounded() {
        let attempts = FailedAttempts::new(BanPolicy {
            memory: Duration::from_secs(48 * 3_600),
            max_addresses: 10,
            ..policy()
        });
        assert_eq!(attempts.policy.memory, MAX_MEMORY);
        for i in 0..1000u32 {
            attempts.record_failure(IpAddr::from(i.to_be_bytes()), 0);
        }
        assert!(attempts.remembered() <= 10, "{}", attempts.remembered());
    }
}
