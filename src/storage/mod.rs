//! Blob storage: the bytes of uploaded files under server-made names.
//!
//! A [`BlobStore`] knows nothing of slots, tokens or expiry: it writes a blob
//! so that it appears only when complete ([`BlobWriter::commit`]), reads byte
//! ranges, and deletes. Names are [`BlobName`]s, built in exactly one place
//! from the creation day and a random UUID, so no client text ever reaches
//! a storage path.

pub mod disk;
mod disk_read;
pub mod object;

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;

use crate::time::civil_date;

/// A stream of a blob's bytes.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The blob does not exist.
    #[error("blob not found")]
    NotFound,
    /// No space left (or quota exceeded).
    #[error("storage is full")]
    Full,
    /// The store cannot be reached or refused the operation.
    #[error("storage unavailable: {0}")]
    Unavailable(io::Error),
}

impl From<io::Error> for StorageError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::NotFound => StorageError::NotFound,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StorageError::Full,
            _ => StorageError::Unavailable(error),
        }
    }
}

/// A blob's name: `<YYYY-MM-DD>/<uuid>`, the day it was created and a
/// random id. Only [`BlobName::new`] makes fresh names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobName {
    key: String,
}

impl BlobName {
    /// A fresh random name for a blob created at Unix time `created`.
    pub fn new(created: i64) -> BlobName {
        let (year, month, day) = civil_date(created);
        let id = uuid::Uuid::new_v4().simple();
        BlobName {
            key: format!("{year:04}-{month:02}-{day:02}/{id}"),
        }
    }

    /// Re-reads a name stored by [`BlobName::key`]; `None` unless it has
    /// exactly the shape `new` makes.
    pub fn parse(key: &str) -> Option<BlobName> {
        let (day, id) = key.split_once('/')?;
        let day_ok = is_day(day);
        let id_ok = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (day_ok && id_ok).then(|| BlobName {
            key: key.to_string(),
        })
    }

    /// The storage key, `<day>/<id>`: a relative path on disk, an object
    /// key on S3.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The creation-day prefix, `YYYY-MM-DD`.
    pub fn day(&self) -> &str {
        self.key.split_once('/').map_or("", |(day, _)| day)
    }
}

/// What an object store keeps beside a blob's bytes, so that a CDN or a
/// presigned URL serving it directly sends the right type and never lets a
/// cache keep it past its expiry. Nothing here names the file, the uploader
/// or the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The type to serve.
    pub content_type: String,
    /// Seconds until the file expires: the longest any cache may keep it.
    pub max_age: u64,
}

/// Where blobs live.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing blob `name` of `size` bytes. Nothing is visible under
    /// `name` until [`BlobWriter::commit`] succeeds; a writer dropped before
    /// that leaves nothing behind. Fails with [`StorageError::Full`] at once
    /// when the store knows `size` will not fit.
    async fn create(
        &self,
        name: &BlobName,
        size: u64,
        meta: &BlobMeta,
    ) -> Result<Box<dyn BlobWriter>, StorageError>;

    /// Streams the bytes `range` of blob `name` (the caller has checked the
    /// range against the blob's size).
    async fn read(&self, name: &BlobName, range: Range<u64>) -> Result<BlobStream, StorageError>;

    /// Deletes blob `name`; deleting a missing blob succeeds.
    async fn delete(&self, name: &BlobName) -> Result<(), StorageError>;

    /// Deletes the blobs `names` (missing ones succeed), with one outcome
    /// per name in the same order. Stores with a bulk delete use it; the
    /// default deletes a few at a time.
    async fn delete_many(&self, names: &[BlobName]) -> Vec<Result<(), StorageError>> {
        let mut outcomes = Vec::with_capacity(names.len());
        for group in names.chunks(CONCURRENT_DELETES) {
            let deletes = group.iter().map(|name| self.delete(name));
            outcomes.extend(futures_util::future::join_all(deletes).await);
        }
        outcomes
    }

    /// Whether the store is reachable and writable, for `/health`.
    async fn check(&self) -> Result<(), StorageError>;

    /// The creation-day prefixes (`YYYY-MM-DD`) that hold blobs, for the
    /// backstop that needs no index.
    async fn days(&self) -> Result<Vec<String>, StorageError>;

    /// Deletes every blob under the day prefix `day`; returns how many.
    async fn delete_day(&self, day: &str) -> Result<u64, StorageError>;
}

/// A store that can hand out URLs serving a blob without upslot (S3's
/// presigned URLs), for download offload.
#[async_trait]
pub trait Presign: Send + Sync + 'static {
    /// A URL that serves blob `name` for `ttl`, with the given response
    /// headers (`content-type`, `content-disposition`, `cache-control`)
    /// folded into its signature.
    async fn presign(
        &self,
        name: &BlobName,
        ttl: Duration,
        response_headers: &[(&str, String)],
    ) -> Result<String, StorageError>;
}

/// A store whose interrupted uploads can outlive a crash as leftovers it
/// can find (temporary files on disk). Object stores cannot list their
/// incomplete multipart uploads; a bucket lifecycle rule removes those.
#[async_trait]
pub trait AbandonedUploads: Send + Sync + 'static {
    /// Removes uploads that were started before Unix time `before` and
    /// never completed; returns how many.
    async fn remove_abandoned(&self, before: i64) -> Result<u64, StorageError>;
}

/// Blob deletions in flight at once where a store has no bulk delete.
const CONCURRENT_DELETES: usize = 16;

/// Whether `text` is a day prefix as [`BlobName::new`] writes them.
pub fn is_day(text: &str) -> bool {
    text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// A blob being written.
#[async_trait]
pub trait BlobWriter: Send {
    /// Appends `chunk`.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError>;

    /// Makes the blob durable and visible under its name.
    async fn commit(self: Box<Self>) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_random_and_dated() {
        let a = BlobName::new(1_795_651_200); // 2026-11-26
        let b = BlobName::new(1_795_651_200);
        assert_ne!(a, b);
        assert_eq!(a.day(), "2026-11-26");
        assert_eq!(a.key().len(), 10 + 1 + 32);
        assert_eq!(BlobName::parse(a.key()), Some(a.clone()));
    }

    #[test]
    fn parse_refuses_anything_else() {
        for bad in [
            "",
            "2026-11-26",
            "../etc/passwd",
            "2026-11-26/../../x",
            "2026-11-26/0123456789abcdef0123456789abcdeg",
            "2026-1x-26/0123456789abcdef0123456789abcdef",
            "2026-11-26/0123456789abcdef0123456789abcdef/x",
        ] {
            assert_eq!(BlobName::parse(bad), None, "{bad}");
        }
    }
}
