//! HTTP: one request's life, and the state its handlers share ([`App`]).
//!
//! [`serve_public`] is the whole life of one request on the public
//! listener: give it an id, check the ban list, route it ([`route`]),
//! authorise it ([`crate::auth`], giving the handler a typed grant), run
//! its handler, turn any [`ApiError`] into a response (in [`error`], the
//! one place that maps failures to statuses), add CORS and security
//! headers, and write one log line (no path, no token, no address unless
//! configured). [`serve_admin`] does the same for the admin listener.

mod admin;
mod app;
pub mod body;
pub mod cors;
mod delete;
mod download;
pub mod error;
pub mod file_headers;
mod health;
pub mod range;
pub mod route;
mod sentence;
mod traffic;
mod upload;

pub use app::{App, Offload, Settings};
pub use health::HealthReport;
pub use traffic::Traffic;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, header};
use hyper::body::Incoming;
use tracing::Instrument as _;

use self::body::Body;
pub use self::error::ApiError;
use self::route::Route;
use crate::auth::{PutRequest, QueryTokens};
use crate::privacy;
use crate::privacy::attempts::Failure;

/// Serves one request on the public listener.
pub async fn serve_public(
    app: Arc<App>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let request_id = app.request_id();
    let now = crate::time::unix_now();
    let method = request.method().clone();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let client = app.client_ip(peer.ip(), request.headers());

    let result = match app.attempts.banned(client, now) {
        Some(retry_after) => {
            app.attempts.record_refusal();
            Err(ApiError::Banned { retry_after })
        }
        None => {
            let span = tracing::info_span!("request", request_id);
            dispatch(&app, request, now).instrument(span).await
        }
    };
    if let Err(error) = &result
        && error.is_auth_failure()
    {
        count_failure(&app, client, now);
    }
    let (mut response, code) = match result {
        Ok(response) => (response, None),
        Err(error) => {
            let code = error.code();
            (error.into_response(request_id), Some(code))
        }
    };
    let headers = response.headers_mut();
    app.settings.cors.apply(origin.as_ref(), headers);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-request-id", HeaderValue::from(request_id));

    let client = privacy::loggable(client, app.settings.log_client_ip);
    // Reads that succeed are the bulk of the traffic and say nothing an
    // operator needs: they log at debug (a line per GET cost about 5 µs, a
    // quarter of a cached small GET). Uploads, deletions and every error
    // log at info.
    let routine = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && code.is_none();
    app.traffic.record(&method, response.status(), code);
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_millis() as u64;
    if routine {
        tracing::debug!(request_id, method = %method, status, duration_ms, client.ip = client, "request");
    } else {
        tracing::info!(
            request_id,
            method = %method,
            status,
            error.code = code,
            duration_ms,
            client.ip = client,
            "request"
        );
    }
    Ok(response)
}

/// Remembers a failed attempt by `client` (in memory only).
fn count_failure(app: &App, client: std::net::IpAddr, now: i64) {
    if app.attempts.record_failure(client, now) == Failure::Banned {
        tracing::warn!(
            client.ip = privacy::loggable(client, app.settings.log_client_ip),
            ban_s = app.attempts.ban_duration().as_secs(),
            "client banned after repeated failed attempts"
        );
    }
}

/// Route, authorise, handle: every handler that changes something gets a
/// grant, never the raw request head.
async fn dispatch(
    app: &Arc<App>,
    request: Request<Incoming>,
    now: i64,
) -> Result<Response<Body>, ApiError> {
    let route = route::route(
        request.method(),
        request.uri().path(),
        &app.settings.base_path,
    )?;
    let (parts, body) = request.into_parts();
    match route {
        Route::Preflight => Ok(app.settings.cors.preflight()),
        Route::Download { path, head } => {
            download::get(app, &parts.headers, &path, head, now).await
        }
        Route::Upload(path) => {
            // hyper knows the exact length from Content-Length (or 0 for a
            // request with neither Content-Length nor chunked encoding).
            let length = hyper::body::Body::size_hint(&body).exact();
            let request = PutRequest::of(&parts.headers, parts.uri.query(), length);
            let grant = app.verifier.authorize_put(path, &request, now)?;
            upload::put(app, grant, body, now).await
        }
        Route::Delete(path) => {
            let query = QueryTokens::parse(parts.uri.query());
            let grant = app.verifier.authorize_delete(path, &query)?;
            delete::delete(app, grant, now).await
        }
    }
}

/// Serves one request on the admin listener (see [`admin`]); refusals and
/// failures are logged with their code, never with the path (it may hold a
/// JID).
pub async fn serve_admin(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let request_id = app.request_id();
    let uri = request.uri();
    let result = admin::serve(&app, request.method(), uri.path(), uri.query()).await;
    Ok(result.unwrap_or_else(|error| {
        tracing::warn!(
            request_id,
            status = error.status().as_u16(),
            error.code = error.code(),
            "admin request refused"
        );
        error.into_response(request_id)
    }))
}
