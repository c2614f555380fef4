//! The node's inputs and outputs: received messages (dispatched to their handlers), the passing
//! of time, the outgoing queue and what [`DhtNode::poll_transmit`] writes.

use core::net::SocketAddr;

use heapless::Vec;
use rand_core::CryptoRng;

use super::millis;
use super::routing::{Envelope, Origin, Pending, Reply, Task};
use super::{DhtNode, Disposition, DropReason, Event, RequestError, State};
use crate::datagram::{DatagramCore, Transmit};
use crate::dht::{
    Body, ErrorCode, Header, MAX_NODE_LIST, Message, NodeAddr, NodeId, NodeSet, Side, VIEW_SIDE,
};
use crate::time::Instant;

#[derive(Clone, Debug)]
pub(super) enum Out<const KEY: usize, const VALUE: usize> {
    Reply(Reply<KEY, VALUE>),
    /// A Join telling `about` its neighbours on `side`, computed when it is sent.
    Neighbours {
        about: NodeAddr,
        side: Side,
    },
    /// A Join telling the receiver of one new neighbour.
    Announce {
        node: NodeAddr,
        side: Side,
    },
    /// A Leave with this node's leaf set.
    Leave,
    /// A RequestInsertion forwarded toward the joiner's place.
    Insertion {
        joining: NodeAddr,
    },
    /// A Withheld to an address that has not proved it receives (the message id is the
    /// request's; the cookie is computed when it is sent). A bare Challenge if its 51 bytes do
    /// not fit the address's budget.
    Withheld,
    /// The Echo of another node's Challenge (the message id is its cookie).
    Echo,
    /// A Route answer with the entries of these columns of row `row` of the routing table,
    /// computed when it is sent.
    Route {
        row: u8,
        columns: u16,
    },
    /// A View answer with this node's leaf set, computed when it is sent.
    View,
}

#[derive(Clone, Debug)]
pub(super) struct Outgoing<const KEY: usize, const VALUE: usize> {
    to: SocketAddr,
    message_id: u64,
    out: Out<KEY, VALUE>,
}

/// Whether two socket addresses name the same endpoint (an IPv4 address and its IPv4-mapped
/// IPv6 form are the same).
pub(in crate::dht) fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    use core::net::IpAddr;
    // The port first, and no canonical form to build when both are IPv4 (the usual case):
    // this runs over the validated and pending tables for every datagram.
    a.port() == b.port()
        && match (a.ip(), b.ip()) {
            (IpAddr::V4(x), IpAddr::V4(y)) => x == y,
            (x, y) => x.to_canonical() == y.to_canonical(),
        }
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
    pub(super) fn send(&mut self, to: SocketAddr, message_id: u64, out: Out<KEY, VALUE>) {
        if self
            .queue
            .push_back(Outgoing {
                to,
                message_id,
                out,
            })
            .is_err()
        {
            self.stats.queue_full += 1;
        }
    }

    /// Handles one received message (a UDP datagram, or a TCP frame without its length prefix)
    /// that came from `from` (the datagram's source address, or the peer of the TCP connection
    /// it came on). Answers go to the address in the message's header (its sender's listening
    /// address); a message whose header names another sender address than `from` is dropped
    /// as [`DropReason::SourceMismatch`] (and counted), so that nobody can make this node answer,
    /// forward or send anything to an address that did not send the message.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition {
        self.stats.received += 1;
        let message = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                return Disposition::Malformed(e);
            }
        };
        if self.state == State::Departed {
            self.stats.after_leave += 1;
            return Disposition::Dropped(DropReason::Departed);
        }
        if !same_endpoint(from, message.header.sender.addr) {
            self.stats.source_mismatch += 1;
            return Disposition::Dropped(DropReason::SourceMismatch);
        }
        self.credit(from, bytes.len());
        let Header { message_id, sender } = message.header;
        let me = self.config.local;
        if sender.addr == me.addr {
            self.stats.self_talk += 1;
            return Disposition::Dropped(DropReason::SelfTalk);
        }
        // Address validation is about the address alone, whatever id the header names.
        match message.body {
            Body::Challenge => return self.on_challenge(now, sender.addr, message_id),
            Body::Echo => return self.on_echo(sender.addr, message_id),
            Body::Withheld { cookie } => {
                return self.on_withheld(now, sender.addr, message_id, cookie);
            }
            _ => {}
        }
        let client_request = matches!(
            message.body,
            Body::Get { .. }
                | Body::Put { .. }
                | Body::Lock { .. }
                | Body::Unlock { .. }
                | Body::ViewRequest
        );
        if !client_request && !self.bound(sender) {
            return Disposition::Dropped(DropReason::UnboundId);
        }
        if sender.id == me.id {
            if message.body == Body::InitConnect {
                self.send(
                    sender.addr,
                    message_id,
                    Out::Reply(Reply::error(ErrorCode::JoinSelf)),
                );
                return Disposition::Handled;
            }
            self.stats.self_talk += 1;
            return Disposition::Dropped(DropReason::SelfTalk);
        }
        if self.leaf.get(sender.id) == Some(sender) {
            self.leaf.note_alive(sender.id);
            self.suspects.retain(|s| *s != sender.id);
        }
        if self.table.get(sender.id) == Some(sender) {
            self.table.note_alive(sender.id);
        } else if !client_request && self.is_validated(sender.addr) {
            // A node that talks to this one may belong in the routing table: a hint to probe,
            // once its address proved a round trip (a forged source draws no probe).
            self.route_hint(now, sender);
        }
        match message.body {
            Body::Get { .. }
            | Body::Put { .. }
            | Body::Lock { .. }
            | Body::Unlock { .. }
            | Body::Relayed { .. } => self.on_request(now, sender, message_id, &message.body),
            Body::Replicate { key, value } => {
                self.on_replicate(now, sender, message_id, key, value)
            }
            Body::Value { .. }
            | Body::PutAck { .. }
            | Body::Locked { .. }
            | Body::LockDenied { .. }
            | Body::Unlocked { .. }
            | Body::Error { .. } => self.on_response(now, sender, message_id, &message.body),
            Body::InitConnect => self.on_init_connect(now, sender, message_id),
            Body::RequestInsertion { joining } => {
                self.on_request_insertion(now, joining, message_id, bytes.len())
            }
            Body::Challenge | Body::Echo | Body::Withheld { .. } => Disposition::Handled,
            Body::Join { side, nodes } => self.on_join(now, sender, message_id, side, nodes),
            Body::Leave { nodes } => self.on_leave(now, sender, nodes),
            Body::RouteRequest { row, columns } => {
                self.on_route_request(now, sender, message_id, row, columns)
            }
            Body::Route { nodes, .. } => self.on_route(now, sender, message_id, nodes),
            Body::ViewRequest => self.on_view_request(sender, message_id),
            Body::View { .. } => {
                // Nodes never ask for views; only clients do.
                self.stats.unmatched += 1;
                Disposition::Dropped(DropReason::Unmatched)
            }
        }
    }

    /// A client asks for this node's neighbourhood, to send to owners directly. A node that is
    /// not in a ring with others (alone after a failed join, or still joining) would name
    /// itself the owner of every key: it refuses with [`ErrorCode::NotOwner`]. The View is
    /// larger than the request, so an address that has not proved it receives gets a
    /// Challenge first.
    fn on_view_request(&mut self, sender: NodeAddr, message_id: u64) -> Disposition {
        if !self.in_ring() {
            self.send(
                sender.addr,
                message_id,
                Out::Reply(Reply::error(ErrorCode::NotOwner)),
            );
            return Disposition::Handled;
        }
        if !self.is_validated(sender.addr) {
            self.stats.challenges_sent += 1;
            self.send(sender.addr, message_id, Out::Withheld);
            return Disposition::Handled;
        }
        self.send(sender.addr, message_id, Out::View);
        Disposition::Handled
    }

    /// Lets time pass: expires request attempts (retrying, failing loudly, or declaring
    /// unresponsive neighbours down) and starts the periodic stabilization.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Departed {
            return;
        }
        while let Some(i) = self
            .pending
            .iter()
            .position(|p| p.sent.is_some() && p.deadline <= now)
        {
            let p = self.pending.swap_remove(i);
            self.stats.timeouts += 1;
            match p.task {
                Task::Ping => {
                    if let Some(id) = p.to_id {
                        self.forget_hint(NodeAddr { id, addr: p.to });
                        self.note_failure(now, id);
                    }
                }
                Task::Route { .. } => {
                    if let Some(id) = p.to_id {
                        self.route_failure(id);
                    }
                }
                Task::Join { attempts } => {
                    if attempts < self.config.max_attempts {
                        let _ = self.pending.push(Pending {
                            sent: None,
                            task: Task::Join {
                                attempts: attempts + 1,
                            },
                            ..p
                        });
                    } else {
                        self.state = State::Active;
                        self.failed_join = Some((p.to, p.message_id));
                        self.emit(Event::JoinFailed {
                            error: RequestError::Timeout,
                        });
                    }
                }
                Task::Request {
                    origin,
                    request,
                    attempts,
                    ..
                } => match origin {
                    Origin::Local(id) => {
                        if let Some(to) = p.to_id {
                            self.note_failure(now, to);
                            self.route_failure(to);
                        }
                        if attempts < self.config.max_attempts {
                            self.stats.retries += 1;
                            let envelope = self.own_envelope(now);
                            self.start_request(now, origin, request, attempts + 1, envelope);
                        } else {
                            self.emit(Event::Failed {
                                id,
                                op: request.op,
                                error: RequestError::Timeout,
                            });
                        }
                    }
                    Origin::Remote { .. } => {
                        if let Some(to) = p.to_id {
                            self.route_failure(to);
                        }
                        // Tell the requester at once, so it can try again along another path.
                        self.respond(origin, request.op, Reply::error(ErrorCode::NotOwner), now);
                    }
                },
            }
        }
        let mut failed: Vec<NodeId, 8> = Vec::new();
        for round in self.rounds.iter_mut() {
            for t in round.targets.iter_mut() {
                if t.in_flight.is_some_and(|f| f.deadline <= now) {
                    t.in_flight = None;
                    t.retry_at = now;
                    self.stats.timeouts += 1;
                    if !failed.contains(&t.node.id) {
                        let _ = failed.push(t.node.id);
                    }
                }
            }
        }
        for id in failed {
            self.note_failure(now, id);
        }
        let mut probation_ended = false;
        for t in self.tombstones.iter_mut() {
            if !t.probation_over && now >= t.probation_until {
                t.probation_over = true;
                probation_ended = true;
            }
        }
        if probation_ended {
            // Writes no longer wait for replicas that stayed unreachable through probation.
            for ri in 0..self.rounds.len() {
                self.retarget(now, ri);
            }
            self.check_rounds(now);
        }
        if now >= self.next_stabilize {
            self.next_stabilize = now + self.config.stabilize_interval;
            self.stabilize(now);
            if self.state == State::Active {
                self.route_refresh(now);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work to do (an instant in the past
    /// means now), or `None` when only a message or a call can wake the node.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if !self.queue.is_empty() {
            consider(Instant::ZERO);
        }
        if self.state == State::Departed {
            return next;
        }
        for p in &self.pending {
            consider(if p.sent.is_some() {
                p.deadline
            } else {
                Instant::ZERO
            });
        }
        for round in &self.rounds {
            let version = self
                .store
                .iter()
                .find(|e| e.key == round.key)
                .map_or(0, |e| e.version);
            for t in &round.targets {
                match t.in_flight {
                    Some(f) => consider(f.deadline),
                    None if t.acked < version => consider(t.retry_at),
                    None => {}
                }
            }
        }
        if self.sweep.is_some() && !self.rounds.is_full() {
            consider(Instant::ZERO);
        }
        if !self.leaf.is_empty()
            || self.tombstones.iter().any(|t| t.probe)
            || !self.hints.is_empty()
        {
            consider(self.next_stabilize);
        }
        for t in &self.tombstones {
            if !t.probation_over {
                consider(t.probation_until);
            }
        }
        next
    }

    /// Takes the next event, if any.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        self.events.pop_front()
    }

    /// Writes the next message to send into `buf` (give it [`Self::MAX_TRANSMIT_LEN`] bytes) and
    /// says which peer it goes to; `None` when there is nothing to send. Call until `None`.
    ///
    /// Answers and membership messages go first, then requests, then replicas.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if self.state != State::Departed {
            self.advance_sweep(now);
        }
        loop {
            if let Some(o) = self.queue.pop_front() {
                if let Some(len) = self.write_out(&o, buf) {
                    return Some(Transmit {
                        destination: o.to,
                        len,
                    });
                }
                continue;
            }
            if self.state == State::Departed {
                return None;
            }
            if let Some(i) = self.pending.iter().position(|p| p.sent.is_none()) {
                // This node's own request has a request timeout; one it relays, what remains of
                // its budget (also when it is sent again after a Challenge).
                let timeout = match &self.pending[i].task {
                    Task::Request {
                        origin: Origin::Remote { .. },
                        envelope,
                        ..
                    } => envelope.expires.saturating_duration_since(now),
                    _ => self.config.request_timeout,
                };
                if let Task::Request {
                    origin: origin @ Origin::Remote { .. },
                    request,
                    ..
                } = &self.pending[i].task
                    && timeout <= self.config.hop_allowance
                {
                    let (origin, op) = (*origin, request.op);
                    self.pending.swap_remove(i);
                    self.stats.expired += 1;
                    self.respond(origin, op, Reply::error(ErrorCode::Expired), now);
                    continue;
                }
                let me = self.config.local;
                let p = &mut self.pending[i];
                p.sent = Some(now);
                p.deadline = now + timeout;
                let budget_ms = u16::try_from(millis(timeout)).unwrap_or(u16::MAX);
                let body = match &p.task {
                    // This node's own request is a client's: plain, its sender accountable.
                    Task::Request {
                        request,
                        envelope: Envelope { origin: None, .. },
                        ..
                    } => request.body(),
                    Task::Request {
                        request,
                        envelope:
                            Envelope {
                                origin: Some(origin),
                                ..
                            },
                        ..
                    } => Body::Relayed {
                        budget_ms,
                        origin: *origin,
                        request: request.relayed(),
                    },
                    Task::Ping | Task::Join { .. } => Body::InitConnect,
                    Task::Route { row, columns } => Body::RouteRequest {
                        row: *row,
                        columns: *columns,
                    },
                };
                let message = Message {
                    header: Header {
                        message_id: p.message_id,
                        sender: me,
                    },
                    body,
                };
                let to = p.to;
                match message.encode(buf) {
                    Ok(len) => {
                        self.stats.sent += 1;
                        return Some(Transmit {
                            destination: to,
                            len,
                        });
                    }
                    Err(_) => {
                        self.stats.encode_failed += 1;
                        continue;
                    }
                }
            }
            return self.write_replica(now, buf);
        }
    }

    fn write_out(&mut self, o: &Outgoing<KEY, VALUE>, buf: &mut [u8]) -> Option<usize> {
        let header = Header {
            message_id: o.message_id,
            sender: self.config.local,
        };
        let encoded = match &o.out {
            Out::Reply(reply) => Message {
                header,
                body: reply.body(),
            }
            .encode(buf),
            Out::Neighbours { about, side } => {
                let list = self.leaf.view_for(*about, *side);
                Message {
                    header,
                    body: Body::Join {
                        side: *side,
                        nodes: NodeSet::Slice(&list),
                    },
                }
                .encode(buf)
            }
            Out::Announce { node, side } => Message {
                header,
                body: Body::Join {
                    side: *side,
                    nodes: NodeSet::Slice(core::slice::from_ref(node)),
                },
            }
            .encode(buf),
            Out::Leave => {
                let mut list: Vec<NodeAddr, MAX_NODE_LIST> = Vec::new();
                for n in self.leaf.nodes() {
                    let _ = list.push(n);
                }
                Message {
                    header,
                    body: Body::Leave {
                        nodes: NodeSet::Slice(&list),
                    },
                }
                .encode(buf)
            }
            Out::Insertion { joining } => Message {
                header,
                body: Body::RequestInsertion { joining: *joining },
            }
            .encode(buf),
            Out::Withheld => Message {
                header,
                body: Body::Withheld {
                    cookie: self.cookie(o.to),
                },
            }
            .encode(buf),
            Out::Echo => Message {
                header,
                body: Body::Echo,
            }
            .encode(buf),
            Out::Route { row, columns } => {
                let list = self.route_row(*row, *columns);
                Message {
                    header,
                    body: Body::Route {
                        row: *row,
                        nodes: NodeSet::Slice(&list),
                    },
                }
                .encode(buf)
            }
            Out::View => {
                let mut left: Vec<NodeAddr, VIEW_SIDE> = Vec::new();
                let mut right: Vec<NodeAddr, VIEW_SIDE> = Vec::new();
                for n in self.leaf.left().take(VIEW_SIDE) {
                    let _ = left.push(n);
                }
                for n in self.leaf.right().take(VIEW_SIDE) {
                    let _ = right.push(n);
                }
                Message {
                    header,
                    body: Body::View {
                        left: NodeSet::Slice(&left),
                        right: NodeSet::Slice(&right),
                    },
                }
                .encode(buf)
            }
        };
        match encoded {
            Ok(len) => {
                let len = self.within_budget(o, len, buf)?;
                self.stats.sent += 1;
                Some(len)
            }
            Err(_) => {
                self.stats.encode_failed += 1;
                None
            }
        }
    }
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
    /// Whether an Echo of `cookie` to `to` waits in the queue.
    pub(super) fn echo_queued(&self, to: SocketAddr, cookie: u64) -> bool {
        self.queue.iter().any(|o| {
            matches!(o.out, Out::Echo) && o.message_id == cookie && same_endpoint(o.to, to)
        })
    }

    /// The answer to `message_id` did not go to `to` after all (withheld or dropped): a copy
    /// of the request sent again is served.
    fn forget_answered(&mut self, to: SocketAddr, message_id: u64) {
        let kept = self.answered.len();
        for _ in 0..kept {
            if let Some(entry) = self.answered.pop_front()
                && (entry.0, entry.1) != (to, message_id)
            {
                let _ = self.answered.push_back(entry);
            }
        }
    }

    /// The amplification limit on an answer of `len` bytes in `buf` to `o.to`: kept if it fits
    /// the address's budget; else rewritten in `buf` as what fits — a Join answering a joiner
    /// with no nodes (it then asks this node itself), a Withheld naming the request, or a bare
    /// Challenge — or dropped. The length to send, taken off the budget. (A Withheld already
    /// counted where it was queued; one that does not fit becomes a bare Challenge.)
    fn within_budget(
        &mut self,
        o: &Outgoing<KEY, VALUE>,
        len: usize,
        buf: &mut [u8],
    ) -> Option<usize> {
        let budget = self.budget(o.to);
        let len = if len <= budget {
            len
        } else {
            let header = Header {
                message_id: o.message_id,
                sender: self.config.local,
            };
            let referral = match &o.out {
                Out::Neighbours { side, .. } => Some(Message {
                    header,
                    body: Body::Join {
                        side: *side,
                        nodes: NodeSet::Slice(&[]),
                    },
                }),
                _ => None,
            };
            let cookie = self.cookie(o.to);
            let withheld = Message {
                header,
                body: Body::Withheld { cookie },
            };
            let challenge = Message {
                header: Header {
                    message_id: cookie,
                    sender: self.config.local,
                },
                body: Body::Challenge,
            };
            let counted = matches!(o.out, Out::Withheld);
            match referral {
                Some(m) if m.encoded_len() <= budget => m.encode(buf).ok()?,
                _ if withheld.encoded_len() <= budget => {
                    self.stats.challenges_sent += 1;
                    self.forget_answered(o.to, o.message_id);
                    withheld.encode(buf).ok()?
                }
                _ if challenge.encoded_len() <= budget => {
                    if !counted {
                        self.stats.challenges_sent += 1;
                    }
                    self.forget_answered(o.to, o.message_id);
                    challenge.encode(buf).ok()?
                }
                _ => {
                    self.stats.unvalidated_dropped += 1;
                    self.forget_answered(o.to, o.message_id);
                    return None;
                }
            }
        };
        self.spend(o.to, len);
        Some(len)
    }
}

impl<
    R: CryptoRng,
    const L: usize,
    const KEYS: usize,
    const KEY: usize,
    const VALUE: usize,
    const PENDING: usize,
> DatagramCore for DhtNode<R, L, KEYS, KEY, VALUE, PENDING>
{
    type Event = Event<VALUE>;
    type Disposition = Disposition;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Disposition {
        Self::handle_datagram(self, now, from, datagram)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Self::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event<VALUE>> {
        Self::poll_event(self)
    }
}
