//! What the tests of the built `sinew` binary share.

use std::io::Read;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// Waits for a child at most `deadline` (then kills it and fails); its exit code and output.
pub fn finish(
    mut child: Child,
    deadline: Duration,
    what: &[&str],
) -> (Option<i32>, Vec<u8>, Vec<u8>) {
    // A caller may have taken stdout (or stderr) to read it as it comes.
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut stdout) = stdout {
            stdout.read_to_end(&mut v).unwrap();
        }
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut stderr) = stderr {
            stderr.read_to_end(&mut v).unwrap();
        }
        v
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            child.kill().unwrap();
            let _ = child.wait();
            panic!(
                "sinew {what:?} still running after {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.join().unwrap()),
                String::from_utf8_lossy(&err.join().unwrap())
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}
