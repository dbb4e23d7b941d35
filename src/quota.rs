//! Quotas: the pure rules, tested with an explicit `now`.
//!
//! Three limits, each `0` for unlimited: the bytes one owner may upload in
//! any rolling 24 hours, the bytes one owner may have stored at once, and
//! the bytes stored in total. An owner is the keyed pseudonym of a signed
//! identity (a JWT `sub`, ejabberd's `sha1(user@host)` path segment); a slot
//! without one is subject to the global limit only.
//!
//! Uploads are charged to the minute they began in: an upload begun in the
//! minute starting at `m` counts against the daily limit until
//! `m + 60 + 24 h`, so no 24-hour span ever holds more than the limit (it
//! may count up to a minute longer than strictly needed, never shorter).
//! What the stores keep ([`crate::index::QuotaLedger`]) is usage; what is
//! allowed is decided here, once, by [`Limits::check`].

use crate::config::{Config, human_bytes};
use crate::time::utc_minute;

/// The span of the daily limit, in seconds.
pub const WINDOW: i64 = 86_400;

/// The granularity of the daily ledger, in seconds.
pub const MINUTE: i64 = 60;

/// The start of the minute `now` falls in.
pub fn minute_of(now: i64) -> i64 {
    now.div_euclid(MINUTE) * MINUTE
}

/// Until when an upload charged to the minute starting at `minute` counts
/// against the daily limit (exclusive).
pub fn counts_until(minute: i64) -> i64 {
    minute.saturating_add(MINUTE + WINDOW)
}

/// The oldest minute whose uploads may still count against the daily
/// limit at `now` (stores read history from here on).
pub fn window_start(now: i64) -> i64 {
    minute_of(now).saturating_sub(WINDOW + MINUTE)
}

/// Minutes (starts) below this no longer count at `at`: their uploads
/// aged out of the window, so the stores may forget them.
pub fn first_counting_minute(at: i64) -> i64 {
    at.saturating_sub(WINDOW + MINUTE).saturating_add(1)
}

/// The limits in force; `0` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes one owner may upload in any rolling 24 hours.
    pub per_owner_daily: u64,
    /// Bytes one owner may have stored at once.
    pub per_owner_stored: u64,
    /// Bytes stored in total.
    pub global_stored: u64,
}

impl Limits {
    /// The limits `config` sets (`per_owner_daily` defaulting to ten times
    /// `upload.max_size`).
    pub fn of(config: &Config) -> Limits {
        Limits {
            per_owner_daily: config.per_owner_daily(),
            per_owner_stored: config.quota.per_owner_stored.0,
            global_stored: config.quota.global_stored.0,
        }
    }

    /// Whether an upload with (`owned`) or without an owner is limited at
    /// all; when not, no usage needs to be measured or reserved.
    pub fn apply_to(&self, owned: bool) -> bool {
        self.global_stored != 0
            || (owned && (self.per_owner_daily != 0 || self.per_owner_stored != 0))
    }

    /// Whether `size` more bytes fit `usage` at `now`: the global limit
    /// first, then the owner's stored bytes, then the owner's daily bytes
    /// (so a refusal names the limit that waiting alone cannot lift).
    pub fn check(&self, usage: &Usage, size: u64, now: i64) -> Result<(), Refusal> {
        if self.global_stored != 0 && usage.global_stored.saturating_add(size) > self.global_stored
        {
            return Err(Refusal::GlobalStored {
                limit: self.global_stored,
            });
        }
        let Some(owner) = &usage.owner else {
            return Ok(());
        };
        if self.per_owner_stored != 0 && owner.stored.saturating_add(size) > self.per_owner_stored {
            return Err(Refusal::OwnerStored {
                limit: self.per_owner_stored,
            });
        }
        if self.per_owner_daily != 0 {
            let used = owner.uploaded_in_window(now);
            if used.saturating_add(size) > self.per_owner_daily {
                return Err(Refusal::Daily {
                    limit: self.per_owner_daily,
                    retry_at: owner.fits_daily_at(size, self.per_owner_daily, now),
                });
            }
        }
        Ok(())
    }
}

/// What one owner uses, committed files and live reservations together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerUsage {
    /// Bytes stored (files not yet deleted, plus uploads in progress).
    pub stored: u64,
    /// Bytes uploaded (or being uploaded) per minute, as
    /// `(minute start, bytes)`; minutes that no longer count may be
    /// included and are ignored.
    pub uploads: Vec<(i64, u64)>,
}

impl OwnerUsage {
    /// Bytes that count against the daily limit at `now`.
    pub fn uploaded_in_window(&self, now: i64) -> u64 {
        self.uploads
            .iter()
            .filter(|(minute, _)| counts_until(*minute) > now)
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes))
    }

    /// The earliest time from `now` on at which `size` more bytes fit the
    /// daily `limit`, as uploads age out of the window (assuming no other
    /// upload starts meanwhile).
    pub fn fits_daily_at(&self, size: u64, limit: u64, now: i64) -> i64 {
        let mut live: Vec<(i64, u64)> = self
            .uploads
            .iter()
            .copied()
            .filter(|(minute, _)| counts_until(*minute) > now)
            .collect();
        live.sort_unstable();
        let mut used = live
            .iter()
            .fold(0u64, |sum, (_, bytes)| sum.saturating_add(*bytes));
        let mut at = now;
        for (minute, bytes) in live {
            if used.saturating_add(size) <= limit {
                break;
            }
            used = used.saturating_sub(bytes);
            at = counts_until(minute);
        }
        at
    }
}

/// What an upload is checked against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// The owner's usage, for an upload that has one.
    pub owner: Option<OwnerUsage>,
    /// Bytes stored in total (files not yet deleted, plus uploads in
    /// progress).
    pub global_stored: u64,
}

/// Why an upload does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The owner's rolling 24-hour limit.
    Daily {
        /// The limit in bytes.
        limit: u64,
        /// When the upload would fit, if nothing else is uploaded.
        retry_at: i64,
    },
    /// The owner's stored-bytes limit.
    OwnerStored {
        /// The limit in bytes.
        limit: u64,
    },
    /// The global stored-bytes limit.
    GlobalStored {
        /// The limit in bytes.
        limit: u64,
    },
}

impl Refusal {
    /// The kind, as metrics label it.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Daily { .. } => "daily",
            Refusal::OwnerStored { .. } => "owner_stored",
            Refusal::GlobalStored { .. } => "global_stored",
        }
    }

    /// One sentence a chat client can show its user. It names no account
    /// and no address, only the limit and, for the daily limit, when
    /// uploading works again (in UTC, rounded up to the minute).
    pub fn sentence(&self) -> String {
        match self {
            Refusal::Daily { limit, retry_at } => format!(
                "Daily upload limit of {} reached; you can upload again after {} UTC.",
                human_bytes(*limit),
                clock_time(*retry_at)
            ),
            Refusal::OwnerStored { limit } => format!(
                "Storage limit of {} per account reached; space frees up as your older uploads expire.",
                human_bytes(*limit)
            ),
            Refusal::GlobalStored { .. } => {
                "The upload service is full right now; please try again later.".to_string()
            }
        }
    }
}

/// `at` as `HH:MM` (UTC), rounded up to the next whole minute.
fn clock_time(at: i64) -> String {
    utc_minute(at.saturating_add(MINUTE - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn daily(limit: u64) -> Limits {
        Limits {
            per_owner_daily: limit,
            ..Limits::default()
        }
    }

    fn owned(stored: u64, uploads: &[(i64, u64)]) -> Usage {
        Usage {
            owner: Some(OwnerUsage {
                stored,
                uploads: uploads.to_vec(),
            }),
            global_stored: stored,
        }
    }

    #[test]
    fn an_upload_counts_for_a_day_and_a_minute_from_its_minute() {
        assert_eq!(minute_of(119), 60);
        assert_eq!(minute_of(-1), -60);
        let usage = OwnerUsage {
            stored: 0,
            uploads: vec![(60, 10)],
        };
        assert_eq!(usage.uploaded_in_window(60), 10);
        assert_eq!(usage.uploaded_in_window(120 + WINDOW - 1), 10);
        assert_eq!(usage.uploaded_in_window(120 + WINDOW), 0);
        // What may be forgotten is what no longer counts.
        assert!(first_counting_minute(120 + WINDOW - 1) <= 60);
        assert!(first_counting_minute(120 + WINDOW) > 60);
        assert!(window_start(60) <= 60 - WINDOW);
    }

    #[test]
    fn the_daily_limit_is_exact_at_its_boundary() {
        let limits = daily(100);
        let usage = owned(0, &[(0, 60)]);
        assert_eq!(limits.check(&usage, 40, 30), Ok(()));
        assert_eq!(
            limits.check(&usage, 41, 30),
            Err(Refusal::Daily {
                limit: 100,
                retry_at: counts_until(0)
            })
        );
    }

    #[test]
    fn the_window_slides_and_the_retry_time_is_when_enough_has_aged_out() {
        let limits = daily(100);
        // 40 bytes at minute 0, 30 at minute 600, 30 at minute 1200.
        let usage = owned(0, &[(1200, 30), (0, 40), (600, 30)]);
        let now = 1300;
        // 50 more bytes need 50 to age out: the first two minutes' uploads.
        assert_eq!(
            limits.check(&usage, 50, now),
            Err(Refusal::Daily {
                limit: 100,
                retry_at: counts_until(600)
            })
        );
        // Once minute 0 has aged out, 40 bytes fit again, 41 do not.
        let later = counts_until(0);
        assert_eq!(limits.check(&usage, 40, later), Ok(()));
        assert!(limits.check(&usage, 41, later).is_err());
        // And once everything aged out, the whole limit is free.
        assert_eq!(limits.check(&usage, 100, counts_until(1200)), Ok(()));
    }

    #[test]
    fn stored_limits_refuse_until_files_are_deleted() {
        let limits = Limits {
            per_owner_stored: 100,
            global_stored: 1000,
            ..Limits::default()
        };
        let usage = Usage {
            owner: Some(OwnerUsage {
                stored: 90,
                uploads: vec![],
            }),
            global_stored: 500,
        };
        assert_eq!(limits.check(&usage, 10, 0), Ok(()));
        assert_eq!(
            limits.check(&usage, 11, 0),
            Err(Refusal::OwnerStored { limit: 100 })
        );
        // Expiry or erasure lowers what the store reports.
        let after = Usage {
            owner: Some(OwnerUsage::default()),
            global_stored: 410,
        };
        assert_eq!(limits.check(&after, 11, 0), Ok(()));
        let full = Usage {
            owner: None,
            global_stored: 995,
        };
        assert_eq!(
            limits.check(&full, 10, 0),
            Err(Refusal::GlobalStored { limit: 1000 })
        );
    }

    #[test]
    fn uploads_without_an_owner_meet_only_the_global_limit() {
        let limits = Limits {
            per_owner_daily: 1,
            per_owner_stored: 1,
            global_stored: 0,
        };
        assert!(!limits.apply_to(false));
        assert!(limits.apply_to(true));
        assert_eq!(limits.check(&Usage::default(), 1 << 40, 0), Ok(()));
        assert!(!Limits::default().apply_to(true));
    }

    #[test]
    fn refusals_read_as_sentences() {
        // 14:04:01 UTC: uploading works again from 14:05.
        let at = 14 * 3600 + 4 * 60 + 1;
        let daily = Refusal::Daily {
            limit: GIB,
            retry_at: at,
        };
        assert_eq!(
            daily.sentence(),
            "Daily upload limit of 1 GiB reached; you can upload again after 14:05 UTC."
        );
        assert_eq!(clock_time(14 * 3600 + 5 * 60), "14:05");
        assert_eq!(clock_time(WINDOW - 1), "00:00");
        assert!(
            Refusal::OwnerStored { limit: 5 * GIB }
                .sentence()
                .contains("5 GiB")
        );
        assert!(
            !Refusal::GlobalStored { limit: GIB }
                .sentence()
                .contains("GiB")
        );
    }
}
