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

mod chroot;
mod connection;
mod events;
mod receive;
mod transmit;
mod watches;

use core::fmt;
use core::time::Duration;

use heapless::{Deque, Vec};

use super::{DEFAULT_MAX_FRAME_LEN, ErrorCode, FRAME_HEADER_LEN, OpCode, REQUEST_HEADER_LEN};
#[cfg(doc)]
use crate::Error;
use crate::time::Instant;

pub use events::{DisconnectReason, Event, ReplyEvent, WatchEvent};
use watches::{Fanout, Watches};
pub use watches::{WatchInfo, WatchKind, WatcherId};

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
// Configuration, state, counters
// ---------------------------------------------------------------------------------------------

/// Timing and limits of a [`ZkSession`].
///
/// `#[non_exhaustive]`: settings may be added. Build one with [`Config::new`] (or `default()`) and
/// the chainable `with_*` methods (`const fn`s, so a config can be a `const` or a `static`); the
/// fields stay public, to read, and to assign on a `let mut` config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
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

impl Config {
    /// The defaults: a 30 s session, 10 s per connection attempt, no read-only server,
    /// frames up to [`DEFAULT_MAX_FRAME_LEN`].
    pub const fn new() -> Config {
        Config {
            session_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            read_only: false,
            // The constant is far below u32::MAX.
            max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
        }
    }

    /// Sets [`session_timeout`](Self::session_timeout).
    #[must_use]
    pub const fn with_session_timeout(mut self, session_timeout: Duration) -> Config {
        self.session_timeout = session_timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub const fn with_connect_timeout(mut self, connect_timeout: Duration) -> Config {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Sets [`read_only`](Self::read_only).
    #[must_use]
    pub const fn with_read_only(mut self, read_only: bool) -> Config {
        self.read_only = read_only;
        self
    }

    /// Sets [`max_frame_len`](Self::max_frame_len).
    #[must_use]
    pub const fn with_max_frame_len(mut self, max_frame_len: u32) -> Config {
        self.max_frame_len = max_frame_len;
        self
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
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

/// Counters of what a session did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
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
}

#[cfg(test)]
mod tests;
