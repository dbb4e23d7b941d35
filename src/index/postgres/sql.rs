//! The SQL of the PostgreSQL index: the schema migrations and every
//! statement that needs more than one line. Each write is one statement
//! (data-modifying CTEs), hence one transaction.

/// Schema steps in order; the schema version is how many have run.
pub(super) const MIGRATIONS: &[&str] = &[SCHEMA_1, SCHEMA_2, SCHEMA_3];

/// Created before the migrations, which record their progress in it.
pub(super) const META_TABLE: &str = "CREATE TABLE upslot_meta (
    name text PRIMARY KEY,
    number bigint,
    bytes bytea
)";

pub(super) const SCHEMA_1: &str = "
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

/// Encryption at rest: a sealed file's epoch and wrapped data key (both
/// or neither, and neither on a tombstone), and the epoch keys, each
/// wrapped under the master key.
pub(super) const SCHEMA_2: &str = "
ALTER TABLE upslot_slots
    ADD COLUMN epoch bigint,
    ADD COLUMN wrapped_key bytea CHECK (octet_length(wrapped_key) = 60),
    ADD CONSTRAINT upslot_slots_sealed_whole CHECK ((epoch IS NULL) = (wrapped_key IS NULL)),
    ADD CONSTRAINT upslot_slots_tombstone_unsealed CHECK (deleted_at IS NULL OR epoch IS NULL);
CREATE TABLE upslot_epoch_keys (
    epoch_end bigint PRIMARY KEY,
    wrapped bytea NOT NULL CHECK (octet_length(wrapped) = 60)
);
";

/// The quota ledger: each owner's stored bytes and bytes uploaded per
/// minute, kept by the same statements as the rows they count, and the
/// reservations of uploads in progress, which live until `until` (by the
/// database's clock) unless renewed. Stored bytes are derived for the
/// files already there; upload history starts empty.
pub(super) const SCHEMA_3: &str = "
CREATE TABLE upslot_owner_stored (
    owner bytea PRIMARY KEY CHECK (octet_length(owner) = 32),
    bytes bigint NOT NULL
);
CREATE INDEX upslot_owner_stored_empty ON upslot_owner_stored (owner) WHERE bytes <= 0;
CREATE TABLE upslot_owner_uploads (
    owner bytea NOT NULL CHECK (octet_length(owner) = 32),
    minute bigint NOT NULL,
    bytes bigint NOT NULL,
    PRIMARY KEY (owner, minute)
);
CREATE INDEX upslot_owner_uploads_by_minute ON upslot_owner_uploads (minute, owner);
CREATE TABLE upslot_reservations (
    id bigserial PRIMARY KEY,
    owner bytea CHECK (octet_length(owner) = 32),
    bytes bigint NOT NULL,
    minute bigint NOT NULL,
    until double precision NOT NULL
);
CREATE INDEX upslot_reservations_by_owner ON upslot_reservations (owner, until) INCLUDE (bytes);
CREATE INDEX upslot_reservations_by_until ON upslot_reservations (until) INCLUDE (bytes);
INSERT INTO upslot_owner_stored (owner, bytes)
SELECT owner, sum(size)::bigint FROM upslot_slots
WHERE deleted_at IS NULL AND owner IS NOT NULL
GROUP BY owner;
";

pub(super) const INSERT: &str = "
WITH ins AS (
    INSERT INTO upslot_slots (slot, blob, size, content_type, created, expires_at, owner,
        epoch, wrapped_key)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (slot) DO NOTHING
    RETURNING size, owner, created
), stored AS (
    INSERT INTO upslot_owner_stored AS o (owner, bytes)
    SELECT owner, size FROM ins WHERE owner IS NOT NULL
    ON CONFLICT (owner) DO UPDATE SET bytes = o.bytes + excluded.bytes
), uploaded AS (
    INSERT INTO upslot_owner_uploads AS u (owner, minute, bytes)
    SELECT owner, created - ((created % 60) + 60) % 60, size FROM ins WHERE owner IS NOT NULL
    ON CONFLICT (owner, minute) DO UPDATE SET bytes = u.bytes + excluded.bytes
), unreserved AS (
    DELETE FROM upslot_reservations WHERE id = $10
)
UPDATE upslot_counters
SET files = files + 1, bytes = bytes + (SELECT size FROM ins)
WHERE EXISTS (SELECT 1 FROM ins)";

/// Rows are locked in key order, so concurrent removals cannot deadlock.
pub(super) const REMOVE: &str = "
WITH old AS (
    SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
    FROM upslot_slots
    WHERE slot = ANY($1) AND deleted_at IS NULL
    ORDER BY slot
    FOR UPDATE
), gone AS (
    UPDATE upslot_slots AS s
    SET deleted_at = $2, blob = NULL, size = NULL, content_type = NULL,
        created = NULL, expires_at = NULL, owner = NULL, epoch = NULL, wrapped_key = NULL
    FROM old
    WHERE s.slot = old.slot
    RETURNING old.slot, old.blob, old.size, old.content_type, old.created,
        old.expires_at, old.owner, old.epoch, old.wrapped_key
), counted AS (
    UPDATE upslot_counters
    SET files = files - (SELECT count(*) FROM gone),
        bytes = bytes - (SELECT coalesce(sum(size), 0) FROM gone)::bigint,
        tombstones = tombstones + (SELECT count(*) FROM gone)
    WHERE EXISTS (SELECT 1 FROM gone)
), unstored AS (
    UPDATE upslot_owner_stored AS o
    SET bytes = o.bytes - freed.bytes
    FROM (
        SELECT owner, sum(size)::bigint AS bytes FROM gone
        WHERE owner IS NOT NULL GROUP BY owner
    ) AS freed
    WHERE o.owner = freed.owner
)
SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
FROM gone";

/// The oldest tombstones are collected into an array first, so the delete
/// is a primary-key lookup per tombstone whatever plan the `LIMIT`
/// parameter gets (a semi-join could scan every tombstone).
pub(super) const FORGET_TOMBSTONES: &str = "
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

pub(super) const AGE_HISTOGRAM: &str = "
SELECT (
    SELECT count(*) FROM upslot_slots
    WHERE deleted_at IS NULL AND created >= span.low AND created < span.high
)
FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS span (low, high, n)
ORDER BY span.n";

/// The lease is taken when free or expired and renewed by its holder, all
/// by the database's clock; a row comes back only when `$2` holds it.
pub(super) const LEASE: &str = "
INSERT INTO upslot_leases AS lease (name, holder, until)
VALUES ($1, $2, extract(epoch FROM clock_timestamp())::double precision + $3)
ON CONFLICT (name) DO UPDATE
SET holder = excluded.holder, until = excluded.until
WHERE lease.holder = excluded.holder
    OR lease.until <= extract(epoch FROM clock_timestamp())::double precision
RETURNING holder";

/// A live record by key.
pub(super) const GET: &str =
    "SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
FROM upslot_slots WHERE slot = $1 AND deleted_at IS NULL";

/// [`crate::index::Scan::ExpiredBy`]: on the expiry index.
pub(super) const SCAN_EXPIRED: &str =
    "SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
FROM upslot_slots
WHERE deleted_at IS NULL AND expires_at <= $1
ORDER BY expires_at, slot LIMIT $2";

/// [`crate::index::Scan::CreatedBy`]: on the creation index.
pub(super) const SCAN_CREATED: &str =
    "SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
FROM upslot_slots
WHERE deleted_at IS NULL AND created <= $1
ORDER BY created, slot LIMIT $2";

/// [`crate::index::Scan::OwnedBy`]: on the owner index.
pub(super) const SCAN_OWNER: &str =
    "SELECT slot, blob, size, content_type, created, expires_at, owner, epoch, wrapped_key
FROM upslot_slots
WHERE owner = $1 AND deleted_at IS NULL
ORDER BY slot LIMIT $2";

/// The order keeps the scan on the expiry index: a sequential scan would
/// wade through tombstones.
pub(super) const COUNT_EXPIRED: &str = "SELECT count(*) FROM (
    SELECT 1 FROM upslot_slots
    WHERE deleted_at IS NULL AND expires_at <= $1
    ORDER BY expires_at
    LIMIT $2
) AS due";

/// The counters, and the oldest live file's creation time.
pub(super) const STATS: &str = "SELECT files, bytes, tombstones,
    (SELECT min(created) FROM upslot_slots WHERE deleted_at IS NULL)
FROM upslot_counters";

/// Files per epoch, for `upslot stats` (a walk over live files).
pub(super) const SEALED_COUNTS: &str = "SELECT epoch, count(*) FROM upslot_slots
WHERE deleted_at IS NULL AND epoch IS NOT NULL
GROUP BY epoch ORDER BY epoch";

/// The database's clock, in Unix seconds (a macro, so `concat!` can
/// splice it into statements).
macro_rules! clock {
    () => {
        "extract(epoch FROM clock_timestamp())::double precision"
    };
}

/// Bytes stored in total (only when `$2`, else 0) and by owner `$1`
/// (NULL: none), each with the live reservations: one statement, so one
/// snapshot, in which a recorded upload whose reservation is not yet
/// released counts twice, never zero times. Reservations are found
/// through their indexes, which skip the dead rows of released ones.
pub(super) const STORED_USAGE: &str = concat!(
    "SELECT
    CASE WHEN $2 THEN
        (SELECT bytes FROM upslot_counters)
        + (SELECT coalesce(sum(bytes), 0) FROM upslot_reservations WHERE until > ",
    clock!(),
    ")::bigint
    ELSE 0 END,
    (SELECT coalesce(sum(bytes), 0) FROM upslot_owner_stored WHERE owner = $1)::bigint
        + (SELECT coalesce(sum(bytes), 0) FROM upslot_reservations WHERE owner = $1 AND until > ",
    clock!(),
    ")::bigint"
);

/// Bytes uploaded by owner `$1` per minute from minute `$2` on, and its
/// live reservations by the minute they began in (one snapshot, as above).
pub(super) const UPLOADS_USAGE: &str = concat!(
    "SELECT minute, bytes FROM upslot_owner_uploads WHERE owner = $1 AND minute >= $2
UNION ALL
SELECT minute, bytes FROM upslot_reservations WHERE owner = $1 AND until > ",
    clock!()
);

/// A new reservation of `$2` bytes by owner `$1` (or NULL) in minute `$3`,
/// alive for `$4` seconds.
pub(super) const RESERVE: &str = concat!(
    "INSERT INTO upslot_reservations (owner, bytes, minute, until) VALUES ($1, $2, $3, ",
    clock!(),
    " + $4) RETURNING id"
);

/// Keeps reservation `$1` alive for `$2` more seconds.
pub(super) const RENEW: &str = concat!(
    "UPDATE upslot_reservations SET until = ",
    clock!(),
    " + $2 WHERE id = $1"
);

/// Forgets up to `$2` upload-history minutes before minute `$1` (the
/// oldest first, by primary key as in [`FORGET_TOMBSTONES`]).
pub(super) const FORGET_UPLOADS: &str = "
WITH gone AS (
    DELETE FROM upslot_owner_uploads
    WHERE (owner, minute) IN (
        SELECT owner, minute FROM upslot_owner_uploads
        WHERE minute < $1
        ORDER BY minute, owner
        LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone";

/// Drops reservations that were neither released nor renewed in time, and
/// owners with nothing stored.
pub(super) const FORGET_STALE: &str = concat!(
    "WITH stale AS (DELETE FROM upslot_reservations WHERE until <= ",
    clock!(),
    ")
DELETE FROM upslot_owner_stored WHERE bytes <= 0"
);
