//! What a policy rests on: [`Facts`] taken from the effective configuration
//! once, and [`Live`] facts read from the stored files when the policy is
//! printed. Both are plain data, so the sentence builders are pure
//! functions that tests feed by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, IndexBackend, LogClientIp, OffloadMode, Protocol, StorageBackend};
use crate::files::{Files, FilesError};

/// Everything the configuration says that a policy sentence depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `retention.keep`: from upload to deletion.
    pub keep: Duration,
    /// `retention.max` (or `keep`): the ceiling no file exceeds.
    pub ceiling: Duration,
    /// `retention.sweep_every`: how soon after expiry files are deleted.
    pub sweep_every: Duration,
    /// `retention.tombstone_horizon`: how long a deleted link's hash stays.
    pub tombstone_horizon: Duration,
    /// `privacy.log_client_ip`.
    pub log_client_ip: LogClientIp,
    /// The failed-attempt memory (`privacy.*`).
    pub attempts: Attempts,
    /// Which slots name their uploader (from `upload.protocols`).
    pub owners: Owners,
    /// Whether JWT slots are accepted (whose `expires` may shorten `keep`).
    pub jwt: bool,
    /// `server.admin_listen`, if enabled.
    pub admin_listen: Option<SocketAddr>,
    /// Encryption at rest, if new files are encrypted.
    pub encryption: Option<Encryption>,
    /// Size limits (`upload.max_size`, `[quota]`), in bytes; 0: unlimited.
    pub limits: Limits,
    /// Whether upslot itself terminates TLS (`server.tls`).
    pub tls: bool,
    /// Public listeners reachable from other machines (not loopback).
    pub exposed_listeners: Vec<SocketAddr>,
    /// How downloads are answered (`offload.mode`).
    pub downloads: Downloads,
    /// Where blobs live.
    pub storage: Storage,
    /// Whether the index is a PostgreSQL database (else a file beside the blobs).
    pub postgres_index: bool,
}

/// `[privacy]`: addresses presenting bad tokens, remembered in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// How long an address is remembered from its first failure.
    pub memory: Duration,
    /// Failures within `window` that block an address.
    pub ban_after: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long a block lasts.
    pub ban_for: Duration,
}

/// Which upload slots name their uploader, so that per-account limits and
/// account erasure reach their files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Only JWT slots (Prosody mod_http_file_share, `sub`): every slot.
    Every,
    /// JWT and/or v1 slots: every slot if v1 slots come from ejabberd;
    /// Prosody's mod_http_upload_external v1 slots name nobody.
    IfEjabberd,
    /// Families that never name an uploader (v2, Metronome) beside ones
    /// that do.
    Some,
    /// Only families that never name an uploader.
    None,
}

impl Owners {
    /// The coverage of the accepted token families `protocols`.
    pub fn of(protocols: &[Protocol]) -> Owners {
        let has = |p: Protocol| protocols.contains(&p);
        let anonymous = has(Protocol::V2) || has(Protocol::Token);
        let named = has(Protocol::Jwt) || has(Protocol::V1);
        match (named, anonymous) {
            (false, _) => Owners::None,
            (true, true) => Owners::Some,
            (true, false) if has(Protocol::V1) => Owners::IfEjabberd,
            (true, false) => Owners::Every,
        }
    }

    /// Whether per-account promises may be published (every slot, or
    /// every slot given ejabberd, names its uploader).
    pub fn covers_accounts(self) -> bool {
        match self {
            Owners::Every | Owners::IfEjabberd => true,
            Owners::Some | Owners::None => false,
        }
    }
}

/// `[encryption]` with `enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// `encryption.epoch`.
    pub epoch: Duration,
    /// The key material to keep out of long-lived backups: the keyring
    /// directory (embedded index) or the master key file (PostgreSQL).
    pub keys: PathBuf,
}

/// Size limits in bytes; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `upload.max_size`.
    pub max_size: u64,
    /// `quota.per_owner_daily` (default: ten times `max_size`).
    pub per_owner_daily: u64,
    /// `quota.per_owner_stored`.
    pub per_owner_stored: u64,
    /// `quota.global_stored`.
    pub global_stored: u64,
}

impl Limits {
    /// The limits `config` sets: its largest upload and the quotas the
    /// server enforces ([`crate::quota::Limits::of`]).
    pub fn of(config: &Config) -> Limits {
        let quota = crate::quota::Limits::of(config);
        Limits {
            max_size: config.upload.max_size.0,
            per_owner_daily: quota.per_owner_daily,
            per_owner_stored: quota.per_owner_stored,
            global_stored: quota.global_stored,
        }
    }
}

/// How a GET of a file is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downloads {
    /// upslot streams the bytes.
    Direct,
    /// A redirect to a presigned URL of the bucket.
    Bucket {
        /// The bucket's endpoint is plain `http://`.
        plain_http: bool,
    },
    /// A redirect to a CDN.
    Cdn {
        /// `offload.cdn_url` is plain `http://`.
        plain_http: bool,
    },
}

/// Where blobs live, without anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Files below `storage.path`.
    Disk,
    /// An S3-compatible store.
    S3 {
        /// The endpoint's host (no scheme, credentials or path); `None` for AWS.
        host: Option<String>,
        /// `storage.s3.region`, if set.
        region: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Facts {
    /// The facts of a valid configuration.
    pub fn from_config(config: &Config) -> Facts {
        let privacy = &config.privacy;
        let protocols = &config.upload.protocols;
        let data = &config.storage.path;
        let encryption = config.encryption.enabled.then(|| Encryption {
            epoch: config.encryption.epoch.0,
            keys: match config.index.backend {
                IndexBackend::Embedded => config.encryption.keyring_dir(data),
                IndexBackend::Postgres => config.encryption.master_key_path(data),
            },
        });
        let s3 = &config.storage.s3;
        let storage = match config.storage.backend {
            StorageBackend::Disk => Storage::Disk,
            StorageBackend::S3 => Storage::S3 {
                host: endpoint_host(&s3.endpoint),
                region: Some(s3.region.trim().to_string()).filter(|r| !r.is_empty()),
            },
            StorageBackend::Gcs => Storage::Gcs,
            StorageBackend::Azure => Storage::Azure,
        };
        let downloads = match config.offload.mode {
            OffloadMode::None => Downloads::Direct,
            OffloadMode::Presigned => Downloads::Bucket {
                plain_http: s3.endpoint.trim().starts_with("http://"),
            },
            OffloadMode::Cdn => Downloads::Cdn {
                plain_http: !config.offload.cdn_url.trim().starts_with("https://"),
            },
        };
        let tls = config.server.tls.is_some();
        // Validated at load; should it fail here, count nothing as exposed
        // rather than invent addresses.
        let exposed_listeners = config
            .listen_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|addr| !addr.ip().is_loopback())
            .collect();
        Facts {
            keep: config.retention.keep.0,
            ceiling: config.retention.ceiling().0,
            sweep_every: config.retention.sweep_every.0,
            tombstone_horizon: config.retention.tombstone_horizon().0,
            log_client_ip: privacy.log_client_ip,
            attempts: Attempts {
                memory: privacy.failed_attempt_memory.0,
                ban_after: privacy.ban_after,
                window: privacy.ban_window.0,
                ban_for: privacy.ban_for.0,
            },
            owners: Owners::of(protocols),
            jwt: protocols.contains(&Protocol::Jwt),
            admin_listen: config.admin_listen().ok().flatten(),
            encryption,
            limits: Limits::of(config),
            tls,
            exposed_listeners,
            downloads,
            storage,
            postgres_index: config.index.backend == IndexBackend::Postgres,
        }
    }
}

/// The host of an endpoint URL: no scheme, no `user:password@`, no port
/// or path. `None` for an empty endpoint (AWS).
fn endpoint_host(endpoint: &str) -> Option<String> {
    let rest = endpoint.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Where the live facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The running server answered on its admin listener.
    RunningServer,
    /// No server answered: the data directory was read directly.
    DataDirectory,
}

/// The state of the stored files when the policy is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// When (Unix seconds).
    pub now: i64,
    /// Who read it.
    pub source: Source,
    /// Files recorded (including expired ones not yet deleted).
    pub files: u64,
    /// Upload time of the oldest recorded file.
    pub oldest_created: Option<i64>,
    /// Files past their deletion time by more than the sweeper's grace,
    /// counted up to a limit.
    pub overdue: u64,
    /// Files stored unencrypted (uploaded while encryption was off).
    pub plaintext: u64,
    /// Epoch keys still held past their destruction time by more than the
    /// sweeper's grace (a stopped or failing sweeper).
    pub overdue_keys: u64,
}

impl Live {
    /// Reads the live facts of `files` at `now`. Counting plaintext files
    /// walks the index, like `upslot stats`: for occasional use.
    pub async fn read(files: &Files, now: i64, source: Source) -> Result<Live, FilesError> {
        let stats = files.stats().await?;
        let overdue = files.overdue(now).await?;
        let sealed = files.sealed_files().await?;
        // Keys are late by the same rule as files.
        let late = files.retention().overdue_cutoff(now);
        let overdue_keys = files
            .encryption()
            .epochs()
            .await?
            .iter()
            .filter(|epoch| epoch.destroy_at <= late)
            .count();
        Ok(Live {
            now,
            source,
            files: stats.files,
            oldest_created: stats.oldest_created,
            overdue: overdue.files,
            plaintext: stats.files.saturating_sub(sealed),
            overdue_keys: overdue_keys as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn facts(text: &str) -> Facts {
        Facts::from_config(&Config::load(Some((text, "t.toml")), &BTreeMap::new()).unwrap())
    }

    #[test]
    fn owners_follow_the_token_families() {
        use Protocol::*;
        assert_eq!(Owners::of(&[Jwt]), Owners::Every);
        assert_eq!(Owners::of(&[Jwt, V1]), Owners::IfEjabberd);
        assert_eq!(Owners::of(&[V1]), Owners::IfEjabberd);
        assert_eq!(Owners::of(&[V1, V2, Token, Jwt]), Owners::Some);
        assert_eq!(Owners::of(&[V2, Token]), Owners::None);
        assert!(!Owners::Some.covers_accounts());
    }

    #[test]
    fn defaults() {
        let f = facts("");
        assert_eq!(f.keep, Duration::from_secs(30 * 86_400));
        assert_eq!(f.ceiling, f.keep);
        assert_eq!(f.owners, Owners::Some);
        assert_eq!(f.limits.per_owner_daily, 1000 << 20);
        assert_eq!(
            f.encryption.unwrap().keys,
            PathBuf::from("./data/keys/epochs")
        );
        assert!(!f.tls && f.exposed_listeners.is_empty());
        assert_eq!(f.admin_listen, Some("127.0.0.1:5051".parse().unwrap()));
        assert_eq!(f.storage, Storage::Disk);
    }

    #[test]
    fn object_storage_names_only_the_host() {
        let f = facts(
            "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\n\
             endpoint = \"https://key:secret@s3.example.net:9000/path\"\n",
        );
        assert_eq!(
            f.storage,
            Storage::S3 {
                host: Some("s3.example.net".into()),
                region: None
            }
        );
        assert_eq!(endpoint_host(""), None);
        assert_eq!(endpoint_host("http://[::1]:9000"), Some("::1".into()));
        let f = facts("[server]\nlisten = [\"127.0.0.1:1\", \"0.0.0.0:2\"]\n");
        assert_eq!(f.exposed_listeners, vec!["0.0.0.0:2".parse().unwrap()]);
    }
}
