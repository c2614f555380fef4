//! `sinew-maelstrom-lin-kv`: the lin-kv workload (a proxy to Maelstrom's lin-kv service) on
//! stdin/stdout, for Maelstrom's `--bin`.
use sinew_maelstrom::lin_kv::{Config, LinKv};

fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(LinKv::new(Config::new())))
}
