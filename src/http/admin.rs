//! The admin listener: health, metrics, retention reports, account
//! erasure and the right of access. It must never be reachable from
//! outside (default 127.0.0.1:5051).
//!
//! - `GET /health`: storage and index reachability (200 or 503), for
//!   readiness;
//! - `GET /live`: 200 whenever the process serves HTTP, for liveness;
//! - `GET /metrics`: Prometheus text;
//! - `GET /stats`: counts, bytes and an age histogram (`upslot stats`);
//! - `GET /sweep`: what a pass would delete now (`upslot sweep --dry-run`);
//! - `POST /sweep`: run a pass now (`upslot sweep`);
//! - `GET /policy`, `GET /policy/providers`: the privacy-policy sentences
//!   (Markdown) or XMPP Providers fields (JSON) of this server's own
//!   configuration and files (`upslot policy`);
//! - `DELETE /owners/{jid}?ts=<unix time>&sig=<hex>`: erase every file of
//!   an account (`upslot erase`, Prosody's `mod_upslot_erase`); see
//!   [`crate::auth::erase`] for the signature;
//! - `GET /owners/{jid}?ts=<unix time>&sig=<hex>`: what is held for an
//!   account, as [`crate::access`]'s JSON (`upslot access`); see
//!   [`crate::auth::access`] for the signature.

use http::{HeaderValue, Method, Response, header};
use tokio_util::sync::CancellationToken;

use super::app::App;
use super::body::{self, Body};
use super::error::ApiError;
use super::health;
use super::route::{AdminRoute, route_admin};
use crate::access::AccessReport;
use crate::auth::access::AccessQuery;
use crate::auth::erase::EraseQuery;
use crate::auth::{AccessGrant, EraseGrant};
use crate::metrics::{self, Exposition};
use crate::policy::{self, Live, Source};
use crate::sweeper::{self, report};
use crate::time::unix_now;

/// Answers one admin request: route, authorise (erasure and access only),
/// handle.
pub(super) async fn serve(
    app: &App,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let now = unix_now();
    match route_admin(method, path)? {
        AdminRoute::Health => {
            let report = health::probe(&app.files).await;
            if !report.is_healthy() {
                return Err(ApiError::Unhealthy(report));
            }
            Ok(text(report.json(), "application/json"))
        }
        AdminRoute::Live => Ok(text(
            "{\"status\":\"ok\"}\n".to_string(),
            "application/json",
        )),
        AdminRoute::Metrics => Ok(text(scrape(app, now).await, metrics::CONTENT_TYPE)),
        AdminRoute::Stats => Ok(text(report::stats(&app.files, now).await?, TEXT)),
        AdminRoute::SweepPreview => Ok(text(report::preview(&app.files, now).await?, TEXT)),
        AdminRoute::Sweep => run_pass(app, now).await,
        AdminRoute::Policy(format) => {
            let live = Live::read(&app.files, now, Source::RunningServer).await?;
            Ok(text(
                policy::render(&app.policy, &live, format),
                format.content_type(),
            ))
        }
        AdminRoute::Erase { jid } => {
            let grant = app
                .verifier
                .authorize_erase(&jid, &EraseQuery::parse(query)?, now)?;
            erase(app, grant, now).await
        }
        AdminRoute::Access { jid } => {
            let grant = app
                .verifier
                .authorize_access(&jid, &AccessQuery::parse(query)?, now)?;
            access(app, grant, now).await
        }
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// `GET /metrics`. Storage and the index are probed first, as `/health`
/// does; the gauges read from the index are left out while it fails
/// (without waiting for it a second time), but the scrape still answers,
/// so `upslot_index_up` can raise the alert.
async fn scrape(app: &App, now: i64) -> String {
    let health = health::probe(&app.files).await;
    let mut out = Exposition::new();
    let up = |ok: bool| u8::from(ok);
    out.gauge(
        "upslot_storage_up",
        "1 when blob storage answered this scrape's probe, else 0.",
        up(health.storage),
    );
    out.gauge(
        "upslot_index_up",
        "1 when the index answered this scrape's probe, else 0.",
        up(health.index),
    );
    app.files.expose_counters(&mut out);
    if health.index
        && let Err(error) = app.files.expose_gauges(now, &mut out).await
    {
        tracing::warn!(%error, "metrics: the index gauges could not be read");
    }
    app.sweep_metrics.expose(&mut out);
    app.attempts.expose(&mut out);
    app.traffic.expose(&mut out);
    out.finish()
}

/// `POST /sweep`: a pass now, counted like the sweeper's own.
async fn run_pass(app: &App, now: i64) -> Result<Response<Body>, ApiError> {
    let report = sweeper::pass(&app.files, now, &CancellationToken::new())
        .await
        .inspect_err(|_| app.sweep_metrics.record_failure())?;
    app.sweep_metrics.record_pass(&report, unix_now());
    tracing::info!(
        files = report.files,
        "retention pass requested on the admin listener"
    );
    Ok(text(report.to_string(), TEXT))
}

/// `DELETE /owners/{jid}`, authorised: erases every file of the account.
async fn erase(app: &App, grant: EraseGrant, now: i64) -> Result<Response<Body>, ApiError> {
    let deleted = app.files.erase_owner(&grant.jid, now).await?;
    tracing::info!(
        files = deleted,
        "account erased on request of the XMPP server"
    );
    Ok(text(
        format!("{{\"deleted\":{deleted}}}\n"),
        "application/json",
    ))
}

/// `GET /owners/{jid}`, authorised: what is held for the account.
async fn access(app: &App, grant: AccessGrant, now: i64) -> Result<Response<Body>, ApiError> {
    let report = AccessReport::from(&app.files.access(&grant.jid, now).await?);
    tracing::info!(
        files = report.files,
        "right-of-access report made on the admin listener"
    );
    Ok(text(report.json(), "application/json"))
}

fn text(text: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
