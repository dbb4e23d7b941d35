//! Crypto-shredding with the real binary: once a file's epoch key is
//! destroyed, no copy of it (an operator's backup of blobs and index
//! included) can be served or decrypted again; an erased account comes back
//! from a backup only until then; a blob altered on disk never yields a
//! wrong byte; and turning encryption off keeps sealed files readable.
//!
//! The blob format these tests rely on (README, "Encryption at rest"): the
//! plaintext in segments of [`SEGMENT`] bytes, each sealed with AES-256-GCM
//! and followed by its 16-byte tag, so a full segment takes
//! [`SEALED_SEGMENT`] bytes on disk; each segment's nonce names its index
//! and whether it is the last.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::{Path, PathBuf};

use common::{
    Claims, Put, Upslot, client, data, erase_request, erase_sig, files_below, get, get_with,
    metric, metrics, put, unix_now, wait_for,
};
use reqwest::{StatusCode, header};

/// Plaintext bytes per sealed segment.
const SEGMENT: usize = 65_536;
/// Bytes of one full segment on disk: the segment and its tag.
const SEALED_SEGMENT: usize = SEGMENT + 16;
/// A file of three full segments and a short fourth one.
const THREE_SEGMENTS_AND_A_BIT: usize = 3 * SEGMENT + 5;

/// Retention of `keep`, swept every second, in epochs of two seconds: an
/// epoch key is destroyed two seconds after its epoch ends (one epoch of
/// grace), so a file's key is gone at most `keep` + 4 s after its upload.
fn fast_shredding(keep: &str) -> String {
    format!(
        "[retention]\nkeep = \"{keep}\"\nsweep_every = \"1s\"\n\n[encryption]\nepoch = \"2s\"\n"
    )
}

/// `len` deterministic bytes that differ, at every offset, for each `seed`.
fn plaintext(seed: u8, len: usize) -> Vec<u8> {
    data(len).into_iter().map(|b| b ^ seed).collect()
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The blobs in the data directory `data`.
fn blobs(data: &Path) -> Vec<PathBuf> {
    files_below(&data.join("blobs"))
}

/// The epoch key files in the default keyring of `data`, by name
/// (`<epoch end>.key`), with their contents (the key in hex).
fn epoch_keys(data: &Path) -> Vec<(String, String)> {
    files_below(&data.join("keys/epochs"))
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "key"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let hex = std::fs::read_to_string(&path).unwrap().trim().to_string();
            (name, hex)
        })
        .collect()
}

/// Copies the data directory `data` to `backup` as an operator following
/// the README does: everything but the keyring (`keys/epochs`), while the
/// server runs.
fn back_up(data: &Path, backup: &Path) {
    let keyring = data.join("keys/epochs");
    for file in files_below(data) {
        if file.starts_with(&keyring) {
            continue;
        }
        let to = backup.join(file.strip_prefix(data).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
}

/// Puts the backup's blobs and index back into `data` (the server is
/// stopped), replacing what is there; the keyring stays as it is.
fn restore(backup: &Path, data: &Path) {
    std::fs::remove_dir_all(data.join("blobs")).unwrap();
    std::fs::remove_file(data.join("index.redb")).unwrap();
    std::fs::copy(backup.join("index.redb"), data.join("index.redb")).unwrap();
    for file in files_below(&backup.join("blobs")) {
        let to = data.join(file.strip_prefix(backup).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, &to).unwrap();
    }
}

/// Asserts that none of the epoch keys `keys` (name and hex, as read while
/// they existed) is left below any of `roots`: no key file of that epoch,
/// and neither the key's hex nor its bytes inside any file.
fn assert_keys_gone(keys: &[(String, String)], roots: &[&Path]) {
    for root in roots {
        for file in files_below(root) {
            let bytes = std::fs::read(&file).unwrap();
            for (name, hex) in keys {
                assert_ne!(
                    file.file_name().unwrap().to_string_lossy(),
                    name.as_str(),
                    "the key of a destroyed epoch is still in {}",
                    file.display()
                );
                let raw = hex::decode(hex).unwrap();
                assert!(
                    !contains(&bytes, hex.as_bytes()) && !contains(&bytes, &raw),
                    "{} holds the destroyed key {name}",
                    file.display()
                );
            }
        }
    }
}

/// The value of the unlabelled metric `name` on `server` now.
async fn metric_now(server: &Upslot, name: &str) -> f64 {
    metric(&metrics(server).await, name)
}

/// What a GET delivered before it ended.
struct Delivered {
    status: StatusCode,
    /// The body bytes that arrived, in order.
    bytes: Vec<u8>,
    /// Whether the body ended as announced (false: the connection was cut).
    complete: bool,
}

/// GETs `wire` (with `Range: range`, if given), recording every body byte
/// that arrives until the body ends or the connection is cut.
async fn deliver(server: &Upslot, wire: &str, range: Option<&str>) -> Delivered {
    let mut request = client().get(server.url(wire));
    if let Some(range) = range {
        request = request.header(header::RANGE, range);
    }
    let mut response = request.send().await.unwrap();
    let status = response.status();
    let mut bytes = Vec::new();
    let complete = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    Delivered {
        status,
        bytes,
        complete,
    }
}

/// Asserts that `got`, a GET of a file altered on disk whose plaintext
/// (or the range asked for) is `expected`, gave away no wrong byte: either
/// an error status whose body is only the one-line 5xx message, or a
/// success cut short, every byte that arrived right, and at most `intact`
/// of them (the plaintext before the first altered segment).
fn assert_never_a_wrong_byte(got: &Delivered, expected: &[u8], intact: usize, what: &str) {
    if got.status.is_success() {
        assert!(!got.complete, "{what}: served whole despite the damage");
        assert!(
            got.bytes.len() <= intact,
            "{what}: {} bytes arrived, but only {intact} precede the damage",
            got.bytes.len()
        );
        assert!(
            got.bytes == expected[..got.bytes.len()],
            "{what}: a wrong byte was served"
        );
    } else {
        assert!(
            got.status.is_server_error(),
            "{what}: answered {}",
            got.status
        );
        let text = String::from_utf8_lossy(&got.bytes);
        assert!(
            got.complete && text.starts_with("Something went wrong on the server. (request "),
            "{what}: a {} whose body is not the one-line message: {text:?}",
            got.status
        );
    }
}

/// Uploads `body` to `wire` and returns the path of the blob it made.
async fn upload(server: &Upslot, wire: &str, body: &[u8]) -> PathBuf {
    let before = blobs(&server.data_dir);
    assert_eq!(put(server, wire, body.to_vec()).await, StatusCode::CREATED);
    let made: Vec<PathBuf> = blobs(&server.data_dir)
        .into_iter()
        .filter(|blob| !before.contains(blob))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    made.into_iter().next().unwrap()
}

/// Flips one bit of the byte at `at` in `blob`.
fn flip(blob: &Path, at: usize) {
    let mut bytes = std::fs::read(blob).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(blob, bytes).unwrap();
}

/// Swaps the sealed segments `a` and `b` (full ones) of `blob`.
fn swap_segments(blob: &Path, a: usize, b: usize) {
    let mut bytes = std::fs::read(blob).unwrap();
    let first: Vec<u8> = bytes[a * SEALED_SEGMENT..(a + 1) * SEALED_SEGMENT].to_vec();
    bytes.copy_within(
        b * SEALED_SEGMENT..(b + 1) * SEALED_SEGMENT,
        a * SEALED_SEGMENT,
    );
    bytes[b * SEALED_SEGMENT..(b + 1) * SEALED_SEGMENT].copy_from_slice(&first);
    std::fs::write(blob, bytes).unwrap();
}

/// Cuts `blob` to its first `len` bytes.
fn truncate(blob: &Path, len: usize) {
    let file = std::fs::OpenOptions::new().write(true).open(blob).unwrap();
    file.set_len(len as u64).unwrap();
}

#[tokio::test]
async fn expiry_shreds_every_copy_backups_included() {
    let server = Upslot::start(&fast_shredding("4s"));
    let files = [
        ("exp/a.txt", plaintext(1, 11)),
        ("exp/b.bin", plaintext(2, 100_000)),
        ("exp/c.bin", plaintext(3, THREE_SEGMENTS_AND_A_BIT)),
    ];
    for (wire, body) in &files {
        assert_eq!(put(&server, wire, body.clone()).await, StatusCode::CREATED);
    }
    let data = server.data_dir.clone();
    let total: usize = files.iter().map(|(_, body)| body.len()).sum();
    // The epochs the files are sealed in (one, or two if the uploads
    // straddled an epoch boundary), with their keys as they are now.
    let keys = epoch_keys(&data);
    assert!(!keys.is_empty(), "{keys:?}");

    // The operator's backup, taken while the files are live, leaves the
    // keyring out as the README says. It holds the three blobs, sealed.
    let backup = tempfile::tempdir().unwrap();
    back_up(&data, backup.path());
    let backed_up = blobs(backup.path());
    assert_eq!(backed_up.len(), 3);
    for blob in &backed_up {
        let bytes = std::fs::read(blob).unwrap();
        for (_, body) in &files {
            assert!(!contains(&bytes, &body[..11]), "a blob holds plaintext");
        }
    }

    // Expired, swept, and then the epoch keys destroyed.
    wait_for(
        "expiry, the sweep and the destruction of the keys",
        async || {
            let text = metrics(&server).await;
            metric(&text, "upslot_files_stored") == 0.0
                && metric(&text, "upslot_encryption_epochs") == 0.0
        },
    )
    .await;
    for (wire, _) in &files {
        assert_eq!(get(&server, wire).await.status(), StatusCode::NOT_FOUND);
    }
    assert!(blobs(&data).is_empty());
    assert!(epoch_keys(&data).is_empty());
    let text = metrics(&server).await;
    assert_eq!(
        metric(&text, "upslot_encryption_epochs_destroyed_total"),
        keys.len() as f64
    );
    assert_eq!(
        metric(&text, "upslot_encryption_oldest_epoch_end_seconds"),
        0.0
    );
    assert_eq!(metric(&text, "upslot_swept_files_total"), 3.0);
    // The keys exist nowhere any more: not in the data directory, not in
    // the backup, not in the log. Nobody can decrypt the backup's blobs.
    assert_keys_gone(&keys, &[&data, backup.path()]);
    let log = server.log_lines().join("\n");
    for (_, hex) in &keys {
        assert!(!log.contains(hex.as_str()), "the log holds a key");
    }

    // The backup is restored (blobs and index) on the stopped server and
    // it starts again: the files are gone (404, not a 500 for a key it
    // cannot find), and the sweeper removes the restored leftovers.
    let dir = server.into_dir();
    restore(backup.path(), &data);
    assert_eq!(blobs(&data).len(), 3);
    let server = Upslot::restart_in(dir, &[]);
    for (wire, _) in &files {
        assert_eq!(get(&server, wire).await.status(), StatusCode::NOT_FOUND);
    }
    wait_for("the sweep of the restored files", async || {
        blobs(&data).is_empty() && metric_now(&server, "upslot_files_stored").await == 0.0
    })
    .await;
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "upslot_swept_files_total"), 3.0);
    assert_eq!(metric(&text, "upslot_swept_bytes_total"), total as f64);
    assert_eq!(metric(&text, "upslot_bytes_stored"), 0.0);
    assert_eq!(metric(&text, "upslot_files_overdue"), 0.0);
    assert_eq!(metric(&text, "upslot_encryption_epochs"), 0.0);
    assert_eq!(
        metric(&text, "upslot_encryption_decrypt_failures_total"),
        0.0
    );
    assert_keys_gone(&keys, &[&data, backup.path()]);
}

/// The erasure-from-backups bound (README, "Encryption at rest"): erasing
/// an account removes its rows, and with them the wrapped data keys, but an
/// index backup taken before still holds them, and while the file's epoch
/// key exists a restored backup serves the file again. From the moment the
/// epoch key is destroyed (one epoch, at most a minute, after the epoch in
/// which the file expires ends) no backup brings it back. Since an epoch
/// ends at or after every expiry in it, a restored file has also expired by
/// then, so upslot itself answers 404 either way; what the destruction adds
/// is that the backup's blob cannot be decrypted by anyone, anywhere.
#[tokio::test]
async fn an_erased_account_returns_from_a_backup_only_until_its_key_is_destroyed() {
    let server = Upslot::start(&fast_shredding("12s"));
    let data = server.data_dir.clone();
    let jid = "juliet@capulet.lit";
    let wire = "juliet1/diary.txt";
    let body = plaintext(4, 2 * SEGMENT + 7);
    let token = Claims::new("juliet1", body.len() as u64).sub(jid).jwt();
    let status = Put::bearer(wire, &token, body.clone())
        .status(&server)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let keys = epoch_keys(&data);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let backup = tempfile::tempdir().unwrap();
    back_up(&data, backup.path());

    // The account is erased: its file is gone at once, blob and all.
    let ts = unix_now();
    let erased = erase_request(&server, jid, ts, &erase_sig(jid, ts))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    assert_eq!(erased.text().await.unwrap().trim(), "{\"deleted\":1}");
    assert_eq!(get(&server, wire).await.status(), StatusCode::NOT_FOUND);
    assert!(blobs(&data).is_empty());

    // Before the epoch key is destroyed, the restored backup serves the
    // erased file again: that is the documented bound.
    let dir = server.into_dir();
    restore(backup.path(), &data);
    let server = Upslot::restart_in(dir, &[]);
    let response = get(&server, wire).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), body);

    // The epoch key is destroyed; the restored file is 404 and swept.
    wait_for("the destruction of the epoch key", async || {
        metric_now(&server, "upslot_encryption_epochs_destroyed_total").await >= 1.0
    })
    .await;
    assert!(epoch_keys(&data).is_empty());
    assert_eq!(get(&server, wire).await.status(), StatusCode::NOT_FOUND);
    wait_for("the sweep of the restored file", async || {
        blobs(&data).is_empty() && metric_now(&server, "upslot_files_stored").await == 0.0
    })
    .await;
    assert_keys_gone(&keys, &[&data, backup.path()]);

    // After the destruction, the same backup restored again brings back
    // nothing: 404, and the sweeper removes the undecryptable leftovers.
    let dir = server.into_dir();
    restore(backup.path(), &data);
    let server = Upslot::restart_in(dir, &[]);
    assert_eq!(get(&server, wire).await.status(), StatusCode::NOT_FOUND);
    wait_for("the sweep of the restored leftovers", async || {
        blobs(&data).is_empty() && metric_now(&server, "upslot_files_stored").await == 0.0
    })
    .await;
    assert_eq!(
        metric_now(&server, "upslot_encryption_decrypt_failures_total").await,
        0.0
    );
    assert_keys_gone(&keys, &[&data, backup.path()]);
}

#[tokio::test]
async fn a_blob_altered_on_disk_never_yields_a_wrong_byte() {
    let server = Upslot::start("");
    let len = THREE_SEGMENTS_AND_A_BIT;
    let sealed_len = len + 4 * 16;
    let failures = async || metric_now(&server, "upslot_encryption_decrypt_failures_total").await;

    // (a) A flipped bit in the first segment: 500 before any byte.
    let first = plaintext(0x11, len);
    let blob = upload(&server, "tamper/first.bin", &first).await;
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), sealed_len as u64);
    flip(&blob, 100);
    let got = deliver(&server, "tamper/first.bin", None).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_never_a_wrong_byte(&got, &first, 0, "first segment altered");
    assert_eq!(failures().await, 1.0);

    // (b) A flipped bit in the third segment: the first two are served,
    // then the connection is cut before any byte of the third.
    let third = plaintext(0x22, len);
    let blob = upload(&server, "tamper/third.bin", &third).await;
    flip(&blob, 2 * SEALED_SEGMENT + 10);
    let got = deliver(&server, "tamper/third.bin", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_never_a_wrong_byte(&got, &third, 2 * SEGMENT, "third segment altered");
    assert_eq!(failures().await, 2.0);
    // A range inside the altered segment fails before any byte; one that
    // starts before it is cut where the damage begins.
    let inside = format!("bytes={}-{}", 2 * SEGMENT + 10, 2 * SEGMENT + 20);
    let got = deliver(&server, "tamper/third.bin", Some(&inside)).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_never_a_wrong_byte(&got, &third[2 * SEGMENT + 10..], 0, "range inside");
    let across = format!("bytes={}-", SEGMENT + 5);
    let got = deliver(&server, "tamper/third.bin", Some(&across)).await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert_never_a_wrong_byte(&got, &third[SEGMENT + 5..], SEGMENT - 5, "range across");
    assert_eq!(failures().await, 4.0);
    // A range of intact segments is still served, and right.
    let intact = format!("bytes=0-{}", 2 * SEGMENT - 1);
    let response = get_with(
        &server,
        "tamper/third.bin",
        [(header::RANGE, intact.as_str())],
    )
    .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.bytes().await.unwrap(), third[..2 * SEGMENT]);

    // (c) Truncated: inside the last tag, inside the third segment, and at
    // the boundary before it (which a stream of whole segments could pass
    // off as the end of a shorter file).
    let cut = plaintext(0x33, len);
    let blob = upload(&server, "tamper/cut.bin", &cut).await;
    let before = failures().await;
    for at in [sealed_len - 1, 2 * SEALED_SEGMENT + 100, 2 * SEALED_SEGMENT] {
        truncate(&blob, at);
        let got = deliver(&server, "tamper/cut.bin", None).await;
        let intact = at / SEALED_SEGMENT * SEGMENT;
        assert_never_a_wrong_byte(&got, &cut, intact, &format!("cut at {at}"));
    }
    // A blob shorter than its record is a tampered blob: counted each time.
    let failed = failures().await;
    assert_eq!(failed, before + 3.0);

    // (d) Two segments swapped: the first and second fail at once; the
    // second and third are cut after the first segment.
    let swapped = plaintext(0x44, len);
    let blob = upload(&server, "tamper/swap01.bin", &swapped).await;
    swap_segments(&blob, 0, 1);
    let got = deliver(&server, "tamper/swap01.bin", None).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_never_a_wrong_byte(&got, &swapped, 0, "segments 0 and 1 swapped");
    assert_eq!(failures().await, failed + 1.0);
    let blob = upload(&server, "tamper/swap12.bin", &swapped).await;
    swap_segments(&blob, 1, 2);
    let got = deliver(&server, "tamper/swap12.bin", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_never_a_wrong_byte(&got, &swapped, SEGMENT, "segments 1 and 2 swapped");
    assert_eq!(failures().await, failed + 2.0);

    // (e) One file's blob put in place of another's (same size, other
    // bytes): neither file's bytes come out.
    let mine = plaintext(0x55, len);
    let theirs = plaintext(0x66, len);
    let my_blob = upload(&server, "tamper/mine.bin", &mine).await;
    let their_blob = upload(&server, "tamper/theirs.bin", &theirs).await;
    std::fs::rename(&their_blob, &my_blob).unwrap();
    let got = deliver(&server, "tamper/mine.bin", None).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_never_a_wrong_byte(&got, &mine, 0, "another file's blob");
    assert!(!contains(&got.bytes, &theirs[..16]));
    assert_eq!(failures().await, failed + 3.0);
    // The file whose blob was taken away is simply missing.
    let got = deliver(&server, "tamper/theirs.bin", None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert!(!contains(&got.bytes, &theirs[..16]));

    // A file nobody touched is served whole.
    let fine = plaintext(0x77, len);
    upload(&server, "tamper/fine.bin", &fine).await;
    let got = deliver(&server, "tamper/fine.bin", None).await;
    assert!(got.status == StatusCode::OK && got.complete && got.bytes == fine);
}

#[tokio::test]
async fn turning_encryption_off_keeps_sealed_files_readable() {
    let server = Upslot::start("");
    let sealed = plaintext(0x12, 2 * SEGMENT + 3);
    let sealed_blob = upload(&server, "off/sealed.bin", &sealed).await;
    let on_disk = std::fs::read(&sealed_blob).unwrap();
    assert_eq!(on_disk.len(), sealed.len() + 3 * 16);
    assert!(!contains(&on_disk, &sealed[..32]));
    assert_eq!(metric_now(&server, "upslot_encryption_enabled").await, 1.0);

    let config = server.config_path.clone();
    let dir = server.into_dir();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[encryption]\nenabled = false\n");
    std::fs::write(&config, text).unwrap();
    let server = Upslot::restart_in(dir, &[]);
    assert_eq!(metric_now(&server, "upslot_encryption_enabled").await, 0.0);

    // The sealed file is still served in plaintext; a new one is stored
    // as it came.
    let plain = plaintext(0x34, SEGMENT + 9);
    let plain_blob = upload(&server, "off/plain.bin", &plain).await;
    assert_eq!(std::fs::read(&plain_blob).unwrap(), plain);
    for (wire, body) in [("off/sealed.bin", &sealed), ("off/plain.bin", &plain)] {
        let response = get(&server, wire).await;
        assert_eq!(response.status(), StatusCode::OK, "{wire}");
        assert_eq!(&response.bytes().await.unwrap()[..], &body[..], "{wire}");
    }
    // Ranges too, across a segment boundary of the sealed one.
    let range = format!("bytes={}-{}", SEGMENT - 2, SEGMENT + 1);
    for (wire, body) in [("off/sealed.bin", &sealed), ("off/plain.bin", &plain)] {
        let response = get_with(&server, wire, [(header::RANGE, range.as_str())]).await;
        assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{wire}");
        assert_eq!(
            &response.bytes().await.unwrap()[..],
            &body[SEGMENT - 2..SEGMENT + 2],
            "{wire}"
        );
    }
}

/// A keyring lost with its machine (the README keeps it out of backups, so
/// restoring blobs and index onto a new machine loses it too): the files it
/// sealed are gone for good and answer 404 like shredded ones, also once a
/// new upload has made a fresh key for the same epoch.
#[tokio::test]
async fn files_whose_key_was_lost_answer_404_even_after_their_epoch_gets_a_new_key() {
    let server = Upslot::start("");
    let data = server.data_dir.clone();
    let lost = plaintext(0x13, 1000);
    upload(&server, "lost/old.bin", &lost).await;
    assert_eq!(epoch_keys(&data).len(), 1);
    let dir = server.into_dir();
    for key in files_below(&data.join("keys/epochs")) {
        std::fs::remove_file(key).unwrap();
    }
    let server = Upslot::restart_in(dir, &[]);
    assert_eq!(
        get(&server, "lost/old.bin").await.status(),
        StatusCode::NOT_FOUND
    );
    // HEAD and a conditional GET send no bytes, and agree with the GET.
    assert_eq!(
        common::head(&server, "lost/old.bin").await.status(),
        StatusCode::NOT_FOUND
    );
    let conditional = get_with(&server, "lost/old.bin", [(header::IF_NONE_MATCH, "*")]).await;
    assert_eq!(conditional.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        metric_now(&server, "upslot_encryption_missing_keys_total").await,
        3.0
    );

    // A new upload expiring in the same epoch makes a fresh key for it.
    let fresh = plaintext(0x14, 1000);
    upload(&server, "lost/new.bin", &fresh).await;
    assert_eq!(epoch_keys(&data).len(), 1);
    let response = get(&server, "lost/new.bin").await;
    assert_eq!(response.bytes().await.unwrap(), fresh);
    // The old file's data key does not open under the fresh key: it is gone
    // for good, like a missing key, and no tampering alarm goes off.
    let got = deliver(&server, "lost/old.bin", None).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(
        metric_now(&server, "upslot_encryption_decrypt_failures_total").await,
        0.0
    );
}
