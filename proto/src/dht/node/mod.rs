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
    ErrorCode, HEADER_LEN, LockToken, MAX_KEY_LEN, MAX_NODE_LIST, MAX_VALUE_LEN, NODE_LEN,
    NodeAddr, NodeId, RELAYED_LEN, ROUTE_LIST, VIEW_SIDE,
};
use crate::Error;
use crate::time::Instant;

mod io;
mod locks;
mod membership;
mod replication;
mod routing;
mod table;
mod validation;

pub(super) use io::same_endpoint;
pub(super) use routing::{Reply, Request};
pub use table::{COLUMNS, DIGIT_BITS, ROUTE_HINTS, RouteTable};
pub use validation::{CREDITS, VALIDATED};

use io::Outgoing;
use locks::LockEntry;
use membership::Tombstone;
use replication::{Entry, Round};
use routing::Pending;

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
/// How many nodes heard of (in Join and Leave lists, or as the sender of an unsolicited Join)
/// a node keeps to probe; one enters the leaf set only once it answered the probe itself.
pub const HINTS: usize = 16;
/// Rows of a node's routing table ([`RouteTable`]): ids are resolved [`DIGIT_BITS`] bits per
/// row for the first `ROUTE_ROWS` digits, the leaf set does the rest; 4 rows of [`COLUMNS`]
/// cells serve rings of tens of thousands of nodes.
pub const ROUTE_ROWS: usize = 4;

/// How many former leaf-set members a node remembers after their tombstone ran out without
/// an answer (the graveyard), to probe now and then: after a partition longer than a
/// tombstone, each side has forgotten the other, and nothing else would bring them together
/// again — the two sides would stay two rings for good.
pub const GRAVEYARD: usize = 8;
/// A node probes one graveyard entry every this many stabilizations (8 s by default).
pub const GRAVEYARD_EVERY: u32 = 8;

/// Refusals after which a node stops offering a key to its new owner (the owner holds a value
/// of its own, which stands): the waits between attempts double up to a probation, so this
/// covers the time a joiner's view takes to settle.
const OFFER_REFUSALS: u8 = 6;

/// Timing and behaviour of a [`DhtNode`].
///
/// `#[non_exhaustive]`: settings may be added. Build one with [`Config::new`] and the chainable
/// `with_*` methods (`const fn`s, so a config can be a `const` or a `static`); the fields stay
/// public, to read, and to assign on a `let mut` config.
///
/// ```
/// use core::time::Duration;
/// use sinew_proto::dht::{Config, NodeAddr, NodeId};
///
/// let local = NodeAddr::bound("127.0.0.1:7000".parse().unwrap());
/// assert_eq!(local.id, NodeId::from_addr(local.addr));
/// let config = Config::new(local).with_replicas(1).with_max_lease(Duration::from_secs(5));
/// assert_eq!(config.leaf_size, 4);
/// assert!(config.bind_ids);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// This node: its id and the address its peers reach it at (the sender of every message it
    /// sends). With [`bind_ids`](Self::bind_ids) on (the default) the id must be
    /// [`NodeId::from_addr`]`(addr)` ([`NodeAddr::bound`]), else its peers refuse it; with it
    /// off, any id ([`NodeId::from_name`], [`NodeId::random`]).
    pub local: NodeAddr,
    /// Nodes kept in the leaf set on each side, `1..=L` (clamped).
    pub leaf_size: usize,
    /// R: how many of the owner's successors hold a replica of each key, `0..=leaf_size`
    /// (clamped). A put is acknowledged once the owner and these replicas stored it.
    pub replicas: usize,
    /// How long one attempt of a request waits for its answer: the request's end-to-end
    /// budget. A node that forwards a request (as [`Body::Relayed`](super::Body::Relayed))
    /// passes on what remains of it and waits no longer than that, so that its "not reachable"
    /// answer reaches the requester in time (see [`hop_allowance`](Self::hop_allowance) and
    /// PROTOCOL.md, *Relayed requests*).
    pub request_timeout: Duration,
    /// What one hop costs a relayed request: the longest round trip expected between two nodes
    /// (the request's way to the next node and the answer's way back) plus their processing.
    /// A node that received a budget `b` answers within `b − hop_allowance`; it forwards only
    /// while more than one allowance remains, and answers [`ErrorCode::Expired`] at once
    /// otherwise (counted in [`Stats::expired`]). 25 ms by default: a request timeout of 500 ms
    /// covers about 19 hops.
    pub hop_allowance: Duration,
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
    /// Answer an address that has not proved it receives (a round trip: an answer to a request
    /// of this node, or an Echo of its Challenge) with no more bytes than it sent: a larger
    /// answer is replaced by a header-only Challenge, and the request is answered in full once
    /// echoed. On by default; turning it off (tests, closed deployments) lets anyone who forges
    /// a source address make the node send more to it than was sent.
    pub validate_addresses: bool,
    /// Take a node's id only if it is bound to its address ([`NodeId::from_addr`] of the
    /// address its messages come from): a message from a node whose header names another id,
    /// and a node listed (Join, Leave, RequestInsertion) with another id than its address's,
    /// are dropped and counted in [`Stats::unbound_ids`], so that choosing a place in the ring
    /// costs an address (and a port). Client requests (Get, Put, Lock, Unlock) are taken
    /// whatever id they name: a client's id places nothing. On by default; turn it off for
    /// tests that place nodes by hand and for closed deployments that name their nodes
    /// (every node of a ring must then agree). See PROTOCOL.md, *Ids bound to addresses*.
    pub bind_ids: bool,
    /// The share, in percent (`1..=100`, clamped), of this node's store (`KEYS`), and of its
    /// lock table (`KEYS`), that one accountable origin may fill with new keys (new locks):
    /// the address of the client or node where its requests entered the ring, whatever path
    /// they took (a plain request's sender, or the origin a [`Body::Relayed`](super::Body::Relayed)
    /// names). Past it, its further new keys and locks are answered [`ErrorCode::Full`]
    /// (counted in [`Stats::over_share`]), while other origins still find room; overwrites and
    /// renewals are taken. See PROTOCOL.md, *Quotas*. 25 by default (never less than one key);
    /// 100 turns the bound off.
    pub store_share: u8,
    /// The share, in percent (`1..=100`, clamped), of this node's outstanding-request table
    /// (`PENDING`) that the requests of one sender address outside the leaf set, or of one
    /// accountable origin, may take while they wait here for their owner's answer; past it,
    /// its further requests to relay are answered [`ErrorCode::Full`] (counted in
    /// [`Stats::over_share`]). It is also the share of the store (and of the lock table) that
    /// the new keys (locks) delivered by one relaying node may take, whatever origins it
    /// names. 50 by default (32 of 64 slots: room for a client that pipelines, and for
    /// everyone else); 100 turns the bound off.
    pub relay_share: u8,
}

impl Config {
    /// The defaults for a node at `local`: 4 nodes on each side, 2 replicas, 500 ms per attempt,
    /// 3 attempts, stabilization every second, 3 failures, 10 s leases, 30 s tombstones.
    pub const fn new(local: NodeAddr) -> Config {
        Config {
            local,
            leaf_size: 4,
            replicas: 2,
            request_timeout: Duration::from_millis(500),
            hop_allowance: Duration::from_millis(25),
            max_attempts: 3,
            stabilize_interval: Duration::from_secs(1),
            max_failures: 3,
            max_lease: Duration::from_secs(10),
            tombstone: Duration::from_secs(30),
            validate_addresses: true,
            bind_ids: true,
            store_share: 25,
            relay_share: 50,
        }
    }

    /// Sets [`leaf_size`](Self::leaf_size).
    #[must_use]
    pub const fn with_leaf_size(mut self, leaf_size: usize) -> Config {
        self.leaf_size = leaf_size;
        self
    }

    /// Sets [`replicas`](Self::replicas).
    #[must_use]
    pub const fn with_replicas(mut self, replicas: usize) -> Config {
        self.replicas = replicas;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    #[must_use]
    pub const fn with_request_timeout(mut self, request_timeout: Duration) -> Config {
        self.request_timeout = request_timeout;
        self
    }

    /// Sets [`hop_allowance`](Self::hop_allowance).
    #[must_use]
    pub const fn with_hop_allowance(mut self, hop_allowance: Duration) -> Config {
        self.hop_allowance = hop_allowance;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub const fn with_max_attempts(mut self, max_attempts: u8) -> Config {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets [`stabilize_interval`](Self::stabilize_interval).
    #[must_use]
    pub const fn with_stabilize_interval(mut self, stabilize_interval: Duration) -> Config {
        self.stabilize_interval = stabilize_interval;
        self
    }

    /// Sets [`max_failures`](Self::max_failures).
    #[must_use]
    pub const fn with_max_failures(mut self, max_failures: u8) -> Config {
        self.max_failures = max_failures;
        self
    }

    /// Sets [`max_lease`](Self::max_lease).
    #[must_use]
    pub const fn with_max_lease(mut self, max_lease: Duration) -> Config {
        self.max_lease = max_lease;
        self
    }

    /// Sets [`validate_addresses`](Self::validate_addresses).
    #[must_use]
    pub const fn with_validate_addresses(mut self, validate_addresses: bool) -> Config {
        self.validate_addresses = validate_addresses;
        self
    }

    /// Sets [`bind_ids`](Self::bind_ids).
    #[must_use]
    pub const fn with_bind_ids(mut self, bind_ids: bool) -> Config {
        self.bind_ids = bind_ids;
        self
    }

    /// Sets [`store_share`](Self::store_share).
    #[must_use]
    pub const fn with_store_share(mut self, store_share: u8) -> Config {
        self.store_share = store_share;
        self
    }

    /// Sets [`relay_share`](Self::relay_share).
    #[must_use]
    pub const fn with_relay_share(mut self, relay_share: u8) -> Config {
        self.relay_share = relay_share;
        self
    }

    /// Sets [`tombstone`](Self::tombstone).
    #[must_use]
    pub const fn with_tombstone(mut self, tombstone: Duration) -> Config {
        self.tombstone = tombstone;
        self
    }
}

/// The handle of a client request ([`DhtNode::get`], [`put`](DhtNode::put),
/// [`lock`](DhtNode::lock), [`unlock`](DhtNode::unlock)); its outcome comes back as an [`Event`]
/// carrying it.
///
/// Exhaustive on purpose: a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequestId(pub u64);

/// The kind of a client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
pub enum Event<const VALUE: usize> {
    /// The node is in the ring: `via` told it its neighbours — the node it asked, or the
    /// insertion point that answered instead, which it then asked itself (a joining node
    /// believes only the node it asked).
    Joined {
        /// The node whose Join completed the join.
        via: NodeAddr,
    },
    /// A [`DhtNode::join`] failed. The node is alone in its own ring, but the ring may have
    /// inserted it before the answers were lost: should they (or its members) still reach it, it
    /// becomes a member ([`Event::Joined`] follows) and, like any joiner, grants no lock on the
    /// keys it takes over for one [`Config::max_lease`]. After a [`RequestError::Timeout`]
    /// (under churn, usually a node on the way to the joiner's place that crashed), call
    /// [`join`](DhtNode::join) again, through the same entry or another member: the node does
    /// not retry by itself (`sinew dht node --join` does).
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
    /// A [`DhtNode::lock`] was refused: someone else holds the lock (who is not told), or the
    /// owner has just taken the key over and grants no lock during its grace period.
    LockDenied {
        /// The request.
        id: RequestId,
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
#[non_exhaustive]
pub struct Stats {
    /// Messages handed to [`DhtNode::handle_datagram`].
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
    /// Leave messages ignored because they named a leaf-set member's id from another address
    /// than the one this node holds for it (a Leave is taken only from the leaving node).
    pub forged_leaves: u64,
    /// Join answers from another node than the one asked (the insertion point): not believed,
    /// but asked in turn, whose own answer completes the join.
    pub join_referrals: u64,
    /// Replicate messages refused because their sender was not, by this node's view, the
    /// key's owner (as the address this node holds for it) — or, for a key this node owns and
    /// lacks, the key's previous owner.
    pub replicates_refused: u64,
    /// Bytes received from addresses that had not proved they receive.
    pub bytes_from_unvalidated: u64,
    /// Bytes of answers sent to addresses that had not proved they receive: never more than
    /// [`bytes_from_unvalidated`](Self::bytes_from_unvalidated).
    pub bytes_to_unvalidated: u64,
    /// Challenges sent instead of answers larger than the asker's budget.
    pub challenges_sent: u64,
    /// Challenges of other nodes echoed (this node was waiting for their answer).
    pub challenges_answered: u64,
    /// Answers not sent at all: larger than the asker's budget, which did not even hold a
    /// Challenge.
    pub unvalidated_dropped: u64,
    /// Nodes heard of from others (Join and Leave lists, unsolicited Joins) and queued to be
    /// probed: a node enters the leaf set only once it answered this node's own probe.
    pub hints: u64,
    /// Hints dropped: unanswered probes, or no room in the table of [`HINTS`].
    pub hints_dropped: u64,
    /// Messages from nodes, and nodes listed in messages, whose id is not the one bound to
    /// their address ([`Config::bind_ids`]): dropped, never probed or taken.
    pub unbound_ids: u64,
    /// Requests answered [`ErrorCode::Full`] because their accountable origin already held its
    /// [`Config::store_share`] of the store or the lock table, the node that relayed them its
    /// [`Config::relay_share`] of either, or their sender or origin its
    /// [`Config::relay_share`] of the outstanding-request table (also counted in
    /// [`full`](Self::full)).
    pub over_share: u64,
    /// Nodes taken into the routing table ([`RouteTable`]), each after it answered this
    /// node's own request.
    pub route_learnt: u64,
    /// Routing-table entries removed after [`Config::max_failures`] unanswered requests in a
    /// row.
    pub route_dropped: u64,
    /// Requests answered [`ErrorCode::Expired`]: what remained of their budget could not cover
    /// one more hop ([`Config::hop_allowance`]).
    pub expired: u64,
    /// Requests from addresses that had not proved a round trip, refused a slot (a relayed
    /// request; a put or lock that would take a store, round or lock slot; any request to
    /// forward): answered with a Challenge and nothing else (also counted in
    /// [`challenges_sent`](Self::challenges_sent)).
    pub challenged: u64,
    /// Requests dropped because the same request (same sender, same message id) already waits
    /// here for its owner's answer: a client sends a request again after a Challenge, and the
    /// answer on its way serves both. They take no second slot.
    pub duplicates: u64,
    /// Requests refused with [`ErrorCode::NotOwner`] because this node is in no ring of others
    /// (still joining, or alone after a failed join): it would own every key by its empty view
    /// and answer "no value" for keys the ring holds.
    pub not_member: u64,
}

/// What [`DhtNode::handle_datagram`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// It speaks for another node: a Leave naming a leaf-set member's id, from another address
    /// than the member's.
    Forged,
    /// A node's message whose sender id is not the one bound to its address
    /// ([`Config::bind_ids`]).
    UnboundId,
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

pub(super) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// How many answered requests a node remembers to recognise copies sent again.
const ANSWERED: usize = 32;

/// A DHT node, without sockets or clocks.
///
/// Feed it messages with [`handle_datagram`](Self::handle_datagram) and the passing of time with
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
/// with two Join messages (its left and right neighbours) and announces it to its leaf set. The
/// joiner believes only the node it asked: an answer from the insertion point is a referral, and
/// the joiner asks that node in turn (one more round trip). A join on oneself (same id or
/// address) is refused with [`ErrorCode::JoinSelf`]. A Leave is taken only from the address
/// this node holds for the leaver (others are counted in [`Stats::forged_leaves`]). Nodes
/// heard of from others (Join and Leave lists, a joiner's answer) are hints: a node probes them
/// and takes one into its leaf set only when it answered the probe itself ([`Stats::hints`]).
/// Every [`Config::stabilize_interval`] a node sends InitConnect to its nearest neighbours and one other
/// member; a member answers with Join messages listing the neighbours it knows for the asker, so
/// leaf sets converge after concurrent joins and lost messages, and a member that answers no
/// request [`Config::max_failures`] times in a row is declared down (so is one the application
/// reports with [`handle_peer_down`](Self::handle_peer_down), or one that sends Leave). A node
/// declared down is kept out of the leaf set for [`Config::tombstone`] so that stale gossip
/// cannot bring it back. After that, a member that never answered stays in a small graveyard
/// ([`GRAVEYARD`]) and is pinged now and then ([`GRAVEYARD_EVERY`]): if it answers itself it is
/// taken back, which is how the two sides of a long partition become one ring again.
///
/// # Keys
/// A key's id is [`NodeId::from_name`]`(key)`; its **owner is the first node at or after that
/// id clockwise** (see [`ring`](super::ring)). A get, put, lock or unlock goes to the known node
/// closest to the key — of the leaf set, or of the prefix routing table ([`RouteTable`], learnt
/// only from nodes that answered this node's own requests) when an entry is strictly closer —
/// so that it reaches the owner in about log16(N) hops; a node that does not own the key (by its
/// leaf set) forwards it the same way (each hop strictly closer, so requests never loop) and relays the owner's answer back, so every
/// response comes from the node the request was sent to and is matched by message id *and*
/// sender. A node forwards a request as a [`Body::Relayed`](super::Body::Relayed) carrying what
/// remains of its end-to-end budget (a request timeout where it entered the ring) and its
/// accountable origin (the client, or node, where it entered). A forwarding node that gets no
/// answer by the end of the budget it received, less [`Config::hop_allowance`], answers
/// [`ErrorCode::NotOwner`], and one whose budget cannot cover another hop answers
/// [`ErrorCode::Expired`] at once; the requesting node then tries again (up to
/// [`Config::max_attempts`]) along its current view of the ring. The owner counts a new key or
/// lock against the origin ([`Config::store_share`]) and the relaying node
/// ([`Config::relay_share`]); a request that would take a slot (or a Relayed) from an address
/// that has not proved a round trip is answered with a Challenge and nothing else.
///
/// # Amplification limit
/// An address that has not proved it receives (a round trip: an answer to a request of this
/// node, or an Echo of its Challenge) is answered with no more bytes than it sent
/// ([`Config::validate_addresses`], on by default): an InitConnect from it gets a header-only
/// Challenge and nothing else, a larger answer is replaced by a Challenge, and the asker
/// (node or [`DhtClient`](super::DhtClient)) echoes it and asks again at once. A joiner's
/// successor refers an unvalidated joiner to itself (a Join without nodes) instead of
/// inserting it. See PROTOCOL.md, *Amplification limit*.
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
/// overwrite whom is settled by ownership, as this node sees it, and by address: a node takes a
/// value only from the node it sees as the key's owner, at the address it holds for it; as
/// owner it stores an offered key it lacks only from the key's previous owner by its view (the
/// node it took the key over from) and keeps its own copy otherwise (answering NotOwner to a
/// different value); everything else is refused (NotOwner) and counted in
/// [`Stats::replicates_refused`] — a real owner tries again once the receiver knows it. On
/// every leaf-set change each node re-replicates the keys it owns to its new replica set and
/// offers the keys whose owner changed to the new owner; a refused offer is made again, each
/// wait twice the last (up to a probation), until the new owner's view has settled, for up to
/// 6 refusals.
///
/// So a key's acknowledged value is lost only when its owner and all R replicas fail before
/// the ring has re-replicated it (a probation and a few round trips after the first failure):
/// with R = 2 it survives any two failures among its holders.
///
/// What this assumes, exactly: (1) no message is delayed past a request timeout (a late copy
/// could overwrite a newer value), as TCP gives; (2) a node declared down while alive answers
/// a probe within its probation (otherwise two nodes may act as the key's owner). Reads during
/// a join, or right after a crash, may miss a key until the handover reaches the new owner.
/// After a real crash, writes to the dead node's keys wait for its probation.
///
/// # Locks
/// A lock lives at the key's owner, held by a secret token (a [`LockToken`] its holder chose and
/// sends only in its own Lock and Unlock; this node's is [`lock_token`](Self::lock_token)), with
/// a lease of at most [`Config::max_lease`]. The owner grants it when the key is free or its
/// lease has passed, renews it for a Lock with the same token, refuses every other (LockDenied:
/// only the remaining lease, never the token; nobody waits, so there is no deadlock), and
/// releases it only for an Unlock with its token ([`ErrorCode::NotHolder`] otherwise): whoever
/// has not seen the holder's Lock cannot renew or release it. A node that takes over keys (it joined, or its left
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
    /// Requests from others answered lately (sender, message id), so that a copy sent again
    /// after a Challenge takes no second slot once its answer left ([`Stats::duplicates`]).
    /// Each: sender, message id, the request's operation and its key's id.
    answered: Deque<(SocketAddr, u64, Op, NodeId), ANSWERED>,
    queue: Deque<Outgoing<KEY, VALUE>, PENDING>,
    events: Deque<Event<VALUE>, EVENT_CAPACITY>,
    tombstones: Vec<Tombstone, TOMBSTONES>,
    /// Leaf-set members whose tombstone ran out while they never answered: probed now and
    /// then, oldest pushed out first, so that the two sides of a long partition find each
    /// other again (see [`GRAVEYARD`]).
    graveyard: Vec<NodeAddr, GRAVEYARD>,
    /// Stabilizations so far, to probe the graveyard every [`GRAVEYARD_EVERY`]-th.
    stabilizations: u32,
    suspects: Vec<NodeId, SUSPECTS>,
    stats: Stats,
    next_request: u64,
    next_stabilize: Instant,
    ping_cursor: usize,
    sweep: Option<usize>,
    grace_until: Instant,
    /// A join of this node failed while the entry may have inserted it: the address it asked and
    /// the join's message id. Answers from that ring may still arrive and make it a member that
    /// takes over keys (so it starts the grace period then, as a join does).
    failed_join: Option<(SocketAddr, u64)>,
    /// The secret from which this node derives its lock tokens.
    lock_secret: [u8; 16],
    /// The secret from which this node derives its Challenge cookies.
    cookie_secret: [u8; 16],
    /// Addresses that proved they receive.
    validated: validation::Validated,
    /// Budgets of addresses that did not yet.
    credits: Vec<validation::Credit, CREDITS>,
    /// Nodes heard of, to probe before they enter the leaf set.
    hints: Vec<NodeAddr, HINTS>,
    /// Far nodes by shared id prefix, to route in O(log N) hops.
    table: RouteTable<ROUTE_ROWS>,
    /// Nodes heard of, to probe before they enter the routing table.
    route_hints: Vec<NodeAddr, ROUTE_HINTS>,
    /// The row the next routing-table refresh asks for.
    route_cursor: usize,
    /// RouteRequests this node may still send before the next stabilization.
    route_budget: u8,
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
        let kv = HEADER_LEN + RELAYED_LEN + 1 + KEY + 2 + VALUE;
        let join = HEADER_LEN + 2 + L * NODE_LEN;
        let leave = HEADER_LEN + 1 + 2 * L * NODE_LEN;
        let lock = HEADER_LEN + RELAYED_LEN + 1 + KEY + 16 + 4;
        let route = HEADER_LEN + 1 + 1 + ROUTE_LIST * NODE_LEN;
        let view_side = if L < VIEW_SIDE { L } else { VIEW_SIDE };
        let view = HEADER_LEN + 2 + 2 * view_side * NODE_LEN;
        let mut max = kv;
        if view > max {
            max = view;
        }
        if route > max {
            max = route;
        }
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
    pub fn new(mut config: Config, mut rng: R) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        config.leaf_size = config.leaf_size.clamp(1, L);
        config.replicas = config.replicas.min(config.leaf_size);
        config.max_attempts = config.max_attempts.max(1);
        config.max_failures = config.max_failures.max(1);
        config.store_share = config.store_share.clamp(1, 100);
        config.relay_share = config.relay_share.clamp(1, 100);
        let mut lock_secret = [0; 16];
        rng.fill_bytes(&mut lock_secret);
        let mut cookie_secret = [0; 16];
        rng.fill_bytes(&mut cookie_secret);
        DhtNode {
            leaf: LeafSet::new(config.local, config.leaf_size),
            config,
            rng,
            state: State::Active,
            store: Vec::new(),
            locks: Vec::new(),
            rounds: Vec::new(),
            pending: Vec::new(),
            answered: Deque::new(),
            queue: Deque::new(),
            events: Deque::new(),
            tombstones: Vec::new(),
            graveyard: Vec::new(),
            stabilizations: 0,
            suspects: Vec::new(),
            stats: Stats::default(),
            next_request: 1,
            next_stabilize: Instant::ZERO,
            ping_cursor: 0,
            sweep: None,
            grace_until: Instant::ZERO,
            failed_join: None,
            lock_secret,
            cookie_secret,
            validated: validation::Validated::new(&cookie_secret),
            credits: Vec::new(),
            hints: Vec::new(),
            table: RouteTable::new(config.local.id),
            route_hints: Vec::new(),
            route_cursor: 0,
            route_budget: table::ROUTE_BUDGET,
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

    /// Every key this node stores (as owner or replica) and its value, in no particular order:
    /// what a crash of this node takes away, for a simulation or an operator to inspect.
    pub fn stored_entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.store.iter().map(|e| (&e.key[..], &e.value[..]))
    }

    /// How many keys this node stores.
    pub fn stored_len(&self) -> usize {
        self.store.len()
    }

    /// The token of the lock on `key` held at this node (as the key's owner), if one is held
    /// that has not expired at `now`.
    pub fn lock_holder(&self, now: Instant, key: &[u8]) -> Option<LockToken> {
        self.locks
            .iter()
            .find(|l| l.key == key && l.expires > now)
            .map(|l| l.token)
    }

    /// The token this node locks `key` with ([`lock`](Self::lock)): derived from a secret it
    /// drew at random when it was created, so the same for every lock of the key by this
    /// node, and known to no other node but the key's owner (and the nodes that relay the
    /// request to it).
    pub fn lock_token(&self, key: &[u8]) -> LockToken {
        LockToken::derive(&self.lock_secret, key)
    }

    /// How many of `capacity` slots a share of `percent` is: at least 1.
    fn share_of(capacity: usize, percent: u8) -> usize {
        (capacity.saturating_mul(usize::from(percent)) / 100).max(1)
    }

    fn fresh_id(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn emit(&mut self, event: Event<VALUE>) {
        if self.events.push_back(event).is_err() {
            self.stats.events_dropped += 1;
        }
    }
}

#[cfg(feature = "defmt")]
mod defmt_impls {
    use super::Event;
    use defmt::{Format, Formatter, write};

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
                Event::LockDenied { id, remaining } => {
                    write!(
                        f,
                        "lock {} denied for {=u128} ms",
                        id,
                        remaining.as_millis()
                    )
                }
                Event::Unlocked { id } => write!(f, "unlock {} done", id),
                Event::Failed { id, op, error } => write!(f, "{} {} failed: {}", op, id, error),
            }
        }
    }
}

#[cfg(test)]
#[path = "../sim_tests.rs"]
mod sim_tests;

#[cfg(all(test, feature = "sim"))]
#[path = "../churn_tests.rs"]
mod churn_tests;
