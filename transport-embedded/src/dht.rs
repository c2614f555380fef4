//! A DHT client on an embedded-nal TCP stack: [`DhtTcpClient`], the sans-IO [`DhtClient`] of
//! `sinew_proto` driven over one connection to a ring member.
//!
//! Requests travel as frames — a 4-byte big-endian length, then one DHT message, as
//! [`sinew_proto::frame`] writes and reads them for every stream protocol — and every answer
//! comes back as a frame on the same connection (a node started with `sinew dht node --tcp`, or
//! `UdpDhtNode::listen_tcp` of `sinew-transport-std`, serves them). The member routes each
//! request to the key's owner, so one connection reaches the whole ring.
//!
//! * **Caller-owned memory**: the frame buffers live in a [`DhtBuffers`] the caller owns; the
//!   client's tables are sized by const generics. Nothing allocates.
//! * **Non-blocking**: [`process`](DhtTcpClient::process) never waits; `nb::WouldBlock` means "try
//!   again", and a frame the stack took only in part is finished on the next call.
//! * **Connected on demand**: the client connects when a request is waiting and keeps the
//!   connection; a connection that fails, closes, or does not come up within one request
//!   timeout fails every outstanding request at once with [`RequestError::Disconnected`] —
//!   never silently — and the next request connects again.
//! * **Against lying peers** (the ring's rules, PROTOCOL.md): an answer counts only with the
//!   current attempt's message id and on the connection it was asked on; a lock is held by a
//!   secret [`LockToken`] the caller chooses (draw it with `LockToken::random`, or
//!   `LockToken::derive` from a secret of the device: whoever learns it can release the lock),
//!   and a denial says only for how long the key is held; a Challenge from a member that has
//!   not seen this client's address prove it receives is echoed and the request sent again at
//!   once. The client's id places nothing in the ring (a member checks ring members' ids
//!   against their addresses, not clients'); a `Full` answer may be the member's bound on what
//!   one sender may hold of its store or its relay slots.
//!
//! ```
//! use std_embedded_nal::Stack;
//! use sinew_proto::dht::{ClientConfig, DhtClient, Event, NodeAddr, NodeId, RequestError};
//! use sinew_proto::time::Instant;
//! use sinew_transport_embedded::dht::{DhtBuffers, DhtTcpClient};
//! use sinew_proto::rand_core::UnwrapErr;
//! use getrandom::SysRng; // getrandom 0.4, feature `sys_rng`
//!
//! let mut stack = Stack;
//! let mut buffers = DhtBuffers::new();
//! // Over TCP the node answers on the connection: the client's own address is a placeholder.
//! let me = NodeAddr { id: NodeId::from_name(b"sensor-7"), addr: "192.0.2.1:1".parse().unwrap() };
//! let core: DhtClient<_> = DhtClient::new(ClientConfig::new(me), UnwrapErr(SysRng));
//! // Nobody listens on port 1: the connection is refused.
//! let mut dht: DhtTcpClient<'_, Stack, _> =
//!     DhtTcpClient::new(core, "127.0.0.1:1".parse().unwrap(), &mut buffers);
//! let id = dht.put(Instant::ZERO, b"temperature", b"21.5")?;
//! for _ in 0..100 {
//!     dht.process(&mut stack, Instant::ZERO)?;
//!     if dht.core().outstanding() == 0 { break; }
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//! }
//! // Never lost: the put failed loudly.
//! assert_eq!(
//!     dht.poll_event(),
//!     Some(Event::Failed { id, op: sinew_proto::dht::Op::Put, error: RequestError::Disconnected })
//! );
//! // Why, for the log.
//! assert!(dht.take_network_error().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use embedded_nal::{TcpClientStack, nb};
use rand_core::CryptoRng;
use sinew_proto::datagram::MAX_DATAGRAM_LEN;
use sinew_proto::dht::{DhtClient, Event, LockToken, RequestError, RequestId};
use sinew_proto::frame::{FRAME_HEADER_LEN, FrameDecoder, FrameStatus, encode_frame};
use sinew_proto::time::Instant;

use crate::{Error, Result};

/// Size of the receive buffer: the longest frame this client takes (a message of up to
/// [`MAX_DATAGRAM_LEN`] bytes, which every answer of a node with datagram-sized keys and
/// values is, and its prefix). A longer frame ends the connection.
pub const RX_BUFFER_LEN: usize = FRAME_HEADER_LEN + MAX_DATAGRAM_LEN;
/// Size of the transmit buffer: room for two frames, so that one can be written while the
/// stack still holds part of the other.
pub const TX_BUFFER_LEN: usize = 2 * (FRAME_HEADER_LEN + MAX_DATAGRAM_LEN);

/// Splits the stream from the node into messages: frames of up to [`MAX_DATAGRAM_LEN`] bytes,
/// all the receive buffer holds.
const FRAMES: FrameDecoder = FrameDecoder::with_max_frame_len(MAX_DATAGRAM_LEN as u32);

/// The buffers a [`DhtTcpClient`] works in, owned by the caller.
#[derive(Clone, Debug)]
pub struct DhtBuffers {
    rx: [u8; RX_BUFFER_LEN],
    tx: [u8; TX_BUFFER_LEN],
}

impl DhtBuffers {
    /// Zeroed buffers (usable in a `static`).
    pub const fn new() -> DhtBuffers {
        DhtBuffers {
            rx: [0; RX_BUFFER_LEN],
            tx: [0; TX_BUFFER_LEN],
        }
    }
}

impl Default for DhtBuffers {
    fn default() -> DhtBuffers {
        DhtBuffers::new()
    }
}

/// What the connection side of a [`DhtTcpClient`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct DhtIoStats {
    /// Connections attempted.
    pub connects: u64,
    /// Connections that failed to come up (refused, an error, or not within a request timeout).
    pub connect_failures: u64,
    /// Connections lost once up (closed by the node, or an error).
    pub connections_lost: u64,
    /// Frames sent and received.
    pub frames_sent: u64,
    /// Frames received and handed to the client.
    pub frames_received: u64,
    /// Connections ended because a frame was longer than [`RX_BUFFER_LEN`] holds, or stated a
    /// negative length.
    pub oversized: u64,
    /// Sends the stack took only in part.
    pub partial_sends: u64,
}

/// A [`DhtClient`] driven over one TCP connection of an embedded-nal [`TcpClientStack`] to a
/// ring member at `node`.
///
/// The stack is passed to every call rather than owned, so that one stack can serve several
/// clients; always pass the same stack. Call [`process`](Self::process) whenever data may have
/// arrived and at the latest at the instant it returns.
pub struct DhtTcpClient<
    'b,
    S: TcpClientStack,
    R,
    const PENDING: usize = 8,
    const KEY: usize = 32,
    const VALUE: usize = 128,
> {
    core: DhtClient<R, PENDING, KEY, VALUE>,
    node: SocketAddr,
    socket: Option<S::TcpSocket>,
    /// `connect` said `WouldBlock` at this instant (first); `None` once connected.
    connecting: Option<Instant>,
    buffers: &'b mut DhtBuffers,
    rx_len: usize,
    tx_start: usize,
    tx_end: usize,
    io: DhtIoStats,
    last_error: Option<S::Error>,
}

impl<'b, S, R, const PENDING: usize, const KEY: usize, const VALUE: usize>
    DhtTcpClient<'b, S, R, PENDING, KEY, VALUE>
where
    S: TcpClientStack,
    R: CryptoRng,
{
    const FITS: () = assert!(
        DhtClient::<R, PENDING, KEY, VALUE>::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN,
        "DhtTcpClient: a request of these sizes must fit the transmit buffer's frames"
    );

    /// A client of the ring member at `node`, not connected yet.
    pub fn new(
        core: DhtClient<R, PENDING, KEY, VALUE>,
        node: SocketAddr,
        buffers: &'b mut DhtBuffers,
    ) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::FITS;
        DhtTcpClient {
            core,
            node,
            socket: None,
            connecting: None,
            buffers,
            rx_len: 0,
            tx_start: 0,
            tx_end: 0,
            io: DhtIoStats::default(),
            last_error: None,
        }
    }

    /// Reads `key`; the outcome is [`Event::GetDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::Proto`] if the client refuses it (see [`DhtClient::get`]).
    pub fn get(&mut self, now: Instant, key: &[u8]) -> Result<RequestId, S::Error> {
        Ok(self.core.get(now, self.node, key)?)
    }

    /// Stores `value` under `key`; the outcome is [`Event::PutDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn put(&mut self, now: Instant, key: &[u8], value: &[u8]) -> Result<RequestId, S::Error> {
        Ok(self.core.put(now, self.node, key, value)?)
    }

    /// Takes (or renews) the lock on `key` with the secret `token`; the outcome is
    /// [`Event::Locked`], [`Event::LockDenied`] (which does not say who holds it) or
    /// [`Event::Failed`]. Renew and release it with the same token and keep it secret:
    /// whoever knows it can release the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(
        &mut self,
        now: Instant,
        key: &[u8],
        token: LockToken,
        lease: Duration,
    ) -> Result<RequestId, S::Error> {
        Ok(self.core.lock(now, self.node, key, token, lease)?)
    }

    /// Releases the lock on `key` held with `token`; the outcome is [`Event::Unlocked`] or
    /// [`Event::Failed`] ([`ErrorCode::NotHolder`](sinew_proto::dht::ErrorCode::NotHolder)
    /// if it is not held with `token`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn unlock(
        &mut self,
        now: Instant,
        key: &[u8],
        token: LockToken,
    ) -> Result<RequestId, S::Error> {
        Ok(self.core.unlock(now, self.node, key, token)?)
    }

    /// Does all the work due at `now` without blocking: connects if a request waits, reads
    /// every whole frame into the client, lets time pass (retries, timeouts), and writes what
    /// the client has to send.
    ///
    /// Returns when to call again at the latest: `Some(now)` while a connection is coming up or
    /// bytes wait for the stack, the client's next timeout otherwise, `None` when nothing is
    /// outstanding.
    ///
    /// # Errors
    /// [`Error::Network`] if the stack cannot open a socket (the outstanding requests fail with
    /// [`RequestError::Disconnected`] too). A connection's failures are not errors of `process`:
    /// they fail the requests in flight.
    pub fn process(&mut self, stack: &mut S, now: Instant) -> Result<Option<Instant>, S::Error> {
        self.connect(stack, now)?;
        self.receive(stack, now);
        self.core.handle_timeout(now);
        self.send(stack, now);
        if self.connecting.is_some() || self.tx_start < self.tx_end {
            return Ok(Some(now));
        }
        Ok(self.core.poll_timeout())
    }

    fn connect(&mut self, stack: &mut S, now: Instant) -> Result<(), S::Error> {
        if self.socket.is_none() && self.core.outstanding() > 0 {
            self.io.connects += 1;
            match stack.socket() {
                Ok(socket) => {
                    self.socket = Some(socket);
                    self.connecting = Some(now);
                }
                Err(error) => {
                    self.io.connect_failures += 1;
                    self.core.fail_node(self.node, RequestError::Disconnected);
                    return Err(Error::Network(error));
                }
            }
        }
        let (Some(since), Some(socket)) = (self.connecting, self.socket.as_mut()) else {
            return Ok(());
        };
        match stack.connect(socket, self.node) {
            Ok(()) => self.connecting = None,
            Err(nb::Error::WouldBlock) => {
                if now >= since + self.core.config().request_timeout {
                    self.io.connect_failures += 1;
                    self.drop_connection(stack);
                }
            }
            Err(nb::Error::Other(error)) => {
                self.last_error = Some(error);
                self.io.connect_failures += 1;
                self.drop_connection(stack);
            }
        }
        Ok(())
    }

    /// Reads what the stack has and hands every whole frame to the client.
    fn receive(&mut self, stack: &mut S, now: Instant) {
        loop {
            if self.connecting.is_some() {
                return;
            }
            let Some(socket) = self.socket.as_mut() else {
                return;
            };
            let room = &mut self.buffers.rx[self.rx_len..];
            match stack.receive(socket, room) {
                Ok(0) if !room.is_empty() => {
                    // End of stream: the node closed the connection.
                    self.io.connections_lost += 1;
                    self.drop_connection(stack);
                    return;
                }
                Ok(n) => self.rx_len += n.min(room.len()),
                Err(nb::Error::WouldBlock) => return,
                Err(nb::Error::Other(error)) => {
                    self.last_error = Some(error);
                    self.io.connections_lost += 1;
                    self.drop_connection(stack);
                    return;
                }
            }
            // Whole frames out; the rest moves to the front.
            let mut at = 0;
            loop {
                match FRAMES.decode(&self.buffers.rx[at..self.rx_len]) {
                    Ok(FrameStatus::Complete { frame, consumed }) => {
                        self.io.frames_received += 1;
                        let _ = self.core.handle_datagram(now, self.node, frame);
                        at += consumed;
                    }
                    Ok(FrameStatus::Partial { .. }) => break,
                    // Too long for the buffer, or negative: the stream cannot be followed.
                    Err(_) => {
                        self.io.oversized += 1;
                        self.drop_connection(stack);
                        return;
                    }
                }
            }
            self.buffers.rx.copy_within(at..self.rx_len, 0);
            self.rx_len -= at;
        }
    }

    /// Writes frames until the stack would block; what it did not take is kept.
    fn send(&mut self, stack: &mut S, now: Instant) {
        loop {
            if self.connecting.is_some() {
                return;
            }
            let Some(socket) = self.socket.as_mut() else {
                return;
            };
            if self.tx_start == self.tx_end {
                self.tx_start = 0;
                self.tx_end = 0;
            }
            // Frame as many requests as fit behind what is pending.
            while self.tx_end + FRAME_HEADER_LEN + MAX_DATAGRAM_LEN <= TX_BUFFER_LEN {
                let mut transmit = None;
                let framed = encode_frame(&mut self.buffers.tx[self.tx_end..], |payload| {
                    transmit = self.core.poll_transmit(now, payload);
                    Ok(transmit.map_or(0, |t| t.len))
                });
                // Nothing to send (the empty frame written is not kept), or a message no
                // frame can carry, which a request within `FITS` never is.
                let (Some(_), Ok(len)) = (transmit, framed) else {
                    break;
                };
                self.tx_end += len;
                self.io.frames_sent += 1;
            }
            if self.tx_start == self.tx_end {
                return;
            }
            let pending = &self.buffers.tx[self.tx_start..self.tx_end];
            match stack.send(socket, pending) {
                Ok(0) | Err(nb::Error::WouldBlock) => return,
                Ok(n) => {
                    if n < pending.len() {
                        self.io.partial_sends += 1;
                    }
                    self.tx_start += n.min(pending.len());
                    if self.tx_start < self.tx_end {
                        // Move the rest to the front to make room for whole frames.
                        self.buffers.tx.copy_within(self.tx_start..self.tx_end, 0);
                        self.tx_end -= self.tx_start;
                        self.tx_start = 0;
                    }
                }
                Err(nb::Error::Other(error)) => {
                    self.last_error = Some(error);
                    self.io.connections_lost += 1;
                    self.drop_connection(stack);
                    return;
                }
            }
        }
    }

    /// Closes the connection and fails every outstanding request loudly.
    fn drop_connection(&mut self, stack: &mut S) {
        if let Some(socket) = self.socket.take() {
            // Gone either way; the stack has nothing to say that the client could act on.
            let _ = stack.close(socket);
        }
        self.connecting = None;
        self.rx_len = 0;
        self.tx_start = 0;
        self.tx_end = 0;
        self.core.fail_node(self.node, RequestError::Disconnected);
    }

    /// Closes the connection now; outstanding requests fail with
    /// [`RequestError::Disconnected`].
    pub fn close(&mut self, stack: &mut S) {
        self.drop_connection(stack);
    }

    /// Takes the next outcome, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        self.core.poll_event()
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.socket.is_some() && self.connecting.is_none()
    }

    /// The node this client talks to.
    pub fn node(&self) -> SocketAddr {
        self.node
    }

    /// The protocol core (its counters, outstanding requests).
    pub fn core(&self) -> &DhtClient<R, PENDING, KEY, VALUE> {
        &self.core
    }

    /// The connection's counters.
    pub fn io_stats(&self) -> &DhtIoStats {
        &self.io
    }

    /// The stack's last error on a connection (a refused `connect`, a failed `send` or
    /// `receive`), taken: why requests last failed with [`RequestError::Disconnected`], for the
    /// log. (The same as [`ZkClient::take_network_error`](crate::ZkClient::take_network_error).)
    pub fn take_network_error(&mut self) -> Option<S::Error> {
        self.last_error.take()
    }
}

impl<S, R, const PENDING: usize, const KEY: usize, const VALUE: usize> fmt::Debug
    for DhtTcpClient<'_, S, R, PENDING, KEY, VALUE>
where
    S: TcpClientStack,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhtTcpClient")
            .field("node", &self.node)
            .field(
                "connected",
                &(self.socket.is_some() && self.connecting.is_none()),
            )
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}
