//! `dht::Message::parse` on arbitrary bytes; see `sinew_fuzz::parse_dht`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::parse_dht::check(data));
