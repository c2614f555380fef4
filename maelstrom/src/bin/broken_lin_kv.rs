//! `sinew-maelstrom-broken-lin-kv`: a deliberately broken lin-kv node
//! ([`sinew_maelstrom::broken::CachedLinKv`]), to show the checker catches it. Do not use.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(
        sinew_maelstrom::broken::CachedLinKv::default(),
    ))
}
