//! `maelstrom::Envelope::parse` on arbitrary bytes; see `sinew_fuzz::parse_maelstrom`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::parse_maelstrom::check(data));
