//! `GET /health` on the admin listener: whether storage and the index work.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};

use super::body::{self, Body};
use crate::app::App;

/// Probes blob storage (a tiny write and delete) and the index (a read).
/// 200 when both answer, 503 otherwise; the body names which part failed.
pub(super) async fn health(app: &Arc<App>) -> Response<Body> {
    let storage = app.blobs.check().await;
    let index = app.index.check().await;
    if let Err(error) = &storage {
        tracing::warn!(%error, "health: storage failed");
    }
    if let Err(error) = &index {
        tracing::warn!(%error, "health: index failed");
    }
    let word = |ok: bool| if ok { "ok" } else { "failed" };
    let healthy = storage.is_ok() && index.is_ok();
    let text = format!(
        "{{\"status\":\"{}\",\"storage\":\"{}\",\"index\":\"{}\"}}\n",
        word(healthy),
        word(storage.is_ok()),
        word(index.is_ok())
    );
    let mut response = Response::new(body::full(text));
    if !healthy {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
