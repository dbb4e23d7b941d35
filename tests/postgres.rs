//! The PostgreSQL index as several replicas see it: one database, several
//! pools. The index contract itself runs in `tests/contracts.rs`; these
//! tests cover what only a shared index has (races between replicas, the
//! key check, leases, concurrent migrations) and what the schema promises.
//!
//! They need a real server: `tests/run.sh` provides one (see
//! `tests/common/postgres.rs`).

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use upslot::encryption::Sealing;
use upslot::index::postgres::PostgresIndex;
use upslot::index::{
    FileRecord, Index, IndexError, Inserted, Leases, OwnerKey, QuotaLedger, Scan, SlotKey,
};
use upslot::storage::BlobName;

const KEY: [u8; 32] = [7; 32];

fn record(created: i64, owner: Option<u8>) -> FileRecord {
    FileRecord {
        blob: BlobName::new(created),
        size: 1_000,
        content_type: "image/png".into(),
        created,
        expires_at: created + 3_600,
        owner: owner.map(|o| OwnerKey([o; 32])),
        sealing: owner.map(|o| Sealing {
            epoch: created + 3_600,
            wrapped_key: [o; 60],
        }),
    }
}

/// A direct connection, to look at rows as an operator would.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn two_replicas_racing_one_slot_create_it_once() {
    let url = common::postgres::fresh_database().await;
    let a = Arc::new(PostgresIndex::connect(&url, 4, KEY).await.unwrap());
    let b = Arc::new(PostgresIndex::connect(&url, 4, KEY).await.unwrap());
    let mut racers = Vec::new();
    for i in 0..16 {
        let index = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.push(tokio::spawn(async move {
            index.insert(SlotKey([1; 32]), record(100 + i, None)).await
        }));
    }
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap().unwrap());
    }
    let created = outcomes.iter().filter(|o| **o == Inserted::Created).count();
    assert_eq!(created, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Inserted::Created | Inserted::Exists))
    );
    // Both replicas see the one record, and the counters stayed exact.
    let seen_a = a.get(SlotKey([1; 32])).await.unwrap().unwrap();
    assert_eq!(b.get(SlotKey([1; 32])).await.unwrap(), Some(seen_a));
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.files, stats.bytes), (1, 1_000));

    // A removal on one replica is a tombstone for the other.
    assert_eq!(a.remove(&[SlotKey([1; 32])], 500).await.unwrap().len(), 1);
    assert_eq!(
        b.insert(SlotKey([1; 32]), record(600, None)).await.unwrap(),
        Inserted::Gone
    );
    assert!(b.remove(&[SlotKey([1; 32])], 600).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_removals_count_each_file_once() {
    let url = common::postgres::fresh_database().await;
    let a = Arc::new(PostgresIndex::connect(&url, 4, KEY).await.unwrap());
    let b = Arc::new(PostgresIndex::connect(&url, 4, KEY).await.unwrap());
    let keys: Vec<SlotKey> = (0..40u8).map(|i| SlotKey([i; 32])).collect();
    for key in &keys {
        a.insert(*key, record(10, Some(1))).await.unwrap();
    }
    // Overlapping batches in opposite orders, from both replicas at once.
    let forward = keys.clone();
    let mut backward = keys.clone();
    backward.reverse();
    let (x, y) = tokio::join!(a.remove(&forward, 50), b.remove(&backward, 60));
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), keys.len());
    let stats = a.stats().await.unwrap();
    assert_eq!(
        (
            stats.files,
            stats.bytes,
            stats.tombstones,
            stats.oldest_created
        ),
        (0, 0, 40, None)
    );
    assert!(
        a.scan(Scan::OwnedBy(OwnerKey([1; 32])), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Forgetting from both replicas at once forgets each tombstone once.
    let (x, y) = tokio::join!(
        a.forget_tombstones(1_000, 25),
        b.forget_tombstones(1_000, 25)
    );
    let forgotten = x.unwrap() + y.unwrap();
    let rest = a.forget_tombstones(1_000, 100).await.unwrap();
    assert_eq!(forgotten + rest, 40);
    assert_eq!(b.stats().await.unwrap().tombstones, 0);
}

#[tokio::test]
async fn tombstones_keep_nothing_of_the_file() {
    let url = common::postgres::fresh_database().await;
    let index = PostgresIndex::connect(&url, 2, KEY).await.unwrap();
    let key = SlotKey([3; 32]);
    index.insert(key, record(10, Some(9))).await.unwrap();
    index.remove(&[key], 77).await.unwrap();
    let row = sql(&url)
        .await
        .query_one(
            "SELECT blob IS NULL AND size IS NULL AND content_type IS NULL AND created IS NULL
                 AND expires_at IS NULL AND owner IS NULL, deleted_at
             FROM upslot_slots WHERE slot = $1",
            &[&&key.0[..]],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i64>(1), 77);
    assert_eq!(index.tombstone(key).await.unwrap(), Some(77));
}

#[tokio::test]
async fn a_replica_with_another_key_is_refused() {
    let url = common::postgres::fresh_database().await;
    PostgresIndex::connect(&url, 1, KEY).await.unwrap();
    let other = PostgresIndex::connect(&url, 1, [8; 32]).await;
    assert!(matches!(other, Err(IndexError::KeyMismatch)));
    let message = IndexError::KeyMismatch.to_string();
    assert!(message.contains("copy the key file"), "{message}");
    PostgresIndex::connect(&url, 1, KEY).await.unwrap();
}

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let url = common::postgres::fresh_database().await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresIndex::connect(&url, 1, KEY).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap().check().await.unwrap();
    }
    let client = sql(&url).await;
    let version: i64 = client
        .query_one(
            "SELECT number FROM upslot_meta WHERE name = 'schema_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 3);
    let counters: i64 = client
        .query_one("SELECT count(*) FROM upslot_counters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(counters, 1);
}

#[tokio::test]
async fn an_older_schema_gains_the_owners_stored_bytes() {
    let url = common::postgres::fresh_database().await;
    let index = PostgresIndex::connect(&url, 1, KEY).await.unwrap();
    for (slot, owner) in [(1, Some(7)), (2, Some(7)), (3, None)] {
        index
            .insert(SlotKey([slot; 32]), record(100, owner))
            .await
            .unwrap();
    }
    drop(index);
    // Back to schema 2: no quota ledger.
    sql(&url)
        .await
        .batch_execute(
            "DROP TABLE upslot_owner_stored, upslot_owner_uploads, upslot_reservations;
             UPDATE upslot_meta SET number = 2 WHERE name = 'schema_version'",
        )
        .await
        .unwrap();
    let index = PostgresIndex::connect(&url, 1, KEY).await.unwrap();
    let usage = index.usage(OwnerKey([7; 32]), 100).await.unwrap();
    let size = record(100, Some(7)).size;
    assert_eq!((usage.stored, usage.uploads), (2 * size, vec![]));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = common::postgres::fresh_database().await;
    PostgresIndex::connect(&url, 1, KEY).await.unwrap();
    sql(&url)
        .await
        .execute(
            "UPDATE upslot_meta SET number = 99 WHERE name = 'schema_version'",
            &[],
        )
        .await
        .unwrap();
    match PostgresIndex::connect(&url, 1, KEY).await {
        Err(IndexError::Unavailable(message)) => {
            assert!(message.contains("schema version 99"), "{message}");
        }
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test]
async fn leases_have_one_holder_by_the_database_clock() {
    let url = common::postgres::fresh_database().await;
    let a = PostgresIndex::connect(&url, 2, KEY).await.unwrap();
    let b = PostgresIndex::connect(&url, 2, KEY).await.unwrap();
    let short = Duration::from_secs(1);
    let long = Duration::from_secs(600);

    assert!(a.lease("sweep", "a", short).await.unwrap());
    assert!(!b.lease("sweep", "b", short).await.unwrap());
    assert!(a.lease("sweep", "a", short).await.unwrap(), "renewal");
    // Leases are independent of each other.
    assert!(b.lease("other", "b", long).await.unwrap());

    // Once A stops renewing, B takes the lease after it expires.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.lease("sweep", "b", long).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the expired lease was never free"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!a.lease("sweep", "a", short).await.unwrap());

    // Only the holder's release frees it, and then at once.
    a.release("sweep", "a").await.unwrap();
    assert!(!a.lease("sweep", "a", long).await.unwrap());
    b.release("sweep", "b").await.unwrap();
    assert!(a.lease("sweep", "a", long).await.unwrap());
    b.release("missing", "b").await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_fails_promptly_without_the_password() {
    // A closed port: refused at once.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://someone:hunter2-secret@127.0.0.1:{closed}/upslot");
    let started = Instant::now();
    let error = PostgresIndex::connect(&url, 1, KEY)
        .await
        .err()
        .expect("no server");
    assert!(matches!(error, IndexError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // A server that accepts and never answers: the pool's timeouts end it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://someone:hunter2-secret@127.0.0.1:{port}/upslot");
    let started = Instant::now();
    let error = PostgresIndex::connect(&url, 1, KEY)
        .await
        .err()
        .expect("no answer");
    assert!(matches!(error, IndexError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(60), "hung");
    holder.abort();

    // A URL that does not parse is not echoed either.
    let error = PostgresIndex::connect("postgres://someone:hunter2-secret@host:port/db", 1, KEY)
        .await
        .err()
        .expect("bad url");
    assert!(matches!(error, IndexError::Unavailable(_)), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}
