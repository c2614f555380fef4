//! The workload binaries as Maelstrom runs them: no arguments, lines over pipes.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

#[test]
fn test_echo_binary_over_pipes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew-maelstrom-echo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let ask = |stdin: &mut std::process::ChildStdin,
               stdout: &mut BufReader<std::process::ChildStdout>,
               line: &str|
     -> Value {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
        // Each answer arrives before the next line is sent: the node flushes per message.
        let mut reply = String::new();
        stdout.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    let init = ask(
        &mut stdin,
        &mut stdout,
        r#"{"id":0,"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#,
    );
    assert_eq!(
        init,
        json!({"src": "n1", "dest": "c0", "body": {"type": "init_ok", "in_reply_to": 1}})
    );
    let echo = ask(
        &mut stdin,
        &mut stdout,
        r#"{"id":4,"src":"c1","dest":"n1","body":{"type":"echo","msg_id":2,"echo":"Please echo 98"}}"#,
    );
    assert_eq!(echo["body"]["echo"], "Please echo 98");
    assert_eq!(echo["body"]["in_reply_to"], 2);
    let error = ask(
        &mut stdin,
        &mut stdout,
        r#"{"src":"c1","dest":"n1","body":{"msg_id":3}}"#,
    );
    assert_eq!(error["body"]["code"], 12);
    // Garbage and a half line: dropped, the process lives on.
    stdin.write_all(b"garbage\n{\"src\":\n\n").unwrap();
    let echo = ask(
        &mut stdin,
        &mut stdout,
        r#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":4,"echo":[1,2]}}"#,
    );
    assert_eq!(echo["body"]["echo"], json!([1, 2]));
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let log = String::from_utf8(output.stderr).unwrap();
    assert!(log.contains("2 dropped"), "{log}");
    assert!(log.contains("1 malformed answered"), "{log}");
}

#[test]
fn test_broadcast_binary_gossips_on_its_timer() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew-maelstrom-broadcast"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for line in [
        r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#,
        r#"{"src":"c1","dest":"n1","body":{"type":"broadcast","msg_id":2,"message":42}}"#,
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    assert_eq!(lines[0]["body"]["type"], "init_ok");
    assert_eq!(lines[1]["body"]["type"], "broadcast_ok");
    // No input arrives after the broadcast: only the node's own timer sends this.
    assert_eq!(lines[2]["dest"], "n2");
    assert_eq!(lines[2]["body"]["type"], "gossip");
    assert_eq!(lines[2]["body"]["messages"], json!([42]));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
