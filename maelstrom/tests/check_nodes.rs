//! The checkers on real histories: sinew's nodes, and the deliberately broken ones, driven
//! in-process through `Node::handle_line` with Maelstrom's services wired by hand, a client
//! per process recording the history as the harness does. sinew's nodes must come out valid;
//! each broken node must be caught, with the anomaly named.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value, json};
use sinew_maelstrom::broadcast::{Broadcast, Config as BroadcastConfig};
use sinew_maelstrom::broken::{
    CachedLinKv, DirtyTxn, DoubleCountingCounter, FireAndForgetBroadcast, ReusedIds,
};
use sinew_maelstrom::check::{CheckOptions, Report, Validity, check};
use sinew_maelstrom::echo::Echo;
use sinew_maelstrom::g_counter::{Config as GCounterConfig, GCounter};
use sinew_maelstrom::history::{Op, OpType, WorkloadName};
use sinew_maelstrom::kafka::{Config as KafkaConfig, Kafka};
use sinew_maelstrom::lin_kv::{Config as LinKvConfig, LinKv};
use sinew_maelstrom::services::{LinKv as LinKvService, SeqKv, Service};
use sinew_maelstrom::txn::{Config as TxnConfig, Txn};
use sinew_maelstrom::unique_ids::UniqueIds;
use sinew_maelstrom::{ErrorCode, Instant, Message, Node, Workload};

/// Any node, whatever its workload.
trait AnyNode {
    fn line(&mut self, now: Instant, line: &str) -> Vec<String>;
    fn timeout(&mut self, now: Instant) -> Vec<String>;
    fn deadline(&self) -> Option<Instant>;
}

impl<W: Workload> AnyNode for Node<W> {
    fn line(&mut self, now: Instant, line: &str) -> Vec<String> {
        self.handle_line(now, line.as_bytes())
    }
    fn timeout(&mut self, now: Instant) -> Vec<String> {
        self.handle_timeout(now)
    }
    fn deadline(&self) -> Option<Instant> {
        self.poll_timeout()
    }
}

/// What an `Ok` completion's value is, from the invocation's value and the reply's body.
type OkValue = fn(&Value, &Value) -> Value;

struct Pending {
    process: u64,
    f: String,
    value: Value,
    node: String,
    ok: OkValue,
}

/// Nodes, services and clients on virtual time; messages in one FIFO queue, delivered at
/// once unless held back, dropped across a cut.
struct Cluster {
    ids: Vec<String>,
    nodes: HashMap<String, Box<dyn AnyNode>>,
    services: HashMap<String, Box<dyn Service>>,
    queue: VecDeque<Value>,
    cut: HashSet<(String, String)>,
    now_us: u64,
    next_msg_id: u64,
    pending: HashMap<(String, u64), Pending>,
    history: Vec<Op>,
}

fn to_message(v: &Value) -> Message {
    let body = v["body"].as_object().cloned().unwrap_or_default();
    Message {
        src: v["src"].as_str().unwrap_or("").into(),
        dest: v["dest"].as_str().unwrap_or("").into(),
        kind: body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        msg_id: body.get("msg_id").and_then(Value::as_u64),
        in_reply_to: body.get("in_reply_to").and_then(Value::as_u64),
        fields: body,
    }
}

impl Cluster {
    fn new(n: usize, make: impl Fn() -> Box<dyn AnyNode>) -> Cluster {
        let ids: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut c = Cluster {
            ids: ids.clone(),
            nodes: HashMap::new(),
            services: HashMap::new(),
            queue: VecDeque::new(),
            cut: HashSet::new(),
            now_us: 0,
            next_msg_id: 1,
            pending: HashMap::new(),
            history: Vec::new(),
        };
        for id in &ids {
            c.start(id, make());
        }
        c
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.now_us)
    }

    /// (Re)starts node `id` with `node`: a fresh `init`, its answer dropped.
    fn start(&mut self, id: &str, mut node: Box<dyn AnyNode>) {
        let init = json!({"src": "c0", "dest": id, "body": {"type": "init", "msg_id": 0, "node_id": id, "node_ids": self.ids}});
        let out = node.line(self.now(), &init.to_string());
        self.nodes.insert(id.into(), node);
        self.enqueue(out);
    }

    fn with_service(mut self, service: Box<dyn Service>) -> Cluster {
        self.services.insert(service.name().into(), service);
        self
    }

    fn enqueue(&mut self, lines: Vec<String>) {
        for l in lines {
            let v: Value = serde_json::from_str(&l).expect("nodes send JSON");
            if v["dest"] != "c0" {
                self.queue.push_back(v);
            }
        }
    }

    fn partition(&mut self, a: &[&str], b: &[&str]) {
        for x in a {
            for y in b {
                self.cut.insert((x.to_string(), y.to_string()));
                self.cut.insert((y.to_string(), x.to_string()));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn push_op(
        &mut self,
        process: u64,
        kind: OpType,
        f: &str,
        value: Value,
        node: &str,
    ) -> &mut Op {
        let index = self.history.len() as u64;
        self.history.push(Op {
            index,
            time: self.now_us * 1000,
            process,
            kind,
            f: f.into(),
            value,
            node: node.into(),
            error_code: None,
            error: None,
        });
        self.history.last_mut().unwrap()
    }

    /// A client (process `process`) sends `body` to `node`: the invocation is recorded.
    fn invoke(
        &mut self,
        process: u64,
        node: &str,
        f: &str,
        value: Value,
        mut body: Value,
        ok: OkValue,
    ) {
        // c0 is the one that sends `init`.
        let client = format!("c{}", process + 1);
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        body["msg_id"] = id.into();
        self.push_op(process, OpType::Invoke, f, value.clone(), node);
        self.pending.insert(
            (client.clone(), id),
            Pending {
                process,
                f: f.into(),
                value,
                node: node.into(),
                ok,
            },
        );
        self.queue
            .push_back(json!({"src": client, "dest": node, "body": body}));
    }

    /// Delivers the first queued message `pick` accepts; false if none.
    fn deliver_first(&mut self, pick: impl Fn(&Value) -> bool) -> bool {
        let Some(i) = self.queue.iter().position(pick) else {
            return false;
        };
        let m = self.queue.remove(i).unwrap();
        let (src, dest) = (
            m["src"].as_str().unwrap().to_owned(),
            m["dest"].as_str().unwrap().to_owned(),
        );
        if self.cut.contains(&(src.clone(), dest.clone())) {
            return true;
        }
        if let Some(service) = self.services.get_mut(&dest) {
            let reply = service.handle(&to_message(&m));
            self.queue
                .push_back(serde_json::from_str(&reply.to_line()).unwrap());
        } else if let Some(node) = self.nodes.get_mut(&dest) {
            let out = node.line(Instant::from_micros(self.now_us), &m.to_string());
            self.enqueue(out);
        } else if let Some(p) = m["body"]["in_reply_to"]
            .as_u64()
            .and_then(|id| self.pending.remove(&(dest.clone(), id)))
        {
            let body = &m["body"];
            if body["type"] == "error" {
                let code = body["code"].as_u64().unwrap_or(13);
                let kind = if ErrorCode::from_code(code).is_definite() {
                    OpType::Fail
                } else {
                    OpType::Info
                };
                let op = self.push_op(p.process, kind, &p.f, p.value, &p.node);
                op.error_code = u32::try_from(code).ok();
                op.error = body["text"].as_str().map(str::to_owned);
            } else {
                let value = (p.ok)(&p.value, body);
                self.push_op(p.process, OpType::Ok, &p.f, value, &p.node);
            }
        }
        true
    }

    /// Delivers everything, and runs timers, for `ms` of virtual time in 10 ms steps.
    fn run(&mut self, ms: u64) {
        let end = self.now_us + ms * 1000;
        loop {
            while self.deliver_first(|_| true) {}
            if self.now_us >= end {
                break;
            }
            self.now_us += 10_000;
            let now = self.now();
            let ids: Vec<String> = self.nodes.keys().cloned().collect();
            for id in ids {
                let node = self.nodes.get_mut(&id).unwrap();
                if node.deadline().is_some_and(|d| d <= now) {
                    let out = node.timeout(now);
                    self.enqueue(out);
                }
            }
        }
    }

    /// Invokes and runs until it completes (or `ms` pass; then it is recorded `Info`).
    fn call(&mut self, process: u64, node: &str, f: &str, value: Value, body: Value, ok: OkValue) {
        self.invoke(process, node, f, value, body, ok);
        self.run(0);
        let mut waited = 0;
        while self.pending.values().any(|p| p.process == process) && waited < 2000 {
            self.run(10);
            waited += 10;
        }
        self.time_out_pending();
    }

    /// Every request still unanswered becomes `Info` (the client gives up).
    fn time_out_pending(&mut self) {
        let mut late: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        late.sort_by_key(|p| p.process);
        for p in late {
            let op = self.push_op(p.process, OpType::Info, &p.f, p.value, &p.node);
            op.error = Some("timeout".into());
        }
    }

    fn check(&self, workload: WorkloadName) -> Report {
        check(workload, &self.history, &CheckOptions::default())
    }
}

fn same(invoked: &Value, _: &Value) -> Value {
    invoked.clone()
}

fn echo_ok(_: &Value, body: &Value) -> Value {
    body["echo"].clone()
}

fn id_ok(_: &Value, body: &Value) -> Value {
    body["id"].clone()
}

fn messages_ok(_: &Value, body: &Value) -> Value {
    body["messages"].clone()
}

fn value_ok(_: &Value, body: &Value) -> Value {
    body["value"].clone()
}

fn txn_ok(_: &Value, body: &Value) -> Value {
    body["txn"].clone()
}

fn kv_read_ok(invoked: &Value, body: &Value) -> Value {
    json!([invoked[0], body["value"]])
}

fn assert_valid(r: &Report) {
    assert_eq!(r.valid, Validity::Valid, "{r:#?}");
}

fn assert_caught(r: &Report, anomaly: &str) {
    assert_eq!(r.valid, Validity::Invalid, "{r:#?}");
    assert!(r.has_anomaly(anomaly), "expected {anomaly}: {r:#?}");
}

// ---- echo, unique-ids ----

#[test]
fn test_echo_history_is_valid() {
    let mut c = Cluster::new(2, || Box::new(Node::new(Echo)));
    for i in 0..4u64 {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        let text = format!("Please echo {i}");
        c.call(
            i,
            node,
            "echo",
            json!(text),
            json!({"type": "echo", "echo": text}),
            echo_ok,
        );
    }
    let r = c.check(WorkloadName::Echo);
    assert_valid(&r);
    assert_eq!(r.checkers[0].details["ok-count"], 4);
}

fn generate_around_restart(c: &mut Cluster, restart: impl FnOnce(&mut Cluster)) {
    for p in 0..3 {
        c.call(
            p,
            "n1",
            "generate",
            Value::Null,
            json!({"type": "generate"}),
            id_ok,
        );
        c.call(
            p,
            "n2",
            "generate",
            Value::Null,
            json!({"type": "generate"}),
            id_ok,
        );
    }
    restart(c);
    for p in 0..3 {
        c.call(
            p,
            "n1",
            "generate",
            Value::Null,
            json!({"type": "generate"}),
            id_ok,
        );
    }
}

#[test]
fn test_unique_ids_history_across_restart_is_valid() {
    let mut c = Cluster::new(2, || Box::new(Node::new(UniqueIds::from_os().unwrap())));
    generate_around_restart(&mut c, |c| {
        c.start("n1", Box::new(Node::new(UniqueIds::from_os().unwrap())))
    });
    let r = c.check(WorkloadName::UniqueIds);
    assert_valid(&r);
    assert_eq!(r.checkers[0].details["acknowledged-count"], 9);
}

#[test]
fn test_broken_unique_ids_reuse_ids_after_restart() {
    let mut c = Cluster::new(2, || Box::new(Node::new(ReusedIds::default())));
    generate_around_restart(&mut c, |_| {});
    assert_valid(&c.check(WorkloadName::UniqueIds));
    let mut c = Cluster::new(2, || Box::new(Node::new(ReusedIds::default())));
    generate_around_restart(&mut c, |c| {
        c.start("n1", Box::new(Node::new(ReusedIds::default())))
    });
    let r = c.check(WorkloadName::UniqueIds);
    assert_caught(&r, "duplicated");
    assert_eq!(r.checkers[0].details["duplicated-count"], 3);
}

// ---- broadcast ----

/// Broadcasts 0..6 on alternating nodes while n3 is cut off, heals, and reads everywhere.
fn broadcast_through_partition(c: &mut Cluster) {
    let topology: Map<String, Value> = c.ids.iter().map(|id| (id.clone(), json!([]))).collect();
    for (p, id) in c.ids.clone().iter().enumerate() {
        c.call(
            p as u64,
            id,
            "topology",
            Value::Null,
            json!({"type": "topology", "topology": topology}),
            same,
        );
    }
    c.history.clear();
    c.partition(&["n3"], &["n1", "n2"]);
    for v in 0..6u64 {
        let node = if v % 2 == 0 { "n1" } else { "n3" };
        c.call(
            v % 3,
            node,
            "broadcast",
            json!(v),
            json!({"type": "broadcast", "message": v}),
            same,
        );
        c.call(
            v % 3,
            "n2",
            "read",
            Value::Null,
            json!({"type": "read"}),
            messages_ok,
        );
        c.run(50);
    }
    c.run(300);
    c.heal();
    c.run(3000);
    for (p, id) in c.ids.clone().iter().enumerate() {
        c.call(
            p as u64,
            id,
            "read",
            Value::Null,
            json!({"type": "read"}),
            messages_ok,
        );
    }
}

#[test]
fn test_broadcast_history_through_partition_is_valid() {
    let mut c = Cluster::new(3, || {
        Box::new(Node::new(Broadcast::new(BroadcastConfig::new())))
    });
    broadcast_through_partition(&mut c);
    let r = c.check(WorkloadName::Broadcast);
    assert_valid(&r);
    let d = &r.checkers[0].details;
    assert_eq!(d["stable-count"], 6, "{d}");
    assert_eq!(d["lost-count"], 0);
}

#[test]
fn test_broken_broadcast_loses_values_sent_into_a_partition() {
    let mut c = Cluster::new(3, || Box::new(Node::new(FireAndForgetBroadcast::default())));
    broadcast_through_partition(&mut c);
    let r = c.check(WorkloadName::Broadcast);
    assert_caught(&r, "lost");
    // Nothing crossed the cut, and nothing was resent. The last read, n3's, lacks what
    // n1 took (lost); what n3 took is missing from n1's and n2's final reads but present in
    // that last one (stale).
    assert_eq!(r.checkers[0].details["lost"], json!([0, 2, 4]));
    assert_eq!(r.checkers[0].details["stale"], json!([1, 3, 5]));
}

// ---- g-counter ----

fn count(c: &mut Cluster) {
    for (p, delta) in [(0u64, 1i64), (1, 2), (2, 3), (0, 4)] {
        let node = format!("n{}", p + 1);
        c.call(
            p,
            &node,
            "add",
            json!(delta),
            json!({"type": "add", "delta": delta}),
            same,
        );
    }
    c.run(3000);
    for p in 0..3u64 {
        let node = format!("n{}", p + 1);
        c.call(
            p,
            &node,
            "read",
            Value::Null,
            json!({"type": "read"}),
            value_ok,
        );
    }
}

#[test]
fn test_g_counter_history_is_valid() {
    let mut c = Cluster::new(3, || {
        Box::new(Node::new(GCounter::new(GCounterConfig::new())))
    })
    .with_service(Box::new(SeqKv::new(7)));
    count(&mut c);
    let r = c.check(WorkloadName::GCounter);
    assert_valid(&r);
    assert_eq!(r.checkers[0].details["final-reads"], json!([10, 10, 10]));
}

#[test]
fn test_broken_g_counter_double_counts() {
    let mut c = Cluster::new(3, || Box::new(Node::new(DoubleCountingCounter::default())));
    count(&mut c);
    let r = c.check(WorkloadName::GCounter);
    assert_caught(&r, "bad-final-read");
    // Every node counts the others' deltas once and its own twice.
    assert_eq!(r.checkers[0].details["final-reads"], json!([15, 12, 13]));
}

// ---- txn-rw-register ----

#[test]
fn test_txn_history_is_valid() {
    let mut c = Cluster::new(2, || Box::new(Node::new(Txn::new(TxnConfig::new()))));
    let t = |ops: Value| json!({"type": "txn", "txn": ops});
    let w = json!([["r", 1, null], ["w", 1, 1], ["w", 1, 2], ["w", 2, 1]]);
    c.call(0, "n1", "txn", w.clone(), t(w), txn_ok);
    let r = json!([["r", 1, null], ["r", 2, null]]);
    c.call(1, "n2", "txn", r.clone(), t(r.clone()), txn_ok);
    c.run(1000);
    c.call(1, "n2", "txn", r.clone(), t(r.clone()), txn_ok);
    let w = json!([["r", 1, null], ["w", 1, 3]]);
    c.call(1, "n2", "txn", w.clone(), t(w), txn_ok);
    c.run(1000);
    c.call(0, "n1", "txn", r.clone(), t(r), txn_ok);
    let report = c.check(WorkloadName::TxnRwRegister);
    assert_valid(&report);
    // The reads did see the writes.
    let last = c.history.last().unwrap();
    assert_eq!(last.value, json!([["r", 1, 3], ["r", 2, 1]]));
}

#[test]
fn test_broken_txn_exposes_an_intermediate_write() {
    let mut c = Cluster::new(2, || Box::new(Node::new(DirtyTxn::default())));
    let t = |ops: Value| json!({"type": "txn", "txn": ops});
    let w = json!([["w", 1, 1], ["w", 1, 2]]);
    c.call(0, "n1", "txn", w.clone(), t(w), txn_ok);
    let r = json!([["r", 1, null]]);
    let mut reads = Vec::new();
    for _ in 0..3 {
        c.call(1, "n2", "txn", r.clone(), t(r.clone()), txn_ok);
        reads.push(c.history.last().unwrap().value[0][2].clone());
        c.run(100);
    }
    // Nothing, then the first write (overwritten in its own transaction), then the last.
    assert_eq!(reads, [json!(null), json!(1), json!(2)]);
    let report = c.check(WorkloadName::TxnRwRegister);
    assert_caught(&report, "G1b");
    assert!(
        report.checkers[0].anomalies[0]
            .detail
            .contains("an intermediate write of op 0"),
        "{report:#?}"
    );
}

// ---- lin-kv ----

fn kv_ops(c: &mut Cluster) {
    let read = |k: i64| (json!([k, null]), json!({"type": "read", "key": k}));
    let write = |k: i64, v: i64| {
        (
            json!([k, v]),
            json!({"type": "write", "key": k, "value": v}),
        )
    };
    let cas = |k: i64, f: i64, t: i64| {
        (
            json!([k, [f, t]]),
            json!({"type": "cas", "key": k, "from": f, "to": t}),
        )
    };
    let (v, b) = read(1);
    c.call(0, "n1", "read", v, b, kv_read_ok);
    let (v, b) = write(1, 1);
    c.call(0, "n1", "write", v, b, same);
    let (v, b) = read(1);
    c.call(0, "n1", "read", v, b, kv_read_ok);
    let (v, b) = write(1, 2);
    c.call(1, "n2", "write", v, b, same);
    let (v, b) = read(1);
    c.call(0, "n1", "read", v, b, kv_read_ok);
    let (v, b) = cas(1, 1, 3);
    c.call(1, "n2", "cas", v, b, same);
    let (v, b) = cas(1, 2, 3);
    c.call(1, "n2", "cas", v, b, same);
    let (v, b) = read(1);
    c.call(1, "n2", "read", v, b, kv_read_ok);
}

#[test]
fn test_lin_kv_history_is_valid() {
    let mut c = Cluster::new(2, || Box::new(Node::new(LinKv::new(LinKvConfig::new()))))
        .with_service(Box::new(LinKvService::new()));
    kv_ops(&mut c);
    let kinds: Vec<OpType> = c
        .history
        .iter()
        .filter(|o| o.is_completion())
        .map(|o| o.kind)
        .collect();
    use OpType::{Fail, Ok};
    assert_eq!(kinds, [Fail, Ok, Ok, Ok, Ok, Fail, Ok, Ok]);
    let r = c.check(WorkloadName::LinKv);
    assert_valid(&r);
    assert_eq!(c.history.last().unwrap().value, json!([1, 3]));
}

#[test]
fn test_broken_lin_kv_serves_stale_reads() {
    let mut c = Cluster::new(2, || Box::new(Node::new(CachedLinKv::default())))
        .with_service(Box::new(LinKvService::new()));
    kv_ops(&mut c);
    // n1 answered from its cache: 1, though n2's write of 2 had completed.
    let third_read = c
        .history
        .iter()
        .filter(|o| o.kind == OpType::Ok && o.f == "read")
        .nth(1)
        .unwrap();
    assert_eq!(third_read.value, json!([1, 1]));
    assert_caught(&c.check(WorkloadName::LinKv), "nonlinearizable");
}

// ---- kafka ----

#[test]
fn test_kafka_history_is_valid() {
    let mut c = Cluster::new(2, || Box::new(Node::new(Kafka::new(KafkaConfig::new()))))
        .with_service(Box::new(LinKvService::new()));
    fn send_ok(invoked: &Value, body: &Value) -> Value {
        json!([invoked[0], invoked[1], body["offset"]])
    }
    fn msgs_ok(_: &Value, body: &Value) -> Value {
        body["msgs"].clone()
    }
    fn offsets_ok(_: &Value, body: &Value) -> Value {
        body["offsets"].clone()
    }
    for (p, m) in [(0u64, 10), (1, 11), (0, 12)] {
        let node = format!("n{}", p + 1);
        c.call(
            p,
            &node,
            "send",
            json!(["k1", m]),
            json!({"type": "send", "key": "k1", "msg": m}),
            send_ok,
        );
    }
    c.call(
        1,
        "n2",
        "poll",
        json!({"k1": 0}),
        json!({"type": "poll", "offsets": {"k1": 0}}),
        msgs_ok,
    );
    c.call(
        1,
        "n2",
        "commit_offsets",
        json!({"k1": 2}),
        json!({"type": "commit_offsets", "offsets": {"k1": 2}}),
        same,
    );
    c.call(
        0,
        "n1",
        "list_committed_offsets",
        json!(["k1"]),
        json!({"type": "list_committed_offsets", "keys": ["k1"]}),
        offsets_ok,
    );
    let polled = c
        .history
        .iter()
        .find(|o| o.f == "poll" && o.kind == OpType::Ok)
        .unwrap();
    assert_eq!(polled.value, json!({"k1": [[0, 10], [1, 11], [2, 12]]}));
    let r = c.check(WorkloadName::Kafka);
    assert_valid(&r);
    assert_eq!(r.checkers[0].details["send-count"], 3);
}
