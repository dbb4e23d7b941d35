//! What operators need to prove retention: counters of what the sweeper
//! did, and gauges read from the index, as Prometheus text on the admin
//! listener's `/metrics`.
//!
//! The format is written by hand: a dozen counters and gauges do not need a
//! metrics framework. No metric carries a label with an address, path or JID.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::app::App;
use crate::index::IndexError;
use crate::sweeper::PassReport;

/// Counters updated by the sweeper.
#[derive(Debug, Default)]
pub struct Metrics {
    sweeps: AtomicU64,
    sweep_failures: AtomicU64,
    swept_files: AtomicU64,
    swept_bytes: AtomicU64,
    last_sweep_files: AtomicU64,
    last_sweep_bytes: AtomicU64,
    last_sweep_micros: AtomicU64,
    last_sweep_end: AtomicI64,
    backstop_files: AtomicU64,
    backstop_days: AtomicU64,
    tombstones_forgotten: AtomicU64,
    abandoned_uploads: AtomicU64,
    failed_attempts: AtomicU64,
    bans: AtomicU64,
    banned_requests: AtomicU64,
    sweeper_leader: AtomicU64,
}

/// Most overdue files counted per scrape; more shows as this number. Any
/// number above zero calls for a look, and counting is a walk over the
/// index: with 100,000 overdue files a full count took 0.25 CPU s per
/// scrape, just when the sweeper was behind.
pub const OVERDUE_COUNT_LIMIT: usize = 1_000;

impl Metrics {
    /// Records a completed sweeper pass that ended at `now`.
    pub fn record_pass(&self, report: &PassReport, now: i64) {
        self.sweeps.fetch_add(1, Ordering::Relaxed);
        self.swept_files.fetch_add(report.files, Ordering::Relaxed);
        self.swept_bytes.fetch_add(report.bytes, Ordering::Relaxed);
        self.last_sweep_files.store(report.files, Ordering::Relaxed);
        self.last_sweep_bytes.store(report.bytes, Ordering::Relaxed);
        let micros = u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX);
        self.last_sweep_micros.store(micros, Ordering::Relaxed);
        self.last_sweep_end.store(now, Ordering::Relaxed);
        self.backstop_files
            .fetch_add(report.backstop_files, Ordering::Relaxed);
        self.backstop_days
            .fetch_add(report.backstop_days, Ordering::Relaxed);
        self.tombstones_forgotten
            .fetch_add(report.tombstones_forgotten, Ordering::Relaxed);
        self.abandoned_uploads
            .fetch_add(report.abandoned_uploads, Ordering::Relaxed);
    }

    /// Counts a request refused for a missing, invalid or expired token.
    pub fn record_failed_attempt(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a ban.
    pub fn record_ban(&self) {
        self.bans.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused because its address is banned.
    pub fn record_banned_request(&self) {
        self.banned_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether this process holds the sweeper lease.
    pub fn record_sweeper_leader(&self, leader: bool) {
        self.sweeper_leader
            .store(u64::from(leader), Ordering::Relaxed);
    }

    /// Records a pass that failed part-way.
    pub fn record_failure(&self) {
        self.sweep_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Renders every metric at Unix time `now`.
pub async fn render(app: &App, now: i64) -> Result<String, IndexError> {
    let stats = app.index.stats().await?;
    let overdue = crate::sweeper::overdue(app, now).await?;
    let m = &app.metrics;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let oldest_age = stats
        .oldest_created
        .map_or(0, |created| (now - created).max(0));
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "upslot_files_stored",
        "gauge",
        "Files recorded in the index (including expired ones not yet swept).",
        stats.files.to_string(),
    );
    metric(
        "upslot_bytes_stored",
        "gauge",
        "Total size of the recorded files in bytes.",
        stats.bytes.to_string(),
    );
    metric(
        "upslot_oldest_file_age_seconds",
        "gauge",
        "Age of the oldest recorded file; stays below retention.max when retention works.",
        oldest_age.to_string(),
    );
    metric(
        "upslot_files_overdue",
        "gauge",
        "Files whose deletion time passed more than two sweep intervals and a minute ago; alert when above 0.",
        overdue.to_string(),
    );
    metric(
        "upslot_retention_max_seconds",
        "gauge",
        "The configured ceiling on any file's lifetime.",
        app.settings.retention.max.as_secs().to_string(),
    );
    metric(
        "upslot_tombstones",
        "gauge",
        "Deleted slots remembered so their URLs cannot be reused.",
        stats.tombstones.to_string(),
    );
    metric(
        "upslot_sweeper_leader",
        "gauge",
        "1 while this process holds the sweeper lease (replicas sharing an index take turns).",
        load(&m.sweeper_leader).to_string(),
    );
    metric(
        "upslot_sweeps_total",
        "counter",
        "Completed sweeper passes.",
        load(&m.sweeps).to_string(),
    );
    metric(
        "upslot_sweep_failures_total",
        "counter",
        "Sweeper passes that stopped on a storage or index error.",
        load(&m.sweep_failures).to_string(),
    );
    metric(
        "upslot_swept_files_total",
        "counter",
        "Files deleted because their retention ended.",
        load(&m.swept_files).to_string(),
    );
    metric(
        "upslot_swept_bytes_total",
        "counter",
        "Bytes freed by deleting expired files.",
        load(&m.swept_bytes).to_string(),
    );
    metric(
        "upslot_last_sweep_files",
        "gauge",
        "Files deleted by the last pass.",
        load(&m.last_sweep_files).to_string(),
    );
    metric(
        "upslot_last_sweep_bytes",
        "gauge",
        "Bytes freed by the last pass.",
        load(&m.last_sweep_bytes).to_string(),
    );
    metric(
        "upslot_last_sweep_duration_seconds",
        "gauge",
        "Duration of the last pass.",
        format!("{:.6}", load(&m.last_sweep_micros) as f64 / 1e6),
    );
    metric(
        "upslot_last_sweep_timestamp_seconds",
        "gauge",
        "Unix time the last pass ended (0: none yet).",
        m.last_sweep_end.load(Ordering::Relaxed).to_string(),
    );
    metric(
        "upslot_backstop_deleted_files_total",
        "counter",
        "Blobs removed by the index-free backstop (whole days older than retention.max + 1 day).",
        load(&m.backstop_files).to_string(),
    );
    metric(
        "upslot_backstop_deleted_days_total",
        "counter",
        "Day prefixes removed by the backstop.",
        load(&m.backstop_days).to_string(),
    );
    metric(
        "upslot_tombstones_forgotten_total",
        "counter",
        "Tombstones dropped after the tombstone horizon.",
        load(&m.tombstones_forgotten).to_string(),
    );
    metric(
        "upslot_failed_attempts_total",
        "counter",
        "Requests refused for a missing, invalid or expired token.",
        load(&m.failed_attempts).to_string(),
    );
    metric(
        "upslot_bans_total",
        "counter",
        "Client addresses banned after repeated failed attempts.",
        load(&m.bans).to_string(),
    );
    metric(
        "upslot_banned_requests_total",
        "counter",
        "Requests answered 429 because their address was banned.",
        load(&m.banned_requests).to_string(),
    );
    metric(
        "upslot_remembered_addresses",
        "gauge",
        "Addresses (IPv6: /64s) with failed attempts held in memory (never written anywhere).",
        app.attempts.remembered().to_string(),
    );
    metric(
        "upslot_abandoned_uploads_removed_total",
        "counter",
        "Temporary files of interrupted uploads removed.",
        load(&m.abandoned_uploads).to_string(),
    );
    Ok(out)
}
