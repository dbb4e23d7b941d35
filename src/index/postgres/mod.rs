//! The shared index: PostgreSQL, for several upslot replicas using one
//! database.
//!
//! # Schema (tables prefixed `upslot_`)
//! - `upslot_slots`: one row per slot key. A live file has `deleted_at` NULL
//!   and its metadata in `blob`, `size`, `content_type`, `created`,
//!   `expires_at` and `owner`; a tombstone has `deleted_at` set and every
//!   file column NULL, so nothing else of a deleted file is kept (a CHECK
//!   constraint enforces both shapes). Files and tombstones share one table
//!   so that "insert unless a record or a tombstone exists" is atomic by
//!   construction: the primary key on `slot` decides, with
//!   `INSERT … ON CONFLICT DO NOTHING`, whichever replica asks.
//!   Partial indexes give the orders the trait needs without scanning:
//!   `(expires_at, slot)` and `(created, slot)` over live files,
//!   `(owner, slot)` over live files with an owner, and `(deleted_at, slot)`
//!   over tombstones.
//! - `upslot_counters`: one row with `files`, `bytes` and `tombstones`,
//!   changed by the same statement that changes the rows it counts, so
//!   [`Index::stats`] never counts rows.
//! - `upslot_leases`: named leases (`name`, `holder`, `until`), decided with
//!   the database's clock so that clock skew between replicas cannot give a
//!   lease two holders.
//! - `upslot_meta`: the schema version and the fingerprints of the index key
//!   and the master key the database was created with.
//! - `upslot_epoch_keys`: the epoch keys of encryption at rest (`epoch_end`,
//!   `wrapped`), each wrapped under the master key, which is a file beside
//!   each replica and never in the database ([`PostgresKeyring`]). A
//!   sealed file's row has its `epoch` and its `wrapped_key` (the data key
//!   wrapped under the epoch key).
//!
//! Every write is one SQL statement (data-modifying CTEs), hence one
//! transaction: the counters can never drift from the rows. The counters
//! row is the one place where concurrent writers wait for each other, for
//! the length of one statement.
//!
//! Migrations run at start in one transaction under a transaction-scoped
//! advisory lock, so replicas starting together apply them once; a database
//! whose schema is newer than this code knows is refused.
//!
//! Sizes are `bigint`: a size above `i64::MAX` is refused as
//! [`IndexError::Corrupt`] on insert, and a negative size or counter read
//! back is [`IndexError::Corrupt`] too (neither can happen in practice).
//!
//! Connections are plain TCP (`NoTls`): TLS to PostgreSQL is not supported
//! yet, so keep the database on a trusted network or a local socket tunnel.
//! Every operation is bounded in time (connect, pool wait and statement
//! deadlines), so an outage answers [`IndexError::Unavailable`] promptly.
//! Error messages never contain the connection URL (it holds a password).
//!
//! PostgreSQL keeps old row versions until (auto)vacuum reclaims them, so
//! a deleted file's metadata lingers on disk for that long.
//!
//! Files: [`sql`] (the schema and statements), `error` (what failed,
//! without row data or the URL), `operations` (the [`Index`] and
//! [`crate::index::Leases`] operations) and this one (connecting, migrating,
//! reading rows).

mod error;
mod keyring;
mod operations;
mod quota;
mod sql;

pub use keyring::PostgresKeyring;

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::FromSql;
use tokio_postgres::{NoTls, Row};

use self::error::PgError;
use self::sql::MIGRATIONS;
use super::{FileRecord, IndexError, OwnerKey, SlotKey};
use crate::encryption::Sealing;
use crate::storage::BlobName;

/// How long opening a TCP connection and logging in may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for a pooled connection, a new one, or a recycled one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one index operation may take in all.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long migrations at start may take (they may wait for another
/// replica's).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Key of the advisory lock that serialises migrations ("upslot" + 1).
const MIGRATION_LOCK: i64 = 0x7570_736c_6f74_0001;

/// An [`Index`] in a PostgreSQL database, shareable by several replicas.
///
/// Cloning is cheap: clones share one connection pool.
#[derive(Clone)]
pub struct PostgresIndex {
    pool: Pool,
}

impl PostgresIndex {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// or any form `tokio_postgres::Config` parses) with a pool of at most
    /// `pool_size` connections (at least one), creates or upgrades the
    /// schema, and checks that the database was created with the index key
    /// whose fingerprint is `key_fingerprint` (the first replica to start
    /// records it).
    ///
    /// Fails with [`IndexError::KeyMismatch`] when the recorded fingerprint
    /// differs, and [`IndexError::Unavailable`] when the database cannot be
    /// reached (within about five seconds), the URL does not parse, or the
    /// schema is newer than this code. Messages never contain the URL.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        key_fingerprint: [u8; 32],
    ) -> Result<PostgresIndex, IndexError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| {
            IndexError::Unavailable(
                "the PostgreSQL URL does not parse: expected \
                 postgres://user:password@host:port/database (the URL is not shown: it may hold a password)"
                    .into(),
            )
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("upslot");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| IndexError::Unavailable(format!("PostgreSQL pool: {e}")))?;
        let index = PostgresIndex { pool };
        within(MIGRATION_TIMEOUT, index.migrate()).await?;
        within(OPERATION_TIMEOUT, index.check_key(key_fingerprint)).await?;
        Ok(index)
    }

    /// Brings the schema to the version this code writes, once even when
    /// replicas start together.
    async fn migrate(&self) -> Result<(), PgError> {
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let has_meta: bool = txn
            .query_one("SELECT to_regclass('upslot_meta') IS NOT NULL", &[])
            .await?
            .try_get(0)?;
        let version: i64 = if has_meta {
            let row = txn
                .query_opt(
                    "SELECT number FROM upslot_meta WHERE name = 'schema_version'",
                    &[],
                )
                .await?;
            match row {
                Some(row) => column::<Option<i64>>(&row, 0)?.ok_or(PgError::Corrupt)?,
                None => 0,
            }
        } else {
            txn.batch_execute(sql::META_TABLE).await?;
            0
        };
        let done = usize::try_from(version).map_err(|_| PgError::Corrupt)?;
        let Some(steps) = MIGRATIONS.get(done..) else {
            return Err(PgError::SchemaTooNew {
                found: version,
                known: MIGRATIONS.len(),
            });
        };
        if !steps.is_empty() {
            for step in steps {
                txn.batch_execute(step).await?;
            }
            let latest = i64::try_from(MIGRATIONS.len()).map_err(|_| PgError::Corrupt)?;
            txn.execute(
                "INSERT INTO upslot_meta (name, number) VALUES ('schema_version', $1)
                 ON CONFLICT (name) DO UPDATE SET number = excluded.number",
                &[&latest],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Records the index key's `fingerprint` if none is recorded yet, and
    /// checks it against the recorded one.
    async fn check_key(&self, fingerprint: [u8; 32]) -> Result<(), PgError> {
        self.check_fingerprint("key_fingerprint", fingerprint, PgError::KeyMismatch)
            .await
    }

    /// Records `fingerprint` under `name` in `upslot_meta` if nothing is
    /// recorded there yet (the first replica wins), and fails with
    /// `mismatch` unless the recorded one is the same.
    async fn check_fingerprint(
        &self,
        name: &str,
        fingerprint: [u8; 32],
        mismatch: PgError,
    ) -> Result<(), PgError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO upslot_meta (name, bytes) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &&fingerprint[..]],
            )
            .await?;
        let row = client
            .query_one("SELECT bytes FROM upslot_meta WHERE name = $1", &[&name])
            .await?;
        let recorded: Option<Vec<u8>> = column(&row, 0)?;
        if recorded.as_deref() == Some(&fingerprint[..]) {
            Ok(())
        } else {
            Err(mismatch)
        }
    }

    /// Runs `query` (a prepared, cached statement) on a pooled connection.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// Like [`PostgresIndex::query`], for statements whose row count is
    /// the answer.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, PgError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    /// The count that `sql` returns in the first column of its one row.
    async fn count(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<usize, PgError> {
        let rows = self.query(sql, params).await?;
        let row = rows.first().ok_or(PgError::Corrupt)?;
        usize::try_from(counter(row, 0)?).map_err(|_| PgError::Corrupt)
    }

    /// Records read by a statement that selects the record columns (see
    /// [`keyed_record`]).
    async fn records(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(SlotKey, FileRecord)>, PgError> {
        self.query(sql, params)
            .await?
            .iter()
            .map(keyed_record)
            .collect()
    }
}

/// Runs `work`, failing with [`IndexError::Unavailable`] after `limit`.
async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, PgError>>,
) -> Result<T, IndexError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(IndexError::from),
        Err(_) => Err(PgError::Timeout(limit).into()),
    }
}

/// Column `index` of `row`; a type mismatch means the row is not ours.
fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, PgError> {
    row.try_get(index).map_err(|_| PgError::Corrupt)
}

/// A non-NULL column of a live file's row.
fn required<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, PgError> {
    column::<Option<T>>(row, index)?.ok_or(PgError::Corrupt)
}

/// Reads the record columns (`slot, blob, size, content_type, created,
/// expires_at, owner, epoch, wrapped_key`, in that order) of a live file's
/// row.
fn keyed_record(row: &Row) -> Result<(SlotKey, FileRecord), PgError> {
    let slot: Vec<u8> = column(row, 0)?;
    let slot = SlotKey(slot.try_into().map_err(|_| PgError::Corrupt)?);
    let blob = BlobName::parse(required(row, 1)?).ok_or(PgError::Corrupt)?;
    let size = u64::try_from(required::<i64>(row, 2)?).map_err(|_| PgError::Corrupt)?;
    let owner = match column::<Option<Vec<u8>>>(row, 6)? {
        Some(owner) => Some(OwnerKey(owner.try_into().map_err(|_| PgError::Corrupt)?)),
        None => None,
    };
    let sealing = match (
        column::<Option<i64>>(row, 7)?,
        column::<Option<Vec<u8>>>(row, 8)?,
    ) {
        (Some(epoch), Some(wrapped)) => Some(Sealing {
            epoch,
            wrapped_key: wrapped.try_into().map_err(|_| PgError::Corrupt)?,
        }),
        (None, None) => None,
        _ => return Err(PgError::Corrupt),
    };
    let record = FileRecord {
        blob,
        size,
        content_type: required(row, 3)?,
        created: required(row, 4)?,
        expires_at: required(row, 5)?,
        owner,
        sealing,
    };
    Ok((slot, record))
}

/// A count as a `LIMIT`.
fn as_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A non-negative `bigint` read back as `u64`.
fn counter(row: &Row, index: usize) -> Result<u64, PgError> {
    u64::try_from(column::<i64>(row, index)?).map_err(|_| PgError::Corrupt)
}
