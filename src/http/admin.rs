//! The admin listener: health, metrics and retention reports. It must never
//! be reachable from outside (default 127.0.0.1:5051).
//!
//! - `GET /health`: storage and index reachability (200 or 503);
//! - `GET /metrics`: Prometheus text;
//! - `GET /stats`: counts, bytes and an age histogram (`upslot stats`);
//! - `GET /sweep`: what a pass would delete now (`upslot sweep --dry-run`);
//! - `POST /sweep`: run a pass now (`upslot sweep`);
//! - `DELETE /owners/{jid}?ts=<unix time>&sig=<hex>`: erase every file of
//!   an account (`upslot erase`, Prosody's `mod_upslot_erase`). The
//!   signature is HMAC-SHA256 under the shared secret of
//!   `"erase\0" + jid + "\0" + ts`, and `ts` must be within 5 minutes of now.

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::body::{self, Body};
use super::error::ApiError;
use super::health;
use crate::app::App;
use crate::auth::{PathError, TokenError};
use crate::deletion::DeletionError;
use crate::erase::erase;
use crate::sweeper;
use crate::time::unix_now;

/// Answers one admin request.
pub(super) async fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: Option<&str>,
    request_id: u64,
) -> Response<Body> {
    let now = unix_now();
    if let Some(jid) = path.strip_prefix("/owners/") {
        let result = match *method {
            Method::DELETE => erase_owner(app, jid, query, now).await,
            _ => Err(ApiError::MethodNotAllowed),
        };
        if let Err(error) = &result {
            tracing::warn!(error.code = error.code(), "erase request refused");
        }
        return result.unwrap_or_else(|error| error.into_response(request_id));
    }
    let result = match (method, path) {
        (&Method::GET | &Method::HEAD, "/health") => return health::health(app).await,
        (&Method::GET, "/metrics") => crate::metrics::render(app, now)
            .await
            .map(|text| text_response(text, "text/plain; version=0.0.4; charset=utf-8"))
            .map_err(ApiError::from),
        (&Method::GET, "/stats") => sweeper::stats(app, now)
            .await
            .map(|text| text_response(text, "text/plain; charset=utf-8"))
            .map_err(ApiError::from),
        (&Method::GET, "/sweep") => sweeper::preview(app, now)
            .await
            .map(|text| text_response(text, "text/plain; charset=utf-8"))
            .map_err(sweep_error),
        (&Method::POST, "/sweep") => run_pass(app, now).await,
        (_, "/health" | "/metrics" | "/stats" | "/sweep") => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound),
    };
    result.unwrap_or_else(|error| error.into_response(request_id))
}

async fn run_pass(app: &App, now: i64) -> Result<Response<Body>, ApiError> {
    let report = sweeper::pass(app, now, &CancellationToken::new())
        .await
        .map_err(|error| {
            app.metrics.record_failure();
            sweep_error(error)
        })?;
    app.metrics.record_pass(&report, unix_now());
    tracing::info!(
        files = report.files,
        "retention pass requested on the admin listener"
    );
    let text = format!(
        "deleted {} files ({} bytes); backstop removed {} day prefixes ({} files); \
         forgot {} tombstones; removed {} abandoned uploads; took {} ms\n",
        report.files,
        report.bytes,
        report.backstop_days,
        report.backstop_files,
        report.tombstones_forgotten,
        report.abandoned_uploads,
        report.duration.as_millis()
    );
    Ok(text_response(text, "text/plain; charset=utf-8"))
}

/// `DELETE /owners/{jid}`: checks the signature, then erases.
async fn erase_owner(
    app: &App,
    wire_jid: &str,
    query: Option<&str>,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let jid = percent_encoding::percent_decode_str(wire_jid)
        .decode_utf8()
        .map_err(|_| ApiError::BadPath(PathError::BadEscape))?;
    if jid.is_empty() || jid.contains(['/', '\0']) {
        return Err(ApiError::BadPath(PathError::Shape));
    }
    let (mut ts, mut sig) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("ts", value)) => ts = value.parse::<i64>().ok(),
            Some(("sig", value)) => sig = Some(value),
            _ => {}
        }
    }
    let (Some(ts), Some(sig)) = (ts, sig) else {
        return Err(ApiError::Token(TokenError::Missing { bearer: false }));
    };
    app.verifier.authorize_erase(&jid, ts, sig, now)?;
    let deleted = erase(app, &jid, now).await.map_err(sweep_error)?;
    tracing::info!(
        files = deleted,
        "account erased on request of the XMPP server"
    );
    Ok(text_response(
        format!("{{\"deleted\":{deleted}}}\n"),
        "application/json",
    ))
}

fn sweep_error(error: DeletionError) -> ApiError {
    match error {
        DeletionError::Index(e) => e.into(),
        DeletionError::Storage(e) => e.into(),
    }
}

fn text_response(text: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
