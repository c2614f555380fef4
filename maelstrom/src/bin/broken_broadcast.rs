//! `sinew-maelstrom-broken-broadcast`: a deliberately broken broadcast node
//! ([`sinew_maelstrom::broken::FireAndForgetBroadcast`]), to show the checker catches it. Do not use.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(
        sinew_maelstrom::broken::FireAndForgetBroadcast::default(),
    ))
}
