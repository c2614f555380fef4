//! `sinew-maelstrom-broadcast`: the broadcast workload on stdin/stdout, for Maelstrom's `--bin`.
use sinew_maelstrom::broadcast::{Broadcast, Config};

fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(Broadcast::new(Config::new())))
}
