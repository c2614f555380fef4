//! ZooKeeper frames fed to `FrameDecoder` in arbitrary fragments; see `sinew_fuzz::stream_zk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sinew_fuzz::stream_zk::check(data);
});
