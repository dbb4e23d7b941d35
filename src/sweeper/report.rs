//! What passes report: the [`PassReport`] and its one text form, the
//! sweeper's metrics, and the operator reports behind `upslot stats` and
//! `upslot sweep --dry-run`.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::files::{Files, FilesError};
use crate::metrics::{Counter, Exposition};
use crate::retention::DAY;
use crate::time::{http_date, secs};

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
    /// Epoch keys destroyed.
    pub epochs_destroyed: u64,
    /// Wall time of the pass.
    pub duration: Duration,
}

impl PassReport {
    /// Whether the pass found nothing to do.
    pub fn is_idle(&self) -> bool {
        *self
            == PassReport {
                duration: self.duration,
                ..PassReport::default()
            }
    }
}

impl fmt::Display for PassReport {
    /// One line, as `upslot sweep` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "deleted {} files ({} bytes); backstop removed {} day prefixes ({} files); \
             forgot {} tombstones; removed {} abandoned uploads; destroyed {} epoch keys; \
             took {} ms",
            self.files,
            self.bytes,
            self.backstop_days,
            self.backstop_files,
            self.tombstones_forgotten,
            self.abandoned_uploads,
            self.epochs_destroyed,
            self.duration.as_millis()
        )
    }
}

/// What the sweeper did since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct SweepMetrics {
    sweeps: Counter,
    failures: Counter,
    swept_files: Counter,
    swept_bytes: Counter,
    last_files: Counter,
    last_bytes: Counter,
    last_micros: Counter,
    last_end: Counter,
    backstop_files: Counter,
    backstop_days: Counter,
    tombstones_forgotten: Counter,
    abandoned_uploads: Counter,
    leader: Counter,
}

impl SweepMetrics {
    /// Records a completed pass that ended at `now`.
    pub fn record_pass(&self, report: &PassReport, now: i64) {
        self.sweeps.inc();
        self.swept_files.add(report.files);
        self.swept_bytes.add(report.bytes);
        self.last_files.set(report.files);
        self.last_bytes.set(report.bytes);
        let micros = u64::try_from(report.duration.as_micros()).unwrap_or(u64::MAX);
        self.last_micros.set(micros);
        self.last_end.set(u64::try_from(now).unwrap_or(0));
        self.backstop_files.add(report.backstop_files);
        self.backstop_days.add(report.backstop_days);
        self.tombstones_forgotten.add(report.tombstones_forgotten);
        self.abandoned_uploads.add(report.abandoned_uploads);
    }

    /// Records a pass that failed part-way.
    pub fn record_failure(&self) {
        self.failures.inc();
    }

    /// Records whether this process holds the sweeper lease.
    pub fn record_leader(&self, leader: bool) {
        self.leader.set(u64::from(leader));
    }

    /// Writes the sweeper's metrics into `out`.
    pub fn expose(&self, out: &mut Exposition) {
        out.gauge(
            "upslot_sweeper_leader",
            "1 while this process holds the sweeper lease (replicas sharing an index take turns).",
            self.leader.get(),
        );
        out.counter(
            "upslot_sweeps_total",
            "Completed sweeper passes.",
            self.sweeps.get(),
        );
        out.counter(
            "upslot_sweep_failures_total",
            "Sweeper passes that stopped on a storage or index error.",
            self.failures.get(),
        );
        out.counter(
            "upslot_swept_files_total",
            "Files deleted because their retention ended.",
            self.swept_files.get(),
        );
        out.counter(
            "upslot_swept_bytes_total",
            "Bytes freed by deleting expired files.",
            self.swept_bytes.get(),
        );
        out.gauge(
            "upslot_last_sweep_files",
            "Files deleted by the last pass.",
            self.last_files.get(),
        );
        out.gauge(
            "upslot_last_sweep_bytes",
            "Bytes freed by the last pass.",
            self.last_bytes.get(),
        );
        out.gauge(
            "upslot_last_sweep_duration_seconds",
            "Duration of the last pass.",
            format!("{:.6}", self.last_micros.get() as f64 / 1e6),
        );
        out.gauge(
            "upslot_last_sweep_timestamp_seconds",
            "Unix time the last pass ended (0: none yet).",
            self.last_end.get(),
        );
        out.counter(
            "upslot_backstop_deleted_files_total",
            "Blobs removed by the index-free backstop (whole days older than retention.max + 1 day).",
            self.backstop_files.get(),
        );
        out.counter(
            "upslot_backstop_deleted_days_total",
            "Day prefixes removed by the backstop.",
            self.backstop_days.get(),
        );
        out.counter(
            "upslot_tombstones_forgotten_total",
            "Tombstones dropped after the tombstone horizon.",
            self.tombstones_forgotten.get(),
        );
        out.counter(
            "upslot_abandoned_uploads_removed_total",
            "Temporary files of interrupted uploads removed.",
            self.abandoned_uploads.get(),
        );
    }
}

/// What a pass at `now` would delete, as text for `upslot sweep --dry-run`.
pub async fn preview(files: &Files, now: i64) -> Result<String, FilesError> {
    const SHOWN: usize = 100_000;
    let due = files.due(now, SHOWN).await?;
    let retention = files.retention();
    let bytes: u64 = due.iter().map(|(_, r)| r.size).sum();
    let over_ceiling = due
        .iter()
        .filter(|(_, r)| retention.over_ceiling_only(r, now))
        .count();
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
    let old_days = files.backstop_days(now).await?;
    if old_days.is_empty() {
        let _ = writeln!(out, "backstop: no day prefix is past retention.max + 1 day");
    } else {
        let _ = writeln!(
            out,
            "backstop would remove day prefixes: {}",
            old_days.join(", ")
        );
    }
    // The keyring alone: counting each epoch's files would walk the index.
    let due_epochs = files
        .encryption()
        .epochs()
        .await?
        .iter()
        .filter(|epoch| epoch.destroy_at <= now)
        .count();
    let _ = writeln!(out, "epoch keys due for destruction: {due_epochs}");
    Ok(out)
}

/// Counts, bytes and an age histogram, as text for `upslot stats`.
pub async fn stats(files: &Files, now: i64) -> Result<String, FilesError> {
    let stats = files.stats().await?;
    let overdue = files.overdue(now).await?;
    let retention = files.retention();
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
    let mut bounds: Vec<i64> = ages
        .iter()
        .rev()
        .map(|(_, _, upper)| now.saturating_sub(*upper))
        .collect();
    bounds.push(now.saturating_add(1));
    let counts = files.age_histogram(bounds).await?;
    let mut out = String::new();
    let _ = writeln!(out, "files stored:     {}", stats.files);
    let _ = writeln!(out, "bytes stored:     {}", human_bytes(stats.bytes));
    let oldest = stats.oldest_created.map_or_else(
        || "-".to_string(),
        |created| human_age(now.saturating_sub(created)),
    );
    let _ = writeln!(out, "oldest file age:  {oldest}");
    let at_least = if overdue.at_least { "at least " } else { "" };
    let _ = writeln!(out, "files overdue:    {at_least}{}", overdue.files);
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
    let epochs = files.epochs().await?;
    let sealing = if files.encryption().seals_new() {
        "on"
    } else {
        "off (new files are stored in plaintext)"
    };
    let _ = writeln!(
        out,
        "encryption:       {sealing}, {} epoch keys held",
        epochs.len()
    );
    if !epochs.is_empty() {
        let _ = writeln!(
            out,
            "epochs (files expiring by the end; key destroyed after):"
        );
        let _ = writeln!(out, "  {:<31} {:>8}  key destroyed at", "end", "files");
        for (epoch, count) in epochs {
            let _ = writeln!(
                out,
                "  {:<31} {:>8}  {}",
                http_date(epoch.end),
                count,
                http_date(epoch.destroy_at)
            );
        }
    }
    Ok(out)
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
    use super::*;
    use crate::files::Overdue;
    use crate::files::tests::{MAX, fixture, key, record};
    use crate::index::{Index, Inserted};

    #[tokio::test]
    async fn stats_list_epochs_and_never_keys() {
        let f = fixture();
        for n in 1..=3 {
            crate::files::tests::upload(&f.files, n, 1_795_737_600)
                .await
                .unwrap();
        }
        // Kept 100 s, 10 s epochs: all three expire in the epoch ending at
        // +100 s, whose key goes 10 s later.
        let text = stats(&f.files, 1_795_737_600).await.unwrap();
        assert!(
            text.contains("encryption:       on, 1 epoch keys held\n"),
            "{text}"
        );
        let end = http_date(1_795_737_700);
        let destroy = http_date(1_795_737_710);
        assert!(
            text.contains(&format!("  {end:<31} {:>8}  {destroy}\n", 3)),
            "{text}"
        );
        let dry = preview(&f.files, 1_795_737_710).await.unwrap();
        assert!(dry.contains("epoch keys due for destruction: 1\n"), "{dry}");
        // No key material: neither the epoch key nor anything key-shaped.
        let key = std::fs::read_to_string(f.dir().join("keys/epochs/1795737700.key")).unwrap();
        assert!(!text.contains(key.trim()), "{text}");
        let hex_run = text
            .split(|c: char| !c.is_ascii_hexdigit())
            .map(str::len)
            .max();
        assert!(hex_run < Some(16), "{text}");
    }

    #[tokio::test]
    async fn overdue_and_reports() {
        let f = fixture();
        for (n, expires_at) in [(1, 10), (2, 1000)] {
            let inserted = f.index.insert(key(n), record(0, expires_at)).await.unwrap();
            assert_eq!(inserted, Inserted::Created);
        }
        let files = &f.files;
        let overdue = |now| async move { files.overdue(now).await.unwrap().files };
        // Grace: two sweep intervals (10 s) and a minute.
        assert_eq!(overdue(10 + 80).await, 0);
        assert_eq!(overdue(10 + 81).await, 1);
        // Over the ceiling counts as overdue too.
        assert_eq!(overdue(MAX + 81).await, 2);
        let preview = preview(&f.files, 500).await.unwrap();
        assert!(preview.contains("would delete now: 2 files"), "{preview}");
        assert!(preview.contains("(1 over retention.max)"), "{preview}");
        let stats = stats(&f.files, 500).await.unwrap();
        assert!(stats.contains("files stored:     2"), "{stats}");
        assert!(stats.contains("files overdue:    2"), "{stats}");
        assert!(stats.contains("oldest file age:  8m 20s"), "{stats}");
        // A dry run deleted nothing.
        assert_eq!(f.index.stats().await.unwrap().files, 2);
    }

    #[tokio::test]
    async fn overdue_counts_stop_at_the_limit() {
        let f = fixture();
        let limit = crate::files::OVERDUE_COUNT_LIMIT as u64;
        for n in 0..=limit {
            let inserted = f.index.insert(key(n), record(0, 10)).await.unwrap();
            assert_eq!(inserted, Inserted::Created);
        }
        assert_eq!(
            f.files.overdue(500).await.unwrap(),
            Overdue {
                files: limit,
                at_least: true
            }
        );
        let stats = stats(&f.files, 500).await.unwrap();
        assert!(
            stats.contains(&format!("files overdue:    at least {limit}\n")),
            "{stats}"
        );
    }

    #[test]
    fn one_text_for_a_pass() {
        let report = PassReport {
            files: 2,
            bytes: 6,
            backstop_days: 1,
            backstop_files: 3,
            tombstones_forgotten: 4,
            abandoned_uploads: 5,
            epochs_destroyed: 6,
            duration: Duration::from_millis(7),
        };
        assert_eq!(
            report.to_string(),
            "deleted 2 files (6 bytes); backstop removed 1 day prefixes (3 files); \
             forgot 4 tombstones; removed 5 abandoned uploads; destroyed 6 epoch keys; \
             took 7 ms\n"
        );
        assert!(!report.is_idle());
        assert!(
            PassReport {
                duration: Duration::from_secs(1),
                ..PassReport::default()
            }
            .is_idle()
        );
    }

    #[test]
    fn metrics_of_passes() {
        let metrics = SweepMetrics::default();
        let report = PassReport {
            files: 2,
            bytes: 6,
            duration: Duration::from_millis(1500),
            ..PassReport::default()
        };
        metrics.record_pass(&report, 99);
        metrics.record_pass(&report, 100);
        metrics.record_failure();
        metrics.record_leader(true);
        let mut out = Exposition::new();
        metrics.expose(&mut out);
        let text = out.finish();
        for line in [
            "upslot_sweeps_total 2",
            "upslot_sweep_failures_total 1",
            "upslot_swept_files_total 4",
            "upslot_last_sweep_files 2",
            "upslot_last_sweep_duration_seconds 1.500000",
            "upslot_last_sweep_timestamp_seconds 100",
            "upslot_sweeper_leader 1",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line} in {text}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB (3145728 bytes)");
        assert_eq!(human_age(90_061), "1d 1h");
        assert_eq!(human_age(59), "59s");
    }
}
