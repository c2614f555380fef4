//! A DHT ring of three nodes and a client, each on its own plain `std::net::UdpSocket`.
//!
//! `DhtNode` and `DhtClient` are sans-IO cores behind the one `DatagramCore` interface, so a
//! single small driver moves bytes and time for all four. Node 0 starts a ring of its own;
//! nodes 1 and 2 join it through node 0. The client, which is no member, then writes a key
//! through a node that does not own it, reads it back, takes the key's lock, sees a second
//! holder refused, and releases it. Every outcome is checked: the program exits 1 (with the
//! reason) if the ring does not form, a value read back differs, the write is not on every
//! node (two replicas besides the owner, the default) or a lock is granted twice.
//!
//! ```text
//! cargo run -p sinew-proto --example dht
//! ```

use std::error::Error;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
use sinew_proto::dht::{
    ClientConfig, Config, DhtClient, DhtNode, Event, LockToken, NodeAddr, NodeId, RequestId,
};
use sinew_proto::time::Instant;

/// Nonces, message ids and the client's id must be unguessable: the operating system's CSPRNG.
type Rng = sinew_proto::rand_core::UnwrapErr<getrandom::SysRng>;
/// The default sizes: 4 neighbours on each side, 32 keys of up to 32 bytes, values up to 128.
type Node = DhtNode<Rng>;
type Client = DhtClient<Rng>;
/// What both tell their application (generic over the longest value, 128 bytes here).
type DhtEvent = Event<128>;

// Every message these cores write fits one datagram.
const _: () = assert!(Node::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN);
const _: () = assert!(Client::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN);

const NODES: usize = 3;
const DEADLINE: Duration = Duration::from_secs(10);
/// The longest the loop sleeps: one thread polls four sockets (a real program blocks in
/// poll/epoll, as sinew-transport-std does with mio).
const MAX_NAP: Duration = Duration::from_millis(5);
const KEY: &[u8] = b"colour";
const VALUE: &[u8] = b"ultramarine";

/// A core and the socket it speaks through.
struct Endpoint<C> {
    socket: UdpSocket,
    addr: SocketAddr,
    core: C,
}

impl<C: DatagramCore> Endpoint<C> {
    /// Binds a socket on loopback and makes the core for its address.
    fn bind(make: impl FnOnce(SocketAddr) -> C) -> std::io::Result<Endpoint<C>> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(Endpoint {
            socket,
            addr,
            core: make(addr),
        })
    }

    /// One step of the driver, the same for every core: hand in what arrived, let time pass,
    /// send what the core wants sent, collect its events.
    fn step(&mut self, now: Instant, events: &mut Vec<C::Event>) -> std::io::Result<()> {
        // One byte more than the protocol allows, so that an oversized datagram is refused
        // as too large rather than cut to size.
        let mut buf = [0u8; MAX_DATAGRAM_LEN + 1];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    self.core.handle_datagram(now, from, &buf[..len]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // An ICMP error about an earlier datagram, on systems that report them.
                Err(e) if is_stale_error(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.core.handle_timeout(now);
        while let Some(transmit) = self.core.poll_transmit(now, &mut buf) {
            match self
                .socket
                .send_to(&buf[..transmit.len], transmit.destination)
            {
                Ok(_) => {}
                // UDP is lossy anyway; the cores retry.
                Err(e) if e.kind() == ErrorKind::WouldBlock || is_stale_error(&e) => {}
                Err(e) => return Err(e),
            }
        }
        while let Some(event) = self.core.poll_event() {
            events.push(event);
        }
        Ok(())
    }
}

fn is_stale_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}

/// The three nodes, the client, the events the client has not looked at yet, and the clock.
struct World {
    nodes: Vec<Endpoint<Node>>,
    client: Endpoint<Client>,
    client_events: Vec<DhtEvent>,
    epoch: StdInstant,
}

impl World {
    /// The protocol's time: microseconds since an epoch of our choosing (the program's start).
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Drives every endpoint until `done` holds, or fails after [`DEADLINE`] naming `what`.
    fn run_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&mut World) -> bool,
    ) -> Result<(), Box<dyn Error>> {
        let deadline = StdInstant::now() + DEADLINE;
        loop {
            let now = self.now();
            for (i, node) in self.nodes.iter_mut().enumerate() {
                let mut events = Vec::new();
                node.step(now, &mut events)?;
                for event in events {
                    println!("node {i}: {event:?}");
                }
            }
            self.client.step(now, &mut self.client_events)?;
            if done(self) {
                return Ok(());
            }
            if StdInstant::now() > deadline {
                return Err(format!("{what}: not done within {DEADLINE:?}").into());
            }
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.core.poll_timeout())
                .chain(self.client.core.poll_timeout())
                .min();
            let nap = next.map_or(MAX_NAP, |t| {
                t.saturating_duration_since(self.now()).min(MAX_NAP)
            });
            std::thread::sleep(nap);
        }
    }

    /// Drives everything until the client's request `id` has its outcome, and returns it.
    fn outcome(&mut self, what: &str, id: RequestId) -> Result<DhtEvent, Box<dyn Error>> {
        let mut outcome = None;
        self.run_until(what, |world| {
            if let Some(i) = world
                .client_events
                .iter()
                .position(|e| e.request_id() == Some(id))
            {
                outcome = Some(world.client_events.remove(i));
            }
            outcome.is_some()
        })?;
        let outcome = outcome.ok_or("no outcome")?;
        println!("client: {what}: {outcome:?}");
        Ok(outcome)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Endpoint::bind(|addr| {
            // The id bound to the socket's address, as every node requires of its peers by
            // default (`Config::bind_ids`).
            let local = NodeAddr::bound(addr);
            let config = Config::new(local)
                // Faster than the default second, so that the leaf sets settle quickly.
                .with_stabilize_interval(Duration::from_millis(200))
                // A node that takes keys over (as a joining node does) grants no lock on them
                // for one longest lease: 2 s rather than the default 10 keeps the example short.
                .with_max_lease(Duration::from_secs(2));
            Node::new(config, sinew_proto::rand_core::UnwrapErr(getrandom::SysRng))
        })?);
    }
    let mut rng = sinew_proto::rand_core::UnwrapErr(getrandom::SysRng);
    let client_id = NodeId::random(&mut rng);
    let client = Endpoint::bind(|addr| {
        // The nodes answer the client at this address: its socket's, as they see it.
        let local = NodeAddr {
            id: client_id,
            addr,
        };
        Client::new(
            ClientConfig::new(local),
            sinew_proto::rand_core::UnwrapErr(getrandom::SysRng),
        )
    })?;
    let mut world = World {
        nodes,
        client,
        client_events: Vec::new(),
        epoch: StdInstant::now(),
    };

    // Nodes 1 and 2 join the ring of node 0.
    let entry = world.nodes[0].addr;
    let now = world.now();
    for node in &mut world.nodes[1..] {
        node.core.join(now, entry)?;
    }
    world.run_until("forming the ring", |world| {
        world
            .nodes
            .iter()
            .all(|n| n.core.in_ring() && n.core.leaf_set().nodes().count() == NODES - 1)
    })?;
    for (i, node) in world.nodes.iter().enumerate() {
        let neighbours: Vec<String> = node
            .core
            .leaf_set()
            .nodes()
            .map(|n| n.to_string())
            .collect();
        println!(
            "node {i} {} knows {}",
            node.core.local(),
            neighbours.join(", ")
        );
    }

    // The client asks a node that does not own the key: it routes the request to the owner.
    let owner = world.nodes[0].core.owner_of(KEY);
    let via = world
        .nodes
        .iter()
        .map(|n| n.addr)
        .find(|addr| *addr != owner.addr)
        .ok_or("no node besides the owner")?;
    println!(
        "{:?} is owned by {owner}; the client asks {via}",
        String::from_utf8_lossy(KEY)
    );

    let now = world.now();
    let id = world.client.core.put(now, via, KEY, VALUE)?;
    match world.outcome("put", id)? {
        Event::PutDone { .. } => {}
        other => return Err(format!("put failed: {other:?}").into()),
    }
    // Acknowledged means stored by the owner and its replicas: with three nodes, all of them.
    for (i, node) in world.nodes.iter().enumerate() {
        if node.core.stored(KEY) != Some(VALUE) {
            return Err(format!("node {i} does not hold the acknowledged value").into());
        }
    }

    let now = world.now();
    let id = world.client.core.get(now, via, KEY)?;
    match world.outcome("get", id)? {
        Event::GetDone {
            value: Some(value), ..
        } if value == VALUE => {}
        other => return Err(format!("get did not read back the value: {other:?}").into()),
    }

    // The lock: granted to the client, refused to anyone else while the lease runs.
    let lease = Duration::from_secs(2);
    // The token is what holds the lock: whoever knows it can release it, so it stays secret.
    let token = LockToken::random(&mut rng);
    let mut granted = false;
    for _ in 0..3 {
        let now = world.now();
        let id = world.client.core.lock(now, via, KEY, token, lease)?;
        match world.outcome("lock", id)? {
            Event::Locked { .. } => {
                granted = true;
                break;
            }
            // Nobody else asks for this lock, so a denial here is the owner's grace period: it
            // took the key over when it joined, and until one longest lease has passed it
            // cannot know whether the previous owner granted the lock, so it grants nothing.
            Event::LockDenied { remaining, .. } => {
                println!("client: the owner is in its grace period; again in {remaining:?}");
                let until = StdInstant::now() + remaining;
                world.run_until("waiting out the grace period", |_| {
                    StdInstant::now() >= until
                })?;
            }
            other => return Err(format!("lock not granted: {other:?}").into()),
        }
    }
    if !granted {
        return Err("lock: the owner's grace period did not end".into());
    }
    let rival = LockToken::random(&mut rng);
    let now = world.now();
    let id = world.client.core.lock(now, via, KEY, rival, lease)?;
    match world.outcome("lock for another holder", id)? {
        // A denial says only for how long the key is held, never by whom.
        Event::LockDenied { .. } => {}
        other => return Err(format!("a held lock was not refused: {other:?}").into()),
    }
    let now = world.now();
    let id = world.client.core.unlock(now, via, KEY, token)?;
    match world.outcome("unlock", id)? {
        Event::Unlocked { .. } => {}
        other => return Err(format!("unlock failed: {other:?}").into()),
    }
    let now = world.now();
    if let Some(holder) = world
        .nodes
        .iter()
        .find_map(|n| n.core.lock_holder(now, KEY))
    {
        return Err(format!("the lock is still held by {holder:?} after the unlock").into());
    }

    println!("put, get, lock and unlock all did what they should");
    Ok(())
}
