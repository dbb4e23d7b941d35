//! Encryption at rest, checked from the outside with the real binary: no
//! uploaded byte is readable in the data directory or the S3 bucket (not
//! even while an upload is half sent), nothing in the index is a key that
//! opens a blob, and an independent implementation of the documented
//! format (`tests/at_rest/decrypt.py`, Python's `cryptography`) reads the
//! files back from the blob, the index record and the epoch key file.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::s3::S3Server;
use common::{Upslot, client, data, put, raw, wait_for};
use reqwest::StatusCode;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use upslot::auth::SlotPath;
use upslot::index::embedded::EmbeddedIndex;
use upslot::index::{FileRecord, Index as _, IndexKey};

/// A plaintext no stored byte may ever show: 32 distinctive bytes.
const MARKER: &[u8; 32] = b"upslot-at-rest-marker:9f2c4e71b8";
/// Plaintext bytes per sealed segment.
const SEGMENT: usize = 65_536;
/// Bytes of an AES-GCM tag.
const TAG: usize = 16;
/// Sizes that exercise the segment arithmetic: tiny, one byte either side
/// of a segment, exactly one and two segments, several segments and a
/// short tail.
const SIZES: [usize; 9] = [
    32,
    100,
    SEGMENT - 1,
    SEGMENT,
    SEGMENT + 1,
    2 * SEGMENT,
    2 * SEGMENT + 40,
    200_000,
    300_000,
];

/// `size` bytes holding [`MARKER`] every 4099 bytes (so copies straddle
/// segment boundaries) and once exactly across the first boundary, in
/// filler that differs per `seed`.
fn with_markers(size: usize, seed: usize) -> Vec<u8> {
    let mut body = data(size + seed);
    body.drain(..seed);
    let mut at = seed % 97;
    while at + MARKER.len() <= size {
        body[at..at + MARKER.len()].copy_from_slice(MARKER);
        at += 4099;
    }
    if size >= SEGMENT + MARKER.len() {
        body[SEGMENT - 13..SEGMENT + 19].copy_from_slice(MARKER);
    }
    body
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(at) = haystack[from..].iter().position(|&b| b == first) {
        let start = from + at;
        let end = start + needle.len();
        if end > haystack.len() {
            return None;
        }
        if &haystack[start + 1..end] == rest {
            return Some(start);
        }
        from = start + 1;
    }
    None
}

/// Every regular file below `root` with its bytes, relative to `root`.
/// Files that vanish while being walked (an upload finishing) are skipped.
fn files_with_bytes(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::files_below(root)
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            Some((path.strip_prefix(root).unwrap().to_path_buf(), bytes))
        })
        .collect()
}

/// Asserts that no file below `root` holds [`MARKER`], or the middle 16
/// bytes of it; returns the files' paths, relative to `root`, and sizes.
fn assert_no_plaintext(root: &Path) -> Vec<(PathBuf, usize)> {
    let files = files_with_bytes(root);
    for (path, bytes) in &files {
        for needle in [&MARKER[..], &MARKER[8..24]] {
            if let Some(at) = find(bytes, needle) {
                panic!(
                    "{} holds plaintext ({} bytes of the marker) at offset {at}",
                    path.display(),
                    needle.len()
                );
            }
        }
    }
    files
        .into_iter()
        .map(|(path, bytes)| (path, bytes.len()))
        .collect()
}

/// Total size of the files in `dir` and below.
fn bytes_below(dir: &Path) -> u64 {
    files_with_bytes(dir)
        .iter()
        .map(|(_, bytes)| bytes.len() as u64)
        .sum()
}

/// Uploads a file of every size in [`SIZES`] to `at-rest/<i>/file.bin`;
/// returns the paths and bodies.
async fn upload_marked_files(server: &Upslot) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        let path = format!("at-rest/{i}/file.bin");
        let body = with_markers(size, i);
        assert_eq!(
            put(server, &path, body.clone()).await,
            StatusCode::CREATED,
            "{size} bytes"
        );
        files.push((path, body));
    }
    files
}

/// Asserts that GET serves each file's exact plaintext.
async fn assert_served(server: &Upslot, files: &[(String, Vec<u8>)]) {
    for (path, body) in files {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.bytes().await.unwrap() == body[..],
            "{path}: the bytes served differ from those uploaded"
        );
    }
}

/// Sends the rest of a PUT started with [`raw::start_put`] and reads the
/// status line of the answer (the connection stays open).
fn finish_put(stream: &mut TcpStream, rest: &[u8]) -> u16 {
    stream.write_all(rest).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while find(&head, b"\r\n\r\n").is_none() {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the connection closed before an answer");
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn no_uploaded_byte_is_readable_in_the_data_directory() {
    let server = Upslot::start("");
    let mut files = upload_marked_files(&server).await;

    // A 1 MB upload, a little over half sent: sealed segments already sit
    // in its temporary file (writes reach it 256 KiB at a time).
    let len = 1_000_000;
    let partial = with_markers(len, 42);
    let mut stream = raw::start_put(&server.base_url, "at-rest/partial/file.bin", len);
    stream.write_all(&partial[..600_000]).unwrap();
    let tmp = server.data_dir.join("tmp");
    wait_for("the half-sent upload to reach tmp/", async || {
        bytes_below(&tmp) >= 256 * 1024
    })
    .await;

    let seen = assert_no_plaintext(&server.data_dir);
    let under = |dir: &str| seen.iter().filter(|(p, _)| p.starts_with(dir)).count();
    assert_eq!(under("blobs"), SIZES.len(), "{seen:?}");
    assert_eq!(under("tmp"), 1, "{seen:?}");
    assert!(under("keys/epochs") >= 1, "{seen:?}");
    for file in ["index.redb", "keys/index.key"] {
        assert!(seen.iter().any(|(p, _)| p == Path::new(file)), "{file}");
    }

    assert_eq!(finish_put(&mut stream, &partial[600_000..]), 201);
    files.push(("at-rest/partial/file.bin".into(), partial));
    let seen = assert_no_plaintext(&server.data_dir);
    let under = |dir: &str| seen.iter().filter(|(p, _)| p.starts_with(dir)).count();
    assert_eq!(under("blobs"), files.len(), "{seen:?}");
    assert_eq!(under("tmp"), 0, "{seen:?}");
    assert_served(&server, &files).await;
}

#[tokio::test]
async fn no_uploaded_byte_is_readable_in_the_s3_bucket() {
    const BUCKET: &str = "at-rest";
    let s3 = S3Server::start(BUCKET);
    // The smallest part S3 allows, so a half-sent upload has a part stored.
    let storage = format!("{}part_size = \"5MiB\"\n", s3.storage_toml(BUCKET));
    let server = Upslot::start_with("", "", &storage, &[]);
    let mut files = upload_marked_files(&server).await;

    let len = 6 << 20;
    let partial = with_markers(len, 42);
    let mut stream = raw::start_put(&server.base_url, "at-rest/partial/file.bin", len);
    stream.write_all(&partial[..(11 << 19)]).unwrap();
    // s3s-fs keeps the parts of an unfinished upload outside the bucket's
    // directory until the upload completes.
    let part_stored = |files: &[(PathBuf, usize)]| {
        files
            .iter()
            .any(|(path, len)| !path.starts_with(BUCKET) && *len >= 5 << 20)
    };
    wait_for("a part of the half-sent upload to be stored", async || {
        let files: Vec<_> = files_with_bytes(&s3.root)
            .into_iter()
            .map(|(path, bytes)| (path, bytes.len()))
            .collect();
        part_stored(&files)
    })
    .await;
    let seen = assert_no_plaintext(&s3.root);
    assert!(part_stored(&seen), "{seen:?}");
    assert_eq!(s3.keys(BUCKET).len(), SIZES.len());
    // Upslot's own directory: the index and the keys.
    assert_no_plaintext(&server.data_dir);

    assert_eq!(finish_put(&mut stream, &partial[(11 << 19)..]), 201);
    files.push(("at-rest/partial/file.bin".into(), partial));
    assert_no_plaintext(&s3.root);
    assert_no_plaintext(&server.data_dir);
    assert_eq!(s3.keys(BUCKET).len(), files.len());
    assert_served(&server, &files).await;
}

/// The nonce of segment `index`, `last` when it is the final one.
fn segment_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// AES-256-GCM open of `sealed` (ciphertext and tag) under `key`.
fn open(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let mut work = sealed.to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut work,
        )
        .ok()?;
    Some(plain.to_vec())
}

/// The data key in `wrapped` (nonce, sealed key, tag), if `epoch_key`
/// opens it for blob `blob`.
fn unwrap_data_key(epoch_key: &[u8; 32], wrapped: &[u8; 60], blob: &str) -> Option<[u8; 32]> {
    let aad = [b"upslot/dek/1 ".as_slice(), blob.as_bytes()].concat();
    let nonce = wrapped[..12].try_into().unwrap();
    open(epoch_key, nonce, &aad, &wrapped[12..]).map(|key| key.try_into().unwrap())
}

/// The record of the file at `wire`, read through the library from the
/// index a stopped server left in `data`.
async fn record_of(data: &Path, wire: &str) -> FileRecord {
    let key = std::fs::read_to_string(data.join("keys/index.key")).unwrap();
    let key: [u8; 32] = hex::decode(key.trim()).unwrap().try_into().unwrap();
    let slot = IndexKey::new(key).slot(&SlotPath::from_wire(wire).unwrap());
    let index = EmbeddedIndex::open(&data.join("index.redb")).unwrap();
    index
        .get(slot)
        .await
        .unwrap()
        .expect("a record for the file")
}

/// The epoch key file of the epoch ending at `end`, and the key in it.
fn epoch_key(data: &Path, end: i64) -> (PathBuf, [u8; 32]) {
    let path = data.join(format!("keys/epochs/{end}.key"));
    let text = std::fs::read_to_string(&path).unwrap();
    let key = hex::decode(text.trim()).unwrap().try_into().unwrap();
    (path, key)
}

#[tokio::test]
async fn nothing_in_the_index_is_a_key_that_opens_a_blob() {
    let server = Upslot::start("");
    assert_eq!(
        put(&server, "keys/small.txt", b"hello").await,
        StatusCode::CREATED
    );
    for i in 1..5 {
        let path = format!("keys/other-{i}.bin");
        assert_eq!(
            put(&server, &path, data(i * 1000)).await,
            StatusCode::CREATED
        );
    }
    let dir = server.into_dir();
    let data = dir.path().join("data");
    // The index as the server left it (opening it below writes to it).
    let index = std::fs::read(data.join("index.redb")).unwrap();
    let record = record_of(&data, "keys/small.txt").await;
    let sealing = record.sealing.expect("the file is sealed");
    let blob_key = record.blob.key();
    let blob = std::fs::read(data.join("blobs").join(blob_key)).unwrap();
    assert_eq!(blob.len(), 5 + TAG, "one sealed segment");
    let first_segment = segment_nonce(0, true);
    assert!(
        find(&index, &sealing.wrapped_key).is_some(),
        "the record is among the bytes searched below"
    );

    // The control: the epoch key, kept outside the index, unwraps the data
    // key, which opens the blob.
    let (_, epoch) = epoch_key(&data, sealing.epoch);
    let dek = unwrap_data_key(&epoch, &sealing.wrapped_key, blob_key)
        .expect("the epoch key unwraps the data key");
    assert_eq!(
        open(&dek, first_segment, b"", &blob).as_deref(),
        Some(&b"hello"[..])
    );

    // Neither key, raw or in hex, is anywhere in the index. Nor is the data
    // key in any other file, and the epoch key is only in its key file.
    for (name, key) in [("data key", dek), ("epoch key", epoch)] {
        let hex_key = hex::encode(key);
        for needle in [&key[..], hex_key.as_bytes()] {
            assert_eq!(find(&index, needle), None, "the {name} is in index.redb");
        }
    }
    let epoch_file = PathBuf::from(format!("keys/epochs/{}.key", sealing.epoch));
    for (path, bytes) in files_with_bytes(&data) {
        assert_eq!(find(&bytes, &dek), None, "the data key is in {path:?}");
        let dek_hex = hex::encode(dek);
        assert_eq!(find(&bytes, dek_hex.as_bytes()), None, "in {path:?}");
        assert_eq!(find(&bytes, &epoch), None, "the epoch key is in {path:?}");
        if path != epoch_file {
            let epoch_hex = hex::encode(epoch);
            assert_eq!(find(&bytes, epoch_hex.as_bytes()), None, "in {path:?}");
        }
    }

    // And the direct proof: every 32 bytes of the index, tried as the data
    // key and as the epoch key, open nothing. (Duplicate windows, mostly
    // zeroed pages, are tried once.)
    let windows: HashSet<[u8; 32]> = index.windows(32).map(|w| w.try_into().unwrap()).collect();
    assert!(windows.len() > 100, "{} windows", windows.len());
    for window in &windows {
        assert_eq!(
            open(window, first_segment, b"", &blob),
            None,
            "32 bytes of the index open the blob as its data key"
        );
        assert_eq!(
            unwrap_data_key(window, &sealing.wrapped_key, blob_key),
            None,
            "32 bytes of the index unwrap the data key as the epoch key"
        );
    }
}

/// Debian's interpreter, with python3-cryptography (tests/run.sh installs it).
const PYTHON: &str = "/usr/bin/python3";
const DECRYPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/at_rest/decrypt.py");

/// Fails, saying what to install, unless [`PYTHON`] can import `cryptography`.
fn require_python_cryptography() {
    let hint = "install Debian's python3 and python3-cryptography (tests/run.sh does)";
    let output = Command::new(PYTHON)
        .args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} ({e}): {hint}"));
    assert!(
        output.status.success(),
        "{PYTHON} cannot import cryptography: {hint}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `decrypt.py` on the file of `record`, with the blob key `blob_key`
/// as the associated data; the plaintext, or the script's complaint.
fn decrypt_with_python(
    data: &Path,
    record: &FileRecord,
    blob_key: &str,
    blob_file: &Path,
    out: &Path,
) -> Result<Vec<u8>, String> {
    let sealing = record.sealing.as_ref().expect("the file is sealed");
    let (key_file, _) = epoch_key(data, sealing.epoch);
    let output = Command::new(PYTHON)
        .arg(DECRYPT)
        .arg(key_file)
        .arg(hex::encode(sealing.wrapped_key))
        .arg(blob_key)
        .arg(record.size.to_string())
        .arg(blob_file)
        .arg(out)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(std::fs::read(out).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

#[tokio::test]
async fn an_independent_implementation_decrypts_every_blob() {
    require_python_cryptography();
    let server = Upslot::start("");
    let sizes = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 200_000];
    let mut files = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let path = format!("python/{i}/file.bin");
        let body = with_markers(size, i);
        assert_eq!(
            put(&server, &path, body.clone()).await,
            StatusCode::CREATED,
            "{size} bytes"
        );
        files.push((path, body));
    }
    let dir = server.into_dir();
    let data = dir.path().join("data");
    let out = tempfile::tempdir().unwrap();

    let mut records = Vec::new();
    for (i, (path, body)) in files.iter().enumerate() {
        let record = record_of(&data, path).await;
        assert_eq!(record.size, body.len() as u64);
        let blob_file = data.join("blobs").join(record.blob.key());
        let plain = decrypt_with_python(
            &data,
            &record,
            record.blob.key(),
            &blob_file,
            &out.path().join(i.to_string()),
        )
        .unwrap_or_else(|e| panic!("{} bytes: decrypt.py failed: {e}", body.len()));
        assert!(
            plain == *body,
            "{} bytes: decrypt.py read other bytes",
            body.len()
        );
        records.push((record, blob_file));
    }

    // The script is not lenient: the data key is bound to its blob's name,
    // and an altered byte fails authentication.
    let (small, small_blob) = &records[1];
    let other_key = records[2].0.blob.key();
    let wrong = out.path().join("wrong");
    let error = decrypt_with_python(&data, small, other_key, small_blob, &wrong).unwrap_err();
    assert!(error.contains("does not open"), "{error}");
    let (large, large_blob) = &records[5];
    let mut altered = std::fs::read(large_blob).unwrap();
    altered[SEGMENT + TAG + 7] ^= 1;
    let altered_blob = out.path().join("altered");
    std::fs::write(&altered_blob, altered).unwrap();
    let error =
        decrypt_with_python(&data, large, large.blob.key(), &altered_blob, &wrong).unwrap_err();
    assert!(error.contains("segment 1 of 4"), "{error}");
}
