//! The one shutdown signal: SIGTERM or SIGINT cancel a token that every
//! long-running task watches.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT. Must be called inside
/// the runtime; fails only if signal handlers cannot be installed.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = token.cancelled() => return,
        };
        tracing::info!(signal = name, "shutdown requested");
        token.cancel();
    });
    Ok(())
}

/// Calls `reload` on every SIGHUP until `token` is cancelled.
pub fn on_hangup<F>(token: CancellationToken, reload: F) -> std::io::Result<()>
where
    F: Fn() + Send + 'static,
{
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => reload(),
                () = token.cancelled() => return,
            }
        }
    });
    Ok(())
}
