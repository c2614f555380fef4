//! `sinew demo dht`: a DHT ring on loopback, on one thread and one `mio::Poll`.
//!
//! Node 0 starts alone; the others join through it. The demo shows, with timestamps:
//! 1. the ring forming: every node finds its true neighbours by id;
//! 2. 20 puts through a client outside the ring, each held by its owner and 2 replicas;
//! 3. a crash of the node owning the most keys: the ring heals and every value is read back;
//! 4. a lock contended by two holders: the second is denied until the first's lease runs out;
//! 5. a graceful leave: the ring heals again and every value is still there;
//!
//! then prints a summary and exits 0, or exits 1 if a phase did not happen within its deadline.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant as StdInstant};

use sinew_proto::dht::{Event, LockToken, NodeId, RequestId};

use super::dht::describe;
use sinew_transport_std::dht::{UdpDhtClient, UdpDhtNode};
use sinew_transport_std::{Group, Handle, Result};

const KEYS: usize = 20;
const LEASE: Duration = Duration::from_millis(800);

type Node = UdpDhtNode;
type Ev = Event<256>;

/// The ring, a client, and where the output goes.
struct Cluster<'w> {
    out: &'w mut dyn Write,
    /// The nodes and the client, on one `Poll`.
    group: Group,
    nodes: Vec<Handle<Node>>,
    client: Handle<UdpDhtClient>,
    outcomes: VecDeque<Ev>,
    started: StdInstant,
    error: Option<io::Error>,
}

impl Cluster<'_> {
    fn line(&mut self, text: &str) {
        if self.error.is_none()
            && let Err(e) = writeln!(
                self.out,
                "{:>8.3}s {text}",
                self.started.elapsed().as_secs_f64()
            )
        {
            self.error = Some(e);
        }
    }

    fn name(&self, addr: SocketAddr) -> String {
        match self.nodes().position(|n| n.local().addr == addr) {
            Some(i) => format!("node {i}"),
            None => addr.to_string(),
        }
    }

    /// Steps every running node and the client, printing node events, until `done` says so or
    /// `deadline` passes; whether `done` said so.
    fn run_until(
        &mut self,
        deadline: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        let end = StdInstant::now() + deadline;
        loop {
            self.group.process()?;
            for i in 0..self.nodes.len() {
                while let Some(event) = self.node_mut(i).poll_event() {
                    let text = match &event {
                        Event::Joined { via } => format!("joined via {}", self.name(via.addr)),
                        Event::NeighbourDown { node } => {
                            format!("neighbour {} is gone", self.name(node.addr))
                        }
                        other => describe(other),
                    };
                    self.line(&format!("node {i}: {text}"));
                }
            }
            while let Some(e) = self.client().poll_event() {
                self.outcomes.push_back(e);
            }
            if self.error.is_some() || done(self) {
                return Ok(self.error.is_none());
            }
            if StdInstant::now() >= end {
                return Ok(false);
            }
            self.group.wait(Some(end))?;
        }
    }

    fn node(&self, i: usize) -> &Node {
        &self.group[self.nodes[i]]
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.group[self.nodes[i]]
    }

    /// The nodes, in order.
    fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.group.iter::<Node>()
    }

    fn client(&mut self) -> &mut UdpDhtClient {
        &mut self.group[self.client]
    }

    /// Waits for the outcomes of `ids`, in the order given.
    fn outcomes_of(&mut self, ids: &[RequestId], deadline: Duration) -> Result<Option<Vec<Ev>>> {
        let all = self.run_until(deadline, |c| {
            ids.iter()
                .all(|id| c.outcomes.iter().any(|e| e.request_id() == Some(*id)))
        })?;
        if !all {
            return Ok(None);
        }
        let mut found = Vec::new();
        for id in ids {
            if let Some(i) = self
                .outcomes
                .iter()
                .position(|e| e.request_id() == Some(*id))
                && let Some(e) = self.outcomes.remove(i)
            {
                found.push(e);
            }
        }
        Ok(Some(found))
    }

    fn running(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes().enumerate().filter(|(_, n)| n.is_running())
    }

    /// Whether every running node has its true neighbours (by id, among running nodes that
    /// have not left) nearest on both sides and knows every other member.
    fn ring_is_correct(&self) -> bool {
        let mut members: Vec<(NodeId, SocketAddr)> = self
            .running()
            .filter(|(_, n)| !n.core().has_left())
            .map(|(_, n)| (n.local().id, n.local().addr))
            .collect();
        members.sort();
        let m = members.len();
        if m < 2 {
            return true;
        }
        members.iter().enumerate().all(|(k, &(id, _))| {
            let Some(node) = self.nodes().find(|n| n.is_running() && n.local().id == id) else {
                return false;
            };
            let leaf = node.leaf_set();
            let left = members[(k + m - 1) % m].0;
            let right = members[(k + 1) % m].0;
            let known = leaf.nodes().count() == m - 1
                && members
                    .iter()
                    .all(|&(other, _)| other == id || leaf.get(other).is_some());
            leaf.nearest_left().map(|n| n.id) == Some(left)
                && leaf.nearest_right().map(|n| n.id) == Some(right)
                && known
        })
    }

    /// How many running nodes hold `key` with `value`.
    fn holders(&self, key: &[u8], value: &[u8]) -> usize {
        self.running()
            .filter(|(_, n)| n.core().stored(key) == Some(value))
            .count()
    }

    fn owner(&self, key: &[u8]) -> Option<usize> {
        let (_, any) = self.running().find(|(_, n)| !n.core().has_left())?;
        let owner = any.core().owner_of(key);
        self.nodes().position(|n| n.local().id == owner.id)
    }

    /// Reads every key through the client; how many came back with their value.
    fn read_all(&mut self, deadline: Duration) -> Result<usize> {
        let node = self.client().node();
        let mut ids = Vec::new();
        for k in 0..KEYS {
            let key = format!("key-{k:02}");
            ids.push(
                self.client()
                    .submit(|c, now| c.get(now, node, key.as_bytes()))?,
            );
        }
        let Some(got) = self.outcomes_of(&ids, deadline)? else {
            return Ok(0);
        };
        Ok(got
            .iter()
            .enumerate()
            .filter(|(k, e)| {
                let want = format!("value-{k:02}");
                matches!(e, Event::GetDone { value: Some(v), .. } if v[..] == *want.as_bytes())
            })
            .count())
    }

    fn fail(&mut self, what: &str) -> Result<u8> {
        self.line(&format!("FAILED: {what} within the deadline"));
        for i in 0..self.nodes.len() {
            let n = &self.node(i);
            let leaf: Vec<String> = n.leaf_set().nodes().map(|x| self.name(x.addr)).collect();
            let line = format!(
                "  node {i} {} running {} leaf set [{}] stored {}",
                n.local(),
                n.is_running(),
                leaf.join(" "),
                n.core().stored_len()
            );
            self.line(&line);
        }
        self.out.flush()?;
        Ok(1)
    }

    fn check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// Runs the DHT demo with `n` nodes (at least 4), each phase within `deadline`; returns the exit
/// code (0 when every phase happened).
///
/// # Errors
/// [`Error::Io`](sinew_transport_std::Error::Io) if a socket cannot be bound or polled, or `out` fails.
pub fn run(n: usize, deadline: Duration, out: &mut dyn Write) -> Result<u8> {
    let n = n.max(4);
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut group = Group::new()?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        let node: Node = UdpDhtNode::bind_with(
            loopback,
            // The id bound to the node's address (the default, checked by its peers).
            None,
            |c| {
                c.stabilize_interval = Duration::from_millis(100);
                c.request_timeout = Duration::from_millis(100);
                c.max_failures = 3;
                c.max_lease = LEASE;
                c.replicas = 2;
            },
        )?;
        nodes.push(node);
    }
    let entry = nodes[1].local().addr;
    // A one-hop client (it may send to owners directly), routing through node 1 for the puts
    // and the locks: its reads after the crash go one hop.
    let mut client: UdpDhtClient = UdpDhtClient::connect_with(entry, |c| {
        c.request_timeout = Duration::from_millis(300);
        c.one_hop = true;
    })?;
    client.set_one_hop(false)?;

    writeln!(
        out,
        "sinew demo dht: {n} DHT nodes on loopback, one thread, one mio Poll"
    )?;
    writeln!(
        out,
        "leaf sets of 4 per side, 2 replicas, stabilization every 100 ms, leases up to {} ms",
        LEASE.as_millis()
    )?;
    for (i, node) in nodes.iter().enumerate() {
        let role = if i == 0 {
            "starts the ring"
        } else {
            "joins through node 0"
        };
        writeln!(out, "  node {i}: {} ({role})", node.local())?;
    }
    writeln!(
        out,
        "  client: {} (outside the ring, asks node 1)",
        client.local()
    )?;
    let nodes = nodes
        .into_iter()
        .map(|node| group.add(node))
        .collect::<Result<Vec<_>>>()?;
    let client = group.add(client)?;
    let mut c = Cluster {
        out,
        group,
        nodes,
        client,
        outcomes: VecDeque::new(),
        started: StdInstant::now(),
        error: None,
    };

    // Phase 1: the ring forms.
    writeln!(c.out, "\nphase 1: nodes 1..{} join through node 0", n - 1)?;
    let seed = c.node(0).local().addr;
    for i in 1..n {
        c.node_mut(i).join(seed)?;
    }
    if !c.run_until(deadline, |c| c.ring_is_correct())? {
        c.check()?;
        return c.fail("phase 1: the ring did not form");
    }
    let t_ring = c.started.elapsed();
    let mut order: Vec<(NodeId, usize)> = c
        .nodes()
        .enumerate()
        .map(|(i, n)| (n.local().id, i))
        .collect();
    order.sort();
    let ring: Vec<String> = order
        .iter()
        .map(|(id, i)| format!("node {i} ({id})"))
        .collect();
    c.line(&format!(
        "ring formed, by id: {} -> back",
        ring.join(" -> ")
    ));

    // Phase 2: puts through the client.
    writeln!(
        c.out,
        "\nphase 2: the client stores {KEYS} keys through node 1"
    )?;
    let mut ids = Vec::new();
    for k in 0..KEYS {
        let (key, value) = (format!("key-{k:02}"), format!("value-{k:02}"));
        ids.push(
            c.client()
                .submit(|cl, now| cl.put(now, entry, key.as_bytes(), value.as_bytes()))?,
        );
    }
    let put_start = StdInstant::now();
    let Some(got) = c.outcomes_of(&ids, deadline)? else {
        c.check()?;
        return c.fail("phase 2: the puts were not acknowledged");
    };
    let t_puts = put_start.elapsed();
    if let Some(bad) = got.iter().find(|e| !matches!(e, Event::PutDone { .. })) {
        let what = format!("phase 2: a put failed: {}", describe(bad));
        return c.fail(&what);
    }
    let mut owned = vec![0usize; n];
    let mut copies = Vec::new();
    for k in 0..KEYS {
        let (key, value) = (format!("key-{k:02}"), format!("value-{k:02}"));
        if let Some(o) = c.owner(key.as_bytes()) {
            owned[o] += 1;
        }
        copies.push(c.holders(key.as_bytes(), value.as_bytes()));
    }
    c.line(&format!(
        "{KEYS} puts acknowledged in {:.1} ms (pipelined); keys owned per node: {owned:?}; \
         copies per key: min {} max {}",
        t_puts.as_secs_f64() * 1e3,
        copies.iter().min().unwrap_or(&0),
        copies.iter().max().unwrap_or(&0)
    ));
    if copies.iter().any(|&h| h < 3) {
        return c.fail("phase 2: a key is held by fewer than 3 nodes");
    }

    // Phase 3: the busiest owner crashes (never node 0 or the client's node 1).
    let victim = (2..n).max_by_key(|&i| (owned[i], i)).unwrap_or(n - 1);
    writeln!(
        c.out,
        "\nphase 3: node {victim}, owner of {} keys, crashes (socket closed, no goodbye)",
        owned[victim]
    )?;
    c.node_mut(victim).stop();
    let crash = StdInstant::now();
    c.line(&format!("node {victim} crashed"));
    if !c.run_until(deadline, |c| c.ring_is_correct())? {
        c.check()?;
        return c.fail("phase 3: the ring did not heal after the crash");
    }
    let t_heal = crash.elapsed();
    c.line(&format!(
        "ring healed without node {victim} after {:.3} s",
        t_heal.as_secs_f64()
    ));
    // The client asks node 1 for its view (a ViewRequest) while it reads every key back
    // through node 1; reading again, it sends each get straight to the key's owner by it.
    c.client().set_one_hop(true)?;
    let read = c.read_all(deadline)?;
    c.line(&format!("{read}/{KEYS} values read back through node 1"));
    if read != KEYS {
        return c.fail("phase 3: a value was lost after the crash");
    }
    let before = c.client().stats().direct;
    let read = c.read_all(deadline)?;
    let direct = c.client().stats().direct - before;
    c.line(&format!(
        "{read}/{KEYS} read again one hop, straight to each key's owner by node 1's view \
         ({direct} direct attempts: each owner challenges a client it has not heard from)"
    ));
    if direct == 0 {
        return c.fail("phase 3: no read went straight to its owner");
    }
    c.client().set_one_hop(false)?;
    if read != KEYS {
        return c.fail("phase 3: a value was lost on the one-hop reads");
    }

    // Phase 4: a contended lock.
    writeln!(
        c.out,
        "\nphase 4: alice and bob want the lock \"door\" (leases of {} ms)",
        LEASE.as_millis()
    )?;
    // Each holds the lock with a token only it knows (a demo derives them from fixed secrets).
    let alice = LockToken::derive(b"alice's secret", b"door");
    let bob = LockToken::derive(b"bob's secret", b"door");
    let lock = |c: &mut Cluster<'_>, who: LockToken| -> Result<Option<Ev>> {
        let id = c
            .client()
            .submit(|cl, now| cl.lock(now, entry, b"door", who, LEASE))?;
        Ok(c.outcomes_of(&[id], deadline)?.and_then(|mut v| v.pop()))
    };
    // A new owner grants nothing during its grace period (one lease): alice asks until granted
    // (nobody holds "door" yet, so a denial is the grace period).
    let lock_start = StdInstant::now();
    let mut alice_locked = false;
    while lock_start.elapsed() < deadline {
        match lock(&mut c, alice)? {
            Some(Event::Locked { .. }) => {
                alice_locked = true;
                break;
            }
            Some(Event::LockDenied { remaining, .. }) => {
                c.line(&format!(
                    "alice: the owner is in its grace period for {} ms more",
                    remaining.as_millis()
                ));
                c.run_until(remaining.min(LEASE), |_| false)?;
            }
            other => {
                let what = format!("phase 4: alice's lock: {other:?}");
                return c.fail(&what);
            }
        }
    }
    if !alice_locked {
        return c.fail("phase 4: alice never got the lock");
    }
    c.line("alice holds \"door\"");
    match lock(&mut c, bob)? {
        Some(Event::LockDenied { remaining, .. }) => c.line(&format!(
            "bob is denied: it is held (by alice, whom the owner does not name) for up to {} ms \
             more",
            remaining.as_millis()
        )),
        other => {
            let what = format!("phase 4: bob was not denied: {other:?}");
            return c.fail(&what);
        }
    }
    c.line("alice stops renewing (as if crashed); bob waits for her lease to pass");
    let wait_start = StdInstant::now();
    let mut bob_locked = false;
    while wait_start.elapsed() < deadline {
        c.run_until(Duration::from_millis(200), |_| false)?;
        match lock(&mut c, bob)? {
            Some(Event::Locked { .. }) => {
                bob_locked = true;
                break;
            }
            Some(Event::LockDenied { .. }) => {}
            other => {
                let what = format!("phase 4: bob's lock: {other:?}");
                return c.fail(&what);
            }
        }
    }
    if !bob_locked {
        return c.fail("phase 4: alice's lease never freed the lock");
    }
    c.line(&format!(
        "bob holds \"door\" {:.3} s after alice's last renewal: her lease freed it",
        wait_start.elapsed().as_secs_f64()
    ));
    let ids = [
        c.client()
            .submit(|cl, now| cl.unlock(now, entry, b"door", alice))?,
        c.client()
            .submit(|cl, now| cl.unlock(now, entry, b"door", bob))?,
    ];
    match c.outcomes_of(&ids, deadline)?.as_deref() {
        Some([Event::Failed { .. }, Event::Unlocked { .. }]) => {
            c.line("alice's unlock is refused (NotHolder); bob's unlock releases \"door\"");
        }
        other => {
            let what = format!("phase 4: unlocks: {other:?}");
            return c.fail(&what);
        }
    }

    // Phase 5: a graceful leave.
    let leaver = (2..n).rev().find(|&i| i != victim).unwrap_or(0);
    writeln!(c.out, "\nphase 5: node {leaver} leaves the ring gracefully")?;
    c.node_mut(leaver).leave()?;
    let leave = StdInstant::now();
    if !c.run_until(deadline, |c| c.ring_is_correct())? {
        c.check()?;
        return c.fail("phase 5: the ring did not heal after the leave");
    }
    let t_leave = leave.elapsed();
    c.line(&format!(
        "ring healed without node {leaver} after {:.3} s",
        t_leave.as_secs_f64()
    ));
    let read = c.read_all(deadline)?;
    c.line(&format!("{read}/{KEYS} values read back through node 1"));
    if read != KEYS {
        return c.fail("phase 5: a value was lost after the leave");
    }
    c.check()?;

    // Summary.
    let Cluster {
        out, group, client, ..
    } = c;
    let nodes = group.iter::<Node>();
    writeln!(out, "\nsummary")?;
    writeln!(
        out,
        "  ring formed in:        {:.3} s",
        t_ring.as_secs_f64()
    )?;
    writeln!(
        out,
        "  {KEYS} puts acknowledged:  {:.1} ms (each on 3 nodes)",
        t_puts.as_secs_f64() * 1e3
    )?;
    writeln!(
        out,
        "  healed after a crash:  {:.3} s, no value lost",
        t_heal.as_secs_f64()
    )?;
    writeln!(
        out,
        "  healed after a leave:  {:.3} s, no value lost",
        t_leave.as_secs_f64()
    )?;
    writeln!(
        out,
        "  {:<7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "node",
        "received",
        "malformed",
        "unmatched",
        "sent",
        "served",
        "forwarded",
        "replicas",
        "timeouts"
    )?;
    for (i, node) in nodes.enumerate() {
        let s = node.stats();
        writeln!(
            out,
            "  {:<7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("node {i}"),
            s.received,
            s.malformed,
            s.unmatched,
            s.sent,
            s.served,
            s.forwarded,
            s.replicates_sent,
            s.timeouts
        )?;
    }
    let cs = group[client].stats();
    writeln!(
        out,
        "  client: sent {}, received {}, unmatched {}, timeouts {}, retries {}",
        cs.sent, cs.received, cs.unmatched, cs.timeouts, cs.retries
    )?;
    writeln!(
        out,
        "  dht demo completed in {:.3} s: all phases passed",
        c.started.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    Ok(0)
}
