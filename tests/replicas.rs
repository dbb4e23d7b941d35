//! Several replicas of the real binary over one S3 bucket (`s3s-fs`) and
//! one PostgreSQL index: uploads through one are served by the other,
//! same-slot races across replicas have one winner, exactly one replica
//! sweeps and another takes over when it dies, a replica with another
//! index key or master key is refused, a PostgreSQL outage gives 503
//! until it ends, and uploads of one account racing through both never
//! exceed its daily limit. Encryption is on (the default): replicas read each
//! other's encrypted files through the epoch keys in the shared database.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::postgres::fresh_database;
use common::s3::S3Server;
use common::{Claims, Put, Upslot, client, data, health, metric, metrics, put, wait_for};
use reqwest::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const BUCKET: &str = "shared";

async fn get(server: &Upslot, path: &str) -> (StatusCode, Vec<u8>) {
    let response = client().get(server.url(path)).send().await.unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

/// A replica on the shared bucket and database, with the shared index key
/// file `key_file` and the shared master key beside it (`.master`), and
/// 2-second encryption epochs so that keys are destroyed within a test.
fn replica(s3: &S3Server, database: &str, key_file: &Path, retention: &str) -> Upslot {
    replica_with(s3, database, key_file, "", retention)
}

/// [`replica`] with `upload` keys for its `[upload]` section.
fn replica_with(
    s3: &S3Server,
    database: &str,
    key_file: &Path,
    upload: &str,
    retention: &str,
) -> Upslot {
    Upslot::start_with(
        "",
        upload,
        &format!(
            "{}\n[index]\nbackend = \"postgres\"\nurl = \"{database}\"\nkey_file = \"{}\"\n\
             [encryption]\nepoch = \"2s\"\nmaster_key_file = \"{}\"\n{retention}",
            s3.storage_toml(BUCKET),
            key_file.display(),
            key_file.with_extension("master").display()
        ),
        &[],
    )
}

/// Starts a replica with index key file `index_key` and master key file
/// `master_key` that is expected to refuse to start; returns its stderr.
fn refused_replica(
    s3: &S3Server,
    database: &str,
    dir: &Path,
    index_key: &Path,
    master_key: &Path,
) -> String {
    let config = dir.join("other.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"\"\n[upload]\nsecret = \"{}\"\n\
             [storage]\npath = \"{}\"\n{}\n[index]\nbackend = \"postgres\"\nurl = \"{database}\"\n\
             key_file = \"{}\"\n[encryption]\nmaster_key_file = \"{}\"\n",
            common::SECRET,
            dir.join("data").display(),
            s3.storage_toml(BUCKET),
            index_key.display(),
            master_key.display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_upslot"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("upslot_test:"),
        "no password in errors: {stderr}"
    );
    stderr
}

#[tokio::test]
async fn two_replicas_share_a_bucket_and_an_index() {
    let s3 = S3Server::start(BUCKET);
    let database = fresh_database().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("index.key");
    let retention = "[retention]\nkeep = \"6s\"\nsweep_every = \"1s\"\n";
    let a = replica(&s3, &database, &key_file, retention);
    let mut b = Some(replica(&s3, &database, &key_file, retention));

    // Upload through one, download through the other.
    let big = data(12 << 20);
    assert_eq!(put(&a, "r/big.bin", big.clone()).await, StatusCode::CREATED);
    let (status, body) = get(b.as_ref().unwrap(), "r/big.bin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == big);
    assert_eq!(
        put(b.as_ref().unwrap(), "r/small.txt", b"via b".to_vec()).await,
        StatusCode::CREATED
    );
    assert_eq!(get(&a, "r/small.txt").await.1, b"via b");

    // Same-slot PUTs through both replicas at once: exactly one 201.
    for round in 0..3 {
        let path = format!("race/{round}.bin");
        let racers = (0..6).map(|i| {
            let server = if i % 2 == 0 { &a } else { b.as_ref().unwrap() };
            put(server, &path, data(200_000 + i))
        });
        let outcomes = futures_util::future::join_all(racers).await;
        let created = outcomes
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
            "{outcomes:?}"
        );
    }
    // The losers' objects are gone: one object per stored file.
    wait_for("the losers' objects to be deleted", async || {
        s3.keys(BUCKET).len() == 5
    })
    .await;

    // Exactly one replica holds the sweeper lease.
    wait_for("one sweeper", async || {
        metric(&metrics(&a).await, "upslot_sweeper_leader")
            + metric(&metrics(b.as_ref().unwrap()).await, "upslot_sweeper_leader")
            == 1.0
    })
    .await;

    // Expiry is performed by whichever replica sweeps.
    wait_for("every object to expire and be deleted", async || {
        s3.keys(BUCKET).is_empty()
    })
    .await;
    assert_eq!(get(&a, "r/big.bin").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        put(b.as_ref().unwrap(), "r/big.bin", b"again".to_vec()).await,
        StatusCode::CONFLICT,
        "a swept slot stays used on every replica"
    );

    // Only the lease holder destroys epoch keys, and the shared table
    // empties for both.
    wait_for("the epoch keys to be destroyed", async || {
        metric(&metrics(&a).await, "upslot_encryption_epochs") == 0.0
            && metric(
                &metrics(b.as_ref().unwrap()).await,
                "upslot_encryption_epochs",
            ) == 0.0
    })
    .await;
    let destroyed = |text: &str| metric(text, "upslot_encryption_epochs_destroyed_total");
    let leads = |text: &str| metric(text, "upslot_sweeper_leader") == 1.0;
    for server in [&a, b.as_ref().unwrap()] {
        let text = metrics(server).await;
        if leads(&text) {
            assert!(destroyed(&text) >= 1.0, "{text}");
        } else {
            assert_eq!(destroyed(&text), 0.0, "{text}");
        }
    }

    // The sweeping replica dies; the other takes the lease over and sweeps.
    let (leader, survivor) = if metric(&metrics(&a).await, "upslot_sweeper_leader") == 1.0 {
        (a, b.take().unwrap())
    } else {
        (b.take().unwrap(), a)
    };
    drop(leader); // SIGKILL: no chance to give the lease up
    assert_eq!(
        put(&survivor, "after/x.txt", b"outlives its sweeper".to_vec()).await,
        StatusCode::CREATED
    );
    wait_for("the survivor to take the lease", async || {
        metric(&metrics(&survivor).await, "upslot_sweeper_leader") == 1.0
    })
    .await;
    wait_for("the survivor to sweep", async || s3.keys(BUCKET).is_empty()).await;
}

#[tokio::test]
async fn replicas_racing_one_accounts_limit_never_exceed_it() {
    let s3 = S3Server::start(BUCKET);
    let database = fresh_database().await;
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("index.key");
    let quota = "[quota]\nper_owner_daily = \"8KiB\"\n";
    let replicas = [
        replica_with(&s3, &database, &key_file, "max_size = \"1KiB\"", quota),
        replica_with(&s3, &database, &key_file, "max_size = \"1KiB\"", quota),
    ];
    // Twenty uploads by one account, alternating replicas, all at once.
    let race = |round: usize| {
        let uploads: Vec<_> = (0..20)
            .map(|i| {
                let slot = format!("q{round}-{i}");
                let token = Claims::new(&slot, 1024).sub("romeo@montague.tld").jwt();
                let put = Put::bearer(&format!("{slot}/f.bin"), &token, data(1024))
                    .request(&replicas[i % 2]);
                tokio::spawn(async move { put.send().await.unwrap().status() })
            })
            .collect();
        async move {
            let mut accepted = 0;
            for upload in uploads {
                match upload.await.unwrap() {
                    StatusCode::CREATED => accepted += 1,
                    StatusCode::TOO_MANY_REQUESTS => {}
                    other => panic!("{other}"),
                }
            }
            accepted
        }
    };
    let first = race(0).await;
    assert!(
        (1..=8).contains(&first),
        "{first} KiB uploaded today, 8 allowed"
    );
    // Erasure through one replica forgets the account's uploads for both.
    let ts = common::unix_now();
    let erased = common::erase_request(
        &replicas[1],
        "romeo@montague.tld",
        ts,
        &common::erase_sig("romeo@montague.tld", ts),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let second = race(1).await;
    assert!(
        (1..=8).contains(&second),
        "{second} KiB uploaded since, 8 allowed"
    );
}

#[tokio::test]
async fn a_replica_with_another_index_key_is_refused() {
    let s3 = S3Server::start(BUCKET);
    let database = fresh_database().await;
    let keys = tempfile::tempdir().unwrap();
    let first = replica(&s3, &database, &keys.path().join("a.key"), "");
    assert_eq!(
        put(&first, "k/a.txt", b"a".to_vec()).await,
        StatusCode::CREATED
    );

    let dir = keys.path();
    let stderr = refused_replica(
        &s3,
        &database,
        dir,
        &dir.join("b.key"),
        &dir.join("a.master"),
    );
    assert!(stderr.contains("another index key"), "{stderr}");
}

#[tokio::test]
async fn a_replica_with_another_master_key_is_refused() {
    let s3 = S3Server::start(BUCKET);
    let database = fresh_database().await;
    let keys = tempfile::tempdir().unwrap();
    let dir = keys.path();
    let first = replica(&s3, &database, &dir.join("a.key"), "");
    assert_eq!(
        put(&first, "k/a.txt", b"a".to_vec()).await,
        StatusCode::CREATED
    );
    let stderr = refused_replica(
        &s3,
        &database,
        dir,
        &dir.join("a.key"),
        &dir.join("b.master"),
    );
    assert!(stderr.contains("another master key"), "{stderr}");
    assert!(stderr.contains("encryption.master_key_file"), "{stderr}");
    // The refused replica generated a master key; it never reached a log.
    let generated = std::fs::read_to_string(dir.join("b.master")).unwrap();
    assert!(!stderr.contains(generated.trim()), "{stderr}");
}

/// A TCP relay to PostgreSQL that can be cut and restored, to take the
/// real database away from upslot without stopping it for other tests.
struct Relay {
    port: u16,
    gate: Arc<watch::Sender<bool>>,
    /// Connections accepted and not yet closed.
    live: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let gate = Arc::new(watch::Sender::new(true));
        let live = Arc::new(AtomicUsize::new(0));
        let (accept_gate, accept_live) = (Arc::clone(&gate), Arc::clone(&live));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*accept_gate.borrow() {
                    continue; // dropped: connection closed at once
                }
                // Counted from the accept, so a cut waits for this one too.
                accept_live.fetch_add(1, Ordering::SeqCst);
                let mut closed = accept_gate.subscribe();
                let live = Arc::clone(&accept_live);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = closed.wait_for(|open| !*open) => {} // cut: both sides closed
                        }
                    }
                    drop(inbound);
                    live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Relay { port, gate, live }
    }

    /// Opens the relay, or closes it: refuses new connections and returns
    /// once every relayed one is cut, so nothing gets through afterwards.
    async fn set_open(&self, open: bool) {
        self.gate.send_replace(open);
        while !open && self.live.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`; returns it
/// and the original host:port.
fn through(url: &str, port: u16) -> (String, String) {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").unwrap() + 3, |i| i + 1);
    let end = start + url[start..].find('/').unwrap();
    let original = url[start..end].to_string();
    let rewritten = format!("{}127.0.0.1:{port}{}", &url[..start], &url[end..]);
    let original = if original.contains(':') {
        original
    } else {
        format!("{original}:5432")
    };
    (rewritten, original.replace("localhost", "127.0.0.1"))
}

// Several threads: the relay must run while the test blocks waiting for
// the replica to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_gives_503_and_service_resumes() {
    let s3 = S3Server::start(BUCKET);
    let database = fresh_database().await;
    let (probe_url, target) = through(&database, 1);
    drop(probe_url);
    let relay = Relay::start(target).await;
    let (url, _) = through(&database, relay.port);
    let keys = tempfile::tempdir().unwrap();
    let server = replica(&s3, &url, &keys.path().join("index.key"), "");
    assert_eq!(
        put(&server, "pg/before.txt", b"before".to_vec()).await,
        StatusCode::CREATED
    );
    assert_eq!(health(&server).await.status(), StatusCode::OK);

    relay.set_open(false).await;
    wait_for("health to report the index", async || {
        let response = health(&server).await;
        response.status() == StatusCode::SERVICE_UNAVAILABLE
            && response
                .text()
                .await
                .unwrap()
                .contains("\"index\":\"failed\"")
    })
    .await;
    // Refused before its body is read: small enough to be sent whole.
    assert_eq!(
        put(&server, "pg/during.bin", data(2000)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(s3.keys(BUCKET).len(), 1, "nothing partial is left");
    // Not ready, but alive: a liveness probe restarts nothing a restart
    // could not fix.
    let live = client()
        .get(format!("{}/live", server.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    // The scrape still answers, so the alert on upslot_index_up can fire;
    // what only the index knows is left out instead of made up.
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "upslot_index_up"), 0.0);
    assert_eq!(metric(&text, "upslot_storage_up"), 1.0);
    assert!(!text.contains("upslot_files_stored"), "{text}");
    assert_eq!(
        metric(&text, "upslot_encryption_decrypt_failures_total"),
        0.0
    );

    relay.set_open(true).await;
    wait_for("health to recover", async || {
        health(&server).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        put(&server, "pg/during.bin", data(2000)).await,
        StatusCode::CREATED
    );
    assert_eq!(get(&server, "pg/before.txt").await.1, b"before");
    assert_eq!(s3.keys(BUCKET).len(), 2);
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "upslot_index_up"), 1.0);
    assert_eq!(metric(&text, "upslot_files_stored"), 2.0);
}
