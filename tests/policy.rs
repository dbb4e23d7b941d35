//! `upslot policy` run as a command: the sentences of several
//! configurations (the embedded defaults, encryption off, full client
//! addresses in logs, quotas with TLS), the XMPP Providers fields, a
//! running server that answers for its own configuration, and a stopped
//! data directory that still holds a plaintext file.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::process::Command;

use common::{Claims, Put, SECRET, Upslot, client};
use reqwest::StatusCode;

/// `upslot policy ARGS` in `dir`, with `env`; its stdout (it must succeed).
fn policy(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_upslot"));
    command
        .arg("policy")
        .args(args)
        .current_dir(dir)
        .env_remove("UPSLOT_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `upslot policy --config FILE ARGS`.
fn policy_of(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    policy(config.parent().unwrap(), &all, &[])
}

/// The Markdown's sentences to publish and its operator notes.
fn split(markdown: &str) -> (Vec<&str>, Vec<&str>) {
    let (public, notes) = markdown
        .split_once("## Operator notes: do not publish")
        .unwrap_or_else(|| panic!("no operator section in\n{markdown}"));
    (
        public
            .lines()
            .filter_map(|l| l.strip_prefix("- "))
            .collect(),
        notes.lines().filter_map(|l| l.strip_prefix("- ")).collect(),
    )
}

fn has(lines: &[&str], part: &str) -> bool {
    lines.iter().any(|line| line.contains(part))
}

/// A config file in `dir` with its own data directory, no admin listener,
/// and `extra` sections.
fn config_file(dir: &Path, server: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("upslot.toml");
    let text = format!(
        "[server]\nadmin_listen = \"\"\n{server}\n[upload]\nsecret = \"{SECRET}\"\n\
         [storage]\npath = {:?}\n{extra}\n",
        dir.join("data").display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The Providers JSON fields, in order.
fn providers(text: &str) -> Vec<(String, i64)> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let object = value.as_object().unwrap();
    let mut fields: Vec<(String, i64)> = object
        .iter()
        .map(|(key, value)| (key.clone(), value.as_i64().unwrap()))
        .collect();
    fields.sort();
    fields
}

fn fields(file: i64, total: i64, days: i64) -> Vec<(String, i64)> {
    let mut fields = vec![
        ("maximumHttpFileUploadFileSize".to_string(), file),
        ("maximumHttpFileUploadTotalSize".to_string(), total),
        ("maximumHttpFileUploadStorageTime".to_string(), days),
    ];
    fields.sort();
    fields
}

const NOT_LOGGED: &str = "IP addresses are not logged.";
const TLS: &str = "Uploads and downloads are accepted only over encrypted connections (TLS).";
const ERASED: &str =
    "When your account is deleted, the files you uploaded are deleted at the same time.";
const ENCRYPTED: &str = "Files are encrypted at rest with AES-256-GCM";

#[test]
fn the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // The default admin listener, 127.0.0.1:5051, may belong to someone
    // else's server on this machine: point it at a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = closed.local_addr().unwrap().to_string();
    drop(closed);
    let env = [("UPSLOT_SERVER__ADMIN_LISTEN", admin.as_str())];
    let markdown = policy(dir.path(), &[], &env);
    assert!(
        markdown.starts_with("# Privacy of shared files\n"),
        "{markdown}"
    );
    let (public, notes) = split(&markdown);
    for sentence in [
        "Files you upload are deleted at the latest 30 days after the upload, whatever their \
         upload link asks for.",
        "From then on a file is no longer served, and it is removed from storage by the next \
         cleanup run; cleanups run every 1 minute.",
        "Files are stored on the upload server's own disk, their records beside them.",
        "When your account is deleted, files you uploaded may stay until their deletion time, \
         at the latest 30 days after upload.",
        NOT_LOGGED,
        "Each file may be up to 100 MiB.",
    ] {
        assert!(public.contains(&sentence), "{sentence:?} in\n{markdown}");
    }
    assert!(has(&public, "no files were stored."), "{markdown}");
    assert!(has(
        &public,
        "destroyed at the latest 1 day and 1 minute after"
    ));
    // Behind a proxy, with slot families that name nobody: TLS, erasure and
    // per-account limits are the operator's to make true.
    assert!(!has(&public, TLS) && has(&notes, TLS), "{markdown}");
    assert!(!has(&public, ERASED) && has(&notes, ERASED), "{markdown}");
    assert!(has(
        &notes,
        "Each account may upload up to 1000 MiB in any 24 hours."
    ));
    assert!(has(
        &notes,
        "from this configuration and the data directory"
    ));
    assert!(dir.path().join("data/index.redb").exists());

    let json = policy(dir.path(), &["--format", "providers"], &env);
    // 100 MiB is 104.9 MB; 30 days of 1000 MiB a day is 31,457.3 MB.
    assert_eq!(providers(&json), fields(104, 31_457, 30), "{json}");
}

#[test]
fn encryption_off_removes_the_encryption_and_backup_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "", "[encryption]\nenabled = false\n");
    let markdown = policy_of(&config, &[]);
    let (public, notes) = split(&markdown);
    assert!(!has(&public, ENCRYPTED), "{public:?}");
    assert!(
        !has(&public, "backups") && !has(&public, "decrypted"),
        "{public:?}"
    );
    assert!(has(&notes, "Encryption at rest is off"));
}

#[test]
fn logging_full_addresses_replaces_the_not_logged_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "", "[privacy]\nlog_client_ip = \"full\"\n");
    let markdown = policy_of(&config, &[]);
    let (public, notes) = split(&markdown);
    assert!(!has(&public, NOT_LOGGED), "{public:?}");
    assert!(has(
        &public,
        "Logs record your full IP address with every request."
    ));
    assert!(!has(&public, "never on disk or in logs"));
    assert!(has(&notes, "MaxRetentionSec"));
}

#[test]
fn quotas_and_tls_for_prosody_file_share() {
    let dir = tempfile::tempdir().unwrap();
    let tls = common::tls::pki("policy").server_line(dir.path());
    let config = config_file(
        dir.path(),
        &format!("listen = \"0.0.0.0:5443\"\n{tls}\n"),
        "[quota]\nper_owner_daily = \"1GiB\"\nper_owner_stored = \"5GiB\"\n",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[upload]\n", "[upload]\nprotocols = [\"jwt\"]\n"),
    )
    .unwrap();
    let markdown = policy_of(&config, &[]);
    let (public, notes) = split(&markdown);
    assert!(has(&public, TLS) && !has(&notes, TLS), "{markdown}");
    assert!(has(
        &public,
        "Each account may upload up to 1 GiB in any 24 hours and keep up to 5 GiB stored at a \
         time."
    ));
    assert!(has(&public, ERASED), "{markdown}");
    assert!(has(
        &public,
        "Copies of them in backups can no longer be decrypted"
    ));
    assert!(has(&notes, "server.admin_listen is empty"));
    // upslot terminates TLS: no proxy to warn about.
    assert!(!has(&notes, "access_log off"));

    let json = policy_of(&config, &["--format", "providers"]);
    // 5 GiB = 5,368.7 MB stored at most, below 30 days of 1 GiB.
    assert_eq!(providers(&json), fields(104, 5_368, 30), "{json}");
}

#[tokio::test]
async fn a_running_server_answers_for_its_own_configuration() {
    let server = Upslot::start_with("", "protocols = [\"jwt\"]", "", &[]);
    let token = Claims::new("slot1", 3).sub("alice@example.org").jwt();
    let status = Put::bearer("slot1/a.txt", &token, "abc")
        .status(&server)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    server.pin_admin_port();
    // The file the CLI reads now says "full", but the server was started
    // without it: the answer must be the server's.
    let mut text = std::fs::read_to_string(&server.config_path).unwrap();
    text.push_str("\n[privacy]\nlog_client_ip = \"full\"\n");
    std::fs::write(&server.config_path, text).unwrap();
    let markdown = policy_of(&server.config_path, &[]);
    let (public, notes) = split(&markdown);
    assert!(
        has(&notes, "from the running server's configuration"),
        "{markdown}"
    );
    assert!(has(&public, NOT_LOGGED), "{markdown}");
    assert!(has(&public, ERASED), "{markdown}");
    assert!(
        has(&public, "the oldest stored file was less than a minute old"),
        "{markdown}"
    );

    let answer = client()
        .get(format!("{}/policy/providers", server.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        providers(&answer.text().await.unwrap()),
        fields(104, 31_457, 30)
    );
    let cli = policy_of(&server.config_path, &["--format", "providers"]);
    assert_eq!(providers(&cli), fields(104, 31_457, 30));
}

#[tokio::test]
async fn a_stopped_data_directory_owns_up_to_plaintext_files() {
    let server = Upslot::start("[encryption]\nenabled = false\n");
    let status = Put::v1("plain1/a.txt", "abc").status(&server).await;
    assert_eq!(status, StatusCode::CREATED);
    let dir = server.into_dir();
    let config = dir.path().join("upslot.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("enabled = false", "enabled = true")).unwrap();
    // The config names admin port 0, where nothing answers: the data
    // directory is read directly.
    let markdown = policy_of(&config, &[]);
    let (public, notes) = split(&markdown);
    assert!(has(
        &notes,
        "from this configuration and the data directory"
    ));
    assert!(has(&public, ENCRYPTED), "{markdown}");
    assert!(
        has(
            &public,
            "1 file uploaded before encryption was turned on is stored unencrypted until \
             deleted, at the latest 30 days after upload"
        ),
        "{markdown}"
    );
    assert!(has(&public, "the oldest stored file was"), "{markdown}");
}
