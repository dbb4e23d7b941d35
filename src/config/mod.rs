//! The one configuration tree, loaded from embedded defaults, a TOML file and
//! the environment, validated once at start.
//!
//! [`Config::load`] is pure: it takes the file's text and the environment as
//! arguments. Secrets named by `*_file` keys are read by
//! [`UploadConfig::secrets`] at start-up, not here.

mod cidr;
mod layers;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::storage::object::{MAX_PART_SIZE, MIN_PART_SIZE};

pub use cidr::Cidr;
pub use layers::ENV_PREFIX;
pub use units::{ByteSize, Span, UnitError};

/// The embedded defaults: `config/default.toml`, compiled in so that the
/// documented defaults and the real ones cannot drift apart.
pub const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Why a configuration was refused. Every message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A TOML source does not parse.
    #[error("{origin}: {message}")]
    Syntax {
        /// Where the text came from (a file name, or "defaults").
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a wrong type, an unknown name or an impossible value.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `server.base_path`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// An environment override is malformed.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A file named by the config cannot be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The dotted key that names the file.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

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

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .field("buffer_memory", &self.buffer_memory)
            .field("parts_in_flight", &self.parts_in_flight)
            .finish()
    }
}

impl S3Config {
    /// The secret access key, if configured (else the environment's).
    pub fn secret_access_key(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.secret_access_key, &self.secret_access_key_file) {
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_secret("storage.s3.secret_access_key_file", path).map(Some),
            (None, None) => Ok(None),
        }
    }
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

impl fmt::Debug for IndexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexConfig")
            .field("backend", &self.backend)
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field("url_file", &self.url_file)
            .field("pool_size", &self.pool_size)
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl IndexConfig {
    /// The PostgreSQL URL (`url` or the contents of `url_file`).
    pub fn postgres_url(&self) -> Result<Secret, ConfigError> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(path)) => read_secret("index.url_file", path),
            (None, None) => Err(invalid(
                "index.url",
                "backend \"postgres\" needs url or url_file (\"postgres://user:password@host/db\")",
            )),
        }
    }

    /// Where the index key is kept.
    pub fn key_path(&self, storage: &StorageConfig) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| storage.path.join("keys").join("index.key"))
    }
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

/// A secret string; never printed.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret's bytes, for keying a MAC.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
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

impl fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadConfig")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .field(
                "delete_secret",
                &self.delete_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("delete_secret_file", &self.delete_secret_file)
            .field("max_size", &self.max_size)
            .field("protocols", &self.protocols)
            .finish()
    }
}

impl Config {
    /// Loads the configuration: embedded defaults, then `file` (its text and
    /// a name for messages), then `UPSLOT_*` variables from `env`.
    pub fn load(
        file: Option<(&str, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut table = layers::parse(DEFAULTS, "embedded defaults")?;
        if let Some((text, origin)) = file {
            layers::merge(&mut table, layers::parse(text, origin)?);
        }
        layers::apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("config", e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        self.listen_addrs()?;
        if !server.base_path.starts_with('/') || !server.base_path.ends_with('/') {
            return Err(invalid(
                "server.base_path",
                format!(
                    "{:?} must start and end with \"/\", e.g. \"/\" or \"/upload/\"",
                    server.base_path
                ),
            ));
        }
        if server.base_path.contains(['?', '#', '%', ' ']) || server.base_path.contains("//") {
            return Err(invalid(
                "server.base_path",
                "must be a plain path without '?', '#', '%', spaces or empty segments",
            ));
        }
        self.admin_listen()?;
        let url = &server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                "server.public_url",
                "must start with http:// or https://",
            ));
        }
        if server.cors_origins.is_empty() {
            return Err(invalid(
                "server.cors_origins",
                "list at least one origin, or \"*\" for any",
            ));
        }
        if let Some(bad) = server
            .cors_origins
            .iter()
            .find(|o| http::HeaderValue::from_str(o).is_err())
        {
            return Err(invalid(
                "server.cors_origins",
                format!("{bad:?} is not a valid origin"),
            ));
        }
        if server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for (key, span) in [
            ("server.header_timeout", server.header_timeout),
            ("server.tls_handshake_timeout", server.tls_handshake_timeout),
            ("server.body_idle_timeout", server.body_idle_timeout),
        ] {
            if span.0.is_zero() {
                return Err(invalid(key, "must be longer than zero"));
            }
        }
        if self.upload.max_size.0 == 0 {
            return Err(invalid("upload.max_size", "must be larger than zero"));
        }
        if self.upload.protocols.is_empty() {
            return Err(invalid(
                "upload.protocols",
                "list at least one of \"v1\", \"v2\", \"token\", \"jwt\"",
            ));
        }
        if self.upload.delete_secret.is_some() && self.upload.delete_secret_file.is_some() {
            return Err(invalid(
                "upload.delete_secret",
                "set delete_secret or delete_secret_file, not both",
            ));
        }
        if self.retention.keep.0 < Duration::from_secs(1) {
            return Err(invalid("retention.keep", "must be at least one second"));
        }
        if self.retention.ceiling() < self.retention.keep {
            return Err(invalid(
                "retention.max",
                format!(
                    "{} is shorter than retention.keep ({}): lower keep instead",
                    self.retention.ceiling(),
                    self.retention.keep
                ),
            ));
        }
        if self.retention.sweep_every.0 < Duration::from_millis(100) {
            return Err(invalid("retention.sweep_every", "must be at least 100ms"));
        }
        let privacy = &self.privacy;
        if privacy.failed_attempt_memory.0 > Duration::from_secs(6 * 3_600)
            || privacy.failed_attempt_memory.0.is_zero()
        {
            return Err(invalid(
                "privacy.failed_attempt_memory",
                "must be longer than zero and at most \"6h\"",
            ));
        }
        if privacy.ban_after == 0 {
            return Err(invalid("privacy.ban_after", "must be at least 1"));
        }
        if privacy.ban_window.0.is_zero() || privacy.ban_for.0.is_zero() {
            return Err(invalid(
                "privacy.ban_window",
                "ban_window and ban_for must be longer than zero",
            ));
        }
        if privacy.max_remembered_addresses == 0 {
            return Err(invalid(
                "privacy.max_remembered_addresses",
                "must be at least 1",
            ));
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path", "must name a directory"));
        }
        self.validate_backends()
    }

    fn validate_backends(&self) -> Result<(), ConfigError> {
        let storage = &self.storage;
        match storage.backend {
            StorageBackend::Disk => {}
            StorageBackend::S3 => {
                let s3 = &storage.s3;
                if s3.bucket.is_empty() {
                    return Err(invalid(
                        "storage.s3.bucket",
                        "backend \"s3\" needs the bucket's name",
                    ));
                }
                if !(s3.endpoint.is_empty()
                    || s3.endpoint.starts_with("https://")
                    || s3.endpoint.starts_with("http://"))
                {
                    return Err(invalid(
                        "storage.s3.endpoint",
                        "must be empty (AWS) or start with https:// (or http:// with allow_http)",
                    ));
                }
                if s3.endpoint.starts_with("http://") && !s3.allow_http {
                    return Err(invalid(
                        "storage.s3.endpoint",
                        "is plain http://: set storage.s3.allow_http = true (local servers only)",
                    ));
                }
                if s3.secret_access_key.is_some() && s3.secret_access_key_file.is_some() {
                    return Err(invalid(
                        "storage.s3.secret_access_key",
                        "set secret_access_key or secret_access_key_file, not both",
                    ));
                }
            }
            StorageBackend::Gcs | StorageBackend::Azure => {
                let scheme = if storage.backend == StorageBackend::Gcs {
                    "gs://"
                } else {
                    "az://"
                };
                if !storage.url.starts_with(scheme) {
                    return Err(invalid(
                        "storage.url",
                        format!("must be the bucket or container URL, {scheme}<name>[/prefix]"),
                    ));
                }
            }
        }
        if storage.backend != StorageBackend::Disk {
            // The transfer settings in [storage.s3] serve GCS and Azure too.
            let s3 = &storage.s3;
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&s3.part_size.0) {
                return Err(invalid(
                    "storage.s3.part_size",
                    "must be between 5MiB and 5GiB (the part sizes S3 accepts)",
                ));
            }
            if s3.buffer_memory.0 < s3.part_size.0 {
                return Err(invalid(
                    "storage.s3.buffer_memory",
                    "must be at least part_size (an upload needs one part buffer)",
                ));
            }
            if !(1..=64).contains(&s3.parts_in_flight) {
                return Err(invalid(
                    "storage.s3.parts_in_flight",
                    "must be between 1 and 64",
                ));
            }
        }
        let offload = &self.offload;
        match offload.mode {
            OffloadMode::None => {}
            OffloadMode::Presigned => {
                if storage.backend != StorageBackend::S3 {
                    return Err(invalid(
                        "offload.mode",
                        "\"presigned\" needs storage.backend = \"s3\"",
                    ));
                }
                let ttl = offload.presigned_ttl.0;
                if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(7 * 86_400) {
                    return Err(invalid(
                        "offload.presigned_ttl",
                        "must be between 10s and 7d (S3's limit)",
                    ));
                }
            }
            OffloadMode::Cdn => {
                let url = &offload.cdn_url;
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || !url.ends_with('/')
                {
                    return Err(invalid(
                        "offload.cdn_url",
                        "mode \"cdn\" needs the CDN's base URL, ending in \"/\" (e.g. \"https://cdn.example.org/\")",
                    ));
                }
            }
        }
        if self.index.backend == IndexBackend::Postgres {
            let index = &self.index;
            match (&index.url, &index.url_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid("index.url", "set url or url_file, not both"));
                }
                (None, None) => return index.postgres_url().map(|_| ()),
                // The file is read at start.
                (None, Some(_)) => {}
                (Some(url), None) => {
                    let url = String::from_utf8_lossy(url.expose());
                    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                        return Err(invalid(
                            "index.url",
                            "must be a URL such as \"postgres://user:password@host/db\"",
                        ));
                    }
                }
            }
            if self.index.pool_size == 0 {
                return Err(invalid("index.pool_size", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The public listeners' addresses.
    pub fn listen_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        let texts = self.server.listen.as_slice();
        if texts.is_empty() {
            return Err(invalid("server.listen", "at least one address is needed"));
        }
        texts
            .iter()
            .map(|text| {
                text.trim().parse().map_err(|_| {
                    invalid(
                        "server.listen",
                        format!(
                            "{text:?} is not an address such as \"127.0.0.1:5050\" or \"[::]:5050\""
                        ),
                    )
                })
            })
            .collect()
    }

    /// The admin listener's address, if enabled.
    pub fn admin_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let text = self.server.admin_listen.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            invalid(
                "server.admin_listen",
                format!(
                    "{text:?} is not an address such as \"127.0.0.1:5051\" (or \"\" to disable)"
                ),
            )
        })
    }
}

impl UploadConfig {
    /// Whether no shared secret is configured (inline or by file).
    pub fn has_secret(&self) -> bool {
        self.secret
            .as_ref()
            .is_some_and(|s| !s.as_slice().is_empty())
            || self
                .secret_file
                .as_ref()
                .is_some_and(|s| !s.as_slice().is_empty())
    }

    /// Every configured shared secret: the inline ones, then those read from
    /// `secret_file`. Empty secrets are refused.
    pub fn secrets(&self) -> Result<Vec<Secret>, ConfigError> {
        let mut secrets: Vec<Secret> = self
            .secret
            .as_ref()
            .map(|s| s.as_slice().to_vec())
            .unwrap_or_default();
        for path in self
            .secret_file
            .as_ref()
            .map(OneOrMany::as_slice)
            .unwrap_or_default()
        {
            secrets.push(read_secret("upload.secret_file", path)?);
        }
        if secrets.iter().any(|s| s.expose().is_empty()) {
            return Err(invalid("upload.secret", "a secret must not be empty"));
        }
        Ok(secrets)
    }

    /// Metronome's delete secret, if configured.
    pub fn delete_secret(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.delete_secret, &self.delete_secret_file) {
            (Some(secret), _) if secret.expose().is_empty() => {
                Err(invalid("upload.delete_secret", "must not be empty"))
            }
            (Some(secret), _) => Ok(Some(secret.clone())),
            (None, Some(path)) => read_secret("upload.delete_secret_file", path).map(Some),
            (None, None) => Ok(None),
        }
    }
}

/// Reads a secret file; one trailing newline (as editors and `echo` add) is dropped.
fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::load(Some((text, "test.toml")), &BTreeMap::new())
    }

    #[test]
    fn defaults_alone_are_valid() {
        let config = Config::load(None, &BTreeMap::new()).unwrap();
        assert_eq!(
            config.listen_addrs().unwrap(),
            vec!["127.0.0.1:5050".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(config.server.base_path, "/");
        assert_eq!(config.storage.path, PathBuf::from("./data"));
        assert_eq!(config.retention.keep.0, Duration::from_secs(30 * 86_400));
        assert_eq!(config.retention.ceiling(), config.retention.keep);
        assert_eq!(config.retention.tombstone_horizon(), config.retention.keep);
        assert_eq!(config.upload.max_size, ByteSize(100 << 20));
        assert_eq!(config.upload.protocols.len(), 4);
        assert_eq!(config.privacy.log_client_ip, LogClientIp::None);
        assert!(!config.upload.has_secret());
        assert_eq!(
            config.admin_listen().unwrap(),
            Some("127.0.0.1:5051".parse().unwrap())
        );
    }

    #[test]
    fn design_example_parses() {
        let config = load(
            r#"
[server]
listen = ["127.0.0.1:5050", "[::1]:5050"]
base_path = "/upload/"
admin_listen = "127.0.0.1:5051"
trusted_proxies = ["127.0.0.1/32", "::1/128"]
tls = { cert = "fullchain.pem", key = "privkey.pem" }

[upload]
secret = ["new", "old"]
max_size = "1GiB"

[storage]
backend = "disk"
path = "/var/lib/upslot"

[retention]
keep = "4w"

[index]
backend = "embedded"

[privacy]
log_client_ip = "truncated"
"#,
        )
        .unwrap();
        assert_eq!(config.server.listen.as_slice().len(), 2);
        assert_eq!(config.server.trusted_proxies.len(), 2);
        assert_eq!(config.upload.secrets().unwrap().len(), 2);
        assert_eq!(config.retention.keep.0.as_secs(), 28 * 86_400);
        assert!(config.server.tls.is_some());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = load("[upload]\nsecrt = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("secrt"), "{err}");
        assert!(load("[nonsense]\n").is_err());
    }

    #[test]
    fn bad_values_say_what_to_change() {
        let err = load("[server]\nbase_path = \"upload\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.base_path"), "{err}");
        let err = load("[retention]\nkeep = \"thirty days\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("thirty days"), "{err}");
        let err = load("[storage]\nbackend = \"floppy\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("floppy"), "{err}");
        assert!(load("[upload]\nprotocols = []\n").is_err());
        let err = load("[privacy]\nfailed_attempt_memory = \"7h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("privacy.failed_attempt_memory"), "{err}");
        let err = load("[retention]\nkeep = \"30d\"\nmax = \"7d\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retention.max"), "{err}");
        assert!(load("[server]\nadmin_listen = \"localhost\"\n").is_err());
        let err = load("[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.listen") && err.contains("nowhere"),
            "{err}"
        );
        assert!(load("not toml at all [").is_err());
    }

    const S3: &str = "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\n\
                      endpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n\
                      secret_access_key = \"s3-secret-key\"\n";

    #[test]
    fn object_storage_shared_index_and_offload() {
        let config = load(&format!(
            "{S3}[index]\nbackend = \"postgres\"\nurl = \"postgres://u:pgpass@db/upslot\"\n\
             [offload]\nmode = \"presigned\"\n"
        ))
        .unwrap();
        assert_eq!(config.storage.backend, StorageBackend::S3);
        assert_eq!(config.storage.s3.part_size.0, 8 << 20);
        assert_eq!(config.storage.s3.buffer_memory.0, 128 << 20);
        assert_eq!(config.storage.s3.parts_in_flight, 8);
        assert_eq!(config.index.pool_size, 16);
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("s3-secret-key") && !printed.contains("pgpass"),
            "{printed}"
        );

        let refused = |text: &str, key: &str| {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        };
        refused("[storage]\nbackend = \"s3\"\n", "storage.s3.bucket");
        refused(
            &S3.replace("allow_http = true", "allow_http = false"),
            "allow_http",
        );
        refused(
            &format!("{S3}part_size = \"1MiB\"\n"),
            "storage.s3.part_size",
        );
        refused(
            &format!("{S3}part_size = \"6GiB\"\nbuffer_memory = \"8GiB\"\n"),
            "storage.s3.part_size",
        );
        refused(
            &format!("{S3}part_size = \"16MiB\"\nbuffer_memory = \"8MiB\"\n"),
            "storage.s3.buffer_memory",
        );
        refused(
            &format!("{S3}parts_in_flight = 0\n"),
            "storage.s3.parts_in_flight",
        );
        refused(
            "[storage]\nbackend = \"gcs\"\nurl = \"gs://b\"\n[storage.s3]\nparts_in_flight = 65\n",
            "storage.s3.parts_in_flight",
        );
        refused("[offload]\nmode = \"presigned\"\n", "offload.mode");
        refused(
            &format!("{S3}[offload]\nmode = \"presigned\"\npresigned_ttl = \"8d\"\n"),
            "presigned_ttl",
        );
        refused(
            "[offload]\nmode = \"cdn\"\ncdn_url = \"https://cdn.example\"\n",
            "offload.cdn_url",
        );
        refused("[index]\nbackend = \"postgres\"\n", "index.url");
        refused(
            "[index]\nbackend = \"postgres\"\nurl = \"mysql://x\"\n",
            "index.url",
        );
        refused(
            "[storage]\nbackend = \"gcs\"\nurl = \"s3://x\"\n",
            "storage.url",
        );
        assert!(load("[offload]\nmode = \"cdn\"\ncdn_url = \"https://cdn.example/\"\n").is_ok());
    }

    #[test]
    fn environment_overrides_file() {
        let env: BTreeMap<String, String> = [
            ("UPSLOT_UPLOAD__SECRET".to_string(), "from-env".to_string()),
            (
                "UPSLOT_SERVER__LISTEN".to_string(),
                "127.0.0.1:6000".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        let config =
            Config::load(Some(("[upload]\nsecret = \"from-file\"\n", "f.toml")), &env).unwrap();
        assert_eq!(
            config.upload.secrets().unwrap(),
            vec![Secret::new("from-env")]
        );
        assert_eq!(config.listen_addrs().unwrap()[0].port(), 6000);
    }

    #[test]
    fn secret_files_are_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let config = load(&format!(
            "[upload]\nsecret_file = {:?}\ndelete_secret_file = {:?}\n",
            path.display().to_string(),
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(
            config.upload.secrets().unwrap(),
            vec![Secret::new("s3cr3t")]
        );
        assert_eq!(
            config.upload.delete_secret().unwrap(),
            Some(Secret::new("s3cr3t"))
        );
        let missing = load("[upload]\nsecret_file = \"/nonexistent/secret\"\n").unwrap();
        let err = missing.upload.secrets().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/secret"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let config = load("[upload]\nsecret = \"hunter2\"\ndelete_secret = \"d3l3t3\"\n").unwrap();
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("hunter2") && !printed.contains("d3l3t3"),
            "{printed}"
        );
    }
}
