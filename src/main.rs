//! The `upslot` command: parse arguments, load the config, start serving.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use upslot::bootstrap::{self, StartError};
use upslot::config::{Config, ConfigError};
use upslot::{server, shutdown, sweeper, telemetry};

/// Exit code for a configuration mistake (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

/// Storage service for XMPP HTTP File Upload (XEP-0363).
#[derive(Parser)]
#[command(name = "upslot", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Print file counts, bytes and an age histogram.
    Stats {
        /// Config file (TOML). Default: $UPSLOT_CONFIG, else the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let (Command::Serve { config }
    | Command::CheckConfig { config }
    | Command::Sweep { config, .. }
    | Command::Erase { config, .. }
    | Command::Stats { config }) = &cli.command;
    let config = match load_config(config.clone(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("upslot: configuration error: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::CheckConfig { .. } => check_config(&config),
        Command::Serve { .. } => serve(config),
        Command::Sweep { dry_run: true, .. } => report(&config, Report::SweepPreview),
        Command::Sweep { dry_run: false, .. } => report(&config, Report::Sweep),
        Command::Stats { .. } => report(&config, Report::Stats),
        Command::Erase { jid, .. } => report(&config, Report::Erase(jid)),
    }
}

/// What the CLI can ask of a running server (or do on its data directory).
enum Report {
    Stats,
    SweepPreview,
    Sweep,
    Erase(String),
}

/// Prints `which`: from the running server's admin listener if one
/// answers, else computed on the data directory directly.
fn report(config: &Config, which: Report) -> ExitCode {
    let now = upslot::time::unix_now();
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
        && let Ok((status, body)) = upslot::admin_client::call(addr, method, &path)
    {
        print!("{body}");
        return if (200..300).contains(&status) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let result = runtime.block_on(async {
        let prepared = bootstrap::prepare(config)
            .await
            .map_err(|e| e.to_string())?;
        let app = prepared.app;
        match which {
            Report::Stats => sweeper::stats(&app, now).await.map_err(|e| e.to_string()),
            Report::SweepPreview => sweeper::preview(&app, now).await.map_err(|e| e.to_string()),
            Report::Sweep => sweeper::pass(&app, now, &CancellationToken::new())
                .await
                .map(|r| {
                    format!(
                        "deleted {} files ({} bytes); backstop removed {} files\n",
                        r.files, r.bytes, r.backstop_files
                    )
                })
                .map_err(|e| e.to_string()),
            Report::Erase(jid) => upslot::erase::erase(&app, &jid, now)
                .await
                .map(|deleted| format!("{{\"deleted\":{deleted}}}\n"))
                .map_err(|e| e.to_string()),
        }
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

/// The signed admin path that erases `jid`'s files.
fn erase_path(config: &Config, jid: &str, now: i64) -> Result<String, StartError> {
    let secrets = bootstrap::upload_secrets(config)?;
    let secret = secrets.first().ok_or_else(|| {
        StartError::Config(ConfigError::Invalid {
            key: "upload.secret".into(),
            message: "no secret to sign the erase request with".into(),
        })
    })?;
    let message = upslot::auth::mac::erase_message(jid, now);
    let signature = hex::encode(upslot::auth::mac::hmac_sha256(secret.expose(), &message));
    let wire: String =
        percent_encoding::utf8_percent_encode(jid, percent_encoding::NON_ALPHANUMERIC).collect();
    Ok(format!("/owners/{wire}?ts={now}&sig={signature}"))
}

fn check_config(config: &Config) -> ExitCode {
    let checks = || -> Result<usize, String> {
        let secrets = config.upload.secrets().map_err(|e| e.to_string())?;
        config.upload.delete_secret().map_err(|e| e.to_string())?;
        if config.storage.backend == upslot::config::StorageBackend::S3 {
            config
                .storage
                .s3
                .secret_access_key()
                .map_err(|e| e.to_string())?;
        }
        if config.index.backend == upslot::config::IndexBackend::Postgres {
            config.index.postgres_url().map_err(|e| e.to_string())?;
        }
        if let Some(tls) = &config.server.tls {
            server::tls::Tls::load(&tls.cert, &tls.key).map_err(|e| format!("server.tls: {e}"))?;
        }
        Ok(secrets.len())
    };
    match checks() {
        Ok(secrets) => {
            let secrets = if secrets == 0 {
                "none configured (one is generated at first start)".to_string()
            } else {
                secrets.to_string()
            };
            println!(
                "configuration OK\n  listen: {}\n  storage: {}\n  index: {:?}\n  offload: {:?}\n  retention: {}\n  max upload: {}\n  secrets: {secrets}",
                config.server.listen.as_slice().join(", "),
                storage_summary(config),
                config.index.backend,
                config.offload.mode,
                config.retention.keep,
                config.upload.max_size,
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("upslot: configuration error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Where blobs go, for `check-config` (no credentials).
fn storage_summary(config: &Config) -> String {
    use upslot::config::StorageBackend;
    let storage = &config.storage;
    match storage.backend {
        StorageBackend::Disk => format!("disk at {}", storage.path.display()),
        StorageBackend::S3 => format!(
            "s3 bucket {:?} at {}",
            storage.s3.bucket,
            if storage.s3.endpoint.is_empty() {
                "AWS"
            } else {
                &storage.s3.endpoint
            }
        ),
        StorageBackend::Gcs | StorageBackend::Azure => {
            format!("{:?} {}", storage.backend, storage.url)
        }
    }
}

/// Builds a runtime from `builder` with I/O and timers, or says why not.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|error| eprintln!("upslot: cannot start the runtime: {error}"))
        .ok()
}

fn serve(config: Config) -> ExitCode {
    telemetry::init();
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("upslot: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(config: Config) -> Result<(), StartError> {
    let prepared = bootstrap::prepare(&config).await?;
    let bind = |addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let mut public = Vec::new();
    for addr in config.listen_addrs()? {
        public.push(bind(addr).await?);
    }
    let admin = match config.admin_listen()? {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };

    // Signal handlers first: a SIGHUP or SIGTERM sent as soon as the
    // listeners are announced must find them installed.
    let stop = CancellationToken::new();
    let signal_error = |source| StartError::Io {
        what: "cannot install signal handlers",
        path: PathBuf::new(),
        source,
    };
    shutdown::cancel_on_signals(stop.clone()).map_err(signal_error)?;
    // SIGHUP must always be handled: its default action ends the process,
    // and `systemctl reload` sends it whether or not TLS is configured.
    let tls = prepared.tls.clone();
    shutdown::on_hangup(stop.clone(), move || match &tls {
        Some(tls) => match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(error) => tracing::error!(%error, "TLS reload failed; keeping the old certificate"),
        },
        None => tracing::info!("SIGHUP: nothing to reload (no TLS configured)"),
    })
    .map_err(signal_error)?;
    if let Some(hints) = &prepared.first_start_hints {
        println!("{hints}");
    }
    let scheme = if prepared.tls.is_some() {
        "https"
    } else {
        "http"
    };
    for listener in &public {
        if let Ok(addr) = listener.local_addr() {
            println!("upslot listening on {scheme}://{addr}");
        }
    }
    if let Some(addr) = admin.as_ref().and_then(|l| l.local_addr().ok()) {
        println!("upslot admin listening on http://{addr}");
    }

    tracing::info!(version = env!("CARGO_PKG_VERSION"), "upslot started");
    let sweeper = tokio::spawn(sweeper::run(
        std::sync::Arc::clone(&prepared.app),
        stop.clone(),
    ));
    server::run(
        prepared.app,
        public,
        admin,
        prepared.tls,
        prepared.limits,
        stop,
    )
    .await;
    // The server returns only once `stop` is cancelled; the sweeper ends
    // after its current batch.
    let _ = sweeper.await;
    tracing::info!("upslot stopped");
    Ok(())
}
