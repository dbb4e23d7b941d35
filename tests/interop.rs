//! Interoperability with real XMPP servers and real XMPP clients.
//!
//! Each test starts its own upslot and its own XMPP server (Prosody 0.12 or
//! ejabberd 23.01, from the Debian packages) on free loopback ports, then:
//!
//! 1. a slixmpp client logged in as bob waits for messages;
//! 2. a slixmpp client logged in as alice asks the server for a slot
//!    (XEP-0363), PUTs the file to upslot and sends the GET URL to bob;
//! 3. bob downloads every URL, twice (as aiohttp normalises it, and with the
//!    exact bytes received), and the test compares SHA-256 and Content-Type;
//! 4. nothing in upslot's data directory may carry the uploaded names (in a
//!    path, or in plain text inside a file) or the uploader's JID.
//!
//! Two files are exchanged per server: `très cool photo.jpg` and a second one
//! whose name has `+`, parentheses and more non-ASCII letters.
//!
//! `prosody_http_file_share_on_s3` runs the same exchange with upslot on a
//! real S3-compatible server (`s3s-fs`).
//!
//! Account erasure (`interop/erase.rs`): with Prosody's JWT slots and the
//! shipped `deploy/prosody/mod_upslot_erase.lua`, deleting alice's account
//! inside the running server (admin shell, or in-band by alice herself)
//! makes upslot delete her files within seconds, and only hers.
//!
//! Quotas (`interop/quota.rs`): an upload over alice's daily limit fails,
//! and upslot's sentence saying why reaches her slixmpp client.
//!
//! A second client (`interop/sendxmpp.rs`): go-sendxmpp, a Go program from
//! Debian, uploads through Prosody (v1, v2, JWT) and ejabberd over
//! STARTTLS (the servers offer it with a throwaway certificate; slixmpp
//! keeps to clear text), and the test fetches its file and compares bytes.
//!
//! A web client (`interop/converse.rs`): Converse.js 14 in Debian's
//! Chromium logs in over Prosody's WebSocket and sends a PNG through its
//! own file input, with `mod_http_file_share` (JWT) and
//! `mod_http_upload_external` v2. The browser preflights the PUT; Converse
//! shows the image it uploaded at its natural size; bob (slixmpp) downloads
//! the same bytes. A file over upslot's size limit leaves upslot's sentence
//! in Converse. Screenshots go to `target/screenshots/`.
//!
//! A missing package or a server that does not start fails the test with the
//! reason and the server's log; nothing is skipped. Every process is stopped
//! when its guard drops, panics included. The client is
//! `tests/interop/xmpp_client.py`, run with Debian's `/usr/bin/python3`.

mod common;
#[path = "interop/converse.rs"]
mod converse;
#[path = "interop/ejabberd.rs"]
mod ejabberd;
#[path = "interop/erase.rs"]
mod erase;
#[path = "interop/harness.rs"]
mod harness;
#[path = "interop/prosody.rs"]
mod prosody;
#[path = "interop/quota.rs"]
mod quota;
#[path = "interop/sendxmpp.rs"]
mod sendxmpp;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{SECRET, Upslot};
use ejabberd::Ejabberd;
use harness::{LogsOnFailure, Proc, log_file};
use prosody::{Prosody, Upload};

/// Debian's interpreter: slixmpp and aiohttp are Debian packages.
const PYTHON: &str = "/usr/bin/python3";
const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/xmpp_client.py");
const CLIENT_HINT: &str = "install python3, python3-slixmpp and python3-aiohttp";
/// The client's own global timeout, in seconds; the test waits a bit longer.
const CLIENT_TIMEOUT_SECS: u64 = 60;

/// The XMPP accounts every server gets.
const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password");

/// A file to exchange: name, the type slixmpp guesses from it, size, seed.
struct TestFile {
    name: &'static str,
    content_type: &'static str,
    size: usize,
    seed: u64,
}

const FILES: [TestFile; 2] = [
    TestFile {
        name: "très cool photo.jpg",
        content_type: "image/jpeg",
        size: 300 * 1024 + 123,
        seed: 1,
    },
    TestFile {
        name: "Ünïcødé notes+1 (draft).txt",
        content_type: "text/plain",
        size: 150 * 1024 + 45,
        seed: 2,
    },
];

/// How the XMPP server signs the PUT URL it hands out.
#[derive(Clone, Copy, Debug)]
enum Token {
    /// `?v=` (Prosody mod_http_upload_external v1, ejabberd).
    V1,
    /// `?v2=` (Prosody mod_http_upload_external v2).
    V2,
    /// `Authorization: Bearer <JWT>` (Prosody mod_http_file_share).
    Jwt,
}

/// What a test needs to know about a running XMPP server.
pub(crate) struct XmppServer {
    pub(crate) domain: String,
    pub(crate) port: u16,
    /// Labelled log files, printed when a test fails.
    pub(crate) logs: Vec<(String, PathBuf)>,
}

impl XmppServer {
    /// A server on `port` whose logs are the files `log_names` in `dir`.
    pub(crate) fn new(port: u16, dir: &Path, log_names: &[&str]) -> XmppServer {
        XmppServer {
            domain: "upslot.test".to_string(),
            port,
            logs: log_names
                .iter()
                .map(|name| (name.to_string(), dir.join(name)))
                .collect(),
        }
    }

    /// The accounts to register: (user, password).
    pub(crate) fn users(&self) -> [(&'static str, &'static str); 2] {
        [ALICE, BOB]
    }
}

/// The words of four letters or more in the test files' names, lower
/// case: none may appear in what upslot stores.
fn name_words() -> Vec<String> {
    FILES
        .iter()
        .flat_map(|f| f.name.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn prosody_http_upload_external_v1() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody = Prosody::start(Upload::External { protocol: "v1" }, &base, SECRET)
        .unwrap_or_else(|e| panic!("{e:#}"));
    share_files(&upslot, &prosody.xmpp, &base, Token::V1);
}

#[test]
fn prosody_http_upload_external_v2() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody = Prosody::start(Upload::External { protocol: "v2" }, &base, SECRET)
        .unwrap_or_else(|e| panic!("{e:#}"));
    share_files(&upslot, &prosody.xmpp, &base, Token::V2);
}

#[test]
fn prosody_http_file_share_jwt() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody =
        Prosody::start(Upload::FileShare, &base, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    share_files(&upslot, &prosody.xmpp, &base, Token::Jwt);
}

#[test]
fn ejabberd_http_upload_external_secret() {
    // ejabberd puts its own path under put_url, so upslot gets a prefix.
    let upslot = Upslot::start_with("base_path = \"/upload/\"", "", "", &[]);
    let prefix = format!("{}/upload", upslot.base_url);
    let ejabberd = Ejabberd::start(&prefix, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    share_files(&upslot, &ejabberd.xmpp, &format!("{prefix}/"), Token::V1);
}

/// The same exchange with upslot storing on a real S3-compatible server
/// (`s3s-fs`): the bucket holds only anonymous objects, none with a name.
#[test]
fn prosody_http_file_share_on_s3() {
    let s3 = common::s3::S3Server::start("uploads");
    let upslot = Upslot::start_with("", "", &s3.storage_toml("uploads"), &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody =
        Prosody::start(Upload::FileShare, &base, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    share_files(&upslot, &prosody.xmpp, &base, Token::Jwt);
    let keys = s3.keys("uploads");
    assert_eq!(keys.len(), FILES.len(), "{keys:?}");
    let words = name_words();
    for key in &keys {
        let (day, id) = key.split_once('/').expect("day/id");
        assert!(day.len() == 10 && id.len() == 32, "{key}");
        for word in &words {
            assert!(!key.to_lowercase().contains(word.as_str()), "{key}");
        }
    }
}

/// An upload over the account's daily limit fails with upslot's sentence
/// reaching the slixmpp client (Prosody JWT slots name the uploader).
#[test]
fn prosody_over_quota_upload_tells_the_client_why() {
    quota::over_quota_upload_tells_the_client_why();
}

/// `prosodyctl shell user delete alice@…` (the operator, through the running
/// server) erases alice's uploads from upslot and leaves bob's.
#[test]
fn prosody_account_deletion_erases_uploads() {
    erase::uploads_erased_on_account_deletion(erase::Deletion::AdminShell);
}

/// alice deleting her own account from her client (XEP-0077) erases her
/// uploads from upslot and leaves bob's.
#[test]
fn prosody_inband_unregistration_erases_uploads() {
    erase::uploads_erased_on_account_deletion(erase::Deletion::InBand);
}

/// Converse.js in Chromium sends an image through Prosody's
/// `mod_http_file_share` (JWT in `Authorization`): preflight, PUT, the
/// image shown in the chat, bob's download.
#[test]
fn converse_in_chromium_through_prosody_file_share() {
    converse::converse_sends_an_image(Upload::FileShare, "converse-file-share");
}

/// The same with `mod_http_upload_external` v2 (the MAC in the query).
#[test]
fn converse_in_chromium_through_prosody_external_v2() {
    converse::converse_sends_an_image(Upload::External { protocol: "v2" }, "converse-external-v2");
}

/// A file over upslot's size limit: upslot's sentence reaches Converse.
#[test]
fn converse_in_chromium_gets_upslots_refusal() {
    converse::converse_gets_the_refusal();
}

#[test]
fn go_sendxmpp_through_prosody_v1() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody = Prosody::start(Upload::External { protocol: "v1" }, &base, SECRET)
        .unwrap_or_else(|e| panic!("{e:#}"));
    send_with_go_sendxmpp(&upslot, &prosody.xmpp, &base);
}

#[test]
fn go_sendxmpp_through_prosody_v2() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody = Prosody::start(Upload::External { protocol: "v2" }, &base, SECRET)
        .unwrap_or_else(|e| panic!("{e:#}"));
    send_with_go_sendxmpp(&upslot, &prosody.xmpp, &base);
}

#[test]
fn go_sendxmpp_through_prosody_jwt() {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let prosody =
        Prosody::start(Upload::FileShare, &base, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    send_with_go_sendxmpp(&upslot, &prosody.xmpp, &base);
}

#[test]
fn go_sendxmpp_through_ejabberd() {
    let upslot = Upslot::start_with("base_path = \"/upload/\"", "", "", &[]);
    let prefix = format!("{}/upload", upslot.base_url);
    let ejabberd = Ejabberd::start(&prefix, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    send_with_go_sendxmpp(&upslot, &ejabberd.xmpp, &format!("{prefix}/"));
}

/// alice sends the first test file to bob with go-sendxmpp; the test GETs
/// the URL from the slot and compares the bytes.
fn send_with_go_sendxmpp(upslot: &Upslot, xmpp: &XmppServer, url_base: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let mut logs = xmpp.logs.clone();
    logs.push((
        "go-sendxmpp.out".to_string(),
        work.path().join("go-sendxmpp.out"),
    ));
    let _print_logs_on_failure = LogsOnFailure::new(upslot, logs);
    let file = &FILES[0];
    let bytes = pseudo_random(file.seed, file.size);
    let path = work.path().join(file.name);
    std::fs::write(&path, &bytes).expect("write test file");

    let to = format!("{}@{}", BOB.0, xmpp.domain);
    let url = sendxmpp::send_file(xmpp, ALICE, &to, &path, work.path())
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("go-sendxmpp's slot: {url}");
    assert!(url.starts_with(url_base), "{url} is not under {url_base}");
    let fetched = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let response = common::client().get(&url).send().await.expect("GET");
            assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
            response.bytes().await.expect("body")
        });
    assert_eq!(
        hex::encode(Sha256::digest(&fetched)),
        hex::encode(Sha256::digest(&bytes)),
        "the file served is not the file go-sendxmpp sent"
    );
    let upload = serde_json::json!({ "get_url": url });
    assert_no_stored_names(upslot, &[upload], &format!("{}@{}", ALICE.0, xmpp.domain));
}

/// The scenario of every slixmpp test: alice uploads [`FILES`] through
/// `xmpp` and upslot and sends the URLs to bob, who downloads them.
/// `url_base` is what every slot URL must start with.
fn share_files(upslot: &Upslot, xmpp: &XmppServer, url_base: &str, token: Token) {
    let work = tempfile::tempdir().expect("tempdir");
    let mut logs = xmpp.logs.clone();
    for name in [
        "receiver.stderr",
        "sender.stderr",
        "sender.stdout",
        "receiver.stdout",
    ] {
        logs.push((name.to_string(), work.path().join(name)));
    }
    let _print_logs_on_failure = LogsOnFailure::new(upslot, logs);

    let mut paths = Vec::new();
    let mut digests = Vec::new();
    for file in &FILES {
        let bytes = pseudo_random(file.seed, file.size);
        let path = work.path().join(file.name);
        std::fs::write(&path, &bytes).expect("write test file");
        paths.push(path);
        digests.push(hex::encode(Sha256::digest(&bytes)));
    }

    let (uploads, downloads) =
        exchange(xmpp, work.path(), &paths).unwrap_or_else(|e| panic!("{e:#}"));
    // Shown with --nocapture, and on failure: what the servers and upslot did.
    for record in uploads.iter().chain(&downloads) {
        eprintln!("{record}");
    }

    assert_eq!(
        uploads.len(),
        FILES.len(),
        "one upload record per file: {uploads:#?}"
    );
    for ((file, digest), upload) in FILES.iter().zip(&digests).zip(&uploads) {
        check_slot(upload, file, url_base, token);
        let get_url = str_field(upload, "get_url");
        let fetched: Vec<&Value> = downloads
            .iter()
            .filter(|d| str_field(d, "url") == get_url)
            .collect();
        assert_eq!(
            fetched.len(),
            2,
            "bob should download {get_url} twice: {downloads:#?}"
        );
        for download in fetched {
            assert_eq!(
                str_field(download, "sha256"),
                digest,
                "bob got other bytes than alice sent for {:?}: {download:#}",
                file.name
            );
            assert_eq!(
                download["size"], file.size,
                "size of {:?}: {download:#}",
                file.name
            );
            let served_type = str_field(download, "content_type");
            assert!(
                served_type.starts_with(file.content_type),
                "{:?} was uploaded as {} but served as {served_type:?}: {download:#}",
                file.name,
                file.content_type
            );
        }
    }
    assert_no_stored_names(upslot, &uploads, &format!("{}@{}", ALICE.0, xmpp.domain));
}

/// Runs bob's receiver and alice's sender; returns their JSON records
/// (`uploaded` from alice, `downloaded` from bob).
fn exchange(xmpp: &XmppServer, work: &Path, files: &[PathBuf]) -> Result<(Vec<Value>, Vec<Value>)> {
    let wait = Duration::from_secs(CLIENT_TIMEOUT_SECS + 30);
    let mut receiver = start_receiver(xmpp, work, files.len())?;
    let sender_out = work.join("sender.stdout");
    let mut sender_cmd = client("send", ALICE, xmpp);
    sender_cmd
        .args(["--to", &format!("{}@{}", BOB.0, xmpp.domain)])
        .stdout(log_file(&sender_out))
        .stderr(log_file(&work.join("sender.stderr")));
    for file in files {
        sender_cmd.arg("--file").arg(file);
    }
    let mut sender = Proc::spawn("xmpp_client.py send (alice)", &mut sender_cmd, CLIENT_HINT)?;
    let status = sender.wait(wait)?;
    check_exit(
        "alice's client (slot request, PUT, message)",
        status,
        work,
        "sender",
    )?;
    let status = receiver.wait(wait)?;
    check_exit("bob's client (message, GET)", status, work, "receiver")?;
    Ok((
        json_lines(&sender_out)?,
        json_lines(&work.join("receiver.stdout"))?,
    ))
}

/// bob's client waiting for `count` URLs, once it is logged in (it printed
/// READY); its records go to `receiver.stdout` in `work`.
fn start_receiver(xmpp: &XmppServer, work: &Path, count: usize) -> Result<Proc> {
    let stdout = work.join("receiver.stdout");
    let mut receiver = Proc::spawn(
        "xmpp_client.py receive (bob)",
        client("receive", BOB, xmpp)
            .args(["--count", &count.to_string()])
            .stdout(log_file(&stdout))
            .stderr(log_file(&work.join("receiver.stderr"))),
        CLIENT_HINT,
    )?;
    receiver.wait_for_line(
        &stdout,
        "READY",
        Duration::from_secs(CLIENT_TIMEOUT_SECS + 30),
    )?;
    Ok(receiver)
}

/// A command running the Python client as `user` against `xmpp`.
fn client(role: &str, (user, password): (&str, &str), xmpp: &XmppServer) -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg("-I") // isolated: ignore PYTHON* variables and user site-packages
        .args(["-X", "utf8"]) // UTF-8 file names and output whatever the locale
        .arg(CLIENT)
        .arg(role)
        .args([
            "--jid",
            &format!("{user}@{}", xmpp.domain),
            "--password",
            password,
        ])
        .args(["--host", "127.0.0.1", "--port", &xmpp.port.to_string()])
        .args(["--timeout", &CLIENT_TIMEOUT_SECS.to_string()]);
    cmd
}

fn check_exit(what: &str, status: ExitStatus, work: &Path, role: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let stderr = std::fs::read_to_string(work.join(format!("{role}.stderr"))).unwrap_or_default();
    let error = stderr
        .lines()
        .rfind(|l| l.starts_with("xmpp_client: error:"))
        .unwrap_or("(no error line; see its stderr below)");
    bail!("{what} failed ({status}): {error}")
}

/// The `{...}` lines of a client's stdout.
fn json_lines(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("bad JSON from client: {l}")))
        .collect()
}

fn str_field<'a>(record: &'a Value, key: &str) -> &'a str {
    record[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {record:#}"))
}

/// The slot the XMPP server handed out has the shape this server should use.
fn check_slot(upload: &Value, file: &TestFile, url_base: &str, token: Token) {
    assert_eq!(str_field(upload, "file"), file.name, "{upload:#}");
    let get_url = str_field(upload, "get_url");
    let put_url = str_field(upload, "put_url");
    assert!(
        get_url.starts_with(url_base),
        "GET URL outside {url_base}: {upload:#}"
    );
    let query = put_url.strip_prefix(get_url).unwrap_or_else(|| {
        panic!("PUT URL is not the GET URL plus a query: {upload:#}");
    });
    let authorization = upload["put_headers"]["Authorization"].as_str();
    let mac_query = |name: &str| {
        query
            .strip_prefix(&format!("?{name}="))
            .is_some_and(|mac| mac.len() == 64 && mac.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    let ok = match token {
        Token::V1 => mac_query("v") && authorization.is_none(),
        Token::V2 => mac_query("v2") && authorization.is_none(),
        Token::Jwt => query.is_empty() && authorization.is_some_and(|a| a.starts_with("Bearer ")),
    };
    assert!(ok, "slot does not carry a {token:?} token: {upload:#}");
}

/// Nothing in upslot's data directory gives away what was uploaded or by
/// whom: no stored file's path contains a word of the uploaded file names,
/// and no stored file (index included) contains a file name, in any of the
/// forms it had on the wire, or the uploader's JID.
fn assert_no_stored_names(upslot: &Upslot, uploads: &[Value], uploader: &str) {
    let stored = upslot.files();
    eprintln!("upslot's data directory holds: {stored:?}");
    assert!(
        !stored.is_empty(),
        "upslot's data directory {} is empty after the uploads",
        upslot.data_dir.display()
    );

    let words = name_words();
    let mut needles: Vec<Vec<u8>> = vec![uploader.as_bytes().to_vec()];
    for (file, upload) in FILES.iter().zip(uploads) {
        let segment = str_field(upload, "get_url")
            .rsplit('/')
            .next()
            .unwrap_or_default();
        needles.push(file.name.as_bytes().to_vec());
        needles.push(segment.as_bytes().to_vec());
        needles.push(percent_encoding::percent_decode_str(segment).collect());
    }

    for path in &stored {
        let lower = path.to_string_lossy().to_lowercase();
        for word in &words {
            assert!(
                !lower.contains(word.as_str()),
                "stored file {path:?} is named with {word:?} from an uploaded file name; \
                 data directory: {stored:#?}"
            );
        }
        let content = std::fs::read(upslot.data_dir.join(path)).unwrap_or_default();
        for needle in &needles {
            assert!(
                !content
                    .windows(needle.len())
                    .any(|w| w == needle.as_slice()),
                "stored file {path:?} contains {:?} in plain text",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// `len` reproducible pseudo-random bytes (SplitMix64 from `seed`).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}
