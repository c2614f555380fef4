//! Deliberately broken nodes, each with one mistake a first attempt plausibly makes, to show
//! that the checkers catch it. Not for use: every one fails its workload's checker on a
//! history the harness can produce.
//!
//! | node | mistake | anomaly |
//! | --- | --- | --- |
//! | [`ReusedIds`] | ids are `<node>-<counter>`: a restarted node counts from 0 again | `duplicated` |
//! | [`FireAndForgetBroadcast`] | each value is gossiped once, never retried | `lost` (under a partition) |
//! | [`DoubleCountingCounter`] | deltas go to every node in `node_ids`, this one included, which then counts its own twice | `bad-read`, `bad-final-read` |
//! | [`DirtyTxn`] | writes are replicated one at a time, in execution order | `G1b` (a peer reads an intermediate write) |
//! | [`CachedLinKv`] | reads are answered from a local cache of the values last seen | `nonlinearizable` |

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::lin_kv::{relay, service_request};
use crate::{Ctx, Message, Reject, Workload};

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// unique-ids with ids `<node id>-<counter>`: unique within one run, repeated after a restart.
#[derive(Clone, Debug, Default)]
pub struct ReusedIds {
    counter: u64,
}

impl Workload for ReusedIds {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.kind != "generate" {
            return Err(not_supported(message));
        }
        let id = format!("{}-{}", ctx.node_id, self.counter);
        self.counter += 1;
        ctx.reply(message, "generate_ok", fields([("id", id.into())]));
        Ok(())
    }
}

/// broadcast by flooding: a new value is sent once to every other node, and the
/// acknowledgements are ignored; a value sent into a partition is gone.
#[derive(Clone, Debug, Default)]
pub struct FireAndForgetBroadcast {
    values: Vec<Value>,
    seen: HashSet<String>,
}

impl FireAndForgetBroadcast {
    fn add(&mut self, value: &Value) -> bool {
        let new = self.seen.insert(value.to_string());
        if new {
            self.values.push(value.clone());
        }
        new
    }
}

impl Workload for FireAndForgetBroadcast {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        match message.kind.as_str() {
            "topology" => ctx.reply(message, "topology_ok", Map::new()),
            "broadcast" => {
                let value = message
                    .get("message")
                    .ok_or_else(|| Reject::malformed("broadcast: missing `message`"))?
                    .clone();
                if self.add(&value) {
                    let others: Vec<String> = ctx
                        .node_ids
                        .iter()
                        .filter(|n| *n != ctx.node_id)
                        .cloned()
                        .collect();
                    for peer in others {
                        ctx.send(&peer, "gossip", fields([("message", value.clone())]));
                    }
                }
                ctx.reply(message, "broadcast_ok", Map::new());
            }
            "gossip" => {
                if let Some(value) = message.get("message") {
                    self.add(value);
                }
            }
            "read" => {
                let values = Value::Array(self.values.clone());
                ctx.reply(message, "read_ok", fields([("messages", values)]));
            }
            _ => return Err(not_supported(message)),
        }
        Ok(())
    }
}

/// g-counter by sending each delta to every node of `node_ids` and summing what arrives; the
/// list includes this node, which has already counted its own delta.
#[derive(Clone, Debug, Default)]
pub struct DoubleCountingCounter {
    total: i64,
}

impl Workload for DoubleCountingCounter {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        match message.kind.as_str() {
            "add" => {
                let delta = message
                    .get("delta")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| Reject::malformed("add: `delta` must be an integer"))?;
                self.total = self.total.saturating_add(delta);
                let all: Vec<String> = ctx.node_ids.to_vec();
                for node in all {
                    ctx.send(&node, "delta", fields([("delta", delta.into())]));
                }
                ctx.reply(message, "add_ok", Map::new());
            }
            "delta" => {
                if let Some(d) = message.get("delta").and_then(Value::as_i64) {
                    self.total = self.total.saturating_add(d);
                }
            }
            "read" => ctx.reply(message, "read_ok", fields([("value", self.total.into())])),
            _ => return Err(not_supported(message)),
        }
        Ok(())
    }
}

/// txn-rw-register whose writes are replicated one at a time, in the order they executed: a
/// queue drained by one write per [`DirtyTxn::TICK`] to every other node, which applies each
/// on arrival. Between two ticks a peer exposes a write its transaction later overwrote.
#[derive(Clone, Debug, Default)]
pub struct DirtyTxn {
    registers: BTreeMap<String, Value>,
    queue: VecDeque<(Value, Value)>,
    next_tick: Option<Instant>,
}

impl DirtyTxn {
    /// How often one queued write is sent.
    pub const TICK: Duration = Duration::from_millis(100);
}

impl Workload for DirtyTxn {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        match message.kind.as_str() {
            "txn" => {
                let ops = message
                    .get("txn")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Reject::malformed("txn: `txn` must be an array"))?;
                let mut done = Vec::with_capacity(ops.len());
                let mut writes = Vec::new();
                for op in ops {
                    let (Some(f), Some(k), Some(v)) =
                        (op.get(0).and_then(Value::as_str), op.get(1), op.get(2))
                    else {
                        return Err(Reject::malformed("txn: each op is [f, key, value]"));
                    };
                    match f {
                        "r" => {
                            let read = self.registers.get(&k.to_string()).cloned();
                            let read = read.unwrap_or(Value::Null);
                            done.push(Value::Array(vec!["r".into(), k.clone(), read]));
                        }
                        "w" => {
                            self.registers.insert(k.to_string(), v.clone());
                            writes.push((k.clone(), v.clone()));
                            done.push(op.clone());
                        }
                        _ => return Err(Reject::malformed("txn: f is \"r\" or \"w\"")),
                    }
                }
                self.queue.extend(writes);
                if self.next_tick.is_none() && !self.queue.is_empty() {
                    self.next_tick = Some(ctx.now + Self::TICK);
                }
                ctx.reply(message, "txn_ok", fields([("txn", Value::Array(done))]));
            }
            "write" => {
                if let (Some(k), Some(v)) = (message.get("key"), message.get("value")) {
                    self.registers.insert(k.to_string(), v.clone());
                }
            }
            _ => return Err(not_supported(message)),
        }
        Ok(())
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if let Some((k, v)) = self.queue.pop_front() {
            let peers: Vec<String> = ctx
                .node_ids
                .iter()
                .filter(|n| *n != ctx.node_id)
                .cloned()
                .collect();
            for peer in peers {
                ctx.send(
                    &peer,
                    "write",
                    fields([("key", k.clone()), ("value", v.clone())]),
                );
            }
        }
        self.next_tick = (!self.queue.is_empty()).then(|| ctx.now + Self::TICK);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }
}

/// lin-kv that forwards to the `lin-kv` service like [`crate::lin_kv::LinKv`] but remembers
/// the last value it read or wrote per key and answers reads from that memory: another node's
/// later write is not seen.
#[derive(Clone, Debug, Default)]
pub struct CachedLinKv {
    cache: HashMap<String, Value>,
    forwarded: HashMap<u64, Message>,
}

impl Workload for CachedLinKv {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.src == "lin-kv" {
            let Some(request) = message
                .in_reply_to
                .and_then(|id| self.forwarded.remove(&id))
            else {
                return Ok(());
            };
            let key = request.get("key").map(Value::to_string).unwrap_or_default();
            let learned = match message.kind.as_str() {
                "read_ok" => message.get("value"),
                "write_ok" => request.get("value"),
                "cas_ok" => request.get("to"),
                _ => None,
            };
            if let Some(v) = learned {
                self.cache.insert(key, v.clone());
            }
            relay(ctx, &request, message);
            return Ok(());
        }
        if message.kind == "read"
            && let Some(v) = message
                .get("key")
                .and_then(|k| self.cache.get(&k.to_string()))
        {
            ctx.reply(message, "read_ok", fields([("value", v.clone())]));
            return Ok(());
        }
        let body = service_request(message)?;
        let id = ctx.send("lin-kv", &message.kind, body);
        self.forwarded.insert(id, message.clone());
        Ok(())
    }
}
