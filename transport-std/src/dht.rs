//! The DHT over mio UDP sockets: [`UdpDhtNode`], a ring member, and [`UdpDhtClient`], a client
//! that reads, writes and locks keys through any member.
//!
//! Every DHT message of these sizes fits one datagram of at most
//! [`MAX_DATAGRAM_LEN`] bytes (checked at compile time), so
//! both travel on UDP; the cores ([`DhtNode`], [`DhtClient`]) do the retrying.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use std::io::{Read, Write};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Token};
use sinew_proto::dht::{
    Body, ClientConfig, ClientStats, Config, DhtClient, DhtNode, Disposition, Event,
    LeafSet, MAX_DATAGRAM_LEN, MAX_MESSAGE_LEN, Message, NodeAddr, NodeId, RequestError, RequestId,
    Stats, Transmit,
};
use sinew_proto::time::Instant;

use crate::{Clock, Error, NonceRng, Result, SocketStats};

/// How many datagrams one `process` call reads at most before it lets time pass.
const RECV_BUDGET: usize = 1024;
/// Outcomes buffered for the application before the newest are dropped (counted).
const EVENT_BUFFER: usize = 4096;

/// What the UDP driver needs of a protocol core.
trait Core<const VALUE: usize> {
    fn datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition;
    fn timeout(&mut self, now: Instant);
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;
    fn next_timeout(&self) -> Option<Instant>;
    fn event(&mut self) -> Option<Event<VALUE>>;
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    Core<VALUE> for DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING>
{
    fn datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition {
        self.handle_datagram(now, from, bytes)
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.poll_transmit(now, buf)
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn event(&mut self) -> Option<Event<VALUE>> {
        self.poll_event()
    }
}

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> Core<VALUE>
    for DhtClient<NonceRng, PENDING, KEY, VALUE>
{
    fn datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition {
        self.handle_datagram(now, from, bytes)
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.poll_transmit(now, buf)
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn event(&mut self) -> Option<Event<VALUE>> {
        self.poll_event()
    }
}

/// A core on a non-blocking UDP socket: reads every waiting datagram into it, sends everything
/// it writes, lets time pass in it, and buffers its events.
struct Driver<C> {
    core: Box<C>,
    socket: Option<UdpSocket>,
    clock: Clock,
    io: SocketStats,
    more_to_read: bool,
    /// Own poll, for the blocking helpers; `None` until first needed.
    poll: Option<(Poll, Events)>,
    /// Registered with a caller's `Poll`: no own poll then.
    shared: bool,
    recv_buf: Box<[u8; MAX_DATAGRAM_LEN + 1]>,
    send_buf: Box<[u8; MAX_DATAGRAM_LEN]>,
    /// The TCP side, if enabled ([`UdpDhtNode::listen_tcp`]).
    tcp: Option<Tcp>,
}

impl<C> Driver<C> {
    fn new(core: Box<C>, socket: UdpSocket, clock: Clock) -> Self {
        Driver {
            core,
            socket: Some(socket),
            clock,
            io: SocketStats::default(),
            more_to_read: false,
            poll: None,
            shared: false,
            recv_buf: Box::new([0; MAX_DATAGRAM_LEN + 1]),
            send_buf: Box::new([0; MAX_DATAGRAM_LEN]),
            tcp: None,
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        if let Some((poll, _)) = self.poll.take()
            && let Some(socket) = self.socket.as_mut()
        {
            poll.registry().deregister(socket)?;
        }
        if let Some(socket) = self.socket.as_mut() {
            registry.register(socket, token, Interest::READABLE)?;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.register(registry, Token(token.0 + 1))?;
        }
        self.shared = true;
        Ok(())
    }

    fn own_poll(&mut self) -> Result<()> {
        if self.shared {
            return Err(Error::Io(io::Error::other(
                "registered with a shared Poll: drive it with process()",
            )));
        }
        if self.poll.is_none() {
            let poll = Poll::new()?;
            if let Some(socket) = self.socket.as_mut() {
                poll.registry()
                    .register(socket, Token(0), Interest::READABLE)?;
            }
            if let Some(tcp) = self.tcp.as_mut() {
                tcp.register(poll.registry(), Token(1))?;
            }
            self.poll = Some((poll, Events::with_capacity(16)));
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.own_poll()?;
        if let Some((poll, events)) = self.poll.as_mut() {
            match poll.poll(events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn poll_timeout<const VALUE: usize>(&self) -> Option<StdInstant>
    where
        C: Core<VALUE>,
    {
        self.socket.as_ref()?;
        if self.more_to_read {
            return Some(self.clock.base());
        }
        self.clock.to_std(self.core.next_timeout()?)
    }

    fn process<const VALUE: usize>(&mut self, events: &mut VecDeque<Event<VALUE>>) -> Result<()>
    where
        C: Core<VALUE>,
    {
        let Some(socket) = self.socket.as_ref() else {
            return Ok(());
        };
        self.more_to_read = false;
        let mut budget = RECV_BUDGET;
        loop {
            if budget == 0 {
                self.more_to_read = true;
                break;
            }
            match socket.recv_from(&mut self.recv_buf[..]) {
                Ok((len, from)) => {
                    budget -= 1;
                    self.io.datagrams_received += 1;
                    self.io.bytes_received += len as u64;
                    if len > MAX_DATAGRAM_LEN {
                        // Refused by the core as too large, and counted there too.
                        self.io.oversized += 1;
                    }
                    let now = self.clock.now();
                    let _ = self.core.datagram(now, from, &self.recv_buf[..len]);
                    flush(
                        socket,
                        &mut *self.core,
                        now,
                        &mut self.send_buf,
                        &mut self.io,
                        self.tcp.as_mut(),
                    );
                    collect(&mut *self.core, events, &mut self.io);
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => break,
                    ErrorKind::Interrupted => {}
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                        budget -= 1;
                        self.io.recv_errors += 1;
                    }
                    _ => return Err(e.into()),
                },
            }
        }
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.accept()?;
            for (peer, frame) in tcp.read_frames() {
                let now = self.clock.now();
                // TCP carries client requests; their answers go back on the connection.
                let mut request = vec![0; frame.len()];
                let Some(len) = as_client_request(&frame, peer, &mut request) else {
                    tcp.stats.not_requests += 1;
                    continue;
                };
                let _ = self.core.datagram(now, peer, &request[..len]);
                flush(
                    socket,
                    &mut *self.core,
                    now,
                    &mut self.send_buf,
                    &mut self.io,
                    Some(&mut *tcp),
                );
                collect(&mut *self.core, events, &mut self.io);
            }
        }
        let now = self.clock.now();
        self.core.timeout(now);
        flush(
            socket,
            &mut *self.core,
            now,
            &mut self.send_buf,
            &mut self.io,
            self.tcp.as_mut(),
        );
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.write_all();
        }
        collect(&mut *self.core, events, &mut self.io);
        Ok(())
    }

    /// Sends what the core has to send now (after a request was submitted).
    fn send_now<const VALUE: usize>(&mut self) -> Result<()>
    where
        C: Core<VALUE>,
    {
        let Some(socket) = self.socket.as_ref() else {
            return Err(Error::stopped());
        };
        let now = self.clock.now();
        flush(
            socket,
            &mut *self.core,
            now,
            &mut self.send_buf,
            &mut self.io,
            self.tcp.as_mut(),
        );
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.write_all();
        }
        Ok(())
    }

    /// Runs until `done` says so (asked after every step) or `timeout` passes; whether `done`
    /// said so.
    fn run_until<const VALUE: usize>(
        &mut self,
        events: &mut VecDeque<Event<VALUE>>,
        timeout: Duration,
        mut done: impl FnMut(&mut C, &mut VecDeque<Event<VALUE>>) -> bool,
    ) -> Result<bool>
    where
        C: Core<VALUE>,
    {
        let deadline = StdInstant::now().checked_add(timeout);
        loop {
            self.process(events)?;
            if done(&mut self.core, events) {
                return Ok(true);
            }
            let now = StdInstant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let wake = match (self.poll_timeout(), deadline) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            self.wait(wake.map(|w| w.saturating_duration_since(now)))?;
        }
    }
}


/// Sends everything the core has to send; a datagram the socket refuses is dropped and counted
/// (the core's retries cover the loss).
fn flush<const VALUE: usize, C: Core<VALUE> + ?Sized>(
    socket: &UdpSocket,
    core: &mut C,
    now: Instant,
    buf: &mut [u8; MAX_DATAGRAM_LEN],
    io: &mut SocketStats,
    mut tcp: Option<&mut Tcp>,
) {
    while let Some(t) = core.transmit(now, buf) {
        let Some(datagram) = buf.get(..t.len) else {
            io.send_errors += 1;
            continue;
        };
        // To a peer connected over TCP: a frame on its connection.
        if let Some(tcp) = tcp.as_deref_mut()
            && tcp.queue(t.destination, datagram)
        {
            continue;
        }
        loop {
            match socket.send_to(datagram, t.destination) {
                Ok(sent) => {
                    io.datagrams_sent += 1;
                    io.bytes_sent += sent as u64;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => io.send_would_block += 1,
                Err(_) => io.send_errors += 1,
            }
            break;
        }
    }
}

fn collect<const VALUE: usize, C: Core<VALUE> + ?Sized>(
    core: &mut C,
    events: &mut VecDeque<Event<VALUE>>,
    io: &mut SocketStats,
) {
    while let Some(event) = core.event() {
        if events.len() < EVENT_BUFFER {
            events.push_back(event);
        } else {
            io.events_dropped += 1;
        }
    }
}

/// Most TCP connections a [`UdpDhtNode`] keeps open; one more is closed as soon as accepted.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// A connection whose unsent frames exceed this many bytes is closed (a peer that does not
/// read what it asked for).
const TCP_WRITE_LIMIT: usize = 256 * 1024;

/// What the TCP side of a [`UdpDhtNode`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at once because [`MAX_TCP_CONNECTIONS`] were open.
    pub refused: u64,
    /// Connections closed: by the peer, on an error, for a bad frame or an overrun.
    pub closed: u64,
    /// Frames received and handed to the core.
    pub frames_received: u64,
    /// Frames queued for sending.
    pub frames_sent: u64,
    /// Connections closed for a frame length over [`MAX_MESSAGE_LEN`].
    pub bad_frames: u64,
    /// Connections closed because the peer did not read what it was sent.
    pub overrun: u64,
    /// Frames dropped because they were no get, put, lock or unlock request (or did not parse):
    /// ring members talk UDP.
    pub not_requests: u64,
}

/// A client request that came on a TCP connection from `peer`, rewritten with `peer` as its
/// sender address (a TCP client need not know its own address: answers go back on the
/// connection) into `out`; `None` for anything but a well-formed get, put, lock or unlock.
fn as_client_request(frame: &[u8], peer: SocketAddr, out: &mut [u8]) -> Option<usize> {
    let mut message = Message::parse(frame).ok()?;
    if !matches!(
        message.body,
        Body::Get { .. } | Body::Put { .. } | Body::Lock { .. } | Body::Unlock { .. }
    ) {
        return None;
    }
    message.header.sender.addr = peer;
    message.encode(out).ok()
}

/// One accepted connection: frames in (a 4-byte big-endian length, then one message), frames
/// out.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    open: bool,
}

/// The TCP side of a node: a peer that sends its messages as frames on a connection gets
/// every message for its address as a frame on that connection.
struct Tcp {
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    /// Where the listener is registered (accepted connections go there too), with its token;
    /// connection `i` has the token after it plus `1 + i`.
    registry: Option<(Registry, Token)>,
    stats: TcpStats,
}

impl Tcp {
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        if let Some((old, _)) = self.registry.take() {
            old.deregister(&mut self.listener)?;
            for conn in self.conns.iter_mut().flatten() {
                old.deregister(&mut conn.stream)?;
            }
        }
        registry.register(&mut self.listener, token, Interest::READABLE)?;
        for (i, slot) in self.conns.iter_mut().enumerate() {
            if let Some(conn) = slot {
                registry.register(
                    &mut conn.stream,
                    Token(token.0 + 1 + i),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
            }
        }
        self.registry = Some((registry.try_clone()?, token));
        Ok(())
    }

    /// Queues `message` as a frame to `to` if a connection from `to` is open.
    fn queue(&mut self, to: SocketAddr, message: &[u8]) -> bool {
        let Some(conn) = self
            .conns
            .iter_mut()
            .flatten()
            .find(|c| c.open && c.peer == to)
        else {
            return false;
        };
        // A node's messages are far below u32::MAX bytes.
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        conn.outbuf.extend_from_slice(&len.to_be_bytes());
        conn.outbuf.extend_from_slice(message);
        self.stats.frames_sent += 1;
        if conn.outbuf.len() > TCP_WRITE_LIMIT {
            conn.open = false;
            self.stats.overrun += 1;
        }
        true
    }

    fn accept(&mut self) -> Result<()> {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The connection went away before it was accepted; the listener is fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.stats.accepted += 1;
            let slot = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None if self.conns.len() < MAX_TCP_CONNECTIONS => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
                None => {
                    self.stats.refused += 1;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if let Some((registry, token)) = &self.registry {
                registry.register(
                    &mut stream,
                    Token(token.0 + 1 + slot),
                    Interest::READABLE | Interest::WRITABLE,
                )?;
            }
            self.conns[slot] = Some(Conn {
                stream,
                peer,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                open: true,
            });
        }
    }

    /// Reads every open connection and takes out its whole frames, in order.
    fn read_frames(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut chunk = [0u8; 4096];
        for conn in self.conns.iter_mut().flatten().filter(|c| c.open) {
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => {
                        conn.open = false;
                        break;
                    }
                    Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        conn.open = false;
                        break;
                    }
                }
            }
            let mut at = 0;
            while let Some(head) = conn.inbuf.get(at..at + 4) {
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len > MAX_MESSAGE_LEN {
                    self.stats.bad_frames += 1;
                    conn.open = false;
                    break;
                }
                let Some(frame) = conn.inbuf.get(at + 4..at + 4 + len) else {
                    break;
                };
                frames.push((conn.peer, frame.to_vec()));
                at += 4 + len;
            }
            conn.inbuf.drain(..at);
        }
        self.stats.frames_received += frames.len() as u64;
        frames
    }

    /// Writes what is queued on every connection, and drops the closed ones.
    fn write_all(&mut self) {
        for slot in &mut self.conns {
            let Some(conn) = slot else { continue };
            while conn.open && !conn.outbuf.is_empty() {
                match conn.stream.write(&conn.outbuf) {
                    Ok(0) => conn.open = false,
                    Ok(n) => {
                        conn.outbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => conn.open = false,
                }
            }
            if !conn.open {
                if let Some((registry, _)) = &self.registry {
                    let _ = registry.deregister(&mut conn.stream);
                }
                self.stats.closed += 1;
                *slot = None;
            }
        }
    }
}

/// The address peers are told: the socket's, which must name a specific IP.
fn advertised(socket: &UdpSocket) -> Result<SocketAddr> {
    let local = socket.local_addr()?;
    if local.ip().is_unspecified() {
        return Err(Error::Io(io::Error::new(
            ErrorKind::InvalidInput,
            "bind a specific IP address: it is the address peers are told to reach this node at",
        )));
    }
    Ok(local)
}

/// A member of a DHT ring on a UDP socket, driven on the caller's thread: the sans-IO
/// [`DhtNode`] with a non-blocking [`mio::net::UdpSocket`].
///
/// Like [`UdpHealthNode`](crate::UdpHealthNode), one [`process`](Self::process) step reads
/// every waiting datagram into the core (sending what it answers at once), lets time pass in
/// it and sends what it has to send; drive it standalone with [`run_until`](Self::run_until) or
/// [`register`](Self::register) it with your own `Poll`. The core is boxed: its storage is
/// fixed-size and large.
///
/// `L`, `KEYS`, `KEY`, `VALUE` and `PENDING` size the core (see [`DhtNode`]); the defaults keep
/// 1024 keys of up to 64 bytes with values of up to 256 bytes, and every message fits one
/// datagram.
///
/// ```
/// use std::time::Duration;
/// use sinew_proto::dht::NodeId;
/// use sinew_transport_std::dht::UdpDhtNode;
///
/// let mut a: UdpDhtNode = UdpDhtNode::bind("127.0.0.1:0".parse()?, NodeId::from_name(b"a"))?;
/// let mut b: UdpDhtNode = UdpDhtNode::bind("127.0.0.1:0".parse()?, NodeId::from_name(b"b"))?;
/// b.join(a.local().addr)?;
/// // Drive both until b is in the ring (two nodes on one thread: step each in turn).
/// let deadline = std::time::Instant::now() + Duration::from_secs(5);
/// while !(b.in_ring() && a.leaf_set().nodes().count() == 1) {
///     assert!(std::time::Instant::now() < deadline);
///     a.run_for(Duration::from_millis(5))?;
///     b.run_for(Duration::from_millis(5))?;
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UdpDhtNode<
    const L: usize = 4,
    const KEYS: usize = 1024,
    const KEY: usize = 64,
    const VALUE: usize = 256,
    const PENDING: usize = 64,
> {
    driver: Driver<DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING>>,
    events: VecDeque<Event<VALUE>>,
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    UdpDhtNode<L, KEYS, KEY, VALUE, PENDING>
{
    const FITS: () = assert!(
        DhtNode::<NonceRng, L, KEYS, KEY, VALUE, PENDING>::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN,
        "UdpDhtNode: every message of these sizes must fit one datagram"
    );

    /// Binds a UDP socket to `addr` (a specific IP; port 0 for an ephemeral port) and creates a
    /// ring of one with the id `id` and the default [`Config`].
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound, or of kind `InvalidInput` for an
    /// unspecified IP (peers must be told where to reach the node).
    pub fn bind(addr: SocketAddr, id: NodeId) -> Result<Self> {
        Self::bind_with(addr, id, |_| {})
    }

    /// Like [`bind`](Self::bind), with the [`Config`] adjusted by `configure` (its
    /// `local` is set to the id and the bound address before and after).
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn bind_with(
        addr: SocketAddr,
        id: NodeId,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        Self::from_std(std::net::UdpSocket::bind(addr)?, id, configure)
    }

    /// Like [`bind_with`](Self::bind_with), on a socket the caller bound (and set options on);
    /// it is made non-blocking.
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn from_std(
        socket: std::net::UdpSocket,
        id: NodeId,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket);
        let local = NodeAddr {
            id,
            addr: advertised(&socket)?,
        };
        let mut config = Config::new(local);
        configure(&mut config);
        config.local = local;
        let core = Box::new(DhtNode::new(
            config,
            rand_core::UnwrapErr(getrandom::SysRng),
        ));
        Ok(UdpDhtNode {
            driver: Driver::new(core, socket, Clock::new()),
            events: VecDeque::new(),
        })
    }

    /// Also accepts clients on TCP at `addr` (the node's UDP address works: the port spaces
    /// are separate); returns the address bound. A client sends get, put, lock and unlock
    /// requests as frames — a 4-byte big-endian length, then the message — and gets each
    /// answer as a frame on the same connection; its header's sender address is replaced by
    /// the connection's, so it need not know its own. Anything else on TCP is dropped and
    /// counted ([`TcpStats::not_requests`]): ring members talk UDP. At most
    /// [`MAX_TCP_CONNECTIONS`] connections are kept.
    ///
    /// With a caller's `Poll`, call this before [`register`](Self::register): the node then
    /// uses the tokens `token` (UDP), `token + 1` (the listener) and `token + 2 ..
    /// token + 2 + MAX_TCP_CONNECTIONS` (connections).
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound, TCP is already on, or the node is already
    /// registered with a caller's `Poll`.
    pub fn listen_tcp(&mut self, addr: SocketAddr) -> Result<SocketAddr> {
        if self.driver.tcp.is_some() || self.driver.shared {
            return Err(Error::Io(io::Error::other(
                "listen_tcp: TCP is already on, or the node is registered with a shared Poll",
            )));
        }
        let mut tcp = Tcp {
            listener: TcpListener::bind(addr)?,
            conns: Vec::new(),
            registry: None,
            stats: TcpStats::default(),
        };
        let bound = tcp.listener.local_addr()?;
        if let Some((poll, _)) = &self.driver.poll {
            tcp.register(poll.registry(), Token(1))?;
        }
        self.driver.tcp = Some(tcp);
        Ok(bound)
    }

    /// What the TCP side did (all zero without [`listen_tcp`](Self::listen_tcp)).
    pub fn tcp_stats(&self) -> TcpStats {
        self.driver
            .tcp
            .as_ref()
            .map(|t| t.stats)
            .unwrap_or_default()
    }

    /// This node: its id and the address it is bound to.
    pub fn local(&self) -> NodeAddr {
        self.driver.core.local()
    }

    /// Whether the node is in a ring (a ring of one before it joins).
    pub fn in_ring(&self) -> bool {
        self.driver.core.in_ring()
    }

    /// The node's leaf set: its neighbours on each side.
    pub fn leaf_set(&self) -> &LeafSet<L> {
        self.driver.core.leaf_set()
    }

    /// Joins the ring that `entry` (any member) is in; the outcome is [`Event::Joined`] or
    /// [`Event::JoinFailed`].
    ///
    /// # Errors
    /// [`Error::Proto`] if the core refuses (see [`DhtNode::join`]); [`Error::Io`] if stopped.
    pub fn join(&mut self, entry: SocketAddr) -> Result<()> {
        let now = self.driver.clock.now();
        self.driver.core.join(now, entry)?;
        self.driver.send_now()
    }

    /// Leaves the ring gracefully: hands the neighbours to each other and its keys to its
    /// successor (see [`DhtNode::leave`]). Keep processing a little while so that the Leave
    /// messages go out.
    ///
    /// # Errors
    /// [`Error::Io`] if stopped.
    pub fn leave(&mut self) -> Result<()> {
        let now = self.driver.clock.now();
        self.driver.core.leave(now);
        self.driver.send_now()
    }

    /// Reports that the node at `addr` is down, as another failure detector (such as the
    /// health protocol of a [`UdpHealthNode`](crate::UdpHealthNode) checking the same hosts)
    /// found: it leaves the leaf set at once and is replaced from it (see
    /// [`DhtNode::handle_peer_down`]). Without reports the node finds crashed neighbours by its
    /// own stabilization probes.
    ///
    /// # Errors
    /// [`Error::Io`] if stopped.
    pub fn peer_down(&mut self, addr: SocketAddr) -> Result<()> {
        let now = self.driver.clock.now();
        self.driver.core.handle_peer_down(now, addr);
        self.driver.send_now()
    }

    /// Reads `key` at its owner; the outcome is [`Event::GetDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::Proto`] if the core refuses it (too large, too many outstanding).
    pub fn get(&mut self, key: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock.now();
        let id = self.driver.core.get(now, key)?;
        self.driver.send_now()?;
        Ok(id)
    }

    /// Stores `value` under `key` at its owner and its replicas; the outcome is
    /// [`Event::PutDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock.now();
        let id = self.driver.core.put(now, key, value)?;
        self.driver.send_now()?;
        Ok(id)
    }

    /// Takes the lock on `key` for this node for `lease`; the outcome is [`Event::Locked`],
    /// [`Event::LockDenied`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(&mut self, key: &[u8], lease: Duration) -> Result<RequestId> {
        let now = self.driver.clock.now();
        let id = self.driver.core.lock(now, key, lease)?;
        self.driver.send_now()?;
        Ok(id)
    }

    /// Releases this node's lock on `key`; the outcome is [`Event::Unlocked`] or
    /// [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn unlock(&mut self, key: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock.now();
        let id = self.driver.core.unlock(now, key)?;
        self.driver.send_now()?;
        Ok(id)
    }

    /// One step: reads every waiting datagram into the core, lets time pass, sends what the
    /// core has to send. Never blocks; a stopped node does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails in a way that is not about one datagram.
    pub fn process(&mut self) -> Result<()> {
        self.driver.process(&mut self.events)
    }

    /// When [`process`](Self::process) next has work even if no datagram arrives, or `None`.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.driver.poll_timeout()
    }

    /// Registers the socket with a caller's `Poll` under `token`; drive the node with
    /// [`process`](Self::process) when the token is ready or [`poll_timeout`](Self::poll_timeout)
    /// has come.
    ///
    /// # Errors
    /// [`Error::Io`] if the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.driver.register(registry, token)
    }

    /// Runs the node on this thread for `duration` with a `Poll` of its own.
    ///
    /// # Errors
    /// As [`process`](Self::process); [`Error::Io`] if the node is
    /// [`register`](Self::register)ed with a caller's `Poll`.
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the node until `done` (asked after every step, with the node) says so or `timeout`
    /// passes; returns whether `done` said so.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        let deadline = StdInstant::now().checked_add(timeout);
        loop {
            self.process()?;
            if done(self) {
                return Ok(true);
            }
            let now = StdInstant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let wake = match (self.poll_timeout(), deadline) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            self.driver
                .wait(wake.map(|w| w.saturating_duration_since(now)))?;
        }
    }

    /// Stops the node as a crash would: closes its socket without a word to its neighbours.
    pub fn stop(&mut self) {
        self.driver.socket = None;
        self.driver.tcp = None;
        self.driver.poll = None;
        self.driver.more_to_read = false;
    }

    /// Whether the node still has its socket.
    pub fn is_running(&self) -> bool {
        self.driver.socket.is_some()
    }

    /// Takes the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        collect(
            &mut *self.driver.core,
            &mut self.events,
            &mut self.driver.io,
        );
        self.events.pop_front()
    }

    /// The core's counters.
    pub fn stats(&self) -> &Stats {
        self.driver.core.stats()
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        &self.driver.io
    }

    /// The protocol core.
    pub fn core(&self) -> &DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING> {
        &self.driver.core
    }

    /// The protocol core, to call what this adapter does not wrap; what it queues is sent at
    /// the next [`process`](Self::process).
    pub fn core_mut(&mut self) -> &mut DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING> {
        &mut self.driver.core
    }
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    fmt::Debug for UdpDhtNode<L, KEYS, KEY, VALUE, PENDING>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpDhtNode")
            .field("local", &self.local())
            .field("running", &self.is_running())
            .field("leaf_set", &self.leaf_set().nodes().count())
            .field("stored", &self.core().stored_len())
            .field("socket_stats", &self.driver.io)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`UdpDhtClient::lock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is the holder's until this instant at the latest (counted from when the
    /// request was sent).
    Locked {
        /// When the lease ends unless renewed.
        until: StdInstant,
    },
    /// Someone else holds it.
    Denied {
        /// Who (all zeros while the owner is in its grace period after taking the key over).
        holder: NodeId,
        /// How long until that lease ends, at the latest.
        remaining: Duration,
    },
}

/// A client of a DHT ring on a UDP socket: [`DhtClient`] talking to one member, which routes
/// every request to the key's owner and relays the answer.
///
/// The blocking methods ([`get`](Self::get), [`put`](Self::put), [`lock`](Self::lock),
/// [`unlock`](Self::unlock)) send one request and wait for its outcome; for pipelining,
/// [`submit`](Self::submit) requests on the core, then [`process`](Self::process) and
/// [`poll_event`](Self::poll_event).
///
/// ```no_run
/// use sinew_transport_std::dht::UdpDhtClient;
/// let mut client: UdpDhtClient = UdpDhtClient::connect("127.0.0.1:7000".parse()?)?;
/// client.put(b"colour", b"blue")?;
/// assert_eq!(client.get(b"colour")?.as_deref(), Some(&b"blue"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct UdpDhtClient<const PENDING: usize = 32, const KEY: usize = 64, const VALUE: usize = 256>
{
    driver: Driver<DhtClient<NonceRng, PENDING, KEY, VALUE>>,
    node: SocketAddr,
    events: VecDeque<Event<VALUE>>,
}

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> UdpDhtClient<PENDING, KEY, VALUE> {
    const FITS: () = assert!(
        DhtClient::<NonceRng, PENDING, KEY, VALUE>::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN,
        "UdpDhtClient: every message of these sizes must fit one datagram"
    );

    /// A client of the ring member `node`, with a random id and the default timing (1 s per
    /// attempt, 3 attempts).
    ///
    /// # Errors
    /// [`Error::Io`] if no socket can be bound or pointed at `node`.
    pub fn connect(node: SocketAddr) -> Result<Self> {
        Self::connect_with(node, |_| {})
    }

    /// Like [`connect`](Self::connect), with the [`ClientConfig`] adjusted by `configure`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(
        node: SocketAddr,
        configure: impl FnOnce(&mut ClientConfig),
    ) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        let any: SocketAddr = if node.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(any)?;
        // Connecting picks the source address the node will see (and filters other senders).
        socket.connect(node)?;
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let local = NodeAddr {
            id: NodeId::random(&mut rng),
            addr: advertised(&socket)?,
        };
        let mut config = ClientConfig::new(local);
        configure(&mut config);
        config.local = local;
        let core = Box::new(DhtClient::new(config, rng));
        Ok(UdpDhtClient {
            driver: Driver::new(core, socket, Clock::new()),
            node,
            events: VecDeque::new(),
        })
    }

    /// Registers the socket with a caller's `Poll` under `token`, to drive the client with
    /// [`submit`](Self::submit), [`process`](Self::process) and
    /// [`poll_event`](Self::poll_event) from that poll loop. The blocking methods must not be
    /// used after this (they would sleep without polling).
    ///
    /// # Errors
    /// [`Error::Io`] if the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.driver.register(registry, token)
    }

    /// When [`process`](Self::process) next has work even if no answer arrives (a retry or a
    /// timeout), or `None` with nothing outstanding.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.driver.poll_timeout()
    }

    /// The node this client talks to.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// This client's id and address, as the node sees them.
    pub fn local(&self) -> NodeAddr {
        self.driver.core.config().local
    }

    /// Reads `key`: its value, or `None` if the ring stores none.
    ///
    /// # Errors
    /// [`Error::Request`] if the ring refused it or did not answer in time, and as
    /// [`submit`](Self::submit).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let node = self.node;
        match self.call(|c, now| c.get(now, node, key))? {
            Event::GetDone { value, .. } => Ok(value.map(|v| v.to_vec())),
            other => Err(unexpected(other)),
        }
    }

    /// Stores `value` under `key`; returns once the owner and its replicas hold it.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let node = self.node;
        match self.call(|c, now| c.put(now, node, key, value))? {
            Event::PutDone { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Takes (or renews) the lock on `key` for `holder` for `lease`.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(
        &mut self,
        key: &[u8],
        holder: NodeId,
        lease: Duration,
    ) -> Result<LockOutcome> {
        let node = self.node;
        match self.call(|c, now| c.lock(now, node, key, holder, lease))? {
            Event::Locked { until, .. } => Ok(LockOutcome::Locked {
                until: self
                    .driver
                    .clock
                    .to_std(until)
                    .unwrap_or_else(StdInstant::now),
            }),
            Event::LockDenied {
                holder, remaining, ..
            } => Ok(LockOutcome::Denied { holder, remaining }),
            other => Err(unexpected(other)),
        }
    }

    /// Releases `holder`'s lock on `key`.
    ///
    /// # Errors
    /// [`Error::Request`] with [`ErrorCode::NotHolder`] if `holder` does not hold it, and as
    /// [`get`](Self::get).
    pub fn unlock(&mut self, key: &[u8], holder: NodeId) -> Result<()> {
        let node = self.node;
        match self.call(|c, now| c.unlock(now, node, key, holder))? {
            Event::Unlocked { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Submits a request on the core (give it [`node`](Self::node) as the node and `now` as the
    /// time) and sends it at once; its outcome comes from [`poll_event`](Self::poll_event) after
    /// [`process`](Self::process) steps.
    ///
    /// # Errors
    /// [`Error::Proto`] if the core refuses it; [`Error::Io`] if the client is broken.
    pub fn submit(
        &mut self,
        request: impl FnOnce(
            &mut DhtClient<NonceRng, PENDING, KEY, VALUE>,
            Instant,
        ) -> sinew_proto::Result<RequestId>,
    ) -> Result<RequestId> {
        let now = self.driver.clock.now();
        let id = request(&mut self.driver.core, now).map_err(Error::Proto)?;
        self.driver.send_now()?;
        Ok(id)
    }

    fn call(
        &mut self,
        request: impl FnOnce(
            &mut DhtClient<NonceRng, PENDING, KEY, VALUE>,
            Instant,
        ) -> sinew_proto::Result<RequestId>,
    ) -> Result<Event<VALUE>> {
        let id = self.submit(request)?;
        let mut outcome = None;
        // The core fails the request after its attempts: the wait always ends.
        self.driver
            .run_until(&mut self.events, Duration::MAX, |_, events| {
                if let Some(i) = events.iter().position(|e| e.request_id() == Some(id)) {
                    outcome = events.remove(i);
                    true
                } else {
                    false
                }
            })?;
        match outcome {
            Some(Event::Failed { error, .. }) => Err(Error::Dht(error)),
            Some(e) => Ok(e),
            None => Err(Error::Dht(RequestError::Timeout)),
        }
    }

    /// One step: reads the answers that arrived, lets time pass (retries, timeouts), sends what
    /// is due. Never blocks.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails.
    pub fn process(&mut self) -> Result<()> {
        self.driver.process(&mut self.events)
    }

    /// Waits (with a `Poll` of the client's own) until an answer arrives, the core's next
    /// timeout comes or `timeout` passes, then [`process`](Self::process)es.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        let now = StdInstant::now();
        let wake = self
            .driver
            .poll_timeout()
            .map_or(timeout, |t| t.saturating_duration_since(now).min(timeout));
        self.driver.wait(Some(wake))?;
        self.process()
    }

    /// Takes the next outcome, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        collect(
            &mut *self.driver.core,
            &mut self.events,
            &mut self.driver.io,
        );
        self.events.pop_front()
    }

    /// The core's counters.
    pub fn stats(&self) -> &ClientStats {
        self.driver.core.stats()
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        &self.driver.io
    }
}

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> fmt::Debug
    for UdpDhtClient<PENDING, KEY, VALUE>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpDhtClient")
            .field("node", &self.node)
            .field("local", &self.local())
            .field("outstanding", &self.driver.core.outstanding())
            .finish_non_exhaustive()
    }
}

fn unexpected<const VALUE: usize>(event: Event<VALUE>) -> Error {
    Error::Io(io::Error::other(format!("unexpected outcome {event:?}")))
}
