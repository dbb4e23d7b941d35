//! The state every request handler sees.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::cors::Cors;
use super::traffic::Traffic;
use crate::auth::Verifier;
use crate::config::{Cidr, LogClientIp};
use crate::files::Files;
use crate::policy;
use crate::privacy::attempts::FailedAttempts;
use crate::storage::Presign;
use crate::sweeper::SweepMetrics;

/// Per-request settings taken from the config once, at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// URL prefix in front of slot paths.
    pub base_path: String,
    /// Largest accepted upload in bytes.
    pub max_size: u64,
    /// How long an upload body may stall.
    pub body_idle_timeout: Duration,
    /// CORS policy.
    pub cors: Cors,
    /// How much of client addresses may be logged.
    pub log_client_ip: LogClientIp,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Whether downloads are answered by a redirect.
    pub offload: Offload,
}

/// How a GET of a file is answered.
#[derive(Clone)]
pub enum Offload {
    /// upslot streams the bytes.
    None,
    /// A redirect to a presigned URL of the object store, valid for `ttl`
    /// (never beyond the file's expiry).
    Presigned {
        /// The longest a presigned URL is valid.
        ttl: Duration,
        /// Who signs the URLs.
        presigner: Arc<dyn Presign>,
    },
    /// A redirect to `base_url` followed by the blob's key.
    Cdn {
        /// The CDN's base URL, ending in `/`.
        base_url: String,
    },
}

impl fmt::Debug for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offload::None => f.write_str("None"),
            Offload::Presigned { ttl, .. } => {
                f.debug_struct("Presigned").field("ttl", ttl).finish()
            }
            Offload::Cdn { base_url } => f.debug_struct("Cdn").field("base_url", base_url).finish(),
        }
    }
}

/// Everything a request handler needs.
pub struct App {
    /// Stored files (the data layer).
    pub files: Arc<Files>,
    /// Slot token checks.
    pub verifier: Verifier,
    /// Settings.
    pub settings: Settings,
    /// What the sweeper did, for `/metrics` and passes run on request.
    pub sweep_metrics: Arc<SweepMetrics>,
    /// Addresses with failed attempts, in memory only.
    pub attempts: FailedAttempts,
    /// What the configuration promises, for `GET /policy`.
    pub policy: policy::Facts,
    /// Requests, refusals, bytes and connections, for `/metrics`.
    pub traffic: Traffic,
    next_request_id: AtomicU64,
}

impl App {
    /// Assembles the state.
    pub fn new(
        files: Arc<Files>,
        verifier: Verifier,
        settings: Settings,
        sweep_metrics: Arc<SweepMetrics>,
        attempts: FailedAttempts,
        policy: policy::Facts,
        traffic: Traffic,
    ) -> App {
        App {
            files,
            verifier,
            settings,
            sweep_metrics,
            attempts,
            policy,
            traffic,
            next_request_id: AtomicU64::new(1),
        }
    }

    /// A fresh id to correlate a request's log lines and response.
    pub fn request_id(&self) -> u64 {
        self.next_request_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The client address to use for `peer`, honouring forwarding headers
    /// (`Forwarded`, else `X-Forwarded-For`) only from trusted proxies.
    pub fn client_ip(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::privacy::client_ip(peer, headers, &self.settings.trusted_proxies)
    }
}
