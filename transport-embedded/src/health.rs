//! The health protocol on an embedded-nal UDP stack: a [`HealthNode`] bound to one socket.

use core::fmt;
use core::net::SocketAddr;

use embedded_nal::{UdpFullStack, nb};
use rand_core::CryptoRng;
use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN, Transmit};
use sinew_proto::health::{Event, HealthNode};
use sinew_proto::nonce::Nonce;
use sinew_proto::seal::{self, Keyed, Keyring};
use sinew_proto::time::Instant;

use crate::{Error, Result};

/// Size of the receive buffer: one byte more than the largest valid datagram, so that a longer
/// datagram that a stack truncates to the buffer still arrives too long and is refused, instead
/// of being cut to a valid length and accepted.
pub const RX_BUFFER_LEN: usize = MAX_DATAGRAM_LEN + 1;
/// Size of the transmit buffer: the largest datagram the protocol sends.
pub const TX_BUFFER_LEN: usize = MAX_DATAGRAM_LEN;
/// The most datagrams one [`HealthEndpoint::process`] reads before it lets time pass and
/// transmits, so that a flood of requests cannot starve the node's own checks.
pub const READ_BURST: usize = 16;

/// The buffers a [`HealthEndpoint`] works in, owned by the caller (a `static`, a local of `main`,
/// a field of the application's state): the adapter allocates nothing.
#[derive(Clone, Debug)]
pub struct HealthBuffers {
    pub(crate) rx: [u8; RX_BUFFER_LEN],
    pub(crate) tx: [u8; TX_BUFFER_LEN],
}

impl HealthBuffers {
    /// Zeroed buffers (usable in a `static`).
    pub const fn new() -> HealthBuffers {
        HealthBuffers {
            rx: [0; RX_BUFFER_LEN],
            tx: [0; TX_BUFFER_LEN],
        }
    }
}

impl Default for HealthBuffers {
    fn default() -> HealthBuffers {
        HealthBuffers::new()
    }
}

impl HealthBuffers {
    /// The datagram a receive of `len` bytes left in the receive buffer. A stack that reports
    /// the untruncated length of a long datagram still hands the node more than
    /// [`MAX_DATAGRAM_LEN`] bytes, which it refuses.
    pub(crate) fn received(&self, len: usize) -> &[u8] {
        &self.rx[..len.min(RX_BUFFER_LEN)]
    }

    /// The datagram the node wrote into the transmit buffer for `transmit`.
    pub(crate) fn transmitted(&self, transmit: &Transmit) -> &[u8] {
        &self.tx[..transmit.len.min(TX_BUFFER_LEN)]
    }
}

/// A [`HealthNode`] driven over one UDP socket of an embedded-nal [`UdpFullStack`].
///
/// The endpoint only moves bytes and time: it reads datagrams from the socket into the node,
/// lets time pass, and sends what the node writes. The protocol itself (nonces, lives, the
/// network table, discovery) is the node's. The stack is passed to every call rather than owned,
/// so that one stack can serve this endpoint and other clients; always pass the stack the socket
/// came from.
///
/// Call [`process`](Self::process) whenever a datagram may have arrived and at the latest at the
/// instant it returns; a call too many is harmless.
///
/// Keyed ([`bind_keyed`](Self::bind_keyed)), every datagram is sealed with the keyring's primary
/// key and only datagrams sealed with one of its keys reach the node ([`sinew_proto::seal`]);
/// `K` is the generator of the seal's sender ids. Unkeyed, sealed datagrams are dropped and
/// counted in [`seal_stats`](Self::seal_stats).
pub struct HealthEndpoint<
    'b,
    S: UdpFullStack,
    R,
    const HOSTS: usize = 32,
    const PENDING: usize = 32,
    const QUEUE: usize = 16,
    K = R,
> {
    node: Keyed<HealthNode<R, HOSTS, PENDING, QUEUE>, K, 4, 8>,
    socket: S::UdpSocket,
    buffers: &'b mut HealthBuffers,
    /// A datagram in `buffers.tx` that the stack refused with `WouldBlock`.
    stalled: Option<Transmit>,
}

impl<'b, S, R, const HOSTS: usize, const PENDING: usize, const QUEUE: usize>
    HealthEndpoint<'b, S, R, HOSTS, PENDING, QUEUE>
where
    S: UdpFullStack,
    R: CryptoRng,
{
    /// Opens a socket on `stack`, binds it to `port` and drives `node` over it.
    ///
    /// # Errors
    /// [`Error::Network`] if the stack cannot open or bind the socket (the socket is closed again).
    pub fn bind(
        stack: &mut S,
        port: u16,
        node: HealthNode<R, HOSTS, PENDING, QUEUE>,
        buffers: &'b mut HealthBuffers,
    ) -> Result<Self, S::Error> {
        let socket = open(stack, port)?;
        Ok(HealthEndpoint::from_socket(socket, node, buffers))
    }

    /// Drives `node` over a socket the caller already bound.
    pub fn from_socket(
        socket: S::UdpSocket,
        node: HealthNode<R, HOSTS, PENDING, QUEUE>,
        buffers: &'b mut HealthBuffers,
    ) -> Self {
        HealthEndpoint::with_core(socket, Keyed::unkeyed(node), buffers)
    }
}

impl<'b, S, R, const HOSTS: usize, const PENDING: usize, const QUEUE: usize, K>
    HealthEndpoint<'b, S, R, HOSTS, PENDING, QUEUE, K>
where
    S: UdpFullStack,
    R: CryptoRng,
    K: CryptoRng,
{
    /// Like [`bind`](HealthEndpoint::bind), keyed with `keyring` (see [`sinew_proto::seal::Keyed`]):
    /// every datagram sealed, only sealed datagrams taken. `rng` draws the seal's sender ids
    /// (a generator of its own, seeded from the board's entropy like the node's).
    ///
    /// # Errors
    /// [`Error::Network`] if the stack cannot open or bind the socket (the socket is closed again).
    pub fn bind_keyed(
        stack: &mut S,
        port: u16,
        node: HealthNode<R, HOSTS, PENDING, QUEUE>,
        keyring: Keyring,
        rng: K,
        buffers: &'b mut HealthBuffers,
    ) -> Result<Self, S::Error> {
        let socket = open(stack, port)?;
        let core = Keyed::new(node, keyring, seal::Config::new(), rng);
        Ok(HealthEndpoint::with_core(socket, core, buffers))
    }

    pub(crate) fn with_core(
        socket: S::UdpSocket,
        node: Keyed<HealthNode<R, HOSTS, PENDING, QUEUE>, K, 4, 8>,
        buffers: &'b mut HealthBuffers,
    ) -> Self {
        HealthEndpoint {
            node,
            socket,
            buffers,
            stalled: None,
        }
    }

    /// Does all the work that is due at `now` without blocking: reads up to [`READ_BURST`]
    /// datagrams into the node, lets time pass ([`HealthNode::handle_timeout`]), and sends every
    /// datagram the node has to send.
    ///
    /// Returns when to call again at the latest: `Some(now)` if work is left (a send the stack
    /// refused with `WouldBlock`, more datagrams than one burst), the node's
    /// [`poll_timeout`](HealthNode::poll_timeout) otherwise, `None` when only a datagram can
    /// wake the node.
    ///
    /// # Errors
    /// [`Error::Network`] when the stack fails to receive or send (the datagram being sent is
    /// dropped; its check will count as missed). The endpoint stays usable: log and call again.
    pub fn process(&mut self, stack: &mut S, now: Instant) -> Result<Option<Instant>, S::Error> {
        let drained = self.receive(stack, now)?;
        self.node.handle_timeout(now);
        if !self.transmit(stack, now)? || !drained {
            return Ok(Some(now));
        }
        Ok(self.node.poll_timeout())
    }

    /// Reads datagrams until the stack has none (`true`) or the burst is used up (`false`).
    fn receive(&mut self, stack: &mut S, now: Instant) -> Result<bool, S::Error> {
        for _ in 0..READ_BURST {
            match stack.receive(&mut self.socket, &mut self.buffers.rx) {
                Ok((len, from)) => {
                    let datagram = self.buffers.received(len);
                    let _ = self.node.handle_datagram(now, canonical(from), datagram);
                }
                Err(nb::Error::WouldBlock) => return Ok(true),
                Err(nb::Error::Other(error)) => return Err(Error::Network(error)),
            }
        }
        Ok(false)
    }

    /// Sends the stalled datagram, then everything the node has; `false` if the stack would block.
    fn transmit(&mut self, stack: &mut S, now: Instant) -> Result<bool, S::Error> {
        loop {
            let transmit = match self.stalled.take() {
                Some(transmit) => transmit,
                None => match self.node.poll_transmit(now, &mut self.buffers.tx) {
                    Some(transmit) => transmit,
                    None => return Ok(true),
                },
            };
            let datagram = self.buffers.transmitted(&transmit);
            match stack.send_to(&mut self.socket, transmit.destination, datagram) {
                Ok(()) => {}
                Err(nb::Error::WouldBlock) => {
                    self.stalled = Some(transmit);
                    return Ok(false);
                }
                Err(nb::Error::Other(error)) => return Err(Error::Network(error)),
            }
        }
    }

    /// Sends one health check to `addr` at the next [`process`](Self::process); its answer comes
    /// back as [`Event::Pong`] or [`Event::PingTimeout`] from [`poll_event`](Self::poll_event).
    ///
    /// # Errors
    /// [`Error::Proto`] with [`Capacity`](sinew_proto::Error::Capacity) when the node has too many
    /// requests outstanding.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Result<Nonce, S::Error> {
        Ok(self.node.inner_mut().ping(now, addr)?)
    }

    /// Adds a seed, probed at the next [`process`](Self::process) and retried until it answers.
    ///
    /// # Errors
    /// [`Error::Proto`] with [`Capacity`](sinew_proto::Error::Capacity) beyond
    /// `sinew_proto::health`'s seed limit.
    pub fn add_seed(&mut self, addr: SocketAddr) -> Result<(), S::Error> {
        Ok(self.node.inner_mut().add_seed(addr)?)
    }

    /// The next event of the node (hosts added, health changes, pongs), if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.node.poll_event()
    }

    /// Closes the socket and gives the node back.
    ///
    /// # Errors
    /// [`Error::Network`] if the stack fails to close the socket.
    pub fn close(self, stack: &mut S) -> Result<HealthNode<R, HOSTS, PENDING, QUEUE>, S::Error> {
        stack.close(self.socket).map_err(Error::Network)?;
        Ok(self.node.into_inner())
    }
}

impl<
    S: UdpFullStack,
    R: CryptoRng,
    const HOSTS: usize,
    const PENDING: usize,
    const QUEUE: usize,
    K: CryptoRng,
> HealthEndpoint<'_, S, R, HOSTS, PENDING, QUEUE, K>
{
    /// The node: its network table ([`hosts`](HealthNode::hosts)), its
    /// [`stats`](HealthNode::stats).
    pub fn node(&self) -> &HealthNode<R, HOSTS, PENDING, QUEUE> {
        self.node.inner()
    }

    /// The node, to call anything the endpoint does not wrap.
    pub fn node_mut(&mut self) -> &mut HealthNode<R, HOSTS, PENDING, QUEUE> {
        self.node.inner_mut()
    }

    /// The seal layer's counters: sealed, opened, and every datagram dropped before the node
    /// saw it.
    pub fn seal_stats(&self) -> &seal::Stats {
        self.node.stats()
    }

    /// The keyring, to install, use and remove keys while running.
    pub fn keyring_mut(&mut self) -> &mut Keyring {
        self.node.keyring_mut()
    }

    /// The socket.
    pub fn socket(&self) -> &S::UdpSocket {
        &self.socket
    }

    /// Whether a datagram waits for the stack to take it (it refused it with `WouldBlock`).
    pub fn is_stalled(&self) -> bool {
        self.stalled.is_some()
    }
}

impl<
    S: UdpFullStack,
    R: CryptoRng,
    const HOSTS: usize,
    const PENDING: usize,
    const QUEUE: usize,
    K: CryptoRng,
> fmt::Debug for HealthEndpoint<'_, S, R, HOSTS, PENDING, QUEUE, K>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthEndpoint")
            .field("stats", self.node.inner().stats())
            .field("seal", self.node.stats())
            .field("stalled", &self.stalled)
            .finish_non_exhaustive()
    }
}

/// Opens a socket on `stack` and binds it to `port` (closing it again if the bind fails).
fn open<S: UdpFullStack>(stack: &mut S, port: u16) -> Result<S::UdpSocket, S::Error> {
    let mut socket = stack.socket().map_err(Error::Network)?;
    if let Err(error) = stack.bind(&mut socket, port) {
        let _ = stack.close(socket);
        return Err(Error::Network(error));
    }
    Ok(socket)
}

/// A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses (`[::ffff:a.b.c.d]:p`);
/// the node must see them as the IPv4 addresses it sent to, or no response would match.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use core::net::SocketAddr;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:7000".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let v6: SocketAddr = "[::1]:7000".parse().unwrap();
        assert_eq!(canonical(mapped), v4);
        assert_eq!(canonical(v4), v4);
        assert_eq!(canonical(v6), v6);
    }
}
