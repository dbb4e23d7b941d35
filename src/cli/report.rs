//! `upslot stats`, `upslot sweep [--dry-run]`, `upslot erase` and `upslot
//! access`: asked of the running server through its admin listener when
//! one answers, else done on the data directory directly.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use super::admin_client;
use crate::access::AccessReport;
use crate::auth::BareJid;
use crate::auth::mac::{access_message, erase_message, hmac_sha256};
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
    /// `upslot access --jid JID [--json]`.
    Access {
        /// The account, as given.
        jid: String,
        /// Print the admin API's JSON rather than text.
        json: bool,
    },
}

/// Prints `which`: from the running server's admin listener if one
/// answers, else computed on the data directory directly.
pub(super) fn report(config: &Config, which: Report) -> ExitCode {
    let now = unix_now();
    let request = match &which {
        Report::Stats => Ok(("GET", "/stats".to_string())),
        Report::SweepPreview => Ok(("GET", "/sweep".to_string())),
        Report::Sweep => Ok(("POST", "/sweep".to_string())),
        Report::Erase(jid) => owner_path(config, jid, now, erase_message).map(|p| ("DELETE", p)),
        Report::Access { jid, .. } => {
            owner_path(config, jid, now, access_message).map(|p| ("GET", p))
        }
    };
    let (method, path) = match request {
        Ok(request) => request,
        Err(error) => {
            eprintln!("upslot: {error}");
            return ExitCode::from(error.exit_code());
        }
    };
    if let Some((status, body)) = ask_admin(config, method, &path) {
        if !(200..300).contains(&status) {
            print!("{body}");
            return ExitCode::FAILURE;
        }
        return finish(&which, Ok(body), now);
    }
    let result = in_data_directory(config, async |files: &Files| match &which {
        Report::Stats => report::stats(files, now).await,
        Report::SweepPreview => report::preview(files, now).await,
        Report::Sweep => sweeper::pass(files, now, &CancellationToken::new())
            .await
            .map(|report| report.to_string()),
        Report::Erase(jid) => files
            .erase_owner(&BareJid::of(jid), now)
            .await
            .map(|deleted| format!("{{\"deleted\":{deleted}}}\n")),
        Report::Access { jid, .. } => files
            .access(&BareJid::of(jid), now)
            .await
            .map(|access| AccessReport::from(&access).json()),
    });
    finish(&which, result, now)
}

/// The status and body of `method path` on the admin listener of
/// `config`; `None` when no server answers there (or none is configured).
fn ask_admin(config: &Config, method: &str, path: &str) -> Option<(u16, String)> {
    let addr = config.admin_listen().ok().flatten()?;
    admin_client::call(addr, method, path).ok()
}

/// Sends `method path` to the admin listener of `config` and prints the
/// answer; `None` when no server answers there (or none is configured).
pub(super) fn ask_running_server(config: &Config, method: &str, path: &str) -> Option<ExitCode> {
    let (status, body) = ask_admin(config, method, path)?;
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
    match in_data_directory(config, job) {
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

/// Opens the data directory of `config` as a server would and runs `job`
/// on its files; what it returns, or why it failed.
fn in_data_directory(
    config: &Config,
    job: impl AsyncFnOnce(&Files) -> Result<String, FilesError>,
) -> Result<String, String> {
    let runtime = super::runtime(tokio::runtime::Builder::new_current_thread())
        .ok_or_else(|| "the runtime did not start".to_string())?;
    runtime.block_on(async {
        let prepared = bootstrap::prepare(config)
            .await
            .map_err(|e| e.to_string())?;
        job(&prepared.app.files).await.map_err(|e| e.to_string())
    })
}

/// Prints the answer to `which` (for `upslot access` without `--json`,
/// the JSON made into text).
fn finish(which: &Report, answer: Result<String, String>, now: i64) -> ExitCode {
    let text = answer.and_then(|body| match which {
        Report::Access { jid, json: false } => AccessReport::parse(&body)
            .map(|report| report.text(&BareJid::of(jid), now))
            .map_err(|error| format!("the server's access report cannot be read: {error}")),
        _ => Ok(body),
    });
    match text {
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

/// The signed admin path `/owners/{jid}?ts=…&sig=…`, `jid` signed as given
/// (the server ignores a resource) in the request's `message`
/// ([`erase_message`] or [`access_message`]).
fn owner_path(
    config: &Config,
    jid: &str,
    now: i64,
    message: fn(&str, i64) -> Vec<u8>,
) -> Result<String, StartError> {
    let secrets = bootstrap::upload_secrets(config)?;
    let secret = secrets.first().ok_or_else(|| {
        StartError::Config(ConfigError::Invalid {
            key: "upload.secret".into(),
            message: "no secret to sign the request with".into(),
        })
    })?;
    let signature = hex::encode(hmac_sha256(secret.expose(), &message(jid, now)));
    let wire: String =
        percent_encoding::utf8_percent_encode(jid, percent_encoding::NON_ALPHANUMERIC).collect();
    Ok(format!("/owners/{wire}?ts={now}&sig={signature}"))
}
