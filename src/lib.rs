//! upslot: the storage side of XMPP HTTP File Upload (XEP-0363).
//!
//! An XMPP server hands a client a PUT URL signed with a secret it shares
//! with upslot. The request flow:
//!
//! ```text
//! TCP/TLS ─▶ server (connection cap, header timeout, graceful drain)
//!         ─▶ http::serve_public: request id, route::route ─▶ Route
//!              PUT    ─▶ auth::Verifier::authorize_put (pure: path, headers, now)
//!                     ─▶ upload: stream body ─▶ storage::BlobWriter ─▶ commit
//!                     ─▶ index::Index::insert (atomic: one winner per slot)
//!              GET/HEAD ─▶ App::lookup (moka cache ─▶ index) ─▶ expiry check
//!                     ─▶ conditionals, range ─▶ storage::BlobStore::read (stream)
//!              DELETE ─▶ Metronome's signed delete
//!              OPTIONS ─▶ CORS preflight
//!         ─▶ ApiError ─▶ status + stable code, one log line without personal data
//! ```
//!
//! The sweeper deletes files (blob, then index row) once `expires_at` passes.
//!
//! Storage names are random ([`storage::BlobName`]); the index is keyed by
//! `HMAC(index_key, path)`, so nothing at rest reveals a file name, JID or IP.

pub mod admin_client;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod deletion;
pub mod erase;
pub mod http;
pub mod index;
pub mod metrics;
pub mod privacy;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
pub mod time;
