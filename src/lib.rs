//! upslot: the storage side of XMPP HTTP File Upload (XEP-0363).
//!
//! An XMPP server hands a client a PUT URL signed with a secret it shares
//! with upslot. Data flows one way:
//!
//! ```text
//! listener ─▶ server (connection cap, timeouts, TLS, drain)
//!          ─▶ http::serve_public: request id, ban check
//!               ─▶ http::route (typed Route)
//!               ─▶ auth (route + head + now ─▶ PutGrant / DeleteGrant, or a refusal)
//!               ─▶ handler (upload, download, delete, preflight)
//!               ─▶ files (the data layer) ─▶ encryption (seal / open)
//!                                            ─▶ storage (blobs) + index (records)
//!          ─▶ ApiError ─▶ status + stable code, one log line without personal data
//!
//! sweeper (every sweep_every, one replica at a time) ─▶ files
//! http::serve_admin: /health, /metrics, /stats, /sweep, /policy, erase (EraseGrant),
//!                   access (AccessGrant) ─▶ files
//! ```
//!
//! Rooms, and what each owns:
//! - [`cli`]: the commands and their text output; [`access`]: the
//!   right-of-access report (JSON and text); [`bootstrap`] and
//!   [`keys`]: a valid [`config`] made into running parts;
//! - [`server`]: sockets, TLS, limits, drain; [`http`]: one request's life;
//!   [`auth`]: grants; [`privacy`]: client addresses and failed attempts;
//! - [`files`]: blobs and records made and unmade together; [`retention`]:
//!   the rules of a file's life; [`quota`]: the rules of how much may be
//!   uploaded and stored; [`sweeper`]: deleting on time;
//! - [`encryption`]: sealing blobs under per-file keys, epoch keys and
//!   their destruction (crypto-shredding);
//! - [`policy`]: the privacy-policy sentences the configuration and the
//!   stored files make true (`upslot policy`);
//! - [`storage`] and [`index`]: the backends behind small traits;
//! - [`metrics`], [`time`], [`shutdown`], [`telemetry`]: leaves.
//!
//! Storage names are random ([`storage::BlobName`]); the index is keyed by
//! `HMAC(index_key, path)`, so nothing at rest reveals a file name, JID or IP.

pub mod access;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod encryption;
pub mod files;
pub mod http;
pub mod index;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod privacy;
pub mod quota;
pub mod retention;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
pub mod time;
