//! Quotas end to end: Prosody 0.12 with `mod_http_file_share` (JWT slots,
//! the uploader's JID in `sub`) and upslot with a daily limit per account.
//!
//! alice uploads two files through the real client; the first fits, the
//! second would pass the daily limit. upslot refuses its PUT before the
//! body with 429, and the sentence it answers reaches the slixmpp client
//! unchanged, as the reason the upload failed. Nothing of the second file
//! is stored.

use std::time::Duration;

use anyhow::{Context, Result, ensure};

use crate::common::{SECRET, Upslot, files_below};
use crate::harness::{LogsOnFailure, Proc, log_file};
use crate::prosody::{Prosody, Upload};
use crate::{ALICE, CLIENT_HINT, CLIENT_TIMEOUT_SECS, client, json_lines, pseudo_random};

/// Each file's size: one fits the daily limit, two do not.
const FILE_SIZE: usize = 60 * 1024;

/// The whole scenario; panics (with every log) on any failure.
pub(crate) fn over_quota_upload_tells_the_client_why() {
    let upslot = Upslot::start_with(
        "",
        "max_size = \"64KiB\"",
        "[quota]\nper_owner_daily = \"100KiB\"\n",
        &[],
    );
    let base = format!("{}/", upslot.base_url);
    let prosody =
        Prosody::start(Upload::FileShare, &base, SECRET).unwrap_or_else(|e| panic!("{e:#}"));
    let xmpp = &prosody.xmpp;
    let work = tempfile::tempdir().expect("tempdir");
    let mut logs = xmpp.logs.clone();
    for name in ["alice-upload.stderr", "alice-upload.stdout"] {
        logs.push((name.to_string(), work.path().join(name)));
    }
    let _print_logs_on_failure = LogsOnFailure::new(&upslot, logs);

    let error = upload_two(xmpp, work.path()).unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("{error}");
    // The client's error carries the status and upslot's sentence as is
    // (slixmpp's HTTPError holds both).
    assert!(
        error.contains("429"),
        "the status should reach the client: {error}"
    );
    let opening = "Daily upload limit of 100 KiB reached; you can upload again after ";
    let start = error
        .find(opening)
        .unwrap_or_else(|| panic!("the refusal's sentence should reach the client: {error}"));
    let rest = &error[start + opening.len()..];
    let time = rest.get(..5).unwrap_or_default();
    assert!(
        time.len() == 5 && time.as_bytes()[2] == b':' && rest[5..].starts_with(" UTC."),
        "a time like \"14:05 UTC.\": {error}"
    );
    assert!(
        !error[start..].contains(ALICE.0),
        "the sentence names no account: {error}"
    );
    // One blob: the first file's.
    let blobs = files_below(&upslot.data_dir.join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
}

/// alice uploads two files; the first must succeed and the second fail.
/// Returns the client's error line.
fn upload_two(xmpp: &crate::XmppServer, work: &std::path::Path) -> Result<String> {
    let stdout = work.join("alice-upload.stdout");
    let stderr = work.join("alice-upload.stderr");
    let mut cmd = client("upload", ALICE, xmpp);
    cmd.stdout(log_file(&stdout)).stderr(log_file(&stderr));
    for (i, name) in ["first.bin", "second.bin"].into_iter().enumerate() {
        let path = work.join(name);
        std::fs::write(&path, pseudo_random(i as u64 + 11, FILE_SIZE))
            .with_context(|| format!("write {}", path.display()))?;
        cmd.arg("--file").arg(&path);
    }
    let mut proc = Proc::spawn("xmpp_client.py upload (alice)", &mut cmd, CLIENT_HINT)?;
    let status = proc.wait(Duration::from_secs(CLIENT_TIMEOUT_SECS + 30))?;
    ensure!(!status.success(), "the second upload should have failed");
    let records = json_lines(&stdout)?;
    ensure!(
        records.len() == 1,
        "only the first file should be uploaded: {records:#?}"
    );
    let text = std::fs::read_to_string(&stderr).context("read the client's stderr")?;
    text.lines()
        .rfind(|l| l.starts_with("xmpp_client: error:"))
        .map(str::to_string)
        .context("no error line from the client")
}
