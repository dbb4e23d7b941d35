//! The index: file metadata keyed by a keyed hash of the slot path.
//!
//! Nothing in it is plaintext personal data: the key is
//! `HMAC(index_key, path)`, the owner a keyed hash of the uploader, and the
//! blob name is random. Secondary orders (by expiry, by owner) let the
//! sweeper and erasure work without scanning everything.
//!
//! Two implementations: [`embedded`] (a redb file that one process opens)
//! and [`postgres`] (a database several replicas share; it also keeps the
//! [`Leases`] that let one of them sweep at a time, and the epoch keys of
//! encryption at rest, wrapped under a master key kept outside it).

pub mod embedded;
pub mod postgres;
mod record;

use async_trait::async_trait;

pub use record::FileRecord;

use crate::auth::mac::hmac_sha256;
use crate::auth::{SlotPath, Uploader};
use crate::quota::{Limits, OwnerUsage, Refusal};

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database cannot be opened, read or written.
    #[error("index unavailable: {0}")]
    Unavailable(String),
    /// A stored record cannot be decoded.
    #[error("index record is corrupt")]
    Corrupt,
    /// The shared index was created with another index key than this replica's.
    #[error(
        "the index was created with another index key: copy the key file of the first replica to this one"
    )]
    KeyMismatch,
    /// The shared index's epoch keys are wrapped under another master key
    /// than this replica's.
    #[error(
        "the index's epoch keys are wrapped under another master key: copy encryption.master_key_file of the first replica to this one"
    )]
    MasterKeyMismatch,
}

/// Key of one file: `HMAC(index_key, "slot\0" + path)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey(pub [u8; 32]);

/// An uploader pseudonym: `HMAC(index_key, "owner\0" + sha1(bare JID) hex)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerKey(pub [u8; 32]);

impl std::fmt::Debug for SlotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SlotKey({})", hex::encode(&self.0[..4]))
    }
}

impl std::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnerKey({})", hex::encode(&self.0[..4]))
    }
}

/// The secret that keys index hashes. Without it, nobody can tell which
/// path or JID an index entry belongs to.
#[derive(Clone)]
pub struct IndexKey([u8; 32]);

impl IndexKey {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> IndexKey {
        IndexKey(bytes)
    }

    /// The key of `path`.
    pub fn slot(&self, path: &SlotPath) -> SlotKey {
        let mut message = b"slot\0".to_vec();
        message.extend_from_slice(path.as_bytes());
        SlotKey(hmac_sha256(&self.0, &message))
    }

    /// The pseudonym of an uploader. JIDs are reduced to ejabberd's form,
    /// `sha1(user@host)` in hex, so a JWT `sub` and an ejabberd path of the
    /// same account give the same owner.
    pub fn owner(&self, uploader: &Uploader) -> OwnerKey {
        use sha1::Digest as _;
        let sha1_hex = match uploader {
            Uploader::Jid(jid) => hex::encode(sha1::Sha1::digest(jid.as_str().as_bytes())),
            Uploader::Sha1Hex(hex) => hex.to_ascii_lowercase(),
        };
        let mut message = b"owner\0".to_vec();
        message.extend_from_slice(sha1_hex.as_bytes());
        OwnerKey(hmac_sha256(&self.0, &message))
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexKey([redacted])")
    }
}

/// Outcome of [`Index::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record was stored.
    Created,
    /// A record already existed for the key; nothing changed.
    Exists,
    /// The slot held a file that has since been deleted (a tombstone is
    /// remembered): slot URLs are single-use, so nothing changed.
    Gone,
}

/// Totals kept by the index, cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Files recorded (expired or not, until swept).
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Creation time of the oldest recorded file.
    pub oldest_created: Option<i64>,
    /// Tombstones remembered.
    pub tombstones: u64,
}

/// An ordered walk over live records, for [`Index::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Records with `expires_at <= until`, earliest expiry first (the
    /// sweeper).
    ExpiredBy(i64),
    /// Records created at or before `until`, oldest first (the
    /// `retention.max` ceiling, which applies whatever `expires_at` says).
    CreatedBy(i64),
    /// Records uploaded by an owner, in key order (account erasure).
    OwnedBy(OwnerKey),
}

/// File metadata storage.
///
/// Every operation costs in proportion to what it returns or changes,
/// never to the number of files stored, except [`Index::age_histogram`],
/// which is for operators' occasional use.
#[async_trait]
pub trait Index: Send + Sync + 'static {
    /// The record of `key`, if any (expired or not: callers decide).
    async fn get(&self, key: SlotKey) -> Result<Option<FileRecord>, IndexError>;

    /// When the file of `key` was deleted, if a tombstone remembers it.
    async fn tombstone(&self, key: SlotKey) -> Result<Option<i64>, IndexError>;

    /// Stores `record` under `key` unless a record or a tombstone exists:
    /// atomic, so of two concurrent inserts exactly one gets
    /// [`Inserted::Created`].
    async fn insert(&self, key: SlotKey, record: FileRecord) -> Result<Inserted, IndexError>;

    /// Removes the records of `keys` (missing ones are skipped), leaving a
    /// tombstone dated `deleted_at` for each, in one transaction. Returns
    /// the removed records.
    async fn remove(
        &self,
        keys: &[SlotKey],
        deleted_at: i64,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError>;

    /// Up to `limit` records in the order `scan` names.
    async fn scan(
        &self,
        scan: Scan,
        limit: usize,
    ) -> Result<Vec<(SlotKey, FileRecord)>, IndexError>;

    /// How many records have `expires_at <= before`, counting at most
    /// `limit` (cheaper than a [`Scan::ExpiredBy`]: nothing is decoded).
    async fn count_expired(&self, before: i64, limit: usize) -> Result<usize, IndexError>;

    /// Forgets up to `limit` tombstones dated before `before`; returns how many.
    async fn forget_tombstones(&self, before: i64, limit: usize) -> Result<usize, IndexError>;

    /// Totals.
    async fn stats(&self) -> Result<IndexStats, IndexError>;

    /// How many files were created in each span between consecutive
    /// `bounds` (ascending creation times): `bounds.len() - 1` counts.
    async fn age_histogram(&self, bounds: Vec<i64>) -> Result<Vec<u64>, IndexError>;

    /// How many live files each epoch's key seals (epoch end, files),
    /// earliest epoch first; plaintext files are not counted. A walk over
    /// every file, for operators' occasional use (`upslot stats`).
    async fn sealed_counts(&self) -> Result<Vec<(i64, u64)>, IndexError>;

    /// Whether the index can be read and written, for `/health`.
    async fn check(&self) -> Result<(), IndexError>;
}

/// One upload's claim on quota, from when its PUT is accepted until its
/// file is recorded or the upload fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReservationId(pub i64);

/// How long a reservation lives without renewal in a shared index (a
/// replica that dies mid-upload cannot release its own).
pub const RESERVATION_TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// Quota usage, kept beside the records it counts: every insert adds the
/// file's size to its owner's stored bytes and to the minute its upload
/// began in (`crate::quota`), every removal subtracts it from the stored
/// bytes, in the same transaction as the row. Uploads in progress hold
/// reservations, which count as usage until released.
#[async_trait]
pub trait QuotaLedger: Send + Sync + 'static {
    /// Atomically measures the usage of `owner` (if any) and in total at
    /// `now`, committed files and live reservations together, checks
    /// `size` more bytes against `limits`, and when they fit records a
    /// reservation of them charged to `now`'s minute. Of reservations
    /// racing, in one process or several sharing the index, each sees the
    /// ones before it.
    async fn reserve(
        &self,
        owner: Option<OwnerKey>,
        size: u64,
        limits: Limits,
        now: i64,
    ) -> Result<Result<ReservationId, Refusal>, IndexError>;

    /// Keeps reservation `id` alive for another [`RESERVATION_TTL`].
    async fn renew(&self, id: ReservationId) -> Result<(), IndexError>;

    /// Drops reservation `id` (its upload failed).
    async fn unreserve(&self, id: ReservationId) -> Result<(), IndexError>;

    /// [`Index::insert`] of the upload that reservation `id` held bytes
    /// for, which drops the reservation whatever the outcome (a recorded
    /// file carries its bytes from then on); at once, where the store can
    /// (PostgreSQL: in the insert's statement), else right after.
    async fn insert_reserved(
        &self,
        key: SlotKey,
        record: FileRecord,
        id: ReservationId,
    ) -> Result<Inserted, IndexError>;

    /// What `owner` uses at `now`, reservations included.
    async fn usage(&self, owner: OwnerKey, now: i64) -> Result<OwnerUsage, IndexError>;

    /// Forgets the upload history of `owner` (its account was erased).
    async fn forget_owner(&self, owner: OwnerKey) -> Result<(), IndexError>;

    /// Forgets up to `limit` upload-history minutes that stopped counting
    /// before `before`; returns how many.
    async fn forget_uploads(&self, before: i64, limit: usize) -> Result<usize, IndexError>;
}

/// Named leases with one holder at a time, for an index that several
/// processes share: replicas take the sweeper lease so that one of them
/// sweeps at a time. An index that only one process can open (redb locks
/// its file) has no leases; its one process always sweeps.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Tries to hold the lease `name` for `holder` for `ttl` from now:
    /// takes it when free or expired, renews it when `holder` already has
    /// it; `false` when another holder has it.
    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, IndexError>;

    /// Gives the lease `name` up if `holder` has it (so another replica can
    /// take it at once).
    async fn release(&self, name: &str, holder: &str) -> Result<(), IndexError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::BareJid;

    #[test]
    fn keys_depend_on_the_index_key_and_input() {
        let a = IndexKey::new([1; 32]);
        let b = IndexKey::new([2; 32]);
        let path = SlotPath::from_wire("abc/photo.jpg").unwrap();
        let other = SlotPath::from_wire("abc/photo2.jpg").unwrap();
        assert_eq!(a.slot(&path), a.slot(&path));
        assert_ne!(a.slot(&path), b.slot(&path));
        assert_ne!(a.slot(&path), a.slot(&other));
    }

    #[test]
    fn jid_and_ejabberd_hash_give_one_owner() {
        let key = IndexKey::new([7; 32]);
        // sha1("romeo@montague.tld")
        let jid = Uploader::Jid(BareJid::of("romeo@montague.tld"));
        use sha1::Digest as _;
        let hex = hex::encode(sha1::Sha1::digest(b"romeo@montague.tld"));
        assert_eq!(
            key.owner(&jid),
            key.owner(&Uploader::Sha1Hex(hex.to_uppercase()))
        );
        assert_ne!(
            key.owner(&jid),
            key.owner(&Uploader::Jid(BareJid::of("juliet@capulet.lit")))
        );
    }
}
