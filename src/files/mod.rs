//! The data layer: the one place that knows how a stored file is made and
//! unmade. A file is a blob (its bytes, under a random name) and an index
//! record (keyed by `HMAC(index_key, path)`); this module keeps the two in
//! step and owns the cache of recent lookups:
//!
//! - [`Files::lookup`]: record through the cache, then the retention rules
//!   (an expired file is never served, swept or not);
//! - [`Files::begin_upload`] / [`Files::finish_upload`]: blob first, made
//!   durable, then the row (atomic: one winner per slot; losers' blobs are
//!   deleted); the blob is sealed under a fresh data key on its way to the
//!   store unless encryption is off ([`crate::encryption`]);
//! - [`Files::read`]: a plaintext range, decrypting only the segments it
//!   touches;
//! - [`Files::delete_one`], [`Files::delete_batch`], [`Files::erase_owner`]:
//!   blob first, then the row with a tombstone, then forget the cache, so a
//!   row never outlives its blob's promise to be gone;
//! - the sweeper's queries (`maintenance`): what is due, tombstones, whole
//!   days for the backstop, totals, and epoch keys due for destruction.
//!
//! Handlers, the sweeper and erasure call it; nothing else touches the
//! index and the blob store together, and nothing else invalidates the
//! cache.

mod cache;
mod delete;
mod maintenance;
mod quota;
mod upload;

use std::ops::Range;
use std::sync::Arc;

use self::cache::LookupCache;
use crate::auth::SlotPath;
use crate::encryption::keyring::KeyringError;
use crate::encryption::{Encryption, EncryptionError, format};
use crate::index::{FileRecord, Index, IndexError, IndexKey};
use crate::retention::Retention;
use crate::storage::{AbandonedUploads, BlobStore, BlobStream, StorageError};

pub use maintenance::{OVERDUE_COUNT_LIMIT, Overdue};
pub use quota::{Access, Quotas};
pub use upload::{NewFile, Upload};

/// Why a data-layer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// Blob storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A completed file already holds the slot.
    #[error("this slot already holds a file")]
    Taken,
    /// The slot held a file that has been deleted; slot URLs are single-use.
    #[error("this slot was used and its file has been deleted")]
    Used,
    /// Sealing or opening failed (keyring unreachable, key material).
    #[error("encryption: {0}")]
    Encryption(#[from] EncryptionError),
    /// The file's epoch key is gone: it can never be read again.
    #[error("the file's key has been destroyed")]
    Shredded,
    /// The stored bytes failed authentication before any was served.
    #[error("a stored file failed authentication")]
    Tampered,
    /// The upload does not fit a quota.
    #[error("quota: {}", .0.kind())]
    Quota(crate::quota::Refusal),
}

impl From<KeyringError> for FilesError {
    fn from(error: KeyringError) -> Self {
        FilesError::Encryption(error.into())
    }
}

/// A file that is still served.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// What the index knows of it.
    pub record: Arc<FileRecord>,
    /// Seconds it is still served (at least one).
    pub remaining: u64,
}

/// Stored files: blobs, their index and the retention rules.
pub struct Files {
    blobs: Arc<dyn BlobStore>,
    abandoned: Option<Arc<dyn AbandonedUploads>>,
    index: Arc<dyn Index>,
    key: IndexKey,
    retention: Retention,
    encryption: Encryption,
    quotas: Quotas,
    cache: LookupCache,
}

impl Files {
    /// Files in `blobs` (whose interrupted uploads `abandoned` can find, if
    /// the store leaves any), recorded in `index` under hashes keyed by
    /// `key`, kept as `retention` says, sealed and opened by `encryption`,
    /// uploads limited by `quotas`.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        abandoned: Option<Arc<dyn AbandonedUploads>>,
        index: Arc<dyn Index>,
        key: IndexKey,
        retention: Retention,
        encryption: Encryption,
        quotas: Quotas,
    ) -> Files {
        Files {
            blobs,
            abandoned,
            index,
            key,
            retention,
            encryption,
            quotas,
            cache: LookupCache::new(),
        }
    }

    /// Encryption at rest: epochs, their destruction, metrics.
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// The retention rules files are kept by.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// The key of index hashes and owner pseudonyms.
    pub fn index_key(&self) -> &IndexKey {
        &self.key
    }

    /// The file at `path` if it is still served at `now`.
    pub async fn lookup(&self, path: &SlotPath, now: i64) -> Result<Option<LiveFile>, FilesError> {
        let key = self.key.slot(path);
        let Some(record) = self.cache.lookup(self.index.as_ref(), key).await? else {
            return Ok(None);
        };
        Ok(self
            .retention
            .remaining(&record, now)
            .map(|remaining| LiveFile { record, remaining }))
    }

    /// Streams the plaintext bytes `range` (non-empty, checked against its
    /// size by the caller) of the file `record` at `now`. A record whose
    /// blob is missing is [`StorageError::NotFound`]; a sealed file whose
    /// epoch key is gone is [`FilesError::Shredded`]; a sealed blob whose
    /// first segment fails authentication is [`FilesError::Tampered`], and
    /// a later segment that fails ends the stream with an error before any
    /// of its bytes.
    pub async fn read(
        &self,
        record: &FileRecord,
        range: Range<u64>,
        now: i64,
    ) -> Result<BlobStream, FilesError> {
        let Some(sealing) = &record.sealing else {
            return self.read_blob(record, range).await;
        };
        let Some(key) = self.encryption.data_key(sealing, &record.blob, now).await? else {
            return Err(FilesError::Shredded);
        };
        let span = format::span(record.size, range);
        let sealed = match self.read_blob(record, span.sealed.clone()).await {
            // Shorter than the record says: cut, as a tampered blob is.
            Err(FilesError::Storage(StorageError::Unavailable(error)))
                if error.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                self.encryption.count_failure();
                tracing::error!("a stored file is shorter than its record says");
                return Err(FilesError::Tampered);
            }
            other => other?,
        };
        self.encryption
            .open(sealed, &key, record.size, span)
            .await
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::InvalidData => FilesError::Tampered,
                _ => FilesError::Storage(StorageError::Unavailable(error)),
            })
    }

    /// Fails with [`FilesError::Shredded`] when `record` is sealed and its
    /// key is gone at `now`, for answers that send no bytes (HEAD, 304),
    /// so that they agree with what a GET would find.
    pub async fn ensure_readable(&self, record: &FileRecord, now: i64) -> Result<(), FilesError> {
        let Some(sealing) = &record.sealing else {
            return Ok(());
        };
        match self.encryption.data_key(sealing, &record.blob, now).await? {
            Some(_) => Ok(()),
            None => Err(FilesError::Shredded),
        }
    }

    async fn read_blob(
        &self,
        record: &FileRecord,
        range: Range<u64>,
    ) -> Result<BlobStream, FilesError> {
        self.blobs.read(&record.blob, range).await.map_err(|error| {
            if matches!(error, StorageError::NotFound) {
                tracing::warn!("index entry without a blob");
            }
            FilesError::Storage(error)
        })
    }

    /// Whether blob storage and the index answer, for `/health`.
    pub async fn check(&self) -> (Result<(), StorageError>, Result<(), IndexError>) {
        (self.blobs.check().await, self.index.check().await)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::encryption::EncryptionSettings;
    use crate::encryption::keyring::DirKeyring;
    use crate::index::embedded::EmbeddedIndex;
    use crate::storage::disk::DiskStore;

    /// Seconds files are kept in [`fixture`].
    pub(crate) const KEEP: i64 = 100;
    /// The ceiling in [`fixture`].
    pub(crate) const MAX: i64 = 200;

    /// Files on disk with an embedded index in a temporary directory, kept
    /// [`KEEP`] seconds (ceiling [`MAX`], sweeps every 10 s).
    pub(crate) struct Fixture {
        pub(crate) files: Files,
        pub(crate) index: EmbeddedIndex,
        pub(crate) blobs: Arc<DiskStore>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        /// The temporary directory holding the blobs, index and keyring.
        pub(crate) fn dir(&self) -> &std::path::Path {
            self._dir.path()
        }
    }

    pub(crate) fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
        let blobs = Arc::new(DiskStore::open(dir.path(), 0).unwrap());
        let retention = retention();
        let files = Files::new(
            Arc::clone(&blobs) as _,
            Some(Arc::clone(&blobs) as _),
            Arc::new(index.clone()),
            IndexKey::new([0; 32]),
            retention,
            encryption(dir.path(), true),
            Quotas::new(Arc::new(index.clone()), crate::quota::Limits::default()),
        );
        Fixture {
            files,
            index,
            blobs,
            _dir: dir,
        }
    }

    /// Files kept [`KEEP`] seconds (ceiling [`MAX`], sweeps every 10 s).
    fn retention() -> Retention {
        Retention {
            keep: Duration::from_secs(KEEP as u64),
            max: Duration::from_secs(MAX as u64),
            sweep_every: Duration::from_secs(10),
            tombstone_horizon: Duration::from_secs(KEEP as u64),
        }
    }

    /// Encryption with epoch keys under `dir/keys/epochs` and 10-second
    /// epochs, sealing new files if `seal_new`.
    pub(crate) fn encryption(dir: &std::path::Path, seal_new: bool) -> Encryption {
        let keyring = DirKeyring::open(&dir.join("keys/epochs")).unwrap();
        Encryption::new(
            Arc::new(keyring),
            EncryptionSettings {
                seal_new,
                epoch: 10,
            },
        )
    }

    /// A slot key for tests: `n` in its first eight bytes (so keys sort as
    /// their numbers do).
    pub(crate) fn key(n: u64) -> crate::index::SlotKey {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        crate::index::SlotKey(key)
    }

    /// A 3-byte text file's record, created and expiring at the given times.
    pub(crate) fn record(created: i64, expires_at: i64) -> FileRecord {
        FileRecord {
            blob: crate::storage::BlobName::new(created),
            size: 3,
            content_type: "text/plain".into(),
            created,
            expires_at,
            owner: None,
            sealing: None,
        }
    }

    /// A slot path for tests, `slot<n>/file.txt`.
    pub(crate) fn path(n: u64) -> SlotPath {
        SlotPath::from_wire(&format!("slot{n}/file.txt")).unwrap()
    }

    /// Uploads `abc` to `path(n)` at `now` through the data layer.
    pub(crate) async fn upload(files: &Files, n: u64, now: i64) -> Result<(), FilesError> {
        let file = NewFile {
            size: 3,
            content_type: "text/plain".into(),
            expires: None,
            owner: None,
        };
        let mut upload = files.begin_upload(&path(n), file, now).await?;
        upload.write(bytes::Bytes::from_static(b"abc")).await?;
        files.finish_upload(upload).await
    }

    #[tokio::test]
    async fn a_file_is_served_until_its_time_and_never_after() {
        let f = fixture();
        upload(&f.files, 1, 1000).await.unwrap();
        let live = f.files.lookup(&path(1), 1000 + KEEP - 1).await.unwrap();
        assert_eq!(live.map(|live| live.remaining), Some(1));
        assert!(
            f.files
                .lookup(&path(1), 1000 + KEEP)
                .await
                .unwrap()
                .is_none()
        );
        assert!(f.files.lookup(&path(2), 1000).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_slot_takes_one_file_and_stays_used_once_deleted() {
        let f = fixture();
        upload(&f.files, 1, 1000).await.unwrap();
        assert!(matches!(
            upload(&f.files, 1, 1001).await,
            Err(FilesError::Taken)
        ));
        // Cached as found, then deleted: the cache must not keep serving it.
        assert!(f.files.lookup(&path(1), 1001).await.unwrap().is_some());
        assert!(f.files.delete_one(&path(1), 1002).await.unwrap());
        assert!(f.files.lookup(&path(1), 1002).await.unwrap().is_none());
        assert!(matches!(
            upload(&f.files, 1, 1003).await,
            Err(FilesError::Used)
        ));
        assert!(!f.files.delete_one(&path(1), 1004).await.unwrap());
        // Cached as missing, then uploaded: found at once.
        assert!(f.files.lookup(&path(2), 1005).await.unwrap().is_none());
        upload(&f.files, 2, 1005).await.unwrap();
        assert!(f.files.lookup(&path(2), 1005).await.unwrap().is_some());
    }

    async fn read_all(files: &Files, n: u64, range: Range<u64>, now: i64) -> Vec<u8> {
        use futures_util::StreamExt as _;
        let live = files.lookup(&path(n), now).await.unwrap().unwrap();
        let mut stream = files.read(&live.record, range, now).await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn files_are_sealed_at_rest_and_read_back_in_plaintext() {
        let f = fixture();
        upload(&f.files, 1, 1000).await.unwrap();
        let live = f.files.lookup(&path(1), 1000).await.unwrap().unwrap();
        let sealing = live.record.sealing.clone().unwrap();
        assert_eq!(sealing.epoch, 1100);
        assert_eq!(read_all(&f.files, 1, 0..3, 1000).await, b"abc");
        assert_eq!(read_all(&f.files, 1, 1..2, 1000).await, b"b");
        // On disk: 3 bytes of ciphertext and a tag, nothing readable.
        let mut blob = f.blobs.read(&live.record.blob, 0..19).await.unwrap();
        use futures_util::StreamExt as _;
        let mut stored = Vec::new();
        while let Some(chunk) = blob.next().await {
            stored.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(stored.len(), 19);
        assert!(!stored.windows(3).any(|w| w == b"abc"));
        // Once the epoch key is due for destruction, the file is shredded.
        assert!(matches!(
            f.files.read(&live.record, 0..3, 1110).await,
            Err(FilesError::Shredded)
        ));
    }

    #[tokio::test]
    async fn plaintext_files_stay_readable_beside_sealed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
        let blobs = Arc::new(DiskStore::open(dir.path(), 0).unwrap());
        let retention = retention();
        let open = |seal_new| {
            Files::new(
                Arc::clone(&blobs) as _,
                None,
                Arc::new(index.clone()),
                IndexKey::new([0; 32]),
                retention,
                encryption(dir.path(), seal_new),
                Quotas::new(Arc::new(index.clone()), crate::quota::Limits::default()),
            )
        };
        let plain = open(false);
        upload(&plain, 1, 1000).await.unwrap();
        assert!(
            plain
                .lookup(&path(1), 1000)
                .await
                .unwrap()
                .unwrap()
                .record
                .sealing
                .is_none()
        );
        let sealed = open(true);
        upload(&sealed, 2, 1000).await.unwrap();
        for files in [&plain, &sealed] {
            assert_eq!(read_all(files, 1, 0..3, 1001).await, b"abc");
            assert_eq!(read_all(files, 2, 0..3, 1001).await, b"abc");
        }
    }
}
