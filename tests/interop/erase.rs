//! Account erasure end to end: Prosody 0.12 with `mod_http_file_share`
//! (JWT slots) and upslot's shipped `deploy/prosody/mod_upslot_erase.lua`
//! pointed at upslot's admin listener.
//!
//! alice uploads two files and bob one, each through the real client; the
//! new blobs in upslot's data directory after each upload are theirs. Every
//! URL serves its bytes. Then alice's account is deleted inside the running
//! server, and within [`ERASE_DEADLINE`] (polled, no fixed wait) both of
//! alice's URLs answer 404, her blobs are gone and Prosody has logged how
//! many files upslot erased; bob's URL still serves identical bytes and his
//! blob is the only one left. Prosody's debug log never shows the signature.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};

use crate::common::{SECRET, Upslot};
use crate::harness::{LogsOnFailure, Proc, log_file};
use crate::prosody::{Prosody, Upload};
use crate::{
    ALICE, BOB, CLIENT_HINT, CLIENT_TIMEOUT_SECS, FILES, TestFile, Token, XmppServer, check_exit,
    check_slot, client, json_lines, pseudo_random, str_field,
};

/// How alice's account is deleted; both run inside the Prosody process, so
/// the server fires `user-deleted`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deletion {
    /// By the operator: `prosodyctl shell user delete alice@upslot.test`.
    AdminShell,
    /// By alice from her client: XEP-0077 `<remove/>`.
    InBand,
}

/// How long the erasure may take once the account is deleted (it normally
/// takes well under a second).
const ERASE_DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// bob's file: alice uploads [`FILES`].
const BOB_FILE: TestFile = TestFile {
    name: "bob's shopping list.txt",
    content_type: "text/plain",
    size: 70 * 1024 + 9,
    seed: 3,
};

/// A file uploaded through the XMPP server: its GET URL and content.
struct Uploaded {
    url: String,
    bytes: Vec<u8>,
}

/// The whole scenario; panics (with every log) on any failure.
pub(crate) fn uploads_erased_on_account_deletion(deletion: Deletion) {
    let upslot = Upslot::start_with("", "", "", &[]);
    let base = format!("{}/", upslot.base_url);
    let erase_url = format!("{}/owners/", upslot.admin_url);
    let prosody = Prosody::start_with_erase(Upload::FileShare, &base, SECRET, &erase_url)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let xmpp = &prosody.xmpp;
    let alice_jid = format!("{}@{}", ALICE.0, xmpp.domain);

    let work = tempfile::tempdir().expect("tempdir");
    let mut logs = xmpp.logs.clone();
    let mut names = vec!["alice-upload.stderr", "bob-upload.stderr"];
    if let Deletion::InBand = deletion {
        names.extend(["alice-unregister.stderr", "alice-unregister.stdout"]);
    }
    for name in names {
        logs.push((name.to_string(), work.path().join(name)));
    }
    let _print_logs_on_failure = LogsOnFailure::new(&upslot, logs);
    let prosody_log = xmpp
        .logs
        .iter()
        .find(|(label, _)| label == "prosody.log")
        .map(|(_, path)| path.clone())
        .expect("Prosody's log file");

    // alice's two files, then bob's: the blobs each upload adds are theirs.
    let before = blobs(&upslot);
    let alice = upload(xmpp, work.path(), ALICE, &FILES, &base).unwrap_or_else(|e| panic!("{e:#}"));
    let alice_blobs: BTreeSet<PathBuf> = blobs(&upslot).difference(&before).cloned().collect();
    assert_eq!(
        alice_blobs.len(),
        2,
        "alice's uploads should add two blobs: {alice_blobs:?}"
    );
    let bob =
        upload(xmpp, work.path(), BOB, &[BOB_FILE], &base).unwrap_or_else(|e| panic!("{e:#}"));
    let with_bob = blobs(&upslot);
    let bob_blobs: BTreeSet<PathBuf> = with_bob
        .difference(&before)
        .filter(|b| !alice_blobs.contains(*b))
        .cloned()
        .collect();
    assert_eq!(
        bob_blobs.len(),
        1,
        "bob's upload should add one blob: {bob_blobs:?}"
    );
    for file in alice.iter().chain(&bob) {
        assert_serves(file);
    }

    match deletion {
        Deletion::AdminShell => prosody.delete_account_via_shell(&alice_jid),
        Deletion::InBand => unregister(xmpp, work.path(), ALICE),
    }
    .unwrap_or_else(|e| panic!("deleting {alice_jid} ({deletion:?}): {e:#}"));

    // Poll until everything of alice's is gone and Prosody logged the count.
    let logged = format!("upslot erased 2 uploaded file(s) of deleted account {alice_jid}");
    let deleted_at = Instant::now();
    let deadline = deleted_at + ERASE_DEADLINE;
    loop {
        let statuses: Vec<u16> = alice
            .iter()
            .map(|file| get(&file.url).map(|(status, _)| status))
            .collect::<Result<_>>()
            .unwrap_or_else(|e| panic!("{e:#}"));
        let left: Vec<&PathBuf> = alice_blobs
            .iter()
            .filter(|blob| upslot.data_dir.join(blob).exists())
            .collect();
        let log = std::fs::read_to_string(&prosody_log).unwrap_or_default();
        let log_ok = log.contains(&logged);
        if statuses.iter().all(|&s| s == 404) && left.is_empty() && log_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ERASE_DEADLINE:?} after deleting {alice_jid} ({deletion:?}): alice's URLs answer \
             {statuses:?} (want 404 each), her blobs still stored: {left:?}, Prosody logged \
             {logged:?}: {log_ok}"
        );
        std::thread::sleep(POLL);
    }
    eprintln!(
        "alice's files were erased within {:?} of her account's deletion ({deletion:?})",
        deleted_at.elapsed()
    );

    // bob's file is untouched, and it is all that is left.
    assert_serves(&bob[0]);
    assert_eq!(
        blobs(&upslot),
        before.union(&bob_blobs).cloned().collect::<BTreeSet<_>>(),
        "only bob's blob should remain in {}",
        upslot.data_dir.display()
    );
    let log = std::fs::read_to_string(&prosody_log).unwrap_or_default();
    assert!(
        !log.contains("sig="),
        "Prosody's log shows the erase request's signature"
    );
}

/// Uploads `files` as `who` with the real client (no message sent) and
/// returns what was uploaded, in order. Every slot must be a JWT slot under
/// `url_base`.
fn upload(
    xmpp: &XmppServer,
    work: &Path,
    who: (&str, &str),
    files: &[TestFile],
    url_base: &str,
) -> Result<Vec<Uploaded>> {
    let role = format!("{}-upload", who.0);
    let dir = work.join(who.0);
    std::fs::create_dir_all(&dir)?;
    let stdout = work.join(format!("{role}.stdout"));
    let mut cmd = client("upload", who, xmpp);
    cmd.stdout(log_file(&stdout))
        .stderr(log_file(&work.join(format!("{role}.stderr"))));
    let mut contents = Vec::new();
    for file in files {
        let bytes = pseudo_random(file.seed, file.size);
        let path = dir.join(file.name);
        std::fs::write(&path, &bytes).with_context(|| format!("write {}", path.display()))?;
        cmd.arg("--file").arg(&path);
        contents.push(bytes);
    }
    let mut proc = Proc::spawn(
        &format!("xmpp_client.py upload ({})", who.0),
        &mut cmd,
        CLIENT_HINT,
    )?;
    let status = proc.wait(Duration::from_secs(CLIENT_TIMEOUT_SECS + 30))?;
    check_exit(&format!("{}'s upload", who.0), status, work, &role)?;

    let records = json_lines(&stdout)?;
    ensure!(
        records.len() == files.len(),
        "{} upload records for {} files: {records:#?}",
        records.len(),
        files.len()
    );
    Ok(files
        .iter()
        .zip(records)
        .zip(contents)
        .map(|((file, record), bytes)| {
            eprintln!("{record}");
            check_slot(&record, file, url_base, Token::Jwt);
            Uploaded {
                url: str_field(&record, "get_url").to_string(),
                bytes,
            }
        })
        .collect())
}

/// `who` deletes their own account from their client (XEP-0077).
fn unregister(xmpp: &XmppServer, work: &Path, who: (&str, &str)) -> Result<()> {
    let role = format!("{}-unregister", who.0);
    let stdout = work.join(format!("{role}.stdout"));
    let mut proc = Proc::spawn(
        &format!("xmpp_client.py unregister ({})", who.0),
        client("unregister", who, xmpp)
            .stdout(log_file(&stdout))
            .stderr(log_file(&work.join(format!("{role}.stderr")))),
        CLIENT_HINT,
    )?;
    let status = proc.wait(Duration::from_secs(CLIENT_TIMEOUT_SECS + 30))?;
    check_exit(&format!("{}'s account removal", who.0), status, work, &role)?;
    let records = json_lines(&stdout)?;
    ensure!(
        records.iter().any(|r| r["event"] == "unregistered"),
        "the client did not confirm the account removal: {records:#?}"
    );
    Ok(())
}

/// The blob files in upslot's data directory, relative to it.
fn blobs(upslot: &Upslot) -> BTreeSet<PathBuf> {
    upslot
        .files()
        .into_iter()
        .filter(|path| path.starts_with("blobs"))
        .collect()
}

/// `file.url` answers 200 with exactly `file.bytes`.
fn assert_serves(file: &Uploaded) {
    let (status, body) = get(&file.url).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(status, 200, "GET {} answered {status}", file.url);
    assert_eq!(
        hex::encode(Sha256::digest(&body)),
        hex::encode(Sha256::digest(&file.bytes)),
        "GET {} served other bytes ({} bytes, uploaded {})",
        file.url,
        body.len(),
        file.bytes.len()
    );
}

/// GETs `url`: the status and the body.
fn get(url: &str) -> Result<(u16, Vec<u8>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .timeout(HTTP_TIMEOUT)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("GET {url}: body"))?;
        Ok((status, body.to_vec()))
    })
}
