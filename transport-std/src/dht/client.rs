//! [`UdpDhtClient`]: the sans-IO [`DhtClient`] on the crate's [`UdpDriver`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::net::UdpSocket;
use mio::{Registry, Token};
use sinew_proto::dht::{
    ClientConfig, ClientStats, DhtClient, Event, LockToken, MAX_DATAGRAM_LEN, NodeAddr, NodeId,
    RequestError, RequestId,
};
use sinew_proto::seal::{self, Keyed, Keyring};

use crate::node::Boxed;
use sinew_proto::time::Instant;

use super::advertised;
use crate::adapter::{self, Registration, Standalone};
use crate::udp::nonce_rng;
use crate::{Adapter, Clock, Error, NonceRng, Result, SocketStats, UdpDriver};

/// The outcome of [`UdpDhtClient::lock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockOutcome {
    /// The lock is the holder's until this instant at the latest (counted from when the
    /// request was sent).
    Locked {
        /// When the lease ends unless renewed.
        until: StdInstant,
    },
    /// Someone else holds it (who is not told), or the owner has just taken the key over and
    /// grants no lock for a while.
    Denied {
        /// How long until that lease (or grace period) ends, at the latest.
        remaining: Duration,
    },
}

/// A client of a DHT ring on a UDP socket: [`DhtClient`] talking to one member, which routes
/// every request to the key's owner and relays the answer — or, with
/// [`ClientConfig::one_hop`] set in [`connect_with`](Self::connect_with), sending each request
/// straight to the key's owner as that member's view of the ring says (see [`DhtClient`],
/// *One hop*). A one-hop client's socket is not connected to the member (answers come from
/// every owner), so it takes datagrams from any address; the core matches each answer by
/// message id and the address the request went to, and drops the rest.
///
/// The blocking methods ([`get`](Self::get), [`put`](Self::put), [`lock`](Self::lock),
/// [`unlock`](Self::unlock)) send one request and wait for its outcome; for pipelining,
/// [`submit`](Self::submit) requests on the core, then [`process`](Self::process) (or
/// [`register`](Self::register) it with your own `Poll`: it is an [`Adapter`]) and
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
    driver: UdpDriver<Keyed<Boxed<DhtClient<NonceRng, PENDING, KEY, VALUE>>, NonceRng>>,
    node: SocketAddr,
    /// Connected with [`ClientConfig::one_hop`]: the socket takes answers from every owner.
    one_hop_socket: bool,
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
        Self::connect_keyed(node, Keyring::new(), configure)
    }

    /// Like [`connect_with`](Self::connect_with), keyed with `keyring`: every request sealed
    /// with its primary key, only answers sealed with one of its keys taken (see
    /// [`sinew_proto::seal`]; an empty keyring: unkeyed). The node must be keyed too.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); of kind `InvalidInput` if the sizes let a message grow
    /// past [`seal::MAX_PLAINTEXT_LEN`] (478 bytes).
    pub fn connect_keyed(
        node: SocketAddr,
        keyring: Keyring,
        configure: impl FnOnce(&mut ClientConfig),
    ) -> Result<Self> {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        if !keyring.is_empty()
            && DhtClient::<NonceRng, PENDING, KEY, VALUE>::MAX_TRANSMIT_LEN
                > seal::MAX_PLAINTEXT_LEN
        {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UdpDhtClient: with these sizes a message may not fit a sealed datagram",
            )));
        }
        let any: SocketAddr = if node.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut config = ClientConfig::new(NodeAddr {
            id: NodeId::default(),
            addr: node,
        });
        configure(&mut config);
        let socket = if config.one_hop {
            // Answers come from every owner: no connected socket. A connected probe picks the
            // source address the nodes will see, and the socket is bound to it.
            let probe = std::net::UdpSocket::bind(any)?;
            probe.connect(node)?;
            UdpSocket::bind(SocketAddr::new(probe.local_addr()?.ip(), 0))?
        } else {
            let socket = UdpSocket::bind(any)?;
            // Connecting picks the source address the node will see (and filters other
            // senders).
            socket.connect(node)?;
            socket
        };
        let mut rng = nonce_rng();
        let local = NodeAddr {
            id: NodeId::random(&mut rng),
            addr: advertised(&socket)?,
        };
        config.local = local;
        let one_hop_socket = config.one_hop;
        let core = Box::new(crate::node::keyed(
            Boxed(Box::new(DhtClient::new(config, rng))),
            keyring,
        ));
        Ok(UdpDhtClient {
            driver: UdpDriver::with_socket(socket, core, Clock::new())?,
            node,
            one_hop_socket,
        })
    }

    /// Registers the socket with a caller's `Poll` under `token` (see [`Adapter::register`]),
    /// to drive the client with [`submit`](Self::submit), [`process`](Self::process) and
    /// [`poll_event`](Self::poll_event) from that poll loop. The blocking methods then refuse
    /// to run (they would need a `Poll` of their own).
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
        self.driver.core().inner().config().local
    }

    /// Reads `key`: its value, or `None` if the ring stores none.
    ///
    /// # Errors
    /// [`Error::Dht`] if the ring refused it or did not answer in time, and as
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

    /// Takes (or renews) the lock on `key` with the secret `token` for `lease`; renew and
    /// release it with the same token, and keep it secret: whoever knows it can release the
    /// lock ([`LockToken::random`], or [`LockToken::derive`] from a secret of yours).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(&mut self, key: &[u8], token: LockToken, lease: Duration) -> Result<LockOutcome> {
        let node = self.node;
        match self.call(|c, now| c.lock(now, node, key, token, lease))? {
            Event::Locked { until, .. } => Ok(LockOutcome::Locked {
                until: self
                    .driver
                    .clock()
                    .to_std(until)
                    .unwrap_or_else(StdInstant::now),
            }),
            Event::LockDenied { remaining, .. } => Ok(LockOutcome::Denied { remaining }),
            other => Err(unexpected(other)),
        }
    }

    /// Releases the lock on `key` held with `token`.
    ///
    /// # Errors
    /// [`Error::Dht`] with [`ErrorCode::NotHolder`](sinew_proto::dht::ErrorCode::NotHolder) if
    /// the lock is not held with `token`, and as [`get`](Self::get).
    pub fn unlock(&mut self, key: &[u8], token: LockToken) -> Result<()> {
        let node = self.node;
        match self.call(|c, now| c.unlock(now, node, key, token))? {
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
        let now = self.driver.clock().now();
        let id = request(self.driver.core_mut().inner_mut(), now).map_err(Error::Proto)?;
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
        adapter::run_until(self, Duration::MAX, |client| {
            let events = client.driver.events_mut();
            match events.iter().position(|e| e.event.request_id() == Some(id)) {
                Some(i) => {
                    outcome = events.remove(i).map(|timed| timed.event);
                    true
                }
                None => false,
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
        self.driver.process()
    }

    /// Waits (with a `Poll` of the client's own) until an answer arrives, the core's next
    /// timeout comes or `timeout` passes, then [`process`](Self::process)es.
    ///
    /// # Errors
    /// As [`process`](Self::process).
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        adapter::wait_and_process(self, timeout)
    }

    /// Takes the next outcome, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        self.driver.poll_event().map(|timed| timed.event)
    }

    /// Turns one-hop requests ([`ClientConfig::one_hop`]) off, or back on; off forgets the
    /// view, and requests go through the node given again.
    ///
    /// # Errors
    /// [`Error::Io`] of kind `Unsupported` to turn them on for a client connected without
    /// `one_hop`: its socket is connected to the node given and takes answers from it alone.
    pub fn set_one_hop(&mut self, on: bool) -> Result<()> {
        if on && !self.one_hop_socket {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "UdpDhtClient: connected without one_hop, its socket takes answers from the given node only",
            )));
        }
        self.driver.core_mut().inner_mut().set_one_hop(on);
        Ok(())
    }

    /// The seal layer's counters (sealed, opened, and every answer dropped before the core
    /// saw it).
    pub fn seal_stats(&self) -> &seal::Stats {
        self.driver.core().stats()
    }

    /// The core's counters.
    pub fn stats(&self) -> &ClientStats {
        self.driver.core().inner().stats()
    }

    /// The socket's counters.
    pub fn socket_stats(&self) -> &SocketStats {
        self.driver.socket_stats()
    }
}

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> Adapter
    for UdpDhtClient<PENDING, KEY, VALUE>
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

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> Standalone
    for UdpDhtClient<PENDING, KEY, VALUE>
{
    fn registration(&mut self) -> &mut Registration {
        self.driver.registration()
    }
}

impl<const PENDING: usize, const KEY: usize, const VALUE: usize> fmt::Debug
    for UdpDhtClient<PENDING, KEY, VALUE>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpDhtClient")
            .field("node", &self.node)
            .field("local", &self.local())
            .field("outstanding", &self.driver.core().inner().outstanding())
            .finish_non_exhaustive()
    }
}

fn unexpected<const VALUE: usize>(event: Event<VALUE>) -> Error {
    Error::Io(io::Error::other(format!("unexpected outcome {event:?}")))
}
