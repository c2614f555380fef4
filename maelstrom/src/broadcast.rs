//! The broadcast workload: `topology`, `broadcast {message}`, `read` → `read_ok {messages}`;
//! every value reaches every node by gossip.
//!
//! Each node keeps, per neighbour, the values that neighbour has not acknowledged. A tick
//! (every [`Config::gossip_interval`] while anything is pending) sends each neighbour one
//! `gossip {messages}` with every pending value not sent in the last [`Config::retry_after`]:
//! values are batched per neighbour, and a lost gossip or a lost `gossip_ok` is retried, so
//! values cross a partition once it heals. A value is never sent back to the neighbour it came
//! from.
//!
//! The neighbours are Maelstrom's `topology` ([`Topology::Given`]) or a tree over `node_ids`
//! ([`Topology::Tree`]: node *i*'s parent is node *(i − 1) / fanout*; with a fanout of
//! `node_ids.len()` or more it is a star around the first node, the default), which needs
//! fewer hops and messages than Maelstrom's default grid.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Map, Value};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::{Ctx, Message, Reject, Workload};

/// Which nodes a node gossips with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topology {
    /// The neighbours in Maelstrom's `topology` message.
    Given,
    /// A tree over `node_ids` in their order, each node with up to `fanout` children.
    Tree {
        /// Children per node.
        fanout: usize,
    },
}

/// How a broadcast node gossips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Whose neighbours to use.
    pub topology: Topology,
    /// How long new values wait to be batched, and the tick while values are pending.
    pub gossip_interval: Duration,
    /// How long a sent value waits for its acknowledgement before it is sent again.
    pub retry_after: Duration,
}

impl Config {
    /// A star around the first node (a tree of unbounded fanout), a 100 ms tick, retries
    /// after 500 ms. In `tests/broadcast_efficiency.rs` (25 nodes, 100 ms latency, 100
    /// operations a second) this made 5.8 messages per operation and reached every node in a
    /// median 340 ms, at most 380 ms; a tree of fanout 4 took 660 / 760 ms.
    pub const fn new() -> Config {
        Config {
            topology: Topology::Tree { fanout: usize::MAX },
            gossip_interval: Duration::from_millis(100),
            retry_after: Duration::from_millis(500),
        }
    }

    /// With `topology`.
    pub const fn with_topology(mut self, topology: Topology) -> Config {
        self.topology = topology;
        self
    }

    /// With `interval` as the gossip tick.
    pub const fn with_gossip_interval(mut self, interval: Duration) -> Config {
        self.gossip_interval = interval;
        self
    }

    /// With `retry_after` before a value is sent again.
    pub const fn with_retry_after(mut self, retry_after: Duration) -> Config {
        self.retry_after = retry_after;
        self
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// What one neighbour still has to acknowledge.
#[derive(Debug, Default)]
struct Peer {
    /// Value index → when it was last sent (`None`: not yet).
    pending: BTreeMap<usize, Option<Instant>>,
    /// A gossip's `msg_id` → the values it carried and when.
    in_flight: HashMap<u64, (Instant, Vec<usize>)>,
}

/// The broadcast node.
#[derive(Debug, Default)]
pub struct Broadcast {
    config: Config,
    /// Every value seen, in arrival order, and their JSON text (for deduplication).
    values: Vec<Value>,
    seen: HashSet<String>,
    peers: BTreeMap<String, Peer>,
    next_tick: Option<Instant>,
}

impl Broadcast {
    /// A node that gossips as `config` says.
    pub fn new(config: Config) -> Broadcast {
        Broadcast {
            config,
            ..Broadcast::default()
        }
    }

    /// The values this node has, in arrival order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The nodes it gossips with.
    pub fn neighbours(&self) -> impl Iterator<Item = &str> {
        self.peers.keys().map(String::as_str)
    }

    fn set_neighbours(&mut self, now: Instant, neighbours: Vec<String>) {
        let all: Vec<usize> = (0..self.values.len()).collect();
        self.peers.retain(|name, _| neighbours.contains(name));
        for name in neighbours {
            self.peers.entry(name).or_insert_with(|| Peer {
                pending: all.iter().map(|&i| (i, None)).collect(),
                in_flight: HashMap::new(),
            });
        }
        self.schedule(now);
    }

    /// Adds a value if new; queues it for every neighbour but `from`. Returns whether it was new.
    fn add(&mut self, now: Instant, value: Value, from: Option<&str>) -> bool {
        if !self.seen.insert(value.to_string()) {
            return false;
        }
        let index = self.values.len();
        self.values.push(value);
        for (name, peer) in &mut self.peers {
            if from != Some(name.as_str()) {
                peer.pending.insert(index, None);
            }
        }
        self.schedule(now);
        true
    }

    fn schedule(&mut self, now: Instant) {
        let pending = self.peers.values().any(|p| !p.pending.is_empty());
        if !pending {
            self.next_tick = None;
        } else if self.next_tick.is_none() {
            self.next_tick = Some(now + self.config.gossip_interval);
        }
    }
}

/// The neighbours of `me` in a tree over `ids` (in their order) with `fanout` children each
/// (`usize::MAX`: a star around the first).
pub fn tree_neighbours(ids: &[String], me: &str, fanout: usize) -> Vec<String> {
    let fanout = fanout.max(1);
    let Some(i) = ids.iter().position(|id| id == me) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if i > 0 {
        out.push(ids[(i - 1) / fanout].clone());
    }
    let first = i.saturating_mul(fanout).saturating_add(1);
    out.extend(ids.iter().skip(first).take(fanout).cloned());
    out
}

impl Workload for Broadcast {
    fn on_init(&mut self, ctx: &mut Ctx<'_>) {
        if let Topology::Tree { fanout } = self.config.topology {
            let neighbours = tree_neighbours(ctx.node_ids, ctx.node_id, fanout);
            self.set_neighbours(ctx.now, neighbours);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        match message.kind.as_str() {
            "topology" => {
                let topology = message
                    .get("topology")
                    .and_then(Value::as_object)
                    .ok_or_else(|| Reject::malformed("topology: `topology` must be an object"))?;
                if self.config.topology == Topology::Given {
                    let mine = match topology.get(ctx.node_id) {
                        None => Vec::new(),
                        Some(list) => list
                            .as_array()
                            .and_then(|l| {
                                l.iter()
                                    .map(|v| v.as_str().map(str::to_owned))
                                    .collect::<Option<Vec<_>>>()
                            })
                            .ok_or_else(|| {
                                Reject::malformed("topology: neighbours must be node ids")
                            })?,
                    };
                    self.set_neighbours(ctx.now, mine);
                }
                ctx.reply(message, "topology_ok", Map::new());
            }
            "broadcast" => {
                let value = message
                    .get("message")
                    .ok_or_else(|| Reject::malformed("broadcast: missing field `message`"))?;
                self.add(ctx.now, value.clone(), None);
                ctx.reply(message, "broadcast_ok", Map::new());
            }
            "read" => {
                let mut fields = Map::new();
                fields.insert("messages".into(), Value::Array(self.values.clone()));
                ctx.reply(message, "read_ok", fields);
            }
            "gossip" => {
                let values = message
                    .get("messages")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Reject::malformed("gossip: `messages` must be an array"))?;
                for value in values {
                    self.add(ctx.now, value.clone(), Some(&message.src));
                }
                ctx.reply(message, "gossip_ok", Map::new());
            }
            "gossip_ok" => {
                let Some(peer) = self.peers.get_mut(&message.src) else {
                    return Ok(());
                };
                if let Some((_, sent)) = message
                    .in_reply_to
                    .and_then(|id| peer.in_flight.remove(&id))
                {
                    for index in sent {
                        peer.pending.remove(&index);
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
            // Forget gossips whose acknowledgement is long overdue (their values are resent).
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
            let mut fields = Map::new();
            fields.insert(
                "messages".into(),
                Value::Array(due.iter().map(|&i| self.values[i].clone()).collect()),
            );
            let id = ctx.send(name, "gossip", fields);
            for &i in &due {
                peer.pending.insert(i, Some(now));
            }
            peer.in_flight.insert(id, (now, due));
        }
        self.next_tick = None;
        if self.peers.values().any(|p| !p.pending.is_empty()) {
            self.next_tick = Some(now + self.config.gossip_interval);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.next_tick
    }
}
