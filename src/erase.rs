//! Account erasure: when an XMPP account is deleted, every file it uploaded
//! goes at once, whatever its retention.
//!
//! Files know their uploader only as a keyed pseudonym
//! ([`crate::index::IndexKey::owner`]): of the JWT `sub` for Prosody's
//! mod_http_file_share, of the `sha1(user@host)` path segment for ejabberd.
//! Prosody's mod_http_upload_external (v1/v2) and Metronome slots name no
//! uploader; Metronome deletes those itself with signed DELETEs.

use crate::app::App;
use crate::auth::Uploader;
use crate::deletion::{DeletionError, delete_files};

/// Files deleted per batch.
const BATCH: usize = 1000;

/// Deletes every file uploaded by `jid` (a bare JID as the XMPP server
/// writes it; a resource is ignored) at Unix time `now`; returns how many.
pub async fn erase(app: &App, jid: &str, now: i64) -> Result<u64, DeletionError> {
    let bare = jid.split_once('/').map_or(jid, |(bare, _)| bare);
    let owner = app.index_key.owner(&Uploader::Jid(bare.to_string()));
    let mut total = 0;
    loop {
        let batch = app.index.owned_by(owner, BATCH).await?;
        let full = batch.len() == BATCH;
        total += delete_files(app, batch, now).await?.0;
        if !full {
            return Ok(total);
        }
    }
}
