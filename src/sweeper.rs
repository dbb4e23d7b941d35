//! The retention engine: every file is deleted when its time comes.
//!
//! A pass ([`pass`]) does four things:
//! 1. **Sweep**: take index entries whose `expires_at` has passed, or that
//!    are older than `retention.max` whatever they say, oldest first in
//!    bounded batches; delete their blobs (a few at a time), then their rows
//!    in one transaction that leaves a tombstone per slot. A row never
//!    outlives its blob, and a crash in between is finished by the next pass
//!    (deleting a missing blob succeeds). The cost grows with the number of
//!    expired files, never with the number stored: the index keeps expiry
//!    and creation orders.
//! 2. **Tombstones** older than `retention.tombstone_horizon` are forgotten.
//! 3. **Backstop**: whole day prefixes of blobs older than `retention.max`
//!    plus one day are removed without consulting the index, so even a lost
//!    or corrupt index cannot keep a file alive past the promise.
//! 4. **Abandoned uploads**: temporary files with no write for a day are
//!    removed (at start-up all of them are).
//!
//! Nothing depends on traffic: passes run every `retention.sweep_every`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::deletion::{DeletionError, delete_files};
use crate::index::{FileRecord, IndexError, SlotKey};
use crate::time::{day_start, http_date};

/// Index entries taken per batch.
pub const BATCH: usize = 1000;
/// Tombstones forgotten per transaction.
const TOMBSTONE_BATCH: usize = 10_000;
/// A temporary upload file with no write for this long is abandoned.
const ABANDONED_AFTER: i64 = 86_400;
const DAY: i64 = 86_400;

/// Why a pass stopped early.
pub type SweepError = DeletionError;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Files deleted (expired or over the ceiling).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Tombstones forgotten.
    pub tombstones_forgotten: u64,
    /// Day prefixes removed by the backstop.
    pub backstop_days: u64,
    /// Blobs in them.
    pub backstop_files: u64,
    /// Temporary files of abandoned uploads removed.
    pub abandoned_uploads: u64,
    /// Wall time of the pass.
    pub duration: Duration,
}

/// The lease replicas sharing an index take before a pass.
pub const LEASE: &str = "sweeper";

/// Runs a pass every `retention.sweep_every` until `shutdown` is cancelled,
/// whenever this process holds the sweeper lease. Replicas sharing an index
/// take turns: the holder renews the lease during its pass, and a replica
/// that dies loses it after [`lease_ttl`], when another takes over. Two
/// passes at once would still be safe (deleting twice is harmless), only
/// wasteful.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let holder = uuid::Uuid::new_v4().simple().to_string();
    let ttl = lease_ttl(app.settings.retention.sweep_every);
    let mut ticks = tokio::time::interval(app.settings.retention.sweep_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match app.index.lease(LEASE, &holder, ttl).await {
            Ok(leader) => {
                app.metrics.record_sweeper_leader(leader);
                if !leader {
                    continue;
                }
            }
            Err(error) => {
                app.metrics.record_sweeper_leader(false);
                app.metrics.record_failure();
                tracing::error!(%error, "cannot take the sweeper lease; retrying at the next pass");
                continue;
            }
        }
        let now = crate::time::unix_now();
        let outcome = tokio::select! {
            outcome = pass(&app, now, &shutdown) => Some(outcome),
            () = keep_lease(&app, &holder, ttl) => None,
        };
        match outcome {
            Some(Ok(report)) => log_pass(&app, &report),
            Some(Err(error)) => {
                app.metrics.record_failure();
                tracing::error!(%error, "retention pass failed; retrying at the next pass");
            }
            None => {
                app.metrics.record_sweeper_leader(false);
                app.metrics.record_failure();
                tracing::warn!("lost the sweeper lease during a pass; another replica takes over");
            }
        }
    }
    if let Err(error) = app.index.release(LEASE, &holder).await {
        tracing::warn!(%error, "could not give the sweeper lease up at shutdown");
    }
}

/// How long the sweeper lease lasts without renewal: three intervals (at
/// least three seconds), so a replica that dies is replaced within three
/// intervals while a live one renews in time.
pub fn lease_ttl(sweep_every: Duration) -> Duration {
    (sweep_every * 3).max(Duration::from_secs(3))
}

/// Renews the lease every third of its life; returns when it cannot.
async fn keep_lease(app: &App, holder: &str, ttl: Duration) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        match app.index.lease(LEASE, holder, ttl).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot renew the sweeper lease");
                return;
            }
        }
    }
}

fn log_pass(app: &App, report: &PassReport) {
    app.metrics.record_pass(report, crate::time::unix_now());
    let idle = PassReport {
        duration: report.duration,
        ..PassReport::default()
    };
    if *report != idle {
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

/// One full pass at Unix time `now`.
pub async fn pass(
    app: &App,
    now: i64,
    shutdown: &CancellationToken,
) -> Result<PassReport, SweepError> {
    let started = Instant::now();
    let (files, bytes) = sweep(app, now, shutdown).await?;
    let horizon = secs(app.settings.retention.tombstone_horizon);
    let mut tombstones_forgotten = 0;
    loop {
        let forgotten = app
            .index
            .forget_tombstones(now.saturating_sub(horizon), TOMBSTONE_BATCH)
            .await?;
        tombstones_forgotten += forgotten as u64;
        if forgotten < TOMBSTONE_BATCH || shutdown.is_cancelled() {
            break;
        }
    }
    let (backstop_days, backstop_files) = backstop(app, now).await?;
    let abandoned_uploads = app.blobs.remove_abandoned(now - ABANDONED_AFTER).await?;
    Ok(PassReport {
        files,
        bytes,
        tombstones_forgotten,
        backstop_days,
        backstop_files,
        abandoned_uploads,
        duration: started.elapsed(),
    })
}

/// Deletes every file expired at `now` or created more than
/// `retention.max` before it; returns (files, bytes). Stops between batches
/// when `shutdown` is cancelled.
pub async fn sweep(
    app: &App,
    now: i64,
    shutdown: &CancellationToken,
) -> Result<(u64, u64), SweepError> {
    let (mut files, mut bytes) = (0, 0);
    loop {
        let batch = due(app, now, BATCH).await?;
        let full = batch.len() == BATCH;
        let (deleted, freed) = delete_files(app, batch, now).await?;
        files += deleted;
        bytes += freed;
        if !full || shutdown.is_cancelled() {
            return Ok((files, bytes));
        }
        // Let request handlers run between batches.
        tokio::task::yield_now().await;
    }
}

/// Up to `limit` entries due for deletion at `now`: expired ones first,
/// then those over the `retention.max` ceiling.
async fn due(app: &App, now: i64, limit: usize) -> Result<Vec<(SlotKey, FileRecord)>, IndexError> {
    let mut batch = app.index.expired(now, limit).await?;
    if batch.len() < limit {
        let cutoff = now.saturating_sub(secs(app.settings.retention.max));
        let seen: HashSet<SlotKey> = batch.iter().map(|(key, _)| *key).collect();
        let over = app.index.created_by(cutoff, limit - batch.len()).await?;
        batch.extend(over.into_iter().filter(|(key, _)| !seen.contains(key)));
    }
    Ok(batch)
}

/// Removes whole day prefixes whose newest possible blob has outlived
/// `retention.max` by a day; returns (days, files).
async fn backstop(app: &App, now: i64) -> Result<(u64, u64), SweepError> {
    let max = secs(app.settings.retention.max);
    let (mut days, mut files) = (0, 0);
    for day in app.blobs.days().await? {
        let Some(start) = day_start(&day) else {
            continue;
        };
        if now >= start + DAY + max + DAY {
            let removed = app.blobs.delete_day(&day).await?;
            days += 1;
            files += removed;
            tracing::warn!(
                day,
                files = removed,
                "backstop removed a day of blobs past retention.max"
            );
        }
    }
    Ok((days, files))
}

/// Files overdue at `now`: due for more than two sweep intervals and a
/// minute (counted up to [`crate::metrics::OVERDUE_COUNT_LIMIT`]).
pub async fn overdue(app: &App, now: i64) -> Result<u64, IndexError> {
    let retention = &app.settings.retention;
    // Due at or before `late` means due more than the grace period ago.
    let late = now - (2 * secs(retention.sweep_every) + 60) - 1;
    let limit = crate::metrics::OVERDUE_COUNT_LIMIT;
    let expired = app.index.count_expired(late, limit).await?;
    let over_ceiling = app
        .index
        .created_by(late - secs(retention.max), limit)
        .await?
        .into_iter()
        .filter(|(_, record)| record.expires_at > late)
        .count();
    Ok((expired + over_ceiling).min(limit) as u64)
}

/// What a pass at `now` would delete, as text for `upslot sweep --dry-run`.
pub async fn preview(app: &App, now: i64) -> Result<String, SweepError> {
    const SHOWN: usize = 100_000;
    let due = due(app, now, SHOWN).await?;
    let bytes: u64 = due.iter().map(|(_, r)| r.size).sum();
    let over_ceiling = due.iter().filter(|(_, r)| r.expires_at > now).count();
    let mut out = String::new();
    let more = if due.len() == SHOWN { "at least " } else { "" };
    let _ = writeln!(
        out,
        "would delete now: {more}{} files, {} ({} over retention.max)",
        due.len(),
        human_bytes(bytes),
        over_ceiling
    );
    if let Some(earliest) = due.iter().map(|(_, r)| r.expires_at).min() {
        let _ = writeln!(out, "earliest deletion time: {}", http_date(earliest));
    }
    let max = secs(app.settings.retention.max);
    let old_days: Vec<String> = app
        .blobs
        .days()
        .await?
        .into_iter()
        .filter(|day| day_start(day).is_some_and(|start| now >= start + 2 * DAY + max))
        .collect();
    if old_days.is_empty() {
        let _ = writeln!(out, "backstop: no day prefix is past retention.max + 1 day");
    } else {
        let _ = writeln!(
            out,
            "backstop would remove day prefixes: {}",
            old_days.join(", ")
        );
    }
    Ok(out)
}

/// Counts, bytes and an age histogram, as text for `upslot stats`.
pub async fn stats(app: &App, now: i64) -> Result<String, IndexError> {
    let stats = app.index.stats().await?;
    let overdue = overdue(app, now).await?;
    let retention = &app.settings.retention;
    const HOUR: i64 = 3_600;
    let ages = [
        ("< 1 hour", 0, HOUR),
        ("1 hour - 1 day", HOUR, DAY),
        ("1 - 7 days", DAY, 7 * DAY),
        ("7 - 14 days", 7 * DAY, 14 * DAY),
        ("14 - 30 days", 14 * DAY, 30 * DAY),
        ("> 30 days", 30 * DAY, i64::MAX / 2),
    ];
    // Creation-time bounds, ascending: the oldest bucket first.
    let mut bounds: Vec<i64> = ages.iter().rev().map(|(_, _, upper)| now - upper).collect();
    bounds.push(now + 1);
    let counts = app.index.age_histogram(bounds).await?;
    let mut out = String::new();
    let _ = writeln!(out, "files stored:     {}", stats.files);
    let _ = writeln!(out, "bytes stored:     {}", human_bytes(stats.bytes));
    let oldest = stats
        .oldest_created
        .map_or_else(|| "-".to_string(), |created| human_age(now - created));
    let _ = writeln!(out, "oldest file age:  {oldest}");
    let at_least = if overdue == crate::metrics::OVERDUE_COUNT_LIMIT as u64 {
        "at least "
    } else {
        ""
    };
    let _ = writeln!(out, "files overdue:    {at_least}{overdue}");
    let _ = writeln!(out, "tombstones:       {}", stats.tombstones);
    let _ = writeln!(
        out,
        "retention:        keep {}, max {}, sweep every {}",
        human_age(secs(retention.keep)),
        human_age(secs(retention.max)),
        human_age(secs(retention.sweep_every)),
    );
    let _ = writeln!(out, "files by age:");
    for ((label, _, _), count) in ages.iter().zip(counts.iter().rev()) {
        let _ = writeln!(out, "  {label:<16} {count}");
    }
    Ok(out)
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

fn human_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        s if s >= DAY => format!("{}d {}h", s / DAY, s % DAY / 3_600),
        s if s >= 3_600 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::app::{Retention, Settings};
    use crate::auth::Verifier;
    use crate::config::LogClientIp;
    use crate::http::cors::Cors;
    use crate::index::embedded::EmbeddedIndex;
    use crate::index::{FileRecord, IndexKey, Inserted, SlotKey};
    use crate::storage::BlobName;
    use crate::storage::disk::DiskStore;

    const KEEP: i64 = 100;
    const MAX: i64 = 200;

    struct Fixture {
        app: App,
        index: EmbeddedIndex,
        _dir: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
        let settings = Settings {
            base_path: "/".into(),
            max_size: 1 << 20,
            retention: Retention {
                keep: Duration::from_secs(KEEP as u64),
                max: Duration::from_secs(MAX as u64),
                sweep_every: Duration::from_secs(10),
                tombstone_horizon: Duration::from_secs(KEEP as u64),
            },
            body_idle_timeout: Duration::from_secs(5),
            cors: Cors::new(&["*".into()]),
            log_client_ip: LogClientIp::None,
            trusted_proxies: Vec::new(),
            ban_policy: crate::privacy::attempts::BanPolicy {
                memory: Duration::from_secs(60),
                threshold: 10,
                window: Duration::from_secs(60),
                ban: Duration::from_secs(60),
                max_addresses: 10,
            },
            offload: crate::app::Offload::None,
        };
        let app = App::new(
            Verifier::new(Vec::new(), None, Vec::new()),
            IndexKey::new([0; 32]),
            Arc::new(DiskStore::open(dir.path(), 0).unwrap()),
            Arc::new(index.clone()),
            settings,
        );
        Fixture {
            app,
            index,
            _dir: dir,
        }
    }

    fn key(n: u64) -> SlotKey {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&n.to_be_bytes());
        SlotKey(key)
    }

    fn record(created: i64, expires_at: i64) -> FileRecord {
        FileRecord {
            blob: BlobName::new(created),
            size: 3,
            content_type: "text/plain".into(),
            created,
            expires_at,
            owner: None,
        }
    }

    /// Stores a file with a real blob.
    async fn store(app: &App, n: u64, created: i64, expires_at: i64) -> BlobName {
        let record = record(created, expires_at);
        let meta = crate::storage::BlobMeta {
            content_type: record.content_type.clone(),
            max_age: 60,
        };
        let mut writer = app.blobs.create(&record.blob, 3, &meta).await.unwrap();
        writer.write(Bytes::from_static(b"abc")).await.unwrap();
        writer.commit().await.unwrap();
        let blob = record.blob.clone();
        assert_eq!(
            app.index.insert(key(n), record).await.unwrap(),
            Inserted::Created
        );
        blob
    }

    async fn exists(app: &App, blob: &BlobName) -> bool {
        app.blobs.read(blob, 0..1).await.is_ok()
    }

    fn token() -> CancellationToken {
        CancellationToken::new()
    }

    #[tokio::test]
    async fn deletes_exactly_what_has_expired() {
        let f = fixture();
        let early = store(&f.app, 1, 0, 10).await;
        let boundary = store(&f.app, 2, 0, 20).await;
        let later = store(&f.app, 3, 0, 21).await;
        assert_eq!(sweep(&f.app, 9, &token()).await.unwrap(), (0, 0));
        assert_eq!(sweep(&f.app, 20, &token()).await.unwrap(), (2, 6));
        assert!(!exists(&f.app, &early).await);
        assert!(
            !exists(&f.app, &boundary).await,
            "a file goes exactly at expires_at"
        );
        assert!(exists(&f.app, &later).await, "never before its time");
        assert!(f.app.index.get(key(3)).await.unwrap().is_some());
        assert!(f.app.index.get(key(2)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn finishes_after_a_crash_between_blob_and_row() {
        let f = fixture();
        let blob = store(&f.app, 1, 0, 10).await;
        // As if a previous pass died after deleting the blob.
        f.app.blobs.delete(&blob).await.unwrap();
        assert_eq!(sweep(&f.app, 10, &token()).await.unwrap().0, 1);
        assert!(f.app.index.expired(i64::MAX, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn works_through_several_batches_oldest_first() {
        let f = fixture();
        let records: Vec<_> = (0..(BATCH as u64 * 2 + 5))
            .map(|n| (key(n), record(0, n as i64)))
            .collect();
        f.index.insert_many(&records).unwrap();
        // Only what expired by now=1500 goes, the rest waits.
        assert_eq!(sweep(&f.app, 1500, &token()).await.unwrap().0, 1501);
        let left = f.app.index.expired(i64::MAX, 1).await.unwrap();
        assert_eq!(left[0].1.expires_at, 1501);
        assert_eq!(sweep(&f.app, i64::MAX, &token()).await.unwrap().0, 504);
    }

    #[tokio::test]
    async fn the_max_ceiling_applies_whatever_expires_at_says() {
        let f = fixture();
        // Uploaded under an older, longer `keep`: expires_at is far away.
        let blob = store(&f.app, 1, 0, 10_000).await;
        let retention = &f.app.settings.retention;
        let stored = f.app.index.get(key(1)).await.unwrap().unwrap();
        assert_eq!(retention.expiry_of(&stored), MAX);
        assert_eq!(sweep(&f.app, MAX - 1, &token()).await.unwrap().0, 0);
        assert_eq!(sweep(&f.app, MAX, &token()).await.unwrap().0, 1);
        assert!(!exists(&f.app, &blob).await);
    }

    #[tokio::test]
    async fn swept_slots_are_tombstoned_until_the_horizon() {
        let f = fixture();
        store(&f.app, 1, 0, 10).await;
        let report = pass(&f.app, 10, &token()).await.unwrap();
        assert_eq!((report.files, report.bytes), (1, 3));
        assert_eq!(f.app.index.tombstone(key(1)).await.unwrap(), Some(10));
        assert_eq!(
            f.app.index.insert(key(1), record(11, 50)).await.unwrap(),
            Inserted::Gone,
            "a replayed upload URL is refused"
        );
        let report = pass(&f.app, 10 + KEEP, &token()).await.unwrap();
        assert_eq!(report.tombstones_forgotten, 0);
        let report = pass(&f.app, 11 + KEEP, &token()).await.unwrap();
        assert_eq!(report.tombstones_forgotten, 1);
        assert_eq!(f.app.index.tombstone(key(1)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_backstop_needs_no_index() {
        let f = fixture();
        let day = 86_400;
        let old = store(&f.app, 1, 0, 10).await; // day 1970-01-01
        let recent = store(&f.app, 2, 5 * day, 5 * day + 10).await; // 1970-01-06
        // Lose the index entries without deleting anything.
        f.app.index.remove(&[key(1), key(2)], 0).await.unwrap();
        // 1970-01-01 may hold blobs created until day 1; they must be gone
        // by 1 day + max; the backstop acts one day later.
        let report = pass(&f.app, 2 * day + MAX - 1, &token()).await.unwrap();
        assert_eq!(report.backstop_files, 0);
        let report = pass(&f.app, 2 * day + MAX, &token()).await.unwrap();
        assert_eq!((report.backstop_days, report.backstop_files), (1, 1));
        assert!(!exists(&f.app, &old).await);
        assert!(exists(&f.app, &recent).await);
    }

    #[tokio::test]
    async fn overdue_and_reports() {
        let f = fixture();
        store(&f.app, 1, 0, 10).await;
        store(&f.app, 2, 0, 1000).await;
        // Grace: two sweep intervals (10 s) and a minute.
        assert_eq!(overdue(&f.app, 10 + 80).await.unwrap(), 0);
        assert_eq!(overdue(&f.app, 10 + 81).await.unwrap(), 1);
        // Over the ceiling counts as overdue too.
        assert_eq!(overdue(&f.app, MAX + 81).await.unwrap(), 2);
        let preview = preview(&f.app, 500).await.unwrap();
        assert!(preview.contains("would delete now: 2 files"), "{preview}");
        assert!(preview.contains("(1 over retention.max)"), "{preview}");
        let stats = stats(&f.app, 500).await.unwrap();
        assert!(stats.contains("files stored:     2"), "{stats}");
        assert!(stats.contains("files overdue:    2"), "{stats}");
        assert!(stats.contains("oldest file age:  8m 20s"), "{stats}");
        // A dry run deleted nothing.
        assert_eq!(f.app.index.stats().await.unwrap().files, 2);
    }

    #[tokio::test]
    async fn overdue_counts_stop_at_the_limit() {
        let f = fixture();
        let limit = crate::metrics::OVERDUE_COUNT_LIMIT as u64;
        for n in 0..=limit {
            let inserted = f.app.index.insert(key(n), record(0, 10)).await.unwrap();
            assert_eq!(inserted, Inserted::Created);
        }
        assert_eq!(overdue(&f.app, 500).await.unwrap(), limit);
        let stats = stats(&f.app, 500).await.unwrap();
        assert!(
            stats.contains(&format!("files overdue:    at least {limit}\n")),
            "{stats}"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB (3145728 bytes)");
        assert_eq!(human_age(90_061), "1d 1h");
        assert_eq!(human_age(59), "59s");
    }
}
