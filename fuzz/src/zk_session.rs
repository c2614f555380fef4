//! `zk_session`: a [`ZkSession`] driven by an arbitrary [`Script`]: server bytes (arbitrary, or
//! well-formed handshakes and replies) in arbitrary fragments, time passing, timeouts,
//! connections made and lost, submits, transmits, close.
//!
//! Checked, after every step, beyond "nothing panics" (mirroring the session's own property
//! tests, `arbitrary_frames_never_panic_and_keep_one_outcome_per_request`):
//! * every [`Event::Reply`] is for an xid that `submit` returned and that has had none yet;
//! * time-independent sanity: `pending()` never exceeds the number of requests without an
//!   outcome;
//! * every frame the session transmits on a connection parses: a [`ConnectRequest`] first, then
//!   [`Request`]s;
//! * at the end, after the connection is torn down, every submitted request has had exactly one
//!   reply event (its reply, or a local failure such as `ConnectionLoss`) and none is pending.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::{Config, Event, Xid, ZkSession};
use sinew_proto::zk::{Acl, ErrorCode};
use sinew_proto::zk::{
    ConnectRequest, ConnectResponse, CreateMode, CreateRequest, EventType, FrameDecoder,
    FrameStatus, GetDataResponse, KeeperState, List, MultiOp, OpCode, PathRequest,
    PathVersionRequest, PathWatchRequest, Reply, ReplyBody, ReplyHeader, Request, RequestBody,
    SetDataRequest, Stat, WatcherEvent, ZkStr,
};

const PATHS: [&str; 4] = ["/", "/a", "/a/b", "/c"];
const PASSWD: [u8; 16] = [7; 16];

/// The session under test.
type Session = ZkSession<Vec<u8>, 8, 8, 256>;

/// A script: the session's configuration and what happens to it.
#[derive(Clone, Debug, Arbitrary)]
pub struct Script {
    /// Receive buffer length: 64 + this (small ones refuse large replies).
    pub rx_extra: u16,
    /// Transmit buffer length: 64 + this.
    pub tx_extra: u16,
    /// Session timeout, ms: 100 + this.
    pub timeout: u16,
    /// Whether a chroot (`/c`) is set.
    pub chroot: bool,
    /// The steps.
    pub steps: Vec<Step>,
}

/// Who a server frame answers.
#[derive(Clone, Copy, Debug, Arbitrary)]
pub enum To {
    /// The oldest request the script submitted and has not seen answered.
    Oldest,
    /// The ping xid.
    Ping,
    /// Any xid.
    Xid(i32),
}

/// One step.
#[derive(Clone, Debug, Arbitrary)]
pub enum Step {
    /// Arbitrary server bytes, fed `chunk` (at least 1) at a time.
    Bytes {
        /// The bytes.
        bytes: Vec<u8>,
        /// Fragment length.
        chunk: u8,
    },
    /// A framed ConnectResponse.
    Handshake {
        /// Negotiated timeout (0 or less: expired).
        timeout_ms: i16,
        /// Session id.
        session_id: u8,
        /// Read-only byte.
        read_only: Option<bool>,
        /// Fragment length.
        chunk: u8,
    },
    /// A well-formed reply frame.
    Reply {
        /// Its xid.
        to: To,
        /// Its error (0 most of the time).
        err: i8,
        /// Its zxid.
        zxid: i64,
        /// Data, for a getData reply; bytes for other shapes.
        data: Vec<u8>,
        /// Fragment length.
        chunk: u8,
    },
    /// A watch notification.
    Notification {
        /// Event type (1..=4 are the usual ones).
        event_type: i8,
        /// Path index.
        path: u8,
        /// Fragment length.
        chunk: u8,
    },
    /// Submit a request.
    Submit {
        /// Which kind.
        kind: u8,
        /// Path index.
        path: u8,
        /// Whether to leave a watch.
        watch: bool,
    },
    /// Time passes, in ms.
    Advance(u16),
    /// `handle_timeout`.
    Timeout,
    /// `handle_connecting` / `handle_connected` (when the session wants a connection, or
    /// regardless), then transmit everything.
    Connect {
        /// Call even when the session does not want to connect.
        regardless: bool,
        /// Through `handle_connecting` first.
        connecting: bool,
    },
    /// `handle_disconnected`.
    Disconnect,
    /// `poll_transmit` into a buffer of this length.
    Transmit(u16),
    /// `close`.
    Close,
    /// `add_auth`.
    Auth(bool),
}

/// What one script exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests submitted.
    pub submitted: u32,
    /// Replies from the server (not made up locally).
    pub server_replies: u32,
    /// Local failures.
    pub local_failures: u32,
    /// Connected events.
    pub connected: u32,
    /// Watch events.
    pub watches: u32,
}

/// Decodes a script from `data` and runs it; `None` if `data` is not a script.
pub fn check(data: &[u8]) -> Option<Summary> {
    let script = Script::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    Some(run(&script))
}

struct Harness {
    session: Session,
    now: Instant,
    /// Outcomes per submitted xid.
    outcomes: BTreeMap<Xid, u32>,
    /// Submitted xids without an outcome, oldest first, with their op.
    waiting: Vec<(Xid, OpCode)>,
    /// What was transmitted on the current connection and not yet parsed.
    sent: Vec<u8>,
    /// Whether the next frame transmitted must be the ConnectRequest.
    hello_next: bool,
    summary: Summary,
}

/// Runs a script.
pub fn run(script: &Script) -> Summary {
    let config = Config::new()
        .with_session_timeout(core::time::Duration::from_millis(
            100 + u64::from(script.timeout),
        ))
        .with_connect_timeout(core::time::Duration::from_millis(50));
    let rx = vec![0; 64 + usize::from(script.rx_extra)];
    let tx = vec![0; 64 + usize::from(script.tx_extra)];
    let mut h = Harness {
        session: ZkSession::new(config, tx, rx),
        now: Instant::from_millis(1_000),
        outcomes: BTreeMap::new(),
        waiting: Vec::new(),
        sent: Vec::new(),
        hello_next: true,
        summary: Summary::default(),
    };
    if script.chroot {
        h.session.set_chroot("/c").unwrap();
    }
    for step in &script.steps {
        h.step(step);
        h.events();
    }
    // Tear down whatever connection there is; a session that is waiting to reconnect gets one
    // and loses it, which fails everything queued.
    if h.session.state().has_connection() {
        h.session.handle_disconnected(h.now);
    } else if !h.session.state().is_terminal() {
        h.session.handle_connected(h.now);
        h.session.handle_disconnected(h.now);
    }
    h.events();
    for (xid, count) in &h.outcomes {
        assert_eq!(*count, 1, "xid {xid} had {count} reply events");
    }
    assert!(h.waiting.is_empty(), "no reply event for {:?}", h.waiting);
    assert_eq!(h.session.pending(), 0, "pending after the end");
    h.summary
}

impl Harness {
    fn step(&mut self, step: &Step) {
        let now = self.now;
        match step {
            Step::Bytes { bytes, chunk } => self.feed(bytes, *chunk),
            Step::Handshake {
                timeout_ms,
                session_id,
                read_only,
                chunk,
            } => {
                let response = ConnectResponse {
                    protocol_version: 0,
                    timeout: i32::from(*timeout_ms),
                    session_id: i64::from(*session_id),
                    passwd: Some(&PASSWD),
                    read_only: *read_only,
                };
                let mut buf = vec![0; response.framed_len()];
                response.encode_framed(&mut buf).unwrap();
                self.feed(&buf, *chunk);
            }
            Step::Reply {
                to,
                err,
                zxid,
                data,
                chunk,
            } => {
                let (xid, op) = match to {
                    To::Oldest => self
                        .waiting
                        .first()
                        .copied()
                        .unwrap_or((1, OpCode::GetData)),
                    To::Ping => (-2, OpCode::Ping),
                    To::Xid(xid) => (*xid, OpCode::GetData),
                };
                let err = if *err > 0 { 0 } else { i32::from(*err) };
                let body = if err != 0 {
                    ReplyBody::Empty
                } else {
                    reply_body(op, data)
                };
                let reply = Reply {
                    header: ReplyHeader {
                        xid,
                        zxid: *zxid,
                        err: ErrorCode::from_i32(err),
                    },
                    body,
                };
                let mut buf = vec![0; reply.framed_len()];
                reply.encode_framed(&mut buf).unwrap();
                self.feed(&buf, *chunk);
            }
            Step::Notification {
                event_type,
                path,
                chunk,
            } => {
                let path = PATHS[usize::from(*path) % PATHS.len()];
                let reply = Reply {
                    header: ReplyHeader {
                        xid: -1,
                        zxid: -1,
                        err: ErrorCode::Ok,
                    },
                    body: ReplyBody::Notification(WatcherEvent {
                        event_type: EventType::from_i32(i32::from(*event_type)),
                        state: KeeperState::from_i32(3),
                        path: ZkStr::new(path),
                    }),
                };
                let mut buf = vec![0; reply.framed_len()];
                reply.encode_framed(&mut buf).unwrap();
                self.feed(&buf, *chunk);
            }
            Step::Submit { kind, path, watch } => {
                let path = ZkStr::new(PATHS[usize::from(*path) % PATHS.len()]);
                let ops = [MultiOp::Delete(PathVersionRequest { path, version: -1 })];
                let body = match kind % 9 {
                    0 => RequestBody::GetData(PathWatchRequest {
                        path,
                        watch: *watch,
                    }),
                    1 => RequestBody::Exists(PathWatchRequest {
                        path,
                        watch: *watch,
                    }),
                    2 => RequestBody::GetChildren2(PathWatchRequest {
                        path,
                        watch: *watch,
                    }),
                    3 => RequestBody::Create(CreateRequest {
                        path,
                        data: Some(b"x"),
                        acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
                        mode: CreateMode::from_i32(i32::from(*kind / 9 % 4)),
                    }),
                    4 => RequestBody::Delete(PathVersionRequest { path, version: -1 }),
                    5 => RequestBody::SetData(SetDataRequest {
                        path,
                        data: Some(b"y"),
                        version: -1,
                    }),
                    6 => RequestBody::GetEphemerals(PathRequest { path }),
                    7 => RequestBody::Multi(List::from_slice(&ops)),
                    _ => RequestBody::Ping,
                };
                let op = body.op();
                if let Ok(xid) = self.session.submit(now, body) {
                    self.submitted(xid, op);
                }
            }
            Step::Advance(ms) => {
                self.now = now + core::time::Duration::from_millis(u64::from(*ms));
                if self
                    .session
                    .poll_timeout()
                    .is_some_and(|deadline| deadline <= self.now)
                {
                    self.session.handle_timeout(self.now);
                }
            }
            Step::Timeout => self.session.handle_timeout(now),
            Step::Connect {
                regardless,
                connecting,
            } => {
                if *regardless || self.session.wants_connect(now) {
                    let fresh = !self.session.state().has_connection();
                    if *connecting {
                        self.session.handle_connecting(now);
                    }
                    self.session.handle_connected(now);
                    if fresh && self.session.state().has_connection() {
                        self.sent.clear();
                        self.hello_next = true;
                    }
                }
                self.transmit(65_536);
            }
            Step::Disconnect => self.session.handle_disconnected(now),
            Step::Transmit(len) => self.transmit(usize::from(*len)),
            Step::Close => {
                if let Ok(xid) = self.session.close(now) {
                    self.submitted(xid, OpCode::CloseSession);
                }
            }
            Step::Auth(good) => {
                let scheme = if *good { "digest" } else { "" };
                let _ = self.session.add_auth(now, scheme, b"user:pw");
            }
        }
    }

    fn submitted(&mut self, xid: Xid, op: OpCode) {
        assert!(
            self.outcomes.insert(xid, 0).is_none(),
            "xid {xid} handed out twice"
        );
        self.waiting.push((xid, op));
        self.summary.submitted += 1;
    }

    fn feed(&mut self, bytes: &[u8], chunk: u8) {
        for piece in bytes.chunks(usize::from(chunk).max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = self.session.handle_bytes(self.now, rest);
                self.events();
                if n == 0 {
                    break;
                }
                rest = &rest[n..];
            }
        }
    }

    fn transmit(&mut self, len: usize) {
        let mut buf = vec![0; len];
        loop {
            let n = self.session.poll_transmit(self.now, &mut buf);
            if n == 0 {
                break;
            }
            self.sent.extend_from_slice(&buf[..n]);
        }
        self.parse_sent();
    }

    /// Every whole frame transmitted on this connection parses.
    fn parse_sent(&mut self) {
        let decoder = FrameDecoder::new();
        let mut at = 0;
        while let Ok(FrameStatus::Complete { frame, consumed }) = decoder.decode(&self.sent[at..]) {
            if self.hello_next {
                assert!(
                    ConnectRequest::parse(frame).is_ok(),
                    "first frame is not a ConnectRequest: {frame:02x?}"
                );
                self.hello_next = false;
            } else {
                assert!(
                    Request::parse(frame).is_ok(),
                    "a frame sent does not parse: {frame:02x?}"
                );
            }
            at += consumed;
        }
        assert!(
            decoder.decode(&self.sent[at..]).is_ok(),
            "a bad frame length sent"
        );
        self.sent.drain(..at);
    }

    fn events(&mut self) {
        let pending_before = self.session.pending();
        assert!(
            pending_before <= self.waiting.len(),
            "{pending_before} pending, {} waiting",
            self.waiting.len()
        );
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Reply(reply) => {
                    let count = self.outcomes.get_mut(&reply.xid).unwrap_or_else(|| {
                        panic!("a reply event for xid {} never submitted", reply.xid)
                    });
                    *count += 1;
                    assert_eq!(*count, 1, "a second reply event for xid {}", reply.xid);
                    let at = self.waiting.iter().position(|&(xid, _)| xid == reply.xid);
                    let (_, op) = self.waiting.remove(at.unwrap());
                    assert_eq!(reply.op, op, "xid {}", reply.xid);
                    if reply.is_local() {
                        self.summary.local_failures += 1;
                    } else {
                        self.summary.server_replies += 1;
                    }
                }
                Event::Connected { .. } => self.summary.connected += 1,
                Event::Watch(_) => self.summary.watches += 1,
                _ => {}
            }
        }
    }
}

/// A well-formed body for a reply to `op`.
fn reply_body(op: OpCode, data: &[u8]) -> ReplyBody<'_> {
    let stat = Stat {
        version: data.len() as i32,
        ..Stat::default()
    };
    match op {
        OpCode::GetData => ReplyBody::Data(GetDataResponse {
            data: Some(data),
            stat,
        }),
        OpCode::Exists | OpCode::SetData => ReplyBody::Stat(stat),
        OpCode::Create => ReplyBody::Path(ZkStr::from_bytes(data)),
        OpCode::Delete | OpCode::CloseSession | OpCode::Ping => ReplyBody::Empty,
        OpCode::GetEphemerals => ReplyBody::Children(List::empty()),
        _ => ReplyBody::Other { op, body: data },
    }
}
