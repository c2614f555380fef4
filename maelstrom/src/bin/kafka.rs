//! `sinew-maelstrom-kafka`: the kafka-style log workload (on lin-kv) on stdin/stdout, for
//! Maelstrom's `--bin`, which starts it with no arguments. `--chunk-len N` sets how many
//! messages one chunk of a log holds (64 by default).
use std::process::ExitCode;

use sinew_maelstrom::kafka::{Config, Kafka};

fn main() -> ExitCode {
    let mut config = Config::new();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, n] if flag == "--chunk-len" => match n.parse::<usize>() {
            Ok(n) if n > 0 => config.chunk_len = n,
            _ => {
                eprintln!(
                    "sinew-maelstrom-kafka: --chunk-len takes a whole number above 0, not {n:?}"
                );
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: sinew-maelstrom-kafka [--chunk-len N]");
            return ExitCode::from(2);
        }
    }
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(Kafka::new(config)))
}
