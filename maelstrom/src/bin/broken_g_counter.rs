//! `sinew-maelstrom-broken-g-counter`: a deliberately broken g-counter node
//! ([`sinew_maelstrom::broken::DoubleCountingCounter`]), to show the checker catches it. Do not use.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(
        sinew_maelstrom::broken::DoubleCountingCounter::default(),
    ))
}
