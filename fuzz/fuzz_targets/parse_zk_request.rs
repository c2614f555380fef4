//! Every ZooKeeper request decoder on the same bytes; see `sinew_fuzz::parse_zk_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::parse_zk_request::check(data));
