//! The shape of the configuration: one struct per TOML section, every key
//! typed. `serde(deny_unknown_fields)` everywhere, so a misspelt key is an
//! error, not a silent default.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, Cidr, Secret, Span};

/// The smallest part S3 accepts (every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The largest part S3 accepts.
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// The whole configuration. Every section exists (the embedded defaults fill
/// in what the file and environment leave out).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, TLS, CORS and edge limits.
    pub server: ServerConfig,
    /// Slot verification and upload limits.
    pub upload: UploadConfig,
    /// Where blobs live.
    pub storage: StorageConfig,
    /// How long files are kept.
    pub retention: RetentionConfig,
    /// Where file metadata lives.
    pub index: IndexConfig,
    /// What is recorded about clients.
    pub privacy: PrivacyConfig,
    /// Downloads served by redirect.
    pub offload: OffloadConfig,
    /// Encryption at rest.
    pub encryption: EncryptionConfig,
    /// Storage quotas.
    pub quota: QuotaConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Public listeners (see [`Config::listen_addrs`]).
    pub listen: OneOrMany<String>,
    /// URL prefix in front of `<slot>/<filename>`.
    pub base_path: String,
    /// Base URL clients use; only for the first-start hints. Empty: derived.
    pub public_url: String,
    /// Admin listener (`/health`); empty string disables it.
    pub admin_listen: String,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// CORS origins; `["*"]` for any.
    pub cors_origins: Vec<String>,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time allowed for a client to send its request headers.
    pub header_timeout: Span,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Span,
    /// Time an upload body may stall between two chunks.
    pub body_idle_timeout: Span,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Span,
    /// HTTPS certificate and key.
    pub tls: Option<TlsConfig>,
}

/// `[server] tls = { cert, key }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (e.g. certbot's fullchain.pem).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[upload]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// Shared secrets given inline.
    #[serde(default)]
    pub secret: Option<OneOrMany<Secret>>,
    /// Files holding shared secrets (one secret per file, trailing newline ignored).
    #[serde(default)]
    pub secret_file: Option<OneOrMany<PathBuf>>,
    /// Metronome's delete secret, inline.
    #[serde(default)]
    pub delete_secret: Option<Secret>,
    /// Metronome's delete secret, from a file.
    #[serde(default)]
    pub delete_secret_file: Option<PathBuf>,
    /// Largest accepted upload.
    pub max_size: ByteSize,
    /// Accepted token families.
    pub protocols: Vec<Protocol>,
}

/// A slot token family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `?v=`: Prosody mod_http_upload_external v1, ejabberd external_secret.
    V1,
    /// `?v2=`: Prosody mod_http_upload_external v2.
    V2,
    /// `?token=`: Metronome.
    Token,
    /// `Authorization: Bearer`: Prosody mod_http_file_share external mode.
    Jwt,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Blob backend.
    pub backend: StorageBackend,
    /// Data directory.
    pub path: PathBuf,
    /// Free space an upload must leave on the filesystem.
    pub min_free: ByteSize,
    /// `backend = "gcs"` or `"azure"`: the bucket or container URL
    /// (`gs://bucket/prefix`, `az://container/prefix`).
    pub url: String,
    /// `backend = "s3"`.
    pub s3: S3Config,
}

/// Blob backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files on a local filesystem.
    Disk,
    /// An S3-compatible object store.
    S3,
    /// Google Cloud Storage (credentials from the environment).
    Gcs,
    /// Azure Blob Storage (credentials from the environment).
    Azure,
}

/// `[storage.s3]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The server's URL; empty for AWS (derived from the region).
    pub endpoint: String,
    /// The region; empty: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    /// Access key id; empty: `AWS_ACCESS_KEY_ID` or the instance's role.
    pub access_key_id: String,
    /// Secret access key, inline.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Secret access key, from a file.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Whether plain `http://` endpoints are allowed (local servers).
    pub allow_http: bool,
    /// `https://bucket.endpoint/key` instead of `https://endpoint/bucket/key`.
    pub virtual_hosted_style: bool,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Size of multipart upload parts (at least 5 MiB), and of the pieces
    /// long downloads are read in.
    pub part_size: ByteSize,
    /// Memory all transfers together may hold in part buffers.
    pub buffer_memory: ByteSize,
    /// Parts one upload sends, or one download fetches, at once.
    pub parts_in_flight: usize,
}

/// `[offload]`: downloads answered by a redirect instead of upslot's bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OffloadConfig {
    /// How downloads are served.
    pub mode: OffloadMode,
    /// Lifetime of presigned URLs.
    pub presigned_ttl: Span,
    /// Base URL of a CDN in front of the bucket (`mode = "cdn"`).
    pub cdn_url: String,
}

/// How GET requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadMode {
    /// upslot streams the bytes.
    None,
    /// 307 to a short-lived presigned URL of the bucket (S3 only).
    Presigned,
    /// 307 to `cdn_url` followed by the blob's key.
    Cdn,
}

/// `[encryption]`: blobs sealed under per-file keys, wrapped under epoch
/// keys that are destroyed when the epoch's files have expired.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Whether new files are encrypted (existing ones stay readable).
    pub enabled: bool,
    /// Files are grouped by the epoch of this length in which they expire.
    pub epoch: Span,
    /// Embedded index: the directory of epoch keys; empty for
    /// `<storage.path>/keys/epochs`.
    pub keyring: PathBuf,
    /// PostgreSQL index: the key that wraps the epoch keys kept in the
    /// database; empty for `<storage.path>/keys/master.key`.
    pub master_key_file: PathBuf,
}

impl EncryptionConfig {
    /// The keyring directory of a server whose data lives in `data`.
    pub fn keyring_dir(&self, data: &std::path::Path) -> PathBuf {
        if self.keyring.as_os_str().is_empty() {
            data.join("keys/epochs")
        } else {
            self.keyring.clone()
        }
    }

    /// The master key file of a server whose data lives in `data`.
    pub fn master_key_path(&self, data: &std::path::Path) -> PathBuf {
        if self.master_key_file.as_os_str().is_empty() {
            data.join("keys/master.key")
        } else {
            self.master_key_file.clone()
        }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Time from upload to deletion.
    pub keep: Span,
    /// The ceiling no file may exceed, whatever a token or an older
    /// configuration said; defaults to `keep`.
    #[serde(default)]
    pub max: Option<Span>,
    /// How often the sweeper looks for expired files.
    pub sweep_every: Span,
    /// How long a deleted slot's tombstone refuses new uploads to its URL;
    /// defaults to `keep`.
    #[serde(default)]
    pub tombstone_horizon: Option<Span>,
}

impl RetentionConfig {
    /// The ceiling: `max`, or `keep` when unset.
    pub fn ceiling(&self) -> Span {
        self.max.unwrap_or(self.keep)
    }

    /// How long tombstones are kept: `tombstone_horizon`, or `keep`.
    pub fn tombstone_horizon(&self) -> Span {
        self.tombstone_horizon.unwrap_or(self.keep)
    }
}

/// `[index]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Index backend.
    pub backend: IndexBackend,
    /// `postgres`: the connection URL, inline (it may hold a password).
    #[serde(default)]
    pub url: Option<Secret>,
    /// `postgres`: the connection URL, from a file.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// `postgres`: connections kept open at most.
    pub pool_size: usize,
    /// The file holding the index key; default `<storage.path>/keys/index.key`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Index backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexBackend {
    /// A redb database inside the data directory (one process).
    Embedded,
    /// A PostgreSQL database, shared by several replicas.
    Postgres,
}

/// `[quota]`: limits on what is uploaded and stored, enforced when a PUT
/// arrives, before its body is read. `0` means unlimited.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// Bytes one owner may upload in any rolling 24 hours; defaults to ten
    /// times `upload.max_size` (see [`Config::per_owner_daily`]).
    #[serde(default)]
    pub per_owner_daily: Option<ByteSize>,
    /// Bytes one owner may have stored at once.
    pub per_owner_stored: ByteSize,
    /// Bytes stored in total.
    pub global_stored: ByteSize,
}

/// `[privacy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Client addresses in logs.
    pub log_client_ip: LogClientIp,
    /// How long an address with failed attempts is remembered (≤ 6 h).
    pub failed_attempt_memory: Span,
    /// Failures within `ban_window` that ban an address.
    pub ban_after: u32,
    /// The window failures are counted in.
    pub ban_window: Span,
    /// How long a ban lasts.
    pub ban_for: Span,
    /// Most addresses remembered at once.
    pub max_remembered_addresses: u64,
}

/// How much of a client address may appear in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogClientIp {
    /// Never (the default).
    None,
    /// IPv4 /24, IPv6 /48.
    Truncated,
    /// The whole address.
    Full,
}

/// A key that takes one value or a list of values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// `key = value`
    One(T),
    /// `key = [value, …]`
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(value) => std::slice::from_ref(value),
            OneOrMany::Many(values) => values,
        }
    }
}
