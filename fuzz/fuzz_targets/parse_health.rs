//! Every decoding entry point of the health protocol on the same bytes; see
//! `sinew_fuzz::parse_health`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::parse_health::check(data));
