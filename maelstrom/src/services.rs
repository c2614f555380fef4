//! Maelstrom's services, for a harness that plays Maelstrom's part: `lin-kv` (a linearizable
//! key-value store), `seq-kv` (sequentially consistent), `lww-kv` (replicas merged by
//! last-writer-wins, on purpose pathological) and `lin-tso` (a timestamp oracle).
//!
//! Each takes a request [`Message`] and returns its reply, at once; the network around them
//! (latency, loss, partitions) is the harness's. The key-value API is Maelstrom's: `read {key}`
//! → `read_ok {value}`, `write {key, value}` → `write_ok`, `cas {key, from, to,
//! create_if_not_exists?}` → `cas_ok`; a missing key is error 20 (key-does-not-exist), a `cas`
//! whose `from` does not match is error 22 (precondition-failed). `seq-kv` follows Maelstrom's
//! own construction (its `service.clj`): the last 32 states are kept; an operation that
//! changes nothing may be served from any state between the client's last one and the newest,
//! and an operation that changes the store is applied to the newest; each client's view only
//! moves forward.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Map, Value};

use crate::{ErrorCode, Message};

/// A service: one request in, its reply out.
pub trait Service {
    /// The service's node id (`"lin-kv"`).
    fn name(&self) -> &str;
    /// Handles one request; returns the reply.
    fn handle(&mut self, request: &Message) -> Message;
}

/// The reply to `request` from `service`.
fn reply(service: &str, request: &Message, kind: &str, fields: Map<String, Value>) -> Message {
    Message {
        src: service.to_owned(),
        dest: request.src.clone(),
        kind: kind.to_owned(),
        msg_id: None,
        in_reply_to: request.msg_id,
        fields,
    }
}

fn error(service: &str, request: &Message, code: ErrorCode, text: &str) -> Message {
    let mut fields = Map::new();
    fields.insert("code".into(), code.code().into());
    fields.insert("text".into(), text.into());
    reply(service, request, "error", fields)
}

/// One state of a key-value store; keys are compared as JSON (`1` and `"1"` differ).
#[derive(Clone, Debug, Default, PartialEq)]
struct KvState(BTreeMap<String, Value>);

/// A key-value operation's answer: the reply's type and fields, or an error's code and text.
type KvResult = Result<(&'static str, Map<String, Value>), (ErrorCode, &'static str)>;

/// What a key-value request does to a state: the reply, and the new state if it changed.
fn apply_kv(state: &KvState, request: &Message) -> (KvResult, Option<KvState>) {
    let Some(key) = request.get("key") else {
        return (Err((ErrorCode::MalformedRequest, "missing key")), None);
    };
    let key = key.to_string();
    match request.kind.as_str() {
        "read" => match state.0.get(&key) {
            Some(v) => {
                let mut f = Map::new();
                f.insert("value".into(), v.clone());
                (Ok(("read_ok", f)), None)
            }
            None => (
                Err((ErrorCode::KeyDoesNotExist, "key does not exist")),
                None,
            ),
        },
        "write" => {
            let Some(value) = request.get("value") else {
                return (Err((ErrorCode::MalformedRequest, "missing value")), None);
            };
            let changed = state.0.get(&key) != Some(value);
            let next = changed.then(|| {
                let mut s = state.clone();
                s.0.insert(key, value.clone());
                s
            });
            (Ok(("write_ok", Map::new())), next)
        }
        "cas" => {
            let (Some(from), Some(to)) = (request.get("from"), request.get("to")) else {
                return (
                    Err((ErrorCode::MalformedRequest, "cas needs from and to")),
                    None,
                );
            };
            let create = request.get("create_if_not_exists") == Some(&Value::Bool(true));
            match state.0.get(&key) {
                None if !create => (
                    Err((ErrorCode::KeyDoesNotExist, "key does not exist")),
                    None,
                ),
                Some(current) if current != from => (
                    Err((
                        ErrorCode::PreconditionFailed,
                        "current value does not match from",
                    )),
                    None,
                ),
                current => {
                    let next = (current != Some(to)).then(|| {
                        let mut s = state.clone();
                        s.0.insert(key, to.clone());
                        s
                    });
                    (Ok(("cas_ok", Map::new())), next)
                }
            }
        }
        _ => (
            Err((ErrorCode::NotSupported, "not a key-value operation")),
            None,
        ),
    }
}

fn to_reply(service: &str, request: &Message, result: KvResult) -> Message {
    match result {
        Ok((kind, fields)) => reply(service, request, kind, fields),
        Err((code, text)) => error(service, request, code, text),
    }
}

/// `lin-kv`: every operation on the one current state.
#[derive(Debug, Default)]
pub struct LinKv {
    state: KvState,
}

impl LinKv {
    /// An empty store.
    pub fn new() -> LinKv {
        LinKv::default()
    }
}

impl Service for LinKv {
    fn name(&self) -> &str {
        "lin-kv"
    }

    fn handle(&mut self, request: &Message) -> Message {
        let (result, next) = apply_kv(&self.state, request);
        if let Some(next) = next {
            self.state = next;
        }
        to_reply("lin-kv", request, result)
    }
}

/// `seq-kv`: Maelstrom's sequential buffer of the last 32 states (see the module's docs).
#[derive(Debug)]
pub struct SeqKv {
    /// The kept states, oldest first; the back is the newest, whose index is `last`.
    states: VecDeque<KvState>,
    last: u64,
    clients: HashMap<String, u64>,
    rng: XorShift,
}

/// xorshift64*: a fixed, seeded sequence, so that a harness run can be replayed.
#[derive(Debug)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl SeqKv {
    /// How many past states are kept.
    pub const BUFFER: usize = 32;

    /// An empty store whose choices of past states come from `seed` (deterministic).
    pub fn new(seed: u64) -> SeqKv {
        SeqKv {
            states: VecDeque::from([KvState::default()]),
            last: 0,
            clients: HashMap::new(),
            rng: XorShift::new(seed),
        }
    }
}

impl Service for SeqKv {
    fn name(&self) -> &str {
        "seq-kv"
    }

    fn handle(&mut self, request: &Message) -> Message {
        let oldest = self.last + 1 - self.states.len() as u64;
        let seen = self
            .clients
            .get(&request.src)
            .copied()
            .unwrap_or(0)
            .max(oldest);
        let index = seen + self.rng.next() % (self.last - seen + 1);
        let state = &self.states[(index - oldest) as usize];
        let (result, next) = apply_kv(state, request);
        if next.is_none() {
            self.clients.insert(request.src.clone(), index);
            return to_reply("seq-kv", request, result);
        }
        // A change: applied to the newest state instead.
        let newest = self.states.back().cloned().unwrap_or_default();
        let (result, next) = apply_kv(&newest, request);
        self.last += 1;
        self.states.push_back(next.unwrap_or(newest));
        if self.states.len() > Self::BUFFER {
            self.states.pop_front();
        }
        self.clients.insert(request.src.clone(), self.last);
        to_reply("seq-kv", request, result)
    }
}

/// `lww-kv`: Maelstrom's "eventual" construction — five replicas; before each operation one
/// random replica is merged into another (per key, the later write wins), then the operation
/// runs on a random replica. Writes are stamped from one counter (Maelstrom's roughly
/// synchronized clocks).
#[derive(Debug)]
pub struct LwwKv {
    replicas: Vec<BTreeMap<String, (u64, Value)>>,
    clock: u64,
    rng: XorShift,
}

impl LwwKv {
    /// Replicas in Maelstrom's default set-up.
    pub const REPLICAS: usize = 5;

    /// An empty store whose random choices come from `seed`.
    pub fn new(seed: u64) -> LwwKv {
        LwwKv {
            replicas: vec![BTreeMap::new(); Self::REPLICAS],
            clock: 0,
            rng: XorShift::new(seed),
        }
    }

    fn pick(&mut self) -> usize {
        (self.rng.next() % Self::REPLICAS as u64) as usize
    }
}

impl Service for LwwKv {
    fn name(&self) -> &str {
        "lww-kv"
    }

    fn handle(&mut self, request: &Message) -> Message {
        let (from, into) = (self.pick(), self.pick());
        let source = self.replicas[from].clone();
        for (k, (ts, v)) in source {
            let slot = self.replicas[into].entry(k).or_insert((0, Value::Null));
            if ts > slot.0 {
                *slot = (ts, v);
            }
        }
        let i = self.pick();
        let state = KvState(
            self.replicas[i]
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect(),
        );
        let (result, next) = apply_kv(&state, request);
        if let Some(next) = next {
            self.clock += 1;
            for (k, v) in next.0 {
                if state.0.get(&k) != Some(&v) {
                    self.replicas[i].insert(k, (self.clock, v));
                }
            }
        }
        to_reply("lww-kv", request, result)
    }
}

/// `lin-tso`: `ts` → `ts_ok {ts}`, strictly increasing.
#[derive(Debug, Default)]
pub struct LinTso {
    next: u64,
}

impl LinTso {
    /// An oracle whose first timestamp is 0.
    pub fn new() -> LinTso {
        LinTso::default()
    }
}

impl Service for LinTso {
    fn name(&self) -> &str {
        "lin-tso"
    }

    fn handle(&mut self, request: &Message) -> Message {
        if request.kind != "ts" {
            return error("lin-tso", request, ErrorCode::NotSupported, "only ts");
        }
        let mut fields = Map::new();
        fields.insert("ts".into(), self.next.into());
        self.next += 1;
        reply("lin-tso", request, "ts_ok", fields)
    }
}
