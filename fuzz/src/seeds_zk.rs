//! Seeds for the ZooKeeper and DHT targets (see `seeds.rs`): messages made with the crate's own
//! encoders and broken one field at a time, and, for the targets that read their input through
//! `arbitrary`, inputs found by the seed search.

use sinew_proto::dht::{self, Body, Header, NodeAddr, NodeId, NodeSet, Side};
use sinew_proto::zk::{
    Acl, ConnectRequest, ConnectResponse, Create2Response, CreateMode, CreateRequest, ErrorCode,
    EventType, GetChildren2Response, GetDataResponse, KeeperState, List, MultiOp, MultiResult,
    OpCode, PathVersionRequest, PathWatchRequest, Reply, ReplyBody, ReplyHeader, Request,
    RequestBody, SetDataRequest, SetWatches2, Stat, WatcherEvent, ZkStr,
};

use crate::seeds::{Goal, Seed, search};
use crate::{roundtrip_dht, roundtrip_zk, stream_zk, zk_session};

/// Every seed of these targets.
pub fn all() -> Vec<Seed> {
    let mut seeds = parse_zk_request();
    seeds.extend(parse_zk_reply());
    seeds.extend(parse_dht());
    seeds.extend(search(
        "roundtrip_zk",
        &ROUNDTRIP_ZK_GOALS,
        |data| Some(roundtrip_zk::check(data)),
        |s| {
            [s.requests, s.replies, s.handshakes, s.records]
                .map(u64::from)
                .to_vec()
        },
        0x2c,
        20_000,
    ));
    seeds.extend(search(
        "stream_zk",
        &STREAM_GOALS,
        |data| Some(stream_zk::check(data)),
        |s| vec![u64::from(s.frames), u64::from(s.partials)],
        0x57,
        20_000,
    ));
    seeds.extend(search(
        "zk_session",
        &SESSION_GOALS,
        zk_session::check,
        |s| {
            [
                s.submitted,
                s.connected,
                s.server_replies,
                s.local_failures,
                s.watches,
            ]
            .map(u64::from)
            .to_vec()
        },
        0x5e55,
        30_000,
    ));
    seeds.extend(search(
        "roundtrip_dht",
        &ROUNDTRIP_DHT_GOALS,
        |data| Some(roundtrip_dht::check(data)),
        |s| {
            [s.messages, s.lists, s.too_large, s.views]
                .map(u64::from)
                .to_vec()
        },
        0x5eed,
        100_000,
    ));
    seeds
}

/// The search goals, as `(target, name)`.
pub fn goals() -> Vec<(&'static str, &'static str)> {
    fn names<S>(target: &'static str, goals: &[Goal<S>]) -> Vec<(&'static str, &'static str)> {
        goals.iter().map(|(name, _, _)| (target, *name)).collect()
    }
    [
        names("roundtrip_zk", &ROUNDTRIP_ZK_GOALS),
        names("stream_zk", &STREAM_GOALS),
        names("zk_session", &SESSION_GOALS),
        names("roundtrip_dht", &ROUNDTRIP_DHT_GOALS),
    ]
    .concat()
}

const ROUNDTRIP_ZK_GOALS: [Goal<roundtrip_zk::Summary>; 3] = [
    ("requests", "requests round-tripped", |s| s.requests >= 3),
    ("replies", "replies round-tripped", |s| s.replies >= 3),
    (
        "mixed",
        "a request, a reply, a handshake and records",
        |s| s.requests > 0 && s.replies > 0 && s.handshakes > 0 && s.records > 0,
    ),
];

const STREAM_GOALS: [Goal<stream_zk::Summary>; 3] = [
    ("frames", "at least 3 frames out of fragments", |s| {
        s.frames >= 3 && s.partials >= 3
    }),
    (
        "refused-after-frames",
        "a bad length refused after a whole frame",
        |s| s.refused && s.frames > 0,
    ),
    ("refused", "a bad length refused", |s| s.refused),
];

const SESSION_GOALS: [Goal<zk_session::Summary>; 3] = [
    ("connected", "a handshake completed", |s| s.connected > 0),
    ("local-failures", "requests failed locally", |s| {
        s.local_failures > 0
    }),
    ("server-reply", "a request answered by the server", |s| {
        s.server_replies > 0
    }),
];

const ROUNDTRIP_DHT_GOALS: [Goal<roundtrip_dht::Summary>; 5] = [
    ("messages", "at least 4 messages round-tripped", |s| {
        s.messages >= 4
    }),
    ("lists", "a join or leave with nodes round-tripped", |s| {
        s.lists > 0
    }),
    ("too-large", "an encoding refused as too large", |s| {
        s.too_large > 0
    }),
    ("header-only", "a Challenge or an Echo round-tripped", |s| {
        s.header_only > 0
    }),
    ("view", "a View round-tripped", |s| s.views > 0),
];

fn seed(target: &'static str, name: &'static str, what: &str, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name,
        what: what.to_string(),
        bytes,
    }
}

fn request(xid: i32, body: RequestBody<'_>) -> Vec<u8> {
    let request = Request { xid, body };
    let mut buf = vec![0; request.encoded_len()];
    request.encode(&mut buf).unwrap();
    buf
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn with(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    let at = if at > bytes.len() { 0 } else { at };
    bytes[at..at + value.len()].copy_from_slice(value);
    bytes
}

fn get_data(path: &str, watch: bool) -> RequestBody<'_> {
    RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    })
}

fn stat() -> Stat {
    Stat {
        czxid: 3,
        mzxid: 9,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_500,
        version: 4,
        data_length: 100,
        pzxid: 3,
        ..Stat::default()
    }
}

const PATHS: [ZkStr<'static>; 2] = [ZkStr::new("/a"), ZkStr::new("/b")];

fn parse_zk_request() -> Vec<Seed> {
    let s = |name, what, bytes| seed("parse_zk_request", name, what, bytes);
    let get = request(1, get_data("/config", true));
    let create = request(
        2,
        RequestBody::Create(CreateRequest {
            path: ZkStr::new("/app/node"),
            data: Some(b"hello"),
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode: CreateMode::EphemeralSequential,
        }),
    );
    let ops = [
        MultiOp::Create(CreateRequest {
            path: ZkStr::new("/m"),
            data: None,
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode: CreateMode::Persistent,
        }),
        MultiOp::SetData(SetDataRequest {
            path: ZkStr::new("/m"),
            data: Some(b"v"),
            version: -1,
        }),
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::new("/m"),
            version: 1,
        }),
        MultiOp::Delete(PathVersionRequest {
            path: ZkStr::new("/m"),
            version: -1,
        }),
    ];
    let multi = request(3, RequestBody::Multi(List::from_slice(&ops)));
    let reads = [
        MultiOp::GetData(PathWatchRequest {
            path: ZkStr::new("/m"),
            watch: false,
        }),
        MultiOp::GetChildren(PathWatchRequest {
            path: ZkStr::new("/"),
            watch: false,
        }),
    ];
    let multi_read = request(4, RequestBody::MultiRead(List::from_slice(&reads)));
    let mixed = [ops[0], reads[0]];
    let mixed = request(5, RequestBody::Multi(List::from_slice(&mixed)));
    let watches = request(
        -8,
        RequestBody::SetWatches2(SetWatches2 {
            relative_zxid: 9,
            data_watches: List::from_slice(&PATHS),
            exist_watches: List::empty(),
            child_watches: List::from_slice(&PATHS[1..]),
            persistent_watches: List::null(),
            persistent_recursive_watches: List::empty(),
        }),
    );
    let connect = {
        let c = ConnectRequest::new_session(10_000);
        let mut buf = vec![0; c.encoded_len()];
        c.encode(&mut buf).unwrap();
        buf
    };
    let mut old_connect = connect.clone();
    old_connect.pop();
    let multi_end = multi.len() - 9;
    vec![
        s(
            "get-data",
            "getData /config with a watch (xid 1), unframed",
            get.clone(),
        ),
        s("get-data-framed", "the same in a frame", framed(&get)),
        s(
            "create",
            "create /app/node, data \"hello\", world:anyone ALL, ephemeral sequential",
            create.clone(),
        ),
        s(
            "multi",
            "multi: create, setData, check, delete of /m, framed",
            framed(&multi),
        ),
        s(
            "multi-read",
            "multiRead: getData /m, getChildren /",
            multi_read,
        ),
        s(
            "multi-mixed",
            "multi with a read op in it: UnexpectedOp",
            mixed,
        ),
        s(
            "multi-odd-end",
            "multi whose end header is {7, done 2, 0}: parses (done is all that counts), re-encodes as {-1, 1, -1}",
            with(multi.clone(), multi_end, &[0, 0, 0, 7, 2, 0, 0, 0, 0]),
        ),
        s(
            "set-watches2",
            "setWatches2 (xid -8) with data, child, null and empty lists",
            watches,
        ),
        s(
            "connect",
            "ConnectRequest for a new session (timeout 10 s, readOnly false), framed",
            framed(&connect),
        ),
        s(
            "connect-no-read-only",
            "ConnectRequest without the readOnly byte (before ZooKeeper 3.4)",
            old_connect,
        ),
        s(
            "connect-read-only-2",
            "ConnectRequest with readOnly byte 2: true, re-encoded as 1",
            with(connect, 44, &[2]),
        ),
        s(
            "watch-2",
            "getData with watch byte 2: true, re-encoded as 1",
            with(get.clone(), get.len() - 1, &[2]),
        ),
        s(
            "truncated",
            "create minus its last byte: Truncated",
            create[..create.len() - 1].to_vec(),
        ),
        s(
            "trailing",
            "getData with a trailing byte: TrailingBytes",
            [&get[..], &[0]].concat(),
        ),
        s(
            "bad-path-length",
            "getData whose path length is -2: BadLength",
            with(get.clone(), 8, &(-2i32).to_be_bytes()),
        ),
        s(
            "huge-path-length",
            "getData whose path length is 0x100000: TooLarge",
            with(get.clone(), 8, &0x10_0000i32.to_be_bytes()),
        ),
        s(
            "unknown-op",
            "op 999 with a 3-byte body: kept unparsed (Other)",
            with(request(7, RequestBody::Ping), 4, &999i32.to_be_bytes())
                .into_iter()
                .chain([1, 2, 3])
                .collect(),
        ),
        s(
            "frame-partial",
            "the framed getData minus its last byte: Partial",
            framed(&get)[..get.len() + 3].to_vec(),
        ),
        s(
            "frame-negative",
            "a frame length of -1: BadLength",
            [&[0xff; 4][..], &get].concat(),
        ),
        s(
            "frame-too-large",
            "a frame length of 0x100000: TooLarge",
            [&0x10_0000i32.to_be_bytes()[..], &get].concat(),
        ),
        s("empty", "no bytes", vec![]),
    ]
}

fn reply(op: OpCode, xid: i32, err: ErrorCode, body: ReplyBody<'_>) -> Vec<u8> {
    let reply = Reply {
        header: ReplyHeader { xid, zxid: 9, err },
        body,
    };
    let mut buf = op.to_i32().to_be_bytes().to_vec();
    let at = buf.len();
    buf.resize(at + reply.encoded_len(), 0);
    reply.encode(&mut buf[at..]).unwrap();
    buf
}

fn parse_zk_reply() -> Vec<Seed> {
    let s = |name, what, bytes| seed("parse_zk_reply", name, what, bytes);
    let data = [0x42u8; 100];
    let get = reply(
        OpCode::GetData,
        1,
        ErrorCode::Ok,
        ReplyBody::Data(GetDataResponse {
            data: Some(&data),
            stat: stat(),
        }),
    );
    let children = [ZkStr::new("a"), ZkStr::new("b"), ZkStr::new("")];
    let results = [
        MultiResult::Create(ZkStr::new("/m")),
        MultiResult::Delete,
        MultiResult::SetData(stat()),
        MultiResult::Error(ErrorCode::NoNode),
    ];
    let multi = reply(
        OpCode::Multi,
        3,
        ErrorCode::Ok,
        ReplyBody::Multi(List::from_slice(&results)),
    );
    let connect = {
        let c = ConnectResponse {
            protocol_version: 0,
            timeout: 6000,
            session_id: 0x1234,
            passwd: Some(&[7; 16]),
            read_only: Some(false),
        };
        let mut buf = vec![0; 4 + c.framed_len()];
        c.encode_framed(&mut buf[4..]).unwrap();
        buf
    };
    let error = reply(OpCode::GetData, 1, ErrorCode::NoNode, ReplyBody::Empty);
    let created = reply(
        OpCode::CreateContainer,
        4,
        ErrorCode::Ok,
        ReplyBody::Created(Create2Response {
            path: ZkStr::new("/c"),
            stat: stat(),
        }),
    );
    vec![
        s(
            "get-data",
            "op getData, then its reply: 100 bytes of data and a Stat",
            get.clone(),
        ),
        s(
            "get-data-framed",
            "op getData, then the same reply in a frame",
            [&get[..4], &framed(&get[4..])].concat(),
        ),
        s(
            "get-data-truncated",
            "the getData reply minus its Stat's last byte: Truncated",
            get[..get.len() - 1].to_vec(),
        ),
        s(
            "error",
            "op getData, then a NoNode reply (header only)",
            error.clone(),
        ),
        s(
            "error-with-body",
            "a NoNode reply with 5 bytes after its header: ignored",
            [&error[..], &[1, 2, 3, 4, 5]].concat(),
        ),
        s(
            "notification",
            "a watch notification (xid -1): NodeDataChanged /a",
            reply(
                OpCode::Notification,
                -1,
                ErrorCode::Ok,
                ReplyBody::Notification(WatcherEvent {
                    event_type: EventType::NodeDataChanged,
                    state: KeeperState::SyncConnected,
                    path: ZkStr::new("/a"),
                }),
            ),
        ),
        s(
            "ping",
            "op ping, then a ping reply (xid -2)",
            reply(OpCode::Ping, -2, ErrorCode::Ok, ReplyBody::Empty),
        ),
        s(
            "children2",
            "op getChildren2, then children a, b, \"\" and a Stat",
            reply(
                OpCode::GetChildren2,
                2,
                ErrorCode::Ok,
                ReplyBody::Children2(GetChildren2Response {
                    children: List::from_slice(&children),
                    stat: stat(),
                }),
            ),
        ),
        s(
            "multi",
            "op multi, then results create, delete, setData, error NoNode",
            multi.clone(),
        ),
        s(
            "multi-odd-end",
            "the multi reply with end header {7, done 2, 0}: parses, re-encodes as {-1, 1, -1}",
            with(multi.clone(), multi.len() - 9, &[0, 0, 0, 7, 2, 0, 0, 0, 0]),
        ),
        s(
            "create-container-trailing",
            "op createContainer, then path and Stat and 2 trailing bytes (ignored)",
            [&created[..], &[0, 0]].concat(),
        ),
        s(
            "connect",
            "op 0, then a framed ConnectResponse (timeout 6000, readOnly false)",
            connect,
        ),
        s(
            "unknown-op",
            "op 999, then a reply with a 3-byte body: kept unparsed (Other)",
            [
                &999i32.to_be_bytes()[..],
                &reply(OpCode::Ping, 5, ErrorCode::Ok, ReplyBody::Empty)[4..],
                &[1, 2, 3],
            ]
            .concat(),
        ),
        s(
            "bad-children-count",
            "op getChildren2 with a children count of -5: BadLength",
            with(
                reply(
                    OpCode::GetChildren2,
                    2,
                    ErrorCode::Ok,
                    ReplyBody::Children2(GetChildren2Response {
                        children: List::from_slice(&children),
                        stat: stat(),
                    }),
                ),
                20,
                &(-5i32).to_be_bytes(),
            ),
        ),
    ]
}

fn node(id: u8, addr: &str) -> NodeAddr {
    NodeAddr {
        id: NodeId([id; 16]),
        addr: addr.parse().unwrap(),
    }
}

fn message(body: Body<'_>) -> Vec<u8> {
    let message = dht::Message {
        header: Header {
            message_id: 0x0102_0304_0506_0708,
            sender: node(1, "10.0.0.1:7000"),
        },
        body,
    };
    let mut buf = vec![0; message.encoded_len()];
    message.encode(&mut buf).unwrap();
    buf
}

fn parse_dht() -> Vec<Seed> {
    let s = |name, what, bytes| seed("parse_dht", name, what, bytes);
    let key = [0x6b; 16];
    let value = [0x76; 100];
    let put = message(Body::Put {
        key: &key,
        value: &value,
    });
    let nodes = [node(2, "10.0.0.2:7001"), node(3, "[2001:db8::3]:7002")];
    let join = message(Body::Join {
        side: Side::Right,
        nodes: NodeSet::Slice(&nodes),
    });
    let h = dht::HEADER_LEN;
    let value_some = message(Body::Value {
        key: &key,
        value: Some(&value[..3]),
    });
    vec![
        s("put", "put: 16-byte key, 100-byte value", put.clone()),
        s(
            "get",
            "get of the 16-byte key",
            message(Body::Get { key: &key }),
        ),
        s(
            "value-none",
            "value: the key is not stored",
            message(Body::Value {
                key: &key,
                value: None,
            }),
        ),
        s("value-some", "value: 3 bytes", value_some.clone()),
        s(
            "lock",
            "lock (version 1) with token 9…9, lease 30 s",
            message(Body::Lock {
                key: &key,
                token: dht::LockToken([9; 16]),
                lease_ms: 30_000,
            }),
        ),
        s(
            "join",
            "join on the right: an IPv4 and an IPv6 node",
            join.clone(),
        ),
        s(
            "leave-empty",
            "leave with no nodes",
            message(Body::Leave {
                nodes: NodeSet::Slice(&[]),
            }),
        ),
        s(
            "error-unknown",
            "error with unknown code 77 (kept)",
            message(Body::Error {
                code: dht::ErrorCode::Unknown(77),
            }),
        ),
        s(
            "init-connect",
            "initConnect (header only)",
            message(Body::InitConnect),
        ),
        s(
            "bad-flag",
            "value with presence flag 2: BadValue",
            with(value_some, h + 1 + 16, &[2]),
        ),
        s(
            "bad-side",
            "join with side 2: BadValue",
            with(join.clone(), h, &[2]),
        ),
        s(
            "mapped-unspecified",
            "join whose first node is ::ffff:0.0.0.0: BadAddress",
            with(
                join.clone(),
                h + 2 + 16,
                &core::net::Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets(),
            ),
        ),
        s(
            "port-0",
            "join whose first node has port 0: BadAddress",
            with(join.clone(), h + 2 + 32, &[0, 0]),
        ),
        s(
            "too-many-nodes",
            "join stating 33 nodes: TooLarge",
            with(join, h + 1, &[33]),
        ),
        s(
            "truncated",
            "put minus its last byte: Truncated",
            put[..put.len() - 1].to_vec(),
        ),
        s(
            "trailing",
            "put with a trailing byte: TrailingBytes",
            [&put[..], &[0]].concat(),
        ),
        s(
            "bad-version",
            "put with version bits 1: UnsupportedVersion(1)",
            with(put.clone(), 0, &[0x23]),
        ),
        s(
            "unknown-type",
            "type byte 0: UnknownType",
            with(put, 0, &[0]),
        ),
        s("empty", "no bytes: Truncated", vec![]),
    ]
}
