//! Opening arbitrary bytes as sealed datagrams; see `sinew_fuzz::open_sealed`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::open_sealed::check(data));
