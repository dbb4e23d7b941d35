//! Uploads to an object store.
//!
//! A blob no larger than one part is buffered and sent as one `PUT`, which
//! the store applies atomically. A larger blob is a multipart upload: the
//! body fills part buffers from the shared [`PartBudget`], and each full
//! part is sent while the next one fills, up to `parts_in_flight` parts at
//! once. When the budget is spent, the upload waits for room before it
//! reads on, so memory stays bounded however many uploads run.
//!
//! Nothing is visible under the key until `CompleteMultipartUpload`; a
//! writer dropped before its commit (client gone, error, shutdown) aborts
//! the upload. A process killed outright cannot abort: its parts stay
//! invisible but stored until the bucket's `AbortIncompleteMultipartUpload`
//! lifecycle rule removes them (README), since `object_store` offers no way
//! to list incomplete uploads.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attributes, MultipartUpload, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
};
use tokio::task::JoinHandle;

use super::budget::{PartBudget, PartBuffer};
use super::storage_error;
use crate::storage::{BlobWriter, StorageError};

/// How long one part upload (or a single-request put) may take before the
/// upload fails with 503.
const PART_TIMEOUT: Duration = Duration::from_secs(300);

/// A part on its way to the store.
type Sending = JoinHandle<Result<(), StorageError>>;

/// An upload to an object store (see the module documentation).
pub(super) struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// Type and caching, served by a CDN fetching the object directly.
    attributes: Attributes,
    budget: Arc<PartBudget>,
    parts_in_flight: usize,
    /// Bytes announced but not yet buffered.
    remaining: u64,
    /// The part being filled; taken from the budget at its first byte.
    buffer: Option<PartBuffer>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<Sending>,
}

impl ObjectWriter {
    /// An upload of `size` bytes to `path`.
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        attributes: Attributes,
        budget: Arc<PartBudget>,
        parts_in_flight: usize,
        size: u64,
    ) -> ObjectWriter {
        ObjectWriter {
            store,
            path,
            attributes,
            budget,
            parts_in_flight: parts_in_flight.max(1),
            remaining: size,
            buffer: None,
            upload: None,
            in_flight: VecDeque::new(),
        }
    }

    /// Waits for the oldest part in flight.
    async fn settle_one(&mut self) -> Result<(), StorageError> {
        match self.in_flight.pop_front() {
            None => Ok(()),
            Some(task) => task
                .await
                .map_err(|e| StorageError::Unavailable(io::Error::other(e)))?,
        }
    }

    /// Sends the buffer as the next part, once fewer than
    /// `parts_in_flight` parts are on their way.
    async fn send_part(&mut self) -> Result<(), StorageError> {
        if self.upload.is_none() {
            let options = PutMultipartOptions {
                attributes: self.attributes.clone(),
                ..PutMultipartOptions::default()
            };
            let upload = timed(self.store.put_multipart_opts(&self.path, options)).await?;
            self.upload = Some(upload);
        }
        // Parts already done are collected first, so that a failure stops
        // the upload at the next part rather than at the end.
        while self.in_flight.len() >= self.parts_in_flight
            || self.in_flight.front().is_some_and(JoinHandle::is_finished)
        {
            self.settle_one().await?;
        }
        let (Some(upload), Some(part)) = (self.upload.as_mut(), self.buffer.take()) else {
            return Ok(());
        };
        let sending = upload.put_part(PutPayload::from(part.freeze()));
        self.in_flight.push_back(tokio::spawn(timed(sending)));
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        if self.upload.is_none() {
            let bytes = self.buffer.take().map(PartBuffer::freeze);
            let options = PutOptions {
                attributes: std::mem::take(&mut self.attributes),
                ..PutOptions::default()
            };
            let payload = PutPayload::from(bytes.unwrap_or_default());
            timed(self.store.put_opts(&self.path, payload, options)).await?;
            return Ok(());
        }
        if self.buffer.as_ref().is_some_and(|part| !part.is_empty()) {
            self.send_part().await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_one().await?;
        }
        if let Some(upload) = self.upload.as_mut() {
            timed(upload.complete()).await?;
        }
        self.upload = None;
        Ok(())
    }
}

/// Runs a store request with the part timeout.
async fn timed<T>(
    request: impl Future<Output = object_store::Result<T>>,
) -> Result<T, StorageError> {
    match tokio::time::timeout(PART_TIMEOUT, request).await {
        Ok(result) => result.map_err(storage_error),
        Err(_) => Err(StorageError::Unavailable(io::Error::new(
            io::ErrorKind::TimedOut,
            "object store request timed out",
        ))),
    }
}

#[async_trait]
impl BlobWriter for ObjectWriter {
    async fn write(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        while !chunk.is_empty() {
            // A full buffer goes out only once more bytes follow, so the
            // last part is always sent by `commit`.
            if self.buffer.as_ref().is_some_and(|part| part.room() == 0) {
                self.send_part().await?;
            }
            let part = match &mut self.buffer {
                Some(part) => part,
                None => {
                    // Sized for what is announced; more than that (which the
                    // upload handler refuses anyway) gets whole parts.
                    let wanted = match usize::try_from(self.remaining) {
                        Ok(0) | Err(_) => usize::MAX,
                        Ok(remaining) => remaining,
                    };
                    self.buffer.insert(self.budget.buffer(wanted).await)
                }
            };
            let taken = part.fill(&chunk);
            self.remaining = self.remaining.saturating_sub(taken as u64);
            let _ = chunk.split_to(taken);
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.finish().await
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Not committed: abort the multipart upload so its parts are freed.
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        let in_flight = std::mem::take(&mut self.in_flight);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for task in in_flight {
                    let _ = task.await;
                }
                if let Err(error) = upload.abort().await {
                    tracing::warn!(%error, "could not abort an unfinished multipart upload");
                }
            });
        }
    }
}
