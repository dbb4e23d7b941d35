//! The contracts every backend must keep: one for blob stores, one for
//! indexes, and one for sealed files (the data layer's encryption at rest
//! over a blob store). Each backend runs the same functions; a new backend
//! adds one test per contract below.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use upslot::auth::SlotPath;
use upslot::encryption::keyring::DirKeyring;
use upslot::encryption::{Encryption, EncryptionSettings, Sealing, sealed_size};
use upslot::files::{Files, FilesError, NewFile, Quotas};
use upslot::index::embedded::EmbeddedIndex;
use upslot::index::postgres::PostgresIndex;
use upslot::index::{FileRecord, Index, IndexKey, Inserted, OwnerKey, QuotaLedger, Scan, SlotKey};
use upslot::quota::{Limits, Refusal, counts_until};
use upslot::retention::Retention;
use upslot::storage::disk::DiskStore;
use upslot::storage::object::ObjectBlobStore;
use upslot::storage::{BlobMeta, BlobName, BlobStore, BlobStream, StorageError};

const DAY: i64 = 86_400;

async fn read_all(store: &dyn BlobStore, name: &BlobName, range: Range<u64>) -> Vec<u8> {
    collect(store.read(name, range).await.unwrap()).await
}

/// Every byte of `stream`; panics on an error in it.
async fn collect(mut stream: BlobStream) -> Vec<u8> {
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

/// Plaintext bytes per sealed segment: format version 1 fixes it, so it is
/// written out here rather than taken from the library.
const SEGMENT: u64 = 65_536;

/// The sizes the sealed-files contract stores: empty, one byte, either side
/// of one segment, and several segments with a short last one.
const SEALED_SIZES: [u64; 6] = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 7];

/// Chunk sizes an upload is cut into, in turn: none of them is a segment,
/// and their sums land on a boundary only by accident.
const CHUNKS: [usize; 6] = [1, 4_093, 65_535, 2, 65_537, 131_071];

/// The clock of the sealed-files contract (files are kept a day).
const NOW: i64 = 1_000_000_000;

/// `len` pseudo-random bytes, different for every `seed`, with no repeated
/// 16-byte window in practice (so a window found in a blob is a leak, not a
/// coincidence of the pattern).
fn noise(len: u64, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The blob size a sealed `size`-byte file must have: the plaintext and a
/// 16-byte tag for each segment, an empty file having one empty segment.
fn expected_sealed_size(size: u64) -> u64 {
    size + 16 * size.div_ceil(SEGMENT).max(1)
}

/// The plaintext ranges to read back from a `size`-byte file: the whole
/// file, first and last bytes, `bytes=0-1`, suffixes, and around every
/// segment boundary: ending on it, starting on it, one byte either side.
fn probes(size: u64) -> Vec<Range<u64>> {
    let mut out = vec![
        0..size,
        0..1,
        size.saturating_sub(1)..size,
        0..2,
        100..size.saturating_sub(3),
    ];
    for suffix in [1, 500, SEGMENT + 1] {
        out.push(size.saturating_sub(suffix)..size);
    }
    let mut boundary = SEGMENT;
    while boundary <= size {
        out.extend([
            10..boundary,
            boundary - 1..boundary,
            boundary - 1..boundary + 1,
            boundary..boundary + 1,
            boundary..boundary + 4,
            boundary - 1..size,
        ]);
        boundary += SEGMENT;
    }
    out.retain(|range| range.start < range.end && range.end <= size);
    out.sort_by_key(|range| (range.start, range.end));
    out.dedup();
    out
}

/// The data layer over `blobs`, with an embedded index and epoch keys in
/// `dir` (shared by every `Files` opened on the same `dir` and `index`),
/// sealing new files if `seal_new`.
fn files_over(
    blobs: &Arc<dyn BlobStore>,
    index: &EmbeddedIndex,
    dir: &Path,
    seal_new: bool,
) -> Files {
    let keyring = DirKeyring::open(&dir.join("keys/epochs")).unwrap();
    let encryption = Encryption::new(
        Arc::new(keyring),
        EncryptionSettings {
            seal_new,
            epoch: DAY,
        },
    );
    let retention = Retention {
        keep: Duration::from_secs(DAY as u64),
        max: Duration::from_secs(2 * DAY as u64),
        sweep_every: Duration::from_secs(60),
        tombstone_horizon: Duration::from_secs(DAY as u64),
    };
    Files::new(
        Arc::clone(blobs),
        None,
        Arc::new(index.clone()),
        IndexKey::new([3; 32]),
        retention,
        encryption,
        Quotas::new(Arc::new(index.clone()), Limits::default()),
    )
}

fn slot(name: &str) -> SlotPath {
    SlotPath::from_wire(&format!("sealed/{name}")).unwrap()
}

/// Uploads `data` to `path` through `files`, in [`CHUNKS`]-sized pieces
/// after an empty one.
async fn upload(files: &Files, path: &SlotPath, data: &[u8]) {
    let file = NewFile {
        size: data.len() as u64,
        content_type: "application/octet-stream".into(),
        expires: None,
        owner: None,
    };
    let mut upload = files.begin_upload(path, file, NOW).await.unwrap();
    upload.write(Bytes::new()).await.unwrap();
    let mut rest = data;
    for size in CHUNKS.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        upload.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        rest = tail;
    }
    files.finish_upload(upload).await.unwrap();
}

/// The record of the file at `path`, which `files` must serve.
async fn record_of(files: &Files, path: &SlotPath) -> Arc<FileRecord> {
    files.lookup(path, NOW).await.unwrap().unwrap().record
}

/// Reads every range of [`probes`] of the file at `path` through `files`
/// and checks each byte against `data`.
async fn check_reads(files: &Files, path: &SlotPath, data: &[u8], what: &str) {
    let record = record_of(files, path).await;
    assert_eq!(record.size, data.len() as u64, "{what}: recorded size");
    for range in probes(record.size) {
        let stream = files.read(&record, range.clone(), NOW).await.unwrap();
        let read = collect(stream).await;
        let want = &data[range.start as usize..range.end as usize];
        assert!(
            read == want,
            "{what}: bytes {range:?} of {} read back as {} different bytes",
            data.len(),
            read.len()
        );
    }
}

/// Whether some 16-byte window of `plain` occurs in `stored`.
fn leaks(plain: &[u8], stored: &[u8]) -> bool {
    let windows: std::collections::HashSet<&[u8]> = plain.windows(16).collect();
    stored.windows(16).any(|window| windows.contains(window))
}

/// What the data layer must do over every [`BlobStore`] with encryption
/// on: seal each file into exactly the sealed size with no plaintext in
/// it, and read back any plaintext range of it byte for byte, decrypting
/// only the segments the range touches; and serve files stored in
/// plaintext beside sealed ones (a store written before encryption was
/// turned on, or with it off). `stored_file` is the file in which the
/// backend keeps a blob, to look at (and alter) it from outside the store.
async fn sealed_files_contract(
    blobs: Arc<dyn BlobStore>,
    stored_file: impl Fn(&BlobName) -> PathBuf,
) {
    let stored_len = |name: &BlobName| std::fs::metadata(stored_file(name)).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
    let sealing = files_over(&blobs, &index, dir.path(), true);
    let plain = files_over(&blobs, &index, dir.path(), false);

    let sealed_files: Vec<(SlotPath, Vec<u8>)> = SEALED_SIZES
        .iter()
        .enumerate()
        .map(|(i, size)| (slot(&format!("{size}.bin")), noise(*size, i as u64 + 1)))
        .collect();
    for (path, data) in &sealed_files {
        upload(&sealing, path, data).await;
    }
    for (path, data) in &sealed_files {
        let size = data.len() as u64;
        let what = format!("sealed {size}-byte file");
        let record = record_of(&sealing, path).await;
        assert!(record.sealing.is_some(), "{what}: recorded as sealed");
        // At rest: exactly the sealed size, and no plaintext in it.
        assert_eq!(sealed_size(size), expected_sealed_size(size), "{what}");
        assert_eq!(
            stored_len(&record.blob),
            sealed_size(size),
            "{what}: blob size"
        );
        let stored = read_all(blobs.as_ref(), &record.blob, 0..sealed_size(size)).await;
        assert_eq!(stored.len() as u64, sealed_size(size), "{what}: blob read");
        assert!(!leaks(data, &stored), "{what}: plaintext in the blob");
        // Read back (an empty file has no range to read).
        check_reads(&sealing, path, data, &what).await;
        // A Files that no longer seals new files still opens sealed ones.
        check_reads(&plain, path, data, &format!("{what} (sealing off)")).await;
    }

    // A mixed store: files stored in plaintext stay readable once new
    // files are sealed.
    for (i, size) in [1, 3 * SEGMENT + 7].into_iter().enumerate() {
        let path = slot(&format!("plain-{size}.bin"));
        let data = noise(size, 100 + i as u64);
        upload(&plain, &path, &data).await;
        let what = format!("plaintext {size}-byte file");
        let record = record_of(&sealing, &path).await;
        assert!(record.sealing.is_none(), "{what}: recorded as plaintext");
        assert_eq!(stored_len(&record.blob), size, "{what}: blob size");
        assert!(
            read_all(blobs.as_ref(), &record.blob, 0..size).await == data,
            "{what}: stored as is"
        );
        check_reads(&sealing, &path, &data, &format!("{what} (sealing on)")).await;
        check_reads(&plain, &path, &data, &what).await;
    }

    // Only the segments a range touches are opened: with one byte of the
    // second segment altered at rest, ranges elsewhere still read, one
    // starting in it fails before any byte, and one crossing into it ends
    // with an error after the first segment's bytes, never with forged ones.
    let (path, data) = &sealed_files[SEALED_SIZES.len() - 1];
    let size = data.len() as u64;
    let record = record_of(&sealing, path).await;
    {
        use std::os::unix::fs::FileExt as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(stored_file(&record.blob))
            .unwrap();
        let offset = SEGMENT + 16 + 100;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x20], offset).unwrap();
        file.sync_all().unwrap();
    }
    for range in [
        0..SEGMENT,
        10..SEGMENT,
        2 * SEGMENT..3 * SEGMENT + 1,
        size - 1..size,
    ] {
        let read = collect(sealing.read(&record, range.clone(), NOW).await.unwrap()).await;
        assert!(
            read == data[range.start as usize..range.end as usize],
            "tampered file: bytes {range:?}, away from the altered segment, differ"
        );
    }
    for range in [SEGMENT..SEGMENT + 4, SEGMENT + 200..size] {
        assert!(
            matches!(
                sealing.read(&record, range.clone(), NOW).await,
                Err(FilesError::Tampered)
            ),
            "tampered file: bytes {range:?} must be refused before any is sent"
        );
    }
    for range in [0..size, SEGMENT - 1..SEGMENT + 1] {
        let mut stream = sealing.read(&record, range.clone(), NOW).await.unwrap();
        let mut read = Vec::new();
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    assert!(
                        !failed,
                        "tampered file: bytes {range:?}: data after an error"
                    );
                    read.extend_from_slice(&chunk);
                }
                Err(_) => failed = true,
            }
        }
        assert!(
            failed,
            "tampered file: bytes {range:?} must end in an error"
        );
        assert!(
            read == data[range.start as usize..SEGMENT as usize],
            "tampered file: bytes {range:?} must yield the first segment's part, then stop"
        );
    }
}

/// The one file below `root` that holds blob `name` (both stores keep a
/// blob as a file named by its key, under some prefix).
fn file_under(root: &Path, name: &BlobName) -> PathBuf {
    let mut found: Vec<PathBuf> = common::files_below(root)
        .into_iter()
        .filter(|path| path.ends_with(name.key()))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "blob {} under {}: {found:?}",
        name.key(),
        root.display()
    );
    found.remove(0)
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

/// The quota ledger: reservations count until released, recorded files
/// until removed, upload history until it ages out or the owner is
/// erased; racing reservations never exceed a limit.
async fn quota_ledger_contract<I: Index + QuotaLedger>(index: Arc<I>) {
    let limits = Limits {
        per_owner_daily: 100,
        per_owner_stored: 80,
        global_stored: 150,
    };
    let (a, b) = (Some(OwnerKey([1; 32])), Some(OwnerKey([2; 32])));
    let now = 1_000_000;
    let minute = now - now % 60;
    let first = index.reserve(a, 50, limits, now).await.unwrap().unwrap();
    let usage = index.usage(OwnerKey([1; 32]), now).await.unwrap();
    assert_eq!(
        (usage.stored, usage.uploads.clone()),
        (50, vec![(minute, 50)])
    );
    assert_eq!(
        index.reserve(a, 40, limits, now).await.unwrap(),
        Err(Refusal::OwnerStored { limit: 80 })
    );
    let other = index.reserve(b, 30, limits, now).await.unwrap().unwrap();
    // 50 + 30 reserved: 80 more would pass 150 in total.
    assert_eq!(
        index.reserve(None, 80, limits, now).await.unwrap(),
        Err(Refusal::GlobalStored { limit: 150 })
    );
    index.unreserve(first).await.unwrap();
    index.unreserve(other).await.unwrap();
    assert_eq!(
        index.usage(OwnerKey([1; 32]), now).await.unwrap(),
        Default::default()
    );

    // A recorded file counts as stored until removed, and as uploaded
    // until its minute ages out of the window.
    let mut owned = record(now, now + 50, Some(1));
    owned.size = 60;
    assert_eq!(
        index.insert(key(40), owned).await.unwrap(),
        Inserted::Created
    );
    let usage = index.usage(OwnerKey([1; 32]), now).await.unwrap();
    assert_eq!((usage.stored, usage.uploaded_in_window(now)), (60, 60));
    assert_eq!(index.stats().await.unwrap().bytes, 60);
    index.remove(&[key(40)], now + 50).await.unwrap();
    let usage = index.usage(OwnerKey([1; 32]), now + 60).await.unwrap();
    assert_eq!((usage.stored, usage.uploaded_in_window(now + 60)), (0, 60));
    assert_eq!(
        index.reserve(a, 50, limits, now + 60).await.unwrap(),
        Err(Refusal::Daily {
            limit: 100,
            retry_at: counts_until(minute)
        })
    );
    let aged = counts_until(minute);
    assert_eq!(index.forget_uploads(aged - 1, 10).await.unwrap(), 0);
    assert_eq!(index.forget_uploads(aged, 10).await.unwrap(), 1);
    let again = index.reserve(a, 50, limits, aged).await.unwrap().unwrap();
    index.unreserve(again).await.unwrap();

    // A file recorded with its reservation counts once, and the
    // reservation goes whatever the outcome.
    let c = Some(OwnerKey([3; 32]));
    let mut reserved = record(aged, aged + 50, Some(3));
    reserved.size = 30;
    let id = index.reserve(c, 30, limits, aged).await.unwrap().unwrap();
    assert_eq!(
        index
            .insert_reserved(key(42), reserved.clone(), id)
            .await
            .unwrap(),
        Inserted::Created
    );
    let id = index.reserve(c, 30, limits, aged).await.unwrap().unwrap();
    assert_eq!(
        index.insert_reserved(key(42), reserved, id).await.unwrap(),
        Inserted::Exists
    );
    let usage = index.usage(OwnerKey([3; 32]), aged).await.unwrap();
    assert_eq!((usage.stored, usage.uploaded_in_window(aged)), (30, 30));

    // Erasure forgets the owner's history at once.
    let mut owned = record(aged, aged + 50, Some(1));
    owned.size = 100;
    index.insert(key(41), owned).await.unwrap();
    index.remove(&[key(41)], aged + 1).await.unwrap();
    assert!(
        index
            .reserve(a, 10, limits, aged + 1)
            .await
            .unwrap()
            .is_err()
    );
    index.forget_owner(OwnerKey([1; 32])).await.unwrap();
    let id = index
        .reserve(a, 10, limits, aged + 1)
        .await
        .unwrap()
        .unwrap();
    index.unreserve(id).await.unwrap();

    // Twenty uploads of 10 bytes racing for an 80-byte limit: eight fit.
    let racers = (0..20).map(|_| index.reserve(b, 10, limits, aged + 2));
    let outcomes = futures_util::future::join_all(racers).await;
    let granted: Vec<_> = outcomes
        .into_iter()
        .filter_map(|outcome| outcome.unwrap().ok())
        .collect();
    assert_eq!(granted.len(), 8);
    for id in granted {
        index.renew(id).await.unwrap();
        index.unreserve(id).await.unwrap();
    }
}

#[tokio::test]
async fn disk_store_keeps_the_blob_contract() {
    let dir = tempfile::tempdir().unwrap();
    blob_contract(Arc::new(DiskStore::open(dir.path(), 0).unwrap())).await;
}

#[tokio::test]
async fn disk_store_keeps_the_sealed_files_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DiskStore::open(dir.path(), 0).unwrap());
    sealed_files_contract(store, |name| file_under(&dir.path().join("blobs"), name)).await;
}

#[tokio::test]
async fn embedded_index_keeps_the_index_contract() {
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
    index_contract(Arc::new(index)).await;
    let dir = tempfile::tempdir().unwrap();
    let index = EmbeddedIndex::open(&dir.path().join("index.redb")).unwrap();
    quota_ledger_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn postgres_index_keeps_the_index_contract() {
    let url = common::postgres::fresh_database().await;
    let index = PostgresIndex::connect(&url, 4, [7; 32]).await.unwrap();
    index_contract(Arc::new(index)).await;
    let url = common::postgres::fresh_database().await;
    let index = PostgresIndex::connect(&url, 4, [7; 32]).await.unwrap();
    quota_ledger_contract(Arc::new(index)).await;
}

#[tokio::test]
async fn s3_store_keeps_the_blob_contract() {
    let s3 = common::s3::S3Server::start("contract");
    blob_contract(Arc::new(s3_store(&s3, "contract", "64MiB", 4))).await;
}

#[tokio::test]
async fn s3_store_keeps_the_sealed_files_contract() {
    let s3 = common::s3::S3Server::start("sealed");
    let store = Arc::new(s3_store(&s3, "sealed", "64MiB", 4));
    sealed_files_contract(store, |name| file_under(&s3.root.join("sealed"), name)).await;
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
