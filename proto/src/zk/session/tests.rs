//! The session against a scripted fake server, on virtual time: bytes in, bytes out.

use super::*;
use crate::Error;
use crate::zk::path::PathError;
use crate::zk::{
    AUTH_XID, Acl, AddWatchMode, AddWatchRequest, AuthPacket, ConnectRequest, ConnectResponse,
    Create2Response, CreateMode, CreateRequest, EventType, FrameDecoder, FrameStatus,
    GetDataResponse, List, MultiOp, MultiResult, NOTIFICATION_XID, PING_XID, PathRequest,
    PathVersionRequest, PathWatchRequest, Reply, ReplyBody, ReplyHeader, Request, RequestBody,
    RequestHeader, SET_WATCHES_XID, SetDataRequest, SetWatches, SetWatches2, Stat, WatcherEvent,
    WatcherType, WatchesRequest, ZkStr,
};
use std::format;
use std::string::{String, ToString};
use std::vec;
use std::vec::Vec as StdVec;

type Session = ZkSession<StdVec<u8>, 16, 16, 1024>;

const T0: Instant = Instant::from_millis(1_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn new_session() -> Session {
    let config = Config {
        session_timeout: ms(30_000),
        connect_timeout: ms(5_000),
        ..Config::default()
    };
    ZkSession::new(config, vec![0; 8192], vec![0; 8192])
}

/// An event, owned, so that tests can collect and compare them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Connected {
        session_id: i64,
        timeout_ms: i32,
        reattached: bool,
    },
    Disconnected(DisconnectReason),
    Expired,
    AuthFailed,
    Closed,
    Reply {
        xid: Xid,
        op: OpCode,
        zxid: i64,
        result: core::result::Result<String, ErrorCode>,
    },
    Watch {
        watcher: Option<u32>,
        kind: Option<WatchKind>,
        event_type: EventType,
        path: String,
    },
}

fn own(event: Event<'_>) -> Ev {
    match event {
        Event::Connected {
            session_id,
            timeout_ms,
            reattached,
            ..
        } => Ev::Connected {
            session_id,
            timeout_ms,
            reattached,
        },
        Event::Disconnected { reason } => Ev::Disconnected(reason),
        Event::Expired => Ev::Expired,
        Event::AuthFailed => Ev::AuthFailed,
        Event::Closed => Ev::Closed,
        Event::Reply(r) => Ev::Reply {
            xid: r.xid,
            op: r.op,
            zxid: r.zxid,
            result: r.result.map(|body| format!("{body:?}")),
        },
        Event::Watch(w) => Ev::Watch {
            watcher: w.watcher.map(|id| id.0),
            kind: w.kind,
            event_type: w.event_type,
            path: w.path.to_string(),
        },
    }
}

fn events(s: &mut Session) -> StdVec<Ev> {
    let mut out = StdVec::new();
    while let Some(event) = s.poll_event() {
        out.push(own(event));
        assert!(out.len() < 10_000, "runaway events");
    }
    out
}

/// Everything the session has to send, as one byte string.
fn drain(s: &mut Session, now: Instant) -> StdVec<u8> {
    let mut out = StdVec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.poll_transmit(now, &mut buf);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Splits a byte string into frame payloads.
fn frames(mut bytes: &[u8]) -> StdVec<StdVec<u8>> {
    let decoder = FrameDecoder::new();
    let mut out = StdVec::new();
    while !bytes.is_empty() {
        match decoder.decode(bytes).unwrap() {
            FrameStatus::Complete { frame, consumed } => {
                out.push(frame.to_vec());
                bytes = &bytes[consumed..];
            }
            FrameStatus::Partial { .. } => panic!("partial frame in {bytes:?}"),
        }
    }
    out
}

/// The requests the session sent (after the handshake).
fn requests(s: &mut Session, now: Instant) -> StdVec<StdVec<u8>> {
    frames(&drain(s, now))
}

fn header_of(payload: &[u8]) -> RequestHeader {
    RequestHeader::parse(&payload[..8]).unwrap()
}

fn connect_response(timeout: i32, session_id: i64, passwd: &[u8]) -> StdVec<u8> {
    let response = ConnectResponse {
        protocol_version: 0,
        timeout,
        session_id,
        passwd: Some(passwd),
        read_only: Some(false),
    };
    let mut buf = vec![0; response.framed_len()];
    response.encode_framed(&mut buf).unwrap();
    buf
}

fn reply(xid: Xid, zxid: i64, err: ErrorCode, body: ReplyBody<'_>) -> StdVec<u8> {
    let reply = Reply {
        header: ReplyHeader { xid, zxid, err },
        body,
    };
    let mut buf = vec![0; reply.framed_len()];
    reply.encode_framed(&mut buf).unwrap();
    buf
}

fn notification(event_type: EventType, path: &str) -> StdVec<u8> {
    reply(
        NOTIFICATION_XID,
        -1,
        ErrorCode::Ok,
        ReplyBody::Notification(WatcherEvent {
            event_type,
            state: crate::zk::KeeperState::SyncConnected,
            path: ZkStr::new(path),
        }),
    )
}

fn feed(s: &mut Session, now: Instant, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = s.handle_bytes(now, rest);
        assert!(n > 0, "receive buffer full");
        rest = &rest[n..];
    }
}

const PASSWD: [u8; 16] = *b"0123456789abcdef";
const SID: i64 = 0x1234_5678_9abc;

/// A session connected to the fake server with a 6 s negotiated timeout.
fn connected() -> Session {
    let mut s = new_session();
    s.handle_connected(T0);
    let hello = frames(&drain(&mut s, T0));
    assert_eq!(hello.len(), 1);
    feed(&mut s, T0, &connect_response(6_000, SID, &PASSWD));
    assert_eq!(
        events(&mut s),
        [Ev::Connected {
            session_id: SID,
            timeout_ms: 6_000,
            reattached: false
        }]
    );
    s
}

fn get_data(path: &str, watch: bool) -> RequestBody<'_> {
    RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    })
}

fn exists(path: &str, watch: bool) -> RequestBody<'_> {
    RequestBody::Exists(PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    })
}

fn stat(version: i32) -> Stat {
    Stat {
        version,
        ..Stat::default()
    }
}

fn data_reply<'a>(data: &'a [u8], version: i32) -> ReplyBody<'a> {
    ReplyBody::Data(GetDataResponse {
        data: Some(data),
        stat: stat(version),
    })
}

fn ok_reply(xid: Xid, zxid: i64, op: OpCode) -> Ev {
    let _ = op;
    Ev::Reply {
        xid,
        op,
        zxid,
        result: Ok("Empty".into()),
    }
}

fn failed(xid: Xid, op: OpCode, code: ErrorCode) -> Ev {
    Ev::Reply {
        xid,
        op,
        zxid: 0,
        result: Err(code),
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------------------------

#[test]
fn test_handshake_as_the_java_client() {
    let mut s = new_session();
    assert_eq!(s.state(), SessionState::Disconnected);
    assert!(s.wants_connect(T0));
    // A request submitted before the connection waits for the handshake.
    assert_eq!(s.submit(T0, get_data("/a", false)), Ok(1));
    assert_eq!(s.poll_transmit(T0, &mut [0; 4096]), 0);
    s.handle_connecting(T0);
    assert_eq!(s.state(), SessionState::Connecting);
    s.handle_connected(T0);
    assert_eq!(s.state(), SessionState::Handshaking);
    let bytes = drain(&mut s, T0);
    assert_eq!(
        bytes,
        [
            0, 0, 0, 45, // frame length
            0, 0, 0, 0, // protocolVersion 0
            0, 0, 0, 0, 0, 0, 0, 0, // lastZxidSeen 0
            0, 0, 0x75, 0x30, // timeOut 30000
            0, 0, 0, 0, 0, 0, 0, 0, // sessionId 0
            0, 0, 0, 16, // passwd length
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // passwd
            0, // readOnly false
        ]
    );
    // Nothing else until the ConnectResponse.
    assert!(!s.has_transmit());
    feed(&mut s, T0, &connect_response(6_000, SID, &PASSWD));
    assert_eq!(
        events(&mut s),
        [Ev::Connected {
            session_id: SID,
            timeout_ms: 6_000,
            reattached: false
        }]
    );
    assert_eq!(s.state(), SessionState::Connected);
    assert_eq!(s.session_id(), SID);
    assert_eq!(s.passwd(), PASSWD);
    assert_eq!(s.negotiated_timeout(), ms(6_000));
    assert_eq!(s.read_timeout(), ms(4_000));
    let sent = requests(&mut s, T0);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        Request::parse(&sent[0]).unwrap(),
        Request {
            xid: 1,
            body: get_data("/a", false)
        }
    );
}

#[test]
fn test_handshake_in_pieces_and_connect_timeout() {
    let mut s = new_session();
    s.handle_connected(T0);
    drain(&mut s, T0);
    let response = connect_response(6_000, SID, &PASSWD);
    for (i, byte) in response.iter().enumerate() {
        feed(&mut s, T0, &[*byte]);
        let got = events(&mut s);
        if i + 1 < response.len() {
            assert!(got.is_empty(), "event after {} bytes: {got:?}", i + 1);
        } else {
            assert_eq!(got.len(), 1);
        }
    }
    // A second session never gets its answer.
    let mut s = new_session();
    s.submit(T0, get_data("/a", false)).unwrap();
    s.handle_connecting(T0);
    assert_eq!(s.poll_timeout(), Some(T0 + ms(5_000)));
    s.handle_connected(T0 + ms(100));
    drain(&mut s, T0);
    s.handle_timeout(T0 + ms(4_999));
    assert_eq!(s.state(), SessionState::Handshaking);
    s.handle_timeout(T0 + ms(5_000));
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::ConnectTimeout),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
    // Failed attempts back off: 10 ms, 20 ms, ...
    assert!(!s.wants_connect(T0 + ms(5_009)));
    assert!(s.wants_connect(T0 + ms(5_010)));
}

#[test]
fn test_handshake_refuses_garbage() {
    let mut s = new_session();
    s.handle_connected(T0);
    drain(&mut s, T0);
    // A 10-byte "ConnectResponse".
    let mut bytes = vec![0, 0, 0, 10];
    bytes.extend_from_slice(&[0; 10]);
    feed(&mut s, T0, &bytes);
    assert_eq!(
        events(&mut s),
        [Ev::Disconnected(DisconnectReason::Protocol(
            Error::Truncated
        ))]
    );
    assert_eq!(s.state(), SessionState::Disconnected);
}

// ---------------------------------------------------------------------------------------------
// Requests and replies
// ---------------------------------------------------------------------------------------------

#[test]
fn test_pipelined_requests_go_out_in_one_write_and_replies_in_order() {
    let mut s = connected();
    for path in ["/a", "/b", "/c"] {
        s.submit(T0, get_data(path, false)).unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = s.poll_transmit(T0, &mut buf);
    let sent = frames(&buf[..n]);
    assert_eq!(sent.len(), 3, "all three frames in one poll_transmit");
    assert_eq!(s.poll_transmit(T0, &mut buf), 0);
    let xids: StdVec<Xid> = sent.iter().map(|f| header_of(f).xid).collect();
    assert_eq!(xids, [1, 2, 3]);

    let mut stream = reply(1, 10, ErrorCode::Ok, data_reply(b"A", 1));
    stream.extend(reply(2, 11, ErrorCode::NoNode, ReplyBody::Empty));
    stream.extend(reply(3, 12, ErrorCode::Ok, data_reply(b"C", 3)));
    feed(&mut s, T0, &stream);
    let mut seen = StdVec::new();
    while let Some(event) = s.poll_event() {
        let Event::Reply(r) = event else {
            panic!("{event:?}")
        };
        match r.result {
            Ok(ReplyBody::Data(d)) => seen.push((r.xid, r.zxid, Some(d.data.unwrap().to_vec()))),
            Err(ErrorCode::NoNode) => seen.push((r.xid, r.zxid, None)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            (1, 10, Some(b"A".to_vec())),
            (2, 11, None),
            (3, 12, Some(b"C".to_vec()))
        ]
    );
    assert_eq!(s.last_zxid(), 12);
    assert_eq!(s.pending(), 0);
    assert_eq!(s.stats().replies, 3);
}

#[test]
fn test_out_of_order_reply_tears_down_and_fails_every_request() {
    let mut s = connected();
    for path in ["/a", "/b", "/c"] {
        s.submit(T0, get_data(path, false)).unwrap();
    }
    drain(&mut s, T0);
    // Xid 2 answered before xid 1.
    let mut stream = reply(2, 11, ErrorCode::Ok, data_reply(b"B", 1));
    stream.extend(reply(1, 10, ErrorCode::Ok, data_reply(b"A", 1)));
    feed(&mut s, T0, &stream);
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::UnexpectedXid {
                expected: Some(1),
                got: 2
            }),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
            failed(2, OpCode::GetData, ErrorCode::ConnectionLoss),
            failed(3, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
    assert_eq!(s.state(), SessionState::Disconnected);
    assert!(!s.state().has_connection());
    assert_eq!(s.pending(), 0);
    assert_eq!(s.stats().protocol_errors, 1);
    // A reply with nothing pending is a violation too.
    let mut s = connected();
    feed(&mut s, T0, &reply(7, 1, ErrorCode::Ok, ReplyBody::Empty));
    assert_eq!(
        events(&mut s),
        [Ev::Disconnected(DisconnectReason::UnexpectedXid {
            expected: None,
            got: 7
        })]
    );
}

#[test]
fn test_reply_that_does_not_parse_tears_down() {
    let mut s = connected();
    s.submit(T0, get_data("/a", false)).unwrap();
    drain(&mut s, T0);
    // A getData reply that ends inside its Stat.
    let mut bytes = reply(1, 10, ErrorCode::Ok, data_reply(b"A", 1));
    bytes.truncate(bytes.len() - 1);
    let len = (bytes.len() - 4) as i32;
    bytes[..4].copy_from_slice(&len.to_be_bytes());
    feed(&mut s, T0, &bytes);
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::Protocol(Error::Truncated)),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
}

#[test]
fn test_disconnect_fails_sent_and_queued_requests_and_later_ones_wait() {
    let mut s = connected();
    s.submit(T0, get_data("/sent", false)).unwrap();
    drain(&mut s, T0);
    s.submit(T0, get_data("/queued", false)).unwrap();
    s.handle_disconnected(T0);
    // Submitted while disconnected: kept for the next connection.
    assert_eq!(s.submit(T0, get_data("/later", false)), Ok(3));
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::Transport),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
            failed(2, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
    assert!(
        s.wants_connect(T0),
        "reconnect at once after a working connection"
    );
    s.handle_connected(T0);
    drain(&mut s, T0);
    feed(&mut s, T0, &connect_response(6_000, SID, &PASSWD));
    assert_eq!(events(&mut s).len(), 1);
    let sent = requests(&mut s, T0);
    assert_eq!(sent.len(), 1);
    assert_eq!(header_of(&sent[0]).xid, 3);
}

#[test]
fn test_every_submitted_request_gets_exactly_one_reply_event() {
    // Connection losses at random moments; count outcomes per xid.
    let mut s = connected();
    let mut submitted = StdVec::new();
    let mut outcomes = std::collections::BTreeMap::<Xid, usize>::new();
    let mut zxid = 100;
    for round in 0..20u64 {
        let now = T0 + ms(round);
        for i in 0..3 {
            if let Ok(xid) = s.submit(now, get_data(if i == 0 { "/x" } else { "/y" }, false)) {
                submitted.push(xid);
            }
        }
        let sent = requests(&mut s, now);
        // Answer some of what was sent.
        for frame in sent.iter().take((round % 3) as usize) {
            let h = header_of(frame);
            zxid += 1;
            feed(
                &mut s,
                now,
                &reply(h.xid, zxid, ErrorCode::Ok, data_reply(b"d", 0)),
            );
        }
        if round % 4 == 3 {
            s.handle_disconnected(now);
        }
        for e in events(&mut s) {
            if let Ev::Reply { xid, .. } = e {
                *outcomes.entry(xid).or_default() += 1;
            }
        }
        if s.wants_connect(now) {
            s.handle_connected(now);
            drain(&mut s, now);
            feed(&mut s, now, &connect_response(6_000, SID, &PASSWD));
            for e in events(&mut s) {
                if let Ev::Reply { xid, .. } = e {
                    *outcomes.entry(xid).or_default() += 1;
                }
            }
        }
    }
    s.handle_disconnected(T0 + ms(100));
    for e in events(&mut s) {
        if let Ev::Reply { xid, .. } = e {
            *outcomes.entry(xid).or_default() += 1;
        }
    }
    assert!(submitted.len() > 20);
    for xid in submitted {
        assert_eq!(outcomes.get(&xid), Some(&1), "xid {xid}");
    }
}

#[test]
fn test_capacity_and_oversized_requests_are_refused_at_submit() {
    let mut s = connected();
    for _ in 0..16 {
        s.submit(T0, get_data("/a", false)).unwrap();
    }
    assert_eq!(s.submit(T0, get_data("/a", false)), Err(Error::Capacity));
    assert!(!s.can_submit());

    // A frame above the configured maximum is refused locally, not sent.
    let config = Config {
        max_frame_len: 100,
        ..Config::default()
    };
    let mut s: Session = ZkSession::new(config, vec![0; 8192], vec![0; 8192]);
    let data = [7u8; 100];
    let set = RequestBody::SetData(SetDataRequest {
        path: ZkStr::new("/a"),
        data: Some(&data),
        version: -1,
    });
    assert_eq!(s.submit(T0, set), Err(Error::TooLarge));
    assert_eq!(s.pending(), 0);
    // One that can never fit the transmit buffer.
    let mut s: Session = ZkSession::new(Config::default(), vec![0; 64], vec![0; 8192]);
    assert_eq!(s.submit(T0, set), Err(Error::BufferTooSmall));
    // The session sends ping, auth and setWatches itself.
    assert_eq!(
        s.submit(T0, RequestBody::Ping),
        Err(Error::UnexpectedOp(11))
    );
}

#[test]
fn test_transmit_in_small_pieces() {
    let mut s = connected();
    s.submit(T0, get_data("/first", false)).unwrap();
    s.submit(T0, get_data("/second", false)).unwrap();
    let mut bytes = StdVec::new();
    let mut buf = [0u8; 5];
    loop {
        let n = s.poll_transmit(T0, &mut buf);
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        // A ping that comes due is never put inside a frame, and is not needed while
        // requests go out.
        if s.tx_tail > s.tx_head {
            s.ping_wanted = true;
        }
    }
    let sent = frames(&bytes);
    let xids: StdVec<Xid> = sent.iter().map(|f| header_of(f).xid).collect();
    assert_eq!(xids, [1, 2]);
    assert!(!s.ping_wanted);
    // A frame the session makes up is written whole or not at all.
    s.ping_wanted = true;
    assert_eq!(s.poll_transmit(T0, &mut buf), 0);
    assert_eq!(s.poll_transmit(T0, &mut [0; 12]), 12);
}

#[test]
fn test_transmit_all_packs_what_transmit_gives_call_after_call() {
    // A ping due and two requests: the session writes them in separate calls when the buffer
    // is small, and poll_transmit_all gives the same bytes in one.
    let (mut a, mut b) = (connected(), connected());
    for s in [&mut a, &mut b] {
        s.ping_wanted = true;
        s.submit(T0, get_data("/first", false)).unwrap();
        s.submit(T0, get_data("/second", false)).unwrap();
    }
    let one_by_one = drain(&mut a, T0);
    let mut buf = [0xa5u8; 4096];
    let n = b.poll_transmit_all(T0, &mut buf);
    assert_eq!(&buf[..n], &one_by_one[..]);
    assert_eq!(buf[n], 0xa5, "nothing written past what it says");
    let xids: StdVec<Xid> = frames(&buf[..n]).iter().map(|f| header_of(f).xid).collect();
    assert_eq!(xids, [PING_XID, 1, 2]);
    // Nothing more to send, and a buffer too short for a made-up frame takes nothing.
    assert_eq!(b.poll_transmit_all(T0, &mut buf), 0);
    b.ping_wanted = true;
    assert_eq!(b.poll_transmit_all(T0, &mut [0; 5]), 0);
    assert_eq!(b.poll_transmit_all(T0, &mut []), 0);
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

#[test]
fn test_ping_cadence_as_the_java_client() {
    let s = connected(); // 6 s negotiated: read timeout 4 s, half 2 s → ping after 1 s idle
    assert_eq!(s.ping_interval(), ms(1_000));
    let mut s2 = new_session();
    s2.negotiated_ms = 30_000; // read 20 s, half 10 s → 9 s
    assert_eq!(s2.ping_interval(), ms(9_000));
    s2.negotiated_ms = 60_000; // read 40 s, half 20 s → 19 s, capped at 10 s
    assert_eq!(s2.ping_interval(), ms(10_000));
    s2.negotiated_ms = 2_000; // read 1333 ms, half 666 ms
    assert_eq!(s2.ping_interval(), ms(666));

    let mut s = s;
    assert_eq!(s.poll_timeout(), Some(T0 + ms(1_000)));
    s.handle_timeout(T0 + ms(999));
    assert!(!s.has_transmit());
    s.handle_timeout(T0 + ms(1_000));
    assert!(s.has_transmit());
    // While the ping waits to be written the read timeout is the only deadline.
    assert_eq!(s.poll_timeout(), Some(T0 + ms(4_000)));
    let sent = requests(&mut s, T0 + ms(1_000));
    assert_eq!(sent, [vec![0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]]);
    assert_eq!(s.stats().pings, 1);
    // The reply makes no event and moves the read deadline.
    feed(
        &mut s,
        T0 + ms(1_002),
        &reply(PING_XID, 5, ErrorCode::Ok, ReplyBody::Empty),
    );
    assert_eq!(events(&mut s), []);
    assert_eq!(s.poll_timeout(), Some(T0 + ms(2_000)));
    // Sending requests defers the next ping.
    s.submit(T0 + ms(1_500), get_data("/a", false)).unwrap();
    drain(&mut s, T0 + ms(1_500));
    assert_eq!(s.poll_timeout(), Some(T0 + ms(2_500)));
}

#[test]
fn test_read_timeout_disconnects() {
    let mut s = connected();
    s.submit(T0, get_data("/a", false)).unwrap();
    drain(&mut s, T0);
    // Pings go out, nothing comes back.
    let mut now = T0;
    while s.state() == SessionState::Connected {
        now = s.poll_timeout().unwrap();
        s.handle_timeout(now);
        drain(&mut s, now);
    }
    assert_eq!(now, T0 + ms(4_000));
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::ReadTimeout),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Reconnect, auth, watches
// ---------------------------------------------------------------------------------------------

#[test]
fn test_reconnect_with_session_passwd_zxid_auth_replay_and_set_watches() {
    let mut s = connected();
    s.add_auth(T0, "digest", b"alice:secret").unwrap();
    let x1 = s
        .submit_watched(T0, get_data("/data", true), WatcherId(1))
        .unwrap();
    let x2 = s
        .submit_watched(T0, exists("/missing", true), WatcherId(2))
        .unwrap();
    let x3 = s
        .submit_watched(
            T0,
            RequestBody::GetChildren(PathWatchRequest {
                path: ZkStr::new("/dir"),
                watch: true,
            }),
            WatcherId(3),
        )
        .unwrap();
    let sent = requests(&mut s, T0);
    // The auth added while connected went out at once, before the requests.
    assert_eq!(header_of(&sent[0]).xid, AUTH_XID);
    assert_eq!(sent.len(), 4);
    let mut stream = reply(AUTH_XID, 0, ErrorCode::Ok, ReplyBody::Empty);
    stream.extend(reply(x1, 41, ErrorCode::Ok, data_reply(b"v", 0)));
    stream.extend(reply(x2, 42, ErrorCode::NoNode, ReplyBody::Empty));
    stream.extend(reply(
        x3,
        43,
        ErrorCode::Ok,
        ReplyBody::Children(List::empty()),
    ));
    feed(&mut s, T0, &stream);
    assert_eq!(events(&mut s).len(), 3);
    let kinds: StdVec<(WatchKind, u32, StdVec<u8>)> = s
        .watches()
        .map(|w| (w.kind, w.watcher.0, w.path.to_vec()))
        .collect();
    assert_eq!(
        kinds,
        [
            (WatchKind::Data, 1, b"/data".to_vec()),
            (WatchKind::Exist, 2, b"/missing".to_vec()),
            (WatchKind::Child, 3, b"/dir".to_vec()),
        ]
    );

    // The connection breaks; a request queued meanwhile waits.
    s.handle_disconnected(T0 + ms(10));
    let x4 = s.submit(T0 + ms(10), get_data("/after", false)).unwrap();
    assert_eq!(
        events(&mut s),
        [Ev::Disconnected(DisconnectReason::Transport)]
    );
    s.handle_connected(T0 + ms(20));
    let hello = frames(&drain(&mut s, T0 + ms(20)));
    assert_eq!(hello.len(), 1);
    let request = ConnectRequest::parse(&hello[0]).unwrap();
    assert_eq!(request.session_id, SID);
    assert_eq!(request.passwd, Some(&PASSWD[..]));
    assert_eq!(request.last_zxid_seen, 43);
    assert_eq!(request.read_only, Some(false));
    feed(&mut s, T0 + ms(20), &connect_response(6_000, SID, &PASSWD));
    assert_eq!(
        events(&mut s),
        [Ev::Connected {
            session_id: SID,
            timeout_ms: 6_000,
            reattached: true
        }]
    );
    let sent = requests(&mut s, T0 + ms(20));
    assert_eq!(sent.len(), 3, "auth, setWatches, the queued request");
    assert_eq!(
        Request::parse(&sent[0]).unwrap(),
        Request::auth(AuthPacket {
            auth_type: 0,
            scheme: ZkStr::new("digest"),
            auth: Some(b"alice:secret"),
        })
    );
    let data = [ZkStr::new("/data")];
    let exist = [ZkStr::new("/missing")];
    let child = [ZkStr::new("/dir")];
    // Only one-shot watches: setWatches, which 3.5 servers know too.
    assert_eq!(
        Request::parse(&sent[1]).unwrap(),
        Request {
            xid: SET_WATCHES_XID,
            body: RequestBody::SetWatches(SetWatches {
                relative_zxid: 43,
                data_watches: List::from_slice(&data),
                exist_watches: List::from_slice(&exist),
                child_watches: List::from_slice(&child),
            })
        }
    );
    assert_eq!(header_of(&sent[2]).xid, x4);
    // The re-registered watches fire as before.
    feed(
        &mut s,
        T0 + ms(30),
        &notification(EventType::NodeCreated, "/missing"),
    );
    assert_eq!(
        events(&mut s),
        [Ev::Watch {
            watcher: Some(2),
            kind: Some(WatchKind::Exist),
            event_type: EventType::NodeCreated,
            path: "/missing".into()
        }]
    );
}

#[test]
fn test_persistent_watches_are_reregistered_with_set_watches2() {
    let mut s = connected();
    let add = |path, mode| {
        RequestBody::AddWatch(AddWatchRequest {
            path: ZkStr::new(path),
            mode,
        })
    };
    let x1 = s
        .submit_watched(T0, add("/p", AddWatchMode::Persistent), WatcherId(5))
        .unwrap();
    let x2 = s
        .submit_watched(
            T0,
            add("/tree", AddWatchMode::PersistentRecursive),
            WatcherId(6),
        )
        .unwrap();
    let x3 = s.submit(T0, get_data("/d", true)).unwrap();
    drain(&mut s, T0);
    let mut stream = reply(x1, 2, ErrorCode::Ok, ReplyBody::Status(ErrorCode::Ok));
    stream.extend(reply(
        x2,
        3,
        ErrorCode::Ok,
        ReplyBody::Status(ErrorCode::Ok),
    ));
    stream.extend(reply(x3, 4, ErrorCode::Ok, data_reply(b"", 0)));
    feed(&mut s, T0, &stream);
    events(&mut s);
    s.handle_disconnected(T0);
    events(&mut s);
    s.handle_connected(T0);
    drain(&mut s, T0);
    feed(&mut s, T0, &connect_response(6_000, SID, &PASSWD));
    events(&mut s);
    let sent = requests(&mut s, T0);
    assert_eq!(sent.len(), 1);
    let data = [ZkStr::new("/d")];
    let persistent = [ZkStr::new("/p")];
    let recursive = [ZkStr::new("/tree")];
    assert_eq!(
        Request::parse(&sent[0]).unwrap(),
        Request::set_watches2(SetWatches2 {
            relative_zxid: 4,
            data_watches: List::from_slice(&data),
            exist_watches: List::empty(),
            child_watches: List::empty(),
            persistent_watches: List::from_slice(&persistent),
            persistent_recursive_watches: List::from_slice(&recursive),
        })
    );
}

#[test]
fn test_set_watches_batches_stay_under_the_limit() {
    let mut s: ZkSession<StdVec<u8>, 64, 64, { 64 * 1024 }> =
        ZkSession::new(Config::default(), vec![0; 65536], vec![0; 8192]);
    s.handle_connected(T0);
    let mut buf = vec![0u8; MIN_TRANSMIT_LEN];
    s.poll_transmit(T0, &mut buf);
    let mut rx = connect_response(6_000, SID, &PASSWD);
    let paths: StdVec<String> = (0..40)
        .map(|i| format!("/{i:03}/{}", "x".repeat(200)))
        .collect();
    for (i, path) in paths.iter().enumerate() {
        s.submit(T0, get_data(path, true)).unwrap();
        rx.extend(reply(i as Xid + 1, 7, ErrorCode::Ok, data_reply(b"", 0)));
    }
    let mut n = 0;
    while n < rx.len() {
        n += s.handle_bytes(T0, &rx[n..]);
        while s.poll_event().is_some() {}
    }
    // Flush the requests, then reconnect with a transmit buffer of the minimum size.
    while s.poll_transmit(T0, &mut buf) > 0 {}
    assert_eq!(s.watches().count(), 40);
    s.handle_disconnected(T0);
    while s.poll_event().is_some() {}
    s.handle_connected(T0);
    s.poll_transmit(T0, &mut buf);
    s.handle_bytes(T0, &connect_response(6_000, SID, &PASSWD));
    while s.poll_event().is_some() {}
    let mut seen = StdVec::new();
    loop {
        let n = s.poll_transmit(T0, &mut buf);
        if n == 0 {
            break;
        }
        for frame in frames(&buf[..n]) {
            assert!(frame.len() + 4 <= MIN_TRANSMIT_LEN);
            let Request {
                xid: SET_WATCHES_XID,
                body: RequestBody::SetWatches(w),
            } = Request::parse(&frame).unwrap()
            else {
                panic!("not setWatches")
            };
            assert_eq!(w.relative_zxid, 7);
            seen.extend(w.data_watches.iter().map(|p| p.to_string()));
        }
    }
    assert_eq!(seen, paths);
    assert!(s.stats().set_watches_sent >= 5);
}

#[test]
fn test_watches_route_notifications_to_their_watchers() {
    let mut s = connected();
    let x1 = s
        .submit_watched(T0, get_data("/a", true), WatcherId(1))
        .unwrap();
    let x2 = s
        .submit_watched(T0, get_data("/a", true), WatcherId(2))
        .unwrap();
    // The same watcher twice on the same path: one registration.
    let x3 = s
        .submit_watched(T0, get_data("/a", true), WatcherId(2))
        .unwrap();
    let x4 = s
        .submit_watched(
            T0,
            RequestBody::AddWatch(AddWatchRequest {
                path: ZkStr::new("/"),
                mode: AddWatchMode::PersistentRecursive,
            }),
            WatcherId(9),
        )
        .unwrap();
    // getData on a missing node leaves no watch.
    let x5 = s
        .submit_watched(T0, get_data("/gone", true), WatcherId(3))
        .unwrap();
    drain(&mut s, T0);
    let mut stream = StdVec::new();
    for xid in [x1, x2, x3] {
        stream.extend(reply(xid, 5, ErrorCode::Ok, data_reply(b"", 0)));
    }
    stream.extend(reply(
        x4,
        6,
        ErrorCode::Ok,
        ReplyBody::Status(ErrorCode::Ok),
    ));
    stream.extend(reply(x5, 6, ErrorCode::NoNode, ReplyBody::Empty));
    feed(&mut s, T0, &stream);
    assert_eq!(events(&mut s).len(), 5);
    assert_eq!(s.watches().count(), 3);

    let watch = |watcher, kind, event_type, path: &str| Ev::Watch {
        watcher,
        kind,
        event_type,
        path: path.into(),
    };
    feed(&mut s, T0, &notification(EventType::NodeDataChanged, "/a"));
    assert_eq!(
        events(&mut s),
        [
            watch(
                Some(1),
                Some(WatchKind::Data),
                EventType::NodeDataChanged,
                "/a"
            ),
            watch(
                Some(2),
                Some(WatchKind::Data),
                EventType::NodeDataChanged,
                "/a"
            ),
            watch(
                Some(9),
                Some(WatchKind::PersistentRecursive),
                EventType::NodeDataChanged,
                "/a"
            ),
        ]
    );
    // One-shot watches are gone; the recursive one stays and sees descendants.
    feed(&mut s, T0, &notification(EventType::NodeDataChanged, "/a"));
    feed(&mut s, T0, &notification(EventType::NodeCreated, "/a/b/c"));
    // Recursive watches do not get child events; nobody else watches: unmatched.
    feed(
        &mut s,
        T0,
        &notification(EventType::NodeChildrenChanged, "/a"),
    );
    assert_eq!(
        events(&mut s),
        [
            watch(
                Some(9),
                Some(WatchKind::PersistentRecursive),
                EventType::NodeDataChanged,
                "/a"
            ),
            watch(
                Some(9),
                Some(WatchKind::PersistentRecursive),
                EventType::NodeCreated,
                "/a/b/c"
            ),
            watch(None, None, EventType::NodeChildrenChanged, "/a"),
        ]
    );
    assert_eq!(s.stats().unmatched_notifications, 1);
    // removeWatches drops the local registration at once.
    s.submit(
        T0,
        RequestBody::RemoveWatches(WatchesRequest {
            path: ZkStr::new("/"),
            watcher_type: WatcherType::PersistentRecursive,
        }),
    )
    .unwrap();
    assert_eq!(s.watches().count(), 0);
}

#[test]
fn test_a_notification_comes_before_the_reply_of_the_write_that_fired_it() {
    let mut s = connected();
    let x1 = s
        .submit_watched(T0, get_data("/a", true), WatcherId(1))
        .unwrap();
    drain(&mut s, T0);
    feed(&mut s, T0, &reply(x1, 5, ErrorCode::Ok, data_reply(b"", 0)));
    events(&mut s);
    let x2 = s
        .submit(
            T0,
            RequestBody::SetData(SetDataRequest {
                path: ZkStr::new("/a"),
                data: Some(b"new"),
                version: -1,
            }),
        )
        .unwrap();
    drain(&mut s, T0);
    let mut stream = notification(EventType::NodeDataChanged, "/a");
    stream.extend(reply(x2, 6, ErrorCode::Ok, ReplyBody::Stat(stat(1))));
    feed(&mut s, T0, &stream);
    let got = events(&mut s);
    assert!(
        matches!(
            got[0],
            Ev::Watch {
                watcher: Some(1),
                ..
            }
        ),
        "{got:?}"
    );
    assert!(
        matches!(got[1], Ev::Reply { xid, .. } if xid == x2),
        "{got:?}"
    );
}

#[test]
fn test_auth_failure_is_terminal() {
    let mut s = connected();
    s.submit(T0, get_data("/a", false)).unwrap();
    s.add_auth(T0, "nosuchscheme", b"x").unwrap();
    drain(&mut s, T0);
    feed(
        &mut s,
        T0,
        &reply(AUTH_XID, 0, ErrorCode::AuthFailed, ReplyBody::Empty),
    );
    assert_eq!(
        events(&mut s),
        [
            Ev::AuthFailed,
            failed(1, OpCode::GetData, ErrorCode::AuthFailed)
        ]
    );
    assert_eq!(s.state(), SessionState::AuthFailed);
    assert!(!s.state().has_connection());
    assert!(!s.wants_connect(T0 + ms(10_000)));
    assert_eq!(s.submit(T0, get_data("/b", false)), Ok(2));
    assert_eq!(
        events(&mut s),
        [failed(2, OpCode::GetData, ErrorCode::AuthFailed)]
    );
}

#[test]
fn test_expiry_is_surfaced_and_terminal() {
    let mut s = connected();
    s.handle_disconnected(T0);
    events(&mut s);
    s.submit(T0, get_data("/a", false)).unwrap();
    s.handle_connected(T0);
    drain(&mut s, T0);
    // The server no longer knows the session.
    feed(&mut s, T0, &connect_response(0, 0, &[0; 16]));
    assert_eq!(
        events(&mut s),
        [
            Ev::Expired,
            failed(1, OpCode::GetData, ErrorCode::SessionExpired)
        ]
    );
    assert_eq!(s.state(), SessionState::Expired);
    assert!(!s.state().has_connection());
    assert_eq!(s.poll_timeout(), None);
    assert!(!s.wants_connect(T0 + ms(60_000)));
    assert_eq!(s.submit(T0, get_data("/b", false)), Ok(2));
    assert_eq!(
        events(&mut s),
        [failed(2, OpCode::GetData, ErrorCode::SessionExpired)]
    );
}

#[test]
fn test_close() {
    let mut s = connected();
    let x1 = s.submit(T0, get_data("/a", false)).unwrap();
    let x2 = s.close(T0).unwrap();
    assert_eq!(s.state(), SessionState::Closing);
    let x3 = s.submit(T0, get_data("/too-late", false)).unwrap();
    let sent = requests(&mut s, T0);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        header_of(&sent[1]),
        RequestHeader {
            xid: x2,
            op: OpCode::CloseSession
        }
    );
    let mut stream = reply(x1, 8, ErrorCode::Ok, data_reply(b"", 0));
    stream.extend(reply(x2, 9, ErrorCode::Ok, ReplyBody::Empty));
    feed(&mut s, T0, &stream);
    assert_eq!(
        events(&mut s)[1..],
        [
            ok_reply(x2, 9, OpCode::CloseSession),
            Ev::Closed,
            failed(x3, OpCode::GetData, ErrorCode::SessionExpired),
        ]
    );
    assert_eq!(s.state(), SessionState::Closed);
    s.handle_disconnected(T0);
    assert_eq!(events(&mut s), []);
    // A session no server knows closes at once.
    let mut s = new_session();
    s.submit(T0, get_data("/a", false)).unwrap();
    let x = s.close(T0).unwrap();
    assert_eq!(
        events(&mut s),
        [
            Ev::Closed,
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
            failed(x, OpCode::CloseSession, ErrorCode::SessionExpired),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn test_submit_refuses_invalid_paths_before_queueing() {
    let mut s = connected();
    s.set_chroot("/app").unwrap();
    let stats = *s.stats();
    let create = |path, mode| {
        RequestBody::Create(CreateRequest {
            path: ZkStr::new(path),
            data: None,
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode,
        })
    };
    // The client's path is checked, not the chrooted one ("/app" + "xe" would be "/appxe").
    let refused = [
        (get_data("xe", false), PathError::NotAbsolute),
        (get_data("", false), PathError::Empty),
        (get_data("/xe/", false), PathError::TrailingSlash),
        (
            create("/a/", CreateMode::Persistent),
            PathError::TrailingSlash,
        ),
        (
            create("/a//b", CreateMode::Persistent),
            PathError::EmptyNodeName(3),
        ),
        (
            RequestBody::Sync(PathRequest {
                path: ZkStr::new("/.."),
            }),
            PathError::Relative(2),
        ),
        (
            RequestBody::AddWatch(AddWatchRequest {
                path: ZkStr::new("xe"),
                mode: AddWatchMode::Persistent,
            }),
            PathError::NotAbsolute,
        ),
    ];
    for (body, error) in refused {
        assert_eq!(
            s.submit(T0, body),
            Err(Error::InvalidPath(error)),
            "{body:?}"
        );
    }
    // One bad op refuses the whole multi.
    let ops = [
        MultiOp::Delete(PathVersionRequest {
            path: ZkStr::new("/ok"),
            version: -1,
        }),
        MultiOp::Delete(PathVersionRequest {
            path: ZkStr::new("/bad\0"),
            version: -1,
        }),
    ];
    assert_eq!(
        s.submit(T0, RequestBody::Multi(List::from_slice(&ops))),
        Err(Error::InvalidPath(PathError::NullCharacter(4)))
    );
    // Nothing queued, no xid used, no watch reserved, nothing counted.
    assert_eq!(s.pending(), 0);
    assert_eq!(s.watches().count(), 0);
    assert_eq!(s.stats().submitted, stats.submitted);
    assert!(drain(&mut s, T0).is_empty());
    // A sequential create may end with '/': the server names the child.
    let xid = s
        .submit(T0, create("/", CreateMode::PersistentSequential))
        .unwrap();
    let sent = requests(&mut s, T0);
    assert_eq!(sent.len(), 1);
    assert_eq!(Request::parse(&sent[0]).unwrap().xid, xid);
    assert_eq!(xid, 1, "the refused requests used no xid");
    // Refused even after expiry, as the Java client refuses before looking at its state.
    let mut s = new_session();
    s.close(T0).unwrap();
    assert_eq!(
        s.submit(T0, get_data("xe", false)),
        Err(Error::InvalidPath(PathError::NotAbsolute))
    );
}

// ---------------------------------------------------------------------------------------------
// Chroot
// ---------------------------------------------------------------------------------------------

#[test]
fn test_chroot_prefixes_requests_and_strips_replies() {
    let mut s = connected();
    assert_eq!(
        s.set_chroot("app/"),
        Err(Error::InvalidPath(PathError::NotAbsolute))
    );
    assert_eq!(
        s.set_chroot("/app/../etc"),
        Err(Error::InvalidPath(PathError::Relative(6)))
    );
    s.set_chroot("/app").unwrap();
    let acl = Acl::OPEN_ACL_UNSAFE;
    let create = |path| {
        RequestBody::Create2(CreateRequest {
            path: ZkStr::new(path),
            data: Some(b"d"),
            acl: List::from_slice(acl),
            mode: CreateMode::Persistent,
        })
    };
    let x1 = s.submit(T0, create("/a")).unwrap();
    let x2 = s.submit(T0, get_data("/", true)).unwrap();
    let ops = [
        MultiOp::Create(CreateRequest {
            path: ZkStr::new("/m"),
            data: None,
            acl: List::from_slice(acl),
            mode: CreateMode::Persistent,
        }),
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::new("/"),
            version: 0,
        }),
    ];
    let x3 = s
        .submit(T0, RequestBody::Multi(List::from_slice(&ops)))
        .unwrap();
    let x4 = s
        .submit(
            T0,
            RequestBody::GetEphemerals(PathRequest {
                path: ZkStr::new("/"),
            }),
        )
        .unwrap();
    let sent = requests(&mut s, T0);
    assert_eq!(
        Request::parse(&sent[0]).unwrap(),
        Request {
            xid: x1,
            body: create("/app/a")
        }
    );
    assert_eq!(
        Request::parse(&sent[1]).unwrap(),
        Request {
            xid: x2,
            body: get_data("/app", true)
        }
    );
    let chrooted = [
        MultiOp::Create(CreateRequest {
            path: ZkStr::new("/app/m"),
            data: None,
            acl: List::from_slice(acl),
            mode: CreateMode::Persistent,
        }),
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::new("/app"),
            version: 0,
        }),
    ];
    assert_eq!(
        Request::parse(&sent[2]).unwrap(),
        Request {
            xid: x3,
            body: RequestBody::Multi(List::from_slice(&chrooted))
        }
    );
    let results = [
        MultiResult::Create(ZkStr::new("/app/m")),
        MultiResult::Check,
    ];
    let ephemerals = [
        ZkStr::new("/app/e1"),
        ZkStr::new("/app"),
        ZkStr::new("/other"),
    ];
    let mut stream = reply(
        x1,
        3,
        ErrorCode::Ok,
        ReplyBody::Created(Create2Response {
            path: ZkStr::new("/app/a"),
            stat: stat(0),
        }),
    );
    stream.extend(reply(x2, 3, ErrorCode::Ok, data_reply(b"root", 0)));
    stream.extend(reply(
        x3,
        4,
        ErrorCode::Ok,
        ReplyBody::Multi(List::from_slice(&results)),
    ));
    stream.extend(reply(
        x4,
        4,
        ErrorCode::Ok,
        ReplyBody::Children(List::from_slice(&ephemerals)),
    ));
    stream.extend(notification(EventType::NodeDataChanged, "/app"));
    feed(&mut s, T0, &stream);
    let mut got = StdVec::new();
    while let Some(event) = s.poll_event() {
        match event {
            Event::Reply(r) => match r.result.unwrap() {
                ReplyBody::Created(c) => got.push(c.path.to_string()),
                ReplyBody::Data(_) => got.push("data".into()),
                ReplyBody::Multi(list) => {
                    for result in list.iter() {
                        got.push(format!("{result:?}"));
                    }
                }
                ReplyBody::Children(list) => {
                    for path in list.iter() {
                        got.push(path.to_string());
                    }
                }
                other => panic!("{other:?}"),
            },
            Event::Watch(w) => got.push(format!("watch {} {}", w.watcher.unwrap().0, w.path)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        got,
        [
            "/a",
            "data",
            "Create(\"/m\")",
            "Check",
            "/e1",
            "/",
            "/other",
            "watch 0 /",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Xids
// ---------------------------------------------------------------------------------------------

#[test]
fn test_xids_wrap_to_one_and_skip_pending_ones() {
    let mut s = connected();
    s.next_xid = i32::MAX - 1;
    let xids: StdVec<Xid> = (0..3)
        .map(|_| s.submit(T0, get_data("/a", false)).unwrap())
        .collect();
    assert_eq!(xids, [i32::MAX - 1, i32::MAX, 1]);
    let sent = requests(&mut s, T0);
    let mut stream = StdVec::new();
    for frame in &sent {
        stream.extend(reply(
            header_of(frame).xid,
            1,
            ErrorCode::Ok,
            data_reply(b"", 0),
        ));
    }
    feed(&mut s, T0, &stream);
    assert_eq!(events(&mut s).len(), 3);
    // With 1, 2, 3 pending, a counter pointing into them skips past.
    let mut s = connected();
    for _ in 0..3 {
        s.submit(T0, get_data("/a", false)).unwrap();
    }
    s.next_xid = 2;
    assert_eq!(s.submit(T0, get_data("/a", false)), Ok(4));
    // Pending xids that wrap: MAX-1, MAX, 1; the counter at MAX-1 skips to 2.
    let mut s = connected();
    s.next_xid = i32::MAX - 1;
    for _ in 0..3 {
        s.submit(T0, get_data("/a", false)).unwrap();
    }
    s.next_xid = i32::MAX - 1;
    assert_eq!(s.submit(T0, get_data("/a", false)), Ok(2));
}

// ---------------------------------------------------------------------------------------------
// Receive buffer
// ---------------------------------------------------------------------------------------------

#[test]
fn test_frame_larger_than_the_receive_buffer_tears_down() {
    let mut s: Session = ZkSession::new(Config::default(), vec![0; 8192], vec![0; 256]);
    s.handle_connected(T0);
    drain(&mut s, T0);
    feed(&mut s, T0, &connect_response(6_000, SID, &PASSWD));
    events(&mut s);
    s.submit(T0, get_data("/big", false)).unwrap();
    drain(&mut s, T0);
    let big = [1u8; 300];
    let bytes = reply(1, 2, ErrorCode::Ok, data_reply(&big, 0));
    let n = s.handle_bytes(T0, &bytes);
    assert_eq!(n, 256, "the buffer takes what fits");
    assert_eq!(
        events(&mut s),
        [
            Ev::Disconnected(DisconnectReason::Protocol(Error::TooLarge)),
            failed(1, OpCode::GetData, ErrorCode::ConnectionLoss),
        ]
    );
}

#[test]
fn test_zero_copy_receive_and_byte_by_byte_feeding_agree() {
    let run = |chunk: usize| {
        let mut s = connected();
        for _ in 0..4 {
            s.submit_watched(T0, get_data("/n", true), WatcherId(4))
                .unwrap();
        }
        drain(&mut s, T0);
        let mut stream = StdVec::new();
        for xid in 1..=4 {
            stream.extend(notification(EventType::NodeDataChanged, "/n"));
            stream.extend(reply(
                xid,
                xid.into(),
                ErrorCode::Ok,
                data_reply(b"payload", xid),
            ));
        }
        let mut got = StdVec::new();
        for piece in stream.chunks(chunk) {
            let buf = s.receive_buffer();
            buf[..piece.len()].copy_from_slice(piece);
            s.handle_received(T0, piece.len());
            got.extend(events(&mut s));
        }
        got
    };
    let whole = run(usize::MAX >> 1);
    // The first notification comes before any watch is registered: unmatched; each later
    // one fires the watch the reply before it left.
    assert_eq!(whole.len(), 8, "{whole:?}");
    assert!(matches!(whole[0], Ev::Watch { watcher: None, .. }));
    assert!(matches!(
        whole[2],
        Ev::Watch {
            watcher: Some(4),
            ..
        }
    ));
    for chunk in [1, 2, 3, 7, 16, 17, 100] {
        assert_eq!(run(chunk), whole, "chunk {chunk}");
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary server bytes
// ---------------------------------------------------------------------------------------------

mod prop {
    use super::super::chroot::strip_list_in_place;
    use super::*;
    use crate::zk::REPLY_HEADER_LEN;
    use proptest::collection::vec as pvec;
    use proptest::prelude::*;

    /// A frame a server could send: a valid-looking reply header with random xid, error and
    /// body bytes.
    fn server_frame() -> impl Strategy<Value = StdVec<u8>> {
        (
            prop_oneof![
                Just(-1),
                Just(-2),
                Just(-4),
                Just(-8),
                0..6i32,
                any::<i32>()
            ],
            any::<i64>(),
            prop_oneof![Just(0), Just(-101), any::<i32>()],
            pvec(any::<u8>(), 0..120),
        )
            .prop_map(|(xid, zxid, err, body)| {
                let mut payload = StdVec::new();
                payload.extend_from_slice(&xid.to_be_bytes());
                payload.extend_from_slice(&zxid.to_be_bytes());
                payload.extend_from_slice(&err.to_be_bytes());
                payload.extend_from_slice(&body);
                let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
                frame.extend(payload);
                frame
            })
    }

    fn drive(s: &mut Session, now: Instant, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = s.handle_bytes(now, rest);
                while let Some(event) = s.poll_event() {
                    let _ = format!("{event:?}");
                }
                if n == 0 {
                    break;
                }
                rest = &rest[n..];
            }
            let mut buf = [0u8; 4096];
            while s.poll_transmit(now, &mut buf) > 0 {}
            s.handle_timeout(now);
            if s.wants_connect(now) {
                s.handle_connected(now);
            }
        }
    }

    fn path_choice() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("/c"),
            Just("/c/x"),
            Just("/cx"),
            Just("/"),
            Just("/c/"),
            Just("/o/c"),
            Just(""),
            Just("/c/x/yy")
        ]
    }

    proptest! {
        /// Throwaway: the chroot-stripped multi / getEphemerals body, parsed once and shortened,
        /// is what parsing the rewritten bytes again gives.
        #[test]
        fn stripped_lists_parse_once_as_twice(
            paths in pvec(path_choice(), 0..6),
            kinds in pvec(0u8..6, 0..6),
            ephemerals: bool,
            xid in 1i32..5,
        ) {
            use crate::zk::reply::DetachedBody;
            let strs: StdVec<ZkStr<'_>> = paths.iter().map(|p| ZkStr::new(p)).collect();
            let mut results = StdVec::new();
            for (i, k) in kinds.iter().enumerate() {
                let p = strs.get(i).copied().unwrap_or(ZkStr::new("/c/z"));
                results.push(match k {
                    0 => MultiResult::Create(p),
                    1 => MultiResult::Create2(Create2Response { path: p, stat: stat(3) }),
                    2 => MultiResult::Delete,
                    3 => MultiResult::SetData(stat(4)),
                    4 => MultiResult::Check,
                    _ => MultiResult::Error(ErrorCode::NoNode),
                });
            }
            let (op, body) = if ephemerals {
                (OpCode::GetEphemerals, ReplyBody::Children(List::from_slice(&strs)))
            } else {
                (OpCode::Multi, ReplyBody::Multi(List::from_slice(&results)))
            };
            let r = Reply { header: ReplyHeader { xid, zxid: 9, err: ErrorCode::Ok }, body };
            let mut old = std::vec![0u8; r.encoded_len()];
            let n = r.encode(&mut old).unwrap();
            old.truncate(n);
            let mut new = old.clone();
            // Old route: check, strip, parse the rewritten bytes.
            Reply::parse(op, &old).unwrap();
            let m = strip_list_in_place(&mut old[REPLY_HEADER_LEN..], op, b"/c").unwrap();
            let old_body = Reply::parse(op, &old[..REPLY_HEADER_LEN + m]).unwrap().body;
            // New route: parse once, strip, shorten, attach.
            let mut detached = DetachedBody::new(Reply::parse(op, &new).unwrap().body, &new);
            let len = new.len();
            let m2 = strip_list_in_place(&mut new[REPLY_HEADER_LEN..], op, b"/c").unwrap();
            prop_assert_eq!(m, m2);
            detached.shorten(len - (REPLY_HEADER_LEN + m2));
            let new_body = detached.attach(&new[..REPLY_HEADER_LEN + m2]);
            prop_assert_eq!(new_body, old_body);
            prop_assert_eq!(std::format!("{new_body:?}"), std::format!("{old_body:?}"));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            before in pvec(any::<u8>(), 0..64),
            after in pvec(any::<u8>(), 0..600),
            chunk in 1usize..64,
        ) {
            // Straight into the handshake.
            let mut s = new_session();
            s.handle_connected(T0);
            drive(&mut s, T0, &before, chunk);
            // And after a good handshake with requests and watches pending.
            let mut s = connected();
            s.set_chroot("/c").unwrap();
            s.submit(T0, get_data("/a", true)).unwrap();
            s.submit(T0, exists("/b", true)).unwrap();
            let ops = [MultiOp::Delete(PathVersionRequest { path: ZkStr::new("/x"), version: -1 })];
            s.submit(T0, RequestBody::Multi(List::from_slice(&ops))).unwrap();
            drive(&mut s, T0, &after, chunk);
        }

        #[test]
        fn arbitrary_frames_never_panic_and_keep_one_outcome_per_request(
            stream in pvec(server_frame(), 0..24),
            chunk in 1usize..200,
        ) {
            let mut s = connected();
            s.set_chroot("/c").unwrap();
            let mut submitted = StdVec::new();
            let mut outcomes = std::collections::BTreeMap::<Xid, usize>::new();
            for i in 0..6 {
                let body = match i % 3 {
                    0 => get_data("/a", true),
                    1 => exists("/b", true),
                    _ => RequestBody::GetEphemerals(PathRequest { path: ZkStr::new("/") }),
                };
                submitted.push(s.submit(T0, body).unwrap());
            }
            drain(&mut s, T0);
            let bytes: StdVec<u8> = stream.concat();
            for piece in bytes.chunks(chunk) {
                let mut rest = piece;
                while !rest.is_empty() {
                    let n = s.handle_bytes(T0, rest);
                    while let Some(event) = s.poll_event() {
                        if let Event::Reply(r) = event {
                            *outcomes.entry(r.xid).or_default() += 1;
                        }
                    }
                    if n == 0 { break; }
                    rest = &rest[n..];
                }
            }
            s.handle_disconnected(T0);
            while let Some(event) = s.poll_event() {
                if let Event::Reply(r) = event {
                    *outcomes.entry(r.xid).or_default() += 1;
                }
            }
            for xid in submitted {
                prop_assert_eq!(outcomes.get(&xid), Some(&1), "xid {}", xid);
            }
        }
    }
}
