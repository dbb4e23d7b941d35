//! Metronome's signed `DELETE`, sent when a file expires on its side or its
//! uploader's account is deleted.

use std::sync::Arc;

use http::{Response, StatusCode};

use super::body::{self, Body};
use super::error::ApiError;
use crate::app::App;
use crate::auth::{QueryTokens, SlotPath};

/// Deletes the file at `path` if the request is signed with the delete
/// secret. Answers 204 whether or not a file was there (DELETE is
/// idempotent, and Metronome only needs to know it is gone).
pub(super) async fn delete(
    app: &Arc<App>,
    query: Option<&str>,
    path: &SlotPath,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    app.verifier
        .authorize_delete(path, &QueryTokens::parse(query))?;
    let key = app.index_key.slot(path);
    // The blob goes first: a row never outlives its promise to be gone.
    if let Some(record) = app.index.get(key).await? {
        app.blobs.delete(&record.blob).await?;
        // The tombstone keeps the URL from taking a new upload.
        app.index.remove(&[key], now).await?;
        tracing::info!("file deleted on request of the XMPP server");
    }
    app.forget(key).await;
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}
