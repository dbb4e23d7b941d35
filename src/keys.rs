//! Every key file upslot keeps, named, created and loaded in one place.
//!
//! Generated key material lives in `<storage.path>/keys/` with mode 0600:
//! `index.key` (keys index hashes and owner pseudonyms; always generated,
//! unless `index.key_file` names another file, which replicas share) and
//! `upload.secret` (only when no secret is configured; the first start
//! prints the lines to paste into the XMPP server). Encryption at rest adds
//! `epochs/` (the keyring of the embedded index, one file per epoch,
//! `encryption.keyring`) or `master.key` (which wraps the epoch keys a
//! PostgreSQL index keeps, `encryption.master_key_file`).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Config, Secret};

/// Why a key file could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct KeyError {
    /// What was being done.
    pub what: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Where the key files of a configuration are.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    dir: PathBuf,
    index_key: PathBuf,
    keyring: PathBuf,
    master_key: PathBuf,
}

impl KeyFiles {
    /// The key files of `config`.
    pub fn of(config: &Config) -> KeyFiles {
        let dir = config.storage.path.join("keys");
        let index_key = config
            .index
            .key_file
            .clone()
            .unwrap_or_else(|| dir.join("index.key"));
        let data = &config.storage.path;
        KeyFiles {
            dir,
            index_key,
            keyring: config.encryption.keyring_dir(data),
            master_key: config.encryption.master_key_path(data),
        }
    }

    /// The directory of epoch keys (embedded index).
    pub fn keyring_dir(&self) -> &Path {
        &self.keyring
    }

    /// The file holding the master key (PostgreSQL index).
    pub fn master_key_path(&self) -> &Path {
        &self.master_key
    }

    /// The master key, generated on first use.
    pub fn master_key(&self) -> Result<[u8; 32], KeyError> {
        let (hex_key, _) = load_or_generate(&self.master_key)?;
        decode_key(&hex_key, &self.master_key)
    }

    /// The file holding the generated upload secret.
    pub fn upload_secret_path(&self) -> PathBuf {
        self.dir.join("upload.secret")
    }

    /// The file holding the index key.
    pub fn index_key_path(&self) -> &Path {
        &self.index_key
    }

    /// Creates the keys directory (mode 0700) if it is missing.
    pub fn create_dir(&self) -> Result<(), KeyError> {
        create_private_dir(&self.dir)
    }

    /// The index key, generated on first use.
    pub fn index_key(&self) -> Result<[u8; 32], KeyError> {
        let (hex_key, _) = load_or_generate(&self.index_key)?;
        decode_key(&hex_key, &self.index_key)
    }

    /// The generated upload secret, made now if there is none; `true` when
    /// it was made now.
    pub fn generated_upload_secret(&self) -> Result<(Secret, bool), KeyError> {
        let (secret, generated) = load_or_generate(&self.upload_secret_path())?;
        Ok((Secret::new(secret), generated))
    }

    /// The generated upload secret, if a running server made one (never
    /// made here).
    pub fn existing_upload_secret(&self) -> Result<Secret, KeyError> {
        let path = self.upload_secret_path();
        std::fs::read_to_string(&path)
            .map(|text| Secret::new(text.trim()))
            .map_err(|source| KeyError {
                what: "no secret configured, and cannot read the generated one at",
                path,
                source,
            })
    }
}

/// Creates `path` and its parents, private to this user (0700).
pub fn create_private_dir(path: &Path) -> Result<(), KeyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| KeyError {
            what: "cannot create directory",
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the hex key in `path`, or writes a fresh random one (mode 0600).
/// Returns the key and whether it was generated now.
fn load_or_generate(path: &Path) -> Result<(String, bool), KeyError> {
    let io = |what, source| KeyError {
        what,
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((text.trim().to_string(), false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot read", e)),
    }
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| io("no randomness for", std::io::Error::other(e.to_string())))?;
    let key = hex::encode(bytes);
    // Written aside, then linked into place: the file appears complete or
    // not at all, and of processes starting together (replicas sharing a
    // key file) one creates it and the others read it.
    let aside = path.with_extension(format!("new-{}", &key[..8]));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&aside)
        .and_then(|mut file| {
            file.write_all(format!("{key}\n").as_bytes())?;
            file.sync_all()
        });
    let linked = written.and_then(|()| std::fs::hard_link(&aside, path));
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok((key, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path)
            .map(|text| (text.trim().to_string(), false))
            .map_err(|e| io("cannot read", e)),
        Err(e) => Err(io("cannot create", e)),
    }
}

fn decode_key(hex_key: &str, path: &Path) -> Result<[u8; 32], KeyError> {
    hex::decode(hex_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| KeyError {
            what: "corrupt key file (expected 64 hex digits)",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_generated_once_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let (first, generated) = load_or_generate(&path).unwrap();
        assert!(generated);
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, generated) = load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(first, again);
        assert!(decode_key(&first, &path).is_ok());
        assert!(decode_key("zz", &path).is_err());
    }

    #[test]
    fn files_are_named_from_the_config() {
        let env: BTreeMap<String, String> =
            [("UPSLOT_STORAGE__PATH".to_string(), "/data".to_string())].into();
        let keys = KeyFiles::of(&Config::load(None, &env).unwrap());
        assert_eq!(keys.index_key_path(), Path::new("/data/keys/index.key"));
        assert_eq!(
            keys.upload_secret_path(),
            Path::new("/data/keys/upload.secret")
        );
        assert_eq!(keys.keyring_dir(), Path::new("/data/keys/epochs"));
        assert_eq!(keys.master_key_path(), Path::new("/data/keys/master.key"));
        let shared = Config::load(
            Some(("[index]\nkey_file = \"/etc/upslot/index.key\"\n", "t")),
            &env,
        )
        .unwrap();
        assert_eq!(
            KeyFiles::of(&shared).index_key_path(),
            Path::new("/etc/upslot/index.key")
        );
    }
}
