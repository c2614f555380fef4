//! The client side of a ZooKeeper session, as a sans-IO state machine: [`ZkSession`].
//!
//! The session owns everything a ZooKeeper client has to get right and nothing that touches a
//! socket or a clock: the handshake, xids, the table of requests waiting for their reply, pings,
//! the read timeout, the watch registry, reconnection (session id, password, last zxid, auth
//! replay and watch re-registration), expiry and the chroot. The transport moves bytes and time:
//!
//! ```text
//!  transport                               ZkSession
//!  ---------                               ---------
//!  wants_connect(now)? → open TCP  ─────►  handle_connecting(now) / handle_connected(now)
//!  socket readable     → read into ─────►  receive_buffer() + handle_received(now, n)
//!                                          (or handle_bytes(now, &bytes))
//!  application         ◄───────────────── poll_event()   (call until None)
//!  socket writable     ◄───────────────── poll_transmit(now, &mut buf) → n bytes to write
//!  sleep until         ◄───────────────── poll_timeout(), then handle_timeout(now)
//!  state().has_connection() false → close the socket
//!  socket closed/error ─────────────────►  handle_disconnected(now)
//! ```
//!
//! * **Requests are encoded at once.** [`submit`](ZkSession::submit) writes the framed request
//!   (with the chroot prefixed to its paths) into the session's transmit buffer, so nothing
//!   borrowed is kept; [`poll_transmit`](ZkSession::poll_transmit) copies as many queued bytes
//!   as fit, so a pipelining client writes many requests with one syscall.
//! * **Replies are borrowed.** [`poll_event`](ZkSession::poll_event) parses the next frame in
//!   the receive buffer and hands out an [`Event`] whose paths and data borrow that buffer; the
//!   frame is released at the next call. Each reply is parsed with the op code of its request
//!   (replies come in request order; a reply whose xid is not the oldest pending one tears the
//!   connection down).
//! * **Every request gets exactly one [`Event::Reply`]**: its reply, or a local failure —
//!   [`ErrorCode::ConnectionLoss`] for every request in flight or queued when a connection is
//!   lost, [`ErrorCode::SessionExpired`] after expiry or close, [`ErrorCode::AuthFailed`] after
//!   an authentication failure. None is silently lost.
//! * Storage is bounded and chosen by the caller: `PENDING` outstanding requests, `WATCHES`
//!   watch registrations whose paths share `WATCH_BYTES` bytes, and two buffers of any type
//!   `B: AsRef<[u8]> + AsMut<[u8]>` (`[u8; N]`, `&mut [u8]`, `Vec<u8>`, …) for the bytes to
//!   send and the bytes received. A reply larger than the receive buffer cannot be taken and
//!   tears the connection down ([`DisconnectReason::Protocol`] with
//!   [`Error::TooLarge`]).
//!
//! ```
//! use sinew_proto::time::Instant;
//! use sinew_proto::zk::session::{Config, Event, ZkSession};
//! use sinew_proto::zk::{PathWatchRequest, RequestBody, ZkStr};
//!
//! let mut session: ZkSession<[u8; 4096]> = ZkSession::new(Config::default(), [0; 4096], [0; 4096]);
//! let now = Instant::ZERO;
//! // The application may submit before the connection is up: requests wait in the buffer.
//! let xid = session.submit(
//!     now,
//!     RequestBody::GetData(PathWatchRequest { path: ZkStr::new("/config"), watch: false }),
//! )?;
//! assert_eq!(xid, 1);
//! assert!(session.wants_connect(now));
//! session.handle_connected(now); // the transport's TCP connection is up
//! let mut out = [0u8; 4096];
//! let n = session.poll_transmit(now, &mut out);
//! assert_eq!(n, 49); // the ConnectRequest alone: requests wait for the ConnectResponse
//! while let Some(event) = session.poll_event() {
//!     if let Event::Reply(reply) = event {
//!         println!("{} -> {:?}", reply.xid, reply.result);
//!     }
//! }
//! # Ok::<(), sinew_proto::Error>(())
//! ```

use core::fmt;
use core::time::Duration;

use heapless::{Deque, Vec};

use super::{
    AUTH_XID, AddWatchMode, AuthPacket, ConnectRequest, ConnectResponse, DEFAULT_MAX_FRAME_LEN,
    ErrorCode, EventType, FRAME_HEADER_LEN, FrameDecoder, FrameStatus, MULTI_HEADER_LEN,
    MultiHeader, MultiOp, NOTIFICATION_XID, OpCode, PING_XID, REPLY_HEADER_LEN, REQUEST_HEADER_LEN,
    Reply, ReplyBody, ReplyHeader, Request, RequestBody, RequestHeader, SET_WATCHES_XID, STAT_LEN,
    WatcherEvent, WatcherType, ZkStr,
};
use crate::time::Instant;
use crate::{Error, Result};

/// A request id. Ordinary requests count 1, 2, … and wrap from `i32::MAX` back to 1.
pub type Xid = i32;

/// The longest chroot accepted by [`ZkSession::set_chroot`].
pub const MAX_CHROOT_LEN: usize = 255;
/// The longest (client-side) path a watch may be left on; a longer one makes the request that
/// would leave it fail with [`Error::TooLarge`] at submit.
pub const MAX_WATCH_PATH_LEN: usize = 1024;
/// How many authentications ([`ZkSession::add_auth`]) a session remembers for replay.
pub const MAX_AUTHS: usize = 4;
/// The longest auth scheme name.
pub const MAX_AUTH_SCHEME_LEN: usize = 32;
/// The longest auth data (`user:password` for `digest`).
pub const MAX_AUTH_DATA_LEN: usize = 255;
/// The smallest buffer [`ZkSession::poll_transmit`] is sure to make progress with: every frame
/// the session makes up itself (handshake, auth replay, one watch re-registration, ping) fits.
/// Queued requests are copied in pieces into any buffer.
pub const MIN_TRANSMIT_LEN: usize = 2048;
/// The most path bytes one setWatches / setWatches2 frame carries (as the Java client batches
/// them: 128 KiB).
pub const SET_WATCHES_BATCH_LEN: usize = 128 * 1024;
/// The longest interval between two frames sent while connected (the Java client's
/// `MAX_SEND_PING_INTERVAL`).
pub const MAX_PING_INTERVAL: Duration = Duration::from_secs(10);

const MAX_PASSWD_LEN: usize = 64;
const STATE_EVENTS: usize = 8;
/// Fixed part of a setWatches2 frame: length, request header, relative zxid, five counts.
const SET_WATCHES_OVERHEAD: usize = FRAME_HEADER_LEN + REQUEST_HEADER_LEN + 8 + 5 * 4;
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Configuration, state, events
// ---------------------------------------------------------------------------------------------

/// Timing and limits of a [`ZkSession`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The session timeout asked for; the server clamps it to 2–20 ticks and the negotiated
    /// value drives pings and the read timeout.
    pub session_timeout: Duration,
    /// How long one connection attempt (TCP connect and handshake) may take before the next
    /// server is tried. The Java client uses the session timeout divided by the number of
    /// servers.
    pub connect_timeout: Duration,
    /// Whether a read-only server is acceptable (the ConnectRequest's `readOnly` byte).
    pub read_only: bool,
    /// The largest frame payload sent or accepted (ZooKeeper's `jute.maxbuffer`); a request
    /// above it is refused at submit with [`Error::TooLarge`]. The receive buffer's length
    /// also bounds what is accepted.
    pub max_frame_len: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            session_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_only: false,
            // The constant is far below u32::MAX.
            max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
        }
    }
}

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionState {
    /// No connection; [`ZkSession::wants_connect`] says when to open one.
    Disconnected,
    /// The transport is opening a TCP connection ([`ZkSession::handle_connecting`]).
    Connecting,
    /// Connected; the ConnectRequest is sent or about to be, the ConnectResponse awaited.
    Handshaking,
    /// The session is established on this connection.
    Connected,
    /// [`ZkSession::close`] was called; the closeSession reply is awaited.
    Closing,
    /// The session was closed. Terminal.
    Closed,
    /// The server declared the session expired. Terminal: a new session needs a new
    /// `ZkSession`.
    Expired,
    /// The server refused an authentication. Terminal, as in the Java client.
    AuthFailed,
}

impl SessionState {
    /// Whether the session wants its TCP connection kept open: in every other state the
    /// transport closes the socket.
    pub const fn has_connection(self) -> bool {
        matches!(
            self,
            SessionState::Connecting
                | SessionState::Handshaking
                | SessionState::Connected
                | SessionState::Closing
        )
    }

    /// Whether the session is over for good (closed, expired or refused).
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Closed | SessionState::Expired | SessionState::AuthFailed
        )
    }

    /// The error every request gets in this state without being sent, if any.
    const fn doom(self) -> Option<ErrorCode> {
        match self {
            SessionState::Closing | SessionState::Closed | SessionState::Expired => {
                Some(ErrorCode::SessionExpired)
            }
            SessionState::AuthFailed => Some(ErrorCode::AuthFailed),
            _ => None,
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a connection was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DisconnectReason {
    /// The transport reported the connection closed or broken
    /// ([`ZkSession::handle_disconnected`]).
    Transport,
    /// No ConnectResponse within [`Config::connect_timeout`].
    ConnectTimeout,
    /// Nothing received for the read timeout (2/3 of the negotiated session timeout).
    ReadTimeout,
    /// The server's bytes broke the protocol (bad frame length, a reply that does not parse,
    /// a frame larger than the receive buffer).
    Protocol(Error),
    /// A reply arrived whose xid is not the oldest pending request's (`expected`, `None` when
    /// nothing was pending).
    UnexpectedXid {
        /// The xid the session waited for.
        expected: Option<Xid>,
        /// The xid that came.
        got: Xid,
    },
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Transport => f.write_str("connection closed"),
            DisconnectReason::ConnectTimeout => f.write_str("connect timeout"),
            DisconnectReason::ReadTimeout => f.write_str("read timeout"),
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::UnexpectedXid {
                expected: Some(x),
                got,
            } => write!(f, "reply xid {got} while xid {x} was the oldest pending"),
            DisconnectReason::UnexpectedXid {
                expected: None,
                got,
            } => write!(f, "reply xid {got} with no request pending"),
        }
    }
}

/// An application's name for a watcher: notifications that fire a watch carry the id given
/// when the watch was left ([`ZkSession::submit_watched`]; [`WatcherId::DEFAULT`] otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WatcherId(pub u32);

impl WatcherId {
    /// The watcher of requests submitted with [`ZkSession::submit`].
    pub const DEFAULT: WatcherId = WatcherId(0);
}

/// The kinds of watch, as ZooKeeper keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WatchKind {
    /// One-shot, left by getData or by exists on an existing node: fires on data change and
    /// deletion.
    Data,
    /// One-shot, left by exists on a missing node: fires on creation.
    Exist,
    /// One-shot, left by getChildren: fires on a change of the children and on deletion.
    Child,
    /// Left by addWatch (persistent): fires on every change of the node, until removed.
    Persistent,
    /// Left by addWatch (persistent recursive): fires on data changes, creations and
    /// deletions of the node and every node below it.
    PersistentRecursive,
}

impl WatchKind {
    /// Whether the watch is gone once it fired.
    pub const fn is_one_shot(self) -> bool {
        matches!(self, WatchKind::Data | WatchKind::Exist | WatchKind::Child)
    }

    /// Whether a notification of `event_type` for `event_path` fires a watch of this kind on
    /// `watch_path` (the Java client's `ZKWatchManager.materialize`).
    pub fn fires(self, event_type: EventType, watch_path: &[u8], event_path: &[u8]) -> bool {
        use EventType as E;
        match self {
            WatchKind::Data | WatchKind::Exist => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted
                ) && watch_path == event_path
            }
            WatchKind::Child => {
                matches!(event_type, E::NodeChildrenChanged | E::NodeDeleted)
                    && watch_path == event_path
            }
            WatchKind::Persistent => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted | E::NodeChildrenChanged
                ) && watch_path == event_path
            }
            WatchKind::PersistentRecursive => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted
                ) && is_self_or_ancestor(watch_path, event_path)
            }
        }
    }
}

/// Whether `ancestor` is `path` or one of its ancestors.
fn is_self_or_ancestor(ancestor: &[u8], path: &[u8]) -> bool {
    if ancestor == path || ancestor == b"/" {
        return path.first() == Some(&b'/') || ancestor == path;
    }
    path.len() > ancestor.len() && path.starts_with(ancestor) && path[ancestor.len()] == b'/'
}

/// The outcome of a request: its reply, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReplyEvent<'a> {
    /// The xid [`ZkSession::submit`] returned.
    pub xid: Xid,
    /// The request's op code.
    pub op: OpCode,
    /// The zxid of the reply's header; 0 for a failure made up locally.
    pub zxid: i64,
    /// The reply's body (paths with the chroot stripped, borrowed from the session's receive
    /// buffer), or its error: the server's, or [`ErrorCode::ConnectionLoss`] /
    /// [`ErrorCode::SessionExpired`] / [`ErrorCode::AuthFailed`] made up locally for a request
    /// that cannot be answered.
    pub result: core::result::Result<ReplyBody<'a>, ErrorCode>,
}

impl ReplyEvent<'_> {
    /// Whether the failure was made up by the session rather than sent by a server.
    pub const fn is_local(&self) -> bool {
        self.zxid == 0 && self.result.is_err()
    }
}

/// A watch notification, once for each watch it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WatchEvent<'a> {
    /// The watcher whose watch fired; `None` when the notification matched no watch the
    /// session knows (it is still reported, once).
    pub watcher: Option<WatcherId>,
    /// The kind of the watch that fired (`None` when unmatched).
    pub kind: Option<WatchKind>,
    /// What happened.
    pub event_type: EventType,
    /// The node it happened to, with the chroot stripped, borrowed from the receive buffer.
    pub path: ZkStr<'a>,
    /// The notification's zxid (-1 from ZooKeeper before 3.9).
    pub zxid: i64,
}

/// What the application learns from [`ZkSession::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'a> {
    /// The handshake succeeded.
    Connected {
        /// The session's id.
        session_id: i64,
        /// The negotiated session timeout, milliseconds.
        timeout_ms: i32,
        /// Whether the server is read-only.
        read_only: bool,
        /// Whether this re-attached an existing session (false for a new one).
        reattached: bool,
    },
    /// The connection was lost; every request in flight has failed (their
    /// [`Event::Reply`]s follow). The session reconnects when [`ZkSession::wants_connect`].
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The server declared the session expired; the session is over and every request fails
    /// with [`ErrorCode::SessionExpired`].
    Expired,
    /// The server refused an authentication; the session is over.
    AuthFailed,
    /// The session was closed ([`ZkSession::close`]).
    Closed,
    /// The outcome of a submitted request.
    Reply(ReplyEvent<'a>),
    /// A watch fired.
    Watch(WatchEvent<'a>),
}

/// Counters of what a session did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// Requests accepted by submit.
    pub submitted: u64,
    /// Replies received for requests.
    pub replies: u64,
    /// Requests failed locally (connection loss, expiry, close, auth failure).
    pub failed_locally: u64,
    /// Notifications received.
    pub notifications: u64,
    /// Notifications that matched no registered watch.
    pub unmatched_notifications: u64,
    /// Pings sent.
    pub pings: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Connections given up (all reasons).
    pub disconnects: u64,
    /// Connections given up because of the server's bytes.
    pub protocol_errors: u64,
    /// setWatches / setWatches2 frames sent.
    pub set_watches_sent: u64,
    /// Auth packets sent (replays included).
    pub auths_sent: u64,
    /// Bytes handed to the transport.
    pub bytes_sent: u64,
    /// Bytes received from the transport.
    pub bytes_received: u64,
    /// State events dropped because too many were waiting to be polled.
    pub events_dropped: u64,
}

/// One registered watch, as [`ZkSession::watches`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchInfo<'a> {
    /// The watch's kind.
    pub kind: WatchKind,
    /// The application's watcher.
    pub watcher: WatcherId,
    /// The watched path (client side, without chroot).
    pub path: &'a [u8],
}

// ---------------------------------------------------------------------------------------------
// Internal storage
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Pending {
    xid: Xid,
    op: OpCode,
    /// The token of the watch this request leaves if it succeeds (0: none).
    watch: u32,
    /// Set when the request has failed locally and waits to be reported.
    fail: Option<ErrorCode>,
}

#[derive(Clone, Copy, Debug)]
struct Watch {
    kind: WatchKind,
    watcher: WatcherId,
    start: u32,
    len: u32,
    /// 0 once active; else the token of the request whose reply activates it.
    token: u32,
    /// Left by an exists request: Data if the node exists, Exist if not.
    from_exists: bool,
    /// Fired by the notification being reported.
    firing: bool,
}

/// The watch registry: entries in registration order, their paths in one byte arena.
#[derive(Debug)]
struct Watches<const N: usize, const BYTES: usize> {
    entries: Vec<Watch, N>,
    paths: Vec<u8, BYTES>,
    next_token: u32,
}

impl<const N: usize, const BYTES: usize> Watches<N, BYTES> {
    const fn new() -> Self {
        Watches {
            entries: Vec::new(),
            paths: Vec::new(),
            next_token: 1,
        }
    }

    fn path(&self, w: &Watch) -> &[u8] {
        let start = w.start as usize;
        self.paths
            .get(start..start + w.len as usize)
            .unwrap_or_default()
    }

    /// Reserves a pending entry; returns its token.
    fn reserve(
        &mut self,
        kind: WatchKind,
        from_exists: bool,
        path: &[u8],
        watcher: WatcherId,
    ) -> Result<u32> {
        if path.len() > MAX_WATCH_PATH_LEN {
            return Err(Error::TooLarge);
        }
        if self.entries.is_full() || BYTES - self.paths.len() < path.len() {
            return Err(Error::Capacity);
        }
        let token = self.next_token;
        self.next_token = self.next_token.checked_add(1).unwrap_or(1);
        let start = self.paths.len() as u32;
        self.paths
            .extend_from_slice(path)
            .map_err(|_| Error::Capacity)?;
        let entry = Watch {
            kind,
            watcher,
            start,
            len: path.len() as u32,
            token,
            from_exists,
            firing: false,
        };
        if self.entries.push(entry).is_err() {
            self.paths.truncate(start as usize);
            return Err(Error::Capacity);
        }
        Ok(token)
    }

    /// Removes entry `i` (which must exist) and its path bytes; returns it.
    fn remove(&mut self, i: usize) -> Watch {
        let w = self.entries.remove(i);
        let (start, len) = (w.start as usize, w.len as usize);
        let end = start + len;
        let total = self.paths.len();
        if end <= total {
            self.paths.copy_within(end..total, start);
            self.paths.truncate(total - len);
            for other in self.entries.iter_mut() {
                if other.start as usize >= end {
                    other.start -= w.len;
                }
            }
        }
        w
    }

    fn position_token(&self, token: u32) -> Option<usize> {
        self.entries.iter().position(|w| w.token == token)
    }

    /// Settles the watch a request reserved, given the reply's error: activated, turned into
    /// an exist watch, dropped as a duplicate, or removed.
    fn settle(&mut self, token: u32, err: ErrorCode) {
        let Some(i) = self.position_token(token) else {
            return;
        };
        let w = self.entries[i];
        let kind = match (err, w.from_exists) {
            (ErrorCode::Ok, _) => w.kind,
            (ErrorCode::NoNode, true) => WatchKind::Exist,
            _ => {
                self.remove(i);
                return;
            }
        };
        let path = self.path(&w);
        let duplicate = self.entries.iter().enumerate().any(|(j, o)| {
            j != i
                && o.token == 0
                && o.kind == kind
                && o.watcher == w.watcher
                && self.path(o) == path
        });
        if duplicate {
            self.remove(i);
        } else {
            let entry = &mut self.entries[i];
            entry.kind = kind;
            entry.token = 0;
        }
    }

    /// Drops every reservation whose request will not be answered.
    fn drop_reservations(&mut self) {
        while let Some(i) = self.entries.iter().position(|w| w.token != 0) {
            self.remove(i);
        }
    }

    fn clear_firing(&mut self) {
        for w in self.entries.iter_mut() {
            w.firing = false;
        }
    }
}

/// Per-connection progress of the frames the session sends on its own after a handshake.
#[derive(Clone, Copy, Debug, Default)]
struct Replay {
    /// Next auth to resend.
    auth: usize,
    /// Next watch registry entry to re-register.
    watch: usize,
    /// Whether the replay is under way (set by a successful handshake).
    active: bool,
}

#[derive(Debug)]
struct Auth {
    scheme: Vec<u8, MAX_AUTH_SCHEME_LEN>,
    data: Vec<u8, MAX_AUTH_DATA_LEN>,
}

/// A notification being reported, once per watch it fired.
#[derive(Clone, Copy, Debug)]
struct Fanout {
    event_type: EventType,
    zxid: i64,
    /// The (stripped) path's place in the receive buffer; `None` for a null path.
    path: Option<(usize, usize)>,
    /// Matched no watch: reported once, without a watcher.
    unmatched: bool,
}

// ---------------------------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------------------------

/// A ZooKeeper client session without sockets or clocks.
///
/// See the [module documentation](self) for the flow between transport, session and
/// application. `B` is the type of the two byte buffers (transmit and receive); `PENDING` bounds
/// the requests waiting for a reply (sent or queued), `WATCHES` the watch registrations and
/// `WATCH_BYTES` the bytes of their paths.
///
/// # The borrowed-event contract
/// [`poll_event`](Self::poll_event) returns events that borrow the receive buffer; the frame
/// they come from is kept until the next call of `poll_event`, [`receive_buffer`](Self::receive_buffer)
/// or [`handle_bytes`](Self::handle_bytes), which release it. The session parses frames only in
/// `poll_event`: after feeding bytes, call it until it returns `None` (the handshake, pings and
/// auth replies advance there too), then [`poll_transmit`](Self::poll_transmit).
pub struct ZkSession<
    B,
    const PENDING: usize = 64,
    const WATCHES: usize = 64,
    const WATCH_BYTES: usize = 4096,
> {
    config: Config,
    state: SessionState,
    // Session identity.
    session_id: i64,
    passwd: Vec<u8, MAX_PASSWD_LEN>,
    last_zxid: i64,
    negotiated_ms: i32,
    read_only: bool,
    chroot: Vec<u8, MAX_CHROOT_LEN>,
    auths: Vec<Auth, MAX_AUTHS>,
    // Requests.
    next_xid: Xid,
    pending: Deque<Pending, PENDING>,
    watches: Watches<WATCHES, WATCH_BYTES>,
    // Transmit FIFO: whole frames in tx[tx_head..tx_tail].
    tx: B,
    tx_head: usize,
    tx_tail: usize,
    /// Bytes of the frame at `tx_head` still to send after a partial copy (0: at a boundary).
    tx_partial: usize,
    connect_sent: bool,
    ping_wanted: bool,
    replay: Replay,
    // Receive buffer: bytes in rx[rx_head..rx_tail].
    rx: B,
    rx_head: usize,
    rx_tail: usize,
    /// Bytes at `rx_head` handed out by the last event, dropped at the next call.
    rx_release: usize,
    /// Bytes of the frame under fan-out, dropped once every watcher has been told.
    fanout: Option<(Fanout, usize)>,
    // Time.
    last_send: Instant,
    last_recv: Instant,
    deadline: Instant,
    reconnect_at: Instant,
    attempts: u32,
    state_events: Deque<Event<'static>, STATE_EVENTS>,
    stats: Stats,
}

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize> fmt::Debug
    for ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkSession")
            .field("state", &self.state)
            .field("session_id", &format_args!("{:#x}", self.session_id))
            .field("last_zxid", &self.last_zxid)
            .field("pending", &self.pending.len())
            .field("watches", &self.watches.entries.len())
            .field("queued_bytes", &(self.tx_tail - self.tx_head))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    /// A new session (not yet connected) with a transmit and a receive buffer.
    ///
    /// The transmit buffer bounds the bytes of requests queued and not yet handed to the
    /// transport; the receive buffer bounds the largest reply (a frame longer than it, prefix
    /// included, tears the connection down).
    pub fn new(config: Config, tx: B, rx: B) -> Self {
        ZkSession {
            config,
            state: SessionState::Disconnected,
            session_id: 0,
            passwd: Vec::new(),
            last_zxid: 0,
            negotiated_ms: 0,
            read_only: false,
            chroot: Vec::new(),
            auths: Vec::new(),
            next_xid: 1,
            pending: Deque::new(),
            watches: Watches::new(),
            tx,
            tx_head: 0,
            tx_tail: 0,
            tx_partial: 0,
            connect_sent: false,
            ping_wanted: false,
            replay: Replay::default(),
            rx,
            rx_head: 0,
            rx_tail: 0,
            rx_release: 0,
            fanout: None,
            last_send: Instant::ZERO,
            last_recv: Instant::ZERO,
            deadline: Instant::MAX,
            reconnect_at: Instant::ZERO,
            attempts: 0,
            state_events: Deque::new(),
            stats: Stats::default(),
        }
    }

    /// Sets the chroot: every path sent is prefixed with it, every path received has it
    /// stripped (`/` on the client side is the chroot itself). `""` or `"/"` removes it.
    ///
    /// Set it before submitting requests: the paths of requests already queued are not
    /// changed.
    ///
    /// # Errors
    /// [`Error::BadValue`] unless it starts with `/` and does not end with `/`;
    /// [`Error::TooLarge`] beyond [`MAX_CHROOT_LEN`] bytes.
    pub fn set_chroot(&mut self, chroot: &str) -> Result<()> {
        let bytes = chroot.as_bytes();
        if bytes.is_empty() || bytes == b"/" {
            self.chroot.clear();
            return Ok(());
        }
        if bytes.first() != Some(&b'/') || bytes.last() == Some(&b'/') {
            return Err(Error::BadValue);
        }
        let mut new = Vec::new();
        new.extend_from_slice(bytes).map_err(|_| Error::TooLarge)?;
        self.chroot = new;
        Ok(())
    }

    /// The chroot (empty when none).
    pub fn chroot(&self) -> &[u8] {
        &self.chroot
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Sets how long one connection attempt may take (the transport knows how many servers
    /// it has: the Java client uses the session timeout divided by their number).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.config.connect_timeout = timeout;
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The session id (0 before the first handshake).
    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The session password the server gave (empty before the first handshake).
    pub fn passwd(&self) -> &[u8] {
        &self.passwd
    }

    /// The last zxid seen in a reply; sent on reconnect so that no server behind it is used.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The negotiated session timeout (zero before the first handshake).
    pub fn negotiated_timeout(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.negotiated_ms).unwrap_or(0))
    }

    /// Whether the server of the current connection is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Requests waiting for their reply (sent, queued, or failed and not yet reported).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Whether another request can be submitted now without [`Error::Capacity`] from the
    /// pending table.
    pub fn can_submit(&self) -> bool {
        !self.pending.is_full()
    }

    /// The active watch registrations.
    pub fn watches(&self) -> impl Iterator<Item = WatchInfo<'_>> + '_ {
        self.watches
            .entries
            .iter()
            .filter(|w| w.token == 0)
            .map(|w| WatchInfo {
                kind: w.kind,
                watcher: w.watcher,
                path: self.watches.path(w),
            })
    }

    /// The read timeout of the current session: 2/3 of the negotiated timeout (of the
    /// requested one before a handshake), in whole milliseconds as the Java client computes it.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms())
    }

    fn read_timeout_ms(&self) -> u64 {
        let ms = if self.negotiated_ms > 0 {
            u64::try_from(self.negotiated_ms).unwrap_or(0)
        } else {
            u64::try_from(self.config.session_timeout.as_millis()).unwrap_or(u64::MAX)
        };
        ms.saturating_mul(2) / 3
    }

    /// The idle sending time after which a ping is sent: the Java client's `readTimeout / 2`,
    /// less the second it subtracts once idle for more than a second, and at most
    /// [`MAX_PING_INTERVAL`].
    pub fn ping_interval(&self) -> Duration {
        let half = self.read_timeout_ms() / 2;
        let java = if half > 2000 {
            half - 1000
        } else if half > 1000 {
            1000
        } else {
            half
        };
        Duration::from_millis(java).min(MAX_PING_INTERVAL)
    }

    // -----------------------------------------------------------------------------------------
    // Requests
    // -----------------------------------------------------------------------------------------

    /// Submits a request; its outcome comes back as exactly one [`Event::Reply`] with the
    /// returned xid. A watch it asks for (getData, exists, getChildren with `watch`, addWatch)
    /// is registered for [`WatcherId::DEFAULT`].
    ///
    /// The request is encoded at once (paths prefixed with the chroot) into the transmit
    /// buffer; nothing of `body` is kept. Before the session is connected, requests wait there
    /// and are sent after the handshake (and fail with ConnectionLoss if that connection
    /// attempt fails). After expiry, close or an auth failure the request is not sent and
    /// fails with the state's error.
    ///
    /// # Errors
    /// [`Error::UnexpectedOp`] for ping, auth, setWatches and setWatches2, which the session
    /// sends itself; [`Error::Capacity`] when `PENDING` requests are waiting, the transmit
    /// buffer has no room now, or the watch registry is full; [`Error::TooLarge`] for a frame
    /// above [`Config::max_frame_len`] or a watch on a path longer than
    /// [`MAX_WATCH_PATH_LEN`]; [`Error::BufferTooSmall`] for a frame that can never fit the
    /// transmit buffer.
    pub fn submit(&mut self, now: Instant, body: RequestBody<'_>) -> Result<Xid> {
        self.submit_watched(now, body, WatcherId::DEFAULT)
    }

    /// As [`submit`](Self::submit), registering the watch it asks for (if any) for `watcher`.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_watched(
        &mut self,
        now: Instant,
        body: RequestBody<'_>,
        watcher: WatcherId,
    ) -> Result<Xid> {
        let op = body.op();
        if matches!(
            op,
            OpCode::Ping | OpCode::Auth | OpCode::SetWatches | OpCode::SetWatches2
        ) {
            return Err(op_error(op));
        }
        if self.pending.is_full() {
            return Err(Error::Capacity);
        }
        let (xid, next) = self.allocate_xid();
        if let Some(code) = self.state.doom() {
            self.push_pending(xid, op, 0, Some(code))?;
            self.next_xid = next;
            self.stats.submitted += 1;
            return Ok(xid);
        }
        let token = match watch_request(&body) {
            Some((kind, from_exists, path)) => {
                self.watches
                    .reserve(kind, from_exists, path.as_bytes(), watcher)?
            }
            None => 0,
        };
        if let Err(e) = self.enqueue_request(xid, &body) {
            if token != 0 {
                if let Some(i) = self.watches.position_token(token) {
                    self.watches.remove(i);
                }
            }
            return Err(e);
        }
        if let RequestBody::RemoveWatches(r) = &body {
            self.forget_watches(r.path.as_bytes(), r.watcher_type);
        }
        self.push_pending(xid, op, token, None)?;
        self.next_xid = next;
        self.stats.submitted += 1;
        if op == OpCode::CloseSession && self.state == SessionState::Connected {
            self.state = SessionState::Closing;
        }
        let _ = now;
        Ok(xid)
    }

    /// Closes the session: sends closeSession after everything queued. The server answers it
    /// after the requests before it; then the session is [`SessionState::Closed`] and
    /// [`Event::Closed`] follows the reply. Requests submitted after this fail with
    /// [`ErrorCode::SessionExpired`], as in the Java client.
    ///
    /// A session no server knows yet (no handshake ever completed, none under way) is closed
    /// at once, without sending anything; a disconnected session that has an id sends
    /// closeSession after the next handshake. The close request's own [`Event::Reply`] is
    /// `Ok` when a server answered it, a local error otherwise.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn close(&mut self, now: Instant) -> Result<Xid> {
        if self.session_id == 0
            && !self.state.is_terminal()
            && self.state != SessionState::Handshaking
        {
            // No server knows this session yet: nothing to tell one.
            self.state = SessionState::Closed;
            self.fail_all(ErrorCode::ConnectionLoss);
            self.clear_connection();
            self.push_state_event(Event::Closed);
        }
        self.submit(now, RequestBody::CloseSession)
    }

    /// Adds an authentication (`digest` with `user:password`, say): sent now if connected,
    /// and again after every reconnect, before any request.
    ///
    /// # Errors
    /// [`Error::Capacity`] beyond [`MAX_AUTHS`]; [`Error::TooLarge`] for a scheme longer
    /// than [`MAX_AUTH_SCHEME_LEN`] or data longer than [`MAX_AUTH_DATA_LEN`]; as
    /// [`submit`](Self::submit) if the transmit buffer has no room.
    pub fn add_auth(&mut self, now: Instant, scheme: &str, auth: &[u8]) -> Result<()> {
        let _ = now;
        if self.auths.is_full() {
            return Err(Error::Capacity);
        }
        let mut entry = Auth {
            scheme: Vec::new(),
            data: Vec::new(),
        };
        entry
            .scheme
            .extend_from_slice(scheme.as_bytes())
            .map_err(|_| Error::TooLarge)?;
        entry
            .data
            .extend_from_slice(auth)
            .map_err(|_| Error::TooLarge)?;
        // Once the replay is done, a new auth goes in order with the requests; before, the
        // replay (or the next one) picks it up.
        if matches!(self.state, SessionState::Connected | SessionState::Closing)
            && !self.replay.active
        {
            let request = Request::auth(AuthPacket {
                auth_type: 0,
                scheme: ZkStr::new(scheme),
                auth: Some(auth),
            });
            self.enqueue_frame(|buf| request.encode_framed(buf))?;
            self.stats.auths_sent += 1;
        }
        self.auths.push(entry).map_err(|_| Error::Capacity)?;
        Ok(())
    }

    fn push_pending(
        &mut self,
        xid: Xid,
        op: OpCode,
        watch: u32,
        fail: Option<ErrorCode>,
    ) -> Result<()> {
        self.pending
            .push_back(Pending {
                xid,
                op,
                watch,
                fail,
            })
            .map_err(|_| Error::Capacity)
    }

    /// The next free xid and the counter after it. Replies come in order, so the pending
    /// xids are one run of the sequence: an xid is busy exactly when it lies in the cyclic
    /// interval from the oldest to the newest pending one.
    fn allocate_xid(&self) -> (Xid, Xid) {
        let step = |x: Xid| if (1..i32::MAX).contains(&x) { x + 1 } else { 1 };
        let mut xid = if self.next_xid < 1 { 1 } else { self.next_xid };
        if let (Some(front), Some(back)) = (self.pending.front(), self.pending.back()) {
            let (lo, hi) = (front.xid, back.xid);
            let busy = |x: Xid| {
                if lo <= hi {
                    lo <= x && x <= hi
                } else {
                    x >= lo || x <= hi
                }
            };
            // At most PENDING xids are busy, so this ends.
            let mut tries = 0;
            while busy(xid) && tries <= PENDING {
                xid = step(xid);
                tries += 1;
            }
        }
        (xid, step(xid))
    }

    /// Removes the local registrations a removeWatches request is about.
    fn forget_watches(&mut self, path: &[u8], watcher_type: WatcherType) {
        let kinds: &[WatchKind] = match watcher_type {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data, WatchKind::Exist],
            // ZooKeeper 3.8 removes persistent watches with Any too (it refuses types 4 and 5).
            WatcherType::Any => &[
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
            WatcherType::Unknown(_) => &[],
        };
        while let Some(i) =
            self.watches.entries.iter().position(|w| {
                w.token == 0 && kinds.contains(&w.kind) && self.watches.path(w) == path
            })
        {
            self.remove_watch(i);
        }
    }

    fn remove_watch(&mut self, i: usize) {
        self.watches.remove(i);
        if i < self.replay.watch {
            self.replay.watch -= 1;
        }
    }

    /// Encodes a request frame into the transmit FIFO.
    fn enqueue_request(&mut self, xid: Xid, body: &RequestBody<'_>) -> Result<()> {
        let chroot_len = self.chroot.len();
        let payload = request_len(xid, body, &self.chroot);
        if payload > self.config.max_frame_len as usize {
            return Err(Error::TooLarge);
        }
        let frame = payload + FRAME_HEADER_LEN;
        let at = self.reserve_tx(frame)?;
        let chroot = &self.chroot;
        let out = self
            .tx
            .as_mut()
            .get_mut(at..at + frame)
            .ok_or(Error::BufferTooSmall)?;
        let (prefix, rest) = out
            .split_first_chunk_mut::<FRAME_HEADER_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        let written = encode_request(rest, xid, body, chroot)?;
        debug_assert_eq!(written, payload, "request_len disagrees ({chroot_len})");
        *prefix = i32::try_from(written)
            .map_err(|_| Error::TooLarge)?
            .to_be_bytes();
        self.tx_tail = at + FRAME_HEADER_LEN + written;
        Ok(())
    }

    /// Encodes a whole frame with `encode` into the transmit FIFO.
    fn enqueue_frame(&mut self, encode: impl FnOnce(&mut [u8]) -> Result<usize>) -> Result<()> {
        let free = self.tx.as_ref().len() - self.tx_tail;
        if free < MIN_TRANSMIT_LEN {
            self.compact_tx();
        }
        let out = self
            .tx
            .as_mut()
            .get_mut(self.tx_tail..)
            .ok_or(Error::Capacity)?;
        let n = encode(out).map_err(|e| match e {
            Error::BufferTooSmall => Error::Capacity,
            e => e,
        })?;
        self.tx_tail += n;
        Ok(())
    }

    /// Makes room for `len` bytes at the FIFO's tail; returns where they go.
    fn reserve_tx(&mut self, len: usize) -> Result<usize> {
        let cap = self.tx.as_ref().len();
        if len > cap {
            return Err(Error::BufferTooSmall);
        }
        if cap - self.tx_tail < len {
            self.compact_tx();
        }
        if cap - self.tx_tail < len {
            return Err(Error::Capacity);
        }
        Ok(self.tx_tail)
    }

    fn compact_tx(&mut self) {
        if self.tx_head > 0 {
            let (head, tail) = (self.tx_head, self.tx_tail);
            self.tx.as_mut().copy_within(head..tail, 0);
            self.tx_tail = tail - head;
            self.tx_head = 0;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Connection events
    // -----------------------------------------------------------------------------------------

    /// Whether the transport should open a connection now (to the next server of its list).
    pub fn wants_connect(&self, now: Instant) -> bool {
        self.state == SessionState::Disconnected && now >= self.reconnect_at
    }

    /// The transport started opening a connection: [`Config::connect_timeout`] runs from now
    /// (calling this is optional; [`handle_connected`](Self::handle_connected) starts it
    /// otherwise).
    pub fn handle_connecting(&mut self, now: Instant) {
        if self.state == SessionState::Disconnected {
            self.state = SessionState::Connecting;
            self.deadline = now + self.config.connect_timeout;
        }
    }

    /// The transport's connection is up: the handshake starts (the next
    /// [`poll_transmit`](Self::poll_transmit) writes the ConnectRequest).
    pub fn handle_connected(&mut self, now: Instant) {
        match self.state {
            SessionState::Disconnected => self.deadline = now + self.config.connect_timeout,
            SessionState::Connecting => {}
            _ => return,
        }
        self.state = SessionState::Handshaking;
        self.connect_sent = false;
        self.ping_wanted = false;
        self.replay = Replay::default();
        self.rx_head = 0;
        self.rx_tail = 0;
        self.rx_release = 0;
        self.fanout = None;
        self.tx_partial = 0;
        self.last_send = now;
        self.last_recv = now;
    }

    /// The transport's connection is gone (closed by the server, reset, failed to connect):
    /// every request in flight or queued fails with [`ErrorCode::ConnectionLoss`], and the
    /// session waits to reconnect (or, while closing, is closed).
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.teardown(now, DisconnectReason::Transport);
    }

    /// Gives up the current connection.
    fn teardown(&mut self, now: Instant, reason: DisconnectReason) {
        if !self.state.has_connection() {
            return;
        }
        let established = self.state == SessionState::Connected;
        let closing = self.state == SessionState::Closing;
        self.state = if closing {
            SessionState::Closed
        } else {
            SessionState::Disconnected
        };
        self.stats.disconnects += 1;
        if matches!(
            reason,
            DisconnectReason::Protocol(_) | DisconnectReason::UnexpectedXid { .. }
        ) {
            self.stats.protocol_errors += 1;
        }
        self.fail_all(ErrorCode::ConnectionLoss);
        self.clear_connection();
        self.attempts = if established {
            0
        } else {
            self.attempts.saturating_add(1)
        };
        let backoff = match self.attempts {
            0 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        };
        self.reconnect_at = now + backoff;
        self.deadline = Instant::MAX;
        self.push_state_event(Event::Disconnected { reason });
        if closing {
            self.push_state_event(Event::Closed);
        }
    }

    /// Forgets everything tied to one connection: queued bytes, received bytes, fan-out.
    fn clear_connection(&mut self) {
        self.tx_head = 0;
        self.tx_tail = 0;
        self.tx_partial = 0;
        self.connect_sent = false;
        self.ping_wanted = false;
        self.replay = Replay::default();
        self.rx_head = 0;
        self.rx_tail = 0;
        self.rx_release = 0;
        self.fanout = None;
        self.watches.clear_firing();
    }

    /// Marks every pending request as failed with `code` (those already failed keep their
    /// error) and drops the watches they would have left.
    fn fail_all(&mut self, code: ErrorCode) {
        for p in self.pending.iter_mut() {
            if p.fail.is_none() {
                p.fail = Some(code);
            }
            p.watch = 0;
        }
        self.watches.drop_reservations();
    }

    fn push_state_event(&mut self, event: Event<'static>) {
        if self.state_events.is_full() {
            self.state_events.pop_front();
            self.stats.events_dropped += 1;
        }
        let _ = self.state_events.push_back(event);
    }

    // -----------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) next has work: the connect deadline, the
    /// read timeout, the next ping, or the moment to reconnect. `None` when only the
    /// application or the transport can move the session (terminal states).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SessionState::Connecting | SessionState::Handshaking => Some(self.deadline),
            SessionState::Connected | SessionState::Closing => {
                let read = self.last_recv + self.read_timeout();
                if self.ping_wanted {
                    Some(read)
                } else {
                    Some(read.min(self.last_send + self.ping_interval()))
                }
            }
            SessionState::Disconnected => Some(self.reconnect_at),
            SessionState::Closed | SessionState::Expired | SessionState::AuthFailed => None,
        }
    }

    /// Lets time pass: gives up a connection whose handshake or reads are late (every
    /// request in flight fails with ConnectionLoss), and decides on a ping after idle
    /// sending.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            SessionState::Connecting | SessionState::Handshaking if now >= self.deadline => {
                self.teardown(now, DisconnectReason::ConnectTimeout);
            }
            SessionState::Connected | SessionState::Closing => {
                if now >= self.last_recv + self.read_timeout() {
                    self.teardown(now, DisconnectReason::ReadTimeout);
                } else if now >= self.last_send + self.ping_interval() {
                    self.ping_wanted = true;
                }
            }
            _ => {}
        }
    }

    // -----------------------------------------------------------------------------------------
    // Transmit
    // -----------------------------------------------------------------------------------------

    /// Whether [`poll_transmit`](Self::poll_transmit) has bytes to write.
    pub fn has_transmit(&self) -> bool {
        match self.state {
            SessionState::Handshaking => !self.connect_sent,
            SessionState::Connected | SessionState::Closing => {
                self.replay_pending() || self.ping_wanted || self.tx_tail > self.tx_head
            }
            _ => false,
        }
    }

    /// Whether auths or watches remain to be replayed on this connection.
    fn replay_pending(&self) -> bool {
        self.replay.active
            && (self.replay.auth < self.auths.len()
                || self
                    .watches
                    .entries
                    .get(self.replay.watch..)
                    .is_some_and(|rest| rest.iter().any(|w| w.token == 0)))
    }

    /// Writes the bytes to send next into `buf` and returns how many (0: nothing to send).
    /// The bytes are the session's from then on: the transport must write all of them, in
    /// order, before the bytes of the next call.
    ///
    /// During the handshake only the ConnectRequest goes out (as the Java client does, so
    /// that an expired session's answer is not lost to a reset). After it: the auth replay,
    /// the watch re-registration (setWatches, or setWatches2 when persistent watches are
    /// among them, in batches of at most [`SET_WATCHES_BATCH_LEN`] path bytes), a ping when
    /// one is due, and then as many queued requests as fit — many frames in one call.
    ///
    /// Frames the session makes up itself are written whole: give a buffer of at least
    /// [`MIN_TRANSMIT_LEN`] bytes. Queued requests are copied in pieces if need be.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let n = match self.state {
            SessionState::Handshaking if !self.connect_sent => {
                match self.connect_request().encode_framed(buf) {
                    Ok(n) => {
                        self.connect_sent = true;
                        n
                    }
                    Err(_) => 0,
                }
            }
            SessionState::Connected | SessionState::Closing => self.transmit_connected(buf),
            _ => 0,
        };
        if n > 0 {
            self.last_send = now;
            self.stats.bytes_sent += n as u64;
        }
        n
    }

    fn connect_request(&self) -> ConnectRequest<'_> {
        const ZEROS: [u8; super::PASSWD_LEN] = [0; super::PASSWD_LEN];
        let timeout = i32::try_from(self.config.session_timeout.as_millis()).unwrap_or(i32::MAX);
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout,
            session_id: self.session_id,
            passwd: Some(if self.passwd.is_empty() {
                &ZEROS[..]
            } else {
                &self.passwd
            }),
            read_only: Some(self.config.read_only),
        }
    }

    fn transmit_connected(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while self.replay.active {
            let Some(out) = buf.get_mut(n..) else { break };
            match self.next_replay_frame(out) {
                Some(len) => n += len,
                None => return n,
            }
        }
        if self.ping_wanted && self.tx_partial == 0 {
            if let Some(out) = buf.get_mut(n..) {
                if let Ok(len) = Request::PING.encode_framed(out) {
                    n += len;
                    self.ping_wanted = false;
                    self.stats.pings += 1;
                }
            }
        }
        if n > 0 {
            // Something goes out: the server hears from us, no ping needed.
            self.ping_wanted = false;
        }
        let queued = self.tx_tail - self.tx_head;
        let room = buf.len().saturating_sub(n);
        let take = queued.min(room);
        if take > 0 {
            let (head, partial) = self.advance_tx(take);
            let src = self.tx.as_ref().get(self.tx_head..self.tx_head + take);
            if let (Some(src), Some(dst)) = (src, buf.get_mut(n..n + take)) {
                dst.copy_from_slice(src);
                n += take;
            }
            self.tx_head = head;
            self.tx_partial = partial;
            self.ping_wanted = false;
            if self.tx_head == self.tx_tail {
                self.tx_head = 0;
                self.tx_tail = 0;
            }
        }
        n
    }

    /// Where the FIFO's head and the partial-frame count go after handing out `take` bytes.
    fn advance_tx(&self, take: usize) -> (usize, usize) {
        let tx = self.tx.as_ref();
        let mut pos = self.tx_head;
        let mut partial = self.tx_partial;
        let mut left = take;
        while left > 0 {
            if partial == 0 {
                let len = tx
                    .get(pos..pos + FRAME_HEADER_LEN)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, |b| u32::from_be_bytes(b) as usize);
                partial = FRAME_HEADER_LEN + len;
            }
            let step = left.min(partial);
            partial -= step;
            left -= step;
            pos += step;
        }
        (pos, partial)
    }

    /// Writes the next auth or watch re-registration frame into `out`; `None` when it does
    /// not fit. Ends the replay when nothing is left.
    fn next_replay_frame(&mut self, out: &mut [u8]) -> Option<usize> {
        if let Some(auth) = self.auths.get(self.replay.auth) {
            let request = Request::auth(AuthPacket {
                auth_type: 0,
                scheme: ZkStr::from_bytes(&auth.scheme),
                auth: Some(&auth.data),
            });
            let n = request.encode_framed(out).ok()?;
            self.replay.auth += 1;
            self.stats.auths_sent += 1;
            return Some(n);
        }
        // Skip what is not to be re-registered.
        while let Some(w) = self.watches.entries.get(self.replay.watch) {
            if w.token == 0 {
                break;
            }
            self.replay.watch += 1;
        }
        if self.replay.watch >= self.watches.entries.len() {
            self.replay.active = false;
            return Some(0);
        }
        let limit = out
            .len()
            .min(SET_WATCHES_BATCH_LEN + SET_WATCHES_OVERHEAD)
            .min(self.config.max_frame_len as usize + FRAME_HEADER_LEN);
        let (end, n) = encode_set_watches(
            out,
            limit,
            self.last_zxid,
            &self.watches,
            self.replay.watch,
            &self.chroot,
        )?;
        self.replay.watch = end;
        self.stats.set_watches_sent += 1;
        Some(n)
    }

    // -----------------------------------------------------------------------------------------
    // Receive
    // -----------------------------------------------------------------------------------------

    /// Copies received bytes into the receive buffer; returns how many it took (all of them
    /// unless the buffer is full: call [`poll_event`](Self::poll_event) to make room and feed
    /// the rest). Releases the frame of the last event.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> usize {
        if !self.receiving() {
            return bytes.len();
        }
        let free = self.receive_buffer();
        let n = free.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (free.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.handle_received(now, n);
        n
    }

    /// The free end of the receive buffer, for the transport to read the socket into
    /// directly; then [`handle_received`](Self::handle_received) with the count. Releases the
    /// frame of the last event. Empty when the buffer is full of frames not yet polled.
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.release();
        if self.fanout.is_none() && self.rx_head > 0 {
            let (head, tail) = (self.rx_head, self.rx_tail);
            self.rx.as_mut().copy_within(head..tail, 0);
            self.rx_tail = tail - head;
            self.rx_head = 0;
        }
        let tail = self.rx_tail;
        self.rx.as_mut().get_mut(tail..).unwrap_or_default()
    }

    /// `n` bytes were written into [`receive_buffer`](Self::receive_buffer).
    pub fn handle_received(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        self.stats.bytes_received += n as u64;
        if !self.receiving() {
            return;
        }
        self.rx_tail = (self.rx_tail + n).min(self.rx.as_ref().len());
        self.last_recv = now;
    }

    fn receiving(&self) -> bool {
        matches!(
            self.state,
            SessionState::Handshaking | SessionState::Connected | SessionState::Closing
        )
    }

    fn release(&mut self) {
        self.rx_head += self.rx_release;
        self.rx_release = 0;
        if self.rx_head >= self.rx_tail && self.fanout.is_none() {
            self.rx_head = 0;
            self.rx_tail = 0;
        }
    }

    /// The frame decoder for this session: the configured maximum, bounded by what the
    /// receive buffer can hold.
    fn decoder(&self) -> FrameDecoder {
        let room = self.rx.as_ref().len().saturating_sub(FRAME_HEADER_LEN);
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        FrameDecoder::with_max_frame_len(self.config.max_frame_len.min(room))
    }

    /// The next event: state changes, failed requests, watch notifications (once per watch
    /// fired) and replies, in the order they happened. `None` when nothing is left until more
    /// bytes arrive or time passes.
    ///
    /// The event borrows the receive buffer; its frame is released at the next call (see the
    /// type's documentation).
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.release();
        if let Some(event) = self.state_events.pop_front() {
            return Some(event);
        }
        if let Some(front) = self.pending.front()
            && let Some(code) = front.fail
        {
            let (xid, op) = (front.xid, front.op);
            self.pending.pop_front();
            self.stats.failed_locally += 1;
            return Some(Event::Reply(ReplyEvent {
                xid,
                op,
                zxid: 0,
                result: Err(code),
            }));
        }
        loop {
            if let Some((fanout, consumed)) = self.fanout {
                if fanout.unmatched {
                    self.fanout = None;
                    self.rx_release = consumed;
                    return Some(Event::Watch(WatchEvent {
                        watcher: None,
                        kind: None,
                        event_type: fanout.event_type,
                        path: self.fanout_path(fanout),
                        zxid: fanout.zxid,
                    }));
                }
                if let Some(i) = self.watches.entries.iter().position(|w| w.firing) {
                    let w = self.watches.entries[i];
                    if w.kind.is_one_shot() {
                        self.remove_watch(i);
                    } else {
                        self.watches.entries[i].firing = false;
                    }
                    return Some(Event::Watch(WatchEvent {
                        watcher: Some(w.watcher),
                        kind: Some(w.kind),
                        event_type: fanout.event_type,
                        path: self.fanout_path(fanout),
                        zxid: fanout.zxid,
                    }));
                }
                self.fanout = None;
                self.rx_head += consumed;
                self.release();
            }
            match self.step() {
                Step::Nothing => return None,
                Step::Skip | Step::Fanout => {}
                Step::StateEvent => return self.state_events.pop_front(),
                Step::Owned(event) => return Some(event),
                Step::Reply {
                    start,
                    end,
                    consumed,
                    header,
                } => return Some(self.reply_event(start, end, consumed, header)),
            }
        }
    }

    fn fanout_path(&self, fanout: Fanout) -> ZkStr<'_> {
        match fanout.path {
            None => ZkStr::NULL,
            Some((start, end)) => {
                ZkStr::from_bytes(self.rx.as_ref().get(start..end).unwrap_or_default())
            }
        }
    }

    /// Looks at the next frame in the receive buffer.
    fn step(&mut self) -> Step {
        if !self.receiving() {
            return Step::Nothing;
        }
        let decoder = self.decoder();
        let bytes = self
            .rx
            .as_ref()
            .get(self.rx_head..self.rx_tail)
            .unwrap_or_default();
        let (start, end, consumed) = match decoder.decode(bytes) {
            Ok(FrameStatus::Partial { .. }) => return Step::Nothing,
            Ok(FrameStatus::Complete { frame, consumed }) => {
                let start = self.rx_head + FRAME_HEADER_LEN;
                (start, start + frame.len(), consumed)
            }
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        if self.state == SessionState::Handshaking {
            self.rx_head += consumed;
            return self.on_connect_response(start, end);
        }
        self.on_frame(start, end, consumed)
    }

    fn protocol_error(&mut self, reason: DisconnectReason) -> Step {
        let now = self.last_recv;
        self.teardown(now, reason);
        Step::StateEvent
    }

    fn on_connect_response(&mut self, start: usize, end: usize) -> Step {
        let parsed = self
            .rx
            .as_ref()
            .get(start..end)
            .map_or(Err(Error::Truncated), ConnectResponse::parse);
        let response = match parsed {
            Ok(response) => response,
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        if response.is_expired() {
            self.state = SessionState::Expired;
            self.stats.disconnects += 1;
            self.fail_all(ErrorCode::SessionExpired);
            self.clear_connection();
            return Step::Owned(Event::Expired);
        }
        let mut passwd = Vec::new();
        if passwd
            .extend_from_slice(response.passwd.unwrap_or_default())
            .is_err()
        {
            return self.protocol_error(DisconnectReason::Protocol(Error::TooLarge));
        }
        let reattached = self.session_id != 0 && self.session_id == response.session_id;
        self.session_id = response.session_id;
        self.negotiated_ms = response.timeout;
        self.read_only = response.read_only.unwrap_or(false);
        self.passwd = passwd;
        self.state = SessionState::Connected;
        self.attempts = 0;
        self.deadline = Instant::MAX;
        self.replay = Replay {
            auth: 0,
            watch: 0,
            active: true,
        };
        self.stats.handshakes += 1;
        // A closeSession queued before the connection came up is still to be answered.
        if self
            .pending
            .iter()
            .any(|p| p.op == OpCode::CloseSession && p.fail.is_none())
        {
            self.state = SessionState::Closing;
        }
        Step::Owned(Event::Connected {
            session_id: self.session_id,
            timeout_ms: self.negotiated_ms,
            read_only: self.read_only,
            reattached,
        })
    }

    /// Handles the frame at `start..end` while connected: what makes no event is done here; a
    /// reply is checked (and its path lists stripped of the chroot in place) and left at
    /// `rx_head` for [`reply_event`](Self::reply_event); a notification starts a fan-out.
    fn on_frame(&mut self, start: usize, end: usize, consumed: usize) -> Step {
        let header = match self
            .rx
            .as_ref()
            .get(start..end)
            .and_then(|f| f.first_chunk::<REPLY_HEADER_LEN>())
        {
            Some(h) => ReplyHeader::from_bytes(h),
            None => return self.protocol_error(DisconnectReason::Protocol(Error::Truncated)),
        };
        match header.xid {
            PING_XID | SET_WATCHES_XID => {
                self.rx_head += consumed;
                Step::Skip
            }
            AUTH_XID => {
                self.rx_head += consumed;
                if header.err.is_ok() {
                    return Step::Skip;
                }
                self.state = SessionState::AuthFailed;
                self.stats.disconnects += 1;
                self.fail_all(ErrorCode::AuthFailed);
                self.clear_connection();
                Step::Owned(Event::AuthFailed)
            }
            NOTIFICATION_XID => self.on_notification(start, end, consumed, header.zxid),
            xid => {
                let expected = self.pending.front().map(|p| p.xid);
                if expected != Some(xid) {
                    return self
                        .protocol_error(DisconnectReason::UnexpectedXid { expected, got: xid });
                }
                let op = self.pending.front().map_or(OpCode::Error, |p| p.op);
                let frame = self.rx.as_mut().get_mut(start..end).unwrap_or_default();
                if let Err(e) = Reply::parse(op, frame) {
                    return self.protocol_error(DisconnectReason::Protocol(e));
                }
                let mut len = end - start;
                if !self.chroot.is_empty()
                    && header.err.is_ok()
                    && matches!(
                        op,
                        OpCode::Multi | OpCode::MultiRead | OpCode::GetEphemerals
                    )
                {
                    let body = frame.get_mut(REPLY_HEADER_LEN..).unwrap_or_default();
                    match strip_list_in_place(body, op, &self.chroot) {
                        Some(n) => len = REPLY_HEADER_LEN + n,
                        None => {
                            return self
                                .protocol_error(DisconnectReason::Protocol(Error::BadLength));
                        }
                    }
                }
                Step::Reply {
                    start,
                    end: start + len,
                    consumed,
                    header,
                }
            }
        }
    }

    fn on_notification(&mut self, start: usize, end: usize, consumed: usize, zxid: i64) -> Step {
        let body_at = start + REPLY_HEADER_LEN;
        let event = match self
            .rx
            .as_ref()
            .get(body_at..end)
            .map_or(Err(Error::Truncated), WatcherEvent::parse)
        {
            Ok(event) => event,
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        self.stats.notifications += 1;
        let event_type = event.event_type;
        // The path's bytes follow type, state and the length: 12 bytes into the body.
        let path = event.path.to_wire().map(|p| {
            let (skip, len) = strip_span(p, &self.chroot);
            let at = body_at + 12 + skip;
            (at, at + len)
        });
        let path_bytes: &[u8] = match path {
            Some((a, b)) => self.rx.as_ref().get(a..b).unwrap_or_default(),
            None => &[],
        };
        let mut matched = false;
        let watches = &mut self.watches;
        for w in watches.entries.iter_mut() {
            let start = w.start as usize;
            let wpath = watches
                .paths
                .get(start..start + w.len as usize)
                .unwrap_or_default();
            if w.token == 0 && path.is_some() && w.kind.fires(event_type, wpath, path_bytes) {
                w.firing = true;
                matched = true;
            }
        }
        if !matched {
            self.stats.unmatched_notifications += 1;
        }
        self.fanout = Some((
            Fanout {
                event_type,
                zxid,
                path,
                unmatched: !matched,
            },
            consumed,
        ));
        Step::Fanout
    }

    /// The reply at `start..end` (checked by [`on_frame`](Self::on_frame)) to the oldest
    /// pending request, as an event.
    fn reply_event(
        &mut self,
        start: usize,
        end: usize,
        consumed: usize,
        header: ReplyHeader,
    ) -> Event<'_> {
        let pending = self.pending.pop_front();
        let (xid, op, watch) =
            pending.map_or((header.xid, OpCode::Error, 0), |p| (p.xid, p.op, p.watch));
        self.rx_release = consumed;
        self.stats.replies += 1;
        if header.zxid > 0 {
            self.last_zxid = header.zxid;
        }
        if watch != 0 {
            self.watches.settle(watch, header.err);
        }
        if op == OpCode::CloseSession && header.err.is_ok() {
            self.state = SessionState::Closed;
            self.fail_all(ErrorCode::SessionExpired);
            self.clear_connection();
            self.push_state_event(Event::Closed);
        }
        let frame = self.rx.as_ref().get(start..end).unwrap_or_default();
        let result = match Reply::parse(op, frame) {
            Ok(reply) if reply.header.err.is_ok() => Ok(strip_body(reply.body, &self.chroot)),
            Ok(reply) => Err(reply.header.err),
            // Checked before; unreachable.
            Err(_) => Err(ErrorCode::MarshallingError),
        };
        Event::Reply(ReplyEvent {
            xid,
            op,
            zxid: header.zxid,
            result,
        })
    }
}

/// What the next frame made.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// No whole frame.
    Nothing,
    /// A frame that makes no event (ping reply, successful auth or setWatches).
    Skip,
    /// A state event was queued.
    StateEvent,
    /// An event that borrows nothing.
    Owned(Event<'static>),
    /// A notification whose fan-out starts.
    Fanout,
    /// A checked reply to the oldest pending request.
    Reply {
        start: usize,
        end: usize,
        consumed: usize,
        header: ReplyHeader,
    },
}

// ---------------------------------------------------------------------------------------------
// Encoding with a chroot
// ---------------------------------------------------------------------------------------------

fn op_error(op: OpCode) -> Error {
    op.unexpected()
}

/// The watch a request leaves if it succeeds: kind, whether it is an exists watch, path.
fn watch_request<'b>(body: &RequestBody<'b>) -> Option<(WatchKind, bool, ZkStr<'b>)> {
    match body {
        RequestBody::GetData(r) if r.watch => Some((WatchKind::Data, false, r.path)),
        RequestBody::Exists(r) if r.watch => Some((WatchKind::Data, true, r.path)),
        RequestBody::GetChildren(r) | RequestBody::GetChildren2(r) if r.watch => {
            Some((WatchKind::Child, false, r.path))
        }
        RequestBody::AddWatch(r) => match r.mode {
            AddWatchMode::Persistent => Some((WatchKind::Persistent, false, r.path)),
            AddWatchMode::PersistentRecursive => {
                Some((WatchKind::PersistentRecursive, false, r.path))
            }
            AddWatchMode::Unknown(_) => None,
        },
        _ => None,
    }
}

/// The path that starts the body's record, for the bodies whose record starts with one.
fn leading_path<'b>(body: &RequestBody<'b>) -> Option<ZkStr<'b>> {
    use RequestBody as B;
    match body {
        B::Create(r) | B::Create2(r) | B::CreateContainer(r) => Some(r.path),
        B::CreateTtl(r) => Some(r.create.path),
        B::Delete(r) | B::Check(r) => Some(r.path),
        B::Exists(r) | B::GetData(r) | B::GetChildren(r) | B::GetChildren2(r) => Some(r.path),
        B::SetData(r) => Some(r.path),
        B::GetAcl(r)
        | B::Sync(r)
        | B::DeleteContainer(r)
        | B::GetEphemerals(r)
        | B::GetAllChildrenNumber(r) => Some(r.path),
        B::SetAcl(r) => Some(r.path),
        B::CheckWatches(r) | B::RemoveWatches(r) => Some(r.path),
        B::AddWatch(r) => Some(r.path),
        _ => None,
    }
}

fn multi_op_path<'b>(op: &MultiOp<'b>) -> ZkStr<'b> {
    match op {
        MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.path,
        MultiOp::CreateTtl(r) => r.create.path,
        MultiOp::Delete(r) | MultiOp::Check(r) => r.path,
        MultiOp::SetData(r) => r.path,
        MultiOp::GetChildren(r) | MultiOp::GetData(r) => r.path,
    }
}

/// How many bytes the chroot adds to `path` (the client's `/` is the chroot itself).
fn chroot_shift(path: ZkStr<'_>, chroot: &[u8]) -> usize {
    if chroot.is_empty() || path.is_null() {
        0
    } else if path.as_bytes() == b"/" {
        chroot.len() - 1
    } else {
        chroot.len()
    }
}

/// The exact payload length of a request with the chroot prefixed to its paths.
fn request_len(xid: Xid, body: &RequestBody<'_>, chroot: &[u8]) -> usize {
    let base = Request { xid, body: *body }.encoded_len();
    let extra = match body {
        RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => {
            ops.iter().fold(0usize, |sum, op| {
                sum.saturating_add(chroot_shift(multi_op_path(&op), chroot))
            })
        }
        _ => leading_path(body).map_or(0, |p| chroot_shift(p, chroot)),
    };
    base.saturating_add(extra)
}

/// Encodes a request's payload (header and body) with the chroot prefixed to its paths.
fn encode_request(
    out: &mut [u8],
    xid: Xid,
    body: &RequestBody<'_>,
    chroot: &[u8],
) -> Result<usize> {
    let request = Request { xid, body: *body };
    if chroot.is_empty() {
        return request.encode(out);
    }
    match body {
        RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => {
            let mut pos = RequestHeader { xid, op: body.op() }.encode(out)?;
            for op in ops.iter() {
                let rest = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
                pos += encode_shifted(rest, MULTI_HEADER_LEN, multi_op_path(&op), chroot, |b| {
                    op.encode(b)
                })?;
            }
            let rest = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
            pos += MultiHeader::END.encode(rest)?;
            Ok(pos)
        }
        _ => match leading_path(body) {
            Some(path) => {
                encode_shifted(out, REQUEST_HEADER_LEN, path, chroot, |b| request.encode(b))
            }
            None => request.encode(out),
        },
    }
}

/// Encodes a record whose `path` (a ustring at `path_at`) gets the chroot in front, without a
/// scratch buffer: the record is encoded `shift` bytes further on, so that its path bytes land
/// where they belong; what precedes the path moves back, and the new length and the chroot are
/// written in the gap.
fn encode_shifted(
    out: &mut [u8],
    path_at: usize,
    path: ZkStr<'_>,
    chroot: &[u8],
    encode: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    let shift = chroot_shift(path, chroot);
    if shift == 0 {
        return encode(out);
    }
    let n = encode(out.get_mut(shift..).ok_or(Error::BufferTooSmall)?)?;
    let len_at = shift + path_at;
    let old = out
        .get(len_at..len_at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .ok_or(Error::BufferTooSmall)?;
    let new = usize::try_from(old)
        .ok()
        .and_then(|old| old.checked_add(shift))
        .and_then(|new| i32::try_from(new).ok())
        .ok_or(Error::TooLarge)?;
    out.copy_within(shift..shift + path_at, 0);
    out.get_mut(path_at..path_at + 4)
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(&new.to_be_bytes());
    out.get_mut(path_at + 4..path_at + 4 + chroot.len())
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(chroot);
    Ok(n + shift)
}

/// Encodes one setWatches (or setWatches2) frame with the active watches of `watches` from
/// entry `from` on, as many as `limit` bytes take; returns the entry to continue from and the
/// frame's length. `None` when not even one watch fits.
fn encode_set_watches<const N: usize, const BYTES: usize>(
    out: &mut [u8],
    limit: usize,
    zxid: i64,
    watches: &Watches<N, BYTES>,
    from: usize,
    chroot: &[u8],
) -> Option<(usize, usize)> {
    let entries = &watches.entries;
    let wire_len = |w: &Watch| {
        let path = watches.path(w);
        4 + chroot_shift(ZkStr::from_bytes(path), chroot) + path.len()
    };
    // Included: active, and not a repeat of an earlier (kind, path) in the batch.
    let included = |j: usize, end: usize| {
        let Some(w) = entries.get(j) else {
            return false;
        };
        w.token == 0
            && j < end
            && !entries[from..j]
                .iter()
                .any(|o| o.token == 0 && o.kind == w.kind && watches.path(o) == watches.path(w))
    };
    let mut size = SET_WATCHES_OVERHEAD;
    let mut end = from;
    let mut count = 0;
    let mut persistent = false;
    while end < entries.len() {
        let w = &entries[end];
        if !included(end, end + 1) {
            end += 1;
            continue;
        }
        let add = wire_len(w);
        if size + add > limit {
            break;
        }
        size += add;
        count += 1;
        persistent |= !w.kind.is_one_shot();
        end += 1;
    }
    if count == 0 {
        return if end >= entries.len() {
            Some((end, 0))
        } else {
            None
        };
    }
    let (op, kinds): (OpCode, &[WatchKind]) = if persistent {
        (
            OpCode::SetWatches2,
            &[
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
        )
    } else {
        // As the Java client: setWatches (which 3.5 servers know) unless persistent watches
        // need setWatches2.
        size -= 8;
        (
            OpCode::SetWatches,
            &[WatchKind::Data, WatchKind::Exist, WatchKind::Child],
        )
    };
    let frame = out.get_mut(..size)?;
    let mut w = Cursor { buf: frame, at: 0 };
    w.put(&i32::try_from(size - FRAME_HEADER_LEN).ok()?.to_be_bytes())?;
    w.put(
        &RequestHeader {
            xid: SET_WATCHES_XID,
            op,
        }
        .to_bytes(),
    )?;
    w.put(&zxid.to_be_bytes())?;
    for &kind in kinds {
        let n = (from..end)
            .filter(|&j| included(j, end) && entries[j].kind == kind)
            .count();
        w.put(&i32::try_from(n).ok()?.to_be_bytes())?;
        for j in (from..end).filter(|&j| included(j, end) && entries[j].kind == kind) {
            let path = watches.path(&entries[j]);
            let shift = chroot_shift(ZkStr::from_bytes(path), chroot);
            let len = i32::try_from(path.len() + shift).ok()?;
            w.put(&len.to_be_bytes())?;
            if shift == 0 {
                w.put(path)?;
            } else if path == b"/" {
                w.put(chroot)?;
            } else {
                w.put(chroot)?;
                w.put(path)?;
            }
        }
    }
    (w.at == size).then_some((end, size))
}

/// Writes bytes front to back.
struct Cursor<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.at..self.at + bytes.len())?
            .copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }
}

// ---------------------------------------------------------------------------------------------
// Stripping the chroot from replies
// ---------------------------------------------------------------------------------------------

/// Where the client's view of a server path starts in it, and its length: the path without
/// the chroot (`/` for the chroot itself); the path unchanged if it is not below the chroot.
fn strip_span(path: &[u8], chroot: &[u8]) -> (usize, usize) {
    if chroot.is_empty() || !path.starts_with(chroot) {
        return (0, path.len());
    }
    match path.get(chroot.len()) {
        None => (0, 1),
        Some(b'/') => (chroot.len(), path.len() - chroot.len()),
        Some(_) => (0, path.len()),
    }
}

fn strip_str<'a>(path: ZkStr<'a>, chroot: &[u8]) -> ZkStr<'a> {
    match path.to_wire() {
        None => path,
        Some(bytes) => {
            let (skip, len) = strip_span(bytes, chroot);
            ZkStr::from_bytes(bytes.get(skip..skip + len).unwrap_or(bytes))
        }
    }
}

/// The body with the chroot stripped from the paths it holds outside lists.
fn strip_body<'a>(body: ReplyBody<'a>, chroot: &[u8]) -> ReplyBody<'a> {
    if chroot.is_empty() {
        return body;
    }
    match body {
        ReplyBody::Path(path) => ReplyBody::Path(strip_str(path, chroot)),
        ReplyBody::Created(mut created) => {
            created.path = strip_str(created.path, chroot);
            ReplyBody::Created(created)
        }
        other => other,
    }
}

/// Rewrites a (checked) multi or getEphemerals reply body with the chroot stripped from the
/// paths in its list, moving the rest forward; returns the new body length.
fn strip_list_in_place(body: &mut [u8], op: OpCode, chroot: &[u8]) -> Option<usize> {
    let mut c = Compactor {
        buf: body,
        r: 0,
        w: 0,
    };
    match op {
        OpCode::GetEphemerals => {
            let count = c.peek_int()?;
            c.copy(4)?;
            for _ in 0..count.max(0) {
                c.string(chroot)?;
            }
        }
        _ => loop {
            let ty = c.peek_int()?;
            let done = *c.buf.get(c.r + 4)? != 0;
            c.copy(MULTI_HEADER_LEN)?;
            if done {
                break;
            }
            match OpCode::from_i32(ty) {
                OpCode::Create => c.string(chroot)?,
                OpCode::Create2 => {
                    c.string(chroot)?;
                    c.copy(STAT_LEN)?;
                }
                OpCode::Delete | OpCode::Check => {}
                OpCode::SetData => c.copy(STAT_LEN)?,
                OpCode::GetChildren => {
                    let count = c.peek_int()?;
                    c.copy(4)?;
                    for _ in 0..count.max(0) {
                        let len = c.peek_int()?.max(0) as usize;
                        c.copy(4 + len)?;
                    }
                }
                OpCode::GetData => {
                    let len = c.peek_int()?.max(0) as usize;
                    c.copy(4 + len + STAT_LEN)?;
                }
                OpCode::Error => c.copy(4)?,
                _ => return None,
            }
        },
    }
    let rest = c.buf.len().checked_sub(c.r)?;
    c.copy(rest)?;
    Some(c.w)
}

/// Moves bytes forward within a buffer: reads at `r`, writes at `w <= r`.
struct Compactor<'b> {
    buf: &'b mut [u8],
    r: usize,
    w: usize,
}

impl Compactor<'_> {
    fn peek_int(&self) -> Option<i32> {
        let bytes = self.buf.get(self.r..self.r + 4)?;
        Some(i32::from_be_bytes(bytes.try_into().ok()?))
    }

    fn copy(&mut self, n: usize) -> Option<()> {
        let end = self.r.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        self.buf.copy_within(self.r..end, self.w);
        self.r = end;
        self.w += n;
        Some(())
    }

    /// Copies a ustring with the chroot stripped.
    fn string(&mut self, chroot: &[u8]) -> Option<()> {
        let len = self.peek_int()?;
        let Ok(len) = usize::try_from(len) else {
            return self.copy(4);
        };
        let bytes = self.buf.get(self.r + 4..self.r + 4 + len)?;
        let (skip, new) = strip_span(bytes, chroot);
        let new_len = i32::try_from(new).ok()?.to_be_bytes();
        self.buf
            .get_mut(self.w..self.w + 4)?
            .copy_from_slice(&new_len);
        let from = self.r + 4 + skip;
        self.buf.copy_within(from..from + new, self.w + 4);
        self.r += 4 + len;
        self.w += 4 + new;
        Some(())
    }
}

#[cfg(test)]
mod tests;
