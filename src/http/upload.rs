//! `PUT`: authorise, stream the body to a new blob, commit, then record it.
//!
//! The body is never held whole: chunks go to the blob writer as they
//! arrive, counted against the size the slot allows. The index row is
//! written only after the blob is durable, and the row insert is atomic, so
//! of uploads racing for one slot exactly one wins; the losers' blobs are
//! deleted. Racing uploads are not refused early: a client refused before
//! its body is read sees its connection close mid-send (a broken pipe, not
//! the 409), and a retry after a dropped connection must not wait for the
//! server to notice the old one. A failure at any point drops the writer, which removes the
//! partial blob.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};

use super::body::{self, Body};
use super::error::ApiError;
use crate::app::App;
use crate::auth::{PutRequest, QueryTokens, SlotPath, TokenError};
use crate::index::{FileRecord, Inserted};
use crate::storage::{BlobMeta, BlobName, BlobWriter};

/// Handles a PUT of `path` that arrived at Unix time `now`.
pub(super) async fn put(
    app: &Arc<App>,
    request: Request<Incoming>,
    path: SlotPath,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let (parts, incoming) = request.into_parts();
    let header_bytes = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &http::HeaderValue| v.as_bytes())
    };
    let grant = app.verifier.authorize_put(
        &path,
        &PutRequest {
            query: QueryTokens::parse(parts.uri.query()),
            authorization: header_bytes(header::AUTHORIZATION),
            // hyper knows the exact length from Content-Length (or 0 for a
            // request with neither Content-Length nor chunked encoding).
            content_length: incoming.size_hint().exact(),
            content_type: header_bytes(header::CONTENT_TYPE),
        },
        now,
    )?;
    if grant.length > app.settings.max_size {
        return Err(ApiError::TooLarge {
            limit: app.settings.max_size,
        });
    }
    let expires_at = expires_at(now, app.settings.retention.keep, grant.expires)?;
    let key = app.index_key.slot(&path);
    if app.index.get(key).await?.is_some() {
        return Err(ApiError::SlotTaken);
    }
    if app.index.tombstone(key).await?.is_some() {
        return Err(ApiError::SlotUsed);
    }

    let blob = BlobName::new(now);
    let meta = BlobMeta {
        content_type: grant.content_type.clone(),
        max_age: u64::try_from(expires_at - now).unwrap_or(0),
    };
    let mut writer = app.blobs.create(&blob, grant.length, &meta).await?;
    receive(
        incoming,
        writer.as_mut(),
        grant.length,
        app.settings.body_idle_timeout,
    )
    .await?;
    writer.commit().await?;

    let record = FileRecord {
        blob: blob.clone(),
        size: grant.length,
        content_type: grant.content_type,
        created: now,
        expires_at,
        owner: grant.uploader.as_ref().map(|u| app.index_key.owner(u)),
    };
    let inserted = app.index.insert(key, record).await;
    if !matches!(inserted, Ok(Inserted::Created))
        && let Err(error) = app.blobs.delete(&blob).await
    {
        tracing::error!(%error, "could not delete the blob of a refused upload");
    }
    match inserted? {
        Inserted::Created => {
            app.forget(key).await;
            tracing::info!(
                file.size_bytes = grant.length,
                protocol = ?grant.protocol,
                "file stored"
            );
            let mut response = Response::new(body::empty());
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        }
        Inserted::Exists => Err(ApiError::SlotTaken),
        Inserted::Gone => Err(ApiError::SlotUsed),
    }
}

/// When the file must be gone: `keep` after upload, or the token's
/// `expires` if earlier. A token whose `expires` has already passed cannot
/// start an upload.
fn expires_at(now: i64, keep: Duration, token_expires: Option<i64>) -> Result<i64, ApiError> {
    let kept = now.saturating_add(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX));
    let expires_at = token_expires.map_or(kept, |t| t.min(kept));
    if expires_at <= now {
        return Err(ApiError::Token(TokenError::Expired));
    }
    Ok(expires_at)
}

/// Copies the body into `writer`, enforcing exactly `length` bytes and at
/// most `idle` between chunks.
async fn receive(
    mut incoming: Incoming,
    writer: &mut dyn BlobWriter,
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
        writer.write(data).await?;
    }
    if received != length {
        return Err(ApiError::Incomplete);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_takes_the_earlier_time() {
        let day = Duration::from_secs(86_400);
        assert_eq!(expires_at(1000, day, None).unwrap(), 1000 + 86_400);
        assert_eq!(expires_at(1000, day, Some(5000)).unwrap(), 5000);
        assert_eq!(
            expires_at(1000, day, Some(10_000_000)).unwrap(),
            1000 + 86_400
        );
        assert!(matches!(
            expires_at(1000, day, Some(1000)),
            Err(ApiError::Token(TokenError::Expired))
        ));
    }
}
