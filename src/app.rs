//! The shared state every request handler sees.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;

use crate::auth::Verifier;
use crate::config::{Cidr, LogClientIp};
use crate::http::cors::Cors;
use crate::index::{FileRecord, Index, IndexError, IndexKey, SlotKey};
use crate::metrics::Metrics;
use crate::privacy::attempts::{BanPolicy, FailedAttempts};
use crate::storage::BlobStore;

/// Per-request settings taken from the config once, at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// URL prefix in front of slot paths.
    pub base_path: String,
    /// Largest accepted upload in bytes.
    pub max_size: u64,
    /// How long files are kept.
    pub retention: Retention,
    /// How long an upload body may stall.
    pub body_idle_timeout: Duration,
    /// CORS policy.
    pub cors: Cors,
    /// How much of client addresses may be logged.
    pub log_client_ip: LogClientIp,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// When failed attempts ban an address.
    pub ban_policy: BanPolicy,
    /// Whether downloads are answered by a redirect.
    pub offload: Offload,
}

/// How a GET of a file is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offload {
    /// upslot streams the bytes.
    None,
    /// A redirect to a presigned URL of the object store, valid for `ttl`
    /// (never beyond the file's expiry).
    Presigned {
        /// The longest a presigned URL is valid.
        ttl: Duration,
    },
    /// A redirect to `base_url` followed by the blob's key.
    Cdn {
        /// The CDN's base URL, ending in `/`.
        base_url: String,
    },
}

/// The retention settings.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// From upload to deletion.
    pub keep: Duration,
    /// The ceiling no file may exceed.
    pub max: Duration,
    /// Time between sweeper passes.
    pub sweep_every: Duration,
    /// How long deleted slots stay single-use.
    pub tombstone_horizon: Duration,
}

impl Retention {
    /// When `record` stops being served: its `expires_at`, or the
    /// `max` ceiling counted from its creation if that is earlier.
    pub fn expiry_of(&self, record: &FileRecord) -> i64 {
        let max = i64::try_from(self.max.as_secs()).unwrap_or(i64::MAX / 4);
        record.expires_at.min(record.created.saturating_add(max))
    }
}

/// Everything a request handler needs.
pub struct App {
    /// Slot token checks.
    pub verifier: Verifier,
    /// Keys index entries and owner pseudonyms.
    pub index_key: IndexKey,
    /// Blob storage.
    pub blobs: Arc<dyn BlobStore>,
    /// File metadata.
    pub index: Arc<dyn Index>,
    /// Settings.
    pub settings: Settings,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Addresses with failed attempts, in memory only.
    pub attempts: FailedAttempts,
    files: FileCache,
    next_request_id: AtomicU64,
}

impl App {
    /// Assembles the state.
    pub fn new(
        verifier: Verifier,
        index_key: IndexKey,
        blobs: Arc<dyn BlobStore>,
        index: Arc<dyn Index>,
        settings: Settings,
    ) -> App {
        App {
            attempts: FailedAttempts::new(settings.ban_policy),
            verifier,
            index_key,
            blobs,
            index,
            settings,
            metrics: Metrics::default(),
            files: FileCache::new(),
            next_request_id: AtomicU64::new(1),
        }
    }

    /// A fresh id to correlate a request's log lines and response.
    pub fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The record of `key`, through the lookup cache.
    pub async fn lookup(&self, key: SlotKey) -> Result<Option<Arc<FileRecord>>, IndexError> {
        self.files.lookup(self.index.as_ref(), key).await
    }

    /// Drops what the lookup cache holds for `key` (after a write).
    pub async fn forget(&self, key: SlotKey) {
        self.files.forget(key).await;
    }

    /// The client address to use for `peer`, honouring forwarding headers
    /// (`Forwarded`, else `X-Forwarded-For`) only from trusted proxies.
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::privacy::client_ip(peer, headers, &self.settings.trusted_proxies)
    }
}

/// Recent index lookups: found records for a while, misses briefly (so a
/// flood of requests for unknown URLs does not reach the index).
struct FileCache {
    found: Cache<SlotKey, Arc<FileRecord>>,
    missing: Cache<SlotKey, ()>,
}

impl FileCache {
    fn new() -> FileCache {
        FileCache {
            found: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            missing: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
        }
    }

    async fn lookup(
        &self,
        index: &dyn Index,
        key: SlotKey,
    ) -> Result<Option<Arc<FileRecord>>, IndexError> {
        if let Some(record) = self.found.get(&key).await {
            return Ok(Some(record));
        }
        if self.missing.contains_key(&key) {
            return Ok(None);
        }
        match index.get(key).await? {
            Some(record) => {
                let record = Arc::new(record);
                self.found.insert(key, Arc::clone(&record)).await;
                Ok(Some(record))
            }
            None => {
                self.missing.insert(key, ()).await;
                Ok(None)
            }
        }
    }

    async fn forget(&self, key: SlotKey) {
        self.found.invalidate(&key).await;
        self.missing.invalidate(&key).await;
    }
}
