//! The embedded index: a redb database file in the data directory.
//!
//! Tables:
//! - `files`: slot key → encoded [`FileRecord`];
//! - `by_expiry`: (expires_at, slot key) for the sweeper;
//! - `by_created`: (created, slot key) for the oldest file and age statistics;
//! - `by_owner`: (owner, slot key) for erasure;
//! - `tombstones`: slot key → deletion time, and `tombstones_by_time`:
//!   (deletion time, slot key), so deleted slots stay single-use for a while
//!   and are forgotten in time order;
//! - `meta`: counters (`files`, `bytes`, `tombstones`) kept in the same
//!   transactions as the rows they count, and the schema version;
//! - `owner_stored`: owner → bytes of its live files, and `owner_uploads`:
//!   (owner, minute) → bytes uploaded, with `uploads_by_minute`: (minute,
//!   owner) to forget old minutes in time order (the quota ledger, see
//!   `quota`; reservations of uploads in progress live in memory, since
//!   only this process can write).
//!
//! Every write transaction commits durably (fsync) before returning. redb
//! calls block, so they run on tokio's blocking pool. What a write does to
//! the tables is in `write`; this file opens, reads and runs transactions.

mod quota;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    TransactionError,
};

use super::{FileRecord, Index, IndexError, IndexStats, Inserted, Scan, SlotKey};

type Key = [u8; 32];

const FILES: TableDefinition<'_, Key, &[u8]> = TableDefinition::new("files");
const BY_EXPIRY: TableDefinition<'_, (i64, Key), ()> = TableDefinition::new("by_expiry");
const BY_CREATED: TableDefinition<'_, (i64, Key), ()> = TableDefinition::new("by_created");
const BY_OWNER: TableDefinition<'_, (Key, Key), ()> = TableDefinition::new("by_owner");
const TOMBSTONES: TableDefinition<'_, Key, i64> = TableDefinition::new("tombstones");
const TOMBSTONES_BY_TIME: TableDefinition<'_, (i64, Key), ()> =
    TableDefinition::new("tombstones_by_time");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const OWNER_STORED: TableDefinition<'_, Key, u64> = TableDefinition::new("owner_stored");
const OWNER_UPLOADS: TableDefinition<'_, (Key, i64), u64> = TableDefinition::new("owner_uploads");
const UPLOADS_BY_MINUTE: TableDefinition<'_, (i64, Key), ()> =
    TableDefinition::new("uploads_by_minute");

/// The layout version this code writes.
const SCHEMA: u64 = 3;

/// An [`Index`] in a redb file.
#[derive(Clone)]
pub struct EmbeddedIndex {
    db: Arc<Handle>,
    reservations: Arc<std::sync::Mutex<quota::Reservations>>,
}

/// The open database, reopened after an I/O failure: redb refuses every
/// operation on a handle that saw one (`PreviousIo`, e.g. after a commit
/// hit a full disk), and repairs the file when it is opened again. Without
/// this, the index would stay unavailable until a restart even once space
/// is freed.
struct Handle {
    path: PathBuf,
    current: std::sync::Mutex<Option<Arc<Database>>>,
}

impl Handle {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Database>>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The database, opened again if the last handle failed (possible once
    /// every operation still holding the failed one is done).
    fn get(&self) -> Result<Arc<Database>, IndexError> {
        let mut slot = self.slot();
        if let Some(db) = &*slot {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(Database::create(&self.path).map_err(unavailable)?);
        tracing::warn!("the index was reopened after an I/O failure");
        *slot = Some(Arc::clone(&db));
        Ok(db)
    }

    /// After an operation on `db` failed: drops the handle if redb latched
    /// an I/O failure on it, so that the next operation reopens the file.
    fn check(&self, db: &Arc<Database>) {
        if let Err(TransactionError::Storage(redb::StorageError::PreviousIo)) = db.begin_write() {
            let mut slot = self.slot();
            if slot
                .as_ref()
                .is_some_and(|current| Arc::ptr_eq(current, db))
            {
                tracing::error!(
                    "the index saw an I/O failure; it is reopened at the next operation"
                );
                *slot = None;
            }
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(error.to_string())
}

impl EmbeddedIndex {
    /// Opens or creates the database at `path`, creating missing tables and
    /// upgrading an older layout.
    pub fn open(path: &Path) -> Result<EmbeddedIndex, IndexError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            let files = txn.open_table(FILES).map_err(unavailable)?;
            txn.open_table(BY_EXPIRY).map_err(unavailable)?;
            txn.open_table(BY_OWNER).map_err(unavailable)?;
            txn.open_table(TOMBSTONES).map_err(unavailable)?;
            txn.open_table(TOMBSTONES_BY_TIME).map_err(unavailable)?;
            let mut by_created = txn.open_table(BY_CREATED).map_err(unavailable)?;
            let mut meta = txn.open_table(META).map_err(unavailable)?;
            let schema = meta.get("schema").map_err(unavailable)?.map(|v| v.value());
            let mut owner_stored = txn.open_table(OWNER_STORED).map_err(unavailable)?;
            txn.open_table(OWNER_UPLOADS).map_err(unavailable)?;
            txn.open_table(UPLOADS_BY_MINUTE).map_err(unavailable)?;
            if schema.unwrap_or(0) < 3 {
                // Layouts 1 and 2 kept no quota ledger: owners' stored bytes
                // are derived; upload history starts empty.
                for entry in files.iter().map_err(unavailable)? {
                    let (_, value) = entry.map_err(unavailable)?;
                    let record = FileRecord::decode(value.value())?;
                    if let Some(owner) = record.owner {
                        write::add_stored(&mut owner_stored, owner.0, record.size, true)?;
                    }
                }
            }
            if schema.is_none() {
                // Layout 1 had no creation order and no counters: derive them.
                let (mut count, mut bytes) = (0u64, 0u64);
                for entry in files.iter().map_err(unavailable)? {
                    let (key, value) = entry.map_err(unavailable)?;
                    let record = FileRecord::decode(value.value())?;
                    by_created
                        .insert(&(record.created, key.value()), &())
                        .map_err(unavailable)?;
                    count += 1;
                    bytes += record.size;
                }
                meta.insert("files", &count).map_err(unavailable)?;
                meta.insert("bytes", &bytes).map_err(unavailable)?;
                meta.insert("tombstones", &0).map_err(unavailable)?;
            }
            meta.insert("schema", &SCHEMA).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(EmbeddedIndex {
            db: Arc::new(Handle {
                path: path.to_path_buf(),
                current: std::sync::Mutex::new(Some(Arc::new(db))),
            }),
            reservations: Arc::default(),
        })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, IndexError> + Send + 'static,
    {
        let handle = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let db = handle.get()?;
            let result = work(&db);
            if result.is_err() {
                handle.check(&db);
            }
            result
        })
        .await
        .map_err(unavailable)?
    }

    /// Stores many records in one transaction, skipping keys that exist.
    /// For bulk loads (benchmarks, imports); returns how many were stored.
    pub fn insert_many(&self, records: &[(SlotKey, FileRecord)]) -> Result<usize, IndexError> {
        let txn = self.db.get()?.begin_write().map_err(unavailable)?;
        let mut stored = 0;
        for (key, record) in records {
            if write::insert_in(&txn, *key, record)? == Inserted::Created {
                stored += 1;
            }
        }
        txn.commit().map_err(unavailable)?;
        Ok(stored)
    }
}

/// The records of `slots` (slot keys taken from a secondary order), in
/// that order; keys without a record are skipped.
fn records_of(
    files: &impl ReadableTable<Key, &'static [u8]>,
    slots: impl Iterator<Item = Result<Key, IndexError>>,
) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
    let mut out = Vec::new();
    for slot in slots {
        let slot = slot?;
        if let Some(value) = files.get(&slot).map_err(unavailable)? {
            out.push((SlotKey(slot), FileRecord::decode(value.value())?));
        }
    }
    Ok(out)
}

#[async_trait]
impl Index for EmbeddedIndex {
    async fn get(&self, key: SlotKey) -> Result<Option<FileRecord>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let files = txn.open_table(FILES).map_err(unavailable)?;
            match files.get(&key.0).map_err(unavailable)? {
                Some(value) => FileRecord::decode(value.value()).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    async fn tombstone(&self, key: SlotKey) -> Result<Option<i64>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let tombstones = txn.open_table(TOMBSTONES).map_err(unavailable)?;
            Ok(tombstones
                .get(&key.0)
                .map_err(unavailable)?
                .map(|v| v.value()))
        })
        .await
    }

    async fn insert(&self, key: SlotKey, record: FileRecord) -> Result<Inserted, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let outcome = write::insert_in(&txn, key, &record)?;
            if outcome == Inserted::Created {
                txn.commit().map_err(unavailable)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn remove(
        &self,
        keys: &[SlotKey],
        deleted_at: i64,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let keys = keys.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let removed = write::remove_in(&txn, keys, deleted_at)?;
            txn.commit().map_err(unavailable)?;
            Ok(removed)
        })
        .await
    }

    async fn scan(
        &self,
        scan: Scan,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let files = txn.open_table(FILES).map_err(unavailable)?;
            // Each order is a table of (order key, slot key): a range of it
            // gives the slot keys in order.
            let (table, low, high) = match scan {
                Scan::ExpiredBy(until) => (BY_EXPIRY, (i64::MIN, [0u8; 32]), (until, [0xff; 32])),
                Scan::CreatedBy(until) => (BY_CREATED, (i64::MIN, [0u8; 32]), (until, [0xff; 32])),
                Scan::OwnedBy(owner) => {
                    let order = txn.open_table(BY_OWNER).map_err(unavailable)?;
                    let slots = order
                        .range((owner.0, [0u8; 32])..=(owner.0, [0xff; 32]))
                        .map_err(unavailable)?
                        .take(limit)
                        .map(|entry| entry.map(|(key, _)| key.value().1).map_err(unavailable));
                    return records_of(&files, slots);
                }
            };
            let order = txn.open_table(table).map_err(unavailable)?;
            let slots = order
                .range(low..=high)
                .map_err(unavailable)?
                .take(limit)
                .map(|entry| entry.map(|(key, _)| key.value().1).map_err(unavailable));
            records_of(&files, slots)
        })
        .await
    }

    async fn count_expired(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let by_expiry = txn.open_table(BY_EXPIRY).map_err(unavailable)?;
            let range = by_expiry
                .range((i64::MIN, [0u8; 32])..=(before, [0xff; 32]))
                .map_err(unavailable)?;
            Ok(range.take(limit).count())
        })
        .await
    }

    async fn forget_tombstones(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let forgotten = write::forget_in(&txn, before, limit)?;
            if forgotten > 0 {
                txn.commit().map_err(unavailable)?;
            }
            Ok(forgotten)
        })
        .await
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let meta = txn.open_table(META).map_err(unavailable)?;
            let counter = |name| -> Result<u64, IndexError> {
                Ok(meta
                    .get(name)
                    .map_err(unavailable)?
                    .map_or(0, |v| v.value()))
            };
            let by_created = txn.open_table(BY_CREATED).map_err(unavailable)?;
            let oldest_created = by_created
                .first()
                .map_err(unavailable)?
                .map(|(key, _)| key.value().0);
            Ok(IndexStats {
                files: counter("files")?,
                bytes: counter("bytes")?,
                oldest_created,
                tombstones: counter("tombstones")?,
            })
        })
        .await
    }

    async fn age_histogram(&self, bounds: Vec<i64>) -> Result<Vec<u64>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let by_created = txn.open_table(BY_CREATED).map_err(unavailable)?;
            bounds
                .windows(2)
                .map(|span| {
                    let range = by_created
                        .range((span[0], [0u8; 32])..(span[1], [0u8; 32]))
                        .map_err(unavailable)?;
                    Ok(range.count() as u64)
                })
                .collect()
        })
        .await
    }

    async fn sealed_counts(&self) -> Result<Vec<(i64, u64)>, IndexError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let files = txn.open_table(FILES).map_err(unavailable)?;
            let mut counts = std::collections::BTreeMap::<i64, u64>::new();
            for entry in files.iter().map_err(unavailable)? {
                let (_, value) = entry.map_err(unavailable)?;
                if let Some(sealing) = FileRecord::decode(value.value())?.sealing {
                    *counts.entry(sealing.epoch).or_default() += 1;
                }
            }
            Ok(counts.into_iter().collect())
        })
        .await
    }

    async fn check(&self) -> Result<(), IndexError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            txn.open_table(FILES)
                .map_err(unavailable)?
                .len()
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::OwnerKey;
    use crate::storage::BlobName;

    fn record(created: i64, expires_at: i64, owner: Option<OwnerKey>) -> FileRecord {
        FileRecord {
            blob: BlobName::new(0),
            size: 10,
            content_type: "text/plain".into(),
            created,
            expires_at,
            owner,
            sealing: None,
        }
    }

    fn open(dir: &Path) -> EmbeddedIndex {
        EmbeddedIndex::open(&dir.join("index.redb")).unwrap()
    }

    #[tokio::test]
    async fn insert_is_create_only_and_removal_leaves_a_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        let key = SlotKey([1; 32]);
        let first = record(1, 10, Some(OwnerKey([5; 32])));
        assert_eq!(
            index.insert(key, first.clone()).await.unwrap(),
            Inserted::Created
        );
        assert_eq!(
            index.insert(key, record(2, 20, None)).await.unwrap(),
            Inserted::Exists
        );
        assert_eq!(index.get(key).await.unwrap(), Some(first.clone()));
        assert_eq!(index.tombstone(key).await.unwrap(), None);
        assert_eq!(
            index
                .scan(Scan::OwnedBy(OwnerKey([5; 32])), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            index
                .scan(Scan::OwnedBy(OwnerKey([6; 32])), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(index.remove(&[key], 50).await.unwrap(), vec![(key, first)]);
        assert!(
            index
                .scan(Scan::OwnedBy(OwnerKey([5; 32])), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(index.get(key).await.unwrap(), None);
        assert_eq!(index.tombstone(key).await.unwrap(), Some(50));
        assert!(index.remove(&[key], 60).await.unwrap().is_empty());
        // The slot stays single-use until the tombstone is forgotten.
        assert_eq!(
            index.insert(key, record(3, 30, None)).await.unwrap(),
            Inserted::Gone
        );
        assert_eq!(index.forget_tombstones(50, 10).await.unwrap(), 0);
        assert_eq!(index.forget_tombstones(51, 10).await.unwrap(), 1);
        assert_eq!(
            index.insert(key, record(3, 30, None)).await.unwrap(),
            Inserted::Created
        );
        index.check().await.unwrap();
    }

    #[tokio::test]
    async fn expiry_order_counts_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let index = open(dir.path());
        for (i, (created, expires)) in [(3, 30), (1, 10), (2, 20), (4, 40)].into_iter().enumerate()
        {
            index
                .insert(SlotKey([i as u8; 32]), record(created, expires, None))
                .await
                .unwrap();
        }
        let due: Vec<i64> = index
            .scan(Scan::ExpiredBy(30), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.expires_at)
            .collect();
        assert_eq!(due, vec![10, 20, 30]);
        assert_eq!(index.scan(Scan::ExpiredBy(30), 2).await.unwrap().len(), 2);
        assert!(index.scan(Scan::ExpiredBy(9), 10).await.unwrap().is_empty());
        assert_eq!(index.count_expired(20, 100).await.unwrap(), 2);
        assert_eq!(index.count_expired(40, 3).await.unwrap(), 3);
        let stats = index.stats().await.unwrap();
        assert_eq!(
            (stats.files, stats.bytes, stats.oldest_created),
            (4, 40, Some(1))
        );
        assert_eq!(
            index.age_histogram(vec![0, 2, 4, 100]).await.unwrap(),
            vec![1, 2, 1]
        );
        let old: Vec<i64> = index
            .scan(Scan::CreatedBy(2), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.created)
            .collect();
        assert_eq!(old, vec![1, 2]);
        // Removing keeps every order and counter in step.
        index
            .remove(&[SlotKey([1; 32]), SlotKey([9; 32])], 99)
            .await
            .unwrap();
        assert_eq!(index.scan(Scan::ExpiredBy(30), 10).await.unwrap().len(), 2);
        let stats = index.stats().await.unwrap();
        assert_eq!(
            (
                stats.files,
                stats.bytes,
                stats.oldest_created,
                stats.tombstones
            ),
            (3, 30, Some(2), 1)
        );
    }

    #[tokio::test]
    async fn survives_reopen_and_bulk_loads() {
        let dir = tempfile::tempdir().unwrap();
        let key = SlotKey([3; 32]);
        {
            let index = open(dir.path());
            index.insert(key, record(1, 5, None)).await.unwrap();
            let many: Vec<_> = (10..20u8)
                .map(|i| (SlotKey([i; 32]), record(1, 5, None)))
                .collect();
            assert_eq!(index.insert_many(&many).unwrap(), 10);
            assert_eq!(index.insert_many(&many).unwrap(), 0);
        }
        let index = open(dir.path());
        assert!(index.get(key).await.unwrap().is_some());
        assert_eq!(index.stats().await.unwrap().files, 11);
    }

    #[tokio::test]
    async fn an_older_layout_gains_the_owners_stored_bytes() {
        use crate::index::QuotaLedger as _;
        let dir = tempfile::tempdir().unwrap();
        let owner = OwnerKey([5; 32]);
        {
            let index = open(dir.path());
            index
                .insert(SlotKey([1; 32]), record(1, 5, Some(owner)))
                .await
                .unwrap();
            index
                .insert(SlotKey([2; 32]), record(2, 5, Some(owner)))
                .await
                .unwrap();
            // Back to layout 2: no quota ledger.
            let txn = index.db.get().unwrap().begin_write().unwrap();
            txn.delete_table(OWNER_STORED).unwrap();
            txn.delete_table(OWNER_UPLOADS).unwrap();
            txn.delete_table(UPLOADS_BY_MINUTE).unwrap();
            txn.open_table(META).unwrap().insert("schema", &2).unwrap();
            txn.commit().unwrap();
        }
        let index = open(dir.path());
        let usage = index.usage(owner, 3).await.unwrap();
        assert_eq!((usage.stored, usage.uploads), (20, vec![]));
    }
}
