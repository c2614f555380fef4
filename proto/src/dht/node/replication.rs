//! The store and its replication: puts at the owner, replication rounds to the replicas (and
//! handoff to a key's new owner after a leaf-set change), and Replicate messages.

use core::net::SocketAddr;

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::{Out, same_endpoint};
use super::routing::{Envelope, Origin, Reply};
use super::{DhtNode, Disposition, MAX_WAITERS, Op};
use crate::datagram::Transmit;
use crate::dht::{Body, ErrorCode, Header, Kind, Message, NodeAddr, NodeId};
use crate::time::Instant;

#[derive(Clone, Debug)]
pub(super) struct Entry<const KEY: usize, const VALUE: usize> {
    pub(super) key: Vec<u8, KEY>,
    pub(super) id: NodeId,
    pub(super) value: Vec<u8, VALUE>,
    /// Bumped by every write here; replication rounds compare against it.
    pub(super) version: u64,
    /// The owner this node last saw for the key (itself, if it owned it).
    pub(super) owner_seen: Option<NodeId>,
    /// The replica set (a signature of it) that holds the current value, if known.
    pub(super) replicated: Option<u64>,
    /// The accountable origin of the put that created the entry here (`None`: this node's
    /// own put, a replica or a handoff), which it counts against in
    /// [`Config::store_share`](super::Config).
    pub(super) source: Option<SocketAddr>,
    /// The node that relayed that put here, if it came relayed, which it counts against in
    /// [`Config::relay_share`](super::Config).
    pub(super) relay: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) message_id: u64,
    pub(super) version: u64,
    pub(super) deadline: Instant,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    pub(super) node: NodeAddr,
    /// The newest version of the key this target acknowledged.
    pub(super) acked: u64,
    pub(super) in_flight: Option<InFlight>,
    pub(super) retry_at: Instant,
    /// Refusals in a row (the target does not see this node as the owner yet): each doubles
    /// the wait before the next attempt, up to a probation.
    pub(super) refusals: u8,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Waiter {
    pub(super) version: u64,
    pub(super) origin: Origin,
}

/// Brings `targets` up to date with the current value of `key`: one Replicate in flight per
/// target, always carrying the value current when it is sent.
#[derive(Clone, Debug)]
pub(super) struct Round<const KEY: usize, const L: usize> {
    pub(super) key: Vec<u8, KEY>,
    pub(super) id: NodeId,
    pub(super) targets: Vec<Target, L>,
    pub(super) waiters: Vec<Waiter, MAX_WAITERS>,
}

/// An order-independent signature of a set of nodes.
fn signature(ids: impl Iterator<Item = NodeId>) -> u64 {
    let mut sig = 0u64;
    for id in ids {
        let x = id.to_u128();
        let mut z = (x as u64) ^ ((x >> 64) as u64);
        z = (z ^ (z >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        sig = sig.wrapping_add(z ^ (z >> 29)).wrapping_add(1);
    }
    sig
}

impl<
    R: CryptoRng,
    const L: usize,
    const KEYS: usize,
    const KEY: usize,
    const VALUE: usize,
    const PENDING: usize,
> DhtNode<R, L, KEYS, KEY, VALUE, PENDING>
{
    pub(super) fn serve_put(
        &mut self,
        now: Instant,
        origin: Origin,
        key: &[u8],
        value: &[u8],
        envelope: &Envelope,
    ) {
        let existing = self.rounds.iter().position(|r| r.key == key);
        let room = match existing {
            Some(ri) => !self.rounds[ri].waiters.is_full(),
            None => !self.rounds.is_full(),
        };
        let id = NodeId::from_name(key);
        // A new key counts against its accountable origin and against the node that relayed
        // it here, whatever path it took.
        let source = envelope.origin.map(|o| o.addr);
        let relay = envelope.relay;
        let new = !self.store.iter().any(|e| e.key == key);
        let held = |of: Option<SocketAddr>, by: fn(&Entry<KEY, VALUE>) -> Option<SocketAddr>| {
            of.map_or(0, |a| {
                self.store
                    .iter()
                    .filter(|e| by(e).is_some_and(|s| same_endpoint(s, a)))
                    .count()
            })
        };
        if new
            && self.over_quota(
                source.is_some()
                    && held(source, |e| e.source) >= Self::share_of(KEYS, self.config.store_share),
                relay.is_some()
                    && held(relay, |e| e.relay) >= Self::share_of(KEYS, self.config.relay_share),
            )
        {
            // This origin (or relay) has its share of the store: others keep theirs.
            self.respond(origin, Op::Put, Reply::error(ErrorCode::Full), now);
            return;
        }
        let fits =
            value.len() <= VALUE && (!new || !self.store.is_full() || self.evictable().is_some());
        if room && fits && self.challenged(origin, Op::Put) {
            return;
        }
        if !room || self.store_value(key, id, value).is_none() {
            self.stats.full += 1;
            self.respond(origin, Op::Put, Reply::error(ErrorCode::Full), now);
            return;
        }
        let me = self.config.local.id;
        let Some(entry) = self.store.iter_mut().find(|e| e.key == key) else {
            return;
        };
        if new {
            entry.source = source;
            entry.relay = relay;
        }
        entry.owner_seen = Some(me);
        entry.replicated = None;
        let version = entry.version;
        let ri = match existing {
            Some(ri) => ri,
            None => match self.create_round(key, id) {
                Some(ri) => ri,
                None => {
                    self.stats.full += 1;
                    self.respond(origin, Op::Put, Reply::error(ErrorCode::Full), now);
                    return;
                }
            },
        };
        if let Some(round) = self.rounds.get_mut(ri) {
            let _ = round.waiters.push(Waiter { version, origin });
        }
        self.check_rounds(now);
    }

    /// Stores (or overwrites) a value; the entry's index, or `None` when the store is full of
    /// keys this node must keep.
    fn store_value(&mut self, key: &[u8], id: NodeId, value: &[u8]) -> Option<usize> {
        let value: Vec<u8, VALUE> = Vec::from_slice(value).ok()?;
        if let Some(i) = self.store.iter().position(|e| e.key == key) {
            let e = &mut self.store[i];
            e.value = value;
            e.version = e.version.wrapping_add(1);
            return Some(i);
        }
        if self.store.is_full() {
            self.evict()?;
        }
        let entry = Entry {
            key: Vec::from_slice(key).ok()?,
            id,
            value,
            version: 1,
            owner_seen: None,
            replicated: None,
            source: None,
            relay: None,
        };
        self.store.push(entry).ok()?;
        Some(self.store.len() - 1)
    }

    /// Drops a key this node neither owns nor replicates (by its view) to make room.
    fn evict(&mut self) -> Option<()> {
        let i = self.evictable()?;
        self.store.swap_remove(i);
        if self.sweep.is_some() {
            self.sweep = Some(0);
        }
        Some(())
    }

    /// A stored key this node need not keep (neither owner nor replica of it, and no round
    /// under way), to make room.
    fn evictable(&self) -> Option<usize> {
        let me = self.config.local.id;
        let r = self.config.replicas;
        self.store.iter().position(|e| {
            let owner = self.leaf.owner(e.id).id;
            owner != me
                && self.leaf.rank_after(owner).is_none_or(|rank| rank >= r)
                && !self.rounds.iter().any(|round| round.key == e.key)
        })
    }

    /// Where the value of key `id` must be: this node's replicas if it owns the key (with any
    /// replica on probation), else the owner.
    fn desired_targets(&self, id: NodeId) -> Vec<NodeAddr, L> {
        let me = self.config.local.id;
        let owner = self.leaf.owner(id);
        let mut out: Vec<NodeAddr, L> = Vec::new();
        if owner.id == me {
            for n in self.leaf.replicas(self.config.replicas) {
                let _ = out.push(n);
            }
            let reach = match out.last() {
                Some(last) if out.len() >= self.config.replicas => me.distance_to(last.id),
                _ => u128::MAX,
            };
            for t in &self.tombstones {
                if !t.probation_over
                    && self.config.replicas > 0
                    && me.distance_to(t.node.id) < reach
                    && !out.contains(&t.node)
                {
                    let _ = out.push(t.node);
                }
            }
        } else {
            let _ = out.push(owner);
        }
        out
    }

    pub(super) fn retarget(&mut self, now: Instant, ri: usize) {
        let Some(id) = self.rounds.get(ri).map(|r| r.id) else {
            return;
        };
        let desired = self.desired_targets(id);
        let Some(round) = self.rounds.get_mut(ri) else {
            return;
        };
        round.targets.retain(|t| desired.contains(&t.node));
        for d in desired {
            if !round.targets.iter().any(|t| t.node == d) {
                let _ = round.targets.push(Target {
                    node: d,
                    acked: 0,
                    in_flight: None,
                    retry_at: now,
                    refusals: 0,
                });
            }
        }
    }

    fn create_round(&mut self, key: &[u8], id: NodeId) -> Option<usize> {
        let round = Round {
            key: Vec::from_slice(key).ok()?,
            id,
            targets: Vec::new(),
            waiters: Vec::new(),
        };
        self.rounds.push(round).ok()?;
        let ri = self.rounds.len() - 1;
        // Replicate messages start at once (`retry_at` in the past).
        self.retarget(Instant::ZERO, ri);
        Some(ri)
    }

    /// Acknowledges the puts whose value every target holds, and ends finished rounds.
    pub(super) fn check_rounds(&mut self, now: Instant) {
        let me = self.config.local.id;
        let mut ri = 0;
        while ri < self.rounds.len() {
            let version = {
                let key = &self.rounds[ri].key;
                self.store.iter().find(|e| e.key == *key).map(|e| e.version)
            };
            let Some(version) = version else {
                let round = self.rounds.swap_remove(ri);
                for w in round.waiters {
                    self.respond(w.origin, Op::Put, Reply::error(ErrorCode::Full), now);
                }
                continue;
            };
            let min_acked = self.rounds[ri]
                .targets
                .iter()
                .map(|t| t.acked)
                .min()
                .unwrap_or(u64::MAX);
            let id = self.rounds[ri].id;
            let owner = self.leaf.owner(id).id == me;
            // A key this node took over from a node still on probation: that node may be alive
            // and still serving it, so no write is acknowledged here until the probation ends.
            let held = self
                .tombstones
                .iter()
                .any(|t| !t.probation_over && crate::dht::ring::is_closer(id, t.node.id, me));
            let mut j = 0;
            while !held && j < self.rounds[ri].waiters.len() {
                if self.rounds[ri].waiters[j].version <= min_acked {
                    let w = self.rounds[ri].waiters.swap_remove(j);
                    // Acknowledged only by the key's owner: a write stored here while another
                    // node owned the key may lose to that node's copy.
                    let reply = if owner {
                        Reply::new(Kind::PutAck, &self.rounds[ri].key)
                    } else {
                        Reply::error(ErrorCode::NotOwner)
                    };
                    self.respond(w.origin, Op::Put, reply, now);
                } else {
                    j += 1;
                }
            }
            if self.rounds[ri].waiters.is_empty() && min_acked >= version {
                let round = self.rounds.swap_remove(ri);
                if self.leaf.owner(round.id).id == me
                    && let Some(e) = self.store.iter_mut().find(|e| e.key == round.key)
                {
                    e.replicated = Some(signature(round.targets.iter().map(|t| t.node.id)));
                }
                continue;
            }
            ri += 1;
        }
    }

    /// Walks the store after a leaf-set change: replicates owned keys to a changed replica set,
    /// offers keys whose owner changed to the new owner.
    pub(super) fn advance_sweep(&mut self, now: Instant) {
        let Some(mut i) = self.sweep else {
            return;
        };
        let me = self.config.local.id;
        let replica_sig = signature(self.leaf.replicas(self.config.replicas).map(|n| n.id));
        while i < self.store.len() {
            let (id, owner_seen, replicated) = {
                let e = &self.store[i];
                (e.id, e.owner_seen, e.replicated)
            };
            let owner = self.leaf.owner(id).id;
            let needs = if owner == me {
                owner_seen != Some(me) || replicated != Some(replica_sig)
            } else {
                owner_seen != Some(owner)
            };
            if needs && !self.rounds.iter().any(|r| r.key == self.store[i].key) {
                let key = self.store[i].key.clone();
                if self.create_round(&key, id).is_none() {
                    // Resume when a round finishes.
                    self.sweep = Some(i);
                    self.check_rounds(now);
                    return;
                }
            }
            self.store[i].owner_seen = Some(owner);
            i += 1;
        }
        self.sweep = None;
        self.check_rounds(now);
    }

    pub(super) fn on_replicate(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        key: &[u8],
        value: &[u8],
    ) -> Disposition {
        let me = self.config.local.id;
        let id = NodeId::from_name(key);
        let owner = self.leaf.owner(id);
        let full = |node: &mut Self| {
            node.stats.full += 1;
            node.send(
                sender.addr,
                message_id,
                Out::Reply(Reply::error(ErrorCode::Full)),
            );
            Disposition::Handled
        };
        if key.len() > KEY || value.len() > VALUE {
            return full(self);
        }
        let held = self
            .store
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value == value);
        if owner.id == me {
            // An offer: the owner's own value, if it has one, is authoritative. A key it lacks
            // it takes only from the node that owned the key before it by its own view (its
            // successor, for a key it took over by joining): nobody else can plant a value.
            match held {
                None if self.previous_owner(id) == Some(sender) => {
                    let Some(i) = self.store_value(key, id, value) else {
                        return full(self);
                    };
                    self.store[i].owner_seen = Some(me);
                    if self.create_round(key, id).is_none() {
                        // Replicated by the next sweep.
                        self.sweep.get_or_insert(0);
                    }
                    self.check_rounds(now);
                }
                None => {
                    self.stats.replicates_refused += 1;
                    return self.refuse_replica(sender, message_id);
                }
                Some(true) => {}
                Some(false) => return self.refuse_replica(sender, message_id),
            }
        } else if owner == sender {
            // The owner (at the address this node holds for it) replicating a write: its value
            // wins.
            let Some(i) = self.store_value(key, id, value) else {
                return full(self);
            };
            self.store[i].owner_seen = Some(owner.id);
            self.store[i].replicated = None;
        } else if held == Some(true) {
            // Not the owner by this node's view, but the value is the one held: nothing is
            // taken, and the acknowledgement ("I hold exactly this value") is true. This is
            // the common case right after an owner crashed: its successor re-replicates what
            // the replicas already hold, before they too have seen the crash.
        } else {
            // Neither this node nor the sender owns the key as this node sees the ring (an offer
            // that went astray, an owner this node does not know of yet, or a forgery): nothing
            // is taken. A real owner tries again once this node knows it.
            self.stats.replicates_refused += 1;
            return self.refuse_replica(sender, message_id);
        }
        self.send(
            sender.addr,
            message_id,
            Out::Reply(Reply::new(Kind::PutAck, key)),
        );
        Disposition::Handled
    }

    /// The owner of key `id` by this node's view were this node not in the ring: the node
    /// it took the key over from (its successor, for a key in its own arc).
    fn previous_owner(&self, id: NodeId) -> Option<NodeAddr> {
        let owner = crate::dht::ring::owner_among(id, self.leaf.nodes().map(|n| n.id))?;
        self.leaf.get(owner)
    }

    /// Answers a Replicate whose value this node does not take ([`ErrorCode::NotOwner`]): a
    /// PutAck always means "I now hold exactly this value".
    fn refuse_replica(&mut self, sender: NodeAddr, message_id: u64) -> Disposition {
        self.send(
            sender.addr,
            message_id,
            Out::Reply(Reply::error(ErrorCode::NotOwner)),
        );
        Disposition::Handled
    }

    pub(super) fn write_replica(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let me = self.config.local;
        let timeout = self.config.request_timeout;
        for ri in 0..self.rounds.len() {
            let Some(entry) = self.store.iter().find(|e| e.key == self.rounds[ri].key) else {
                continue;
            };
            let version = entry.version;
            let Some(ti) = self.rounds[ri]
                .targets
                .iter()
                .position(|t| t.in_flight.is_none() && t.retry_at <= now && t.acked < version)
            else {
                continue;
            };
            let message_id = self.rng.next_u64();
            let target = &mut self.rounds[ri].targets[ti];
            target.in_flight = Some(InFlight {
                message_id,
                version,
                deadline: now + timeout,
            });
            let destination = target.node.addr;
            let message = Message {
                header: Header {
                    message_id,
                    sender: me,
                },
                body: Body::Replicate {
                    key: &entry.key,
                    value: &entry.value,
                },
            };
            match message.encode(buf) {
                Ok(len) => {
                    self.stats.sent += 1;
                    self.stats.replicates_sent += 1;
                    return Some(Transmit { destination, len });
                }
                Err(_) => self.stats.encode_failed += 1,
            }
        }
        None
    }
}
