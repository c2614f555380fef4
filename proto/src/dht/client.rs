//! A DHT client as a sans-IO state machine: get, put, lock and unlock through any node of a
//! ring, without joining it.
//!
//! See [`DhtClient`].

use core::net::SocketAddr;
use core::time::Duration;

use heapless::{Deque, Vec};
use rand_core::CryptoRng;

mod view;
use view::{LearnedView, Refusal};

#[cfg(all(test, feature = "sim"))]
mod sim_tests;

use super::node::{Reply, Request, millis};
use super::{
    Body, ErrorCode, HEADER_LEN, Header, LockToken, Message, NodeAddr, NodeId,
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
    /// One-hop requests (off by default): the client asks the node it is given for its
    /// neighbourhood ([`Body::ViewRequest`]) and sends each request whose key that view covers
    /// straight to the key's owner; when the owner refuses ([`ErrorCode::NotOwner`]) or does
    /// not answer, the request goes through the given node, routed, and the view is asked
    /// again. See [`DhtClient`], *One hop*.
    pub one_hop: bool,
    /// Whether a View is believed only if every id in it is the one bound to its address
    /// ([`NodeId::from_addr`]), as ring members require by default
    /// ([`Config::bind_ids`](super::Config::bind_ids)); on by default. Turn it off only for
    /// a ring whose nodes do not bind ids.
    pub bind_ids: bool,
    /// How long a learned view is used before the client asks for it again (and how long an
    /// owner that did not answer is kept out of the one-hop choice); 10 s by default.
    pub view_ttl: Duration,
}

impl ClientConfig {
    /// The defaults for a client at `local`: 1 s per attempt, 3 attempts.
    pub const fn new(local: NodeAddr) -> ClientConfig {
        ClientConfig {
            local,
            request_timeout: Duration::from_secs(1),
            max_attempts: 3,
            one_hop: false,
            bind_ids: true,
            view_ttl: Duration::from_secs(10),
        }
    }

    /// Sets [`one_hop`](Self::one_hop).
    #[must_use]
    pub const fn with_one_hop(mut self, one_hop: bool) -> ClientConfig {
        self.one_hop = one_hop;
        self
    }

    /// Sets [`bind_ids`](Self::bind_ids).
    #[must_use]
    pub const fn with_bind_ids(mut self, bind_ids: bool) -> ClientConfig {
        self.bind_ids = bind_ids;
        self
    }

    /// Sets [`view_ttl`](Self::view_ttl).
    #[must_use]
    pub const fn with_view_ttl(mut self, view_ttl: Duration) -> ClientConfig {
        self.view_ttl = view_ttl;
        self
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
    /// Challenges and Withhelds echoed (one Echo per node and cookie while one waits to go): a
    /// node withheld an answer larger than the request until this client proved it receives at
    /// its address (the request named, or after a bare Challenge every request to it, was sent
    /// again at once).
    pub challenges_answered: u64,
    /// Views learned ([`ClientConfig::one_hop`]).
    pub views_learned: u64,
    /// Views not believed: an id not bound to its address, sides out of ring order, or a
    /// refusal instead of a View (a node not in a ring).
    pub views_refused: u64,
    /// Attempts sent straight to a key's owner, by the view.
    pub direct: u64,
    /// Direct attempts that fell back to the given node (the owner refused or did not
    /// answer), after which the view is asked again.
    pub fallbacks: u64,
    /// Second answers to a request sent again after a Challenge, whose first answer had
    /// already completed it (the node had not withheld that one): dropped.
    pub duplicates: u64,
}

#[derive(Clone, Debug)]
struct Pending<const KEY: usize, const VALUE: usize> {
    id: RequestId,
    /// The node the application gave, which routes the request.
    entry: SocketAddr,
    /// Where the current attempt goes: `entry`, or the key's owner by the view.
    node: SocketAddr,
    /// The request goes through `entry` from now on (a direct attempt failed).
    routed: bool,
    request: Request<KEY, VALUE>,
    message_id: u64,
    attempts: u8,
    /// When the current attempt was sent; `None`: still to send.
    sent: Option<Instant>,
    deadline: Instant,
    /// The current attempt was sent again after a Challenge (it may be answered twice).
    resent: bool,
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
/// is preceded by a [`Body::Withheld`] naming the request (or, when its 51 bytes do not fit, a
/// bare [`Body::Challenge`]), which the client echoes, sending that request again at once (all
/// its requests waiting on that node, after a bare Challenge; counted in
/// [`ClientStats::challenges_answered`]) — one more round trip per node it first talks to.
///
/// # One hop
/// With [`ClientConfig::one_hop`] (or [`set_one_hop`](Self::set_one_hop)) the client also asks
/// the node it is given for its neighbourhood ([`Body::ViewRequest`], answered by
/// [`Body::View`]; a Challenge first, as above), checks it (every id bound to its address
/// unless [`ClientConfig::bind_ids`] is off; sides in ring order; a View that fails is refused
/// whole and counted in [`ClientStats::views_refused`]), and sends each request whose key the
/// view covers straight to the key's owner by the leaf set's rule — one hop instead of a route
/// and a relay. When that owner answers [`ErrorCode::NotOwner`] or does not answer in time,
/// the request falls back to the given node (same attempt), the view is forgotten and asked
/// again, and a silent owner is left out of the choice for [`ClientConfig::view_ttl`]. A view
/// is asked again after `view_ttl` anyway, so that a node that joined and took keys over is
/// learned. The view holds at most 13 nodes (the answering node and [`VIEW_SIDE`](super::VIEW_SIDE) on
/// each side): keys outside that neighbourhood are routed as before.
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
    /// Requests sent again after a Challenge and completed since: (node, message id). A second
    /// answer to one is a duplicate, not a stranger's message.
    resent_done: Deque<(SocketAddr, u64), 16>,
    /// The neighbourhood of the last node that told it ([`ClientConfig::one_hop`]).
    view: Option<LearnedView>,
    /// The ViewRequest outstanding, if any.
    query: Option<Query>,
    /// No ViewRequest before this instant (after a refusal or a timeout).
    next_query: Instant,
    /// Owners that did not answer a direct attempt, left out of the one-hop choice until the
    /// instant given.
    avoid: Deque<(SocketAddr, Instant), 4>,
}

/// A ViewRequest on its way.
#[derive(Clone, Copy, Debug)]
struct Query {
    node: SocketAddr,
    message_id: u64,
    /// `None`: still to send.
    sent: Option<Instant>,
    deadline: Instant,
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
            resent_done: Deque::new(),
            view: None,
            query: None,
            next_query: Instant::ZERO,
            avoid: Deque::new(),
        }
    }

    /// Turns one-hop requests on or off ([`ClientConfig::one_hop`]); off forgets the view.
    pub fn set_one_hop(&mut self, one_hop: bool) {
        self.config.one_hop = one_hop;
        if !one_hop {
            self.view = None;
            self.query = None;
        }
    }

    /// The owner of `key` by the view this client learned, if one-hop requests are on and the
    /// view covers the key (and the owner did not fail a direct attempt lately).
    pub fn known_owner(&self, now: Instant, key: &[u8]) -> Option<NodeAddr> {
        if !self.config.one_hop {
            return None;
        }
        let view = self.view.as_ref().filter(|v| v.until > now)?;
        let owner = view.owner(NodeId::from_name(key))?;
        if self
            .avoid
            .iter()
            .any(|(addr, until)| *addr == owner.addr && *until > now)
        {
            return None;
        }
        Some(owner)
    }

    /// Asks `node` for its view unless a fresh one is known or a question is outstanding.
    fn maybe_query(&mut self, now: Instant, node: SocketAddr) {
        let fresh = self.view.as_ref().is_some_and(|v| v.until > now);
        if !self.config.one_hop || fresh || self.query.is_some() || now < self.next_query {
            return;
        }
        self.query = Some(Query {
            node,
            message_id: self.rng.next_u64(),
            sent: None,
            deadline: now,
        });
    }

    /// The answer to the ViewRequest: a View to check and learn, or a refusal.
    fn on_view_answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        message: &Message<'_>,
    ) -> Disposition {
        let Some(q) = self.query else {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        };
        if q.node != from {
            self.stats.wrong_sender += 1;
            return Disposition::Dropped(DropReason::WrongSender);
        }
        let ttl = self.config.view_ttl;
        match message.body {
            Body::View { left, right } => {
                self.query = None;
                let sender = message.header.sender;
                let checked = if super::node::same_endpoint(sender.addr, from) {
                    LearnedView::check(
                        sender,
                        left.iter(),
                        right.iter(),
                        self.config.bind_ids,
                        now + ttl,
                    )
                } else {
                    Err(Refusal::Disordered)
                };
                match checked {
                    Ok(view) => {
                        self.stats.views_learned += 1;
                        self.view = Some(view);
                    }
                    Err(_) => {
                        self.stats.views_refused += 1;
                        self.next_query = now + ttl;
                    }
                }
                Disposition::Handled
            }
            Body::Error { .. } => {
                self.query = None;
                self.stats.views_refused += 1;
                self.next_query = now + ttl;
                Disposition::Handled
            }
            _ => {
                self.stats.unmatched += 1;
                Disposition::Dropped(DropReason::Unmatched)
            }
        }
    }

    /// A direct attempt failed: the request goes through its entry node from now on (the
    /// same attempt: the owner's failure is not the request's), and the view is asked again.
    fn fall_back(&mut self, now: Instant, i: usize, owner_silent: bool) {
        self.stats.fallbacks += 1;
        let message_id = self.rng.next_u64();
        let ttl = self.config.view_ttl;
        let p = &mut self.pending[i];
        let (owner, entry) = (p.node, p.entry);
        p.routed = true;
        p.node = entry;
        p.message_id = message_id;
        p.sent = None;
        p.deadline = now;
        if owner_silent {
            if self.avoid.is_full() {
                self.avoid.pop_front();
            }
            let _ = self.avoid.push_back((owner, now + ttl));
        }
        if self.view.as_ref().is_some_and(|v| v.contains(owner)) {
            self.view = None;
        }
        self.next_query = now;
        self.maybe_query(now, entry);
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
    /// application's) — whoever knows it can release the lock. Taking a lock again after
    /// releasing it, use a new token (or wait for the Unlock's outcome): while an
    /// [`unlock`](Self::unlock) with the same key and token is on its way this returns
    /// [`Error::Busy`].
    ///
    /// # Errors
    /// As [`get`](Self::get); [`Error::Busy`] (above).
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
        // A Lock overtaking an Unlock of the same key and token would be taken for a renewal
        // of the lock being released, and the Unlock would then release it.
        if op == Op::Lock
            && self.pending.iter().any(|p| {
                p.request.op == Op::Unlock && p.request.key == key && p.request.token == token
            })
        {
            return Err(Error::Busy);
        }
        let id = RequestId(self.next_request);
        self.next_request = self.next_request.wrapping_add(1);
        let message_id = self.rng.next_u64();
        self.maybe_query(now, node);
        let pending = Pending {
            id,
            entry: node,
            node,
            routed: false,
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
            resent: false,
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
        match message.body {
            Body::Challenge => return self.on_challenge(now, from, message_id),
            Body::Withheld { cookie } => return self.on_withheld(now, from, message_id, cookie),
            _ => {}
        }
        if self
            .query
            .is_some_and(|q| q.sent.is_some() && q.message_id == message_id)
        {
            return self.on_view_answer(now, from, &message);
        }
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.sent.is_some() && p.message_id == message_id)
        else {
            if self
                .resent_done
                .iter()
                .any(|&(n, id)| n == from && id == message_id)
            {
                self.stats.duplicates += 1;
            } else {
                self.stats.unmatched += 1;
            }
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
        if not_owner && p.node != p.entry {
            self.fall_back(now, i, false);
            return Disposition::Handled;
        }
        if not_owner && p.attempts < self.config.max_attempts {
            self.stats.retries += 1;
            self.retry(i);
            return Disposition::Handled;
        }
        let p = self.pending.swap_remove(i);
        if p.resent {
            if self.resent_done.is_full() {
                self.resent_done.pop_front();
            }
            let _ = self.resent_done.push_back((p.node, p.message_id));
        }
        let since = p.sent.unwrap_or(now);
        let reply: Reply<KEY, VALUE> = Reply::from_body(&message.body);
        self.emit(reply.into_event(p.id, p.request.op, since));
        Disposition::Handled
    }

    /// A node proves this client's address before it sends a large answer: echo its cookie and
    /// send again at once what waits for that node (same attempt, same message id).
    fn on_challenge(&mut self, now: Instant, from: SocketAddr, cookie: u64) -> Disposition {
        let mut waiting = false;
        if let Some(q) = self
            .query
            .as_mut()
            .filter(|q| q.sent.is_some() && q.node == from)
        {
            waiting = true;
            q.sent = None;
            q.deadline = now;
        }
        for p in self.pending.iter_mut() {
            if p.node != from {
                continue;
            }
            waiting = true;
            if p.sent.is_some() {
                p.resent = true;
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

    /// A node withholds its answer to the attempt `request_id` until this client proves its
    /// address: echo the cookie (once while an Echo of it waits to go) and send again only that
    /// attempt (or the ViewRequest), if it went to `from`.
    fn on_withheld(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request_id: u64,
        cookie: u64,
    ) -> Disposition {
        let query = self
            .query
            .is_some_and(|q| q.sent.is_some() && q.node == from && q.message_id == request_id);
        let attempt = self
            .pending
            .iter()
            .position(|p| p.sent.is_some() && p.node == from && p.message_id == request_id);
        if !query && attempt.is_none() {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        if !self.echoes.iter().any(|&e| e == (from, cookie)) {
            if self.echoes.push_back((from, cookie)).is_err() {
                // No room for the Echo: the attempt waits for its timeout.
                self.stats.unmatched += 1;
                return Disposition::Dropped(DropReason::Unmatched);
            }
            self.stats.challenges_answered += 1;
        }
        if let Some(q) = self.query.as_mut().filter(|_| query) {
            q.sent = None;
            q.deadline = now;
        }
        if let Some(p) = attempt.map(|i| &mut self.pending[i]) {
            p.resent = true;
            p.sent = None;
            p.deadline = now;
        }
        Disposition::Handled
    }

    fn retry(&mut self, i: usize) {
        let message_id = self.rng.next_u64();
        let p = &mut self.pending[i];
        p.attempts += 1;
        p.message_id = message_id;
        p.sent = None;
        p.resent = false;
    }

    /// Lets time pass: attempts past their deadline are sent again, or fail with
    /// [`RequestError::Timeout`] after [`ClientConfig::max_attempts`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self
            .query
            .is_some_and(|q| q.sent.is_some() && q.deadline <= now)
        {
            self.query = None;
            self.stats.timeouts += 1;
            self.next_query = now + self.config.view_ttl;
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.sent.is_none() || p.deadline > now {
                i += 1;
                continue;
            }
            self.stats.timeouts += 1;
            if p.node != p.entry {
                self.fall_back(now, i, true);
                i += 1;
                continue;
            }
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
        if !self.echoes.is_empty() || self.query.is_some_and(|q| q.sent.is_none()) {
            return Some(Instant::ZERO);
        }
        let query = self.query.map(|q| q.deadline);
        self.pending
            .iter()
            .map(|p| {
                if p.sent.is_some() {
                    p.deadline
                } else {
                    Instant::ZERO
                }
            })
            .chain(query)
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
        if let Some(q) = self.query.as_mut().filter(|q| q.sent.is_none()) {
            let ask = Message {
                header: Header {
                    message_id: q.message_id,
                    sender: me,
                },
                body: Body::ViewRequest,
            };
            if let Ok(len) = ask.encode(buf) {
                q.sent = Some(now);
                q.deadline = now + timeout;
                self.stats.sent += 1;
                return Some(Transmit {
                    destination: q.node,
                    len,
                });
            }
            self.stats.encode_failed += 1;
            self.query = None;
        }
        while let Some(i) = self.pending.iter().position(|p| p.sent.is_none()) {
            let direct = if self.pending[i].routed {
                None
            } else {
                self.known_owner(now, &self.pending[i].request.key)
            };
            let p = &mut self.pending[i];
            p.node = direct.map_or(p.entry, |owner| owner.addr);
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
                    if p.node != p.entry {
                        self.stats.direct += 1;
                    }
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
