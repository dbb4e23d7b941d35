//! Making a file: the blob is written and made durable first, then the
//! index row is inserted (atomically: of uploads racing for one slot,
//! exactly one wins, and the losers' blobs are deleted). A failure at any
//! point drops the blob writer, which removes the partial blob, and the
//! quota reservation, which gives its bytes back. Unless
//! encryption is off, the blob is sealed on its way to the store, and the
//! row keeps the data key wrapped under the file's epoch key.

use bytes::Bytes;

use super::quota::Reservation;
use super::{Files, FilesError};
use crate::auth::{SlotPath, Uploader};
use crate::encryption::{Encryption, sealed_size};
use crate::index::{FileRecord, Inserted, SlotKey};
use crate::storage::{BlobMeta, BlobName, BlobWriter};

/// What an upload will store.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// The exact size in bytes.
    pub size: u64,
    /// The type to store and serve.
    pub content_type: String,
    /// When the token says the file must be gone, if it does.
    pub expires: Option<i64>,
    /// Who uploads it, if the slot says.
    pub owner: Option<Uploader>,
}

/// An upload in progress: its blob is being written, no row exists yet.
/// Dropping it leaves nothing behind.
pub struct Upload {
    key: SlotKey,
    record: FileRecord,
    writer: Box<dyn BlobWriter>,
    reservation: Option<Reservation>,
}

impl Upload {
    /// Appends `chunk` to the blob (and keeps the quota reservation alive).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), FilesError> {
        if let Some(reservation) = &mut self.reservation {
            reservation.keep_alive().await?;
        }
        Ok(self.writer.write(chunk).await?)
    }
}

impl Files {
    /// Starts storing `file` at `path`, uploaded at `now`: refuses a slot
    /// that holds a file ([`FilesError::Taken`]) or held one
    /// ([`FilesError::Used`]), a file over a quota ([`FilesError::Quota`])
    /// and a file that cannot fit ([`StorageError::Full`]), before any byte
    /// is read.
    ///
    /// Racing uploads are not refused here: the first to finish wins (a
    /// retry after a dropped connection must not wait for the server to
    /// notice the old one).
    pub async fn begin_upload(
        &self,
        path: &SlotPath,
        file: NewFile,
        now: i64,
    ) -> Result<Upload, FilesError> {
        let key = self.key.slot(path);
        if self.index.get(key).await?.is_some() {
            return Err(FilesError::Taken);
        }
        if self.index.tombstone(key).await?.is_some() {
            return Err(FilesError::Used);
        }
        let owner = file.owner.as_ref().map(|owner| self.key.owner(owner));
        let reservation = self.quotas.reserve(owner, file.size, now).await?;
        let expires_at = self.retention.expires_at(now, file.expires);
        let blob = BlobName::new(now);
        let meta = BlobMeta {
            content_type: file.content_type.clone(),
            max_age: u64::try_from(expires_at.saturating_sub(now)).unwrap_or(0),
        };
        let sealed = self.encryption.seal(&blob, now, expires_at).await?;
        let (writer, sealing) = match sealed {
            Some((sealing, key)) => {
                let inner = self
                    .blobs
                    .create(&blob, sealed_size(file.size), &meta)
                    .await?;
                (Encryption::writer(inner, &key, file.size), Some(sealing))
            }
            None => (self.blobs.create(&blob, file.size, &meta).await?, None),
        };
        let record = FileRecord {
            blob,
            size: file.size,
            content_type: file.content_type,
            created: now,
            expires_at,
            owner,
            sealing,
        };
        Ok(Upload {
            key,
            record,
            writer,
            reservation,
        })
    }

    /// Makes `upload` (all of whose bytes were written) durable, then
    /// visible.
    pub async fn finish_upload(&self, upload: Upload) -> Result<(), FilesError> {
        let Upload {
            key,
            record,
            writer,
            reservation,
        } = upload;
        writer.commit().await?;
        let blob = record.blob.clone();
        let inserted = match reservation {
            Some(reservation) => reservation.insert(key, record).await,
            None => self.index.insert(key, record).await,
        };
        if !matches!(inserted, Ok(Inserted::Created))
            && let Err(error) = self.blobs.delete(&blob).await
        {
            tracing::error!(%error, "could not delete the blob of a refused upload");
        }
        match inserted? {
            Inserted::Created => {
                self.cache.forget(key).await;
                Ok(())
            }
            Inserted::Exists => Err(FilesError::Taken),
            Inserted::Gone => Err(FilesError::Used),
        }
    }
}
