//! Tests of the jute codec: hand-annotated byte vectors, every strict prefix, bad lengths,
//! unknown codes, the frame decoder on split streams, and property round trips.

use std::format;
use std::string::ToString;
use std::vec::Vec;

use super::*;
use crate::Error;

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

/// A new-session handshake as the Java client sends it (45 bytes, no frame length).
static CONNECT_REQUEST: [u8; 45] = [
    0x00, 0x00, 0x00, 0x00, // protocolVersion 0
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // lastZxidSeen 0
    0x00, 0x00, 0x75, 0x30, // timeOut 30000 ms
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sessionId 0: a new session
    0x00, 0x00, 0x00, 0x10, // passwd: 16 bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // passwd, first half
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // passwd, second half
    0x00, // readOnly false
];

/// The server's answer (37 bytes; 36 without the readOnly byte).
static CONNECT_RESPONSE: [u8; 37] = [
    0x00, 0x00, 0x00, 0x00, // protocolVersion 0
    0x00, 0x00, 0x4e, 0x20, // timeOut 20000 ms (clamped by the server)
    0x01, 0x00, 0x00, 0x8a, 0x3c, 0x5e, 0x00, 0x07, // sessionId 0x0100008a3c5e0007
    0x00, 0x00, 0x00, 0x10, // passwd: 16 bytes
    0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, // passwd, first half
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xa5, // passwd, second half
    0x00, // readOnly false
];

static PASSWD: [u8; 16] = [
    0x5a, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xa5,
];

/// getData("/a/b", watch) with xid 1 (frame payload).
static GET_DATA_REQUEST: [u8; 17] = [
    0x00, 0x00, 0x00, 0x01, // xid 1
    0x00, 0x00, 0x00, 0x04, // type 4: getData
    0x00, 0x00, 0x00, 0x04, b'/', b'a', b'/', b'b', // path "/a/b"
    0x01, // watch true
];

/// A Stat with a different value in every field.
static STAT: [u8; 68] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // czxid 2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, // mzxid 41
    0x00, 0x00, 0x01, 0x8c, 0x6f, 0x3e, 0x9a, 0x00, // ctime 1702000000000 + ...
    0x00, 0x00, 0x01, 0x8c, 0x6f, 0x3e, 0x9b, 0x00, // mtime
    0x00, 0x00, 0x00, 0x03, // version 3
    0x00, 0x00, 0x00, 0x04, // cversion 4
    0x00, 0x00, 0x00, 0x05, // aversion 5
    0x01, 0x00, 0x00, 0x8a, 0x3c, 0x5e, 0x00, 0x07, // ephemeralOwner: a session id
    0x00, 0x00, 0x00, 0x05, // dataLength 5
    0x00, 0x00, 0x00, 0x06, // numChildren 6
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, // pzxid 40
];

fn stat() -> Stat {
    Stat {
        czxid: 2,
        mzxid: 41,
        ctime: 0x018c_6f3e_9a00,
        mtime: 0x018c_6f3e_9b00,
        version: 3,
        cversion: 4,
        aversion: 5,
        ephemeral_owner: 0x0100_008a_3c5e_0007,
        data_length: 5,
        num_children: 6,
        pzxid: 40,
    }
}

/// The reply to GET_DATA_REQUEST, before its Stat.
static GET_DATA_REPLY_HEAD: [u8; 25] = [
    0x00, 0x00, 0x00, 0x01, // xid 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // zxid 42
    0x00, 0x00, 0x00, 0x00, // err 0
    0x00, 0x00, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', // data "hello"
]; // then STAT

/// create("/node", "hi", OPEN_ACL_UNSAFE, ephemeral) with xid 2.
static CREATE_REQUEST: [u8; 54] = [
    0x00, 0x00, 0x00, 0x02, // xid 2
    0x00, 0x00, 0x00, 0x01, // type 1: create
    0x00, 0x00, 0x00, 0x05, b'/', b'n', b'o', b'd', b'e', // path "/node"
    0x00, 0x00, 0x00, 0x02, b'h', b'i', // data "hi"
    0x00, 0x00, 0x00, 0x01, // acl: 1 entry
    0x00, 0x00, 0x00, 0x1f, // perms: ALL
    0x00, 0x00, 0x00, 0x05, b'w', b'o', b'r', b'l', b'd', // scheme "world"
    0x00, 0x00, 0x00, 0x06, b'a', b'n', b'y', b'o', b'n', b'e', // id "anyone"
    0x00, 0x00, 0x00, 0x01, // flags 1: ephemeral
];

/// The reply to getChildren2 with xid 3, before its Stat.
static GET_CHILDREN2_REPLY_HEAD: [u8; 31] = [
    0x00, 0x00, 0x00, 0x03, // xid 3
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // zxid 42
    0x00, 0x00, 0x00, 0x00, // err 0
    0x00, 0x00, 0x00, 0x02, // children: 2
    0x00, 0x00, 0x00, 0x01, b'a', // "a"
    0x00, 0x00, 0x00, 0x02, b'b', b'c', // "bc"
]; // then STAT

/// multi(create "/x", delete "/y" any version, check "/z" version 7) with xid 4.
static MULTI_REQUEST: [u8; 105] = [
    0x00, 0x00, 0x00, 0x04, // xid 4
    0x00, 0x00, 0x00, 0x0e, // type 14: multi
    0x00, 0x00, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, // MultiHeader{create, false, -1}
    0x00, 0x00, 0x00, 0x02, b'/', b'x', // path "/x"
    0x00, 0x00, 0x00, 0x00, // data: empty
    0x00, 0x00, 0x00, 0x01, // acl: 1 entry
    0x00, 0x00, 0x00, 0x1f, // perms: ALL
    0x00, 0x00, 0x00, 0x05, b'w', b'o', b'r', b'l', b'd', // scheme "world"
    0x00, 0x00, 0x00, 0x06, b'a', b'n', b'y', b'o', b'n', b'e', // id "anyone"
    0x00, 0x00, 0x00, 0x00, // flags 0: persistent
    0x00, 0x00, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0xff, // MultiHeader{delete, false, -1}
    0x00, 0x00, 0x00, 0x02, b'/', b'y', // path "/y"
    0xff, 0xff, 0xff, 0xff, // version -1: any
    0x00, 0x00, 0x00, 0x0d, 0x00, 0xff, 0xff, 0xff, 0xff, // MultiHeader{check, false, -1}
    0x00, 0x00, 0x00, 0x02, b'/', b'z', // path "/z"
    0x00, 0x00, 0x00, 0x07, // version 7
    0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, // MultiHeader{-1, true, -1}: end
];

/// MULTI_REQUEST's reply when the delete fails with NoNode: the transaction is aborted.
static ABORTED_MULTI_REPLY: [u8; 64] = [
    0x00, 0x00, 0x00, 0x04, // xid 4
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2b, // zxid 43: failed writes use a zxid too
    0x00, 0x00, 0x00, 0x00, // err 0: an aborted multi is a successful reply
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, // MultiHeader{error, false, 0}
    0x00, 0x00, 0x00, 0x00, // ErrorResponse 0: the create would have succeeded
    0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0x9b, // MultiHeader{error, false, -101}
    0xff, 0xff, 0xff, 0x9b, // ErrorResponse -101: NoNode, the failing op
    0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xfe, // MultiHeader{error, false, -2}
    0xff, 0xff, 0xff, 0xfe, // ErrorResponse -2: RuntimeInconsistency, not tried
    0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, // MultiHeader{-1, true, -1}: end
];

/// A watch notification as ZooKeeper 3.8 sends it.
static NOTIFICATION: [u8; 30] = [
    0xff, 0xff, 0xff, 0xff, // xid -1: notification
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // zxid -1 (3.9+ send the real one)
    0x00, 0x00, 0x00, 0x00, // err 0
    0x00, 0x00, 0x00, 0x03, // type 3: NodeDataChanged
    0x00, 0x00, 0x00, 0x03, // state 3: SyncConnected
    0x00, 0x00, 0x00, 0x02, b'/', b'a', // path "/a"
];

/// setWatches2 after a reconnect, xid -8.
static SET_WATCHES2: [u8; 60] = [
    0xff, 0xff, 0xff, 0xf8, // xid -8
    0x00, 0x00, 0x00, 0x69, // type 105: setWatches2
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // relativeZxid 42
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'/', b'a', // dataWatches ["/a"]
    0x00, 0x00, 0x00, 0x00, // existWatches []
    0x00, 0x00, 0x00, 0x02, // childWatches: 2
    0x00, 0x00, 0x00, 0x02, b'/', b'b', // "/b"
    0x00, 0x00, 0x00, 0x02, b'/', b'c', // "/c"
    0x00, 0x00, 0x00, 0x00, // persistentWatches []
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, b'/',
    b'r', // persistentRecursiveWatches ["/r"]
];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn get_data_reply() -> Vec<u8> {
    cat(&[&GET_DATA_REPLY_HEAD, &STAT])
}

fn get_children2_reply() -> Vec<u8> {
    cat(&[&GET_CHILDREN2_REPLY_HEAD, &STAT])
}

fn strs<'a>(list: List<'a, ZkStr<'a>>) -> Vec<&'a str> {
    list.iter().map(|s| s.as_str().unwrap()).collect()
}

/// Encodes with `encode` into a buffer pre-filled with 0xa5 and one byte longer than needed;
/// checks the length, that the extra byte is untouched, and that every shorter buffer is
/// refused.
fn emit(len: usize, encode: impl Fn(&mut [u8]) -> crate::Result<usize>) -> Vec<u8> {
    let mut buf = std::vec![0xa5; len + 1];
    assert_eq!(encode(&mut buf), Ok(len));
    assert_eq!(buf[len], 0xa5, "encode wrote past its length");
    for short in 0..len {
        let mut small = std::vec![0xa5; short];
        assert_eq!(
            encode(&mut small),
            Err(Error::BufferTooSmall),
            "{short} bytes"
        );
    }
    buf.truncate(len);
    buf
}

/// Every strict prefix of `bytes` must be refused as truncated.
fn assert_prefixes_truncated<'a, T: core::fmt::Debug>(
    bytes: &'a [u8],
    parse: impl Fn(&'a [u8]) -> crate::Result<T>,
) {
    for len in 0..bytes.len() {
        let result = parse(&bytes[..len]);
        assert!(
            matches!(result, Err(Error::Truncated)),
            "prefix of {len} of {} bytes: {result:?}",
            bytes.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn test_parse_connect_request() {
    let request = ConnectRequest::parse(&CONNECT_REQUEST).unwrap();
    assert_eq!(request.protocol_version, 0);
    assert_eq!(request.last_zxid_seen, 0);
    assert_eq!(request.timeout, 30_000);
    assert_eq!(request.session_id, 0);
    assert_eq!(request.passwd, Some(&[0u8; 16][..]));
    assert_eq!(request.read_only, Some(false));
    assert_eq!(request, ConnectRequest::new_session(30_000));

    // Without the readOnly byte (clients before 3.4).
    let old = ConnectRequest::parse(&CONNECT_REQUEST[..44]).unwrap();
    assert_eq!(old.read_only, None);
    assert_eq!(old.encoded_len(), 44);

    assert_prefixes_truncated(&CONNECT_REQUEST[..44], ConnectRequest::parse);
    assert_eq!(
        ConnectRequest::parse(&cat(&[&CONNECT_REQUEST, &[0]])),
        Err(Error::TrailingBytes)
    );
}

#[test]
fn test_emit_connect_request() {
    let request = ConnectRequest::new_session(30_000);
    let bytes = emit(45, |buf| request.encode(buf));
    assert_eq!(bytes, CONNECT_REQUEST);
    let framed = emit(49, |buf| request.encode_framed(buf));
    assert_eq!(framed[..4], [0, 0, 0, 45]);
    assert_eq!(framed[4..], CONNECT_REQUEST);
    assert_eq!(request.framed_len(), 49);
}

#[test]
fn test_parse_connect_response() {
    let response = ConnectResponse::parse(&CONNECT_RESPONSE).unwrap();
    let expected = ConnectResponse {
        protocol_version: 0,
        timeout: 20_000,
        session_id: 0x0100_008a_3c5e_0007,
        passwd: Some(&PASSWD),
        read_only: Some(false),
    };
    assert_eq!(response, expected);
    assert!(!response.is_expired());
    assert_eq!(emit(37, |buf| expected.encode(buf)), CONNECT_RESPONSE);

    // 36 bytes: the answer to a request without readOnly.
    let short = ConnectResponse::parse(&CONNECT_RESPONSE[..36]).unwrap();
    assert_eq!(short.read_only, None);
    let expected36 = ConnectResponse {
        read_only: None,
        ..expected
    };
    assert_eq!(
        emit(36, |buf| expected36.encode(buf)),
        CONNECT_RESPONSE[..36]
    );

    assert_prefixes_truncated(&CONNECT_RESPONSE[..36], ConnectResponse::parse);
}

#[test]
fn test_connect_response_expired() {
    let mut bytes = CONNECT_RESPONSE;
    bytes[4..16].fill(0); // timeOut 0, sessionId 0
    bytes[20..36].fill(0); // passwd zeros
    let response = ConnectResponse::parse(&bytes).unwrap();
    assert!(response.is_expired());
    assert_eq!(response.session_id, 0);
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn test_parse_get_data_request() {
    let request = Request::parse(&GET_DATA_REQUEST).unwrap();
    assert_eq!(request.xid, 1);
    assert_eq!(request.header().op, OpCode::GetData);
    let RequestBody::GetData(get) = request.body else {
        panic!("{request:?}")
    };
    assert_eq!(get.path, "/a/b");
    assert!(get.watch);
    assert_prefixes_truncated(&GET_DATA_REQUEST, Request::parse);
    assert_eq!(
        Request::parse(&cat(&[&GET_DATA_REQUEST, &[0]])),
        Err(Error::TrailingBytes)
    );
}

#[test]
fn test_emit_get_data_request() {
    let request = Request {
        xid: 1,
        body: RequestBody::GetData(PathWatchRequest {
            path: ZkStr::new("/a/b"),
            watch: true,
        }),
    };
    assert_eq!(emit(17, |buf| request.encode(buf)), GET_DATA_REQUEST);
    let framed = emit(21, |buf| request.encode_framed(buf));
    assert_eq!(framed, cat(&[&[0, 0, 0, 17], &GET_DATA_REQUEST]));
}

#[test]
fn test_create_request_with_acl() {
    let request = Request::parse(&CREATE_REQUEST).unwrap();
    assert_eq!(request.xid, 2);
    let RequestBody::Create(create) = request.body else {
        panic!("{request:?}")
    };
    assert_eq!(create.path, "/node");
    assert_eq!(create.data, Some(&b"hi"[..]));
    assert_eq!(create.mode, CreateMode::Ephemeral);
    assert_eq!(create.acl.len(), 1);
    let acl = create.acl.iter().next().unwrap();
    assert_eq!(acl.perms, Perms::ALL);
    assert_eq!(acl.id.scheme, "world");
    assert_eq!(acl.id.id, "anyone");
    assert_eq!(acl.perms.to_string(), "cdrwa");

    // Built from a slice, equal to the parsed one, encoded to the same bytes.
    let built = Request {
        xid: 2,
        body: RequestBody::Create(CreateRequest {
            path: ZkStr::new("/node"),
            data: Some(b"hi"),
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode: CreateMode::Ephemeral,
        }),
    };
    assert_eq!(built, request);
    assert_eq!(
        emit(CREATE_REQUEST.len(), |buf| built.encode(buf)),
        CREATE_REQUEST
    );
    assert_prefixes_truncated(&CREATE_REQUEST, Request::parse);
}

#[test]
fn test_multi_request() {
    let request = Request::parse(&MULTI_REQUEST).unwrap();
    assert_eq!(request.xid, 4);
    let RequestBody::Multi(ops) = request.body else {
        panic!("{request:?}")
    };
    let ops: Vec<MultiOp<'_>> = ops.iter().collect();
    assert_eq!(ops.len(), 3);
    let MultiOp::Create(create) = ops[0] else {
        panic!("{:?}", ops[0])
    };
    assert_eq!(create.path, "/x");
    assert_eq!(create.data, Some(&[][..]));
    assert_eq!(create.mode, CreateMode::Persistent);
    assert_eq!(
        ops[1],
        MultiOp::Delete(PathVersionRequest {
            path: ZkStr::new("/y"),
            version: -1
        })
    );
    assert_eq!(
        ops[2],
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::new("/z"),
            version: 7
        })
    );

    let items = [
        MultiOp::Create(CreateRequest {
            path: ZkStr::new("/x"),
            data: Some(b""),
            acl: Acl::OPEN_ACL_UNSAFE.into(),
            mode: CreateMode::Persistent,
        }),
        ops[1],
        ops[2],
    ];
    let built = Request {
        xid: 4,
        body: RequestBody::Multi(List::from_slice(&items)),
    };
    assert_eq!(built, request);
    assert_eq!(
        emit(MULTI_REQUEST.len(), |buf| built.encode(buf)),
        MULTI_REQUEST
    );
    assert_prefixes_truncated(&MULTI_REQUEST, Request::parse);

    // An empty multi is just the end header.
    let empty = Request {
        xid: 5,
        body: RequestBody::Multi(List::empty()),
    };
    let bytes = emit(17, |buf| empty.encode(buf));
    assert_eq!(
        bytes[8..],
        [0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(Request::parse(&bytes), Ok(empty));
}

#[test]
fn test_multi_refuses_mixed_ops() {
    // A getData inside a multi (writes only).
    let read_in_write = [
        0x00, 0x00, 0x00, 0x04, // xid 4
        0x00, 0x00, 0x00, 0x0e, // type 14: multi
        0x00, 0x00, 0x00, 0x04, 0x00, 0xff, 0xff, 0xff, 0xff, // {getData, false, -1}
        0x00, 0x00, 0x00, 0x02, b'/', b'x', 0x00, // path "/x", watch false
        0xff, 0xff, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff, 0xff, // end
    ];
    assert_eq!(
        Request::parse(&read_in_write),
        Err(Error::UnexpectedOp(OpCode::GetData.to_i32() as i16))
    );
    // The same as a multiRead is fine.
    let mut multi_read = read_in_write;
    multi_read[7] = 22;
    let request = Request::parse(&multi_read).unwrap();
    assert_eq!(request.body.op(), OpCode::MultiRead);

    // A delete inside a multiRead.
    let mut write_in_read = MULTI_REQUEST;
    write_in_read[7] = 22;
    assert_eq!(
        Request::parse(&write_in_read),
        Err(Error::UnexpectedOp(OpCode::Create.to_i32() as i16))
    );

    // An op no multi takes (exists).
    let mut exists = read_in_write;
    exists[11] = 3;
    assert_eq!(
        Request::parse(&exists),
        Err(Error::UnexpectedOp(OpCode::Exists.to_i32() as i16))
    );
}

#[test]
fn test_set_watches2() {
    let bytes = &SET_WATCHES2[..];
    let request = Request::parse(bytes).unwrap();
    assert_eq!(request.xid, SET_WATCHES_XID);
    let RequestBody::SetWatches2(watches) = request.body else {
        panic!("{request:?}")
    };
    assert_eq!(watches.relative_zxid, 42);
    assert_eq!(strs(watches.data_watches), ["/a"]);
    assert!(watches.exist_watches.is_empty() && !watches.exist_watches.is_null());
    assert_eq!(strs(watches.child_watches), ["/b", "/c"]);
    assert!(watches.persistent_watches.is_empty());
    assert_eq!(strs(watches.persistent_recursive_watches), ["/r"]);

    let a = [ZkStr::new("/a")];
    let b = [ZkStr::new("/b"), ZkStr::new("/c")];
    let r = [ZkStr::new("/r")];
    let built = Request::set_watches2(SetWatches2 {
        relative_zxid: 42,
        data_watches: List::from_slice(&a),
        exist_watches: List::empty(),
        child_watches: List::from_slice(&b),
        persistent_watches: List::default(),
        persistent_recursive_watches: List::from_slice(&r),
    });
    assert_eq!(built, request);
    assert_eq!(emit(SET_WATCHES2.len(), |buf| built.encode(buf)), bytes);
    assert_prefixes_truncated(bytes, Request::parse);
}

#[test]
fn test_special_requests() {
    // A ping: header only, xid -2, type 11.
    let ping = emit(8, |buf| Request::PING.encode(buf));
    assert_eq!(ping, [0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x0b]);
    assert_eq!(Request::parse(&ping), Ok(Request::PING));

    // closeSession: type -11, no body.
    let close = Request {
        xid: 9,
        body: RequestBody::CloseSession,
    };
    let bytes = emit(8, |buf| close.encode(buf));
    assert_eq!(bytes, [0, 0, 0, 9, 0xff, 0xff, 0xff, 0xf5]);
    assert_eq!(Request::parse(&bytes), Ok(close));

    // auth, xid -4.
    let auth = Request::auth(AuthPacket {
        auth_type: 0,
        scheme: ZkStr::new("digest"),
        auth: Some(b"u:p"),
    });
    let bytes = emit(8 + 4 + 10 + 7, |buf| auth.encode(buf));
    assert_eq!(bytes[..8], [0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 100]);
    assert_eq!(Request::parse(&bytes), Ok(auth));
}

#[test]
fn test_unknown_request_op() {
    let bytes = [
        0x00, 0x00, 0x00, 0x07, // xid 7
        0x00, 0x00, 0x03, 0xe7, // type 999: unknown
        0xde, 0xad, // body
    ];
    let request = Request::parse(&bytes).unwrap();
    assert_eq!(
        request.body,
        RequestBody::Other {
            op: OpCode::Unknown(999),
            body: &[0xde, 0xad]
        }
    );
    assert_eq!(emit(10, |buf| request.encode(buf)), bytes);
}

#[test]
fn test_every_request_round_trips() {
    let acl = [Acl {
        perms: Perms::READ | Perms::WRITE,
        id: Id {
            scheme: ZkStr::new("digest"),
            id: ZkStr::new("u:hash"),
        },
    }];
    let create = CreateRequest {
        path: ZkStr::new("/c"),
        data: None,
        acl: List::from_slice(&acl),
        mode: CreateMode::PersistentSequential,
    };
    let path = PathRequest {
        path: ZkStr::new("/p"),
    };
    let watch = PathWatchRequest {
        path: ZkStr::new("/w"),
        watch: false,
    };
    let versioned = PathVersionRequest {
        path: ZkStr::new("/v"),
        version: 3,
    };
    let names = [ZkStr::new("/n"), ZkStr::NULL];
    let ops = [
        MultiOp::Create2(create),
        MultiOp::CreateContainer(create),
        MultiOp::CreateTtl(CreateTtlRequest { create, ttl: 1000 }),
        MultiOp::SetData(SetDataRequest {
            path: ZkStr::new("/s"),
            data: Some(b"d"),
            version: -1,
        }),
    ];
    let reads = [MultiOp::GetChildren(watch), MultiOp::GetData(watch)];
    let bodies = [
        RequestBody::Create(create),
        RequestBody::Delete(versioned),
        RequestBody::Exists(watch),
        RequestBody::GetData(watch),
        RequestBody::SetData(SetDataRequest {
            path: ZkStr::new("/s"),
            data: Some(b""),
            version: 1,
        }),
        RequestBody::GetAcl(path),
        RequestBody::SetAcl(SetAclRequest {
            path: ZkStr::new("/a"),
            acl: List::from_slice(&acl),
            version: 2,
        }),
        RequestBody::GetChildren(watch),
        RequestBody::Sync(path),
        RequestBody::Ping,
        RequestBody::GetChildren2(watch),
        RequestBody::Check(versioned),
        RequestBody::Multi(List::from_slice(&ops)),
        RequestBody::Create2(create),
        RequestBody::Reconfig(ReconfigRequest {
            joining_servers: ZkStr::new("server.4=h:2888:3888;2181"),
            leaving_servers: ZkStr::NULL,
            new_members: ZkStr::NULL,
            cur_config_id: -1,
        }),
        RequestBody::CheckWatches(WatchesRequest {
            path: ZkStr::new("/w"),
            watcher_type: WatcherType::Data,
        }),
        RequestBody::RemoveWatches(WatchesRequest {
            path: ZkStr::new("/w"),
            watcher_type: WatcherType::Any,
        }),
        RequestBody::CreateContainer(CreateRequest {
            mode: CreateMode::Container,
            ..create
        }),
        RequestBody::DeleteContainer(path),
        RequestBody::CreateTtl(CreateTtlRequest {
            create: CreateRequest {
                mode: CreateMode::PersistentWithTtl,
                ..create
            },
            ttl: 60_000,
        }),
        RequestBody::MultiRead(List::from_slice(&reads)),
        RequestBody::Auth(AuthPacket {
            auth_type: 0,
            scheme: ZkStr::new("ip"),
            auth: None,
        }),
        RequestBody::SetWatches(SetWatches {
            relative_zxid: 7,
            data_watches: List::from_slice(&names),
            exist_watches: List::null(),
            child_watches: List::empty(),
        }),
        RequestBody::Sasl(Some(b"token")),
        RequestBody::GetEphemerals(path),
        RequestBody::GetAllChildrenNumber(path),
        RequestBody::SetWatches2(SetWatches2 {
            relative_zxid: 7,
            data_watches: List::empty(),
            exist_watches: List::from_slice(&names),
            child_watches: List::empty(),
            persistent_watches: List::null(),
            persistent_recursive_watches: List::empty(),
        }),
        RequestBody::AddWatch(AddWatchRequest {
            path: ZkStr::new("/w"),
            mode: AddWatchMode::PersistentRecursive,
        }),
        RequestBody::WhoAmI,
        RequestBody::CloseSession,
        RequestBody::Other {
            op: OpCode::CreateSession,
            body: b"x",
        },
    ];
    for (i, body) in bodies.into_iter().enumerate() {
        let request = Request {
            xid: i as i32 + 1,
            body,
        };
        let bytes = emit(request.encoded_len(), |buf| request.encode(buf));
        assert_eq!(Request::parse(&bytes), Ok(request), "{body:?}");
        if !matches!(body, RequestBody::Other { .. }) {
            assert_prefixes_truncated(&bytes, Request::parse);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

#[test]
fn test_parse_get_data_reply() {
    let bytes = get_data_reply();
    assert_eq!(bytes.len(), 93);
    let reply = Reply::parse(OpCode::GetData, &bytes).unwrap();
    assert_eq!(
        reply.header,
        ReplyHeader {
            xid: 1,
            zxid: 42,
            err: ErrorCode::Ok
        }
    );
    let ReplyBody::Data(data) = reply.body else {
        panic!("{reply:?}")
    };
    assert_eq!(data.data, Some(&b"hello"[..]));
    // The data borrows the frame.
    assert!(core::ptr::eq(
        data.data.unwrap().as_ptr(),
        bytes[20..].as_ptr()
    ));
    assert_eq!(data.stat, stat());
    assert_prefixes_truncated(&bytes, |b| Reply::parse(OpCode::GetData, b));
    assert_eq!(
        Reply::parse(OpCode::GetData, &cat(&[&bytes, &[0]])),
        Err(Error::TrailingBytes)
    );
}

#[test]
fn test_emit_get_data_reply() {
    let reply = Reply {
        header: ReplyHeader {
            xid: 1,
            zxid: 42,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Data(GetDataResponse {
            data: Some(b"hello"),
            stat: stat(),
        }),
    };
    assert_eq!(emit(93, |buf| reply.encode(buf)), get_data_reply());
    let framed = emit(97, |buf| reply.encode_framed(buf));
    assert_eq!(framed[..4], [0, 0, 0, 93]);
}

#[test]
fn test_stat_view() {
    let view = StatView::new_checked(&STAT[..]).unwrap();
    assert_eq!(view.czxid(), 2);
    assert_eq!(view.mzxid(), 41);
    assert_eq!(view.version(), 3);
    assert_eq!(view.cversion(), 4);
    assert_eq!(view.aversion(), 5);
    assert_eq!(view.ephemeral_owner(), 0x0100_008a_3c5e_0007);
    assert_eq!(view.data_length(), 5);
    assert_eq!(view.num_children(), 6);
    assert_eq!(view.pzxid(), 40);
    assert_eq!(view.to_record(), stat());
    assert!(view.rest().is_empty());
    assert_eq!(stat().to_bytes(), STAT);
    assert_eq!(Stat::parse(&STAT), Ok(stat()));
    assert_prefixes_truncated(&STAT, Stat::parse);
    assert_prefixes_truncated(&STAT, |b| StatView::new_checked(b).map(|v| v.to_record()));
    assert_eq!(emit(68, |buf| stat().encode(buf)), STAT);

    let header = ReplyHeaderView::new_checked(&GET_DATA_REPLY_HEAD[..]).unwrap();
    assert_eq!(
        (header.xid(), header.zxid(), header.err()),
        (1, 42, ErrorCode::Ok)
    );
    let header = RequestHeaderView::new_checked(&GET_DATA_REQUEST[..]).unwrap();
    assert_eq!((header.xid(), header.op()), (1, OpCode::GetData));
    assert_eq!(header.rest().len(), 9);
}

#[test]
fn test_get_children2_reply() {
    let bytes = get_children2_reply();
    let reply = Reply::parse(OpCode::GetChildren2, &bytes).unwrap();
    let ReplyBody::Children2(children) = reply.body else {
        panic!("{reply:?}")
    };
    assert_eq!(strs(children.children), ["a", "bc"]);
    assert_eq!(children.children.len(), 2);
    assert_eq!(children.stat, stat());
    assert_prefixes_truncated(&bytes, |b| Reply::parse(OpCode::GetChildren2, b));

    let names = [ZkStr::new("a"), ZkStr::new("bc")];
    let built = Reply {
        header: reply.header,
        body: ReplyBody::Children2(GetChildren2Response {
            children: List::from_slice(&names),
            stat: stat(),
        }),
    };
    assert_eq!(built, reply);
    assert_eq!(emit(bytes.len(), |buf| built.encode(buf)), bytes);

    // The same body without the Stat is a getChildren reply.
    let plain = &bytes[..bytes.len() - STAT_LEN];
    let reply = Reply::parse(OpCode::GetChildren, plain).unwrap();
    assert!(matches!(reply.body, ReplyBody::Children(c) if strs(c) == ["a", "bc"]));
}

#[test]
fn test_aborted_multi_reply() {
    let reply = Reply::parse(OpCode::Multi, &ABORTED_MULTI_REPLY).unwrap();
    assert_eq!(reply.header.err, ErrorCode::Ok);
    let ReplyBody::Multi(results) = reply.body else {
        panic!("{reply:?}")
    };
    let errors: Vec<_> = results.iter().map(|r| r.error()).collect();
    assert_eq!(
        errors,
        [
            Some(ErrorCode::Ok),
            Some(ErrorCode::NoNode),
            Some(ErrorCode::RuntimeInconsistency)
        ]
    );
    let items = [
        MultiResult::Error(ErrorCode::Ok),
        MultiResult::Error(ErrorCode::NoNode),
        MultiResult::Error(ErrorCode::RuntimeInconsistency),
    ];
    let built = Reply {
        header: ReplyHeader {
            xid: 4,
            zxid: 43,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Multi(List::from_slice(&items)),
    };
    assert_eq!(built, reply);
    assert_eq!(emit(64, |buf| built.encode(buf)), ABORTED_MULTI_REPLY);
    assert_prefixes_truncated(&ABORTED_MULTI_REPLY, |b| Reply::parse(OpCode::Multi, b));
}

#[test]
fn test_successful_multi_reply_round_trips() {
    let names = [ZkStr::new("k")];
    let items = [
        MultiResult::Create(ZkStr::new("/x")),
        MultiResult::Create2(Create2Response {
            path: ZkStr::new("/x0000000001"),
            stat: stat(),
        }),
        MultiResult::Delete,
        MultiResult::SetData(stat()),
        MultiResult::Check,
        MultiResult::GetChildren(List::from_slice(&names)),
        MultiResult::GetData(GetDataResponse {
            data: None,
            stat: stat(),
        }),
    ];
    let reply = Reply {
        header: ReplyHeader {
            xid: 8,
            zxid: 50,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Multi(List::from_slice(&items)),
    };
    let bytes = emit(reply.encoded_len(), |buf| reply.encode(buf));
    assert_eq!(Reply::parse(OpCode::MultiRead, &bytes), Ok(reply));
    assert_prefixes_truncated(&bytes, |b| Reply::parse(OpCode::Multi, b));

    // A result type no multi returns.
    let mut bad = bytes.clone();
    bad[16..20].copy_from_slice(&3i32.to_be_bytes()); // first result claims to be "exists"
    assert_eq!(
        Reply::parse(OpCode::Multi, &bad),
        Err(Error::UnexpectedOp(3))
    );
}

#[test]
fn test_notification() {
    // Whatever the oldest pending request is, xid -1 is a notification.
    for op in [OpCode::GetData, OpCode::Multi, OpCode::Unknown(77)] {
        let reply = Reply::parse(op, &NOTIFICATION).unwrap();
        assert!(reply.is_notification());
        assert_eq!(reply.header.zxid, -1);
        assert_eq!(
            reply.body,
            ReplyBody::Notification(WatcherEvent {
                event_type: EventType::NodeDataChanged,
                state: KeeperState::SyncConnected,
                path: ZkStr::new("/a"),
            })
        );
        assert_eq!(emit(30, |buf| reply.encode(buf)), NOTIFICATION);
    }
    assert_prefixes_truncated(&NOTIFICATION, |b| Reply::parse(OpCode::GetData, b));
}

#[test]
fn test_special_replies() {
    // Ping reply: xid -2, no body, whatever op is passed.
    let ping = [
        0xff, 0xff, 0xff, 0xfe, // xid -2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // zxid 42
        0x00, 0x00, 0x00, 0x00, // err 0
    ];
    let reply = Reply::parse(OpCode::GetData, &ping).unwrap();
    assert_eq!(reply, Reply::header_only(PING_XID, 42, ErrorCode::Ok));
    assert_eq!(
        Reply::parse(OpCode::GetData, &cat(&[&ping, &[0]])),
        Err(Error::TrailingBytes)
    );

    // Auth failed: xid -4, err -115, then the server closes.
    let mut auth = ping;
    auth[..4].copy_from_slice(&AUTH_XID.to_be_bytes());
    auth[12..].copy_from_slice(&(-115i32).to_be_bytes());
    let reply = Reply::parse(OpCode::Create, &auth).unwrap();
    assert_eq!(reply.header.err, ErrorCode::AuthFailed);
    assert_eq!(reply.body, ReplyBody::Empty);

    // setWatches reply: xid -8.
    let mut set = ping;
    set[..4].copy_from_slice(&SET_WATCHES_XID.to_be_bytes());
    assert_eq!(
        Reply::parse(OpCode::SetWatches2, &set).unwrap().body,
        ReplyBody::Empty
    );
}

#[test]
fn test_error_reply_has_no_body() {
    let no_node = [
        0x00, 0x00, 0x00, 0x05, // xid 5
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // zxid 42
        0xff, 0xff, 0xff, 0x9b, // err -101: NoNode
    ];
    for op in [
        OpCode::Exists,
        OpCode::GetData,
        OpCode::Create2,
        OpCode::Multi,
    ] {
        let reply = Reply::parse(op, &no_node).unwrap();
        assert_eq!(reply.header.err, ErrorCode::NoNode);
        assert_eq!(reply.body, ReplyBody::Empty);
    }
    // Bytes after an error header are ignored, as the Java client ignores them.
    let with_body = cat(&[&no_node, &[0, 0, 0, 2, b'/', b'x']]);
    assert_eq!(
        Reply::parse(OpCode::Create, &with_body).unwrap().body,
        ReplyBody::Empty
    );
    assert_eq!(
        emit(16, |buf| Reply::header_only(5, 42, ErrorCode::NoNode)
            .encode(buf)),
        no_node
    );
}

#[test]
fn test_unknown_codes() {
    // An error code nobody knows.
    let bytes = [
        0x00, 0x00, 0x00, 0x05, // xid 5
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, // zxid 42
        0xff, 0xff, 0xfc, 0x19, // err -999
    ];
    let reply = Reply::parse(OpCode::GetData, &bytes).unwrap();
    assert_eq!(reply.header.err, ErrorCode::Unknown(-999));
    assert_eq!(reply.header.err.to_string(), "Unknown(-999)");
    assert_eq!(emit(16, |buf| reply.encode(buf)), bytes);

    // The reply to an unknown op is kept as bytes.
    let mut ok = bytes;
    ok[12..].fill(0);
    let with_body = cat(&[&ok, &[1, 2, 3]]);
    let reply = Reply::parse(OpCode::Unknown(999), &with_body).unwrap();
    assert_eq!(
        reply.body,
        ReplyBody::Other {
            op: OpCode::Unknown(999),
            body: &[1, 2, 3]
        }
    );

    // Event type and keeper state nobody knows.
    let mut event = NOTIFICATION;
    event[19] = 99;
    event[23] = 42;
    let reply = Reply::parse(OpCode::Ping, &event).unwrap();
    let ReplyBody::Notification(event) = reply.body else {
        panic!()
    };
    assert_eq!(event.event_type, EventType::Unknown(99));
    assert_eq!(event.state, KeeperState::Unknown(42));
}

#[test]
fn test_codes_convert_both_ways() {
    for value in -200..=200 {
        assert_eq!(ErrorCode::from(value).to_i32(), value);
        assert_eq!(i32::from(OpCode::from(value)), value);
        assert_eq!(EventType::from(value).to_i32(), value);
        assert_eq!(KeeperState::from(value).to_i32(), value);
        assert_eq!(CreateMode::from(value).to_i32(), value);
        assert_eq!(WatcherType::from(value).to_i32(), value);
        assert_eq!(AddWatchMode::from(value).to_i32(), value);
    }
    for value in [i32::MIN, i32::MAX] {
        assert_eq!(ErrorCode::from(value), ErrorCode::Unknown(value));
        assert!(!ErrorCode::from(value).is_known());
    }
    assert_eq!(ErrorCode::from(-101), ErrorCode::NoNode);
    assert_eq!(ErrorCode::NodeExists.to_i32(), -110);
    assert_eq!(ErrorCode::ThrottledOp.to_i32(), -127);
    assert_eq!(ErrorCode::InvalidAcl.to_string(), "InvalidACL");
    assert_eq!(ErrorCode::ApiError.to_string(), "APIError");
    assert_eq!(OpCode::from(104), OpCode::GetAllChildrenNumber);
    assert_eq!(OpCode::CreateTtl.to_string(), "createTTL");
    assert_eq!(OpCode::GetAcl.to_string(), "getACL");
    assert_eq!(OpCode::CloseSession.to_i32(), -11);
    assert_eq!(EventType::from(-1), EventType::None);
    assert_eq!(EventType::PersistentWatchRemoved.to_i32(), 7);
    assert_eq!(KeeperState::from(-112), KeeperState::Expired);
    assert_eq!(KeeperState::from(-1), KeeperState::Unknown(-1));
    assert_eq!(KeeperState::SyncConnected.to_string(), "SyncConnected");
    assert_eq!(CreateMode::from(6), CreateMode::PersistentSequentialWithTtl);
    assert!(CreateMode::EphemeralSequential.is_ephemeral());
    assert!(CreateMode::EphemeralSequential.is_sequential());
    assert!(CreateMode::PersistentWithTtl.is_ttl());
    assert_eq!(WatcherType::from(3), WatcherType::Any);
    assert_eq!(AddWatchMode::from(1), AddWatchMode::PersistentRecursive);
    assert_eq!(Perms(31 | 64).to_string(), "cdrwa+0x40");
    assert_eq!((Perms::READ | Perms::ADMIN).to_string(), "ra");
}

#[test]
fn test_create_container_tolerates_trailing_bytes() {
    let body = Create2Response {
        path: ZkStr::new("/c"),
        stat: stat(),
    };
    let reply = Reply {
        header: ReplyHeader {
            xid: 6,
            zxid: 44,
            err: ErrorCode::Ok,
        },
        body: ReplyBody::Created(body),
    };
    let bytes = emit(reply.encoded_len(), |buf| reply.encode(buf));
    let trailing = cat(&[&bytes, &[0xde, 0xad, 0xbe, 0xef]]);
    assert_eq!(Reply::parse(OpCode::CreateContainer, &trailing), Ok(reply));
    assert_eq!(Reply::parse(OpCode::CreateContainer, &bytes), Ok(reply));
    assert_eq!(
        Reply::parse(OpCode::Create2, &trailing),
        Err(Error::TrailingBytes)
    );
    assert_prefixes_truncated(&bytes, |b| Reply::parse(OpCode::CreateContainer, b));
}

#[test]
fn test_every_reply_round_trips() {
    let acl = Acl::CREATOR_ALL_ACL;
    let names = [ZkStr::new("/e1"), ZkStr::from_bytes(&[0xed, 0xa0, 0x80])];
    let infos = [ClientInfo {
        auth_scheme: ZkStr::new("ip"),
        user: ZkStr::new("127.0.0.1"),
    }];
    let cases = [
        (OpCode::Create, ReplyBody::Path(ZkStr::new("/p"))),
        (OpCode::Sync, ReplyBody::Path(ZkStr::new("/p"))),
        (
            OpCode::CreateTtl,
            ReplyBody::Created(Create2Response {
                path: ZkStr::new("/t"),
                stat: stat(),
            }),
        ),
        (OpCode::Delete, ReplyBody::Empty),
        (OpCode::Exists, ReplyBody::Stat(stat())),
        (OpCode::SetData, ReplyBody::Stat(stat())),
        (OpCode::SetAcl, ReplyBody::Stat(stat())),
        (OpCode::Check, ReplyBody::Stat(stat())),
        (OpCode::Check, ReplyBody::Empty),
        (
            OpCode::Reconfig,
            ReplyBody::Data(GetDataResponse {
                data: Some(b"server.1=h:2888:3888"),
                stat: stat(),
            }),
        ),
        (
            OpCode::GetAcl,
            ReplyBody::Acl(GetAclResponse {
                acl: List::from_slice(acl),
                stat: stat(),
            }),
        ),
        (
            OpCode::GetEphemerals,
            ReplyBody::Children(List::from_slice(&names)),
        ),
        (OpCode::GetChildren, ReplyBody::Children(List::null())),
        (OpCode::Sasl, ReplyBody::Sasl(None)),
        (OpCode::Sasl, ReplyBody::Sasl(Some(b"challenge"))),
        (OpCode::GetAllChildrenNumber, ReplyBody::Count(12)),
        (OpCode::AddWatch, ReplyBody::Status(ErrorCode::Ok)),
        (OpCode::WhoAmI, ReplyBody::WhoAmI(List::from_slice(&infos))),
        (OpCode::RemoveWatches, ReplyBody::Empty),
        (OpCode::CloseSession, ReplyBody::Empty),
    ];
    for (op, body) in cases {
        let reply = Reply {
            header: ReplyHeader {
                xid: 3,
                zxid: 4,
                err: ErrorCode::Ok,
            },
            body,
        };
        let bytes = emit(reply.encoded_len(), |buf| reply.encode(buf));
        assert_eq!(Reply::parse(op, &bytes), Ok(reply), "{op}");
        assert_eq!(Reply::parse(body.reply_to(), &bytes), Ok(reply), "{op}");
        if body != ReplyBody::Empty {
            assert_prefixes_truncated(&bytes, |b| {
                // A check reply may legitimately be empty.
                let op = if op == OpCode::Check {
                    OpCode::Exists
                } else {
                    op
                };
                Reply::parse(op, b)
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lengths, strings, nulls
// ---------------------------------------------------------------------------------------------

fn get_data_reply_with_len(len: i32) -> Vec<u8> {
    let mut bytes = get_data_reply();
    bytes[16..20].copy_from_slice(&len.to_be_bytes());
    bytes
}

#[test]
fn test_bad_lengths() {
    let parse = |b: &[u8]| Reply::parse(OpCode::GetData, b).map(|_| ());
    // -2 and any other negative length but -1.
    for len in [-2, -100, i32::MIN] {
        assert_eq!(
            parse(&get_data_reply_with_len(len)),
            Err(Error::BadLength),
            "{len}"
        );
    }
    // Above the maximum: refused before the bytes present are looked at.
    for len in [MAX_LEN as i32 + 1, i32::MAX] {
        assert_eq!(
            parse(&get_data_reply_with_len(len)),
            Err(Error::TooLarge),
            "{len}"
        );
    }
    // Longer than the data present.
    assert_eq!(parse(&get_data_reply_with_len(200)), Err(Error::Truncated));
    assert_eq!(parse(&get_data_reply_with_len(74)), Err(Error::Truncated));
    // Shorter: the Stat then overlaps and the frame has bytes left.
    assert_eq!(
        parse(&get_data_reply_with_len(4)),
        Err(Error::TrailingBytes)
    );

    // The same for vector counts.
    let mut bytes = get_children2_reply();
    for (count, error) in [
        (-2, Error::BadLength),
        (MAX_LEN as i32 + 1, Error::TooLarge),
        (1_000, Error::Truncated),
        (30, Error::Truncated),
    ] {
        bytes[16..20].copy_from_slice(&i32::to_be_bytes(count));
        assert_eq!(
            Reply::parse(OpCode::GetChildren2, &bytes),
            Err(error),
            "{count}"
        );
    }
    // And for string lengths inside a vector.
    let mut bytes = get_children2_reply();
    bytes[20..24].copy_from_slice(&(-7i32).to_be_bytes());
    assert_eq!(
        Reply::parse(OpCode::GetChildren2, &bytes),
        Err(Error::BadLength)
    );

    // A path length in a request.
    let mut request = GET_DATA_REQUEST;
    request[8..12].copy_from_slice(&(-2i32).to_be_bytes());
    assert_eq!(Request::parse(&request), Err(Error::BadLength));
    request[8..12].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(Request::parse(&request), Err(Error::TooLarge));
    request[8..12].copy_from_slice(&6i32.to_be_bytes());
    assert_eq!(Request::parse(&request), Err(Error::Truncated));
}

#[test]
fn test_null_and_empty_differ() {
    let null = get_data_reply_with_len(-1);
    let null = cat(&[&null[..20], &STAT]);
    let reply = Reply::parse(OpCode::GetData, &null).unwrap();
    assert!(matches!(reply.body, ReplyBody::Data(d) if d.data.is_none()));
    assert_eq!(emit(null.len(), |buf| reply.encode(buf)), null);

    let empty = get_data_reply_with_len(0);
    let empty = cat(&[&empty[..20], &STAT]);
    let reply = Reply::parse(OpCode::GetData, &empty).unwrap();
    assert!(matches!(reply.body, ReplyBody::Data(d) if d.data == Some(&[][..])));

    // Strings and vectors too.
    let null_path = [0xff, 0xff, 0xff, 0xff];
    let path = PathRequest::parse(&null_path).unwrap().path;
    assert!(path.is_null() && path.is_empty());
    assert_ne!(path, ZkStr::new(""));
    assert_ne!(List::<ZkStr<'_>>::null(), List::empty());
    assert_eq!(format!("{:?}", List::<ZkStr<'_>>::null()), "null");
}

#[test]
fn test_cesu8_strings_are_bytes() {
    // U+1F600 as the Java writer sends it: two 3-byte surrogates (CESU-8).
    let cesu = [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80];
    let notification = cat(&[&NOTIFICATION[..24], &[0, 0, 0, 7, b'/'], &cesu]);
    let reply = Reply::parse(OpCode::GetData, &notification).unwrap();
    let ReplyBody::Notification(event) = reply.body else {
        panic!()
    };
    assert_eq!(event.path.as_bytes(), cat(&[b"/", &cesu]));
    assert!(event.path.as_str().is_err());
    assert_eq!(
        event.path.to_string(),
        "/\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}"
    );
    // Valid UTF-8 validates.
    let reply = Reply::parse(OpCode::GetData, &NOTIFICATION).unwrap();
    let ReplyBody::Notification(event) = reply.body else {
        panic!()
    };
    assert_eq!(event.path.as_str(), Ok("/a"));
    assert_eq!(format!("{:?}", event.path), "\"/a\"");
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

#[test]
fn test_frame_decoder_partial() {
    let decoder = FrameDecoder::new();
    let framed = cat(&[&[0, 0, 0, 93], &get_data_reply()]);
    for len in 0..framed.len() {
        let needed = if len < 4 { 4 - len } else { framed.len() - len };
        assert_eq!(
            decoder.decode(&framed[..len]),
            Ok(FrameStatus::Partial { needed }),
            "{len}"
        );
    }
    assert_eq!(
        decoder.decode(&framed),
        Ok(FrameStatus::Complete {
            frame: &framed[4..],
            consumed: 97
        })
    );
}

#[test]
fn test_frame_decoder_refuses_bad_lengths_early() {
    let decoder = FrameDecoder::new();
    assert_eq!(
        decoder.decode(&[0xff, 0xff, 0xff, 0xfe]),
        Err(Error::BadLength)
    );
    assert_eq!(
        decoder.decode(&[0xff, 0xff, 0xff, 0xff]),
        Err(Error::BadLength)
    );
    assert_eq!(
        decoder.decode(&[0x00, 0x10, 0x00, 0x00]),
        Err(Error::TooLarge)
    );
    // "ruok", a four-letter word, read as a length.
    assert_eq!(decoder.decode(b"ruok"), Err(Error::TooLarge));
    // The maximum itself is fine.
    assert_eq!(
        decoder.decode(&[0x00, 0x0f, 0xff, 0xff]),
        Ok(FrameStatus::Partial { needed: 0xfffff })
    );
    // A configured maximum.
    let small = FrameDecoder::with_max_frame_len(16);
    assert_eq!(small.max_frame_len(), 16);
    assert_eq!(small.decode(&[0, 0, 0, 17]), Err(Error::TooLarge));
    assert_eq!(
        small.decode(&[0, 0, 0, 16]),
        Ok(FrameStatus::Partial { needed: 16 })
    );
    assert_eq!(
        FrameDecoder::with_max_frame_len(u32::MAX).max_frame_len(),
        i32::MAX as u32
    );
    // An empty frame is a frame (what it holds is for the parser to judge).
    assert_eq!(
        decoder.decode(&[0, 0, 0, 0, 1]),
        Ok(FrameStatus::Complete {
            frame: &[],
            consumed: 4
        })
    );
}

/// A server's stream: handshake, a getData reply, a notification, a ping reply, an aborted
/// multi.
fn server_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
    let ping = [
        0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0, 0, 0, 0,
    ];
    let payloads: Vec<Vec<u8>> = std::vec![
        CONNECT_RESPONSE.to_vec(),
        get_data_reply(),
        NOTIFICATION.to_vec(),
        ping.to_vec(),
        ABORTED_MULTI_REPLY.to_vec(),
    ];
    let mut stream = Vec::new();
    for payload in &payloads {
        stream.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        stream.extend_from_slice(payload);
    }
    (stream, payloads)
}

/// Feeds `chunks` to a buffer as a socket would and decodes every complete frame.
fn decode_chunks<'c>(chunks: impl IntoIterator<Item = &'c [u8]>) -> Vec<Vec<u8>> {
    let decoder = FrameDecoder::new();
    let mut buffered: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buffered.extend_from_slice(chunk);
        loop {
            match decoder.decode(&buffered).unwrap() {
                FrameStatus::Complete { frame, consumed } => {
                    frames.push(frame.to_vec());
                    buffered.drain(..consumed);
                }
                FrameStatus::Partial { needed } => {
                    assert!(needed > 0);
                    break;
                }
            }
        }
    }
    assert!(buffered.is_empty());
    frames
}

#[test]
fn test_frame_decoder_every_split_point() {
    let (stream, payloads) = server_stream();
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        assert_eq!(decode_chunks([a, b]), payloads, "split at {split}");
    }
    for split in (0..=stream.len()).step_by(7) {
        for second in (split..=stream.len()).step_by(5) {
            let chunks = [&stream[..split], &stream[split..second], &stream[second..]];
            assert_eq!(decode_chunks(chunks), payloads);
        }
    }
    assert_eq!(decode_chunks(stream.chunks(1)), payloads);

    // And the frames parse, in order, with the ops of the requests they answer.
    let frames = decode_chunks([&stream[..]]);
    assert!(ConnectResponse::parse(&frames[0]).is_ok());
    assert!(matches!(
        Reply::parse(OpCode::GetData, &frames[1]).unwrap().body,
        ReplyBody::Data(_)
    ));
    assert!(
        Reply::parse(OpCode::Multi, &frames[2])
            .unwrap()
            .is_notification()
    );
    assert_eq!(
        Reply::parse(OpCode::Multi, &frames[3]).unwrap().header.xid,
        PING_XID
    );
    assert!(matches!(
        Reply::parse(OpCode::Multi, &frames[4]).unwrap().body,
        ReplyBody::Multi(_)
    ));
}

#[test]
fn test_encode_frame() {
    let mut buf = [0xa5; 8];
    assert_eq!(
        encode_frame(&mut buf, |out| {
            out[..2].copy_from_slice(&[1, 2]);
            Ok(2)
        }),
        Ok(6)
    );
    assert_eq!(buf, [0, 0, 0, 2, 1, 2, 0xa5, 0xa5]);
    assert_eq!(
        encode_frame(&mut buf[..3], |_| Ok(0)),
        Err(Error::BufferTooSmall)
    );
}

#[test]
fn test_list_from_slice_equals_parsed() {
    let names = [ZkStr::new("a"), ZkStr::new("bc")];
    let built = List::from_slice(&names);
    let bytes = get_children2_reply();
    let Ok(Reply {
        body: ReplyBody::Children2(parsed),
        ..
    }) = Reply::parse(OpCode::GetChildren2, &bytes)
    else {
        panic!()
    };
    assert_eq!(built, parsed.children);
    assert_ne!(List::from_slice(&names[..1]), parsed.children);
    assert_eq!(format!("{:?}", parsed.children), "[\"a\", \"bc\"]");
    let mut iter = parsed.children.iter();
    assert_eq!(iter.len(), 2);
    iter.next();
    assert_eq!(iter.len(), 1);
    assert_eq!(iter.next(), Some(ZkStr::new("bc")));
    assert_eq!(iter.next(), None);
    assert_eq!(iter.next(), None);
}

// ---------------------------------------------------------------------------------------------
// Property round trips
// ---------------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    fn stat_strategy() -> impl Strategy<Value = Stat> {
        (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
            czxid: l[0],
            mzxid: l[1],
            ctime: l[2],
            mtime: l[3],
            version: i[0],
            cversion: i[1],
            aversion: i[2],
            ephemeral_owner: l[4],
            data_length: i[3],
            num_children: i[4],
            pzxid: l[5],
        })
    }

    /// A string's bytes (any bytes, not only UTF-8) or null.
    fn zk_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        option::weighted(0.9, vec(any::<u8>(), 0..24))
    }

    fn zk_str(bytes: &Option<Vec<u8>>) -> ZkStr<'_> {
        ZkStr::from_wire(bytes.as_deref())
    }

    /// An ordinary xid (not one of the special ones).
    fn xid() -> impl Strategy<Value = i32> {
        0..i32::MAX
    }

    proptest! {
        #[test]
        fn connect_request_round_trips(
            protocol_version: i32, last_zxid_seen: i64, timeout: i32, session_id: i64,
            passwd in option::of(vec(any::<u8>(), 0..40)), read_only in option::of(any::<bool>()),
        ) {
            let request = ConnectRequest {
                protocol_version, last_zxid_seen, timeout, session_id,
                passwd: passwd.as_deref(), read_only,
            };
            let mut buf = [0u8; 128];
            let len = request.encode(&mut buf).unwrap();
            prop_assert_eq!(len, request.encoded_len());
            prop_assert_eq!(ConnectRequest::parse(&buf[..len]), Ok(request));
        }

        #[test]
        fn connect_response_round_trips(
            protocol_version: i32, timeout: i32, session_id: i64,
            passwd in option::of(vec(any::<u8>(), 0..40)), read_only in option::of(any::<bool>()),
        ) {
            let response = ConnectResponse {
                protocol_version, timeout, session_id, passwd: passwd.as_deref(), read_only,
            };
            let mut buf = [0u8; 128];
            let len = response.encode_framed(&mut buf).unwrap();
            prop_assert_eq!(len, response.framed_len());
            prop_assert_eq!(ConnectResponse::parse(&buf[4..len]), Ok(response));
        }

        #[test]
        fn get_data_reply_round_trips(
            xid in xid(), zxid: i64, data in option::of(vec(any::<u8>(), 0..300)),
            stat in stat_strategy(),
        ) {
            let reply = Reply {
                header: ReplyHeader { xid, zxid, err: ErrorCode::Ok },
                body: ReplyBody::Data(GetDataResponse { data: data.as_deref(), stat }),
            };
            let mut buf = [0u8; 512];
            let len = reply.encode(&mut buf).unwrap();
            prop_assert_eq!(len, reply.encoded_len());
            prop_assert_eq!(Reply::parse(OpCode::GetData, &buf[..len]), Ok(reply));
        }

        #[test]
        fn create_request_round_trips(
            xid: i32, path in zk_bytes(), data in option::of(vec(any::<u8>(), 0..64)),
            acl in vec((any::<i32>(), zk_bytes(), zk_bytes()), 0..4), mode: i32, ttl: i64,
            kind in 0..4u8,
        ) {
            let acl: Vec<Acl<'_>> = acl
                .iter()
                .map(|(perms, scheme, id)| Acl {
                    perms: Perms(*perms),
                    id: Id { scheme: zk_str(scheme), id: zk_str(id) },
                })
                .collect();
            let create = CreateRequest {
                path: zk_str(&path),
                data: data.as_deref(),
                acl: List::from_slice(&acl),
                mode: CreateMode::from(mode),
            };
            let body = match kind {
                0 => RequestBody::Create(create),
                1 => RequestBody::Create2(create),
                2 => RequestBody::CreateContainer(create),
                _ => RequestBody::CreateTtl(CreateTtlRequest { create, ttl }),
            };
            let request = Request { xid, body };
            let mut buf = std::vec![0u8; request.encoded_len()];
            prop_assert_eq!(request.encode(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Request::parse(&buf), Ok(request));
        }

        #[test]
        fn set_watches2_round_trips(
            zxid: i64,
            lists in vec(option::weighted(0.9, vec(zk_bytes(), 0..5)), 5),
        ) {
            let lists: Vec<Option<Vec<ZkStr<'_>>>> = lists
                .iter()
                .map(|l| l.as_ref().map(|l| l.iter().map(zk_str).collect()))
                .collect();
            let list = |i: usize| match &lists[i] {
                Some(items) => List::from_slice(items),
                None => List::null(),
            };
            let request = Request::set_watches2(SetWatches2 {
                relative_zxid: zxid,
                data_watches: list(0),
                exist_watches: list(1),
                child_watches: list(2),
                persistent_watches: list(3),
                persistent_recursive_watches: list(4),
            });
            let mut buf = std::vec![0u8; request.encoded_len()];
            prop_assert_eq!(request.encode(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Request::parse(&buf), Ok(request));
        }

        #[test]
        fn multi_round_trips(
            xid in xid(),
            ops in vec((0..7u8, zk_bytes(), option::of(vec(any::<u8>(), 0..16)), any::<i32>()), 0..6),
            stat in stat_strategy(),
        ) {
            let ops: Vec<MultiOp<'_>> = ops
                .iter()
                .map(|(kind, path, data, n)| {
                    let path = zk_str(path);
                    let create = CreateRequest {
                        path,
                        data: data.as_deref(),
                        acl: Acl::OPEN_ACL_UNSAFE.into(),
                        mode: CreateMode::from(*n),
                    };
                    match kind {
                        0 => MultiOp::Create(create),
                        1 => MultiOp::Create2(create),
                        2 => MultiOp::CreateContainer(create),
                        3 => MultiOp::CreateTtl(CreateTtlRequest { create, ttl: i64::from(*n) }),
                        4 => MultiOp::Delete(PathVersionRequest { path, version: *n }),
                        5 => MultiOp::SetData(SetDataRequest { path, data: data.as_deref(), version: *n }),
                        _ => MultiOp::Check(PathVersionRequest { path, version: *n }),
                    }
                })
                .collect();
            let request = Request { xid, body: RequestBody::Multi(List::from_slice(&ops)) };
            let mut buf = std::vec![0u8; request.encoded_len()];
            prop_assert_eq!(request.encode(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Request::parse(&buf), Ok(request));

            // The matching successful reply.
            let results: Vec<MultiResult<'_>> = ops
                .iter()
                .map(|op| match op {
                    MultiOp::Create(c) => MultiResult::Create(c.path),
                    MultiOp::Create2(c) | MultiOp::CreateContainer(c) => {
                        MultiResult::Create2(Create2Response { path: c.path, stat })
                    }
                    MultiOp::CreateTtl(c) => {
                        MultiResult::Create2(Create2Response { path: c.create.path, stat })
                    }
                    MultiOp::Delete(_) => MultiResult::Delete,
                    MultiOp::SetData(_) => MultiResult::SetData(stat),
                    MultiOp::Check(_) => MultiResult::Check,
                    MultiOp::GetChildren(_) | MultiOp::GetData(_) => {
                        MultiResult::Error(ErrorCode::Unimplemented)
                    }
                })
                .collect();
            let reply = Reply {
                header: ReplyHeader { xid, zxid: 1, err: ErrorCode::Ok },
                body: ReplyBody::Multi(List::from_slice(&results)),
            };
            let mut buf = std::vec![0u8; reply.encoded_len()];
            prop_assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
            prop_assert_eq!(Reply::parse(OpCode::Multi, &buf), Ok(reply));
        }

        #[test]
        fn notification_round_trips(event_type: i32, state: i32, path in zk_bytes(), zxid: i64) {
            let reply = Reply {
                header: ReplyHeader { xid: NOTIFICATION_XID, zxid, err: ErrorCode::Ok },
                body: ReplyBody::Notification(WatcherEvent {
                    event_type: event_type.into(),
                    state: state.into(),
                    path: zk_str(&path),
                }),
            };
            let mut buf = std::vec![0u8; reply.framed_len()];
            prop_assert_eq!(reply.encode_framed(&mut buf), Ok(buf.len()));
            let Ok(FrameStatus::Complete { frame, consumed }) = FrameDecoder::new().decode(&buf)
            else {
                panic!()
            };
            prop_assert_eq!(consumed, buf.len());
            prop_assert_eq!(Reply::parse(OpCode::Ping, frame), Ok(reply));
        }

        #[test]
        fn children_and_acl_replies_round_trip(
            names in option::weighted(0.9, vec(zk_bytes(), 0..8)),
            acl in vec((any::<i32>(), zk_bytes(), zk_bytes()), 0..4),
            infos in vec((zk_bytes(), zk_bytes()), 0..4),
            stat in stat_strategy(),
        ) {
            let names: Option<Vec<ZkStr<'_>>> = names.as_ref().map(|n| n.iter().map(zk_str).collect());
            let children = match &names {
                Some(names) => List::from_slice(names),
                None => List::null(),
            };
            let acl: Vec<Acl<'_>> = acl
                .iter()
                .map(|(p, s, i)| Acl { perms: Perms(*p), id: Id { scheme: zk_str(s), id: zk_str(i) } })
                .collect();
            let infos: Vec<ClientInfo<'_>> = infos
                .iter()
                .map(|(s, u)| ClientInfo { auth_scheme: zk_str(s), user: zk_str(u) })
                .collect();
            for (op, body) in [
                (OpCode::GetChildren, ReplyBody::Children(children)),
                (OpCode::GetChildren2, ReplyBody::Children2(GetChildren2Response { children, stat })),
                (OpCode::GetAcl, ReplyBody::Acl(GetAclResponse { acl: List::from_slice(&acl), stat })),
                (OpCode::WhoAmI, ReplyBody::WhoAmI(List::from_slice(&infos))),
            ] {
                let reply = Reply { header: ReplyHeader { xid: 1, zxid: 2, err: ErrorCode::Ok }, body };
                let mut buf = std::vec![0u8; reply.encoded_len()];
                prop_assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
                prop_assert_eq!(Reply::parse(op, &buf), Ok(reply));
            }
        }

        #[test]
        fn parsing_any_bytes_never_panics(bytes in vec(any::<u8>(), 0..200), op: i32) {
            let _ = Request::parse(&bytes);
            let _ = ConnectRequest::parse(&bytes);
            let _ = ConnectResponse::parse(&bytes);
            let _ = FrameDecoder::new().decode(&bytes);
            if let Ok(reply) = Reply::parse(OpCode::from(op), &bytes) {
                // What parses re-encodes to something that parses to the same value.
                let mut buf = std::vec![0u8; reply.encoded_len()];
                prop_assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
                prop_assert_eq!(Reply::parse(OpCode::from(op), &buf), Ok(reply));
            }
            if let Ok(request) = Request::parse(&bytes) {
                let mut buf = std::vec![0u8; request.encoded_len()];
                prop_assert_eq!(request.encode(&mut buf), Ok(buf.len()));
                prop_assert_eq!(Request::parse(&buf), Ok(request));
            }
        }

        #[test]
        fn parsing_mutated_messages_never_panics(
            which in 0..6usize, at in any::<prop::sample::Index>(), byte: u8, op: i32,
        ) {
            let mut bytes = [
                get_data_reply(),
                get_children2_reply(),
                MULTI_REQUEST.to_vec(),
                ABORTED_MULTI_REPLY.to_vec(),
                SET_WATCHES2.to_vec(),
                CREATE_REQUEST.to_vec(),
            ][which].clone();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            let _ = Request::parse(&bytes);
            for op in [OpCode::from(op), OpCode::GetData, OpCode::GetChildren2, OpCode::Multi] {
                if let Ok(reply) = Reply::parse(op, &bytes) {
                    let mut buf = std::vec![0u8; reply.encoded_len()];
                    prop_assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
                    prop_assert_eq!(Reply::parse(op, &buf), Ok(reply));
                }
            }
        }
    }
}

#[test]
fn test_unexpected_op_outside_i16() {
    let mut bytes = ABORTED_MULTI_REPLY;
    bytes[16..20].copy_from_slice(&70_000i32.to_be_bytes());
    assert_eq!(
        Reply::parse(OpCode::Multi, &bytes),
        Err(Error::UnexpectedOp(i16::MIN))
    );
}

/// The `Arbitrary` impls give values that survive encode → parse, as the fuzz round trips need.
#[cfg(feature = "arbitrary")]
#[test]
fn test_arbitrary_values_round_trip() {
    use arbitrary::{Arbitrary, Unstructured};
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut raw = std::vec![0u8; 4096];
    for _ in 0..2000 {
        for byte in raw.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *byte = seed as u8;
        }
        let mut u = Unstructured::new(&raw);
        let request = Request::arbitrary(&mut u).unwrap();
        let mut buf = std::vec![0u8; request.encoded_len()];
        assert_eq!(request.encode(&mut buf), Ok(buf.len()));
        assert_eq!(Request::parse(&buf), Ok(request));

        let reply = Reply::arbitrary(&mut u).unwrap();
        let mut buf = std::vec![0u8; reply.encoded_len()];
        assert_eq!(reply.encode(&mut buf), Ok(buf.len()));
        assert_eq!(Reply::parse(reply.body.reply_to(), &buf), Ok(reply));

        let connect = ConnectRequest::arbitrary(&mut u).unwrap();
        let mut buf = std::vec![0u8; connect.encoded_len()];
        assert_eq!(connect.encode(&mut buf), Ok(buf.len()));
        assert_eq!(ConnectRequest::parse(&buf), Ok(connect));
    }
}
