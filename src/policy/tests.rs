//! The builder's tests: start from the default configuration's facts, flip
//! one setting, and check that its sentence follows.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::config::{Config, LogClientIp};

const NOW: i64 = 1_796_207_429; // 2026-12-02 10:30:29 UTC

/// The facts of the embedded defaults.
pub(crate) fn defaults() -> Facts {
    Facts::from_config(&Config::load(None, &BTreeMap::new()).unwrap())
}

fn live() -> Live {
    Live {
        now: NOW,
        source: Source::DataDirectory,
        files: 2,
        oldest_created: Some(NOW - 3 * 86_400 - 4 * 3_600),
        overdue: 0,
        plaintext: 0,
        overdue_keys: 0,
    }
}

fn build(facts: &Facts) -> Policy {
    Policy::build(facts, &live())
}

fn published(policy: &Policy, part: &str) -> bool {
    policy.sentences.iter().any(|s| s.contains(part))
}

fn noted(policy: &Policy, part: &str) -> bool {
    policy.notes.iter().any(|n| n.contains(part))
}

const NOT_LOGGED: &str = "IP addresses are not logged.";
const TLS: &str = "Uploads and downloads are accepted only over encrypted connections (TLS).";
const ERASED: &str =
    "When your account is deleted, the files you uploaded are deleted at the same time.";

#[test]
fn the_default_configuration() {
    let policy = build(&defaults());
    assert_eq!(
        policy.sentences,
        [
            "Files you upload are deleted at the latest 30 days after the upload, whatever their \
             upload link asks for.",
            "From then on a file is no longer served, and it is removed from storage by the next \
             cleanup run; cleanups run every 1 minute.",
            "On 2026-12-02 10:30 UTC, the oldest stored file was 3 days and 4 hours old, and no \
             file was overdue for deletion.",
            "Files are stored under random names. Besides a file's content we keep only its \
             size, its content type, its upload and deletion times, and keyed hashes \
             (HMAC-SHA256) of its link and, where the upload names one, of the uploading \
             account: no file names, no account names (JIDs) and no IP addresses.",
            "After a file is deleted, only the keyed hash of its link and the time of deletion \
             are kept, for 30 days, so that the link cannot be used for another upload.",
            "Files are stored on the upload server's own disk, their records beside them.",
            "Files are encrypted at rest with AES-256-GCM, each under its own random key. That \
             key is stored only in encrypted form, under a key shared by the files whose \
             retention ends in the same period of 1 day, and that shared key is destroyed at \
             the latest 1 day and 1 minute after a file's retention ends. From then on no copy \
             of the file, in backups, snapshots or replicas, can be decrypted by anyone, us \
             included.",
            "When your account is deleted, files you uploaded may stay until their deletion \
             time, at the latest 30 days after upload.",
            NOT_LOGGED,
            "Log lines never contain file names, upload links or tokens, or account names \
             (JIDs).",
            "If a request from your IP address carries a missing, invalid or expired upload \
             token, the address is remembered in memory only, never on disk or in logs, for at \
             most 6 hours from its first failure, to stop guessing of upload links: 20 failures \
             within 10 minutes block the address (for IPv6, its /64 network) for 15 minutes.",
            "Each file may be up to 100 MiB.",
        ]
    );
    // Behind a proxy: TLS is the operator's to check, and so is erasure
    // while slot families without owners are accepted.
    assert!(noted(&policy, TLS) && noted(&policy, ERASED));
    assert!(noted(
        &policy,
        "Each account may upload up to 1000 MiB in any 24 hours."
    ));
    assert!(noted(&policy, "./data/keys/epochs"));
    let text = policy.markdown();
    let (public, notes) = text
        .split_once("## Operator notes: do not publish")
        .unwrap();
    assert!(public.starts_with("# Privacy of shared files\n"));
    assert!(public.contains(&format!("\n- {NOT_LOGGED}\n")));
    assert!(!public.contains(TLS) && notes.contains(TLS));
}

#[test]
fn logging_addresses_changes_the_log_and_memory_sentences() {
    let mut facts = defaults();
    facts.log_client_ip = LogClientIp::Full;
    let policy = build(&facts);
    assert!(!published(&policy, NOT_LOGGED));
    assert!(published(
        &policy,
        "Logs record your full IP address with every request."
    ));
    assert!(!published(&policy, "never on disk or in logs"));
    assert!(published(
        &policy,
        "in memory only, never on disk, for at most 6 hours"
    ));
    assert!(noted(&policy, "MaxRetentionSec"));
    facts.log_client_ip = LogClientIp::Truncated;
    let policy = build(&facts);
    assert!(!published(&policy, NOT_LOGGED));
    assert!(published(
        &policy,
        "for IPv6 the first 48 bits (a /48 network)"
    ));
}

#[test]
fn encryption_off_withholds_every_backup_sentence() {
    let mut facts = defaults();
    facts.owners = Owners::Every;
    let on = build(&facts);
    assert!(published(
        &on,
        "Copies of them in backups can no longer be decrypted"
    ));
    facts.encryption = None;
    let off = build(&facts);
    assert!(!published(&off, "encrypted at rest"));
    assert!(!published(&off, "backups"));
    assert!(published(&off, ERASED));
    assert!(noted(&off, "Encryption at rest is off"));
}

#[test]
fn keys_left_past_their_time_withhold_the_backup_sentences() {
    let mut facts = defaults();
    facts.owners = Owners::Every;
    let mut state = live();
    state.overdue_keys = 2;
    let policy = Policy::build(&facts, &state);
    assert!(published(
        &policy,
        "Files are encrypted at rest with AES-256-GCM"
    ));
    assert!(!published(&policy, "destroyed"));
    assert!(!published(&policy, "backups can no longer be decrypted"));
    assert!(published(&policy, ERASED));
    assert!(noted(
        &policy,
        "WARNING: 2 epoch keys are past their destruction time"
    ));
}

#[test]
fn the_key_destruction_bound_follows_the_epoch() {
    let mut facts = defaults();
    facts.encryption = Some(Encryption {
        epoch: Duration::from_secs(7 * 86_400),
        keys: "k".into(),
    });
    assert!(published(
        &build(&facts),
        "destroyed at the latest 7 days and 1 minute after"
    ));
    // Epochs shorter than a minute wait one epoch.
    facts.encryption = Some(Encryption {
        epoch: Duration::from_secs(10),
        keys: "k".into(),
    });
    assert!(published(
        &build(&facts),
        "destroyed at the latest 20 seconds after"
    ));
}

#[test]
fn plaintext_files_are_owned_up_to() {
    let facts = defaults();
    let mut state = live();
    state.plaintext = 1;
    let policy = Policy::build(&facts, &state);
    assert!(published(
        &policy,
        "1 file uploaded before encryption was turned on is stored unencrypted until deleted, \
         at the latest 30 days after upload; copies of it in backups are not protected"
    ));
    state.plaintext = 3;
    assert!(published(
        &Policy::build(&facts, &state),
        "3 files uploaded before"
    ));
}

#[test]
fn erasure_follows_the_slot_families_and_the_admin_listener() {
    let mut facts = defaults();
    facts.owners = Owners::Every;
    let policy = build(&facts);
    assert!(published(&policy, ERASED));
    assert!(noted(&policy, "http://127.0.0.1:5051/owners/"));
    assert!(published(
        &policy,
        "Each account may upload up to 1000 MiB in any 24 hours."
    ));
    facts.admin_listen = None;
    assert!(noted(&build(&facts), "server.admin_listen is empty"));
    facts.admin_listen = Some("0.0.0.0:5051".parse().unwrap());
    assert!(noted(
        &build(&facts),
        "WARNING: the admin listener 0.0.0.0:5051"
    ));
    facts.owners = Owners::IfEjabberd;
    let policy = build(&facts);
    assert!(published(&policy, ERASED) && noted(&policy, "mod_http_upload_external v1"));
    facts.owners = Owners::None;
    let policy = build(&facts);
    assert!(!published(&policy, ERASED) && !noted(&policy, ERASED));
    assert!(published(&policy, "Files are not linked to accounts"));
}

#[test]
fn quotas_and_tls() {
    let mut facts = defaults();
    facts.owners = Owners::Every;
    facts.limits.per_owner_daily = 1 << 30;
    facts.limits.per_owner_stored = 5 << 30;
    facts.limits.global_stored = 1 << 40;
    facts.tls = true;
    let policy = build(&facts);
    assert!(published(
        &policy,
        "Each account may upload up to 1 GiB in any 24 hours and keep up to 5 GiB stored at a \
         time."
    ));
    assert!(published(&policy, "When the service stores 1 TiB in total"));
    assert!(published(&policy, TLS) && !noted(&policy, TLS));
    assert!(!noted(&policy, "access_log off"));
    facts.limits.per_owner_daily = 0;
    assert!(published(
        &build(&facts),
        "Each account may keep up to 5 GiB stored at a time."
    ));
}

#[test]
fn plain_listeners_and_plain_redirects_withhold_tls() {
    let mut facts = defaults();
    facts.exposed_listeners = vec!["0.0.0.0:5050".parse().unwrap()];
    let policy = build(&facts);
    assert!(!published(&policy, TLS) && !noted(&policy, "then you may publish"));
    assert!(noted(
        &policy,
        "WARNING: server.listen includes 0.0.0.0:5050"
    ));
    facts.tls = true;
    facts.downloads = Downloads::Cdn { plain_http: true };
    let policy = build(&facts);
    assert!(!published(&policy, TLS) && noted(&policy, "plain http://"));
    // A redirect to a bucket or CDN: they see addresses.
    assert!(!published(&policy, NOT_LOGGED) && noted(&policy, "the CDN"));
}

#[test]
fn retention_follows_the_ceiling_and_the_sweeper() {
    let mut facts = defaults();
    facts.keep = Duration::from_secs(7 * 86_400);
    facts.ceiling = Duration::from_secs(90 * 86_400);
    let policy = build(&facts);
    assert!(published(
        &policy,
        "deleted at the latest 7 days after the upload."
    ));
    assert!(published(
        &policy,
        "is kept longer than 90 days after its upload"
    ));
    let mut state = live();
    state.overdue = 4;
    let late = Policy::build(&facts, &state);
    assert!(!published(&late, "deleted at the latest"));
    assert!(!published(&late, "removed from storage"));
    assert!(!published(&late, "overdue"));
    assert!(published(&late, "served for at most 7 days"));
    assert!(noted(&late, "WARNING: 4 files are overdue"));
    state.overdue = 0;
    state.oldest_created = None;
    assert!(published(
        &Policy::build(&facts, &state),
        "On 2026-12-02 10:30 UTC, no files were stored."
    ));
}

#[test]
fn object_storage_names_its_host_and_nothing_secret() {
    let mut facts = defaults();
    facts.storage = Storage::S3 {
        host: Some("s3.example.net".into()),
        region: None,
    };
    facts.postgres_index = true;
    assert!(published(
        &build(&facts),
        "Files are stored in S3-compatible object storage at s3.example.net, their records in \
         a PostgreSQL database."
    ));
}

#[test]
fn formats_parse_and_render() {
    assert_eq!("markdown".parse(), Ok(Format::Markdown));
    assert_eq!("providers".parse(), Ok(Format::Providers));
    assert!("html".parse::<Format>().is_err());
    let facts = defaults();
    assert!(
        render(&facts, &live(), Format::Providers).contains("maximumHttpFileUploadStorageTime")
    );
    assert!(render(&facts, &live(), Format::Markdown).starts_with("# Privacy of shared files"));
}
