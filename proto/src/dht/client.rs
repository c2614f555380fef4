//! A DHT client as a sans-IO state machine: get, put, lock and unlock through any node of a
//! ring, without joining it.
//!
//! See [`DhtClient`].

use core::net::SocketAddr;
use core::time::Duration;

use heapless::{Deque, Vec};
use rand_core::CryptoRng;

use super::node::{Reply, Request, millis};
use super::{
    Body, ErrorCode, HEADER_LEN, Header, LockToken, Message, NodeAddr,
    node::{Disposition, DropReason, EVENT_CAPACITY, Event, Op, RequestError, RequestId},
};
use crate::datagram::{DatagramCore, Transmit};
use crate::time::Instant;
use crate::{Error, Result};

/// Timing of a [`DhtClient`].
///
/// `#[non_exhaustive]`: settings may be added. Build one with [`ClientConfig::new`] and the
/// chainable `with_*` methods (`const fn`s, so a config can be a `const` or a `static`); the fields
/// stay public, to read, and to assign on a `let mut` config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ClientConfig {
    /// This client: an id (random, or [`NodeId::from_name`](super::NodeId::from_name)) and the address at which the node
    /// it talks to reaches it. The node answers to this address, so it must be the client's
    /// address as the node sees it (not `0.0.0.0`).
    pub local: NodeAddr,
    /// How long one attempt waits for its answer. A ring node relaying the request waits half
    /// of its own request timeout for the owner, so give this at least the nodes' timeout.
    pub request_timeout: Duration,
    /// Attempts per request (a new message id each time) before it fails with
    /// [`RequestError::Timeout`]; at least 1. An answer of [`ErrorCode::NotOwner`] (the ring
    /// was changing) is also tried again while attempts remain.
    pub max_attempts: u8,
}

impl ClientConfig {
    /// The defaults for a client at `local`: 1 s per attempt, 3 attempts.
    pub const fn new(local: NodeAddr) -> ClientConfig {
        ClientConfig {
            local,
            request_timeout: Duration::from_secs(1),
            max_attempts: 3,
        }
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    #[must_use]
    pub const fn with_request_timeout(mut self, request_timeout: Duration) -> ClientConfig {
        self.request_timeout = request_timeout;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    #[must_use]
    pub const fn with_max_attempts(mut self, max_attempts: u8) -> ClientConfig {
        self.max_attempts = max_attempts;
        self
    }
}

/// Counters of what a [`DhtClient`] did and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ClientStats {
    /// Messages handed to [`DhtClient::handle_datagram`].
    pub received: u64,
    /// Messages that did not parse (dropped).
    pub malformed: u64,
    /// Messages that answer no outstanding attempt (unknown or stale message id, a kind or key
    /// that does not fit the request, or no response at all).
    pub unmatched: u64,
    /// Answers with an outstanding message id from another address than the attempt went to.
    pub wrong_sender: u64,
    /// Messages written by [`DhtClient::poll_transmit`].
    pub sent: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts sent again (after a timeout or a `NotOwner`).
    pub retries: u64,
    /// Messages that could not be encoded (a buffer smaller than
    /// [`DhtClient::MAX_TRANSMIT_LEN`]).
    pub encode_failed: u64,
    /// Challenges echoed: a node withheld an answer larger than the request until this client
    /// proved it receives at its address (the requests to it were sent again at once).
    pub challenges_answered: u64,
}

#[derive(Clone, Debug)]
struct Pending<const KEY: usize, const VALUE: usize> {
    id: RequestId,
    node: SocketAddr,
    request: Request<KEY, VALUE>,
    message_id: u64,
    attempts: u8,
    /// When the current attempt was sent; `None`: still to send.
    sent: Option<Instant>,
    deadline: Instant,
    /// The current attempt is being sent again after a Challenge from its node: a further
    /// Challenge (the node refused every request it got before the Echo) does not send it a
    /// third time.
    echoed: bool,
}

/// A client of a DHT ring: sends get, put, lock and unlock requests to a node of the ring (any
/// node: it routes them to the key's owner and relays the answer), matches each answer by
/// message id **and** the address the request went to, tries again after a timeout, and
/// reports every outcome as an [`Event`] — exactly one per request, never lost: success, a
/// refusal with its [`ErrorCode`], or [`RequestError::Timeout`].
///
/// Sans-IO like [`DhtNode`](super::DhtNode): the adapter hands it the messages that arrive
/// ([`handle_datagram`](Self::handle_datagram)) and the time
/// ([`handle_timeout`](Self::handle_timeout)), and sends what
/// [`poll_transmit`](Self::poll_transmit) writes — one UDP datagram or one TCP frame per
/// message. A retry uses a fresh message id, so a late answer to an earlier attempt is
/// counted as unmatched and never taken for the new one.
///
/// A node answers an address that has not proved it receives with no more bytes than it sent
/// (see [`DhtNode`](super::DhtNode), *Amplification limit*): an answer larger than the request
/// is preceded by a Challenge, which the client echoes, sending the request again at once
/// (counted in [`ClientStats::challenges_answered`]) — one more round trip per node it first
/// talks to.
///
/// Retries repeat the operation: a put or a lock renewal is idempotent, but an unlock whose
/// answer was lost is refused on the retry with [`ErrorCode::NotHolder`] (the lock is free
/// all the same).
///
/// `PENDING` requests may be outstanding at once; `KEY` and `VALUE` bound the key and value
/// sizes this client sends and receives (a larger value in an answer fails the get with
/// [`ErrorCode::Full`]).
///
/// ```
/// use core::time::Duration;
/// use sinew_proto::dht::{ClientConfig, DhtClient, Event, NodeAddr, NodeId};
/// use sinew_proto::time::Instant;
/// # struct Rng(u64);
/// # impl sinew_proto::rand_core::TryRng for Rng {
/// #     type Error = core::convert::Infallible;
/// #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
/// #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { self.0 += 1; Ok(self.0) }
/// #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
/// #         for b in d { *b = self.try_next_u64()? as u8 } Ok(())
/// #     }
/// # }
/// # impl sinew_proto::rand_core::TryCryptoRng for Rng {}
/// let me = NodeAddr { id: NodeId::from_name(b"client"), addr: "127.0.0.1:9000".parse().unwrap() };
/// let node = "127.0.0.1:7000".parse().unwrap();
/// let mut client: DhtClient<_> = DhtClient::new(ClientConfig::new(me), Rng(0));
///
/// let now = Instant::ZERO;
/// let id = client.put(now, node, b"colour", b"blue")?;
/// let mut buf = [0u8; DhtClient::<Rng>::MAX_TRANSMIT_LEN];
/// let t = client.poll_transmit(now, &mut buf).unwrap();
/// assert_eq!(t.destination, node); // send buf[..t.len] there
///
/// // No answer: after three attempts of one second each, the put fails loudly.
/// for s in 1..=3 {
///     let later = now + Duration::from_secs(s);
///     client.handle_timeout(later);
///     while client.poll_transmit(later, &mut buf).is_some() {}
/// }
/// assert!(matches!(client.poll_event(), Some(Event::Failed { id: failed, .. }) if failed == id));
/// # Ok::<(), sinew_proto::Error>(())
/// ```
#[derive(Debug)]
pub struct DhtClient<R, const PENDING: usize = 8, const KEY: usize = 32, const VALUE: usize = 128> {
    config: ClientConfig,
    rng: R,
    pending: Vec<Pending<KEY, VALUE>, PENDING>,
    events: Deque<Event<VALUE>, EVENT_CAPACITY>,
    stats: ClientStats,
    next_request: u64,
    /// Echoes of nodes' Challenges to send: (node, cookie).
    echoes: Deque<(SocketAddr, u64), 4>,
}

impl<R: CryptoRng, const PENDING: usize, const KEY: usize, const VALUE: usize>
    DhtClient<R, PENDING, KEY, VALUE>
{
    /// The longest message this client writes: give [`poll_transmit`](Self::poll_transmit) a
    /// buffer this large.
    pub const MAX_TRANSMIT_LEN: usize = {
        let kv = HEADER_LEN + 1 + KEY + 1 + 2 + VALUE;
        let lock = HEADER_LEN + 1 + KEY + 16 + 4;
        if kv > lock { kv } else { lock }
    };

    const CHECK: () = assert!(
        KEY <= super::MAX_KEY_LEN && VALUE <= super::MAX_VALUE_LEN && PENDING >= 1,
        "DhtClient: KEY ≤ 255, VALUE ≤ 65535, PENDING ≥ 1"
    );

    /// A client drawing message ids from `rng` (use a CSPRNG, so that nobody can guess the id of
    /// an answer and forge it).
    pub fn new(mut config: ClientConfig, rng: R) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        config.max_attempts = config.max_attempts.max(1);
        DhtClient {
            config,
            rng,
            pending: Vec::new(),
            events: Deque::new(),
            stats: ClientStats::default(),
            next_request: 1,
            echoes: Deque::new(),
        }
    }

    /// The configuration (with `max_attempts` at least 1).
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Requests not finished yet.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Reads `key` through `node`; the outcome is [`Event::GetDone`] or [`Event::Failed`].
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key over `KEY` bytes; [`Error::Capacity`] when `PENDING`
    /// requests are outstanding or unpolled events fill the event buffer.
    pub fn get(&mut self, now: Instant, node: SocketAddr, key: &[u8]) -> Result<RequestId> {
        self.submit(now, node, Op::Get, key, &[], LockToken::default(), 0)
    }

    /// Stores `value` under `key` through `node`; the outcome is [`Event::PutDone`] (the owner
    /// and its replicas hold it) or [`Event::Failed`].
    ///
    /// # Errors
    /// As [`get`](Self::get), and [`Error::TooLarge`] for a value over `VALUE` bytes.
    pub fn put(
        &mut self,
        now: Instant,
        node: SocketAddr,
        key: &[u8],
        value: &[u8],
    ) -> Result<RequestId> {
        self.submit(now, node, Op::Put, key, value, LockToken::default(), 0)
    }

    /// Takes (or renews) the lock on `key` with the secret `token` for `lease` (whole
    /// milliseconds, at least 1; the owner may shorten it to its maximum); the outcome is
    /// [`Event::Locked`] (with the lease counted from when the answered attempt was sent, so
    /// never later than the owner's), [`Event::LockDenied`] or [`Event::Failed`].
    ///
    /// The token is what holds the lock: renew and release it with the same one, and keep it
    /// secret ([`LockToken::random`], or [`LockToken::derive`] from a secret of the
    /// application's) — whoever knows it can release the lock.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn lock(
        &mut self,
        now: Instant,
        node: SocketAddr,
        key: &[u8],
        token: LockToken,
        lease: Duration,
    ) -> Result<RequestId> {
        let lease_ms = millis(lease).max(1);
        self.submit(now, node, Op::Lock, key, &[], token, lease_ms)
    }

    /// Releases the lock on `key` held with `token`; the outcome is [`Event::Unlocked`] or
    /// [`Event::Failed`] ([`ErrorCode::NotHolder`] if the lock is not held with `token`).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn unlock(
        &mut self,
        now: Instant,
        node: SocketAddr,
        key: &[u8],
        token: LockToken,
    ) -> Result<RequestId> {
        self.submit(now, node, Op::Unlock, key, &[], token, 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        now: Instant,
        node: SocketAddr,
        op: Op,
        key: &[u8],
        value: &[u8],
        token: LockToken,
        lease_ms: u32,
    ) -> Result<RequestId> {
        let key: Vec<u8, KEY> = Vec::from_slice(key).map_err(|_| Error::TooLarge)?;
        let value: Vec<u8, VALUE> = Vec::from_slice(value).map_err(|_| Error::TooLarge)?;
        // Every outstanding request must have room for its outcome.
        if self.pending.is_full() || self.pending.len() + self.events.len() >= EVENT_CAPACITY {
            return Err(Error::Capacity);
        }
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        let message_id = self.rng.next_u64();
        let pending = Pending {
            id,
            node,
            request: Request {
                op,
                key,
                value,
                token,
                lease_ms,
            },
            message_id,
            attempts: 1,
            sent: None,
            deadline: now,
            echoed: false,
        };
        // Checked above: there is room.
        let _ = self.pending.push(pending);
        Ok(id)
    }

    /// Handles one message that arrived from `from` (the datagram's source, or the peer of the
    /// TCP connection it came on).
    ///
    /// An answer counts only if its message id is the current attempt's and `from` is the node
    /// that attempt went to; everything else is dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Disposition {
        self.stats.received += 1;
        let message = match Message::parse(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                return Disposition::Malformed(e);
            }
        };
        let message_id = message.header.message_id;
        if message.body == Body::Challenge {
            return self.on_challenge(now, from, message_id);
        }
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.sent.is_some() && p.message_id == message_id)
        else {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        };
        let p = &self.pending[i];
        if p.node != from {
            self.stats.wrong_sender += 1;
            return Disposition::Dropped(DropReason::WrongSender);
        }
        if !p.request.is_answered_by(&message.body) {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        let not_owner = matches!(
            message.body,
            Body::Error {
                code: ErrorCode::NotOwner
            }
        );
        if not_owner && p.attempts < self.config.max_attempts {
            self.stats.retries += 1;
            self.retry(i);
            return Disposition::Handled;
        }
        let p = self.pending.swap_remove(i);
        let since = p.sent.unwrap_or(now);
        let reply: Reply<KEY, VALUE> = Reply::from_body(&message.body);
        self.emit(reply.into_event(p.id, p.request.op, since));
        Disposition::Handled
    }

    /// A node proves this client's address before it sends a large answer: echo its cookie and
    /// send again at once what waits for that node (same attempt, same message id).
    fn on_challenge(&mut self, now: Instant, from: SocketAddr, cookie: u64) -> Disposition {
        let mut waiting = false;
        for p in self.pending.iter_mut() {
            if p.node != from {
                continue;
            }
            waiting = true;
            if p.sent.is_some() && !p.echoed {
                p.echoed = true;
                p.sent = None;
                p.deadline = now;
            }
        }
        if !waiting || self.echoes.push_back((from, cookie)).is_err() {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        self.stats.challenges_answered += 1;
        Disposition::Handled
    }

    fn retry(&mut self, i: usize) {
        let message_id = self.rng.next_u64();
        let p = &mut self.pending[i];
        p.attempts += 1;
        p.message_id = message_id;
        p.sent = None;
        p.echoed = false;
    }

    /// Lets time pass: attempts past their deadline are sent again, or fail with
    /// [`RequestError::Timeout`] after [`ClientConfig::max_attempts`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.sent.is_none() || p.deadline > now {
                i += 1;
                continue;
            }
            self.stats.timeouts += 1;
            if p.attempts < self.config.max_attempts {
                self.stats.retries += 1;
                self.retry(i);
                i += 1;
            } else {
                let p = self.pending.swap_remove(i);
                self.emit(Event::Failed {
                    id: p.id,
                    op: p.request.op,
                    error: RequestError::Timeout,
                });
            }
        }
    }

    /// Fails every outstanding request sent (or to be sent) to `node` with `error`, at once:
    /// for an adapter whose connection to it was lost, so that nothing waits in silence.
    pub fn fail_node(&mut self, node: SocketAddr, error: RequestError) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].node == node {
                let p = self.pending.swap_remove(i);
                self.emit(Event::Failed {
                    id: p.id,
                    op: p.request.op,
                    error,
                });
            } else {
                i += 1;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work (an instant in the past
    /// means now: a message is waiting for [`poll_transmit`](Self::poll_transmit)), or `None`
    /// when nothing is outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.echoes.is_empty() {
            return Some(Instant::ZERO);
        }
        self.pending
            .iter()
            .map(|p| {
                if p.sent.is_some() {
                    p.deadline
                } else {
                    Instant::ZERO
                }
            })
            .min()
    }

    /// Writes the next request to send into `buf` (give it [`Self::MAX_TRANSMIT_LEN`] bytes)
    /// and says which node it goes to; `None` when there is nothing to send. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let me = self.config.local;
        let timeout = self.config.request_timeout;
        if let Some((node, cookie)) = self.echoes.pop_front() {
            let echo = Message {
                header: Header {
                    message_id: cookie,
                    sender: me,
                },
                body: Body::Echo,
            };
            if let Ok(len) = echo.encode(buf) {
                self.stats.sent += 1;
                return Some(Transmit {
                    destination: node,
                    len,
                });
            }
            self.stats.encode_failed += 1;
        }
        while let Some(i) = self.pending.iter().position(|p| p.sent.is_none()) {
            let p = &mut self.pending[i];
            let message = Message {
                header: Header {
                    message_id: p.message_id,
                    sender: me,
                },
                body: p.request.body(),
            };
            match message.encode(buf) {
                Ok(len) => {
                    p.sent = Some(now);
                    p.deadline = now + timeout;
                    self.stats.sent += 1;
                    return Some(Transmit {
                        destination: p.node,
                        len,
                    });
                }
                Err(_) => {
                    // A buffer too small: fail the request rather than stall it.
                    self.stats.encode_failed += 1;
                    let p = self.pending.swap_remove(i);
                    self.emit(Event::Failed {
                        id: p.id,
                        op: p.request.op,
                        error: RequestError::Refused(ErrorCode::Full),
                    });
                }
            }
        }
        None
    }

    /// Takes the next outcome, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<VALUE>> {
        self.events.pop_front()
    }

    fn emit(&mut self, event: Event<VALUE>) {
        // `submit` keeps room for the outcome of every outstanding request.
        let _ = self.events.push_back(event);
    }
}

impl<R: CryptoRng, const PENDING: usize, const KEY: usize, const VALUE: usize> DatagramCore
    for DhtClient<R, PENDING, KEY, VALUE>
{
    type Event = Event<VALUE>;
    type Disposition = Disposition;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Disposition {
        Self::handle_datagram(self, now, from, datagram)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Self::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        Self::poll_transmit(self, now, buf)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Self::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event<VALUE>> {
        Self::poll_event(self)
    }
}
