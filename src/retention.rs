//! The retention rules, in one place: when a file must be gone, how long it
//! is still served, when it is due for deletion, when the sweeper is late,
//! and when whole days or tombstones may go. Pure functions of the settings,
//! a record and `now`; the data layer ([`crate::files`]) and the sweeper
//! ([`crate::sweeper`]) apply them.
//!
//! A file's life ends at the earlier of its `expires_at` (upload time +
//! `keep`, or the JWT's `expires` claim if earlier) and its creation time +
//! `max`, a ceiling that holds even for files uploaded under an older,
//! longer `keep`.

use std::time::Duration;

use crate::index::FileRecord;
use crate::time::secs;

/// Seconds in a day: the span of one blob day prefix.
pub const DAY: i64 = 86_400;

/// How late the sweeper may be before a due file counts as overdue, beyond
/// two sweep intervals.
const OVERDUE_GRACE: i64 = 60;

/// The retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// From upload to deletion.
    pub keep: Duration,
    /// The ceiling no file may exceed.
    pub max: Duration,
    /// Time between sweeper passes.
    pub sweep_every: Duration,
    /// How long deleted slots stay single-use.
    pub tombstone_horizon: Duration,
}

impl Retention {
    /// When a file uploaded at `now` must be gone: `keep` later, or the
    /// token's `expires` if that is earlier.
    pub fn expires_at(&self, now: i64, token_expires: Option<i64>) -> i64 {
        let kept = now.saturating_add(secs(self.keep));
        token_expires.map_or(kept, |expires| expires.min(kept))
    }

    /// The moment `record` stops being served: its `expires_at`, or the
    /// `max` ceiling counted from its creation if that is earlier.
    pub fn served_until(&self, record: &FileRecord) -> i64 {
        record
            .expires_at
            .min(record.created.saturating_add(secs(self.max)))
    }

    /// The seconds `record` is still served at `now` (at least one), or
    /// `None` once its time has come.
    pub fn remaining(&self, record: &FileRecord, now: i64) -> Option<u64> {
        let left = self.served_until(record).saturating_sub(now);
        u64::try_from(left).ok().filter(|&left| left > 0)
    }

    /// Whether `record` is due for deletion at `now`.
    pub fn is_due(&self, record: &FileRecord, now: i64) -> bool {
        self.remaining(record, now).is_none()
    }

    /// Whether `record`, due at `now`, is due only because of the `max`
    /// ceiling (its own `expires_at` is still ahead).
    pub fn over_ceiling_only(&self, record: &FileRecord, now: i64) -> bool {
        self.is_due(record, now) && record.expires_at > now
    }

    /// Files created at or before this time are over the ceiling at `now`.
    pub fn ceiling_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(secs(self.max))
    }

    /// Files due at or before this time are overdue at `now`: due for more
    /// than two sweep intervals and a minute.
    pub fn overdue_cutoff(&self, now: i64) -> i64 {
        let grace = secs(self.sweep_every)
            .saturating_mul(2)
            .saturating_add(OVERDUE_GRACE);
        now.saturating_sub(grace).saturating_sub(1)
    }

    /// Tombstones dated before this time are forgotten at `now`.
    pub fn tombstone_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(secs(self.tombstone_horizon))
    }

    /// Whether the blob day prefix whose day starts at `day_start` may be
    /// removed whole, without the index, at `now`: the newest blob it can
    /// hold (created just before the day ends) has outlived `max` by a day.
    pub fn backstop_due(&self, day_start: i64, now: i64) -> bool {
        let newest_gone = day_start.saturating_add(DAY).saturating_add(secs(self.max));
        now >= newest_gone.saturating_add(DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::BlobName;

    fn retention(keep: u64, max: u64) -> Retention {
        Retention {
            keep: Duration::from_secs(keep),
            max: Duration::from_secs(max),
            sweep_every: Duration::from_secs(10),
            tombstone_horizon: Duration::from_secs(keep),
        }
    }

    fn record(created: i64, expires_at: i64) -> FileRecord {
        FileRecord {
            blob: BlobName::new(created),
            size: 1,
            content_type: "text/plain".into(),
            created,
            expires_at,
            owner: None,
            sealing: None,
        }
    }

    #[test]
    fn expiry_takes_the_earlier_time() {
        let r = retention(86_400, 86_400);
        assert_eq!(r.expires_at(1000, None), 1000 + 86_400);
        assert_eq!(r.expires_at(1000, Some(5000)), 5000);
        assert_eq!(r.expires_at(1000, Some(10_000_000)), 1000 + 86_400);
        assert_eq!(r.expires_at(i64::MAX - 5, None), i64::MAX);
    }

    #[test]
    fn served_until_its_time_never_after() {
        let r = retention(100, 200);
        let file = record(0, 100);
        assert_eq!(r.served_until(&file), 100);
        assert_eq!(r.remaining(&file, 0), Some(100));
        assert_eq!(r.remaining(&file, 99), Some(1));
        assert_eq!(r.remaining(&file, 100), None, "gone exactly at its time");
        assert_eq!(r.remaining(&file, i64::MAX), None);
        assert!(!r.is_due(&file, 99));
        assert!(r.is_due(&file, 100));
    }

    #[test]
    fn the_ceiling_holds_whatever_expires_at_says() {
        // Uploaded under an older, longer `keep`.
        let r = retention(100, 200);
        let file = record(0, 10_000);
        assert_eq!(r.served_until(&file), 200);
        assert_eq!(r.remaining(&file, 199), Some(1));
        assert!(r.is_due(&file, 200));
        assert!(r.over_ceiling_only(&file, 200));
        assert!(!r.over_ceiling_only(&record(0, 150), 200));
        assert_eq!(r.ceiling_cutoff(200), 0);
        let forever = Retention {
            max: Duration::MAX,
            ..r
        };
        assert_eq!(forever.served_until(&file), 10_000);
        assert_eq!(forever.ceiling_cutoff(5), i64::MIN + 6);
    }

    #[test]
    fn overdue_after_two_intervals_and_a_minute() {
        let r = retention(100, 200);
        // Due at 10: overdue from 10 + 2 × 10 s + 60 s, exclusive.
        assert_eq!(r.overdue_cutoff(90), 9);
        assert_eq!(r.overdue_cutoff(91), 10);
    }

    #[test]
    fn tombstones_and_whole_days() {
        let r = retention(100, 200);
        assert_eq!(r.tombstone_cutoff(1000), 900);
        // A day may hold blobs created until its end; they are gone by end +
        // max; the backstop acts one day later.
        assert!(!r.backstop_due(0, 2 * DAY + 199));
        assert!(r.backstop_due(0, 2 * DAY + 200));
        assert!(!r.backstop_due(i64::MAX - DAY, i64::MAX - 1));
    }
}
