//! A `HealthNode` driven by an arbitrary script, against a model; see `sinew_fuzz::health_node`.
//! `cargo fuzz fmt health_node <input>` prints an input's script.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew_fuzz::health_node::{Script, run};

fuzz_target!(|script: Script| {
    run(&script);
});
