//! `sinew-maelstrom-txn-rw-register`: the txn-rw-register workload on stdin/stdout, for
//! Maelstrom's `--bin`.
use sinew_maelstrom::txn::{Config, Txn};

fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(Txn::new(Config::new())))
}
