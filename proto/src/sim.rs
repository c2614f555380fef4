//! A virtual-time network for any [`DatagramCore`]: many cores (health nodes, DHT nodes, DHT
//! clients, keyed or not) exchanging datagrams with a latency distribution, loss, partitions,
//! crashes and restarts, deterministically from a seed, as fast as the cores run. For sizing a
//! deployment before it exists (`sinew dht sim`), and for tests that need a thousand nodes.
//!
//! Needs the `sim` feature (and so `std`: the network allocates; the cores in it do not).
//!
//! Time only moves when [`Network::step`] moves it: to the earliest due delivery or timer. Each
//! step delivers every datagram due at that instant (in the order they were sent), then runs the
//! cores' due timers, then collects what each touched core sends and its events. Datagrams to
//! addresses outside the network are counted and kept ([`Network::take_outside`]), so a test
//! can see what a node would have sent a spoofed source. Datagrams on their way can be taken
//! off the wire and put back ([`Network::take_in_flight`], [`Network::put_in_flight`]), as an
//! on-path attacker would; a crashed core can come back with its state
//! ([`Network::resume`]) or as a new one ([`Network::restart`]).
//!
//! ```
//! use sinew_proto::dht::{Config, DhtNode, NodeAddr};
//! use sinew_proto::sim::{Latency, NetConfig, Network, SimRng};
//! use core::time::Duration;
//!
//! let mut net = Network::new(NetConfig::new().with_latency(Latency::Uniform {
//!     min: Duration::from_micros(500),
//!     max: Duration::from_millis(10),
//! }));
//! let addrs: Vec<_> = (0..8).map(|i| ([10, 0, 0, i + 1], 7000).into()).collect();
//! for (i, &addr) in addrs.iter().enumerate() {
//!     // The id bound to the address, as every member checks.
//!     let config = Config::new(NodeAddr::bound(addr));
//!     let node: DhtNode<SimRng> = DhtNode::new(config, SimRng::new(i as u64));
//!     net.add(addr, node);
//! }
//! for i in 1..addrs.len() {
//!     let now = net.now();
//!     net.with_core(i, |node| node.join(now, addrs[0])).unwrap();
//!     net.run_for(Duration::from_millis(200));
//! }
//! net.run_for(Duration::from_secs(2));
//! assert!((0..addrs.len()).all(|i| net.core(i).in_ring()));
//! assert!(net.stats().delivered > 0);
//! ```

use core::cmp::Reverse;
use core::net::SocketAddr;
use std::boxed::Box;
use std::collections::{BinaryHeap, HashMap};
use std::vec::Vec;

use core::time::Duration;

use crate::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
use crate::time::Instant;

/// The index of a core in a [`Network`], in the order [`Network::add`] added them.
pub type NodeIx = usize;

/// How long a datagram takes between two cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Latency {
    /// Always this long.
    Constant(Duration),
    /// Uniform in `min..=max`.
    Uniform {
        /// The shortest.
        min: Duration,
        /// The longest.
        max: Duration,
    },
    /// Exponentially distributed with this mean (a long tail), cut at 20 means.
    Exponential {
        /// The mean.
        mean: Duration,
    },
}

/// A [`Network`]'s settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetConfig {
    /// The latency of every datagram between cores. Default: uniform 0.5–10 ms.
    pub latency: Latency,
    /// The chance that a datagram is lost, in parts per million. Default: 0.
    pub loss_ppm: u32,
    /// The seed of the network's own choices (latencies, losses). Default: 1.
    pub seed: u64,
}

impl NetConfig {
    /// The defaults: uniform 0.5–10 ms, no loss, seed 1.
    pub const fn new() -> Self {
        NetConfig {
            latency: Latency::Uniform {
                min: Duration::from_micros(500),
                max: Duration::from_millis(10),
            },
            loss_ppm: 0,
            seed: 1,
        }
    }

    /// Sets [`latency`](Self::latency).
    pub const fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Sets [`loss_ppm`](Self::loss_ppm) (values above 1,000,000 lose everything).
    pub const fn with_loss_ppm(mut self, loss_ppm: u32) -> Self {
        self.loss_ppm = loss_ppm;
        self
    }

    /// Sets [`seed`](Self::seed).
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What the whole network carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Datagrams the cores sent (to anyone, outside included).
    pub sent: u64,
    /// Bytes of those.
    pub bytes_sent: u64,
    /// Datagrams handed to a live core.
    pub delivered: u64,
    /// Lost to [`NetConfig::loss_ppm`].
    pub lost: u64,
    /// Dropped because a partition stood between sender and receiver at delivery.
    pub partitioned: u64,
    /// Arrived at a crashed core.
    pub to_crashed: u64,
    /// Addressed outside the network ([`Network::take_outside`]).
    pub outside: u64,
    /// Injected with [`Network::inject`].
    pub injected: u64,
}

/// What one core sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Traffic {
    /// Datagrams it sent.
    pub sent: u64,
    /// Bytes it sent.
    pub bytes_sent: u64,
    /// Datagrams delivered to it.
    pub received: u64,
    /// Bytes delivered to it.
    pub bytes_received: u64,
}

/// A datagram on its way.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Instant,
    seq: u64,
    to: NodeIx,
    from: SocketAddr,
    bytes: Box<[u8]>,
}

/// A datagram on its way (sent, not yet delivered), as [`Network::take_in_flight`] hands it
/// out and [`Network::put_in_flight`] takes it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// When it arrives.
    pub at: Instant,
    /// Its source address.
    pub from: SocketAddr,
    /// The core it is for.
    pub to: NodeIx,
    /// Its bytes.
    pub bytes: Box<[u8]>,
}

struct Slot<C> {
    addr: SocketAddr,
    core: C,
    alive: bool,
    /// The instant its timer is queued for (`timers` may hold stale entries too).
    timer: Option<Instant>,
    group: u32,
    traffic: Traffic,
}

/// A small, fast, seeded generator (SplitMix64): the network's choices, and nonces and ids for
/// cores in a simulation. Not for anything secret.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator from `seed`; equal seeds give equal sequences.
    pub const fn new(seed: u64) -> Self {
        SimRng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl rand_core::TryRng for SimRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next_u64() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Only for simulations: the cores take a `CryptoRng` for their nonces, and a simulation
/// wants them reproducible. Never give a `SimRng` to a core on a real network.
impl rand_core::TryCryptoRng for SimRng {}

/// Many [`DatagramCore`]s on one virtual network. See the [module](self).
pub struct Network<C: DatagramCore> {
    slots: Vec<Slot<C>>,
    by_addr: HashMap<SocketAddr, NodeIx>,
    packets: BinaryHeap<Reverse<Packet>>,
    timers: BinaryHeap<Reverse<(Instant, NodeIx)>>,
    now: Instant,
    seq: u64,
    config: NetConfig,
    rng: SimRng,
    stats: NetStats,
    events: Vec<(Instant, NodeIx, C::Event)>,
    outside: Vec<(SocketAddr, SocketAddr, Box<[u8]>)>,
    /// Cores touched at this instant, to flush.
    touched: Vec<NodeIx>,
    buf: Box<[u8; MAX_DATAGRAM_LEN]>,
    tap: Option<Tap>,
}

/// A function shown every datagram delivered to a live core: (when, source, destination
/// core, bytes). See [`Network::set_tap`].
pub type Tap = Box<dyn FnMut(Instant, SocketAddr, NodeIx, &[u8])>;

impl<C: DatagramCore> Network<C> {
    /// An empty network at [`Instant::ZERO`].
    pub fn new(config: NetConfig) -> Self {
        Network {
            slots: Vec::new(),
            by_addr: HashMap::new(),
            packets: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            now: Instant::ZERO,
            seq: 0,
            rng: SimRng::new(config.seed),
            config,
            stats: NetStats::default(),
            events: Vec::new(),
            outside: Vec::new(),
            touched: Vec::new(),
            buf: Box::new([0; MAX_DATAGRAM_LEN]),
            tap: None,
        }
    }

    /// Changes the latency of the datagrams sent from now on (those in flight keep theirs):
    /// e.g. a slower network after a ring formed.
    pub fn set_latency(&mut self, latency: Latency) {
        self.config.latency = latency;
    }

    /// Shows `tap` every datagram delivered to a live core from now on, before the core
    /// handles it (to count hops, trace a request, or check an invariant on every message).
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Adds `core` at `addr` (its source address for everyone else), live, in the group of
    /// no partition; collects whatever it wants to send at once. Returns its index.
    ///
    /// # Panics
    /// If `addr` is taken: two cores at one address is a mistake in the simulation.
    pub fn add(&mut self, addr: SocketAddr, core: C) -> NodeIx {
        let ix = self.slots.len();
        assert!(
            self.by_addr.insert(addr, ix).is_none(),
            "sim: two cores at {addr}"
        );
        self.slots.push(Slot {
            addr,
            core,
            alive: true,
            timer: None,
            group: 0,
            traffic: Traffic::default(),
        });
        self.flush(ix);
        ix
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// How many cores were added.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no core was added.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The core at `ix` (crashed or not), to read.
    ///
    /// # Panics
    /// If `ix` was not returned by [`add`](Self::add).
    pub fn core(&self, ix: NodeIx) -> &C {
        &self.slots[ix].core
    }

    /// The core at `ix` (crashed or not), to change by hand. Unlike [`with_core`](Self::with_core)
    /// nothing is collected: what it then wants to send, its events and its new timer wait
    /// for its next input, or for a `with_core(ix, |_| ())`.
    ///
    /// # Panics
    /// If `ix` was not returned by [`add`](Self::add).
    pub fn core_mut(&mut self, ix: NodeIx) -> &mut C {
        &mut self.slots[ix].core
    }

    /// Runs `f` on the core at `ix` (to make a request, join, leave, …), then collects what
    /// it sends and its events, as after any input.
    ///
    /// # Panics
    /// If `ix` was not returned by [`add`](Self::add).
    pub fn with_core<T>(&mut self, ix: NodeIx, f: impl FnOnce(&mut C) -> T) -> T {
        let out = f(&mut self.slots[ix].core);
        self.flush(ix);
        out
    }

    /// The address of the core at `ix`.
    pub fn addr(&self, ix: NodeIx) -> SocketAddr {
        self.slots[ix].addr
    }

    /// The index of the core at `addr`.
    pub fn index_of(&self, addr: SocketAddr) -> Option<NodeIx> {
        self.by_addr.get(&addr).copied()
    }

    /// Whether the core at `ix` is live (not crashed).
    pub fn is_alive(&self, ix: NodeIx) -> bool {
        self.slots[ix].alive
    }

    /// What the core at `ix` sent and received.
    pub fn traffic(&self, ix: NodeIx) -> Traffic {
        self.slots[ix].traffic
    }

    /// What the network carried.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Crashes the core at `ix`: from now on it gets no datagram and no timer, and what it
    /// had queued to send is gone. It keeps its state for inspection; [`restart`](Self::restart)
    /// replaces it.
    pub fn crash(&mut self, ix: NodeIx) {
        self.slots[ix].alive = false;
        self.slots[ix].timer = None;
    }

    /// Brings the crashed core at `ix` back with the state it had, as after a long pause (a
    /// stopped process or virtual machine that continues): it gets datagrams and its timer
    /// again, and what arrived meanwhile is lost. [`restart`](Self::restart) is a fresh core.
    pub fn resume(&mut self, ix: NodeIx) {
        self.slots[ix].alive = true;
        self.slots[ix].timer = None;
        self.flush(ix);
    }

    /// Puts a new core at the crashed (or live) slot `ix`, same address, live again.
    pub fn restart(&mut self, ix: NodeIx, core: C) {
        let slot = &mut self.slots[ix];
        slot.core = core;
        slot.alive = true;
        slot.timer = None;
        self.flush(ix);
    }

    /// Splits the network: each listed group can only reach itself; cores not listed form one
    /// more group. Datagrams already on their way are dropped on arrival if they would cross.
    pub fn partition(&mut self, groups: &[&[NodeIx]]) {
        for slot in &mut self.slots {
            slot.group = 0;
        }
        for (g, members) in groups.iter().enumerate() {
            for &ix in *members {
                if let Some(slot) = self.slots.get_mut(ix) {
                    slot.group = g as u32 + 1;
                }
            }
        }
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.partition(&[]);
    }

    /// Delivers `bytes` to the core at `to` as if `from` (any address, in the network or not)
    /// had sent it, after the network's latency: an attacker, or a client outside.
    pub fn inject(&mut self, from: SocketAddr, to: NodeIx, bytes: &[u8]) {
        self.stats.injected += 1;
        let at = self.now + self.latency();
        self.seq += 1;
        self.packets.push(Reverse(Packet {
            at,
            seq: self.seq,
            to,
            from,
            bytes: bytes.into(),
        }));
    }

    /// Takes out of the network the datagrams on their way that `pick` chooses, in the order
    /// they arrive (an on-path attacker, or a test that reads, drops, holds back or reorders
    /// traffic). They are not delivered unless handed back with
    /// [`put_in_flight`](Self::put_in_flight).
    pub fn take_in_flight(&mut self, mut pick: impl FnMut(&InFlight) -> bool) -> Vec<InFlight> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.packets.len());
        for Reverse(p) in core::mem::take(&mut self.packets).into_vec() {
            let datagram = InFlight {
                at: p.at,
                from: p.from,
                to: p.to,
                bytes: p.bytes,
            };
            if pick(&datagram) {
                taken.push((p.seq, datagram));
            } else {
                kept.push(Reverse(Packet {
                    at: datagram.at,
                    seq: p.seq,
                    to: datagram.to,
                    from: datagram.from,
                    bytes: datagram.bytes,
                }));
            }
        }
        self.packets = kept.into();
        taken.sort_unstable_by_key(|(seq, d)| (d.at, *seq));
        taken.into_iter().map(|(_, d)| d).collect()
    }

    /// Puts `datagram` on its way again, to arrive at its `at` (now, if that has passed),
    /// after what is already due then. No loss, no new latency: it was sent already.
    ///
    /// # Panics
    /// If `datagram.to` was not returned by [`add`](Self::add).
    pub fn put_in_flight(&mut self, datagram: InFlight) {
        assert!(
            datagram.to < self.slots.len(),
            "sim: no core {}",
            datagram.to
        );
        self.seq += 1;
        self.packets.push(Reverse(Packet {
            at: datagram.at.max(self.now),
            seq: self.seq,
            to: datagram.to,
            from: datagram.from,
            bytes: datagram.bytes,
        }));
    }

    /// Takes the events the cores gave since the last call: (when, which core, the event).
    pub fn take_events(&mut self) -> Vec<(Instant, NodeIx, C::Event)> {
        core::mem::take(&mut self.events)
    }

    /// Takes the datagrams sent to addresses outside the network since the last call:
    /// (source, destination, bytes).
    pub fn take_outside(&mut self) -> Vec<(SocketAddr, SocketAddr, Box<[u8]>)> {
        core::mem::take(&mut self.outside)
    }

    /// When [`step`](Self::step) next has work: the earliest due delivery or timer.
    pub fn next_instant(&mut self) -> Option<Instant> {
        // Stale timer entries (superseded, or of a crashed core) are dropped here.
        while let Some(&Reverse((at, ix))) = self.timers.peek() {
            let slot = &self.slots[ix];
            if slot.alive && slot.timer == Some(at) {
                break;
            }
            self.timers.pop();
        }
        let timer = self.timers.peek().map(|r| r.0.0);
        let packet = self.packets.peek().map(|p| p.0.at);
        match (timer, packet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves time to the next instant with work, if it is not later than `until`, and does
    /// that work (deliveries first, then timers). Returns the instant, or `None` (time then
    /// moves to `until`) when there is no work up to `until`.
    pub fn step(&mut self, until: Instant) -> Option<Instant> {
        let Some(next) = self.next_instant().filter(|&t| t <= until) else {
            self.now = self.now.max(until);
            return None;
        };
        self.now = self.now.max(next);
        let now = self.now;
        while self.packets.peek().is_some_and(|p| p.0.at <= now) {
            let Some(Reverse(packet)) = self.packets.pop() else {
                break;
            };
            self.deliver(packet);
        }
        while let Some(&Reverse((at, ix))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[ix];
            if !slot.alive || slot.timer != Some(at) {
                continue;
            }
            slot.timer = None;
            slot.core.handle_timeout(now);
            self.touched.push(ix);
        }
        let mut touched = core::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &ix in &touched {
            self.flush(ix);
        }
        touched.clear();
        self.touched = touched;
        Some(now)
    }

    /// Runs every step up to `until`; time is then `until`.
    pub fn run_until(&mut self, until: Instant) {
        while self.step(until).is_some() {}
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn deliver(&mut self, packet: Packet) {
        let from_group = self
            .by_addr
            .get(&packet.from)
            .map(|&ix| self.slots[ix].group);
        let slot = &self.slots[packet.to];
        if !slot.alive {
            self.stats.to_crashed += 1;
            return;
        }
        if from_group.is_some_and(|g| g != slot.group) {
            self.stats.partitioned += 1;
            return;
        }
        self.stats.delivered += 1;
        if let Some(tap) = &mut self.tap {
            tap(self.now, packet.from, packet.to, &packet.bytes);
        }
        let slot = &mut self.slots[packet.to];
        slot.traffic.received += 1;
        slot.traffic.bytes_received += packet.bytes.len() as u64;
        // What the core did with it is in its own statistics.
        let _ = slot
            .core
            .handle_datagram(self.now, packet.from, &packet.bytes);
        self.touched.push(packet.to);
    }

    /// Collects what the core at `ix` sends, its events and its next timer.
    fn flush(&mut self, ix: NodeIx) {
        if !self.slots[ix].alive {
            return;
        }
        let now = self.now;
        let from = self.slots[ix].addr;
        while let Some(t) = self.slots[ix].core.poll_transmit(now, &mut self.buf[..]) {
            let bytes: Box<[u8]> = self.buf.get(..t.len).unwrap_or(&[]).into();
            let len = bytes.len() as u64;
            self.stats.sent += 1;
            self.stats.bytes_sent += len;
            let traffic = &mut self.slots[ix].traffic;
            traffic.sent += 1;
            traffic.bytes_sent += len;
            let Some(&to) = self.by_addr.get(&t.destination) else {
                self.stats.outside += 1;
                self.outside.push((from, t.destination, bytes));
                continue;
            };
            if self.config.loss_ppm > 0
                && self.rng.below(1_000_000) < u64::from(self.config.loss_ppm)
            {
                self.stats.lost += 1;
                continue;
            }
            let at = now + self.latency();
            self.seq += 1;
            self.packets.push(Reverse(Packet {
                at,
                seq: self.seq,
                to,
                from,
                bytes,
            }));
        }
        while let Some(event) = self.slots[ix].core.poll_event() {
            self.events.push((now, ix, event));
        }
        let next = self.slots[ix].core.poll_timeout();
        let slot = &mut self.slots[ix];
        if next != slot.timer {
            slot.timer = next;
            if let Some(at) = next {
                // A timer in the past is due now.
                self.timers.push(Reverse((at.max(now), ix)));
                slot.timer = Some(at.max(now));
            }
        }
    }

    fn latency(&mut self) -> Duration {
        match self.config.latency {
            Latency::Constant(d) => d,
            Latency::Uniform { min, max } => {
                let span = micros(max.saturating_sub(min));
                min.saturating_add(Duration::from_micros(
                    self.rng.below(span.saturating_add(1)),
                ))
            }
            Latency::Exponential { mean } => {
                // Inverse transform: -ln(1 - u) · mean, cut at 20 means.
                let u = self.rng.unit();
                let factor = (-(1.0 - u).ln()).min(20.0);
                Duration::from_micros((micros(mean) as f64 * factor) as u64)
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::Transmit;
    use std::vec;

    /// Sends `count` numbered datagrams to `to`, one every `every`; answers every datagram it
    /// gets to its sender with the same bytes, unless it was its own number coming back.
    struct Toy {
        to: Option<SocketAddr>,
        every: Duration,
        count: u8,
        next: Instant,
        out: Vec<(SocketAddr, Vec<u8>)>,
        got: Vec<(Instant, SocketAddr, Vec<u8>)>,
    }

    impl Toy {
        fn new(to: Option<SocketAddr>, count: u8) -> Toy {
            Toy {
                to,
                every: Duration::from_millis(10),
                count,
                next: Instant::ZERO,
                out: Vec::new(),
                got: Vec::new(),
            }
        }
    }

    impl DatagramCore for Toy {
        type Event = u8;
        type Disposition = ();

        fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
            self.got.push((now, from, datagram.to_vec()));
            if self.to.is_none() {
                self.out.push((from, datagram.to_vec()));
            }
        }

        fn handle_timeout(&mut self, now: Instant) {
            if let Some(to) = self.to
                && self.count > 0
                && now >= self.next
            {
                self.out.push((to, vec![self.count]));
                self.count -= 1;
                self.next = now + self.every;
            }
        }

        fn poll_transmit(&mut self, _now: Instant, buf: &mut [u8]) -> Option<Transmit> {
            let (to, bytes) = self.out.pop()?;
            buf[..bytes.len()].copy_from_slice(&bytes);
            Some(Transmit::new(to, bytes.len()))
        }

        fn poll_timeout(&self) -> Option<Instant> {
            (self.to.is_some() && self.count > 0).then_some(self.next)
        }

        fn poll_event(&mut self) -> Option<u8> {
            None
        }
    }

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 9))
    }

    fn pair(config: NetConfig, count: u8) -> Network<Toy> {
        let mut net = Network::new(config);
        net.add(a(1), Toy::new(Some(a(2)), count));
        net.add(a(2), Toy::new(None, 0));
        net
    }

    #[test]
    fn test_constant_latency_delivers_and_answers_on_time() {
        let d = Duration::from_millis(3);
        let mut net = pair(NetConfig::new().with_latency(Latency::Constant(d)), 5);
        net.run_for(Duration::from_secs(1));
        let echo = &net.core(1).got;
        assert_eq!(echo.len(), 5);
        // Sent at 0, 10, 20, … ms; each arrives 3 ms later.
        for (k, (at, from, bytes)) in echo.iter().enumerate() {
            assert_eq!(*at, Instant::from_millis(10 * k as u64 + 3));
            assert_eq!((*from, bytes[0]), (a(1), 5 - k as u8));
        }
        // And back, 3 ms after that.
        assert_eq!(net.core(0).got[0].0, Instant::from_millis(6));
        assert_eq!(net.stats().delivered, 10);
        assert_eq!(net.traffic(0).sent, 5);
        assert_eq!(net.traffic(0).received, 5);
        assert_eq!(net.now(), Instant::from_millis(1000));
    }

    #[test]
    fn test_uniform_latency_stays_in_bounds_and_is_seeded() {
        let run = |seed| {
            let latency = Latency::Uniform {
                min: Duration::from_millis(2),
                max: Duration::from_millis(4),
            };
            let mut net = pair(NetConfig::new().with_latency(latency).with_seed(seed), 200);
            net.run_for(Duration::from_secs(5));
            let sent_at = |k: usize| Instant::from_millis(10 * k as u64);
            let lat: Vec<u64> = (net.core(1).got.iter().enumerate())
                .map(|(k, g)| (g.0 - sent_at(k)).as_micros() as u64)
                .collect();
            lat
        };
        let l = run(7);
        assert_eq!(l.len(), 200);
        assert!(l.iter().all(|&us| (2000..=4000).contains(&us)), "{l:?}");
        assert!(l.iter().any(|&us| us < 2500) && l.iter().any(|&us| us > 3500));
        assert_eq!(run(7), l, "same seed, same run");
        assert_ne!(run(8), l);
    }

    #[test]
    fn test_loss_rate() {
        let mut net = pair(NetConfig::new().with_loss_ppm(250_000), 200);
        net.run_for(Duration::from_secs(5));
        let s = net.stats();
        assert_eq!(s.sent, 200 + s.delivered - net.core(0).got.len() as u64);
        // 25% of the requests and of the answers: about 50 and 38 lost of 350 sent.
        assert!((60..=120).contains(&s.lost), "{s:?}");
        assert_eq!(s.sent, s.delivered + s.lost);
    }

    #[test]
    fn test_partition_crash_restart_inject_outside() {
        let mut net = pair(NetConfig::new(), 100);
        net.partition(&[&[0]]);
        net.run_for(Duration::from_millis(200));
        assert!(net.core(1).got.is_empty());
        assert!(net.stats().partitioned >= 19);
        net.heal();
        net.run_for(Duration::from_millis(200));
        let after_heal = net.core(1).got.len();
        assert!(after_heal >= 19, "{after_heal}");
        // A crashed core gets nothing and sends nothing.
        net.crash(1);
        net.run_for(Duration::from_millis(200));
        assert_eq!(net.core(1).got.len(), after_heal);
        assert!(net.stats().to_crashed >= 19);
        assert_eq!(net.core(0).got.len() as u64, net.traffic(1).sent);
        // Back, as a fresh core at the same address.
        net.restart(1, Toy::new(None, 0));
        net.run_for(Duration::from_millis(100));
        assert!(!net.core(1).got.is_empty());
        // An outsider's datagram is delivered from its address; the answer goes outside.
        let stranger = SocketAddr::from(([192, 0, 2, 1], 4));
        net.inject(stranger, 1, b"hi");
        net.run_for(Duration::from_millis(20));
        assert!(net.core(1).got.iter().any(|g| g.1 == stranger));
        let tapped = std::rc::Rc::new(core::cell::Cell::new(0));
        let t = tapped.clone();
        net.set_tap(Box::new(move |_, from, to, bytes| {
            if from == stranger {
                assert_eq!((to, bytes), (1, &b"hi"[..]));
                t.set(t.get() + 1);
            }
        }));
        net.inject(stranger, 1, b"hi");
        net.run_for(Duration::from_millis(20));
        assert_eq!(tapped.get(), 1);
        let outside = net.take_outside();
        assert_eq!(outside.len(), 2);
        assert_eq!(
            (outside[0].0, outside[0].1, &*outside[0].2),
            (a(2), stranger, &b"hi"[..])
        );
        assert_eq!(net.stats().outside, 2);
    }

    #[test]
    fn test_take_hold_and_put_back_in_flight() {
        let d = Duration::from_millis(3);
        let mut net = pair(NetConfig::new().with_latency(Latency::Constant(d)), 3);
        // Sent at 0, 10, 20 ms. The first is taken off the wire before it arrives (at 3 ms).
        net.run_until(Instant::from_millis(1));
        let taken = net.take_in_flight(|p| p.to == 1);
        assert_eq!(taken.len(), 1);
        assert_eq!(
            (taken[0].at, taken[0].from, &*taken[0].bytes),
            (Instant::from_millis(3), a(1), &[3u8][..])
        );
        net.run_until(Instant::from_millis(15));
        assert_eq!(net.core(1).got.len(), 1, "only the second arrived");
        assert_eq!(net.core(1).got[0].2, [2]);
        // Handed back late: delivered at once, after what is due now; an untouched datagram
        // (and one `pick` passes over) stays.
        assert!(net.take_in_flight(|_| false).is_empty());
        for p in taken {
            net.put_in_flight(p);
        }
        net.run_until(Instant::from_millis(15));
        let got: Vec<(Instant, u8)> = net.core(1).got.iter().map(|g| (g.0, g.2[0])).collect();
        assert_eq!(
            got,
            [(Instant::from_millis(13), 2), (Instant::from_millis(15), 3)]
        );
        net.run_for(Duration::from_millis(50));
        assert_eq!(net.core(1).got.len(), 3);
        assert_eq!(net.stats().delivered, 6);
    }

    #[test]
    fn test_resume_keeps_the_state_and_core_mut_waits() {
        let d = Duration::from_millis(3);
        let mut net = pair(NetConfig::new().with_latency(Latency::Constant(d)), 5);
        net.run_until(Instant::from_millis(5));
        // Paused at 5 ms, between its first and second datagram, resumed at 32 ms.
        net.crash(0);
        net.run_until(Instant::from_millis(32));
        assert_eq!(net.core(1).got.len(), 1);
        net.resume(0);
        assert!(net.is_alive(0));
        net.run_for(Duration::from_secs(1));
        // The same core: its count went on from 4 (a restart would start again), and the
        // timer it had (10 ms) is due at once.
        let got: Vec<(Instant, u8)> = net.core(1).got.iter().map(|g| (g.0, g.2[0])).collect();
        assert_eq!(
            got,
            [
                (Instant::from_millis(3), 5),
                (Instant::from_millis(35), 4),
                (Instant::from_millis(45), 3),
                (Instant::from_millis(55), 2),
                (Instant::from_millis(65), 1)
            ]
        );
        // Changed by hand: nothing is sent until it is flushed.
        net.core_mut(0).out.push((a(2), vec![9]));
        net.run_for(Duration::from_millis(10));
        assert_eq!(net.core(1).got.len(), 5);
        net.with_core(0, |_| ());
        net.run_for(Duration::from_millis(10));
        assert_eq!(net.core(1).got.last().map(|g| g.2[0]), Some(9));
    }

    #[test]
    fn test_exponential_latency_has_the_mean() {
        let mean = Duration::from_millis(5);
        let mut net = pair(
            NetConfig::new().with_latency(Latency::Exponential { mean }),
            250,
        );
        // Sends every 10 ms; let each arrive before comparing.
        net.run_for(Duration::from_secs(10));
        let got = &net.core(1).got;
        assert_eq!(got.len(), 250);
        let mut sum = 0u64;
        let mut sorted: Vec<u8> = got.iter().map(|g| g.2[0]).collect();
        for g in got {
            let k = 250 - u64::from(g.2[0]);
            sum += (g.0 - Instant::from_millis(10 * k)).as_micros() as u64;
        }
        let mean_us = sum / 250;
        assert!((3500..=6500).contains(&mean_us), "{mean_us}");
        // A long tail reorders datagrams sent 10 ms apart.
        sorted.dedup();
        assert_eq!(sorted.len(), 250);
        assert!(
            got.windows(2).any(|w| w[0].2[0] < w[1].2[0]),
            "never reordered"
        );
    }
}
