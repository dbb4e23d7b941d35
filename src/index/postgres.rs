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
//! - `upslot_meta`: the schema version and the fingerprint of the index key
//!   the database was created with.
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

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::types::FromSql;
use tokio_postgres::{NoTls, Row};

use super::{FileRecord, Index, IndexError, IndexStats, Inserted, OwnerKey, SlotKey};
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

/// Schema steps in order; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[SCHEMA_1];

/// Created before the migrations, which record their progress in it.
const META_TABLE: &str = "CREATE TABLE upslot_meta (
    name text PRIMARY KEY,
    number bigint,
    bytes bytea
)";

const SCHEMA_1: &str = "
CREATE TABLE upslot_slots (
    slot bytea PRIMARY KEY CHECK (octet_length(slot) = 32),
    blob text,
    size bigint CHECK (size >= 0),
    content_type text,
    created bigint,
    expires_at bigint,
    owner bytea CHECK (octet_length(owner) = 32),
    deleted_at bigint,
    CONSTRAINT upslot_slots_file_or_tombstone CHECK (CASE WHEN deleted_at IS NULL
        THEN blob IS NOT NULL AND size IS NOT NULL AND content_type IS NOT NULL
            AND created IS NOT NULL AND expires_at IS NOT NULL
        ELSE blob IS NULL AND size IS NULL AND content_type IS NULL
            AND created IS NULL AND expires_at IS NULL AND owner IS NULL
        END)
);
CREATE INDEX upslot_slots_by_expiry ON upslot_slots (expires_at, slot)
    WHERE deleted_at IS NULL;
CREATE INDEX upslot_slots_by_created ON upslot_slots (created, slot)
    WHERE deleted_at IS NULL;
CREATE INDEX upslot_slots_by_owner ON upslot_slots (owner, slot)
    WHERE owner IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX upslot_slots_tombstones ON upslot_slots (deleted_at, slot)
    WHERE deleted_at IS NOT NULL;
CREATE TABLE upslot_counters (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    files bigint NOT NULL,
    bytes bigint NOT NULL,
    tombstones bigint NOT NULL
);
INSERT INTO upslot_counters (files, bytes, tombstones) VALUES (0, 0, 0);
CREATE TABLE upslot_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    until double precision NOT NULL
);
";

/// The columns [`keyed_record`] reads, in order.
const RECORD_COLUMNS: &str = "slot, blob, size, content_type, created, expires_at, owner";

const INSERT: &str = "
WITH ins AS (
    INSERT INTO upslot_slots (slot, blob, size, content_type, created, expires_at, owner)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (slot) DO NOTHING
    RETURNING size
)
UPDATE upslot_counters
SET files = files + 1, bytes = bytes + (SELECT size FROM ins)
WHERE EXISTS (SELECT 1 FROM ins)";

/// Rows are locked in key order, so concurrent removals cannot deadlock.
const REMOVE: &str = "
WITH old AS (
    SELECT slot, blob, size, content_type, created, expires_at, owner
    FROM upslot_slots
    WHERE slot = ANY($1) AND deleted_at IS NULL
    ORDER BY slot
    FOR UPDATE
), gone AS (
    UPDATE upslot_slots AS s
    SET deleted_at = $2, blob = NULL, size = NULL, content_type = NULL,
        created = NULL, expires_at = NULL, owner = NULL
    FROM old
    WHERE s.slot = old.slot
    RETURNING old.slot, old.blob, old.size, old.content_type, old.created,
        old.expires_at, old.owner
), counted AS (
    UPDATE upslot_counters
    SET files = files - (SELECT count(*) FROM gone),
        bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)::bigint,
        tombstones = tombstones + (SELECT count(*) FROM gone)
    WHERE EXISTS (SELECT 1 FROM gone)
)
SELECT slot, blob, size, content_type, created, expires_at, owner FROM gone";

/// The oldest tombstones are collected into an array first, so the delete
/// is a primary-key lookup per tombstone whatever plan the `LIMIT`
/// parameter gets (a semi-join could scan every tombstone).
const FORGET_TOMBSTONES: &str = "
WITH gone AS (
    DELETE FROM upslot_slots
    WHERE slot = ANY(ARRAY(
        SELECT slot FROM upslot_slots
        WHERE deleted_at IS NOT NULL AND deleted_at < $1
        ORDER BY deleted_at, slot
        LIMIT $2
    )) AND deleted_at IS NOT NULL
    RETURNING 1
), counted AS (
    UPDATE upslot_counters
    SET tombstones = tombstones - (SELECT count(*) FROM gone)
    WHERE EXISTS (SELECT 1 FROM gone)
)
SELECT count(*) FROM gone";

const AGE_HISTOGRAM: &str = "
SELECT (
    SELECT count(*) FROM upslot_slots
    WHERE deleted_at IS NULL AND created >= span.low AND created < span.high
)
FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS span (low, high, n)
ORDER BY span.n";

/// The lease is taken when free or expired and renewed by its holder, all
/// by the database's clock; a row comes back only when `$2` holds it.
const LEASE: &str = "
INSERT INTO upslot_leases AS lease (name, holder, until)
VALUES ($1, $2, extract(epoch FROM clock_timestamp())::double precision + $3)
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, until = excluded.until
WHERE lease.holder = excluded.holder
    OR lease.until <= extract(epoch FROM clock_timestamp())::double precision
RETURNING holder";

/// Why a PostgreSQL operation failed; turned into [`IndexError`] at the
/// trait boundary.
#[derive(Debug, thiserror::Error)]
enum PgError {
    /// No connection could be had from the pool.
    #[error("no PostgreSQL connection: {0}")]
    Pool(String),
    /// A statement failed.
    #[error("PostgreSQL statement failed: {0}")]
    Query(String),
    /// The operation did not finish in time.
    #[error("PostgreSQL did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// A row does not hold what this code wrote.
    #[error("a PostgreSQL index row is corrupt")]
    Corrupt,
    /// The database was made by a newer upslot.
    #[error(
        "the PostgreSQL index has schema version {found}, newer than this upslot knows ({known}): upgrade upslot"
    )]
    SchemaTooNew {
        /// Version recorded in the database.
        found: i64,
        /// Version this code writes.
        known: usize,
    },
    /// The database was made with another index key.
    #[error("the index key differs")]
    KeyMismatch,
}

impl From<PgError> for IndexError {
    fn from(error: PgError) -> IndexError {
        match error {
            PgError::Corrupt => IndexError::Corrupt,
            PgError::KeyMismatch => IndexError::KeyMismatch,
            PgError::Pool(_)
            | PgError::Query(_)
            | PgError::Timeout(_)
            | PgError::SchemaTooNew { .. } => IndexError::Unavailable(error.to_string()),
        }
    }
}

/// Describes a driver error without row data: a server error gives its
/// severity, message and SQLSTATE (not its detail, which may quote a row).
fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> PgError {
        PgError::Query(describe(&error))
    }
}

impl From<PoolError> for PgError {
    fn from(error: PoolError) -> PgError {
        let seconds = POOL_TIMEOUT.as_secs();
        PgError::Pool(match &error {
            PoolError::Backend(backend) => describe(backend),
            PoolError::Timeout(TimeoutType::Create) => {
                format!("connecting and logging in took over {seconds} s")
            }
            PoolError::Timeout(TimeoutType::Wait) => {
                format!("every pooled connection stayed busy for {seconds} s")
            }
            PoolError::Timeout(TimeoutType::Recycle) => {
                format!("checking a pooled connection took over {seconds} s")
            }
            PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
                error.to_string()
            }
        })
    }
}

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
            txn.batch_execute(META_TABLE).await?;
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

    /// Records `fingerprint` if no key is recorded yet, and checks it
    /// against the recorded one.
    async fn check_key(&self, fingerprint: [u8; 32]) -> Result<(), PgError> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO upslot_meta (name, bytes) VALUES ('key_fingerprint', $1)
                 ON CONFLICT (name) DO NOTHING",
                &[&&fingerprint[..]],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT bytes FROM upslot_meta WHERE name = 'key_fingerprint'",
                &[],
            )
            .await?;
        let recorded: Option<Vec<u8>> = column(&row, 0)?;
        if recorded.as_deref() == Some(&fingerprint[..]) {
            Ok(())
        } else {
            Err(PgError::KeyMismatch)
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

    /// Records read with `SELECT {RECORD_COLUMNS} …`.
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

/// Reads the columns of [`RECORD_COLUMNS`].
fn keyed_record(row: &Row) -> Result<(SlotKey, FileRecord), PgError> {
    let slot: Vec<u8> = column(row, 0)?;
    let slot = SlotKey(slot.try_into().map_err(|_| PgError::Corrupt)?);
    let blob = BlobName::parse(required(row, 1)?).ok_or(PgError::Corrupt)?;
    let size = u64::try_from(required::<i64>(row, 2)?).map_err(|_| PgError::Corrupt)?;
    let owner = match column::<Option<Vec<u8>>>(row, 6)? {
        Some(owner) => Some(OwnerKey(owner.try_into().map_err(|_| PgError::Corrupt)?)),
        None => None,
    };
    let record = FileRecord {
        blob,
        size,
        content_type: required(row, 3)?,
        created: required(row, 4)?,
        expires_at: required(row, 5)?,
        owner,
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

#[async_trait]
impl Index for PostgresIndex {
    async fn get(&self, key: SlotKey) -> Result<Option<FileRecord>, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let sql = format!(
                "SELECT {RECORD_COLUMNS} FROM upslot_slots WHERE slot = $1 AND deleted_at IS NULL"
            );
            let mut found = self.records(&sql, &[&&key.0[..]]).await?;
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
        within(OPERATION_TIMEOUT, async {
            let size = i64::try_from(record.size).map_err(|_| PgError::Corrupt)?;
            let owner = record.owner.as_ref().map(|owner| &owner.0[..]);
            // A conflicting row may be forgotten (a tombstone) between the
            // insert and the read that tells which kind it was: try again.
            for _ in 0..3 {
                let created = self
                    .execute(
                        INSERT,
                        &[
                            &&key.0[..],
                            &record.blob.key(),
                            &size,
                            &record.content_type,
                            &record.created,
                            &record.expires_at,
                            &owner,
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
            self.records(REMOVE, &[&slots, &deleted_at]),
        )
        .await
    }

    async fn expired(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM upslot_slots
             WHERE deleted_at IS NULL AND expires_at <= $1
             ORDER BY expires_at, slot LIMIT $2"
        );
        within(
            OPERATION_TIMEOUT,
            self.records(&sql, &[&now, &as_limit(limit)]),
        )
        .await
    }

    async fn created_by(
        &self,
        until: i64,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM upslot_slots
             WHERE deleted_at IS NULL AND created <= $1
             ORDER BY created, slot LIMIT $2"
        );
        within(
            OPERATION_TIMEOUT,
            self.records(&sql, &[&until, &as_limit(limit)]),
        )
        .await
    }

    async fn owned_by(
        &self,
        owner: OwnerKey,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM upslot_slots
             WHERE owner = $1 AND deleted_at IS NULL
             ORDER BY slot LIMIT $2"
        );
        within(
            OPERATION_TIMEOUT,
            self.records(&sql, &[&&owner.0[..], &as_limit(limit)]),
        )
        .await
    }

    async fn count_expired(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let rows = self
                .query(
                    // The order keeps the scan on the expiry index: a
                    // sequential scan would wade through tombstones.
                    "SELECT count(*) FROM (
                         SELECT 1 FROM upslot_slots
                         WHERE deleted_at IS NULL AND expires_at <= $1
                         ORDER BY expires_at
                         LIMIT $2
                     ) AS due",
                    &[&before, &as_limit(limit)],
                )
                .await?;
            let row = rows.first().ok_or(PgError::Corrupt)?;
            usize::try_from(counter(row, 0)?).map_err(|_| PgError::Corrupt)
        })
        .await
    }

    async fn forget_tombstones(&self, before: i64, limit: usize) -> Result<usize, IndexError> {
        if limit == 0 {
            return Ok(0);
        }
        within(OPERATION_TIMEOUT, async {
            let rows = self
                .query(FORGET_TOMBSTONES, &[&before, &as_limit(limit)])
                .await?;
            let row = rows.first().ok_or(PgError::Corrupt)?;
            usize::try_from(counter(row, 0)?).map_err(|_| PgError::Corrupt)
        })
        .await
    }

    async fn stats(&self) -> Result<IndexStats, IndexError> {
        within(OPERATION_TIMEOUT, async {
            let rows = self
                .query(
                    "SELECT files, bytes, tombstones,
                         (SELECT min(created) FROM upslot_slots WHERE deleted_at IS NULL)
                     FROM upslot_counters",
                    &[],
                )
                .await?;
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
            let rows = self.query(AGE_HISTOGRAM, &[&lows, &highs]).await?;
            rows.iter().map(|row| counter(row, 0)).collect()
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

    async fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, IndexError> {
        let seconds = ttl.as_secs_f64();
        within(OPERATION_TIMEOUT, async {
            let rows = self.query(LEASE, &[&name, &holder, &seconds]).await?;
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
