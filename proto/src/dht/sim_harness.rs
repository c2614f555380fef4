//! The harness of the many-node DHT tests, on the public virtual-time network
//! ([`crate::sim::Network`]): ring nodes and clients outside the ring as one kind of
//! [`DatagramCore`] ([`Member`]), a ring of N built through random members, the ring's
//! correctness, and what the tests read back (each request's outcome, what went outside).
//!
//! The network keeps the time, the datagrams on their way, latency, loss and crashes; this
//! module only drives it and keeps, per member, the events the tests look at.
//!
//! `Sim` keeps the names of the harness the tests were first written against (`sim.now`,
//! `sim.nodes[i].node`, `sim.flush(i)`, `sim.outside`, `sim.index`, `sim.net`), so that
//! `attack_tests.rs` runs on the network unchanged.

use super::super::*;
use crate::datagram::{DatagramCore, Transmit};
use crate::dht::{Body, ClientConfig, DhtClient, Header, MAX_MESSAGE_LEN, Message, ring};
use crate::sim::{InFlight, NetConfig, NetStats, Network};
use core::convert::Infallible;
use core::net::SocketAddr;
use core::ops::{Index, IndexMut};
use std::cmp::Reverse;
use std::collections::HashMap;
use std::format;
use std::string::String;
use std::vec::Vec as StdVec;
use std::{boxed::Box, println, vec};

/// A deterministic generator (splitmix64) standing in for a CSPRNG.
pub(crate) struct TestRng(pub(crate) u64);

impl rand_core::TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> core::result::Result<u32, Infallible> {
        self.try_next_u64().map(|v| v as u32)
    }
    fn try_next_u64(&mut self) -> core::result::Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

impl TestRng {
    pub(crate) fn next(&mut self) -> u64 {
        rand_core::TryRng::try_next_u64(self).unwrap_or(0)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

pub(crate) const V: usize = 32;
pub(crate) type Node = DhtNode<TestRng, 4, 64, 16, V, 32>;
pub(crate) type Ev = Event<V>;
pub(crate) type Client = DhtClient<TestRng, 8, 16, V>;

pub(crate) fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 7000))
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn config(id: NodeId, i: usize) -> Config {
    let mut c = Config::new(NodeAddr { id, addr: addr(i) });
    c.leaf_size = 4;
    c.replicas = 2;
    c.request_timeout = ms(200);
    c.max_attempts = 4;
    c.stabilize_interval = ms(250);
    c.max_failures = 3;
    c.max_lease = ms(2000);
    c.tombstone = Duration::from_secs(10);
    // Tests that place nodes by hand; the simulations bind ids to addresses (`Sim`).
    c.bind_ids = false;
    c
}

/// The address of node `i` of a simulation on `port`.
pub(crate) fn sim_addr(port: u16, i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], port))
}

/// The configuration of simulated node `i` on `port`: its id is bound to its address
/// ([`Config::bind_ids`] on, as by default).
pub(crate) fn bound_config(port: u16, i: usize) -> Config {
    let local = NodeAddr::bound(sim_addr(port, i));
    let mut c = config(local.id, i);
    c.local = local;
    c.bind_ids = true;
    c
}

/// Encodes a message from `sender`.
pub(crate) fn msg(message_id: u64, sender: NodeAddr, body: Body<'_>) -> StdVec<u8> {
    let m = Message {
        header: Header { message_id, sender },
        body,
    };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let len = m.encode(&mut buf).unwrap();
    buf.truncate(len);
    buf
}

/// How many seeds a many-seed test runs: `default`, or `DHT_SIM_SEEDS` for a longer search
/// (`DHT_SIM_SEEDS=500 cargo test --release -p sinew-proto dht::`).
pub(crate) fn seeds(default: u64) -> u64 {
    std::env::var("DHT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn event_id(e: &Ev) -> Option<RequestId> {
    e.request_id()
}

/// The address of the test client ([`client`]).
pub(crate) fn client_addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 9000))
}

/// A client at [`client_addr`]: 400 ms per attempt, three attempts.
pub(crate) fn client(seed: u64) -> Client {
    let mut c = ClientConfig::new(NodeAddr {
        id: NodeId::from_name(b"a client"),
        addr: client_addr(),
    });
    c.request_timeout = ms(400);
    c.max_attempts = 3;
    Client::new(c, TestRng(seed))
}

// ------------------------------------------------------------------------------------------
// The members of the network.

/// A ring node in the network, and what the tests keep about it.
pub(crate) struct SimNode {
    pub(crate) node: Box<Node>,
    /// Whether it is live when pushed ([`PushNode::push`]); afterwards the network knows
    /// ([`Sim::is_alive`]).
    pub(crate) alive: bool,
    /// Whether the test started it (joined it, or let it be the first of the ring).
    pub(crate) started: bool,
    /// Every event it gave, and when.
    pub(crate) events: StdVec<(Instant, Ev)>,
    /// Not read: the network keeps the timers. A field still, so that code that builds a
    /// `SimNode` by hand compiles.
    #[allow(dead_code)]
    pub(crate) next_timer: Option<Instant>,
}

impl SimNode {
    fn new(node: Node) -> SimNode {
        SimNode {
            node: Box::new(node),
            alive: true,
            started: false,
            events: StdVec::new(),
            next_timer: None,
        }
    }
}

/// A client outside the ring in the network: what it sent, and every event it gave.
pub(crate) struct SimClient {
    pub(crate) client: Box<Client>,
    pub(crate) sent: StdVec<(SocketAddr, StdVec<u8>)>,
    pub(crate) events: StdVec<(Instant, Ev)>,
}

/// Whatever sits at an address of the network.
pub(crate) enum Member {
    Node(SimNode),
    Client(SimClient),
}

impl DatagramCore for Member {
    type Event = Ev;
    type Disposition = Disposition;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Disposition {
        match self {
            Member::Node(n) => n.node.handle_datagram(now, from, datagram),
            Member::Client(c) => c.client.handle_datagram(now, from, datagram),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Member::Node(n) => n.node.handle_timeout(now),
            Member::Client(c) => c.client.handle_timeout(now),
        }
    }

    /// Also checks, on everything any member sends, that it fits its bound and parses.
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let (t, bound) = match self {
            Member::Node(n) => (n.node.poll_transmit(now, buf)?, Node::MAX_TRANSMIT_LEN),
            Member::Client(c) => (c.client.poll_transmit(now, buf)?, Client::MAX_TRANSMIT_LEN),
        };
        let bytes = &buf[..t.len];
        assert!(t.len <= bound, "a transmit past its bound");
        assert!(
            Message::parse(bytes).is_ok(),
            "a member sent an invalid message"
        );
        if let Member::Client(c) = self {
            c.sent.push((t.destination, bytes.to_vec()));
        }
        Some(t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Member::Node(n) => n.node.poll_timeout(),
            Member::Client(c) => c.client.poll_timeout(),
        }
    }

    fn poll_event(&mut self) -> Option<Ev> {
        match self {
            Member::Node(n) => n.node.poll_event(),
            Member::Client(c) => c.client.poll_event(),
        }
    }
}

/// `sim.nodes[i]`: ring node `i`.
impl Index<usize> for Network<Member> {
    type Output = SimNode;
    fn index(&self, i: usize) -> &SimNode {
        match self.core(i) {
            Member::Node(n) => n,
            Member::Client(_) => panic!("member {i} is a client"),
        }
    }
}

/// `sim.nodes[i]`, to change by hand (collected at its next input or [`Sim::flush`]).
impl IndexMut<usize> for Network<Member> {
    fn index_mut(&mut self, i: usize) -> &mut SimNode {
        match self.core_mut(i) {
            Member::Node(n) => n,
            Member::Client(_) => panic!("member {i} is a client"),
        }
    }
}

/// `sim.nodes.push(node)`: one more ring node, at its configured address.
pub(crate) trait PushNode {
    /// Adds `node` (crashed at once if not `alive`); its index.
    fn push(&mut self, node: SimNode) -> usize;
}

impl PushNode for Network<Member> {
    fn push(&mut self, node: SimNode) -> usize {
        let alive = node.alive;
        let ix = self.add(node.node.local().addr, Member::Node(node));
        if !alive {
            self.crash(ix);
        }
        ix
    }
}

/// A datagram a [`Sim::flush`] just sent, held out of the network until it runs again.
pub(crate) struct Packet {
    pub(crate) at: Instant,
    pub(crate) to: usize,
    pub(crate) from: SocketAddr,
    pub(crate) bytes: StdVec<u8>,
}

// ------------------------------------------------------------------------------------------
// The simulation.

/// Ring nodes (and clients) on a [`Network`], with the test's own seeded choices.
pub(crate) struct Sim {
    /// The network; `sim.nodes[i]` is ring node `i` (a [`SimNode`]).
    pub(crate) nodes: Network<Member>,
    /// Each node's index by address (what `nodes.index_of` says, for code that reads a map).
    pub(crate) index: HashMap<SocketAddr, usize>,
    /// The network's time, as of the last call.
    pub(crate) now: Instant,
    /// What the last [`Sim::flush`] made its node send, out of the network until it runs
    /// again: a test can take a node's answer off the wire before it is delivered.
    pub(crate) net: StdVec<Reverse<Packet>>,
    /// The test's choices (join order, entries, victims), apart from the network's.
    pub(crate) rng: TestRng,
    /// (client, put, victim): crash the victim the instant the client sees the put acknowledged.
    pub(crate) crash_when_acked: Option<(usize, RequestId, usize)>,
    /// Messages sent to addresses outside the network: (source, destination, bytes).
    pub(crate) outside: StdVec<(SocketAddr, SocketAddr, StdVec<u8>)>,
    /// A node whose incoming messages are held back until [`Sim::release`].
    pub(crate) hold: Option<usize>,
    held: StdVec<InFlight>,
    /// The port of every node (from the seed, so that each seed places the nodes elsewhere on
    /// the ring: their ids are bound to their addresses).
    pub(crate) port: u16,
}

impl Sim {
    /// `n` nodes with ids bound to their addresses, whose port is derived from the seed, each a
    /// ring of one; `loss_per_mille` of the datagrams between members are lost.
    pub(crate) fn new(n: usize, seed: u64, loss_per_mille: u64) -> Sim {
        Sim::with_config(n, seed, loss_per_mille, |_, c| c)
    }

    pub(crate) fn with_config(
        n: usize,
        seed: u64,
        loss_per_mille: u64,
        tweak: impl Fn(usize, Config) -> Config,
    ) -> Sim {
        // DHT_SIM_LOSS overrides the loss rate (per mille) of every lossy simulation.
        let loss_per_mille = match std::env::var("DHT_SIM_LOSS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(l) if loss_per_mille > 0 => l,
            _ => loss_per_mille,
        };
        // Uniform 0.5–10 ms (the default), the loss asked, the network's own seed.
        let net = NetConfig::new()
            .with_loss_ppm(u32::try_from(loss_per_mille * 1000).unwrap_or(u32::MAX))
            .with_seed(seed ^ 0x5eed);
        let port = 7000 + (seed % 50_000) as u16;
        let mut sim = Sim {
            nodes: Network::new(net),
            index: HashMap::new(),
            now: Instant::ZERO,
            net: StdVec::new(),
            rng: TestRng(seed ^ 0x5eed),
            crash_when_acked: None,
            outside: StdVec::new(),
            hold: None,
            held: StdVec::new(),
            port,
        };
        for i in 0..n {
            let cfg = tweak(i, bound_config(port, i));
            let at = cfg.local.addr;
            let node = Node::new(cfg, TestRng(seed * 1_000_003 + i as u64));
            let ix = sim.nodes.push(SimNode::new(node));
            sim.index.insert(at, ix);
        }
        sim
    }

    /// Takes what the network gathered: events (into their member's list, crashing the
    /// victim of [`crash_when_acked`](Self::crash_when_acked)), datagrams to the held node,
    /// datagrams that went outside; and its time.
    fn collect(&mut self) {
        for (at, ix, e) in self.nodes.take_events() {
            if let Some((c, id, victim)) = self.crash_when_acked
                && c == ix
                && e == (Event::PutDone { id })
            {
                self.nodes.crash(victim);
                self.crash_when_acked = None;
            }
            match self.nodes.core_mut(ix) {
                Member::Node(n) => n.events.push((at, e)),
                Member::Client(c) => c.events.push((at, e)),
            }
        }
        if let Some(h) = self.hold {
            let held = self.nodes.take_in_flight(|d| d.to == h);
            self.held.extend(held);
        }
        for (from, to, bytes) in self.nodes.take_outside() {
            self.outside.push((from, to, bytes.into_vec()));
        }
        self.now = self.nodes.now();
    }

    /// Collects what node `i` sends after the test drove it by hand (its datagrams wait in
    /// [`net`](Self::net) until the network runs again), and its events.
    pub(crate) fn flush(&mut self, i: usize) {
        self.nodes.with_core(i, |_| ());
        let from = self.nodes.addr(i);
        let sent = self.nodes.take_in_flight(|d| d.from == from);
        self.net.extend(sent.into_iter().map(|d| {
            Reverse(Packet {
                at: d.at,
                to: d.to,
                from: d.from,
                bytes: d.bytes.into_vec(),
            })
        }));
        self.collect();
    }

    pub(crate) fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    pub(crate) fn run_until(&mut self, end: Instant) {
        for Reverse(p) in core::mem::take(&mut self.net) {
            self.nodes.put_in_flight(InFlight {
                at: p.at,
                from: p.from,
                to: p.to,
                bytes: p.bytes.into(),
            });
        }
        // One instant at a time, so that an event can crash a node before the next.
        while self.nodes.step(end).is_some() {
            self.collect();
        }
        self.collect();
    }

    /// Stops holding messages back and delivers the held ones now, in the order they were
    /// due (those not due yet, when they are due).
    pub(crate) fn release(&mut self) {
        self.hold = None;
        for d in core::mem::take(&mut self.held) {
            self.nodes.put_in_flight(d);
        }
    }

    /// The address of member `i`.
    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        self.nodes.addr(i)
    }

    /// Node `i`, to drive by hand; [`flush`](Self::flush) collects what it then sends.
    pub(crate) fn node(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i].node
    }

    /// The ring nodes (not the clients), in index order.
    pub(crate) fn each_node(&self) -> impl Iterator<Item = &SimNode> {
        (0..self.nodes.len()).filter_map(|i| match self.nodes.core(i) {
            Member::Node(n) => Some(n),
            Member::Client(_) => None,
        })
    }

    pub(crate) fn crash(&mut self, i: usize) {
        self.nodes.crash(i);
    }

    /// Brings crashed node `i` back with the state it had (a pause, not a restart).
    pub(crate) fn resume(&mut self, i: usize) {
        self.nodes.resume(i);
        self.collect();
    }

    pub(crate) fn is_alive(&self, i: usize) -> bool {
        self.nodes.is_alive(i)
    }

    /// What the network carried.
    pub(crate) fn net_stats(&self) -> NetStats {
        self.nodes.stats()
    }

    /// Restarts crashed node `i` with empty state under `id`, at the same address and with the
    /// same [`Config::bind_ids`]; it joins again.
    pub(crate) fn restart(&mut self, i: usize, id: NodeId) {
        let mut cfg = bound_config(self.port, i);
        cfg.bind_ids = self.nodes[i].node.config().bind_ids;
        cfg.local.id = id;
        let node = Node::new(cfg, TestRng(self.rng.next()));
        self.nodes.restart(i, Member::Node(SimNode::new(node)));
        self.collect();
        assert!(self.start(i));
    }

    /// Tells every live node that node `i` is down (as their health protocol would).
    pub(crate) fn tell_down(&mut self, i: usize) {
        let now = self.now;
        let gone = self.addr(i);
        for j in 0..self.nodes.len() {
            if j != i && self.nodes.is_alive(j) && matches!(self.nodes.core(j), Member::Node(_)) {
                self.nodes[j].node.handle_peer_down(now, gone);
                self.nodes.with_core(j, |_| ());
            }
        }
        self.collect();
    }

    /// Live members: alive, started, not departed.
    pub(crate) fn members(&self) -> StdVec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes.is_alive(i)
                    && matches!(self.nodes.core(i), Member::Node(n) if n.started && !n.node.has_left())
            })
            .collect()
    }

    /// Checks that every member's leaf set is exactly its predecessors and successors by id.
    pub(crate) fn ring_errors(&self) -> StdVec<String> {
        let members = self.members();
        let mut ids: StdVec<(NodeId, usize)> = members
            .iter()
            .map(|&i| (self.nodes[i].node.local().id, i))
            .collect();
        ids.sort();
        let n = ids.len();
        let mut errors = StdVec::new();
        for (pos, &(_, i)) in ids.iter().enumerate() {
            let node = &self.nodes[i].node;
            let size = node.config().leaf_size.min(n - 1);
            let want_left: StdVec<NodeId> = (1..=size).map(|k| ids[(pos + n - k) % n].0).collect();
            let want_right: StdVec<NodeId> = (1..=size).map(|k| ids[(pos + k) % n].0).collect();
            let left: StdVec<NodeId> = node.leaf_set().left().map(|a| a.id).collect();
            let right: StdVec<NodeId> = node.leaf_set().right().map(|a| a.id).collect();
            if left != want_left || right != want_right {
                errors.push(format!(
                    "node {i}: left {left:?} want {want_left:?}; right {right:?} want {want_right:?}"
                ));
            }
        }
        errors
    }

    /// Prints every node's state (with `DHT_SIM_DEBUG` set, when a simulation fails).
    fn dump(&self) {
        let short = |a: NodeAddr| format!("{}", a.id);
        for i in self.members_to_be() {
            let n = &self.nodes[i];
            println!(
                "node {i} {} alive {} started {} in_ring {} left {:?} right {:?} events {:?} {:?}",
                n.node.local().id,
                self.nodes.is_alive(i),
                n.started,
                n.node.in_ring(),
                n.node.leaf_set().left().map(short).collect::<StdVec<_>>(),
                n.node.leaf_set().right().map(short).collect::<StdVec<_>>(),
                n.events
                    .iter()
                    .map(|(t, e)| format!("{t} {e:?}"))
                    .collect::<StdVec<_>>(),
                n.node.stats()
            );
        }
    }

    /// Runs until the ring is correct (checked every 50 ms); the virtual time it took.
    pub(crate) fn converge(&mut self, limit: Duration) -> Duration {
        let start = self.now;
        loop {
            let errors = self.ring_errors();
            if errors.is_empty() {
                return self.now - start;
            }
            if self.now - start > limit {
                if std::env::var("DHT_SIM_DEBUG").is_ok() {
                    self.dump();
                }
                panic!(
                    "ring not correct after {limit:?}: {} wrong, e.g. {}",
                    errors.len(),
                    errors[0]
                );
            }
            self.run_for(ms(50));
            self.retry_failed_joins();
        }
    }

    /// Starts node `i` by joining through a random member (the first node just starts); false
    /// if no member is in a ring yet to join through (the second join is still under way).
    pub(crate) fn start(&mut self, i: usize) -> bool {
        let members: StdVec<usize> = self.members().into_iter().filter(|&j| j != i).collect();
        if members.is_empty() {
            self.nodes[i].started = true;
            return true;
        }
        let entries: StdVec<usize> = members
            .iter()
            .copied()
            .filter(|&j| self.nodes[j].node.in_ring() || members.len() == 1)
            .collect();
        if entries.is_empty() {
            return false;
        }
        self.nodes[i].started = true;
        let entry = entries[self.rng.below(entries.len() as u64) as usize];
        let now = self.now;
        let entry = self.addr(entry);
        self.nodes[i].node.join(now, entry).unwrap();
        self.nodes.with_core(i, |_| ());
        self.collect();
        true
    }

    /// Re-joins nodes whose join failed (a rare event under loss).
    pub(crate) fn retry_failed_joins(&mut self) {
        for i in 0..self.nodes.len() {
            let Member::Node(n) = self.nodes.core(i) else {
                continue;
            };
            let failed = n
                .events
                .iter()
                .any(|(_, e)| matches!(e, Event::JoinFailed { .. }));
            if failed && self.nodes.is_alive(i) && !n.node.in_ring() {
                self.nodes[i].started = false;
                if self.start(i) {
                    self.nodes[i].events.clear();
                }
            }
        }
    }

    /// Builds a ring of all nodes: joins in a random order, every `gap`, through random members.
    /// Returns the virtual time from the last join to a correct ring.
    pub(crate) fn build(&mut self, gap: Duration) -> Duration {
        let mut order: StdVec<usize> = self.members_to_be();
        for k in (1..order.len()).rev() {
            let j = self.rng.below(k as u64 + 1) as usize;
            order.swap(k, j);
        }
        let mut waiting: StdVec<usize> = StdVec::new();
        for &i in &order {
            waiting.push(i);
            waiting.retain(|&w| !self.start(w));
            self.run_for(gap);
            self.retry_failed_joins();
        }
        while !waiting.is_empty() {
            waiting.retain(|&w| !self.start(w));
            self.run_for(gap);
            self.retry_failed_joins();
        }
        let start = self.now - gap;
        for _ in 0..20 {
            if self.ring_errors().is_empty() {
                break;
            }
            self.run_for(ms(250));
            self.retry_failed_joins();
        }
        self.converge(Duration::from_secs(60));
        self.now - start
    }

    /// Every ring node's index (started or not).
    fn members_to_be(&self) -> StdVec<usize> {
        (0..self.nodes.len())
            .filter(|&i| matches!(self.nodes.core(i), Member::Node(_)))
            .collect()
    }

    /// The node that owns `key` in the correct ring of the live members.
    pub(crate) fn true_owner(&self, key: &[u8]) -> usize {
        let members = self.members();
        let id = ring::owner_among(
            NodeId::from_name(key),
            members.iter().map(|&j| self.nodes[j].node.local().id),
        )
        .unwrap();
        members
            .into_iter()
            .find(|&j| self.nodes[j].node.local().id == id)
            .unwrap()
    }

    /// A random live ring node (crashed ones are drawn again).
    pub(crate) fn random_live(&mut self) -> usize {
        let n = self.members_to_be().len() as u64;
        loop {
            let i = self.rng.below(n) as usize;
            if self.nodes.is_alive(i) {
                return i;
            }
        }
    }

    /// Reads `key` back through random live nodes, each get given `wait`, up to `tries` gets:
    /// the value (or `None`, not stored) of the first get answered, or `None` if none was.
    pub(crate) fn read_back(
        &mut self,
        key: &[u8],
        tries: usize,
        wait: Duration,
    ) -> Option<Option<heapless::Vec<u8, V>>> {
        for _ in 0..tries {
            let i = self.random_live();
            let now = self.now;
            let id = self.node(i).get(now, key).unwrap();
            self.flush(i);
            self.run_for(wait);
            if let Some((_, Event::GetDone { value, .. })) = self.outcome(i, id) {
                return Some(value);
            }
        }
        None
    }

    /// The outcome event of request `id` at node `i`, if any.
    pub(crate) fn outcome(&self, i: usize, id: RequestId) -> Option<(Instant, Ev)> {
        self.nodes[i]
            .events
            .iter()
            .find(|(_, e)| event_id(e) == Some(id))
            .cloned()
    }

    // --------------------------------------------------------------------------------------
    // Clients.

    /// Adds `client` to the network at its own address; its index.
    pub(crate) fn add_client(&mut self, client: Client) -> usize {
        let at = client.config().local.addr;
        let ix = self.nodes.add(
            at,
            Member::Client(SimClient {
                client: Box::new(client),
                sent: StdVec::new(),
                events: StdVec::new(),
            }),
        );
        self.collect();
        ix
    }

    /// Client `c`, to read.
    pub(crate) fn client(&self, c: usize) -> &Client {
        match self.nodes.core(c) {
            Member::Client(s) => &s.client,
            Member::Node(_) => panic!("member {c} is a node"),
        }
    }

    /// Runs `f` on client `c` (a request), then collects what it sends.
    pub(crate) fn with_client<T>(&mut self, c: usize, f: impl FnOnce(&mut Client) -> T) -> T {
        let out = self.nodes.with_core(c, |m| match m {
            Member::Client(s) => f(&mut s.client),
            Member::Node(_) => panic!("member {c} is a node"),
        });
        self.collect();
        out
    }

    /// Runs the network for `d`; what client `c` sent meanwhile.
    pub(crate) fn exchange(&mut self, c: usize, d: Duration) -> StdVec<(SocketAddr, StdVec<u8>)> {
        let before = self.client_member(c).sent.len();
        self.run_for(d);
        self.client_member(c).sent[before..].to_vec()
    }

    /// The events client `c` gave since the last call.
    pub(crate) fn client_events(&mut self, c: usize) -> StdVec<Ev> {
        match self.nodes.core_mut(c) {
            Member::Client(s) => s.events.drain(..).map(|(_, e)| e).collect(),
            Member::Node(_) => panic!("member {c} is a node"),
        }
    }

    /// Everything client `c` sent since it was added: (destination, bytes).
    pub(crate) fn sent_by(&self, c: usize) -> &[(SocketAddr, StdVec<u8>)] {
        &self.client_member(c).sent
    }

    fn client_member(&self, c: usize) -> &SimClient {
        match self.nodes.core(c) {
            Member::Client(s) => s,
            Member::Node(_) => panic!("member {c} is a node"),
        }
    }
}

/// Drives `c`, a client the test holds outside the network, for `d`: what it sends is
/// injected (at the network's latency), the answers sent to its address are handed to it,
/// every 5 ms (and [`Sim::outside`] emptied). Returns what it sent. ([`Sim::add_client`] puts a client in the network.)
pub(crate) fn exchange(
    sim: &mut Sim,
    c: &mut Client,
    d: Duration,
) -> StdVec<(SocketAddr, StdVec<u8>)> {
    let end = sim.now + d;
    let me = c.config().local.addr;
    let mut sent = StdVec::new();
    let mut buf = [0u8; Client::MAX_TRANSMIT_LEN];
    while sim.now < end {
        let now = sim.now;
        c.handle_timeout(now);
        while let Some(t) = c.poll_transmit(now, &mut buf) {
            let bytes = buf[..t.len].to_vec();
            assert!(Message::parse(&bytes).is_ok());
            if let Some(to) = sim.nodes.index_of(t.destination) {
                sim.nodes.inject(me, to, &bytes);
            }
            sent.push((t.destination, bytes));
        }
        sim.run_for(ms(5));
        // (What went to other outside addresses meanwhile is dropped.)
        for (from, to, bytes) in core::mem::take(&mut sim.outside) {
            if to == me {
                c.handle_datagram(sim.now, from, &bytes);
            }
        }
    }
    sent
}
