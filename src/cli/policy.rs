//! `upslot policy [--format markdown|providers]`: the privacy-policy
//! sentences of the running server (asked on its admin listener, so its
//! own configuration and files speak), else of this configuration and its
//! data directory.

use std::process::ExitCode;

use super::report::{ask_running_server, on_data_directory};
use crate::config::Config;
use crate::files::Files;
use crate::policy::{self, Facts, Format, Live, Source};
use crate::time::unix_now;

/// Prints the policy of `config` in `format`.
pub(super) fn policy(config: &Config, format: Format) -> ExitCode {
    if let Some(code) = ask_running_server(config, "GET", format.admin_path()) {
        return code;
    }
    let facts = Facts::from_config(config);
    on_data_directory(config, async |files: &Files| {
        let live = Live::read(files, unix_now(), Source::DataDirectory).await?;
        Ok(policy::render(&facts, &live, format))
    })
}
