//! A ZooKeeper client on an embedded-nal TCP stack: [`ZkClient`], the sans-IO
//! [`ZkSession`] of `sinew_proto` driven over one socket of any [`TcpClientStack`].
//!
//! The client only moves bytes and time. Everything a ZooKeeper client has to get right — the
//! handshake, xids, pings, the read timeout, watches, reconnect with the session's id and
//! password, expiry — is the session's. The client opens a socket when the session wants a
//! connection (trying the servers in turn), finishes a non-blocking `connect`, reads into the
//! session's receive buffer, keeps the bytes the stack did not take yet (a partial `send`) and
//! closes the socket when the session gives the connection up.
//!
//! * **Caller-owned memory.** The session's transmit and receive buffers and the client's write
//!   buffer live in a [`ZkBuffers`] the caller owns (a `static`, a local of `main`); the
//!   session's tables are sized by const generics. Nothing allocates.
//! * **Non-blocking.** [`process`](ZkClient::process) never waits: `nb::WouldBlock` from the stack
//!   means "try again", and what could not be done is kept for the next call.
//! * **Events are borrowed.** Replies and notifications are handed to a closure as
//!   [`Event`]s whose paths and data borrow the receive buffer, as they come off the wire.
//! * **Loud failures.** When the connection is lost (the peer closes, the stack reports an
//!   error, the read timeout passes) every request in flight gets its [`Event::Reply`] with
//!   [`ErrorCode::ConnectionLoss`](sinew_proto::zk::ErrorCode::ConnectionLoss), an
//!   [`Event::Disconnected`] says why, and the client reconnects to re-attach the session.
//!
//! A stack must report an empty receive queue as `WouldBlock`; a closed connection is an error
//! or `Ok(0)` for a non-empty buffer (as `std::io::Read` says end of stream).
//!
//! ```
//! use std_embedded_nal::Stack;
//! use sinew_proto::time::Instant;
//! use sinew_proto::zk::session::{Config, Event};
//! use sinew_proto::zk::ErrorCode;
//! use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
//!
//! let mut stack = Stack;
//! // Nobody listens on port 1: the connection is refused.
//! let servers = ["127.0.0.1:1".parse().unwrap()];
//! let mut buffers: ZkBuffers = ZkBuffers::new();
//! let mut zk: ZkClient<'_, Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
//! // Requests may be submitted before the session is up: they wait in the transmit buffer.
//! let xid = zk.get_data(Instant::ZERO, "/config", false)?;
//! let mut lost = None;
//! zk.process(&mut stack, Instant::ZERO, |event| {
//!     if let Event::Reply(reply) = event {
//!         lost = Some((reply.xid, reply.result.err()));
//!     }
//! })?;
//! // Never silently dropped: the request failed with ConnectionLoss.
//! assert_eq!(lost, Some((xid, Some(ErrorCode::ConnectionLoss))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::net::SocketAddr;

use embedded_nal::{TcpClientStack, nb};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::{
    Config, Event, MIN_TRANSMIT_LEN, SessionState, WatcherId, Xid, ZkSession,
};
use sinew_proto::zk::{
    Acl, CreateMode, CreateRequest, List, MultiOp, PathVersionRequest, PathWatchRequest,
    RequestBody, SetDataRequest, ZkStr,
};

use crate::{Error, Result};

/// The most reads one [`ZkClient::process`] makes before it writes and returns, so that a
/// stream of replies cannot starve the rest of the application.
pub const READ_BURST: usize = 8;

/// The smallest write buffer a [`ZkBuffers`] may have: every frame the session makes up itself
/// (the handshake, an auth replay, a watch re-registration batch, a ping) must fit it whole.
pub const MIN_WRITE_BUFFER: usize = MIN_TRANSMIT_LEN;

/// The bytes a [`ZkClient`] works in, owned by the caller: `TX` bytes of requests queued in the
/// session, `RX` bytes of receive buffer (the largest reply, its 4-byte length included), and an
/// `OUT`-byte write buffer for bytes handed to the stack but not yet taken by it (at least
/// [`MIN_WRITE_BUFFER`]; checked at compile time).
///
/// ```
/// use sinew_transport_embedded::zk::ZkBuffers;
///
/// // 1 KiB of queued requests, replies up to 2 KiB, the minimal write buffer.
/// let buffers: ZkBuffers<1024, 2048, 2048> = ZkBuffers::new();
/// assert_eq!(core::mem::size_of_val(&buffers), 1024 + 2048 + 2048);
/// ```
#[derive(Clone, Debug)]
pub struct ZkBuffers<const TX: usize = 2048, const RX: usize = 4096, const OUT: usize = 2048> {
    tx: [u8; TX],
    rx: [u8; RX],
    out: [u8; OUT],
}

impl<const TX: usize, const RX: usize, const OUT: usize> ZkBuffers<TX, RX, OUT> {
    /// Zeroed buffers (usable in a `static`).
    pub const fn new() -> Self {
        const {
            assert!(
                OUT >= MIN_WRITE_BUFFER,
                "the write buffer must hold MIN_WRITE_BUFFER bytes"
            )
        };
        ZkBuffers {
            tx: [0; TX],
            rx: [0; RX],
            out: [0; OUT],
        }
    }
}

impl<const TX: usize, const RX: usize, const OUT: usize> Default for ZkBuffers<TX, RX, OUT> {
    fn default() -> Self {
        ZkBuffers::new()
    }
}

/// What the socket side of a [`ZkClient`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct IoStats {
    /// Sockets opened and connections started.
    pub connects: u64,
    /// Connections that the stack refused or failed to make.
    pub connect_failures: u64,
    /// Established connections that broke (the peer closed, a stack error, or the session gave
    /// them up).
    pub connections_lost: u64,
    /// `send` calls the stack took bytes from.
    pub sends: u64,
    /// `send` calls that took fewer bytes than offered.
    pub partial_sends: u64,
    /// `receive` calls that returned bytes.
    pub receives: u64,
    /// Bytes the stack took.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

/// A ZooKeeper client over one TCP socket of an embedded-nal [`TcpClientStack`].
///
/// See the [module documentation](self). The stack is passed to every call rather than owned,
/// so that one stack can serve this client and others; always pass the stack the client's
/// socket came from. `PENDING` bounds the requests waiting for a reply, `WATCHES` the watch
/// registrations and `WATCH_BYTES` the bytes of their paths (the session's own limits).
///
/// Call [`process`](Self::process) whenever the network may have something and at the latest
/// at the instant it returns; a call too many is harmless.
///
/// ```
/// use std_embedded_nal::Stack;
/// use sinew_proto::zk::session::{Config, SessionState};
/// use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
///
/// let servers = ["127.0.0.1:2181".parse().unwrap(), "127.0.0.1:2182".parse().unwrap()];
/// let mut buffers: ZkBuffers<1024, 2048, 2048> = ZkBuffers::new();
/// // At most 8 requests in flight, 4 watches on paths of 256 bytes in all.
/// let zk: ZkClient<'_, Stack, 8, 4, 256> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
/// assert_eq!(zk.state(), SessionState::Disconnected);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZkClient<
    'b,
    S: TcpClientStack,
    const PENDING: usize = 16,
    const WATCHES: usize = 16,
    const WATCH_BYTES: usize = 1024,
> {
    session: ZkSession<&'b mut [u8], PENDING, WATCHES, WATCH_BYTES>,
    out: &'b mut [u8],
    /// Bytes of `out[out_start..out_end]` the session handed out and the stack has not taken.
    out_start: usize,
    out_end: usize,
    servers: &'b [SocketAddr],
    next_server: usize,
    socket: Option<S::TcpSocket>,
    /// The server of the open socket.
    current: Option<SocketAddr>,
    /// `connect` said `WouldBlock`: ask again.
    connecting: bool,
    last_error: Option<S::Error>,
    io: IoStats,
}

impl<'b, S, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkClient<'b, S, PENDING, WATCHES, WATCH_BYTES>
where
    S: TcpClientStack,
{
    /// A client of `servers` (tried in turn, from the first) working in `buffers`, with the
    /// session settings of `config`. Nothing happens on the network until
    /// [`process`](Self::process).
    ///
    /// ```
    /// use sinew_proto::zk::session::Config;
    /// use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use core::time::Duration;
    ///
    /// let servers = ["10.0.2.100:2181".parse().unwrap()];
    /// let mut buffers: ZkBuffers = ZkBuffers::new();
    /// let config = Config::new().with_session_timeout(Duration::from_secs(6));
    /// let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(config, &servers, &mut buffers)?;
    /// assert_eq!(zk.servers().len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Proto`] with [`BadValue`](sinew_proto::Error::BadValue) when `servers` is empty.
    pub fn new<const TX: usize, const RX: usize, const OUT: usize>(
        config: Config,
        servers: &'b [SocketAddr],
        buffers: &'b mut ZkBuffers<TX, RX, OUT>,
    ) -> Result<Self, S::Error> {
        if servers.is_empty() {
            return Err(Error::Proto(sinew_proto::Error::BadValue));
        }
        let ZkBuffers { tx, rx, out } = buffers;
        Ok(ZkClient {
            session: ZkSession::new(config, &mut tx[..], &mut rx[..]),
            out: &mut out[..],
            out_start: 0,
            out_end: 0,
            servers,
            next_server: 0,
            socket: None,
            current: None,
            connecting: false,
            last_error: None,
            io: IoStats::default(),
        })
    }

    /// Does all the work due at `now` without blocking, and hands every event to `on_event`:
    /// lets time pass in the session (connect and read timeouts, pings), closes a socket the
    /// session gave up and opens one when it wants a connection, advances a pending `connect`,
    /// reads up to [`READ_BURST`] times into the session, and writes what the session has to
    /// send (keeping what the stack did not take for the next call).
    ///
    /// Events borrow the session's receive buffer: copy out what must outlive the call.
    /// Submit new requests after `process` returns (the closure cannot borrow the client).
    ///
    /// Returns when to call again at the latest: `Some(now)` when work is left (a `connect` or
    /// a `send` that would block, more bytes than one burst), the session's next timer
    /// otherwise, `None` once the session is over (closed, expired, refused).
    ///
    /// ```
    /// use sinew_proto::time::Instant;
    /// use sinew_proto::zk::session::{Config, Event, SessionState};
    /// use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use std_embedded_nal::Stack;
    ///
    /// let mut stack = Stack;
    /// let servers = ["127.0.0.1:1".parse().unwrap()];
    /// let mut buffers: ZkBuffers = ZkBuffers::new();
    /// let mut zk: ZkClient<'_, Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// let mut disconnects = 0;
    /// let next = zk.process(&mut stack, Instant::ZERO, |event| {
    ///     if let Event::Disconnected { .. } = event {
    ///         disconnects += 1;
    ///     }
    /// })?;
    /// // Refused: the session waits a little (its backoff) before the next attempt.
    /// assert_eq!((disconnects, zk.state()), (1, SessionState::Disconnected));
    /// assert!(next.is_some_and(|t| t > Instant::ZERO));
    /// assert!(zk.take_network_error().is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Network`] when the stack cannot open a socket (the session counts it as a
    /// failed connection attempt and backs off; its events come with the next call). Errors of
    /// an open connection are not returned: they end the connection, which the session reports
    /// as [`Event::Disconnected`] (the stack's error is kept for
    /// [`take_network_error`](Self::take_network_error)).
    pub fn process<F>(
        &mut self,
        stack: &mut S,
        now: Instant,
        mut on_event: F,
    ) -> Result<Option<Instant>, S::Error>
    where
        F: FnMut(Event<'_>),
    {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        drain(&mut self.session, &mut on_event);
        self.sync_socket(stack, now)?;
        let drained = self.receive(stack, now, &mut on_event);
        self.flush(stack, now);
        drain(&mut self.session, &mut on_event);
        // A failure while writing closes the socket; open the next one at once.
        self.sync_socket(stack, now)?;
        self.flush(stack, now);
        drain(&mut self.session, &mut on_event);
        if !self.session.state().has_connection() && self.socket.is_some() {
            self.close_socket(stack);
        }
        let busy = self.connecting
            || (self.socket.is_some() && (self.out_start < self.out_end || !drained))
            || (self.socket.is_some() && self.session.has_transmit());
        if busy {
            return Ok(Some(now));
        }
        Ok(self.session.poll_timeout())
    }

    /// Closes a socket the session no longer wants, opens one when it wants a connection, and
    /// advances a pending `connect`.
    fn sync_socket(&mut self, stack: &mut S, now: Instant) -> Result<(), S::Error> {
        if !self.session.state().has_connection() && self.socket.is_some() {
            self.close_socket(stack);
        }
        if self.socket.is_none() && self.session.wants_connect(now) {
            // `new` refused an empty list.
            let remote = self.servers[self.next_server % self.servers.len()];
            self.next_server = (self.next_server + 1) % self.servers.len();
            self.session.handle_connecting(now);
            self.io.connects += 1;
            match stack.socket() {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.current = Some(remote);
                    self.connecting = true;
                }
                Err(error) => {
                    self.io.connect_failures += 1;
                    self.session.handle_disconnected(now);
                    return Err(Error::Network(error));
                }
            }
        }
        if self.connecting {
            let (Some(socket), Some(remote)) = (self.socket.as_mut(), self.current) else {
                self.connecting = false;
                return Ok(());
            };
            match stack.connect(socket, remote) {
                Ok(()) => {
                    self.connecting = false;
                    self.session.handle_connected(now);
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(error)) => {
                    self.last_error = Some(error);
                    self.io.connect_failures += 1;
                    self.session.handle_disconnected(now);
                    self.close_socket(stack);
                }
            }
        }
        Ok(())
    }

    /// Reads until the stack has nothing (`true`) or the burst is used up (`false`), handing
    /// events out as frames complete.
    fn receive<F: FnMut(Event<'_>)>(
        &mut self,
        stack: &mut S,
        now: Instant,
        on_event: &mut F,
    ) -> bool {
        for _ in 0..READ_BURST {
            if self.connecting {
                return true;
            }
            let Some(socket) = self.socket.as_mut() else {
                return true;
            };
            let buf = self.session.receive_buffer();
            if buf.is_empty() {
                // Full of whole frames: hand them out to make room (a frame larger than the
                // buffer makes the session give the connection up instead).
                drain(&mut self.session, on_event);
                if !self.session.state().has_connection() {
                    self.close_socket(stack);
                    return true;
                }
                if self.session.receive_buffer().is_empty() {
                    return true;
                }
                continue;
            }
            let room = buf.len();
            match stack.receive(socket, buf) {
                Ok(0) => {
                    // End of stream: the server closed the connection.
                    self.connection_lost(stack, now);
                    drain(&mut self.session, on_event);
                    return true;
                }
                Ok(n) => {
                    let n = n.min(room);
                    self.io.receives += 1;
                    self.io.bytes_received += n as u64;
                    self.session.handle_received(now, n);
                    drain(&mut self.session, on_event);
                    if !self.session.state().has_connection() {
                        self.close_socket(stack);
                        return true;
                    }
                }
                Err(nb::Error::WouldBlock) => return true,
                Err(nb::Error::Other(error)) => {
                    self.last_error = Some(error);
                    self.connection_lost(stack, now);
                    drain(&mut self.session, on_event);
                    return true;
                }
            }
        }
        false
    }

    /// Writes what the session has to send until the stack would block; bytes the stack did
    /// not take stay in the write buffer for the next call.
    fn flush(&mut self, stack: &mut S, now: Instant) {
        loop {
            if self.connecting {
                return;
            }
            let Some(socket) = self.socket.as_mut() else {
                return;
            };
            if self.out_start == self.out_end {
                self.out_start = 0;
                self.out_end = self.session.poll_transmit_all(now, self.out);
                if self.out_end == 0 {
                    return;
                }
            }
            let pending = &self.out[self.out_start..self.out_end];
            match stack.send(socket, pending) {
                // Nothing taken: as good as WouldBlock.
                Ok(0) => return,
                Ok(n) => {
                    let n = n.min(pending.len());
                    self.io.sends += 1;
                    self.io.bytes_sent += n as u64;
                    if n < pending.len() {
                        self.io.partial_sends += 1;
                    }
                    self.out_start += n;
                }
                Err(nb::Error::WouldBlock) => return,
                Err(nb::Error::Other(error)) => {
                    self.last_error = Some(error);
                    self.connection_lost(stack, now);
                    return;
                }
            }
        }
    }

    /// The connection broke under the session: every request in flight fails, the socket goes.
    fn connection_lost(&mut self, stack: &mut S, now: Instant) {
        if self.session.state().has_connection() {
            self.io.connections_lost += 1;
        }
        self.session.handle_disconnected(now);
        self.close_socket(stack);
    }

    fn close_socket(&mut self, stack: &mut S) {
        if let Some(socket) = self.socket.take() {
            // The socket is gone either way; a stack that cannot close it has nothing to say
            // that the session could act on.
            let _ = stack.close(socket);
        }
        self.current = None;
        self.connecting = false;
        self.out_start = 0;
        self.out_end = 0;
    }

    /// Drops the current connection as if the network had failed: every request in flight
    /// fails with ConnectionLoss and the session reconnects (re-attaching itself) at the next
    /// [`process`](Self::process). For a link known to be dead before the read timeout says
    /// so (a cable unplugged, an address change), and for tests.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::{Config, SessionState};
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let mut stack = std_embedded_nal::Stack;
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.abort_connection(&mut stack, Instant::ZERO);
    /// assert_eq!(zk.state(), SessionState::Disconnected);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn abort_connection(&mut self, stack: &mut S, now: Instant) {
        self.connection_lost(stack, now);
    }

    // -----------------------------------------------------------------------------------------
    // Requests
    // -----------------------------------------------------------------------------------------

    /// Submits any request; its outcome comes back from [`process`](Self::process) as exactly
    /// one [`Event::Reply`] with the returned xid. See [`ZkSession::submit`].
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use sinew_proto::zk::{PathRequest, RequestBody, ZkStr};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// let sync = RequestBody::Sync(PathRequest { path: ZkStr::new("/") });
    /// let xid = zk.submit(Instant::ZERO, sync)?;
    /// assert_eq!(xid, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Proto`]: [`Capacity`](sinew_proto::Error::Capacity) when `PENDING` requests
    /// wait or the transmit buffer is full now, [`TooLarge`](sinew_proto::Error::TooLarge) or
    /// [`BufferTooSmall`](sinew_proto::Error::BufferTooSmall) for a request that can never be
    /// sent, [`UnexpectedOp`](sinew_proto::Error::UnexpectedOp) for the ops the session sends
    /// itself.
    pub fn submit(&mut self, now: Instant, body: RequestBody<'_>) -> Result<Xid, S::Error> {
        Ok(self.session.submit(now, body)?)
    }

    /// As [`submit`](Self::submit), registering the watch the request leaves (if any) for
    /// `watcher`: the notification that fires it carries that id.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use sinew_proto::zk::session::WatcherId;
    /// use sinew_proto::zk::{PathWatchRequest, RequestBody, ZkStr};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// let exists = RequestBody::Exists(PathWatchRequest { path: ZkStr::new("/leader"), watch: true });
    /// zk.submit_watched(Instant::ZERO, exists, WatcherId(7))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_watched(
        &mut self,
        now: Instant,
        body: RequestBody<'_>,
        watcher: WatcherId,
    ) -> Result<Xid, S::Error> {
        Ok(self.session.submit_watched(now, body, watcher)?)
    }

    /// Creates a node (`create`); the reply's body is
    /// [`ReplyBody::Path`](sinew_proto::zk::ReplyBody::Path), the name the server gave it
    /// (with a sequence number for the sequential modes).
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use sinew_proto::zk::{Acl, CreateMode};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.create(Instant::ZERO, "/sinew/device-", b"10.0.2.15", Acl::OPEN_ACL_UNSAFE, CreateMode::EphemeralSequential)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn create(
        &mut self,
        now: Instant,
        path: &str,
        data: &[u8],
        acl: &[Acl<'_>],
        mode: CreateMode,
    ) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::Create(CreateRequest {
                path: ZkStr::new(path),
                data: Some(data),
                acl: List::from_slice(acl),
                mode,
            }),
        )
    }

    /// Deletes a node if its version is `version` (-1: any); the reply has no body.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.delete(Instant::ZERO, "/sinew/old", -1)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn delete(&mut self, now: Instant, path: &str, version: i32) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::Delete(PathVersionRequest {
                path: ZkStr::new(path),
                version,
            }),
        )
    }

    /// A node's `Stat` ([`ReplyBody::Stat`](sinew_proto::zk::ReplyBody::Stat)), or the error
    /// NoNode; with `watch`, a one-shot watch fires when it is created, changed or deleted.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.exists(Instant::ZERO, "/sinew/leader", true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn exists(&mut self, now: Instant, path: &str, watch: bool) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::Exists(PathWatchRequest {
                path: ZkStr::new(path),
                watch,
            }),
        )
    }

    /// A node's data and `Stat` ([`ReplyBody::Data`](sinew_proto::zk::ReplyBody::Data)); with
    /// `watch`, a one-shot watch fires when it changes or is deleted.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.get_data(Instant::ZERO, "/sinew/config", true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn get_data(&mut self, now: Instant, path: &str, watch: bool) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::GetData(PathWatchRequest {
                path: ZkStr::new(path),
                watch,
            }),
        )
    }

    /// Sets a node's data if its version is `version` (-1: any); the reply is its new `Stat`
    /// ([`ReplyBody::Stat`](sinew_proto::zk::ReplyBody::Stat)).
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.set_data(Instant::ZERO, "/sinew/config", b"interval=5", 3)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn set_data(
        &mut self,
        now: Instant,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::SetData(SetDataRequest {
                path: ZkStr::new(path),
                data: Some(data),
                version,
            }),
        )
    }

    /// A node's children's names
    /// ([`ReplyBody::Children`](sinew_proto::zk::ReplyBody::Children)); with `watch`, a
    /// one-shot watch fires when a child comes or goes or the node is deleted.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.get_children(Instant::ZERO, "/sinew", false)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn get_children(&mut self, now: Instant, path: &str, watch: bool) -> Result<Xid, S::Error> {
        self.submit(
            now,
            RequestBody::GetChildren(PathWatchRequest {
                path: ZkStr::new(path),
                watch,
            }),
        )
    }

    /// An atomic transaction of writes (create, delete, setData, check): all commit or none
    /// does. The reply is [`ReplyBody::Multi`](sinew_proto::zk::ReplyBody::Multi), one result
    /// per op (the failing op's error and -2 RuntimeInconsistency for the others when aborted).
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// use sinew_proto::zk::{MultiOp, PathVersionRequest, SetDataRequest, ZkStr};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// let ops = [
    ///     MultiOp::Check(PathVersionRequest { path: ZkStr::new("/sinew/lock"), version: 2 }),
    ///     MultiOp::SetData(SetDataRequest { path: ZkStr::new("/sinew/config"), data: Some(b"x"), version: -1 }),
    /// ];
    /// zk.multi(Instant::ZERO, &ops)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit); [`UnexpectedOp`](sinew_proto::Error::UnexpectedOp) for a
    /// read among the ops.
    pub fn multi(&mut self, now: Instant, ops: &[MultiOp<'_>]) -> Result<Xid, S::Error> {
        self.submit(now, RequestBody::Multi(List::from_slice(ops)))
    }

    /// Closes the session: closeSession goes out after everything queued; once the server
    /// answers, [`Event::Closed`] follows its reply, the session is
    /// [`SessionState::Closed`] and the socket is closed. The server deletes the session's
    /// ephemeral nodes. Keep calling [`process`](Self::process) until
    /// [`state`](Self::state) is terminal.
    ///
    /// ```
    /// # use sinew_proto::time::Instant;
    /// # use sinew_proto::zk::session::{Config, SessionState};
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.close(Instant::ZERO)?;
    /// // No server ever knew this session: it is closed at once.
    /// assert_eq!(zk.state(), SessionState::Closed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn close(&mut self, now: Instant) -> Result<Xid, S::Error> {
        Ok(self.session.close(now)?)
    }

    /// Closes the socket, if any, without telling the server (the session stays on the server
    /// until it expires) and gives the session back.
    ///
    /// ```
    /// # use sinew_proto::zk::session::{Config, SessionState};
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let mut stack = std_embedded_nal::Stack;
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// let session = zk.release(&mut stack);
    /// assert_eq!(session.session_id(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(
        mut self,
        stack: &mut S,
    ) -> ZkSession<&'b mut [u8], PENDING, WATCHES, WATCH_BYTES> {
        self.close_socket(stack);
        self.session
    }
}

impl<'b, S, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkClient<'b, S, PENDING, WATCHES, WATCH_BYTES>
where
    S: TcpClientStack,
{
    /// The session: its [`state`](ZkSession::state), [`session_id`](ZkSession::session_id),
    /// [`stats`](ZkSession::stats), [`watches`](ZkSession::watches).
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert_eq!(zk.session().stats().submitted, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session(&self) -> &ZkSession<&'b mut [u8], PENDING, WATCHES, WATCH_BYTES> {
        &self.session
    }

    /// The session, for what the client does not wrap: [`add_auth`](ZkSession::add_auth),
    /// [`set_chroot`](ZkSession::set_chroot), other requests. Leave the connection events
    /// (`handle_*`, `poll_transmit`, receive buffer) to the client.
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// zk.session_mut().set_chroot("/devices")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn session_mut(&mut self) -> &mut ZkSession<&'b mut [u8], PENDING, WATCHES, WATCH_BYTES> {
        &mut self.session
    }

    /// Where the session stands.
    ///
    /// ```
    /// # use sinew_proto::zk::session::{Config, SessionState};
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert!(!zk.state().is_terminal());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn state(&self) -> SessionState {
        self.session.state()
    }

    /// The servers, in the order they are tried.
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert_eq!(zk.servers()[0].port(), 2181);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn servers(&self) -> &[SocketAddr] {
        self.servers
    }

    /// The server of the open (or opening) socket.
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert_eq!(zk.current_server(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn current_server(&self) -> Option<SocketAddr> {
        self.current
    }

    /// The counters of the socket side (the session keeps its own:
    /// [`ZkSession::stats`]).
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert_eq!(zk.io_stats().connects, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io_stats(&self) -> &IoStats {
        &self.io
    }

    /// The stack's last error on a connection (a refused `connect`, a failed `send` or
    /// `receive`), taken: why the last [`Event::Disconnected`] with
    /// [`DisconnectReason::Transport`](sinew_proto::zk::session::DisconnectReason::Transport)
    /// happened, for the log.
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let mut zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert!(zk.take_network_error().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn take_network_error(&mut self) -> Option<S::Error> {
        self.last_error.take()
    }

    /// Bytes handed out by the session that the stack has not taken yet.
    ///
    /// ```
    /// # use sinew_proto::zk::session::Config;
    /// # use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
    /// # let servers = ["127.0.0.1:2181".parse().unwrap()];
    /// # let mut buffers: ZkBuffers = ZkBuffers::new();
    /// # let zk: ZkClient<'_, std_embedded_nal::Stack> = ZkClient::new(Config::default(), &servers, &mut buffers)?;
    /// assert_eq!(zk.unsent(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unsent(&self) -> usize {
        self.out_end - self.out_start
    }
}

impl<S: TcpClientStack, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    fmt::Debug for ZkClient<'_, S, PENDING, WATCHES, WATCH_BYTES>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZkClient")
            .field("session", &self.session)
            .field("current", &self.current)
            .field("connecting", &self.connecting)
            .field("unsent", &(self.out_end - self.out_start))
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

fn drain<B, F, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>(
    session: &mut ZkSession<B, PENDING, WATCHES, WATCH_BYTES>,
    on_event: &mut F,
) where
    B: AsRef<[u8]> + AsMut<[u8]>,
    F: FnMut(Event<'_>),
{
    while let Some(event) = session.poll_event() {
        on_event(event);
    }
}
