//! UDP health checks and peer-table exchange.
//!
//! Four messages, each one UDP datagram of at most [`MAX_DATAGRAM_LEN`] (508) bytes, each starting
//! with the [nonce header](crate::nonce):
//!
//! | kind | message | length |
//! | --- | --- | --- |
//! | 1 | [health request](HealthKind::Request) | exactly 17 |
//! | 2 | [health response](HealthKind::Response) (echoes the request's nonce) | exactly 17 |
//! | 3 | [`PeerTableRequest`]: the first entry wanted, zero padding | 22..=508 |
//! | 4 | [`PeerTableResponse`]: one page of the responder's network table | 22 + 19 × entries |
//!
//! A peer-table response is never longer than the request it answers: the requester pays, in
//! padding, for the bytes it asks for, so a node can never be used to amplify traffic.
//!
//! Decoding borrows ([`Message::parse`], [`HealthPacket`], [`PeerTableResponse`]); encoding writes
//! into the caller's buffer ([`HealthCheck::encode`], [`PeerTableRequest::encode`],
//! [`PeerTableWriter`]). The protocol itself — matching nonces, timeouts, the network table,
//! discovery — is the sans-IO state machine [`HealthNode`].
//!
//! A health request is the bare nonce header; a node answers it with a response that echoes the
//! nonce, and probes the unknown sender, which joins its table once it answers:
//!
//! ```
//! use core::net::SocketAddr;
//! use sinew_proto::health::{
//!     Config, Disposition, Event, HealthCheck, HealthKind, HealthNode, MAX_DATAGRAM_LEN, Message,
//! };
//! use sinew_proto::nonce::Nonce;
//! use sinew_proto::time::Instant;
//!
//! // The codec: type byte 1 (version 0, kind 1), then the 16 nonce bytes.
//! let nonce = Nonce::from_bytes([0x5a; 16]);
//! let mut request = [0xa5; 17];
//! HealthCheck { kind: HealthKind::Request, nonce }.encode(&mut request)?;
//! assert_eq!(request[0], 0x01);
//! assert_eq!(request[1..], [0x5a; 16]);
//!
//! // The state machine, fed that request as if it came from a peer's socket.
//! let rng = rand_core::UnwrapErr(getrandom::SysRng);
//! let mut node: HealthNode<_> = HealthNode::new(Config::default(), rng);
//! let peer: SocketAddr = "192.0.2.7:7000".parse().unwrap();
//! let now = Instant::ZERO;
//! assert_eq!(node.handle_datagram(now, peer, &request), Disposition::Answered);
//!
//! // It sends the response, then a probe of its own to the new peer.
//! let mut buf = [0u8; MAX_DATAGRAM_LEN];
//! let response = node.poll_transmit(now, &mut buf).unwrap();
//! assert_eq!((response.destination, response.len), (peer, 17));
//! assert_eq!(Message::parse(&buf[..response.len])?, Message::HealthResponse(nonce));
//! let probe = node.poll_transmit(now, &mut buf).unwrap();
//! let Message::HealthRequest(probe_nonce) = Message::parse(&buf[..probe.len])? else {
//!     panic!("not a probe");
//! };
//!
//! // The peer answers the probe: it joins the node's table, healthy.
//! let answer = HealthCheck { kind: HealthKind::Response, nonce: probe_nonce };
//! let len = answer.encode(&mut buf)?;
//! let later = Instant::from_millis(3);
//! assert_eq!(node.handle_datagram(later, peer, &buf[..len]), Disposition::Accepted);
//! assert_eq!(node.poll_event(), Some(Event::HostAdded { addr: peer }));
//! assert_eq!(node.host(peer).unwrap().health.lives(), 3);
//! # Ok::<(), sinew_proto::Error>(())
//! ```

mod node;

pub use node::{
    Config, Disposition, DropReason, EVENT_CAPACITY, Event, HealthNode, HostInfo, MAX_SEEDS, Stats,
};

use core::fmt;
use core::net::SocketAddr;
use core::ops::Range;

use crate::addr;
use crate::nonce::{self, HEADER_LEN, Header, Nonce};
use crate::{Error, Result};

pub use crate::datagram::{MAX_DATAGRAM_LEN, Transmit};
/// Length of a health request or response: the bare nonce header.
pub const HEALTH_LEN: usize = HEADER_LEN;
/// Length of one peer-table entry.
pub const ENTRY_LEN: usize = entry::HEALTH + 1;
/// Length of the fixed part of a peer-table request (type, nonce, start); padding follows.
pub const PEER_TABLE_REQUEST_FIXED_LEN: usize = table::START.end;
/// Length of a peer-table response without entries; also the shortest peer-table request.
pub const PEER_TABLE_HEADER_LEN: usize = table::ENTRIES;
/// The most entries one peer-table response can carry within [`MAX_DATAGRAM_LEN`].
pub const MAX_ENTRIES_PER_PAGE: usize = (MAX_DATAGRAM_LEN - PEER_TABLE_HEADER_LEN) / ENTRY_LEN;
/// The largest number of lives a host can have: one response adds one, one missed check takes one.
pub const MAX_LIVES: u8 = 3;

/// Byte positions inside a peer-table request / response, after the nonce header.
mod table {
    use super::Range;
    /// Request and response: index of the first entry (u16, big-endian).
    pub const START: Range<usize> = 17..19;
    /// Response: number of entries in the whole table (u16, big-endian).
    pub const TOTAL: Range<usize> = 19..21;
    /// Response: number of entries in this page.
    pub const COUNT: usize = 21;
    /// Response: first entry.
    pub const ENTRIES: usize = 22;
}

/// Byte positions inside one peer-table entry.
mod entry {
    use super::Range;
    /// IPv6 address, or an IPv4 address in IPv4-mapped form (`::ffff:a.b.c.d`).
    #[allow(
        dead_code,
        reason = "read only by the layout assertion below, which rustc before 1.89 does not count"
    )]
    pub const ADDR: Range<usize> = 0..16;
    /// UDP port, big-endian.
    pub const PORT: Range<usize> = 16..18;
    /// Lives, 0..=3: 0 unhealthy, 1 and 2 at risk, 3 healthy.
    pub const HEALTH: usize = 18;
    // Address and port are the shared wire form of a socket address.
    const _: () = assert!(ADDR.start == 0 && PORT.end == crate::addr::WIRE_LEN);
}

/// The kind of a message (the low five bits of its type byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageKind {
    /// "Are you alive?"
    HealthRequest = 1,
    /// "I am", echoing the request's nonce.
    HealthResponse = 2,
    /// "Send me your network table, from entry `start`."
    PeerTableRequest = 3,
    /// One page of the responder's network table.
    PeerTableResponse = 4,
}

impl MessageKind {
    /// The kind named by the low five bits of a version-0 type byte.
    pub const fn from_kind_bits(kind: u8) -> Option<MessageKind> {
        match kind {
            1 => Some(MessageKind::HealthRequest),
            2 => Some(MessageKind::HealthResponse),
            3 => Some(MessageKind::PeerTableRequest),
            4 => Some(MessageKind::PeerTableResponse),
            _ => None,
        }
    }

    /// The full type byte of this kind in the current protocol version.
    pub const fn type_byte(self) -> u8 {
        nonce::type_byte(nonce::VERSION, self as u8)
    }
}

/// Checks the length limit, the version and the kind of any datagram of this protocol.
#[inline]
fn parse_header(datagram: &[u8]) -> Result<(MessageKind, Header<&[u8]>)> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return Err(Error::TooLarge);
    }
    let header = Header::new_checked(datagram)?;
    match MessageKind::from_kind_bits(header.kind()) {
        Some(kind) => Ok((kind, header)),
        None => Err(Error::UnknownType(header.type_byte())),
    }
}

#[inline]
fn read_u16(bytes: &[u8], at: Range<usize>) -> u16 {
    match bytes.get(at) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Health request / response
// ---------------------------------------------------------------------------------------------

/// Whether a health packet asks or answers.
///
/// Exhaustive on purpose: a check is asked or answered, nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum HealthKind {
    /// Type byte 0x01.
    Request,
    /// Type byte 0x02.
    Response,
}

impl HealthKind {
    /// The message kind of this health packet.
    pub const fn message_kind(self) -> MessageKind {
        match self {
            HealthKind::Request => MessageKind::HealthRequest,
            HealthKind::Response => MessageKind::HealthResponse,
        }
    }
}

/// A zero-copy view of a health request or response (exactly [`HEALTH_LEN`] bytes).
///
/// ```
/// use sinew_proto::health::{HealthKind, HealthPacket};
/// let datagram = [0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
/// let packet = HealthPacket::new_checked(&datagram[..])?;
/// assert_eq!(packet.kind(), HealthKind::Response);
/// assert_eq!(packet.nonce_bytes()[15], 16);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> HealthPacket<T> {
    /// Validates a health packet: exactly 17 bytes, version 0, type 1 or 2.
    ///
    /// # Errors
    /// [`Error::Truncated`] (short), [`Error::TrailingBytes`] (padded),
    /// [`Error::UnsupportedVersion`], [`Error::UnknownType`], or [`Error::UnexpectedType`] for a
    /// well-formed message that is not a health packet.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<HealthPacket<T>> {
        let bytes = buffer.as_ref();
        if bytes.len() == HEALTH_LEN {
            // Fast path: one length check, one byte compare.
            let byte = bytes[0];
            if byte == MessageKind::HealthRequest.type_byte()
                || byte == MessageKind::HealthResponse.type_byte()
            {
                return Ok(HealthPacket { buffer });
            }
        }
        let (kind, _) = parse_header(bytes)?;
        match kind {
            MessageKind::HealthRequest | MessageKind::HealthResponse => Err(Error::TrailingBytes),
            other => Err(Error::UnexpectedType(other.type_byte())),
        }
    }

    /// Request or response.
    #[inline]
    pub fn kind(&self) -> HealthKind {
        if self.buffer.as_ref()[0] == MessageKind::HealthResponse.type_byte() {
            HealthKind::Response
        } else {
            HealthKind::Request
        }
    }

    /// The nonce, by reference into the buffer.
    #[inline]
    pub fn nonce_bytes(&self) -> &[u8; 16] {
        let bytes = self.buffer.as_ref();
        <&[u8; 16]>::try_from(bytes.get(1..HEALTH_LEN).unwrap_or(&[0; 16])).unwrap_or(&[0; 16])
    }

    /// The nonce, copied out.
    #[inline]
    pub fn nonce(&self) -> Nonce {
        Nonce::from_bytes(*self.nonce_bytes())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// A health request or response, by value.
///
/// Exhaustive on purpose: the fields mirror the wire layout of version 1 (type byte, nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct HealthCheck {
    /// Request or response.
    pub kind: HealthKind,
    /// The request's nonce; a response echoes it.
    pub nonce: Nonce,
}

impl HealthCheck {
    /// Parses a datagram that must be a health packet (see [`HealthPacket::new_checked`]).
    #[inline]
    pub fn parse(datagram: &[u8]) -> Result<HealthCheck> {
        let packet = HealthPacket::new_checked(datagram)?;
        Ok(HealthCheck {
            kind: packet.kind(),
            nonce: packet.nonce(),
        })
    }

    /// The encoded length: always [`HEALTH_LEN`].
    pub const fn encoded_len(&self) -> usize {
        HEALTH_LEN
    }

    /// Writes the packet into `buf`, returning the bytes written ([`HEALTH_LEN`]).
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`HEALTH_LEN`].
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let Some(out) = buf.first_chunk_mut::<HEALTH_LEN>() else {
            return Err(Error::BufferTooSmall);
        };
        out[0] = self.kind.message_kind().type_byte();
        out[1..].copy_from_slice(self.nonce.as_bytes());
        Ok(HEALTH_LEN)
    }

    /// The response to this request: same nonce, kind [`HealthKind::Response`].
    pub const fn response(&self) -> HealthCheck {
        HealthCheck {
            kind: HealthKind::Response,
            nonce: self.nonce,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Health status of a host
// ---------------------------------------------------------------------------------------------

/// The coarse health of a host, derived from its lives.
///
/// Exhaustive on purpose: a partition of the lives `0..=MAX_LIVES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// No lives left: the last checks went unanswered.
    Unhealthy,
    /// Some lives lost: recent checks went unanswered.
    AtRisk,
    /// All lives: answering its checks.
    Healthy,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Unhealthy => "Unhealthy",
            Status::AtRisk => "AtRisk",
            Status::Healthy => "Healthy",
        })
    }
}

/// A host's health: its lives counter, 0..=[`MAX_LIVES`].
///
/// A response adds a life, a missed check takes one. [`MAX_LIVES`] is [`Status::Healthy`], none
/// is [`Status::Unhealthy`], anything between is [`Status::AtRisk`]. On the wire it is one byte,
/// the lives; any other value is refused with [`Error::BadStatus`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Health {
    lives: u8,
}

impl Health {
    /// All lives.
    pub const HEALTHY: Health = Health { lives: MAX_LIVES };
    /// No lives.
    pub const UNHEALTHY: Health = Health { lives: 0 };

    /// The health with `lives` lives, or `None` above [`MAX_LIVES`].
    pub const fn from_lives(lives: u8) -> Option<Health> {
        if lives <= MAX_LIVES {
            Some(Health { lives })
        } else {
            None
        }
    }

    /// The lives counter.
    pub const fn lives(self) -> u8 {
        self.lives
    }

    /// Healthy, at risk or unhealthy.
    pub const fn status(self) -> Status {
        match self.lives {
            0 => Status::Unhealthy,
            MAX_LIVES => Status::Healthy,
            _ => Status::AtRisk,
        }
    }

    /// One life more (a check was answered), at most [`MAX_LIVES`].
    #[must_use]
    pub const fn gain(self) -> Health {
        if self.lives < MAX_LIVES {
            Health {
                lives: self.lives + 1,
            }
        } else {
            self
        }
    }

    /// One life less (a check went unanswered), at least zero.
    #[must_use]
    pub const fn lose(self) -> Health {
        Health {
            lives: self.lives.saturating_sub(1),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{} lives)", self.status(), self.lives, MAX_LIVES)
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Health {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Health> {
        Ok(Health {
            lives: u.int_in_range(0..=MAX_LIVES)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Peer-table request
// ---------------------------------------------------------------------------------------------

/// "Send me your network table, from entry `start`", padded to `len` bytes.
///
/// The padding is the requester's budget: the response holds as many entries as fit in `len`
/// bytes, so it is never longer than the request. Request [`MAX_DATAGRAM_LEN`] bytes for a full
/// page of [`MAX_ENTRIES_PER_PAGE`] entries.
///
/// Exhaustive on purpose: the fields mirror the wire layout of version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerTableRequest {
    /// The request's nonce; the response echoes it.
    pub nonce: Nonce,
    /// Index of the first entry wanted (0 for the first page).
    pub start: u16,
    /// Total datagram length, padding included: [`PEER_TABLE_HEADER_LEN`]..=[`MAX_DATAGRAM_LEN`].
    pub len: u16,
}

impl PeerTableRequest {
    /// A request for a full page from entry `start`, padded to [`MAX_DATAGRAM_LEN`].
    pub const fn full_page(nonce: Nonce, start: u16) -> PeerTableRequest {
        PeerTableRequest {
            nonce,
            start,
            len: MAX_DATAGRAM_LEN as u16,
        }
    }

    /// Parses a datagram that must be a peer-table request.
    ///
    /// # Errors
    /// [`Error::Truncated`] below [`PEER_TABLE_HEADER_LEN`] bytes, [`Error::TooLarge`] above
    /// [`MAX_DATAGRAM_LEN`], [`Error::NonZeroPadding`] if the padding is not all zero, and the
    /// header errors of [`Message::parse`].
    #[inline]
    pub fn parse(datagram: &[u8]) -> Result<PeerTableRequest> {
        let (kind, header) = parse_header(datagram)?;
        if kind != MessageKind::PeerTableRequest {
            return Err(Error::UnexpectedType(header.type_byte()));
        }
        let Some(padding) = datagram.get(table::START.end..) else {
            return Err(Error::Truncated);
        };
        if datagram.len() < PEER_TABLE_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if padding.iter().any(|&b| b != 0) {
            return Err(Error::NonZeroPadding);
        }
        Ok(PeerTableRequest {
            nonce: header.nonce(),
            start: read_u16(datagram, table::START),
            // Bounded by MAX_DATAGRAM_LEN above, so it fits.
            len: datagram.len() as u16,
        })
    }

    /// The encoded length: `len`, clamped to the valid range.
    pub fn encoded_len(&self) -> usize {
        usize::from(self.len).clamp(PEER_TABLE_HEADER_LEN, MAX_DATAGRAM_LEN)
    }

    /// Bytes of zero padding after the fixed part (type, nonce, start): the requester's budget.
    pub fn padding_len(&self) -> usize {
        self.encoded_len() - PEER_TABLE_REQUEST_FIXED_LEN
    }

    /// How many entries a response to this request may carry.
    pub fn entry_budget(&self) -> usize {
        (self.encoded_len() - PEER_TABLE_HEADER_LEN) / ENTRY_LEN
    }

    /// Writes the request, zero padding included, into `buf`; returns the bytes written.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`encoded_len`](Self::encoded_len).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.encoded_len();
        let Some(out) = buf.get_mut(..len) else {
            return Err(Error::BufferTooSmall);
        };
        nonce::emit_header(out, MessageKind::PeerTableRequest as u8, &self.nonce)?;
        out[table::START].copy_from_slice(&self.start.to_be_bytes());
        out[table::START.end..].fill(0);
        Ok(len)
    }
}

// ---------------------------------------------------------------------------------------------
// Peer-table response
// ---------------------------------------------------------------------------------------------

/// One host of a network table: where it is and how healthy its sender believes it to be.
///
/// Exhaustive on purpose: the fields mirror the wire layout of a table entry (address, port,
/// health).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerEntry {
    /// The host's UDP address. IPv4 addresses travel in IPv4-mapped form.
    pub addr: SocketAddr,
    /// The sender's view of the host's health.
    pub health: Health,
}

impl PeerEntry {
    /// Whether this entry can be encoded (and would be accepted): an address that is neither
    /// `::`, `0.0.0.0` nor `::ffff:0.0.0.0`, and a non-zero port.
    #[inline]
    pub fn is_valid(&self) -> bool {
        addr::is_valid_addr(&self.addr)
    }
}

/// Lays out `entry` in `out` if it can travel; returns `false`, having written nothing, for an
/// unspecified address or port 0 (which no receiver accepts).
#[inline]
fn write_entry(entry: &PeerEntry, out: &mut [u8; ENTRY_LEN]) -> bool {
    let Some(wire) = out.first_chunk_mut::<{ addr::WIRE_LEN }>() else {
        return false;
    };
    if !addr::write(&entry.addr, wire) {
        return false;
    }
    out[entry::HEALTH] = entry.health.lives();
    true
}

/// A peer-table entry kept in its 19-byte wire form, checked once when made.
///
/// [`PeerTableWriter::push`] checks and lays out a [`PeerEntry`] on every page it writes; a table
/// that is served often can hold its entries as `EncodedEntry` instead, which
/// [`PeerTableWriter::push_encoded`] copies as they are. The health byte can be changed in place
/// with [`set_health`](Self::set_health).
///
/// ```
/// use sinew_proto::health::{EncodedEntry, Health, PeerEntry, PeerTableWriter, peer_table_len};
/// use sinew_proto::nonce::Nonce;
///
/// let entry = PeerEntry { addr: "192.0.2.7:4000".parse().unwrap(), health: Health::HEALTHY };
/// let mut encoded = EncodedEntry::new(&entry)?;
/// encoded.set_health(Health::UNHEALTHY);
/// assert_eq!(encoded.entry().health, Health::UNHEALTHY);
///
/// let mut buf = [0u8; 508];
/// let mut page = PeerTableWriter::new(&mut buf, Nonce::from_bytes([7; 16]), 0, 1)?;
/// page.push_encoded(&encoded)?;
/// assert_eq!(page.finish(), peer_table_len(1));
/// # Ok::<(), sinew_proto::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncodedEntry {
    raw: [u8; ENTRY_LEN],
}

impl EncodedEntry {
    /// Lays out an entry.
    ///
    /// # Errors
    /// [`Error::BadAddress`] for an unspecified address or port 0, which no receiver accepts.
    #[inline]
    pub fn new(entry: &PeerEntry) -> Result<EncodedEntry> {
        let mut raw = [0; ENTRY_LEN];
        if !write_entry(entry, &mut raw) {
            return Err(Error::BadAddress);
        }
        Ok(EncodedEntry { raw })
    }

    /// The 19 bytes as they travel.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; ENTRY_LEN] {
        &self.raw
    }

    /// A view of the bytes, as a received page gives.
    #[inline]
    pub fn view(&self) -> PeerEntryView<'_> {
        PeerEntryView { raw: &self.raw }
    }

    /// The entry, decoded (always valid: it was checked when made).
    #[inline]
    pub fn entry(&self) -> PeerEntry {
        PeerEntry {
            addr: self.view().addr(),
            health: self.health(),
        }
    }

    /// The health carried.
    #[inline]
    pub fn health(&self) -> Health {
        Health {
            lives: self.raw[entry::HEALTH],
        }
    }

    /// Changes the health carried, leaving the address as it is.
    #[inline]
    pub fn set_health(&mut self, health: Health) {
        self.raw[entry::HEALTH] = health.lives();
    }
}

impl TryFrom<&PeerEntry> for EncodedEntry {
    type Error = Error;

    #[inline]
    fn try_from(entry: &PeerEntry) -> Result<EncodedEntry> {
        EncodedEntry::new(entry)
    }
}

impl From<EncodedEntry> for PeerEntry {
    #[inline]
    fn from(encoded: EncodedEntry) -> PeerEntry {
        encoded.entry()
    }
}

impl fmt::Debug for EncodedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entry = self.entry();
        f.debug_struct("EncodedEntry")
            .field("addr", &entry.addr)
            .field("health", &entry.health)
            .finish()
    }
}

/// A zero-copy view of one 19-byte peer-table entry, as walked by [`PeerTableResponse::views`].
///
/// Reading its fields costs a load each; [`to_entry`](Self::to_entry) validates and decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerEntryView<'a> {
    raw: &'a [u8; ENTRY_LEN],
}

impl<'a> PeerEntryView<'a> {
    /// The 16 address bytes (IPv6, or IPv4-mapped).
    #[inline]
    pub fn octets(&self) -> &'a [u8; 16] {
        self.raw.first_chunk::<16>().unwrap_or(&[0; 16])
    }

    /// The port.
    #[inline]
    pub fn port(&self) -> u16 {
        u16::from_be_bytes([self.raw[entry::PORT.start], self.raw[entry::PORT.start + 1]])
    }

    /// The raw lives byte (valid values are 0..=[`MAX_LIVES`]).
    #[inline]
    pub fn lives_byte(&self) -> u8 {
        self.raw[entry::HEALTH]
    }

    /// The address, with IPv4-mapped addresses as IPv4.
    #[inline]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(addr::ip_of(self.octets()), self.port())
    }

    /// Checks the entry: [`Error::BadStatus`] for lives above [`MAX_LIVES`],
    /// [`Error::BadAddress`] for an unspecified address or port 0.
    #[inline]
    pub fn check(&self) -> Result<()> {
        let lives = self.lives_byte();
        if lives > MAX_LIVES {
            return Err(Error::BadStatus(lives));
        }
        if self.port() == 0 || !addr::is_host(self.octets()) {
            return Err(Error::BadAddress);
        }
        Ok(())
    }

    /// The entry, validated and decoded.
    #[inline]
    pub fn to_entry(&self) -> Result<PeerEntry> {
        self.check()?;
        let health = Health {
            lives: self.lives_byte(),
        };
        Ok(PeerEntry {
            addr: self.addr(),
            health,
        })
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for PeerEntry {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<PeerEntry> {
        Ok(PeerEntry {
            addr: addr::arbitrary(u)?,
            health: u.arbitrary()?,
        })
    }
}

/// A zero-copy view of one page of a peer's network table.
///
/// [`PeerTableResponse::parse`] checks the page's structure in constant time — type, length,
/// count, `start + count <= total` — and leaves the entries to be checked as they are walked:
/// [`entries`](Self::entries) yields each one validated and decoded (or its typed error), and
/// [`views`](Self::views) yields raw [`PeerEntryView`]s for the cheapest walk.
/// [`validate`](Self::validate) checks every entry at once; [`Message::parse`] calls it, so a
/// page obtained from [`Message::parse`] has no invalid entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerTableResponse<'a> {
    datagram: &'a [u8],
}

impl<'a> PeerTableResponse<'a> {
    /// Parses a datagram that must be a peer-table response, checking its structure.
    ///
    /// # Errors
    /// [`Error::Truncated`] if shorter than its count says, [`Error::TrailingBytes`] if longer,
    /// [`Error::BadLength`] if `start + count > total`, and the header errors of
    /// [`Message::parse`]. Entries are not checked here (see [`validate`](Self::validate)).
    #[inline]
    pub fn parse(datagram: &'a [u8]) -> Result<PeerTableResponse<'a>> {
        if datagram.len() > MAX_DATAGRAM_LEN {
            return Err(Error::TooLarge);
        }
        let Some(fixed) = datagram.first_chunk::<PEER_TABLE_HEADER_LEN>() else {
            return Err(Self::slow_error(datagram));
        };
        if fixed[0] != MessageKind::PeerTableResponse.type_byte() {
            return Err(Self::slow_error(datagram));
        }
        let count = usize::from(fixed[table::COUNT]);
        let expected = peer_table_len(count);
        if datagram.len() != expected {
            return Err(if datagram.len() < expected {
                Error::Truncated
            } else {
                Error::TrailingBytes
            });
        }
        let start = u32::from(u16::from_be_bytes([fixed[17], fixed[18]]));
        let total = u32::from(u16::from_be_bytes([fixed[19], fixed[20]]));
        if start + count as u32 > total {
            return Err(Error::BadLength);
        }
        Ok(PeerTableResponse { datagram })
    }

    /// The precise error for a datagram that is not even a peer-table response's header.
    #[cold]
    fn slow_error(datagram: &[u8]) -> Error {
        match parse_header(datagram) {
            Err(e) => e,
            Ok((MessageKind::PeerTableResponse, _)) => Error::Truncated,
            Ok((_, header)) => Error::UnexpectedType(header.type_byte()),
        }
    }

    /// Checks every entry; the first invalid one gives its error ([`Error::BadStatus`] or
    /// [`Error::BadAddress`]).
    pub fn validate(&self) -> Result<()> {
        self.views().try_for_each(|view| view.check())
    }

    /// The nonce of the request this answers.
    #[inline]
    pub fn nonce(&self) -> Nonce {
        let mut bytes = [0; 16];
        bytes.copy_from_slice(self.datagram.get(1..HEADER_LEN).unwrap_or(&[0; 16]));
        Nonce::from_bytes(bytes)
    }

    /// Index of this page's first entry in the sender's table.
    #[inline]
    pub fn start(&self) -> u16 {
        read_u16(self.datagram, table::START)
    }

    /// Number of entries in the sender's whole table.
    #[inline]
    pub fn total(&self) -> u16 {
        read_u16(self.datagram, table::TOTAL)
    }

    /// Number of entries in this page.
    #[inline]
    pub fn count(&self) -> u8 {
        self.datagram.get(table::COUNT).copied().unwrap_or(0)
    }

    /// The index of the entry after this page, if the table goes on.
    pub fn next_start(&self) -> Option<u16> {
        let next = self.start().checked_add(u16::from(self.count()))?;
        (self.count() > 0 && next < self.total()).then_some(next)
    }

    /// The entries of this page, each validated and decoded as it is walked.
    #[inline]
    pub fn entries(&self) -> impl ExactSizeIterator<Item = Result<PeerEntry>> + 'a {
        self.views().map(|view| view.to_entry())
    }

    /// The entries of this page as raw views: the cheapest walk.
    #[inline]
    pub fn views(&self) -> PeerEntryViews<'a> {
        PeerEntryViews {
            chunks: self
                .datagram
                .get(table::ENTRIES..)
                .unwrap_or(&[])
                .chunks_exact(ENTRY_LEN),
        }
    }

    /// The datagram this view borrows.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.datagram
    }
}

/// Iterator over the entries of a [`PeerTableResponse`], as [`PeerEntryView`]s.
#[derive(Clone, Debug)]
pub struct PeerEntryViews<'a> {
    chunks: core::slice::ChunksExact<'a, u8>,
}

impl<'a> Iterator for PeerEntryViews<'a> {
    type Item = PeerEntryView<'a>;

    #[inline]
    fn next(&mut self) -> Option<PeerEntryView<'a>> {
        let raw = self.chunks.next()?;
        raw.first_chunk::<ENTRY_LEN>()
            .map(|raw| PeerEntryView { raw })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for PeerEntryViews<'_> {}

/// Length of a peer-table response with `count` entries.
pub const fn peer_table_len(count: usize) -> usize {
    PEER_TABLE_HEADER_LEN + count * ENTRY_LEN
}

/// Writes a peer-table response into a caller's buffer, one entry at a time.
///
/// ```
/// use sinew_proto::health::{Health, PeerEntry, PeerTableResponse, PeerTableWriter};
/// use sinew_proto::nonce::Nonce;
///
/// let mut buf = [0u8; 508];
/// let mut writer = PeerTableWriter::new(&mut buf, Nonce::from_bytes([1; 16]), 0, 1)?;
/// writer.push(&PeerEntry { addr: "127.0.0.1:4000".parse().unwrap(), health: Health::HEALTHY })?;
/// let len = writer.finish();
/// let page = PeerTableResponse::parse(&buf[..len])?;
/// assert_eq!(page.entries().next().unwrap()?.addr.port(), 4000);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
#[derive(Debug)]
pub struct PeerTableWriter<'b> {
    /// The header; its count is written by [`finish`](Self::finish).
    header: &'b mut [u8; PEER_TABLE_HEADER_LEN],
    /// Room for the entries still to come: as many as fit in the buffer, and no more than the
    /// table has left after `start`, so that one length check refuses a push past either.
    free: &'b mut [u8],
    /// Entries written.
    count: u8,
    /// Entries that fit in the buffer.
    capacity: u8,
}

impl<'b> PeerTableWriter<'b> {
    /// Starts a page of the table of `total` entries, beginning at entry `start`.
    ///
    /// The page holds as many entries as fit in `buf` (at most [`MAX_ENTRIES_PER_PAGE`]); pass a
    /// buffer of the requester's [`PeerTableRequest::len`] to respect its budget.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` cannot hold [`PEER_TABLE_HEADER_LEN`] bytes,
    /// [`Error::BadLength`] if `start > total`.
    #[inline]
    pub fn new(buf: &'b mut [u8], nonce: Nonce, start: u16, total: u16) -> Result<Self> {
        let Some(left) = total.checked_sub(start) else {
            return Err(Error::BadLength);
        };
        let usable = buf.len().min(MAX_DATAGRAM_LEN);
        let buf = buf.get_mut(..usable).ok_or(Error::BufferTooSmall)?;
        let Some((header, rest)) = buf.split_first_chunk_mut::<PEER_TABLE_HEADER_LEN>() else {
            return Err(Error::BufferTooSmall);
        };
        nonce::emit_header(header, MessageKind::PeerTableResponse as u8, &nonce)?;
        header[table::START].copy_from_slice(&start.to_be_bytes());
        header[table::TOTAL].copy_from_slice(&total.to_be_bytes());
        header[table::COUNT] = 0;
        // At most MAX_ENTRIES_PER_PAGE (26 > 25), so it fits a u8.
        let capacity = (rest.len() / ENTRY_LEN) as u8;
        let room = usize::from(capacity).min(usize::from(left)) * ENTRY_LEN;
        let free = rest.get_mut(..room).unwrap_or_default();
        Ok(PeerTableWriter {
            header,
            free,
            count: 0,
            capacity,
        })
    }

    /// Appends an entry.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when the page is full, [`Error::BadLength`] when the page would
    /// go past the table's `total`, [`Error::BadAddress`] for an entry with an unspecified
    /// address or port 0 (which the receiver would refuse). Nothing is written on an error.
    #[inline]
    pub fn push(&mut self, entry: &PeerEntry) -> Result<()> {
        let Some(out) = self.free.first_chunk_mut::<ENTRY_LEN>() else {
            return Err(self.full_error());
        };
        if !write_entry(entry, out) {
            return Err(Error::BadAddress);
        }
        self.free = core::mem::take(&mut self.free)
            .get_mut(ENTRY_LEN..)
            .unwrap_or_default();
        self.count += 1;
        Ok(())
    }

    /// Appends an entry laid out beforehand: a copy of its 19 bytes, with no check to make.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when the page is full, [`Error::BadLength`] when the page would
    /// go past the table's `total`. Nothing is written on an error.
    #[inline]
    pub fn push_encoded(&mut self, entry: &EncodedEntry) -> Result<()> {
        if self.free.len() < ENTRY_LEN {
            return Err(self.full_error());
        }
        let Some((out, rest)) =
            core::mem::take(&mut self.free).split_first_chunk_mut::<ENTRY_LEN>()
        else {
            return Err(Error::BufferTooSmall);
        };
        *out = entry.raw;
        self.free = rest;
        self.count += 1;
        Ok(())
    }

    /// Appends as many of `entries` as the page has room for (within the buffer and the table's
    /// `total`) and returns how many: the rest go on the next page, from `start + written`.
    ///
    /// ```
    /// use sinew_proto::health::{EncodedEntry, Health, PeerEntry, PeerTableWriter};
    /// use sinew_proto::nonce::Nonce;
    ///
    /// let table: Vec<EncodedEntry> = (1..=40u16)
    ///     .map(|port| PeerEntry { addr: ([10, 0, 0, 1], port).into(), health: Health::HEALTHY })
    ///     .map(|entry| EncodedEntry::new(&entry).unwrap())
    ///     .collect();
    /// let (mut start, mut pages) = (0, 0);
    /// while start < table.len() {
    ///     let mut buf = [0u8; 508];
    ///     let mut page = PeerTableWriter::new(&mut buf, Nonce::from_bytes([1; 16]), start as u16, 40)?;
    ///     start += page.extend_encoded(&table[start..]);
    ///     pages += 1;
    /// }
    /// assert_eq!(pages, 2); // 25 entries fit a page
    /// # Ok::<(), sinew_proto::Error>(())
    /// ```
    #[inline]
    pub fn extend_encoded(&mut self, entries: &[EncodedEntry]) -> usize {
        let free = core::mem::take(&mut self.free);
        let n = entries.len().min(free.len() / ENTRY_LEN);
        let Some((out, rest)) = free.split_at_mut_checked(n * ENTRY_LEN) else {
            return 0;
        };
        for (out, entry) in out.chunks_exact_mut(ENTRY_LEN).zip(entries) {
            out.copy_from_slice(&entry.raw);
        }
        self.free = rest;
        // n ≤ the room, which is at most MAX_ENTRIES_PER_PAGE entries.
        self.count = self.count.saturating_add(n as u8);
        n
    }

    /// Why no entry fits any more: the buffer, or the table's `total`.
    #[cold]
    fn full_error(&self) -> Error {
        if self.is_full() {
            Error::BufferTooSmall
        } else {
            Error::BadLength
        }
    }

    /// Whether no more entries fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.count >= self.capacity
    }

    /// Entries written so far.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether no entry was written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Completes the page and returns its length in bytes.
    #[inline]
    pub fn finish(self) -> usize {
        self.header[table::COUNT] = self.count;
        peer_table_len(usize::from(self.count))
    }
}

// ---------------------------------------------------------------------------------------------
// Any message
// ---------------------------------------------------------------------------------------------

/// Any datagram of the health protocol, parsed; tables stay borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// Kind 1.
    HealthRequest(Nonce),
    /// Kind 2.
    HealthResponse(Nonce),
    /// Kind 3.
    PeerTableRequest(PeerTableRequest),
    /// Kind 4.
    PeerTableResponse(PeerTableResponse<'a>),
}

impl<'a> Message<'a> {
    /// Parses any datagram of the protocol.
    ///
    /// # Errors
    /// [`Error::TooLarge`] above [`MAX_DATAGRAM_LEN`], [`Error::Truncated`] /
    /// [`Error::TrailingBytes`] when the length does not fit the kind,
    /// [`Error::UnsupportedVersion`], [`Error::UnknownType`], and the per-kind errors of
    /// [`HealthPacket::new_checked`], [`PeerTableRequest::parse`] and
    /// [`PeerTableResponse::parse`].
    #[inline]
    pub fn parse(datagram: &'a [u8]) -> Result<Message<'a>> {
        let (kind, header) = parse_header(datagram)?;
        match kind {
            MessageKind::HealthRequest | MessageKind::HealthResponse => {
                if datagram.len() != HEALTH_LEN {
                    return Err(Error::TrailingBytes);
                }
                Ok(if kind == MessageKind::HealthRequest {
                    Message::HealthRequest(header.nonce())
                } else {
                    Message::HealthResponse(header.nonce())
                })
            }
            MessageKind::PeerTableRequest => {
                PeerTableRequest::parse(datagram).map(Message::PeerTableRequest)
            }
            MessageKind::PeerTableResponse => {
                let page = PeerTableResponse::parse(datagram)?;
                page.validate()?;
                Ok(Message::PeerTableResponse(page))
            }
        }
    }

    /// The message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::HealthRequest(_) => MessageKind::HealthRequest,
            Message::HealthResponse(_) => MessageKind::HealthResponse,
            Message::PeerTableRequest(_) => MessageKind::PeerTableRequest,
            Message::PeerTableResponse(_) => MessageKind::PeerTableResponse,
        }
    }

    /// The message's nonce.
    pub fn nonce(&self) -> Nonce {
        match self {
            Message::HealthRequest(n) | Message::HealthResponse(n) => *n,
            Message::PeerTableRequest(r) => r.nonce,
            Message::PeerTableResponse(t) => t.nonce(),
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MessageKind::HealthRequest => "health request",
            MessageKind::HealthResponse => "health response",
            MessageKind::PeerTableRequest => "peer-table request",
            MessageKind::PeerTableResponse => "peer-table response",
        })
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for PeerEntry {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{} {}", defmt::Display2Format(&self.addr), self.health)
    }
}

#[cfg(test)]
mod tests;
