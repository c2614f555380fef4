//! Maelstrom's services as the harness will run them, and the g-counter and kafka nodes on
//! them (seq-kv with its stale reads, lin-kv).

use serde_json::{Map, Value, json};
use sinew_maelstrom::g_counter::{Config as GConfig, GCounter};
use sinew_maelstrom::kafka::{Config as KConfig, Kafka};
use sinew_maelstrom::services::{LinKv, LinTso, LwwKv, SeqKv, Service};
use sinew_maelstrom::{Instant, Message, Node, Workload};

fn request(src: &str, kind: &str, id: u64, fields: Value) -> Message {
    let Value::Object(fields) = fields else {
        panic!()
    };
    Message {
        src: src.into(),
        dest: "svc".into(),
        kind: kind.into(),
        msg_id: Some(id),
        in_reply_to: None,
        fields,
    }
}

#[test]
fn test_lin_kv() {
    let mut kv = LinKv::new();
    let r = kv.handle(&request("n1", "read", 1, json!({"key": 1})));
    assert_eq!(
        (r.kind.as_str(), r.get("code")),
        ("error", Some(&json!(20)))
    );
    assert_eq!((r.dest.as_str(), r.in_reply_to), ("n1", Some(1)));
    assert_eq!(
        kv.handle(&request("n1", "write", 2, json!({"key": 1, "value": 5})))
            .kind,
        "write_ok"
    );
    assert_eq!(
        kv.handle(&request("n2", "read", 3, json!({"key": 1})))
            .get("value"),
        Some(&json!(5))
    );
    // Keys compare as JSON: "1" is another key.
    assert_eq!(
        kv.handle(&request("n2", "read", 4, json!({"key": "1"})))
            .get("code"),
        Some(&json!(20))
    );
    let r = kv.handle(&request(
        "n2",
        "cas",
        5,
        json!({"key": 1, "from": 4, "to": 6}),
    ));
    assert_eq!(r.get("code"), Some(&json!(22)));
    assert_eq!(
        kv.handle(&request(
            "n2",
            "cas",
            6,
            json!({"key": 1, "from": 5, "to": 6})
        ))
        .kind,
        "cas_ok"
    );
    assert_eq!(
        kv.handle(&request(
            "n2",
            "cas",
            7,
            json!({"key": 9, "from": 0, "to": 1})
        ))
        .get("code"),
        Some(&json!(20))
    );
    assert_eq!(
        kv.handle(&request(
            "n2",
            "cas",
            8,
            json!({"key": 9, "from": 0, "to": 1, "create_if_not_exists": true})
        ))
        .kind,
        "cas_ok"
    );
    assert_eq!(
        kv.handle(&request("n2", "read", 9, json!({"key": 9})))
            .get("value"),
        Some(&json!(1))
    );
    assert_eq!(
        kv.handle(&request("n2", "read", 10, json!({}))).get("code"),
        Some(&json!(12))
    );
    assert_eq!(
        kv.handle(&request("n2", "frob", 11, json!({"key": 1})))
            .get("code"),
        Some(&json!(10))
    );
}

#[test]
fn test_seq_kv_stale_but_monotonic() {
    let mut kv = SeqKv::new(7);
    for v in 0..20 {
        kv.handle(&request("n1", "write", v, json!({"key": "x", "value": v})));
    }
    // n2 has seen nothing: its reads may come from the past, but never go backwards.
    let mut last = -1;
    let mut stale = 0;
    for id in 0..200 {
        let r = kv.handle(&request("n2", "read", id, json!({"key": "x"})));
        let v = r.get("value").and_then(Value::as_i64).unwrap_or(-1);
        assert!(v >= last, "went back from {last} to {v}");
        stale += u32::from(v < 19);
        last = v;
    }
    assert!(stale > 0, "never served from the past");
    // The writer always sees its own writes.
    for id in 0..50 {
        let r = kv.handle(&request("n1", "read", 100 + id, json!({"key": "x"})));
        assert_eq!(r.get("value"), Some(&json!(19)));
    }
    // A change goes to the newest state, and its client sees it from then on. (A refused cas
    // changes nothing, so it may be judged against a past state, as in Maelstrom.)
    assert_eq!(
        kv.handle(&request("n3", "write", 1, json!({"key": "x", "value": 99})))
            .kind,
        "write_ok"
    );
    for id in 0..50 {
        let r = kv.handle(&request("n3", "read", 2 + id, json!({"key": "x"})));
        assert_eq!(r.get("value"), Some(&json!(99)));
    }
}

#[test]
fn test_lww_kv_converges_but_lies_meanwhile() {
    let mut kv = LwwKv::new(3);
    kv.handle(&request("n1", "write", 1, json!({"key": "x", "value": 1})));
    kv.handle(&request("n1", "write", 2, json!({"key": "x", "value": 2})));
    let mut seen = std::collections::BTreeSet::new();
    for id in 0..500 {
        let r = kv.handle(&request("n2", "read", 3 + id, json!({"key": "x"})));
        seen.insert(r.get("value").map_or(-1, |v| v.as_i64().unwrap()));
    }
    // Missing, old and new values are all served at some point...
    assert!(seen.len() > 1, "{seen:?}");
    // ...and the replicas' gossip settles on the last write.
    let last: Vec<Option<Value>> = (0..20)
        .map(|id| {
            kv.handle(&request("n2", "read", 900 + id, json!({"key": "x"})))
                .get("value")
                .cloned()
        })
        .collect();
    assert!(last.iter().all(|v| *v == Some(json!(2))), "{last:?}");
}

#[test]
fn test_lin_tso() {
    let mut tso = LinTso::new();
    let ts: Vec<u64> = (0..5)
        .map(|i| {
            tso.handle(&request("n1", "ts", i, json!({})))
                .get("ts")
                .and_then(Value::as_u64)
                .unwrap()
        })
        .collect();
    assert_eq!(ts, [0, 1, 2, 3, 4]);
}

/// Nodes and one service, every message delivered at once, until quiet.
fn run<W: Workload>(
    nodes: &mut [Node<W>],
    service: &mut dyn Service,
    now: Instant,
    mut lines: Vec<String>,
) -> Vec<Value> {
    let mut to_clients = Vec::new();
    while let Some(line) = lines.pop() {
        let v: Value = serde_json::from_str(&line).unwrap();
        let dest = v["dest"].as_str().unwrap();
        if dest == service.name() {
            let body = v["body"].as_object().unwrap();
            let mut fields: Map<String, Value> = body.clone();
            fields.retain(|k, _| !matches!(k.as_str(), "type" | "msg_id" | "in_reply_to"));
            let request = Message {
                src: v["src"].as_str().unwrap().into(),
                dest: dest.into(),
                kind: body["type"].as_str().unwrap().into(),
                msg_id: body.get("msg_id").and_then(Value::as_u64),
                in_reply_to: None,
                fields,
            };
            lines.push(service.handle(&request).to_line());
        } else if let Some(i) = dest.strip_prefix('n').and_then(|n| n.parse::<usize>().ok()) {
            lines.extend(nodes[i - 1].handle_line(now, line.as_bytes()));
        } else {
            to_clients.push(v);
        }
    }
    to_clients
}

fn start<W: Workload>(make: impl Fn() -> W, n: usize) -> (Vec<Node<W>>, Vec<String>) {
    let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
    let mut lines = Vec::new();
    let nodes = ids
        .iter()
        .map(|id| {
            let mut node = Node::new(make());
            let init = json!({"src": "c0", "dest": id, "body": {"type": "init", "msg_id": 1, "node_id": id, "node_ids": ids}});
            lines.extend(node.handle_line(Instant::ZERO, init.to_string().as_bytes()));
            node
        })
        .collect();
    (nodes, lines)
}

fn client(dest: usize, body: Value) -> String {
    json!({"src": "c1", "dest": format!("n{dest}"), "body": body}).to_string()
}

#[test]
fn test_g_counter_on_seq_kv_final_reads() {
    let mut kv = SeqKv::new(42);
    let (mut nodes, lines) = start(|| GCounter::new(GConfig::new()), 3);
    let t = Instant::ZERO;
    run(&mut nodes, &mut kv, t, lines);
    let mut total = 0;
    for i in 0..60u64 {
        let node = (i % 3) as usize + 1;
        total += i;
        let out = run(
            &mut nodes,
            &mut kv,
            t,
            vec![client(
                node,
                json!({"type": "add", "msg_id": i, "delta": i}),
            )],
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["body"]["type"], "add_ok");
        // Reads in between may lag (seq-kv); they are not checked.
        run(
            &mut nodes,
            &mut kv,
            t,
            vec![client(
                3 - (i % 3) as usize,
                json!({"type": "read", "msg_id": 1000 + i}),
            )],
        );
    }
    // Final reads, on every node: the sum of every acknowledged add.
    for node in 1..=3 {
        let out = run(
            &mut nodes,
            &mut kv,
            t,
            vec![client(node, json!({"type": "read", "msg_id": 5000}))],
        );
        assert_eq!(out[0]["body"]["value"], total, "n{node}");
    }
}

#[test]
fn test_kafka_on_lin_kv() {
    let mut kv = LinKv::new();
    let (mut nodes, lines) = start(|| Kafka::new(KConfig::new()), 3);
    let t = Instant::ZERO;
    run(&mut nodes, &mut kv, t, lines);
    let mut offsets = Vec::new();
    for i in 0..30u64 {
        let out = run(
            &mut nodes,
            &mut kv,
            t,
            vec![client(
                (i % 3) as usize + 1,
                json!({"type": "send", "msg_id": i, "key": "k", "msg": i * 10}),
            )],
        );
        offsets.push(out[0]["body"]["offset"].as_u64().unwrap());
    }
    assert_eq!(offsets, (0..30).collect::<Vec<_>>());
    let out = run(
        &mut nodes,
        &mut kv,
        t,
        vec![client(
            2,
            json!({"type": "poll", "msg_id": 99, "offsets": {"k": 28}}),
        )],
    );
    assert_eq!(out[0]["body"]["msgs"], json!({"k": [[28, 280], [29, 290]]}));
}
