//! Arbitrary Maelstrom messages round-tripped; see `sinew_fuzz::roundtrip_maelstrom`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::roundtrip_maelstrom::check(data);
});
