//! Logging: structured lines on stderr, `RUST_LOG` to filter.
//!
//! Log lines never carry request paths, file names, tokens, secrets, JIDs
//! or client addresses (unless `privacy.log_client_ip` allows the latter);
//! request ids correlate lines instead.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The default filter: upslot at info, libraries at warn.
pub const DEFAULT_FILTER: &str = "info,hyper=warn,h2=warn,rustls=warn,redb=warn";

/// Installs the global subscriber. Call once, at start.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
