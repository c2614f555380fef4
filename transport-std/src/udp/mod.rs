//! [`UdpDriver`]: the one datagram driver — any [`DatagramCore`] on a mio UDP socket.

mod batch;

use std::collections::VecDeque;
use std::fmt;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
use sinew_proto::time::Instant;

use crate::adapter::{self, Registration, Standalone};
use crate::{Adapter, Clock, Error, Result};
use batch::{BATCH, Batch};

/// The nonce generator of every core in this crate: the operating system's CSPRNG.
///
/// `getrandom` failing means the OS has no entropy source at all; [`rand_core::UnwrapErr`]
/// turns that into a panic rather than a guessable nonce.
pub type NonceRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// The operating system's CSPRNG, for a core's nonces and ids.
pub(crate) fn nonce_rng() -> NonceRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// How many events a driver buffers before it drops the newest (counted in
/// [`SocketStats::events_dropped`]).
pub const EVENT_BUFFER: usize = 4096;

/// How many datagrams one [`process`](UdpDriver::process) step receives at most before it
/// lets time pass, so that a flood cannot starve timeouts; the rest is read at the next step,
/// which [`poll_timeout`](UdpDriver::poll_timeout) then asks for at once.
const RECV_BUDGET: usize = 1024;

/// How many plain `recvfrom` reads follow a batch that brought a single datagram: `recvmmsg`
/// always tries for one datagram more than it returns, so when datagrams come one by one (a
/// ping-pong peer) a batch costs about a `recvfrom` and a failing `recvfrom`.
const SINGLE_READS: usize = 8;

/// An event of a core with the time the driver took it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimedEvent<E = sinew_proto::health::Event> {
    /// When the event happened, on the driver's [`Clock`].
    pub at: Instant,
    /// What happened.
    pub event: E,
}

/// What the socket side of a driver did: counts the protocol core cannot see.
///
/// The core's own counters (malformed, unmatched, wrong source, late, …) are in the core's
/// `stats()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

/// A sans-IO [`DatagramCore`] on a non-blocking mio UDP socket, driven on the caller's thread.
///
/// It moves bytes and time and decides nothing: one [`process`](Self::process) step receives
/// every waiting datagram (until `WouldBlock`, or a budget of 1024 so that a flood cannot
/// starve timers) and hands each to [`DatagramCore::handle_datagram`], sending what the core
/// answers at the end of the batch it arrived in; then it calls
/// [`DatagramCore::handle_timeout`] and sends everything [`DatagramCore::poll_transmit`]
/// yields. Events are buffered, with their time, for [`poll_event`](Self::poll_event). On
/// Linux datagrams are received with `recvmmsg` and sent with `sendmmsg`, up to 32 per system
/// call.
///
/// Every datagram adapter of this crate ([`UdpHealthNode`](crate::UdpHealthNode),
/// [`UdpDhtNode`](crate::dht::UdpDhtNode), [`UdpDhtClient`](crate::dht::UdpDhtClient)) is a
/// thin type over a driver; a core of your own gets the same socket handling by being put in
/// one. It is an [`Adapter`]: register it with your `Poll`, or run it standalone with
/// [`run_until`](Self::run_until).
///
/// ```
/// use std::time::Duration;
/// use sinew_proto::health::{Config, HealthNode};
/// use sinew_transport_std::{Clock, NonceRng, UdpDriver};
///
/// let core: HealthNode<_> = HealthNode::new(Config::default(), NonceRng::default());
/// let mut driver = UdpDriver::bind("127.0.0.1:0".parse().unwrap(), core, Clock::new())?;
/// driver.run_for(Duration::from_millis(10))?;
/// assert_eq!(driver.socket_stats().datagrams_received, 0);
/// # Ok::<(), sinew_transport_std::Error>(())
/// ```
pub struct UdpDriver<C: DatagramCore> {
    core: Box<C>,
    socket: Option<UdpSocket>,
    local_addr: SocketAddr,
    clock: Clock,
    registration: Registration,
    events: VecDeque<TimedEvent<C::Event>>,
    io: SocketStats,
    /// The last step stopped reading at its budget, with datagrams possibly left.
    more_to_read: bool,
    batch: Box<Batch>,
}

/// Where a driver's core sends a datagram that should not go out on the UDP socket (the DHT
/// node's answers to clients connected over TCP): `true` if it took the datagram.
pub(crate) type Divert<'a> = &'a mut dyn FnMut(SocketAddr, &[u8]) -> bool;

impl<C: DatagramCore> UdpDriver<C> {
    /// Binds a UDP socket to `addr` (port 0 for an ephemeral port) for `core`.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind(addr: SocketAddr, core: C, clock: Clock) -> Result<Self> {
        Self::from_std(std::net::UdpSocket::bind(addr)?, core, clock)
    }

    /// Drives `core` on a socket the caller bound (and set options on); it is made
    /// non-blocking.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be made non-blocking or has no local address.
    pub fn from_std(socket: std::net::UdpSocket, core: C, clock: Clock) -> Result<Self> {
        socket.set_nonblocking(true)?;
        Self::with_socket(UdpSocket::from_std(socket), Box::new(core), clock)
    }

    /// Drives an already boxed core (a large one need never be on the stack) on a mio socket.
    pub(crate) fn with_socket(socket: UdpSocket, core: Box<C>, clock: Clock) -> Result<Self> {
        Ok(UdpDriver {
            core,
            local_addr: socket.local_addr()?,
            socket: Some(socket),
            clock,
            registration: Registration::default(),
            events: VecDeque::new(),
            io: SocketStats::default(),
            more_to_read: false,
            batch: Batch::new(),
        })
    }

    /// The address the socket is bound to (with the port the OS chose for port 0); a
    /// [`start`](Self::start) binds this address again.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The driver's clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The protocol core.
    pub fn core(&self) -> &C {
        &self.core
    }

    /// The protocol core, to call what an adapter does not wrap. What it queues is sent at the
    /// next step, or at once with [`send_now`](Self::send_now).
    pub fn core_mut(&mut self) -> &mut C {
        &mut self.core
    }

    /// Puts a fresh core in place of the running one (a restart), keeping the socket and the
    /// events not yet polled; returns the old core.
    pub fn replace_core(&mut self, core: C) -> C {
        self.collect_events(self.clock.now());
        *std::mem::replace(&mut self.core, Box::new(core))
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        &self.io
    }

    /// Whether the driver has a socket (it has not been [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.socket.is_some()
    }

    /// Takes the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<TimedEvent<C::Event>> {
        self.collect_events(self.clock.now());
        self.events.pop_front()
    }

    /// The events waiting to be polled, oldest first.
    pub(crate) fn events_mut(&mut self) -> &mut VecDeque<TimedEvent<C::Event>> {
        self.collect_events(self.clock.now());
        &mut self.events
    }

    /// Sends what the core has to send now (after the caller asked the core for something, so
    /// that a request leaves without waiting for the next step).
    ///
    /// # Errors
    /// [`Error::Io`] of kind `NotConnected` if the driver is stopped.
    pub fn send_now(&mut self) -> Result<()> {
        self.send_now_with(&mut |_, _| false)
    }

    pub(crate) fn send_now_with(&mut self, divert: Divert<'_>) -> Result<()> {
        if self.socket.is_none() {
            return Err(Error::stopped());
        }
        self.transmit(self.clock.now(), divert);
        Ok(())
    }

    /// Sends everything the core has to send at `now`, in batches; what `divert` takes goes
    /// another way.
    fn transmit(&mut self, now: Instant, divert: Divert<'_>) {
        if let Some(socket) = self.socket.as_ref() {
            queue_transmits(
                socket,
                &mut *self.core,
                now,
                &mut self.batch,
                &mut self.io,
                divert,
            );
            self.batch.flush(socket, &mut self.io);
        }
    }

    /// Hands the core one message that came another way than the UDP socket (a DHT client's
    /// request on TCP), and sends what it answers.
    pub(crate) fn handle_other(
        &mut self,
        from: SocketAddr,
        message: &[u8],
        divert: Divert<'_>,
    ) -> Result<()> {
        let now = self.clock.now();
        // What the core did is counted in its own statistics.
        let _ = self.core.handle_datagram(now, from, message);
        self.collect_events(now);
        self.send_now_with(divert)
    }

    /// One step: receives every waiting datagram and hands it to the core (sending what it
    /// answers at the end of each batch), lets time pass in the core, sends everything the core
    /// has to send, and buffers the core's events. Never blocks; a stopped driver does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if the socket fails in a way that is not about one datagram.
    pub fn process(&mut self) -> Result<()> {
        self.process_with(&mut |_, _| false)
    }

    pub(crate) fn process_with(&mut self, divert: Divert<'_>) -> Result<()> {
        if self.socket.is_none() {
            return Ok(());
        }
        self.more_to_read = self.receive(divert)?;
        let now = self.clock.now();
        self.core.handle_timeout(now);
        self.transmit(now, divert);
        self.collect_events(now);
        Ok(())
    }

    /// Receives every waiting datagram (until `WouldBlock`, or [`RECV_BUDGET`]) in batches and
    /// hands each to the core, sending what it answers after each batch; whether the budget
    /// ran out with datagrams possibly left. A batch that brings a single datagram switches to
    /// plain `recvfrom` for the next [`SINGLE_READS`] reads.
    fn receive(&mut self, divert: Divert<'_>) -> Result<bool> {
        let Some(socket) = self.socket.as_ref() else {
            return Ok(false);
        };
        let ipv6 = self.local_addr.is_ipv6();
        let mut budget = RECV_BUDGET;
        let mut singles: usize = 0;
        loop {
            if budget == 0 {
                return Ok(true);
            }
            let want = if singles > 0 { 1 } else { budget.min(BATCH) };
            match self.batch.receive(socket, ipv6, want) {
                Ok(received) => {
                    singles = match (want, received) {
                        (1, _) => singles.saturating_sub(1),
                        (_, 1) => SINGLE_READS,
                        _ => 0,
                    };
                    budget = budget.saturating_sub(received.max(1));
                    let now = self.clock.now();
                    for i in 0..received {
                        let (len, from) = self.batch.received(i);
                        self.io.datagrams_received += 1;
                        self.io.bytes_received += len as u64;
                        if len > MAX_DATAGRAM_LEN {
                            // Refused by the core as too large, and counted there too.
                            self.io.oversized += 1;
                        }
                        let Some(from) = from else {
                            // No source address (not seen on UDP): nothing to answer.
                            self.io.recv_errors += 1;
                            continue;
                        };
                        // What the core did is counted in its own statistics.
                        let _ = self
                            .core
                            .handle_datagram(now, from, self.batch.datagram(i, len));
                        queue_transmits(
                            socket,
                            &mut *self.core,
                            now,
                            &mut self.batch,
                            &mut self.io,
                            divert,
                        );
                        collect(&mut *self.core, &mut self.events, &mut self.io, now);
                    }
                    self.batch.flush(socket, &mut self.io);
                }
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => return Ok(false),
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
    }

    fn collect_events(&mut self, now: Instant) {
        collect(&mut *self.core, &mut self.events, &mut self.io, now);
    }

    /// When [`process`](Self::process) next has work to do even if no datagram arrives (an
    /// instant in the past means now), or `None` when only a datagram can give it work (and
    /// always when it is stopped).
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.socket.as_ref()?;
        if self.more_to_read {
            return Some(self.clock.base());
        }
        self.clock.to_std(self.core.poll_timeout()?)
    }

    /// Registers the socket with `registry` under `token` (see [`Adapter::register`]).
    ///
    /// # Errors
    /// [`Error::Io`] if the registry cannot be cloned or the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        if let Some(socket) = self.socket.as_mut() {
            self.registration.remove(socket)?;
        }
        self.registration.set(registry, token)?;
        if let Some(socket) = self.socket.as_mut() {
            self.registration.add(socket, 0, Interest::READABLE)?;
        }
        Ok(())
    }

    /// The registration, for adapters that register more sockets beside the driver's.
    pub(crate) fn registration(&mut self) -> &mut Registration {
        &mut self.registration
    }

    /// Runs the driver on this thread for `duration`, with a `Poll` of its own.
    ///
    /// # Errors
    /// As [`run_until`](Self::run_until).
    pub fn run_for(&mut self, duration: Duration) -> Result<()>
    where
        C: 'static,
    {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the driver on this thread, with a `Poll` of its own, until `done` returns `true`
    /// (asked after every step) or `timeout` passes; returns whether `done` said so. A signal
    /// that interrupts the sleep ends it early and `done` is asked again.
    ///
    /// # Errors
    /// [`Error::Io`] if the driver is registered with a caller's `Poll` (drive it with
    /// [`process`](Self::process) there), or if polling or the socket fails.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool>
    where
        C: 'static,
    {
        adapter::run_until(self, timeout, done)
    }

    /// Stops the driver: deregisters and closes its socket. The core is kept; a stopped driver
    /// does nothing and nothing reaches it.
    ///
    /// # Errors
    /// [`Error::Io`] if deregistering fails (the socket is closed all the same).
    pub fn stop(&mut self) -> Result<()> {
        let result = match self.socket.as_mut() {
            Some(socket) => self.registration.remove(socket).map_err(Error::from),
            None => Ok(()),
        };
        self.socket = None;
        self.more_to_read = false;
        result
    }

    /// Starts a stopped driver again on the same address. Does nothing if it is running.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound again (another socket took it) or the
    /// socket cannot be registered.
    pub fn start(&mut self) -> Result<()> {
        if self.socket.is_some() {
            return Ok(());
        }
        let mut socket = UdpSocket::bind(self.local_addr)?;
        self.registration.add(&mut socket, 0, Interest::READABLE)?;
        self.socket = Some(socket);
        Ok(())
    }
}

impl<C: DatagramCore + 'static> Adapter for UdpDriver<C> {
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        UdpDriver::register(self, registry, token)
    }

    fn process(&mut self) -> Result<()> {
        UdpDriver::process(self)
    }

    fn poll_timeout(&self) -> Option<StdInstant> {
        UdpDriver::poll_timeout(self)
    }
}

impl<C: DatagramCore + 'static> Standalone for UdpDriver<C> {
    fn registration(&mut self) -> &mut Registration {
        &mut self.registration
    }
}

impl<C: DatagramCore> fmt::Debug for UdpDriver<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpDriver")
            .field("local_addr", &self.local_addr)
            .field("running", &self.is_running())
            .field("events", &self.events.len())
            .field("socket_stats", &self.io)
            .finish_non_exhaustive()
    }
}

/// Moves what the core has to send into the batch's send slots, sending a full batch at once;
/// a datagram `divert` takes does not go out on the socket.
fn queue_transmits<C: DatagramCore + ?Sized>(
    socket: &UdpSocket,
    core: &mut C,
    now: Instant,
    batch: &mut Batch,
    io: &mut SocketStats,
    divert: Divert<'_>,
) {
    loop {
        if batch.is_full() {
            batch.flush(socket, io);
        }
        let slot = batch.next_slot();
        let Some(transmit) = core.poll_transmit(now, slot) else {
            return;
        };
        if let Some(datagram) = slot.get(..transmit.len)
            && divert(transmit.destination, datagram)
        {
            continue;
        }
        if !batch.push(transmit.len, transmit.destination) {
            io.send_errors += 1;
        }
    }
}

fn collect<C: DatagramCore + ?Sized>(
    core: &mut C,
    events: &mut VecDeque<TimedEvent<C::Event>>,
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
