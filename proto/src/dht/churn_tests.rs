//! Durability under churn (issue 10), on the public virtual network ([`crate::sim`]): each test
//! runs the scenario on real bytes between real nodes and checks what a client reads back.

use core::net::SocketAddr;
use core::time::Duration;
use std::vec::Vec as StdVec;

use super::*;
use crate::dht::{Body, Header, Message};
use crate::sim::{NetConfig, Network, SimRng};

type Node = DhtNode<SimRng>;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7000))
}

fn node(i: u8) -> Node {
    Node::new(
        Config::new(NodeAddr::bound(addr(i))),
        SimRng::new(u64::from(i) + 1),
    )
}

/// A node at `at`, its id bound there.
fn node_at(at: SocketAddr, seed: u64) -> Node {
    Node::new(Config::new(NodeAddr::bound(at)), SimRng::new(seed))
}

/// A ring of `n` nodes, formed and settled.
fn ring(n: u8) -> Network<Node> {
    let mut net = Network::new(NetConfig::new().with_seed(7));
    for i in 0..n {
        net.add(addr(i), node(i));
    }
    for i in 1..n {
        let now = net.now();
        net.with_core(usize::from(i), |x| x.join(now, addr(0)))
            .unwrap();
        net.run_for(Duration::from_millis(200));
    }
    net.run_for(Duration::from_secs(5));
    for i in 0..usize::from(n) {
        assert!(net.core(i).in_ring(), "node {i} not in the ring");
    }
    net.take_events();
    net
}

/// Runs until node `ix` reports the outcome of request `id`.
fn outcome(net: &mut Network<Node>, ix: usize, id: RequestId) -> Event<128> {
    let end = net.now() + Duration::from_secs(10);
    let mut seen = StdVec::new();
    while net.now() < end {
        net.run_for(Duration::from_millis(10));
        for (_, i, e) in net.take_events() {
            if i == ix && e.request_id() == Some(id) {
                return e;
            }
            seen.push(e);
        }
    }
    panic!("no outcome of {id:?}; saw {seen:?}");
}

/// A node whose join failed (its entry never answered) is alone in a ring of its own, but it
/// is no member of anyone's ring: a get through it must not answer "no value" for a key the
/// ring holds — it refuses (NotOwner), and says so in its counters. Before the fix it served
/// every key itself and answered `None`.
#[test]
fn test_a_node_alone_after_a_failed_join_refuses_instead_of_answering_none() {
    let mut net = ring(4);
    let now = net.now();
    let put = net
        .with_core(0, |x| x.put(now, b"durable", b"yes"))
        .unwrap();
    assert_eq!(outcome(&mut net, 0, put), Event::PutDone { id: put });

    // A fifth node joins through an address where nobody listens.
    let lone = net.add(addr(9), node(9));
    let now = net.now();
    net.with_core(lone, |x| x.join(now, addr(200))).unwrap();
    // While it is still joining, a get through it is refused.
    let early = net.with_core(lone, |x| x.get(now, b"durable")).unwrap();
    let got = outcome(&mut net, lone, early);
    assert!(
        matches!(
            got,
            Event::Failed {
                error: RequestError::Refused(ErrorCode::NotOwner),
                ..
            }
        ),
        "a joining node answered {got:?}"
    );
    net.run_for(Duration::from_secs(5));
    let failed = net
        .take_events()
        .into_iter()
        .any(|(_, i, e)| i == lone && matches!(e, Event::JoinFailed { .. }));
    assert!(failed, "the join should have failed");
    assert!(!net.core(lone).in_ring());

    let now = net.now();
    let get = net.with_core(lone, |x| x.get(now, b"durable")).unwrap();
    let got = outcome(&mut net, lone, get);
    assert!(
        matches!(
            got,
            Event::Failed {
                error: RequestError::Refused(ErrorCode::NotOwner),
                ..
            }
        ),
        "a node outside the ring answered {got:?}"
    );
    assert_eq!(net.core(lone).stats().not_member, 2);
    // The ring itself still serves the key.
    let now = net.now();
    let get = net.with_core(2, |x| x.get(now, b"durable")).unwrap();
    assert!(matches!(
        outcome(&mut net, 2, get),
        Event::GetDone { value: Some(v), .. } if &v[..] == b"yes"
    ));
}

/// Whether every node of `net` has its true successor (the next id clockwise) as its nearest
/// right neighbour: the ring is one ring.
fn whole(net: &Network<Node>, n: usize) -> bool {
    let mut ids: StdVec<(u128, usize)> = (0..n)
        .map(|i| (net.core(i).local().id.to_u128(), i))
        .collect();
    ids.sort_unstable();
    (0..n).all(|k| {
        let next = ids[(k + 1) % n].0;
        net.core(ids[k].1)
            .leaf_set()
            .nearest_right()
            .is_some_and(|r| r.id.to_u128() == next)
    })
}

/// A partition longer than a tombstone (30 s): each side declares the other down, forgets it,
/// and settles as a ring of its own. Once the network heals, the graveyard (former members
/// probed now and then) brings the two back together. Before it, they stayed two rings for
/// good: no node ever sent the other side a datagram again.
#[test]
fn test_two_sides_of_a_long_partition_become_one_ring_again() {
    let n = 12;
    let mut net = ring(n as u8);
    assert!(whole(&net, n));
    // Every other node by id: each side's nodes lie all around the ring.
    let mut by_id: StdVec<(u128, usize)> = (0..n)
        .map(|i| (net.core(i).local().id.to_u128(), i))
        .collect();
    by_id.sort_unstable();
    let side: StdVec<usize> = by_id.iter().step_by(2).map(|&(_, i)| i).collect();
    net.partition(&[&side]);
    net.run_for(Duration::from_secs(60));
    assert!(!whole(&net, n), "each side is a ring of its own");
    for &i in &side {
        let right = net.core(i).leaf_set().nearest_right().unwrap();
        assert!(
            side.iter().any(|&j| net.core(j).local() == right),
            "node {i} still counts a node across the partition"
        );
    }
    net.heal();
    net.run_for(Duration::from_secs(60));
    assert!(whole(&net, n), "still two rings a minute after healing");
}

/// A Lock right after this node's Unlock of the same key could overtake it (its token is the
/// same), be taken for a renewal, and then be released by the Unlock while this node believes
/// it holds the lock; `sinew dht sim --locks` saw a lock held twice that way. So a Lock waits:
/// `Busy` while the Unlock is on its way, taken once it has its outcome.
#[test]
fn test_a_lock_waits_for_the_unlock_of_the_same_key() {
    let mut net = ring(4);
    // Past the grace period that follows a join (no lock is granted in it).
    net.run_for(net.core(0).config().max_lease);
    let lease = Duration::from_secs(5);
    let now = net.now();
    let lock = net.with_core(1, |x| x.lock(now, b"door", lease)).unwrap();
    assert!(matches!(outcome(&mut net, 1, lock), Event::Locked { .. }));
    let now = net.now();
    let unlock = net.with_core(1, |x| x.unlock(now, b"door")).unwrap();
    assert_eq!(
        net.with_core(1, |x| x.lock(now, b"door", lease)),
        Err(Error::Busy)
    );
    // Another key is not held back.
    let other = net.with_core(1, |x| x.lock(now, b"gate", lease)).unwrap();
    net.run_for(Duration::from_secs(2));
    let events: StdVec<Event<128>> = net
        .take_events()
        .into_iter()
        .filter(|(_, i, _)| *i == 1)
        .map(|(_, _, e)| e)
        .collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Unlocked { id, .. } if *id == unlock)),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Locked { id, .. } if *id == other)),
        "{events:?}"
    );
    let now = net.now();
    let again = net.with_core(1, |x| x.lock(now, b"door", lease)).unwrap();
    assert!(matches!(outcome(&mut net, 1, again), Event::Locked { .. }));
}

/// A replica that holds another value than the owner (here planted in the owner's name)
/// offers it to a new owner that joins in front of the key. The new owner takes the key from
/// its previous owner only and keeps that value: the other is refused, each refusal makes the
/// offerer wait twice as long (at most 7 offers), and the owner's value then reaches the
/// replica too. (Seen: 2 offers, the second of the owner's value, acknowledged.)
#[test]
fn test_a_value_offered_against_the_owners_is_refused_and_offers_stay_few() {
    use std::rc::Rc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let mut net = ring(6);
    // The joiner, and a key that will be its own: between its predecessor and it.
    let joiner_addr = SocketAddr::from(([10, 0, 1, 1], 7000));
    let j = NodeAddr::bound(joiner_addr).id;
    let pred = (0..6)
        .map(|i| net.core(i).local().id)
        .min_by_key(|id| id.distance_to(j))
        .unwrap();
    let key = (0..10_000)
        .map(|n| std::format!("key {n}"))
        .find(|k| {
            let id = NodeId::from_name(k.as_bytes());
            pred.distance_to(id) > 0 && pred.distance_to(id) <= pred.distance_to(j)
        })
        .unwrap();
    let key = key.as_bytes();
    let now = net.now();
    let put = net.with_core(0, |x| x.put(now, key, b"real")).unwrap();
    assert_eq!(outcome(&mut net, 0, put), Event::PutDone { id: put });
    let owner = net.core(0).owner_of(key);
    let o = (0..6).find(|&i| net.core(i).local() == owner).unwrap();
    let r = (0..6)
        .find(|&i| i != o && net.core(i).stored(key).is_some())
        .unwrap();
    // The liar plants another value at the replica, in the owner's name and from its address.
    let mut buf = [0u8; 256];
    let n = Message {
        header: Header {
            message_id: 77,
            sender: owner,
        },
        body: Body::Replicate {
            key,
            value: b"other",
        },
    }
    .encode(&mut buf)
    .unwrap();
    let now = net.now();
    net.with_core(r, |x| x.handle_datagram(now, owner.addr, &buf[..n]));
    assert_eq!(net.core(r).stored(key), Some(&b"other"[..]));
    // Count the replica's offers to the joiner.
    let offers = Rc::new(AtomicU32::new(0));
    let seen = offers.clone();
    let from = net.addr(r);
    let key_vec = key.to_vec();
    let ji = net.add(joiner_addr, node_at(joiner_addr, 9));
    net.set_tap(std::boxed::Box::new(move |_, src, to, bytes| {
        if src == from
            && to == ji
            && matches!(Message::parse(bytes), Ok(Message { body: Body::Replicate { key, .. }, .. }) if key == &key_vec[..])
        {
            seen.fetch_add(1, Ordering::Relaxed);
        }
    }));
    let now = net.now();
    net.with_core(ji, |x| x.join(now, addr(0))).unwrap();
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.core(ji).owner_of(key).id, j);
    assert_eq!(
        net.core(ji).stored(key),
        Some(&b"real"[..]),
        "the liar's value taken"
    );
    let sent = offers.load(Ordering::Relaxed);
    assert!((1..=7).contains(&sent), "{sent} offers to the new owner");
    assert_eq!(
        net.core(r).stored(key),
        Some(&b"real"[..]),
        "the owner's value wins"
    );
}
