//! What the sweeper and the reports ask of stored files: which are due,
//! which are overdue, old tombstones, whole days for the backstop, and
//! totals. Each costs in proportion to what it returns, never to the
//! number of files stored.

use std::collections::HashSet;

use super::{Files, FilesError};
use crate::encryption::EpochInfo;
use crate::index::{FileRecord, IndexError, IndexStats, Scan, SlotKey};
use crate::metrics::Exposition;
use crate::storage::StorageError;
use crate::time::{day_start, secs};

/// Most overdue files counted at once; more shows as this number. Any
/// number above zero calls for a look, and counting is a walk over the
/// index: with 100,000 overdue files a full count took 0.25 CPU s per
/// scrape, just when the sweeper was behind.
pub const OVERDUE_COUNT_LIMIT: usize = 1_000;

/// Files whose deletion is late (see [`crate::retention::Retention::overdue_cutoff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overdue {
    /// How many, counted up to [`OVERDUE_COUNT_LIMIT`].
    pub files: u64,
    /// Whether counting stopped at the limit (there may be more).
    pub at_least: bool,
}

impl Files {
    /// Up to `limit` files due for deletion at `now`: expired ones first,
    /// then those over the `retention.max` ceiling.
    pub async fn due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let mut batch = self.index.scan(Scan::ExpiredBy(now), limit).await?;
        if batch.len() < limit {
            // Every expired file is in the batch now, and the first ones
            // over the ceiling may be among them: ask for a full batch, so
            // that the new ones fill it.
            let cutoff = self.retention.ceiling_cutoff(now);
            let seen: HashSet<SlotKey> = batch.iter().map(|(key, _)| *key).collect();
            let room = limit - batch.len();
            let over = self.index.scan(Scan::CreatedBy(cutoff), limit).await?;
            batch.extend(
                over.into_iter()
                    .filter(|(key, _)| !seen.contains(key))
                    .take(room),
            );
        }
        Ok(batch)
    }

    /// Files overdue at `now`.
    pub async fn overdue(&self, now: i64) -> Result<Overdue, IndexError> {
        let late = self.retention.overdue_cutoff(now);
        let limit = OVERDUE_COUNT_LIMIT;
        let expired = self.index.count_expired(late, limit).await?;
        // Over the ceiling but not expired by `late` (those are counted).
        let over_ceiling = self
            .index
            .scan(Scan::CreatedBy(self.retention.ceiling_cutoff(late)), limit)
            .await?
            .into_iter()
            .filter(|(_, record)| record.expires_at > late)
            .count();
        let files = (expired + over_ceiling).min(limit);
        Ok(Overdue {
            files: files as u64,
            at_least: files == limit,
        })
    }

    /// Forgets the tombstones older than the tombstone horizon at `now`,
    /// `batch` per transaction, until none is left or `stop` says so;
    /// returns how many.
    pub async fn forget_tombstones(
        &self,
        now: i64,
        batch: usize,
        stop: impl Fn() -> bool,
    ) -> Result<u64, IndexError> {
        let before = self.retention.tombstone_cutoff(now);
        let mut forgotten = 0;
        loop {
            let count = self.index.forget_tombstones(before, batch).await?;
            forgotten += count as u64;
            if count < batch || stop() {
                return Ok(forgotten);
            }
        }
    }

    /// The blob day prefixes (`YYYY-MM-DD`) the backstop may remove whole
    /// at `now`, without asking the index.
    pub async fn backstop_days(&self, now: i64) -> Result<Vec<String>, StorageError> {
        Ok(self
            .blobs
            .days()
            .await?
            .into_iter()
            .filter(|day| {
                day_start(day).is_some_and(|start| self.retention.backstop_due(start, now))
            })
            .collect())
    }

    /// Deletes every blob of the day prefix `day` (rows that still name
    /// them, if any, are left: the index was lost or is wrong); returns how
    /// many.
    pub async fn delete_day(&self, day: &str) -> Result<u64, StorageError> {
        self.blobs.delete_day(day).await
    }

    /// Removes uploads started before `before` that a crash left behind,
    /// where the store leaves findable leftovers; returns how many.
    pub async fn remove_abandoned(&self, before: i64) -> Result<u64, StorageError> {
        match &self.abandoned {
            Some(abandoned) => abandoned.remove_abandoned(before).await,
            None => Ok(0),
        }
    }

    /// Totals kept by the index.
    pub async fn stats(&self) -> Result<IndexStats, IndexError> {
        self.index.stats().await
    }

    /// How many files were created in each span between consecutive
    /// `bounds` (ascending creation times).
    pub async fn age_histogram(&self, bounds: Vec<i64>) -> Result<Vec<u64>, IndexError> {
        self.index.age_histogram(bounds).await
    }

    /// Destroys the epoch keys due at `now` (every file they seal has
    /// expired); returns how many.
    pub async fn shred(&self, now: i64) -> Result<u64, FilesError> {
        let destroyed = self.encryption.shred(now).await?;
        for end in &destroyed {
            tracing::info!(
                epoch_end = end,
                "epoch key destroyed: its files are unreadable everywhere"
            );
        }
        Ok(destroyed.len() as u64)
    }

    /// The epochs whose keys are held, with how many live files each seals.
    pub async fn epochs(&self) -> Result<Vec<(EpochInfo, u64)>, FilesError> {
        let epochs = self.encryption.epochs().await?;
        let counts: std::collections::BTreeMap<i64, u64> =
            self.index.sealed_counts().await?.into_iter().collect();
        Ok(epochs
            .into_iter()
            .map(|epoch| (epoch, counts.get(&epoch.end).copied().unwrap_or(0)))
            .collect())
    }

    /// How many live files are encrypted at rest (sealed under any epoch,
    /// its key held or not); the others are plaintext. A walk over every
    /// file, for operators' occasional use (`upslot policy`).
    pub async fn sealed_files(&self) -> Result<u64, IndexError> {
        Ok(self
            .index
            .sealed_counts()
            .await?
            .iter()
            .map(|(_, count)| count)
            .sum())
    }

    /// Writes the data layer's metrics kept in memory into `out`: they are
    /// there whatever the index does.
    pub fn expose_counters(&self, out: &mut Exposition) {
        self.encryption.expose_counters(out);
        self.quotas.expose(out);
    }

    /// Writes the gauges read from the index and the keyring at `now` into
    /// `out`.
    pub async fn expose_gauges(&self, now: i64, out: &mut Exposition) -> Result<(), FilesError> {
        let stats = self.stats().await?;
        let overdue = self.overdue(now).await?;
        let oldest_age = stats
            .oldest_created
            .map_or(0, |created| now.saturating_sub(created).max(0));
        out.gauge(
            "upslot_files_stored",
            "Files recorded in the index (including expired ones not yet swept).",
            stats.files,
        );
        out.gauge(
            "upslot_bytes_stored",
            "Total size of the recorded files in bytes.",
            stats.bytes,
        );
        out.gauge(
            "upslot_oldest_file_age_seconds",
            "Age of the oldest recorded file; stays below retention.max when retention works.",
            oldest_age,
        );
        out.gauge(
            "upslot_files_overdue",
            "Files whose deletion time passed more than two sweep intervals and a minute ago; alert when above 0.",
            overdue.files,
        );
        out.gauge(
            "upslot_retention_max_seconds",
            "The configured ceiling on any file's lifetime.",
            secs(self.retention.max),
        );
        out.gauge(
            "upslot_tombstones",
            "Deleted slots remembered so their URLs cannot be reused.",
            stats.tombstones,
        );
        self.encryption.expose_epochs(out).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{KEEP, MAX, fixture, key, record, upload};
    use super::*;
    use crate::index::{Index, Inserted};

    #[tokio::test]
    async fn due_files_expired_first_then_over_the_ceiling() {
        let f = fixture();
        for (n, (created, expires_at)) in [(0, 10_000), (0, 50), (150, 180)].into_iter().enumerate()
        {
            let inserted = f
                .index
                .insert(key(n as u64), record(created, expires_at))
                .await;
            assert_eq!(inserted.unwrap(), Inserted::Created);
        }
        let files = &f.files;
        let due = |now| async move {
            files
                .due(now, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|(key, _)| key)
                .collect::<Vec<_>>()
        };
        assert_eq!(due(49).await, Vec::<SlotKey>::new());
        assert_eq!(due(50).await, vec![key(1)]);
        assert_eq!(due(MAX).await, vec![key(1), key(2), key(0)]);
        assert_eq!(f.files.due(MAX, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sealed_files_leave_out_plaintext_ones() {
        let f = fixture();
        upload(&f.files, 1, 1000).await.unwrap();
        // A record from before encryption was enabled: no sealing.
        let inserted = f.index.insert(key(2), record(900, 1000 + KEEP)).await;
        assert_eq!(inserted.unwrap(), Inserted::Created);
        assert_eq!(f.files.stats().await.unwrap().files, 2);
        assert_eq!(f.files.sealed_files().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn gauges_of_stored_files() {
        let f = fixture();
        upload(&f.files, 1, 1000).await.unwrap();
        let mut out = Exposition::new();
        f.files.expose_gauges(1000 + KEEP, &mut out).await.unwrap();
        let text = out.finish();
        assert!(text.contains("\nupslot_files_stored 1\n"), "{text}");
        assert!(text.contains("\nupslot_bytes_stored 3\n"), "{text}");
        assert!(
            text.contains("\nupslot_oldest_file_age_seconds 100\n"),
            "{text}"
        );
        assert!(text.contains("\nupslot_files_overdue 0\n"), "{text}");
        assert!(
            text.contains("\nupslot_retention_max_seconds 200\n"),
            "{text}"
        );
    }
}
