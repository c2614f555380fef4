//! `sinew-maelstrom-unique-ids`: the unique-ids workload on stdin/stdout, for Maelstrom's `--bin`.
fn main() -> std::process::ExitCode {
    match sinew_maelstrom::unique_ids::UniqueIds::from_os() {
        Ok(ids) => sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(ids)),
        Err(e) => {
            eprintln!("sinew: random boot id: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
