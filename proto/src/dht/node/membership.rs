//! Ring membership: joining, leaving, inserting joiners, learning and dropping leaf-set members
//! (with their tombstones), and the periodic stabilization that checks them.

use core::net::SocketAddr;

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::Out;
use super::routing::{Origin, Pending, Reply, Task};
use super::{
    DhtNode, Disposition, DropReason, Event, Op, RequestError, SUSPECTS, State, TOMBSTONES,
};
use crate::dht::ring::LeafSet;
use crate::dht::{ErrorCode, MAX_NODE_LIST, NodeAddr, NodeId, NodeSet, Side};
use crate::time::Instant;
use crate::{Error, Result};

/// A node declared down (or gone), kept out of the leaf set until `until`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tombstone {
    pub(super) node: NodeAddr,
    pub(super) until: Instant,
    /// Declared down from timeouts or a report, not gone with Leave: it is still sent
    /// stabilization requests, and taken back if it answers (it was alive after all).
    pub(super) probe: bool,
    /// When its probation ends: until then, if it was one of this node's replicas, it still
    /// receives (and must acknowledge) replicas, so that a replica declared down by mistake
    /// cannot miss a write it would need as the next owner.
    pub(super) probation_until: Instant,
    pub(super) probation_over: bool,
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
    /// Joins the ring that `entry` belongs to. The outcome is [`Event::Joined`] or
    /// [`Event::JoinFailed`] (a join on oneself fails at once with
    /// [`ErrorCode::JoinSelf`]).
    ///
    /// # Errors
    /// [`Error::Capacity`] if the outstanding-request table is full.
    pub fn join(&mut self, now: Instant, entry: SocketAddr) -> Result<()> {
        if self.state == State::Departed {
            self.emit(Event::JoinFailed {
                error: RequestError::Departed,
            });
            return Ok(());
        }
        if entry == self.config.local.addr {
            self.emit(Event::JoinFailed {
                error: RequestError::Refused(ErrorCode::JoinSelf),
            });
            return Ok(());
        }
        self.pending
            .retain(|p| !matches!(p.task, Task::Join { .. }));
        let message_id = self.fresh_id();
        self.pending
            .push(Pending {
                message_id,
                to: entry,
                to_id: None,
                sent: None,
                deadline: now,
                task: Task::Join { attempts: 1 },
            })
            .map_err(|_| Error::Capacity)?;
        self.state = State::Joining;
        Ok(())
    }

    /// Leaves the ring gracefully: sends Leave with its leaf set to every member (so they take
    /// each other as neighbours; the keys it owned are already on its successor, a replica) and
    /// stops. Outstanding client requests fail with [`RequestError::Departed`]. Keep calling
    /// [`poll_transmit`](Self::poll_transmit) until it returns `None` to send the Leave messages.
    pub fn leave(&mut self, _now: Instant) {
        if self.state == State::Departed {
            return;
        }
        // What was queued is moot; the Leave messages must fit.
        self.queue.clear();
        let mut members: Vec<NodeAddr, MAX_NODE_LIST> = Vec::new();
        for n in self.leaf.nodes() {
            let _ = members.push(n);
        }
        for n in members {
            let id = self.fresh_id();
            self.send(n.addr, id, Out::Leave);
        }
        let pending = core::mem::take(&mut self.pending);
        for p in pending {
            if let Task::Request {
                origin: Origin::Local(id),
                request,
                ..
            } = p.task
            {
                self.emit(Event::Failed {
                    id,
                    op: request.op,
                    error: RequestError::Departed,
                });
            }
        }
        let rounds = core::mem::take(&mut self.rounds);
        for round in rounds {
            for w in round.waiters {
                if let Origin::Local(id) = w.origin {
                    self.emit(Event::Failed {
                        id,
                        op: Op::Put,
                        error: RequestError::Departed,
                    });
                }
            }
        }
        self.state = State::Departed;
    }

    /// The application (typically its health protocol) reports the node at `addr` down: it is
    /// removed from the leaf set at once, requests waiting on it are sent elsewhere, and the
    /// neighbours are asked for a replacement.
    pub fn handle_peer_down(&mut self, now: Instant, addr: SocketAddr) {
        if self.state == State::Departed {
            return;
        }
        if let Some(node) = self.leaf.get_by_addr(addr) {
            self.drop_member(now, node, true);
        }
    }

    fn tombstoned(&self, now: Instant, id: NodeId) -> bool {
        self.tombstones
            .iter()
            .any(|t| t.node.id == id && now < t.until)
    }

    fn bury(&mut self, now: Instant, node: NodeAddr, probe: bool) {
        self.tombstones
            .retain(|t| t.node.id != node.id && now < t.until);
        if self.tombstones.is_full()
            && let Some(i) = self
                .tombstones
                .iter()
                .enumerate()
                .min_by_key(|(_, t)| t.until)
                .map(|(i, _)| i)
        {
            self.tombstones.swap_remove(i);
        }
        let probation = self.config.stabilize_interval * (u32::from(self.config.max_failures) + 1);
        let _ = self.tombstones.push(Tombstone {
            node,
            until: now + self.config.tombstone,
            probe,
            probation_until: now + probation,
            probation_over: !probe,
        });
    }

    fn unbury(&mut self, id: NodeId) {
        self.tombstones.retain(|t| t.node.id != id);
    }

    /// Adds a node heard of (not itself, not tombstoned); whether the leaf set changed.
    fn learn(&mut self, now: Instant, node: NodeAddr) -> bool {
        let me = self.config.local;
        if node.id == me.id || node.addr == me.addr || self.tombstoned(now, node.id) {
            return false;
        }
        self.leaf.insert(node)
    }

    /// After the leaf set changed: the grace period for locks, re-replication, retargeting.
    fn on_leaf_change(&mut self, now: Instant, old_left: Option<NodeAddr>) {
        let me = self.config.local.id;
        let span = |n: Option<NodeAddr>| n.map_or(u128::MAX, |p| p.id.distance_to(me));
        let new_left = self.leaf.nearest_left();
        let joined = self.state == State::Joining && old_left.is_none() && new_left.is_some();
        if span(new_left) > span(old_left) || joined {
            // The arc this node owns grew: its previous owner may have granted locks there.
            let until = now + self.config.max_lease;
            if until > self.grace_until {
                self.grace_until = until;
            }
        }
        self.sweep = Some(0);
        for ri in 0..self.rounds.len() {
            self.retarget(now, ri);
        }
        self.check_rounds(now);
    }

    /// Removes a leaf-set member for good (for the tombstone period) and sends what waited on it
    /// elsewhere.
    fn drop_member(&mut self, now: Instant, node: NodeAddr, probe: bool) {
        let old = self.leaf.nearest_left();
        if !self.leaf.remove(node.id) {
            return;
        }
        self.bury(now, node, probe);
        self.stats.peers_down += 1;
        self.emit(Event::NeighbourDown { node });
        self.on_leaf_change(now, old);
        // Bounded: a rerouted request never goes to the removed node again.
        for _ in 0..PENDING {
            let Some(i) = self
                .pending
                .iter()
                .position(|p| p.to == node.addr && !matches!(p.task, Task::Join { .. }))
            else {
                break;
            };
            let p = self.pending.swap_remove(i);
            if let Task::Request {
                origin,
                request,
                attempts,
            } = p.task
            {
                self.start_request(now, origin, request, attempts);
            }
        }
        // Ask the new neighbours for replacements now.
        self.next_stabilize = now;
    }

    pub(super) fn note_failure(&mut self, now: Instant, id: NodeId) {
        if self.leaf.note_failure(id) >= self.config.max_failures
            && let Some(node) = self.leaf.get(id)
        {
            self.drop_member(now, node, true);
        }
    }

    pub(super) fn on_init_connect(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
    ) -> Disposition {
        if let Some(known) = self.leaf.get(sender.id) {
            if known.addr != sender.addr {
                // Another node already has this id.
                self.send(
                    sender.addr,
                    message_id,
                    Out::Reply(Reply::error(ErrorCode::JoinSelf)),
                );
                return Disposition::Handled;
            }
            // A member's stabilization: tell it the neighbours it should have.
            self.send_neighbours(sender, message_id);
            return Disposition::Handled;
        }
        // A (re)joining node is alive whatever others said, and the only node at its address.
        self.unbury(sender.id);
        self.replace_same_addr(now, sender);
        let mut probe = self.leaf.clone();
        if probe.insert(sender) && self.successor_of(sender) != self.config.local {
            // It belongs in this leaf set (a neighbour this node did not know, or a joiner next
            // door): take it and answer it directly, so that a member's stabilization is always
            // answered by the member itself. Its successor still inserts it formally.
            let old = self.leaf.nearest_left();
            if self.learn(now, sender) {
                self.on_leaf_change(now, old);
            }
            self.send_neighbours(sender, message_id);
        }
        self.route_insertion(now, sender, message_id);
        Disposition::Handled
    }

    fn send_neighbours(&mut self, to: NodeAddr, message_id: u64) {
        for side in [Side::Left, Side::Right] {
            self.send(to.addr, message_id, Out::Neighbours { about: to, side });
        }
    }

    /// A new node at a member's address (restarted with a new id): the old one is gone.
    fn replace_same_addr(&mut self, now: Instant, node: NodeAddr) {
        if let Some(old) = self.leaf.get_by_addr(node.addr)
            && old.id != node.id
        {
            self.drop_member(now, old, false);
        }
    }

    /// The successor of `joining`'s id as far as this node knows (the joiner itself excluded).
    fn successor_of(&self, joining: NodeAddr) -> NodeAddr {
        let mut best = self.config.local;
        for n in self.leaf.nodes() {
            if n.id != joining.id && crate::dht::ring::is_closer(joining.id, n.id, best.id) {
                best = n;
            }
        }
        best
    }

    pub(super) fn on_request_insertion(
        &mut self,
        now: Instant,
        joining: NodeAddr,
        message_id: u64,
    ) -> Disposition {
        let me = self.config.local;
        if joining.addr == me.addr {
            self.stats.self_talk += 1;
            return Disposition::Dropped(DropReason::SelfTalk);
        }
        let clash = self
            .leaf
            .get(joining.id)
            .is_some_and(|k| k.addr != joining.addr);
        if joining.id == me.id || clash {
            self.send(
                joining.addr,
                message_id,
                Out::Reply(Reply::error(ErrorCode::JoinSelf)),
            );
            return Disposition::Handled;
        }
        self.route_insertion(now, joining, message_id);
        Disposition::Handled
    }

    /// Inserts `joining` here if this node is its successor, else forwards the insertion toward
    /// it.
    fn route_insertion(&mut self, now: Instant, joining: NodeAddr, message_id: u64) {
        let best = self.successor_of(joining);
        if best.id == self.config.local.id {
            self.insert_joiner(now, joining, message_id);
        } else {
            self.stats.forwarded += 1;
            self.send(best.addr, message_id, Out::Insertion { joining });
        }
    }

    fn insert_joiner(&mut self, now: Instant, joining: NodeAddr, message_id: u64) {
        self.replace_same_addr(now, joining);
        self.unbury(joining.id);
        let old = self.leaf.nearest_left();
        let new = self.learn(now, joining);
        self.stats.insertions += 1;
        self.send_neighbours(joining, message_id);
        if new {
            let mut members: Vec<NodeAddr, MAX_NODE_LIST> = Vec::new();
            for n in self.leaf.nodes() {
                if n.id != joining.id {
                    let _ = members.push(n);
                }
            }
            for m in members {
                let side = LeafSet::<L>::side_of(m.id, joining.id);
                let id = self.fresh_id();
                self.send(
                    m.addr,
                    id,
                    Out::Announce {
                        node: joining,
                        side,
                    },
                );
            }
            self.on_leaf_change(now, old);
        }
    }

    pub(super) fn on_join(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        side: Side,
        nodes: NodeSet<'_>,
    ) -> Disposition {
        let old = self.leaf.nearest_left();
        let answers = self.pending.iter().position(|p| {
            p.message_id == message_id
                && p.sent.is_some()
                && matches!(p.task, Task::Join { .. } | Task::Ping)
        });
        let mut changed = false;
        let mut not_answered_by = None;
        if let Some(i) = answers {
            self.unbury(sender.id);
            let p = self.pending.swap_remove(i);
            if let (Task::Ping, Some(id)) = (p.task, p.to_id) {
                let target = NodeAddr { id, addr: p.to };
                if sender == target {
                    // Alive, even if it was declared down (a false alarm under loss).
                    self.unbury(id);
                    self.suspect_missing(sender, side, &nodes);
                } else if sender.addr == target.addr {
                    // Another node answers at that address now: the one pinged is gone.
                    if let Some(gone) = self.leaf.get(id) {
                        self.drop_member(now, gone, false);
                    }
                } else {
                    // Forwarded: the target does not count this node as a neighbour (or is not
                    // who this node thinks it is). Only an answer of its own shows it alive.
                    not_answered_by = Some(id);
                }
            }
        }
        changed |= self.learn(now, sender);
        for n in nodes.iter() {
            changed |= self.learn(now, n);
        }
        if let Some(id) = not_answered_by {
            self.note_failure(now, id);
        }
        if self.state == State::Joining && !self.leaf.is_empty() {
            // Any Join with neighbours completes a join (the answer to the InitConnect may have
            // been lost while the insertion point's announcements arrived).
            self.pending
                .retain(|p| !matches!(p.task, Task::Join { .. }));
            // Still `Joining` here, so the leaf-set change starts the grace period: the keys
            // this node now owns were its successor's, which may have granted locks on them.
            if changed {
                self.on_leaf_change(now, old);
            }
            let until = now + self.config.max_lease;
            if until > self.grace_until {
                self.grace_until = until;
            }
            self.state = State::Active;
            self.next_stabilize = now + self.config.stabilize_interval;
            self.emit(Event::Joined { via: sender });
            return Disposition::Handled;
        }
        if changed {
            self.on_leaf_change(now, old);
        }
        Disposition::Handled
    }

    /// A member answered a stabilization with the neighbours it knows for this node on `side`.
    /// Members of this node's leaf set on that side that the list should hold (they are nearer
    /// than its farthest node, or it is not full) but does not are suspects: the neighbour may
    /// have found them dead. They are checked at every stabilization until they answer or are
    /// declared down, instead of waiting for their turn in the round robin.
    fn suspect_missing(&mut self, sender: NodeAddr, side: Side, nodes: &NodeSet<'_>) {
        let me = self.config.local.id;
        let dist = |id: NodeId| match side {
            Side::Left => id.distance_to(me),
            Side::Right => me.distance_to(id),
        };
        let full = nodes.len() >= self.leaf.size();
        let far = nodes.iter().map(|n| dist(n.id)).max().unwrap_or(0);
        let members: Vec<NodeAddr, L> = match side {
            Side::Left => self.leaf.left().collect(),
            Side::Right => self.leaf.right().collect(),
        };
        for x in members {
            let listed = nodes.iter().any(|n| n.id == x.id);
            if x.id != sender.id
                && !listed
                && (!full || dist(x.id) < far)
                && !self.suspects.contains(&x.id)
            {
                let _ = self.suspects.push(x.id);
            }
        }
    }

    pub(super) fn on_leave(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        nodes: NodeSet<'_>,
    ) -> Disposition {
        if let Some(node) = self.leaf.get(sender.id) {
            self.drop_member(now, node, false);
        } else {
            self.bury(now, sender, false);
        }
        let old = self.leaf.nearest_left();
        let mut changed = false;
        for n in nodes.iter() {
            changed |= self.learn(now, n);
        }
        if changed {
            self.on_leaf_change(now, old);
        }
        Disposition::Handled
    }

    /// Queues InitConnect to the nearest neighbour on each side and to one other member.
    pub(super) fn stabilize(&mut self, now: Instant) {
        self.tombstones.retain(|t| now < t.until);
        if self.state != State::Active {
            return;
        }
        let probes: Vec<NodeAddr, TOMBSTONES> = self
            .tombstones
            .iter()
            .filter(|t| t.probe)
            .map(|t| t.node)
            .collect();
        let count = self.leaf.nodes().count();
        let other = self.leaf.nodes().nth(self.ping_cursor % count.max(1));
        self.ping_cursor = self.ping_cursor.wrapping_add(1);
        let leaf = &self.leaf;
        self.suspects.retain(|id| leaf.get(*id).is_some());
        let suspects: Vec<NodeAddr, SUSPECTS> = self
            .suspects
            .iter()
            .filter_map(|id| self.leaf.get(*id))
            .collect();
        for target in [self.leaf.nearest_right(), self.leaf.nearest_left(), other]
            .into_iter()
            .flatten()
            .chain(suspects)
            .chain(probes)
        {
            let busy = self
                .pending
                .iter()
                .any(|p| p.to == target.addr && matches!(p.task, Task::Ping));
            if busy || self.pending.is_full() {
                continue;
            }
            let message_id = self.fresh_id();
            let _ = self.pending.push(Pending {
                message_id,
                to: target.addr,
                to_id: Some(target.id),
                sent: None,
                deadline: now,
                task: Task::Ping,
            });
        }
    }
}
