//! [`UdpHealthNode`]: the sans-IO [`HealthNode`] driven over a mio UDP socket.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Registry, Token};
use sinew_proto::health::{Config, Event, HealthNode, HostInfo, MAX_DATAGRAM_LEN, Stats};
use sinew_proto::nonce::Nonce;
use sinew_proto::time::Instant;

use crate::{Clock, Error, Result};

/// The nonce generator of every node in this crate: the operating system's CSPRNG.
///
/// `getrandom` failing means the OS has no entropy source at all; [`rand_core::UnwrapErr`]
/// turns that into a panic rather than a guessable nonce.
pub type NonceRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// How many events a [`UdpHealthNode`] buffers before it drops the newest (counted in
/// [`SocketStats::events_dropped`]).
pub const EVENT_BUFFER: usize = 4096;

/// How many datagrams one [`UdpHealthNode::process`] call receives at most before it lets time
/// pass, so that a flood cannot starve timeouts; the rest is read on the next call, which
/// [`UdpHealthNode::poll_timeout`] then asks for at once.
const RECV_BUDGET: usize = 1024;

/// The token of a node's socket in the node's own `Poll` (standalone mode).
const OWN_TOKEN: Token = Token(0);

/// An [`Event`] with the time the node produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedEvent {
    /// When the event happened, on the node's [`Clock`].
    pub at: Instant,
    /// What happened.
    pub event: Event,
}

/// What the socket side of a node did: counts the protocol core cannot see.
///
/// The core's own counters (malformed, unmatched, wrong source, late, …) are in
/// [`UdpHealthNode::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Datagrams read from the socket.
    pub datagrams_received: u64,
    /// Bytes read from the socket (an oversized datagram counts as the bytes read of it).
    pub bytes_received: u64,
    /// Datagrams longer than [`MAX_DATAGRAM_LEN`] (refused by the core as too large).
    pub oversized: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Datagrams dropped because the socket's send buffer was full (UDP is lossy: no retry).
    pub send_would_block: u64,
    /// Datagrams dropped because the send failed otherwise (unreachable network, an IPv6
    /// destination on an IPv4 socket, …).
    pub send_errors: u64,
    /// Receive errors that concern one earlier datagram, not the socket (such as a port
    /// unreachable report), skipped.
    pub recv_errors: u64,
    /// Events dropped because [`EVENT_BUFFER`] events were waiting to be polled.
    pub events_dropped: u64,
}

/// Where the node's socket is registered for readiness.
#[derive(Debug)]
enum Registration {
    /// Nowhere yet.
    None,
    /// With a caller's `Poll` (kept as a clone of its registry, to re-register on restart).
    Shared { registry: Registry, token: Token },
    /// With the node's own `Poll`, for [`UdpHealthNode::run_until`].
    Own { poll: Poll, events: Events },
}

/// A health-checking node on a UDP socket, driven on the caller's thread.
///
/// It owns a non-blocking [`mio::net::UdpSocket`] and a [`HealthNode`] and moves bytes and time
/// between them; all protocol decisions are the core's. One [`process`](Self::process) step
/// receives every waiting datagram (until `WouldBlock`) and hands each to
/// [`HealthNode::handle_datagram`] — sending whatever that queues at once — then calls
/// [`HealthNode::handle_timeout`] and sends everything [`HealthNode::poll_transmit`] yields.
/// On Linux datagrams are received with `recvmmsg` and sent with `sendmmsg`, up to 32 per
/// system call, so "at once" means at the end of the batch they arrived in.
/// Between steps the thread sleeps in [`mio::Poll::poll`] until a datagram arrives or
/// [`poll_timeout`](Self::poll_timeout) comes.
///
/// Two ways to drive it:
/// * standalone: [`run_for`](Self::run_for) / [`run_until`](Self::run_until) create a `Poll` of
///   the node's own;
/// * shared: [`register`](Self::register) the node with your `Poll` under a token of your choice,
///   call [`process`](Self::process) when that token is ready or the node's
///   [`poll_timeout`](Self::poll_timeout) has come, and sleep until the earliest timeout of all
///   your sources ([`NodeGroup`](crate::NodeGroup) does this for a set of nodes).
///
/// A node can be [`stop`](Self::stop)ped (its socket closed) and later [`start`](Self::start)ed
/// or [`restart`](Self::restart)ed on the same address.
///
/// `HOSTS`, `PENDING` and `QUEUE` size the core's fixed storage (see [`HealthNode`]).
pub struct UdpHealthNode<
    const HOSTS: usize = 32,
    const PENDING: usize = 32,
    const QUEUE: usize = 16,
> {
    core: HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    config: Config,
    seeds: Vec<SocketAddr>,
    socket: Option<UdpSocket>,
    local_addr: SocketAddr,
    clock: Clock,
    registration: Registration,
    events: VecDeque<TimedEvent>,
    io: SocketStats,
    /// The counters of the cores that [`restart`](Self::restart) replaced.
    retired: Stats,
    /// The last step stopped reading at its budget, with datagrams possibly left.
    more_to_read: bool,
    /// One byte more than any valid datagram, so that an oversized one is seen as oversized.
    #[cfg(not(target_os = "linux"))]
    recv_buf: [u8; MAX_DATAGRAM_LEN + 1],
    send_buf: [u8; MAX_DATAGRAM_LEN],
    /// Buffers of `recvmmsg` / `sendmmsg` batches.
    #[cfg(target_os = "linux")]
    batch: Box<mmsg::Batch>,
}

impl UdpHealthNode {
    /// Binds a UDP socket to `addr` (port 0 for an ephemeral port) and creates a node with an
    /// empty table, default storage sizes and a [`Clock`] starting now.
    ///
    /// If `config.local_addr` is `None` and the socket is bound to a specific IP, the bound
    /// address becomes the core's `local_addr`, so the node never adds itself.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind(addr: SocketAddr, config: Config) -> Result<Self> {
        Self::bind_with_clock(addr, config, Clock::new())
    }

    /// Like [`bind`](Self::bind), with a given clock (share one clock between nodes whose event
    /// times should be comparable).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind_with_clock(addr: SocketAddr, config: Config, clock: Clock) -> Result<Self> {
        Self::bind_sized(addr, config, clock)
    }
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>
    UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    /// Like [`bind_with_clock`](UdpHealthNode::bind_with_clock), for a node whose core has
    /// other storage sizes than the defaults (name them in the type:
    /// `UdpHealthNode::<64, 64, 32>::bind_sized(..)`).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind_sized(addr: SocketAddr, mut config: Config, clock: Clock) -> Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let local_addr = socket.local_addr()?;
        if config.local_addr.is_none() && !local_addr.ip().is_unspecified() {
            config.local_addr = Some(local_addr);
        }
        Ok(UdpHealthNode {
            core: HealthNode::new(config, rand_core::UnwrapErr(getrandom::SysRng)),
            config,
            seeds: Vec::new(),
            socket: Some(socket),
            local_addr,
            clock,
            registration: Registration::None,
            events: VecDeque::new(),
            io: SocketStats::default(),
            retired: Stats::default(),
            more_to_read: false,
            #[cfg(not(target_os = "linux"))]
            recv_buf: [0; MAX_DATAGRAM_LEN + 1],
            send_buf: [0; MAX_DATAGRAM_LEN],
            #[cfg(target_os = "linux")]
            batch: mmsg::Batch::new(),
        })
    }

    /// The address the socket is bound to (with the port the OS chose for port 0); a restart
    /// binds this address again.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The node's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The configuration the core was created with (with `local_addr` filled in by
    /// [`bind`](Self::bind)).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a seed: probed now and again every check interval until it answers (see
    /// [`HealthNode::add_seed`]). Seeds are remembered for [`restart`](Self::restart).
    ///
    /// # Errors
    /// [`Error::Proto`] with [`sinew_proto::Error::Capacity`] beyond the core's seed capacity.
    pub fn add_seed(&mut self, addr: SocketAddr) -> Result<()> {
        self.core.add_seed(addr)?;
        if !self.seeds.contains(&addr) {
            self.seeds.push(addr);
        }
        Ok(())
    }

    /// The seeds given to [`add_seed`](Self::add_seed).
    pub fn seeds(&self) -> &[SocketAddr] {
        &self.seeds
    }

    /// Whether the node has a socket (it has not been [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.socket.is_some()
    }

    /// Registers the socket for readability with `registry` (the registry of a `Poll` the
    /// caller drives) under `token`. The node keeps a clone of the registry to deregister and
    /// re-register itself when it is stopped and started.
    ///
    /// After this, the node is driven with [`process`](Self::process);
    /// [`run_until`](Self::run_until) refuses to run it.
    ///
    /// # Errors
    /// [`Error::Io`] if the registry cannot be cloned or the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.deregister()?;
        let registry = registry.try_clone()?;
        if let Some(socket) = self.socket.as_mut() {
            registry.register(socket, token, Interest::READABLE)?;
        }
        self.registration = Registration::Shared { registry, token };
        Ok(())
    }

    /// Removes the socket from the `Poll` it is registered with, if any.
    ///
    /// # Errors
    /// [`Error::Io`] if the operating system refuses.
    pub fn deregister(&mut self) -> Result<()> {
        self.deregister_socket()?;
        self.registration = Registration::None;
        Ok(())
    }

    /// The token given to [`register`](Self::register), if the node is registered with a
    /// caller's `Poll`.
    pub fn token(&self) -> Option<Token> {
        match self.registration {
            Registration::Shared { token, .. } => Some(token),
            _ => None,
        }
    }

    /// One step: receives every waiting datagram and hands it to the core (sending what it
    /// answers at once), lets time pass in the core, and sends every datagram the core has to
    /// send. Events produced are buffered for [`poll_event`](Self::poll_event).
    ///
    /// Never blocks. A stopped node does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails in a way that is not about one datagram.
    pub fn process(&mut self) -> Result<()> {
        let Some(socket) = self.socket.as_ref() else {
            return Ok(());
        };
        self.more_to_read = false;
        #[cfg(target_os = "linux")]
        {
            let batch = &mut *self.batch;
            self.more_to_read = receive_batches(
                socket,
                self.local_addr.is_ipv6(),
                &mut self.core,
                self.clock,
                batch,
                &mut self.events,
                &mut self.io,
            )?;
            let now = self.clock.now();
            self.core.handle_timeout(now);
            transmit_batched(socket, &mut self.core, now, batch, &mut self.io);
            collect_events(&mut self.core, &mut self.events, &mut self.io, now);
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut budget = RECV_BUDGET;
            loop {
                if budget == 0 {
                    self.more_to_read = true;
                    break;
                }
                match socket.recv_from(&mut self.recv_buf) {
                    Ok((len, from)) => {
                        budget -= 1;
                        self.io.datagrams_received += 1;
                        self.io.bytes_received += len as u64;
                        if len > MAX_DATAGRAM_LEN {
                            self.io.oversized += 1;
                        }
                        let now = self.clock.now();
                        // What the core did is counted in its Stats; nothing here depends on it.
                        let _ = self.core.handle_datagram(now, from, &self.recv_buf[..len]);
                        transmit(
                            socket,
                            &mut self.core,
                            now,
                            &mut self.send_buf,
                            &mut self.io,
                        );
                        collect_events(&mut self.core, &mut self.events, &mut self.io, now);
                    }
                    Err(e) => match e.kind() {
                        ErrorKind::WouldBlock => break,
                        ErrorKind::Interrupted => {}
                        // An ICMP report about an earlier send; the socket itself is fine.
                        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                            budget -= 1;
                            self.io.recv_errors += 1;
                        }
                        _ => return Err(e.into()),
                    },
                }
            }
            let now = self.clock.now();
            self.core.handle_timeout(now);
            transmit(
                socket,
                &mut self.core,
                now,
                &mut self.send_buf,
                &mut self.io,
            );
            collect_events(&mut self.core, &mut self.events, &mut self.io, now);
        }
        Ok(())
    }

    /// When [`process`](Self::process) next has work to do even if no datagram arrives (an
    /// instant in the past means now), or `None` when only a datagram can wake the node (and
    /// always when it is stopped).
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.socket.as_ref()?;
        if self.more_to_read {
            return Some(self.clock.base());
        }
        self.clock.to_std(self.core.poll_timeout()?)
    }

    /// Runs the node on this thread for `duration`, with a `Poll` of its own.
    ///
    /// # Errors
    /// As [`run_until`](Self::run_until).
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the node on this thread, with a `Poll` of its own, until `done` returns `true`
    /// (checked after every step, so it can read events and the table) or `timeout` passes.
    ///
    /// Returns whether `done` said so. A signal that interrupts the sleep ends it early and
    /// `done` is asked again, so a Ctrl-C flag set by a handler is seen at once.
    ///
    /// # Errors
    /// [`Error::Io`] if the node is [`register`](Self::register)ed with a caller's `Poll` (drive
    /// it with [`process`](Self::process) there), or if polling or the socket fails.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        let deadline = StdInstant::now().checked_add(timeout);
        self.ensure_own_poll()?;
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
            self.wait(wake.map(|w| w.saturating_duration_since(now)))?;
        }
    }

    fn ensure_own_poll(&mut self) -> Result<()> {
        match self.registration {
            Registration::Own { .. } => Ok(()),
            Registration::Shared { .. } => Err(Error::Io(io::Error::other(
                "node is registered with a shared Poll: drive it with process()",
            ))),
            Registration::None => {
                let poll = Poll::new()?;
                if let Some(socket) = self.socket.as_mut() {
                    poll.registry()
                        .register(socket, OWN_TOKEN, Interest::READABLE)?;
                }
                self.registration = Registration::Own {
                    poll,
                    events: Events::with_capacity(4),
                };
                Ok(())
            }
        }
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        if let Registration::Own { poll, events } = &mut self.registration {
            match poll.poll(events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn deregister_socket(&mut self) -> Result<()> {
        if let Some(socket) = self.socket.as_mut() {
            match &self.registration {
                Registration::None => {}
                Registration::Shared { registry, .. } => registry.deregister(socket)?,
                Registration::Own { poll, .. } => poll.registry().deregister(socket)?,
            }
        }
        Ok(())
    }

    /// Stops the node: deregisters and closes its socket. The core's state (table, counters,
    /// outstanding requests) is kept; a stopped node does nothing and nothing reaches it.
    ///
    /// # Errors
    /// [`Error::Io`] if deregistering fails (the socket is closed all the same).
    pub fn stop(&mut self) -> Result<()> {
        let result = self.deregister_socket();
        self.socket = None;
        self.more_to_read = false;
        result
    }

    /// Starts a stopped node again on the same address, with the state it had: requests that
    /// went unanswered meanwhile expire at the next step, as they would after a network
    /// partition. Does nothing if the node is running.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound again (another socket took it) or the
    /// socket cannot be registered.
    pub fn start(&mut self) -> Result<()> {
        if self.socket.is_some() {
            return Ok(());
        }
        let mut socket = UdpSocket::bind(self.local_addr)?;
        match &self.registration {
            Registration::None => {}
            Registration::Shared { registry, token } => {
                registry.register(&mut socket, *token, Interest::READABLE)?;
            }
            Registration::Own { poll, .. } => {
                poll.registry()
                    .register(&mut socket, OWN_TOKEN, Interest::READABLE)?;
            }
        }
        self.socket = Some(socket);
        Ok(())
    }

    /// Restarts the node as a restarted process would: closes the socket, replaces the core
    /// with a fresh one (empty table, same configuration and seeds), and binds the same address
    /// again. [`stats`](Self::stats) keep counting across restarts; unpolled events are kept.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        collect_events(
            &mut self.core,
            &mut self.events,
            &mut self.io,
            self.clock.now(),
        );
        self.retired += self.core.stats();
        self.core = HealthNode::new(self.config, rand_core::UnwrapErr(getrandom::SysRng));
        for &seed in &self.seeds {
            self.core.add_seed(seed)?;
        }
        self.start()
    }

    /// Sends one health check to `addr` now, outside the table; the answer comes back as
    /// [`Event::Pong`] with the round-trip time, or as [`Event::PingTimeout`] after the
    /// configured response timeout. Returns the check's nonce.
    ///
    /// # Errors
    /// [`Error::Proto`] with [`sinew_proto::Error::Capacity`] if too many requests are
    /// outstanding; [`Error::Io`] of kind `NotConnected` if the node is stopped.
    pub fn ping(&mut self, addr: SocketAddr) -> Result<Nonce> {
        let Some(socket) = self.socket.as_ref() else {
            return Err(Error::Io(io::Error::new(
                ErrorKind::NotConnected,
                "node is stopped",
            )));
        };
        let now = self.clock.now();
        let nonce = self.core.ping(now, addr)?;
        transmit(
            socket,
            &mut self.core,
            now,
            &mut self.send_buf,
            &mut self.io,
        );
        Ok(nonce)
    }

    /// Takes the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<TimedEvent> {
        collect_events(
            &mut self.core,
            &mut self.events,
            &mut self.io,
            self.clock.now(),
        );
        self.events.pop_front()
    }

    /// The network table.
    pub fn hosts(&self) -> impl ExactSizeIterator<Item = &HostInfo> + '_ {
        self.core.hosts()
    }

    /// One host of the network table.
    pub fn host(&self, addr: SocketAddr) -> Option<&HostInfo> {
        self.core.host(addr)
    }

    /// The core's counters, summed over every core this node has had (see
    /// [`restart`](Self::restart)).
    pub fn stats(&self) -> Stats {
        let mut total = self.retired;
        total += self.core.stats();
        total
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        &self.io
    }

    /// The protocol core.
    pub fn core(&self) -> &HealthNode<NonceRng, HOSTS, PENDING, QUEUE> {
        &self.core
    }

    /// The protocol core, to call what this adapter does not wrap. What the core queues is sent
    /// at the next [`process`](Self::process).
    pub fn core_mut(&mut self) -> &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE> {
        &mut self.core
    }
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize> crate::Adapter
    for UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        UdpHealthNode::register(self, registry, token)
    }
    fn process(&mut self) -> Result<()> {
        UdpHealthNode::process(self)
    }
    fn poll_timeout(&self) -> Option<StdInstant> {
        UdpHealthNode::poll_timeout(self)
    }
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize> fmt::Debug
    for UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpHealthNode")
            .field("local_addr", &self.local_addr)
            .field("running", &self.is_running())
            .field("registration", &self.registration)
            .field("hosts", &self.core.hosts().len())
            .field("events", &self.events.len())
            .field("socket_stats", &self.io)
            .finish_non_exhaustive()
    }
}

/// Sends everything the core has to send; a datagram the socket refuses is dropped and counted.
fn transmit<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>(
    socket: &UdpSocket,
    core: &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    now: Instant,
    buf: &mut [u8; MAX_DATAGRAM_LEN],
    io: &mut SocketStats,
) {
    while let Some(transmit) = core.poll_transmit(now, buf) {
        let Some(datagram) = buf.get(..transmit.len) else {
            io.send_errors += 1;
            continue;
        };
        loop {
            match socket.send_to(datagram, transmit.destination) {
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

/// Receives every waiting datagram (until `WouldBlock`, or [`RECV_BUDGET`]) in `recvmmsg`
/// batches and hands each to the core, sending what it answers in `sendmmsg` batches; returns
/// whether the budget ran out with datagrams possibly left.
///
/// `recvmmsg` always tries for one datagram more than it returns, so when datagrams come one by
/// one (a ping-pong peer, answered before its next request arrives) it costs about a `recvfrom`
/// and a failing `recvfrom`. A batch that brings a single datagram therefore switches to plain
/// `recvfrom` for the next [`SINGLE_READS`] reads, after which a batch is tried again.
#[cfg(target_os = "linux")]
fn receive_batches<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>(
    socket: &UdpSocket,
    ipv6: bool,
    core: &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    clock: Clock,
    batch: &mut mmsg::Batch,
    events: &mut VecDeque<TimedEvent>,
    io: &mut SocketStats,
) -> Result<bool> {
    let mut budget = RECV_BUDGET;
    let mut singles: usize = 0;
    loop {
        if budget == 0 {
            return Ok(true);
        }
        let want = if singles > 0 {
            1
        } else {
            budget.min(mmsg::BATCH)
        };
        match batch.receive(socket, ipv6, want) {
            Ok(received) => {
                singles = match (want, received) {
                    (1, _) => singles.saturating_sub(1),
                    (_, 1) => SINGLE_READS,
                    _ => 0,
                };
                budget = budget.saturating_sub(received.max(1));
                let now = clock.now();
                for i in 0..received {
                    let (len, from) = batch.received(i);
                    io.datagrams_received += 1;
                    io.bytes_received += len as u64;
                    if len > MAX_DATAGRAM_LEN {
                        io.oversized += 1;
                    }
                    let Some(from) = from else {
                        // No source address (not seen on UDP): nothing to answer.
                        io.recv_errors += 1;
                        continue;
                    };
                    // What the core did is counted in its Stats; nothing here depends on it.
                    let _ = core.handle_datagram(now, from, batch.datagram(i, len));
                    queue_transmits(socket, core, now, batch, io);
                    collect_events(core, events, io, now);
                }
                batch.flush(socket, io);
            }
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock => return Ok(false),
                ErrorKind::Interrupted => {}
                // An ICMP report about an earlier send; the socket itself is fine.
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
                    budget -= 1;
                    io.recv_errors += 1;
                }
                _ => return Err(e.into()),
            },
        }
    }
}

/// How many plain `recvfrom` reads follow a batch that brought a single datagram (see
/// [`receive_batches`]).
#[cfg(target_os = "linux")]
const SINGLE_READS: usize = 8;

/// Sends everything the core has to send, in `sendmmsg` batches.
#[cfg(target_os = "linux")]
fn transmit_batched<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>(
    socket: &UdpSocket,
    core: &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    now: Instant,
    batch: &mut mmsg::Batch,
    io: &mut SocketStats,
) {
    queue_transmits(socket, core, now, batch, io);
    batch.flush(socket, io);
}

/// Moves what the core has to send into the batch's send slots, sending a full batch at once.
#[cfg(target_os = "linux")]
fn queue_transmits<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>(
    socket: &UdpSocket,
    core: &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    now: Instant,
    batch: &mut mmsg::Batch,
    io: &mut SocketStats,
) {
    loop {
        if batch.is_full() {
            batch.flush(socket, io);
        }
        let Some(transmit) = core.poll_transmit(now, batch.next_slot()) else {
            return;
        };
        if !batch.push(transmit.len, transmit.destination) {
            io.send_errors += 1;
        }
    }
}

/// Batched datagram I/O on Linux: `recvmmsg` through nix's safe wrapper and `sendmmsg` through
/// rustix's, so that a wake-up carrying many datagrams costs two system calls, not two per
/// datagram.
#[cfg(target_os = "linux")]
mod mmsg {
    use std::cell::RefCell;
    use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;

    use mio::net::UdpSocket;
    use nix::sys::socket::{
        MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, SockaddrLike, recvmmsg,
    };
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use sinew_proto::health::MAX_DATAGRAM_LEN;

    use super::SocketStats;

    /// Datagrams moved per system call at most.
    pub(super) const BATCH: usize = 32;

    // nix's message headers hold raw pointers, so they are neither `Send` nor `Sync` (and a
    // node must stay `Send`): each thread keeps its own, allocated once. Receive headers are
    // kept per address family because the kernel takes each header's address length, left
    // from the last call, as the room for the next source address; every source of a socket is
    // of its own family. Sends go through rustix, with headers built at every call.
    thread_local! {
        static RECV_V4: RefCell<Option<MultiHeaders<SockaddrIn>>> = const { RefCell::new(None) };
        static RECV_V6: RefCell<Option<MultiHeaders<SockaddrIn6>>> = const { RefCell::new(None) };
    }

    /// A node's batch buffers.
    pub(super) struct Batch {
        /// One byte more than any valid datagram, so that an oversized one is seen as oversized.
        recv: [[u8; MAX_DATAGRAM_LEN + 1]; BATCH],
        /// Length and source of each datagram of the last receive.
        received: [(usize, Option<SocketAddr>); BATCH],
        send: [[u8; MAX_DATAGRAM_LEN]; BATCH],
        send_len: [usize; BATCH],
        send_to: [SocketAddr; BATCH],
        /// Datagrams waiting in `send` (the first `queued` slots).
        queued: usize,
    }

    impl Batch {
        /// Empty buffers, on the heap (they take 40 KiB).
        pub(super) fn new() -> Box<Batch> {
            Box::new(Batch {
                recv: [[0; MAX_DATAGRAM_LEN + 1]; BATCH],
                received: [(0, None); BATCH],
                send: [[0; MAX_DATAGRAM_LEN]; BATCH],
                send_len: [0; BATCH],
                send_to: [SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
                queued: 0,
            })
        }

        /// Receives up to `want` waiting datagrams on a socket bound to an IPv6 (`ipv6`) or an
        /// IPv4 address, with one `recvfrom` when `want` is 1 and one `recvmmsg` otherwise: at
        /// least one, or an error (`WouldBlock` when none is waiting).
        pub(super) fn receive(
            &mut self,
            socket: &UdpSocket,
            ipv6: bool,
            want: usize,
        ) -> io::Result<usize> {
            if want <= 1 {
                let (len, from) = socket.recv_from(&mut self.recv[0])?;
                self.received[0] = (len, Some(from));
                return Ok(1);
            }
            if ipv6 {
                RECV_V6.with_borrow_mut(|headers| self.receive_with(socket, want, headers))
            } else {
                RECV_V4.with_borrow_mut(|headers| self.receive_with(socket, want, headers))
            }
        }

        fn receive_with<S>(
            &mut self,
            socket: &UdpSocket,
            want: usize,
            headers: &mut Option<MultiHeaders<S>>,
        ) -> io::Result<usize>
        where
            S: SockaddrLike + Copy + Into<SocketAddr>,
        {
            let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
            let mut slices = self.recv.each_mut().map(|buf| [IoSliceMut::new(buf)]);
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter_mut().take(want),
                MsgFlags::empty(),
                None,
            )?;
            let mut n = 0;
            for (slot, message) in self.received.iter_mut().zip(results) {
                *slot = (message.bytes, message.address.map(Into::into));
                n += 1;
            }
            Ok(n)
        }

        /// Length and source of datagram `i` of the last receive.
        pub(super) fn received(&self, i: usize) -> (usize, Option<SocketAddr>) {
            self.received.get(i).copied().unwrap_or((0, None))
        }

        /// The first `len` bytes of datagram `i` of the last receive.
        pub(super) fn datagram(&self, i: usize, len: usize) -> &[u8] {
            self.recv
                .get(i)
                .and_then(|buf| buf.get(..len))
                .unwrap_or_default()
        }

        /// Whether every send slot is taken.
        pub(super) fn is_full(&self) -> bool {
            self.queued >= BATCH
        }

        /// The next free send slot, to encode a datagram into (then [`push`](Self::push) it);
        /// empty when the batch is full.
        pub(super) fn next_slot(&mut self) -> &mut [u8] {
            match self.send.get_mut(self.queued) {
                Some(slot) => slot,
                None => &mut [],
            }
        }

        /// Queues the `len` bytes encoded in the next slot for `to`; `false` (nothing queued)
        /// if they do not fit it.
        pub(super) fn push(&mut self, len: usize, to: SocketAddr) -> bool {
            if self.queued >= BATCH || len > MAX_DATAGRAM_LEN {
                return false;
            }
            self.send_len[self.queued] = len;
            self.send_to[self.queued] = to;
            self.queued += 1;
            true
        }

        /// Sends every queued datagram, a lone one with `sendto`, more in as few `sendmmsg`
        /// calls as the socket allows; a datagram the socket refuses is dropped and counted, as
        /// one `sendto` would be.
        pub(super) fn flush(&mut self, socket: &UdpSocket, io: &mut SocketStats) {
            let queued = std::mem::take(&mut self.queued);
            match queued {
                0 => {}
                1 => loop {
                    let datagram = self.send[0].get(..self.send_len[0]).unwrap_or_default();
                    match socket.send_to(datagram, self.send_to[0]) {
                        Ok(sent) => {
                            io.datagrams_sent += 1;
                            io.bytes_sent += sent as u64;
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => count_refused(&e, io),
                    }
                    break;
                },
                _ => self.send_batch(socket, queued, io),
            }
        }

        fn send_batch(&mut self, socket: &UdpSocket, queued: usize, io: &mut SocketStats) {
            // rustix's `sendmmsg` reports how many datagrams went out as a plain count (nix's
            // results iterator would read its unwritten receive-address slots to say so).
            let lens = &self.send_len;
            let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(
                    self.send[i].get(..lens[i]).unwrap_or_default(),
                )]
            });
            let addrs: [SocketAddrAny; BATCH] =
                std::array::from_fn(|i| SocketAddrAny::from(self.send_to[i]));
            let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
                std::array::from_fn(|_| SendAncillaryBuffer::default());
            let mut i = 0;
            let mut messages = controls.each_mut().map(|control| {
                let message = MMsgHdr::new_with_addr(&addrs[i], &slices[i], control);
                i += 1;
                message
            });
            let mut start = 0;
            while start < queued {
                // sendmmsg stops at the first datagram the socket refuses and reports it only
                // if it is the first: try again from there to learn why.
                match rustix::net::sendmmsg(
                    socket,
                    &mut messages[start..queued],
                    SendFlags::empty(),
                )
                .map_err(io::Error::from)
                {
                    Ok(0) => {
                        io.send_errors += 1;
                        start += 1;
                    }
                    Ok(sent) => {
                        let sent = sent.min(queued - start);
                        io.datagrams_sent += sent as u64;
                        io.bytes_sent += lens[start..start + sent].iter().sum::<usize>() as u64;
                        start += sent;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        count_refused(&e, io);
                        start += 1;
                    }
                }
            }
        }
    }

    /// Counts a datagram the socket refused to send.
    fn count_refused(e: &io::Error, io: &mut SocketStats) {
        if e.kind() == ErrorKind::WouldBlock {
            io.send_would_block += 1;
        } else {
            io.send_errors += 1;
        }
    }
}

fn collect_events<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>(
    core: &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE>,
    events: &mut VecDeque<TimedEvent>,
    io: &mut SocketStats,
    now: Instant,
) {
    while let Some(event) = core.poll_event() {
        if events.len() < EVENT_BUFFER {
            events.push_back(TimedEvent { at: now, event });
        } else {
            io.events_dropped += 1;
        }
    }
}
