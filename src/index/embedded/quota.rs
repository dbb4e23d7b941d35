//! The quota ledger of the embedded index. Committed usage is in redb
//! tables that `write` keeps in step with the records; reservations of
//! uploads in progress are in memory, which is enough because only this
//! process can open the database (and a crash ends its uploads too).
//!
//! A reservation is measured and recorded under one lock, so of racing
//! uploads each sees the ones before it. A recorded upload's row is
//! committed before its reservation is released, so for a moment it may
//! count twice (refusing early), never zero times.

use std::collections::HashMap;
use std::sync::PoisonError;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::{
    EmbeddedIndex, Key, META, OWNER_STORED, OWNER_UPLOADS, UPLOADS_BY_MINUTE, unavailable,
};
use crate::index::{
    FileRecord, Index, IndexError, Inserted, OwnerKey, QuotaLedger, ReservationId, SlotKey,
};
use crate::quota::{
    Limits, OwnerUsage, Refusal, Usage, first_counting_minute, minute_of, window_start,
};

/// Uploads in progress that hold quota.
#[derive(Default)]
pub(super) struct Reservations {
    next: i64,
    live: HashMap<i64, Reserved>,
}

struct Reserved {
    owner: Option<Key>,
    size: u64,
    minute: i64,
}

/// Committed usage of `owner` (if any) and in total.
fn committed(db: &Database, owner: Option<Key>, now: i64) -> Result<Usage, IndexError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let meta = txn.open_table(META).map_err(unavailable)?;
    let global_stored = meta
        .get("bytes")
        .map_err(unavailable)?
        .map_or(0, |v| v.value());
    let owner = match owner {
        None => None,
        Some(owner) => {
            let stored = txn
                .open_table(OWNER_STORED)
                .map_err(unavailable)?
                .get(&owner)
                .map_err(unavailable)?
                .map_or(0, |v| v.value());
            let table = txn.open_table(OWNER_UPLOADS).map_err(unavailable)?;
            let uploads = table
                .range((owner, window_start(now))..=(owner, i64::MAX))
                .map_err(unavailable)?
                .map(|entry| {
                    entry
                        .map(|(key, bytes)| (key.value().1, bytes.value()))
                        .map_err(unavailable)
                })
                .collect::<Result<_, _>>()?;
            Some(OwnerUsage { stored, uploads })
        }
    };
    Ok(Usage {
        owner,
        global_stored,
    })
}

impl Reservations {
    /// Adds the live reservations to `usage` (of `owner`, if any).
    fn add_to(&self, usage: &mut Usage, owner: Option<Key>) {
        for reserved in self.live.values() {
            usage.global_stored = usage.global_stored.saturating_add(reserved.size);
            if let (Some(usage), Some(mine), Some(theirs)) =
                (&mut usage.owner, owner, reserved.owner)
                && mine == theirs
            {
                usage.stored = usage.stored.saturating_add(reserved.size);
                usage.uploads.push((reserved.minute, reserved.size));
            }
        }
    }
}

#[async_trait]
impl QuotaLedger for EmbeddedIndex {
    async fn reserve(
        &self,
        owner: Option<OwnerKey>,
        size: u64,
        limits: Limits,
        now: i64,
    ) -> Result<Result<ReservationId, Refusal>, IndexError> {
        let reservations = std::sync::Arc::clone(&self.reservations);
        let owner = owner.map(|owner| owner.0);
        self.blocking(move |db| {
            let mut reservations = reservations.lock().unwrap_or_else(PoisonError::into_inner);
            let mut usage = committed(db, owner, now)?;
            reservations.add_to(&mut usage, owner);
            if let Err(refusal) = limits.check(&usage, size, now) {
                return Ok(Err(refusal));
            }
            reservations.next += 1;
            let id = reservations.next;
            reservations.live.insert(
                id,
                Reserved {
                    owner,
                    size,
                    minute: minute_of(now),
                },
            );
            Ok(Ok(ReservationId(id)))
        })
        .await
    }

    async fn renew(&self, _id: ReservationId) -> Result<(), IndexError> {
        // In memory, a reservation lives until released.
        Ok(())
    }

    async fn unreserve(&self, id: ReservationId) -> Result<(), IndexError> {
        self.reservations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .remove(&id.0);
        Ok(())
    }

    async fn insert_reserved(
        &self,
        key: SlotKey,
        record: FileRecord,
        id: ReservationId,
    ) -> Result<Inserted, IndexError> {
        // Committed first, then released: for a moment the bytes count
        // twice, never zero times.
        let inserted = Index::insert(self, key, record).await;
        self.unreserve(id).await?;
        inserted
    }

    async fn usage(&self, owner: OwnerKey, now: i64) -> Result<OwnerUsage, IndexError> {
        let reservations = std::sync::Arc::clone(&self.reservations);
        self.blocking(move |db| {
            let reservations = reservations.lock().unwrap_or_else(PoisonError::into_inner);
            let mut usage = committed(db, Some(owner.0), now)?;
            reservations.add_to(&mut usage, Some(owner.0));
            Ok(usage.owner.unwrap_or_default())
        })
        .await
    }

    async fn forget_owner(&self, owner: OwnerKey) -> Result<(), IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            {
                let mut uploads = txn.open_table(OWNER_UPLOADS).map_err(unavailable)?;
                let mut by_minute = txn.open_table(UPLOADS_BY_MINUTE).map_err(unavailable)?;
                let minutes: Vec<i64> = uploads
                    .range((owner.0, i64::MIN)..=(owner.0, i64::MAX))
                    .map_err(unavailable)?
                    .map(|entry| entry.map(|(key, _)| key.value().1).map_err(unavailable))
                    .collect::<Result<_, _>>()?;
                for minute in minutes {
                    uploads.remove(&(owner.0, minute)).map_err(unavailable)?;
                    by_minute.remove(&(minute, owner.0)).map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)
        })
        .await
    }

    async fn forget_uploads(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(unavailable)?;
            let forgotten = {
                let mut uploads = txn.open_table(OWNER_UPLOADS).map_err(unavailable)?;
                let mut by_minute = txn.open_table(UPLOADS_BY_MINUTE).map_err(unavailable)?;
                let kept = first_counting_minute(before);
                let old: Vec<(i64, Key)> = by_minute
                    .range((i64::MIN, [0u8; 32])..(kept, [0u8; 32]))
                    .map_err(unavailable)?
                    .take(limit)
                    .map(|entry| entry.map(|(key, _)| key.value()).map_err(unavailable))
                    .collect::<Result<_, _>>()?;
                for (minute, owner) in &old {
                    by_minute.remove(&(*minute, *owner)).map_err(unavailable)?;
                    uploads.remove(&(*owner, *minute)).map_err(unavailable)?;
                }
                old.len()
            };
            if forgotten > 0 {
                txn.commit().map_err(unavailable)?;
            }
            Ok(forgotten)
        })
        .await
    }
}
