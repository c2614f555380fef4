//! `health_node`: a [`HealthNode`] driven by an arbitrary script, against a model of what it
//! may do.
//!
//! The script feeds datagrams (arbitrary bytes; well-formed requests; answers built from the
//! node's own recent transmissions, so that responses with the right nonce and source are
//! reachable; those transmissions echoed back, mutated), advances virtual time, and calls every
//! other entry point. After each step the node is checked against these invariants:
//! * every transmitted datagram parses with [`Message::parse`], fits in [`MAX_DATAGRAM_LEN`]
//!   bytes and leaves the rest of the buffer untouched;
//! * responses go out in the order the requests were answered, to the requester, with the
//!   request's nonce and kind, never longer than the request (no amplification);
//! * a host joins the table or gains a life only while handling a health response whose source
//!   is the address the node sent that nonce to; never from a timeout, a poll, a ping or a seed;
//! * the table never exceeds its capacity, never holds an address twice or the node's own;
//! * the counters match what was observed: every datagram received is counted exactly once,
//!   as malformed or under the disposition it got; checks, table requests and answers sent equal
//!   the datagrams transmitted;
//! * [`HealthNode::poll_timeout`] does not hide work: when it says "not before later", nothing
//!   is transmitted now, and a transmit drain ends.

use core::fmt::Debug;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use sinew_proto::health::{
    Config, Disposition, DropReason, Event, Health, HealthCheck, HealthKind, HealthNode,
    MAX_DATAGRAM_LEN, Message, PeerEntry, PeerTableRequest, PeerTableWriter, Stats,
};
use sinew_proto::nonce::Nonce;
use sinew_proto::time::Instant;

use crate::parse_health::FILL;
use crate::rng::FuzzRng;

/// The addresses datagrams come from, by index; the last one is the node's own when the
/// script gives it a `local_addr`.
pub fn known_addrs() -> [SocketAddr; 6] {
    let v4 = |d, port| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, d)), port);
    [
        v4(1, 7000),
        v4(2, 7000),
        // Same host as the first, another port: a different peer.
        v4(1, 7001),
        SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), 7000),
        // The first peer as a dual-stack socket reports it: a different SocketAddr.
        SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            7000,
        ),
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), 7000),
    ]
}

/// The whole input of one run.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Seed of the node's nonce generator.
    pub seed: u64,
    /// The default capacities (32 hosts, 32 pending, 16 queued) instead of tiny ones that fill.
    pub default_capacities: bool,
    /// Timing and behaviour.
    pub config: ScriptConfig,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

/// A [`Config`] in the units a fuzzer reaches easily.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Check interval, milliseconds.
    pub check_ms: u16,
    /// Response timeout, milliseconds.
    pub timeout_ms: u16,
    /// Table interval, milliseconds.
    pub table_ms: u16,
    /// [`Config::learn_from_requests`].
    pub learn_from_requests: bool,
    /// [`Config::local_addr`]: the last known address, if set.
    pub local: bool,
}

/// Where a datagram comes from (or a ping / seed goes to).
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// One of [`known_addrs`].
    Known(u8),
    /// The destination of the transmission the step refers to (the last one by default).
    Destination,
    /// Anywhere.
    Any(SocketAddr),
}

/// One step of a script.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Arbitrary bytes.
    Datagram {
        /// Source.
        from: Source,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A well-formed request (fresh nonce, or the nonce of one of the node's own requests).
    Request {
        /// Source.
        from: Source,
        /// The nonce.
        nonce: NonceChoice,
        /// A peer-table request `(start, len)` instead of a health request.
        table: Option<(u16, u16)>,
    },
    /// The answer to one of the recent transmissions: a health response to a health request, a
    /// page built from `page` to a table request, the datagram itself to anything else.
    Answer {
        /// Which recent transmission, counting back from the last.
        which: u8,
        /// Source; the transmission's destination if `None`.
        from: Option<Source>,
        /// The page, for a table request.
        page: Page,
        /// Bytes to flip: `(position, xor)`, positions wrapping.
        flips: Vec<(u16, u8)>,
    },
    /// Time passes.
    Advance(Advance),
    /// Time passes until the node's next timeout, which is then handled, and everything due is
    /// transmitted: the adapter's loop. Peers marked alive answer at once, from the right
    /// address (a table request with a page of every known address).
    Sleep,
    /// Marks a peer as alive (answering in [`Op::Sleep`]) or not.
    Alive(Source, bool),
    /// [`HealthNode::handle_timeout`].
    HandleTimeout,
    /// One [`HealthNode::poll_transmit`].
    PollTransmit,
    /// [`HealthNode::poll_transmit`] until it returns `None`.
    Drain,
    /// [`HealthNode::ping`].
    Ping(Source),
    /// [`HealthNode::add_seed`].
    AddSeed(Source),
    /// [`HealthNode::poll_event`] until it returns `None`.
    PollEvents,
}

/// How much time passes.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// Microseconds.
    Micros(u16),
    /// Milliseconds.
    Millis(u16),
    /// Seconds.
    Secs(u8),
}

/// The nonce of a request sent to the node.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceChoice {
    /// Any nonce.
    Fresh(Nonce),
    /// The nonce of one of the recent transmissions (the node's own request coming back).
    Recent(u8),
}

/// A page of a peer table sent in answer to the node's table request.
#[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The page's start; the request's if `None`.
    pub start: Option<u16>,
    /// `total - start - entries`, saturating; or any total if `None`.
    pub beyond: Option<u8>,
    /// The entries, as many as the request's budget takes.
    pub entries: Vec<EntryChoice>,
}

/// One entry of an answered page.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryChoice {
    /// One of [`known_addrs`] with the given health.
    Known(u8, Health),
    /// Anything valid.
    Any(PeerEntry),
}

/// What a run saw, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Final counters.
    pub stats: Stats,
    /// Hosts in the table at the end.
    pub hosts: usize,
    /// Largest table seen.
    pub max_hosts: usize,
    /// `HostAdded` events seen.
    pub hosts_added: u64,
    /// `Pong` events seen.
    pub pongs: u64,
    /// Lives lost by hosts of the table.
    pub lives_lost: u64,
    /// Steps after which a host of the table was unhealthy.
    pub unhealthy: u64,
    /// `HostEvicted` events seen.
    pub evictions: u64,
    /// Transmissions.
    pub transmits: u64,
}

mod encode;
pub use encode::encode;

/// Decodes a script from raw fuzz input and runs it (no-op when the input is too short).
pub fn check(data: &[u8]) -> Option<Summary> {
    let script = Script::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    Some(run(&script))
}

/// Runs a script, panicking on any broken invariant.
pub fn run(script: &Script) -> Summary {
    if script.default_capacities {
        Harness::<32, 32, 16>::new(script).run(&script.ops)
    } else {
        Harness::<3, 4, 2>::new(script).run(&script.ops)
    }
}

/// A response the node owes: queued when a request was answered or a ping sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Owed {
    to: SocketAddr,
    nonce: Nonce,
    /// What it must be: a health response, a table response no longer than `len`, or a ping.
    kind: OwedKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OwedKind {
    HealthResponse,
    TableResponse { len: usize },
    Ping,
}

/// A datagram the node transmitted, as far as the checks care.
#[derive(Clone, Copy, Debug)]
enum Observed {
    HealthRequest(Nonce),
    HealthResponse(Nonce),
    TableRequest(PeerTableRequest),
    TableResponse(Nonce),
}

#[derive(Clone, Debug)]
struct Sent {
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Harness<const H: usize, const P: usize, const Q: usize> {
    node: HealthNode<FuzzRng, H, P, Q>,
    local: Option<SocketAddr>,
    now: Instant,
    /// The node's last transmissions, newest last.
    recent: Vec<Sent>,
    /// Health requests the node transmitted: `(nonce, destination)`.
    health_requests: Vec<(Nonce, SocketAddr)>,
    /// The table after the previous step.
    last_table: Vec<(SocketAddr, Health)>,
    /// Peers that answer during [`Op::Sleep`].
    alive: Vec<SocketAddr>,
    /// Nonces returned by `ping`, with their destination.
    pings: Vec<(Nonce, SocketAddr)>,
    /// Responses the node owes, in order.
    owed: std::collections::VecDeque<Owed>,
    // What the counters must say.
    received: u64,
    malformed: u64,
    answered: u64,
    accepted: u64,
    checks_sent: u64,
    tables_requested: u64,
    responses_sent: u64,
    summary: Summary,
}

impl<const H: usize, const P: usize, const Q: usize> Harness<H, P, Q> {
    fn new(script: &Script) -> Self {
        let c = &script.config;
        let local = c.local.then(|| known_addrs()[5]);
        let mut config = Config::new()
            .with_check_interval(Duration::from_millis(c.check_ms.into()))
            .with_response_timeout(Duration::from_millis(c.timeout_ms.into()))
            .with_table_interval(Duration::from_millis(c.table_ms.into()))
            .with_learn_from_requests(c.learn_from_requests);
        config.local_addr = local;
        let node = HealthNode::new(config, FuzzRng::new(script.seed));
        assert_eq!(node.config(), &config);
        assert_eq!(node.stats(), &Stats::default());
        assert_eq!(node.hosts().len(), 0);
        Harness {
            node,
            local,
            now: Instant::ZERO,
            recent: Vec::new(),
            alive: Vec::new(),
            last_table: Vec::new(),
            health_requests: Vec::new(),
            pings: Vec::new(),
            owed: Default::default(),
            received: 0,
            malformed: 0,
            answered: 0,
            accepted: 0,
            checks_sent: 0,
            tables_requested: 0,
            responses_sent: 0,
            summary: Summary::default(),
        }
    }

    fn run(mut self, ops: &[Op]) -> Summary {
        for op in ops {
            self.step(op);
            self.check_table();
            self.check_stats();
        }
        // The adapter's loop would get there eventually: flush and check once more.
        self.drain();
        self.poll_events();
        self.check_stats();
        self.summary.stats = *self.node.stats();
        self.summary.hosts = self.node.hosts().len();
        self.summary
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Datagram { from, bytes } => {
                let from = self.source(*from, None);
                self.deliver(from, bytes);
            }
            Op::Request { from, nonce, table } => {
                let from = self.source(*from, None);
                let nonce = match *nonce {
                    NonceChoice::Fresh(nonce) => nonce,
                    NonceChoice::Recent(which) => match self.recent_at(which) {
                        Some(sent) => sent_nonce(&sent.bytes),
                        None => Nonce::default(),
                    },
                };
                let mut buf = [0; MAX_DATAGRAM_LEN];
                let len = match *table {
                    None => HealthCheck {
                        kind: HealthKind::Request,
                        nonce,
                    }
                    .encode(&mut buf),
                    Some((start, len)) => PeerTableRequest { nonce, start, len }.encode(&mut buf),
                }
                .expect("a request fits in MAX_DATAGRAM_LEN");
                self.deliver(from, &buf[..len]);
            }
            Op::Answer {
                which,
                from,
                page,
                flips,
            } => {
                let Some(sent) = self.recent_at(*which).cloned() else {
                    return;
                };
                let from = match from {
                    Some(source) => self.source(*source, Some(&sent)),
                    None => sent.to,
                };
                let mut bytes = answer(&sent, page);
                if !bytes.is_empty() {
                    for &(at, xor) in flips {
                        let at = usize::from(at) % bytes.len();
                        bytes[at] ^= xor;
                    }
                }
                self.deliver(from, &bytes);
            }
            Op::Advance(advance) => {
                self.now = self.now
                    + match *advance {
                        Advance::Micros(n) => Duration::from_micros(n.into()),
                        Advance::Millis(n) => Duration::from_millis(n.into()),
                        Advance::Secs(n) => Duration::from_secs(n.into()),
                    };
            }
            Op::Sleep => {
                if let Some(at) = self.node.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.handle_timeout();
                let first = self.summary.transmits;
                self.drain();
                let sent = (self.summary.transmits - first) as usize;
                let start = self.recent.len().saturating_sub(sent);
                let answers: Vec<(SocketAddr, Vec<u8>)> = self.recent[start..]
                    .iter()
                    .filter(|sent| self.alive.contains(&sent.to))
                    .map(|sent| (sent.to, answer(sent, &everyone())))
                    .collect();
                for (from, datagram) in answers {
                    self.deliver(from, &datagram);
                }
            }
            Op::Alive(who, alive) => {
                let who = self.source(*who, None);
                self.alive.retain(|&a| a != who);
                if *alive {
                    self.alive.push(who);
                }
            }
            Op::HandleTimeout => self.handle_timeout(),
            Op::PollTransmit => {
                self.poll_transmit();
            }
            Op::Drain => self.drain(),
            Op::Ping(to) => {
                let to = self.source(*to, None);
                let before = self.table();
                let result = self.node.ping(self.now, to);
                self.no_gain(&before, "ping");
                match result {
                    Ok(nonce) => {
                        self.pings.push((nonce, to));
                        self.owed.push_back(Owed {
                            to,
                            nonce,
                            kind: OwedKind::Ping,
                        });
                        assert!(self.owed.len() <= Q, "queue model beyond capacity");
                    }
                    Err(sinew_proto::Error::Capacity) => {}
                    Err(error) => panic!("ping: unexpected {error:?}"),
                }
            }
            Op::AddSeed(addr) => {
                let addr = self.source(*addr, None);
                let before = self.table();
                match self.node.add_seed(addr) {
                    Ok(()) | Err(sinew_proto::Error::Capacity) => {}
                    Err(error) => panic!("add_seed: unexpected {error:?}"),
                }
                self.no_gain(&before, "add_seed");
            }
            Op::PollEvents => self.poll_events(),
        }
    }

    fn recent_at(&self, which: u8) -> Option<&Sent> {
        let back = usize::from(which) % self.recent.len().max(1);
        self.recent.iter().rev().nth(back)
    }

    fn source(&self, source: Source, sent: Option<&Sent>) -> SocketAddr {
        let known = known_addrs();
        match source {
            Source::Known(i) => known[usize::from(i) % known.len()],
            Source::Destination => sent.or(self.recent.last()).map_or(known[0], |sent| sent.to),
            Source::Any(addr) => addr,
        }
    }

    fn table(&self) -> Vec<(SocketAddr, Health)> {
        self.node.hosts().map(|h| (h.addr, h.health)).collect()
    }

    /// Asserts that no host was added and none gained a life since `before`.
    fn no_gain(&self, before: &[(SocketAddr, Health)], during: &str) {
        for (addr, health) in self.table() {
            match before.iter().find(|(a, _)| *a == addr) {
                None => panic!("{addr} joined the table during {during}"),
                Some(&(_, was)) => assert!(
                    health <= was,
                    "{addr} gained a life during {during}: {was:?} -> {health:?}"
                ),
            }
        }
    }

    fn deliver(&mut self, from: SocketAddr, datagram: &[u8]) {
        let before = self.table();
        let stats = *self.node.stats();
        let parsed = Message::parse(datagram);
        let disposition = self.node.handle_datagram(self.now, from, datagram);
        self.received += 1;

        // The disposition's counter moved by one, and no other.
        let after = *self.node.stats();
        let moved = |f: fn(&Stats) -> u64| f(&after) - f(&stats);
        let counters = [
            (
                matches!(disposition, Disposition::Malformed(_)),
                moved(|s| s.malformed),
            ),
            (
                disposition == Disposition::Dropped(DropReason::Sealed),
                moved(|s| s.sealed),
            ),
            (
                disposition == Disposition::Dropped(DropReason::SelfTalk),
                moved(|s| s.self_detected),
            ),
            (
                disposition == Disposition::Dropped(DropReason::QueueFull),
                moved(|s| s.queue_full),
            ),
            (
                disposition == Disposition::Accepted,
                moved(|s| s.responses_accepted),
            ),
            (
                disposition == Disposition::Dropped(DropReason::Unmatched),
                moved(|s| s.unmatched),
            ),
            (
                disposition == Disposition::Dropped(DropReason::WrongSource),
                moved(|s| s.wrong_source),
            ),
            (
                disposition == Disposition::Dropped(DropReason::Late),
                moved(|s| s.late),
            ),
        ];
        for (i, (mine, delta)) in counters.into_iter().enumerate() {
            assert_eq!(
                delta,
                u64::from(mine),
                "disposition {disposition:?} but counter {i} moved by {delta}: {stats:?} -> {after:?}"
            );
        }

        let message = match parsed {
            // A sealed datagram (version 1) on a node without a keyring: counted as sealed.
            Err(sinew_proto::Error::UnsupportedVersion(sinew_proto::seal::VERSION)) => {
                assert_eq!(disposition, Disposition::Dropped(DropReason::Sealed));
                self.malformed += 1;
                self.no_gain(&before, "a sealed datagram");
                return;
            }
            Err(error) => {
                assert_eq!(disposition, Disposition::Malformed(error));
                self.malformed += 1;
                self.no_gain(&before, "a malformed datagram");
                return;
            }
            Ok(message) => message,
        };
        match (message, disposition) {
            (Message::HealthRequest(nonce), Disposition::Answered) => {
                self.answered += 1;
                self.owed.push_back(Owed {
                    to: from,
                    nonce,
                    kind: OwedKind::HealthResponse,
                });
            }
            (Message::PeerTableRequest(request), Disposition::Answered) => {
                self.answered += 1;
                self.owed.push_back(Owed {
                    to: from,
                    nonce: request.nonce,
                    kind: OwedKind::TableResponse {
                        len: datagram.len(),
                    },
                });
            }
            (Message::HealthResponse(_) | Message::PeerTableResponse(_), Disposition::Accepted) => {
                self.accepted += 1;
            }
            (
                Message::HealthRequest(_) | Message::PeerTableRequest(_),
                Disposition::Dropped(DropReason::SelfTalk | DropReason::QueueFull),
            )
            | (
                Message::HealthResponse(_) | Message::PeerTableResponse(_),
                Disposition::Dropped(
                    DropReason::Unmatched | DropReason::WrongSource | DropReason::Late,
                ),
            ) => {}
            (message, disposition) => panic!("{message:?} got {disposition:?}"),
        }
        assert!(
            self.owed.len() <= Q,
            "more responses owed than the queue holds"
        );

        let accepted = disposition == Disposition::Accepted;
        if matches!(message, Message::PeerTableResponse(_)) && accepted {
            assert_eq!(after.tables_received, stats.tables_received + 1);
        } else {
            assert_eq!(after.tables_received, stats.tables_received);
        }

        // A host joins or gains a life only through a health response from the address its
        // nonce was sent to.
        let proof = match message {
            Message::HealthResponse(nonce) if accepted => {
                self.health_requests.contains(&(nonce, from))
            }
            _ => false,
        };
        for (addr, health) in self.table() {
            let was = before.iter().find(|(a, _)| *a == addr).map(|&(_, h)| h);
            if was.is_none_or(|was| health > was) {
                assert!(
                    proof && addr == from,
                    "{addr} joined or gained a life ({was:?} -> {health:?}) from {message:?} \
                     sent by {from} ({disposition:?})"
                );
            }
        }
    }

    fn handle_timeout(&mut self) {
        let before = self.table();
        self.node.handle_timeout(self.now);
        self.no_gain(&before, "handle_timeout");
    }

    /// One `poll_transmit`, checked; whether it sent something.
    fn poll_transmit(&mut self) -> bool {
        let before = self.table();
        let timeout = self.node.poll_timeout();
        let mut buf = [FILL; MAX_DATAGRAM_LEN];
        let transmit = self.node.poll_transmit(self.now, &mut buf);
        self.no_gain(&before, "poll_transmit");
        let Some(transmit) = transmit else {
            return false;
        };
        assert!(
            timeout.is_some_and(|t| t <= self.now),
            "poll_transmit sent {transmit:?} at {} but poll_timeout said {timeout:?}",
            self.now
        );
        self.summary.transmits += 1;
        let len = transmit.len;
        assert!(len <= MAX_DATAGRAM_LEN, "transmit of {len} bytes");
        assert!(
            buf[len..].iter().all(|&b| b == FILL),
            "poll_transmit wrote past its datagram"
        );
        let datagram = &buf[..len];
        let to = transmit.destination;
        let observed = match Message::parse(datagram) {
            Ok(Message::HealthRequest(nonce)) => Observed::HealthRequest(nonce),
            Ok(Message::HealthResponse(nonce)) => Observed::HealthResponse(nonce),
            Ok(Message::PeerTableRequest(request)) => Observed::TableRequest(request),
            Ok(Message::PeerTableResponse(page)) => Observed::TableResponse(page.nonce()),
            Ok(other) => panic!("a message kind this harness does not check: {other:?}"),
            Err(error) => panic!(
                "node transmitted a datagram that does not parse ({error:?}) to {to}: \
                 {datagram:02x?}"
            ),
        };
        // Responses (and pings) leave in the order they were queued, ahead of everything else.
        if let Some(owed) = self.owed.front().copied() {
            let ok = match (owed.kind, observed) {
                (OwedKind::HealthResponse, Observed::HealthResponse(nonce))
                | (OwedKind::Ping, Observed::HealthRequest(nonce)) => nonce == owed.nonce,
                (OwedKind::TableResponse { len: budget }, Observed::TableResponse(nonce)) => {
                    assert!(
                        len <= budget,
                        "amplification: a {budget}-byte table request got {len} bytes"
                    );
                    nonce == owed.nonce
                }
                _ => false,
            };
            assert!(
                ok && to == owed.to,
                "owed {owed:?} first, but the node sent {observed:?} to {to}"
            );
            self.owed.pop_front();
        } else {
            assert!(
                matches!(
                    observed,
                    Observed::HealthRequest(_) | Observed::TableRequest(_)
                ),
                "unsolicited response {observed:?} to {to}"
            );
        }
        match observed {
            Observed::HealthRequest(nonce) => {
                self.checks_sent += 1;
                self.health_requests.push((nonce, to));
                if Some(to) == self.local {
                    assert!(self.pings.contains(&(nonce, to)), "a check sent to itself");
                }
            }
            Observed::TableRequest(request) => {
                self.tables_requested += 1;
                assert_eq!(usize::from(request.len), MAX_DATAGRAM_LEN);
                assert_ne!(Some(to), self.local, "a table request sent to itself");
            }
            Observed::HealthResponse(_) | Observed::TableResponse(_) => self.responses_sent += 1,
        }
        self.recent.push(Sent {
            to,
            bytes: datagram.to_vec(),
        });
        if self.recent.len() > 64 {
            self.recent.remove(0);
        }
        true
    }

    fn drain(&mut self) {
        // Every request transmitted takes a pending slot and every response a queued one.
        for _ in 0..=P + Q + 1 {
            if !self.poll_transmit() {
                assert!(
                    self.owed.is_empty(),
                    "owed {:?} but nothing sent",
                    self.owed
                );
                return;
            }
        }
        panic!("poll_transmit never returned None");
    }

    fn poll_events(&mut self) {
        while let Some(event) = self.node.poll_event() {
            match event {
                Event::HostAdded { addr } => {
                    self.summary.hosts_added += 1;
                    assert!(
                        self.health_requests.iter().any(|&(_, to)| to == addr),
                        "{addr} added without a check sent to it"
                    );
                }
                Event::Pong { addr, nonce, .. } => {
                    self.summary.pongs += 1;
                    assert!(self.pings.contains(&(nonce, addr)), "{event:?} for no ping");
                }
                Event::PingTimeout { addr, nonce } => {
                    assert!(self.pings.contains(&(nonce, addr)), "{event:?} for no ping");
                }
                Event::HostEvicted { .. } => self.summary.evictions += 1,
                Event::HealthChanged { from, to, .. } => assert_ne!(from, to),
                other => panic!("an event this harness does not check: {other:?}"),
            }
        }
    }

    fn check_table(&mut self) {
        let table = self.table();
        assert!(table.len() <= H, "{} hosts in a table of {H}", table.len());
        self.summary.max_hosts = self.summary.max_hosts.max(table.len());
        self.summary.unhealthy += u64::from(table.iter().any(|(_, h)| h.lives() == 0));
        for (addr, health) in &table {
            if let Some((_, was)) = self.last_table.iter().find(|(a, _)| a == addr) {
                self.summary.lives_lost += u64::from(was.lives().saturating_sub(health.lives()));
            }
        }
        self.last_table = table.clone();
        for (i, (addr, _)) in table.iter().enumerate() {
            assert!(
                !table[..i].iter().any(|(a, _)| a == addr),
                "{addr} twice in the table"
            );
            assert_ne!(
                Some(*addr),
                self.local,
                "the node's own address in its table"
            );
            assert!(
                addr.port() != 0 && !addr.ip().is_unspecified(),
                "{addr} in the table"
            );
            let info = self.node.host(*addr).expect("host() finds a listed host");
            assert_eq!(info.addr, *addr);
        }
    }

    fn check_stats(&self) {
        let s = self.node.stats();
        assert_eq!(s.received, self.received, "received");
        assert_eq!(
            s.malformed + s.sealed,
            self.malformed,
            "malformed or sealed"
        );
        assert_eq!(s.responses_accepted, self.accepted, "responses_accepted");
        assert_eq!(s.checks_sent, self.checks_sent, "checks_sent");
        assert_eq!(
            s.tables_requested, self.tables_requested,
            "tables_requested"
        );
        assert_eq!(
            s.requests_answered, self.responses_sent,
            "requests_answered"
        );
        assert!(s.tables_received <= s.responses_accepted);
        let pending_answers = self
            .owed
            .iter()
            .filter(|o| o.kind != OwedKind::Ping)
            .count() as u64;
        assert_eq!(self.answered, s.requests_answered + pending_answers);
        assert_eq!(
            s.received,
            s.malformed
                + s.sealed
                + self.answered
                + s.self_detected
                + s.queue_full
                + s.responses_accepted
                + s.unmatched
                + s.wrong_source
                + s.late,
            "received != malformed + the rest: {s:?}"
        );
    }
}

/// A page of every known address, healthy.
fn everyone() -> Page {
    Page {
        start: None,
        beyond: Some(0),
        entries: (0..known_addrs().len() as u8)
            .map(|i| EntryChoice::Known(i, Health::HEALTHY))
            .collect(),
    }
}

/// The datagram a peer would send back for `sent`.
fn answer(sent: &Sent, page: &Page) -> Vec<u8> {
    let known = known_addrs();
    match Message::parse(&sent.bytes) {
        Ok(Message::HealthRequest(nonce)) => {
            let mut buf = [0; 17];
            let len = HealthCheck {
                kind: HealthKind::Response,
                nonce,
            }
            .encode(&mut buf)
            .expect("17 bytes");
            buf[..len].to_vec()
        }
        Ok(Message::PeerTableRequest(request)) => {
            let mut buf = vec![0; request.encoded_len()];
            let start = page.start.unwrap_or(request.start);
            let count = page.entries.len().min(request.entry_budget());
            let total = match page.beyond {
                Some(beyond) => {
                    let total = usize::from(start) + count + usize::from(beyond);
                    u16::try_from(total).unwrap_or(u16::MAX)
                }
                None => start.wrapping_mul(31).max(start),
            };
            let mut writer = PeerTableWriter::new(&mut buf, request.nonce, start, total)
                .expect("a request is at least a header long, and start <= total");
            for choice in &page.entries {
                let entry = match *choice {
                    EntryChoice::Known(i, health) => PeerEntry {
                        addr: known[usize::from(i) % known.len()],
                        health,
                    },
                    EntryChoice::Any(entry) => entry,
                };
                if writer.push(&entry).is_err() {
                    break;
                }
            }
            let len = writer.finish();
            buf.truncate(len);
            buf
        }
        _ => sent.bytes.clone(),
    }
}

/// The nonce of a transmitted datagram (every datagram starts with it).
fn sent_nonce(bytes: &[u8]) -> Nonce {
    let mut nonce = [0; 16];
    nonce.copy_from_slice(&bytes[1..17]);
    Nonce::from_bytes(nonce)
}
