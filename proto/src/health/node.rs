//! The health protocol as a sans-IO state machine.

use core::net::SocketAddr;
use core::time::Duration;

use heapless::{Deque, Vec};
use rand_core::CryptoRng;

use super::{
    EncodedEntry, Health, HealthCheck, HealthKind, MAX_DATAGRAM_LEN, Message,
    PEER_TABLE_HEADER_LEN, PeerEntry, PeerTableRequest, PeerTableResponse, PeerTableWriter, Status,
};
use crate::datagram::{DatagramCore, Transmit};
use crate::nonce::Nonce;
use crate::time::Instant;
use crate::{Error, Result};

/// How many seed addresses a node remembers (and retries until they answer).
pub const MAX_SEEDS: usize = 8;
/// How many events a node buffers before it drops the newest (counted in [`Stats::events_dropped`]).
pub const EVENT_CAPACITY: usize = 32;
const TABLE_WANTED_CAPACITY: usize = 8;
const SELF_ADDR_CAPACITY: usize = 4;

/// Timing and behaviour of a [`HealthNode`].
///
/// `#[non_exhaustive]`: settings may be added. Build one with [`Config::new`] (or `default()`) and
/// the chainable `with_*` methods (`const fn`s, so a config can be a `const` or a `static`); the
/// fields stay public, to read, and to assign on a `let mut` config.
///
/// ```
/// use core::time::Duration;
/// use sinew_proto::health::Config;
///
/// const CONFIG: Config = Config::new()
///     .with_check_interval(Duration::from_millis(250))
///     .with_learn_from_requests(false);
/// assert_eq!(CONFIG.response_timeout, Config::default().response_timeout);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// How often each host in the table is checked.
    pub check_interval: Duration,
    /// How long a request waits for its response; a later response is dropped as late.
    pub response_timeout: Duration,
    /// How often the node asks one healthy host for its network table.
    pub table_interval: Duration,
    /// Whether the source of an unknown request is probed (and added if it answers). This is how
    /// a seed learns of the nodes that use it.
    pub learn_from_requests: bool,
    /// The node's own address, if known, so that it never adds itself from a peer's table. A node
    /// also recognises itself when one of its own probes comes back to it as a request.
    pub local_addr: Option<SocketAddr>,
}

impl Config {
    /// The defaults: checks every second, 500 ms to answer, a table request every 5 s, learning
    /// from requests, own address unknown.
    pub const fn new() -> Config {
        Config {
            check_interval: Duration::from_secs(1),
            response_timeout: Duration::from_millis(500),
            table_interval: Duration::from_secs(5),
            learn_from_requests: true,
            local_addr: None,
        }
    }

    /// Sets [`check_interval`](Self::check_interval).
    #[must_use]
    pub const fn with_check_interval(mut self, check_interval: Duration) -> Config {
        self.check_interval = check_interval;
        self
    }

    /// Sets [`response_timeout`](Self::response_timeout).
    #[must_use]
    pub const fn with_response_timeout(mut self, response_timeout: Duration) -> Config {
        self.response_timeout = response_timeout;
        self
    }

    /// Sets [`table_interval`](Self::table_interval).
    #[must_use]
    pub const fn with_table_interval(mut self, table_interval: Duration) -> Config {
        self.table_interval = table_interval;
        self
    }

    /// Sets [`learn_from_requests`](Self::learn_from_requests).
    #[must_use]
    pub const fn with_learn_from_requests(mut self, learn_from_requests: bool) -> Config {
        self.learn_from_requests = learn_from_requests;
        self
    }

    /// Sets [`local_addr`](Self::local_addr) to `Some(local_addr)`.
    #[must_use]
    pub const fn with_local_addr(mut self, local_addr: SocketAddr) -> Config {
        self.local_addr = Some(local_addr);
        self
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Something the application may want to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A host answered its first check and joined the network table (healthy).
    HostAdded {
        /// The host.
        addr: SocketAddr,
    },
    /// A host's lives changed.
    HealthChanged {
        /// The host.
        addr: SocketAddr,
        /// Health before.
        from: Health,
        /// Health now.
        to: Health,
    },
    /// An unhealthy host was dropped from a full table to make room for a new one.
    HostEvicted {
        /// The host.
        addr: SocketAddr,
    },
    /// A [`HealthNode::ping`] was answered.
    Pong {
        /// Who answered.
        addr: SocketAddr,
        /// The ping's nonce.
        nonce: Nonce,
        /// Round-trip time, from the `now` of `ping` to the `now` of the response.
        rtt: Duration,
    },
    /// A [`HealthNode::ping`] was not answered in time.
    PingTimeout {
        /// Who did not answer.
        addr: SocketAddr,
        /// The ping's nonce.
        nonce: Nonce,
    },
}

/// Counters of everything a node did and, above all, everything it refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams handed to [`HealthNode::handle_datagram`].
    pub received: u64,
    /// Datagrams that did not parse (dropped, never answered).
    pub malformed: u64,
    /// Health and peer-table requests answered.
    pub requests_answered: u64,
    /// Responses that matched an outstanding request (nonce, source and kind) in time.
    pub responses_accepted: u64,
    /// Responses whose nonce matched no outstanding request of their kind.
    pub unmatched: u64,
    /// Responses with an outstanding nonce but from another address than it was sent to.
    pub wrong_source: u64,
    /// Responses that arrived after their request's deadline.
    pub late: u64,
    /// Requests dropped because the transmit queue was full.
    pub queue_full: u64,
    /// Health checks (table checks, probes and pings) sent.
    pub checks_sent: u64,
    /// Health checks that went unanswered.
    pub checks_missed: u64,
    /// Peer-table requests sent.
    pub tables_requested: u64,
    /// Peer-table pages accepted.
    pub tables_received: u64,
    /// Learned hosts not added because the table was full of healthy hosts.
    pub table_full: u64,
    /// Own probes that came back as requests (the node found one of its own addresses).
    pub self_detected: u64,
    /// Events dropped because nobody polled them.
    pub events_dropped: u64,
    /// Sealed datagrams ([`seal`](crate::seal)): a keyed peer, and this node has no keyring.
    /// Dropped, and not counted as malformed.
    pub sealed: u64,
}

impl core::ops::AddAssign<&Stats> for Stats {
    /// Adds every counter of `other` (saturating), e.g. to keep totals across restarts.
    fn add_assign(&mut self, other: &Stats) {
        let Stats {
            received,
            malformed,
            requests_answered,
            responses_accepted,
            unmatched,
            wrong_source,
            late,
            queue_full,
            checks_sent,
            checks_missed,
            tables_requested,
            tables_received,
            table_full,
            self_detected,
            events_dropped,
            sealed,
        } = *other;
        for (total, more) in [
            (&mut self.received, received),
            (&mut self.malformed, malformed),
            (&mut self.requests_answered, requests_answered),
            (&mut self.responses_accepted, responses_accepted),
            (&mut self.unmatched, unmatched),
            (&mut self.wrong_source, wrong_source),
            (&mut self.late, late),
            (&mut self.queue_full, queue_full),
            (&mut self.checks_sent, checks_sent),
            (&mut self.checks_missed, checks_missed),
            (&mut self.tables_requested, tables_requested),
            (&mut self.tables_received, tables_received),
            (&mut self.table_full, table_full),
            (&mut self.self_detected, self_detected),
            (&mut self.events_dropped, events_dropped),
            (&mut self.sealed, sealed),
        ] {
            *total = total.saturating_add(more);
        }
    }
}

/// What [`HealthNode::handle_datagram`] did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Disposition {
    /// A request; its response is queued for [`HealthNode::poll_transmit`].
    Answered,
    /// A response that matched an outstanding request.
    Accepted,
    /// Dropped and counted; the reason is in [`Stats`].
    Dropped(DropReason),
    /// Not a valid datagram of the protocol; dropped, counted, never answered.
    Malformed(Error),
}

/// Why a well-formed datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DropReason {
    /// No outstanding request of that kind has this nonce.
    Unmatched,
    /// The nonce is outstanding, but for another address.
    WrongSource,
    /// The nonce was outstanding, but its deadline passed.
    Late,
    /// The transmit queue is full.
    QueueFull,
    /// The node's own probe came back to it.
    SelfTalk,
    /// A sealed datagram, and this node has no keyring (put it in a
    /// [`Keyed`](crate::seal::Keyed) to open it).
    Sealed,
}

/// What the node knows about a host in its network table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostInfo {
    /// The host's address.
    pub addr: SocketAddr,
    /// Its lives.
    pub health: Health,
    /// Round-trip time of its last answered check.
    pub last_rtt: Option<Duration>,
    /// When it last answered.
    pub last_seen: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Host {
    info: HostInfo,
    /// The host's peer-table entry, laid out when it joined (its health byte is set when the
    /// entry is served); `None` for an address no receiver would accept, which is not served.
    entry: Option<EncodedEntry>,
    next_check: Instant,
    checking: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// A periodic check of a host in the table.
    Check,
    /// A first check of a learned address; it joins the table if it answers.
    Probe,
    /// An application's ping.
    Ping,
    /// A peer-table page request.
    Table,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    nonce: Nonce,
    addr: SocketAddr,
    sent: Instant,
    deadline: Instant,
    purpose: Purpose,
}

#[derive(Clone, Copy, Debug)]
enum Outgoing {
    HealthResponse {
        to: SocketAddr,
        nonce: Nonce,
    },
    TableResponse {
        to: SocketAddr,
        request: PeerTableRequest,
    },
    Ping {
        to: SocketAddr,
        nonce: Nonce,
    },
}

/// A health-checking node, without sockets or clocks.
///
/// Feed it datagrams with [`handle_datagram`](Self::handle_datagram) and the passing of time with
/// [`handle_timeout`](Self::handle_timeout); send what [`poll_transmit`](Self::poll_transmit)
/// writes; sleep until [`poll_timeout`](Self::poll_timeout); read
/// [`poll_event`](Self::poll_event). Every call takes `now`; the node never reads a clock.
///
/// Storage is fixed at compile time: `HOSTS` hosts in the network table (and as many learned
/// addresses awaiting their probe), `PENDING` outstanding requests, `QUEUE` queued responses.
///
/// The node:
/// * checks every host in its table each [`Config::check_interval`] with a fresh nonce from `R`;
/// * accepts a response only if its nonce, its source address and its kind match an outstanding
///   request whose deadline has not passed; everything else is dropped and counted in [`Stats`];
/// * answers requests with responses no longer than the request (no amplification);
/// * keeps each host's lives: a response adds one, a missed check takes one
///   (Healthy → AtRisk → Unhealthy and back);
/// * asks a healthy host for its table every [`Config::table_interval`] (and every new host at
///   once), pages through it, probes every host it learns and adds only those that answer.
#[derive(Debug)]
pub struct HealthNode<
    R,
    const HOSTS: usize = 32,
    const PENDING: usize = 32,
    const QUEUE: usize = 16,
> {
    config: Config,
    rng: R,
    hosts: Vec<Host, HOSTS>,
    pending: Vec<Pending, PENDING>,
    queue: Deque<Outgoing, QUEUE>,
    candidates: Deque<SocketAddr, HOSTS>,
    table_wanted: Deque<(SocketAddr, u16), TABLE_WANTED_CAPACITY>,
    seeds: Vec<SocketAddr, MAX_SEEDS>,
    self_addrs: Vec<SocketAddr, SELF_ADDR_CAPACITY>,
    events: Deque<Event, EVENT_CAPACITY>,
    stats: Stats,
    next_table: Instant,
    next_seed_retry: Instant,
    table_cursor: usize,
}

impl<R: CryptoRng, const HOSTS: usize, const PENDING: usize, const QUEUE: usize>
    HealthNode<R, HOSTS, PENDING, QUEUE>
{
    /// A node with an empty table, drawing nonces from `rng` (use a CSPRNG: on a host,
    /// `sinew_proto::rand_core::UnwrapErr(getrandom::SysRng)`, getrandom 0.4 with `sys_rng`).
    pub fn new(config: Config, rng: R) -> Self {
        let self_addrs = Vec::new();
        HealthNode {
            config,
            rng,
            hosts: Vec::new(),
            pending: Vec::new(),
            queue: Deque::new(),
            candidates: Deque::new(),
            table_wanted: Deque::new(),
            seeds: Vec::new(),
            self_addrs,
            events: Deque::new(),
            stats: Stats::default(),
            next_table: Instant::ZERO,
            next_seed_retry: Instant::ZERO,
            table_cursor: 0,
        }
    }

    /// The node's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The network table.
    pub fn hosts(&self) -> impl ExactSizeIterator<Item = &HostInfo> + '_ {
        self.hosts.iter().map(|h| &h.info)
    }

    /// One host of the network table.
    pub fn host(&self, addr: SocketAddr) -> Option<&HostInfo> {
        self.hosts
            .iter()
            .find(|h| h.info.addr == addr)
            .map(|h| &h.info)
    }

    /// Adds a seed: an address that is probed now, and again every check interval until it
    /// answers and joins the table (after which it is an ordinary host).
    ///
    /// # Errors
    /// [`Error::Capacity`] beyond [`MAX_SEEDS`] seeds.
    pub fn add_seed(&mut self, addr: SocketAddr) -> Result<()> {
        if !self.seeds.contains(&addr) {
            self.seeds.push(addr).map_err(|_| Error::Capacity)?;
        }
        self.learn(addr);
        Ok(())
    }

    /// Sends one health check to `addr`, outside the network table. Its answer comes back as
    /// [`Event::Pong`] with the round-trip time, or [`Event::PingTimeout`].
    ///
    /// # Errors
    /// [`Error::Capacity`] if the outstanding-request table or the transmit queue is full.
    pub fn ping(&mut self, now: Instant, addr: SocketAddr) -> Result<Nonce> {
        if self.pending.is_full() || self.queue.is_full() {
            return Err(Error::Capacity);
        }
        let nonce = self.add_pending(now, addr, Purpose::Ping)?;
        self.queue
            .push_back(Outgoing::Ping { to: addr, nonce })
            .map_err(|_| Error::Capacity)?;
        Ok(nonce)
    }

    /// Handles one received datagram from `from`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Disposition {
        self.stats.received += 1;
        let message = match Message::parse(datagram) {
            Ok(message) => message,
            Err(Error::UnsupportedVersion(crate::seal::VERSION)) => {
                self.stats.sealed += 1;
                return Disposition::Dropped(DropReason::Sealed);
            }
            Err(error) => {
                self.stats.malformed += 1;
                return Disposition::Malformed(error);
            }
        };
        match message {
            Message::HealthRequest(nonce) => {
                self.handle_request(from, nonce, Outgoing::HealthResponse { to: from, nonce })
            }
            Message::PeerTableRequest(request) => self.handle_request(
                from,
                request.nonce,
                Outgoing::TableResponse { to: from, request },
            ),
            Message::HealthResponse(nonce) => {
                match self.take_pending(now, from, nonce, |p| p != Purpose::Table) {
                    Ok(pending) => {
                        self.on_health_response(now, pending);
                        Disposition::Accepted
                    }
                    Err(reason) => Disposition::Dropped(reason),
                }
            }
            Message::PeerTableResponse(page) => {
                match self.take_pending(now, from, page.nonce(), |p| p == Purpose::Table) {
                    Ok(_) => {
                        self.on_table_page(from, &page);
                        Disposition::Accepted
                    }
                    Err(reason) => Disposition::Dropped(reason),
                }
            }
        }
    }

    fn handle_request(&mut self, from: SocketAddr, nonce: Nonce, reply: Outgoing) -> Disposition {
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| p.nonce == nonce && p.purpose != Purpose::Ping)
        {
            // Our own request came back to us: the address we sent it to is ours. (A ping of our
            // own address is answered like any other request, and its response then matches.)
            let mine = self.pending.swap_remove(i);
            self.stats.self_detected += 1;
            self.note_self(mine.addr);
            self.note_self(from);
            return Disposition::Dropped(DropReason::SelfTalk);
        }
        if self.queue.push_back(reply).is_err() {
            self.stats.queue_full += 1;
            return Disposition::Dropped(DropReason::QueueFull);
        }
        if self.config.learn_from_requests {
            self.learn(from);
        }
        Disposition::Answered
    }

    /// Whether `addr` is the node's own: its configured address, or one it found by talking to
    /// itself (the configured one is never forgotten).
    fn is_self(&self, addr: SocketAddr) -> bool {
        self.config.local_addr == Some(addr) || self.self_addrs.contains(&addr)
    }

    fn note_self(&mut self, addr: SocketAddr) {
        if !self.self_addrs.contains(&addr) {
            if self.self_addrs.is_full() {
                self.self_addrs.remove(0);
            }
            let _ = self.self_addrs.push(addr);
        }
        if let Some(i) = self.hosts.iter().position(|h| h.info.addr == addr) {
            self.hosts.remove(i);
        }
    }

    /// Finds and removes the outstanding request answered by a response, or says why not.
    fn take_pending(
        &mut self,
        now: Instant,
        from: SocketAddr,
        nonce: Nonce,
        kind_ok: impl Fn(Purpose) -> bool,
    ) -> core::result::Result<Pending, DropReason> {
        let Some(i) = self.pending.iter().position(|p| p.nonce == nonce) else {
            self.stats.unmatched += 1;
            return Err(DropReason::Unmatched);
        };
        let pending = self.pending[i];
        if pending.addr != from {
            // Keep the request outstanding: the real host may still answer.
            self.stats.wrong_source += 1;
            return Err(DropReason::WrongSource);
        }
        if !kind_ok(pending.purpose) {
            self.stats.unmatched += 1;
            return Err(DropReason::Unmatched);
        }
        if now >= pending.deadline {
            self.pending.swap_remove(i);
            self.expire(pending);
            self.stats.late += 1;
            return Err(DropReason::Late);
        }
        self.pending.swap_remove(i);
        self.stats.responses_accepted += 1;
        Ok(pending)
    }

    fn on_health_response(&mut self, now: Instant, pending: Pending) {
        let rtt = now.saturating_duration_since(pending.sent);
        match pending.purpose {
            Purpose::Ping => {
                self.emit(Event::Pong {
                    addr: pending.addr,
                    nonce: pending.nonce,
                    rtt,
                });
            }
            Purpose::Check | Purpose::Probe => {
                if let Some(host) = self.hosts.iter_mut().find(|h| h.info.addr == pending.addr) {
                    let from = host.info.health;
                    host.info.health = from.gain();
                    host.info.last_rtt = Some(rtt);
                    host.info.last_seen = now;
                    host.checking = false;
                    let to = host.info.health;
                    if from != to {
                        self.emit(Event::HealthChanged {
                            addr: pending.addr,
                            from,
                            to,
                        });
                    }
                } else if pending.purpose == Purpose::Probe {
                    self.add_host(now, pending.addr, rtt);
                }
            }
            Purpose::Table => {}
        }
    }

    fn add_host(&mut self, now: Instant, addr: SocketAddr, rtt: Duration) {
        if self.hosts.is_full() {
            let Some(i) = self
                .hosts
                .iter()
                .position(|h| h.info.health.status() == Status::Unhealthy)
            else {
                self.stats.table_full += 1;
                return;
            };
            let evicted = self.hosts.remove(i);
            self.emit(Event::HostEvicted {
                addr: evicted.info.addr,
            });
        }
        let host = Host {
            info: HostInfo {
                addr,
                health: Health::HEALTHY,
                last_rtt: Some(rtt),
                last_seen: now,
            },
            entry: EncodedEntry::new(&PeerEntry {
                addr,
                health: Health::HEALTHY,
            })
            .ok(),
            next_check: now + self.config.check_interval,
            checking: false,
        };
        if self.hosts.push(host).is_ok() {
            self.emit(Event::HostAdded { addr });
            // A new host is the best source of news: ask for its table at once.
            if !self.table_wanted.iter().any(|&(a, _)| a == addr) {
                let _ = self.table_wanted.push_back((addr, 0));
            }
        }
    }

    fn on_table_page(&mut self, from: SocketAddr, page: &PeerTableResponse<'_>) {
        self.stats.tables_received += 1;
        // Pages reach here through `Message::parse`, which validated every entry.
        for entry in page.entries().flatten() {
            // A loopback address means something only to a peer on this same machine: from a
            // remote peer's table it would name ourselves (or nothing), never that host.
            if entry.addr.ip().is_loopback() && !from.ip().is_loopback() {
                continue;
            }
            self.learn(entry.addr);
        }
        if let Some(next) = page.next_start() {
            // Page on only while there is room for what the next page could teach us.
            if !self.candidates.is_full() {
                let _ = self.table_wanted.push_back((from, next));
            }
        }
    }

    /// Queues `addr` for a probe unless it is known, ourselves, or already being probed.
    fn learn(&mut self, addr: SocketAddr) {
        if addr.port() == 0
            || addr.ip().is_unspecified()
            || self.is_self(addr)
            || self.hosts.iter().any(|h| h.info.addr == addr)
            || self.candidates.iter().any(|&a| a == addr)
            || self
                .pending
                .iter()
                .any(|p| p.addr == addr && p.purpose == Purpose::Probe)
        {
            return;
        }
        let _ = self.candidates.push_back(addr);
    }

    fn emit(&mut self, event: Event) {
        if self.events.push_back(event).is_err() {
            self.stats.events_dropped += 1;
        }
    }

    fn add_pending(&mut self, now: Instant, addr: SocketAddr, purpose: Purpose) -> Result<Nonce> {
        let nonce = Nonce::random(&mut self.rng);
        let pending = Pending {
            nonce,
            addr,
            sent: now,
            deadline: now + self.config.response_timeout,
            purpose,
        };
        self.pending.push(pending).map_err(|_| Error::Capacity)?;
        Ok(nonce)
    }

    fn expire(&mut self, pending: Pending) {
        match pending.purpose {
            Purpose::Check => {
                self.stats.checks_missed += 1;
                if let Some(host) = self.hosts.iter_mut().find(|h| h.info.addr == pending.addr) {
                    host.checking = false;
                    let from = host.info.health;
                    host.info.health = from.lose();
                    let to = host.info.health;
                    if from != to {
                        self.emit(Event::HealthChanged {
                            addr: pending.addr,
                            from,
                            to,
                        });
                    }
                }
            }
            Purpose::Probe => self.stats.checks_missed += 1,
            Purpose::Ping => {
                self.stats.checks_missed += 1;
                self.emit(Event::PingTimeout {
                    addr: pending.addr,
                    nonce: pending.nonce,
                });
            }
            Purpose::Table => {}
        }
    }

    /// Lets time pass: expires outstanding requests (a missed check costs a life), schedules
    /// the periodic table exchange and the retry of seeds that have not answered yet.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].deadline <= now {
                let pending = self.pending.swap_remove(i);
                self.expire(pending);
            } else {
                i += 1;
            }
        }
        if now >= self.next_table {
            self.next_table = now + self.config.table_interval;
            let n = self.hosts.len();
            for step in 0..n {
                let host = &self.hosts[(self.table_cursor + step) % n];
                if host.info.health.status() == Status::Healthy {
                    let addr = host.info.addr;
                    self.table_cursor = (self.table_cursor + step + 1) % n;
                    if !self.table_wanted.iter().any(|&(a, _)| a == addr) {
                        let _ = self.table_wanted.push_back((addr, 0));
                    }
                    break;
                }
            }
        }
        if now >= self.next_seed_retry {
            self.next_seed_retry = now + self.config.check_interval;
            for k in 0..self.seeds.len() {
                let seed = self.seeds[k];
                self.learn(seed);
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) (or [`poll_transmit`](Self::poll_transmit))
    /// next has work to do, or `None` when only a datagram can wake the node.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.pending.iter().map(|p| p.deadline).min();
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        let room = !self.pending.is_full();
        if !self.queue.is_empty()
            || (room && !self.table_wanted.is_empty())
            || (room && self.probe_room() && !self.candidates.is_empty())
        {
            consider(Instant::ZERO);
        }
        if room {
            let due = self
                .hosts
                .iter()
                .filter(|h| !h.checking)
                .map(|h| h.next_check)
                .min();
            if let Some(t) = due {
                consider(t);
            }
        }
        if !self.hosts.is_empty() {
            consider(self.next_table);
        }
        if self
            .seeds
            .iter()
            .any(|s| !self.hosts.iter().any(|h| h.info.addr == *s))
        {
            consider(self.next_seed_retry);
        }
        next
    }

    /// Takes the next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Writes the next datagram to send into `buf` (give it [`MAX_DATAGRAM_LEN`] bytes) and
    /// says where it goes; `None` when there is nothing to send. Call until `None`.
    ///
    /// A shorter buffer asks for (and serves) smaller peer-table pages; below
    /// [`PEER_TABLE_HEADER_LEN`] bytes only queued health responses
    /// are written.
    ///
    /// Queued responses go first, then table requests, probes of learned hosts, and due checks.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        while let Some(out) = self.queue.pop_front() {
            if let Some(t) = self.write_outgoing(out, buf) {
                return Some(t);
            }
        }
        // Every request below fits in PEER_TABLE_HEADER_LEN bytes, so none can fail to encode
        // after its outstanding entry was made.
        if self.pending.is_full() || buf.len() < PEER_TABLE_HEADER_LEN {
            return None;
        }
        if let Some((to, start)) = self.table_wanted.pop_front() {
            let nonce = self.add_pending(now, to, Purpose::Table).ok()?;
            // Ask for as much as the buffer can carry (a full page with MAX_DATAGRAM_LEN bytes).
            let len = buf.len().min(MAX_DATAGRAM_LEN) as u16;
            let len = PeerTableRequest { nonce, start, len }.encode(buf).ok()?;
            self.stats.tables_requested += 1;
            return Some(Transmit {
                destination: to,
                len,
            });
        }
        while self.probe_room()
            && let Some(to) = self.candidates.pop_front()
        {
            if self.hosts.iter().any(|h| h.info.addr == to) || self.is_self(to) {
                continue;
            }
            return self.send_check(now, to, Purpose::Probe, buf);
        }
        let host = self
            .hosts
            .iter_mut()
            .find(|h| !h.checking && h.next_check <= now)?;
        host.checking = true;
        host.next_check = now + self.config.check_interval;
        let to = host.info.addr;
        self.send_check(now, to, Purpose::Check, buf)
    }

    /// Probes may hold at most half of the outstanding-request table, so that a flood of
    /// requests from unknown (possibly spoofed) sources cannot crowd out the checks of known hosts.
    fn probe_room(&self) -> bool {
        let probes = self
            .pending
            .iter()
            .filter(|p| p.purpose == Purpose::Probe)
            .count();
        probes < (PENDING / 2).max(1)
    }

    fn send_check(
        &mut self,
        now: Instant,
        to: SocketAddr,
        purpose: Purpose,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let nonce = self.add_pending(now, to, purpose).ok()?;
        let len = HealthCheck {
            kind: HealthKind::Request,
            nonce,
        }
        .encode(buf)
        .ok()?;
        self.stats.checks_sent += 1;
        Some(Transmit {
            destination: to,
            len,
        })
    }

    fn write_outgoing(&mut self, out: Outgoing, buf: &mut [u8]) -> Option<Transmit> {
        let (to, len) = match out {
            Outgoing::HealthResponse { to, nonce } => {
                let len = HealthCheck {
                    kind: HealthKind::Response,
                    nonce,
                }
                .encode(buf)
                .ok()?;
                self.stats.requests_answered += 1;
                (to, len)
            }
            Outgoing::Ping { to, nonce } => {
                let len = HealthCheck {
                    kind: HealthKind::Request,
                    nonce,
                }
                .encode(buf)
                .ok()?;
                self.stats.checks_sent += 1;
                (to, len)
            }
            Outgoing::TableResponse { to, request } => {
                // Never answer with more bytes than the request carried.
                let budget = request.encoded_len().min(buf.len()).min(MAX_DATAGRAM_LEN);
                let total = u16::try_from(self.hosts.len()).unwrap_or(u16::MAX);
                // A start past the end gets an empty page at the end, which tells the size.
                let start = request.start.min(total);
                let mut writer =
                    PeerTableWriter::new(&mut buf[..budget], request.nonce, start, total).ok()?;
                for host in self.hosts.iter().skip(usize::from(start)) {
                    if writer.is_full() {
                        break;
                    }
                    // An entry the receiver would refuse (port 0) is left out, not sent.
                    if let Some(mut entry) = host.entry {
                        entry.set_health(host.info.health);
                        let _ = writer.push_encoded(&entry);
                    }
                }
                self.stats.requests_answered += 1;
                (to, writer.finish())
            }
        };
        Some(Transmit {
            destination: to,
            len,
        })
    }
}

impl<R: CryptoRng, const HOSTS: usize, const PENDING: usize, const QUEUE: usize> DatagramCore
    for HealthNode<R, HOSTS, PENDING, QUEUE>
{
    type Event = Event;
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

    fn poll_event(&mut self) -> Option<Event> {
        Self::poll_event(self)
    }
}

#[cfg(feature = "defmt")]
mod defmt_impls {
    use super::{Config, Event, HostInfo};
    use defmt::{Display2Format as D, Format, Formatter, write};

    fn ms(d: core::time::Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    impl Format for Config {
        fn format(&self, f: Formatter<'_>) {
            write!(
                f,
                "Config {{ check {=u64}ms, timeout {=u64}ms, table {=u64}ms, learn {=bool} }}",
                ms(self.check_interval),
                ms(self.response_timeout),
                ms(self.table_interval),
                self.learn_from_requests
            )
        }
    }

    impl Format for HostInfo {
        fn format(&self, f: Formatter<'_>) {
            write!(f, "{} {}", D(&self.addr), self.health)
        }
    }

    impl Format for Event {
        fn format(&self, f: Formatter<'_>) {
            match self {
                Event::HostAdded { addr } => write!(f, "host added {}", D(addr)),
                Event::HealthChanged { addr, from, to } => {
                    write!(f, "{} {} -> {}", D(addr), from, to)
                }
                Event::HostEvicted { addr } => write!(f, "host evicted {}", D(addr)),
                Event::Pong { addr, rtt, .. } => {
                    write!(
                        f,
                        "pong from {} in {=u64}us",
                        D(addr),
                        u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX)
                    )
                }
                Event::PingTimeout { addr, .. } => write!(f, "ping timeout {}", D(addr)),
            }
        }
    }
}
