//! The embedded index: a redb database file in the data directory.
//!
//! Tables:
//! - `files`: slot key → encoded [`FileRecord`];
//! - `by_expiry`: (expires_at, slot key) → () for the sweeper;
//! - `by_owner`: (owner, slot key) → () for erasure.
//!
//! Every write transaction commits durably (fsync) before returning. redb
//! calls block, so they run on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{FileRecord, Index, IndexError, Inserted, SlotKey};

const FILES: TableDefinition<'_, [u8; 32], &[u8]> = TableDefinition::new("files");
const BY_EXPIRY: TableDefinition<'_, (i64, [u8; 32]), ()> = TableDefinition::new("by_expiry");
const BY_OWNER: TableDefinition<'_, ([u8; 32], [u8; 32]), ()> = TableDefinition::new("by_owner");

/// An [`Index`] in a redb file.
#[derive(Clone)]
pub struct EmbeddedIndex {
    db: Arc<Database>,
}

fn unavailable(error: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable(error.to_string())
}

impl EmbeddedIndex {
    /// Opens or creates the database at `path` and its tables.
    pub fn open(path: &Path) -> Result<EmbeddedIndex, IndexError> {
        let db = Database::create(path).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(FILES).map_err(unavailable)?;
            txn.open_table(BY_EXPIRY).map_err(unavailable)?;
            txn.open_table(BY_OWNER).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(EmbeddedIndex { db: Arc::new(db) })
    }

    async fn blocking<T, F>(&self, work: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, IndexError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(unavailable)?
    }
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

    async fn insert(&self, key: SlotKey, record: FileRecord) -> Result<Inserted, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut files = txn.open_table(FILES).map_err(unavailable)?;
                if files.get(&key.0).map_err(unavailable)?.is_some() {
                    return Ok(Inserted::Exists);
                }
                files
                    .insert(&key.0, record.encode().as_slice())
                    .map_err(unavailable)?;
                let mut by_expiry = txn.open_table(BY_EXPIRY).map_err(unavailable)?;
                by_expiry
                    .insert(&(record.expires_at, key.0), &())
                    .map_err(unavailable)?;
                if let Some(owner) = record.owner {
                    let mut by_owner = txn.open_table(BY_OWNER).map_err(unavailable)?;
                    by_owner
                        .insert(&(owner.0, key.0), &())
                        .map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)?;
            Ok(Inserted::Created)
        })
        .await
    }

    async fn remove(&self, key: SlotKey) -> Result<Option<FileRecord>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let removed = {
                let mut files = txn.open_table(FILES).map_err(unavailable)?;
                let Some(value) = files.remove(&key.0).map_err(unavailable)? else {
                    return Ok(None);
                };
                let record = FileRecord::decode(value.value())?;
                drop(value);
                let mut by_expiry = txn.open_table(BY_EXPIRY).map_err(unavailable)?;
                by_expiry
                    .remove(&(record.expires_at, key.0))
                    .map_err(unavailable)?;
                if let Some(owner) = record.owner {
                    let mut by_owner = txn.open_table(BY_OWNER).map_err(unavailable)?;
                    by_owner.remove(&(owner.0, key.0)).map_err(unavailable)?;
                }
                record
            };
            txn.commit().map_err(unavailable)?;
            Ok(Some(removed))
        })
        .await
    }

    async fn expired(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let by_expiry = txn.open_table(BY_EXPIRY).map_err(unavailable)?;
            let files = txn.open_table(FILES).map_err(unavailable)?;
            let mut out = Vec::new();
            let range = by_expiry
                .range((i64::MIN, [0u8; 32])..=(now, [0xff; 32]))
                .map_err(unavailable)?;
            for entry in range.take(limit) {
                let (key, _) = entry.map_err(unavailable)?;
                let (_, slot) = key.value();
                if let Some(value) = files.get(&slot).map_err(unavailable)? {
                    out.push((SlotKey(slot), FileRecord::decode(value.value())?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn check(&self) -> Result<(), IndexError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(unavailable)?;
            txn.open_table(FILES).map_err(unavailable)?;
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

    fn record(expires_at: i64, owner: Option<OwnerKey>) -> FileRecord {
        FileRecord {
            blob: BlobName::new(0),
            size: 1,
            content_type: "text/plain".into(),
            created: 0,
            expires_at,
            owner,
        }
    }

    #[tokio::test]
    async fn insert_is_create_only() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
        let key = SlotKey([1; 32]);
        let first = record(10, Some(OwnerKey([5; 32])));
        assert_eq!(
            index.insert(key, first.clone()).await.unwrap(),
            Inserted::Created
        );
        assert_eq!(
            index.insert(key, record(20, None)).await.unwrap(),
            Inserted::Exists
        );
        assert_eq!(index.get(key).await.unwrap(), Some(first.clone()));
        assert_eq!(index.remove(key).await.unwrap(), Some(first));
        assert_eq!(index.get(key).await.unwrap(), None);
        assert_eq!(index.remove(key).await.unwrap(), None);
        index.check().await.unwrap();
    }

    #[tokio::test]
    async fn expired_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
        for (i, expires) in [30, 10, 20, 40].into_iter().enumerate() {
            index
                .insert(SlotKey([i as u8; 32]), record(expires, None))
                .await
                .unwrap();
        }
        let due: Vec<i64> = index
            .expired(30, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.expires_at)
            .collect();
        assert_eq!(due, vec![10, 20, 30]);
        assert_eq!(index.expired(30, 2).await.unwrap().len(), 2);
        assert!(index.expired(9, 10).await.unwrap().is_empty());
        // Removed records leave the expiry order too.
        index.remove(SlotKey([1; 32])).await.unwrap();
        assert_eq!(index.expired(30, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let key = SlotKey([3; 32]);
        {
            let index = EmbeddedIndex::open(&path).unwrap();
            index.insert(key, record(5, None)).await.unwrap();
        }
        let index = EmbeddedIndex::open(&path).unwrap();
        assert!(index.get(key).await.unwrap().is_some());
    }
}
