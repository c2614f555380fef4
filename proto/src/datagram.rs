//! What every datagram protocol core of this crate shares: the size limit, the transmit record,
//! and [`DatagramCore`], the one small interface through which an adapter drives any of them.
//!
//! A datagram core is a sans-IO state machine in the style of quinn-proto: datagrams come in
//! through [`handle_datagram`](DatagramCore::handle_datagram), time passes through
//! [`handle_timeout`](DatagramCore::handle_timeout), datagrams go out through
//! [`poll_transmit`](DatagramCore::poll_transmit) and what the application should know through
//! [`poll_event`](DatagramCore::poll_event); [`poll_timeout`](DatagramCore::poll_timeout) says
//! when time must next be handed in. An adapter that moves bytes for one core moves them for all:
//! [`HealthNode`](crate::health::HealthNode), [`DhtNode`](crate::dht::DhtNode) and
//! [`DhtClient`](crate::dht::DhtClient) implement it, and so does
//! [`Keyed`](crate::seal::Keyed), which seals any of them.
//!
//! The smallest driver, over any "socket" (here a vector standing for the network):
//!
//! ```
//! use core::net::SocketAddr;
//! use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
//! use sinew_proto::time::Instant;
//!
//! fn step<C: DatagramCore>(
//!     core: &mut C,
//!     now: Instant,
//!     inbox: &[(SocketAddr, &[u8])],
//!     outbox: &mut Vec<(SocketAddr, Vec<u8>)>,
//! ) {
//!     for (from, datagram) in inbox {
//!         core.handle_datagram(now, *from, datagram);
//!     }
//!     core.handle_timeout(now);
//!     let mut buf = [0u8; MAX_DATAGRAM_LEN];
//!     while let Some(t) = core.poll_transmit(now, &mut buf) {
//!         outbox.push((t.destination, buf[..t.len].to_vec()));
//!     }
//! }
//! # use sinew_proto::health::{Config, HealthNode};
//! # let rng = sinew_proto::rand_core::UnwrapErr(FixedRng(1));
//! # struct FixedRng(u64);
//! # impl sinew_proto::rand_core::TryRng for FixedRng {
//! #     type Error = core::convert::Infallible;
//! #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
//! #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { self.0 += 1; Ok(self.0) }
//! #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
//! #         for b in d { *b = self.try_next_u32()? as u8; } Ok(()) }
//! # }
//! # impl sinew_proto::rand_core::TryCryptoRng for FixedRng {}
//! # let mut node: HealthNode<_> = HealthNode::new(Config::default(), rng);
//! # let seed: SocketAddr = "192.0.2.1:7000".parse().unwrap();
//! # node.add_seed(seed).unwrap();
//! # let mut out = Vec::new();
//! # step(&mut node, Instant::ZERO, &[], &mut out);
//! # assert_eq!(out[0].0, seed);
//! ```

use core::net::SocketAddr;

use crate::time::Instant;

/// The largest datagram any sinew protocol sends or accepts: 508 bytes, the UDP payload that
/// every IPv4 path carries without fragmentation (576-byte minimum reassembly buffer, less a
/// 60-byte IP header and the 8-byte UDP header).
pub const MAX_DATAGRAM_LEN: usize = 508;

/// A datagram for the adapter to send: `len` bytes at the start of the buffer given to
/// [`poll_transmit`](DatagramCore::poll_transmit), to `destination`.
///
/// `#[non_exhaustive]`: details a driver may honour (a source address, say) may be added; a
/// core of your own makes one with [`Transmit::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// How many bytes of the buffer to send.
    pub len: usize,
}

impl Transmit {
    /// `len` bytes to `destination`.
    pub const fn new(destination: SocketAddr, len: usize) -> Transmit {
        Transmit { destination, len }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Transmit {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "{=usize} bytes to {}",
            self.len,
            defmt::Display2Format(&self.destination)
        );
    }
}

/// A sans-IO datagram protocol core: what a driver needs to run it over any socket.
///
/// Every method takes the time as a parameter and none blocks or touches a socket. A driver's
/// step is: hand in every received datagram, then [`handle_timeout`](Self::handle_timeout),
/// then send everything [`poll_transmit`](Self::poll_transmit) yields and take every
/// [`poll_event`](Self::poll_event); sleep until a datagram arrives or
/// [`poll_timeout`](Self::poll_timeout) comes.
pub trait DatagramCore {
    /// What the core tells the application.
    type Event;
    /// What the core did with one datagram (also counted in the core's own statistics, so a
    /// driver may ignore it).
    type Disposition;

    /// Handles one datagram that came from `from` (its source address as the socket saw it).
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Self::Disposition;

    /// Lets time pass: retries, timeouts and periodic work due at `now`.
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next datagram to send into `buf` (at least [`MAX_DATAGRAM_LEN`] bytes, or
    /// fewer when the core is wrapped: [`Keyed`](crate::seal::Keyed) hands its inner core
    /// [`MAX_PLAINTEXT_LEN`](crate::seal::MAX_PLAINTEXT_LEN)), or `None` when there is nothing
    /// to send. A core never writes past `buf`, and sizes any request whose length is a budget
    /// (a health peer-table request) by `buf`'s length.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit>;

    /// When [`handle_timeout`](Self::handle_timeout) next has work, or `None` if only a
    /// datagram can give the core work.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event, oldest first.
    fn poll_event(&mut self) -> Option<Self::Event>;
}
