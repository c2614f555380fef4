//! `sinew-maelstrom-echo`: the echo workload on stdin/stdout, for Maelstrom's `--bin`.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(sinew_maelstrom::echo::Echo))
}
