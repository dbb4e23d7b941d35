//! The quota ledger of the PostgreSQL index, shared by every replica.
//!
//! A reservation is measured and recorded in one transaction under
//! transaction-scoped advisory locks (the global limit's, then the
//! owner's), so of reservations racing on any replicas each sees the ones
//! before it. Reservations live by the database's clock for
//! [`RESERVATION_TTL`] unless renewed, so a replica that dies mid-upload
//! holds nothing for long.

use async_trait::async_trait;

use super::error::PgError;
use super::{OPERATION_TIMEOUT, PostgresIndex, as_limit, column, counter, within};
use crate::index::{
    FileRecord, IndexError, Inserted, OwnerKey, QuotaLedger, RESERVATION_TTL, ReservationId,
    SlotKey,
};
use crate::quota::{
    Limits, OwnerUsage, Refusal, Usage, first_counting_minute, minute_of, window_start,
};

use super::sql;

/// Advisory lock class of the global limit (two-key locks do not share
/// the one-key space of the migration lock).
const GLOBAL_LOCK_CLASS: i32 = 0x7570_0001;
/// Advisory lock class of per-owner limits; the key is the owner's first
/// four bytes (a collision only serialises two owners).
const OWNER_LOCK_CLASS: i32 = 0x7570_0002;

fn ttl_seconds() -> f64 {
    RESERVATION_TTL.as_secs_f64()
}

/// Usage read on `client` (a transaction or a pooled connection); the
/// global total only when `global` (else 0).
async fn usage_on(
    client: &impl deadpool_postgres::GenericClient,
    owner: Option<OwnerKey>,
    global: bool,
    now: i64,
) -> Result<Usage, PgError> {
    let owner_bytes = owner.as_ref().map(|owner| &owner.0[..]);
    let stored = client.prepare_cached(sql::STORED_USAGE).await?;
    let Some(owner_bytes) = owner_bytes else {
        let row = client.query_one(&stored, &[&owner_bytes, &global]).await?;
        return Ok(Usage {
            owner: None,
            global_stored: counter(&row, 0)?,
        });
    };
    // Both at once (pipelined on the connection): each is one snapshot.
    let uploads = client.prepare_cached(sql::UPLOADS_USAGE).await?;
    let window = window_start(now);
    let (row, rows) = futures_util::future::try_join(
        client.query_one(&stored, &[&Some(owner_bytes), &global]),
        client.query(&uploads, &[&owner_bytes, &window]),
    )
    .await?;
    let global_stored = counter(&row, 0)?;
    let owner = Some(OwnerUsage {
        stored: counter(&row, 1)?,
        uploads: rows
            .iter()
            .map(|row| Ok((column::<i64>(row, 0)?, counter(row, 1)?)))
            .collect::<Result<_, PgError>>()?,
    });
    Ok(Usage {
        owner,
        global_stored,
    })
}

impl PostgresIndex {
    async fn reserve_in_transaction(
        &self,
        owner: Option<OwnerKey>,
        size: u64,
        limits: Limits,
        now: i64,
    ) -> Result<Result<ReservationId, Refusal>, PgError> {
        let bytes = i64::try_from(size).map_err(|_| PgError::Corrupt)?;
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        // One round trip for the settings and the locks, global first. The
        // locks are held until the commit: do not make every replica's
        // uploads wait for this one's WAL flush. A reservation lost in a
        // database crash only lets its upload go on unreserved.
        let mut prelude = String::from("SET LOCAL synchronous_commit TO OFF;");
        if limits.global_stored != 0 {
            prelude.push_str(&format!(
                " SELECT pg_advisory_xact_lock({GLOBAL_LOCK_CLASS}, 0);"
            ));
        }
        if let Some(owner) = &owner {
            let key = i32::from_be_bytes([owner.0[0], owner.0[1], owner.0[2], owner.0[3]]);
            prelude.push_str(&format!(
                " SELECT pg_advisory_xact_lock({OWNER_LOCK_CLASS}, {key});"
            ));
        }
        txn.batch_execute(&prelude).await?;
        let usage = usage_on(&txn, owner, limits.global_stored != 0, now).await?;
        if let Err(refusal) = limits.check(&usage, size, now) {
            txn.rollback().await?;
            return Ok(Err(refusal));
        }
        let owner_bytes = owner.as_ref().map(|owner| &owner.0[..]);
        let statement = txn.prepare_cached(sql::RESERVE).await?;
        let row = txn
            .query_one(
                &statement,
                &[&owner_bytes, &bytes, &minute_of(now), &ttl_seconds()],
            )
            .await?;
        let id: i64 = column(&row, 0)?;
        txn.commit().await?;
        Ok(Ok(ReservationId(id)))
    }
}

#[async_trait]
impl QuotaLedger for PostgresIndex {
    async fn reserve(
        &self,
        owner: Option<OwnerKey>,
        size: u64,
        limits: Limits,
        now: i64,
    ) -> Result<Result<ReservationId, Refusal>, IndexError> {
        within(
            OPERATION_TIMEOUT,
            self.reserve_in_transaction(owner, size, limits, now),
        )
        .await
    }

    async fn renew(&self, id: ReservationId) -> Result<(), IndexError> {
        within(OPERATION_TIMEOUT, async {
            self.execute(sql::RENEW, &[&id.0, &ttl_seconds()]).await?;
            Ok(())
        })
        .await
    }

    async fn unreserve(&self, id: ReservationId) -> Result<(), IndexError> {
        within(OPERATION_TIMEOUT, async {
            // Without waiting for the WAL flush: a release lost in a
            // database crash lapses with the reservation's TTL.
            let mut client = self.pool.get().await?;
            let txn = client.transaction().await?;
            txn.batch_execute(&format!(
                "SET LOCAL synchronous_commit TO OFF; DELETE FROM upslot_reservations WHERE id = {}",
                id.0
            ))
            .await?;
            txn.commit().await?;
            Ok(())
        })
        .await
    }

    async fn insert_reserved(
        &self,
        key: SlotKey,
        record: FileRecord,
        id: ReservationId,
    ) -> Result<Inserted, IndexError> {
        self.insert_releasing(key, record, Some(id.0)).await
    }

    async fn usage(&self, owner: OwnerKey, now: i64) -> Result<OwnerUsage, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let client = self.pool.get().await?;
            let usage = usage_on(&client, Some(owner), false, now).await?;
            Ok(usage.owner.unwrap_or_default())
        })
        .await
    }

    async fn forget_owner(&self, owner: OwnerKey) -> Result<(), IndexError> {
        within(OPERATION_TIMEOUT, async {
            self.execute(
                "DELETE FROM upslot_owner_uploads WHERE owner = $1",
                &[&&owner.0[..]],
            )
            .await?;
            self.execute(
                "DELETE FROM upslot_owner_stored WHERE owner = $1 AND bytes <= 0",
                &[&&owner.0[..]],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn forget_uploads(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let kept = first_counting_minute(before);
            let forgotten = self
                .count(sql::FORGET_UPLOADS, &[&kept, &as_limit(limit)])
                .await?;
            self.execute(sql::FORGET_STALE, &[]).await?;
            Ok(forgotten)
        })
        .await
    }
}
