//! [`ZkClient`]: a ZooKeeper client, the sans-IO [`ZkSession`] driven over a mio TCP socket.
//!
//! The client owns a non-blocking socket and the session, on the caller's thread: no
//! background thread, no hand-off of requests or replies between threads. It moves bytes and
//! time; every protocol decision (xids, pings, timeouts, reconnect, watch re-registration,
//! expiry) is the session's.
//!
//! **Running it.** The client is an [`Adapter`], driven like every other adapter of this crate:
//! * standalone: the blocking operations ([`get_data`](ZkClient::get_data),
//!   [`create`](ZkClient::create), [`wait`](ZkClient::wait), …) and
//!   [`run_for`](ZkClient::run_for) / [`run_until`](ZkClient::run_until) drive it on this
//!   thread with a `Poll` of its own, made at first use;
//! * on your `Poll`, or in a [`Group`](crate::Group): [`register`](ZkClient::register) it and
//!   call [`process`](ZkClient::process) — one step that never blocks — when its token is ready
//!   or its [`poll_timeout`](ZkClient::poll_timeout) has come. The blocking operations then
//!   refuse to run (see [`ZkClient`]).
//!
//! **Outcomes.** Every reply, error and event goes down the one path the caller chose, whichever
//! call did the socket work: a handler ([`set_handler`](ZkClient::set_handler)) that sees each
//! as a borrowed [`Event`], zero-copy from the session's receive buffer; or, by default, owned
//! copies kept for [`wait`](ZkClient::wait) / [`take_completion`](ZkClient::take_completion)
//! and [`next_event`](ZkClient::next_event).
//!
//! **Pipelining.** [`submit`](ZkClient::submit) many requests: queued requests go out in one
//! `write` per step (up to [`WRITE_BUFFER`] bytes), replies are read straight into the
//! session's receive buffer. With deep pipelines, [`ClientConfig::batching`]
//! ([`Batching::PIPELINED`]) lets replies gather before each read: a few times less CPU per
//! request for the same throughput.
//!
//! The code: this file (configuration, the client, its adapter interface and where outcomes
//! go), `io.rs` (connecting, reading, writing, batching's naps), `blocking.rs` (the blocking
//! operations), `owned.rs` (owned replies and events).
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
//! # Ok::<(), sinew_transport_std::Error>(())
//! ```
//!
//! Pipelined and zero-copy, in a [`Group`](crate::Group) beside other adapters:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use sinew_proto::zk::session::Event;
//! use sinew_proto::zk::{PathWatchRequest, RequestBody, ZkStr};
//! use sinew_transport_std::Group;
//! use sinew_transport_std::zk::{ClientConfig, ZkClient, parse_connect_string};
//!
//! let (servers, _) = parse_connect_string("127.0.0.1:2181")?;
//! let mut zk = ZkClient::new(servers, ClientConfig::default())?;
//! let answered = Arc::new(AtomicUsize::new(0));
//! let count = Arc::clone(&answered);
//! zk.set_handler(move |event| {
//!     // The reply's body borrows the session's receive buffer: no copy of the data.
//!     if let Event::Reply(reply) = event {
//!         assert!(reply.result.is_ok());
//!         count.fetch_add(1, Ordering::Relaxed);
//!     }
//! });
//! for _ in 0..100 {
//!     zk.submit(RequestBody::GetData(PathWatchRequest { path: ZkStr::new("/"), watch: false }))?;
//! }
//! let mut group = Group::new()?;
//! let zk = group.add(zk)?;
//! group.run_until(Duration::from_secs(10), |_| answered.load(Ordering::Relaxed) == 100)?;
//! println!("{:?}", group[zk].io_stats());
//! # Ok::<(), sinew_transport_std::Error>(())
//! ```

mod blocking;
mod io;
mod owned;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io::ErrorKind;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant as StdInstant};

use mio::{Registry, Token};
use sinew_proto::zk::DEFAULT_MAX_FRAME_LEN;
use sinew_proto::zk::RequestBody;
use sinew_proto::zk::session::{Config, Event, SessionState, WatcherId, Xid, ZkSession};

use crate::adapter::{self, Registration, Standalone};
use crate::{Adapter, Clock, Error, Result};

use io::Core;
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

/// What a [`ZkClient`] hands every reply, error and event to, when the caller chose one
/// ([`ZkClient::set_handler`]). `Send`, so that the client stays `Send`.
pub type Handler = Box<dyn FnMut(Event<'_>) + Send>;

/// Settings of a [`ZkClient`].
///
/// `#[non_exhaustive]`: settings may be added. Build one with [`ClientConfig::new`] (or
/// `default()`) and the chainable `with_*` methods; the fields stay public, to read, and to
/// assign on a `let mut` config.
///
/// ```
/// use std::time::Duration;
/// use sinew_transport_std::zk::{Batching, ClientConfig};
///
/// let config = ClientConfig::new()
///     .with_session_timeout(Duration::from_secs(10))
///     .with_chroot("/app")
///     .with_batching(Batching::PIPELINED);
/// assert_eq!(config.chroot.as_deref(), Some("/app"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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
/// [`process`](ZkClient::process) step that finds at least
/// [`min_in_flight`](Self::min_in_flight) requests awaiting replies, on an established session,
/// with every queued request written and nothing to deliver, naps before it reads, so that
/// the read takes in everything that came; the replacements the caller submits go out in one
/// write. The nap lasts as long as the server takes to answer half of the requests in
/// flight (its reply interval is measured as replies come), at most [`wait`](Self::wait): the
/// server keeps the other half to work on, so throughput is unchanged, and each reply is
/// handled at most that much later. Steps with fewer requests in flight — a lone blocking
/// call, an idle session, pings — never nap.
///
/// Standalone (the client's own `Poll`: [`run_until`](ZkClient::run_until) and the blocking
/// calls), the thread is the client's and the step itself sleeps the nap (at most
/// [`wait`](Self::wait)), then reads. On a caller's `Poll` [`process`](ZkClient::process) never
/// sleeps: it takes the socket out of the `Poll`, [`poll_timeout`](ZkClient::poll_timeout) says
/// when the nap ends, replies arriving meanwhile wake nobody, and steps during the nap (a timer,
/// the caller's new requests) write and let time pass but read nothing; such a caller must
/// honour that timeout (mio's epoll backend rounds a `Poll::poll` timeout up to whole
/// milliseconds, so in a [`Group`](crate::Group), which wakes on any member's socket, a nap
/// lasts at least 1 ms).
///
/// `#[non_exhaustive]`: build one with [`Batching::new`] (or take
/// [`PIPELINED`](Self::PIPELINED)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batching {
    /// The longest nap.
    pub wait: Duration,
    /// From how many requests awaiting replies on the client batches.
    pub min_in_flight: usize,
}

impl Batching {
    /// Naps of at most `wait`, from `min_in_flight` requests awaiting replies.
    pub const fn new(wait: Duration, min_in_flight: usize) -> Batching {
        Batching {
            wait,
            min_in_flight,
        }
    }

    /// For deep pipelines: naps of at most 1 ms from 32 requests in flight. On loopback
    /// with 64–128 in flight this cut the client's CPU per request from ~11 µs to ~2.8 µs, and
    /// raised the rate from 0.93–0.96× a raw client's to 1.25× with server and client on a
    /// core each (0.93–0.94× sharing both cores; `benches/examples/zk_e2e.rs`). Shallower
    /// pipelines are left alone: with 16 in flight, batching cost a quarter of the rate there.
    /// On 2026-12-04 (a faster day of this machine kind, a core each, medians of 3 rounds) it
    /// took 1.93 / 1.62 µs per request at 64 / 128 in flight, at 1.35 / 1.36× the raw client's
    /// rate.
    pub const PIPELINED: Batching = Batching {
        wait: Duration::from_millis(1),
        min_in_flight: 32,
    };
}

impl ClientConfig {
    /// The defaults: a 30 s session, connection attempts of the session timeout divided by the
    /// number of servers, 30 s per blocking operation, no chroot, no read-only server, frames up
    /// to [`DEFAULT_MAX_FRAME_LEN`], 2 MiB of queued requests, a receive buffer for the largest
    /// frame, no batching.
    pub fn new() -> ClientConfig {
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

    /// Sets [`session_timeout`](Self::session_timeout).
    #[must_use]
    pub fn with_session_timeout(mut self, session_timeout: Duration) -> ClientConfig {
        self.session_timeout = session_timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout) to `Some(connect_timeout)`.
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> ClientConfig {
        self.connect_timeout = Some(connect_timeout);
        self
    }

    /// Sets [`operation_timeout`](Self::operation_timeout).
    #[must_use]
    pub fn with_operation_timeout(mut self, operation_timeout: Duration) -> ClientConfig {
        self.operation_timeout = operation_timeout;
        self
    }

    /// Sets [`chroot`](Self::chroot) to `Some(chroot)`.
    #[must_use]
    pub fn with_chroot(mut self, chroot: impl Into<String>) -> ClientConfig {
        self.chroot = Some(chroot.into());
        self
    }

    /// Sets [`read_only`](Self::read_only).
    #[must_use]
    pub fn with_read_only(mut self, read_only: bool) -> ClientConfig {
        self.read_only = read_only;
        self
    }

    /// Sets [`max_frame_len`](Self::max_frame_len).
    #[must_use]
    pub fn with_max_frame_len(mut self, max_frame_len: u32) -> ClientConfig {
        self.max_frame_len = max_frame_len;
        self
    }

    /// Sets [`transmit_buffer`](Self::transmit_buffer).
    #[must_use]
    pub fn with_transmit_buffer(mut self, transmit_buffer: usize) -> ClientConfig {
        self.transmit_buffer = transmit_buffer;
        self
    }

    /// Sets [`receive_buffer`](Self::receive_buffer).
    #[must_use]
    pub fn with_receive_buffer(mut self, receive_buffer: usize) -> ClientConfig {
        self.receive_buffer = receive_buffer;
        self
    }

    /// Sets [`batching`](Self::batching) to `Some(batching)`.
    #[must_use]
    pub fn with_batching(mut self, batching: Batching) -> ClientConfig {
        self.batching = Some(batching);
        self
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig::new()
    }
}

/// What the socket side of a client did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Naps taken for replies to gather ([`Batching`]).
    pub batch_waits: u64,
}

/// A ZooKeeper client on a mio TCP socket, driven on the caller's thread.
///
/// See the [module documentation](self). The client connects to the servers in turn: a server
/// that refuses the connection, or cannot be reached, is passed over at once for the next; one
/// that stays silent for the connect timeout too. It re-attaches its session with the id,
/// password and last zxid it saw, replays its authentications and re-registers its watches.
/// Requests in flight when a connection is lost fail with
/// [`ErrorCode::ConnectionLoss`](sinew_proto::zk::ErrorCode::ConnectionLoss); none is resent
/// behind the caller's back.
///
/// # Driving it
/// Standalone, the blocking operations, [`wait_connected`](Self::wait_connected),
/// [`next_event`](Self::next_event) and [`run_for`](Self::run_for) /
/// [`run_until`](Self::run_until) drive it with a `Poll` of its own. Once it is
/// [`register`](Self::register)ed with a caller's `Poll` (or added to a
/// [`Group`](crate::Group)), [`process`](Self::process) is the way to drive it, and every one
/// of those returns the [`Error::Io`] that [`run_until`](Self::run_until) gives there, before
/// sending anything; use [`submit`](Self::submit) and the outcome paths below, and for a close
/// `session_mut().close(now)`. [`flush`](Self::flush) and [`add_auth`](Self::add_auth) never
/// block and work either way.
///
/// # Where outcomes go
/// Every reply (to a request of the caller's: [`submit`](Self::submit)), every error made up
/// for one (ConnectionLoss, SessionExpired, …) and every event (connection changes, watch
/// notifications) goes down one path, whichever call did the socket work —
/// [`process`](Self::process), [`flush`](Self::flush), [`run_for`](Self::run_for), a blocking
/// operation:
/// * with a handler ([`set_handler`](Self::set_handler)): to the handler, as the session
///   produced it, borrowed;
/// * without one (the default): kept, owned — replies for [`wait`](Self::wait) /
///   [`take_completion`](Self::take_completion), everything else for
///   [`next_event`](Self::next_event).
///
/// Two rules hold on both paths. The reply to a blocking operation's own request
/// ([`get_data`](Self::get_data), [`create`](Self::create), [`close`](Self::close), …) is that
/// call's return value and goes nowhere else. A request whose blocking call gave up
/// ([`Error::Timeout`]) has its outcome dropped when it comes.
///
/// Events kept before a handler is set (such as the `Connected` of
/// [`connect`](Self::connect)) are handed to it when it is set; replies kept before stay for
/// [`wait`](Self::wait) and [`take_completion`](Self::take_completion). With a handler set,
/// [`wait`](Self::wait) and [`next_event`](Self::next_event) return what was kept before and
/// otherwise refuse, since nothing more will be kept for them.
pub struct ZkClient {
    core: Core,
    outcomes: Outcomes,
    operation_timeout: Duration,
    /// The caller queued something (a request, an auth, a close) that the next step sends.
    queued: bool,
}

impl fmt::Debug for ZkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkClient")
            .field("servers", &self.core.servers)
            .field("current", &self.core.current)
            .field("session", &self.core.session)
            .field("io", &self.core.io)
            .field("handler", &self.outcomes.handler.is_some())
            .finish_non_exhaustive()
    }
}

/// Splits a connect string `host:port[,host:port…][/chroot]` into resolved addresses and the
/// chroot.
///
/// # Errors
/// [`Error::Io`] if a host does not resolve or the list is empty.
pub fn parse_connect_string(connect: &str) -> Result<(Vec<SocketAddr>, Option<String>)> {
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
        return Err(Error::Io(std::io::Error::new(
            ErrorKind::InvalidInput,
            format!("no server address in {connect:?}"),
        )));
    }
    Ok((servers, chroot.filter(|c| c != "/")))
}

impl ZkClient {
    /// Connects to one of the servers of a connect string (`host:port,host:port/chroot`, as
    /// the Java client takes it) and waits until the session is established, at most the
    /// session timeout (see [`wait_connected`](Self::wait_connected)).
    ///
    /// # Errors
    /// [`Error::Io`] if no address resolves; [`Error::Connect`] with what happened at each
    /// server if none could be connected to; [`Error::Zk`] if the session expired or an auth
    /// failed on the way.
    pub fn connect(connect: &str, mut config: ClientConfig) -> Result<ZkClient> {
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
    /// [`wait_connected`](Self::wait_connected), [`run_for`](Self::run_for) or any blocking
    /// operation).
    ///
    /// # Errors
    /// [`Error::Io`] if the list is empty; [`Error::Proto`] for a malformed chroot.
    pub fn new(servers: Vec<SocketAddr>, config: ClientConfig) -> Result<ZkClient> {
        if servers.is_empty() {
            return Err(Error::Io(std::io::Error::new(
                ErrorKind::InvalidInput,
                "no servers",
            )));
        }
        let connect_timeout = config.connect_timeout.unwrap_or_else(|| {
            (config.session_timeout / u32::try_from(servers.len()).unwrap_or(u32::MAX))
                .max(Duration::from_secs(1))
        });
        let session_config = Config::new()
            .with_session_timeout(config.session_timeout)
            .with_connect_timeout(connect_timeout)
            .with_read_only(config.read_only)
            .with_max_frame_len(config.max_frame_len);
        let mut session = Box::new(ZkSession::new(
            session_config,
            vec![0; config.transmit_buffer],
            vec![0; config.receive_buffer],
        ));
        if let Some(chroot) = &config.chroot {
            session.set_chroot(chroot)?;
        }
        Ok(ZkClient {
            core: Core::new(session, servers, config.batching),
            outcomes: Outcomes::default(),
            operation_timeout: config.operation_timeout,
            queued: false,
        })
    }

    /// The session.
    pub fn session(&self) -> &ClientSession {
        &self.core.session
    }

    /// The session, to call what the client does not wrap; what it queues is written at the
    /// next step.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        self.queued = true;
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
    // Requests and where their outcomes go
    // -----------------------------------------------------------------------------------------

    /// Submits a request without waiting; its outcome — one reply, or an error the session
    /// made up — goes down the chosen path ([`ZkClient`]) under the returned xid. Nothing is
    /// written until the client is driven, so that many submitted requests go out in one write.
    ///
    /// # Errors
    /// [`Error::Proto`] as [`ZkSession::submit`] refuses (too large, too many pending, …).
    pub fn submit(&mut self, body: RequestBody<'_>) -> Result<Xid> {
        self.submit_watched(body, WatcherId::DEFAULT)
    }

    /// As [`submit`](Self::submit), registering the watch the request asks for under
    /// `watcher`.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_watched(&mut self, body: RequestBody<'_>, watcher: WatcherId) -> Result<Xid> {
        let now = self.core.clock.now();
        let xid = self.core.session.submit_watched(now, body, watcher)?;
        self.queued = true;
        Ok(xid)
    }

    /// Adds an authentication (`digest`, `user:password`): sent at once (this never blocks),
    /// and again after every reconnect, before any later request. A refusal ends the session
    /// ([`Event::AuthFailed`], later requests fail with `AuthFailed`); `digest` is never
    /// refused.
    ///
    /// # Errors
    /// [`Error::Proto`] beyond the session's auth capacity or length limits.
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8]) -> Result<()> {
        let now = self.core.clock.now();
        self.core.session.add_auth(now, scheme, auth)?;
        self.flush()
    }

    /// Writes what is queued now, without waiting for anything or reading. What that brings
    /// about (a broken connection fails the requests in flight) goes down the chosen path.
    ///
    /// # Errors
    /// [`Error::Io`] if registering a new socket fails.
    pub fn flush(&mut self) -> Result<()> {
        self.queued = false;
        let now = self.core.clock.now();
        self.core.advance(now, &mut self.outcomes)?;
        Ok(())
    }

    /// From now on, every reply, error and event goes to `handler`, borrowed from the
    /// session's buffer (see [`ZkClient`] for the exceptions); the events kept so far (the
    /// `Connected` of [`connect`](Self::connect), say) are handed to it at once. Replaces the
    /// handler set before.
    pub fn set_handler<F>(&mut self, handler: F)
    where
        F: FnMut(Event<'_>) + Send + 'static,
    {
        let mut handler: Handler = Box::new(handler);
        for event in self.outcomes.events.drain(..) {
            handler(event.as_event());
        }
        self.outcomes.handler = Some(handler);
    }

    /// Removes the handler and returns it: from now on outcomes are kept, owned, for
    /// [`wait`](Self::wait), [`take_completion`](Self::take_completion) and
    /// [`next_event`](Self::next_event).
    pub fn take_handler(&mut self) -> Option<Handler> {
        self.outcomes.handler.take()
    }

    // -----------------------------------------------------------------------------------------
    // The adapter
    // -----------------------------------------------------------------------------------------

    /// Registers the client's socket (now and after every reconnect) with `registry`, the
    /// registry of a `Poll` the caller drives, under `token` (see [`Adapter::register`]). From
    /// then on, drive it with [`process`](Self::process); the blocking operations refuse.
    ///
    /// # Errors
    /// [`Error::Io`] if the registry cannot be cloned or the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.core.register(registry, token)?;
        Ok(())
    }

    /// One step, never blocking: reads everything that came, lets time pass (timeouts, pings,
    /// reconnects), and writes what is queued; every outcome goes down the chosen path
    /// ([`ZkClient`]). With [`Batching`], a step may leave replies to gather instead of reading
    /// ([`poll_timeout`](Self::poll_timeout) then says until when).
    ///
    /// # Errors
    /// [`Error::Io`] if registering the socket fails (a broken connection is not an error: the
    /// session reports it as [`Event::Disconnected`] and reconnects).
    pub fn process(&mut self) -> Result<()> {
        self.queued = false;
        self.core.process(&mut self.outcomes)?;
        Ok(())
    }

    /// When [`process`](Self::process) next has work to do even if the socket does not become
    /// ready (an instant in the past means now): requests the caller queued, a session timer
    /// (connect timeout, ping, read timeout, reconnect), the end of a batching nap; `None` when
    /// only the caller can give it work (a closed or expired session).
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        if self.queued {
            return Some(self.core.clock.base());
        }
        self.core.poll_timeout()
    }

    /// Runs the client on this thread for `duration`, with a `Poll` of its own.
    ///
    /// # Errors
    /// As [`run_until`](Self::run_until).
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the client on this thread, with a `Poll` of its own, until `done` returns `true`
    /// (asked after every step, so it can look at state and outcomes, and submit) or `timeout`
    /// passes; whether `done` said so.
    ///
    /// # Errors
    /// [`Error::Io`] if the client is [`register`](Self::register)ed with a caller's `Poll`
    /// (drive it with [`process`](Self::process) there), or if polling or a registration
    /// fails.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        adapter::run_until(self, timeout, done)
    }
}

impl Adapter for ZkClient {
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        ZkClient::register(self, registry, token)
    }

    fn process(&mut self) -> Result<()> {
        ZkClient::process(self)
    }

    fn poll_timeout(&self) -> Option<StdInstant> {
        ZkClient::poll_timeout(self)
    }
}

impl Standalone for ZkClient {
    fn registration(&mut self) -> &mut Registration {
        &mut self.core.registration
    }
}

/// Where every outcome goes: the caller's handler, or owned copies for the blocking API.
#[derive(Default)]
struct Outcomes {
    handler: Option<Handler>,
    /// Replies kept: every reply without a handler, and the claimed ones.
    completions: HashMap<Xid, Completion>,
    /// Requests a blocking call waits for: their replies are kept even with a handler.
    claimed: HashSet<Xid>,
    /// Requests whose blocking call gave up: their replies are dropped.
    abandoned: HashSet<Xid>,
    /// Events kept (without a handler).
    events: VecDeque<ZkEvent>,
    /// Outcomes delivered so far.
    delivered: u64,
}

impl Outcomes {
    /// Delivers every event the session has.
    fn drain(&mut self, session: &mut ClientSession) {
        while let Some(event) = session.poll_event() {
            self.deliver(event);
        }
    }

    fn deliver(&mut self, event: Event<'_>) {
        self.delivered += 1;
        if let Event::Reply(reply) = event {
            if !self.abandoned.is_empty() && self.abandoned.remove(&reply.xid) {
                return;
            }
            let claimed = !self.claimed.is_empty() && self.claimed.remove(&reply.xid);
            if claimed || self.handler.is_none() {
                self.completions.insert(reply.xid, reply.into());
                return;
            }
        }
        match &mut self.handler {
            Some(handler) => handler(event),
            None => self.events.extend(ZkEvent::from_event(event)),
        }
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Refuses to wait for what will never be kept: with a handler, outcomes go to it.
    fn refuse_if_handler(&self) -> Result<()> {
        if self.handler.is_none() {
            return Ok(());
        }
        Err(Error::Io(std::io::Error::new(
            ErrorKind::Unsupported,
            "a handler is set: outcomes go to it, not to wait or next_event",
        )))
    }
}
