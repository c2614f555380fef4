//! `sinew-maelstrom-g-counter`: the g-counter workload (on seq-kv) on stdin/stdout, for
//! Maelstrom's `--bin`.
use sinew_maelstrom::g_counter::{Config, GCounter};

fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(GCounter::new(Config::new())))
}
