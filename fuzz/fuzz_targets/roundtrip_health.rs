//! Arbitrary health messages → encode → parse → equal; see `sinew_fuzz::roundtrip_health`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::roundtrip_health::check(data);
});
