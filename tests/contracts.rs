//! The contracts every backend must keep: one for blob stores, one for
//! indexes. Each backend runs the same functions; a new backend adds one
//! test per contract below.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use upslot::encryption::Sealing;
use upslot::index::embedded::EmbeddedIndex;
use upslot::index::postgres::PostgresIndex;
use upslot::index::{FileRecord, Index, Inserted, OwnerKey, Scan, SlotKey};
use upslot::storage::disk::DiskStore;
use upslot::storage::object::ObjectBlobStore;
use upslot::storage::{BlobMeta, BlobName, BlobStore, StorageError};

const DAY: i64 = 86_400;

async fn read_all(store: &dyn BlobStore, name: &BlobName, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut stream = store.read(name, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

fn meta() -> BlobMeta {
    BlobMeta {
        content_type: "image/png".into(),
        max_age: 3600,
    }
}

async fn put(store: &dyn BlobStore, name: &BlobName, data: &[u8]) {
    let mut writer = store
        .create(name, data.len() as u64, &meta())
        .await
        .unwrap();
    for chunk in data.chunks(64 * 1024 + 7) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    writer.commit().await.unwrap();
}

/// `len` bytes counting up modulo `modulus`.
fn pattern(len: usize, modulus: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i % modulus) as u8).collect()
}

/// What every [`BlobStore`] must do.
async fn blob_contract(store: Arc<dyn BlobStore>) {
    let store = store.as_ref();
    // Round trip through many chunks, and ranges. Longer than two parts of
    // the S3 store below (5 MiB), so that it is a multipart upload and its
    // long reads cross pieces.
    let data = pattern(11_000_003, 251);
    let name = BlobName::new(10 * DAY);
    put(store, &name, &data).await;
    assert_eq!(read_all(store, &name, 0..data.len() as u64).await, data);
    assert_eq!(read_all(store, &name, 0..2).await, &data[..2]);
    for range in [
        1_000_000..1_000_500,
        5_242_870..5_242_890,
        1_000_000..11_000_000,
        10_999_990..11_000_003,
    ] {
        assert_eq!(
            read_all(store, &name, range.start as u64..range.end as u64).await,
            &data[range],
        );
    }

    // An empty blob.
    let empty = BlobName::new(10 * DAY);
    put(store, &empty, b"").await;
    assert!(read_all(store, &empty, 0..0).await.is_empty());

    // Nothing is visible before commit, and an abandoned writer leaves nothing.
    let pending = BlobName::new(10 * DAY);
    let mut writer = store.create(&pending, 5, &meta()).await.unwrap();
    writer.write(Bytes::from_static(b"hello")).await.unwrap();
    assert!(matches!(
        store.read(&pending, 0..5).await,
        Err(StorageError::NotFound)
    ));
    drop(writer);
    assert!(matches!(
        store.read(&pending, 0..5).await,
        Err(StorageError::NotFound)
    ));

    // Delete is idempotent; a deleted blob is gone.
    store.delete(&name).await.unwrap();
    store.delete(&name).await.unwrap();
    assert!(matches!(
        store.read(&name, 0..1).await,
        Err(StorageError::NotFound)
    ));
    store.delete(&BlobName::new(0)).await.unwrap();

    // Listing day prefixes and deleting a whole day (the backstop).
    let old_a = BlobName::new(2 * DAY);
    let old_b = BlobName::new(2 * DAY + 5);
    let other = BlobName::new(3 * DAY);
    for blob in [&old_a, &old_b, &other] {
        put(store, blob, b"x").await;
    }
    let days = store.days().await.unwrap();
    for day in ["1970-01-03", "1970-01-04", "1970-01-11"] {
        assert!(days.contains(&day.to_string()), "{day} in {days:?}");
    }
    assert!(days.windows(2).all(|w| w[0] < w[1]), "sorted: {days:?}");
    assert_eq!(store.delete_day("1970-01-03").await.unwrap(), 2);
    assert!(matches!(
        store.read(&old_a, 0..1).await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(read_all(store, &other, 0..1).await, b"x");
    assert!(
        !store
            .days()
            .await
            .unwrap()
            .contains(&"1970-01-03".to_string())
    );
    assert_eq!(store.delete_day("1970-01-03").await.unwrap(), 0);

    // Health.
    store.check().await.unwrap();
}

fn key(n: u8) -> SlotKey {
    SlotKey([n; 32])
}

fn record(created: i64, expires_at: i64, owner: Option<u8>) -> FileRecord {
    FileRecord {
        blob: BlobName::new(created),
        size: 100,
        content_type: "image/jpeg".into(),
        created,
        expires_at,
        owner: owner.map(|o| OwnerKey([o; 32])),
        // Records of owned files are sealed, so both shapes go through
        // every index.
        sealing: owner.map(|o| Sealing {
            epoch: expires_at,
            wrapped_key: [o; 60],
        }),
    }
}

/// What every [`Index`] must do.
async fn index_contract(index: Arc<dyn Index>) {
    let index = index.as_ref();
    // Create-only inserts.
    let first = record(10, 100, Some(1));
    assert_eq!(
        index.insert(key(1), first.clone()).await.unwrap(),
        Inserted::Created
    );
    assert_eq!(
        index.insert(key(1), record(11, 200, None)).await.unwrap(),
        Inserted::Exists
    );
    assert_eq!(index.get(key(1)).await.unwrap(), Some(first.clone()));
    assert_eq!(index.get(key(9)).await.unwrap(), None);

    // Concurrent inserts of one key: exactly one wins.
    let mut racers = Vec::new();
    for i in 0..8 {
        racers.push(index.insert(key(2), record(20 + i, 300, None)));
    }
    let outcomes = futures_util::future::join_all(racers).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Inserted::Created)))
        .count();
    assert_eq!(created, 1, "{outcomes:?}");

    // Orders: by expiry, by creation, by owner.
    index.insert(key(3), record(5, 50, Some(1))).await.unwrap();
    index
        .insert(key(4), record(30, 400, Some(2)))
        .await
        .unwrap();
    let due: Vec<SlotKey> = index
        .scan(Scan::ExpiredBy(100), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(due, vec![key(3), key(1)]);
    assert_eq!(index.scan(Scan::ExpiredBy(100), 1).await.unwrap().len(), 1);
    assert_eq!(index.count_expired(300, 100).await.unwrap(), 3);
    let old: Vec<SlotKey> = index
        .scan(Scan::CreatedBy(10), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(old, vec![key(3), key(1)]);
    let mut owned: Vec<SlotKey> = index
        .scan(Scan::OwnedBy(OwnerKey([1; 32])), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    owned.sort();
    assert_eq!(owned, vec![key(1), key(3)]);

    // Totals.
    let stats = index.stats().await.unwrap();
    assert_eq!(
        (stats.files, stats.bytes, stats.oldest_created),
        (4, 400, Some(5))
    );
    assert_eq!(
        index.age_histogram(vec![0, 10, 100]).await.unwrap(),
        vec![1, 3]
    );

    // Removal in batches leaves tombstones; missing keys are skipped.
    let removed = index.remove(&[key(1), key(3), key(99)], 500).await.unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(index.get(key(1)).await.unwrap(), None);
    assert_eq!(index.tombstone(key(1)).await.unwrap(), Some(500));
    assert_eq!(index.tombstone(key(4)).await.unwrap(), None);
    assert_eq!(
        index.insert(key(1), record(600, 900, None)).await.unwrap(),
        Inserted::Gone
    );
    assert!(
        index
            .scan(Scan::OwnedBy(OwnerKey([1; 32])), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(index.scan(Scan::ExpiredBy(100), 10).await.unwrap().len(), 0);
    let stats = index.stats().await.unwrap();
    assert_eq!((stats.files, stats.bytes, stats.tombstones), (2, 200, 2));

    // Tombstones are forgotten in time order, then the slot is free again.
    assert_eq!(index.forget_tombstones(500, 10).await.unwrap(), 0);
    assert_eq!(index.forget_tombstones(501, 1).await.unwrap(), 1);
    assert_eq!(index.forget_tombstones(501, 10).await.unwrap(), 1);
    assert_eq!(
        index.insert(key(1), record(600, 900, None)).await.unwrap(),
        Inserted::Created
    );
    index.check().await.unwrap();
}

#[tokio::test]
async fn disk_store_keeps_the_blob_contract() {
    let dir = tempfile::tempdir().unwrap();
    blob_contract(Arc::new(DiskStore::open(dir.path(), 0).unwrap())).await;
}

#[tokio::test]
async fn embedded_index_keeps_the_index_contract() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
    index_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn postgres_index_keeps_the_index_contract() {
    let url = common::postgres::fresh_database().await;
    let index = PostgresIndex::connect(&url, 4, [7; 32]).await.unwrap();
    index_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn s3_store_keeps_the_blob_contract() {
    let s3 = common::s3::S3Server::start("contract");
    blob_contract(Arc::new(s3_store(&s3, "contract", "64MiB", 4))).await;
}

/// A store in `bucket` of `s3` with 5 MiB parts, `buffer_memory` and
/// `parts_in_flight`.
fn s3_store(
    s3: &common::s3::S3Server,
    bucket: &str,
    buffer_memory: &str,
    parts_in_flight: usize,
) -> ObjectBlobStore {
    let config: upslot::config::S3Config = toml::from_str(&format!(
        "bucket = \"{bucket}\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\nallow_http = true\n\
         virtual_hosted_style = false\nprefix = \"some/prefix\"\npart_size = \"5MiB\"\n\
         buffer_memory = \"{buffer_memory}\"\nparts_in_flight = {parts_in_flight}\n",
        s3.endpoint,
        common::s3::ACCESS_KEY,
        common::s3::SECRET_KEY
    ))
    .unwrap();
    ObjectBlobStore::s3(&config, config.secret_access_key().unwrap()).unwrap()
}

/// More transfers than the buffer budget has parts for: uploads wait for
/// room instead of failing or deadlocking, downloads go without read-ahead
/// when there is no room, and every byte arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_transfers_share_a_small_buffer_budget() {
    // A deadlock would hang; this turns it into a failure. Not a timing
    // check: the transfers take a few seconds.
    tokio::time::timeout(std::time::Duration::from_secs(300), async {
        let s3 = common::s3::S3Server::start("budget");
        // Two 5 MiB parts of room for everyone, up to four parts per transfer.
        let store: Arc<dyn BlobStore> = Arc::new(s3_store(&s3, "budget", "10MiB", 4));
        let files: Vec<(BlobName, Vec<u8>)> = (0..6u32)
            .map(|i| {
                (
                    BlobName::new(DAY),
                    pattern(12_000_000 + i as usize, 241 + i),
                )
            })
            .collect();
        let uploads = files
            .iter()
            .map(|(name, data)| put(store.as_ref(), name, data));
        futures_util::future::join_all(uploads).await;
        let downloads = files
            .iter()
            .map(|(name, data)| read_all(store.as_ref(), name, 0..data.len() as u64));
        let read = futures_util::future::join_all(downloads).await;
        for ((_, data), read) in files.iter().zip(read) {
            assert!(read == *data, "a download differs from its upload");
        }
        // Room is given back: one more upload of two full parts.
        let (name, data) = (BlobName::new(DAY), pattern(10_485_760, 239));
        put(store.as_ref(), &name, &data).await;
        assert!(read_all(store.as_ref(), &name, 0..data.len() as u64).await == data);
    })
    .await
    .expect("transfers stuck waiting for buffer room");
}
