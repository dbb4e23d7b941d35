//! `upslot stats`, `upslot sweep [--dry-run]` and `upslot erase`: asked of
//! the running server through its admin listener when one answers, else
//! done on the data directory directly.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::admin_client;
use crate::auth::BareJid;
use crate::auth::mac::{erase_message, hmac_sha256};
use crate::bootstrap::{self, StartError};
use crate::config::{Config, ConfigError};
use crate::sweeper::{self, report};
use crate::time::unix_now;

/// What the CLI can ask of a running server (or do on its data directory).
pub(super) enum Report {
    /// `upslot stats`.
    Stats,
    /// `upslot sweep --dry-run`.
    SweepPreview,
    /// `upslot sweep`.
    Sweep,
    /// `upslot erase --jid JID`.
    Erase(String),
}

/// Prints `which`: from the running server's admin listener if one
/// answers, else computed on the data directory directly.
pub(super) fn report(config: &Config, which: Report) -> ExitCode {
    let now = unix_now();
    let (method, path) = match &which {
        Report::Stats => ("GET", "/stats".to_string()),
        Report::SweepPreview => ("GET", "/sweep".to_string()),
        Report::Sweep => ("POST", "/sweep".to_string()),
        Report::Erase(jid) => match erase_path(config, jid, now) {
            Ok(path) => ("DELETE", path),
            Err(error) => {
                eprintln!("upslot: {error}");
                return ExitCode::from(error.exit_code());
            }
        },
    };
    if let Ok(Some(addr)) = config.admin_listen()
        && let Ok((status, body)) = admin_client::call(addr, method, &path)
    {
        print!("{body}");
        return if (200..300).contains(&status) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let Some(runtime) = super::runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let prepared = bootstrap::prepare(config)
            .await
            .map_err(|e| e.to_string())?;
        let files = &prepared.app.files;
        match which {
            Report::Stats => report::stats(files, now).await,
            Report::SweepPreview => report::preview(files, now).await,
            Report::Sweep => sweeper::pass(files, now, &CancellationToken::new())
                .await
                .map(|report| report.to_string()),
            Report::Erase(jid) => files
                .erase_owner(&BareJid::of(&jid), now)
                .await
                .map(|deleted| format!("{{\"deleted\":{deleted}}}\n")),
        }
        .map_err(|e| e.to_string())
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("upslot: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The signed admin path that erases `jid`'s files (signed as given; the
/// server ignores a resource).
fn erase_path(config: &Config, jid: &str, now: i64) -> Result<String, StartError> {
    let secrets = bootstrap::upload_secrets(config)?;
    let secret = secrets.first().ok_or_else(|| {
        StartError::Config(ConfigError::Invalid {
            key: "upload.secret".into(),
            message: "no secret to sign the erase request with".into(),
        })
    })?;
    let signature = hex::encode(hmac_sha256(secret.expose(), &erase_message(jid, now)));
    let wire: String =
        percent_encoding::utf8_percent_encode(jid, percent_encoding::NON_ALPHANUMERIC).collect();
    Ok(format!("/owners/{wire}?ts={now}&sig={signature}"))
}
