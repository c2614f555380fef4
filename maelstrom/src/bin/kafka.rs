//! `sinew-maelstrom-kafka`: the kafka-style log workload (on lin-kv) on stdin/stdout, for
//! Maelstrom's `--bin`.
use sinew_maelstrom::kafka::{Config, Kafka};

fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(Kafka::new(Config::new())))
}
