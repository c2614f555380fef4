//! Ring membership: joining, leaving, inserting joiners, learning and dropping leaf-set members
//! (with their tombstones), and the periodic stabilization that checks them.

use core::net::SocketAddr;
use core::time::Duration;

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::{Out, same_endpoint};
use super::routing::{Origin, Pending, Reply, Task};
use super::{
    DhtNode, Disposition, DropReason, Event, GRAVEYARD_EVERY, Op, RequestError, SUSPECTS, State,
    TOMBSTONES,
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
    /// It was a leaf-set member (not a stranger that sent Leave): a stranger's tombstone never
    /// pushes a member's out of the table.
    pub(super) member: bool,
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
        self.failed_join = None;
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

    /// Whether `node`'s id is the one bound to its address, or binding is off
    /// ([`Config::bind_ids`](super::Config::bind_ids)); an unbound one is counted.
    pub(super) fn bound(&mut self, node: NodeAddr) -> bool {
        if !self.config.bind_ids || node.is_bound() {
            return true;
        }
        self.stats.unbound_ids += 1;
        false
    }

    /// Whether `node` (this id at this address) is kept out.
    pub(super) fn tombstoned(&self, now: Instant, node: NodeAddr) -> bool {
        self.tombstones
            .iter()
            .any(|t| t.node == node && now < t.until)
    }

    /// Keeps `node` out for [`Config::tombstone`](super::Config::tombstone). When the table is
    /// full, the oldest stranger's tombstone makes room, else (for a member only) the oldest
    /// member's: strangers cannot push members' tombstones out.
    fn bury(&mut self, now: Instant, node: NodeAddr, probe: bool, member: bool) {
        self.tombstones.retain(|t| t.node != node && now < t.until);
        if self.tombstones.is_full() {
            let oldest = |members: bool| {
                self.tombstones
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.member == members)
                    .min_by_key(|(_, t)| t.until)
                    .map(|(i, _)| i)
            };
            let victim = match oldest(false) {
                Some(i) => Some(i),
                None if member => oldest(true),
                None => None,
            };
            match victim {
                Some(i) => {
                    self.tombstones.swap_remove(i);
                }
                None => return,
            }
        }
        let probation = self.probation();
        let _ = self.tombstones.push(Tombstone {
            node,
            until: now + self.config.tombstone,
            probe,
            probation_until: now + probation,
            probation_over: !probe,
            member,
        });
    }

    /// `(max_failures + 1) × stabilize_interval`, saturating: a configuration value never makes
    /// the node panic.
    pub(super) fn probation(&self) -> Duration {
        let rounds = u32::from(self.config.max_failures) + 1;
        self.config
            .stabilize_interval
            .checked_mul(rounds)
            .unwrap_or(Duration::MAX)
    }

    fn unbury(&mut self, node: NodeAddr) {
        self.tombstones.retain(|t| t.node != node);
    }

    /// Adds a node that proved itself (it answered this node, or asked to join and proved its
    /// address; not itself, not tombstoned); whether the leaf set changed.
    fn learn(&mut self, now: Instant, node: NodeAddr) -> bool {
        let me = self.config.local;
        if node.id == me.id || node.addr == me.addr || self.tombstoned(now, node) {
            return false;
        }
        self.hints.retain(|h| h.id != node.id);
        self.graveyard.retain(|g| g.id != node.id);
        self.leaf.insert(node)
    }

    /// A node heard of from another: if it would belong in the leaf set, it is probed at the
    /// next stabilization and enters only when it answers itself.
    fn hint(&mut self, now: Instant, node: NodeAddr) {
        let me = self.config.local;
        if node.id == me.id
            || node.addr == me.addr
            || self.tombstoned(now, node)
            || self.leaf.get(node.id).is_some()
            || self.hints.iter().any(|h| h.id == node.id)
            || !self.bound(node)
        {
            return;
        }
        let mut probe = self.leaf.clone();
        if !probe.insert(node) {
            return;
        }
        if self.hints.push(node).is_err() {
            self.stats.hints_dropped += 1;
            return;
        }
        self.stats.hints += 1;
        // Probe it now (and again at stabilizations while it stays a hint).
        let busy = self
            .pending
            .iter()
            .any(|p| p.to == node.addr && matches!(p.task, Task::Ping));
        if !busy && self.request_room() {
            let message_id = self.fresh_id();
            let _ = self.pending.push(Pending {
                message_id,
                to: node.addr,
                to_id: Some(node.id),
                sent: None,
                deadline: now,
                task: Task::Ping,
            });
        }
    }

    /// A probe of a hint went unanswered: it is forgotten.
    pub(super) fn forget_hint(&mut self, node: NodeAddr) {
        let before = self.hints.len();
        self.hints.retain(|h| *h != node);
        if self.hints.len() < before {
            self.stats.hints_dropped += 1;
        }
    }

    /// After the leaf set changed: the grace period for locks, re-replication, retargeting.
    fn on_leaf_change(&mut self, now: Instant, old_left: Option<NodeAddr>) {
        let me = self.config.local.id;
        let span = |n: Option<NodeAddr>| n.map_or(u128::MAX, |p| p.id.distance_to(me));
        let new_left = self.leaf.nearest_left();
        // A node alone that was joining (or whose join failed, but may have been inserted) and
        // now has neighbours has taken over keys from another ring's owner.
        let joining = self.state == State::Joining || self.failed_join.is_some();
        let joined = joining && old_left.is_none() && new_left.is_some();
        if joined {
            self.failed_join = None;
        }
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
        self.table.remove(node.id);
        if !self.leaf.remove(node.id) {
            return;
        }
        self.bury(now, node, probe, true);
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
                envelope,
            } = p.task
            {
                // Rerouted within what remains of its budget.
                self.start_request(now, origin, request, attempts, envelope);
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
        if !self.is_validated(sender.addr) {
            // First prove you receive: nothing is learnt, inserted or forwarded for an address
            // that may be forged, and the answer is no longer than the request.
            self.stats.challenges_sent += 1;
            self.send(sender.addr, message_id, Out::Withheld);
            return Disposition::Handled;
        }
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
        self.unbury(sender);
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
        len: usize,
    ) -> Disposition {
        let me = self.config.local;
        if joining.addr == me.addr {
            self.stats.self_talk += 1;
            return Disposition::Dropped(DropReason::SelfTalk);
        }
        if !self.bound(joining) {
            // The joiner's own InitConnect was checked where it arrived: a forwarder lies.
            return Disposition::Dropped(DropReason::UnboundId);
        }
        // The forwarder's bytes are the joiner's budget here: enough for a referral (a Join
        // without nodes), after which the joiner asks this node itself.
        self.credit(joining.addr, len);
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
        if self.successor_of(joining).id == me.id {
            // The joiner belongs here, on the forwarder's word only (the insertion may be
            // forged): refer it to this node, and insert it when it asks here itself (its
            // Challenge answered, its id its own). Nothing is inserted on another's word, so
            // nobody pings an address that may be a victim's and no member is pushed out or
            // displaced for a node that never spoke. (With address validation on, a joiner's
            // successor has rarely heard from it before: this is the referral it always got.)
            self.send(
                joining.addr,
                message_id,
                Out::Neighbours {
                    about: joining,
                    side: Side::Left,
                },
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
            let hop = self.route_insertion_hop(joining, best);
            if hop != best {
                // A routing-table entry: an insertion draws no answer from it, so a crashed one
                // would swallow every join near it. Probe it too.
                self.probe_route_entry(now, hop);
            }
            self.stats.forwarded += 1;
            self.send(hop.addr, message_id, Out::Insertion { joining });
        }
    }

    fn insert_joiner(&mut self, now: Instant, joining: NodeAddr, message_id: u64) {
        self.replace_same_addr(now, joining);
        self.unbury(joining);
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
        let join = self.pending.iter().position(|p| {
            p.message_id == message_id && p.sent.is_some() && matches!(p.task, Task::Join { .. })
        });
        if let Some(i) = join {
            let (to, task) = (self.pending[i].to, self.pending[i].task.clone());
            if !same_endpoint(to, sender.addr) {
                // The insertion point answered, not the node this one asked: believe only its
                // own answer. Ask it (with a fresh id: only it learns it) and take nothing yet.
                let Task::Join { attempts } = task else {
                    return Disposition::Handled;
                };
                if attempts >= self.config.max_attempts {
                    self.stats.unmatched += 1;
                    return Disposition::Dropped(DropReason::Unmatched);
                }
                let fresh = self.fresh_id();
                self.pending[i] = Pending {
                    message_id: fresh,
                    to: sender.addr,
                    to_id: None,
                    sent: None,
                    deadline: now,
                    task: Task::Join {
                        attempts: attempts + 1,
                    },
                };
                self.stats.join_referrals += 1;
                return Disposition::Handled;
            }
            self.pending.swap_remove(i);
            self.validate(sender.addr);
            return self.complete_join(now, sender, old, nodes);
        }
        if self.state == State::Joining {
            // Not the answer of the node this one asked: nothing a stranger says is taken.
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        if let Some((to, id)) = self.failed_join
            && id == message_id
            && old.is_none()
        {
            // The late answer to a join this node gave up.
            self.failed_join = None;
            if same_endpoint(to, sender.addr) {
                self.validate(sender.addr);
                return self.complete_join(now, sender, old, nodes);
            }
            // From the insertion point: join again, through it.
            let _ = self.join(now, sender.addr);
            return Disposition::Handled;
        }
        let answers = self.pending.iter().position(|p| {
            p.message_id == message_id && p.sent.is_some() && matches!(p.task, Task::Ping)
        });
        let mut changed = false;
        let mut not_answered_by = None;
        let mut verified = false;
        if let Some(i) = answers {
            let p = self.pending.swap_remove(i);
            // Whoever answered is alive, even if it was declared down (a false alarm under loss).
            self.unbury(sender);
            if same_endpoint(p.to, sender.addr) {
                self.validate(sender.addr);
            }
            if let Some(id) = p.to_id {
                let target = NodeAddr { id, addr: p.to };
                if sender == target {
                    verified = true;
                    self.suspect_missing(sender, side, &nodes);
                } else if sender.addr == target.addr {
                    // Another node answers at that address now: the one pinged is gone — if
                    // the member with that id is at that address (a hint may have named a
                    // member's id at another's address: that member is not evicted for it).
                    if let Some(gone) = self.leaf.get(id)
                        && gone.addr == target.addr
                    {
                        self.drop_member(now, gone, false);
                    }
                } else {
                    // Forwarded: the target does not count this node as a neighbour (or is not
                    // who this node thinks it is). Only an answer of its own shows it alive.
                    not_answered_by = Some(id);
                }
                if !verified {
                    // A hint that did not answer for itself is forgotten.
                    self.forget_hint(target);
                }
            }
        }
        // Only the node pinged, answering itself, enters; everything else is a hint to probe.
        if verified {
            changed |= self.learn(now, sender);
        } else {
            self.hint(now, sender);
        }
        for n in nodes.iter() {
            self.hint(now, n);
        }
        if let Some(id) = not_answered_by {
            self.note_failure(now, id);
        }
        if changed {
            self.on_leaf_change(now, old);
        }
        Disposition::Handled
    }

    /// The node this one asked to join answered with its neighbours: this node is in the ring.
    fn complete_join(
        &mut self,
        now: Instant,
        via: NodeAddr,
        old: Option<NodeAddr>,
        nodes: NodeSet<'_>,
    ) -> Disposition {
        self.unbury(via);
        let changed = self.learn(now, via);
        for n in nodes.iter() {
            self.hint(now, n);
        }
        if self.leaf.is_empty() {
            // An empty answer: keep waiting for one with neighbours.
            return Disposition::Handled;
        }
        self.pending
            .retain(|p| !matches!(p.task, Task::Join { .. }));
        if changed {
            self.on_leaf_change(now, old);
        }
        // The keys this node now owns were its successor's, which may have granted locks on
        // them: the grace period starts (also when the answer came after the join was given
        // up).
        let until = now + self.config.max_lease;
        if until > self.grace_until {
            self.grace_until = until;
        }
        self.state = State::Active;
        self.failed_join = None;
        // Probe the neighbours it was told of at once.
        self.next_stabilize = now;
        self.emit(Event::Joined { via });
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
        match self.leaf.get(sender.id) {
            Some(node) if node == sender => self.drop_member(now, node, false),
            Some(_) => {
                // Another address speaking for a member: only the node itself may leave.
                self.stats.forged_leaves += 1;
                return Disposition::Dropped(DropReason::Forged);
            }
            None => self.bury(now, sender, false, false),
        }
        for n in nodes.iter() {
            self.hint(now, n);
        }
        Disposition::Handled
    }

    /// Whether this node is in no ring of others although it tried to join one: still joining,
    /// or alone after a failed join. It owns every key by its empty view but holds none of the
    /// ring's, so it serves no request (a node that never joined is a ring of one, and does).
    pub(super) fn outside_ring(&self) -> bool {
        self.state == State::Joining || (self.leaf.is_empty() && self.failed_join.is_some())
    }

    /// Queues InitConnect to the nearest neighbour on each side and to one other member.
    pub(super) fn stabilize(&mut self, now: Instant) {
        // A member declared down that never answered during its tombstone goes to the
        // graveyard (oldest out first) rather than out of mind.
        for t in &self.tombstones {
            if now >= t.until && t.probe && t.member {
                self.graveyard.retain(|g| g.id != t.node.id);
                if self.graveyard.is_full() {
                    self.graveyard.remove(0);
                }
                let _ = self.graveyard.push(t.node);
            }
        }
        self.tombstones.retain(|t| now < t.until);
        if self.state != State::Active {
            return;
        }
        self.stabilizations = self.stabilizations.wrapping_add(1);
        let grave =
            if self.stabilizations.is_multiple_of(GRAVEYARD_EVERY) && !self.graveyard.is_empty() {
                let i = (self.stabilizations / GRAVEYARD_EVERY) as usize % self.graveyard.len();
                self.graveyard.get(i).copied()
            } else {
                None
            };
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
        let hints = self.hints.clone();
        for target in [self.leaf.nearest_right(), self.leaf.nearest_left(), other]
            .into_iter()
            .flatten()
            .chain(suspects)
            .chain(probes)
            .chain(hints)
            .chain(grave)
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
