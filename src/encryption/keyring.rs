//! Where epoch keys live, outside the index: [`Keyring`], and its
//! directory form [`DirKeyring`] for the embedded index (the PostgreSQL
//! index keeps its own, wrapped under a master key, in a table).
//!
//! An epoch is named by its end (Unix seconds): every file in it expires
//! at or before that time.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::keys::{EpochKey, KeyFault, SecretKey};

/// Why the keyring failed. Messages name paths and epochs, never keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The keyring cannot be read or written.
    #[error("keyring unavailable: {0}")]
    Unavailable(String),
    /// A stored epoch key is malformed or does not open under the master key.
    #[error("epoch key of {0} is unreadable (corrupt, or wrapped under another master key)")]
    Corrupt(i64),
    /// Key material could not be made.
    #[error("{0}")]
    Key(#[from] KeyFault),
}

/// Epoch keys by the end of their epoch.
#[async_trait]
pub trait Keyring: Send + Sync + 'static {
    /// The key of the epoch ending at `end`, made now (durably) if there is
    /// none. Of callers racing to make one, all get the same key.
    async fn get_or_create(&self, end: i64) -> Result<EpochKey, KeyringError>;

    /// The key of the epoch ending at `end`, `None` if it was never made or
    /// was destroyed.
    async fn get(&self, end: i64) -> Result<Option<EpochKey>, KeyringError>;

    /// The ends of the epochs whose keys are held, earliest first.
    async fn epochs(&self) -> Result<Vec<i64>, KeyringError>;

    /// Destroys the key of the epoch ending at `end` (durably; a missing
    /// key is already destroyed).
    async fn destroy(&self, end: i64) -> Result<(), KeyringError>;
}

/// Epoch keys as files `<end>.key` (the key in hex) in a directory, mode
/// 0600 in a 0700 directory. Keys appear whole or not at all (written
/// aside, synced, then linked into place) and destroying one overwrites
/// then unlinks it, and syncs the directory.
#[derive(Debug, Clone)]
pub struct DirKeyring {
    dir: PathBuf,
}

impl DirKeyring {
    /// The keyring in `dir`, created (0700) if missing; a directory others
    /// may read is made private.
    pub fn open(dir: &Path) -> Result<DirKeyring, KeyringError> {
        let fail = |e: std::io::Error| {
            KeyringError::Unavailable(format!("cannot create keyring {}: {e}", dir.display()))
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        Ok(DirKeyring {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, end: i64) -> PathBuf {
        self.dir.join(format!("{end}.key"))
    }

    fn unavailable(&self, what: &str, error: impl std::fmt::Display) -> KeyringError {
        KeyringError::Unavailable(format!("{what} in {}: {error}", self.dir.display()))
    }

    fn read(&self, end: i64) -> Result<Option<EpochKey>, KeyringError> {
        let text = match std::fs::read_to_string(self.path(end)) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.unavailable("cannot read an epoch key", e)),
        };
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), bytes.as_mut())
            .map_err(|_| KeyringError::Corrupt(end))?;
        Ok(Some(EpochKey(SecretKey::from_bytes(*bytes))))
    }

    fn create(&self, end: i64) -> Result<EpochKey, KeyringError> {
        if let Some(key) = self.read(end)? {
            return Ok(key);
        }
        let key = EpochKey::random()?;
        let temp = self
            .dir
            .join(format!(".{end}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            let text = zeroize::Zeroizing::new(format!("{}\n", hex::encode(key.0.expose())));
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })();
        let linked = written.and_then(|()| std::fs::hard_link(&temp, self.path(end)));
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                self.sync_dir()?;
                Ok(key)
            }
            // Another caller made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                self.read(end)?.ok_or(KeyringError::Corrupt(end))
            }
            Err(e) => Err(self.unavailable("cannot write an epoch key", e)),
        }
    }

    fn list(&self) -> Result<Vec<i64>, KeyringError> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| self.unavailable("cannot list keys", e))?;
        let mut ends = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.unavailable("cannot list keys", e))?;
            let name = entry.file_name();
            if let Some(end) = name
                .to_str()
                .and_then(|name| name.strip_suffix(".key"))
                .and_then(|end| end.parse::<i64>().ok())
            {
                ends.push(end);
            }
        }
        ends.sort_unstable();
        Ok(ends)
    }

    fn remove(&self, end: i64) -> Result<(), KeyringError> {
        let path = self.path(end);
        // Overwrite first: on a plain filesystem the old blocks then hold
        // nothing (copy-on-write filesystems and SSDs may keep them; the
        // README says to keep the keyring off snapshots).
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(mut file) => {
                let zeros = [b'0'; 65];
                file.write_all(&zeros)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| self.unavailable("cannot overwrite an epoch key", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.unavailable("cannot open an epoch key", e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.unavailable("cannot delete an epoch key", e)),
        }
    }

    fn sync_dir(&self) -> Result<(), KeyringError> {
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| self.unavailable("cannot sync the keyring", e))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DirKeyring) -> Result<T, KeyringError> + Send + 'static,
    ) -> Result<T, KeyringError> {
        let keyring = self.clone();
        tokio::task::spawn_blocking(move || work(&keyring))
            .await
            .map_err(|e| KeyringError::Unavailable(e.to_string()))?
    }
}

#[async_trait]
impl Keyring for DirKeyring {
    async fn get_or_create(&self, end: i64) -> Result<EpochKey, KeyringError> {
        self.blocking(move |keyring| keyring.create(end)).await
    }

    async fn get(&self, end: i64) -> Result<Option<EpochKey>, KeyringError> {
        self.blocking(move |keyring| keyring.read(end)).await
    }

    async fn epochs(&self) -> Result<Vec<i64>, KeyringError> {
        self.blocking(DirKeyring::list).await
    }

    async fn destroy(&self, end: i64) -> Result<(), KeyringError> {
        self.blocking(move |keyring| keyring.remove(end)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_made_once_kept_private_and_destroyed() {
        let dir = tempfile::tempdir().unwrap();
        let ring = DirKeyring::open(&dir.path().join("keys/epochs")).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("keys/epochs")), 0o700);
        assert!(ring.get(100).await.unwrap().is_none());
        let (a, b) = tokio::join!(ring.get_or_create(100), ring.get_or_create(100));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.0.expose(), b.0.expose());
        ring.get_or_create(50).await.unwrap();
        assert_eq!(ring.epochs().await.unwrap(), vec![50, 100]);
        assert_eq!(mode(&dir.path().join("keys/epochs/100.key")), 0o600);
        let again = ring.get(100).await.unwrap().unwrap();
        assert_eq!(again.0.expose(), a.0.expose());
        ring.destroy(100).await.unwrap();
        ring.destroy(100).await.unwrap();
        assert!(ring.get(100).await.unwrap().is_none());
        assert_eq!(ring.epochs().await.unwrap(), vec![50]);
        // A new key for a destroyed epoch is a different key.
        let fresh = ring.get_or_create(100).await.unwrap();
        assert_ne!(fresh.0.expose(), a.0.expose());
        // Only key files remain: no temporary leftovers.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("keys/epochs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn a_malformed_key_file_is_corrupt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let ring = DirKeyring::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("7.key"), "not hex").unwrap();
        let error = ring.get(7).await.unwrap_err();
        assert!(matches!(error, KeyringError::Corrupt(7)));
    }
}
