//! `upslot serve`: start everything, serve until SIGTERM or SIGINT, drain.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::bootstrap::{self, StartError};
use crate::config::Config;
use crate::{server, shutdown, sweeper, telemetry};

/// Serves with `config` until a signal stops it.
pub fn serve(config: Config) -> ExitCode {
    telemetry::init();
    let Some(runtime) = super::runtime(tokio::runtime::Builder::new_multi_thread()) else {
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

/// Binds the listeners, installs the signal handlers, announces the
/// addresses on stdout, runs the sweeper and the server until `stop`.
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
    let sweeper = tokio::spawn(sweeper::run(prepared.sweeper, stop.clone()));
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
