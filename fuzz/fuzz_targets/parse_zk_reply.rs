//! Every ZooKeeper reply decoder, for every op code, on the same bytes; see `sinew_fuzz::parse_zk_reply`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sinew_fuzz::parse_zk_reply::check(data));
