//! The `sinew` command: run, probe and inspect sinew's protocols. See `sinew --help`.

use std::process::ExitCode;

use clap::Parser;
use sinew_transport_std::cli::{self, Cli};

fn main() -> ExitCode {
    ExitCode::from(cli::run(Cli::parse()))
}
