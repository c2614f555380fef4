//! Arbitrary ZooKeeper messages and records round-tripped; see `sinew_fuzz::roundtrip_zk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::roundtrip_zk::check(data);
});
