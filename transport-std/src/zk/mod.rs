//! [`ZkClient`]: a ZooKeeper client, the sans-IO [`ZkSession`] driven over a mio TCP socket.
//!
//! The client owns a non-blocking socket, a [`mio::Poll`] and the session, on the caller's
//! thread: no background thread, no hand-off of requests or replies between threads. It moves
//! bytes and time; every protocol decision (xids, pings, timeouts, reconnect, watch
//! re-registration, expiry) is the session's.
//!
//! Two ways to use it:
//! * **Pipelined, zero-copy**: [`submit`](ZkClient::submit) many requests, then
//!   [`process`](ZkClient::process) with a handler that sees every reply and notification as
//!   a borrowed [`Event`]. Queued requests go out in one `write` per call (up to
//!   [`WRITE_BUFFER`] bytes), replies are read straight into the session's receive buffer.
//!   With deep pipelines, [`ClientConfig::batching`] ([`Batching::PIPELINED`]) lets replies
//!   gather before each read: a few times less CPU per request for the same throughput.
//! * **Blocking**: [`get_data`](ZkClient::get_data), [`create`](ZkClient::create), … submit,
//!   then drive the socket until their reply; replies and notifications for others are kept
//!   (owned) for [`wait`](ZkClient::wait) and [`next_event`](ZkClient::next_event).
//!
//! ```no_run
//! use sinew_proto::zk::{Acl, CreateMode};
//! use sinew_transport_std::zk::{ClientConfig, ZkClient};
//!
//! let mut zk = ZkClient::connect("127.0.0.1:2181", ClientConfig::default())?;
//! zk.create("/greeting", b"hello", Acl::OPEN_ACL_UNSAFE, CreateMode::Persistent)?;
//! let (data, stat) = zk.get_data("/greeting", None)?;
//! assert_eq!(data, b"hello");
//! zk.set_data("/greeting", b"hi", stat.version)?;
//! zk.close()?;
//! # Ok::<(), sinew_transport_std::zk::ZkError>(())
//! ```

mod error;
mod owned;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant as StdInstant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::{Config, Event, SessionState, WatcherId, Xid, ZkSession};
use sinew_proto::zk::{
    Acl, AddWatchMode, AddWatchRequest, CreateMode, CreateRequest, DEFAULT_MAX_FRAME_LEN,
    ErrorCode, List, MultiOp, OpCode, PathRequest, PathVersionRequest, PathWatchRequest,
    RequestBody, SetAclRequest, SetDataRequest, Stat, WatcherType, WatchesRequest, ZkStr,
};

use crate::Clock;

pub use error::ZkError;
pub use owned::{
    AclEntry, ClientIdentity, Completion, OpResult, OwnedReply, WatchNotification, ZkEvent,
};

/// Requests a [`ZkClient`] keeps in flight at most (ZooKeeper stops reading a connection at
/// 1000 outstanding requests).
pub const CLIENT_PENDING: usize = 1024;
/// Watch registrations a [`ZkClient`] keeps at most.
pub const CLIENT_WATCHES: usize = 1024;
/// Bytes of watched paths a [`ZkClient`] keeps at most.
pub const CLIENT_WATCH_BYTES: usize = 64 * 1024;
/// The client's write buffer: queued frames go out in writes of up to this many bytes.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// The session type a [`ZkClient`] drives.
pub type ClientSession = ZkSession<Vec<u8>, CLIENT_PENDING, CLIENT_WATCHES, CLIENT_WATCH_BYTES>;

const TOKEN: Token = Token(0);

/// Settings of a [`ZkClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The session timeout asked for (the server clamps it to 2–20 ticks).
    pub session_timeout: Duration,
    /// How long one connection attempt may take; `None`: the session timeout divided by the
    /// number of server addresses, as the Java client does (at least one second).
    pub connect_timeout: Option<Duration>,
    /// How long a blocking operation waits for its reply.
    pub operation_timeout: Duration,
    /// A chroot (`/app`): paths are relative to it. A connect string's `/suffix` sets it too.
    pub chroot: Option<String>,
    /// Whether a read-only server is acceptable.
    pub read_only: bool,
    /// The largest frame sent or accepted (`jute.maxbuffer`).
    pub max_frame_len: u32,
    /// Bytes of requests the session may hold queued.
    pub transmit_buffer: usize,
    /// The receive buffer: the largest reply, frame length included.
    pub receive_buffer: usize,
    /// Reply batching under pipelined load (off by default): see [`Batching`].
    pub batching: Option<Batching>,
}

/// Reply batching: with many requests in flight, the client waits a moment before reading, so
/// that one wake-up takes in many replies.
///
/// Without it, a pipelining client is woken for nearly every reply, and on loopback that
/// wake-up (the switch into the thread, `epoll_wait`, one `read`, one `write` of the
/// replacement) costs ~10 µs of CPU, far more than handling the reply. With it, a
/// [`process`](ZkClient::process) / [`poll`](ZkClient::poll) step that finds at least
/// [`min_in_flight`](Self::min_in_flight) requests awaiting replies, on an established session,
/// with every queued request written and nothing to deliver yet, first sleeps, then reads
/// everything that came; the replacements the caller submits go out in one write. The sleep
/// lasts as long as the server takes to answer half of the requests in flight (its reply
/// interval is measured as replies come), at most [`wait`](Self::wait) and never past the
/// step's own timeout: the server keeps the other half to work on, so throughput is unchanged,
/// and each reply is handled at most that much later. Steps with fewer requests in flight — a
/// lone blocking call, an idle session, pings — never sleep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batching {
    /// The longest a step sleeps before reading.
    pub wait: Duration,
    /// From how many requests awaiting replies on the client batches.
    pub min_in_flight: usize,
}

impl Batching {
    /// For deep pipelines: sleeps of at most 1 ms from 32 requests in flight. On loopback
    /// with 64–128 in flight this cut the client's CPU per request from ~11 µs to ~2.8 µs, and
    /// raised the rate from 0.93–0.96× a raw client's to 1.25× with server and client on a
    /// core each (0.93–0.94× sharing both cores; `benches/examples/zk_e2e.rs`). Shallower
    /// pipelines are left alone: with 16 in flight, batching cost a quarter of the rate there.
    pub const PIPELINED: Batching = Batching {
        wait: Duration::from_millis(1),
        min_in_flight: 32,
    };
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            session_timeout: Duration::from_secs(30),
            connect_timeout: None,
            operation_timeout: Duration::from_secs(30),
            chroot: None,
            read_only: false,
            max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
            transmit_buffer: 2 << 20,
            receive_buffer: (DEFAULT_MAX_FRAME_LEN + 1) + 64 * 1024,
            batching: None,
        }
    }
}

/// What the socket side of a client did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// `read` calls that returned bytes.
    pub reads: u64,
    /// `write` calls that wrote bytes.
    pub writes: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// TCP connections attempted.
    pub connects: u64,
    /// TCP connection attempts that failed.
    pub connect_failures: u64,
    /// Steps that waited for replies to gather ([`Batching`]).
    pub batch_waits: u64,
}

/// The transport: socket, poll, write buffer, server list, and the session they drive.
struct Core {
    session: Box<ClientSession>,
    servers: Vec<SocketAddr>,
    next_server: usize,
    current: Option<SocketAddr>,
    stream: Option<TcpStream>,
    tcp_connecting: bool,
    poll: Poll,
    events: Events,
    clock: Clock,
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    io: IoStats,
    batching: Option<Batching>,
    pace: ReplyPace,
}

/// The server's measured reply interval, for [`Batching`].
#[derive(Clone, Copy, Debug, Default)]
struct ReplyPace {
    /// Replies counted so far (the session's count when last sampled).
    replies: u64,
    /// When that count was taken; `None` while nothing was in flight.
    at: Option<Instant>,
    /// Moving average of the time per reply while requests were in flight.
    interval: Option<Duration>,
}

impl ReplyPace {
    /// Takes a sample: `replies` (the session's running count) at `now`, with `pending`
    /// requests still awaiting replies.
    fn sample(&mut self, replies: u64, pending: usize, now: Instant) {
        let got = replies.saturating_sub(self.replies);
        if let (Some(at), Ok(got @ 1..)) = (self.at, u32::try_from(got)) {
            let sample = (now - at) / got;
            // An average over about the last 8 samples.
            self.interval = Some(self.interval.map_or(sample, |i| (i * 7 + sample) / 8));
        }
        if got > 0 || self.at.is_none() {
            self.replies = replies;
            self.at = Some(now);
        }
        // Time with nothing in flight says nothing about the server.
        if pending == 0 {
            self.at = None;
        }
    }

    /// How long to sleep so that about half of `pending` replies come.
    fn nap(&self, pending: usize) -> Option<Duration> {
        let half = u32::try_from(pending / 2).unwrap_or(u32::MAX);
        Some(self.interval?.saturating_mul(half))
    }
}

type Sink<'s> = &'s mut dyn FnMut(Event<'_>);

impl Core {
    /// One round: time, connection management and writes; a sleep of at most `wait` in
    /// `Poll`; then reads, time and writes again. Every event goes to `sink`.
    fn step(&mut self, wait: Option<Duration>, sink: Sink<'_>) -> io::Result<()> {
        // One clock read per phase: before the sleep, and after it (the reads take their own).
        let now = self.clock.now();
        let mut delivered = 0usize;
        self.advance(now, &mut |event| {
            delivered += 1;
            sink(event);
        })?;
        let until_timer = self.session.poll_timeout().map(|t| t - now);
        let timeout = match (wait, until_timer) {
            // Something happened already: let the caller look at it before sleeping.
            _ if delivered > 0 => Some(Duration::ZERO),
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Without a socket or a timer nothing can happen: do not sleep forever.
        let mut timeout = if self.stream.is_none() && until_timer.is_none() {
            Some(timeout.unwrap_or(Duration::ZERO))
        } else {
            timeout
        };
        if let Some(batching) = self.batching {
            let pending = self.session.pending();
            // Only with everything written: unsent requests are work the server lacks.
            if delivered == 0
                && self.stream.is_some()
                && self.session.state() == SessionState::Connected
                && pending >= batching.min_in_flight
                && self.out_start == self.out_end
                && !self.session.has_transmit()
            {
                let nap = self.pace.nap(pending).unwrap_or_default();
                let nap = nap.min(batching.wait).min(timeout.unwrap_or(Duration::MAX));
                if !nap.is_zero() {
                    std::thread::sleep(nap);
                    self.io.batch_waits += 1;
                    timeout = timeout.map(|t| t.saturating_sub(nap));
                }
            }
        }
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = match self.read(sink) {
            Some(now) => now,
            None => self.clock.now(),
        };
        if self.batching.is_some() {
            let pending = self.session.pending();
            self.pace.sample(self.session.stats().replies, pending, now);
        }
        self.advance(now, sink)
    }

    /// Lets time pass in the session (it is `now`), opens or closes the socket as the session
    /// wants, and writes what it has to send.
    fn advance(&mut self, now: Instant, sink: Sink<'_>) -> io::Result<()> {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        drain(&mut self.session, sink);
        if self.tcp_connecting {
            self.finish_connect();
        }
        self.sync_socket(now)?;
        if self.tcp_connecting {
            self.finish_connect();
        }
        self.flush(now);
        drain(&mut self.session, sink);
        // A failure while writing closes the socket; open the next one at once.
        if self.stream.is_none() || !self.session.state().has_connection() {
            self.sync_socket(now)?;
            self.flush(now);
        }
        Ok(())
    }

    /// Closes a socket the session no longer wants; opens one when the session wants it.
    fn sync_socket(&mut self, now: Instant) -> io::Result<()> {
        if !self.session.state().has_connection() && self.stream.is_some() {
            self.close_socket();
        }
        if self.stream.is_none() && self.session.wants_connect(now) && !self.servers.is_empty() {
            let addr = self.servers[self.next_server % self.servers.len()];
            self.next_server = (self.next_server + 1) % self.servers.len();
            self.session.handle_connecting(now);
            self.io.connects += 1;
            match TcpStream::connect(addr) {
                Ok(mut stream) => {
                    self.poll.registry().register(
                        &mut stream,
                        TOKEN,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    self.stream = Some(stream);
                    self.tcp_connecting = true;
                    self.current = Some(addr);
                }
                Err(_) => {
                    self.io.connect_failures += 1;
                    self.session.handle_disconnected(now);
                }
            }
        }
        Ok(())
    }

    /// Checks whether a non-blocking connect has completed.
    fn finish_connect(&mut self) {
        let Some(stream) = self.stream.as_ref() else {
            self.tcp_connecting = false;
            return;
        };
        let failed = match stream.take_error() {
            Ok(Some(_)) | Err(_) => true,
            Ok(None) => match stream.peer_addr() {
                Ok(_) => false,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => true,
            },
        };
        self.tcp_connecting = false;
        let now = self.clock.now();
        if failed {
            self.io.connect_failures += 1;
            self.session.handle_disconnected(now);
            self.close_socket();
        } else {
            // As the Java client: no Nagle delay for small requests.
            let _ = stream.set_nodelay(true);
            self.session.handle_connected(now);
        }
    }

    fn close_socket(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        self.tcp_connecting = false;
        self.current = None;
        self.out_start = 0;
        self.out_end = 0;
    }

    /// Reads everything the socket has, straight into the session's receive buffer, and
    /// hands each event to `sink` as soon as its frame is complete. Returns the time of the
    /// last read that brought bytes, if one did.
    fn read(&mut self, sink: Sink<'_>) -> Option<Instant> {
        let mut last = None;
        if self.tcp_connecting {
            self.finish_connect();
        }
        loop {
            if self.tcp_connecting {
                return last;
            }
            let Some(stream) = self.stream.as_mut() else {
                return last;
            };
            let buf = self.session.receive_buffer();
            if buf.is_empty() {
                // Full of whole frames: hand them out to make room, or (a frame larger than
                // the buffer) the session gives the connection up.
                drain(&mut self.session, sink);
                if self.session.receive_buffer().is_empty()
                    || !self.session.state().has_connection()
                {
                    return last;
                }
                continue;
            }
            let room = buf.len();
            match stream.read(buf) {
                Ok(0) => {
                    let now = self.clock.now();
                    self.session.handle_disconnected(now);
                    self.close_socket();
                    drain(&mut self.session, sink);
                    return last;
                }
                Ok(n) => {
                    self.io.reads += 1;
                    self.io.bytes_read += n as u64;
                    let now = self.clock.now();
                    last = Some(now);
                    self.session.handle_received(now, n);
                    drain(&mut self.session, sink);
                    if !self.session.state().has_connection() {
                        self.close_socket();
                        return last;
                    }
                    if n < room {
                        // A short read emptied the socket's buffer; data arriving later
                        // wakes the poll again, so the read that would say WouldBlock is
                        // saved.
                        return last;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return last,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    let now = self.clock.now();
                    self.session.handle_disconnected(now);
                    self.close_socket();
                    drain(&mut self.session, sink);
                    return last;
                }
            }
        }
    }

    /// Writes what the session has to send (it is `now`): as many frames as fit the write
    /// buffer per `write`, until the socket would block.
    fn flush(&mut self, now: Instant) {
        loop {
            if self.tcp_connecting {
                return;
            }
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            if self.out_start == self.out_end {
                self.out_start = 0;
                self.out_end = 0;
                while self.out_end < self.out.len() {
                    let n = self
                        .session
                        .poll_transmit(now, &mut self.out[self.out_end..]);
                    if n == 0 {
                        break;
                    }
                    self.out_end += n;
                }
                if self.out_end == 0 {
                    return;
                }
            }
            match stream.write(&self.out[self.out_start..self.out_end]) {
                Ok(n) => {
                    self.io.writes += 1;
                    self.io.bytes_written += n as u64;
                    self.out_start += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    let now = self.clock.now();
                    self.session.handle_disconnected(now);
                    self.close_socket();
                    return;
                }
            }
        }
    }
}

fn drain(session: &mut ClientSession, sink: Sink<'_>) {
    while let Some(event) = session.poll_event() {
        sink(event);
    }
}

/// Replies and events kept for the blocking API.
#[derive(Default)]
struct Collected {
    completions: HashMap<Xid, Completion>,
    abandoned: HashSet<Xid>,
    events: VecDeque<ZkEvent>,
}

impl Collected {
    fn take(&mut self, event: Event<'_>) {
        match event {
            Event::Reply(reply) => {
                if !self.abandoned.remove(&reply.xid) {
                    self.completions.insert(reply.xid, reply.into());
                }
            }
            other => {
                if let Some(event) = ZkEvent::from_event(other) {
                    self.events.push_back(event);
                }
            }
        }
    }
}

/// A ZooKeeper client on a mio TCP socket, driven on the caller's thread.
///
/// See the [module documentation](self). The client connects to the servers in turn
/// (failing over to the next on a refused connection, a connect timeout or a lost
/// connection), re-attaches its session with the id, password and last zxid it saw, replays
/// its authentications and re-registers its watches. Requests in flight when a connection is
/// lost fail with [`ErrorCode::ConnectionLoss`]; none is resent behind the caller's back.
pub struct ZkClient {
    core: Core,
    collected: Collected,
    operation_timeout: Duration,
}

impl fmt::Debug for ZkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkClient")
            .field("servers", &self.core.servers)
            .field("current", &self.core.current)
            .field("session", &self.core.session)
            .field("io", &self.core.io)
            .finish_non_exhaustive()
    }
}

/// Splits a connect string `host:port[,host:port…][/chroot]` into resolved addresses and the
/// chroot.
///
/// # Errors
/// [`ZkError::Io`] if a host does not resolve or the list is empty.
pub fn parse_connect_string(connect: &str) -> Result<(Vec<SocketAddr>, Option<String>), ZkError> {
    let (hosts, chroot) = match connect.find('/') {
        Some(i) => (&connect[..i], Some(connect[i..].to_string())),
        None => (connect, None),
    };
    let mut servers = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let with_port = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_string()
        } else {
            format!("{host}:2181")
        };
        servers.extend(with_port.to_socket_addrs()?);
    }
    if servers.is_empty() {
        return Err(ZkError::Io(io::Error::new(
            ErrorKind::InvalidInput,
            format!("no server address in {connect:?}"),
        )));
    }
    Ok((servers, chroot.filter(|c| c != "/")))
}

impl ZkClient {
    /// Connects to one of the servers of a connect string (`host:port,host:port/chroot`, as
    /// the Java client takes it) and waits until the session is established.
    ///
    /// # Errors
    /// [`ZkError::Io`] if no address resolves; [`ZkError::Timeout`] if no server accepted a
    /// session within the session timeout; [`ZkError::Zk`] if the session expired or an auth
    /// failed on the way.
    pub fn connect(connect: &str, mut config: ClientConfig) -> Result<ZkClient, ZkError> {
        let (servers, chroot) = parse_connect_string(connect)?;
        if chroot.is_some() {
            config.chroot = chroot;
        }
        let wait = config.session_timeout;
        let mut client = ZkClient::new(servers, config)?;
        client.wait_connected(wait)?;
        Ok(client)
    }

    /// A client for `servers` that connects when first driven ([`process`](Self::process),
    /// [`poll`](Self::poll), [`wait_connected`](Self::wait_connected) or any operation).
    ///
    /// # Errors
    /// [`ZkError::Io`] if the `Poll` cannot be created or the list is empty;
    /// [`ZkError::Proto`] for a malformed chroot.
    pub fn new(servers: Vec<SocketAddr>, config: ClientConfig) -> Result<ZkClient, ZkError> {
        if servers.is_empty() {
            return Err(ZkError::Io(io::Error::new(
                ErrorKind::InvalidInput,
                "no servers",
            )));
        }
        let connect_timeout = config.connect_timeout.unwrap_or_else(|| {
            (config.session_timeout / u32::try_from(servers.len()).unwrap_or(u32::MAX))
                .max(Duration::from_secs(1))
        });
        let session_config = Config {
            session_timeout: config.session_timeout,
            connect_timeout,
            read_only: config.read_only,
            max_frame_len: config.max_frame_len,
        };
        let mut session = Box::new(ZkSession::new(
            session_config,
            vec![0; config.transmit_buffer],
            vec![0; config.receive_buffer],
        ));
        if let Some(chroot) = &config.chroot {
            session.set_chroot(chroot)?;
        }
        Ok(ZkClient {
            core: Core {
                session,
                servers,
                next_server: 0,
                current: None,
                stream: None,
                tcp_connecting: false,
                poll: Poll::new()?,
                events: Events::with_capacity(8),
                clock: Clock::new(),
                out: vec![0; WRITE_BUFFER],
                out_start: 0,
                out_end: 0,
                io: IoStats::default(),
                batching: config.batching,
                pace: ReplyPace::default(),
            },
            collected: Collected::default(),
            operation_timeout: config.operation_timeout,
        })
    }

    /// Drives the client until the session is connected.
    ///
    /// # Errors
    /// [`ZkError::Timeout`] after `timeout`; [`ZkError::Zk`] with
    /// [`ErrorCode::SessionExpired`], [`ErrorCode::AuthFailed`] or
    /// [`ErrorCode::ConnectionLoss`] (closed) if the session ended.
    pub fn wait_connected(&mut self, timeout: Duration) -> Result<(), ZkError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            match self.state() {
                SessionState::Connected => return Ok(()),
                SessionState::Expired => return Err(ZkError::Zk(ErrorCode::SessionExpired)),
                SessionState::AuthFailed => return Err(ZkError::Zk(ErrorCode::AuthFailed)),
                SessionState::Closed | SessionState::Closing => {
                    return Err(ZkError::Zk(ErrorCode::ConnectionLoss));
                }
                _ => {}
            }
            let now = StdInstant::now();
            if now >= deadline {
                return Err(ZkError::Timeout);
            }
            self.poll(Some(deadline - now))?;
        }
    }

    /// The session.
    pub fn session(&self) -> &ClientSession {
        &self.core.session
    }

    /// The session, to call what the client does not wrap; what it queues is written at the
    /// next step.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.core.session
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.core.session.state()
    }

    /// The session id (0 before the first handshake).
    pub fn session_id(&self) -> i64 {
        self.core.session.session_id()
    }

    /// The server of the current connection.
    pub fn current_server(&self) -> Option<SocketAddr> {
        self.core.current
    }

    /// The server addresses, in the order they are tried.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.core.servers
    }

    /// The socket counters.
    pub fn io_stats(&self) -> &IoStats {
        &self.core.io
    }

    /// The clock the session's instants are on.
    pub fn clock(&self) -> Clock {
        self.core.clock
    }

    /// How long blocking operations wait.
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// Sets how long blocking operations wait.
    pub fn set_operation_timeout(&mut self, timeout: Duration) {
        self.operation_timeout = timeout;
    }

    // -----------------------------------------------------------------------------------------
    // The non-blocking core
    // -----------------------------------------------------------------------------------------

    /// Submits a request without waiting; its outcome is one [`Event::Reply`] (through
    /// [`process`](Self::process)) or one [`Completion`] (through [`wait`](Self::wait)) with the
    /// returned xid. Nothing is written until the client is driven, so that many submitted
    /// requests go out in one write.
    ///
    /// # Errors
    /// [`ZkError::Proto`] as [`ZkSession::submit`] refuses (too large, too many pending, …).
    pub fn submit(&mut self, body: RequestBody<'_>) -> Result<Xid, ZkError> {
        self.submit_watched(body, WatcherId::DEFAULT)
    }

    /// As [`submit`](Self::submit), registering the watch the request asks for under
    /// `watcher`.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_watched(
        &mut self,
        body: RequestBody<'_>,
        watcher: WatcherId,
    ) -> Result<Xid, ZkError> {
        let now = self.core.clock.now();
        Ok(self.core.session.submit_watched(now, body, watcher)?)
    }

    /// Writes what is queued now, without waiting for anything.
    ///
    /// # Errors
    /// [`ZkError::Io`] if the poll registry fails.
    pub fn flush(&mut self) -> Result<(), ZkError> {
        let collected = &mut self.collected;
        let now = self.core.clock.now();
        self.core.advance(now, &mut |e| collected.take(e))?;
        Ok(())
    }

    /// One step of the client, zero-copy: writes what is queued, sleeps at most `timeout`
    /// (`None`: until something happens) for the socket or a timer, reads, and hands every
    /// event — replies, notifications, state changes — to `handler`, borrowed from the
    /// session's buffer. Replies given to `handler` are not kept for [`wait`](Self::wait).
    ///
    /// # Errors
    /// [`ZkError::Io`] if polling fails (a broken connection is not an error: the session
    /// reports it as [`Event::Disconnected`] and reconnects).
    pub fn process(
        &mut self,
        timeout: Option<Duration>,
        handler: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), ZkError> {
        self.core.step(timeout, handler)?;
        Ok(())
    }

    /// One step of the client that keeps replies (for [`wait`](Self::wait) /
    /// [`take_completion`](Self::take_completion)) and other events (for
    /// [`next_event`](Self::next_event)), owned.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<(), ZkError> {
        let collected = &mut self.collected;
        self.core.step(timeout, &mut |e| collected.take(e))?;
        Ok(())
    }

    /// The outcome of request `xid`, if it has come (taken once).
    pub fn take_completion(&mut self, xid: Xid) -> Option<Completion> {
        self.collected.completions.remove(&xid)
    }

    /// Drives the client until request `xid` has its outcome.
    ///
    /// # Errors
    /// [`ZkError::Timeout`] after `timeout` (the request's outcome is then dropped when it
    /// comes); [`ZkError::Io`] as [`poll`](Self::poll).
    pub fn wait(&mut self, xid: Xid, timeout: Duration) -> Result<Completion, ZkError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            if let Some(done) = self.collected.completions.remove(&xid) {
                return Ok(done);
            }
            let now = StdInstant::now();
            if now >= deadline {
                self.collected.abandoned.insert(xid);
                return Err(ZkError::Timeout);
            }
            self.poll(Some(deadline - now))?;
        }
    }

    /// The next event other than a reply (watch notifications, connection changes), waiting
    /// at most `timeout` for one.
    ///
    /// # Errors
    /// As [`poll`](Self::poll).
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ZkEvent>, ZkError> {
        let deadline = StdInstant::now() + timeout;
        loop {
            if let Some(event) = self.collected.events.pop_front() {
                return Ok(Some(event));
            }
            let now = StdInstant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.poll(Some(deadline - now))?;
        }
    }

    /// Submits `body` and waits for its reply.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with the reply's error, and as [`submit`](Self::submit) and
    /// [`wait`](Self::wait).
    pub fn call(&mut self, body: RequestBody<'_>) -> Result<OwnedReply, ZkError> {
        self.call_watched(body, WatcherId::DEFAULT)
    }

    fn call_watched(
        &mut self,
        body: RequestBody<'_>,
        watcher: WatcherId,
    ) -> Result<OwnedReply, ZkError> {
        let xid = self.submit_watched(body, watcher)?;
        let timeout = self.operation_timeout;
        Ok(self.wait(xid, timeout)?.result?)
    }

    // -----------------------------------------------------------------------------------------
    // Blocking operations
    // -----------------------------------------------------------------------------------------

    /// Creates a node; returns its path (with the sequence number for a sequential mode).
    ///
    /// # Errors
    /// [`ZkError::Zk`]: `NodeExists`, `NoNode` (no parent), `NoChildrenForEphemerals`,
    /// `NoAuth`, `InvalidACL`, …
    pub fn create(
        &mut self,
        path: &str,
        data: &[u8],
        acl: &[Acl<'_>],
        mode: CreateMode,
    ) -> Result<String, ZkError> {
        match self.call(RequestBody::Create(create_request(path, data, acl, mode)))? {
            OwnedReply::Path(path) => Ok(path),
            _ => Err(ZkError::UnexpectedReply(OpCode::Create)),
        }
    }

    /// Creates a node (create2); returns its path and `Stat`.
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create2(
        &mut self,
        path: &str,
        data: &[u8],
        acl: &[Acl<'_>],
        mode: CreateMode,
    ) -> Result<(String, Stat), ZkError> {
        match self.call(RequestBody::Create2(create_request(path, data, acl, mode)))? {
            OwnedReply::Created { path, stat } => Ok((path, stat)),
            _ => Err(ZkError::UnexpectedReply(OpCode::Create2)),
        }
    }

    /// A node's data and `Stat`; with `watch`, leaves a one-shot data watch for that watcher.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, `NoAuth`, …
    pub fn get_data(
        &mut self,
        path: &str,
        watch: Option<WatcherId>,
    ) -> Result<(Vec<u8>, Stat), ZkError> {
        let body = RequestBody::GetData(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Data { data, stat } => Ok((data.unwrap_or_default(), stat)),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetData)),
        }
    }

    /// Sets a node's data if its version is `version` (-1: any); returns the new `Stat`.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, `BadVersion`, `NoAuth`, …
    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, ZkError> {
        let body = RequestBody::SetData(SetDataRequest {
            path: ZkStr::new(path),
            data: Some(data),
            version,
        });
        match self.call(body)? {
            OwnedReply::Stat(stat) => Ok(stat),
            _ => Err(ZkError::UnexpectedReply(OpCode::SetData)),
        }
    }

    /// Deletes a node if its version is `version` (-1: any).
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, `BadVersion`, `NotEmpty`, `NoAuth`, …
    pub fn delete(&mut self, path: &str, version: i32) -> Result<(), ZkError> {
        let body = RequestBody::Delete(PathVersionRequest {
            path: ZkStr::new(path),
            version,
        });
        self.call(body).map(|_| ())
    }

    /// A node's `Stat`, `None` if it does not exist; with `watch`, leaves a one-shot watch
    /// (a data watch if the node exists, an exist watch if not).
    ///
    /// # Errors
    /// [`ZkError::Zk`] for errors other than `NoNode`.
    pub fn exists(
        &mut self,
        path: &str,
        watch: Option<WatcherId>,
    ) -> Result<Option<Stat>, ZkError> {
        let body = RequestBody::Exists(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default()) {
            Ok(OwnedReply::Stat(stat)) => Ok(Some(stat)),
            Ok(_) => Err(ZkError::UnexpectedReply(OpCode::Exists)),
            Err(ZkError::Zk(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A node's children (names); with `watch`, leaves a one-shot child watch.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, `NoAuth`, …
    pub fn get_children(
        &mut self,
        path: &str,
        watch: Option<WatcherId>,
    ) -> Result<Vec<String>, ZkError> {
        let body = RequestBody::GetChildren(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Children(children) => Ok(children),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetChildren)),
        }
    }

    /// A node's children (names) and its `Stat` (getChildren2).
    ///
    /// # Errors
    /// As [`get_children`](Self::get_children).
    pub fn get_children2(
        &mut self,
        path: &str,
        watch: Option<WatcherId>,
    ) -> Result<(Vec<String>, Stat), ZkError> {
        let body = RequestBody::GetChildren2(path_watch(path, watch.is_some()));
        match self.call_watched(body, watch.unwrap_or_default())? {
            OwnedReply::Children2 { children, stat } => Ok((children, stat)),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetChildren2)),
        }
    }

    /// A node's ACL and `Stat`.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, …
    pub fn get_acl(&mut self, path: &str) -> Result<(Vec<AclEntry>, Stat), ZkError> {
        let body = RequestBody::GetAcl(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Acl { acl, stat } => Ok((acl, stat)),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetAcl)),
        }
    }

    /// Sets a node's ACL if its ACL version is `version` (-1: any); returns the new `Stat`.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, `BadVersion`, `NoAuth`, `InvalidACL`, …
    pub fn set_acl(&mut self, path: &str, acl: &[Acl<'_>], version: i32) -> Result<Stat, ZkError> {
        let body = RequestBody::SetAcl(SetAclRequest {
            path: ZkStr::new(path),
            acl: List::from_slice(acl),
            version,
        });
        match self.call(body)? {
            OwnedReply::Stat(stat) => Ok(stat),
            _ => Err(ZkError::UnexpectedReply(OpCode::SetAcl)),
        }
    }

    /// Runs write operations as one transaction. An aborted transaction is not an error: every
    /// result is then an [`OpResult::Error`] (see there).
    ///
    /// # Errors
    /// [`ZkError::Zk`] only when the whole request failed (connection loss, …).
    pub fn multi(&mut self, ops: &[MultiOp<'_>]) -> Result<Vec<OpResult>, ZkError> {
        match self.call(RequestBody::Multi(List::from_slice(ops)))? {
            OwnedReply::Multi(results) => Ok(results),
            _ => Err(ZkError::UnexpectedReply(OpCode::Multi)),
        }
    }

    /// Runs read operations (getData, getChildren) in one request; each has its own result.
    ///
    /// # Errors
    /// As [`multi`](Self::multi).
    pub fn multi_read(&mut self, ops: &[MultiOp<'_>]) -> Result<Vec<OpResult>, ZkError> {
        match self.call(RequestBody::MultiRead(List::from_slice(ops)))? {
            OwnedReply::Multi(results) => Ok(results),
            _ => Err(ZkError::UnexpectedReply(OpCode::MultiRead)),
        }
    }

    /// Adds a persistent (recursive) watch on `path` for `watcher`; it fires until removed and
    /// survives reconnects.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with the server's error.
    pub fn add_watch(
        &mut self,
        path: &str,
        mode: AddWatchMode,
        watcher: WatcherId,
    ) -> Result<(), ZkError> {
        let body = RequestBody::AddWatch(AddWatchRequest {
            path: ZkStr::new(path),
            mode,
        });
        match self.call_watched(body, watcher)? {
            OwnedReply::Status(ErrorCode::Ok) | OwnedReply::Empty => Ok(()),
            OwnedReply::Status(code) => Err(ZkError::Zk(code)),
            _ => Err(ZkError::UnexpectedReply(OpCode::AddWatch)),
        }
    }

    /// Removes this session's watches of `watcher_type` on `path` (locally at once, then on
    /// the server).
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoWatcher` if the server had none.
    pub fn remove_watches(&mut self, path: &str, watcher_type: WatcherType) -> Result<(), ZkError> {
        let body = RequestBody::RemoveWatches(WatchesRequest {
            path: ZkStr::new(path),
            watcher_type,
        });
        self.call(body).map(|_| ())
    }

    /// Waits until the server this client is connected to has caught up with the leader.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with the server's error.
    pub fn sync(&mut self, path: &str) -> Result<String, ZkError> {
        let body = RequestBody::Sync(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Path(path) => Ok(path),
            _ => Err(ZkError::UnexpectedReply(OpCode::Sync)),
        }
    }

    /// The identities this session is authenticated as (whoAmI, ZooKeeper 3.7+).
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `Unimplemented` from older servers (which then close the
    /// connection).
    pub fn whoami(&mut self) -> Result<Vec<ClientIdentity>, ZkError> {
        match self.call(RequestBody::WhoAmI)? {
            OwnedReply::WhoAmI(ids) => Ok(ids),
            _ => Err(ZkError::UnexpectedReply(OpCode::WhoAmI)),
        }
    }

    /// This session's ephemeral nodes whose path starts with `prefix`.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with the server's error.
    pub fn get_ephemerals(&mut self, prefix: &str) -> Result<Vec<String>, ZkError> {
        let body = RequestBody::GetEphemerals(PathRequest {
            path: ZkStr::new(prefix),
        });
        match self.call(body)? {
            OwnedReply::Children(paths) => Ok(paths),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetEphemerals)),
        }
    }

    /// The number of descendants of a node.
    ///
    /// # Errors
    /// [`ZkError::Zk`] with `NoNode`, …
    pub fn get_all_children_number(&mut self, path: &str) -> Result<i32, ZkError> {
        let body = RequestBody::GetAllChildrenNumber(PathRequest {
            path: ZkStr::new(path),
        });
        match self.call(body)? {
            OwnedReply::Count(n) => Ok(n),
            _ => Err(ZkError::UnexpectedReply(OpCode::GetAllChildrenNumber)),
        }
    }

    /// Adds an authentication (`digest`, `user:password`): sent before any later request,
    /// and again after every reconnect. A refusal ends the session ([`ZkEvent::AuthFailed`],
    /// later requests fail with `AuthFailed`); `digest` is never refused.
    ///
    /// # Errors
    /// [`ZkError::Proto`] beyond the session's auth capacity or length limits.
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8]) -> Result<(), ZkError> {
        let now = self.core.clock.now();
        self.core.session.add_auth(now, scheme, auth)?;
        self.flush()
    }

    /// Closes the session (ephemeral nodes go at once) and waits for the server to confirm.
    ///
    /// # Errors
    /// [`ZkError::Timeout`] if the server does not answer within the operation timeout.
    pub fn close(&mut self) -> Result<(), ZkError> {
        if self.state().is_terminal() {
            return Ok(());
        }
        let now = self.core.clock.now();
        let xid = self.core.session.close(now)?;
        let timeout = self.operation_timeout;
        let result = self.wait(xid, timeout);
        // Let the socket go.
        self.flush()?;
        match result {
            Ok(_) => Ok(()),
            Err(e) if self.state() == SessionState::Closed => {
                let _ = e;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

fn path_watch(path: &str, watch: bool) -> PathWatchRequest<'_> {
    PathWatchRequest {
        path: ZkStr::new(path),
        watch,
    }
}

fn create_request<'a>(
    path: &'a str,
    data: &'a [u8],
    acl: &'a [Acl<'a>],
    mode: CreateMode,
) -> CreateRequest<'a> {
    CreateRequest {
        path: ZkStr::new(path),
        data: Some(data),
        acl: List::from_slice(acl),
        mode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_pace_measures_time_per_reply_while_requests_are_in_flight() {
        let mut pace = ReplyPace::default();
        // No estimate before two samples with replies between them.
        assert_eq!(pace.nap(64), None);
        pace.sample(0, 64, Instant::from_micros(1_000));
        assert_eq!(pace.nap(64), None);
        // 10 replies in 500 µs: 50 µs each; half of 64 in flight is 1.6 ms.
        pace.sample(10, 64, Instant::from_micros(1_500));
        assert_eq!(pace.interval, Some(Duration::from_micros(50)));
        assert_eq!(pace.nap(64), Some(Duration::from_micros(1_600)));
        assert_eq!(pace.nap(1), Some(Duration::ZERO));
        // A step without replies leaves the estimate and the reference point alone.
        pace.sample(10, 64, Instant::from_micros(1_600));
        assert_eq!(pace.interval, Some(Duration::from_micros(50)));
        // 10 more in 1 ms (100 µs each) moves the average an eighth of the way.
        pace.sample(20, 64, Instant::from_micros(2_500));
        assert_eq!(pace.interval, Some(Duration::from_micros(56_250) / 1_000));
        // Idle time (nothing in flight) is not counted as the server's.
        pace.sample(25, 0, Instant::from_micros(3_000));
        let before = pace.interval;
        pace.sample(25, 16, Instant::from_micros(1_000_000));
        pace.sample(26, 16, Instant::from_micros(1_000_040));
        let after = pace.interval.unwrap();
        assert!(
            after < before.unwrap(),
            "a fast reply after an idle second lowers the estimate: {before:?} → {after:?}"
        );
    }
}
