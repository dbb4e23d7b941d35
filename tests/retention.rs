//! Retention with the real binary: files disappear when their time comes,
//! their URLs cannot be reused, the metrics say so, and a lost index does
//! not keep anything alive.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::process::Command;

use common::{Upslot, client, metric, metrics, put, v1_query, wait_for};
use reqwest::StatusCode;

fn blobs(server: &Upslot) -> Vec<std::path::PathBuf> {
    server
        .files()
        .into_iter()
        .filter(|f| f.starts_with("blobs/"))
        .collect()
}

#[tokio::test]
async fn files_expire_are_swept_and_their_urls_stay_used() {
    let server = Upslot::start("[retention]\nkeep = \"3s\"\nsweep_every = \"1s\"\n");
    assert_eq!(
        put(&server, "ret/a.txt", b"first").await,
        StatusCode::CREATED
    );
    assert_eq!(
        put(&server, "ret/b.txt", b"second").await,
        StatusCode::CREATED
    );
    let before = metrics(&server).await;
    assert_eq!(metric(&before, "upslot_files_stored"), 2.0);
    assert_eq!(metric(&before, "upslot_bytes_stored"), 11.0);
    assert_eq!(metric(&before, "upslot_retention_max_seconds"), 3.0);
    assert_eq!(blobs(&server).len(), 2);

    // Never served after expiry, and gone from disk shortly after.
    wait_for("expiry", async || {
        client()
            .get(server.url("ret/a.txt"))
            .send()
            .await
            .unwrap()
            .status()
            == StatusCode::NOT_FOUND
    })
    .await;
    // Blobs go first, then their rows (with tombstones) in one transaction.
    wait_for("the sweep", async || {
        blobs(&server).is_empty() && metric(&metrics(&server).await, "upslot_files_stored") == 0.0
    })
    .await;

    // The old URL cannot take a new upload.
    let q = v1_query("ret/a.txt", 5);
    let r = client()
        .put(server.url(&format!("ret/a.txt?{q}")))
        .body(&b"again"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.headers()["upslot-error"], "slot_used");
    assert_eq!(
        r.text().await.unwrap(),
        "This upload link has already been used; please upload the file again.\n"
    );

    let after = metrics(&server).await;
    assert_eq!(metric(&after, "upslot_files_stored"), 0.0);
    assert_eq!(metric(&after, "upslot_bytes_stored"), 0.0);
    assert_eq!(metric(&after, "upslot_swept_files_total"), 2.0);
    assert_eq!(metric(&after, "upslot_swept_bytes_total"), 11.0);
    assert_eq!(metric(&after, "upslot_files_overdue"), 0.0);
    assert_eq!(metric(&after, "upslot_tombstones"), 2.0);
    assert!(metric(&after, "upslot_sweeps_total") >= 1.0);
    assert!(metric(&after, "upslot_last_sweep_timestamp_seconds") > 0.0);
    // No metric names a file, a path or an address.
    assert!(!after.contains("ret/") && !after.contains("127.0.0.1"));
}

#[tokio::test]
async fn metronome_delete_leaves_the_url_used() {
    let server = Upslot::start_with("", "delete_secret = \"d3l3t3\"", "", &[]);
    assert_eq!(put(&server, "met/a.txt", b"x").await, StatusCode::CREATED);
    let mac = common::mac_hex(common::SECRET, b"met/a.txt\x00d3l3t3");
    let r = client()
        .delete(server.url(&format!("met/a.txt?token={mac}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(blobs(&server).is_empty());
    assert_eq!(put(&server, "met/a.txt", b"x").await, StatusCode::CONFLICT);
}

/// Renames every day prefix below `blobs/` to `1999-01-01`, as if the files
/// had been uploaded long ago.
fn age_all_blobs(data: &Path) {
    let blobs = data.join("blobs");
    for entry in std::fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let old = blobs.join("1999-01-01");
        std::fs::create_dir_all(&old).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::rename(file.path(), old.join(file.file_name())).unwrap();
        }
        if entry.path() != old {
            std::fs::remove_dir(entry.path()).unwrap();
        }
    }
}

#[tokio::test]
async fn the_backstop_removes_old_blobs_even_without_an_index() {
    let server = Upslot::start("[retention]\nkeep = \"1d\"\nsweep_every = \"1s\"\n");
    assert_eq!(put(&server, "bs/a.txt", b"one").await, StatusCode::CREATED);
    assert_eq!(put(&server, "bs/b.txt", b"two").await, StatusCode::CREATED);
    let data = server.data_dir.clone();
    let config_path = server.config_path.clone();
    let dir = server.into_dir();

    // The index is lost, and the files are older than max + 1 day.
    std::fs::remove_file(data.join("index.redb")).unwrap();
    age_all_blobs(&data);
    assert_eq!(
        std::fs::read_dir(data.join("blobs/1999-01-01"))
            .unwrap()
            .count(),
        2
    );

    // Offline (no server answers on the admin port): a dry run reports the
    // day and deletes nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_upslot"))
        .args(["sweep", "--dry-run", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("backstop would remove day prefixes: 1999-01-01"),
        "{text}"
    );
    assert!(
        data.join("blobs/1999-01-01").exists(),
        "a dry run deletes nothing"
    );

    // The server's own passes remove them, with no index to tell it.
    let config = std::fs::read_to_string(&config_path).unwrap();
    let server = Upslot::start_raw(&config, &[]);
    wait_for("the backstop", async || {
        !data.join("blobs/1999-01-01").exists()
    })
    .await;
    let text = metrics(&server).await;
    assert_eq!(metric(&text, "upslot_backstop_deleted_files_total"), 2.0);
    assert_eq!(metric(&text, "upslot_backstop_deleted_days_total"), 1.0);
    drop(server);
    drop(dir);
}

#[tokio::test]
async fn stats_and_dry_run_through_the_running_server() {
    let server = Upslot::start("[retention]\nkeep = \"1h\"\n");
    assert_eq!(
        put(&server, "st/a.txt", b"hello").await,
        StatusCode::CREATED
    );
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_upslot"))
            .args(args)
            .arg("--config")
            .arg(&server.config_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // The config names port 0 for the admin listener: point the CLI at
    // the real one.
    server.pin_admin_port();
    let stats = run(&["stats"]);
    assert!(stats.contains("files stored:     1"), "{stats}");
    assert!(stats.contains("bytes stored:     5 B"), "{stats}");
    assert!(stats.contains("< 1 hour         1"), "{stats}");
    let preview = run(&["sweep", "--dry-run"]);
    assert!(preview.contains("would delete now: 0 files"), "{preview}");
    let swept = run(&["sweep"]);
    assert!(swept.contains("deleted 0 files"), "{swept}");
    assert_eq!(
        client()
            .get(server.url("st/a.txt"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
