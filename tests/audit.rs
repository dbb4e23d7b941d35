//! Privacy audits over a full scenario with default settings: every log
//! line, and everything in the data directory, is searched for the client
//! addresses, file names, JIDs, secrets, MACs and JWTs the scenario used.

#![allow(clippy::unwrap_used)] // tests may panic on the unexpected

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Claims, Family, Put, SECRET, Upslot, client_from, delete_mac, ejabberd_path, encode_path,
    erase_request, erase_sig, sha1_hex, signed_delete, unix_now,
};
use reqwest::StatusCode;

const DELETE_SECRET: &str = "d3l3t3-audit";
const ROMEO: &str = "romeo@montague.tld";
const JULIET: &str = "juliet@capulet.lit";
/// Source addresses of the scenario's clients (never 127.0.0.1, which the
/// listeners themselves use).
const SOURCES: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.7", "127.0.0.8"];

/// What the scenario sent that must never be recorded.
#[derive(Default)]
struct Secrets {
    /// Searched for as-is, percent-encoded (both cases) and as sha1 hex.
    names: Vec<String>,
    /// Searched for as-is only.
    opaque: Vec<String>,
}

impl Secrets {
    fn needles(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for name in &self.names {
            out.push((format!("{name} (plain)"), name.as_bytes().to_vec()));
            let upper: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
            let mixed: String =
                percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            out.push((
                format!("{name} (percent-encoded)"),
                mixed.as_bytes().to_vec(),
            ));
            out.push((
                format!("{name} (percent-encoded, lower)"),
                mixed.to_lowercase().into_bytes(),
            ));
            out.push((format!("{name} (all-escaped)"), upper.into_bytes()));
            out.push((format!("{name} (sha1 hex)"), sha1_hex(name).into_bytes()));
        }
        for text in &self.opaque {
            out.push((text.clone(), text.as_bytes().to_vec()));
        }
        out
    }
}

/// Runs every kind of request once or more; returns what must not leak.
async fn scenario(server: &Upslot) -> Secrets {
    let mut secrets = Secrets::default();
    let alice = client_from(SOURCES[0]);
    let bob = client_from(SOURCES[1]);
    let mallory = client_from(SOURCES[2]);
    let mallory2 = client_from(SOURCES[3]);
    let now = unix_now();
    secrets.opaque.extend(SOURCES.iter().map(|s| s.to_string()));
    secrets.opaque.push(SECRET.to_string());
    secrets.opaque.push(DELETE_SECRET.to_string());
    for jid in [ROMEO, JULIET] {
        secrets.names.push(jid.to_string());
        secrets
            .names
            .push(jid.split('@').next().unwrap().to_string());
    }

    // v1, v2 and token uploads, with distinctive names.
    for (family, signing, name, content_type) in [
        ("v1", Family::V1, "Holiday Paris 2026.jpg", "image/jpeg"),
        ("v2", Family::V2, "contract-draft.pdf", "application/pdf"),
        ("token", Family::Token, "voice-memo-élodie.ogg", "audio/ogg"),
    ] {
        let slot = format!("slot-{family}-4f1c9");
        let path = format!("{slot}/{name}");
        secrets.names.push(name.to_string());
        let body = format!("opaque ciphertext of a {family} upload");
        let wire = encode_path(&path);
        let put = Put::new(signing, &wire, body)
            .decoded(&path)
            .content_type(content_type)
            .via(&alice);
        secrets.opaque.push(put.mac());
        let r = put.send(server).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{family}");
        let r = bob.get(server.url(&wire)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = bob
            .get(server.url(&wire))
            .header("range", "bytes=0-3")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    }

    // JWT uploads by two accounts.
    for (jid, slot, name) in [
        (ROMEO, "JwtSlotRomeo0123456789ab", "balcony sketch.png"),
        (JULIET, "JwtSlotJuliet123456789ab", "poison-recipe.txt"),
    ] {
        secrets.names.push(name.to_string());
        let token = Claims::prosody(slot, name, 5)
            .sub(jid)
            .filetype("image/png")
            .jwt();
        secrets.opaque.push(token.clone());
        let wire = format!("{slot}/{}", name.replace(' ', "%20"));
        let r = Put::bearer(&wire, &token, "hello")
            .via(&alice)
            .send(server)
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = bob.head(server.url(&wire)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    // An ejabberd-shaped upload: the path starts with sha1(user@host).
    let name = "ejabberd_upload_photo.jpg";
    secrets.names.push(name.to_string());
    let path = ejabberd_path(ROMEO, "Aq3ZkLmN0pQrStUvWxYz0123456789AbCdEfGhIj", name);
    let put = Put::v1(&path, "jpeg").via(&alice);
    secrets.opaque.push(put.mac());
    let r = put.send(server).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // Failed attempts from two addresses, enough to ban one.
    for i in 0..25 {
        let r = mallory
            .put(server.url(&format!("slot-guess/secret-plans-{i}.txt?v=00")))
            .body("x")
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 403 | 429));
    }
    secrets.names.push("secret-plans-1.txt".to_string());
    let r = mallory2
        .put(server.url("slot-guess/x.txt"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = mallory2
        .get(server.url("slot-guess/not-there.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Metronome's DELETE of the token upload.
    let token_path = "slot-token-4f1c9/voice-memo-élodie.ogg";
    secrets.opaque.push(delete_mac(token_path, DELETE_SECRET));
    let wire = encode_path(token_path);
    let r = signed_delete(&alice, server, &wire, token_path, DELETE_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Account erasure of romeo (JWT and ejabberd files).
    let sig = erase_sig(ROMEO, now);
    secrets.opaque.push(sig.clone());
    let r = erase_request(server, ROMEO, now, &sig)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().trim(), "{\"deleted\":2}");
    secrets
}

fn find_leaks(haystack: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, needle)| {
            haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice())
        })
        .map(|(label, _)| label.clone())
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        }
        out.push(path);
    }
}

#[tokio::test]
async fn logs_and_storage_hold_no_personal_data() {
    let server = Upslot::start_with("", &format!("delete_secret = \"{DELETE_SECRET}\""), "", &[]);
    let secrets = scenario(&server).await;
    let needles = secrets.needles();

    // Logs: every line the process wrote (default settings: info).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.log_lines();
    assert!(
        logs.len() > 40,
        "the scenario should have logged requests: {logs:#?}"
    );
    let mut leaks = Vec::new();
    for line in &logs {
        for label in find_leaks(line.as_bytes(), &needles) {
            leaks.push(format!("{label} in log line: {line}"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");

    // Storage: every file and directory name, and every byte of every file.
    let mut paths = Vec::new();
    walk(&server.data_dir, &mut paths);
    assert!(paths.iter().any(|p| p.ends_with("index.redb")));
    for path in &paths {
        let name = path
            .strip_prefix(&server.data_dir)
            .unwrap()
            .to_string_lossy()
            .to_string();
        for label in find_leaks(name.as_bytes(), &needles) {
            leaks.push(format!("{label} in the name {name}"));
        }
        if path.is_file() {
            let bytes = std::fs::read(path).unwrap();
            for label in find_leaks(&bytes, &needles) {
                leaks.push(format!("{label} inside {name}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[tokio::test]
async fn debug_logs_hold_no_personal_data_either() {
    let server = Upslot::start_with(
        "",
        &format!("delete_secret = \"{DELETE_SECRET}\""),
        "",
        &[("RUST_LOG", "debug")],
    );
    let secrets = scenario(&server).await;
    let needles = secrets.needles();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server.log_lines();
    let leaks: Vec<String> = logs
        .iter()
        .flat_map(|line| {
            find_leaks(line.as_bytes(), &needles)
                .into_iter()
                .map(move |l| format!("{l} in: {line}"))
        })
        .collect();
    assert!(leaks.is_empty(), "{leaks:#?}");
}
