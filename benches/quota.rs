//! What quotas cost on the upload path: the PUT rate of small files with
//! every quota on (limits so high that nothing is refused, so every upload
//! is measured and reserved) against the same binary with quotas off, in
//! one run, interleaved.
//!
//! Two `upslot serve` processes (the release binary), each with its own
//! data directory under `target/` (a real disk: every upload fsyncs its
//! blob and commits its index row), embedded index by default. Each run
//! sends JWT-signed PUTs of 4 KiB files by 16 accounts (round robin) from
//! 32 concurrent connections for `SECONDS`, and counts 201s per second.
//!
//! Run: `cargo bench --bench quota` (`RUNS=3 SECONDS=10 CONCURRENCY=32`;
//! `QUOTAS_ON` replaces the quota server's `[quota]` keys, by default every
//! limit set to 1 TiB;
//! `BENCH_POSTGRES_URL=postgres://…` runs both servers on PostgreSQL
//! instead, each on a fresh database the URL's role creates, where a
//! reservation is a transaction under advisory locks).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "bench-quota-secret";
const FILE_SIZE: usize = 4096;
const ACCOUNTS: usize = 16;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running server and how to reach it.
struct Server {
    label: &'static str,
    base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start(label: &'static str, dir: &Path, quota: &str, index: &str) -> Result<Server> {
    let port = free_port()?;
    let data = dir.join(label);
    std::fs::create_dir_all(&data)?;
    let config = dir.join(format!("{label}.toml"));
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"\"\n\
             [upload]\nsecret = \"{SECRET}\"\nmax_size = \"1MiB\"\n\
             [storage]\npath = \"{}\"\nmin_free = \"0\"\n{index}\n[quota]\n{quota}\n",
            data.display()
        ),
    )?;
    let child = Command::new(env!("CARGO_BIN_EXE_upslot"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("start upslot")?;
    let server = Server {
        label,
        base: format!("http://127.0.0.1:{port}"),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{label} did not listen within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

/// A JWT as Prosody's mod_http_file_share signs it.
fn jwt(slot: &str, sub: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = format!(
        r#"{{"slot":"{slot}","filesize":{FILE_SIZE},"sub":"{sub}","exp":{}}}"#,
        upslot::time::unix_now() + 3600
    );
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// PUTs per second against `server` for `seconds` from `concurrency`
/// connections; every answer must be 201.
async fn put_rate(server: &Server, run: u64, seconds: u64, concurrency: u64) -> Result<f64> {
    let client = reqwest::Client::builder().build()?;
    let body = bytes::Bytes::from(vec![0x5a; FILE_SIZE]);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (client, body, done) = (client.clone(), body.clone(), Arc::clone(&done));
        let base = server.base.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let slot = format!("r{run}w{worker}n{n}");
                let sub = format!("user{}@bench.example", (worker + n) % ACCOUNTS as u64);
                let response = client
                    .put(format!("{base}/{slot}/f.bin"))
                    .bearer_auth(jwt(&slot, &sub))
                    .body(body.clone())
                    .send()
                    .await?;
                if response.status() != reqwest::StatusCode::CREATED {
                    bail!("PUT answered {}", response.status());
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// A fresh database `name` on the server of `url` (whose role may create
/// databases), as a URL.
async fn fresh_database(url: &str, name: &str) -> Result<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let (server, _) = url
        .rsplit_once('/')
        .context("BENCH_POSTGRES_URL: postgres://user:password@host:port/database")?;
    Ok(format!("{server}/{name}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo bench -- --list` and `cargo test --benches`
    }
    let runs = knob("RUNS", 3);
    let seconds = knob("SECONDS", 10);
    let concurrency = knob("CONCURRENCY", 32);
    let target: PathBuf = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target)?;
    let dir = tempfile::tempdir_in(&target)?;
    let (index_off, index_on, backend) = match std::env::var("BENCH_POSTGRES_URL") {
        Ok(url) => {
            let off = fresh_database(&url, "upslot_bench_quota_off").await?;
            let on = fresh_database(&url, "upslot_bench_quota_on").await?;
            (
                format!("[index]\nbackend = \"postgres\"\nurl = \"{off}\""),
                format!("[index]\nbackend = \"postgres\"\nurl = \"{on}\""),
                "PostgreSQL",
            )
        }
        Err(_) => (String::new(), String::new(), "embedded (redb)"),
    };
    let off = start(
        "quotas-off",
        dir.path(),
        "per_owner_daily = \"0\"\nper_owner_stored = \"0\"\nglobal_stored = \"0\"",
        &index_off,
    )?;
    let quotas_on = std::env::var("QUOTAS_ON").unwrap_or_else(|_| {
        "per_owner_daily = \"1TiB\"\nper_owner_stored = \"1TiB\"\nglobal_stored = \"1TiB\"".into()
    });
    let on = start("quotas-on", dir.path(), &quotas_on, &index_on)?;
    eprintln!(
        "PUT rate of {FILE_SIZE}-byte files, JWT by {ACCOUNTS} accounts, {concurrency} connections, \
         {seconds} s per run, {runs} interleaved runs, index: {backend}"
    );
    let (mut rates_off, mut rates_on) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let order: [&Server; 2] = if run % 2 == 0 {
            [&off, &on]
        } else {
            [&on, &off]
        };
        for server in order {
            let rate = put_rate(server, run, seconds, concurrency).await?;
            eprintln!("run {run}: {:<11} {rate:.0} PUT/s", server.label);
            if std::ptr::eq(server, &off) {
                rates_off.push(rate);
            } else {
                rates_on.push(rate);
            }
        }
    }
    let (m_off, m_on) = (median(rates_off), median(rates_on));
    println!("| quotas | PUT/s (median) |");
    println!("|---|---|");
    println!("| off | {m_off:.0} |");
    println!("| on ({}) | {m_on:.0} |", quotas_on.replace('\n', ", "));
    println!("| ratio on/off | {:.2} |", m_on / m_off);
    Ok(())
}
