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
use crate::files::{Files, FilesError};
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
    if let Some(code) = ask_running_server(config, method, &path) {
        return code;
    }
    on_data_directory(config, async |files: &Files| match which {
        Report::Stats => report::stats(files, now).await,
        Report::SweepPreview => report::preview(files, now).await,
        Report::Sweep => sweeper::pass(files, now, &CancellationToken::new())
            .await
            .map(|report| report.to_string()),
        Report::Erase(jid) => files
            .erase_owner(&BareJid::of(&jid), now)
            .await
            .map(|deleted| format!("{{\"deleted\":{deleted}}}\n")),
    })
}

/// Sends `method path` to the admin listener of `config` and prints the
/// answer; `None` when no server answers there (or none is configured).
pub(super) fn ask_running_server(config: &Config, method: &str, path: &str) -> Option<ExitCode> {
    let addr = config.admin_listen().ok().flatten()?;
    let (status, body) = admin_client::call(addr, method, path).ok()?;
    print!("{body}");
    Some(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Opens the data directory of `config` as a server would, runs `job` on
/// its files and prints what it returns.
pub(super) fn on_data_directory(
    config: &Config,
    job: impl AsyncFnOnce(&Files) -> Result<String, FilesError>,
) -> ExitCode {
    let Some(runtime) = super::runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let prepared = bootstrap::prepare(config)
            .await
            .map_err(|e| e.to_string())?;
        job(&prepared.app.files).await.map_err(|e| e.to_string())
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
