//! The sweeper's loop: a pass every `retention.sweep_every`, on the one
//! replica that holds the sweeper lease.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PassReport, SweepMetrics, pass};
use crate::files::Files;
use crate::index::Leases;

/// The lease replicas sharing an index take before a pass.
pub const LEASE: &str = "sweeper";

/// What the sweeper works with.
pub struct Sweeper {
    /// The stored files.
    pub files: Arc<Files>,
    /// The leases of an index shared by several replicas; `None` when this
    /// process is the index's only user (it always sweeps).
    pub leases: Option<Arc<dyn Leases>>,
    /// Where passes are counted.
    pub metrics: Arc<SweepMetrics>,
}

/// Runs a pass every `retention.sweep_every` until `shutdown` is cancelled,
/// whenever this process holds the sweeper lease. Replicas sharing an index
/// take turns: the holder renews the lease during its pass, and a replica
/// that dies loses it after [`lease_ttl`], when another takes over. Two
/// passes at once would still be safe (deleting twice is harmless), only
/// wasteful.
pub async fn run(sweeper: Sweeper, shutdown: CancellationToken) {
    let Sweeper {
        files,
        leases,
        metrics,
    } = sweeper;
    let holder = uuid::Uuid::new_v4().simple().to_string();
    let every = files.retention().sweep_every;
    let ttl = lease_ttl(every);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if let Some(leases) = &leases {
            match leases.lease(LEASE, &holder, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    metrics.record_leader(false);
                    continue;
                }
                Err(error) => {
                    metrics.record_leader(false);
                    metrics.record_failure();
                    tracing::error!(%error, "cannot take the sweeper lease; retrying at the next pass");
                    continue;
                }
            }
        }
        metrics.record_leader(true);
        let now = crate::time::unix_now();
        let keep = async {
            match &leases {
                Some(leases) => keep_lease(leases.as_ref(), &holder, ttl).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            outcome = pass(&files, now, &shutdown) => Some(outcome),
            () = keep => None,
        };
        match outcome {
            Some(Ok(report)) => log_pass(&metrics, &report),
            Some(Err(error)) => {
                metrics.record_failure();
                tracing::error!(%error, "retention pass failed; retrying at the next pass");
            }
            None => {
                metrics.record_leader(false);
                metrics.record_failure();
                tracing::warn!("lost the sweeper lease during a pass; another replica takes over");
            }
        }
    }
    if let Some(leases) = &leases
        && let Err(error) = leases.release(LEASE, &holder).await
    {
        tracing::warn!(%error, "could not give the sweeper lease up at shutdown");
    }
}

/// How long the sweeper lease lasts without renewal: three intervals (at
/// least three seconds), so a replica that dies is replaced within three
/// intervals while a live one renews in time.
pub fn lease_ttl(sweep_every: Duration) -> Duration {
    sweep_every.saturating_mul(3).max(Duration::from_secs(3))
}

/// Renews the lease every third of its life; returns when it cannot.
async fn keep_lease(leases: &dyn Leases, holder: &str, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match leases.lease(LEASE, holder, ttl).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot renew the sweeper lease");
                return;
            }
        }
    }
}

fn log_pass(metrics: &SweepMetrics, report: &PassReport) {
    metrics.record_pass(report, crate::time::unix_now());
    if !report.is_idle() {
        tracing::info!(
            files = report.files,
            bytes = report.bytes,
            backstop.files = report.backstop_files,
            tombstones_forgotten = report.tombstones_forgotten,
            abandoned_uploads = report.abandoned_uploads,
            duration_ms = report.duration.as_millis() as u64,
            "retention pass"
        );
    }
}
