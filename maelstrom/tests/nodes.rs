//! Each node fed real Maelstrom lines, its replies checked; and the malformed lines.

use std::time::Duration;

use serde_json::{Value, json};
use sinew_maelstrom::broadcast::{Broadcast, Config as BroadcastConfig, Topology, tree_neighbours};
use sinew_maelstrom::echo::Echo;
use sinew_maelstrom::g_counter::{Config as GCounterConfig, GCounter};
use sinew_maelstrom::unique_ids::UniqueIds;
use sinew_maelstrom::{Instant, Node, Workload};

fn init_line(me: &str, ids: &[&str]) -> String {
    json!({"id": 0, "src": "c0", "dest": me, "body": {"type": "init", "msg_id": 1, "node_id": me, "node_ids": ids}}).to_string()
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

fn started<W: Workload>(w: W, me: &str, ids: &[&str]) -> (Node<W>, Vec<Value>) {
    let mut node = Node::new(w);
    let out = node.handle_line(Instant::ZERO, init_line(me, ids).as_bytes());
    let out: Vec<Value> = out.iter().map(|l| parse(l)).collect();
    assert_eq!(
        out[0],
        json!({"src": me, "dest": "c0", "body": {"type": "init_ok", "in_reply_to": 1}})
    );
    (node, out[1..].to_vec())
}

fn send<W: Workload>(node: &mut Node<W>, now: Instant, line: Value) -> Vec<Value> {
    node.handle_line(now, line.to_string().as_bytes())
        .iter()
        .map(|l| parse(l))
        .collect()
}

#[test]
fn test_echo() {
    let (mut node, _) = started(Echo, "n1", &["n1"]);
    // As Maelstrom sends it: with the top-level id, payload a string.
    let out = node.handle_line(
        Instant::ZERO,
        br#"{"id":3,"src":"c1","dest":"n1","body":{"echo":"Please echo 35","type":"echo","msg_id":1}}"#,
    );
    assert_eq!(
        out,
        [
            r#"{"src":"n1","dest":"c1","body":{"type":"echo_ok","in_reply_to":1,"msg_id":1,"echo":"Please echo 35"}}"#
        ]
    );
    // Any JSON value comes back unchanged.
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "echo", "msg_id": 2, "echo": {"a": [1, null, "\"x\""]}}}),
    );
    assert_eq!(out[0]["body"]["echo"], json!({"a": [1, null, "\"x\""]}));
    assert_eq!(out[0]["body"]["in_reply_to"], 2);
}

#[test]
fn test_errors() {
    let mut node = Node::new(Echo);
    // Before init: temporarily unavailable (definite).
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "echo", "msg_id": 5, "echo": 1}}),
    );
    assert_eq!(out[0]["src"], "n1");
    assert_eq!(out[0]["body"]["type"], "error");
    assert_eq!(out[0]["body"]["code"], 11);
    assert_eq!(out[0]["body"]["in_reply_to"], 5);
    let (mut node, _) = started(Echo, "n1", &["n1"]);
    // Unknown type: not supported.
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "frobnicate", "msg_id": 6}}),
    );
    assert_eq!(out[0]["body"]["code"], 10);
    // Missing field: malformed request.
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "echo", "msg_id": 7}}),
    );
    assert_eq!(out[0]["body"]["code"], 12);
    assert_eq!(out[0]["body"]["in_reply_to"], 7);
    // A line with a sender and msg_id but no type: answered with malformed-request.
    let out = node.handle_line(
        Instant::ZERO,
        br#"{"src":"c1","dest":"n1","body":{"msg_id":8}}"#,
    );
    let reply = parse(&out[0]);
    assert_eq!(reply["dest"], "c1");
    assert_eq!(reply["body"]["code"], 12);
    assert_eq!(reply["body"]["in_reply_to"], 8);
    // Lines with nothing to address: dropped and counted, never a panic.
    for line in [
        &b""[..],
        b"not json",
        b"{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{\"type\":\"echo\"",
        b"\xff\xfe",
        br#"[1,2,3]"#,
        br#"{"dest":"n1","body":{"type":"echo","msg_id":9}}"#, // no src
    ] {
        assert_eq!(node.handle_line(Instant::ZERO, line), Vec::<String>::new());
    }
    // Well-formed without a msg_id: answered, with no in_reply_to.
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "echo", "echo": 1}}),
    );
    assert_eq!(
        out[0]["body"],
        json!({"type": "echo_ok", "msg_id": 3, "echo": 1})
    );
    // Refused without a msg_id: nothing to answer; dropped and counted.
    assert!(
        send(
            &mut node,
            Instant::ZERO,
            json!({"src": "c1", "dest": "n1", "body": {"type": "nope"}})
        )
        .is_empty()
    );
    let stats = node.stats();
    assert_eq!(stats.dropped, 7);
    assert_eq!(stats.answered_malformed, 1);
    assert_eq!(stats.rejected, 2);
}

#[test]
fn test_unique_ids_across_restarts() {
    let mut seen = std::collections::HashSet::new();
    // Two nodes, and n1 killed and restarted (a new boot id): no id repeats.
    for (me, boot) in [("n1", 1u64), ("n2", 2), ("n1", 3)] {
        let (mut node, _) = started(UniqueIds::new(boot), me, &["n1", "n2"]);
        for i in 0..100 {
            let out = send(
                &mut node,
                Instant::ZERO,
                json!({"src": "c1", "dest": me, "body": {"type": "generate", "msg_id": i}}),
            );
            assert_eq!(out[0]["body"]["type"], "generate_ok");
            assert_eq!(out[0]["body"]["in_reply_to"], i);
            assert!(seen.insert(out[0]["body"]["id"].clone()), "{}", out[0]);
        }
    }
    assert_eq!(seen.len(), 300);
}

/// A tiny network on virtual time: delivers every message between the nodes, runs their
/// timers, drops the messages `cut` says to (a partition).
struct Net {
    nodes: Vec<(String, Node<Broadcast>)>,
    queue: Vec<Value>,
    now: Instant,
    sent: usize,
}

impl Net {
    fn new(n: usize, config: BroadcastConfig) -> Net {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let nodes = ids
            .iter()
            .map(|id| (id.clone(), started(Broadcast::new(config), id, &id_refs).0))
            .collect();
        Net {
            nodes,
            queue: Vec::new(),
            now: Instant::ZERO,
            sent: 0,
        }
    }

    fn node(&mut self, id: &str) -> &mut Node<Broadcast> {
        &mut self.nodes.iter_mut().find(|(n, _)| n == id).unwrap().1
    }

    fn client(&mut self, dest: &str, body: Value) -> Vec<Value> {
        let now = self.now;
        let out = send(
            self.node(dest),
            now,
            json!({"src": "c1", "dest": dest, "body": body}),
        );
        let (to_client, to_nodes): (Vec<_>, Vec<_>) =
            out.into_iter().partition(|m| m["dest"] == "c1");
        self.queue.extend(to_nodes);
        to_client
    }

    /// Runs 10 ms steps for `ms`, delivering queued messages unless `cut(src, dest)`.
    fn run(&mut self, ms: u64, cut: impl Fn(&str, &str) -> bool) {
        for _ in 0..ms / 10 {
            self.now = self.now + Duration::from_millis(10);
            let now = self.now;
            let mut next = Vec::new();
            for m in std::mem::take(&mut self.queue) {
                self.sent += 1;
                let (src, dest) = (
                    m["src"].as_str().unwrap().to_owned(),
                    m["dest"].as_str().unwrap().to_owned(),
                );
                if cut(&src, &dest) {
                    continue;
                }
                next.extend(send(self.node(&dest), now, m));
            }
            for (_, node) in &mut self.nodes {
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    next.extend(node.handle_timeout(now).iter().map(|l| parse(l)));
                }
            }
            self.queue = next;
        }
    }

    fn read(&mut self, id: &str) -> Vec<i64> {
        let out = self.client(id, json!({"type": "read", "msg_id": 999}));
        let mut values: Vec<i64> = out[0]["body"]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        values.sort_unstable();
        values
    }
}

#[test]
fn test_broadcast_replies() {
    let (mut node, _) = started(
        Broadcast::new(BroadcastConfig::new().with_topology(Topology::Given)),
        "n1",
        &["n1", "n2", "n3"],
    );
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "topology", "msg_id": 1, "topology": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}}}),
    );
    assert_eq!(
        out,
        [
            json!({"src": "n1", "dest": "c1", "body": {"type": "topology_ok", "in_reply_to": 1, "msg_id": 1}})
        ]
    );
    assert_eq!(
        node.workload().neighbours().collect::<Vec<_>>(),
        ["n2", "n3"]
    );
    let out = send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "broadcast", "msg_id": 2, "message": 1000}}),
    );
    assert_eq!(out[0]["body"]["type"], "broadcast_ok");
    // The gossip waits for the tick, then goes to both neighbours in one message each.
    assert!(node.handle_timeout(Instant::from_millis(50)).is_empty());
    let out: Vec<Value> = node
        .handle_timeout(Instant::from_millis(100))
        .iter()
        .map(|l| parse(l))
        .collect();
    assert_eq!(out.len(), 2);
    for m in &out {
        assert_eq!(m["body"]["type"], "gossip");
        assert_eq!(m["body"]["messages"], json!([1000]));
    }
    // n2 acknowledges; n3 does not, and is sent the value again after retry_after.
    let ack = json!({"src": "n2", "dest": "n1", "body": {"type": "gossip_ok", "in_reply_to": out[0]["body"]["msg_id"]}});
    assert!(send(&mut node, Instant::from_millis(150), ack).is_empty());
    let retry: Vec<Value> = node
        .handle_timeout(Instant::from_millis(700))
        .iter()
        .map(|l| parse(l))
        .collect();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0]["dest"], "n3");
    // Gossip received is acknowledged and read back; missing fields are malformed.
    let out = send(
        &mut node,
        Instant::from_millis(710),
        json!({"src": "n2", "dest": "n1", "body": {"type": "gossip", "msg_id": 4, "messages": [7, 1000]}}),
    );
    assert_eq!(
        out[0]["body"],
        json!({"type": "gossip_ok", "in_reply_to": 4, "msg_id": 6})
    );
    let out = send(
        &mut node,
        Instant::from_millis(710),
        json!({"src": "c1", "dest": "n1", "body": {"type": "read", "msg_id": 9}}),
    );
    assert_eq!(out[0]["body"]["messages"], json!([1000, 7]));
    let out = send(
        &mut node,
        Instant::from_millis(710),
        json!({"src": "c1", "dest": "n1", "body": {"type": "broadcast", "msg_id": 10}}),
    );
    assert_eq!(out[0]["body"]["code"], 12);
}

#[test]
fn test_tree_neighbours() {
    let ids: Vec<String> = (1..=7).map(|i| format!("n{i}")).collect();
    assert_eq!(tree_neighbours(&ids, "n1", 2), ["n2", "n3"]);
    assert_eq!(tree_neighbours(&ids, "n2", 2), ["n1", "n4", "n5"]);
    assert_eq!(tree_neighbours(&ids, "n7", 2), ["n3"]);
    assert_eq!(tree_neighbours(&ids, "n9", 2), Vec::<String>::new());
}

#[test]
fn test_broadcast_converges_after_partition() {
    let mut net = Net::new(
        5,
        BroadcastConfig::new().with_topology(Topology::Tree { fanout: 2 }),
    );
    for (i, node) in ["n1", "n2", "n3", "n4", "n5"].iter().enumerate() {
        let out = net.client(
            node,
            json!({"type": "broadcast", "msg_id": i, "message": i}),
        );
        assert_eq!(out[0]["body"]["type"], "broadcast_ok");
    }
    // n1..n2 cut off from n3..n5 for two seconds: nothing crosses.
    let side = |n: &str| matches!(n, "n1" | "n2");
    net.run(2000, |a, b| side(a) != side(b));
    assert_eq!(net.read("n2"), [0, 1]);
    // Healed: every value everywhere.
    net.run(2000, |_, _| false);
    for node in ["n1", "n2", "n3", "n4", "n5"] {
        assert_eq!(net.read(node), [0, 1, 2, 3, 4], "{node}");
    }
    // Quiet once converged: no more gossip.
    let before = net.sent;
    net.run(2000, |_, _| false);
    assert_eq!(net.sent, before);
}

/// A key-value service for the g-counter and kafka tests: linearizable, as simple as possible;
/// it also records the longest list any request carried to it (kafka: what one append moves).
#[derive(Default)]
struct Kv(std::collections::HashMap<String, Value>, usize);

impl Kv {
    fn answer(&mut self, m: &Value) -> Value {
        let b = &m["body"];
        for field in ["from", "to", "value"] {
            self.1 = self.1.max(b[field].as_array().map_or(0, Vec::len));
        }
        let key = b["key"].as_str().unwrap().to_owned();
        let body = match b["type"].as_str().unwrap() {
            "read" => match self.0.get(&key) {
                Some(v) => json!({"type": "read_ok", "value": v}),
                None => json!({"type": "error", "code": 20, "text": "not found"}),
            },
            "write" => {
                self.0.insert(key, b["value"].clone());
                json!({"type": "write_ok"})
            }
            "cas" => match self.0.get(&key) {
                None if b["create_if_not_exists"] == true => {
                    self.0.insert(key, b["to"].clone());
                    json!({"type": "cas_ok"})
                }
                None => json!({"type": "error", "code": 20}),
                Some(v) if *v == b["from"] => {
                    self.0.insert(key, b["to"].clone());
                    json!({"type": "cas_ok"})
                }
                Some(_) => json!({"type": "error", "code": 22}),
            },
            other => panic!("{other}"),
        };
        let mut body = body;
        body["in_reply_to"] = b["msg_id"].clone();
        json!({"src": m["dest"], "dest": m["src"], "body": body})
    }
}

/// Delivers everything between the node and the store until quiet; returns what reached clients.
fn settle<W: Workload>(
    node: &mut Node<W>,
    kv: &mut Kv,
    now: Instant,
    mut pending: Vec<Value>,
    lose_first_cas: &mut bool,
) -> Vec<Value> {
    let mut to_clients = Vec::new();
    while let Some(m) = pending.pop() {
        if m["dest"] == "seq-kv" || m["dest"] == "lin-kv" {
            if m["body"]["type"] == "cas" && *lose_first_cas {
                // Applied, but the answer is lost: the node must find out by itself.
                *lose_first_cas = false;
                kv.answer(&m);
                continue;
            }
            let reply = kv.answer(&m);
            pending.extend(send(node, now, reply));
        } else {
            to_clients.push(m);
        }
    }
    to_clients
}

#[test]
fn test_g_counter() {
    let mut kv = Kv::default();
    let mut lose = false;
    let (mut node, sent) = started(GCounter::new(GCounterConfig::new()), "n1", &["n1", "n2"]);
    // It reads its own key first.
    assert_eq!(sent[0]["body"]["type"], "read");
    assert_eq!(sent[0]["body"]["key"], "n1");
    let t = Instant::ZERO;
    settle(&mut node, &mut kv, t, sent, &mut lose);
    let out = send(
        &mut node,
        t,
        json!({"src": "c1", "dest": "n1", "body": {"type": "add", "msg_id": 1, "delta": 5}}),
    );
    let acks = settle(&mut node, &mut kv, t, out, &mut lose);
    assert_eq!(
        acks[0]["body"],
        json!({"type": "add_ok", "in_reply_to": 1, "msg_id": acks[0]["body"]["msg_id"]})
    );
    assert_eq!(kv.0["n1"], 5);
    // Another node's key counts too.
    kv.0.insert("n2".into(), json!(10));
    let out = send(
        &mut node,
        t,
        json!({"src": "c1", "dest": "n1", "body": {"type": "read", "msg_id": 2}}),
    );
    let reads = settle(&mut node, &mut kv, t, out, &mut lose);
    assert_eq!(reads[0]["body"]["value"], 15);
    assert_eq!(reads[0]["body"]["in_reply_to"], 2);
    // A cas whose answer is lost is retried, refused, checked, and the add acknowledged once.
    lose = true;
    let out = send(
        &mut node,
        t,
        json!({"src": "c1", "dest": "n1", "body": {"type": "add", "msg_id": 3, "delta": 2}}),
    );
    assert!(settle(&mut node, &mut kv, t, out, &mut lose).is_empty());
    let later = Instant::from_millis(600);
    assert!(node.poll_timeout().is_some_and(|d| d <= later));
    let out: Vec<Value> = node
        .handle_timeout(later)
        .iter()
        .map(|l| parse(l))
        .collect();
    let acks = settle(&mut node, &mut kv, later, out, &mut lose);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["body"]["in_reply_to"], 3);
    assert_eq!(kv.0["n1"], 7);
    // A restarted n1 reads its 7 back before adding.
    let (mut node, sent) = started(GCounter::new(GCounterConfig::new()), "n1", &["n1", "n2"]);
    settle(&mut node, &mut kv, t, sent, &mut lose);
    assert_eq!(node.workload().total(), 7);
    let out = send(
        &mut node,
        t,
        json!({"src": "c1", "dest": "n1", "body": {"type": "add", "msg_id": 1, "delta": 1}}),
    );
    settle(&mut node, &mut kv, t, out, &mut lose);
    assert_eq!(kv.0["n1"], 8);
    // Bad delta.
    let out = send(
        &mut node,
        t,
        json!({"src": "c1", "dest": "n1", "body": {"type": "add", "msg_id": 4, "delta": -1}}),
    );
    assert_eq!(out[0]["body"]["code"], 12);
}

mod txn {
    use super::*;
    use sinew_maelstrom::txn::{Config, Txn};

    fn txn(node: &mut Node<Txn>, now: Instant, id: u64, ops: Value) -> Value {
        let out = send(
            node,
            now,
            json!({"src": "c1", "dest": node.node_id().unwrap(), "body": {"type": "txn", "msg_id": id, "txn": ops}}),
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0]["body"]["type"], "txn_ok", "{}", out[0]);
        assert_eq!(out[0]["body"]["in_reply_to"], id);
        out[0]["body"]["txn"].clone()
    }

    /// Runs both nodes' timers at `now` and delivers what they send (unless `cut`), twice over
    /// (replicate, then its acknowledgement).
    fn exchange(a: &mut Node<Txn>, b: &mut Node<Txn>, now: Instant, cut: bool) -> usize {
        let mut delivered = 0;
        let mut queue: Vec<Value> = a
            .handle_timeout(now)
            .iter()
            .chain(b.handle_timeout(now).iter())
            .map(|l| parse(l))
            .collect();
        for _ in 0..2 {
            let mut next = Vec::new();
            for m in queue {
                if cut {
                    continue;
                }
                delivered += 1;
                let node = if m["dest"] == "n1" { &mut *a } else { &mut *b };
                next.extend(send(node, now, m));
            }
            queue = next;
        }
        delivered
    }

    #[test]
    fn test_txn_example_and_replication() {
        let (mut n1, _) = started(Txn::new(Config::new()), "n1", &["n1", "n2"]);
        let (mut n2, _) = started(Txn::new(Config::new()), "n2", &["n1", "n2"]);
        let t = Instant::ZERO;
        // The example of Maelstrom's workload documentation: state {1: 8}.
        assert_eq!(
            txn(&mut n1, t, 1, json!([["w", 1, 8]])),
            json!([["w", 1, 8]])
        );
        assert_eq!(
            txn(
                &mut n1,
                t,
                2,
                json!([["r", 1, null], ["w", 1, 6], ["w", 2, 9]])
            ),
            json!([["r", 1, 8], ["w", 1, 6], ["w", 2, 9]])
        );
        // Own writes are visible later in the same transaction; absent keys read null.
        assert_eq!(
            txn(
                &mut n1,
                t,
                3,
                json!([["w", 3, 1], ["r", 3, null], ["r", 4, null]])
            ),
            json!([["w", 3, 1], ["r", 3, 1], ["r", 4, null]])
        );
        // n2 answers at once (total availability), without n1's writes yet.
        assert_eq!(
            txn(&mut n2, t, 1, json!([["r", 1, null]])),
            json!([["r", 1, null]])
        );
        // Replicated on the next tick: n2 sees the final writes only.
        let later = Instant::from_millis(60);
        assert!(exchange(&mut n1, &mut n2, later, false) > 0);
        assert_eq!(
            txn(
                &mut n2,
                later,
                2,
                json!([["r", 1, null], ["r", 2, null], ["r", 3, null]])
            ),
            json!([["r", 1, 6], ["r", 2, 9], ["r", 3, 1]])
        );
        // Acknowledged: nothing more to send.
        assert_eq!(n1.poll_timeout(), None);
    }

    #[test]
    fn test_txn_converges_after_partition() {
        let (mut n1, _) = started(Txn::new(Config::new()), "n1", &["n1", "n2"]);
        let (mut n2, _) = started(Txn::new(Config::new()), "n2", &["n1", "n2"]);
        let t = Instant::ZERO;
        // Concurrent writes to one key on both sides of a partition.
        txn(&mut n1, t, 1, json!([["w", 7, 1]]));
        txn(&mut n2, t, 1, json!([["w", 7, 2]]));
        assert_eq!(
            exchange(&mut n1, &mut n2, Instant::from_millis(60), true),
            0
        );
        // Healed: retried, and both settle on the same (last-writer-wins) value.
        let mut now = Instant::from_millis(60);
        for _ in 0..20 {
            now = now + Duration::from_millis(100);
            exchange(&mut n1, &mut n2, now, false);
        }
        let a = txn(&mut n1, now, 2, json!([["r", 7, null]]));
        let b = txn(&mut n2, now, 2, json!([["r", 7, null]]));
        assert_eq!(a, b);
        assert_eq!(n1.poll_timeout(), None);
        assert_eq!(n2.poll_timeout(), None);
        // Malformed operations are refused whole.
        let out = send(
            &mut n1,
            now,
            json!({"src": "c1", "dest": "n1", "body": {"type": "txn", "msg_id": 9, "txn": [["x", 1, 2]]}}),
        );
        assert_eq!(out[0]["body"]["code"], 12);
    }
}

mod kafka {
    use super::*;
    use sinew_maelstrom::kafka::{Config, Kafka};

    fn ask(
        node: &mut Node<Kafka>,
        kv: &mut Kv,
        now: Instant,
        body: Value,
        lose: &mut bool,
    ) -> Vec<Value> {
        let me = node.node_id().unwrap().to_owned();
        let out = send(node, now, json!({"src": "c1", "dest": me, "body": body}));
        settle(node, kv, now, out, lose)
    }

    #[test]
    fn test_kafka() {
        let mut kv = Kv::default();
        let mut lose = false;
        let t = Instant::ZERO;
        let (mut n1, _) = started(Kafka::new(Config::new()), "n1", &["n1", "n2"]);
        let (mut n2, _) = started(Kafka::new(Config::new()), "n2", &["n1", "n2"]);
        let send_msg = |node: &mut Node<Kafka>, kv: &mut Kv, id: u64, msg: u64, lose: &mut bool| {
            let out = ask(
                node,
                kv,
                t,
                json!({"type": "send", "msg_id": id, "key": "k1", "msg": msg}),
                lose,
            );
            assert_eq!(out.len(), 1, "{out:?}");
            assert_eq!(out[0]["body"]["type"], "send_ok");
            assert_eq!(out[0]["body"]["in_reply_to"], id);
            out[0]["body"]["offset"].as_u64().unwrap()
        };
        assert_eq!(send_msg(&mut n1, &mut kv, 1, 10, &mut lose), 0);
        assert_eq!(send_msg(&mut n1, &mut kv, 2, 11, &mut lose), 1);
        // Another node appends to the same log.
        assert_eq!(send_msg(&mut n2, &mut kv, 1, 12, &mut lose), 2);
        // n1's view is stale: its cas is refused, it reads and appends after n2's.
        assert_eq!(send_msg(&mut n1, &mut kv, 3, 13, &mut lose), 3);
        let out = ask(
            &mut n2,
            &mut kv,
            t,
            json!({"type": "poll", "msg_id": 2, "offsets": {"k1": 1, "k9": 0}}),
            &mut lose,
        );
        assert_eq!(
            out[0]["body"]["msgs"],
            json!({"k1": [[1, 11], [2, 12], [3, 13]], "k9": []})
        );
        // Committed offsets only grow.
        for (id, offset) in [(3, 2), (4, 1)] {
            let out = ask(
                &mut n2,
                &mut kv,
                t,
                json!({"type": "commit_offsets", "msg_id": id, "offsets": {"k1": offset}}),
                &mut lose,
            );
            assert_eq!(out[0]["body"]["type"], "commit_offsets_ok");
        }
        let out = ask(
            &mut n1,
            &mut kv,
            t,
            json!({"type": "list_committed_offsets", "msg_id": 5, "keys": ["k1", "k2"]}),
            &mut lose,
        );
        assert_eq!(out[0]["body"]["offsets"], json!({"k1": 2}));
        // An append whose answer is lost: retried, refused, found applied; acknowledged once,
        // and the log holds the message once.
        lose = true;
        let out = ask(
            &mut n1,
            &mut kv,
            t,
            json!({"type": "send", "msg_id": 6, "key": "k1", "msg": 14}),
            &mut lose,
        );
        assert!(out.is_empty());
        let later = Instant::from_millis(600);
        let out: Vec<Value> = n1.handle_timeout(later).iter().map(|l| parse(l)).collect();
        let acks = settle(&mut n1, &mut kv, later, out, &mut lose);
        assert_eq!(acks.len(), 1, "{acks:?}");
        assert_eq!(acks[0]["body"]["offset"], 4);
        assert_eq!(kv.0["log-k1-0"], json!([10, 11, 12, 13, 14]));
        assert_eq!(n1.poll_timeout(), None);
        // Malformed requests.
        let out = ask(
            &mut n1,
            &mut kv,
            t,
            json!({"type": "send", "msg_id": 7, "key": 1, "msg": 1}),
            &mut lose,
        );
        assert_eq!(out[0]["body"]["code"], 12);
        let out = ask(
            &mut n1,
            &mut kv,
            t,
            json!({"type": "poll", "msg_id": 8, "offsets": {"k1": "x"}}),
            &mut lose,
        );
        assert_eq!(out[0]["body"]["code"], 12);
    }
}

#[test]
fn test_kafka_log_in_chunks() {
    use sinew_maelstrom::kafka::{Config, Kafka};
    let mut kv = Kv::default();
    let mut lose = false;
    let t = Instant::ZERO;
    let mut config = Config::new();
    config.chunk_len = 3;
    let (mut n1, _) = started(Kafka::new(config.clone()), "n1", &["n1", "n2"]);
    let (mut n2, _) = started(Kafka::new(config), "n2", &["n1", "n2"]);
    let mut ask = |node: &mut Node<Kafka>, body: Value| {
        let me = node.node_id().unwrap().to_owned();
        let out = send(node, t, json!({"src": "c1", "dest": me, "body": body}));
        let out = settle(node, &mut kv, t, out, &mut lose);
        assert_eq!(out.len(), 1, "{out:?}");
        out[0]["body"].clone()
    };
    // Eleven messages from two nodes whose views go stale in turn, across four chunks.
    for i in 0..11u64 {
        let node = if i % 4 < 2 { &mut n1 } else { &mut n2 };
        let ok = ask(
            node,
            json!({"type": "send", "msg_id": i, "key": "k", "msg": 100 + i}),
        );
        assert_eq!(ok["offset"], i, "{ok}");
    }
    // A poll answers from the offset asked to the end of its chunk, never more.
    let polls = [
        (0, json!([[0, 100], [1, 101], [2, 102]])),
        (4, json!([[4, 104], [5, 105]])),
        (9, json!([[9, 109], [10, 110]])),
        (11, json!([])),
        (40, json!([])),
    ];
    for (i, (from, want)) in polls.into_iter().enumerate() {
        let node = if i % 2 == 0 { &mut n1 } else { &mut n2 };
        let ok = ask(
            node,
            json!({"type": "poll", "msg_id": 50 + i, "offsets": {"k": from}}),
        );
        assert_eq!(ok["msgs"], json!({"k": want}), "poll from {from}");
    }
    // Polling on from each answer's last offset reads the whole log once, in order.
    let (mut from, mut seen) = (0u64, Vec::new());
    loop {
        let ok = ask(
            &mut n2,
            json!({"type": "poll", "msg_id": 90 + from, "offsets": {"k": from}}),
        );
        let entries = ok["msgs"]["k"].as_array().unwrap().clone();
        let Some(last) = entries.last() else { break };
        from = last[0].as_u64().unwrap() + 1;
        seen.extend(entries.iter().map(|e| e[1].as_u64().unwrap()));
    }
    assert_eq!(seen, (100..111).collect::<Vec<_>>());
    for (chunk, want) in [
        (0, json!([100, 101, 102])),
        (1, json!([103, 104, 105])),
        (2, json!([106, 107, 108])),
        (3, json!([109, 110])),
    ] {
        assert_eq!(kv.0[&format!("log-k-{chunk}")], want, "chunk {chunk}");
    }
    // No request to the store carried more than one chunk.
    assert_eq!(kv.1, 3);
}

#[test]
fn test_broadcast_huge_retry_after_does_not_panic() {
    // `retry_after` is the caller's: its multiple must saturate, not overflow.
    let (mut node, _) = started(
        Broadcast::new(
            BroadcastConfig::new()
                .with_topology(Topology::Given)
                .with_retry_after(Duration::MAX),
        ),
        "n1",
        &["n1", "n2"],
    );
    send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "topology", "msg_id": 1, "topology": {"n1": ["n2"], "n2": ["n1"]}}}),
    );
    send(
        &mut node,
        Instant::ZERO,
        json!({"src": "c1", "dest": "n1", "body": {"type": "broadcast", "msg_id": 2, "message": 7}}),
    );
    let mut now = Instant::ZERO;
    for _ in 0..3 {
        now = node.poll_timeout().unwrap_or(now).max(now) + Duration::from_millis(10);
        node.handle_timeout(now);
    }
    let out = send(
        &mut node,
        now,
        json!({"src": "c1", "dest": "n1", "body": {"type": "read", "msg_id": 3}}),
    );
    assert_eq!(out[0]["body"]["messages"], json!([7]));
}
