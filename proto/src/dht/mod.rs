//! DHT commands and ring membership.
//!
//! One binary, versioned message format for the key-value DHT and its lock protocol, and for the
//! ring's membership (join and leave). A message travels either on TCP, behind a 4-byte big-endian
//! length prefix, or alone in one UDP datagram of at most
//! [`MAX_DATAGRAM_LEN`] bytes where it fits.
//!
//! Every message starts with a 43-byte header ([`Header`]): the type byte (version bits and kind,
//! as in the [nonce header](crate::nonce)), a 64-bit message id — a request's id is chosen by its
//! sender, a response carries the id of the request it answers, so responses are matched by id
//! *and* sender — and the sender's [`NodeAddr`] (128-bit [`NodeId`], address, port). The body
//! follows ([`Body`]); keys and values are borrowed from the input.
//!
//! Node ids come from SHA-256 ([`NodeId::from_name`]) or a random generator
//! ([`NodeId::random`]), never from a hasher whose output may change between Rust versions.
//!
//! A put as bytes, then a node alone in its ring (it owns every key) storing it and answering:
//!
//! ```
//! use core::net::SocketAddr;
//! use sinew_proto::dht::{Body, Config, DhtNode, Header, Message, NodeAddr, NodeId};
//! use sinew_proto::time::Instant;
//!
//! let client = NodeAddr {
//!     id: NodeId([0x11; 16]),
//!     addr: "127.0.0.1:7000".parse().unwrap(),
//! };
//! let put = Message {
//!     header: Header { message_id: 42, sender: client },
//!     body: Body::Put { key: b"k_1", value: b"v" },
//! };
//! let mut bytes = [0xa5; 64];
//! let len = put.encode(&mut bytes)?;
//! assert_eq!(len, 43 + 4 + 3); // header, key (length + 3 bytes), value (length + 1 byte)
//! assert_eq!(bytes[0], 0x03); // version 0, kind 3: put
//! assert_eq!(bytes[1..9], 42u64.to_be_bytes()); // message id
//! assert_eq!(bytes[9..25], [0x11; 16]); // sender id
//! assert_eq!(bytes[35..43], [0xff, 0xff, 127, 0, 0, 1, 0x1b, 0x58]); // ::ffff:127.0.0.1, 7000
//! assert_eq!(bytes[43..len], [3, b'k', b'_', b'1', 0, 1, b'v']);
//! assert_eq!(Message::parse(&bytes[..len])?, put);
//!
//! // The node gets the datagram from the address the header names, stores the value and
//! // acknowledges it under the same message id.
//! let me = NodeAddr { id: NodeId::from_name(b"node-a"), addr: "127.0.0.1:7001".parse().unwrap() };
//! let rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let mut node: DhtNode<_> = DhtNode::new(Config::new(me), rng);
//! let now = Instant::ZERO;
//! // A put takes a slot only for an address that proved a round trip (here the adapter
//! // vouches for it, as for a TCP peer; else the node answers a Challenge first).
//! node.handle_validated(client.addr);
//! node.handle_datagram(now, client.addr, &bytes[..len]);
//! assert_eq!(node.stored(b"k_1"), Some(&b"v"[..]));
//!
//! let mut out = [0u8; DhtNode::<rand_core::UnwrapErr<getrandom::SysRng>>::MAX_TRANSMIT_LEN];
//! let ack = node.poll_transmit(now, &mut out).unwrap();
//! assert_eq!(ack.destination, client.addr);
//! let ack = Message::parse(&out[..ack.len])?;
//! assert_eq!(ack.header.message_id, 42);
//! assert_eq!(ack.header.sender, me);
//! assert_eq!(ack.body, Body::PutAck { key: b"k_1" });
//!
//! // A datagram whose header names another sender than its source is dropped unanswered.
//! let spoofed: SocketAddr = "192.0.2.9:7000".parse().unwrap();
//! node.handle_datagram(now, spoofed, &bytes[..len]);
//! assert!(node.poll_transmit(now, &mut out).is_none());
//! assert_eq!(node.stats().source_mismatch, 1);
//! # Ok::<(), sinew_proto::Error>(())
//! ```

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::ops::Range;

use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16, be_u32, be_u64, be_u128};

use crate::addr;
use crate::nonce::{split_type_byte, type_byte};
use crate::{Error, Result};

mod client;
mod node;
pub mod ring;

pub use client::{ClientConfig, ClientStats, DhtClient};
pub use node::{
    COLUMNS, CREDITS, Config, DIGIT_BITS, DhtNode, Disposition, DropReason, EVENT_CAPACITY, Event,
    GRAVEYARD, GRAVEYARD_EVERY, HINTS, MAX_WAITERS, Op, ROUTE_HINTS, ROUTE_ROWS, RequestError,
    RequestId, RouteTable, Stats, TOMBSTONES, VALIDATED,
};
pub use ring::LeafSet;

pub use crate::datagram::{MAX_DATAGRAM_LEN, Transmit};
/// Length of the message header.
pub const HEADER_LEN: usize = field::SENDER_PORT.end;
/// Length of one [`NodeAddr`] on the wire: id, address, port.
pub const NODE_LEN: usize = 34;
/// Longest key, in bytes (its length travels in one byte).
pub const MAX_KEY_LEN: usize = u8::MAX as usize;
/// Longest value, in bytes (its length travels in two bytes). In a UDP datagram the whole
/// message must also fit [`MAX_DATAGRAM_LEN`].
pub const MAX_VALUE_LEN: usize = u16::MAX as usize;
/// Most nodes in one node list (a leaf set of up to 16 nodes on each side).
pub const MAX_NODE_LIST: usize = 32;
/// The most nodes a node lists in one [`Body::Route`] answer (so that it fits a datagram).
pub const ROUTE_LIST: usize = 8;
/// The most nodes on each side of a [`Body::View`]: with both sides full it is
/// `HEADER_LEN + 2 + 12 × NODE_LEN` = 453 bytes, which fits a sealed datagram
/// ([`seal::MAX_PLAINTEXT_LEN`](crate::seal::MAX_PLAINTEXT_LEN), 478 bytes).
pub const VIEW_SIDE: usize = 6;
/// What a [`Body::Relayed`] adds before the request it carries: budget, origin and the
/// request's type byte.
pub const RELAYED_LEN: usize = 2 + NODE_LEN + 1;
/// Longest message: a [`Body::Relayed`] put of the longest key and value (header, relay
/// envelope, key and value and their lengths).
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + RELAYED_LEN + 1 + MAX_KEY_LEN + 2 + MAX_VALUE_LEN;
/// The protocol version of this format (the type byte's version bits), for every kind but the
/// lock protocol's ([`LOCK_VERSION`]).
pub const VERSION: u8 = 0;
/// The version of the lock protocol's messages (Lock, Locked, LockDenied, Unlock, Unlocked):
/// version 1 holds locks by a secret [`LockToken`] and names no holder in a denial. A node
/// drops a lock message of another version as malformed, so nodes of version 0 and 1 never
/// take each other's lock messages (see PROTOCOL.md).
pub const LOCK_VERSION: u8 = 1;

mod field {
    use super::Range;
    pub const TYPE: usize = 0;
    pub const MESSAGE_ID: Range<usize> = 1..9;
    #[allow(
        dead_code,
        reason = "read only by the layout assertion below, which rustc before 1.89 does not count"
    )]
    pub const SENDER_ID: Range<usize> = 9..25;
    #[allow(
        dead_code,
        reason = "read only by the layout assertion below, which rustc before 1.89 does not count"
    )]
    pub const SENDER_ADDR: Range<usize> = 25..41;
    pub const SENDER_PORT: Range<usize> = 41..43;
    // The sender is one NodeAddr record: id, address, port, back to back.
    const _: () = assert!(
        SENDER_ID.end == SENDER_ADDR.start
            && SENDER_ADDR.end == SENDER_PORT.start
            && SENDER_PORT.end - SENDER_ID.start == super::NODE_LEN
    );
}

/// A 128-bit node identifier; the ring is ordered by it.
///
/// Exhaustive on purpose: the 16 bytes are the id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    /// The id derived from a stable name (the first 128 bits of its SHA-256), identical on every
    /// platform and Rust version.
    pub fn from_name(name: &[u8]) -> NodeId {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(name);
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        NodeId(id)
    }

    /// A random id.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> NodeId {
        let mut id = [0; 16];
        rng.fill_bytes(&mut id);
        NodeId(id)
    }

    /// The id bound to the socket address a node is reached at — the source address its peers
    /// see on its datagrams — which nodes require by default
    /// ([`Config::bind_ids`](crate::dht::Config::bind_ids)): the first 128 bits of SHA-256 over
    /// a label, the address family, the address and the port. An IPv4 address (or its
    /// IPv4-mapped IPv6 form) counts whole; of an IPv6 address only the first 64 bits (its
    /// /64 network) count, because whoever holds a /64 holds all of its 2^64 addresses: an id
    /// then costs an IPv4 address or a /64 and a port. See PROTOCOL.md, *Ids bound to
    /// addresses*.
    pub fn from_addr(addr: SocketAddr) -> NodeId {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"sinew dht id v1");
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) => {
                h.update([4]);
                h.update(ip.octets());
            }
            IpAddr::V6(ip) => {
                h.update([6]);
                h.update(&ip.octets()[..8]);
            }
        }
        h.update(addr.port().to_be_bytes());
        let digest = h.finalize();
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        NodeId(id)
    }

    /// The id as an unsigned integer (big-endian), for ring arithmetic.
    pub const fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The id of an unsigned integer.
    pub const fn from_u128(v: u128) -> NodeId {
        NodeId(v.to_be_bytes())
    }

    /// Clockwise distance from `self` to `other` on the ring of 2^128 ids.
    pub const fn distance_to(self, other: NodeId) -> u128 {
        other.to_u128().wrapping_sub(self.to_u128())
    }
}

impl fmt::Display for NodeId {
    /// The first 8 bytes in hex: enough to tell nodes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for NodeId {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:02x}", self.0[..8])
    }
}

/// The secret that holds a lock: 16 bytes its holder chose (at random, or derived from a secret
/// of its own) and sends only in its own Lock and Unlock. The key's owner renews or releases the
/// lock only for a request carrying the same token, and never tells it to anyone else (a denial
/// says only how long the lock stays held) — so whoever has not seen the holder's Lock cannot
/// renew or release it.
///
/// Its `Debug` form does not show the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct LockToken(pub [u8; 16]);

impl LockToken {
    /// A fresh random token.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> LockToken {
        let mut token = [0; 16];
        rng.fill_bytes(&mut token);
        LockToken(token)
    }

    /// The token for `key` derived from a secret (the first 128 bits of SHA-256 of the
    /// secret's length, the secret and the key): the same secret gives the same token for a
    /// key on every platform, and knowing one key's token tells nothing of another's.
    pub fn derive(secret: &[u8], key: &[u8]) -> LockToken {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((secret.len() as u64).to_be_bytes());
        h.update(secret);
        h.update(key);
        let digest = h.finalize();
        let mut token = [0; 16];
        token.copy_from_slice(&digest[..16]);
        LockToken(token)
    }
}

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(..)")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for LockToken {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "LockToken(..)")
    }
}

/// A node: its id and where it listens.
///
/// Exhaustive on purpose: the fields mirror the wire layout of a node (id, address, port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeAddr {
    /// Its id.
    pub id: NodeId,
    /// Its address. IPv4 addresses travel in IPv4-mapped form.
    pub addr: SocketAddr,
}

impl NodeAddr {
    /// The node at `addr` with the id bound to it ([`NodeId::from_addr`]).
    pub fn bound(addr: SocketAddr) -> NodeAddr {
        NodeAddr {
            id: NodeId::from_addr(addr),
            addr,
        }
    }

    /// Whether the id is the one bound to the address ([`NodeId::from_addr`]).
    pub fn is_bound(&self) -> bool {
        self.id == NodeId::from_addr(self.addr)
    }

    fn read(bytes: &[u8]) -> Result<NodeAddr> {
        match bytes.first_chunk::<NODE_LEN>() {
            Some(raw) => NodeAddr::from_bytes(raw),
            None => Err(Error::Truncated),
        }
    }

    /// Reads a node at its fixed offsets: id, then the shared socket-address form.
    #[inline]
    fn from_bytes(raw: &[u8; NODE_LEN]) -> Result<NodeAddr> {
        let Some((id, wire)) = raw.split_first_chunk::<16>() else {
            return Err(Error::Truncated);
        };
        let Some(wire) = wire.first_chunk::<{ addr::WIRE_LEN }>() else {
            return Err(Error::Truncated);
        };
        match addr::read(wire) {
            Some(addr) => Ok(NodeAddr {
                id: NodeId(*id),
                addr,
            }),
            None => Err(Error::BadAddress),
        }
    }

    /// Writes the node; [`is_valid`](Self::is_valid) was checked first (so the address is
    /// always written).
    fn write(&self, out: &mut [u8; NODE_LEN]) {
        let (id, wire) = out.split_at_mut(16);
        id.copy_from_slice(&self.id.0);
        if let Some(wire) = wire.first_chunk_mut::<{ addr::WIRE_LEN }>() {
            addr::write(&self.addr, wire);
        }
    }

    fn is_valid(&self) -> bool {
        addr::is_valid_addr(&self.addr)
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for NodeAddr {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{}@{}", self.id, defmt::Display2Format(&self.addr))
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for NodeAddr {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<NodeAddr> {
        // The address is drawn before the id (the committed seed corpora depend on this order).
        let ip = addr::arbitrary_ip(u)?;
        Ok(NodeAddr {
            id: u.arbitrary()?,
            addr: SocketAddr::new(ip, u.int_in_range(1..=u16::MAX)?),
        })
    }
}

/// Which neighbour a [`Body::Join`] tells its receiver to take.
///
/// Exhaustive on purpose: a ring has two sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Side {
    /// Counter-clockwise (smaller ids, wrapping).
    Left,
    /// Clockwise (larger ids, wrapping).
    Right,
}

/// The kind of a message (the low five bits of its type byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// [`Body::Get`].
    Get = 1,
    /// [`Body::Value`].
    Value = 2,
    /// [`Body::Put`].
    Put = 3,
    /// [`Body::PutAck`].
    PutAck = 4,
    /// [`Body::Lock`].
    Lock = 5,
    /// [`Body::Locked`].
    Locked = 6,
    /// [`Body::LockDenied`].
    LockDenied = 7,
    /// [`Body::Unlock`].
    Unlock = 8,
    /// [`Body::Unlocked`].
    Unlocked = 9,
    /// [`Body::InitConnect`].
    InitConnect = 10,
    /// [`Body::RequestInsertion`].
    RequestInsertion = 11,
    /// [`Body::Join`].
    Join = 12,
    /// [`Body::Leave`].
    Leave = 13,
    /// [`Body::Replicate`].
    Replicate = 14,
    /// [`Body::Error`].
    Error = 15,
    /// [`Body::Challenge`].
    Challenge = 16,
    /// [`Body::Echo`].
    Echo = 17,
    /// [`Body::RouteRequest`].
    RouteRequest = 18,
    /// [`Body::Route`].
    Route = 19,
    /// [`Body::Relayed`].
    Relayed = 20,
    /// [`Body::ViewRequest`].
    ViewRequest = 21,
    /// [`Body::View`].
    View = 22,
    /// [`Body::Withheld`].
    Withheld = 23,
}

impl Kind {
    /// The version its messages carry in the type byte's high bits: [`LOCK_VERSION`] for the
    /// lock protocol's kinds, [`VERSION`] for the others.
    pub const fn version(self) -> u8 {
        match self {
            Kind::Lock | Kind::Locked | Kind::LockDenied | Kind::Unlock | Kind::Unlocked => {
                LOCK_VERSION
            }
            _ => VERSION,
        }
    }

    /// The kind for the low five bits of a type byte.
    pub const fn from_bits(bits: u8) -> Option<Kind> {
        Some(match bits {
            1 => Kind::Get,
            2 => Kind::Value,
            3 => Kind::Put,
            4 => Kind::PutAck,
            5 => Kind::Lock,
            6 => Kind::Locked,
            7 => Kind::LockDenied,
            8 => Kind::Unlock,
            9 => Kind::Unlocked,
            10 => Kind::InitConnect,
            11 => Kind::RequestInsertion,
            12 => Kind::Join,
            13 => Kind::Leave,
            14 => Kind::Replicate,
            15 => Kind::Error,
            16 => Kind::Challenge,
            17 => Kind::Echo,
            18 => Kind::RouteRequest,
            19 => Kind::Route,
            20 => Kind::Relayed,
            21 => Kind::ViewRequest,
            22 => Kind::View,
            23 => Kind::Withheld,
            _ => return None,
        })
    }
}

/// Why a node refused a request ([`Body::Error`]); an open set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum ErrorCode {
    /// The receiver does not own the key (the ring changed); retry at the owner.
    NotOwner,
    /// An unlock by a request that does not carry the lock's token.
    NotHolder,
    /// A join of a node onto itself (same id or address).
    JoinSelf,
    /// The receiver could not parse the request.
    Malformed,
    /// The receiver is out of storage.
    Full,
    /// The receiver does not implement the request.
    Unsupported,
    /// The request's end-to-end budget ([`Body::Relayed`]) ran out before it could reach the
    /// key's owner: the receiver would have had to forward it with less time than one more hop
    /// takes. The requester may try again with a fresh budget.
    Expired,
    /// A code this version does not know.
    Unknown(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub const fn to_u16(self) -> u16 {
        match self {
            ErrorCode::NotOwner => 1,
            ErrorCode::NotHolder => 2,
            ErrorCode::JoinSelf => 3,
            ErrorCode::Malformed => 4,
            ErrorCode::Full => 5,
            ErrorCode::Unsupported => 6,
            ErrorCode::Expired => 7,
            ErrorCode::Unknown(c) => c,
        }
    }

    /// The code for a wire value (unknown values are kept, never refused).
    pub const fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::NotOwner,
            2 => ErrorCode::NotHolder,
            3 => ErrorCode::JoinSelf,
            4 => ErrorCode::Malformed,
            5 => ErrorCode::Full,
            6 => ErrorCode::Unsupported,
            7 => ErrorCode::Expired,
            c => ErrorCode::Unknown(c),
        }
    }
}

/// A validated list of nodes, borrowed from the message.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NodeList<'a> {
    raw: &'a [u8],
}

impl<'a> NodeList<'a> {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.raw.len() / NODE_LEN
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The nodes, in order.
    pub fn iter(&self) -> NodeIter<'a> {
        NodeIter {
            chunks: self.raw.chunks_exact(NODE_LEN),
        }
    }
}

impl fmt::Debug for NodeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for NodeList<'a> {
    type Item = NodeAddr;
    type IntoIter = NodeIter<'a>;
    fn into_iter(self) -> NodeIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`NodeList`].
#[derive(Clone, Debug)]
pub struct NodeIter<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for NodeIter<'_> {
    type Item = NodeAddr;
    fn next(&mut self) -> Option<NodeAddr> {
        // Every chunk was validated when the list was parsed.
        self.chunks.next().and_then(|raw| NodeAddr::read(raw).ok())
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for NodeIter<'_> {}

/// Nodes to encode into a list: a slice, for encoding.
pub type Nodes<'a> = &'a [NodeAddr];

/// A node list as a message carries it: parsed (borrowed bytes) or to be encoded (a slice).
///
/// Exhaustive on purpose: a list is parsed or given, nothing else.
#[derive(Clone, Copy, Debug)]
pub enum NodeSet<'a> {
    /// Parsed from a message.
    Parsed(NodeList<'a>),
    /// Given by the application, for encoding.
    Slice(Nodes<'a>),
}

impl<'a> NodeSet<'a> {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        match self {
            NodeSet::Parsed(l) => l.len(),
            NodeSet::Slice(s) => s.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The nodes, in order.
    pub fn iter(&self) -> impl Iterator<Item = NodeAddr> + 'a {
        let (parsed, slice) = match *self {
            NodeSet::Parsed(l) => (Some(l.iter()), None),
            NodeSet::Slice(s) => (None, Some(s.iter().copied())),
        };
        parsed
            .into_iter()
            .flatten()
            .chain(slice.into_iter().flatten())
    }
}

impl NodeSet<'_> {
    /// Whether every node can travel (no port 0, no `::`): always, for a parsed list (checked
    /// when it was parsed).
    fn all_valid(&self) -> bool {
        match self {
            NodeSet::Parsed(_) => true,
            NodeSet::Slice(s) => s.iter().all(NodeAddr::is_valid),
        }
    }
}

impl PartialEq for NodeSet<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for NodeSet<'_> {}

/// What a message says. Keys and values borrow the input (or the caller's data, to encode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body<'a> {
    /// Read `key` at its owner.
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// The answer to [`Body::Get`]: the value, or `None` if the key is not stored.
    Value {
        /// The key.
        key: &'a [u8],
        /// The value, if any.
        value: Option<&'a [u8]>,
    },
    /// Store `value` under `key` at its owner; answered by [`Body::PutAck`].
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// The write was stored (and replicated as configured).
    PutAck {
        /// The key.
        key: &'a [u8],
    },
    /// Take (or renew) the lock on `key` with the secret `token`, for `lease_ms` milliseconds
    /// unless renewed.
    Lock {
        /// The key.
        key: &'a [u8],
        /// The holder's secret.
        token: LockToken,
        /// Lease in milliseconds.
        lease_ms: u32,
    },
    /// The lock is held with `token` (the requester's own) for `lease_ms` milliseconds.
    Locked {
        /// The key.
        key: &'a [u8],
        /// The requester's token.
        token: LockToken,
        /// Lease in milliseconds.
        lease_ms: u32,
    },
    /// Someone else holds the lock (who is not told).
    LockDenied {
        /// The key.
        key: &'a [u8],
        /// Milliseconds until the lock is free at the latest.
        remaining_ms: u32,
    },
    /// Release the lock on `key`; only a request with its token may.
    Unlock {
        /// The key.
        key: &'a [u8],
        /// The holder's secret.
        token: LockToken,
    },
    /// The lock was released.
    Unlocked {
        /// The key.
        key: &'a [u8],
    },
    /// A new node's first message to an entry node of the ring.
    InitConnect,
    /// Forwarded around the ring to the node whose neighbourhood `joining` belongs in.
    RequestInsertion {
        /// The node that wants to join.
        joining: NodeAddr,
    },
    /// Take these nodes as neighbours on `side` (the first is the nearest).
    Join {
        /// Which side.
        side: Side,
        /// The new neighbours, nearest first.
        nodes: NodeSet<'a>,
    },
    /// The sender leaves the ring; here are its leaf-set nodes to take in its place.
    Leave {
        /// The leaver's leaf set.
        nodes: NodeSet<'a>,
    },
    /// A replica of a write, from the key's owner to a leaf-set member; answered by
    /// [`Body::PutAck`].
    Replicate {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// The request with this message id was refused.
    Error {
        /// Why.
        code: ErrorCode,
    },
    /// "Prove that you receive at this address": sent instead of an answer larger than what
    /// the receiver has sent so far, to an address that has not proved it yet. Its message id
    /// is a cookie the sender derived from the address; no body.
    Challenge,
    /// The answer to a [`Body::Challenge`]: the same message id, no body. It proves that the
    /// sender receives at its address, after which it is sent answers of any size.
    Echo,
    /// "Tell me row `row` of your routing table": a probe of a node heard of, and the
    /// background repair of the asker's own table; answered by [`Body::Route`] (or a
    /// Challenge, to an address that has not proved it receives).
    RouteRequest {
        /// The row (the number of leading id digits its nodes share with the answering node).
        row: u8,
        /// The columns asked for: bit `c` (from the least significant) for column `c`.
        columns: u16,
    },
    /// A [`Body::Challenge`] that names the request whose answer it replaces: the header's
    /// message id is that request's, and the body carries the cookie (the message id the
    /// [`Body::Echo`] must carry). The asker then sends again only that request, not every
    /// request it has waiting on the sender. A node sends it when its 51 bytes fit what the
    /// asker's address may be sent, else the bare Challenge.
    Withheld {
        /// What the Echo carries as its message id.
        cookie: u64,
    },
    /// The answer to [`Body::RouteRequest`]: the nodes of that row in the columns asked for
    /// (at most [`ROUTE_LIST`], so that it fits a datagram). The answer proves its
    /// sender; the nodes listed are only hints, each probed before it is taken.
    Route {
        /// The row asked for.
        row: u8,
        /// Its nodes, by column.
        nodes: NodeSet<'a>,
    },
    /// "Tell me your neighbourhood": a client's question, so that it can send requests to the
    /// owner of a key directly; answered by [`Body::View`], or by [`ErrorCode::NotOwner`] from
    /// a node that is not in a ring with others (or a Challenge, to an address that has not
    /// proved it receives). No body.
    ViewRequest,
    /// The answer to [`Body::ViewRequest`]: the sender's leaf set, at most [`VIEW_SIDE`] nodes
    /// on each side, nearest first. The sender (in the header) and these nodes own the keys
    /// between the farthest left and the farthest right node by the ownership rule of
    /// [`ring`].
    View {
        /// Its predecessors, nearest first.
        left: NodeSet<'a>,
        /// Its successors, nearest first.
        right: NodeSet<'a>,
    },
    /// A get, put, lock or unlock forwarded by a node toward the key's owner, answered as the
    /// request it carries would be. It carries what is left of the request's end-to-end budget
    /// and the address accountable for it (see PROTOCOL.md, *Relayed requests*).
    Relayed {
        /// Milliseconds the sender still waits for the answer, counted from when it sent this
        /// message.
        budget_ms: u16,
        /// The address accountable for the request: the client (or node) where it entered the
        /// ring, as the node that relays it knows it. Never sent anything: only counted.
        origin: NodeAddr,
        /// The request.
        request: RelayedRequest<'a>,
    },
}

/// The request a [`Body::Relayed`] carries: one of the four client requests, on the wire as
/// its own type byte and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayedRequest<'a> {
    /// [`Body::Get`].
    Get {
        /// The key.
        key: &'a [u8],
    },
    /// [`Body::Put`].
    Put {
        /// The key.
        key: &'a [u8],
        /// The value.
        value: &'a [u8],
    },
    /// [`Body::Lock`].
    Lock {
        /// The key.
        key: &'a [u8],
        /// The holder's secret.
        token: LockToken,
        /// Lease in milliseconds.
        lease_ms: u32,
    },
    /// [`Body::Unlock`].
    Unlock {
        /// The key.
        key: &'a [u8],
        /// The holder's secret.
        token: LockToken,
    },
}

impl<'a> RelayedRequest<'a> {
    /// The request of a plain request body; `None` for a body that is no get, put, lock or
    /// unlock.
    pub const fn from_body(body: &Body<'a>) -> Option<RelayedRequest<'a>> {
        Some(match *body {
            Body::Get { key } => RelayedRequest::Get { key },
            Body::Put { key, value } => RelayedRequest::Put { key, value },
            Body::Lock {
                key,
                token,
                lease_ms,
            } => RelayedRequest::Lock {
                key,
                token,
                lease_ms,
            },
            Body::Unlock { key, token } => RelayedRequest::Unlock { key, token },
            _ => return None,
        })
    }

    /// The request as a plain body, as a client sends it.
    pub const fn body(&self) -> Body<'a> {
        match *self {
            RelayedRequest::Get { key } => Body::Get { key },
            RelayedRequest::Put { key, value } => Body::Put { key, value },
            RelayedRequest::Lock {
                key,
                token,
                lease_ms,
            } => Body::Lock {
                key,
                token,
                lease_ms,
            },
            RelayedRequest::Unlock { key, token } => Body::Unlock { key, token },
        }
    }

    /// Its kind.
    pub const fn kind(&self) -> Kind {
        self.body().kind()
    }

    /// Its key.
    pub const fn key(&self) -> &'a [u8] {
        match *self {
            RelayedRequest::Get { key }
            | RelayedRequest::Put { key, .. }
            | RelayedRequest::Lock { key, .. }
            | RelayedRequest::Unlock { key, .. } => key,
        }
    }
}

impl Body<'_> {
    /// The kind of this body.
    pub const fn kind(&self) -> Kind {
        match self {
            Body::Get { .. } => Kind::Get,
            Body::Value { .. } => Kind::Value,
            Body::Put { .. } => Kind::Put,
            Body::PutAck { .. } => Kind::PutAck,
            Body::Lock { .. } => Kind::Lock,
            Body::Locked { .. } => Kind::Locked,
            Body::LockDenied { .. } => Kind::LockDenied,
            Body::Unlock { .. } => Kind::Unlock,
            Body::Unlocked { .. } => Kind::Unlocked,
            Body::InitConnect => Kind::InitConnect,
            Body::RequestInsertion { .. } => Kind::RequestInsertion,
            Body::Join { .. } => Kind::Join,
            Body::Leave { .. } => Kind::Leave,
            Body::Replicate { .. } => Kind::Replicate,
            Body::Error { .. } => Kind::Error,
            Body::Challenge => Kind::Challenge,
            Body::Echo => Kind::Echo,
            Body::RouteRequest { .. } => Kind::RouteRequest,
            Body::Route { .. } => Kind::Route,
            Body::ViewRequest => Kind::ViewRequest,
            Body::View { .. } => Kind::View,
            Body::Relayed { .. } => Kind::Relayed,
            Body::Withheld { .. } => Kind::Withheld,
        }
    }
}

/// The fixed part of every message.
///
/// Exhaustive on purpose: the fields mirror the wire layout of version 1 (message id, sender).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// A request's id, chosen by its sender; a response's is the id of the request it answers.
    pub message_id: u64,
    /// Who sent it.
    pub sender: NodeAddr,
}

impl Header {
    /// Reads the message id and the sender at their fixed offsets (the type byte is the
    /// caller's).
    #[inline]
    fn from_bytes(head: &[u8; HEADER_LEN]) -> Result<Header> {
        let mut id = [0; 8];
        id.copy_from_slice(&head[field::MESSAGE_ID]);
        let Some(sender) = head.last_chunk::<NODE_LEN>() else {
            return Err(Error::Truncated);
        };
        Ok(Header {
            message_id: u64::from_be_bytes(id),
            sender: NodeAddr::from_bytes(sender)?,
        })
    }
}

/// One DHT message: header and body.
///
/// ```
/// use sinew_proto::dht::{Body, Header, Message, NodeAddr, NodeId};
/// let sender = NodeAddr { id: NodeId::from_name(b"n1"), addr: "127.0.0.1:7000".parse().unwrap() };
/// let put = Message { header: Header { message_id: 7, sender }, body: Body::Put { key: b"k", value: b"v" } };
/// let mut buf = [0u8; 64];
/// let len = put.encode(&mut buf)?;
/// assert_eq!(len, put.encoded_len());
/// assert_eq!(Message::parse(&buf[..len])?, put);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
///
/// Exhaustive on purpose: the fields mirror the wire layout of version 1 (header, body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Id and sender.
    pub header: Header,
    /// What it says.
    pub body: Body<'a>,
}

/// A cursor over the body bytes. Keys and values, the parts of every data message, are split
/// off by hand; the other parts are read with nom combinators, whose only failure on complete
/// input is running out of bytes. nom's types stay in here.
struct Reader<'a> {
    rest: &'a [u8],
}

type NomError<'a> = nom::error::Error<&'a [u8]>;

impl<'a> Reader<'a> {
    fn run<O>(
        &mut self,
        mut parser: impl Parser<&'a [u8], Output = O, Error = NomError<'a>>,
    ) -> Result<O> {
        let (rest, out) = parser.parse(self.rest).map_err(|_| Error::Truncated)?;
        self.rest = rest;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        self.run(be_u8)
    }

    fn u16(&mut self) -> Result<u16> {
        self.run(be_u16)
    }

    fn u32(&mut self) -> Result<u32> {
        self.run(be_u32)
    }

    fn u64(&mut self) -> Result<u64> {
        self.run(be_u64)
    }

    fn token(&mut self) -> Result<LockToken> {
        self.run(be_u128).map(|v| LockToken(v.to_be_bytes()))
    }

    /// A key: its length in one byte, then the bytes. (By hand: nom's `length_data` costs a
    /// call per field here.)
    #[inline]
    fn key(&mut self) -> Result<&'a [u8]> {
        let Some((&len, rest)) = self.rest.split_first() else {
            return Err(Error::Truncated);
        };
        self.take(rest, usize::from(len))
    }

    /// A value: its length in two bytes (big-endian), then the bytes.
    #[inline]
    fn value(&mut self) -> Result<&'a [u8]> {
        let Some((len, rest)) = self.rest.split_first_chunk::<2>() else {
            return Err(Error::Truncated);
        };
        self.take(rest, usize::from(u16::from_be_bytes(*len)))
    }

    /// The first `len` bytes of `rest`; the reader goes on after them.
    #[inline]
    fn take(&mut self, rest: &'a [u8], len: usize) -> Result<&'a [u8]> {
        let Some((bytes, rest)) = rest.split_at_checked(len) else {
            return Err(Error::Truncated);
        };
        self.rest = rest;
        Ok(bytes)
    }

    fn node(&mut self) -> Result<NodeAddr> {
        NodeAddr::read(self.run(take(NODE_LEN))?)
    }

    fn nodes(&mut self) -> Result<NodeList<'a>> {
        let count = usize::from(self.u8()?);
        if count > MAX_NODE_LIST {
            return Err(Error::TooLarge);
        }
        let raw = self.run(take(count * NODE_LEN))?;
        for chunk in raw.chunks_exact(NODE_LEN) {
            NodeAddr::read(chunk)?;
        }
        Ok(NodeList { raw })
    }

    /// One side of a View: at most [`VIEW_SIDE`] nodes.
    fn view_side(&mut self) -> Result<NodeList<'a>> {
        let list = self.nodes()?;
        if list.len() > VIEW_SIDE {
            return Err(Error::TooLarge);
        }
        Ok(list)
    }

    /// The request inside a [`Body::Relayed`]: its type byte (version and kind, as its own
    /// message has it), then its body. Anything but a get, put, lock or unlock is
    /// [`Error::BadValue`].
    fn relayed_request(&mut self) -> Result<RelayedRequest<'a>> {
        let type_byte = self.u8()?;
        let (version, bits) = split_type_byte(type_byte);
        let Some(kind) = Kind::from_bits(bits) else {
            return Err(Error::BadValue);
        };
        if version != kind.version() {
            return Err(Error::UnsupportedVersion(version));
        }
        Ok(match kind {
            Kind::Get => RelayedRequest::Get { key: self.key()? },
            Kind::Put => RelayedRequest::Put {
                key: self.key()?,
                value: self.value()?,
            },
            Kind::Lock => RelayedRequest::Lock {
                key: self.key()?,
                token: self.token()?,
                lease_ms: self.u32()?,
            },
            Kind::Unlock => RelayedRequest::Unlock {
                key: self.key()?,
                token: self.token()?,
            },
            _ => return Err(Error::BadValue),
        })
    }

    fn finish(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes)
        }
    }
}

/// A cursor over the output buffer; the length was checked up front by `encode`.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    fn key(&mut self, key: &[u8]) {
        self.put(&[key.len() as u8]);
        self.put(key);
    }

    fn value(&mut self, value: &[u8]) {
        self.put(&(value.len() as u16).to_be_bytes());
        self.put(value);
    }

    fn node(&mut self, node: &NodeAddr) {
        let mut raw = [0; NODE_LEN];
        node.write(&mut raw);
        self.put(&raw);
    }

    fn nodes(&mut self, nodes: &NodeSet<'_>) {
        self.put(&[nodes.len() as u8]);
        match nodes {
            // Already in wire form: one copy.
            NodeSet::Parsed(list) => self.put(list.raw),
            // Each node straight into its place.
            NodeSet::Slice(slice) => {
                let end = self.at + slice.len() * NODE_LEN;
                if let Some(out) = self.buf.get_mut(self.at..end) {
                    for (node, raw) in slice.iter().zip(out.chunks_exact_mut(NODE_LEN)) {
                        if let Some(raw) = raw.first_chunk_mut::<NODE_LEN>() {
                            node.write(raw);
                        }
                    }
                }
                self.at = end;
            }
        }
    }
}

impl<'a> Message<'a> {
    /// Parses one whole message (a datagram, or a frame without its length prefix).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingBytes`], [`Error::UnsupportedVersion`],
    /// [`Error::UnknownType`], [`Error::BadAddress`] (a node with port 0 or address `::`),
    /// [`Error::BadValue`] (a `Value` presence flag or a `Join` side other than 0/1),
    /// [`Error::TooLarge`] (more than [`MAX_NODE_LIST`] nodes, more than [`VIEW_SIDE`] on a
    /// side of a View, or above [`MAX_MESSAGE_LEN`]).
    #[inline]
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>> {
        match Message::parse_data(bytes) {
            Some(message) => Ok(message),
            None => Message::parse_any(bytes),
        }
    }

    /// The hottest messages, a well-formed `Put` or `Replicate`: the 43-byte header taken
    /// whole and read at fixed offsets, then the key and the value, whose lengths must add up
    /// to the bytes present (one comparison). `None` for anything else, which
    /// [`parse_any`](Self::parse_any) then reads, telling the errors apart. (Such a message
    /// is never above [`MAX_MESSAGE_LEN`]: its lengths are one and two bytes.)
    #[inline]
    fn parse_data(bytes: &'a [u8]) -> Option<Message<'a>> {
        const PUT: u8 = type_byte(VERSION, Kind::Put as u8);
        const REPLICATE: u8 = type_byte(VERSION, Kind::Replicate as u8);
        const RELAYED: u8 = type_byte(VERSION, Kind::Relayed as u8);
        let (head, body) = bytes.split_first_chunk::<HEADER_LEN>()?;
        let kind = head[field::TYPE];
        if kind == RELAYED {
            return Message::parse_relayed(head, body);
        }
        if kind != PUT && kind != REPLICATE {
            return None;
        }
        let (key, value) = Message::key_and_value(body)?;
        let header = Header::from_bytes(head).ok()?;
        let body = if kind == PUT {
            Body::Put { key, value }
        } else {
            Body::Replicate { key, value }
        };
        Some(Message { header, body })
    }

    /// A Put's (or Replicate's) body, if its lengths add up to exactly the bytes present.
    #[inline(always)]
    fn key_and_value(body: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
        let (&key_len, rest) = body.split_first()?;
        let (key, rest) = rest.split_at_checked(usize::from(key_len))?;
        let (value_len, value) = rest.split_first_chunk::<2>()?;
        if value.len() != usize::from(u16::from_be_bytes(*value_len)) {
            return None;
        }
        Some((key, value))
    }

    /// The relayed put or get, well formed, at fixed offsets: budget, origin, the inner type
    /// byte, then the put's key and value (or the get's key) running exactly to the end.
    /// `None` for anything else (a relayed lock or unlock, or any error), which
    /// [`parse_any`](Self::parse_any) then reads.
    #[inline]
    fn parse_relayed(head: &[u8; HEADER_LEN], body: &'a [u8]) -> Option<Message<'a>> {
        const PUT: u8 = type_byte(VERSION, Kind::Put as u8);
        const GET: u8 = type_byte(VERSION, Kind::Get as u8);
        let (budget, rest) = body.split_first_chunk::<2>()?;
        let (origin, rest) = rest.split_first_chunk::<NODE_LEN>()?;
        let (&inner, rest) = rest.split_first()?;
        let request = match inner {
            PUT => {
                let (key, value) = Message::key_and_value(rest)?;
                RelayedRequest::Put { key, value }
            }
            GET => {
                let (&key_len, key) = rest.split_first()?;
                if key.len() != usize::from(key_len) {
                    return None;
                }
                RelayedRequest::Get { key }
            }
            _ => return None,
        };
        let header = Header::from_bytes(head).ok()?;
        let body = Body::Relayed {
            budget_ms: u16::from_be_bytes(*budget),
            origin: NodeAddr::from_bytes(origin).ok()?,
            request,
        };
        Some(Message { header, body })
    }

    /// [`parse`](Self::parse) of every message.
    #[inline]
    fn parse_any(bytes: &'a [u8]) -> Result<Message<'a>> {
        if bytes.len() > MAX_MESSAGE_LEN {
            return Err(Error::TooLarge);
        }
        let Some(head) = bytes.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let (version, bits) = split_type_byte(head[field::TYPE]);
        let Some(kind) = Kind::from_bits(bits) else {
            return Err(Error::UnknownType(head[field::TYPE]));
        };
        if version != kind.version() {
            return Err(Error::UnsupportedVersion(version));
        }
        let header = Header::from_bytes(head)?;
        let mut r = Reader {
            rest: &bytes[HEADER_LEN..],
        };
        let body = match kind {
            Kind::Get => Body::Get { key: r.key()? },
            Kind::Value => {
                let key = r.key()?;
                let value = match r.u8()? {
                    0 => None,
                    1 => Some(r.value()?),
                    _ => return Err(Error::BadValue),
                };
                Body::Value { key, value }
            }
            Kind::Put => Body::Put {
                key: r.key()?,
                value: r.value()?,
            },
            Kind::PutAck => Body::PutAck { key: r.key()? },
            Kind::Lock => Body::Lock {
                key: r.key()?,
                token: r.token()?,
                lease_ms: r.u32()?,
            },
            Kind::Locked => Body::Locked {
                key: r.key()?,
                token: r.token()?,
                lease_ms: r.u32()?,
            },
            Kind::LockDenied => Body::LockDenied {
                key: r.key()?,
                remaining_ms: r.u32()?,
            },
            Kind::Unlock => Body::Unlock {
                key: r.key()?,
                token: r.token()?,
            },
            Kind::Unlocked => Body::Unlocked { key: r.key()? },
            Kind::InitConnect => Body::InitConnect,
            Kind::RequestInsertion => Body::RequestInsertion { joining: r.node()? },
            Kind::Join => {
                let side = match r.u8()? {
                    0 => Side::Left,
                    1 => Side::Right,
                    _ => return Err(Error::BadValue),
                };
                Body::Join {
                    side,
                    nodes: NodeSet::Parsed(r.nodes()?),
                }
            }
            Kind::Leave => Body::Leave {
                nodes: NodeSet::Parsed(r.nodes()?),
            },
            Kind::Replicate => Body::Replicate {
                key: r.key()?,
                value: r.value()?,
            },
            Kind::Error => Body::Error {
                code: ErrorCode::from_u16(r.u16()?),
            },
            Kind::Challenge => Body::Challenge,
            Kind::Echo => Body::Echo,
            Kind::Withheld => Body::Withheld { cookie: r.u64()? },
            Kind::RouteRequest => Body::RouteRequest {
                row: r.u8()?,
                columns: r.u16()?,
            },
            Kind::Route => Body::Route {
                row: r.u8()?,
                nodes: NodeSet::Parsed(r.nodes()?),
            },
            Kind::ViewRequest => Body::ViewRequest,
            Kind::View => Body::View {
                left: NodeSet::Parsed(r.view_side()?),
                right: NodeSet::Parsed(r.view_side()?),
            },
            Kind::Relayed => Body::Relayed {
                budget_ms: r.u16()?,
                origin: r.node()?,
                request: r.relayed_request()?,
            },
        };
        r.finish()?;
        Ok(Message { header, body })
    }

    /// The exact number of bytes [`encode`](Self::encode) writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + Self::body_len(&self.body)
    }

    /// The bytes of `body` after the header.
    fn body_len(body: &Body<'_>) -> usize {
        let key = |k: &[u8]| 1 + k.len();
        let value = |v: &[u8]| 2 + v.len();
        match body {
            Body::Get { key: k } | Body::PutAck { key: k } | Body::Unlocked { key: k } => key(k),
            Body::Value { key: k, value: v } => key(k) + 1 + v.map_or(0, value),
            Body::Put { key: k, value: v } | Body::Replicate { key: k, value: v } => {
                key(k) + value(v)
            }
            Body::Lock { key: k, .. } | Body::Locked { key: k, .. } => key(k) + 16 + 4,
            Body::LockDenied { key: k, .. } => key(k) + 4,
            Body::Unlock { key: k, .. } => key(k) + 16,
            Body::InitConnect | Body::Challenge | Body::Echo | Body::ViewRequest => 0,
            Body::RequestInsertion { .. } => NODE_LEN,
            Body::Join { nodes, .. } => 1 + 1 + nodes.len() * NODE_LEN,
            Body::Leave { nodes } => 1 + nodes.len() * NODE_LEN,
            Body::Error { .. } => 2,
            Body::Withheld { .. } => 8,
            Body::RouteRequest { .. } => 1 + 2,
            Body::Route { nodes, .. } => 1 + 1 + nodes.len() * NODE_LEN,
            Body::View { left, right } => 1 + 1 + (left.len() + right.len()) * NODE_LEN,
            Body::Relayed { request, .. } => RELAYED_LEN + Self::body_len(&request.body()),
        }
    }

    /// Checks what the wire cannot carry: keys over [`MAX_KEY_LEN`], values over
    /// [`MAX_VALUE_LEN`], lists over [`MAX_NODE_LIST`] (View sides over [`VIEW_SIDE`]), nodes
    /// with port 0 or address `::`.
    fn validate(&self) -> Result<()> {
        let key_ok = |k: &[u8]| k.len() <= MAX_KEY_LEN;
        let value_ok = |v: &[u8]| v.len() <= MAX_VALUE_LEN;
        if !self.header.sender.is_valid() {
            return Err(Error::BadAddress);
        }
        let ok = match &self.body {
            Body::Get { key }
            | Body::PutAck { key }
            | Body::Unlocked { key }
            | Body::Lock { key, .. }
            | Body::Locked { key, .. }
            | Body::LockDenied { key, .. }
            | Body::Unlock { key, .. } => key_ok(key),
            Body::Value { key, value } => key_ok(key) && value.is_none_or(value_ok),
            Body::Put { key, value } | Body::Replicate { key, value } => {
                key_ok(key) && value_ok(value)
            }
            Body::InitConnect
            | Body::Error { .. }
            | Body::Challenge
            | Body::Echo
            | Body::Withheld { .. }
            | Body::ViewRequest => true,
            Body::RequestInsertion { joining } => {
                if !joining.is_valid() {
                    return Err(Error::BadAddress);
                }
                true
            }
            Body::RouteRequest { .. } => true,
            Body::Join { nodes, .. } | Body::Leave { nodes } | Body::Route { nodes, .. } => {
                if nodes.len() > MAX_NODE_LIST {
                    return Err(Error::TooLarge);
                }
                if !nodes.all_valid() {
                    return Err(Error::BadAddress);
                }
                true
            }
            Body::View { left, right } => {
                if left.len() > VIEW_SIDE || right.len() > VIEW_SIDE {
                    return Err(Error::TooLarge);
                }
                if !(left.all_valid() && right.all_valid()) {
                    return Err(Error::BadAddress);
                }
                true
            }
            Body::Relayed {
                origin, request, ..
            } => {
                if !origin.is_valid() {
                    return Err(Error::BadAddress);
                }
                match *request {
                    RelayedRequest::Put { key, value } => key_ok(key) && value_ok(value),
                    r => key_ok(r.key()),
                }
            }
        };
        if ok { Ok(()) } else { Err(Error::TooLarge) }
    }

    /// Writes the message into `buf`; returns the bytes written ([`encoded_len`](Self::encoded_len)).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; [`Error::TooLarge`] for a key, value or node list above its
    /// maximum; [`Error::BadAddress`] for a node the receiver would refuse.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        self.validate()?;
        let len = self.encoded_len();
        let Some(buf) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall);
        };
        let mut w = Writer { buf, at: 0 };
        let kind = self.body.kind();
        w.put(&[type_byte(kind.version(), kind as u8)]);
        w.put(&self.header.message_id.to_be_bytes());
        w.node(&self.header.sender);
        w.body(&self.body);
        Ok(w.at)
    }

    /// Whether the message fits one UDP datagram.
    pub fn fits_datagram(&self) -> bool {
        self.encoded_len() <= MAX_DATAGRAM_LEN
    }
}

impl Writer<'_> {
    fn body(&mut self, body: &Body<'_>) {
        let w = self;
        match body {
            Body::Get { key } | Body::PutAck { key } | Body::Unlocked { key } => w.key(key),
            Body::Value { key, value } => {
                w.key(key);
                match value {
                    None => w.put(&[0]),
                    Some(v) => {
                        w.put(&[1]);
                        w.value(v);
                    }
                }
            }
            Body::Put { key, value } | Body::Replicate { key, value } => {
                w.key(key);
                w.value(value);
            }
            Body::Lock {
                key,
                token,
                lease_ms,
            }
            | Body::Locked {
                key,
                token,
                lease_ms,
            } => {
                w.key(key);
                w.put(&token.0);
                w.put(&lease_ms.to_be_bytes());
            }
            Body::LockDenied { key, remaining_ms } => {
                w.key(key);
                w.put(&remaining_ms.to_be_bytes());
            }
            Body::Unlock { key, token } => {
                w.key(key);
                w.put(&token.0);
            }
            Body::InitConnect | Body::Challenge | Body::Echo | Body::ViewRequest => {}
            Body::RequestInsertion { joining } => w.node(joining),
            Body::Join { side, nodes } => {
                w.put(&[match side {
                    Side::Left => 0,
                    Side::Right => 1,
                }]);
                w.nodes(nodes);
            }
            Body::Leave { nodes } => w.nodes(nodes),
            Body::Error { code } => w.put(&code.to_u16().to_be_bytes()),
            Body::Withheld { cookie } => w.put(&cookie.to_be_bytes()),
            Body::RouteRequest { row, columns } => {
                w.put(&[*row]);
                w.put(&columns.to_be_bytes());
            }
            Body::Route { row, nodes } => {
                w.put(&[*row]);
                w.nodes(nodes);
            }
            Body::View { left, right } => {
                w.nodes(left);
                w.nodes(right);
            }
            Body::Relayed {
                budget_ms,
                origin,
                request,
            } => {
                w.put(&budget_ms.to_be_bytes());
                w.node(origin);
                let kind = request.kind();
                w.put(&[type_byte(kind.version(), kind as u8)]);
                w.body(&request.body());
            }
        }
    }
}

#[cfg(test)]
mod tests;
