//! `sinew maelstrom <workload>` as Maelstrom's `--bin` runs it: lines over pipes.

use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn test_sinew_maelstrom_echo() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(["maelstrom", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            concat!(
                r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}}"#,
                "\n",
                r#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":2,"echo":"hi"}}"#,
                "\nnot json\n"
            )
            .as_bytes(),
        )
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        concat!(
            r#"{"src":"n1","dest":"c0","body":{"type":"init_ok","in_reply_to":1}}"#,
            "\n",
            r#"{"src":"n1","dest":"c1","body":{"type":"echo_ok","in_reply_to":2,"msg_id":1,"echo":"hi"}}"#,
            "\n"
        )
    );
    let log = String::from_utf8(output.stderr).unwrap();
    assert!(log.contains("1 dropped"), "{log}");
}

#[test]
fn test_sinew_maelstrom_unknown_workload() {
    let output = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(["maelstrom", "raft"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .starts_with("sinew: invalid value 'raft'")
    );
}
