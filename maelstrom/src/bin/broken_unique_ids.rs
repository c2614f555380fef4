//! `sinew-maelstrom-broken-unique-ids`: a deliberately broken unique-ids node
//! ([`sinew_maelstrom::broken::ReusedIds`]), to show the checker catches it. Do not use.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(
        sinew_maelstrom::broken::ReusedIds::default(),
    ))
}
