//! The `sinew` command: run, probe and inspect sinew's protocols. See `sinew --help`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use sinew_cli as cli;

fn main() -> ExitCode {
    ExitCode::from(cli::run(cli::parse_args()))
}
