//! Byte-level tests of the DHT codec.

use super::*;
use core::net::IpAddr;
use proptest::prelude::*;
use std::vec::Vec;

/// A put of key "k_1" (an underscore: the original's separator) and value "v".
static PUT: [u8; 50] = [
    0x03, // type: version 0, kind 3 = put
    0, 0, 0, 0, 0, 0, 0, 42, // message id 42
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // sender id, bytes 0..8
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, // sender id, bytes 8..16
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, // sender 127.0.0.1, IPv4-mapped
    0x1b, 0x58, // sender port 7000
    0x03, b'k', b'_', b'1', // key: length 3, "k_1"
    0x00, 0x01, b'v', // value: length 1, "v"
];

/// A join: take two nodes as right-hand neighbours.
static JOIN: [u8; 113] = [
    0x0c, // type: version 0, kind 12 = join
    0, 0, 0, 0, 0, 0, 0, 9, // message id 9
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, // sender 10.0.0.1, IPv4-mapped
    0x00, 0x50, // sender port 80
    0x01, // side: right
    0x02, // two nodes follow
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, // node 0: id
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // node 0: 2001:db8::2
    0x00, 0x35, // node 0: port 53
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, // node 1: id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 3, // node 1: 10.0.0.3
    0x00, 0x51, // node 1: port 81
];

/// A lock of key "k" with a secret token, for 500 ms (the lock protocol is version 1).
static LOCK: [u8; 65] = [
    0x25, // type: version 1, kind 5 = lock
    0, 0, 0, 0, 0, 0, 0, 7, // message id 7
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // sender id, bytes 0..8
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, // sender id, bytes 8..16
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, // sender 127.0.0.1, IPv4-mapped
    0x1b, 0x58, // sender port 7000
    0x01, b'k', // key: length 1, "k"
    0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, // token, bytes 0..8
    0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, 0x5e, // token, bytes 8..16
    0x00, 0x00, 0x01, 0xf4, // lease 500 ms
];

/// Its denial: the key is held for 300 ms more; by whom is not said.
static LOCK_DENIED: [u8; 49] = [
    0x27, // type: version 1, kind 7 = lock denied
    0, 0, 0, 0, 0, 0, 0, 7, // message id 7 (the Lock's)
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // sender id, bytes 0..8
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, // sender id, bytes 8..16
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, // sender 127.0.0.1, IPv4-mapped
    0x1b, 0x58, // sender port 7000
    0x01, b'k', // key: length 1, "k"
    0x00, 0x00, 0x01, 0x2c, // remaining 300 ms
];

/// A relayed put of key "k" and value "v": 175 ms of budget left, on behalf of a client at
/// 192.0.2.7:9000.
static RELAYED_PUT: [u8; 85] = [
    0x14, // type: version 0, kind 20 = relayed
    0, 0, 0, 0, 0, 0, 0, 9, // message id 9 (the relay's own)
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // sender id, bytes 0..8
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, // sender id, bytes 8..16
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, // sender 127.0.0.1, IPv4-mapped
    0x1b, 0x58, // sender port 7000
    0x00, 0xaf, // budget: 175 ms
    0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, // origin id, bytes 0..8
    0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, // origin id, bytes 8..16
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7, // origin 192.0.2.7
    0x23, 0x28, // origin port 9000
    0x03, // inner type: version 0, kind 3 = put
    0x01, b'k', // key: length 1, "k"
    0x00, 0x01, b'v', // value: length 1, "v"
];

fn origin() -> NodeAddr {
    NodeAddr {
        id: NodeId([0x33; 16]),
        addr: "192.0.2.7:9000".parse().unwrap(),
    }
}

#[test]
fn test_parse_and_emit_relayed() {
    let m = Message {
        header: Header {
            message_id: 9,
            sender: sender(),
        },
        body: Body::Relayed {
            budget_ms: 175,
            origin: origin(),
            request: RelayedRequest::Put {
                key: b"k",
                value: b"v",
            },
        },
    };
    assert_eq!(Message::parse(&RELAYED_PUT), Ok(m));
    let mut buf = [0xa5; 128];
    assert_eq!(m.encoded_len(), RELAYED_PUT.len());
    assert_eq!(m.encode(&mut buf), Ok(RELAYED_PUT.len()));
    assert_eq!(&buf[..RELAYED_PUT.len()], &RELAYED_PUT);
    assert_eq!(buf[RELAYED_PUT.len()], 0xa5);
    // The relay envelope adds RELAYED_LEN to the plain put's body.
    let plain = Message {
        header: m.header,
        body: Body::Put {
            key: b"k",
            value: b"v",
        },
    };
    assert_eq!(m.encoded_len(), plain.encoded_len() + RELAYED_LEN);
    // A relayed lock keeps the lock protocol's version in its inner type byte.
    let lock = Message {
        header: m.header,
        body: Body::Relayed {
            budget_ms: 1,
            origin: origin(),
            request: RelayedRequest::Lock {
                key: b"k",
                token: LockToken([0x5e; 16]),
                lease_ms: 500,
            },
        },
    };
    let len = lock.encode(&mut buf).unwrap();
    assert_eq!(buf[HEADER_LEN + 2 + NODE_LEN], 0x25);
    assert_eq!(&buf[HEADER_LEN + RELAYED_LEN..len], &LOCK[HEADER_LEN..]);
    assert_eq!(Message::parse(&buf[..len]), Ok(lock));
}

#[test]
fn test_relayed_carries_only_requests() {
    let mut b = RELAYED_PUT;
    let inner = HEADER_LEN + 2 + NODE_LEN;
    // Any other kind inside (here a PutAck, same body prefix; a Relayed) is malformed.
    for kind in [0x04u8, 0x14, 0x0f, 0x00, 0x1f] {
        b[inner] = kind;
        assert!(Message::parse(&b).is_err(), "inner kind {kind:#x}");
    }
    b[inner] = 0x04;
    assert_eq!(Message::parse(&b), Err(Error::BadValue));
    // A put with the lock protocol's version bits is not a put.
    b[inner] = 0x23;
    assert_eq!(Message::parse(&b), Err(Error::UnsupportedVersion(1)));
    // An origin with port 0.
    let mut b = RELAYED_PUT;
    b[inner - 2] = 0;
    b[inner - 1] = 0;
    assert_eq!(Message::parse(&b), Err(Error::BadAddress));
    // Trailing bytes after the inner body.
    let mut long = RELAYED_PUT.to_vec();
    long.push(0);
    assert_eq!(Message::parse(&long), Err(Error::TrailingBytes));
    // Nor can one be encoded with an invalid origin.
    let m = Message {
        header: Header {
            message_id: 9,
            sender: sender(),
        },
        body: Body::Relayed {
            budget_ms: 1,
            origin: NodeAddr {
                id: NodeId([0; 16]),
                addr: "0.0.0.0:0".parse().unwrap(),
            },
            request: RelayedRequest::Get { key: b"k" },
        },
    };
    assert_eq!(m.encode(&mut [0; 128]), Err(Error::BadAddress));
}

#[test]
fn test_longest_relayed_put_is_the_longest_message() {
    let key = [7u8; MAX_KEY_LEN];
    let value = std::vec![9u8; MAX_VALUE_LEN];
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::Relayed {
            budget_ms: u16::MAX,
            origin: origin(),
            request: RelayedRequest::Put {
                key: &key,
                value: &value,
            },
        },
    };
    assert_eq!(m.encoded_len(), MAX_MESSAGE_LEN);
    let mut buf = std::vec![0u8; MAX_MESSAGE_LEN];
    assert_eq!(m.encode(&mut buf), Ok(MAX_MESSAGE_LEN));
    assert_eq!(Message::parse(&buf), Ok(m));
}

fn sender() -> NodeAddr {
    NodeAddr {
        id: NodeId([
            0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
            0x22, 0x22,
        ]),
        addr: "127.0.0.1:7000".parse().unwrap(),
    }
}

#[test]
fn test_parse_put() {
    let m = Message::parse(&PUT).unwrap();
    assert_eq!(
        m.header,
        Header {
            message_id: 42,
            sender: sender()
        }
    );
    assert_eq!(
        m.body,
        Body::Put {
            key: b"k_1",
            value: b"v"
        }
    );
}

#[test]
fn test_emit_put() {
    let m = Message {
        header: Header {
            message_id: 42,
            sender: sender(),
        },
        body: Body::Put {
            key: b"k_1",
            value: b"v",
        },
    };
    let mut buf = [0xa5; 60];
    assert_eq!(m.encoded_len(), PUT.len());
    assert_eq!(m.encode(&mut buf), Ok(PUT.len()));
    assert_eq!(&buf[..PUT.len()], &PUT);
    assert_eq!(buf[PUT.len()], 0xa5);
    assert_eq!(m.encode(&mut buf[..49]), Err(Error::BufferTooSmall));
}

#[test]
fn test_parse_join() {
    let m = Message::parse(&JOIN).unwrap();
    let Body::Join { side, nodes } = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(side, Side::Right);
    let nodes: Vec<NodeAddr> = nodes.iter().collect();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        nodes[0],
        NodeAddr {
            id: NodeId([2; 16]),
            addr: "[2001:db8::2]:53".parse().unwrap()
        }
    );
    assert_eq!(
        nodes[1],
        NodeAddr {
            id: NodeId([3; 16]),
            addr: "10.0.0.3:81".parse().unwrap()
        }
    );
    let mut buf = [0xa5; 200];
    let len = m.encode(&mut buf).unwrap();
    assert_eq!(&buf[..len], &JOIN);
}

#[test]
fn test_parse_lock() {
    let m = Message::parse(&LOCK).unwrap();
    assert_eq!(m.header.message_id, 7);
    assert_eq!(
        m.body,
        Body::Lock {
            key: b"k",
            token: LockToken([0x5e; 16]),
            lease_ms: 500
        }
    );
    let mut buf = [0xa5; 80];
    assert_eq!(m.encode(&mut buf), Ok(LOCK.len()));
    assert_eq!(&buf[..LOCK.len()], &LOCK);
    assert_eq!(buf[LOCK.len()], 0xa5);
}

#[test]
fn test_emit_lock_denied() {
    let m = Message {
        header: Header {
            message_id: 7,
            sender: sender(),
        },
        body: Body::LockDenied {
            key: b"k",
            remaining_ms: 300,
        },
    };
    let mut buf = [0xa5; 60];
    assert_eq!(m.encoded_len(), LOCK_DENIED.len());
    assert_eq!(m.encode(&mut buf), Ok(LOCK_DENIED.len()));
    assert_eq!(&buf[..LOCK_DENIED.len()], &LOCK_DENIED);
    assert_eq!(buf[LOCK_DENIED.len()], 0xa5);
    assert_eq!(Message::parse(&LOCK_DENIED), Ok(m));
}

#[test]
fn test_lock_messages_of_version_0() {
    // A version-0 node's Lock (holder id where the token is now) and its LockDenied (which
    // named the holder): both refused, never taken for version 1.
    let mut b = LOCK;
    b[0] = 0x05;
    assert_eq!(Message::parse(&b), Err(Error::UnsupportedVersion(0)));
    let mut old_denied = [0u8; 65];
    old_denied.copy_from_slice(&LOCK);
    old_denied[0] = 0x07;
    assert_eq!(
        Message::parse(&old_denied),
        Err(Error::UnsupportedVersion(0))
    );
    for kind in [
        Kind::Lock,
        Kind::Locked,
        Kind::LockDenied,
        Kind::Unlock,
        Kind::Unlocked,
    ] {
        assert_eq!(kind.version(), LOCK_VERSION);
    }
    assert_eq!(Kind::Put.version(), VERSION);
    assert_eq!(Kind::Join.version(), VERSION);
}

#[test]
fn test_lock_token_is_secret_in_debug_and_derived_stably() {
    let t = LockToken::derive(b"secret", b"key");
    assert_eq!(std::format!("{t:?}"), "LockToken(..)");
    assert_eq!(t, LockToken::derive(b"secret", b"key"));
    assert_ne!(t, LockToken::derive(b"secret", b"kez"));
    assert_ne!(t, LockToken::derive(b"secreT", b"key"));
    // The secret's length is hashed too: ("ab", "c") and ("a", "bc") differ.
    assert_ne!(
        LockToken::derive(b"ab", b"c"),
        LockToken::derive(b"a", b"bc")
    );
}

#[test]
fn test_challenge_and_echo_are_header_only() {
    for (body, kind) in [(Body::Challenge, 0x10u8), (Body::Echo, 0x11)] {
        let m = Message {
            header: Header {
                message_id: 0x0102_0304_0506_0708,
                sender: sender(),
            },
            body,
        };
        let mut buf = [0xa5; 50];
        assert_eq!(m.encode(&mut buf), Ok(HEADER_LEN));
        assert_eq!(buf[0], kind); // type: version 0, kind 16 / 17
        assert_eq!(&buf[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]); // the cookie, as the message id
        assert_eq!(&buf[9..HEADER_LEN], &PUT[9..HEADER_LEN]); // sender
        assert_eq!(buf[HEADER_LEN], 0xa5);
        assert_eq!(Message::parse(&buf[..HEADER_LEN]), Ok(m));
        buf[HEADER_LEN] = 0;
        assert_eq!(
            Message::parse(&buf[..HEADER_LEN + 1]),
            Err(Error::TrailingBytes)
        );
    }
}

#[test]
fn test_withheld_names_the_request_and_carries_the_cookie() {
    let m = Message {
        header: Header {
            message_id: 0x0102_0304_0506_0708,
            sender: sender(),
        },
        body: Body::Withheld {
            cookie: 0x1112_1314_1516_1718,
        },
    };
    let mut buf = [0xa5; 60];
    assert_eq!(m.encoded_len(), 51);
    assert_eq!(m.encode(&mut buf), Ok(51));
    assert_eq!(buf[0], 23); // type: version 0, kind 23
    assert_eq!(&buf[1..9], &[1, 2, 3, 4, 5, 6, 7, 8]); // the withheld request's id
    assert_eq!(&buf[9..HEADER_LEN], &PUT[9..HEADER_LEN]); // sender
    assert_eq!(
        &buf[HEADER_LEN..51],
        &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
    ); // the cookie
    assert_eq!(Message::parse(&buf[..51]), Ok(m));
    assert_eq!(Message::parse(&buf[..50]), Err(Error::Truncated));
    assert_eq!(Message::parse(&buf[..52]), Err(Error::TrailingBytes));
    assert_eq!(m.encode(&mut buf[..50]), Err(Error::BufferTooSmall));
}

/// A Withheld for request 7, cookie 0x0102..08, written out byte by byte.
static WITHHELD: [u8; 51] = [
    0x17, // type: version 0, kind 23 = withheld
    0, 0, 0, 0, 0, 0, 0, 7, // message id 7: the request whose answer is withheld
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, // sender 10.0.0.1, IPv4-mapped
    0x00, 0x50, // sender port 80
    1, 2, 3, 4, 5, 6, 7, 8, // the cookie to echo
];

#[test]
fn test_withheld_from_bytes() {
    let m = Message::parse(&WITHHELD).unwrap();
    assert_eq!(m.header.message_id, 7);
    assert_eq!(m.header.sender.addr, "10.0.0.1:80".parse().unwrap());
    assert_eq!(
        m.body,
        Body::Withheld {
            cookie: 0x0102_0304_0506_0708
        }
    );
    let mut buf = [0u8; 51];
    assert_eq!(m.encode(&mut buf), Ok(51));
    assert_eq!(buf, WITHHELD);
}

/// A RouteRequest for columns 0, 2 and 15 of row 1.
static ROUTE_REQUEST: [u8; 46] = [
    0x12, // type: version 0, kind 18 = route request
    0, 0, 0, 0, 0, 0, 0, 5, // message id 5
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, // sender 10.0.0.1, IPv4-mapped
    0x00, 0x50, // sender port 80
    0x01, // row 1
    0x80, 0x05, // columns: bits 15, 2 and 0
];
/// Its answer: one node of row 1.
static ROUTE: [u8; 79] = [
    0x13, // type: version 0, kind 19 = route
    0, 0, 0, 0, 0, 0, 0, 5, // message id 5 (the request's)
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 3, // sender 10.0.0.3
    0x00, 0x51, // sender port 81
    0x01, // row 1
    0x01, // one node follows
    0x12, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, // node 0: id
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // node 0: 2001:db8::2
    0x00, 0x35, // node 0: port 53
];

#[test]
fn test_parse_and_emit_route() {
    let m = Message::parse(&ROUTE_REQUEST).unwrap();
    assert_eq!(m.header.message_id, 5);
    assert_eq!(
        m.body,
        Body::RouteRequest {
            row: 1,
            columns: 0x8005
        }
    );
    let mut buf = [0xa5; 100];
    let len = m.encode(&mut buf).unwrap();
    assert_eq!(&buf[..len], &ROUTE_REQUEST);
    assert_eq!(buf[len], 0xa5);
    let m = Message::parse(&ROUTE).unwrap();
    let Body::Route { row, nodes } = m.body else {
        panic!("{m:?}")
    };
    assert_eq!(row, 1);
    let nodes: Vec<NodeAddr> = nodes.iter().collect();
    let mut id = [2; 16];
    id[0] = 0x12;
    assert_eq!(
        nodes,
        [NodeAddr {
            id: NodeId(id),
            addr: "[2001:db8::2]:53".parse().unwrap()
        }]
    );
    let len = m.encode(&mut buf).unwrap();
    assert_eq!(&buf[..len], &ROUTE);
    assert_eq!(buf[len], 0xa5);
}

/// A client's ViewRequest: the header alone.
static VIEW_REQUEST: [u8; 43] = [
    0x15, // type: version 0, kind 21 = view request
    0, 0, 0, 0, 0, 0, 0, 9, // message id 9
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, // sender 10.0.0.1, IPv4-mapped
    0x00, 0x50, // sender port 80
];
/// Its answer: one node on the left, two on the right.
static VIEW: [u8; 147] = [
    0x16, // type: version 0, kind 22 = view
    0, 0, 0, 0, 0, 0, 0, 9, // message id 9 (the request's)
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, // sender id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 3, // sender 10.0.0.3
    0x00, 0x51, // sender port 81
    0x01, // left: one node follows
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, // left 0: id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2, // left 0: 10.0.0.2
    0x00, 0x52, // left 0: port 82
    0x02, // right: two nodes follow
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, // right 0: id
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 4, // right 0: 10.0.0.4
    0x00, 0x53, // right 0: port 83
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, // right 1: id
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, // right 1: 2001:db8::5
    0x00, 0x54, // right 1: port 84
];

#[test]
fn test_parse_and_emit_view() {
    let m = Message::parse(&VIEW_REQUEST).unwrap();
    assert_eq!(m.header.message_id, 9);
    assert_eq!(m.body, Body::ViewRequest);
    let mut buf = [0xa5; 200];
    let len = m.encode(&mut buf).unwrap();
    assert_eq!(&buf[..len], &VIEW_REQUEST);
    assert_eq!(buf[len], 0xa5);
    let m = Message::parse(&VIEW).unwrap();
    let Body::View { left, right } = m.body else {
        panic!("{m:?}")
    };
    let node = |b: u8, addr: &str| NodeAddr {
        id: NodeId([b; 16]),
        addr: addr.parse().unwrap(),
    };
    assert_eq!(left.iter().collect::<Vec<_>>(), [node(2, "10.0.0.2:82")]);
    assert_eq!(
        right.iter().collect::<Vec<_>>(),
        [node(4, "10.0.0.4:83"), node(5, "[2001:db8::5]:84")]
    );
    assert_eq!(m.encoded_len(), VIEW.len());
    let len = m.encode(&mut buf).unwrap();
    assert_eq!(&buf[..len], &VIEW);
    assert_eq!(buf[len], 0xa5);
}

#[test]
fn test_view_side_over_limit() {
    // A side of VIEW_SIDE + 1 nodes is refused both ways, although it is a valid node list.
    let n = VIEW_SIDE + 1;
    let mut bytes = VIEW[..HEADER_LEN].to_vec();
    bytes.push(n as u8);
    for _ in 0..n {
        bytes.extend_from_slice(&VIEW[HEADER_LEN + 1..HEADER_LEN + 1 + NODE_LEN]);
    }
    bytes.push(0);
    assert_eq!(Message::parse(&bytes), Err(Error::TooLarge));
    let nodes: Vec<NodeAddr> = (0..n)
        .map(|i| NodeAddr {
            id: NodeId([i as u8; 16]),
            addr: ([10, 0, 0, 1], 80 + i as u16).into(),
        })
        .collect();
    let m = Message {
        header: Message::parse(&VIEW).unwrap().header,
        body: Body::View {
            left: NodeSet::Slice(&[]),
            right: NodeSet::Slice(&nodes),
        },
    };
    assert_eq!(m.encode(&mut [0; 512]), Err(Error::TooLarge));
    // Full sides fit a sealed datagram.
    let full = Message {
        body: Body::View {
            left: NodeSet::Slice(&nodes[..VIEW_SIDE]),
            right: NodeSet::Slice(&nodes[1..]),
        },
        ..m
    };
    assert_eq!(full.encoded_len(), 453);
    assert!(full.encoded_len() <= crate::seal::MAX_PLAINTEXT_LEN);
}

#[test]
fn test_every_prefix_truncated() {
    for bytes in [
        &PUT[..],
        &JOIN[..],
        &LOCK[..],
        &LOCK_DENIED[..],
        &ROUTE_REQUEST[..],
        &ROUTE[..],
        &VIEW_REQUEST[..],
        &VIEW[..],
        &RELAYED_PUT[..],
        &WITHHELD[..],
    ] {
        for len in 0..bytes.len() {
            assert_eq!(
                Message::parse(&bytes[..len]),
                Err(Error::Truncated),
                "prefix {len}"
            );
        }
    }
}

#[test]
fn test_bad_input() {
    let mut b = PUT;
    b[0] = 0x23; // version 1
    assert_eq!(Message::parse(&b), Err(Error::UnsupportedVersion(1)));
    for kind in [0u8, 24, 31] {
        b[0] = kind;
        assert_eq!(Message::parse(&b), Err(Error::UnknownType(kind)));
    }
    let mut b = PUT;
    b[41] = 0;
    b[42] = 0; // sender port 0
    assert_eq!(Message::parse(&b), Err(Error::BadAddress));
    let mut b = PUT;
    b[25..41].fill(0); // sender ::
    assert_eq!(Message::parse(&b), Err(Error::BadAddress));
    let mut long = [0u8; 51];
    long[..50].copy_from_slice(&PUT);
    assert_eq!(Message::parse(&long), Err(Error::TrailingBytes));
    let mut b = PUT;
    b[43] = 4; // key length 4: runs into the value
    assert_eq!(Message::parse(&b), Err(Error::Truncated));
    let mut b = JOIN;
    b[43] = 2; // side 2
    assert_eq!(Message::parse(&b), Err(Error::BadValue));
    let mut b = JOIN;
    b[77] = 0;
    b[78] = 0; // node 0: port 0
    assert_eq!(Message::parse(&b), Err(Error::BadAddress));
    let mut b = JOIN;
    b[44] = 33; // more than MAX_NODE_LIST
    assert_eq!(Message::parse(&b), Err(Error::TooLarge));
    // A Value whose presence flag is neither 0 nor 1.
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::Value {
            key: b"k",
            value: None,
        },
    };
    let mut buf = [0u8; 64];
    let len = m.encode(&mut buf).unwrap();
    buf[len - 1] = 2;
    assert_eq!(Message::parse(&buf[..len]), Err(Error::BadValue));
}

#[test]
fn test_encode_limits() {
    let key = [b'k'; 256];
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::Get { key: &key },
    };
    let mut buf = [0u8; 400];
    assert_eq!(m.encode(&mut buf), Err(Error::TooLarge));
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::Get { key: &key[..255] },
    };
    assert_eq!(m.encode(&mut buf), Ok(HEADER_LEN + 256));
    assert!(m.fits_datagram());
    let bad = NodeAddr {
        id: NodeId([1; 16]),
        addr: "10.0.0.1:0".parse().unwrap(),
    };
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::RequestInsertion { joining: bad },
    };
    assert_eq!(m.encode(&mut buf), Err(Error::BadAddress));
}

#[test]
fn error_codes_are_open() {
    for code in 0..=u16::MAX {
        assert_eq!(ErrorCode::from_u16(code).to_u16(), code);
    }
    assert_eq!(ErrorCode::from_u16(999), ErrorCode::Unknown(999));
}

#[test]
fn node_ids_are_stable() {
    // The first 16 bytes of SHA-256("node-1"), as `printf node-1 | sha256sum` prints them:
    // fixed forever, whatever the Rust version or platform.
    let expected = 0x3597_1be6_e9bb_024a_8955_82fe_0e42_e048_u128;
    assert_eq!(NodeId::from_name(b"node-1"), NodeId::from_u128(expected));
    let a = NodeId::from_u128(10);
    let b = NodeId::from_u128(3);
    assert_eq!(a.distance_to(b), u128::MAX - 6);
    assert_eq!(b.distance_to(a), 7);
}

fn arb_node() -> impl Strategy<Value = NodeAddr> {
    (any::<[u8; 16]>(), any::<[u8; 4]>(), 1..=u16::MAX).prop_map(|(id, ip, port)| NodeAddr {
        id: NodeId(id),
        addr: SocketAddr::new(
            IpAddr::from(if ip == [0; 4] { [1, 0, 0, 0] } else { ip }),
            port,
        ),
    })
}

fn check_roundtrip(m: &Message<'_>) -> Result<(), TestCaseError> {
    let mut buf = std::vec![0xa5u8; m.encoded_len() + 8];
    let len = m.encode(&mut buf).unwrap();
    prop_assert_eq!(len, m.encoded_len());
    prop_assert_eq!(&Message::parse(&buf[..len]).unwrap(), m);
    for cut in 0..len {
        prop_assert_eq!(Message::parse(&buf[..cut]), Err(Error::Truncated));
    }
    Ok(())
}

proptest! {
    #[test]
    fn roundtrip_kv(
        id: u64,
        from in arb_node(),
        key in proptest::collection::vec(any::<u8>(), 0..=255),
        value in proptest::collection::vec(any::<u8>(), 0..600),
        token: [u8; 16],
        lease: u32,
        origin in arb_node(),
        budget: u16,
        which in 0u8..15,
    ) {
        let h = Header { message_id: id, sender: from };
        let token = LockToken(token);
        let body = match which {
            11 => Body::Relayed { budget_ms: budget, origin, request: RelayedRequest::Get { key: &key } },
            12 => Body::Relayed { budget_ms: budget, origin, request: RelayedRequest::Put { key: &key, value: &value } },
            13 => Body::Relayed { budget_ms: budget, origin, request: RelayedRequest::Lock { key: &key, token, lease_ms: lease } },
            14 => Body::Relayed { budget_ms: budget, origin, request: RelayedRequest::Unlock { key: &key, token } },
            0 => Body::Get { key: &key },
            1 => Body::Value { key: &key, value: Some(&value) },
            2 => Body::Value { key: &key, value: None },
            3 => Body::Put { key: &key, value: &value },
            4 => Body::PutAck { key: &key },
            5 => Body::Lock { key: &key, token, lease_ms: lease },
            6 => Body::Locked { key: &key, token, lease_ms: lease },
            7 => Body::LockDenied { key: &key, remaining_ms: lease },
            8 => Body::Unlock { key: &key, token },
            9 => Body::Unlocked { key: &key },
            _ => Body::Replicate { key: &key, value: &value },
        };
        check_roundtrip(&Message { header: h, body })?;
    }

    #[test]
    fn roundtrip_ring(
        id: u64,
        from in arb_node(),
        joining in arb_node(),
        nodes in proptest::collection::vec(arb_node(), 0..=MAX_NODE_LIST),
        right: bool,
        code: u16,
        row: u8,
        which in 0u8..9,
    ) {
        let h = Header { message_id: id, sender: from };
        let side = if right { Side::Right } else { Side::Left };
        let body = match which {
            0 => Body::InitConnect,
            1 => Body::RequestInsertion { joining },
            2 => Body::Join { side, nodes: NodeSet::Slice(&nodes) },
            3 => Body::Leave { nodes: NodeSet::Slice(&nodes) },
            4 => Body::RouteRequest { row, columns: code },
            5 => Body::Route { row, nodes: NodeSet::Slice(&nodes) },
            6 => Body::ViewRequest,
            7 => {
                let side = |skip: usize| NodeSet::Slice(&nodes[skip.min(nodes.len())..][..VIEW_SIDE.min(nodes.len().saturating_sub(skip))]);
                Body::View { left: side(0), right: side(code as usize % 8) }
            }
            _ => Body::Error { code: ErrorCode::from_u16(code) },
        };
        check_roundtrip(&Message { header: h, body })?;
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(m) = Message::parse(&bytes) {
            // Whatever parses re-encodes to the same bytes: the format is canonical.
            let mut buf = std::vec![0u8; bytes.len()];
            prop_assert_eq!(m.encode(&mut buf), Ok(bytes.len()));
            prop_assert_eq!(buf, bytes);
        }
    }
}

#[test]
fn mapped_unspecified_node_is_refused_both_ways() {
    let bad = NodeAddr {
        id: NodeId([1; 16]),
        addr: "[::ffff:0.0.0.0]:80".parse().unwrap(),
    };
    let m = Message {
        header: Header {
            message_id: 1,
            sender: sender(),
        },
        body: Body::RequestInsertion { joining: bad },
    };
    let mut buf = [0u8; 128];
    assert_eq!(m.encode(&mut buf), Err(Error::BadAddress));
    let mut b = PUT;
    b[25..41].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert_eq!(Message::parse(&b), Err(Error::BadAddress));
}

/// A relayed get, encoded.
fn relayed_get() -> Vec<u8> {
    let m = Message {
        header: Header {
            message_id: 9,
            sender: sender(),
        },
        body: Body::Relayed {
            budget_ms: 300,
            origin: sender(),
            request: RelayedRequest::Get { key: b"colour" },
        },
    };
    let mut buf = [0u8; 128];
    let n = m.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

proptest! {
    /// The fast path for puts, replicas and relayed puts and gets reads exactly what the
    /// general path reads, and leaves everything else (damaged, truncated, padded or other
    /// messages) to it.
    #[test]
    fn fast_path_agrees_with_the_general_one(
        mutations in proptest::collection::vec((0usize..100, any::<u8>()), 0..3),
        cut in prop_oneof![Just(0usize), 0usize..100],
        extra in prop_oneof![Just(0usize), 0usize..3],
        base in 0usize..4,
    ) {
        let mut bytes = match base {
            0 | 1 => PUT.to_vec(),
            2 => RELAYED_PUT.to_vec(),
            _ => relayed_get(),
        };
        if base == 1 {
            bytes[0] = 0x0e;
        }
        for (at, byte) in mutations {
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
        }
        bytes.truncate(bytes.len().saturating_sub(cut % 8));
        bytes.extend(core::iter::repeat_n(0, extra));
        let general = Message::parse_any(&bytes);
        if let Some(fast) = Message::parse_data(&bytes) {
            prop_assert_eq!(Ok(fast), general);
        }
        prop_assert_eq!(Message::parse(&bytes), general);
    }
}
