//! Fixtures shared by the benches and the `instructions` example: the messages of the health,
//! ZooKeeper and DHT protocols, and their equivalents as plain structs for the serde-style
//! codecs they are compared with (bincode 2 through its own derive, postcard through serde).
//!
//! The `sinew_*` functions are the exact operations benchmarked, out of line so that
//! `valgrind --tool=callgrind` can count the instructions of each one alone.

use bincode::{BorrowDecode, Decode, Encode};
use serde::{Deserialize, Serialize};
use sinew_proto::dht::{Body, Header, Message, NodeAddr, NodeId, NodeSet, RelayedRequest};
use sinew_proto::health::{
    EncodedEntry, Health, HealthCheck, HealthKind, HealthPacket, PeerEntry, PeerTableResponse,
    PeerTableWriter,
};
use sinew_proto::nonce::Nonce;
use sinew_proto::zk::{
    Acl, CreateMode, CreateRequest, ErrorCode, GetChildren2Response, GetDataResponse, List, OpCode,
    Reply, ReplyBody, ReplyHeader, Request, RequestBody, Stat, ZkStr,
};

/// Entries in the benchmarked peer table.
pub const PEERS: usize = 20;

/// The nonce of every benchmarked message.
pub const NONCE: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

/// bincode 2's configuration: fixed-width integers, the fastest (varint costs a branch per
/// integer and saves nothing on these messages: one u8 and small u16s).
pub const BINCODE: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
> = bincode::config::standard().with_fixed_int_encoding();

/// bincode 2's default configuration (`config::standard()`: variable-length integers), which is
/// what a user gets without choosing; shown beside [`BINCODE`] where messages carry wide integers
/// (the ZooKeeper getData reply's `Stat`).
pub const BINCODE_STANDARD: bincode::config::Configuration = bincode::config::standard();

/// A health packet as a plain struct: type byte and nonce (17 bytes with every codec).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct HealthWire {
    /// Type byte: 1 request, 2 response.
    pub kind: u8,
    /// The nonce.
    pub nonce: [u8; 16],
}

/// A peer-table entry as a plain struct: 16-byte address, port, status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerWire {
    /// IPv6 address (IPv4-mapped for IPv4).
    pub addr: [u8; 16],
    /// UDP port.
    pub port: u16,
    /// Lives, 0..=3.
    pub status: u8,
}

/// A peer-table page as a plain struct, with the same header fields as sinew's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct PeerTableWire {
    /// Type byte (4).
    pub kind: u8,
    /// The request's nonce.
    pub nonce: [u8; 16],
    /// First entry's index.
    pub start: u16,
    /// Entries in the whole table.
    pub total: u16,
    /// This page's entries.
    pub peers: Vec<PeerWire>,
}

/// The benchmarked health packet.
pub fn health_check() -> HealthCheck {
    HealthCheck {
        kind: HealthKind::Request,
        nonce: Nonce::from_bytes(NONCE),
    }
}

/// The same packet for bincode and postcard.
pub fn health_wire() -> HealthWire {
    HealthWire {
        kind: 1,
        nonce: NONCE,
    }
}

/// The benchmarked table: [`PEERS`] IPv6 hosts (the address needs no IPv4 mapping, as the
/// 16 raw bytes of the serde structs need none).
pub fn peer_entries() -> Vec<PeerEntry> {
    (0..PEERS)
        .map(|i| PeerEntry {
            addr: format!("[2001:db8::{:x}]:{}", i + 1, 7000 + i)
                .parse()
                .unwrap(),
            health: Health::from_lives((i % 4) as u8).unwrap(),
        })
        .collect()
}

/// The same table for bincode and postcard.
pub fn peer_table_wire() -> PeerTableWire {
    let peers = peer_entries()
        .iter()
        .map(|e| {
            let std::net::IpAddr::V6(ip) = e.addr.ip() else {
                unreachable!("the fixture is IPv6")
            };
            PeerWire {
                addr: ip.octets(),
                port: e.addr.port(),
                status: e.health.lives(),
            }
        })
        .collect();
    PeerTableWire {
        kind: 4,
        nonce: NONCE,
        start: 0,
        total: PEERS as u16,
        peers,
    }
}

/// Encodes a health packet with sinew.
#[inline(never)]
pub fn sinew_health_encode(check: &HealthCheck, buf: &mut [u8]) -> usize {
    check.encode(buf).unwrap_or(0)
}

/// Validates a health packet and reads its nonce in place.
#[inline(never)]
pub fn sinew_health_decode_view(bytes: &[u8]) -> Option<u8> {
    let packet = HealthPacket::new_checked(bytes).ok()?;
    Some(packet.nonce_bytes()[15])
}

/// Parses a health packet into an owned [`HealthCheck`].
#[inline(never)]
pub fn sinew_health_decode(bytes: &[u8]) -> Option<HealthCheck> {
    HealthCheck::parse(bytes).ok()
}

/// Encodes a peer-table page with sinew.
#[inline(never)]
pub fn sinew_table_encode(entries: &[PeerEntry], buf: &mut [u8]) -> usize {
    let Ok(mut writer) =
        PeerTableWriter::new(buf, Nonce::from_bytes(NONCE), 0, entries.len() as u16)
    else {
        return 0;
    };
    for entry in entries {
        if writer.push(entry).is_err() {
            return 0;
        }
    }
    writer.finish()
}

/// Encodes a peer-table page with sinew from entries laid out beforehand ([`EncodedEntry`]).
#[inline(never)]
pub fn sinew_table_encode_encoded(entries: &[EncodedEntry], buf: &mut [u8]) -> usize {
    let Ok(mut writer) =
        PeerTableWriter::new(buf, Nonce::from_bytes(NONCE), 0, entries.len() as u16)
    else {
        return 0;
    };
    if writer.extend_encoded(entries) != entries.len() {
        return 0;
    }
    writer.finish()
}

/// Parses a peer-table page's structure (constant time), borrowing it.
#[inline(never)]
pub fn sinew_table_parse(bytes: &[u8]) -> Option<u8> {
    PeerTableResponse::parse(bytes)
        .ok()
        .map(|page| page.count())
}

/// Parses a peer-table page and walks every entry as a borrowed view, summing the ports.
#[inline(never)]
pub fn sinew_table_walk(bytes: &[u8]) -> u32 {
    match PeerTableResponse::parse(bytes) {
        Ok(page) => page.views().map(|e| u32::from(e.port())).sum(),
        Err(_) => 0,
    }
}

/// Parses a peer-table page and validates and decodes every entry (the equivalent of a serde
/// decode), summing the ports.
#[inline(never)]
pub fn sinew_table_decode(bytes: &[u8]) -> u32 {
    match PeerTableResponse::parse(bytes) {
        Ok(page) => page
            .entries()
            .map(|e| e.map_or(0, |e| u32::from(e.addr.port())))
            .sum(),
        Err(_) => 0,
    }
}

/// Encodes the health packet with bincode 2.
#[inline(never)]
pub fn bincode_health_encode(wire: &HealthWire, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE).unwrap_or(0)
}

/// Decodes the health packet with bincode 2.
#[inline(never)]
pub fn bincode_health_decode(bytes: &[u8]) -> Option<HealthWire> {
    bincode::decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

/// Encodes the health packet with postcard.
#[inline(never)]
pub fn postcard_health_encode(wire: &HealthWire, buf: &mut [u8]) -> usize {
    postcard::to_slice(wire, buf).map_or(0, |s| s.len())
}

/// Decodes the health packet with postcard.
#[inline(never)]
pub fn postcard_health_decode(bytes: &[u8]) -> Option<HealthWire> {
    postcard::from_bytes(bytes).ok()
}

/// Encodes the peer table with bincode 2.
#[inline(never)]
pub fn bincode_table_encode(table: &PeerTableWire, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(table, buf, BINCODE).unwrap_or(0)
}

/// Decodes the peer table with bincode 2 (into a `Vec`).
#[inline(never)]
pub fn bincode_table_decode(bytes: &[u8]) -> Option<PeerTableWire> {
    bincode::decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

/// Encodes the peer table with postcard.
#[inline(never)]
pub fn postcard_table_encode(table: &PeerTableWire, buf: &mut [u8]) -> usize {
    postcard::to_slice(table, buf).map_or(0, |s| s.len())
}

/// Decodes the peer table with postcard (into a `Vec`).
#[inline(never)]
pub fn postcard_table_decode(bytes: &[u8]) -> Option<PeerTableWire> {
    postcard::from_bytes(bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper
// ---------------------------------------------------------------------------------------------

/// Bytes of data in the benchmarked getData reply.
pub const ZK_DATA_LEN: usize = 100;
/// Children in the benchmarked getChildren2 reply.
pub const ZK_CHILDREN: usize = 100;

/// The data of the benchmarked getData reply.
pub static ZK_DATA: [u8; ZK_DATA_LEN] = [0x42; ZK_DATA_LEN];

/// The `Stat` of every benchmarked reply.
pub fn zk_stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0003,
        mzxid: 0x1_0000_0009,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 4,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: ZK_DATA_LEN as i32,
        num_children: 0,
        pzxid: 0x1_0000_0003,
    }
}

/// The benchmarked getData reply: header (xid 7, zxid, Ok), 100 bytes of data, a `Stat`.
pub fn zk_get_data_reply() -> Reply<'static> {
    Reply {
        header: ReplyHeader {
            xid: 7,
            zxid: 0x1_0000_0009,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Data(GetDataResponse {
            data: Some(&ZK_DATA),
            stat: zk_stat(),
        }),
    }
}

/// A `Stat` as a plain struct, field for field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct StatWire {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl From<Stat> for StatWire {
    fn from(s: Stat) -> StatWire {
        StatWire {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: s.data_length,
            num_children: s.num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A reply header as a plain struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ReplyHeaderWire {
    /// Request id.
    pub xid: i32,
    /// Last zxid.
    pub zxid: i64,
    /// Error code.
    pub err: i32,
}

/// A getData reply as a plain struct, borrowing its data as sinew does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, BorrowDecode)]
pub struct GetDataReplyWire<'a> {
    /// The header.
    pub header: ReplyHeaderWire,
    /// The data.
    #[serde(borrow)]
    pub data: &'a [u8],
    /// The node's `Stat`.
    pub stat: StatWire,
}

/// The benchmarked getData reply for bincode and postcard.
pub fn zk_get_data_wire() -> GetDataReplyWire<'static> {
    GetDataReplyWire {
        header: ReplyHeaderWire {
            xid: 7,
            zxid: 0x1_0000_0009,
            err: 0,
        },
        data: &ZK_DATA,
        stat: zk_stat().into(),
    }
}

/// The benchmarked create request: `/app/node-0000000042`, 100 bytes, world:anyone ALL,
/// persistent.
pub fn zk_create_request() -> Request<'static> {
    Request {
        xid: 8,
        body: RequestBody::Create(CreateRequest {
            path: ZkStr::new("/app/node-0000000042"),
            data: Some(&ZK_DATA),
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode: CreateMode::Persistent,
        }),
    }
}

/// An ACL entry as a plain struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, BorrowDecode)]
pub struct AclWire<'a> {
    /// Permission bits.
    pub perms: i32,
    /// Scheme.
    pub scheme: &'a str,
    /// Identity.
    pub id: &'a str,
}

/// A create request as a plain struct, borrowing path and data (the ACL is a `Vec`: serde
/// codecs cannot borrow a sequence of structs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, BorrowDecode)]
pub struct CreateRequestWire<'a> {
    /// Request id.
    pub xid: i32,
    /// Op code.
    pub op: i32,
    /// The node.
    pub path: &'a str,
    /// Its data.
    #[serde(borrow)]
    pub data: &'a [u8],
    /// Its ACL.
    #[serde(borrow)]
    pub acl: Vec<AclWire<'a>>,
    /// Create mode.
    pub flags: i32,
}

/// The benchmarked create request for bincode and postcard.
pub fn zk_create_wire() -> CreateRequestWire<'static> {
    CreateRequestWire {
        xid: 8,
        op: 1,
        path: "/app/node-0000000042",
        data: &ZK_DATA,
        acl: vec![AclWire {
            perms: 31,
            scheme: "world",
            id: "anyone",
        }],
        flags: 0,
    }
}

/// The children of the benchmarked getChildren2 reply: `node-0000000000` … `node-0000000099`.
pub fn zk_children() -> Vec<String> {
    (0..ZK_CHILDREN).map(|i| format!("node-{i:010}")).collect()
}

/// The benchmarked getChildren2 reply, encoded by sinew (a frame's payload).
pub fn zk_children2_bytes() -> Vec<u8> {
    let names = zk_children();
    let children: Vec<ZkStr<'_>> = names.iter().map(|n| ZkStr::new(n)).collect();
    let reply = Reply {
        header: ReplyHeader {
            xid: 9,
            zxid: 0x1_0000_0009,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Children2(GetChildren2Response {
            children: List::from_slice(&children),
            stat: zk_stat(),
        }),
    };
    let mut buf = vec![0; reply.encoded_len()];
    reply.encode(&mut buf).unwrap();
    buf
}

/// A getChildren2 reply as a plain struct: the names as owned `String`s, as a serde codec
/// gives them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Children2Wire {
    /// The header.
    pub header: ReplyHeaderWire,
    /// The children's names.
    pub children: Vec<String>,
    /// The parent's `Stat`.
    pub stat: StatWire,
}

/// The benchmarked getChildren2 reply for bincode and postcard.
pub fn zk_children2_wire() -> Children2Wire {
    Children2Wire {
        header: ReplyHeaderWire {
            xid: 9,
            zxid: 0x1_0000_0009,
            err: 0,
        },
        children: zk_children(),
        stat: zk_stat().into(),
    }
}

/// Encodes the getData reply with sinew.
#[inline(never)]
pub fn sinew_zk_data_encode(reply: &Reply<'_>, buf: &mut [u8]) -> usize {
    reply.encode(buf).unwrap_or(0)
}

/// Parses a getData reply with sinew, borrowing the data.
#[inline(never)]
pub fn sinew_zk_data_decode(bytes: &[u8]) -> Option<Reply<'_>> {
    Reply::parse(OpCode::GetData, bytes).ok()
}

/// Encodes the getData reply with bincode 2.
#[inline(never)]
pub fn bincode_zk_data_encode(wire: &GetDataReplyWire<'_>, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE).unwrap_or(0)
}

/// Decodes the getData reply with bincode 2, borrowing the data.
#[inline(never)]
pub fn bincode_zk_data_decode(bytes: &[u8]) -> Option<GetDataReplyWire<'_>> {
    bincode::borrow_decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

/// The getData reply written as `shared/reference/performance.md`'s limit-style code does it:
/// one length check, then every field with `to_be_bytes` at a fixed offset and the data copied
/// once, nothing else (no jute length limit, no error for a short buffer beyond returning 0). A
/// calibration row: what "at the limit" costs on this machine in the same run.
#[inline(never)]
pub fn limit_zk_data_encode(wire: &GetDataReplyWire<'_>, buf: &mut [u8]) -> usize {
    let n = wire.data.len();
    let len = 20 + n + 68;
    let Some(out) = buf.get_mut(..len) else {
        return 0;
    };
    let (head, rest) = out.split_at_mut(20);
    head[0..4].copy_from_slice(&wire.header.xid.to_be_bytes());
    head[4..12].copy_from_slice(&wire.header.zxid.to_be_bytes());
    head[12..16].copy_from_slice(&wire.header.err.to_be_bytes());
    head[16..20].copy_from_slice(&(n as i32).to_be_bytes());
    let (data, stat) = rest.split_at_mut(n);
    data.copy_from_slice(wire.data);
    let s = &wire.stat;
    stat[0..8].copy_from_slice(&s.czxid.to_be_bytes());
    stat[8..16].copy_from_slice(&s.mzxid.to_be_bytes());
    stat[16..24].copy_from_slice(&s.ctime.to_be_bytes());
    stat[24..32].copy_from_slice(&s.mtime.to_be_bytes());
    stat[32..36].copy_from_slice(&s.version.to_be_bytes());
    stat[36..40].copy_from_slice(&s.cversion.to_be_bytes());
    stat[40..44].copy_from_slice(&s.aversion.to_be_bytes());
    stat[44..52].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    stat[52..56].copy_from_slice(&s.data_length.to_be_bytes());
    stat[56..60].copy_from_slice(&s.num_children.to_be_bytes());
    stat[60..68].copy_from_slice(&s.pzxid.to_be_bytes());
    len
}

/// Encodes the getData reply with bincode 2's default configuration (variable-length integers).
#[inline(never)]
pub fn bincode_standard_zk_data_encode(wire: &GetDataReplyWire<'_>, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE_STANDARD).unwrap_or(0)
}

/// Decodes the getData reply with bincode 2's default configuration, borrowing the data.
#[inline(never)]
pub fn bincode_standard_zk_data_decode(bytes: &[u8]) -> Option<GetDataReplyWire<'_>> {
    bincode::borrow_decode_from_slice(bytes, BINCODE_STANDARD)
        .ok()
        .map(|(w, _)| w)
}

/// Encodes the getData reply with postcard.
#[inline(never)]
pub fn postcard_zk_data_encode(wire: &GetDataReplyWire<'_>, buf: &mut [u8]) -> usize {
    postcard::to_slice(wire, buf).map_or(0, |s| s.len())
}

/// Decodes the getData reply with postcard, borrowing the data.
#[inline(never)]
pub fn postcard_zk_data_decode(bytes: &[u8]) -> Option<GetDataReplyWire<'_>> {
    postcard::from_bytes(bytes).ok()
}

// ---------------------------------------------------------------------------------------------
// DHT
// ---------------------------------------------------------------------------------------------

/// The key of the benchmarked put.
pub static DHT_KEY: [u8; 16] = [0x6b; 16];

/// The sender of every benchmarked DHT message.
pub fn dht_sender() -> NodeAddr {
    NodeAddr {
        id: NodeId([0x11; 16]),
        addr: "[2001:db8::1]:7000".parse().unwrap(),
    }
}

/// The benchmarked put: a 16-byte key and a 100-byte value.
pub fn dht_put() -> Message<'static> {
    Message {
        header: Header {
            message_id: 0x0102_0304_0506_0708,
            sender: dht_sender(),
        },
        body: Body::Put {
            key: &DHT_KEY,
            value: &ZK_DATA,
        },
    }
}

/// [`dht_put`] as a node forwards it toward the key's owner: a Relayed carrying the put, with
/// 175 ms of budget left and the client it entered from as its origin (37 bytes more).
pub fn dht_relayed_put() -> Message<'static> {
    Message {
        header: Header {
            message_id: 0x0102_0304_0506_0709,
            sender: dht_sender(),
        },
        body: Body::Relayed {
            budget_ms: 175,
            origin: dht_sender(),
            request: RelayedRequest::Put {
                key: &DHT_KEY,
                value: &ZK_DATA,
            },
        },
    }
}

/// A put as a plain struct with sinew's fields, borrowing key and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, BorrowDecode)]
pub struct PutWire<'a> {
    /// Type byte.
    pub kind: u8,
    /// Message id.
    pub message_id: u64,
    /// Sender's id.
    pub sender_id: [u8; 16],
    /// Sender's address (IPv6 or IPv4-mapped).
    pub sender_addr: [u8; 16],
    /// Sender's port.
    pub sender_port: u16,
    /// The key.
    pub key: &'a [u8],
    /// The value.
    #[serde(borrow)]
    pub value: &'a [u8],
}

/// The benchmarked put for bincode and postcard.
pub fn dht_put_wire() -> PutWire<'static> {
    let sender = dht_sender();
    let std::net::IpAddr::V6(ip) = sender.addr.ip() else {
        unreachable!("the fixture is IPv6")
    };
    PutWire {
        kind: 3,
        message_id: 0x0102_0304_0506_0708,
        sender_id: sender.id.0,
        sender_addr: ip.octets(),
        sender_port: sender.addr.port(),
        key: &DHT_KEY,
        value: &ZK_DATA,
    }
}

/// Nodes on each side of the benchmarked View: full, as a settled node's view is.
pub const VIEW_SIDE: usize = sinew_proto::dht::VIEW_SIDE;

/// The nodes of the benchmarked View: `VIEW_SIDE` predecessors, then `VIEW_SIDE` successors,
/// each with its own id and an IPv6 address (ports 7001 up).
pub fn dht_view_nodes() -> [NodeAddr; 2 * VIEW_SIDE] {
    core::array::from_fn(|i| NodeAddr {
        id: NodeId([0x20 + i as u8; 16]),
        addr: std::net::SocketAddr::new(
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                2 + i as u16,
            )),
            7001 + i as u16,
        ),
    })
}

/// The benchmarked View (kind 22): a node's leaf set, `VIEW_SIDE` nodes a side, as a one-hop
/// client receives it (453 bytes).
pub fn dht_view(nodes: &[NodeAddr; 2 * VIEW_SIDE]) -> Message<'_> {
    Message {
        header: Header {
            message_id: 0x0102_0304_0506_070a,
            sender: dht_sender(),
        },
        body: Body::View {
            left: NodeSet::Slice(&nodes[..VIEW_SIDE]),
            right: NodeSet::Slice(&nodes[VIEW_SIDE..]),
        },
    }
}

/// The benchmarked ViewRequest (kind 21): a header and nothing else (43 bytes).
pub fn dht_view_request() -> Message<'static> {
    Message {
        header: Header {
            message_id: 0x0102_0304_0506_070b,
            sender: dht_sender(),
        },
        body: Body::ViewRequest,
    }
}

/// The benchmarked Withheld (kind 23): the id of the request whose answer is withheld, and
/// the cookie to echo (51 bytes).
pub fn dht_withheld() -> Message<'static> {
    Message {
        header: Header {
            message_id: 0x0102_0304_0506_070c,
            sender: dht_sender(),
        },
        body: Body::Withheld {
            cookie: 0x8877_6655_4433_2211,
        },
    }
}

/// The sum of the ports of a View's nodes: what a decode bench does with the nodes, so that
/// every codec reads each one.
#[inline(never)]
pub fn sinew_view_walk(bytes: &[u8]) -> u32 {
    match Message::parse(bytes) {
        Ok(Message {
            body: Body::View { left, right },
            ..
        }) => left
            .iter()
            .chain(right.iter())
            .map(|n| u32::from(n.addr.port()))
            .sum(),
        _ => 0,
    }
}

/// A node as a plain struct: id, IPv6 (or IPv4-mapped) address, port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct NodeWire {
    /// Its id.
    pub id: [u8; 16],
    /// Its address.
    pub addr: [u8; 16],
    /// Its port.
    pub port: u16,
}

impl NodeWire {
    fn of(node: NodeAddr) -> NodeWire {
        let ip = match node.addr.ip() {
            std::net::IpAddr::V6(ip) => ip,
            std::net::IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        };
        NodeWire {
            id: node.id.0,
            addr: ip.octets(),
            port: node.addr.port(),
        }
    }
}

/// A View as a plain struct with sinew's fields. The sides are fixed arrays of `VIEW_SIDE`
/// (the peers then need no allocation and no length, which sinew's format carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ViewWire {
    /// Type byte.
    pub kind: u8,
    /// Message id.
    pub message_id: u64,
    /// The sender.
    pub sender: NodeWire,
    /// Its predecessors, nearest first.
    pub left: [NodeWire; VIEW_SIDE],
    /// Its successors, nearest first.
    pub right: [NodeWire; VIEW_SIDE],
}

impl ViewWire {
    /// The sum of the ports of its nodes (as [`sinew_view_walk`]).
    pub fn ports(&self) -> u32 {
        self.left
            .iter()
            .chain(self.right.iter())
            .map(|n| u32::from(n.port))
            .sum()
    }
}

/// [`dht_view`] for bincode and postcard.
pub fn dht_view_wire(nodes: &[NodeAddr; 2 * VIEW_SIDE]) -> ViewWire {
    ViewWire {
        kind: 22,
        message_id: 0x0102_0304_0506_070a,
        sender: NodeWire::of(dht_sender()),
        left: core::array::from_fn(|i| NodeWire::of(nodes[i])),
        right: core::array::from_fn(|i| NodeWire::of(nodes[VIEW_SIDE + i])),
    }
}

/// A header-only message (ViewRequest) or a Withheld as a plain struct: a Withheld's cookie
/// is `Some`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ShortWire {
    /// Type byte.
    pub kind: u8,
    /// Message id.
    pub message_id: u64,
    /// The sender.
    pub sender: NodeWire,
    /// A Withheld's cookie.
    pub cookie: u64,
}

/// [`dht_view_request`] for bincode and postcard (cookie 0: sinew's ViewRequest has none).
pub fn dht_view_request_wire() -> ShortWire {
    ShortWire {
        kind: 21,
        message_id: 0x0102_0304_0506_070b,
        sender: NodeWire::of(dht_sender()),
        cookie: 0,
    }
}

/// [`dht_withheld`] for bincode and postcard.
pub fn dht_withheld_wire() -> ShortWire {
    ShortWire {
        kind: 23,
        message_id: 0x0102_0304_0506_070c,
        sender: NodeWire::of(dht_sender()),
        cookie: 0x8877_6655_4433_2211,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relayed_put_is_the_put_and_37_bytes() {
        let (put, relayed) = (dht_put(), dht_relayed_put());
        assert_eq!(relayed.encoded_len(), put.encoded_len() + 37);
        let mut buf = [0u8; 512];
        let n = relayed.encode(&mut buf).unwrap();
        assert_eq!(Message::parse(&buf[..n]), Ok(relayed));
    }

    #[test]
    fn view_withheld_and_view_request_fixtures_agree() {
        let nodes = dht_view_nodes();
        let view = dht_view(&nodes);
        let mut buf = [0u8; 512];
        let n = view.encode(&mut buf).unwrap();
        assert_eq!(n, 453);
        let ports: u32 = (7001..7001 + 2 * VIEW_SIDE as u32).sum();
        assert_eq!(sinew_view_walk(&buf[..n]), ports);
        let wire = dht_view_wire(&nodes);
        assert_eq!(wire.ports(), ports);
        let m = bincode::encode_into_slice(wire, &mut buf, BINCODE).unwrap();
        let (back, _): (ViewWire, usize) = bincode::decode_from_slice(&buf[..m], BINCODE).unwrap();
        assert_eq!(back, wire);
        let m = postcard::to_slice(&wire, &mut buf).unwrap().len();
        assert_eq!(postcard::from_bytes::<ViewWire>(&buf[..m]).unwrap(), wire);
        for (message, wire, len) in [
            (dht_view_request(), dht_view_request_wire(), 43),
            (dht_withheld(), dht_withheld_wire(), 51),
        ] {
            let n = message.encode(&mut buf).unwrap();
            assert_eq!(n, len);
            assert_eq!(Message::parse(&buf[..n]), Ok(message));
            let m = bincode::encode_into_slice(wire, &mut buf, BINCODE).unwrap();
            let (back, _): (ShortWire, usize) =
                bincode::decode_from_slice(&buf[..m], BINCODE).unwrap();
            assert_eq!(back, wire);
            let m = postcard::to_slice(&wire, &mut buf).unwrap().len();
            assert_eq!(postcard::from_bytes::<ShortWire>(&buf[..m]).unwrap(), wire);
        }
    }

    #[test]
    fn fixtures_agree() {
        let mut buf = [0u8; 508];
        let len = sinew_health_encode(&health_check(), &mut buf);
        assert_eq!(len, 17);
        let wire = health_wire();
        let mut other = [0u8; 64];
        assert_eq!(
            bincode::encode_into_slice(wire, &mut other, BINCODE).unwrap(),
            17
        );
        assert_eq!(&other[..17], &buf[..17]);
        assert_eq!(postcard::to_slice(&wire, &mut other).unwrap(), &buf[..17]);
        assert_eq!(sinew_health_decode_view(&buf[..17]), Some(0xff));
        assert_eq!(sinew_health_decode(&buf[..17]), Some(health_check()));

        let entries = peer_entries();
        let len = sinew_table_encode(&entries, &mut buf);
        assert_eq!(len, 22 + 19 * PEERS);
        assert_eq!(sinew_table_parse(&buf[..len]), Some(PEERS as u8));
        let ports: u32 = (0..PEERS as u32).map(|i| 7000 + i).sum();
        assert_eq!(sinew_table_walk(&buf[..len]), ports);
        let table = peer_table_wire();
        let mut big = [0u8; 1024];
        let n = bincode::encode_into_slice(&table, &mut big, BINCODE).unwrap();
        let (back, _): (PeerTableWire, usize) =
            bincode::decode_from_slice(&big[..n], BINCODE).unwrap();
        assert_eq!(back, table);
        let n = postcard::to_slice(&table, &mut big).unwrap().len();
        assert_eq!(
            postcard::from_bytes::<PeerTableWire>(&big[..n]).unwrap(),
            table
        );
    }

    #[test]
    fn zk_and_dht_fixtures_agree() {
        let mut buf = [0u8; 4096];
        let reply = zk_get_data_reply();
        let len = sinew_zk_data_encode(&reply, &mut buf);
        assert_eq!(len, 16 + 4 + ZK_DATA_LEN + 68);
        assert_eq!(sinew_zk_data_decode(&buf[..len]), Some(reply));
        let wire = zk_get_data_wire();
        let n = bincode_zk_data_encode(&wire, &mut buf);
        assert_eq!(bincode_zk_data_decode(&buf[..n]), Some(wire));
        let n = postcard_zk_data_encode(&wire, &mut buf);
        assert_eq!(postcard_zk_data_decode(&buf[..n]), Some(wire));

        let bytes = zk_children2_bytes();
        let Ok(Reply {
            body: ReplyBody::Children2(r),
            ..
        }) = Reply::parse(OpCode::GetChildren2, &bytes)
        else {
            panic!("children2 does not parse")
        };
        let names: Vec<String> = r
            .children
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, zk_children());

        let create = zk_create_request();
        let n = create.encode(&mut buf).unwrap();
        assert_eq!(n, 167);
        assert_eq!(Request::parse(&buf[..n]), Ok(create));
        assert_eq!(bytes.len(), 1988);

        let put = dht_put();
        let n = put.encode(&mut buf).unwrap();
        assert_eq!(n, 43 + 1 + 16 + 2 + 100);
        assert_eq!(Message::parse(&buf[..n]), Ok(put));
        let wire = dht_put_wire();
        let n = bincode::encode_into_slice(wire, &mut buf, BINCODE).unwrap();
        let (back, _): (PutWire<'_>, usize) =
            bincode::borrow_decode_from_slice(&buf[..n], BINCODE).unwrap();
        assert_eq!(back, wire);
        let n = postcard::to_slice(&wire, &mut buf).unwrap().len();
        assert_eq!(
            postcard::from_bytes::<PutWire<'_>>(&buf[..n]).unwrap(),
            wire
        );
    }
}
