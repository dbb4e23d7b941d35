//! The `upslot` command line: arguments, configuration loading, and one
//! file per command family ([`serve`], `report` for `stats`, `sweep`,
//! `erase` and `access`, `check` for `check-config`, `policy` for
//! `policy`). Commands that report ask the running server through its
//! admin listener ([`admin_client`]) when one answers.

pub mod admin_client;
mod check;
mod policy;
mod report;
pub mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::policy::Format;

/// Exit code for a configuration mistake (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// Storage service for XMPP HTTP File Upload (XEP-0363).
#[derive(Parser)]
#[command(name = "upslot", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Serve uploads and downloads.
    Serve {
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check the configuration and exit (0: valid, 64: invalid).
    CheckConfig {
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Delete every file whose retention has ended, now (asks the running
    /// server, or works on the data directory when none runs).
    Sweep {
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Delete every file uploaded by an account (for account deletion).
    Erase {
        /// The account's bare JID, as the XMPP server writes it.
        #[arg(long)]
        jid: String,
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Report what is held for an account (GDPR right of access): files,
    /// bytes, times and quota usage, never file names.
    Access {
        /// The account's bare JID, as the XMPP server writes it.
        #[arg(long)]
        jid: String,
        /// Print the admin API's JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print file counts, bytes and an age histogram.
    Stats {
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print the privacy-policy sentences this configuration and the
    /// stored files make true (asks the running server, or reads the data
    /// directory when none runs).
    Policy {
        /// "markdown": sentences to publish and notes for the operator;
        /// "providers": the upload fields of an XMPP Providers provider file (JSON).
        #[arg(long, default_value = "markdown")]
        format: Format,
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Runs `cli` with the process environment `env`; returns the exit code.
pub fn run(cli: Cli, env: &BTreeMap<String, String>) -> ExitCode {
    let (Command::Serve { config }
    | Command::CheckConfig { config }
    | Command::Sweep { config, .. }
    | Command::Erase { config, .. }
    | Command::Access { config, .. }
    | Command::Stats { config }
    | Command::Policy { config, .. }) = &cli.command;
    let config = match load_config(config.clone(), env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("upslot: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::CheckConfig { .. } => check::check_config(&config),
        Command::Serve { .. } => serve::serve(config),
        Command::Sweep { dry_run: true, .. } => {
            report::report(&config, report::Report::SweepPreview)
        }
        Command::Sweep { dry_run: false, .. } => report::report(&config, report::Report::Sweep),
        Command::Stats { .. } => report::report(&config, report::Report::Stats),
        Command::Erase { jid, .. } => report::report(&config, report::Report::Erase(jid)),
        Command::Policy { format, .. } => policy::policy(&config, format),
        Command::Access { jid, json, .. } => {
            report::report(&config, report::Report::Access { jid, json })
        }
    }
}

/// Loads the config file named by `--config`, else `$UPSLOT_CONFIG`, else
/// only the embedded defaults; then the environment overrides.
fn load_config(
    path: Option<PathBuf>,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let path = path.or_else(|| env.get("UPSLOT_CONFIG").map(PathBuf::from));
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                key: "--config".into(),
                path: path.clone(),
                source,
            })?;
            Config::load(Some((&text, &path.display().to_string())), env)
        }
        None => Config::load(None, env),
    }
}

/// Builds a runtime from `builder` with I/O and timers, or says why not.
pub(crate) fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|error| eprintln!("upslot: cannot start the runtime: {error}"))
        .ok()
}
