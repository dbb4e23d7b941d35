//! The `upslot` command: parse the arguments, read the environment once,
//! and hand both to [`upslot::cli`].

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser as _;
use upslot::cli::{self, Cli};

fn main() -> ExitCode {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    cli::run(Cli::parse(), &env)
}
