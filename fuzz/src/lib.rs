//! Fuzz harnesses for `sinew-proto`, shared by the cargo-fuzz targets in `fuzz_targets/` and by
//! the seed-corpus test in `tests/seeds.rs`.
//!
//! Every harness panics on a broken invariant, which libFuzzer reports as a crash.

pub mod dht_node;
pub mod health_node;
pub mod mutate_sealed;
pub mod open_sealed;
pub mod parse_dht;
pub mod parse_health;
pub mod parse_maelstrom;
pub mod parse_zk_reply;
pub mod parse_zk_request;
pub mod rng;
pub mod roundtrip_dht;
pub mod roundtrip_health;
pub mod roundtrip_maelstrom;
pub mod roundtrip_zk;
pub mod seeds;
pub mod seeds_maelstrom;
pub mod seeds_seal;
pub mod seeds_zk;
pub mod stream_zk;
pub mod zk_check;
pub mod zk_session;
