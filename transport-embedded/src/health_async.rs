//! The health protocol on an embedded-nal-async UDP socket (feature `async`).
//!
//! The same endpoint as [`HealthEndpoint`](crate::HealthEndpoint), for async stacks
//! (embassy-net style, or `std-embedded-nal-async` on a host): instead of `nb` polling, one
//! [`step`](AsyncHealthEndpoint::step) sends what is due, then waits for a datagram or for the
//! node's next timeout, whichever comes first. Time still comes from the caller: a [`Clock`]
//! for `now` and an [`embedded_hal_async::delay::DelayNs`] to wait.

use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use embedded_hal_async::delay::DelayNs;
use embedded_nal_async::UnconnectedUdp;
use rand_core::CryptoRng;
use sinew_proto::health::{Event, HealthNode};
use sinew_proto::nonce::Nonce;

use crate::health::canonical;
use crate::{Clock, Error, HealthBuffers, Result};

/// The longest one [`step`](AsyncHealthEndpoint::step) waits when the node has no timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

/// A [`HealthNode`] driven over one socket of an embedded-nal-async stack.
///
/// Create the socket with the stack's `bind_multiple` (or `bind_single`) and pass the local
/// address it is bound to: it is the `local` of every `send`.
pub struct AsyncHealthEndpoint<
    'b,
    U,
    R,
    const HOSTS: usize = 32,
    const PENDING: usize = 32,
    const QUEUE: usize = 16,
> {
    node: HealthNode<R, HOSTS, PENDING, QUEUE>,
    socket: U,
    local: SocketAddr,
    buffers: &'b mut HealthBuffers,
}

impl<'b, U, R, const HOSTS: usize, const PENDING: usize, const QUEUE: usize>
    AsyncHealthEndpoint<'b, U, R, HOSTS, PENDING, QUEUE>
where
    U: UnconnectedUdp,
    R: CryptoRng,
{
    /// Drives `node` over `socket`, bound to `local`.
    pub fn new(
        socket: U,
        local: SocketAddr,
        node: HealthNode<R, HOSTS, PENDING, QUEUE>,
        buffers: &'b mut HealthBuffers,
    ) -> Self {
        AsyncHealthEndpoint {
            node,
            socket,
            local,
            buffers,
        }
    }

    /// One round: lets time pass in the node, sends everything it has to send, then waits for
    /// one datagram (handed to the node) or until the node's next timeout (at most
    /// [`MAX_WAIT`]), whichever comes first. Call it in a loop.
    ///
    /// A wait that times out drops the pending `receive_into` future: the socket must not lose a
    /// datagram when that happens (true of std-embedded-nal-async and embassy-net).
    ///
    /// # Errors
    /// [`Error::Network`] when the socket fails to send (that datagram is dropped; its check
    /// will count as missed) or to receive. The endpoint stays usable.
    pub async fn step<C: Clock, D: DelayNs>(
        &mut self,
        clock: &mut C,
        delay: &mut D,
    ) -> Result<(), U::Error> {
        let now = clock.now();
        self.node.handle_timeout(now);
        while let Some(transmit) = self.node.poll_transmit(now, &mut self.buffers.tx) {
            let datagram = self.buffers.transmitted(&transmit);
            self.socket
                .send(self.local, transmit.destination, datagram)
                .await
                .map_err(Error::Network)?;
        }
        let wait = match self.node.poll_timeout() {
            Some(at) => at.saturating_duration_since(clock.now()).min(MAX_WAIT),
            None => MAX_WAIT,
        };
        let wait_us = u32::try_from(wait.as_micros()).unwrap_or(u32::MAX);
        let received = {
            let mut receive = pin!(self.socket.receive_into(&mut self.buffers.rx));
            let mut sleep = pin!(delay.delay_us(wait_us));
            poll_fn(|cx| {
                if let Poll::Ready(result) = receive.as_mut().poll(cx) {
                    return Poll::Ready(Some(result));
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await
        };
        match received {
            Some(Ok((len, _local, remote))) => {
                let datagram = self.buffers.received(len);
                let _ = self
                    .node
                    .handle_datagram(clock.now(), canonical(remote), datagram);
                Ok(())
            }
            Some(Err(error)) => Err(Error::Network(error)),
            None => Ok(()),
        }
    }

    /// Sends one health check to `addr` at the next [`step`](Self::step); see
    /// [`HealthEndpoint::ping`](crate::HealthEndpoint::ping).
    ///
    /// # Errors
    /// [`Error::Proto`] with [`Capacity`](sinew_proto::Error::Capacity) when the node has too many
    /// requests outstanding.
    pub fn ping(&mut self, clock: &mut impl Clock, addr: SocketAddr) -> Result<Nonce, U::Error> {
        Ok(self.node.ping(clock.now(), addr)?)
    }

    /// Adds a seed, probed at the next [`step`](Self::step) and retried until it answers.
    ///
    /// # Errors
    /// [`Error::Proto`] with [`Capacity`](sinew_proto::Error::Capacity) beyond the seed limit.
    pub fn add_seed(&mut self, addr: SocketAddr) -> Result<(), U::Error> {
        Ok(self.node.add_seed(addr)?)
    }

    /// The next event of the node, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.node.poll_event()
    }

    /// The node.
    pub fn node(&self) -> &HealthNode<R, HOSTS, PENDING, QUEUE> {
        &self.node
    }

    /// The node, to call anything the endpoint does not wrap.
    pub fn node_mut(&mut self) -> &mut HealthNode<R, HOSTS, PENDING, QUEUE> {
        &mut self.node
    }

    /// Gives the socket and the node back.
    pub fn into_parts(self) -> (U, HealthNode<R, HOSTS, PENDING, QUEUE>) {
        (self.socket, self.node)
    }
}
