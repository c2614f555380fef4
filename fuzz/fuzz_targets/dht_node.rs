//! A `DhtNode` fed arbitrary messages, answers to its own transmissions, time and API calls;
//! see `sinew_fuzz::dht_node`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::dht_node::check(data);
});
