//! Client requests and their routing: submitting get/put/lock/unlock, serving them at the key's
//! owner or forwarding them toward it (the outstanding-request table), and relaying the answers.

use core::net::SocketAddr;
use core::time::Duration;

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::Out;
use super::{
    DhtNode, Disposition, DropReason, Event, OFFER_REFUSALS, Op, RequestError, RequestId, State,
    millis,
};
use crate::dht::{Body, ErrorCode, Kind, LockToken, NodeAddr, NodeId, RelayedRequest};
use crate::time::Instant;
use crate::{Error, Result};

/// A request as it travels: owned, to be sent (again).
#[derive(Clone, Debug)]
pub(in crate::dht) struct Request<const KEY: usize, const VALUE: usize> {
    pub(in crate::dht) op: Op,
    pub(in crate::dht) key: Vec<u8, KEY>,
    pub(in crate::dht) value: Vec<u8, VALUE>,
    pub(in crate::dht) token: LockToken,
    pub(in crate::dht) lease_ms: u32,
}

impl<const KEY: usize, const VALUE: usize> Request<KEY, VALUE> {
    /// The request as a plain message body (a Get, Put, Lock or Unlock).
    pub(in crate::dht) fn body(&self) -> Body<'_> {
        self.relayed().body()
    }

    /// The request as a [`Body::Relayed`] carries it.
    pub(in crate::dht) fn relayed(&self) -> RelayedRequest<'_> {
        let key = &self.key[..];
        match self.op {
            Op::Get => RelayedRequest::Get { key },
            Op::Put => RelayedRequest::Put {
                key,
                value: &self.value,
            },
            Op::Lock => RelayedRequest::Lock {
                key,
                token: self.token,
                lease_ms: self.lease_ms,
            },
            Op::Unlock => RelayedRequest::Unlock {
                key,
                token: self.token,
            },
        }
    }

    /// The request of a message body; `None` if it is no request or does not fit.
    fn from_body(body: &Body<'_>) -> Option<Self> {
        let (op, key, value, token, lease_ms) = match *body {
            Body::Get { key } => (Op::Get, key, &[][..], LockToken::default(), 0),
            Body::Put { key, value } => (Op::Put, key, value, LockToken::default(), 0),
            Body::Lock {
                key,
                token,
                lease_ms,
            } => (Op::Lock, key, &[][..], token, lease_ms),
            Body::Unlock { key, token } => (Op::Unlock, key, &[][..], token, 0),
            _ => return None,
        };
        Some(Request {
            op,
            key: Vec::from_slice(key).ok()?,
            value: Vec::from_slice(value).ok()?,
            token,
            lease_ms,
        })
    }

    /// Whether `body` is an answer to this request.
    pub(in crate::dht) fn is_answered_by(&self, body: &Body<'_>) -> bool {
        let key = &self.key[..];
        match (self.op, body) {
            (_, Body::Error { .. }) => true,
            (Op::Get, Body::Value { key: k, .. })
            | (Op::Put, Body::PutAck { key: k })
            | (Op::Unlock, Body::Unlocked { key: k })
            | (Op::Lock, Body::LockDenied { key: k, .. }) => *k == key,
            (Op::Lock, Body::Locked { key: k, token, .. }) => *k == key && *token == self.token,
            _ => false,
        }
    }
}

/// A response, owned until it is sent (or turned into an event).
#[derive(Clone, Debug)]
pub(in crate::dht) struct Reply<const KEY: usize, const VALUE: usize> {
    kind: Kind,
    key: Vec<u8, KEY>,
    value: Option<Vec<u8, VALUE>>,
    token: LockToken,
    ms: u32,
    code: ErrorCode,
}

impl<const KEY: usize, const VALUE: usize> Reply<KEY, VALUE> {
    pub(super) fn new(kind: Kind, key: &[u8]) -> Self {
        Reply {
            kind,
            // Keys here come from requests that were checked to fit.
            key: Vec::from_slice(key).unwrap_or_default(),
            value: None,
            token: LockToken::default(),
            ms: 0,
            code: ErrorCode::Unsupported,
        }
    }

    pub(super) fn error(code: ErrorCode) -> Self {
        let mut r = Reply::new(Kind::Error, &[]);
        r.code = code;
        r
    }

    pub(super) fn lock(kind: Kind, key: &[u8], token: LockToken, ms: u32) -> Self {
        let mut r = Reply::new(kind, key);
        r.token = token;
        r.ms = ms;
        r
    }

    pub(super) fn body(&self) -> Body<'_> {
        let key = &self.key[..];
        match self.kind {
            Kind::Value => Body::Value {
                key,
                value: self.value.as_deref(),
            },
            Kind::PutAck => Body::PutAck { key },
            Kind::Locked => Body::Locked {
                key,
                token: self.token,
                lease_ms: self.ms,
            },
            Kind::LockDenied => Body::LockDenied {
                key,
                remaining_ms: self.ms,
            },
            Kind::Unlocked => Body::Unlocked { key },
            _ => Body::Error { code: self.code },
        }
    }

    /// The outcome of the local request `id` (an `op`) answered by this reply; `since` is when
    /// the answered attempt was sent, from which a lock's lease is counted.
    pub(in crate::dht) fn into_event(self, id: RequestId, op: Op, since: Instant) -> Event<VALUE> {
        match self.kind {
            Kind::Value => Event::GetDone {
                id,
                value: self.value,
            },
            Kind::PutAck => Event::PutDone { id },
            Kind::Locked => Event::Locked {
                id,
                until: since + Duration::from_millis(u64::from(self.ms)),
            },
            Kind::LockDenied => Event::LockDenied {
                id,
                remaining: Duration::from_millis(u64::from(self.ms)),
            },
            Kind::Unlocked => Event::Unlocked { id },
            _ => Event::Failed {
                id,
                op,
                error: RequestError::Refused(self.code),
            },
        }
    }

    /// The owned copy of a response body; a value too large for this node becomes `Full`.
    pub(in crate::dht) fn from_body(body: &Body<'_>) -> Self {
        let copy = |kind, key: &[u8]| Reply::new(kind, key);
        match *body {
            Body::Value { key, value } => {
                let mut r = copy(Kind::Value, key);
                if let Some(v) = value {
                    match Vec::from_slice(v) {
                        Ok(v) => r.value = Some(v),
                        Err(_) => return Reply::error(ErrorCode::Full),
                    }
                }
                r
            }
            Body::PutAck { key } => copy(Kind::PutAck, key),
            Body::Locked {
                key,
                token,
                lease_ms,
            } => Reply::lock(Kind::Locked, key, token, lease_ms),
            Body::LockDenied { key, remaining_ms } => {
                Reply::lock(Kind::LockDenied, key, LockToken::default(), remaining_ms)
            }
            Body::Unlocked { key } => copy(Kind::Unlocked, key),
            Body::Error { code } => Reply::error(code),
            _ => Reply::error(ErrorCode::Unsupported),
        }
    }
}

/// Who waits for the answer of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Origin {
    /// This node's application.
    Local(RequestId),
    /// The node that forwarded it here (or sent it), with its message id.
    Remote { to: SocketAddr, message_id: u64 },
}

/// What a node knows of a request besides its content: who answers for it, and how long it may
/// wait here (see PROTOCOL.md, *Relayed requests*).
#[derive(Clone, Copy, Debug)]
pub(super) struct Envelope {
    /// The address accountable for it: the client or node where it entered the ring (a plain
    /// request's sender, or a Relayed's origin); `None`: this node's own request.
    pub(super) origin: Option<NodeAddr>,
    /// The node that relayed it here (the sender of a Relayed).
    pub(super) relay: Option<SocketAddr>,
    /// The end of its budget at this node: it is answered by then.
    pub(super) expires: Instant,
}

#[derive(Clone, Debug)]
pub(super) enum Task<const KEY: usize, const VALUE: usize> {
    Request {
        origin: Origin,
        request: Request<KEY, VALUE>,
        attempts: u8,
        envelope: Envelope,
    },
    /// A stabilization InitConnect to a leaf-set member.
    Ping,
    /// This node's InitConnect to an entry node.
    Join { attempts: u8 },
    /// A RouteRequest for these columns of row `row`: a probe of a node heard of, or a
    /// refresh.
    Route { row: u8, columns: u16 },
}

#[derive(Clone, Debug)]
pub(super) struct Pending<const KEY: usize, const VALUE: usize> {
    pub(super) message_id: u64,
    pub(super) to: SocketAddr,
    pub(super) to_id: Option<NodeId>,
    /// When it was sent; `None`: still to send.
    pub(super) sent: Option<Instant>,
    pub(super) deadline: Instant,
    pub(super) task: Task<KEY, VALUE>,
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
    /// Reads `key` at its owner; the outcome is [`Event::GetDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key longer than `KEY`; [`Error::Capacity`] when the request or
    /// event table is full.
    pub fn get(&mut self, now: Instant, key: &[u8]) -> Result<RequestId> {
        self.submit(now, Op::Get, key, &[], 0)
    }

    /// Writes `value` under `key` at its owner and its replicas; the outcome is
    /// [`Event::PutDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key longer than `KEY` or a value longer than `VALUE`;
    /// [`Error::Capacity`] when the request or event table is full.
    pub fn put(&mut self, now: Instant, key: &[u8], value: &[u8]) -> Result<RequestId> {
        self.submit(now, Op::Put, key, value, 0)
    }

    /// Takes (or renews) the lock on `key` for this node, with its token for the key
    /// ([`lock_token`](Self::lock_token)), for `lease` (at most
    /// [`Config::max_lease`](super::Config::max_lease), at least 1 ms); the outcome is
    /// [`Event::Locked`], [`Event::LockDenied`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::Busy`] while this node's [`unlock`](Self::unlock) of
    /// `key` waits for its outcome (lock again once it has it).
    pub fn lock(&mut self, now: Instant, key: &[u8], lease: Duration) -> Result<RequestId> {
        let lease_ms = millis(lease.min(self.config.max_lease)).max(1);
        self.submit(now, Op::Lock, key, &[], lease_ms)
    }

    /// Releases this node's lock on `key`; the outcome is [`Event::Unlocked`] or
    /// [`Event::Failed`] ([`ErrorCode::NotHolder`] if this node does not hold it — also when a
    /// first attempt released it but its answer was lost).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn unlock(&mut self, now: Instant, key: &[u8]) -> Result<RequestId> {
        self.submit(now, Op::Unlock, key, &[], 0)
    }

    fn submit(
        &mut self,
        now: Instant,
        op: Op,
        key: &[u8],
        value: &[u8],
        lease_ms: u32,
    ) -> Result<RequestId> {
        let key: Vec<u8, KEY> = Vec::from_slice(key).map_err(|_| Error::TooLarge)?;
        let value: Vec<u8, VALUE> = Vec::from_slice(value).map_err(|_| Error::TooLarge)?;
        if self.events.is_full() {
            return Err(Error::Capacity);
        }
        let id = RequestId(self.next_request);
        if self.state == State::Departed {
            self.next_request = self.next_request.wrapping_add(1);
            self.emit(Event::Failed {
                id,
                op,
                error: RequestError::Departed,
            });
            return Ok(id);
        }
        if self.leaf.next_hop(NodeId::from_name(&key)).is_some() && !self.request_room() {
            return Err(Error::Capacity);
        }
        if op == Op::Lock && self.unlock_in_flight(&key) {
            // This node's token for a key is always the same: a Lock overtaking the Unlock
            // would renew the lock being released, and the Unlock then release it while this
            // node believes it holds it (seen in `sinew dht sim --locks`: held twice).
            return Err(Error::Busy);
        }
        self.next_request = self.next_request.wrapping_add(1);
        let token = self.lock_token(&key);
        let request = Request {
            op,
            key,
            value,
            token,
            lease_ms,
        };
        let envelope = self.own_envelope(now);
        self.start_request(now, Origin::Local(id), request, 1, envelope);
        Ok(id)
    }

    /// Whether an Unlock of `key` by this node waits for its outcome.
    fn unlock_in_flight(&self, key: &[u8]) -> bool {
        self.pending.iter().any(|p| {
            matches!(
                &p.task,
                Task::Request {
                    origin: Origin::Local(_),
                    request,
                    ..
                } if request.op == Op::Unlock && request.key[..] == *key
            )
        })
    }

    /// The envelope of this node's own request (an attempt of it, from `now`).
    pub(super) fn own_envelope(&self, now: Instant) -> Envelope {
        Envelope {
            origin: None,
            relay: None,
            expires: now + self.config.request_timeout,
        }
    }

    /// How many requests accountable to `origin` wait here for their owner's answer.
    fn relays_charged_to(&self, origin: SocketAddr) -> usize {
        self.pending
            .iter()
            .filter(|p| {
                matches!(
                    p.task,
                    Task::Request {
                        origin: Origin::Remote { .. },
                        envelope: Envelope { origin: Some(o), .. },
                        ..
                    } if super::io::same_endpoint(o.addr, origin)
                )
            })
            .count()
    }

    /// Sends `to` a Withheld (or a bare Challenge, if it does not fit the budget) in place of
    /// the answer to its request `message_id` (it echoes it and sends that request again).
    fn challenge(&mut self, to: SocketAddr, message_id: u64) {
        self.stats.challenged += 1;
        self.stats.challenges_sent += 1;
        self.send(to, message_id, Out::Withheld);
    }

    /// A put or a lock about to take a slot (in the store, the lock table or the
    /// outstanding-request table) for a sender that has not proved a round trip: it takes none,
    /// and the sender is challenged instead, so that a forged source address takes nothing.
    /// Whether it was.
    pub(super) fn challenged(&mut self, origin: Origin, op: Op) -> bool {
        match origin {
            Origin::Remote { to, message_id }
                if matches!(op, Op::Put | Op::Lock) && !self.is_validated(to) =>
            {
                self.challenge(to, message_id);
                true
            }
            _ => false,
        }
    }

    /// Counts a request refused because its origin (`origin_over`) or its relay
    /// (`relay_over`) holds its share; whether it is refused.
    pub(super) fn over_quota(&mut self, origin_over: bool, relay_over: bool) -> bool {
        if origin_over || relay_over {
            self.stats.full += 1;
            self.stats.over_share += 1;
            return true;
        }
        false
    }

    /// How many requests from `from` wait here for their owner's answer.
    fn relays_for(&self, from: SocketAddr) -> usize {
        self.pending
            .iter()
            .filter(|p| {
                matches!(
                    p.task,
                    Task::Request {
                        origin: Origin::Remote { to, .. },
                        ..
                    } if super::io::same_endpoint(to, from)
                )
            })
            .count()
    }

    pub(super) fn request_room(&self) -> bool {
        self.pending.len() + Self::RESERVE < PENDING
    }

    /// Serves `request` here if this node owns its key, or queues it toward the owner.
    pub(super) fn start_request(
        &mut self,
        now: Instant,
        origin: Origin,
        request: Request<KEY, VALUE>,
        attempts: u8,
        envelope: Envelope,
    ) {
        match self.next_hop(NodeId::from_name(&request.key)) {
            None if self.outside_ring() => {
                self.stats.not_member += 1;
                self.respond(origin, request.op, Reply::error(ErrorCode::NotOwner), now);
            }
            None => self.serve(now, origin, &request, &envelope),
            Some(hop) => {
                if matches!(origin, Origin::Remote { .. })
                    && envelope.expires.saturating_duration_since(now) <= self.config.hop_allowance
                {
                    // Its budget cannot cover one more hop: say so now rather than wait.
                    self.stats.expired += 1;
                    self.respond(origin, request.op, Reply::error(ErrorCode::Expired), now);
                    return;
                }
                // A slot here, and an origin named to the next node: only for an address that
                // proved a round trip (any request: a forged source must not name its victim).
                if let Origin::Remote { to, message_id } = origin
                    && !self.is_validated(to)
                {
                    self.challenge(to, message_id);
                    return;
                }
                if !self.request_room() {
                    self.stats.full += 1;
                    self.respond(origin, request.op, Reply::error(ErrorCode::Full), now);
                    return;
                }
                // Members relay for everyone: only an outside sender is bounded.
                if let Origin::Remote { to: from, .. } = origin
                    && self.leaf.get_by_addr(from).is_none()
                    && self.relays_for(from) >= Self::share_of(PENDING, self.config.relay_share)
                {
                    // This sender has its share of the relay slots: others keep theirs.
                    self.stats.full += 1;
                    self.stats.over_share += 1;
                    self.respond(origin, request.op, Reply::error(ErrorCode::Full), now);
                    return;
                }
                // Nor may the requests of one origin, whatever nodes they come through.
                if let Origin::Remote { .. } = origin
                    && let Some(accountable) = envelope.origin
                    && self.over_quota(
                        self.relays_charged_to(accountable.addr)
                            >= Self::share_of(PENDING, self.config.relay_share),
                        false,
                    )
                {
                    self.respond(origin, request.op, Reply::error(ErrorCode::Full), now);
                    return;
                }
                if matches!(origin, Origin::Remote { .. }) {
                    self.stats.forwarded += 1;
                }
                let message_id = self.fresh_id();
                let _ = self.pending.push(Pending {
                    message_id,
                    to: hop.addr,
                    to_id: Some(hop.id),
                    sent: None,
                    deadline: now,
                    task: Task::Request {
                        origin,
                        request,
                        attempts,
                        envelope,
                    },
                });
            }
        }
    }

    /// Answers a request for a key this node owns.
    fn serve(
        &mut self,
        now: Instant,
        origin: Origin,
        request: &Request<KEY, VALUE>,
        envelope: &Envelope,
    ) {
        self.stats.served += 1;
        let key = &request.key[..];
        let reply = match request.op {
            Op::Get => {
                let mut reply = Reply::new(Kind::Value, key);
                reply.value = self
                    .store
                    .iter()
                    .find(|e| e.key == key)
                    .and_then(|e| Vec::from_slice(&e.value).ok());
                reply
            }
            Op::Put => {
                self.serve_put(now, origin, key, &request.value, envelope);
                return;
            }
            Op::Lock => {
                if self.lock_takes_slot(now, key) && self.challenged(origin, Op::Lock) {
                    return;
                }
                self.lock_op(now, key, request.token, request.lease_ms, envelope)
            }
            Op::Unlock => self.unlock_op(now, key, request.token),
        };
        self.respond(origin, request.op, reply, now);
    }

    /// Delivers an answer: queued to the node that asked, or as an event to the application.
    /// `since` is when the answered attempt was sent (for lock leases).
    pub(super) fn respond(
        &mut self,
        origin: Origin,
        op: Op,
        reply: Reply<KEY, VALUE>,
        since: Instant,
    ) {
        match origin {
            Origin::Remote { to, message_id } => {
                if self.answered.is_full() {
                    self.answered.pop_front();
                }
                let key_id = NodeId::from_name(&reply.key);
                let _ = self.answered.push_back((to, message_id, op, key_id));
                self.send(to, message_id, Out::Reply(reply))
            }
            Origin::Local(id) => self.emit(reply.into_event(id, op, since)),
        }
    }

    /// Whether `request` from `from` under `message_id` is a copy of one that waits here for
    /// its owner or its replicas, or was answered lately: a client sends a request again, same
    /// id, after a Challenge. The answer on its way (or gone) serves the copy; a second slot
    /// would only bring a second answer. (An answer withheld behind a Challenge is forgotten,
    /// so the copy sent for it is served.)
    fn is_copy(&self, from: SocketAddr, message_id: u64, request: &Request<KEY, VALUE>) -> bool {
        let same = |o: Origin| {
            matches!(o, Origin::Remote { to, message_id: id }
                if id == message_id && super::io::same_endpoint(to, from))
        };
        let key_id = NodeId::from_name(&request.key);
        self.answered.iter().any(|&(to, id, op, k)| {
            id == message_id
                && op == request.op
                && k == key_id
                && super::io::same_endpoint(to, from)
        }) || self.rounds.iter().any(|r| {
            request.op == Op::Put
                && r.key == request.key
                && r.waiters.iter().any(|w| same(w.origin))
        }) || self.pending.iter().any(|p| {
            matches!(&p.task, Task::Request { origin, request: r, .. }
                if same(*origin) && r.op == request.op && r.key == request.key)
        })
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        body: &Body<'_>,
    ) -> Disposition {
        let origin = Origin::Remote {
            to: sender.addr,
            message_id,
        };
        // A relayed request is taken only from an address that proved a round trip, so that
        // its origin is only ever the word of a node that receives where it claims to be.
        if matches!(body, Body::Relayed { .. }) && !self.is_validated(sender.addr) {
            self.challenge(sender.addr, message_id);
            return Disposition::Handled;
        }
        let allowance = self.config.hop_allowance;
        let (plain, envelope) = match *body {
            Body::Relayed {
                budget_ms,
                origin: accountable,
                request,
            } => (
                request.body(),
                Envelope {
                    origin: Some(accountable),
                    relay: Some(sender.addr),
                    expires: now
                        + Duration::from_millis(u64::from(budget_ms)).saturating_sub(allowance),
                },
            ),
            // A request enters the ring here: its budget is a request timeout.
            plain => (
                plain,
                Envelope {
                    origin: Some(sender),
                    relay: None,
                    expires: now + self.config.request_timeout.saturating_sub(allowance),
                },
            ),
        };
        match Request::from_body(&plain) {
            Some(request) if self.is_copy(sender.addr, message_id, &request) => {
                self.stats.duplicates += 1;
            }
            Some(request) => {
                self.start_request(now, origin, request, self.config.max_attempts, envelope)
            }
            None => {
                // A key or value larger than this node keeps.
                self.stats.full += 1;
                self.send(
                    sender.addr,
                    message_id,
                    Out::Reply(Reply::error(ErrorCode::Full)),
                );
            }
        }
        Disposition::Handled
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        body: &Body<'_>,
    ) -> Disposition {
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| p.message_id == message_id && p.sent.is_some())
        {
            let p = &self.pending[i];
            let any_sender = matches!(p.task, Task::Join { .. });
            let from_ok = p.to == sender.addr && p.to_id.is_none_or(|id| id == sender.id);
            if !any_sender && !from_ok {
                self.stats.wrong_sender += 1;
                return Disposition::Dropped(DropReason::WrongSender);
            }
            let fits = match &p.task {
                Task::Request { request, .. } => request.is_answered_by(body),
                Task::Join { .. } | Task::Ping | Task::Route { .. } => {
                    matches!(body, Body::Error { .. })
                }
            };
            if !fits {
                self.stats.unmatched += 1;
                return Disposition::Dropped(DropReason::Unmatched);
            }
            let answered_request = matches!(p.task, Task::Request { .. });
            if from_ok {
                // A round trip: the address receives, and the node answered for itself.
                self.validate(sender.addr);
                if answered_request {
                    self.route_learn(now, sender);
                }
            }
            let p = self.pending.swap_remove(i);
            let since = p.sent.unwrap_or(now);
            match p.task {
                Task::Request {
                    origin,
                    request,
                    attempts,
                    ..
                } => match origin {
                    Origin::Local(id) => {
                        let retry = matches!(
                            body,
                            Body::Error {
                                code: ErrorCode::NotOwner | ErrorCode::Expired
                            }
                        ) && attempts < self.config.max_attempts;
                        if retry {
                            self.stats.retries += 1;
                            let envelope = self.own_envelope(now);
                            self.start_request(now, origin, request, attempts + 1, envelope);
                        } else {
                            self.respond(
                                Origin::Local(id),
                                request.op,
                                Reply::from_body(body),
                                since,
                            );
                        }
                    }
                    Origin::Remote { .. } => {
                        self.respond(origin, request.op, Reply::from_body(body), since);
                    }
                },
                Task::Join { .. } => {
                    if let Body::Error { code } = *body {
                        self.state = State::Active;
                        self.failed_join = Some((p.to, p.message_id));
                        self.emit(Event::JoinFailed {
                            error: RequestError::Refused(code),
                        });
                    }
                }
                Task::Ping | Task::Route { .. } => {}
            }
            return Disposition::Handled;
        }
        // The answer to a Replicate?
        let mut hit = None;
        for (ri, round) in self.rounds.iter().enumerate() {
            for (ti, t) in round.targets.iter().enumerate() {
                if t.in_flight.is_some_and(|f| f.message_id == message_id) {
                    hit = Some((ri, ti));
                }
            }
        }
        if let Some((ri, ti)) = hit {
            let owner = self.leaf.owner(self.rounds[ri].id).id == self.config.local.id;
            let refusals = self.rounds[ri].targets[ti].refusals;
            // Until the target's view catches up (its failure detector: about a probation),
            // every attempt is refused: wait twice as long after each refusal, up to that.
            let backoff = self
                .config
                .request_timeout
                .saturating_mul(1 << refusals.min(4))
                .min(self.probation().max(self.config.request_timeout));
            let round = &mut self.rounds[ri];
            let t = &mut round.targets[ti];
            if t.node != sender {
                self.stats.wrong_sender += 1;
                return Disposition::Dropped(DropReason::WrongSender);
            }
            let validated = sender.addr;
            match body {
                Body::PutAck { key } if *key == &round.key[..] => {
                    if let Some(f) = t.in_flight.take() {
                        t.acked = t.acked.max(f.version);
                    }
                    t.refusals = 0;
                    self.validate(validated);
                }
                Body::Error { .. } if !owner && t.refusals >= OFFER_REFUSALS => {
                    // An offer refused again and again: the owner holds a value of its own,
                    // which is the authority (or never takes this node for a holder of the key).
                    t.in_flight = None;
                    t.acked = u64::MAX;
                }
                Body::Error { .. } => {
                    // A replica that cannot take the value yet (full, or it does not see this
                    // node as the owner yet), or a new owner that does not see this node as the
                    // key's previous owner yet (its view still settling after it joined): try
                    // again later. Giving up on an offer at the first refusal lost keys under
                    // churn: the new owner lacked them and no other node offered them again.
                    t.in_flight = None;
                    t.retry_at = now + backoff;
                    t.refusals = t.refusals.saturating_add(1);
                }
                _ => {
                    self.stats.unmatched += 1;
                    return Disposition::Dropped(DropReason::Unmatched);
                }
            }
            self.check_rounds(now);
            return Disposition::Handled;
        }
        self.stats.unmatched += 1;
        Disposition::Dropped(DropReason::Unmatched)
    }
}
