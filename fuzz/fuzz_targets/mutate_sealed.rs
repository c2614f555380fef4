//! Mutated valid sealed datagrams, opened; see `sinew_fuzz::mutate_sealed`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sinew_fuzz::mutate_sealed::check(data);
});
