//! `tests/python/node.py`, a Maelstrom echo and broadcast node written in Python from
//! Maelstrom's protocol document: a few lines piped through it, its replies checked, and the
//! history they make checked by sinew's checkers.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use sinew_maelstrom::check::{CheckOptions, Validity, check};
use sinew_maelstrom::history::{Op, OpType, WorkloadName};

/// Runs the node on `lines` until its input ends; returns what it wrote, one JSON per line.
fn run_node(lines: &[Value]) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/node.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs tests/python/node.py");
    let mut input = child.stdin.take().unwrap();
    for l in lines {
        writeln!(input, "{l}").unwrap();
    }
    writeln!(input, "not json").unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON message per line"))
        .collect()
}

fn msg(src: &str, body: Value) -> Value {
    json!({"src": src, "dest": "n1", "body": body})
}

/// The replies to client `c1`, by the `msg_id` they answer.
fn reply_to(out: &[Value], id: u64) -> &Value {
    let m = out
        .iter()
        .find(|m| m["body"]["in_reply_to"] == id)
        .unwrap_or_else(|| panic!("no reply to {id} in {out:#?}"));
    &m["body"]
}

#[test]
fn test_python_node_echo_and_broadcast() {
    let out = run_node(&[
        msg(
            "c0",
            json!({"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1", "n2"]}),
        ),
        msg(
            "c1",
            json!({"type": "echo", "msg_id": 2, "echo": "Please echo 35"}),
        ),
        msg(
            "c1",
            json!({"type": "topology", "msg_id": 3, "topology": {"n1": ["n2"], "n2": ["n1"]}}),
        ),
        msg(
            "c1",
            json!({"type": "broadcast", "msg_id": 4, "message": 7}),
        ),
        msg(
            "n2",
            json!({"type": "gossip", "msg_id": 9, "messages": [8, 7]}),
        ),
        msg("c1", json!({"type": "read", "msg_id": 5})),
        msg("c1", json!({"type": "broadcast", "msg_id": 6})),
        msg("c1", json!({"type": "delete", "msg_id": 7})),
    ]);
    assert_eq!(reply_to(&out, 1)["type"], "init_ok");
    assert_eq!(out[0]["src"], "n1");
    assert_eq!(out[0]["dest"], "c0");
    let echo = reply_to(&out, 2);
    assert_eq!(
        (echo["type"].as_str(), echo["echo"].as_str()),
        (Some("echo_ok"), Some("Please echo 35"))
    );
    assert_eq!(reply_to(&out, 3)["type"], "topology_ok");
    assert_eq!(reply_to(&out, 4)["type"], "broadcast_ok");
    // The value went to n2 as gossip, and n2's gossip was acknowledged.
    assert!(
        out.iter().any(|m| m["dest"] == "n2"
            && m["body"]["type"] == "gossip"
            && m["body"]["messages"] == json!([7])),
        "{out:#?}"
    );
    assert_eq!(reply_to(&out, 9)["type"], "gossip_ok");
    assert_eq!(reply_to(&out, 5)["messages"], json!([7, 8]));
    // A broadcast without its value, an unknown type: error replies (12, 10), no crash.
    assert_eq!(reply_to(&out, 6)["code"], 12);
    assert_eq!(reply_to(&out, 7)["code"], 10);
    // Message ids are unique.
    let mut ids: Vec<u64> = out
        .iter()
        .filter_map(|m| m["body"]["msg_id"].as_u64())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);

    // The client's side as a history, checked.
    let op = |index: u64, process: u64, kind: OpType, f: &str, value: Value| Op {
        index,
        time: index,
        process,
        kind,
        f: f.into(),
        value,
        node: "n1".into(),
        error_code: None,
        error: None,
    };
    let echo = vec![
        op(0, 0, OpType::Invoke, "echo", json!("Please echo 35")),
        op(1, 0, OpType::Ok, "echo", echo["echo"].clone()),
    ];
    assert_eq!(
        check(WorkloadName::Echo, &echo, &CheckOptions::default()).valid,
        Validity::Valid
    );
    let broadcast = vec![
        op(0, 0, OpType::Invoke, "broadcast", json!(7)),
        op(1, 0, OpType::Ok, "broadcast", json!(7)),
        op(2, 0, OpType::Invoke, "read", Value::Null),
        op(
            3,
            0,
            OpType::Ok,
            "read",
            reply_to(&out, 5)["messages"].clone(),
        ),
    ];
    // 8 came by gossip, as if n2's client had broadcast it.
    let mut broadcast = broadcast;
    broadcast.insert(0, op(0, 1, OpType::Invoke, "broadcast", json!(8)));
    broadcast.insert(1, op(1, 1, OpType::Info, "broadcast", json!(8)));
    for (i, o) in broadcast.iter_mut().enumerate() {
        o.index = i as u64;
    }
    let r = check(
        WorkloadName::Broadcast,
        &broadcast,
        &CheckOptions::default(),
    );
    assert_eq!(r.valid, Validity::Valid, "{r:#?}");
}
