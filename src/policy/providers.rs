//! The upload fields of an XMPP Providers provider file
//! (<https://providers.xmpp.net/provider-file-generator/>, API v2), with
//! the project's names and units:
//!
//! - `maximumHttpFileUploadStorageTime`: days; `-1` for less than one day,
//!   `0` for no limit;
//! - `maximumHttpFileUploadTotalSize`: all files of one user together, in
//!   megabytes of 10^6 bytes (not MiB); `-1` for less than 1 MB, `0` for no
//!   limit;
//! - `maximumHttpFileUploadFileSize`: the largest file, in megabytes. The
//!   project's provider list carries it under this name, but reads it from
//!   the XMPP server's XEP-0363 announcement, not from the provider file.
//!
//! The directory ranks providers by these numbers (longer, larger: better),
//! so each is rounded down: it never promises more than every user gets.

use std::time::Duration;

use serde::Serialize;

use super::facts::Facts;
use crate::time::secs;

/// One megabyte as XMPP Providers counts it.
pub const MEGABYTE: u64 = 1_000_000;

const DAY: i64 = 86_400;

/// The fields, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProviderFields {
    /// `upload.max_size` in whole megabytes.
    #[serde(rename = "maximumHttpFileUploadFileSize")]
    pub file_size: i64,
    /// What one account can have stored at once, in whole megabytes (see
    /// [`total_bytes`]); 0: no limit.
    #[serde(rename = "maximumHttpFileUploadTotalSize")]
    pub total_size: i64,
    /// `retention.keep` in whole days.
    #[serde(rename = "maximumHttpFileUploadStorageTime")]
    pub storage_time: i64,
}

impl ProviderFields {
    /// The fields of `facts`.
    pub fn of(facts: &Facts) -> ProviderFields {
        ProviderFields {
            file_size: megabytes(facts.limits.max_size),
            total_size: total_bytes(facts).map_or(0, megabytes),
            storage_time: days(facts.keep),
        }
    }
}

/// The fields of `facts` as pretty JSON, with a final newline.
pub fn json(facts: &Facts) -> String {
    let fields = ProviderFields::of(facts);
    // Three integers cannot fail to serialise; fall back to nothing rather
    // than panic.
    let mut text = serde_json::to_string_pretty(&fields).unwrap_or_default();
    text.push('\n');
    text
}

/// What one account can have stored at once, in bytes, or `None` without
/// any limit: the smallest of `quota.per_owner_stored`, `quota.global_stored`
/// and what `quota.per_owner_daily` lets an account accumulate while its
/// files live (`retention.keep`): one day's allowance per started period of
/// 24 hours and a minute (the daily window is counted in whole minutes,
/// so uploads a day and a minute apart are always allowed).
pub fn total_bytes(facts: &Facts) -> Option<u64> {
    let limits = &facts.limits;
    let keep = u64::try_from(secs(facts.keep)).unwrap_or(u64::MAX);
    let spacing = (DAY + 60) as u64;
    let allowances = keep.div_ceil(spacing).max(1);
    let accumulated =
        (limits.per_owner_daily > 0).then(|| limits.per_owner_daily.saturating_mul(allowances));
    [
        Some(limits.per_owner_stored),
        Some(limits.global_stored),
        accumulated,
    ]
    .into_iter()
    .flatten()
    .filter(|&limit| limit > 0)
    .min()
}

/// Whole megabytes, rounded down; -1 below one.
fn megabytes(bytes: u64) -> i64 {
    match bytes / MEGABYTE {
        0 => -1,
        whole => i64::try_from(whole).unwrap_or(i64::MAX),
    }
}

/// Whole days, rounded down; -1 below one.
fn days(span: Duration) -> i64 {
    match secs(span) / DAY {
        0 => -1,
        whole => whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::defaults;

    #[test]
    fn defaults_map_to_megabytes_and_days() {
        let facts = defaults();
        // 100 MiB = 104,857,600 bytes: 104 MB, not 105.
        // 1000 MiB a day for 30 days: 31,457,280,000 bytes.
        assert_eq!(
            ProviderFields::of(&facts),
            ProviderFields {
                file_size: 104,
                total_size: 31_457,
                storage_time: 30,
            }
        );
        assert_eq!(
            json(&facts),
            "{\n  \"maximumHttpFileUploadFileSize\": 104,\n  \
             \"maximumHttpFileUploadTotalSize\": 31457,\n  \
             \"maximumHttpFileUploadStorageTime\": 30\n}\n"
        );
    }

    #[test]
    fn rounding_never_overstates() {
        let mut facts = defaults();
        facts.keep = Duration::from_secs(36 * 3_600);
        facts.limits.max_size = 999_999;
        assert_eq!(ProviderFields::of(&facts).storage_time, 1);
        assert_eq!(ProviderFields::of(&facts).file_size, -1);
        facts.keep = Duration::from_secs(23 * 3_600);
        assert_eq!(ProviderFields::of(&facts).storage_time, -1);
        // 36 hours: two uploads a day apart are both still stored.
        facts.keep = Duration::from_secs(36 * 3_600);
        facts.limits.per_owner_daily = 10 * MEGABYTE;
        assert_eq!(total_bytes(&facts), Some(20 * MEGABYTE));
        // Exactly one day: only one day's allowance is ever stored at once.
        facts.keep = Duration::from_secs(86_400);
        assert_eq!(total_bytes(&facts), Some(10 * MEGABYTE));
    }

    #[test]
    fn the_smallest_limit_wins_and_none_means_unlimited() {
        let mut facts = defaults();
        facts.limits.per_owner_stored = 5 << 30;
        assert_eq!(ProviderFields::of(&facts).total_size, 5_368);
        facts.limits.global_stored = 2 << 30;
        assert_eq!(ProviderFields::of(&facts).total_size, 2_147);
        facts.limits = crate::policy::Limits {
            max_size: 1 << 20,
            per_owner_daily: 0,
            per_owner_stored: 0,
            global_stored: 0,
        };
        assert_eq!(ProviderFields::of(&facts).total_size, 0);
    }
}
