//! What the clients ask, per workload (Maelstrom's generators), how an operation becomes a
//! request body, and how a reply becomes the operation's completed value (the shapes of
//! [`crate::history`]'s table).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::rng::Rng;
use crate::history::WorkloadName;

/// An operation a client is about to invoke.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Invocation {
    pub(crate) f: &'static str,
    pub(crate) value: Value,
}

impl Invocation {
    fn new(f: &'static str, value: Value) -> Invocation {
        Invocation { f, value }
    }
}

/// Keys live for at most this many writes, then a fresh key replaces them (Maelstrom's
/// `--max-writes-per-key` default), so that each key's history stays small for the checkers.
const MAX_WRITES_PER_KEY: u64 = 16;
/// Keys in use at once by the kafka and txn-rw-register generators.
const ACTIVE_KEYS: usize = 3;
/// Operations on one lin-kv key before the next key (Jepsen's independent keys).
const LIN_KV_OPS_PER_KEY: u64 = 40;
/// The longest transaction (Maelstrom's `--max-txn-length` default).
const MAX_TXN_LENGTH: u64 = 4;

/// A window of keys, each retired after [`MAX_WRITES_PER_KEY`] writes.
#[derive(Debug, Default)]
struct Keys {
    active: Vec<u64>,
    writes: HashMap<u64, u64>,
    next: u64,
    used: Vec<u64>,
}

impl Keys {
    fn fill(&mut self) {
        while self.active.len() < ACTIVE_KEYS {
            self.active.push(self.next);
            self.used.push(self.next);
            self.next += 1;
        }
    }

    fn pick(&mut self, rng: &mut Rng) -> u64 {
        self.fill();
        self.active[rng.below(self.active.len() as u64) as usize]
    }

    /// The next value written to `key` (1, 2, … per key: unique writes), retiring it when full.
    fn write(&mut self, key: u64) -> u64 {
        let n = self.writes.entry(key).or_default();
        *n += 1;
        let value = *n;
        if value >= MAX_WRITES_PER_KEY {
            self.active.retain(|k| *k != key);
        }
        value
    }
}

/// The operations of one run.
#[derive(Debug)]
pub(crate) struct Generator {
    workload: WorkloadName,
    rng: Rng,
    next_value: u64,
    keys: Keys,
    /// kafka: per client, per key, the next offset to poll from.
    positions: Vec<BTreeMap<String, u64>>,
    lin_kv_ops: u64,
    /// kafka: per key, the highest offset an acknowledged send got.
    acked: BTreeMap<String, u64>,
    /// Per client, where its final operations stand.
    finals: Vec<Final>,
}

/// A client's final operations (Maelstrom's `:final-generator`).
#[derive(Debug, Clone, PartialEq)]
enum Final {
    /// Not begun.
    Ahead,
    /// kafka: polls from the start of every key, on from each answer's last entry, while
    /// acknowledged sends remain unseen. `from` holds the keys still to read; `progress`
    /// whether the last poll answered something new (true before the first).
    Polling {
        from: BTreeMap<String, u64>,
        progress: bool,
    },
    /// Over.
    Done,
}

impl Generator {
    pub(crate) fn new(workload: WorkloadName, seed: u64, clients: usize) -> Generator {
        Generator {
            workload,
            rng: Rng::new(seed, 2),
            next_value: 0,
            keys: Keys::default(),
            positions: vec![BTreeMap::new(); clients],
            lin_kv_ops: 0,
            acked: BTreeMap::new(),
            finals: vec![Final::Ahead; clients],
        }
    }

    /// The next operation for `client`.
    pub(crate) fn next(&mut self, client: usize) -> Invocation {
        let rng = &mut self.rng;
        match self.workload {
            WorkloadName::Echo => {
                Invocation::new("echo", format!("Please echo {}", rng.below(128)).into())
            }
            WorkloadName::UniqueIds => Invocation::new("generate", Value::Null),
            WorkloadName::Broadcast => {
                if rng.coin() {
                    let v = self.next_value;
                    self.next_value += 1;
                    Invocation::new("broadcast", v.into())
                } else {
                    Invocation::new("read", Value::Null)
                }
            }
            WorkloadName::GCounter => {
                if rng.coin() {
                    Invocation::new("add", rng.below(5).into())
                } else {
                    Invocation::new("read", Value::Null)
                }
            }
            WorkloadName::Kafka => self.next_kafka(client),
            WorkloadName::TxnRwRegister => {
                let len = 1 + self.rng.below(MAX_TXN_LENGTH);
                let txn: Vec<Value> = (0..len)
                    .map(|_| {
                        let key = self.keys.pick(&mut self.rng);
                        if self.rng.coin() {
                            json!(["r", key, null])
                        } else {
                            json!(["w", key, self.keys.write(key)])
                        }
                    })
                    .collect();
                Invocation::new("txn", Value::Array(txn))
            }
            WorkloadName::LinKv => {
                let key = self.lin_kv_ops / LIN_KV_OPS_PER_KEY;
                self.lin_kv_ops += 1;
                match rng.below(3) {
                    0 => Invocation::new("read", json!([key, null])),
                    1 => Invocation::new("write", json!([key, rng.below(5)])),
                    _ => Invocation::new("cas", json!([key, [rng.below(5), rng.below(5)]])),
                }
            }
        }
    }

    fn next_kafka(&mut self, client: usize) -> Invocation {
        let roll = self.rng.below(10);
        let positions = self.positions.get(client).cloned().unwrap_or_default();
        if roll < 5 || (roll >= 8 && positions.is_empty()) {
            let key = self.keys.pick(&mut self.rng);
            self.keys.write(key);
            let msg = self.next_value;
            self.next_value += 1;
            return Invocation::new("send", json!([key.to_string(), msg]));
        }
        if roll < 8 {
            let mut asked = Map::new();
            for _ in 0..2 {
                let key = self.keys.pick(&mut self.rng).to_string();
                let from = positions.get(&key).copied().unwrap_or(0);
                asked.insert(key, from.into());
            }
            return Invocation::new("poll", Value::Object(asked));
        }
        if roll == 8 {
            // Commit what this client has processed: the last offset it polled, per key.
            let offsets: Map<String, Value> = positions
                .iter()
                .map(|(k, next)| (k.clone(), next.saturating_sub(1).into()))
                .collect();
            return Invocation::new("commit_offsets", Value::Object(offsets));
        }
        let keys: Vec<Value> = positions.keys().map(|k| k.clone().into()).collect();
        Invocation::new("list_committed_offsets", Value::Array(keys))
    }

    /// The time to the next operation: uniform in `[0, 2 × mean]` (Jepsen's `stagger`).
    pub(crate) fn gap(&mut self, mean: std::time::Duration) -> std::time::Duration {
        self.rng.stagger(mean)
    }

    /// The next final operation of `client` after recovery (Maelstrom's `:final-generator`),
    /// or `None` when it has none left; asked again after each of its completions.
    ///
    /// broadcast and g-counter: one read. kafka: polls of every key used from offset 0, each
    /// next one from where the last answer ended, so that the final polls read every log
    /// however little one poll answers. A key leaves the polls when an answer for it is empty
    /// or passes the highest offset an acknowledged send got; the polls end when no key is
    /// left or a poll brought nothing new (it failed, or the node answered nothing), so a node
    /// that invents messages cannot keep the test running.
    pub(crate) fn next_final(&mut self, client: usize) -> Option<Invocation> {
        let state = self.finals.get_mut(client)?;
        match (self.workload, &mut *state) {
            (_, Final::Done) => None,
            (WorkloadName::Broadcast | WorkloadName::GCounter, _) => {
                *state = Final::Done;
                Some(Invocation::new("read", Value::Null))
            }
            (WorkloadName::Kafka, Final::Ahead) => {
                let from = self.keys.used.iter().map(|k| (k.to_string(), 0)).collect();
                *state = Final::Polling {
                    from,
                    progress: true,
                };
                self.next_final(client)
            }
            (WorkloadName::Kafka, Final::Polling { from, progress }) => {
                if !*progress || from.is_empty() {
                    *state = Final::Done;
                    return None;
                }
                *progress = false;
                let asked: Map<String, Value> =
                    from.iter().map(|(k, &f)| (k.clone(), f.into())).collect();
                Some(Invocation::new("poll", Value::Object(asked)))
            }
            _ => {
                *state = Final::Done;
                None
            }
        }
    }

    /// kafka: an `Ok` send's offset, or an `Ok` final poll's entries.
    fn completed_final(&mut self, client: usize, f: &str, value: &Value) {
        if f == "send" {
            // `[key, msg, offset]`.
            if let (Some(key), Some(offset)) = (
                value.get(0).and_then(Value::as_str).map(str::to_owned),
                value.get(2).and_then(Value::as_u64),
            ) {
                let top = self.acked.entry(key).or_default();
                *top = (*top).max(offset);
            }
            return;
        }
        let Some(Final::Polling { from, progress }) = self.finals.get_mut(client) else {
            return;
        };
        let Some(msgs) = value.as_object() else {
            return;
        };
        for (key, entries) in msgs {
            let Some(next) = from.get_mut(key) else {
                continue;
            };
            let last = entries
                .as_array()
                .and_then(|e| e.last())
                .and_then(|e| e.get(0))
                .and_then(Value::as_u64);
            match last {
                Some(last) if last >= *next => {
                    *next = last.saturating_add(1);
                    *progress = true;
                    if self.acked.get(key).is_none_or(|&top| last >= top) {
                        from.remove(key);
                    }
                }
                _ => {
                    from.remove(key);
                }
            }
        }
    }

    /// Learns from an `Ok` completion (kafka: where the client's next poll starts).
    pub(crate) fn completed(&mut self, client: usize, f: &str, value: &Value) {
        if self.workload != WorkloadName::Kafka {
            return;
        }
        if f == "send" || matches!(self.finals.get(client), Some(Final::Polling { .. })) {
            return self.completed_final(client, f, value);
        }
        if f != "poll" {
            return;
        }
        let (Some(positions), Some(msgs)) = (self.positions.get_mut(client), value.as_object())
        else {
            return;
        };
        for (key, entries) in msgs {
            let last = entries
                .as_array()
                .and_then(|e| e.last())
                .and_then(|e| e.get(0))
                .and_then(Value::as_u64);
            if let Some(last) = last {
                let next = positions.entry(key.clone()).or_default();
                *next = (*next).max(last.saturating_add(1));
            }
        }
    }
}

/// Whether an operation may be retried without effect (Maelstrom's `with-errors` set: a read
/// that timed out or met an indefinite error *failed*, it did not maybe-happen).
pub(crate) fn is_idempotent(f: &str) -> bool {
    f == "read"
}

/// The request body for an invocation: its `type` and fields.
pub(crate) fn request(workload: WorkloadName, inv: &Invocation) -> (String, Map<String, Value>) {
    let mut fields = Map::new();
    let v = &inv.value;
    let mut put = |k: &str, v: &Value| {
        fields.insert(k.into(), v.clone());
    };
    match (workload, inv.f) {
        (WorkloadName::Echo, _) => put("echo", v),
        (WorkloadName::Broadcast, "broadcast") => put("message", v),
        (WorkloadName::GCounter, "add") => put("delta", v),
        (WorkloadName::Kafka, "send") => {
            put("key", &v[0]);
            put("msg", &v[1]);
        }
        (WorkloadName::Kafka, "poll" | "commit_offsets") => put("offsets", v),
        (WorkloadName::Kafka, "list_committed_offsets") => put("keys", v),
        (WorkloadName::TxnRwRegister, _) => put("txn", v),
        (WorkloadName::LinKv, "read") => put("key", &v[0]),
        (WorkloadName::LinKv, "write") => {
            put("key", &v[0]);
            put("value", &v[1]);
        }
        (WorkloadName::LinKv, "cas") => {
            put("key", &v[0]);
            put("from", &v[1][0]);
            put("to", &v[1][1]);
        }
        _ => {}
    }
    (inv.f.to_owned(), fields)
}

/// The completed value of `inv` from its `_ok` reply's body, or what is missing.
pub(crate) fn ok_value(
    workload: WorkloadName,
    inv: &Invocation,
    body: &Map<String, Value>,
) -> Result<Value, String> {
    let field = |name: &str| {
        body.get(name)
            .cloned()
            .ok_or_else(|| format!("{}_ok without {name}", inv.f))
    };
    match (workload, inv.f) {
        (WorkloadName::Echo, _) => field("echo"),
        (WorkloadName::UniqueIds, _) => field("id"),
        (WorkloadName::Broadcast, "read") => field("messages"),
        (WorkloadName::GCounter, "read") => field("value"),
        (WorkloadName::Kafka, "send") => {
            let offset = field("offset")?;
            Ok(json!([inv.value[0], inv.value[1], offset]))
        }
        (WorkloadName::Kafka, "poll") => field("msgs"),
        (WorkloadName::Kafka, "list_committed_offsets") => field("offsets"),
        (WorkloadName::TxnRwRegister, _) => field("txn"),
        (WorkloadName::LinKv, "read") => Ok(json!([inv.value[0], field("value")?])),
        _ => Ok(inv.value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn test_requests_and_replies_have_maelstroms_fields() {
        let send = Invocation::new("send", json!(["3", 7]));
        let (kind, fields) = request(WorkloadName::Kafka, &send);
        assert_eq!(kind, "send");
        assert_eq!(Value::Object(fields), json!({"key": "3", "msg": 7}));
        let ok = ok_value(WorkloadName::Kafka, &send, &body(json!({"offset": 4}))).unwrap();
        assert_eq!(ok, json!(["3", 7, 4]));
        let cas = Invocation::new("cas", json!([1, [2, 3]]));
        let (_, fields) = request(WorkloadName::LinKv, &cas);
        assert_eq!(Value::Object(fields), json!({"key": 1, "from": 2, "to": 3}));
        let read = Invocation::new("read", json!([1, null]));
        let ok = ok_value(WorkloadName::LinKv, &read, &body(json!({"value": 9}))).unwrap();
        assert_eq!(ok, json!([1, 9]));
        let err = ok_value(
            WorkloadName::Broadcast,
            &Invocation::new("read", Value::Null),
            &Map::new(),
        );
        assert_eq!(err.unwrap_err(), "read_ok without messages");
    }

    #[test]
    fn test_txn_writes_are_unique_per_key_and_keys_retire() {
        let mut g = Generator::new(WorkloadName::TxnRwRegister, 1, 1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let inv = g.next(0);
            for mop in inv.value.as_array().unwrap() {
                assert!((1..=4).contains(&inv.value.as_array().unwrap().len()));
                if mop[0] == "w" {
                    assert!(seen.insert((mop[1].as_u64().unwrap(), mop[2].as_u64().unwrap())));
                    assert!(mop[2].as_u64().unwrap() <= MAX_WRITES_PER_KEY);
                }
            }
        }
        assert!(g.keys.used.len() > ACTIVE_KEYS);
    }

    #[test]
    fn test_kafka_polls_resume_after_what_was_seen() {
        let mut g = Generator::new(WorkloadName::Kafka, 3, 2);
        g.completed(1, "poll", &json!({"0": [[0, 5], [1, 6]], "1": []}));
        assert_eq!(g.positions[1].get("0"), Some(&2));
        assert!(!g.positions[1].contains_key("1"));
        assert!(g.positions[0].is_empty());
        let ops: Vec<Invocation> = (0..200).map(|_| g.next(1)).collect();
        assert!(
            ops.iter()
                .any(|o| o.f == "commit_offsets" && o.value == json!({"0": 1}))
        );
        assert!(ops.iter().any(|o| o.f == "send"));
        let last = g.next_final(1).unwrap();
        assert_eq!(last.f, "poll");
        assert_eq!(last.value["0"], 0);
    }

    #[test]
    fn test_kafka_final_polls_read_every_log_to_its_last_acknowledged_send() {
        let mut g = Generator::new(WorkloadName::Kafka, 3, 1);
        g.keys.used = vec![0, 1, 2];
        g.completed(0, "send", &json!(["0", 50, 4]));
        g.completed(0, "send", &json!(["1", 51, 1]));
        // First: every key from 0.
        let p = g.next_final(0).unwrap();
        assert_eq!(p.value, json!({"0": 0, "1": 0, "2": 0}));
        // Two entries of key 0 (more remain), key 1 up to its last acknowledged send, key 2
        // nothing: only key 0 is polled again, from where its answer ended.
        g.completed(
            0,
            "poll",
            &json!({"0": [[0, 1], [1, 2]], "1": [[0, 3], [1, 51]], "2": []}),
        );
        let p = g.next_final(0).unwrap();
        assert_eq!(p.value, json!({"0": 2}));
        g.completed(0, "poll", &json!({"0": [[2, 5], [3, 6]]}));
        assert_eq!(g.next_final(0).unwrap().value, json!({"0": 4}));
        g.completed(0, "poll", &json!({"0": [[4, 50]]}));
        assert_eq!(g.next_final(0), None);
        assert_eq!(g.next_final(0), None);
    }

    #[test]
    fn test_kafka_final_polls_end_on_a_poll_without_progress() {
        // A failed poll (no completion), or one answering only what was already read, or a node
        // answering entries far past every acknowledged send: the polls end.
        for answer in [
            None,
            Some(json!({"0": [[0, 1]]})),
            Some(json!({"0": [[9000, 1]]})),
        ] {
            let mut g = Generator::new(WorkloadName::Kafka, 3, 1);
            g.keys.used = vec![0];
            g.completed(0, "send", &json!(["0", 50, 100]));
            g.next_final(0).unwrap();
            g.completed(0, "poll", &json!({"0": [[0, 1]]}));
            assert_eq!(g.next_final(0).unwrap().value, json!({"0": 1}));
            if let Some(answer) = &answer {
                g.completed(0, "poll", answer);
            }
            assert_eq!(g.next_final(0), None, "after {answer:?}");
        }
    }

    #[test]
    fn test_one_final_read_for_broadcast_none_for_echo() {
        let mut g = Generator::new(WorkloadName::Broadcast, 3, 2);
        assert_eq!(g.next_final(0).unwrap().f, "read");
        assert_eq!(g.next_final(0), None);
        assert_eq!(g.next_final(1).unwrap().f, "read");
        let mut g = Generator::new(WorkloadName::Echo, 3, 2);
        assert_eq!(g.next_final(0), None);
    }
}
