//! Arbitrary DHT messages round-tripped; see `sinew_fuzz::roundtrip_dht`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::roundtrip_dht::check(data);
});
