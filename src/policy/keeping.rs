//! The promises about how files are kept: for how long, in which form,
//! where, encrypted or not, and within which limits.

use std::time::Duration;

use super::Policy;
use super::facts::{Facts, Live, Storage};
use super::words::{age, count_of, span, utc};
use crate::config::human_bytes;
use crate::encryption::destruction_grace;
use crate::time::secs;

/// Retention (`retention.keep`, `max`, `sweep_every`) and the sweeper's
/// live record: the deletion promise is withheld while files are overdue.
pub(super) fn retention(facts: &Facts, live: &Live, policy: &mut Policy) {
    let keep = span(facts.keep);
    let on_time = live.overdue == 0;
    let verb = if on_time {
        "are deleted at the latest"
    } else {
        "are served for at most"
    };
    let mut first = format!("Files you upload {verb} {keep} after the upload");
    if facts.ceiling > facts.keep {
        first.push_str(&format!(
            ". No file, not even one uploaded under an earlier, longer setting, is {} longer \
             than {} after its upload.",
            if on_time { "kept" } else { "served" },
            span(facts.ceiling)
        ));
    } else {
        first.push_str(", whatever their upload link asks for.");
    }
    policy.publish(first);
    if !on_time {
        policy.note(format!(
            "WARNING: {} {} overdue for deletion (past their time by more than two cleanup runs \
             and a minute; counted up to 1,000): the sweeper is failing or behind, so the \
             sentences that files are deleted on time are withheld. Look for \"retention pass \
             failed\" in the log, run `upslot sweep`, and print this policy again.",
            count_of(live.overdue, "file"),
            if live.overdue == 1 { "is" } else { "are" }
        ));
        return;
    }
    policy.publish(format!(
        "From then on a file is no longer served, and it is removed from storage by the next \
         cleanup run; cleanups run every {}.",
        span(facts.sweep_every)
    ));
    match live.oldest_created {
        Some(created) => policy.publish(format!(
            "On {}, the oldest stored file was {} old, and no file was overdue for deletion.",
            utc(live.now),
            age(live.now.saturating_sub(created))
        )),
        None => policy.publish(format!("On {}, no files were stored.", utc(live.now))),
    }
}

/// What is stored of a file, and in which form (fixed by design; the
/// tombstone's life is `retention.tombstone_horizon`).
pub(super) fn stored_form(facts: &Facts, policy: &mut Policy) {
    policy.publish(
        "Files are stored under random names. Besides a file's content we keep only its size, \
         its content type, its upload and deletion times, and keyed hashes (HMAC-SHA256) of its \
         link and, where the upload names one, of the uploading account: no file names, no \
         account names (JIDs) and no IP addresses.",
    );
    policy.publish(format!(
        "After a file is deleted, only the keyed hash of its link and the time of deletion are \
         kept, for {}, so that the link cannot be used for another upload.",
        span(facts.tombstone_horizon)
    ));
}

/// Where blobs and records live (`storage.backend`, `index.backend`),
/// without credentials.
pub(super) fn location(facts: &Facts, policy: &mut Policy) {
    let blobs = match &facts.storage {
        Storage::Disk => "on the upload server's own disk".to_string(),
        Storage::S3 {
            host: Some(host), ..
        } => format!("in S3-compatible object storage at {host}"),
        Storage::S3 {
            host: None,
            region: Some(region),
        } => format!("in Amazon S3 (region {region})"),
        Storage::S3 {
            host: None,
            region: None,
        } => "in Amazon S3".to_string(),
        Storage::Gcs => "in Google Cloud Storage".to_string(),
        Storage::Azure => "in Azure Blob Storage".to_string(),
    };
    let records = match (facts.postgres_index, &facts.storage) {
        (true, _) => "their records in a PostgreSQL database",
        (false, Storage::Disk) => "their records beside them",
        (false, _) => "their records on the upload server's own disk",
    };
    policy.publish(format!("Files are stored {blobs}, {records}."));
    policy.note(
        "Say where the storage is (country, hosting company, and for object storage or \
         PostgreSQL the provider): the configuration names no place.",
    );
}

/// Encryption at rest (`encryption.enabled`, `epoch`) and the live count
/// of files stored before it was enabled.
pub(super) fn encryption(facts: &Facts, live: &Live, policy: &mut Policy) {
    let Some(encryption) = &facts.encryption else {
        policy.note(
            "Encryption at rest is off (encryption.enabled = false): new files are stored \
             unencrypted, and copies in backups, snapshots or bucket replicas stay readable for \
             as long as those are kept. No sentence about backups is published: state how long \
             your backups are kept, or enable [encryption].",
        );
        return;
    };
    let sealed = "Files are encrypted at rest with AES-256-GCM, each under its own random key.";
    if live.overdue_keys == 0 {
        policy.publish(format!(
            "{sealed} That key is stored only in encrypted form, under a key shared by the files \
             whose retention ends in the same period of {}, and that shared key is destroyed at \
             the latest {} after a file's retention ends. From then on no copy of the file, in \
             backups, snapshots or replicas, can be decrypted by anyone, us included.",
            span(encryption.epoch),
            span(key_outlives_expiry(encryption.epoch))
        ));
    } else {
        policy.publish(sealed);
        let (are, their) = if live.overdue_keys == 1 {
            ("is", "its")
        } else {
            ("are", "their")
        };
        policy.note(format!(
            "WARNING: {} {are} past {their} destruction time: the sweeper is stopped, failing or \
             behind, so every sentence about keys being destroyed and backups becoming \
             unreadable is withheld. Start the server (or run `upslot sweep`) and print this \
             policy again.",
            count_of(live.overdue_keys, "epoch key"),
        ));
    }
    if live.plaintext > 0 {
        let (are, them) = if live.plaintext == 1 {
            ("is", "it")
        } else {
            ("are", "them")
        };
        policy.publish(format!(
            "{} uploaded before encryption was turned on {are} stored unencrypted until \
             deleted, at the latest {} after upload; copies of {them} in backups are not \
             protected by encryption.",
            count_of(live.plaintext, "file"),
            span(facts.ceiling)
        ));
    }
    policy.note(format!(
        "Keep the key material ({}) out of long-lived backups, snapshots and replicas: a copy \
         kept beside the files can decrypt them for as long as it is kept, and the backup \
         sentences would be false.",
        encryption.keys.display()
    ));
}

/// The longest a file's epoch key outlives the end of its retention.
pub(super) fn key_outlives_expiry(epoch: Duration) -> Duration {
    let epoch = secs(epoch);
    Duration::from_secs(
        u64::try_from(epoch.saturating_add(destruction_grace(epoch))).unwrap_or(u64::MAX),
    )
}

/// Size limits (`upload.max_size`, `[quota]`): per-account ones only
/// when every slot names its account.
pub(super) fn limits(facts: &Facts, policy: &mut Policy) {
    let limits = &facts.limits;
    policy.publish(format!(
        "Each file may be up to {}.",
        human_bytes(limits.max_size)
    ));
    let daily = (limits.per_owner_daily > 0).then(|| {
        format!(
            "upload up to {} in any 24 hours",
            human_bytes(limits.per_owner_daily)
        )
    });
    let stored = (limits.per_owner_stored > 0).then(|| {
        format!(
            "keep up to {} stored at a time",
            human_bytes(limits.per_owner_stored)
        )
    });
    let per_account = match (daily, stored) {
        (Some(daily), Some(stored)) => Some(format!("{daily} and {stored}")),
        (Some(one), None) | (None, Some(one)) => Some(one),
        (None, None) => None,
    };
    if let Some(per_account) = per_account {
        let sentence = format!("Each account may {per_account}.");
        if facts.owners.covers_accounts() {
            policy.publish(sentence);
        } else {
            policy.note(format!(
                "Per-account limits apply only to upload slots that name their account \
                 (Prosody mod_http_file_share, ejabberd), and upload.protocols also accepts \
                 families whose slots name nobody, so this sentence is withheld: \"{sentence}\""
            ));
        }
    }
    if limits.global_stored > 0 {
        policy.publish(format!(
            "When the service stores {} in total, new uploads are refused until older files \
             are deleted.",
            human_bytes(limits.global_stored)
        ));
    }
}
