//! The txn-rw-register workload: `txn [[f, k, v], …]` → `txn_ok` with reads filled in; totally
//! available (a node answers on its own, whatever the network does), read committed.
//!
//! A node runs a transaction against its own registers at once and answers. Each transaction
//! takes a stamp `(clock, node id)` from a Lamport clock; a register keeps the write with the
//! highest stamp. The transaction's final write per key (never an intermediate one: G1b) is then
//! replicated to every other node, a whole transaction in one message, applied all at once
//! (no reader sees half of it), acknowledged, and retried until acknowledged (partitions heal).
//! No transaction aborts (G1a). Receiving a write advances the clock past its stamp, so a
//! transaction that observed a write is stamped after it: every write-write and write-read
//! dependency points forward in stamp order, so neither G0 nor G1c cycles can form.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value, json};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::{Ctx, Message, Reject, Workload};

/// How a txn node replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How long writes wait to be batched.
    pub replicate_interval: Duration,
    /// How long a replication waits for its acknowledgement before it is sent again.
    pub retry_after: Duration,
}

impl Config {
    /// Batches for 50 ms, retries after 500 ms.
    pub const fn new() -> Config {
        Config {
            replicate_interval: Duration::from_millis(50),
            retry_after: Duration::from_millis(500),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// A write's place in the version order of its key.
type Stamp = (u64, String);

/// One committed transaction's final writes, as replicated: `[clock, node, [[k, v], …]]`.
#[derive(Clone, Debug)]
struct Committed {
    stamp: Stamp,
    writes: Vec<(Value, Value)>,
}

impl Committed {
    fn to_json(&self) -> Value {
        let writes: Vec<Value> = self.writes.iter().map(|(k, v)| json!([k, v])).collect();
        json!([self.stamp.0, self.stamp.1, writes])
    }

    fn from_json(v: &Value) -> Option<Committed> {
        let a = v.as_array()?;
        let clock = a.first()?.as_u64()?;
        let node = a.get(1)?.as_str()?.to_owned();
        let writes = a
            .get(2)?
            .as_array()?
            .iter()
            .map(|w| {
                let w = w.as_array()?;
                Some((w.first()?.clone(), w.get(1)?.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Committed {
            stamp: (clock, node),
            writes,
        })
    }
}

#[derive(Debug, Default)]
struct Peer {
    /// Index into `log` → when last sent.
    pending: BTreeMap<usize, Option<Instant>>,
    in_flight: HashMap<u64, (Instant, Vec<usize>)>,
}

/// The txn-rw-register node.
#[derive(Debug, Default)]
pub struct Txn {
    config: Config,
    clock: u64,
    /// Key (as JSON text) → value and the stamp of the write that set it.
    registers: HashMap<String, (Value, Stamp)>,
    /// This node's committed transactions, for replication.
    log: Vec<Committed>,
    peers: BTreeMap<String, Peer>,
    next_tick: Option<Instant>,
}

impl Txn {
    /// A node that replicates as `config` says.
    pub fn new(config: Config) -> Txn {
        Txn {
            config,
            ..Txn::default()
        }
    }

    /// The value of `key`, if written.
    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.registers.get(&key.to_string()).map(|(v, _)| v)
    }

    fn apply(&mut self, c: &Committed) {
        self.clock = self.clock.max(c.stamp.0);
        for (k, v) in &c.writes {
            let slot = self.registers.entry(k.to_string());
            match slot {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    if e.get().1 < c.stamp {
                        e.insert((v.clone(), c.stamp.clone()));
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((v.clone(), c.stamp.clone()));
                }
            }
        }
    }

    fn schedule(&mut self, now: Instant) {
        if !self.peers.values().any(|p| !p.pending.is_empty()) {
            self.next_tick = None;
        } else if self.next_tick.is_none() {
            self.next_tick = Some(now + self.config.replicate_interval);
        }
    }

    fn run(&mut self, ctx: &mut Ctx<'_>, ops: &[Value]) -> Result<Vec<Value>, Reject> {
        let bad = || Reject::malformed("txn: each operation must be [\"r\"|\"w\", key, value]");
        self.clock += 1;
        let stamp = (self.clock, ctx.node_id.to_owned());
        let mut own: BTreeMap<String, (Value, Value)> = BTreeMap::new();
        let mut done = Vec::with_capacity(ops.len());
        for op in ops {
            let op = op.as_array().filter(|o| o.len() == 3).ok_or_else(bad)?;
            let (f, k, v) = (op[0].as_str().ok_or_else(bad)?, &op[1], &op[2]);
            match f {
                "r" => {
                    let seen = match own.get(&k.to_string()) {
                        Some((_, v)) => v.clone(),
                        None => self.get(k).cloned().unwrap_or(Value::Null),
                    };
                    done.push(json!(["r", k, seen]));
                }
                "w" => {
                    own.insert(k.to_string(), (k.clone(), v.clone()));
                    done.push(json!(["w", k, v]));
                }
                _ => return Err(bad()),
            }
        }
        if !own.is_empty() {
            let committed = Committed {
                stamp,
                writes: own.into_values().collect(),
            };
            self.apply(&committed);
            let index = self.log.len();
            self.log.push(committed);
            for peer in self.peers.values_mut() {
                peer.pending.insert(index, None);
            }
            self.schedule(ctx.now);
        }
        Ok(done)
    }
}

impl Workload for Txn {
    fn on_init(&mut self, ctx: &mut Ctx<'_>) {
        for id in ctx.node_ids {
            if id != ctx.node_id {
                self.peers.insert(id.clone(), Peer::default());
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        match message.kind.as_str() {
            "txn" => {
                let ops = message
                    .get("txn")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Reject::malformed("txn: `txn` must be an array"))?;
                let done = self.run(ctx, ops)?;
                let mut fields = Map::new();
                fields.insert("txn".into(), Value::Array(done));
                ctx.reply(message, "txn_ok", fields);
            }
            "replicate" => {
                let txns = message
                    .get("txns")
                    .and_then(Value::as_array)
                    .and_then(|t| {
                        t.iter()
                            .map(Committed::from_json)
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| Reject::malformed("replicate: bad `txns`"))?;
                for c in &txns {
                    self.apply(c);
                }
                ctx.reply(message, "replicate_ok", Map::new());
            }
            "replicate_ok" => {
                if let Some(peer) = self.peers.get_mut(&message.src)
                    && let Some((_, sent)) = message
                        .in_reply_to
                        .and_then(|id| peer.in_flight.remove(&id))
                {
                    for i in sent {
                        peer.pending.remove(&i);
                    }
                }
                self.schedule(ctx.now);
            }
            _ => return Err(not_supported(message)),
        }
        Ok(())
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let retry = self.config.retry_after;
        for (name, peer) in &mut self.peers {
            peer.in_flight.retain(|_, (sent, _)| {
                now.saturating_duration_since(*sent) < retry.saturating_mul(4)
            });
            let due: Vec<usize> = peer
                .pending
                .iter()
                .filter(|(_, last)| last.is_none_or(|t| now.saturating_duration_since(t) >= retry))
                .map(|(&i, _)| i)
                .collect();
            if due.is_empty() {
                continue;
            }
            let txns: Vec<Value> = due.iter().map(|&i| self.log[i].to_json()).collect();
            let mut fields = Map::new();
            fields.insert("txns".into(), Value::Array(txns));
            let id = ctx.send(name, "replicate", fields);
            for &i in &due {
                peer.pending.insert(i, Some(now));
            }
            peer.in_flight.insert(id, (now, due));
        }
        self.next_tick = None;
        if self.peers.values().any(|p| !p.pending.is_empty()) {
            self.next_tick = Some(now + self.config.replicate_interval);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }
}
