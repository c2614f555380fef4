//! The DHT node as a sans-IO state machine: ring membership, routed get/put, replication and
//! leased locks.
//!
//! See [`DhtNode`] for the protocol it runs and the exact guarantees it gives.

use core::net::SocketAddr;
use core::time::Duration;

use heapless::{Deque, Vec};
use rand_core::CryptoRng;

use super::ring::LeafSet;
use super::{
    Body, ErrorCode, HEADER_LEN, Header, Kind, MAX_KEY_LEN, MAX_NODE_LIST, MAX_VALUE_LEN, Message,
    NODE_LEN, NodeAddr, NodeId, NodeSet, Side,
};
use crate::datagram::{DatagramCore, Transmit};
use crate::time::Instant;
use crate::{Error, Result};

/// How many events a node buffers; further events are dropped and counted in
/// [`Stats::events_dropped`] (and new client requests are refused with [`Error::Capacity`] while
/// the buffer is full, so that their outcome cannot be lost).
pub const EVENT_CAPACITY: usize = 32;
/// How many puts of one key may wait for their replication at the same time at its owner; a
/// further put is answered [`ErrorCode::Full`].
pub const MAX_WAITERS: usize = 4;
/// How many nodes recently declared down a node remembers (see [`Config::tombstone`]).
pub const TOMBSTONES: usize = 16;
/// How many suspected leaf-set members (ones a neighbour no longer lists) a node checks at
/// every stabilization, ahead of its round robin.
const SUSPECTS: usize = 4;

/// Timing and behaviour of a [`DhtNode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node: its id (from [`NodeId::from_name`] or [`NodeId::random`]) and the address its
    /// peers reach it at (the sender of every message it sends).
    pub local: NodeAddr,
    /// Nodes kept in the leaf set on each side, `1..=L` (clamped).
    pub leaf_size: usize,
    /// R: how many of the owner's successors hold a replica of each key, `0..=leaf_size`
    /// (clamped). A put is acknowledged once the owner and these replicas stored it.
    pub replicas: usize,
    /// How long one attempt of a request waits for its answer. A node that forwards a request
    /// waits half of it, so that its "not reachable" answer reaches the requester in time.
    pub request_timeout: Duration,
    /// Attempts of a client request (and of a join) before it fails with
    /// [`RequestError::Timeout`]; at least 1.
    pub max_attempts: u8,
    /// How often a node exchanges leaf sets with its nearest neighbours and one other leaf-set
    /// member (round robin), which also checks that they are alive.
    pub stabilize_interval: Duration,
    /// Consecutive unanswered requests after which a leaf-set member is declared down; at least 1.
    /// A node declared down is on probation for `(max_failures + 1) × stabilize_interval`: it is
    /// still sent replicas and probed, and writes to keys taken over from it wait (see
    /// [`DhtNode`]).
    pub max_failures: u8,
    /// The longest lock lease granted (longer requests are shortened). It is also the grace
    /// period during which a node that has just taken over keys grants no new lock on them.
    pub max_lease: Duration,
    /// How long a node declared down (or gone with Leave) is kept out of the leaf set when others
    /// still mention it. A message from the node itself asking to (re)join ends it earlier.
    pub tombstone: Duration,
}

impl Config {
    /// The defaults for a node at `local`: 4 nodes on each side, 2 replicas, 500 ms per attempt,
    /// 3 attempts, stabilization every second, 3 failures, 10 s leases, 30 s tombstones.
    pub fn new(local: NodeAddr) -> Config {
        Config {
            local,
            leaf_size: 4,
            replicas: 2,
            request_timeout: Duration::from_millis(500),
            max_attempts: 3,
            stabilize_interval: Duration::from_secs(1),
            max_failures: 3,
            max_lease: Duration::from_secs(10),
            tombstone: Duration::from_secs(30),
        }
    }
}

/// The handle of a client request ([`DhtNode::get`], [`put`](DhtNode::put),
/// [`lock`](DhtNode::lock), [`unlock`](DhtNode::unlock)); its outcome comes back as an [`Event`]
/// carrying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestId(pub u64);

/// The kind of a client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op {
    /// [`DhtNode::get`].
    Get,
    /// [`DhtNode::put`].
    Put,
    /// [`DhtNode::lock`].
    Lock,
    /// [`DhtNode::unlock`].
    Unlock,
}

/// Why a client request or a join failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RequestError {
    /// No answer after [`Config::max_attempts`] attempts.
    Timeout,
    /// The owner (or a node on the way) refused it: [`ErrorCode::Full`] (out of storage, or a
    /// value too large for a node on the way), [`ErrorCode::NotHolder`] (an unlock by a node that
    /// does not hold the lock), [`ErrorCode::NotOwner`] (the owner was unreachable on every
    /// attempt), [`ErrorCode::JoinSelf`] (a join on oneself).
    Refused(ErrorCode),
    /// The node left the ring ([`DhtNode::leave`]) before the request completed.
    Departed,
    /// The connection to the node the request went to was lost while the request was in
    /// flight ([`DhtClient::fail_node`](super::DhtClient::fail_node)): it may or may not have
    /// taken effect.
    Disconnected,
}

/// What a node tells its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<const VALUE: usize> {
    /// The node is in the ring: `via` told it its neighbours (the node that inserted it, or one
    /// it announced the joiner to when that answer was lost).
    Joined {
        /// The node whose Join completed the join.
        via: NodeAddr,
    },
    /// A [`DhtNode::join`] failed.
    JoinFailed {
        /// Why.
        error: RequestError,
    },
    /// A leaf-set member was removed: it left, did not answer [`Config::max_failures`] requests
    /// in a row, or the application reported it down.
    NeighbourDown {
        /// The node.
        node: NodeAddr,
    },
    /// A [`DhtNode::get`] was answered by the key's owner.
    GetDone {
        /// The request.
        id: RequestId,
        /// The value, or `None` if the owner stores none.
        value: Option<Vec<u8, VALUE>>,
    },
    /// A [`DhtNode::put`] was acknowledged: the owner and its replicas stored it.
    PutDone {
        /// The request.
        id: RequestId,
    },
    /// A [`DhtNode::lock`] succeeded: this node holds the lock until `until` at the latest
    /// (the lease counted from when the request was sent, so never later than the owner's).
    Locked {
        /// The request.
        id: RequestId,
        /// When the lease ends unless renewed by locking again.
        until: Instant,
    },
    /// A [`DhtNode::lock`] was refused: someone else holds the lock.
    LockDenied {
        /// The request.
        id: RequestId,
        /// The holder, or the all-zero id while the owner is in its grace period after taking
        /// the key over (it cannot know who holds it).
        holder: NodeId,
        /// How long until that lease (or grace period) ends, at the latest.
        remaining: Duration,
    },
    /// A [`DhtNode::unlock`] released the lock.
    Unlocked {
        /// The request.
        id: RequestId,
    },
    /// A client request failed.
    Failed {
        /// The request.
        id: RequestId,
        /// What it was.
        op: Op,
        /// Why.
        error: RequestError,
    },
}

impl<const VALUE: usize> Event<VALUE> {
    /// The request this event is the outcome of; `None` for a membership event (`Joined`,
    /// `JoinFailed`, `NeighbourDown`).
    pub fn request_id(&self) -> Option<RequestId> {
        match *self {
            Event::GetDone { id, .. }
            | Event::PutDone { id }
            | Event::Locked { id, .. }
            | Event::LockDenied { id, .. }
            | Event::Unlocked { id }
            | Event::Failed { id, .. } => Some(id),
            Event::Joined { .. } | Event::JoinFailed { .. } | Event::NeighbourDown { .. } => None,
        }
    }
}

/// Counters of what a node did and, above all, what it refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Messages handed to [`DhtNode::handle_message`].
    pub received: u64,
    /// Messages that did not parse (dropped, never answered).
    pub malformed: u64,
    /// Responses whose message id matched no outstanding request, or whose kind or key did not
    /// fit it.
    pub unmatched: u64,
    /// Responses with an outstanding message id but from another node than the request went to.
    pub wrong_sender: u64,
    /// Messages claiming to come from this node's own address (or from its id).
    pub self_talk: u64,
    /// Messages that arrived after [`DhtNode::leave`].
    pub after_leave: u64,
    /// Messages written by [`DhtNode::poll_transmit`].
    pub sent: u64,
    /// Get/put/lock/unlock requests this node answered as the key's owner.
    pub served: u64,
    /// Requests (and insertion requests) forwarded toward the owner.
    pub forwarded: u64,
    /// Joiners this node inserted next to itself.
    pub insertions: u64,
    /// Replicas written to other nodes (Replicate messages sent).
    pub replicates_sent: u64,
    /// Request attempts that timed out.
    pub timeouts: u64,
    /// Client requests sent again (after a timeout or a `NotOwner`).
    pub retries: u64,
    /// Leaf-set members removed (left, timed out, or reported down).
    pub peers_down: u64,
    /// Requests refused with [`ErrorCode::Full`] (store, lock table, routing or replication
    /// tables full, or a key or value larger than this node keeps).
    pub full: u64,
    /// Messages not queued because the transmit queue was full.
    pub queue_full: u64,
    /// Messages that could not be encoded (a buffer smaller than
    /// [`DhtNode::MAX_TRANSMIT_LEN`]).
    pub encode_failed: u64,
    /// Events dropped because nobody polled them.
    pub events_dropped: u64,
    /// Messages whose header named another sender address than the one they came from
    /// (see [`DhtNode::handle_datagram`]).
    pub source_mismatch: u64,
}

/// What [`DhtNode::handle_message`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Disposition {
    /// Processed.
    Handled,
    /// Dropped and counted in [`Stats`].
    Dropped(DropReason),
    /// Not a valid message; dropped, counted, never answered.
    Malformed(Error),
}

/// Why a well-formed message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DropReason {
    /// A response to no outstanding request (unknown or stale message id, or a kind or key that
    /// does not fit the request).
    Unmatched,
    /// A response with an outstanding message id from another node than the request's.
    WrongSender,
    /// It claims to come from this node.
    SelfTalk,
    /// This node has left the ring.
    Departed,
    /// The header names another sender address than the one the message came from
    /// ([`DhtNode::handle_datagram`]).
    SourceMismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In a ring (possibly a ring of one).
    Active,
    /// Waiting for the answer to a join.
    Joining,
    /// Left with [`DhtNode::leave`].
    Departed,
}

/// A request as it travels: owned, to be sent (again).
#[derive(Clone, Debug)]
pub(super) struct Request<const KEY: usize, const VALUE: usize> {
    pub(super) op: Op,
    pub(super) key: Vec<u8, KEY>,
    pub(super) value: Vec<u8, VALUE>,
    pub(super) holder: NodeId,
    pub(super) lease_ms: u32,
}

impl<const KEY: usize, const VALUE: usize> Request<KEY, VALUE> {
    pub(super) fn body(&self) -> Body<'_> {
        let key = &self.key[..];
        match self.op {
            Op::Get => Body::Get { key },
            Op::Put => Body::Put {
                key,
                value: &self.value,
            },
            Op::Lock => Body::Lock {
                key,
                holder: self.holder,
                lease_ms: self.lease_ms,
            },
            Op::Unlock => Body::Unlock {
                key,
                holder: self.holder,
            },
        }
    }

    /// The request of a message body; `None` if it is no request or does not fit.
    fn from_body(body: &Body<'_>) -> Option<Self> {
        let (op, key, value, holder, lease_ms) = match *body {
            Body::Get { key } => (Op::Get, key, &[][..], NodeId::default(), 0),
            Body::Put { key, value } => (Op::Put, key, value, NodeId::default(), 0),
            Body::Lock {
                key,
                holder,
                lease_ms,
            } => (Op::Lock, key, &[][..], holder, lease_ms),
            Body::Unlock { key, holder } => (Op::Unlock, key, &[][..], holder, 0),
            _ => return None,
        };
        Some(Request {
            op,
            key: Vec::from_slice(key).ok()?,
            value: Vec::from_slice(value).ok()?,
            holder,
            lease_ms,
        })
    }

    /// Whether `body` is an answer to this request.
    pub(super) fn is_answered_by(&self, body: &Body<'_>) -> bool {
        let key = &self.key[..];
        match (self.op, body) {
            (_, Body::Error { .. }) => true,
            (Op::Get, Body::Value { key: k, .. })
            | (Op::Put, Body::PutAck { key: k })
            | (Op::Unlock, Body::Unlocked { key: k })
            | (Op::Lock, Body::LockDenied { key: k, .. }) => *k == key,
            (Op::Lock, Body::Locked { key: k, holder, .. }) => *k == key && *holder == self.holder,
            _ => false,
        }
    }
}

/// A response, owned until it is sent (or turned into an event).
#[derive(Clone, Debug)]
pub(super) struct Reply<const KEY: usize, const VALUE: usize> {
    kind: Kind,
    key: Vec<u8, KEY>,
    value: Option<Vec<u8, VALUE>>,
    holder: NodeId,
    ms: u32,
    code: ErrorCode,
}

impl<const KEY: usize, const VALUE: usize> Reply<KEY, VALUE> {
    fn new(kind: Kind, key: &[u8]) -> Self {
        Reply {
            kind,
            // Keys here come from requests that were checked to fit.
            key: Vec::from_slice(key).unwrap_or_default(),
            value: None,
            holder: NodeId::default(),
            ms: 0,
            code: ErrorCode::Unsupported,
        }
    }

    fn error(code: ErrorCode) -> Self {
        let mut r = Reply::new(Kind::Error, &[]);
        r.code = code;
        r
    }

    fn lock(kind: Kind, key: &[u8], holder: NodeId, ms: u32) -> Self {
        let mut r = Reply::new(kind, key);
        r.holder = holder;
        r.ms = ms;
        r
    }

    fn body(&self) -> Body<'_> {
        let key = &self.key[..];
        match self.kind {
            Kind::Value => Body::Value {
                key,
                value: self.value.as_deref(),
            },
            Kind::PutAck => Body::PutAck { key },
            Kind::Locked => Body::Locked {
                key,
                holder: self.holder,
                lease_ms: self.ms,
            },
            Kind::LockDenied => Body::LockDenied {
                key,
                holder: self.holder,
                remaining_ms: self.ms,
            },
            Kind::Unlocked => Body::Unlocked { key },
            _ => Body::Error { code: self.code },
        }
    }

    /// The outcome of the local request `id` (an `op`) answered by this reply; `since` is when
    /// the answered attempt was sent, from which a lock's lease is counted.
    pub(super) fn into_event(self, id: RequestId, op: Op, since: Instant) -> Event<VALUE> {
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
                holder: self.holder,
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
    pub(super) fn from_body(body: &Body<'_>) -> Self {
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
                holder,
                lease_ms,
            } => Reply::lock(Kind::Locked, key, holder, lease_ms),
            Body::LockDenied {
                key,
                holder,
                remaining_ms,
            } => Reply::lock(Kind::LockDenied, key, holder, remaining_ms),
            Body::Unlocked { key } => copy(Kind::Unlocked, key),
            Body::Error { code } => Reply::error(code),
            _ => Reply::error(ErrorCode::Unsupported),
        }
    }
}

#[derive(Clone, Debug)]
enum Out<const KEY: usize, const VALUE: usize> {
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
}

#[derive(Clone, Debug)]
struct Outgoing<const KEY: usize, const VALUE: usize> {
    to: SocketAddr,
    message_id: u64,
    out: Out<KEY, VALUE>,
}

/// Who waits for the answer of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// This node's application.
    Local(RequestId),
    /// The node that forwarded it here (or sent it), with its message id.
    Remote { to: SocketAddr, message_id: u64 },
}

#[derive(Clone, Debug)]
enum Task<const KEY: usize, const VALUE: usize> {
    Request {
        origin: Origin,
        request: Request<KEY, VALUE>,
        attempts: u8,
    },
    /// A stabilization InitConnect to a leaf-set member.
    Ping,
    /// This node's InitConnect to an entry node.
    Join { attempts: u8 },
}

#[derive(Clone, Debug)]
struct Pending<const KEY: usize, const VALUE: usize> {
    message_id: u64,
    to: SocketAddr,
    to_id: Option<NodeId>,
    /// When it was sent; `None`: still to send.
    sent: Option<Instant>,
    deadline: Instant,
    task: Task<KEY, VALUE>,
}

#[derive(Clone, Debug)]
struct Entry<const KEY: usize, const VALUE: usize> {
    key: Vec<u8, KEY>,
    id: NodeId,
    value: Vec<u8, VALUE>,
    /// Bumped by every write here; replication rounds compare against it.
    version: u64,
    /// The owner this node last saw for the key (itself, if it owned it).
    owner_seen: Option<NodeId>,
    /// The replica set (a signature of it) that holds the current value, if known.
    replicated: Option<u64>,
}

#[derive(Clone, Debug)]
struct LockEntry<const KEY: usize> {
    key: Vec<u8, KEY>,
    holder: NodeId,
    expires: Instant,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    message_id: u64,
    version: u64,
    deadline: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Target {
    node: NodeAddr,
    /// The newest version of the key this target acknowledged.
    acked: u64,
    in_flight: Option<InFlight>,
    retry_at: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Waiter {
    version: u64,
    origin: Origin,
}

/// Brings `targets` up to date with the current value of `key`: one Replicate in flight per
/// target, always carrying the value current when it is sent.
#[derive(Clone, Debug)]
struct Round<const KEY: usize, const L: usize> {
    key: Vec<u8, KEY>,
    id: NodeId,
    targets: Vec<Target, L>,
    waiters: Vec<Waiter, MAX_WAITERS>,
}

/// A node declared down (or gone), kept out of the leaf set until `until`.
#[derive(Clone, Copy, Debug)]
struct Tombstone {
    node: NodeAddr,
    until: Instant,
    /// Declared down from timeouts or a report, not gone with Leave: it is still sent
    /// stabilization requests, and taken back if it answers (it was alive after all).
    probe: bool,
    /// When its probation ends: until then, if it was one of this node's replicas, it still
    /// receives (and must acknowledge) replicas, so that a replica declared down by mistake
    /// cannot miss a write it would need as the next owner.
    probation_until: Instant,
    probation_over: bool,
}

/// Whether two socket addresses name the same endpoint (an IPv4 address and its IPv4-mapped
/// IPv6 form are the same).
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
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

/// A DHT node, without sockets or clocks.
///
/// Feed it messages with [`handle_message`](Self::handle_message) and the passing of time with
/// [`handle_timeout`](Self::handle_timeout); send what [`poll_transmit`](Self::poll_transmit)
/// writes (to the peer it names); sleep until [`poll_timeout`](Self::poll_timeout); read
/// [`poll_event`](Self::poll_event). Every call takes `now`; the node never reads a clock.
///
/// Storage is fixed at compile time: `L` leaf-set nodes on each side at most (`1..=16`), `KEYS`
/// stored keys (and as many locks), keys of at most `KEY` bytes and values of at most `VALUE`
/// bytes (larger ones are refused with [`ErrorCode::Full`]), `PENDING` outstanding requests,
/// replication rounds and queued messages.
///
/// # The ring
/// Nodes are ordered by id; each keeps a [`LeafSet`] of its nearest [`Config::leaf_size`]
/// predecessors and successors. A new node joins through any member ([`join`](Self::join)):
/// InitConnect to the entry, which forwards a RequestInsertion toward the joiner's id; the node
/// that owns that id (the joiner's successor) takes the joiner as its left neighbour, answers it
/// with two Join messages (its left and right neighbours) and announces it to its leaf set. A
/// join on oneself (same id or address) is refused with [`ErrorCode::JoinSelf`]. Every
/// [`Config::stabilize_interval`] a node sends InitConnect to its nearest neighbours and one other
/// member; a member answers with Join messages listing the neighbours it knows for the asker, so
/// leaf sets converge after concurrent joins and lost messages, and a member that answers no
/// request [`Config::max_failures`] times in a row is declared down (so is one the application
/// reports with [`handle_peer_down`](Self::handle_peer_down), or one that sends Leave). A node
/// declared down is kept out of the leaf set for [`Config::tombstone`] so that stale gossip
/// cannot bring it back.
///
/// # Keys
/// A key's id is [`NodeId::from_name`]`(key)`; its **owner is the first node at or after that
/// id clockwise** (see [`ring`](super::ring)). A get, put, lock or unlock goes to the node of the
/// leaf set closest to the key; a node that does not own the key forwards it the same way (each
/// hop strictly closer, so requests never loop) and relays the owner's answer back, so every
/// response comes from the node the request was sent to and is matched by message id *and*
/// sender. A forwarding node that gets no answer in half a request timeout answers
/// [`ErrorCode::NotOwner`]; the requesting node then tries again (up to
/// [`Config::max_attempts`]) along its current view of the ring.
///
/// # Replication guarantee
/// The owner stores a put and sends Replicate to its R nearest successors (its replicas), at
/// most one in flight per replica and key, always with the value current when sent. A PutAck
/// to a Replicate means "I now hold exactly this value". The owner acknowledges the put
/// (PutDone / PutAck) only when
/// * every replica of its current view has acknowledged that value or a newer one (with fewer
///   than R other nodes in the ring, all of them; a replica declared down stays a target for
///   its probation, `(max_failures + 1) × stabilize_interval`),
/// * it still owns the key by its view at that moment (else it answers
///   [`ErrorCode::NotOwner`] and the requester tries again), and
/// * no node it took the key over from is still on probation (that node may be alive and
///   serving the key: the write waits, and is refused if that node comes back).
///
/// So an acknowledged value is held by R + 1 nodes; when the owner dies its successor — a
/// replica — owns the key, and a single crash (R ≥ 1; R ≥ 2 keeps a second copy while the ring
/// re-replicates) loses no acknowledged write. Replicate carries no version, so who may
/// overwrite whom is settled by ownership: a node takes a value over its own only from the node
/// it sees as the key's owner; as owner it stores an offered key it lacks but keeps its own copy
/// (answering NotOwner to a different value); a node that is neither keeps a copy if it has
/// none and overwrites nothing. On every leaf-set change each node re-replicates the keys it
/// owns to its new replica set and offers the keys whose owner changed to the new owner.
///
/// What this assumes, exactly: (1) no message is delayed past a request timeout (a late copy
/// could overwrite a newer value), as TCP gives; (2) a node declared down while alive answers
/// a probe within its probation (otherwise two nodes may act as the key's owner). Reads during
/// a join, or right after a crash, may miss a key until the handover reaches the new owner.
/// After a real crash, writes to the dead node's keys wait for its probation.
///
/// # Locks
/// A lock lives at the key's owner, per holder (the requesting node's id), with a lease of at
/// most [`Config::max_lease`]. The owner grants it when the key is free or its lease has
/// passed, renews it when its holder locks again, refuses everyone else (LockDenied: holder and
/// remaining lease; nobody waits, so there is no deadlock), and releases it only for its holder
/// ([`ErrorCode::NotHolder`] otherwise). A node that takes over keys (it joined, or its left
/// neighbour went away) grants no new lock on them for one `max_lease`, so a lock granted by the
/// previous owner is never granted twice. The holder counts its lease from when it sent the
/// request, so it always believes it holds the lock for less time than the owner grants it.
/// Locks are not replicated: the grace period is what makes an owner change safe. Mutual
/// exclusion assumes clocks that run at the same rate and at most one node that believes it
/// owns a key at a time (a node declared down while alive is probed and taken back well within
/// the grace period, so its successor never grants while it still does).
#[derive(Debug)]
pub struct DhtNode<
    R,
    const L: usize = 4,
    const KEYS: usize = 32,
    const KEY: usize = 32,
    const VALUE: usize = 128,
    const PENDING: usize = 32,
> {
    config: Config,
    rng: R,
    leaf: LeafSet<L>,
    state: State,
    store: Vec<Entry<KEY, VALUE>, KEYS>,
    locks: Vec<LockEntry<KEY>, KEYS>,
    rounds: Vec<Round<KEY, L>, PENDING>,
    pending: Vec<Pending<KEY, VALUE>, PENDING>,
    queue: Deque<Outgoing<KEY, VALUE>, PENDING>,
    events: Deque<Event<VALUE>, EVENT_CAPACITY>,
    tombstones: Vec<Tombstone, TOMBSTONES>,
    suspects: Vec<NodeId, SUSPECTS>,
    stats: Stats,
    next_request: u64,
    next_stabilize: Instant,
    ping_cursor: usize,
    sweep: Option<usize>,
    grace_until: Instant,
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
    const CHECK: () = assert!(
        L >= 1
            && 2 * L <= MAX_NODE_LIST
            && KEY <= MAX_KEY_LEN
            && VALUE <= MAX_VALUE_LEN
            && PENDING >= 2,
        "DhtNode: L must be 1..=16, KEY ≤ 255, VALUE ≤ 65535, PENDING ≥ 2"
    );

    /// The longest message this node writes: give [`poll_transmit`](Self::poll_transmit) a
    /// buffer this large.
    pub const MAX_TRANSMIT_LEN: usize = {
        let kv = HEADER_LEN + 1 + KEY + 1 + 2 + VALUE;
        let join = HEADER_LEN + 2 + L * NODE_LEN;
        let leave = HEADER_LEN + 1 + 2 * L * NODE_LEN;
        let lock = HEADER_LEN + 1 + KEY + 16 + 4;
        let mut max = kv;
        if join > max {
            max = join;
        }
        if leave > max {
            max = leave;
        }
        if lock > max {
            max = lock;
        }
        max
    };

    /// Request slots kept free for stabilization, so that a flood of requests cannot stop
    /// failure detection.
    const RESERVE: usize = if PENDING > 8 { 2 } else { 0 };

    /// A node alone in its own ring (it owns every key until it joins others or others join it),
    /// drawing message ids from `rng` (use a CSPRNG so that ids cannot be guessed).
    pub fn new(mut config: Config, rng: R) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        config.leaf_size = config.leaf_size.clamp(1, L);
        config.replicas = config.replicas.min(config.leaf_size);
        config.max_attempts = config.max_attempts.max(1);
        config.max_failures = config.max_failures.max(1);
        DhtNode {
            leaf: LeafSet::new(config.local, config.leaf_size),
            config,
            rng,
            state: State::Active,
            store: Vec::new(),
            locks: Vec::new(),
            rounds: Vec::new(),
            pending: Vec::new(),
            queue: Deque::new(),
            events: Deque::new(),
            tombstones: Vec::new(),
            suspects: Vec::new(),
            stats: Stats::default(),
            next_request: 1,
            next_stabilize: Instant::ZERO,
            ping_cursor: 0,
            sweep: None,
            grace_until: Instant::ZERO,
        }
    }

    /// The node's configuration (as clamped by [`new`](Self::new)).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This node.
    pub fn local(&self) -> NodeAddr {
        self.config.local
    }

    /// The node's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The node's view of the ring around it.
    pub fn leaf_set(&self) -> &LeafSet<L> {
        &self.leaf
    }

    /// Whether the node is in a ring with other nodes (joined, or joined by others, and not
    /// left).
    pub fn in_ring(&self) -> bool {
        self.state == State::Active && !self.leaf.is_empty()
    }

    /// Whether the node has left ([`leave`](Self::leave)).
    pub fn has_left(&self) -> bool {
        self.state == State::Departed
    }

    /// The owner of `key` as this node sees the ring.
    pub fn owner_of(&self, key: &[u8]) -> NodeAddr {
        self.leaf.owner(NodeId::from_name(key))
    }

    /// The value this node stores for `key` (as owner or replica), if any.
    pub fn stored(&self, key: &[u8]) -> Option<&[u8]> {
        self.store
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value[..])
    }

    /// How many keys this node stores.
    pub fn stored_len(&self) -> usize {
        self.store.len()
    }

    /// The current holder of the lock on `key` at this node, if it holds one that has not expired
    /// at `now`.
    pub fn lock_holder(&self, now: Instant, key: &[u8]) -> Option<NodeId> {
        self.locks
            .iter()
            .find(|l| l.key == key && l.expires > now)
            .map(|l| l.holder)
    }

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

    /// Takes (or renews) the lock on `key` for this node, for `lease` (at most
    /// [`Config::max_lease`], at least 1 ms); the outcome is [`Event::Locked`],
    /// [`Event::LockDenied`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
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
        self.next_request = self.next_request.wrapping_add(1);
        let request = Request {
            op,
            key,
            value,
            holder: self.config.local.id,
            lease_ms,
        };
        self.start_request(now, Origin::Local(id), request, 1);
        Ok(id)
    }

    fn request_room(&self) -> bool {
        self.pending.len() + Self::RESERVE < PENDING
    }

    /// Serves `request` here if this node owns its key, or queues it toward the owner.
    fn start_request(
        &mut self,
        now: Instant,
        origin: Origin,
        request: Request<KEY, VALUE>,
        attempts: u8,
    ) {
        match self.leaf.next_hop(NodeId::from_name(&request.key)) {
            None => self.serve(now, origin, &request),
            Some(hop) => {
                if !self.request_room() {
                    self.stats.full += 1;
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
                    },
                });
            }
        }
    }

    /// Answers a request for a key this node owns.
    fn serve(&mut self, now: Instant, origin: Origin, request: &Request<KEY, VALUE>) {
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
                self.serve_put(now, origin, key, &request.value);
                return;
            }
            Op::Lock => self.lock_op(now, key, request.holder, request.lease_ms),
            Op::Unlock => self.unlock_op(now, key, request.holder),
        };
        self.respond(origin, request.op, reply, now);
    }

    fn serve_put(&mut self, now: Instant, origin: Origin, key: &[u8], value: &[u8]) {
        let existing = self.rounds.iter().position(|r| r.key == key);
        let room = match existing {
            Some(ri) => !self.rounds[ri].waiters.is_full(),
            None => !self.rounds.is_full(),
        };
        let id = NodeId::from_name(key);
        if !room || self.store_value(key, id, value).is_none() {
            self.stats.full += 1;
            self.respond(origin, Op::Put, Reply::error(ErrorCode::Full), now);
            return;
        }
        let me = self.config.local.id;
        let Some(entry) = self.store.iter_mut().find(|e| e.key == key) else {
            return;
        };
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
        };
        self.store.push(entry).ok()?;
        Some(self.store.len() - 1)
    }

    /// Drops a key this node neither owns nor replicates (by its view) to make room.
    fn evict(&mut self) -> Option<()> {
        let me = self.config.local.id;
        let r = self.config.replicas;
        let i = self.store.iter().position(|e| {
            let owner = self.leaf.owner(e.id).id;
            owner != me
                && self.leaf.rank_after(owner).is_none_or(|rank| rank >= r)
                && !self.rounds.iter().any(|round| round.key == e.key)
        })?;
        self.store.swap_remove(i);
        if self.sweep.is_some() {
            self.sweep = Some(0);
        }
        Some(())
    }

    fn lock_op(
        &mut self,
        now: Instant,
        key: &[u8],
        holder: NodeId,
        lease_ms: u32,
    ) -> Reply<KEY, VALUE> {
        let max = millis(self.config.max_lease).max(1);
        let lease_ms = lease_ms.clamp(1, max);
        let lease = Duration::from_millis(u64::from(lease_ms));
        self.locks.retain(|l| l.expires > now);
        if let Some(l) = self.locks.iter_mut().find(|l| l.key == key) {
            if l.holder == holder {
                l.expires = now + lease;
                return Reply::lock(Kind::Locked, key, holder, lease_ms);
            }
            let remaining = millis(l.expires - now);
            return Reply::lock(Kind::LockDenied, key, l.holder, remaining);
        }
        if now < self.grace_until {
            let remaining = millis(self.grace_until - now);
            return Reply::lock(Kind::LockDenied, key, NodeId::default(), remaining);
        }
        let entry = LockEntry {
            key: Vec::from_slice(key).unwrap_or_default(),
            holder,
            expires: now + lease,
        };
        if self.locks.push(entry).is_err() {
            self.stats.full += 1;
            return Reply::error(ErrorCode::Full);
        }
        Reply::lock(Kind::Locked, key, holder, lease_ms)
    }

    fn unlock_op(&mut self, now: Instant, key: &[u8], holder: NodeId) -> Reply<KEY, VALUE> {
        self.locks.retain(|l| l.expires > now);
        match self
            .locks
            .iter()
            .position(|l| l.key == key && l.holder == holder)
        {
            Some(i) => {
                self.locks.swap_remove(i);
                Reply::new(Kind::Unlocked, key)
            }
            None => Reply::error(ErrorCode::NotHolder),
        }
    }

    /// Delivers an answer: queued to the node that asked, or as an event to the application.
    /// `since` is when the answered attempt was sent (for lock leases).
    fn respond(&mut self, origin: Origin, op: Op, reply: Reply<KEY, VALUE>, since: Instant) {
        match origin {
            Origin::Remote { to, message_id } => self.send(to, message_id, Out::Reply(reply)),
            Origin::Local(id) => self.emit(reply.into_event(id, op, since)),
        }
    }

    fn fresh_id(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn emit(&mut self, event: Event<VALUE>) {
        if self.events.push_back(event).is_err() {
            self.stats.events_dropped += 1;
        }
    }

    fn send(&mut self, to: SocketAddr, message_id: u64, out: Out<KEY, VALUE>) {
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

    fn retarget(&mut self, now: Instant, ri: usize) {
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
    fn check_rounds(&mut self, now: Instant) {
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
                .any(|t| !t.probation_over && super::ring::is_closer(id, t.node.id, me));
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
    fn advance_sweep(&mut self, now: Instant) {
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

    fn note_failure(&mut self, now: Instant, id: NodeId) {
        if self.leaf.note_failure(id) >= self.config.max_failures
            && let Some(node) = self.leaf.get(id)
        {
            self.drop_member(now, node, true);
        }
    }

    /// Handles one received message (a UDP datagram, or a TCP frame without its length prefix).
    /// Answers go to the address in the message's header (its sender's listening address).
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8]) -> Disposition {
        self.handle(now, None, bytes)
    }

    /// Like [`handle_message`](Self::handle_message), for a message that came from `from` (a
    /// datagram's source address, or the peer of the TCP connection it came on): a message
    /// whose header names another sender address is dropped as
    /// [`DropReason::SourceMismatch`] (and counted), so that nobody can make this node answer,
    /// forward or send anything to an address that did not send the message. Adapters should
    /// use this one.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition {
        self.handle(now, Some(from), bytes)
    }

    fn handle(&mut self, now: Instant, from: Option<SocketAddr>, bytes: &[u8]) -> Disposition {
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
        if let Some(from) = from
            && !same_endpoint(from, message.header.sender.addr)
        {
            self.stats.source_mismatch += 1;
            return Disposition::Dropped(DropReason::SourceMismatch);
        }
        let Header { message_id, sender } = message.header;
        let me = self.config.local;
        if sender.addr == me.addr {
            self.stats.self_talk += 1;
            return Disposition::Dropped(DropReason::SelfTalk);
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
        match message.body {
            Body::Get { .. } | Body::Put { .. } | Body::Lock { .. } | Body::Unlock { .. } => {
                self.on_request(now, sender, message_id, &message.body)
            }
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
                self.on_request_insertion(now, joining, message_id)
            }
            Body::Join { side, nodes } => self.on_join(now, sender, message_id, side, nodes),
            Body::Leave { nodes } => self.on_leave(now, sender, nodes),
        }
    }

    fn on_request(
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
        match Request::from_body(body) {
            Some(request) => self.start_request(now, origin, request, self.config.max_attempts),
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

    fn on_replicate(
        &mut self,
        now: Instant,
        sender: NodeAddr,
        message_id: u64,
        key: &[u8],
        value: &[u8],
    ) -> Disposition {
        let me = self.config.local.id;
        let id = NodeId::from_name(key);
        let owner = self.leaf.owner(id).id;
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
        if owner == me {
            // An offer from a replica: the owner's own value, if it has one, is authoritative.
            match held {
                None => {
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
                Some(true) => {}
                Some(false) => return self.refuse_replica(sender, message_id),
            }
        } else if owner == sender.id {
            // The owner replicating a write: its value wins.
            let Some(i) = self.store_value(key, id, value) else {
                return full(self);
            };
            self.store[i].owner_seen = Some(owner);
            self.store[i].replicated = None;
        } else {
            // Neither this node nor the sender owns the key (as this node sees the ring): an
            // offer that went astray, or an owner this node does not know of yet. Keep a copy
            // if there is none, but overwrite nothing.
            match held {
                None => {
                    let Some(i) = self.store_value(key, id, value) else {
                        return full(self);
                    };
                    self.store[i].owner_seen = Some(owner);
                }
                Some(true) => {}
                Some(false) => return self.refuse_replica(sender, message_id),
            }
        }
        self.send(
            sender.addr,
            message_id,
            Out::Reply(Reply::new(Kind::PutAck, key)),
        );
        Disposition::Handled
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

    fn on_response(
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
                Task::Join { .. } | Task::Ping => matches!(body, Body::Error { .. }),
            };
            if !fits {
                self.stats.unmatched += 1;
                return Disposition::Dropped(DropReason::Unmatched);
            }
            let p = self.pending.swap_remove(i);
            let since = p.sent.unwrap_or(now);
            match p.task {
                Task::Request {
                    origin,
                    request,
                    attempts,
                } => match origin {
                    Origin::Local(id) => {
                        let retry = matches!(
                            body,
                            Body::Error {
                                code: ErrorCode::NotOwner
                            }
                        ) && attempts < self.config.max_attempts;
                        if retry {
                            self.stats.retries += 1;
                            self.start_request(now, origin, request, attempts + 1);
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
                        self.emit(Event::JoinFailed {
                            error: RequestError::Refused(code),
                        });
                    }
                }
                Task::Ping => {}
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
            let round = &mut self.rounds[ri];
            let t = &mut round.targets[ti];
            if t.node != sender {
                self.stats.wrong_sender += 1;
                return Disposition::Dropped(DropReason::WrongSender);
            }
            match body {
                Body::PutAck { key } if *key == &round.key[..] => {
                    if let Some(f) = t.in_flight.take() {
                        t.acked = t.acked.max(f.version);
                    }
                }
                Body::Error { .. } if !owner => {
                    // An offer refused: the owner keeps its own copy, which is the authority.
                    t.in_flight = None;
                    t.acked = u64::MAX;
                }
                Body::Error { .. } => {
                    // A replica that cannot take the value yet (full, or it does not see this
                    // node as the owner yet): try again later.
                    t.in_flight = None;
                    t.retry_at = now + self.config.request_timeout;
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

    fn on_init_connect(&mut self, now: Instant, sender: NodeAddr, message_id: u64) -> Disposition {
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
            if n.id != joining.id && super::ring::is_closer(joining.id, n.id, best.id) {
                best = n;
            }
        }
        best
    }

    fn on_request_insertion(
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

    fn on_join(
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

    fn on_leave(&mut self, now: Instant, sender: NodeAddr, nodes: NodeSet<'_>) -> Disposition {
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
                        self.note_failure(now, id);
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
                        self.emit(Event::JoinFailed {
                            error: RequestError::Timeout,
                        });
                    }
                }
                Task::Request {
                    origin,
                    request,
                    attempts,
                } => match origin {
                    Origin::Local(id) => {
                        if let Some(to) = p.to_id {
                            self.note_failure(now, to);
                        }
                        if attempts < self.config.max_attempts {
                            self.stats.retries += 1;
                            self.start_request(now, origin, request, attempts + 1);
                        } else {
                            self.emit(Event::Failed {
                                id,
                                op: request.op,
                                error: RequestError::Timeout,
                            });
                        }
                    }
                    Origin::Remote { .. } => {
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
        }
    }

    /// Queues InitConnect to the nearest neighbour on each side and to one other member.
    fn stabilize(&mut self, now: Instant) {
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
        if !self.leaf.is_empty() || self.tombstones.iter().any(|t| t.probe) {
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
                let relay = matches!(
                    self.pending[i].task,
                    Task::Request {
                        origin: Origin::Remote { .. },
                        ..
                    }
                );
                let timeout = if relay {
                    self.config.request_timeout / 2
                } else {
                    self.config.request_timeout
                };
                let me = self.config.local;
                let p = &mut self.pending[i];
                p.sent = Some(now);
                p.deadline = now + timeout;
                let body = match &p.task {
                    Task::Request { request, .. } => request.body(),
                    Task::Ping | Task::Join { .. } => Body::InitConnect,
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

    fn write_replica(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
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
        };
        match encoded {
            Ok(len) => {
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

#[cfg(feature = "defmt")]
mod defmt_impls {
    use super::Event;
    use defmt::{Display2Format as D, Format, Formatter, write};

    impl<const VALUE: usize> Format for Event<VALUE> {
        fn format(&self, f: Formatter<'_>) {
            match self {
                Event::Joined { via } => write!(f, "joined via {}", via),
                Event::JoinFailed { error } => write!(f, "join failed: {}", error),
                Event::NeighbourDown { node } => write!(f, "neighbour down {}", node),
                Event::GetDone { id, value } => {
                    write!(f, "get {} done: {=?}", id, value.as_deref())
                }
                Event::PutDone { id } => write!(f, "put {} done", id),
                Event::Locked { id, until } => write!(f, "lock {} held until {}", id, until),
                Event::LockDenied { id, holder, .. } => {
                    write!(f, "lock {} denied, held by {}", id, holder)
                }
                Event::Unlocked { id } => write!(f, "unlock {} done", id),
                Event::Failed { id, op, error } => write!(f, "{} {} failed: {}", op, id, error),
            }
        }
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod sim_tests;
