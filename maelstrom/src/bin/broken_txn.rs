//! `sinew-maelstrom-broken-txn-rw-register`: a deliberately broken txn-rw-register node
//! ([`sinew_maelstrom::broken::DirtyTxn`]), to show the checker catches it. Do not use.
fn main() -> std::process::ExitCode {
    sinew_maelstrom::runtime::main(sinew_maelstrom::Node::new(
        sinew_maelstrom::broken::DirtyTxn::default(),
    ))
}
