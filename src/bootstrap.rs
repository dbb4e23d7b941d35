//! Start-up: turn a validated [`Config`] into a ready [`App`]: create the
//! data directory, load or generate the keys kept in it, load TLS, open
//! blob storage and the index.
//!
//! Generated key material lives in `<storage.path>/keys/` with mode 0600:
//! `index.key` (keys index hashes; always generated) and `upload.secret`
//! (only when no secret is configured; the first start prints the lines to
//! paste into the XMPP server).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::app::{App, Offload, Retention, Settings};
use crate::auth::Verifier;
use crate::auth::mac::hmac_sha256;
use crate::config::{Config, ConfigError, IndexBackend, OffloadMode, Secret, StorageBackend};
use crate::http::cors::Cors;
use crate::index::embedded::EmbeddedIndex;
use crate::index::postgres::PostgresIndex;
use crate::index::{Index, IndexError, IndexKey};
use crate::privacy::attempts::BanPolicy;
use crate::server::Limits;
use crate::server::tls::{Tls, TlsError};
use crate::storage::BlobStore;
use crate::storage::disk::DiskStore;
use crate::storage::object::{ObjectBlobStore, Transfers};

/// Why upslot could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The TLS certificate or key is unusable.
    #[error("server.tls: {0}")]
    Tls(#[from] TlsError),
    /// A file or directory could not be created or read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The index could not be opened.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// The blob store's settings are unusable.
    #[error("storage: {0}")]
    Storage(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl StartError {
    /// The process exit code: 64 (EX_USAGE) for configuration mistakes, 1
    /// for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::Tls(_) | StartError::Storage(_) => 64,
            StartError::Io { .. } | StartError::Index(_) | StartError::Bind { .. } => 1,
        }
    }
}

/// What start-up produced.
pub struct Prepared {
    /// The request handlers' state.
    pub app: Arc<App>,
    /// TLS for the public listeners, if configured.
    pub tls: Option<Tls>,
    /// Edge limits for the server.
    pub limits: Limits,
    /// Text to print once: the configuration lines for the XMPP server,
    /// when a secret was generated on this start.
    pub first_start_hints: Option<String>,
}

/// Prepares everything but the listeners.
pub async fn prepare(config: &Config) -> Result<Prepared, StartError> {
    let data = &config.storage.path;
    create_private_dir(data)?;
    let keys = data.join("keys");
    create_private_dir(&keys)?;

    let key_path = config.index.key_path(&config.storage);
    let index_key_hex = load_or_generate(&key_path)?.0;
    let index_key_bytes = decode_key(&index_key_hex, &key_path)?;

    let (secrets, first_start_hints) = if config.upload.has_secret() {
        (config.upload.secrets()?, None)
    } else {
        let path = keys.join("upload.secret");
        let (secret, generated) = load_or_generate(&path)?;
        let hints = generated.then(|| hints(config, &path, &secret));
        if !generated {
            tracing::info!(file = %path.display(), "using the generated shared secret");
        }
        (vec![Secret::new(secret)], hints)
    };
    let verifier = Verifier::new(
        secrets,
        config.upload.delete_secret()?,
        config.upload.protocols.clone(),
    );
    let tls = match &config.server.tls {
        Some(tls) => Some(Tls::load(&tls.cert, &tls.key)?),
        None => None,
    };
    let blobs = open_blobs(config)?;
    let index = open_index(config, &index_key_bytes).await?;
    let index_key = IndexKey::new(index_key_bytes);
    let server = &config.server;
    let settings = Settings {
        base_path: server.base_path.clone(),
        max_size: config.upload.max_size.0,
        retention: Retention {
            keep: config.retention.keep.0,
            max: config.retention.ceiling().0,
            sweep_every: config.retention.sweep_every.0,
            tombstone_horizon: config.retention.tombstone_horizon().0,
        },
        body_idle_timeout: server.body_idle_timeout.0,
        cors: Cors::new(&server.cors_origins),
        log_client_ip: config.privacy.log_client_ip,
        trusted_proxies: server.trusted_proxies.clone(),
        ban_policy: BanPolicy {
            memory: config.privacy.failed_attempt_memory.0,
            threshold: config.privacy.ban_after,
            window: config.privacy.ban_window.0,
            ban: config.privacy.ban_for.0,
            max_addresses: config.privacy.max_remembered_addresses,
        },
        offload: match config.offload.mode {
            OffloadMode::None => Offload::None,
            OffloadMode::Presigned => Offload::Presigned {
                ttl: config.offload.presigned_ttl.0,
            },
            OffloadMode::Cdn => Offload::Cdn {
                base_url: config.offload.cdn_url.clone(),
            },
        },
    };
    let app = App::new(verifier, index_key, blobs, index, settings);
    Ok(Prepared {
        app: Arc::new(app),
        tls,
        limits: Limits {
            max_connections: server.max_connections,
            header_timeout: server.header_timeout.0,
            tls_handshake_timeout: server.tls_handshake_timeout.0,
            shutdown_grace: server.shutdown_grace.0,
        },
        first_start_hints,
    })
}

/// Opens the configured blob store.
fn open_blobs(config: &Config) -> Result<Arc<dyn BlobStore>, StartError> {
    let storage = &config.storage;
    let unusable = |error: object_store::Error| StartError::Storage(error.to_string());
    Ok(match storage.backend {
        StorageBackend::Disk => Arc::new(
            DiskStore::open(&storage.path, storage.min_free.0).map_err(|source| {
                StartError::Io {
                    what: "cannot open blob storage in",
                    path: storage.path.clone(),
                    source,
                }
            })?,
        ),
        StorageBackend::S3 => {
            let secret = storage.s3.secret_access_key()?;
            Arc::new(ObjectBlobStore::s3(&storage.s3, secret).map_err(unusable)?)
        }
        StorageBackend::Gcs | StorageBackend::Azure => Arc::new(
            ObjectBlobStore::cloud(&storage.url, Transfers::of(&storage.s3)).map_err(unusable)?,
        ),
    })
}

/// Opens the configured index. A shared index remembers a fingerprint of
/// the index key it was created with and refuses replicas with another key.
async fn open_index(config: &Config, index_key: &[u8; 32]) -> Result<Arc<dyn Index>, StartError> {
    Ok(match config.index.backend {
        IndexBackend::Embedded => Arc::new(EmbeddedIndex::open(
            &config.storage.path.join("index.redb"),
        )?),
        IndexBackend::Postgres => {
            let url = config.index.postgres_url()?;
            let url = String::from_utf8_lossy(url.expose()).into_owned();
            let fingerprint = hmac_sha256(index_key, b"upslot index key fingerprint");
            Arc::new(PostgresIndex::connect(&url, config.index.pool_size, fingerprint).await?)
        }
    })
}

/// The shared secrets as a running server uses them: the configured ones,
/// else the one generated in the data directory (never generated here).
pub fn upload_secrets(config: &Config) -> Result<Vec<Secret>, StartError> {
    if config.upload.has_secret() {
        return Ok(config.upload.secrets()?);
    }
    let path = config.storage.path.join("keys").join("upload.secret");
    let text = std::fs::read_to_string(&path).map_err(|source| StartError::Io {
        what: "no secret configured, and cannot read the generated one at",
        path: path.clone(),
        source,
    })?;
    Ok(vec![Secret::new(text.trim())])
}

fn create_private_dir(path: &Path) -> Result<(), StartError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| StartError::Io {
            what: "cannot create directory",
            path: path.to_path_buf(),
            source,
        })
}

/// Reads the hex key in `path`, or writes a fresh random one (mode 0600).
/// Returns the key and whether it was generated now.
fn load_or_generate(path: &Path) -> Result<(String, bool), StartError> {
    let io = |what, source| StartError::Io {
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

fn decode_key(hex_key: &str, path: &Path) -> Result<[u8; 32], StartError> {
    hex::decode(hex_key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| StartError::Io {
            what: "corrupt key file (expected 64 hex digits)",
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })
}

/// The base URL clients will use, for the hints.
fn public_base_url(config: &Config) -> String {
    if !config.server.public_url.is_empty() {
        return config.server.public_url.trim_end_matches('/').to_string();
    }
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let addr = config
        .listen_addrs()
        .ok()
        .and_then(|addrs| addrs.first().copied())
        .map_or_else(|| "127.0.0.1:5050".to_string(), |a| a.to_string());
    format!(
        "{scheme}://{addr}{}",
        config.server.base_path.trim_end_matches('/')
    )
}

/// The configuration lines an operator pastes into Prosody or ejabberd.
pub fn hints(config: &Config, secret_path: &Path, secret: &str) -> String {
    let base = public_base_url(config);
    format!(
        r#"upslot generated a shared secret and saved it in {path}.
Paste one of these into your XMPP server's configuration (replace
upload.example.org with your upload component's name, and the URL with the
public HTTPS URL of this service if it sits behind a proxy):

-- Prosody 0.12+, built-in mod_http_file_share (recommended):
Component "upload.example.org" "http_file_share"
    http_file_share_base_url = "{base}/"
    http_file_share_secret = "{secret}"

-- Prosody, mod_http_upload_external from prosody-modules:
Component "upload.example.org" "http_upload_external"
    http_upload_external_base_url = "{base}/"
    http_upload_external_secret = "{secret}"
    http_upload_external_protocol = "v2"

# ejabberd, mod_http_upload:
modules:
  mod_http_upload:
    put_url: "{base}"
    get_url: "{base}"
    external_secret: "{secret}"
"#,
        path = secret_path.display(),
    )
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
    fn hints_name_the_url_and_secret() {
        let config = Config::load(None, &BTreeMap::new()).unwrap();
        let text = hints(&config, Path::new("/data/keys/upload.secret"), "abc123");
        assert!(text.contains("http_file_share_base_url = \"http://127.0.0.1:5050/\""));
        assert!(text.contains("http_upload_external_base_url = \"http://127.0.0.1:5050/\""));
        assert!(text.contains("put_url: \"http://127.0.0.1:5050\""));
        assert!(text.contains("external_secret: \"abc123\""));
    }

    #[tokio::test]
    async fn prepare_creates_a_private_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let env: BTreeMap<String, String> = [(
            "UPSLOT_STORAGE__PATH".to_string(),
            data.display().to_string(),
        )]
        .into();
        let config = Config::load(None, &env).unwrap();
        let prepared = prepare(&config).await.unwrap();
        assert!(prepared.first_start_hints.is_some());
        assert!(data.join("keys/upload.secret").exists());
        assert!(data.join("index.redb").exists());
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(prepared);
        // A second start reuses the secret and prints nothing.
        assert!(prepare(&config).await.unwrap().first_start_hints.is_none());
    }
}
