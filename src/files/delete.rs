//! Unmaking files: blobs first (in bulk where the store can), then their
//! index rows in one transaction that leaves a tombstone per slot, then the
//! cache forgets them. A row is removed only once its blob is gone, so a
//! crash in between leaves a row whose blob is already deleted; deleting it
//! again succeeds.

use super::{Files, FilesError};
use crate::auth::{BareJid, SlotPath, Uploader};
use crate::index::{FileRecord, Scan, SlotKey};

/// Files deleted per batch when erasing an account.
const ERASE_BATCH: usize = 1000;

impl Files {
    /// Deletes the file at `path` at `now`, leaving a tombstone; `false`
    /// when there was none.
    pub async fn delete_one(&self, path: &SlotPath, now: i64) -> Result<bool, FilesError> {
        let key = self.key.slot(path);
        let deleted = match self.index.get(key).await? {
            Some(record) => self.delete_batch(vec![(key, record)], now).await?.0 > 0,
            None => false,
        };
        self.cache.forget(key).await;
        Ok(deleted)
    }

    /// Deletes the files of `batch` at `now`; returns the files and bytes
    /// deleted. On a storage error, the files whose blobs are gone are
    /// still removed from the index before the error is returned.
    pub async fn delete_batch(
        &self,
        batch: Vec<(SlotKey, FileRecord)>,
        now: i64,
    ) -> Result<(u64, u64), FilesError> {
        let names: Vec<_> = batch
            .iter()
            .map(|(_, record)| record.blob.clone())
            .collect();
        let outcomes = self.blobs.delete_many(&names).await;
        let mut gone = Vec::with_capacity(outcomes.len());
        let mut failure = None;
        for ((key, _), outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(()) => gone.push(*key),
                Err(error) => failure = Some(error),
            }
        }
        let (mut files, mut bytes) = (0, 0);
        for (key, record) in self.index.remove(&gone, now).await? {
            self.cache.forget(key).await;
            files += 1;
            bytes += record.size;
        }
        match failure {
            Some(error) => Err(error.into()),
            None => Ok((files, bytes)),
        }
    }

    /// Deletes every file uploaded by `jid` at `now`, whatever its
    /// retention; returns how many.
    ///
    /// Files know their uploader only as a keyed pseudonym: of the JWT
    /// `sub` for Prosody's mod_http_file_share, of the `sha1(user@host)`
    /// path segment for ejabberd. Prosody's mod_http_upload_external
    /// (v1/v2) and Metronome slots name no uploader.
    pub async fn erase_owner(&self, jid: &BareJid, now: i64) -> Result<u64, FilesError> {
        let owner = self.key.owner(&Uploader::Jid(jid.clone()));
        let mut total = 0;
        loop {
            let batch = self.index.scan(Scan::OwnedBy(owner), ERASE_BATCH).await?;
            let full = batch.len() == ERASE_BATCH;
            total += self.delete_batch(batch, now).await?.0;
            if !full {
                self.forget_owner_history(owner).await?;
                return Ok(total);
            }
        }
    }
}
