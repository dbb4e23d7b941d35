//! The right-of-access report (GDPR art. 15): what upslot holds for one
//! account, as the admin API's JSON (`GET /owners/{jid}`, `upslot access
//! --json`) and as the text `upslot access` prints for the operator to
//! paste into a reply. Both are made here, once, from the data layer's
//! [`Access`]; neither names a file (upslot keeps no names).
//!
//! ```json
//! {"files":2,"bytes":1536,
//!  "oldest_upload":"2026-12-01T10:00:00Z","oldest_upload_unix":1796119200,
//!  "latest_expiry":"2026-12-31T10:05:00Z","latest_expiry_unix":1798711500,
//!  "uploaded_last_24h":1536,"stored":1536,
//!  "limits":{"per_owner_daily":1073741824,"per_owner_stored":null}}
//! ```
//!
//! Sizes are bytes; times are UTC, as RFC 3339 and as Unix seconds, `null`
//! when the account has no files; a limit is `null` when it is off.

use serde::{Deserialize, Serialize};

use crate::auth::BareJid;
use crate::config::human_bytes;
use crate::files::Access;
use crate::time::{rfc3339, utc_text};

/// What upslot holds for one account, as the admin API answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessReport {
    /// Files stored (expired ones not yet swept included).
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// When the oldest of them was uploaded (RFC 3339, UTC).
    pub oldest_upload: Option<String>,
    /// The same, in Unix seconds.
    pub oldest_upload_unix: Option<i64>,
    /// When the last of them expires (RFC 3339, UTC).
    pub latest_expiry: Option<String>,
    /// The same, in Unix seconds.
    pub latest_expiry_unix: Option<i64>,
    /// Bytes that count against the daily limit now (uploaded in the last
    /// 24 hours, measured in whole minutes).
    pub uploaded_last_24h: u64,
    /// Bytes that count against the stored-bytes limit now (uploads in
    /// progress included).
    pub stored: u64,
    /// The per-account limits in force.
    pub limits: AccountLimits,
}

/// The per-account limits in force, in bytes; `None` (`null`) when off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Bytes one account may upload in any rolling 24 hours.
    pub per_owner_daily: Option<u64>,
    /// Bytes one account may have stored at once.
    pub per_owner_stored: Option<u64>,
}

impl From<&Access> for AccessReport {
    fn from(access: &Access) -> AccessReport {
        let unless_off = |bytes: u64| (bytes != 0).then_some(bytes);
        AccessReport {
            files: access.files,
            bytes: access.bytes,
            oldest_upload: access.oldest_upload.map(rfc3339),
            oldest_upload_unix: access.oldest_upload,
            latest_expiry: access.latest_expiry.map(rfc3339),
            latest_expiry_unix: access.latest_expiry,
            uploaded_last_24h: access.uploaded_today,
            stored: access.stored,
            limits: AccountLimits {
                per_owner_daily: unless_off(access.limits.per_owner_daily),
                per_owner_stored: unless_off(access.limits.per_owner_stored),
            },
        }
    }
}

impl AccessReport {
    /// The JSON the admin API answers: one line, with a final newline.
    pub fn json(&self) -> String {
        // Numbers, strings and nulls only: serialising does not fail; if it
        // ever did, the reader gets an empty line it refuses to parse.
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }

    /// Reads the admin API's JSON (fields added later are ignored).
    pub fn parse(json: &str) -> Result<AccessReport, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The text for a reply to `jid`'s access request, made at `now`.
    pub fn text(&self, jid: &BareJid, now: i64) -> String {
        let mut out = format!(
            "Data held by the file upload service (upslot) for {}, as of {}:\n\n",
            jid.as_str(),
            utc_text(now)
        );
        match (self.files, self.oldest_upload_unix, self.latest_expiry_unix) {
            (1.., Some(oldest), Some(latest)) => {
                out += &format!("Files: {}, {} in total\n", self.files, size(self.bytes));
                out += &format!("Oldest upload: {}\n", utc_text(oldest));
                out += &format!("Latest expiry: {}\n", utc_text(latest));
            }
            _ => {
                out += "Files: none\n";
                out += "(Only uploads whose upload slot names the account can be attributed \
                        to it: Prosody's mod_http_file_share and ejabberd. Uploads through \
                        other modules carry no account.)\n";
            }
        }
        out += &format!(
            "Uploaded in the last 24 hours: {}, {}\n",
            size(self.uploaded_last_24h),
            limit("daily limit", self.limits.per_owner_daily)
        );
        out += &format!(
            "Stored now: {}, {}\n",
            size(self.stored),
            limit("storage limit", self.limits.per_owner_stored)
        );
        out += "\nupslot stores no file names, no JIDs (only a keyed pseudonym of the \
                uploading account) and no IP addresses.\n";
        out
    }
}

/// `bytes` as people read it, exact when rounded.
fn size(bytes: u64) -> String {
    if bytes < 1024 {
        human_bytes(bytes)
    } else {
        format!("{} ({bytes} bytes)", human_bytes(bytes))
    }
}

/// `name limit`, or that there is none.
fn limit(name: &str, bytes: Option<u64>) -> String {
    match bytes {
        Some(bytes) => format!("{name} {}", human_bytes(bytes)),
        None => format!("no {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::Limits;

    const DEC_1: i64 = 1_796_119_200; // 2026-12-01T10:00:00Z

    fn two_files() -> Access {
        Access {
            files: 2,
            bytes: 1536,
            oldest_upload: Some(DEC_1),
            latest_expiry: Some(DEC_1 + 30 * 86_400 + 300),
            uploaded_today: 1536,
            stored: 1536,
            limits: Limits {
                per_owner_daily: 1 << 30,
                per_owner_stored: 0,
                global_stored: 1 << 40,
            },
        }
    }

    #[test]
    fn the_json_has_times_both_ways_and_null_for_no_limit() {
        let report = AccessReport::from(&two_files());
        assert_eq!(
            report.json(),
            "{\"files\":2,\"bytes\":1536,\
             \"oldest_upload\":\"2026-12-01T10:00:00Z\",\"oldest_upload_unix\":1796119200,\
             \"latest_expiry\":\"2026-12-31T10:05:00Z\",\"latest_expiry_unix\":1798711500,\
             \"uploaded_last_24h\":1536,\"stored\":1536,\
             \"limits\":{\"per_owner_daily\":1073741824,\"per_owner_stored\":null}}\n"
        );
        assert_eq!(AccessReport::parse(&report.json()).unwrap(), report);
        // A newer server's extra fields do not stop an older command.
        let newer = report.json().replacen('{', "{\"later\":true,", 1);
        assert_eq!(AccessReport::parse(&newer).unwrap(), report);
    }

    #[test]
    fn no_files_no_times() {
        let report = AccessReport::from(&Access::default());
        let json = report.json();
        assert!(json.contains("\"files\":0,\"bytes\":0,"), "{json}");
        assert!(json.contains("\"oldest_upload\":null"), "{json}");
        assert!(json.contains("\"latest_expiry_unix\":null"), "{json}");
        assert!(json.contains("\"per_owner_daily\":null"), "{json}");
        let text = report.text(&BareJid::of("romeo@montague.tld/orchard"), DEC_1);
        assert!(text.contains("Files: none\n"), "{text}");
        assert!(
            text.contains("Only uploads whose upload slot names"),
            "{text}"
        );
        assert!(!text.contains("Oldest upload"), "{text}");
        assert!(
            text.contains("Stored now: 0 bytes, no storage limit"),
            "{text}"
        );
    }

    #[test]
    fn the_text_reads_as_a_reply() {
        let text = AccessReport::from(&two_files()).text(&BareJid::of("romeo@montague.tld"), DEC_1);
        assert_eq!(
            text,
            "Data held by the file upload service (upslot) for romeo@montague.tld, \
             as of 2026-12-01 10:00:00 UTC:\n\
             \n\
             Files: 2, 1.5 KiB (1536 bytes) in total\n\
             Oldest upload: 2026-12-01 10:00:00 UTC\n\
             Latest expiry: 2026-12-31 10:05:00 UTC\n\
             Uploaded in the last 24 hours: 1.5 KiB (1536 bytes), daily limit 1 GiB\n\
             Stored now: 1.5 KiB (1536 bytes), no storage limit\n\
             \n\
             upslot stores no file names, no JIDs (only a keyed pseudonym of the uploading \
             account) and no IP addresses.\n"
        );
    }
}
