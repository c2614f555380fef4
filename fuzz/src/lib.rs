//! Fuzz harnesses for `sinew-proto`, shared by the cargo-fuzz targets in `fuzz_targets/` and by
//! the seed-corpus test in `tests/seeds.rs`.
//!
//! Every harness panics on a broken invariant, which libFuzzer reports as a crash.

pub mod health_node;
pub mod parse_health;
pub mod rng;
pub mod roundtrip_health;
pub mod seeds;
