//! Recent index lookups: found records for a while, misses briefly (so a
//! flood of requests for unknown URLs does not reach the index). Only the
//! data layer writes, so only it invalidates.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use crate::index::{FileRecord, Index, IndexError, SlotKey};

/// Most records (and most misses) kept.
const CAPACITY: u64 = 100_000;
/// How long a found record is kept. Records never change in place, so this
/// only bounds memory; deletions invalidate.
const FOUND_TTL: Duration = Duration::from_secs(300);
/// How long a miss is kept: another replica's upload becomes visible here
/// after at most this long.
const MISSING_TTL: Duration = Duration::from_secs(2);

/// The cache of recent lookups.
pub(super) struct LookupCache {
    found: Cache<SlotKey, Arc<FileRecord>>,
    missing: Cache<SlotKey, ()>,
}

impl LookupCache {
    pub(super) fn new() -> LookupCache {
        LookupCache {
            found: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(FOUND_TTL)
                .build(),
            missing: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(MISSING_TTL)
                .build(),
        }
    }

    /// The record of `key`, from the cache or else from `index`.
    pub(super) async fn lookup(
        &self,
        index: &dyn Index,
        key: SlotKey,
    ) -> Result<Option<Arc<FileRecord>>, IndexError> {
        if let Some(record) = self.found.get(&key).await {
            return Ok(Some(record));
        }
        if self.missing.contains_key(&key) {
            return Ok(None);
        }
        match index.get(key).await? {
            Some(record) => {
                let record = Arc::new(record);
                self.found.insert(key, Arc::clone(&record)).await;
                Ok(Some(record))
            }
            None => {
                self.missing.insert(key, ()).await;
                Ok(None)
            }
        }
    }

    /// Drops what is cached for `key` (after a write).
    pub(super) async fn forget(&self, key: SlotKey) {
        self.found.invalidate(&key).await;
        self.missing.invalidate(&key).await;
    }
}
