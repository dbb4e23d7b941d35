//! The index operations over the pool: every one a prepared statement,
//! bounded by [`OPERATION_TIMEOUT`].

use std::time::Duration;

use async_trait::async_trait;

use super::error::PgError;
use super::sql;
use super::{OPERATION_TIMEOUT, PostgresIndex, as_limit, column, counter, within};
use crate::index::{FileRecord, Index, IndexError, IndexStats, Inserted, Leases, Scan, SlotKey};

#[async_trait]
impl Index for PostgresIndex {
    async fn get(&self, key: SlotKey) -> Result<Option<FileRecord>, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let mut found = self.records(sql::GET, &[&&key.0[..]]).await?;
            Ok(found.pop().map(|(_, record)| record))
        })
        .await
    }

    async fn tombstone(&self, key: SlotKey) -> Result<Option<i64>, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let rows = self
                .query(
                    "SELECT deleted_at FROM upslot_slots WHERE slot = $1 AND deleted_at IS NOT NULL",
                    &[&&key.0[..]],
                )
                .await?;
            rows.first().map(|row| column(row, 0)).transpose()
        })
        .await
    }

    async fn insert(&self, key: SlotKey, record: FileRecord) -> Result<Inserted, IndexError> {
        self.insert_releasing(key, record, None).await
    }

    async fn remove(
        &self,
        keys: &[SlotKey],
        deleted_at: i64,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<&[u8]> = keys.iter().map(|key| &key.0[..]).collect();
        within(
            OPERATION_TIMEOUT,
            self.records(sql::REMOVE, &[&slots, &deleted_at]),
        )
        .await
    }

    async fn scan(
        &self,
        scan: Scan,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let limit = as_limit(limit);
        within(OPERATION_TIMEOUT, async {
            match scan {
                Scan::ExpiredBy(until) => self.records(sql::SCAN_EXPIRED, &[&until, &limit]).await,
                Scan::CreatedBy(until) => self.records(sql::SCAN_CREATED, &[&until, &limit]).await,
                Scan::OwnedBy(owner) => {
                    self.records(sql::SCAN_OWNER, &[&&owner.0[..], &limit])
                        .await
                }
            }
        })
        .await
    }

    async fn count_expired(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        within(
            OPERATION_TIMEOUT,
            self.count(sql::COUNT_EXPIRED, &[&before, &as_limit(limit)]),
        )
        .await
    }

    async fn forget_tombstones(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        if limit == 0 {
            return Ok(0);
        }
        within(
            OPERATION_TIMEOUT,
            self.count(sql::FORGET_TOMBSTONES, &[&before, &as_limit(limit)]),
        )
        .await
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let rows = self.query(sql::STATS, &[]).await?;
            let row = rows.first().ok_or(PgError::Corrupt)?;
            Ok(IndexStats {
                files: counter(row, 0)?,
                bytes: counter(row, 1)?,
                tombstones: counter(row, 2)?,
                oldest_created: column(row, 3)?,
            })
        })
        .await
    }

    async fn age_histogram(&self, bounds: Vec<i64>) -> Result<Vec<u64>, IndexError> {
        if bounds.len() < 2 {
            return Ok(Vec::new());
        }
        let lows = &bounds[..bounds.len() - 1];
        let highs = &bounds[1..];
        within(OPERATION_TIMEOUT, async {
            let rows = self.query(sql::AGE_HISTOGRAM, &[&lows, &highs]).await?;
            rows.iter().map(|row| counter(row, 0)).collect()
        })
        .await
    }

    async fn sealed_counts(&self) -> Result<Vec<(i64, u64)>, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let rows = self.query(sql::SEALED_COUNTS, &[]).await?;
            rows.iter()
                .map(|row| Ok((column(row, 0)?, counter(row, 1)?)))
                .collect()
        })
        .await
    }

    async fn check(&self) -> Result<(), IndexError> {
        within(OPERATION_TIMEOUT, async {
            self.query("SELECT 1", &[]).await?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Leases for PostgresIndex {
    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, IndexError> {
        let seconds = ttl.as_secs_f64();
        within(OPERATION_TIMEOUT, async {
            let rows = self.query(sql::LEASE, &[&name, &holder, &seconds]).await?;
            match rows.first() {
                Some(row) => Ok(column::<String>(row, 0)? == holder),
                None => Ok(false),
            }
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), IndexError> {
        within(OPERATION_TIMEOUT, async {
            self.execute(
                "DELETE FROM upslot_leases WHERE name = $1 AND holder = $2",
                &[&name, &holder],
            )
            .await?;
            Ok(())
        })
        .await
    }
}

impl PostgresIndex {
    /// [`Index::insert`], releasing the quota reservation `reservation` (if
    /// any) in the same statement, whatever the outcome: the upload it
    /// held bytes for is over, and its file (if recorded) carries them.
    pub(super) async fn insert_releasing(
        &self,
        key: SlotKey,
        record: FileRecord,
        reservation: Option<i64>,
    ) -> Result<Inserted, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let size = i64::try_from(record.size).map_err(|_| PgError::Corrupt)?;
            let owner = record.owner.as_ref().map(|owner| &owner.0[..]);
            let epoch = record.sealing.as_ref().map(|sealing| sealing.epoch);
            let wrapped_key = record.sealing.as_ref().map(|s| &s.wrapped_key[..]);
            // A conflicting row may be forgotten (a tombstone) between the
            // insert and the read that tells which kind it was: try again.
            for _ in 0..3 {
                let created = self
                    .execute(
                        sql::INSERT,
                        &[
                            &&key.0[..],
                            &record.blob.key(),
                            &size,
                            &record.content_type,
                            &record.created,
                            &record.expires_at,
                            &owner,
                            &epoch,
                            &wrapped_key,
                            &reservation,
                        ],
                    )
                    .await?;
                if created > 0 {
                    return Ok(Inserted::Created);
                }
                let rows = self
                    .query(
                        "SELECT deleted_at IS NOT NULL FROM upslot_slots WHERE slot = $1",
                        &[&&key.0[..]],
                    )
                    .await?;
                match rows.first().map(|row| column::<bool>(row, 0)).transpose()? {
                    Some(true) => return Ok(Inserted::Gone),
                    Some(false) => return Ok(Inserted::Exists),
                    None => continue,
                }
            }
            Err(PgError::Query(
                "insert kept conflicting with a row that vanished".into(),
            ))
        })
        .await
    }
}
