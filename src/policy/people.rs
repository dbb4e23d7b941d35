//! The promises about people: what happens to an account's files when it
//! is deleted, what the logs and the failed-attempt memory hold of a
//! client, and whether connections are encrypted.

use super::Policy;
use super::facts::{Downloads, Facts, Live, Owners};
use super::keeping::key_outlives_expiry;
use super::words::{count_of, span};
use crate::config::LogClientIp;

/// Erasure on account deletion: only for slots that name their uploader
/// (`upload.protocols`), through the admin listener (`server.admin_listen`)
/// or `upslot erase`; backups with encryption at rest, while epoch keys are
/// destroyed on time.
pub(super) fn erasure(facts: &Facts, live: &Live, policy: &mut Policy) {
    let ceiling = span(facts.ceiling);
    let erased =
        "When your account is deleted, the files you uploaded are deleted at the same time.";
    match facts.owners {
        Owners::Every | Owners::IfEjabberd => {
            let mut sentence = erased.to_string();
            if let Some(encryption) = facts.encryption.as_ref().filter(|_| live.overdue_keys == 0) {
                sentence.push_str(&format!(
                    " Copies of them in backups can no longer be decrypted at the latest {} \
                     after their retention would have ended.",
                    span(key_outlives_expiry(encryption.epoch))
                ));
            }
            policy.publish(sentence);
            erasure_notes(facts, policy);
        }
        Owners::Some => {
            policy.publish(format!(
                "When your account is deleted, files you uploaded may stay until their deletion \
                 time, at the latest {ceiling} after upload."
            ));
            policy.note(format!(
                "Account erasure is withheld: upload.protocols also accepts \"v2\" or \"token\" \
                 slots (Prosody mod_http_upload_external, Metronome), which name no uploader. If \
                 your XMPP server issues only Prosody mod_http_file_share (\"jwt\") or ejabberd \
                 (\"v1\") slots, list only that family in upload.protocols, install its erasure \
                 module from deploy/, and this sentence is published instead: \"{erased}\""
            ));
        }
        Owners::None => policy.publish(format!(
            "Files are not linked to accounts: when your account is deleted, the files you \
             uploaded stay until their deletion time, at the latest {ceiling} after upload."
        )),
    }
}

fn erasure_notes(facts: &Facts, policy: &mut Policy) {
    match facts.admin_listen {
        Some(addr) => {
            policy.note(format!(
                "Account erasure happens only if your XMPP server tells upslot: install \
                 deploy/prosody/mod_upslot_erase.lua (Prosody) or \
                 deploy/ejabberd/mod_upslot_erase.erl (ejabberd) with the URL \
                 http://{addr}/owners/. For accounts removed behind the server's back \
                 (Prosody 0.12's `prosodyctl deluser`, LDAP), run `upslot erase --jid user@host`."
            ));
            if !addr.ip().is_loopback() {
                policy.note(format!(
                    "WARNING: the admin listener {addr} is reachable from other machines and \
                     speaks plain HTTP: erasure requests, which name accounts, cross the network \
                     unencrypted. Bind it to 127.0.0.1 or carry it through a tunnel."
                ));
            }
        }
        None => policy.note(
            "server.admin_listen is empty, so no XMPP server module can reach upslot: run \
             `upslot erase --jid user@host` for every deleted account (or enable the admin \
             listener and install the module from deploy/), or the erasure sentence is false.",
        ),
    }
    if facts.owners == Owners::IfEjabberd {
        policy.note(
            "upload.protocols accepts \"v1\" slots, which name their uploader only when ejabberd \
             issues them: slots of Prosody's mod_http_upload_external v1 name nobody. With that \
             module, remove the erasure and per-account sentences.",
        );
    }
}

/// What logs hold of a client (`privacy.log_client_ip`), and what a proxy
/// or a download redirect (`offload.mode`) may add.
pub(super) fn logs(facts: &Facts, policy: &mut Policy) {
    let redirected = match facts.downloads {
        Downloads::Direct => None,
        Downloads::Bucket { .. } => Some("the object storage bucket"),
        Downloads::Cdn { .. } => Some("the CDN"),
    };
    match (facts.log_client_ip, redirected) {
        (LogClientIp::None, None) => policy.publish("IP addresses are not logged."),
        (LogClientIp::None, Some(_)) => {}
        (LogClientIp::Truncated, _) => policy.publish(
            "Logs record only a shortened form of your IP address: for IPv4 the first three of \
             its four numbers (a /24 network), for IPv6 the first 48 bits (a /48 network).",
        ),
        (LogClientIp::Full, _) => {
            policy.publish("Logs record your full IP address with every request.")
        }
    }
    policy.publish(
        "Log lines never contain file names, upload links or tokens, or account names (JIDs).",
    );
    if let Some(place) = redirected {
        policy.note(format!(
            "Downloads are redirected to {place} (offload.mode), which sees every downloader's \
             IP address and may log it, and a CDN may keep copies that account erasure cannot \
             remove. Check its logging; only then publish \"IP addresses are not logged.\""
        ));
    }
    if !facts.tls {
        policy.note(
            "upslot runs behind your proxy: the proxy's access log records IP addresses and \
             URLs, and URLs hold file names. Turn it off (nginx: `access_log off;`) or the log \
             sentences are false for the proxy.",
        );
    }
    if facts.log_client_ip != LogClientIp::None {
        policy.note(
            "upslot writes its log to standard error (the systemd journal under \
             deploy/upslot.service), which now holds IP addresses: publish how long that log is \
             kept (journald MaxRetentionSec=).",
        );
    }
}

/// The failed-attempt memory (`privacy.failed_attempt_memory`,
/// `ban_after`, `ban_window`, `ban_for`).
pub(super) fn failed_attempts(facts: &Facts, policy: &mut Policy) {
    let attempts = &facts.attempts;
    let kept = if facts.log_client_ip == LogClientIp::None {
        "in memory only, never on disk or in logs"
    } else {
        "in memory only, never on disk"
    };
    policy.publish(format!(
        "If a request from your IP address carries a missing, invalid or expired upload token, \
         the address is remembered {kept}, for at most {} from its first failure, to stop \
         guessing of upload links: {} within {} block the address (for IPv6, its /64 network) \
         for {}.",
        span(attempts.memory),
        count_of(u64::from(attempts.ban_after), "failure"),
        span(attempts.window),
        span(attempts.ban_for)
    ));
}

/// Encryption in transit (`server.tls`, `server.listen`, `offload.mode`).
pub(super) fn transport(facts: &Facts, policy: &mut Policy) {
    let sentence = "Uploads and downloads are accepted only over encrypted connections (TLS).";
    let plain_downloads = match facts.downloads {
        Downloads::Direct => false,
        Downloads::Bucket { plain_http } | Downloads::Cdn { plain_http } => plain_http,
    };
    if plain_downloads {
        policy.note(format!(
            "Downloads are redirected to a plain http:// address (storage.s3.endpoint or \
             offload.cdn_url), so this sentence is withheld: \"{sentence}\""
        ));
    } else if facts.tls {
        policy.publish(sentence);
    } else if facts.exposed_listeners.is_empty() {
        policy.note(format!(
            "upslot runs behind your proxy and does not terminate TLS itself: make sure the \
             proxy accepts only HTTPS (port 80 only redirects, as in deploy/nginx.conf), then \
             you may publish: \"{sentence}\""
        ));
    }
    if !facts.tls && !facts.exposed_listeners.is_empty() {
        let addrs: Vec<String> = facts
            .exposed_listeners
            .iter()
            .map(ToString::to_string)
            .collect();
        policy.note(format!(
            "WARNING: server.listen includes {}, reachable from other machines, and server.tls \
             is unset: clients there upload and download over plain HTTP. Set server.tls, or \
             listen on 127.0.0.1 behind a TLS proxy. No TLS sentence is published.",
            addrs.join(", ")
        ));
    }
}
