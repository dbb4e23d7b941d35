//! The admin listener and the commands that ask it: account erasure named
//! with a resource, from the CLI with and without a running server, and the
//! methods each admin path takes.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Claims, Put, Upslot, client, get};
use reqwest::{Method, StatusCode, header};

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
        (Method::PUT, "/sweep", "GET, POST"),
        (Method::GET, "/owners/alice@example.org", "DELETE"),
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
