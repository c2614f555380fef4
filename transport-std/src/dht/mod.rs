//! The DHT over mio sockets: [`UdpDhtNode`], a ring member, and [`UdpDhtClient`], a client
//! that reads, writes and locks keys through any member.
//!
//! Every DHT message of these sizes fits one datagram of at most
//! [`MAX_DATAGRAM_LEN`] bytes (checked at compile time), so
//! both travel on UDP, each a thin type over the crate's [`UdpDriver`]; the cores
//! ([`DhtNode`], [`DhtClient`](sinew_proto::dht::DhtClient)) do the retrying. A node can also serve clients over TCP
//! ([`UdpDhtNode::listen_tcp`]).

mod client;
mod tcp;

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::net::UdpSocket;
use mio::{Registry, Token};
use sinew_proto::dht::{
    Config, DhtNode, Event, LeafSet, MAX_DATAGRAM_LEN, MAX_MESSAGE_LEN, NodeAddr, NodeId,
    RequestId, Stats,
};
use sinew_proto::seal::{self, Keyed, Keyring};

use crate::node::Boxed;

use crate::adapter::{self, Registration, Standalone};
use crate::udp::nonce_rng;
use crate::{Adapter, Clock, Error, NonceRng, Result, SocketStats, UdpDriver};
pub use client::{LockOutcome, UdpDhtClient};
pub use tcp::{MAX_TCP_CONNECTIONS, TcpStats};
use tcp::{Tcp, as_client_request};

/// The address peers are told: the socket's, which must name a specific IP.
fn advertised<S: SocketLocal>(socket: &S) -> Result<SocketAddr> {
    let local = socket.local()?;
    if local.ip().is_unspecified() {
        return Err(Error::Io(io::Error::new(
            ErrorKind::InvalidInput,
            "bind a specific IP address: it is the address peers are told to reach this node at",
        )));
    }
    Ok(local)
}

/// A socket's local address, for [`advertised`].
trait SocketLocal {
    fn local(&self) -> io::Result<SocketAddr>;
}

impl SocketLocal for std::net::UdpSocket {
    fn local(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }
}

impl SocketLocal for UdpSocket {
    fn local(&self) -> io::Result<SocketAddr> {
        self.local_addr()
    }
}

/// A member of a DHT ring on a UDP socket, driven on the caller's thread: the sans-IO
/// [`DhtNode`] with a non-blocking [`mio::net::UdpSocket`].
///
/// A [`UdpDriver`] around the core (the crate's one datagram driver, as for
/// [`UdpHealthNode`](crate::UdpHealthNode)), plus an optional TCP side for clients
/// ([`listen_tcp`](Self::listen_tcp)). One [`process`](Self::process) step reads every waiting
/// datagram and TCP frame into the core (sending what it answers at once), lets time pass in it
/// and sends what it has to send; drive it standalone with [`run_until`](Self::run_until) or
/// [`register`](Self::register) it with your own `Poll` ([`Adapter`]). The core is boxed: its
/// storage is fixed-size and large.
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
/// // Ids bound to the addresses bound (the default, which peers check).
/// let mut a: UdpDhtNode = UdpDhtNode::bind("127.0.0.1:0".parse()?, None)?;
/// let mut b: UdpDhtNode = UdpDhtNode::bind("127.0.0.1:0".parse()?, None)?;
/// assert_eq!(a.local().id, NodeId::from_addr(a.local().addr));
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
    driver: UdpDriver<Keyed<Boxed<DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING>>, NonceRng>>,
    /// The TCP side, if on ([`listen_tcp`](Self::listen_tcp)).
    tcp: Option<Tcp>,
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    UdpDhtNode<L, KEYS, KEY, VALUE, PENDING>
{
    const FITS: () = assert!(
        DhtNode::<NonceRng, L, KEYS, KEY, VALUE, PENDING>::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN,
        "UdpDhtNode: every message of these sizes must fit one datagram"
    );

    /// Binds a UDP socket to `addr` (a specific IP; port 0 for an ephemeral port) and creates a
    /// ring of one with the default [`Config`].
    ///
    /// `id`: `None` for the id bound to the address bound ([`NodeId::from_addr`]), as every
    /// node requires of its peers by default ([`Config::bind_ids`]); a chosen id (`Some(id)` or
    /// `id`) turns [`Config::bind_ids`] off for this node — a closed ring whose members name
    /// themselves, where every member must do the same (its peers would refuse the id).
    ///
    /// # Errors
    /// [`Error::Io`] if the socket cannot be bound, or of kind `InvalidInput` for an
    /// unspecified IP (peers must be told where to reach the node).
    pub fn bind(addr: SocketAddr, id: impl Into<Option<NodeId>>) -> Result<Self> {
        Self::bind_with(addr, id, |_| {})
    }

    /// Like [`bind`](Self::bind), with the [`Config`] adjusted by `configure` (its
    /// `local` is set to the id and the bound address before and after; `bind_ids` is set as
    /// `bind` says before, and `configure` may change it).
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn bind_with(
        addr: SocketAddr,
        id: impl Into<Option<NodeId>>,
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
        id: impl Into<Option<NodeId>>,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        Self::from_std_keyed(socket, id, Keyring::new(), configure)
    }

    /// Like [`bind_with`](Self::bind_with), keyed with `keyring`: every datagram sealed with
    /// its primary key, only datagrams sealed with one of its keys taken (see
    /// [`sinew_proto::seal`]; an empty keyring: unkeyed). A keyed node serves no TCP
    /// ([`listen_tcp`](Self::listen_tcp) refuses: frames are not sealed).
    ///
    /// # Errors
    /// As [`bind`](Self::bind); of kind `InvalidInput` if the sizes let a message grow past
    /// [`seal::MAX_PLAINTEXT_LEN`] (478 bytes), which could not be sealed.
    pub fn bind_keyed(
        addr: SocketAddr,
        id: impl Into<Option<NodeId>>,
        keyring: Keyring,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        Self::from_std_keyed(std::net::UdpSocket::bind(addr)?, id, keyring, configure)
    }

    /// Like [`from_std`](Self::from_std), keyed (see [`bind_keyed`](Self::bind_keyed)).
    ///
    /// # Errors
    /// As [`bind_keyed`](Self::bind_keyed).
    pub fn from_std_keyed(
        socket: std::net::UdpSocket,
        id: impl Into<Option<NodeId>>,
        keyring: Keyring,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self> {
        if !keyring.is_empty()
            && DhtNode::<NonceRng, L, KEYS, KEY, VALUE, PENDING>::MAX_TRANSMIT_LEN
                > seal::MAX_PLAINTEXT_LEN
        {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UdpDhtNode: with these sizes a message may not fit a sealed datagram",
            )));
        }
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        socket.set_nonblocking(true)?;
        let addr = advertised(&socket)?;
        let chosen = id.into();
        let local = NodeAddr {
            id: chosen.unwrap_or_else(|| NodeId::from_addr(addr)),
            addr,
        };
        let mut config = Config::new(local).with_bind_ids(chosen.is_none());
        configure(&mut config);
        config.local = local;
        let core = Box::new(crate::node::keyed(
            Boxed(Box::new(DhtNode::new(config, nonce_rng()))),
            keyring,
        ));
        Ok(UdpDhtNode {
            driver: UdpDriver::with_socket(UdpSocket::from_std(socket), core, Clock::new())?,
            tcp: None,
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
    /// Registered with a `Poll` (before or after this call), the node uses the tokens `token`
    /// (UDP), `token + 1` (the listener) and `token + 2 .. token + 2 + MAX_TCP_CONNECTIONS`
    /// (connections), all within [`TOKEN_SPAN`](crate::TOKEN_SPAN).
    ///
    /// # Errors
    /// [`Error::Io`] if the address cannot be bound, TCP is already on, or the node is stopped.
    pub fn listen_tcp(&mut self, addr: SocketAddr) -> Result<SocketAddr> {
        if self.tcp.is_some() {
            return Err(Error::Io(io::Error::other("listen_tcp: TCP is already on")));
        }
        if !self.driver.core().keyring().is_empty() {
            return Err(Error::Io(io::Error::other(
                "listen_tcp: a keyed node takes no TCP (frames are not sealed)",
            )));
        }
        if !self.driver.is_running() {
            return Err(Error::stopped());
        }
        let mut tcp = Tcp::bind(addr)?;
        let bound = tcp.local_addr()?;
        tcp.register(self.driver.registration())?;
        self.tcp = Some(tcp);
        Ok(bound)
    }

    /// What the TCP side did (all zero without [`listen_tcp`](Self::listen_tcp)).
    pub fn tcp_stats(&self) -> TcpStats {
        self.tcp.as_ref().map(|t| t.stats).unwrap_or_default()
    }

    /// This node: its id and the address it is bound to.
    pub fn local(&self) -> NodeAddr {
        self.driver.core().inner().local()
    }

    /// Whether the node is in a ring (a ring of one before it joins).
    pub fn in_ring(&self) -> bool {
        self.driver.core().inner().in_ring()
    }

    /// The node's leaf set: its neighbours on each side.
    pub fn leaf_set(&self) -> &LeafSet<L> {
        self.driver.core().inner().leaf_set()
    }

    /// Joins the ring that `entry` (any member) is in; the outcome is [`Event::Joined`] or
    /// [`Event::JoinFailed`].
    ///
    /// # Errors
    /// [`Error::Proto`] if the core refuses (see [`DhtNode::join`]); [`Error::Io`] if stopped.
    pub fn join(&mut self, entry: SocketAddr) -> Result<()> {
        let now = self.driver.clock().now();
        self.driver.core_mut().inner_mut().join(now, entry)?;
        self.send_now()
    }

    /// Leaves the ring gracefully: hands the neighbours to each other and its keys to its
    /// successor (see [`DhtNode::leave`]). Keep processing a little while so that the Leave
    /// messages go out.
    ///
    /// # Errors
    /// [`Error::Io`] if stopped.
    pub fn leave(&mut self) -> Result<()> {
        let now = self.driver.clock().now();
        self.driver.core_mut().inner_mut().leave(now);
        self.send_now()
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
        let now = self.driver.clock().now();
        self.driver
            .core_mut()
            .inner_mut()
            .handle_peer_down(now, addr);
        self.send_now()
    }

    /// Reads `key` at its owner; the outcome is [`Event::GetDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::Proto`] if the core refuses it (too large, too many outstanding).
    pub fn get(&mut self, key: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock().now();
        let id = self.driver.core_mut().inner_mut().get(now, key)?;
        self.send_now()?;
        Ok(id)
    }

    /// Stores `value` under `key` at its owner and its replicas; the outcome is
    /// [`Event::PutDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock().now();
        let id = self.driver.core_mut().inner_mut().put(now, key, value)?;
        self.send_now()?;
        Ok(id)
    }

    /// Takes the lock on `key` for this node for `lease`; the outcome is [`Event::Locked`],
    /// [`Event::LockDenied`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(&mut self, key: &[u8], lease: Duration) -> Result<RequestId> {
        let now = self.driver.clock().now();
        let id = self.driver.core_mut().inner_mut().lock(now, key, lease)?;
        self.send_now()?;
        Ok(id)
    }

    /// Releases this node's lock on `key`; the outcome is [`Event::Unlocked`] or
    /// [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn unlock(&mut self, key: &[u8]) -> Result<RequestId> {
        let now = self.driver.clock().now();
        let id = self.driver.core_mut().inner_mut().unlock(now, key)?;
        self.send_now()?;
        Ok(id)
    }

    /// Sends what the core queued now, UDP or (to a client connected over TCP) as a frame.
    fn send_now(&mut self) -> Result<()> {
        let tcp = &mut self.tcp;
        self.driver
            .send_now_with(&mut |to, message| tcp.as_mut().is_some_and(|t| t.queue(to, message)))?;
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.write_all(self.driver.registration());
        }
        Ok(())
    }

    /// One step: reads every waiting datagram and TCP frame into the core, lets time pass,
    /// sends what the core has to send. Never blocks; a stopped node does nothing.
    ///
    /// # Errors
    /// [`Error::Io`] if a socket fails in a way that is not about one datagram or connection.
    pub fn process(&mut self) -> Result<()> {
        let tcp = &mut self.tcp;
        self.driver
            .process_with(&mut |to, message| tcp.as_mut().is_some_and(|t| t.queue(to, message)))?;
        let Some(tcp) = self.tcp.as_mut() else {
            return Ok(());
        };
        tcp.accept(self.driver.registration())?;
        let mut request = [0u8; MAX_MESSAGE_LEN];
        for (peer, frame) in tcp.read_frames() {
            // TCP carries client requests; their answers go back on the connection.
            let Some(len) = as_client_request(&frame, peer, &mut request) else {
                tcp.stats.not_requests += 1;
                continue;
            };
            // The connection's handshake was a round trip: its peer receives at that address.
            self.driver.core_mut().inner_mut().handle_validated(peer);
            self.driver
                .handle_other(peer, &request[..len], &mut |to, message| {
                    tcp.queue(to, message)
                })?;
        }
        tcp.write_all(self.driver.registration());
        Ok(())
    }

    /// When [`process`](Self::process) next has work even if no datagram arrives, or `None`.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.driver.poll_timeout()
    }

    /// Registers the node's sockets with a caller's `Poll` under tokens from `token` (see
    /// [`Adapter::register`] and [`listen_tcp`](Self::listen_tcp)); drive the node with
    /// [`process`](Self::process) when one is ready or [`poll_timeout`](Self::poll_timeout)
    /// has come.
    ///
    /// # Errors
    /// [`Error::Io`] if the registration fails.
    pub fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.deregister(self.driver.registration())?;
        }
        self.driver.register(registry, token)?;
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.register(self.driver.registration())?;
        }
        Ok(())
    }

    /// Runs the node on this thread for `duration` with a `Poll` of its own.
    ///
    /// # Errors
    /// As [`process`](Self::process); [`Error::Io`] if the node is
    /// [`register`](Self::register)ed with a caller's `Poll`.
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the node with a `Poll` of its own until `done` (asked after every step, with the
    /// node) says so or `timeout` passes; returns whether `done` said so.
    ///
    /// # Errors
    /// As [`run_for`](Self::run_for).
    pub fn run_until(
        &mut self,
        timeout: Duration,
        done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        adapter::run_until(self, timeout, done)
    }

    /// Stops the node as a crash would: closes its sockets without a word to its neighbours.
    pub fn stop(&mut self) {
        if let Some(mut tcp) = self.tcp.take() {
            let _ = tcp.deregister(self.driver.registration());
        }
        let _ = self.driver.stop();
    }

    /// Whether the node still has its socket.
    pub fn is_running(&self) -> bool {
        self.driver.is_running()
    }

    /// Takes the next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        self.driver.poll_event().map(|timed| timed.event)
    }

    /// The core's counters.
    pub fn stats(&self) -> &Stats {
        self.driver.core().inner().stats()
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        self.driver.socket_stats()
    }

    /// The seal layer's counters (sealed, opened, and every datagram dropped before the core
    /// saw it).
    pub fn seal_stats(&self) -> &seal::Stats {
        self.driver.core().stats()
    }

    /// The keyring, to install, use and remove keys while the node runs.
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        self.driver.core_mut().keyring_mut()
    }

    /// The protocol core.
    pub fn core(&self) -> &DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING> {
        self.driver.core().inner()
    }

    /// The protocol core, to call what this adapter does not wrap; what it queues is sent at
    /// the next [`process`](Self::process).
    pub fn core_mut(&mut self) -> &mut DhtNode<NonceRng, L, KEYS, KEY, VALUE, PENDING> {
        self.driver.core_mut().inner_mut()
    }
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    Adapter for UdpDhtNode<L, KEYS, KEY, VALUE, PENDING>
{
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()> {
        UdpDhtNode::register(self, registry, token)
    }

    fn process(&mut self) -> Result<()> {
        UdpDhtNode::process(self)
    }

    fn poll_timeout(&self) -> Option<StdInstant> {
        UdpDhtNode::poll_timeout(self)
    }
}

impl<const L: usize, const KEYS: usize, const KEY: usize, const VALUE: usize, const PENDING: usize>
    Standalone for UdpDhtNode<L, KEYS, KEY, VALUE, PENDING>
{
    fn registration(&mut self) -> &mut Registration {
        self.driver.registration()
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
            .field("socket_stats", self.socket_stats())
            .finish_non_exhaustive()
    }
}
