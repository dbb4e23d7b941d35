//! The retention engine: every file is deleted when its time comes.
//!
//! A pass ([`pass`]) does four things:
//! 1. **Sweep**: take the files due (expired, or older than
//!    `retention.max` whatever they say), oldest first in bounded batches,
//!    and delete them through the data layer (blobs, then rows with
//!    tombstones). The cost grows with the number of due files, never with
//!    the number stored: the index keeps expiry and creation orders.
//! 2. **Tombstones** older than `retention.tombstone_horizon` are forgotten.
//! 3. **Backstop**: whole day prefixes of blobs older than `retention.max`
//!    plus one day are removed without consulting the index, so even a lost
//!    or corrupt index cannot keep a file alive past the promise.
//! 4. **Abandoned uploads**: temporary files with no write for a day are
//!    removed (at start-up all of them are).
//! 5. **Shredding**: epoch keys whose epoch has ended (plus a short grace)
//!    are destroyed, so every copy of their files anywhere is noise. Only
//!    the replica holding the lease does it, like everything here.
//!
//! Nothing depends on traffic: [`run`] starts a pass every
//! `retention.sweep_every` on the replica that holds the sweeper lease.
//! [`report`] holds what passes and the reports print, and the sweeper's
//! metrics.

mod lease;
pub mod report;

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::files::{Files, FilesError};

pub use lease::{LEASE, Sweeper, lease_ttl, run};
pub use report::{PassReport, SweepMetrics};

/// Files taken per batch.
pub const BATCH: usize = 1000;
/// Tombstones forgotten per transaction.
const TOMBSTONE_BATCH: usize = 10_000;
/// A temporary upload file with no write for this long is abandoned.
const ABANDONED_AFTER: i64 = 86_400;

/// Why a pass stopped early.
pub type SweepError = FilesError;

/// One full pass at Unix time `now`; stops between batches when
/// `shutdown` is cancelled.
pub async fn pass(
    files: &Files,
    now: i64,
    shutdown: &CancellationToken,
) -> Result<PassReport, SweepError> {
    let started = Instant::now();
    let (swept, bytes) = sweep(files, now, shutdown).await?;
    let tombstones_forgotten = files
        .forget_tombstones(now, TOMBSTONE_BATCH, || shutdown.is_cancelled())
        .await?;
    files
        .forget_quota_history(now, || shutdown.is_cancelled())
        .await?;
    let (backstop_days, backstop_files) = backstop(files, now).await?;
    let abandoned_uploads = files
        .remove_abandoned(now.saturating_sub(ABANDONED_AFTER))
        .await?;
    let epochs_destroyed = files.shred(now).await?;
    Ok(PassReport {
        files: swept,
        bytes,
        tombstones_forgotten,
        backstop_days,
        backstop_files,
        abandoned_uploads,
        epochs_destroyed,
        duration: started.elapsed(),
    })
}

/// Deletes every file due at `now`; returns (files, bytes). Stops between
/// batches when `shutdown` is cancelled.
pub async fn sweep(
    files: &Files,
    now: i64,
    shutdown: &CancellationToken,
) -> Result<(u64, u64), SweepError> {
    let (mut deleted, mut bytes) = (0, 0);
    loop {
        let batch = files.due(now, BATCH).await?;
        let full = batch.len() == BATCH;
        let (count, freed) = files.delete_batch(batch, now).await?;
        deleted += count;
        bytes += freed;
        if !full || shutdown.is_cancelled() {
            return Ok((deleted, bytes));
        }
        // Let request handlers run between batches.
        tokio::task::yield_now().await;
    }
}

/// Removes the whole day prefixes past their time; returns (days, files).
async fn backstop(files: &Files, now: i64) -> Result<(u64, u64), SweepError> {
    let (mut days, mut removed) = (0, 0);
    for day in files.backstop_days(now).await? {
        let count = files.delete_day(&day).await?;
        days += 1;
        removed += count;
        tracing::warn!(
            day,
            files = count,
            "backstop removed a day of blobs past retention.max"
        );
    }
    Ok((days, removed))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::files::tests::{KEEP, MAX, fixture, key, record};
    use crate::index::{FileRecord, Index, Inserted, Scan, SlotKey};
    use crate::retention::DAY;
    use crate::storage::{BlobMeta, BlobName, BlobStore};

    /// Stores a file with a real blob, under `key(n)`.
    async fn store(
        blobs: &dyn BlobStore,
        index: &dyn Index,
        n: u64,
        created: i64,
        expires_at: i64,
    ) -> BlobName {
        let record = record(created, expires_at);
        let meta = BlobMeta {
            content_type: record.content_type.clone(),
            max_age: 60,
        };
        let mut writer = blobs.create(&record.blob, 3, &meta).await.unwrap();
        writer.write(Bytes::from_static(b"abc")).await.unwrap();
        writer.commit().await.unwrap();
        let blob = record.blob.clone();
        assert_eq!(
            index.insert(key(n), record).await.unwrap(),
            Inserted::Created
        );
        blob
    }

    async fn exists(blobs: &dyn BlobStore, blob: &BlobName) -> bool {
        blobs.read(blob, 0..1).await.is_ok()
    }

    /// Two batches and five files created at `created`, file `n` expiring
    /// at `n`.
    fn expiring_each_second(created: i64) -> Vec<(SlotKey, FileRecord)> {
        (0..(BATCH as u64 * 2 + 5))
            .map(|n| (key(n), record(created, n as i64)))
            .collect()
    }

    fn token() -> CancellationToken {
        CancellationToken::new()
    }

    #[tokio::test]
    async fn deletes_exactly_what_has_expired() {
        let f = fixture();
        let (blobs, index) = (f.blobs.as_ref(), &f.index);
        let early = store(blobs, index, 1, 0, 10).await;
        let boundary = store(blobs, index, 2, 0, 20).await;
        let later = store(blobs, index, 3, 0, 21).await;
        assert_eq!(sweep(&f.files, 9, &token()).await.unwrap(), (0, 0));
        assert_eq!(sweep(&f.files, 20, &token()).await.unwrap(), (2, 6));
        assert!(!exists(blobs, &early).await);
        assert!(
            !exists(blobs, &boundary).await,
            "a file goes exactly at expires_at"
        );
        assert!(exists(blobs, &later).await, "never before its time");
        assert!(index.get(key(3)).await.unwrap().is_some());
        assert!(index.get(key(2)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn finishes_after_a_crash_between_blob_and_row() {
        let f = fixture();
        let blob = store(f.blobs.as_ref(), &f.index, 1, 0, 10).await;
        // As if a previous pass died after deleting the blob.
        f.blobs.delete(&blob).await.unwrap();
        assert_eq!(sweep(&f.files, 10, &token()).await.unwrap().0, 1);
        assert!(
            f.index
                .scan(Scan::ExpiredBy(i64::MAX), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn works_through_several_batches_oldest_first() {
        let f = fixture();
        // Created recently enough that the `max` ceiling (200 s) has not
        // come for any of them at 1500.
        f.index.insert_many(&expiring_each_second(1400)).unwrap();
        // Only what expired by now=1500 goes, the rest waits.
        assert_eq!(sweep(&f.files, 1500, &token()).await.unwrap().0, 1501);
        let left = f.index.scan(Scan::ExpiredBy(i64::MAX), 1).await.unwrap();
        assert_eq!(left[0].1.expires_at, 1501);
        assert_eq!(sweep(&f.files, i64::MAX, &token()).await.unwrap().0, 504);
    }

    #[tokio::test]
    async fn one_pass_takes_every_due_file_when_expiry_and_ceiling_overlap() {
        let f = fixture();
        // All over the ceiling at 1500; the first 1501 expired too. The
        // expiry order and the creation order name the same files at first:
        // a batch must still be filled with the others.
        f.index.insert_many(&expiring_each_second(0)).unwrap();
        assert_eq!(sweep(&f.files, 1500, &token()).await.unwrap().0, 2005);
    }

    #[tokio::test]
    async fn the_max_ceiling_applies_whatever_expires_at_says() {
        let f = fixture();
        // Uploaded under an older, longer `keep`: expires_at is far away.
        let blob = store(f.blobs.as_ref(), &f.index, 1, 0, 10_000).await;
        let stored = f.index.get(key(1)).await.unwrap().unwrap();
        assert_eq!(f.files.retention().served_until(&stored), MAX);
        assert_eq!(sweep(&f.files, MAX - 1, &token()).await.unwrap().0, 0);
        assert_eq!(sweep(&f.files, MAX, &token()).await.unwrap().0, 1);
        assert!(!exists(f.blobs.as_ref(), &blob).await);
    }

    #[tokio::test]
    async fn swept_slots_are_tombstoned_until_the_horizon() {
        let f = fixture();
        store(f.blobs.as_ref(), &f.index, 1, 0, 10).await;
        let report = pass(&f.files, 10, &token()).await.unwrap();
        assert_eq!((report.files, report.bytes), (1, 3));
        assert_eq!(f.index.tombstone(key(1)).await.unwrap(), Some(10));
        assert_eq!(
            f.index.insert(key(1), record(11, 50)).await.unwrap(),
            Inserted::Gone,
            "a replayed upload URL is refused"
        );
        let report = pass(&f.files, 10 + KEEP, &token()).await.unwrap();
        assert_eq!(report.tombstones_forgotten, 0);
        let report = pass(&f.files, 11 + KEEP, &token()).await.unwrap();
        assert_eq!(report.tombstones_forgotten, 1);
        assert_eq!(f.index.tombstone(key(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_backstop_needs_no_index() {
        let f = fixture();
        let old = store(f.blobs.as_ref(), &f.index, 1, 0, 10).await; // day 1970-01-01
        let recent = store(f.blobs.as_ref(), &f.index, 2, 5 * DAY, 5 * DAY + 10).await; // 1970-01-06
        // Lose the index entries without deleting anything.
        f.index.remove(&[key(1), key(2)], 0).await.unwrap();
        // 1970-01-01 may hold blobs created until day 1; they must be gone
        // by 1 day + max; the backstop acts one day later.
        let report = pass(&f.files, 2 * DAY + MAX - 1, &token()).await.unwrap();
        assert_eq!(report.backstop_files, 0);
        let report = pass(&f.files, 2 * DAY + MAX, &token()).await.unwrap();
        assert_eq!((report.backstop_days, report.backstop_files), (1, 1));
        assert!(!exists(f.blobs.as_ref(), &old).await);
        assert!(exists(f.blobs.as_ref(), &recent).await);
    }
}
