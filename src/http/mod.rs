//! HTTP: routing, handlers, and the headers every response carries.
//!
//! [`serve_public`] is the whole life of one request on the public
//! listener: give it an id, route it, run its handler, turn any
//! [`ApiError`] into a response, add CORS and security headers, and write
//! one log line (no path, no token, no address unless configured).

mod admin;
pub mod body;
pub mod cors;
mod delete;
mod download;
pub mod error;
pub mod file_headers;
mod health;
pub mod range;
pub mod route;
mod upload;

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
use crate::app::App;
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
            app.metrics.record_banned_request();
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
    app.metrics.record_failed_attempt();
    if app.attempts.record_failure(client, now) == Failure::Banned {
        app.metrics.record_ban();
        tracing::warn!(
            client.ip = privacy::loggable(client, app.settings.log_client_ip),
            ban_s = app.settings.ban_policy.ban.as_secs(),
            "client banned after repeated failed attempts"
        );
    }
}

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
    match route {
        Route::Preflight => Ok(app.settings.cors.preflight()),
        Route::Download { path, head } => {
            let (parts, _) = request.into_parts();
            download::get(app, &parts, &path, head, now).await
        }
        Route::Upload(path) => upload::put(app, request, path, now).await,
        Route::Delete(path) => delete::delete(app, request.uri().query(), &path, now).await,
    }
}

/// Serves one request on the admin listener (see [`admin`]).
pub async fn serve_admin(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let request_id = app.request_id();
    let uri = request.uri();
    let response = admin::route(&app, request.method(), uri.path(), uri.query(), request_id).await;
    Ok(response)
}
