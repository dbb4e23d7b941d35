//! Start-up: turn a validated [`Config`] into running parts: create the
//! data directory, load or generate the keys kept in it ([`crate::keys`]),
//! load TLS, open blob storage and the index, and assemble the data layer,
//! the HTTP state and the sweeper.

mod hints;

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::Verifier;
use crate::auth::mac::hmac_sha256;
use crate::config::{Config, ConfigError, IndexBackend, OffloadMode, Secret, StorageBackend};
use crate::encryption::keyring::{DirKeyring, Keyring};
use crate::encryption::keys::{MasterKey, SecretKey};
use crate::encryption::{Encryption, EncryptionSettings};
use crate::files::{Files, Quotas};
use crate::http::cors::Cors;
use crate::http::{App, Offload, Settings, Traffic};
use crate::index::embedded::EmbeddedIndex;
use crate::index::postgres::PostgresIndex;
use crate::index::{Index, IndexError, IndexKey, Leases, QuotaLedger};
use crate::keys::{KeyError, KeyFiles, create_private_dir};
use crate::privacy::attempts::{BanPolicy, FailedAttempts};
use crate::retention::Retention;
use crate::server::Limits;
use crate::server::tls::{Tls, TlsError};
use crate::storage::disk::DiskStore;
use crate::storage::object::{ObjectBlobStore, Transfers};
use crate::storage::{AbandonedUploads, BlobStore, Presign};
use crate::sweeper::{SweepMetrics, Sweeper};
use crate::time::secs;

pub use hints::hints;

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
    /// A key file could not be created or read.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The index could not be opened.
    #[error("index: {0}")]
    Index(#[from] IndexError),
    /// The blob store's settings are unusable.
    #[error("storage: {0}")]
    Storage(String),
    /// The keyring of encryption at rest cannot be opened.
    #[error("encryption: {0}")]
    Encryption(String),
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
            StartError::Io { .. }
            | StartError::Key(_)
            | StartError::Index(_)
            | StartError::Encryption(_)
            | StartError::Bind { .. } => 1,
        }
    }
}

/// What start-up produced.
pub struct Prepared {
    /// The request handlers' state.
    pub app: Arc<App>,
    /// The retention engine, ready to run.
    pub sweeper: Sweeper,
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
    create_private_dir(&config.storage.path)?;
    let keys = KeyFiles::of(config);
    keys.create_dir()?;
    let index_key = keys.index_key()?;

    let (secrets, first_start_hints) = if config.upload.has_secret() {
        (config.upload.secrets()?, None)
    } else {
        let (secret, generated) = keys.generated_upload_secret()?;
        let path = keys.upload_secret_path();
        let hints =
            generated.then(|| hints(config, &path, &String::from_utf8_lossy(secret.expose())));
        if !generated {
            tracing::info!(file = %path.display(), "using the generated shared secret");
        }
        (vec![secret], hints)
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
    let opened = open_index(config, &index_key, &keys).await?;
    let (index, leases) = (opened.index, opened.leases);
    let quotas = Quotas::new(opened.quota, crate::quota::Limits::of(config));
    let encryption = Encryption::new(
        opened.keyring,
        EncryptionSettings {
            seal_new: config.encryption.enabled,
            epoch: secs(config.encryption.epoch.0),
        },
    );
    let retention = &config.retention;
    let files = Arc::new(Files::new(
        blobs.store,
        blobs.abandoned,
        index,
        IndexKey::new(index_key),
        Retention {
            keep: retention.keep.0,
            max: retention.ceiling().0,
            sweep_every: retention.sweep_every.0,
            tombstone_horizon: retention.tombstone_horizon().0,
        },
        encryption,
        quotas,
    ));
    let server = &config.server;
    let offload = match config.offload.mode {
        OffloadMode::None => Offload::None,
        OffloadMode::Presigned => Offload::Presigned {
            ttl: config.offload.presigned_ttl.0,
            presigner: blobs.presigner.ok_or_else(|| {
                StartError::Storage(
                    "offload.mode \"presigned\" needs a store that signs URLs (S3)".into(),
                )
            })?,
        },
        OffloadMode::Cdn => Offload::Cdn {
            base_url: config.offload.cdn_url.clone(),
        },
    };
    let settings = Settings {
        base_path: server.base_path.clone(),
        max_size: config.upload.max_size.0,
        body_idle_timeout: server.body_idle_timeout.0,
        cors: Cors::new(&server.cors_origins),
        log_client_ip: config.privacy.log_client_ip,
        trusted_proxies: server.trusted_proxies.clone(),
        offload,
    };
    let privacy = &config.privacy;
    let attempts = FailedAttempts::new(BanPolicy {
        memory: privacy.failed_attempt_memory.0,
        threshold: privacy.ban_after,
        window: privacy.ban_window.0,
        ban: privacy.ban_for.0,
        max_addresses: privacy.max_remembered_addresses,
    });
    let sweep_metrics = Arc::new(SweepMetrics::default());
    let app = App::new(
        Arc::clone(&files),
        verifier,
        settings,
        Arc::clone(&sweep_metrics),
        attempts,
        crate::policy::Facts::from_config(config),
        Traffic::new(server.max_connections),
    );
    Ok(Prepared {
        app: Arc::new(app),
        sweeper: Sweeper {
            files,
            leases,
            metrics: sweep_metrics,
        },
        tls,
        limits: Limits {
            header_timeout: server.header_timeout.0,
            tls_handshake_timeout: server.tls_handshake_timeout.0,
            shutdown_grace: server.shutdown_grace.0,
        },
        first_start_hints,
    })
}

/// A blob store and the optional capabilities it has.
struct OpenedBlobs {
    store: Arc<dyn BlobStore>,
    presigner: Option<Arc<dyn Presign>>,
    abandoned: Option<Arc<dyn AbandonedUploads>>,
}

/// Opens the configured blob store.
fn open_blobs(config: &Config) -> Result<OpenedBlobs, StartError> {
    let storage = &config.storage;
    let unusable = |error: object_store::Error| StartError::Storage(error.to_string());
    Ok(match storage.backend {
        StorageBackend::Disk => {
            let disk = DiskStore::open(&storage.path, storage.min_free.0).map_err(|source| {
                StartError::Io {
                    what: "cannot open blob storage in",
                    path: storage.path.clone(),
                    source,
                }
            })?;
            let disk = Arc::new(disk);
            OpenedBlobs {
                store: Arc::clone(&disk) as _,
                presigner: None,
                abandoned: Some(disk),
            }
        }
        StorageBackend::S3 => {
            let secret = storage.s3.secret_access_key()?;
            let store = ObjectBlobStore::s3(&storage.s3, secret).map_err(unusable)?;
            OpenedBlobs {
                presigner: store
                    .presigner()
                    .map(|presigner| Arc::new(presigner) as Arc<dyn Presign>),
                store: Arc::new(store),
                abandoned: None,
            }
        }
        StorageBackend::Gcs | StorageBackend::Azure => {
            let store = ObjectBlobStore::cloud(&storage.url, Transfers::of(&storage.s3))
                .map_err(unusable)?;
            OpenedBlobs {
                store: Arc::new(store),
                presigner: None,
                abandoned: None,
            }
        }
    })
}

/// An index, its leases if several processes share it, and the keyring of
/// epoch keys that goes with it.
struct OpenedIndex {
    index: Arc<dyn Index>,
    quota: Arc<dyn QuotaLedger>,
    leases: Option<Arc<dyn Leases>>,
    keyring: Arc<dyn Keyring>,
}

/// Opens the configured index and its keyring. A shared index remembers
/// fingerprints of the index key and the master key it was created with
/// and refuses replicas with other keys.
async fn open_index(
    config: &Config,
    index_key: &[u8; 32],
    keys: &KeyFiles,
) -> Result<OpenedIndex, StartError> {
    Ok(match config.index.backend {
        IndexBackend::Embedded => {
            let path = config.storage.path.join("index.redb");
            let keyring = DirKeyring::open(keys.keyring_dir())
                .map_err(|e| StartError::Encryption(e.to_string()))?;
            let index = Arc::new(EmbeddedIndex::open(&path)?);
            OpenedIndex {
                index: Arc::clone(&index) as _,
                quota: index,
                leases: None,
                keyring: Arc::new(keyring),
            }
        }
        IndexBackend::Postgres => {
            let url = config.index.postgres_url()?;
            let url = String::from_utf8_lossy(url.expose()).into_owned();
            let fingerprint = hmac_sha256(index_key, b"upslot index key fingerprint");
            let index =
                Arc::new(PostgresIndex::connect(&url, config.index.pool_size, fingerprint).await?);
            let master = MasterKey(SecretKey::from_bytes(keys.master_key()?));
            let keyring = index.keyring(master).await?;
            OpenedIndex {
                index: Arc::clone(&index) as _,
                quota: Arc::clone(&index) as _,
                leases: Some(index as _),
                keyring: Arc::new(keyring),
            }
        }
    })
}

/// The shared secrets as a running server uses them: the configured ones,
/// else the one generated in the data directory (never generated here).
pub fn upload_secrets(config: &Config) -> Result<Vec<Secret>, StartError> {
    if config.upload.has_secret() {
        return Ok(config.upload.secrets()?);
    }
    Ok(vec![KeyFiles::of(config).existing_upload_secret()?])
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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
