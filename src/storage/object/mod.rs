//! Blobs in an object store (S3 and compatible servers; GCS and Azure
//! through the same code) by way of the `object_store` crate.
//!
//! Keys are `[<prefix>/]<YYYY-MM-DD>/<uuid>`, so a day is a key prefix the
//! backstop can list and delete without the index.
//!
//! Uploads ([`write`]) go in parts of `part_size` bytes, several at once,
//! and become visible only when complete; downloads ([`read`]) are ranged
//! `GET`s, a long range read as several at once. The buffers both need
//! come from one [`PartBudget`] per store, so memory stays bounded
//! whatever the number of transfers. Deletes go in bulk (`DeleteObjects`,
//! up to 1,000 keys per request on S3).

mod budget;
mod connect;
mod presign;
mod read;
mod write;

use std::collections::HashSet;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt as _};

use self::budget::PartBudget;
use self::read::Source;
use self::write::ObjectWriter;

pub use self::presign::ObjectPresigner;
use super::{BlobMeta, BlobName, BlobStore, BlobStream, BlobWriter, StorageError, is_day};
use crate::config::{MIN_PART_SIZE, S3Config};

/// Keys per bulk delete request (S3's DeleteObjects takes at most 1,000).
const DELETE_BATCH: usize = 1000;

/// How an [`ObjectBlobStore`] moves bytes (`[storage.s3]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfers {
    /// Size of upload parts and of the pieces long downloads are read in;
    /// raised to [`MIN_PART_SIZE`] if smaller.
    pub part_size: u64,
    /// Memory all transfers together may hold in buffers; raised to one
    /// part if smaller.
    pub buffer_memory: u64,
    /// Parts one upload sends, or one download fetches, at once.
    pub parts_in_flight: usize,
}

impl Transfers {
    /// The settings of `config`.
    pub fn of(config: &S3Config) -> Transfers {
        Transfers {
            part_size: config.part_size.0,
            buffer_memory: config.buffer_memory.0,
            parts_in_flight: config.parts_in_flight,
        }
    }
}

/// A [`BlobStore`] in a bucket.
#[derive(Debug, Clone)]
pub struct ObjectBlobStore {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    prefix: Option<Path>,
    part_size: u64,
    parts_in_flight: usize,
    budget: Arc<PartBudget>,
}

impl ObjectBlobStore {
    /// Wraps `store`. Keys go below `prefix` (empty: the bucket's root);
    /// bytes move as `transfers` says. With a `signer`, downloads can be
    /// answered with presigned URLs.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        prefix: &str,
        transfers: Transfers,
    ) -> ObjectBlobStore {
        let prefix = prefix.trim_matches('/');
        let part_size = transfers.part_size.max(MIN_PART_SIZE);
        let buffer_size = usize::try_from(part_size).unwrap_or(usize::MAX);
        ObjectBlobStore {
            store,
            signer,
            prefix: (!prefix.is_empty()).then(|| Path::from(prefix)),
            part_size,
            parts_in_flight: transfers.parts_in_flight.max(1),
            budget: Arc::new(PartBudget::new(transfers.buffer_memory, buffer_size)),
        }
    }

    /// The presigner of this store's objects, if it can sign URLs (S3).
    pub fn presigner(&self) -> Option<ObjectPresigner> {
        self.signer.as_ref().map(|signer| ObjectPresigner {
            signer: Arc::clone(signer),
            prefix: self.prefix.clone(),
        })
    }

    fn path(&self, name: &BlobName) -> Path {
        self.under(name.key())
    }

    fn under(&self, relative: &str) -> Path {
        key(self.prefix.as_ref(), relative)
    }

    /// Deletes the objects at `paths`; returns the paths that are gone
    /// (deleted now or already missing) and the first error.
    async fn delete_paths(&self, paths: Vec<Path>) -> (HashSet<Path>, Option<StorageError>) {
        let locations = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.store.delete_stream(locations);
        let mut gone = HashSet::new();
        let mut failure = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(path) => {
                    gone.insert(path);
                }
                Err(object_store::Error::NotFound { path, .. }) => {
                    gone.insert(Path::from(path));
                }
                Err(error) => {
                    failure.get_or_insert(storage_error(error));
                }
            }
        }
        (gone, failure)
    }
}

/// The object key of `relative` below `prefix`.
fn key(prefix: Option<&Path>, relative: &str) -> Path {
    match prefix {
        Some(prefix) => Path::from(format!("{prefix}/{relative}")),
        None => Path::from(relative),
    }
}

/// Maps an `object_store` error: missing objects are [`StorageError::NotFound`],
/// everything else means the store is unavailable (503).
fn storage_error(error: object_store::Error) -> StorageError {
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Unavailable(io::Error::other(other)),
    }
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn create(
        &self,
        name: &BlobName,
        size: u64,
        meta: &BlobMeta,
    ) -> Result<Box<dyn BlobWriter>, StorageError> {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, meta.content_type.clone().into());
        attributes.insert(
            Attribute::CacheControl,
            format!("max-age={}", meta.max_age).into(),
        );
        Ok(Box::new(ObjectWriter::new(
            Arc::clone(&self.store),
            self.path(name),
            attributes,
            Arc::clone(&self.budget),
            self.parts_in_flight,
            size,
        )))
    }

    async fn read(&self, name: &BlobName, range: Range<u64>) -> Result<BlobStream, StorageError> {
        let path = self.path(name);
        if range.is_empty() {
            // A zero-length range cannot be asked for; the object must still exist.
            self.store.head(&path).await.map_err(storage_error)?;
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let source = Source {
            store: Arc::clone(&self.store),
            path,
            budget: Arc::clone(&self.budget),
            part_size: self.part_size,
            parts_in_flight: self.parts_in_flight,
        };
        source.read(range).await
    }

    async fn delete(&self, name: &BlobName) -> Result<(), StorageError> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(storage_error(error)),
        }
    }

    async fn delete_many(&self, names: &[BlobName]) -> Vec<Result<(), StorageError>> {
        let paths: Vec<Path> = names.iter().map(|name| self.path(name)).collect();
        let (gone, failure) = self.delete_paths(paths.clone()).await;
        let failure = failure.map(|error| error.to_string());
        paths
            .iter()
            .map(|path| {
                if gone.contains(path) {
                    Ok(())
                } else {
                    let message = failure.as_deref().unwrap_or("the store did not delete it");
                    Err(StorageError::Unavailable(io::Error::other(
                        message.to_string(),
                    )))
                }
            })
            .collect()
    }

    async fn check(&self) -> Result<(), StorageError> {
        // A listing fails when the bucket is missing or the credentials are
        // wrong, unlike a HEAD of a missing object.
        self.store
            .list_with_delimiter(self.prefix.as_ref())
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    async fn days(&self) -> Result<Vec<String>, StorageError> {
        let listing = self
            .store
            .list_with_delimiter(self.prefix.as_ref())
            .await
            .map_err(storage_error)?;
        let mut days: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|path| path.filename())
            .filter(|day| is_day(day))
            .map(str::to_string)
            .collect();
        days.sort();
        Ok(days)
    }

    async fn delete_day(&self, day: &str) -> Result<u64, StorageError> {
        if !is_day(day) {
            return Ok(0);
        }
        let prefix = self.under(day);
        let mut pages = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_chunks(DELETE_BATCH);
        let mut deleted = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| storage_error(error.1))?;
            let (gone, failure) = self.delete_paths(page).await;
            deleted += gone.len() as u64;
            if let Some(error) = failure {
                return Err(error);
            }
        }
        Ok(deleted)
    }
}
