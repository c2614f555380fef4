//! [`UdpHealthNode`]: the sans-IO [`HealthNode`] on the crate's [`UdpDriver`].

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::{Registry, Token};
use sinew_proto::health::{Config, Event, HealthNode, HostInfo, Stats};
use sinew_proto::nonce::Nonce;
use sinew_proto::seal::{self, Keyed, Keyring};

use crate::adapter::{self, Registration, Standalone};
use crate::udp::nonce_rng;
use crate::{Adapter, Clock, Error, NonceRng, Result, SocketStats, TimedEvent, UdpDriver};

/// A health-checking node on a UDP socket, driven on the caller's thread.
///
/// It owns a non-blocking [`mio::net::UdpSocket`] and a [`HealthNode`] and moves bytes and time
/// between them; all protocol decisions are the core's. One [`process`](Self::process) step
/// receives every waiting datagram (until `WouldBlock`) and hands each to
/// [`HealthNode::handle_datagram`] — sending whatever that queues at once — then calls
/// [`HealthNode::handle_timeout`] and sends everything [`HealthNode::poll_transmit`] yields.
/// It is a [`UdpDriver`] (the crate's one datagram driver: `recvmmsg`/`sendmmsg` batches on
/// Linux, so "at once" means at the end of the batch they arrived in) around the core, plus
/// what a restart needs (configuration and seeds).
/// Between steps the thread sleeps in [`mio::Poll::poll`] until a datagram arrives or
/// [`poll_timeout`](Self::poll_timeout) comes.
///
/// Two ways to drive it:
/// * standalone: [`run_for`](Self::run_for) / [`run_until`](Self::run_until) create a `Poll` of
///   the node's own;
/// * shared: [`register`](Self::register) the node with your `Poll` under a token of your choice,
///   call [`process`](Self::process) when that token is ready or the node's
///   [`poll_timeout`](Self::poll_timeout) has come, and sleep until the earliest timeout of all
///   your sources ([`Group`](crate::Group) does this for any mix of adapters).
///
/// A node can be [`stop`](Self::stop)ped (its socket closed) and later [`start`](Self::start)ed
/// or [`restart`](Self::restart)ed on the same address.
///
/// Keyed ([`bind_keyed`](UdpHealthNode::bind_keyed)), every datagram is sealed with the keyring's
/// primary key and only datagrams sealed with an installed key are taken (see
/// [`sinew_proto::seal`]); unkeyed, sealed datagrams are dropped and counted in
/// [`seal_stats`](Self::seal_stats). Either way the core runs inside a [`Keyed`].
///
/// `HOSTS`, `PENDING` and `QUEUE` size the core's fixed storage (see [`HealthNode`]).
pub struct UdpHealthNode<
    const HOSTS: usize = 32,
    const PENDING: usize = 32,
    const QUEUE: usize = 16,
> {
    driver: UdpDriver<Keyed<HealthNode<NonceRng, HOSTS, PENDING, QUEUE>, NonceRng>>,
    config: Config,
    seeds: Vec<SocketAddr>,
    /// The counters of the cores that [`restart`](Self::restart) replaced.
    retired: Stats,
    /// The seal counters of the cores that [`restart`](Self::restart) replaced.
    retired_seal: seal::Stats,
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

    /// Like [`bind`](Self::bind), keyed with `keyring`: every datagram is sealed with its
    /// primary key and only datagrams sealed with one of its keys are taken (an empty keyring:
    /// unkeyed, as [`bind`](Self::bind)).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind_keyed(addr: SocketAddr, config: Config, keyring: Keyring) -> Result<Self> {
        Self::bind_sized_keyed(addr, config, Clock::new(), keyring)
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
    pub fn bind_sized(addr: SocketAddr, config: Config, clock: Clock) -> Result<Self> {
        Self::bind_sized_keyed(addr, config, clock, Keyring::new())
    }

    /// Like [`bind_sized`](Self::bind_sized), keyed with `keyring` (see
    /// [`bind_keyed`](UdpHealthNode::bind_keyed)).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound.
    pub fn bind_sized_keyed(
        addr: SocketAddr,
        mut config: Config,
        clock: Clock,
        keyring: Keyring,
    ) -> Result<Self> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let local_addr = socket.local_addr()?;
        if config.local_addr.is_none() && !local_addr.ip().is_unspecified() {
            config.local_addr = Some(local_addr);
        }
        let core = keyed(HealthNode::new(config, nonce_rng()), keyring);
        Ok(UdpHealthNode {
            driver: UdpDriver::from_std(socket, core, clock)?,
            config,
            seeds: Vec::new(),
            retired: Stats::default(),
            retired_seal: seal::Stats::default(),
        })
    }

    /// The keyring: install, use and remove keys while the node runs (a restart keeps it).
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        self.driver.core_mut().keyring_mut()
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        self.driver.core().keyring()
    }

    /// The seal layer's counters (sealed, opened, and every datagram dropped before the core
    /// saw it), summed over every core this node has had.
    pub fn seal_stats(&self) -> seal::Stats {
        let mut total = self.retired_seal;
        total += self.driver.core().stats();
        total
    }

    /// The address the socket is bound to (with the port the OS chose for port 0); a restart
    /// binds this address again.
    pub fn local_addr(&self) -> SocketAddr {
        self.driver.local_addr()
    }

    /// The node's clock.
    pub fn clock(&self) -> Clock {
        self.driver.clock()
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
        self.driver.core_mut().inner_mut().add_seed(addr)?;
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
        self.driver.is_running()
    }

    /// Registers the socket for readability with `registry` (the registry of a `Poll` the
    /// caller drives) under `token` (see [`Adapter::register`]). The node keeps a clone of the
    /// registry to re-register itself when it is started again.
    ///
    /// After this, the node is driven with [`process`](Self::process);
    /// [`run_until`](Self::run_until) refuses to run it.
    ///
    /// # Errors
    /// [`Error::Io`] if the registry cannot be cloned or the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.driver.register(registry, token)
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
        self.driver.process()
    }

    /// When [`process`](Self::process) next has work to do even if no datagram arrives (an
    /// instant in the past means now), or `None` when only a datagram can wake the node (and
    /// always when it is stopped).
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.driver.poll_timeout()
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
        done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        adapter::run_until(self, timeout, done)
    }

    /// Stops the node: deregisters and closes its socket. The core's state (table, counters,
    /// outstanding requests) is kept; a stopped node does nothing and nothing reaches it.
    ///
    /// # Errors
    /// [`Error::Io`] if deregistering fails (the socket is closed all the same).
    pub fn stop(&mut self) -> Result<()> {
        self.driver.stop()
    }

    /// Starts a stopped node again on the same address, with the state it had: requests that
    /// went unanswered meanwhile expire at the next step, as they would after a network
    /// partition. Does nothing if the node is running.
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound again (another socket took it) or the
    /// socket cannot be registered.
    pub fn start(&mut self) -> Result<()> {
        self.driver.start()
    }

    /// Restarts the node as a restarted process would: closes the socket, replaces the core
    /// with a fresh one (empty table, same configuration and seeds), and binds the same address
    /// again. [`stats`](Self::stats) keep counting across restarts; unpolled events are kept.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let mut core = HealthNode::new(self.config, nonce_rng());
        for &seed in &self.seeds {
            core.add_seed(seed)?;
        }
        let core = keyed(core, self.keyring().clone());
        let old = self.driver.replace_core(core);
        self.retired += old.inner().stats();
        self.retired_seal += old.stats();
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
        if !self.driver.is_running() {
            return Err(Error::stopped());
        }
        let now = self.driver.clock().now();
        let nonce = self.driver.core_mut().inner_mut().ping(now, addr)?;
        self.driver.send_now()?;
        Ok(nonce)
    }

    /// Takes the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<TimedEvent<Event>> {
        self.driver.poll_event()
    }

    /// The network table.
    pub fn hosts(&self) -> impl ExactSizeIterator<Item = &HostInfo> + '_ {
        self.driver.core().inner().hosts()
    }

    /// One host of the network table.
    pub fn host(&self, addr: SocketAddr) -> Option<&HostInfo> {
        self.driver.core().inner().host(addr)
    }

    /// The core's counters, summed over every core this node has had (see
    /// [`restart`](Self::restart)).
    pub fn stats(&self) -> Stats {
        let mut total = self.retired;
        total += self.driver.core().inner().stats();
        total
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        self.driver.socket_stats()
    }

    /// The protocol core.
    pub fn core(&self) -> &HealthNode<NonceRng, HOSTS, PENDING, QUEUE> {
        self.driver.core().inner()
    }

    /// The protocol core, to call what this adapter does not wrap. What the core queues is sent
    /// at the next [`process`](Self::process).
    pub fn core_mut(&mut self) -> &mut HealthNode<NonceRng, HOSTS, PENDING, QUEUE> {
        self.driver.core_mut().inner_mut()
    }
}

/// A boxed core is a core: a wrapper ([`Keyed`]) can hold a large core (a DHT node's fixed
/// storage) without moving it through the stack.
pub(crate) struct Boxed<C>(pub(crate) Box<C>);

impl<C> std::ops::Deref for Boxed<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> std::ops::DerefMut for Boxed<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

impl<C: sinew_proto::datagram::DatagramCore> sinew_proto::datagram::DatagramCore for Boxed<C> {
    type Event = C::Event;
    type Disposition = C::Disposition;

    fn handle_datagram(
        &mut self,
        now: sinew_proto::time::Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> C::Disposition {
        self.0.handle_datagram(now, from, datagram)
    }

    fn handle_timeout(&mut self, now: sinew_proto::time::Instant) {
        self.0.handle_timeout(now);
    }

    fn poll_transmit(
        &mut self,
        now: sinew_proto::time::Instant,
        buf: &mut [u8],
    ) -> Option<sinew_proto::datagram::Transmit> {
        self.0.poll_transmit(now, buf)
    }

    fn poll_timeout(&self) -> Option<sinew_proto::time::Instant> {
        self.0.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<C::Event> {
        self.0.poll_event()
    }
}

/// `core` behind `keyring`, with the operating system's CSPRNG for its sender ids.
pub(crate) fn keyed<C>(core: C, keyring: Keyring) -> Keyed<C, NonceRng> {
    Keyed::new(core, keyring, seal::Config::new(), nonce_rng())
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize> Adapter
    for UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        self.driver.register(registry, token)
    }

    fn process(&mut self) -> Result<()> {
        self.driver.process()
    }

    fn poll_timeout(&self) -> Option<StdInstant> {
        self.driver.poll_timeout()
    }
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize> Standalone
    for UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    fn registration(&mut self) -> &mut Registration {
        self.driver.registration()
    }
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize> fmt::Debug
    for UdpHealthNode<HOSTS, PENDING, QUEUE>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpHealthNode")
            .field("local_addr", &self.local_addr())
            .field("running", &self.is_running())
            .field("hosts", &self.hosts().len())
            .field("socket_stats", self.socket_stats())
            .finish_non_exhaustive()
    }
}
