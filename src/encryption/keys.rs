//! Key material: 32-byte AES-256 keys that never print, are wiped when
//! dropped, and are wrapped (sealed under another key) for storage.
//!
//! A wrapped key is `nonce (12 random bytes) || AES-256-GCM(wrapping key,
//! nonce, key, associated data) (32 bytes) || tag (16 bytes)`: 60 bytes.
//! The associated data binds it to where it belongs (see [`DataKey::wrap`]
//! and [`EpochKey::wrap`]), so a wrapped key moved elsewhere does not open.

use std::sync::{Arc, OnceLock};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::format::NONCE;

/// Bytes of a wrapped key.
pub const WRAPPED: usize = NONCE + 32 + 16;

/// A key, sealed under another.
pub type WrappedKey = [u8; WRAPPED];

/// Why key material could not be made or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFault {
    /// The system has no randomness to give.
    #[error("no randomness available")]
    NoRandomness,
    /// A wrapped key did not open: wrong wrapping key, or altered.
    #[error("a wrapped key does not open")]
    Unwrap,
}

/// 32 secret bytes, wiped on drop, never shown.
///
/// The AES key schedule made from them is kept once made and shared by
/// clones, so a cached epoch key is expanded once, not at every read.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Zeroizing<[u8; 32]>,
    aead: Arc<OnceLock<LessSafeKey>>,
}

impl SecretKey {
    /// Wraps `bytes`.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey {
            bytes: Zeroizing::new(bytes),
            aead: Arc::new(OnceLock::new()),
        }
    }

    /// 32 fresh random bytes.
    pub fn random() -> Result<SecretKey, KeyFault> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(bytes.as_mut()).map_err(|_| KeyFault::NoRandomness)?;
        Ok(SecretKey::from_bytes(*bytes))
    }

    /// The bytes, for sealing and for writing to a key file.
    pub fn expose(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The AES-256-GCM key.
    pub(super) fn aead(&self) -> &LessSafeKey {
        self.aead.get_or_init(|| {
            // A 32-byte key is always accepted by AES-256-GCM.
            #[allow(clippy::expect_used)]
            let unbound =
                UnboundKey::new(&AES_256_GCM, self.bytes.as_ref()).expect("32-byte AES key");
            LessSafeKey::new(unbound)
        })
    }

    /// Seals `key` under this one with associated data `aad`.
    fn wrap(&self, key: &SecretKey, aad: &[u8]) -> Result<WrappedKey, KeyFault> {
        let mut out = [0u8; WRAPPED];
        getrandom::getrandom(&mut out[..NONCE]).map_err(|_| KeyFault::NoRandomness)?;
        let (nonce, rest) = out.split_at_mut(NONCE);
        let (sealed, tag_out) = rest.split_at_mut(32);
        sealed.copy_from_slice(key.expose());
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyFault::Unwrap)?;
        let tag = self
            .aead()
            .seal_in_place_separate_tag(nonce, Aad::from(aad), sealed)
            .map_err(|_| KeyFault::Unwrap)?;
        tag_out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens what [`SecretKey::wrap`] sealed with the same `aad`.
    fn unwrap_key(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<SecretKey, KeyFault> {
        let mut work = Zeroizing::new(*wrapped);
        let (nonce, sealed) = work.split_at_mut(NONCE);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyFault::Unwrap)?;
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(aad), sealed)
            .map_err(|_| KeyFault::Unwrap)?;
        let bytes: [u8; 32] = (&*plain).try_into().map_err(|_| KeyFault::Unwrap)?;
        Ok(SecretKey::from_bytes(bytes))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// The key that encrypts one file's bytes, random per file.
#[derive(Debug, Clone)]
pub struct DataKey(pub SecretKey);

/// The key of one epoch: it wraps the data keys of the files expiring in
/// the epoch, and destroying it shreds them all.
#[derive(Debug, Clone)]
pub struct EpochKey(pub SecretKey);

/// The key that wraps epoch keys kept in a shared database.
#[derive(Debug, Clone)]
pub struct MasterKey(pub SecretKey);

/// The associated data of a data key wrapped for blob `blob`:
/// `"upslot/dek/1 " || blob name`.
fn data_key_aad(blob: &str) -> Vec<u8> {
    [b"upslot/dek/1 ".as_slice(), blob.as_bytes()].concat()
}

/// The associated data of an epoch key wrapped for the epoch ending at
/// `end`: `"upslot/epoch/1 " || end in decimal`.
fn epoch_key_aad(end: i64) -> Vec<u8> {
    format!("upslot/epoch/1 {end}").into_bytes()
}

impl DataKey {
    /// A fresh random data key.
    pub fn random() -> Result<DataKey, KeyFault> {
        SecretKey::random().map(DataKey)
    }

    /// Seals this key under `epoch` for the blob named `blob`.
    pub fn wrap(&self, epoch: &EpochKey, blob: &str) -> Result<WrappedKey, KeyFault> {
        epoch.0.wrap(&self.0, &data_key_aad(blob))
    }

    /// Opens the data key of blob `blob` sealed under `epoch`.
    pub fn unwrap(wrapped: &WrappedKey, epoch: &EpochKey, blob: &str) -> Result<DataKey, KeyFault> {
        epoch
            .0
            .unwrap_key(wrapped, &data_key_aad(blob))
            .map(DataKey)
    }
}

impl EpochKey {
    /// A fresh random epoch key.
    pub fn random() -> Result<EpochKey, KeyFault> {
        SecretKey::random().map(EpochKey)
    }

    /// Seals this key, of the epoch ending at `end`, under `master`.
    pub fn wrap(&self, master: &MasterKey, end: i64) -> Result<WrappedKey, KeyFault> {
        master.0.wrap(&self.0, &epoch_key_aad(end))
    }

    /// Opens the key of the epoch ending at `end` sealed under `master`.
    pub fn unwrap(
        wrapped: &WrappedKey,
        master: &MasterKey,
        end: i64,
    ) -> Result<EpochKey, KeyFault> {
        master
            .0
            .unwrap_key(wrapped, &epoch_key_aad(end))
            .map(EpochKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_open_only_where_they_belong() {
        let epoch = EpochKey::random().unwrap();
        let other = EpochKey::random().unwrap();
        let data = DataKey::random().unwrap();
        let wrapped = data.wrap(&epoch, "2026-12-02/aa").unwrap();
        let opened = DataKey::unwrap(&wrapped, &epoch, "2026-12-02/aa").unwrap();
        assert_eq!(opened.0.expose(), data.0.expose());
        assert!(DataKey::unwrap(&wrapped, &other, "2026-12-02/aa").is_err());
        assert!(DataKey::unwrap(&wrapped, &epoch, "2026-12-02/bb").is_err());
        let mut altered = wrapped;
        altered[20] ^= 1;
        assert!(DataKey::unwrap(&altered, &epoch, "2026-12-02/aa").is_err());
        // Two wraps of one key differ (random nonces).
        assert_ne!(wrapped, data.wrap(&epoch, "2026-12-02/aa").unwrap());
    }

    #[test]
    fn epoch_keys_are_bound_to_their_end() {
        let master = MasterKey(SecretKey::random().unwrap());
        let epoch = EpochKey::random().unwrap();
        let wrapped = epoch.wrap(&master, 1_795_737_600).unwrap();
        let opened = EpochKey::unwrap(&wrapped, &master, 1_795_737_600).unwrap();
        assert_eq!(opened.0.expose(), epoch.0.expose());
        assert!(EpochKey::unwrap(&wrapped, &master, 1_795_824_000).is_err());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = SecretKey::from_bytes([0xab; 32]);
        let text = format!(
            "{key:?} {:?} {:?}",
            DataKey(key.clone()),
            EpochKey(key.clone())
        );
        assert!(!text.contains("ab"), "{text}");
        assert!(!text.contains("171"), "{text}");
    }
}
