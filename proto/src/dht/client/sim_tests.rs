//! One-hop clients: a ring on [`crate::sim`] with a [`DhtClient`] that learns views, the node's
//! answer to a ViewRequest, and Views that lie.

use core::cell::RefCell;
use core::net::SocketAddr;
use core::time::Duration;
use std::boxed::Box;
use std::rc::Rc;
use std::vec::Vec;
use std::{format, vec};

use proptest::prelude::*;

use super::view::LearnedView;
use super::*;
use crate::datagram::MAX_DATAGRAM_LEN;
use crate::dht::ring::{LeafSet, owner_among};
use crate::dht::{Config, DhtNode, Kind, NodeSet};
use crate::sim::{Latency, NetConfig, Network, NodeIx, SimRng};

const V: usize = 32;
type Node = DhtNode<SimRng, 4, 64, 16, V, 32>;
type Client = DhtClient<SimRng, 8, 16, V>;

/// A ring node or a client, on one network.
enum Peer {
    Node(Box<Node>),
    Client(Box<Client>),
}

impl DatagramCore for Peer {
    type Event = Event<V>;
    type Disposition = Disposition;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Disposition {
        match self {
            Peer::Node(n) => n.handle_datagram(now, from, datagram),
            Peer::Client(c) => c.handle_datagram(now, from, datagram),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Peer::Node(n) => n.handle_timeout(now),
            Peer::Client(c) => c.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        match self {
            Peer::Node(n) => n.poll_transmit(now, buf),
            Peer::Client(c) => c.poll_transmit(now, buf),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Peer::Node(n) => n.poll_timeout(),
            Peer::Client(c) => c.poll_timeout(),
        }
    }

    fn poll_event(&mut self) -> Option<Event<V>> {
        match self {
            Peer::Node(n) => n.poll_event(),
            Peer::Client(c) => c.poll_event(),
        }
    }
}

impl Peer {
    fn node(&self) -> &Node {
        match self {
            Peer::Node(n) => n,
            Peer::Client(_) => panic!("a client"),
        }
    }

    fn client(&mut self) -> &mut Client {
        match self {
            Peer::Client(c) => c,
            Peer::Node(_) => panic!("a node"),
        }
    }

    fn client_ref(&self) -> &Client {
        match self {
            Peer::Client(c) => c,
            Peer::Node(_) => panic!("a node"),
        }
    }
}

fn node_addr(i: usize) -> SocketAddr {
    ([10, 0, 0, i as u8 + 1], 7000).into()
}

fn new_node(i: usize) -> Peer {
    let config = Config::new(NodeAddr::bound(node_addr(i)));
    Peer::Node(Box::new(DhtNode::new(config, SimRng::new(i as u64 + 1))))
}

/// Datagrams delivered, by (kind, destination): a tap's record (a Relayed by the kind of the
/// request it carries).
type Seen = Rc<RefCell<Vec<(u8, NodeIx)>>>;

/// A ring of `nodes` nodes (all in each other's leaf sets settled), and a one-hop client.
struct Bed {
    net: Network<Peer>,
    nodes: Vec<NodeIx>,
    client: NodeIx,
    seen: Seen,
}

impl Bed {
    fn new(nodes: usize, seed: u64, view_ttl: Duration) -> Bed {
        let mut net = Network::new(NetConfig::new().with_seed(seed).with_latency(
            Latency::Uniform {
                min: Duration::from_micros(500),
                max: Duration::from_millis(5),
            },
        ));
        let ixs: Vec<NodeIx> = (0..nodes)
            .map(|i| net.add(node_addr(i), new_node(i)))
            .collect();
        for &ix in &ixs[1..] {
            let now = net.now();
            net.with_core(ix, |p| match p {
                Peer::Node(n) => n.join(now, node_addr(0)),
                Peer::Client(_) => unreachable!(),
            })
            .unwrap();
            net.run_for(Duration::from_millis(500));
        }
        net.run_for(Duration::from_secs(3));
        for &ix in &ixs {
            assert!(net.core(ix).node().in_ring());
        }
        let me: SocketAddr = ([10, 0, 1, 1], 9000).into();
        let config = ClientConfig::new(NodeAddr {
            id: NodeId::from_name(b"one-hop client"),
            addr: me,
        })
        .with_one_hop(true)
        .with_max_attempts(5)
        .with_view_ttl(view_ttl);
        let client = net.add(
            me,
            Peer::Client(Box::new(DhtClient::new(config, SimRng::new(99 + seed)))),
        );
        let seen: Seen = Rc::default();
        let record = Rc::clone(&seen);
        // A relayed request counts as the request it carries: each is one hop.
        net.set_tap(Box::new(move |_, _, to, bytes| {
            let kind = match Message::parse(bytes).map(|m| m.body) {
                Ok(Body::Relayed { request, .. }) => request.kind() as u8,
                _ => bytes[0] & 0x1f,
            };
            record.borrow_mut().push((kind, to));
        }));
        Bed {
            net,
            nodes: ixs,
            client,
            seen,
        }
    }

    /// Runs `request` on the client and the network until its outcome.
    fn run(
        &mut self,
        request: impl FnOnce(&mut Client, Instant) -> crate::Result<RequestId>,
    ) -> Event<V> {
        let now = self.net.now();
        let id = self
            .net
            .with_core(self.client, |p| request(p.client(), now))
            .unwrap();
        for _ in 0..20_000 {
            let until = self.net.now() + Duration::from_millis(10);
            self.net.run_until(until);
            let events = self.net.take_events();
            if let Some((_, _, e)) = events
                .into_iter()
                .find(|(_, ix, e)| *ix == self.client && e.request_id() == Some(id))
            {
                return e;
            }
        }
        panic!("no outcome");
    }

    fn get(&mut self, entry: usize, key: &[u8]) -> Event<V> {
        let node = node_addr(entry);
        self.run(|c, now| c.get(now, node, key))
    }

    fn put(&mut self, entry: usize, key: &[u8], value: &[u8]) -> Event<V> {
        let node = node_addr(entry);
        self.run(|c, now| c.put(now, node, key, value))
    }

    /// The datagrams of `kind` seen since the last call, by destination.
    fn take(&self, kind: Kind) -> Vec<SocketAddr> {
        let mut seen = self.seen.borrow_mut();
        let out = seen
            .iter()
            .filter(|(k, _)| *k == kind as u8)
            .map(|(_, to)| self.net.addr(*to))
            .collect();
        seen.clear();
        out
    }

    /// The owner of `key` among the live nodes.
    fn owner(&self, key: &[u8]) -> SocketAddr {
        let live: Vec<NodeAddr> = self
            .nodes
            .iter()
            .filter(|&&ix| self.net.is_alive(ix))
            .map(|&ix| self.net.core(ix).node().local())
            .collect();
        let id = owner_among(NodeId::from_name(key), live.iter().map(|n| n.id)).unwrap();
        live.iter().find(|n| n.id == id).unwrap().addr
    }

    fn stats(&self) -> ClientStats {
        *self.net.core(self.client).client_ref().stats()
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:02}").into_bytes()
}

/// After the client learned the entry's view, every get and put goes to the key's owner in
/// one hop: one Get (one Put) per request, delivered to the owner, where routing through the
/// entry costs two for every key the entry does not own.
#[test]
fn one_hop_requests_go_straight_to_owners() {
    let mut bed = Bed::new(5, 1, Duration::from_secs(60));
    // The first request asks for the view (and goes through the entry meanwhile).
    assert!(matches!(bed.put(0, &key(0), b"v0"), Event::PutDone { .. }));
    assert_eq!(bed.stats().views_learned, 1);
    // The first get a node answers directly proves the client's address to it (a Challenge,
    // as a Value is larger than a Get): once per node.
    for i in 0..20 {
        assert!(matches!(bed.get(0, &key(i)), Event::GetDone { .. }));
    }
    let warm = bed.stats().direct;
    bed.take(Kind::Put);
    let mut not_entry = 0;
    for i in 0..20 {
        let k = key(i);
        let value = format!("value {i}");
        assert!(matches!(
            bed.put(0, &k, value.as_bytes()),
            Event::PutDone { .. }
        ));
        assert_eq!(bed.take(Kind::Put), [bed.owner(&k)], "put {i}");
        let Event::GetDone { value: got, .. } = bed.get(0, &k) else {
            panic!("get {i}")
        };
        assert_eq!(got.as_deref(), Some(value.as_bytes()));
        assert_eq!(bed.take(Kind::Get), [bed.owner(&k)], "get {i}");
        if bed.owner(&k) != node_addr(0) {
            not_entry += 1;
        }
    }
    assert!(not_entry >= 10, "{not_entry}");
    let s = bed.stats();
    assert_eq!(s.direct - warm, 2 * not_entry);
    assert_eq!(
        (s.fallbacks, s.views_refused, s.timeouts),
        (0, 0, 0),
        "{s:?}"
    );

    // The same requests with one-hop off: every key the entry does not own takes two hops.
    bed.net
        .with_core(bed.client, |p| p.client().set_one_hop(false));
    for i in 0..20 {
        let k = key(i);
        assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
        let hops = bed.take(Kind::Get).len();
        assert_eq!(hops, if bed.owner(&k) == node_addr(0) { 1 } else { 2 });
    }
}

/// The owner of a key crashes: the client's direct attempt goes unanswered, the request falls
/// back to the entry (which routes it to the new owner, a replica), and once the ring has
/// repaired itself the client learns the new view and goes straight to the new owner.
#[test]
fn owner_crash_falls_back_and_relearns() {
    let mut bed = Bed::new(5, 2, Duration::from_secs(4));
    let k = (0..64)
        .map(key)
        .find(|k| bed.owner(k) != node_addr(0))
        .unwrap();
    assert!(matches!(bed.put(0, &k, b"kept"), Event::PutDone { .. }));
    // The first direct get proves the client's address to the owner (a Challenge).
    assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
    bed.take(Kind::Get);
    assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
    let old = bed.owner(&k);
    assert_eq!(bed.take(Kind::Get), [old]);
    bed.net.crash(bed.net.index_of(old).unwrap());
    // Until the ring notices the crash the entry may find no owner to relay to (NotOwner):
    // that is the ring's repair time, with or without one hop.
    match bed.get(0, &k) {
        Event::GetDone { value, .. } => assert_eq!(value.as_deref(), Some(&b"kept"[..])),
        Event::Failed {
            error: RequestError::Refused(ErrorCode::NotOwner),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let s = bed.stats();
    assert_eq!((s.timeouts, s.fallbacks), (1, 1), "{s:?}");
    // (The tap sees only what live nodes receive: the direct get to the dead owner is lost.)
    let gets = bed.take(Kind::Get);
    assert_eq!(gets[0], node_addr(0), "{gets:?}");
    // The ring repairs, the view expires and is asked again.
    // (The first get asks the view again, the second proves the client's address to the new
    // owner.)
    bed.net.run_for(Duration::from_secs(8));
    for _ in 0..2 {
        assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
    }
    bed.take(Kind::Get);
    let Event::GetDone { value, .. } = bed.get(0, &k) else {
        panic!("the get fails")
    };
    assert_eq!(value.as_deref(), Some(&b"kept"[..]));
    let new = bed.owner(&k);
    assert_ne!(new, old);
    assert_eq!(bed.take(Kind::Get), [new]);
    assert!(bed.stats().views_learned >= 2);
}

/// A node joins and takes keys over: the client's next requests still reach the key (the old
/// owner routes them on), and once it asks for the view again it goes straight to the new
/// owner.
#[test]
fn join_takes_over_keys_and_client_relearns() {
    let mut bed = Bed::new(4, 3, Duration::from_secs(4));
    let joiner = node_addr(4);
    let joiner_id = NodeId::from_addr(joiner);
    let mut ids: Vec<NodeId> = (0..4).map(|i| NodeId::from_addr(node_addr(i))).collect();
    let before: Vec<NodeId> = ids.clone();
    ids.push(joiner_id);
    let k = (0..200)
        .map(key)
        .find(|k| owner_among(NodeId::from_name(k), ids.iter().copied()) == Some(joiner_id))
        .unwrap();
    let old_id = owner_among(NodeId::from_name(&k), before.iter().copied()).unwrap();
    assert!(matches!(bed.put(0, &k, b"moved"), Event::PutDone { .. }));
    assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
    bed.take(Kind::Get);
    let ix = bed.net.add(joiner, new_node(4));
    bed.nodes.push(ix);
    let now = bed.net.now();
    bed.net
        .with_core(ix, |p| match p {
            Peer::Node(n) => n.join(now, node_addr(0)),
            Peer::Client(_) => unreachable!(),
        })
        .unwrap();
    bed.net.run_for(Duration::from_secs(2));
    assert!(bed.net.core(ix).node().in_ring());
    assert_eq!(bed.owner(&k), joiner);
    // The stale view sends the get to the old owner, which routes it on.
    let Event::GetDone { value, .. } = bed.get(0, &k) else {
        panic!("the get fails")
    };
    assert_eq!(value.as_deref(), Some(&b"moved"[..]));
    let old = node_addr(
        (0..4)
            .find(|&i| NodeId::from_addr(node_addr(i)) == old_id)
            .unwrap(),
    );
    assert_eq!(bed.take(Kind::Get), [old, joiner]);
    // After the view's lifetime the client asks again and learns the joiner.
    // (The first get asks the view again and goes through the entry, the second proves the
    // client's address to the joiner.)
    bed.net.run_for(Duration::from_secs(5));
    for _ in 0..2 {
        assert!(matches!(bed.get(0, &k), Event::GetDone { .. }));
    }
    bed.take(Kind::Get);
    let Event::GetDone { value, .. } = bed.get(0, &k) else {
        panic!("the get fails")
    };
    assert_eq!(value.as_deref(), Some(&b"moved"[..]));
    assert_eq!(bed.take(Kind::Get), [joiner]);
}

// ---------------------------------------------------------------------------------------
// Views that lie, sans IO: the client talks to a fake entry.

const ENTRY: &str = "10.0.0.1:7000";

fn fake_client() -> Client {
    let me = NodeAddr {
        id: NodeId::from_name(b"client"),
        addr: "10.0.1.1:9000".parse().unwrap(),
    };
    DhtClient::new(ClientConfig::new(me).with_one_hop(true), SimRng::new(5))
}

/// Sends what the client has and returns (message id, kind, destination) of each.
fn drain(client: &mut Client, now: Instant) -> Vec<(u64, Kind, SocketAddr)> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let mut out = Vec::new();
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        let m = Message::parse(&buf[..t.len]).unwrap();
        out.push((m.header.message_id, m.body.kind(), t.destination));
    }
    out
}

/// Bound nodes around `sender` on one side, nearest first.
fn side_of(sender: NodeId, ports: core::ops::Range<u16>, right: bool) -> Vec<NodeAddr> {
    let mut nodes: Vec<NodeAddr> = ports
        .map(|p| NodeAddr::bound(([10, 0, 2, 1], p).into()))
        .collect();
    nodes.sort_by_key(|n| {
        if right {
            sender.distance_to(n.id)
        } else {
            n.id.distance_to(sender)
        }
    });
    nodes
}

/// Answers the client's ViewRequest as `sender` with `left`/`right`, then sends a get for
/// `key` and says where the client sent it.
fn get_after_view(
    sender: NodeAddr,
    from: SocketAddr,
    left: &[NodeAddr],
    right: &[NodeAddr],
    key: &[u8],
) -> (SocketAddr, ClientStats) {
    let entry: SocketAddr = ENTRY.parse().unwrap();
    let mut client = fake_client();
    let now = Instant::ZERO;
    client.get(now, entry, b"first").unwrap();
    let sent = drain(&mut client, now);
    let &(query, _, _) = sent.iter().find(|s| s.1 == Kind::ViewRequest).unwrap();
    let view = Message {
        header: Header {
            message_id: query,
            sender,
        },
        body: Body::View {
            left: NodeSet::Slice(left),
            right: NodeSet::Slice(right),
        },
    };
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let len = view.encode(&mut buf).unwrap();
    client.handle_datagram(now, from, &buf[..len]);
    client.get(now, entry, key).unwrap();
    let sent = drain(&mut client, now);
    assert_eq!(sent.len(), 1, "{sent:?}");
    (sent[0].2, *client.stats())
}

/// A key whose owner among `nodes` is not at `not`.
fn key_owned_elsewhere(nodes: &[NodeAddr], not: SocketAddr) -> (Vec<u8>, SocketAddr) {
    (0..1000)
        .map(key)
        .find_map(|k| {
            let id = owner_among(NodeId::from_name(&k), nodes.iter().map(|n| n.id))?;
            let owner = nodes.iter().find(|n| n.id == id)?.addr;
            (owner != not).then_some((k, owner))
        })
        .unwrap()
}

#[test]
fn an_honest_view_redirects() {
    // The control for the lies below: the same shape of view, told truthfully, is believed.
    let entry = NodeAddr::bound(ENTRY.parse().unwrap());
    let left = side_of(entry.id, 7100..7103, false);
    let right = side_of(entry.id, 7200..7203, true);
    // A key the view covers: owned by a node between the farthest left and right.
    let (k, owner) = (0..1000)
        .map(key)
        .find_map(|k| {
            let view = LearnedView::check(
                entry,
                left.iter().copied(),
                right.iter().copied(),
                true,
                Instant::ZERO,
            )
            .ok()?;
            let o = view.owner(NodeId::from_name(&k))?;
            (o.addr != entry.addr).then_some((k, o.addr))
        })
        .unwrap();
    let (to, stats) = get_after_view(entry, entry.addr, &left, &right, &k);
    assert_eq!(to, owner);
    assert_eq!((stats.views_learned, stats.direct), (1, 1));
}

#[test]
fn a_lying_view_does_not_redirect() {
    let entry_addr: SocketAddr = ENTRY.parse().unwrap();
    let entry = NodeAddr::bound(entry_addr);
    let left = side_of(entry.id, 7100..7103, false);
    let right = side_of(entry.id, 7200..7203, true);

    // 1. Unbound ids: an attacker's address under ids of its choosing, placed to own keys.
    let mut forged = right.clone();
    for (i, n) in forged.iter_mut().enumerate() {
        n.id = NodeId::from_u128(entry.id.to_u128().wrapping_add(1 + i as u128));
    }
    let (k, _) = key_owned_elsewhere(&forged, entry_addr);
    let (to, s) = get_after_view(entry, entry_addr, &left, &forged, &k);
    assert_eq!(to, entry_addr);
    assert_eq!((s.views_refused, s.views_learned, s.direct), (1, 0, 0));

    // 2. Bound ids out of ring order (a right side listed far to near).
    let mut reversed = right.clone();
    reversed.reverse();
    let (k, _) = key_owned_elsewhere(&reversed, entry_addr);
    let (to, s) = get_after_view(entry, entry_addr, &left, &reversed, &k);
    assert_eq!(to, entry_addr);
    assert_eq!((s.views_refused, s.direct), (1, 0));

    // 3. The sender's own id under an unbound address (the entry claims an id not its own).
    let liar = NodeAddr {
        id: NodeId::from_name(b"anything"),
        addr: entry_addr,
    };
    let (k, _) = key_owned_elsewhere(&right, entry_addr);
    let (to, s) = get_after_view(liar, entry_addr, &left, &right, &k);
    assert_eq!(to, entry_addr);
    assert_eq!((s.views_refused, s.direct), (1, 0));

    // 4. A View from another address than the one asked: not even matched.
    let other: SocketAddr = "10.0.0.9:7000".parse().unwrap();
    let (to, s) = get_after_view(NodeAddr::bound(other), other, &left, &right, &k);
    assert_eq!(to, entry_addr);
    assert_eq!((s.wrong_sender, s.views_learned, s.direct), (1, 0, 0));

    // 5. The same node twice, or the sender inside its own side.
    let mut twice = right.clone();
    twice[1] = twice[0];
    let (to, s) = get_after_view(entry, entry_addr, &left, &twice, &k);
    assert_eq!(to, entry_addr);
    assert_eq!(s.views_refused, 1);
    let mut with_self = right.clone();
    with_self.insert(0, entry);
    let (to, s) = get_after_view(entry, entry_addr, &left, &with_self, &k);
    assert_eq!(to, entry_addr);
    assert_eq!(s.views_refused, 1);
}

/// A view that names a node where nobody answers (bound id, in order): the direct attempt
/// times out, the request goes through the entry at once, without losing an attempt, and that
/// address is not chosen again.
#[test]
fn a_silent_owner_falls_back_to_the_entry() {
    let entry_addr: SocketAddr = ENTRY.parse().unwrap();
    let entry = NodeAddr::bound(entry_addr);
    let left = side_of(entry.id, 7100..7103, false);
    let right = side_of(entry.id, 7200..7203, true);
    let mut client = fake_client();
    let now = Instant::ZERO;
    client.get(now, entry_addr, b"first").unwrap();
    let sent = drain(&mut client, now);
    let &(query, _, _) = sent.iter().find(|s| s.1 == Kind::ViewRequest).unwrap();
    let view = Message {
        header: Header {
            message_id: query,
            sender: entry,
        },
        body: Body::View {
            left: NodeSet::Slice(&left),
            right: NodeSet::Slice(&right),
        },
    };
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let len = view.encode(&mut buf).unwrap();
    client.handle_datagram(now, entry_addr, &buf[..len]);
    let &(first, _, _) = sent.iter().find(|s| s.1 == Kind::Get).unwrap();
    let answer = Message {
        header: Header {
            message_id: first,
            sender: entry,
        },
        body: Body::Value {
            key: b"first",
            value: None,
        },
    };
    let len = answer.encode(&mut buf).unwrap();
    client.handle_datagram(now, entry_addr, &buf[..len]);
    assert_eq!(client.outstanding(), 0);
    let learned = client.view.clone().unwrap();
    let k = (0..1000)
        .map(key)
        .find(|k| {
            learned
                .owner(NodeId::from_name(k))
                .is_some_and(|o| o.addr != entry_addr)
        })
        .unwrap();
    let id = client.get(now, entry_addr, &k).unwrap();
    let sent = drain(&mut client, now);
    let owner = sent[0].2;
    assert_ne!(owner, entry_addr);
    let later = now + Duration::from_secs(1);
    client.handle_timeout(later);
    let sent = drain(&mut client, later);
    // The get again, through the entry, and the view asked again.
    assert!(
        sent.iter().any(|s| s.1 == Kind::Get && s.2 == entry_addr),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|s| s.1 == Kind::ViewRequest && s.2 == entry_addr)
    );
    let (get_id, _, _) = *sent.iter().find(|s| s.1 == Kind::Get).unwrap();
    let answer = Message {
        header: Header {
            message_id: get_id,
            sender: entry,
        },
        body: Body::Value {
            key: &k,
            value: Some(b"v"),
        },
    };
    let len = answer.encode(&mut buf).unwrap();
    client.handle_datagram(later, entry_addr, &buf[..len]);
    let done = core::iter::from_fn(|| client.poll_event()).find(|e| e.request_id() == Some(id));
    assert!(matches!(done, Some(Event::GetDone { .. })), "{done:?}");
    assert_eq!(client.stats().fallbacks, 1);
    // The same view again: the silent node is left out, the key is routed.
    let q = client.query.unwrap();
    let view = Message {
        header: Header {
            message_id: q.message_id,
            sender: entry,
        },
        ..view
    };
    let len = view.encode(&mut buf).unwrap();
    client.handle_datagram(later, entry_addr, &buf[..len]);
    assert!(client.view.is_some());
    client.get(later, entry_addr, &k).unwrap();
    let sent = drain(&mut client, later);
    assert_eq!(
        sent.iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![entry_addr]
    );
}

// ---------------------------------------------------------------------------------------
// The node's side.

/// A ViewRequest from `client` to `node`; what the node answers.
fn ask_view(node: &mut Node, client: NodeAddr, now: Instant) -> Vec<u8> {
    let ask = Message {
        header: Header {
            message_id: 77,
            sender: client,
        },
        body: Body::ViewRequest,
    };
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let len = ask.encode(&mut buf).unwrap();
    node.handle_datagram(now, client.addr, &buf[..len]);
    let mut out = [0u8; MAX_DATAGRAM_LEN];
    let t = node.poll_transmit(now, &mut out).expect("an answer");
    assert_eq!(t.destination, client.addr);
    out[..t.len].to_vec()
}

/// A node that is not in a ring with others — alone, or still joining — would name itself the
/// owner of every key: it refuses with NotOwner instead of a View.
#[test]
fn a_node_outside_a_ring_refuses_to_tell_a_view() {
    let client = NodeAddr {
        id: NodeId::from_name(b"c"),
        addr: "10.0.1.1:9000".parse().unwrap(),
    };
    let now = Instant::ZERO;
    let config = Config::new(NodeAddr::bound(node_addr(0))).with_validate_addresses(false);
    let mut alone: Node = DhtNode::new(config, SimRng::new(1));
    let answer = ask_view(&mut alone, client, now);
    let m = Message::parse(&answer).unwrap();
    assert_eq!(m.header.message_id, 77);
    assert_eq!(
        m.body,
        Body::Error {
            code: ErrorCode::NotOwner
        }
    );
    let mut joining: Node = DhtNode::new(
        Config::new(NodeAddr::bound(node_addr(1))).with_validate_addresses(false),
        SimRng::new(2),
    );
    joining.join(now, node_addr(0)).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    while joining.poll_transmit(now, &mut buf).is_some() {}
    let answer = ask_view(&mut joining, client, now);
    let m = Message::parse(&answer).unwrap().body;
    assert_eq!(
        m,
        Body::Error {
            code: ErrorCode::NotOwner
        }
    );
}

/// A ring member answers with its leaf set; an unproved address first gets a Challenge (the
/// View is larger than the request), and the client's echo brings the View.
#[test]
fn a_ring_node_tells_its_view_after_a_challenge() {
    let mut bed = Bed::new(5, 4, Duration::from_secs(60));
    assert!(matches!(bed.get(2, b"x"), Event::GetDone { .. }));
    let s = bed.stats();
    assert_eq!(s.views_learned, 1, "{s:?}");
    assert!(s.challenges_answered >= 1);
    let seen = bed.seen.borrow();
    assert!(seen.iter().any(|&(k, _)| k == Kind::Challenge as u8));
    drop(seen);
    let view = bed.net.core(bed.client).client_ref().view.clone().unwrap();
    for i in 0..5 {
        assert!(view.contains(node_addr(i)));
    }
    let left: Vec<NodeAddr> = bed
        .net
        .core(bed.nodes[2])
        .node()
        .leaf_set()
        .left()
        .collect();
    let right: Vec<NodeAddr> = bed
        .net
        .core(bed.nodes[2])
        .node()
        .leaf_set()
        .right()
        .collect();
    assert_eq!((left.len(), right.len()), (4, 4));
}

proptest! {
    /// Wherever a checked view says a key's owner is, it is the key's owner in the whole ring:
    /// the client's choice follows the leaf set's rule, and never guesses outside the arc
    /// the view covers.
    #[test]
    fn view_owner_is_the_ring_owner(
        ids in proptest::collection::btree_set(any::<u128>(), 2..40),
        pick in any::<prop::sample::Index>(),
        keys in proptest::collection::vec(any::<u128>(), 1..50),
    ) {
        let nodes: Vec<NodeAddr> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| NodeAddr {
                id: NodeId::from_u128(id),
                addr: ([10, 1, (i / 250) as u8, (i % 250) as u8 + 1], 7000).into(),
            })
            .collect();
        let me = nodes[pick.index(nodes.len())];
        let mut leaf: LeafSet<{ crate::dht::VIEW_SIDE }> = LeafSet::new(me, crate::dht::VIEW_SIDE);
        for n in &nodes {
            leaf.insert(*n);
        }
        let view = LearnedView::check(me, leaf.left(), leaf.right(), false, Instant::ZERO);
        let view = view.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let all = nodes.iter().map(|n| n.id);
        for k in keys.into_iter().chain(ids.iter().map(|i| i.wrapping_add(1))) {
            let key = NodeId::from_u128(k);
            if let Some(owner) = view.owner(key) {
                prop_assert_eq!(Some(owner.id), owner_among(key, all.clone()));
            }
        }
        // The arc covers at least the keys the leaf set's node itself owns.
        let own = NodeId::from_u128(me.id.to_u128());
        prop_assert_eq!(view.owner(own).map(|o| o.id), Some(me.id));
    }
}

/// A burst of eight gets of `key(0..8)` from an address the node has not seen, run until all
/// complete; the client's stats.
fn burst_of_gets(seed: u64, key: fn(usize) -> Vec<u8>) -> ClientStats {
    let mut bed = Bed::new(5, seed, Duration::from_secs(10));
    let value = [7u8; V];
    for i in 0..8 {
        assert!(matches!(bed.put(0, &key(i), &value), Event::PutDone { .. }));
    }
    let me: SocketAddr = ([10, 0, 1, 2], 9000).into();
    let config = ClientConfig::new(NodeAddr {
        id: NodeId::from_name(b"burst client"),
        addr: me,
    });
    let client = bed.net.add(
        me,
        Peer::Client(Box::new(DhtClient::new(config, SimRng::new(5)))),
    );
    let now = bed.net.now();
    let entry = node_addr(0);
    let ids = bed.net.with_core(client, |p| {
        (0..8)
            .map(|i| p.client().get(now, entry, &key(i)).unwrap())
            .collect::<Vec<_>>()
    });
    let mut done = Vec::new();
    for _ in 0..1000 {
        let until = bed.net.now() + Duration::from_millis(10);
        bed.net.run_until(until);
        done.extend(
            bed.net
                .take_events()
                .into_iter()
                .filter(|(_, ix, _)| *ix == client)
                .map(|(_, _, e)| e),
        );
        if done.len() == ids.len() {
            break;
        }
    }
    assert_eq!(done.len(), 8, "{done:?}");
    for e in &done {
        assert!(
            matches!(e, Event::GetDone { value: Some(v), .. } if v[..] == value[..]),
            "{e:?}"
        );
    }
    bed.net.run_for(Duration::from_millis(100));
    *bed.net.core(client).client_ref().stats()
}

/// A burst of gets from an address the node has not seen: the node withholds the answers
/// larger than a Get. The client echoes and sends the gets again; the node takes a get it is
/// still relaying only once, and the second answers to gets it had not withheld count as
/// duplicates, not as strangers' messages.
#[test]
fn a_burst_of_challenged_gets_completes_with_nothing_unmatched() {
    let stats = burst_of_gets(11, key);
    assert!(stats.challenges_answered >= 1, "{stats:?}");
    assert_eq!((stats.unmatched, stats.timeouts), (0, 0), "{stats:?}");
    // Every datagram is accounted for: Challenges, the eight answers, second answers.
    assert_eq!(
        stats.received,
        stats.challenges_answered + 8 + stats.duplicates,
        "{stats:?}"
    );
}

/// Each withheld answer names its get, so the client sends that get again and no other: a
/// burst of eight costs at most eight gets more (not one more round of all waiting gets per
/// Challenge), and one Echo per cookie while it waits to go. The keys are long enough that
/// every Get (52 bytes) leaves room for a 51-byte Withheld; after a shorter one the node can
/// only send a bare Challenge, which sends again every get waiting on it.
#[test]
fn a_burst_of_withheld_gets_sends_each_get_at_most_twice() {
    let long_key = |i: usize| format!("burst-{i:02}").into_bytes();
    for seed in [11, 12, 13] {
        let stats = burst_of_gets(seed, long_key);
        // The client sends gets and Echoes only (one Echo per challenge answered).
        let gets = stats.sent - stats.challenges_answered;
        assert!(gets <= 8 + 8, "seed {seed}: {gets} gets; {stats:?}");
        assert_eq!((stats.unmatched, stats.timeouts), (0, 0), "{stats:?}");
    }
}

/// The Withheld `node` sends for the request `message_id`, built on the wire by hand: type
/// 23, the request's id, the sender, the cookie.
fn withheld_bytes(node: NodeAddr, message_id: u64, cookie: u64) -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let header = Message {
        header: Header {
            message_id,
            sender: node,
        },
        body: Body::Echo,
    };
    let len = header.encode(&mut buf).unwrap();
    let mut bytes = buf[..len].to_vec();
    bytes[0] = 23;
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes
}

/// A get sent again overtakes the Echo and is withheld again: the client sends it again at
/// once (no timeout), with one Echo more; the other gets waiting on the node are not sent
/// again, and a Withheld naming no attempt of this client is unmatched.
#[test]
fn a_get_withheld_again_is_sent_again() {
    let mut client = fake_client();
    client.set_one_hop(false);
    let entry: SocketAddr = ENTRY.parse().unwrap();
    let node = NodeAddr::bound(entry);
    let t = Instant::ZERO;
    for i in 0..4 {
        client.get(t, entry, &key(i)).unwrap();
    }
    let first = drain(&mut client, t);
    assert_eq!(first.len(), 4);
    let x = first[2].0;
    let w = withheld_bytes(node, x, 0xc00c1e);
    assert_eq!(client.handle_datagram(t, entry, &w), Disposition::Handled);
    let resent = drain(&mut client, t);
    assert_eq!(
        resent,
        vec![(0xc00c1e, Kind::Echo, entry), (x, Kind::Get, entry)]
    );
    // The copy arrived before the Echo: withheld again.
    assert_eq!(client.handle_datagram(t, entry, &w), Disposition::Handled);
    let again = drain(&mut client, t);
    assert_eq!(
        again,
        vec![(0xc00c1e, Kind::Echo, entry), (x, Kind::Get, entry)]
    );
    // Two Withhelds before the client sends anything: one Echo.
    assert_eq!(client.handle_datagram(t, entry, &w), Disposition::Handled);
    assert_eq!(
        client.handle_datagram(t, entry, &w),
        Disposition::Dropped(DropReason::Unmatched)
    );
    let once = drain(&mut client, t);
    assert_eq!(once.len(), 2, "{once:?}");
    // Two gets withheld under one cookie: one Echo, both gets again.
    let (y, z) = (first[0].0, first[3].0);
    for id in [y, z] {
        let w = withheld_bytes(node, id, 0xc00c1e);
        assert_eq!(client.handle_datagram(t, entry, &w), Disposition::Handled);
    }
    let both = drain(&mut client, t);
    assert_eq!(both[0], (0xc00c1e, Kind::Echo, entry));
    let mut ids: Vec<u64> = both[1..].iter().map(|s| s.0).collect();
    ids.sort_unstable();
    let mut want = vec![y, z];
    want.sort_unstable();
    assert_eq!((both.len(), ids), (3, want), "{both:?}");
    let stray = withheld_bytes(node, 0xdead, 0xc00c1e);
    assert_eq!(
        client.handle_datagram(t, entry, &stray),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert_eq!(client.stats().timeouts, 0);
}

/// By hand: four gets, a Challenge, each get answered twice (the node had answered the first
/// copies too): one Echo and four gets sent again, four duplicates, nothing unmatched.
#[test]
fn second_answers_after_a_challenge_are_duplicates() {
    let mut client = fake_client();
    client.set_one_hop(false);
    let entry: SocketAddr = ENTRY.parse().unwrap();
    let node = NodeAddr::bound(entry);
    let t = Instant::ZERO;
    for i in 0..4 {
        client.get(t, entry, &key(i)).unwrap();
    }
    let first = drain(&mut client, t);
    assert_eq!(first.len(), 4);
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let challenge = Message {
        header: Header {
            message_id: 0xc00c1e,
            sender: node,
        },
        body: Body::Challenge,
    };
    let len = challenge.encode(&mut buf).unwrap();
    let c = buf[..len].to_vec();
    assert_eq!(client.handle_datagram(t, entry, &c), Disposition::Handled);
    let resent = drain(&mut client, t);
    assert_eq!(resent.len(), 5, "{resent:?}");
    assert_eq!(resent[0].1, Kind::Echo);
    for (n, (id, _, _)) in first.iter().enumerate() {
        let k = key(n);
        let answer = Message {
            header: Header {
                message_id: *id,
                sender: node,
            },
            body: Body::Value {
                key: &k,
                value: None,
            },
        };
        let len = answer.encode(&mut buf).unwrap();
        for _ in 0..2 {
            client.handle_datagram(t, entry, &buf[..len]);
        }
    }
    let stats = *client.stats();
    assert_eq!(
        (stats.challenges_answered, stats.duplicates, stats.unmatched),
        (1, 4, 0),
        "{stats:?}"
    );
    // An answer to an id never sent is still a stranger's.
    let stray = Message {
        header: Header {
            message_id: 0xdead,
            sender: node,
        },
        body: Body::Value {
            key: b"key-00",
            value: None,
        },
    };
    let len = stray.encode(&mut buf).unwrap();
    client.handle_datagram(t, entry, &buf[..len]);
    assert_eq!(client.stats().unmatched, 1);
}

/// An attack: a host at a third address, which saw nothing but guesses (or overheard) a live
/// request's id, sends a Withheld naming that request and the entry's id. The client matches a
/// Withheld on its source address as well as the id: it sends no Echo to the third address
/// (which would reflect bytes to wherever the forger points), does not send the request
/// again, and counts the Withheld as unmatched. The real entry's Withheld still works.
#[test]
fn a_withheld_from_a_third_address_naming_a_live_request_is_ignored() {
    let mut client = fake_client();
    client.set_one_hop(false);
    let entry: SocketAddr = ENTRY.parse().unwrap();
    let node = NodeAddr::bound(entry);
    let third: SocketAddr = "10.0.9.9:7000".parse().unwrap();
    let t = Instant::ZERO;
    client.get(t, entry, &key(1)).unwrap();
    let first = drain(&mut client, t);
    assert_eq!(first.len(), 1);
    let live = first[0].0;
    // The header names the entry (its id and address); the datagram comes from elsewhere.
    let forged = withheld_bytes(node, live, 0xbad);
    assert_eq!(
        client.handle_datagram(t, third, &forged),
        Disposition::Dropped(DropReason::Unmatched)
    );
    // Nor does a Withheld naming the third host itself.
    let own = withheld_bytes(NodeAddr::bound(third), live, 0xbad);
    assert_eq!(
        client.handle_datagram(t, third, &own),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert_eq!(
        drain(&mut client, t),
        vec![],
        "nothing sent, nothing sent again"
    );
    assert_eq!(client.stats().unmatched, 2);
    assert_eq!(client.stats().challenges_answered, 0);
    // The entry's own Withheld of the same request: one Echo, the get again.
    let real = withheld_bytes(node, live, 0x600d);
    assert_eq!(
        client.handle_datagram(t, entry, &real),
        Disposition::Handled
    );
    assert_eq!(
        drain(&mut client, t),
        vec![(0x600d, Kind::Echo, entry), (live, Kind::Get, entry)]
    );
}

/// A Lock with the key and token of an Unlock still on its way could overtake it, be taken for
/// a renewal, and be released by it: `Busy`, nothing sent. Another token, or another key, is
/// not held back.
#[test]
fn a_lock_behind_an_unlock_of_the_same_key_and_token_is_busy() {
    let mut client = fake_client();
    client.set_one_hop(false);
    let entry: SocketAddr = ENTRY.parse().unwrap();
    let t = Instant::ZERO;
    let token = LockToken([7; 16]);
    let lease = Duration::from_secs(5);
    client.unlock(t, entry, b"door", token).unwrap();
    assert_eq!(drain(&mut client, t).len(), 1);
    assert_eq!(
        client.lock(t, entry, b"door", token, lease),
        Err(Error::Busy)
    );
    assert_eq!(drain(&mut client, t), vec![], "nothing sent");
    client
        .lock(t, entry, b"door", LockToken([8; 16]), lease)
        .unwrap();
    client.lock(t, entry, b"gate", token, lease).unwrap();
    assert_eq!(drain(&mut client, t).len(), 2);
}
