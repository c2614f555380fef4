//! A `ZkSession` driven by an arbitrary script; see `sinew_fuzz::zk_session`.
//! `cargo fuzz fmt zk_session <input>` prints an input's script.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sinew_fuzz::zk_session::{Script, run};

fuzz_target!(|script: Script| {
    run(&script);
});
