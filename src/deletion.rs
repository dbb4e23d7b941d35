//! Deleting files: blobs first (in bulk where the store can), then their index rows in
//! one transaction that leaves a tombstone per slot. Used by the sweeper
//! and by account erasure.
//!
//! A row is removed only once its blob is gone, so a crash in between
//! leaves a row whose blob is already deleted; deleting it again succeeds.

use crate::app::App;
use crate::index::{FileRecord, IndexError, SlotKey};
use crate::storage::StorageError;

/// Why a deletion stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// Blob storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Deletes the files of `batch` at Unix time `now`; returns the files and
/// bytes deleted. On a storage error, the files whose blobs are gone are
/// still removed from the index before the error is returned.
pub async fn delete_files(
    app: &App,
    batch: Vec<(SlotKey, FileRecord)>,
    now: i64,
) -> Result<(u64, u64), DeletionError> {
    let names: Vec<_> = batch
        .iter()
        .map(|(_, record)| record.blob.clone())
        .collect();
    let outcomes = app.blobs.delete_many(&names).await;
    let mut gone = Vec::with_capacity(outcomes.len());
    let mut failure = None;
    for ((key, _), outcome) in batch.iter().zip(outcomes) {
        match outcome {
            Ok(()) => gone.push(*key),
            Err(error) => failure = Some(error),
        }
    }
    let (mut files, mut bytes) = (0, 0);
    for (key, record) in app.index.remove(&gone, now).await? {
        app.forget(key).await;
        files += 1;
        bytes += record.size;
    }
    match failure {
        Some(error) => Err(error.into()),
        None => Ok((files, bytes)),
    }
}
