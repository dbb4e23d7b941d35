//! Retention sweep benchmark (issue 3): how fast the sweeper deletes expired
//! files, whether its cost depends on the number of files stored, and data
//! for measuring GET latency while it runs (see `benches/sweep.sh`).
//!
//! Modes:
//! - `rate N`: N expired 1 KiB files over a few day prefixes; times one
//!   [`sweeper::sweep`] that deletes them all (blobs, index rows,
//!   tombstones), then times `rm -rf` of a plain tree of N files with the
//!   same layout and size, and prints both rates and their ratio.
//! - `independence E L [REPS [LAYOUT]]`: times the sweep of E expired files
//!   stored among L live ones (empty blobs), and of E expired files stored
//!   alone, REPS times each (interleaved; default 5), and prints the medians
//!   and their ratio. See [`Layout`] for where the live files go.
//! - `phases N [BATCH [CONCURRENT [LIVE [LAYOUT]]]]`: N expired files as in `rate`
//!   (stored among LIVE live ones as in `independence`, default none),
//!   deleted by a copy of the sweep loop (take due rows, delete their blobs
//!   CONCURRENT at a time, remove the rows; defaults: the sweeper's BATCH
//!   and 16) that times each step separately, to see where a pass spends
//!   its time and what other batch sizes or concurrency would give.
//! - `populate DIR LIVE EXPIRED EXPIRES_IN_SECS`: writes a data directory
//!   and `DIR/upslot.toml` for `upslot serve`: LIVE files at `bench/live-<i>`
//!   (4 KiB, expiring in a day) and EXPIRED files (1 KiB) expiring
//!   EXPIRES_IN_SECS seconds after their blobs are written. Prints
//!   `paths=FILE` (one URL path per line, for wrk) and `expires_at=UNIX`.
//!
//! Population is fast and is not what is measured: blobs are written with
//! `std::fs` at their [`BlobName`] paths without fsync, and the index is
//! loaded with [`EmbeddedIndex::insert_many`] in chunks of 10,000 records.
//! `sync` runs before every timed step, so no writeback of the population
//! overlaps a measurement. The rate and independence modes work in a
//! temporary directory under `$UPSLOT_BENCH_DIR` (default `target/`) and
//! remove it when done.
//!
//! Lines starting with `RESULT` are for `benches/sweep.sh` to collect.
//!
//! Run: `cargo bench --bench sweep -- rate 100000`. Without a mode (as
//! `cargo test --all-targets` runs it) it does a 2,000-file `rate` run as a
//! smoke test.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use upslot::auth::SlotPath;
use upslot::bootstrap;
use upslot::config::Config;
use upslot::index::embedded::EmbeddedIndex;
use upslot::index::{FileRecord, Index as _, IndexKey, Scan, SlotKey};
use upslot::storage::disk::DiskStore;
use upslot::storage::{BlobName, BlobStore as _};
use upslot::sweeper;
use upslot::time::unix_now;

const USAGE: &str = "\
usage: cargo bench --bench sweep -- MODE ARGS...
  rate N                       time a sweep of N expired 1 KiB files, and rm -rf of as many
  independence E L [REPS [LAYOUT]]
                               time a sweep of E expired files among L live ones, and alone
  phases N [BATCH [CONCURRENT [LIVE [LAYOUT]]]]
                               time each step of a sweep of N expired files (among LIVE live)
  LAYOUT: mixed (default; live files created among the expired ones) or older
  (the expired files are older than every live file)
  populate DIR LIVE EXPIRED EXPIRES_IN_SECS
                               write DIR/data and DIR/upslot.toml for `upslot serve`
Without a mode: a 2,000-file `rate` run (the smoke test `cargo test --all-targets` runs).
Temporary data goes under $UPSLOT_BENCH_DIR (default target/).";

const DAY: i64 = 86_400;
/// Day prefixes the files are spread over.
const DAYS: i64 = 4;
/// Records per `insert_many` transaction.
const CHUNK: usize = 10_000;
const CONTENT_TYPE: &str = "application/octet-stream";
/// Files of the smoke run done without arguments.
const SMOKE_FILES: usize = 2_000;
/// `CONCURRENT_DELETES` in src/storage/mod.rs (private there), the default of `phases`.
const SWEEPER_CONCURRENT_DELETES: usize = 16;

fn main() -> anyhow::Result<()> {
    // `cargo bench` appends `--bench` to the arguments of every bench
    // target; `cargo test -- --flag` passes test-harness flags. No mode
    // takes a `--` argument.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        // `cargo test --all-targets` runs every bench target without
        // arguments: a small, quick run keeps this program exercised in CI.
        [] => {
            println!("no mode given: a {SMOKE_FILES}-file `rate` run as a smoke test\n{USAGE}\n");
            rate(SMOKE_FILES)
        }
        ["rate", n] => rate(number(n)?),
        ["independence", expired, live, rest @ ..] if rest.len() <= 2 => independence(
            number(expired)?,
            number(live)?,
            rest.first().map_or(Ok(5), |text| number(text))?,
            rest.get(1)
                .map_or(Ok(Layout::Mixed), |text| Layout::parse(text))?,
        ),
        ["phases", n, rest @ ..] if rest.len() <= 4 => {
            let optional = |i: usize, default: usize| -> anyhow::Result<usize> {
                rest.get(i).map_or(Ok(default), |text| number(text))
            };
            phases(
                number(n)?,
                optional(0, sweeper::BATCH)?,
                optional(1, SWEEPER_CONCURRENT_DELETES)?,
                optional(2, 0)?,
                rest.get(3)
                    .map_or(Ok(Layout::Mixed), |text| Layout::parse(text))?,
            )
        }
        ["populate", dir, live, expired, secs] => populate_for_server(
            Path::new(dir),
            number(live)?,
            number(expired)?,
            number(secs)?,
        ),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(64);
        }
    }
}

fn number<T: std::str::FromStr>(text: &str) -> anyhow::Result<T> {
    match text.replace('_', "").parse() {
        Ok(value) => Ok(value),
        Err(_) => bail!("not a number: {text:?}\n{USAGE}"),
    }
}

/// A family of files to create: `count` files named `<name>-<i>`, of
/// `size` bytes, with creation and expiry times given by `times(i)`.
struct Files<'a> {
    name: &'a str,
    count: usize,
    size: usize,
    times: &'a (dyn Fn(usize) -> (i64, i64) + Sync),
}

/// Creation time of file `i` of a family: spread over [`DAYS`] day
/// prefixes, starting `first_day` days back from `now`.
fn spread(now: i64, first_day: i64, i: usize) -> i64 {
    let i = i as i64;
    now - (first_day + i % DAYS) * DAY - (i / DAYS) % 7_200
}

/// A config whose storage is `data`, otherwise the shipped defaults.
fn config_for(data: &Path) -> anyhow::Result<Config> {
    let env: BTreeMap<String, String> = [
        ("UPSLOT_STORAGE__PATH", data.display().to_string()),
        ("UPSLOT_UPLOAD__SECRET", "bench".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(Config::load(None, &env)?)
}

/// Creates the data directory and its keys; returns the index key.
fn index_key(config: &Config) -> anyhow::Result<IndexKey> {
    let prepared = runtime()?.block_on(bootstrap::prepare(config))?;
    Ok(prepared.app.files.index_key().clone())
}

/// Writes the blobs and index rows of `files` into `data` (whose index is
/// closed), the index on one thread while the blobs are written on the
/// others. Returns the number of rows stored.
fn populate(data: &Path, key: &IndexKey, files: &Files<'_>) -> anyhow::Result<usize> {
    let records = make_records(data, key, files)?;
    std::thread::scope(|scope| {
        let index = scope.spawn(|| load_index(data, &records));
        write_blobs(data, &records, files.size)?;
        index
            .join()
            .map_err(|_| anyhow::anyhow!("the index loader panicked"))?
    })
}

/// The index rows of `files`, with fresh blob names; creates their day
/// directories.
fn make_records(
    data: &Path,
    key: &IndexKey,
    files: &Files<'_>,
) -> anyhow::Result<Vec<(SlotKey, FileRecord)>> {
    let blobs = data.join("blobs");
    let mut days = BTreeSet::new();
    let mut records = Vec::with_capacity(files.count);
    for i in 0..files.count {
        let (created, expires_at) = (files.times)(i);
        let path = SlotPath::from_wire(&format!("bench/{}-{i}", files.name))
            .map_err(|e| anyhow::anyhow!("slot path: {e:?}"))?;
        let record = FileRecord {
            blob: BlobName::new(created),
            size: files.size as u64,
            content_type: CONTENT_TYPE.to_string(),
            created,
            expires_at,
            owner: None,
            sealing: None,
        };
        if days.insert(record.blob.day().to_string()) {
            private_dir(&blobs.join(record.blob.day()))?;
        }
        records.push((key.slot(&path), record));
    }
    Ok(records)
}

/// Writes a blob of `size` bytes for every record.
fn write_blobs(data: &Path, records: &[(SlotKey, FileRecord)], size: usize) -> anyhow::Result<()> {
    let blobs = data.join("blobs");
    let payload = vec![b'x'; size];
    for chunk in records.chunks(CHUNK) {
        let names: Vec<PathBuf> = chunk
            .iter()
            .map(|(_, record)| blobs.join(record.blob.key()))
            .collect();
        write_files(&names, &payload)?;
    }
    Ok(())
}

/// Inserts `records` into the index of `data` (which must be closed), in
/// transactions of [`CHUNK`] rows. Returns how many were stored.
fn load_index(data: &Path, records: &[(SlotKey, FileRecord)]) -> anyhow::Result<usize> {
    let index = EmbeddedIndex::open(&data.join("index.redb"))?;
    let mut stored = 0;
    for chunk in records.chunks(CHUNK) {
        stored += index.insert_many(chunk)?;
    }
    Ok(stored)
}

/// Writes `payload` to every path in `paths` (no fsync), on every core.
fn write_files(paths: &[PathBuf], payload: &[u8]) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let per_thread = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for path in part {
                        std::fs::write(path, payload)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })
}

fn private_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Flushes dirty pages so the population's writeback does not overlap a
/// measurement.
fn sync() -> anyhow::Result<()> {
    let status = Command::new("sync").status().context("running sync")?;
    if !status.success() {
        bail!("sync failed: {status}");
    }
    Ok(())
}

/// A temporary working directory under `$UPSLOT_BENCH_DIR` (or `target/`).
fn work_dir() -> anyhow::Result<tempfile::TempDir> {
    let parent =
        std::env::var_os("UPSLOT_BENCH_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    std::fs::create_dir_all(&parent)?;
    Ok(tempfile::Builder::new()
        .prefix("sweep-bench-")
        .tempdir_in(&parent)?)
}

/// Opens the data directory of `config` as the server would and times one
/// sweep at the current time; returns the files deleted and the wall time.
fn timed_sweep(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> anyhow::Result<(u64, Duration)> {
    let prepared = runtime.block_on(bootstrap::prepare(config))?;
    let files = &prepared.app.files;
    runtime.block_on(async {
        let now = unix_now();
        let started = Instant::now();
        let (files, _bytes) = sweeper::sweep(files, now, &CancellationToken::new()).await?;
        Ok((files, started.elapsed()))
    })
}

/// A multi-threaded runtime like the server's (one worker per core).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// System-wide stall counters (Linux PSI), to tell how much other work
/// competed with a measurement on this shared machine.
struct Pressure {
    at: Instant,
    cpu: Option<u64>,
    io: Option<u64>,
}

impl Pressure {
    fn now() -> Pressure {
        Pressure {
            at: Instant::now(),
            cpu: psi_total("cpu"),
            io: psi_total("io"),
        }
    }

    /// "cpu pressure X%, io pressure Y%" since `self`: the share of the
    /// time some runnable task waited for a CPU, and for I/O.
    fn since(&self) -> String {
        let elapsed = self.at.elapsed().as_micros().max(1) as f64;
        let share = |before: Option<u64>, kind| match (before, psi_total(kind)) {
            (Some(before), Some(after)) => {
                format!(
                    "{:.0}%",
                    100.0 * after.saturating_sub(before) as f64 / elapsed
                )
            }
            _ => "?".to_string(),
        };
        format!(
            "cpu pressure {}, io pressure {}",
            share(self.cpu, "cpu"),
            share(self.io, "io")
        )
    }
}

/// Bytes this process read from and wrote to storage so far
/// (`/proc/self/io`); zeros where unavailable.
fn process_io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("read_bytes:"), field("write_bytes:"))
}

/// The `some ... total=` microseconds of `/proc/pressure/<kind>`.
fn psi_total(kind: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{kind}")).ok()?;
    let some = text.lines().find(|line| line.starts_with("some "))?;
    some.split_whitespace()
        .find_map(|field| field.strip_prefix("total="))?
        .parse()
        .ok()
}

fn per_second(count: usize, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64().max(1e-9)
}

/// Creation and expiry of expired file `i`, spread over day prefixes
/// starting two days before `now`, expired a day after creation.
fn expired_times(now: i64, i: usize) -> (i64, i64) {
    let created = spread(now, 2, i);
    (created, created + DAY)
}

/// Writes `n` expired 1 KiB files into `data` and syncs.
fn populate_expired(data: &Path, config: &Config, n: usize, now: i64) -> anyhow::Result<()> {
    let key = index_key(config)?;
    let started = Instant::now();
    let stored = populate(
        data,
        &key,
        &Files {
            name: "expired",
            count: n,
            size: 1024,
            times: &|i| expired_times(now, i),
        },
    )?;
    if stored != n {
        bail!("populated {stored} of {n} files");
    }
    println!(
        "populated {n} expired files in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    sync()
}

/// Where live files sit relative to the expired ones.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Created over the same days as the expired files, interleaved with
    /// them (files whose tokens asked for different lives): the expired
    /// rows are scattered through every index order.
    Mixed,
    /// Created in the last day and a bit, after every expired file (every
    /// file got the same `keep`): the expired rows are the oldest.
    Older,
}

impl Layout {
    fn parse(text: &str) -> anyhow::Result<Layout> {
        match text {
            "mixed" => Ok(Layout::Mixed),
            "older" => Ok(Layout::Older),
            _ => bail!("LAYOUT is mixed or older, not {text:?}\n{USAGE}"),
        }
    }

    /// Creation time of live file `i`.
    fn created(self, now: i64, i: usize) -> i64 {
        match self {
            Layout::Mixed => spread(now, 2, i),
            Layout::Older => now - 60 - (i % 100_000) as i64,
        }
    }
}

/// Writes `live` files that expire in ten days into `data`, placed by
/// `layout`. Their blobs are empty files: directory entries and inodes like
/// real ones, without data blocks, which would only matter if they were
/// deleted.
fn populate_live(
    data: &Path,
    key: &IndexKey,
    live: usize,
    now: i64,
    layout: Layout,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let stored = populate(
        data,
        key,
        &Files {
            name: "live",
            count: live,
            size: 0,
            times: &|i| (layout.created(now, i), now + 10 * DAY),
        },
    )?;
    if stored != live {
        bail!("populated {stored} of {live} live files");
    }
    println!(
        "populated {live} live files (empty blobs) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Mode `rate N`.
fn rate(n: usize) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let work = work_dir()?;
    let data = work.path().join("data");
    let config = config_for(&data)?;
    let now = unix_now();
    populate_expired(&data, &config, n, now)?;
    let pressure = Pressure::now();
    let (swept, sweep_time) = timed_sweep(&runtime, &config)?;
    let sweep_pressure = pressure.since();
    if swept != n as u64 {
        bail!("the sweep deleted {swept} files, expected {n}");
    }
    let left = count_files(&data.join("blobs"))?;
    if left != 0 {
        bail!("{left} blobs left after the sweep");
    }
    println!(
        "sweep:  {n} files in {:.2} s = {:.0} files/s ({sweep_pressure})",
        sweep_time.as_secs_f64(),
        per_second(n, sweep_time)
    );

    // The reference: the same number of files, layout and size, removed by rm -rf.
    let tree = work.path().join("tree");
    let started = Instant::now();
    let mut names = Vec::with_capacity(n);
    let mut days = BTreeSet::new();
    for i in 0..n {
        let blob = BlobName::new(expired_times(now, i).0);
        if days.insert(blob.day().to_string()) {
            private_dir(&tree.join(blob.day()))?;
        }
        names.push(tree.join(blob.key()));
    }
    write_files(&names, &vec![b'x'; 1024])?;
    drop(names);
    sync()?;
    println!(
        "wrote the rm -rf tree in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let pressure = Pressure::now();
    let started = Instant::now();
    let status = Command::new("rm")
        .arg("-rf")
        .arg(&tree)
        .status()
        .context("running rm")?;
    let rm_time = started.elapsed();
    let rm_pressure = pressure.since();
    if !status.success() || tree.exists() {
        bail!("rm -rf failed: {status}");
    }
    println!(
        "rm -rf: {n} files in {:.2} s = {:.0} files/s ({rm_pressure})",
        rm_time.as_secs_f64(),
        per_second(n, rm_time)
    );

    let sweep_rate = per_second(n, sweep_time);
    let rm_rate = per_second(n, rm_time);
    println!(
        "sweep / rm -rf = {:.2}x (target >= 0.5x)",
        sweep_rate / rm_rate
    );
    println!(
        "RESULT rate n={n} sweep_s={:.3} sweep_per_s={sweep_rate:.0} rm_s={:.3} rm_per_s={rm_rate:.0} ratio={:.2}",
        sweep_time.as_secs_f64(),
        rm_time.as_secs_f64(),
        sweep_rate / rm_rate
    );
    remove_work(work)
}

/// Removes a work directory (not measured).
fn remove_work(work: tempfile::TempDir) -> anyhow::Result<()> {
    let path = work.keep();
    let status = Command::new("rm")
        .arg("-rf")
        .arg(&path)
        .status()
        .context("running rm")?;
    if !status.success() {
        bail!("could not remove {}", path.display());
    }
    Ok(())
}

/// Counts the files below `dir` (one level of day directories).
fn count_files(dir: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for day in std::fs::read_dir(dir)? {
        let day = day?;
        if day.file_type()?.is_dir() {
            count += std::fs::read_dir(day.path())?.count();
        }
    }
    Ok(count)
}

/// Mode `independence E L [REPS]`.
fn independence(expired: usize, live: usize, reps: usize, layout: Layout) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let work = work_dir()?;
    let crowded = work.path().join("crowded");
    let alone = work.path().join("alone");
    let crowded_config = config_for(&crowded)?;
    let alone_config = config_for(&alone)?;
    let crowded_key = index_key(&crowded_config)?;
    let alone_key = index_key(&alone_config)?;
    let now = unix_now();

    populate_live(&crowded, &crowded_key, live, now, layout)?;

    let mut times = BTreeMap::<&str, Vec<Duration>>::new();
    for rep in 0..reps {
        for (label, data, config, key) in [
            ("alone", &alone, &alone_config, &alone_key),
            ("among live", &crowded, &crowded_config, &crowded_key),
        ] {
            let name = format!("expired{rep}");
            populate(
                data,
                key,
                &Files {
                    name: &name,
                    count: expired,
                    size: 1024,
                    times: &|i| expired_times(now, i),
                },
            )?;
            sync()?;
            let pressure = Pressure::now();
            let (swept, time) = timed_sweep(&runtime, config)?;
            let pressure = pressure.since();
            if swept != expired as u64 {
                bail!("{label}: the sweep deleted {swept} files, expected {expired}");
            }
            println!(
                "rep {rep}: {expired} expired {label:<10}: {:.3} s ({:.0} files/s; {pressure})",
                time.as_secs_f64(),
                per_second(expired, time)
            );
            times.entry(label).or_default().push(time);
        }
    }
    let median = |label: &str| -> Duration {
        let mut list = times.get(label).cloned().unwrap_or_default();
        list.sort();
        list.get(list.len() / 2).copied().unwrap_or_default()
    };
    let (with_live, alone_time) = (median("among live"), median("alone"));
    let ratio = with_live.as_secs_f64() / alone_time.as_secs_f64().max(1e-9);
    println!(
        "median sweep of {expired} expired: among {live} live ({layout:?}) {:.3} s, alone {:.3} s, ratio {ratio:.2} (target <= 1.5)",
        with_live.as_secs_f64(),
        alone_time.as_secs_f64()
    );
    println!(
        "RESULT independence expired={expired} live={live} layout={layout:?} reps={reps} with_live_s={:.3} alone_s={:.3} ratio={ratio:.2}",
        with_live.as_secs_f64(),
        alone_time.as_secs_f64()
    );
    remove_work(work)
}

/// Mode `phases N BATCH CONCURRENT`.
fn phases(
    n: usize,
    batch: usize,
    concurrent: usize,
    live: usize,
    layout: Layout,
) -> anyhow::Result<()> {
    if batch == 0 || concurrent == 0 {
        bail!("BATCH and CONCURRENT must be at least 1\n{USAGE}");
    }
    let runtime = runtime()?;
    let work = work_dir()?;
    let data = work.path().join("data");
    let config = config_for(&data)?;
    let now = unix_now();
    if live > 0 {
        populate_live(&data, &index_key(&config)?, live, now, layout)?;
    }
    populate_expired(&data, &config, n, now)?;
    // The backends themselves: this mode times the steps the data layer
    // takes for a sweep one by one.
    let index = EmbeddedIndex::open(&data.join("index.redb"))?;
    let blobs = DiskStore::open(&data, 0)?;
    let (mut due_time, mut blob_time, mut row_time) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut files, mut batches) = (0usize, 0usize);
    let (mut row_read, mut row_written) = (0u64, 0u64);
    let pressure = Pressure::now();
    let started = Instant::now();
    runtime.block_on(async {
        let now = unix_now();
        loop {
            // The steps of `sweeper::sweep`, timed one by one.
            let step = Instant::now();
            let due = index.scan(Scan::ExpiredBy(now), batch).await?;
            due_time += step.elapsed();
            let full = due.len() == batch;
            let step = Instant::now();
            let blobs = &blobs;
            let outcomes: Vec<_> = futures_util::stream::iter(due)
                .map(|(key, record)| async move { (key, blobs.delete(&record.blob).await) })
                .buffer_unordered(concurrent)
                .collect()
                .await;
            blob_time += step.elapsed();
            let mut gone = Vec::with_capacity(outcomes.len());
            for (key, outcome) in outcomes {
                outcome?;
                gone.push(key);
            }
            let step = Instant::now();
            let io = process_io();
            files += index.remove(&gone, now).await?.len();
            row_time += step.elapsed();
            let after = process_io();
            row_read += after.0.saturating_sub(io.0);
            row_written += after.1.saturating_sub(io.1);
            batches += 1;
            if !full {
                return anyhow::Ok(());
            }
            tokio::task::yield_now().await;
        }
    })?;
    let total = started.elapsed();
    let pressure = pressure.since();
    if files != n {
        bail!("deleted {files} files, expected {n}");
    }
    let share = |part: Duration| 100.0 * part.as_secs_f64() / total.as_secs_f64().max(1e-9);
    println!(
        "{n} files among {live} live ({layout:?}), batch {batch}, {concurrent} concurrent deletes: {:.2} s = {:.0} files/s ({pressure})",
        total.as_secs_f64(),
        per_second(n, total)
    );
    println!(
        "  due rows:     {:7.2} s ({:4.1}%), {:.2} ms per batch",
        due_time.as_secs_f64(),
        share(due_time),
        due_time.as_secs_f64() * 1e3 / batches as f64
    );
    println!(
        "  blob deletes: {:7.2} s ({:4.1}%), {:.0} files/s",
        blob_time.as_secs_f64(),
        share(blob_time),
        per_second(n, blob_time)
    );
    println!(
        "  row removal:  {:7.2} s ({:4.1}%), {:.2} ms per batch, {:.1} MiB read and {:.1} MiB written per batch",
        row_time.as_secs_f64(),
        share(row_time),
        row_time.as_secs_f64() * 1e3 / batches as f64,
        row_read as f64 / batches as f64 / 1_048_576.0,
        row_written as f64 / batches as f64 / 1_048_576.0
    );
    println!(
        "RESULT phases n={n} live={live} layout={layout:?} batch={batch} concurrent={concurrent} total_s={:.3} per_s={:.0} due_s={:.3} blobs_s={:.3} rows_s={:.3}",
        total.as_secs_f64(),
        per_second(n, total),
        due_time.as_secs_f64(),
        blob_time.as_secs_f64(),
        row_time.as_secs_f64()
    );
    drop((index, blobs));
    remove_work(work)
}

/// Mode `populate DIR LIVE EXPIRED EXPIRES_IN_SECS`.
fn populate_for_server(dir: &Path, live: usize, expired: usize, secs: i64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let data = dir.join("data");
    let toml_path = dir.join("upslot.toml");
    let data_toml = toml::Value::String(data.display().to_string());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [upload]\nsecret = \"bench\"\n\n\
         [storage]\npath = {data_toml}\n\n\
         [retention]\nsweep_every = \"1s\"\n"
    );
    std::fs::write(&toml_path, &text)?;
    let config = Config::load(
        Some((&text, &toml_path.display().to_string())),
        &BTreeMap::new(),
    )?;
    let key = index_key(&config)?;

    let now = unix_now();
    let live_times = |i| (spread(now, 0, i) - 60, now + DAY);
    let mut records = make_records(
        &data,
        &key,
        &Files {
            name: "live",
            count: live,
            size: 4096,
            times: &live_times,
        },
    )?;
    write_blobs(&data, &records, 4096)?;
    // Placeholder expiry, set once the blobs are written: the time left
    // before expiry counts from the end of the slow part.
    let expired_times = |i| (spread(now, 0, i) - 60, 0);
    let mut expired_records = make_records(
        &data,
        &key,
        &Files {
            name: "expired",
            count: expired,
            size: 1024,
            times: &expired_times,
        },
    )?;
    write_blobs(&data, &expired_records, 1024)?;
    let expires_at = unix_now() + secs;
    for (_, record) in &mut expired_records {
        record.expires_at = expires_at;
    }
    records.append(&mut expired_records);
    let stored = load_index(&data, &records)?;
    if stored != live + expired {
        bail!("stored {stored} of {} index rows", live + expired);
    }
    sync()?;
    let paths = dir.join("paths.txt");
    let list: String = (0..live).map(|i| format!("/bench/live-{i}\n")).collect();
    std::fs::write(&paths, list)?;
    println!("config={}", toml_path.display());
    println!("paths={}", paths.display());
    println!("expires_at={expires_at}");
    Ok(())
}
