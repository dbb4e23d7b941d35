//! The admin listener and the commands that ask it: account erasure named
//! with a resource, from the CLI with and without a running server, the
//! right of access (the signed report and `upslot access`, as text and
//! JSON, with and without a running server), the methods each admin
//! path takes, and the traffic metrics.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use common::{
    Claims, Put, Upslot, access_request, access_sig, client, ejabberd_path, erase_request,
    erase_sig, get, metric, metrics, put, sha1_hex, unix_now,
};
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// How long files are kept by default (`retention.keep = "30d"`).
const KEEP: i64 = 30 * 86_400;

/// Runs `upslot ARGS --config CONFIG`.
fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_upslot"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// Stdout of a command that must succeed.
fn success(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Uploads a 3-byte file to `<slot>/a.txt` with a JWT naming `jid`.
async fn upload_as(server: &Upslot, slot: &str, jid: &str) {
    let token = Claims::new(slot, 3).sub(jid).jwt();
    let status = Put::bearer(&format!("{slot}/a.txt"), &token, "abc")
        .status(server)
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn erase_from_the_cli_takes_a_jid_with_a_resource() {
    let server = Upslot::start("");
    upload_as(&server, "alice1", "alice@example.org").await;
    upload_as(&server, "bob1", "bob@example.org").await;
    // The config names port 0 for the admin listener: point the CLI at the
    // real one, so it asks the running server.
    server.pin_admin_port();
    let out = success(cli(
        &server.config_path,
        &["erase", "--jid", "alice@example.org/phone"],
    ));
    assert_eq!(out.trim(), "{\"deleted\":1}");
    assert_eq!(
        get(&server, "alice1/a.txt").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(&server, "bob1/a.txt").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn erase_without_a_running_server_works_on_the_data_directory() {
    let server = Upslot::start("");
    upload_as(&server, "alice2", "alice@example.org").await;
    upload_as(&server, "bob2", "bob@example.org").await;
    let config = server.config_path.clone();
    // Stopped: the CLI finds no admin listener and opens the data directory.
    let dir = server.into_dir();
    let out = success(cli(
        &config,
        &["erase", "--jid", "alice@example.org/laptop"],
    ));
    assert_eq!(out.trim(), "{\"deleted\":1}");
    let stats = success(cli(&config, &["stats"]));
    assert!(stats.contains("files stored:     1"), "{stats}");
    drop(dir);
}

#[tokio::test]
async fn each_admin_path_names_the_methods_it_takes() {
    let server = Upslot::start("");
    let admin = |method: Method, path: &str| {
        client().request(method, format!("{}{path}", server.admin_url))
    };
    for (method, path, allow) in [
        (Method::DELETE, "/metrics", "GET"),
        (Method::POST, "/health", "GET, HEAD"),
        (Method::POST, "/live", "GET, HEAD"),
        (Method::PUT, "/sweep", "GET, POST"),
        (Method::PUT, "/owners/alice@example.org", "GET, DELETE"),
        (Method::POST, "/owners/alice%40example.org", "GET, DELETE"),
    ] {
        let response = admin(method.clone(), path).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()[header::ALLOW], allow, "{method} {path}");
    }
    let response = admin(Method::HEAD, "/health").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = admin(Method::GET, "/nothing").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The public listener's list is its own.
    let response = client().post(server.url("a/b")).send().await.unwrap();
    assert_eq!(
        response.headers()[header::ALLOW],
        "GET, HEAD, PUT, DELETE, OPTIONS"
    );
}

/// Uploads `body` as `jid` the ejabberd way: v1-signed, the uploader named
/// by the `sha1(jid)` path segment.
async fn upload_ejabberd(server: &Upslot, random: &str, jid: &str, body: &str) {
    let path = ejabberd_path(jid, random, "b.txt");
    assert_eq!(
        Put::v1(&path, body).status(server).await,
        StatusCode::CREATED
    );
}

/// `upslot access --jid JID --json`, read.
fn access_json(config: &Path, jid: &str) -> Value {
    let out = success(cli(config, &["access", "--jid", jid, "--json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Unix time `t` as RFC 3339 in UTC, worked out from the HTTP date (an
/// independent formatter) rather than with upslot's own.
fn rfc3339(t: i64) -> String {
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(t as u64));
    // "Tue, 01 Dec 2026 10:00:00 GMT"
    let parts: Vec<&str> = date.split(' ').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
    format!("{}-{month:02}-{}T{}Z", parts[3], parts[1], parts[4])
}

#[tokio::test]
async fn access_reports_exactly_one_accounts_files_until_it_is_erased() {
    let server = Upslot::start_with(
        "",
        "max_size = \"1MiB\"",
        "[quota]\nper_owner_daily = \"2MiB\"\n",
        &[],
    );
    let before = unix_now();
    upload_as(&server, "alice3", ALICE).await; // 3 bytes, JWT `sub`
    upload_ejabberd(&server, "0123456789abcdef", ALICE, "hello").await; // 5 bytes
    upload_as(&server, "bob3", BOB).await;
    let after = unix_now();
    server.pin_admin_port();

    // The command, as JSON: the first account's two files, nothing of the other's.
    let json = access_json(&server.config_path, ALICE);
    assert_eq!(json["files"], 2, "{json}");
    assert_eq!(json["bytes"], 8, "{json}");
    assert_eq!(json["uploaded_last_24h"], 8, "{json}");
    assert_eq!(json["stored"], 8, "{json}");
    assert_eq!(json["limits"]["per_owner_daily"], 2 << 20, "{json}");
    assert_eq!(json["limits"]["per_owner_stored"], Value::Null, "{json}");
    let oldest = json["oldest_upload_unix"].as_i64().unwrap();
    let latest = json["latest_expiry_unix"].as_i64().unwrap();
    assert!((before..=after).contains(&oldest), "{json}");
    assert!((oldest + KEEP..=after + KEEP).contains(&latest), "{json}");
    assert_eq!(json["oldest_upload"], rfc3339(oldest), "{json}");
    assert_eq!(json["latest_expiry"], rfc3339(latest), "{json}");
    let bob = access_json(&server.config_path, BOB);
    assert_eq!((&bob["files"], &bob["bytes"]), (&1.into(), &3.into()));

    // The raw signed request says the same, the JID raw or encoded with a resource.
    let now = unix_now();
    let r = access_request(&server, ALICE, now, &access_sig(ALICE, now))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
        json
    );
    let phone = "alice@example.org/phone";
    let r = access_request(
        &server,
        "alice%40example.org%2Fphone",
        now,
        &access_sig(phone, now),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap(),
        json
    );

    // The command, as text to paste into a reply (a resource is ignored).
    let text = success(cli(&server.config_path, &["access", "--jid", phone]));
    let utc = |t: i64| rfc3339(t).replace('T', " ").replace('Z', " UTC");
    for line in [
        "for alice@example.org, as of ".to_string(),
        "Files: 2, 8 bytes in total\n".to_string(),
        format!("Oldest upload: {}\n", utc(oldest)),
        format!("Latest expiry: {}\n", utc(latest)),
        "Uploaded in the last 24 hours: 8 bytes, daily limit 2 MiB\n".to_string(),
        "Stored now: 8 bytes, no storage limit\n".to_string(),
        "upslot stores no file names, no JIDs".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("a.txt") && !text.contains("b.txt"), "{text}");

    // Refused with 403: another account's signature, erasure's signature,
    // a stale one, none; and an access signature does not erase.
    let stale = now - 600;
    for (sig, ts) in [
        (access_sig(BOB, now), now),
        (erase_sig(ALICE, now), now),
        (access_sig(ALICE, stale), stale),
    ] {
        let r = access_request(&server, ALICE, ts, &sig)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "ts {ts} sig {sig}");
    }
    let r = client()
        .get(format!("{}/owners/{ALICE}", server.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = erase_request(&server, ALICE, now, &access_sig(ALICE, now))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(access_json(&server.config_path, ALICE)["files"], 2);

    // The reports went through the running server, whose log names no account.
    let logs = server.log_lines();
    assert!(
        logs.iter()
            .any(|l| l.contains("right-of-access report made")),
        "{logs:#?}"
    );
    for secret in ["alice", "bob", &sha1_hex(ALICE)] {
        assert!(
            !logs.iter().any(|l| l.contains(secret)),
            "{secret}: {logs:#?}"
        );
    }

    // Once erased, nothing is reported; the other account is untouched.
    let out = success(cli(&server.config_path, &["erase", "--jid", ALICE]));
    assert_eq!(out.trim(), "{\"deleted\":2}");
    let json = access_json(&server.config_path, ALICE);
    assert_eq!((&json["files"], &json["bytes"]), (&0.into(), &0.into()));
    assert_eq!(json["oldest_upload"], Value::Null, "{json}");
    assert_eq!(json["latest_expiry_unix"], Value::Null, "{json}");
    assert_eq!(
        (&json["stored"], &json["uploaded_last_24h"]),
        (&0.into(), &0.into())
    );
    let text = success(cli(&server.config_path, &["access", "--jid", ALICE]));
    assert!(text.contains("Files: none\n"), "{text}");
    assert!(
        text.contains("Only uploads whose upload slot names the account"),
        "{text}"
    );
    assert_eq!(access_json(&server.config_path, BOB)["files"], 1);
}

#[tokio::test]
async fn access_without_a_running_server_reads_the_data_directory() {
    let server = Upslot::start("");
    upload_as(&server, "alice4", ALICE).await;
    upload_ejabberd(&server, "fedcba9876543210", ALICE, "hello").await;
    upload_as(&server, "bob4", BOB).await;
    let config = server.config_path.clone();
    // Stopped: the CLI finds no admin listener and opens the data directory.
    let dir = server.into_dir();
    let json = access_json(&config, ALICE);
    assert_eq!((&json["files"], &json["bytes"]), (&2.into(), &8.into()));
    assert_eq!(json["stored"], 8, "{json}");
    let oldest = json["oldest_upload_unix"].as_i64().unwrap();
    assert_eq!(json["oldest_upload"], rfc3339(oldest), "{json}");
    let text = success(cli(&config, &["access", "--jid", ALICE]));
    assert!(text.contains("Files: 2, 8 bytes in total\n"), "{text}");
    drop(dir);
}

#[tokio::test]
async fn traffic_is_counted_by_method_status_and_refusal_code() {
    let server = Upslot::start("");
    let slot = "0f9c2b5e-7d1a-4c3b-9e8f-1a2b3c4d5e6f/report.pdf";
    assert_eq!(
        put(&server, slot, vec![7u8; 1000]).await,
        StatusCode::CREATED
    );
    assert_eq!(get(&server, slot).await.bytes().await.unwrap().len(), 1000);
    assert_eq!(get(&server, slot).await.status(), StatusCode::OK);
    let unknown = "0f9c2b5e-7d1a-4c3b-9e8f-000000000000/gone.pdf";
    assert_eq!(get(&server, unknown).await.status(), StatusCode::NOT_FOUND);
    let forged = Put::v1(slot, vec![1u8; 10])
        .secret("wrong")
        .status(&server)
        .await;
    assert_eq!(forged, StatusCode::FORBIDDEN);

    let text = metrics(&server).await;
    for series in [
        "upslot_requests_total{method=\"PUT\",status=\"201\"} 1\n",
        "upslot_requests_total{method=\"GET\",status=\"200\"} 2\n",
        "upslot_requests_total{method=\"GET\",status=\"404\"} 1\n",
        "upslot_requests_total{method=\"PUT\",status=\"403\"} 1\n",
        "upslot_refusals_total{code=\"not_found\"} 1\n",
        "upslot_refusals_total{code=\"token_invalid\"} 1\n",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
    assert_eq!(metric(&text, "upslot_uploaded_bytes_total"), 1000.0);
    assert_eq!(metric(&text, "upslot_served_bytes_total"), 2000.0);
    assert_eq!(metric(&text, "upslot_storage_up"), 1.0);
    assert_eq!(metric(&text, "upslot_index_up"), 1.0);
    // The scrape's own connection is open while it is answered.
    assert!(metric(&text, "upslot_connections_open") >= 1.0);
    assert_eq!(metric(&text, "upslot_connections_max"), 10000.0);
    // No series for what never happened, and none names a path or a client.
    assert!(!text.contains("status=\"500\""));
    assert!(!text.contains("report.pdf") && !text.contains("127.0.0.1"));
}
