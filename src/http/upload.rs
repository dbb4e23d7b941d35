//! `PUT`, authorised: stream the body into a new file of the data layer.
//!
//! The body is never held whole: chunks go to the blob as they arrive,
//! counted against the size the grant allows. The data layer makes the blob
//! durable before the index row exists, and of uploads racing for one slot
//! exactly one wins. A client refused before its body is read sees its
//! connection close mid-send (a broken pipe, not the status), so only what
//! is known from the head is refused early (size limit, a slot that holds
//! or held a file, a full disk). A failure at any point drops the upload,
//! which removes the partial blob.

use std::time::Duration;

use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::app::App;
use super::body::{self, Body};
use super::error::ApiError;
use crate::auth::PutGrant;
use crate::files::{NewFile, Upload};

/// Handles a PUT granted by `grant` that arrived at Unix time `now`.
pub(super) async fn put(
    app: &App,
    grant: PutGrant,
    incoming: Incoming,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    if grant.length > app.settings.max_size {
        return Err(ApiError::TooLarge {
            limit: app.settings.max_size,
        });
    }
    let file = NewFile {
        size: grant.length,
        content_type: grant.content_type,
        expires: grant.expires,
        owner: grant.uploader,
    };
    let mut upload = app.files.begin_upload(&grant.path, file, now).await?;
    receive(
        incoming,
        &mut upload,
        grant.length,
        app.settings.body_idle_timeout,
    )
    .await?;
    app.files.finish_upload(upload).await?;
    app.traffic.uploaded(grant.length);
    tracing::info!(
        file.size_bytes = grant.length,
        protocol = ?grant.protocol,
        "file stored"
    );
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// Copies the body into `upload`, enforcing exactly `length` bytes and at
/// most `idle` between chunks.
async fn receive(
    mut incoming: Incoming,
    upload: &mut Upload,
    length: u64,
    idle: Duration,
) -> Result<(), ApiError> {
    let mut received: u64 = 0;
    loop {
        let frame = match tokio::time::timeout(idle, incoming.frame()).await {
            Err(_) => return Err(ApiError::BodyTimeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ApiError::Incomplete),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we use
        };
        received = received.saturating_add(data.len() as u64);
        if received > length {
            return Err(ApiError::BodyTooLong);
        }
        upload.write(data).await?;
    }
    if received != length {
        return Err(ApiError::Incomplete);
    }
    Ok(())
}
