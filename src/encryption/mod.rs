//! Encryption at rest with crypto-shredding.
//!
//! Every new blob is sealed under its own random data key ([`stream`],
//! segment by segment as [`format`] says); the data key is stored only
//! wrapped under the key of the file's *epoch* (the span of
//! `encryption.epoch` in which the file expires, named by its end), in the
//! file's index record ([`Sealing`]). Epoch keys live outside the index, in
//! a [`Keyring`]. When an epoch has ended, every file in it has expired;
//! a little later ([`Encryption::destroy_at`]) the sweeper destroys the
//! epoch's key ([`Encryption::shred`]), and from then on no copy of those
//! blobs or of their index rows, wherever it is kept, can be decrypted.
//!
//! [`Encryption`] is the one place that decides these things; the data
//! layer calls it on upload, read and sweep.

pub mod format;
pub mod keyring;
pub mod keys;
pub mod stream;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use self::format::Span;
use self::keyring::{Keyring, KeyringError};
use self::keys::{DataKey, EpochKey, KeyFault, WrappedKey};
use self::stream::SealingWriter;
use crate::metrics::{Counter, Exposition};
use crate::storage::{BlobName, BlobStream, BlobWriter};

pub use self::format::sealed_size;

/// How a file's blob is sealed, as its index record keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealing {
    /// The end (Unix seconds) of the epoch whose key wraps the data key.
    pub epoch: i64,
    /// The file's data key, wrapped under the epoch key.
    pub wrapped_key: WrappedKey,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The keyring failed.
    #[error("{0}")]
    Keyring(#[from] KeyringError),
    /// Key material could not be made, or a wrapped key did not open.
    #[error("{0}")]
    Key(#[from] KeyFault),
}

/// How new files are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionSettings {
    /// Whether new files are sealed (existing sealed files are always
    /// readable while their epoch lives).
    pub seal_new: bool,
    /// Seconds per epoch (at least one).
    pub epoch: i64,
}

/// The most the destruction of an epoch key waits after the epoch ends:
/// room for replicas' clocks to disagree and for an upload begun just
/// before the end to finish writing its row. Shorter epochs wait one epoch.
pub const MAX_GRACE: i64 = 60;

/// How long after an epoch of `epoch` seconds ends its key is destroyed:
/// one epoch, at most [`MAX_GRACE`]. A file's key therefore outlives the
/// file's expiry by less than `epoch + destruction_grace(epoch)` (its
/// epoch ends less than one epoch after it expires).
pub fn destruction_grace(epoch: i64) -> i64 {
    epoch.min(MAX_GRACE)
}

/// What an epoch's destruction looks like, for `upslot stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochInfo {
    /// When the epoch ends: every file in it has expired by then.
    pub end: i64,
    /// When its key is destroyed.
    pub destroy_at: i64,
}

/// Counters of the encryption layer.
#[derive(Debug, Default)]
struct Metrics {
    destroyed: Counter,
    failures: Arc<Counter>,
    missing: Counter,
}

/// Seals new files, opens stored ones, and destroys epoch keys on time.
pub struct Encryption {
    keyring: Arc<dyn Keyring>,
    settings: EncryptionSettings,
    cache: Mutex<BTreeMap<i64, EpochKey>>,
    metrics: Metrics,
}

impl Encryption {
    /// Epoch keys in `keyring`, new files sealed as `settings` say.
    pub fn new(keyring: Arc<dyn Keyring>, settings: EncryptionSettings) -> Encryption {
        Encryption {
            keyring,
            settings: EncryptionSettings {
                epoch: settings.epoch.max(1),
                ..settings
            },
            cache: Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
        }
    }

    /// Whether new files are sealed.
    pub fn seals_new(&self) -> bool {
        self.settings.seal_new
    }

    /// The end of the epoch of a file expiring at `expires_at`: the first
    /// multiple of the epoch length at or after it.
    pub fn epoch_end(&self, expires_at: i64) -> i64 {
        let len = self.settings.epoch;
        expires_at
            .div_euclid(len)
            .saturating_add(i64::from(expires_at.rem_euclid(len) != 0))
            .saturating_mul(len)
    }

    /// When the key of the epoch ending at `end` is destroyed.
    pub fn destroy_at(&self, end: i64) -> i64 {
        end.saturating_add(destruction_grace(self.settings.epoch))
    }

    /// A data key and its record entry for a new blob `blob`, made at
    /// `now`, that expires at `expires_at`; `None` when new files are
    /// stored in plaintext.
    pub async fn seal(
        &self,
        blob: &BlobName,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<(Sealing, DataKey)>, EncryptionError> {
        if !self.settings.seal_new {
            return Ok(None);
        }
        // Keys past their destruction time leave memory even on a replica
        // that does not sweep.
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|end, _| now < self.destroy_at(*end));
        let epoch = self.epoch_end(expires_at);
        let epoch_key = match self.cached(epoch) {
            Some(key) => key,
            None => {
                let key = self.keyring.get_or_create(epoch).await?;
                self.remember(epoch, &key);
                key
            }
        };
        let data_key = DataKey::random()?;
        let wrapped_key = data_key.wrap(&epoch_key, blob.key())?;
        Ok(Some((Sealing { epoch, wrapped_key }, data_key)))
    }

    /// A writer that seals `size` bytes into `inner` under `key`.
    pub fn writer(inner: Box<dyn BlobWriter>, key: &DataKey, size: u64) -> Box<dyn BlobWriter> {
        Box::new(SealingWriter::new(inner, key, size))
    }

    /// The data key of blob `blob` sealed as `sealing`, at `now`: `None`
    /// when its epoch key is gone (destroyed, due for destruction, or
    /// never seen here), which makes the file unreadable for good.
    ///
    /// A wrapped key that does not open under the epoch's key is gone too:
    /// the key it was wrapped under was lost (a keyring left out of a
    /// restored backup, as the README advises) and a later upload made a
    /// new key for the same epoch, or the record was altered. Either way
    /// the file can never be read; it is counted with the missing keys,
    /// not as a tampered blob.
    pub async fn data_key(
        &self,
        sealing: &Sealing,
        blob: &BlobName,
        now: i64,
    ) -> Result<Option<DataKey>, EncryptionError> {
        let Some(epoch_key) = self.epoch_key(sealing.epoch, now).await? else {
            self.metrics.missing.inc();
            tracing::warn!(epoch = sealing.epoch, "a recorded file's epoch key is gone");
            return Ok(None);
        };
        match DataKey::unwrap(&sealing.wrapped_key, &epoch_key, blob.key()) {
            Ok(key) => Ok(Some(key)),
            Err(_) => {
                self.metrics.missing.inc();
                tracing::warn!(
                    epoch = sealing.epoch,
                    "a recorded file's data key does not open under its epoch's key \
                     (the key it was wrapped under was lost and replaced, or the record was altered)"
                );
                Ok(None)
            }
        }
    }

    /// Counts a stored blob that failed before it could be opened (shorter
    /// than its record).
    pub fn count_failure(&self) {
        self.metrics.failures.inc();
    }

    /// Opens plaintext `span` of a `size`-byte file from its ciphertext.
    pub async fn open(
        &self,
        sealed: BlobStream,
        key: &DataKey,
        size: u64,
        span: Span,
    ) -> Result<BlobStream, std::io::Error> {
        stream::open(sealed, key, size, span, Arc::clone(&self.metrics.failures)).await
    }

    /// Whether the key of the epoch ending at `end` may still be used at
    /// `now`: not once its destruction is due, even if the sweeper has not
    /// got to it yet.
    fn usable(&self, end: i64, now: i64) -> bool {
        now < self.destroy_at(end)
    }

    async fn epoch_key(&self, end: i64, now: i64) -> Result<Option<EpochKey>, KeyringError> {
        if !self.usable(end, now) {
            self.forget(end);
            return Ok(None);
        }
        if let Some(key) = self.cached(end) {
            return Ok(Some(key));
        }
        let key = self.keyring.get(end).await?;
        if let Some(key) = &key {
            self.remember(end, key);
        }
        Ok(key)
    }

    fn cached(&self, end: i64) -> Option<EpochKey> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&end)
            .cloned()
    }

    fn remember(&self, end: i64, key: &EpochKey) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(end, key.clone());
    }

    fn forget(&self, end: i64) {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&end);
    }

    /// Destroys every epoch key whose destruction is due at `now`; returns
    /// the ends of the epochs destroyed.
    pub async fn shred(&self, now: i64) -> Result<Vec<i64>, KeyringError> {
        let mut destroyed = Vec::new();
        for end in self.keyring.epochs().await? {
            if self.usable(end, now) {
                break;
            }
            self.forget(end);
            self.keyring.destroy(end).await?;
            self.metrics.destroyed.inc();
            destroyed.push(end);
        }
        Ok(destroyed)
    }

    /// The epochs whose keys are held, earliest first.
    pub async fn epochs(&self) -> Result<Vec<EpochInfo>, KeyringError> {
        Ok(self
            .keyring
            .epochs()
            .await?
            .into_iter()
            .map(|end| EpochInfo {
                end,
                destroy_at: self.destroy_at(end),
            })
            .collect())
    }

    /// Writes the encryption metrics this process keeps in memory into
    /// `out` (they are there even while the keyring cannot be read).
    pub fn expose_counters(&self, out: &mut Exposition) {
        out.gauge(
            "upslot_encryption_enabled",
            "1 when new files are encrypted at rest.",
            u8::from(self.settings.seal_new),
        );
        out.counter(
            "upslot_encryption_epochs_destroyed_total",
            "Epoch keys destroyed by this process (their files became unreadable everywhere).",
            self.metrics.destroyed.get(),
        );
        out.counter(
            "upslot_encryption_decrypt_failures_total",
            "Stored blobs that failed authentication or ended early (altered, truncated, swapped or corrupt).",
            self.metrics.failures.get(),
        );
        out.counter(
            "upslot_encryption_missing_keys_total",
            "Reads of a recorded file whose key was gone: its epoch key destroyed or lost (answered 404).",
            self.metrics.missing.get(),
        );
    }

    /// Writes the gauges read from the keyring into `out`.
    pub async fn expose_epochs(&self, out: &mut Exposition) -> Result<(), KeyringError> {
        let epochs = self.keyring.epochs().await?;
        out.gauge(
            "upslot_encryption_epochs",
            "Epoch keys held (each one unlocks the files expiring in its epoch).",
            epochs.len(),
        );
        out.gauge(
            "upslot_encryption_oldest_epoch_end_seconds",
            "Unix time at which the oldest held epoch ends (0 when none is held); its key is destroyed shortly after.",
            epochs.first().copied().unwrap_or(0),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::keyring::DirKeyring;
    use super::*;

    fn encryption(dir: &std::path::Path, epoch: i64) -> Encryption {
        let keyring = Arc::new(DirKeyring::open(dir).unwrap());
        Encryption::new(
            keyring,
            EncryptionSettings {
                seal_new: true,
                epoch,
            },
        )
    }

    #[test]
    fn epochs_end_at_or_after_the_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let e = encryption(dir.path(), 86_400);
        assert_eq!(e.epoch_end(86_400), 86_400);
        assert_eq!(e.epoch_end(86_401), 172_800);
        assert_eq!(e.epoch_end(1), 86_400);
        assert_eq!(e.epoch_end(-1), 0);
        assert_eq!(e.destroy_at(86_400), 86_460);
        let short = encryption(dir.path(), 2);
        assert_eq!(short.epoch_end(3), 4);
        assert_eq!(short.destroy_at(4), 6);
    }

    #[tokio::test]
    async fn keys_open_until_their_epoch_is_shredded() {
        let dir = tempfile::tempdir().unwrap();
        let e = encryption(dir.path(), 10);
        let blob = BlobName::new(0);
        let (sealing, key) = e.seal(&blob, 0, 15).await.unwrap().unwrap();
        assert_eq!(sealing.epoch, 20);
        let opened = e.data_key(&sealing, &blob, 25).await.unwrap().unwrap();
        assert_eq!(opened.0.expose(), key.0.expose());
        // Due for destruction: unusable even before the sweeper gets to it.
        assert!(e.data_key(&sealing, &blob, 30).await.unwrap().is_none());
        assert_eq!(e.shred(29).await.unwrap(), Vec::<i64>::new());
        assert_eq!(e.shred(30).await.unwrap(), vec![20]);
        assert!(e.epochs().await.unwrap().is_empty());
        assert!(e.data_key(&sealing, &blob, 25).await.unwrap().is_none());
        let mut out = Exposition::new();
        e.expose_counters(&mut out);
        e.expose_epochs(&mut out).await.unwrap();
        let text = out.finish();
        assert!(
            text.contains("\nupslot_encryption_epochs_destroyed_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nupslot_encryption_missing_keys_total 2\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn plaintext_when_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(DirKeyring::open(dir.path()).unwrap());
        let e = Encryption::new(
            keyring,
            EncryptionSettings {
                seal_new: false,
                epoch: 10,
            },
        );
        assert!(e.seal(&BlobName::new(0), 0, 15).await.unwrap().is_none());
    }
}
