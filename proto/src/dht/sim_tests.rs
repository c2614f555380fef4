//! Tests of [`DhtNode`]: single-node behaviour on hand-made messages, and many nodes in one
//! process on the public virtual-time network ([`crate::sim::Network`], driven by the harness
//! in `sim_harness.rs`), with seeded message loss, delay and crashes.

use super::*;
use crate::dht::{Body, HEADER_LEN, LockToken, MAX_DATAGRAM_LEN, Message, NodeSet, Side, ring};
use core::net::SocketAddr;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::format;
use std::string::String;
use std::vec::Vec as StdVec;
use std::{boxed::Box, println, vec};

#[path = "sim_harness.rs"]
mod harness;
use harness::*;

/// A node for tests that hand it made-up messages: address validation off (a made-up sender
/// never answers a Challenge); the simulations keep it on.
fn node_with(id: u128, i: usize) -> Node {
    let mut c = config(NodeId::from_u128(id), i);
    c.validate_addresses = false;
    Node::new(c, TestRng(i as u64 * 7919 + 1))
}

/// Everything a node wants to send, as (destination, bytes).
fn drain(node: &mut Node, now: Instant) -> StdVec<(SocketAddr, StdVec<u8>)> {
    let mut out = StdVec::new();
    let mut buf = [0u8; Node::MAX_TRANSMIT_LEN];
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        out.push((t.destination, buf[..t.len].to_vec()));
    }
    out
}

fn events(node: &mut Node) -> StdVec<Ev> {
    core::iter::from_fn(|| node.poll_event()).collect()
}

// ------------------------------------------------------------------------------------------
// Ring membership.

#[test]
fn fifty_nodes_join_in_random_order_and_converge() {
    for seed in 0..seeds(3) {
        let mut sim = Sim::new(50, seed, 10);
        // Joins 20 ms apart overlap: several are in flight at once.
        let took = sim.build(ms(20));
        // Every node but the first saw its join complete (or, when every answer to it was
        // lost, failed and was brought in by the insertion point's announcements).
        let joined = sim
            .each_node()
            .filter(|n| {
                n.events
                    .iter()
                    .any(|(_, e)| matches!(e, Event::Joined { .. }))
            })
            .count();
        assert!(joined >= 45, "{joined}");
        assert!(sim.each_node().all(|n| n.node.in_ring()));
        println!(
            "seed {seed}: 50 nodes joined 20 ms apart (1 s), ring correct {took:?} (virtual) \
             after the last join, {:.1} s in all; {:?}",
            (sim.now - Instant::ZERO).as_secs_f64(),
            sim.net_stats()
        );
        // The owner of a key and its left neighbours agree that it is the owner.
        for k in 0..20 {
            let key = format!("key {k}");
            let truth = ring::owner_among(
                NodeId::from_name(key.as_bytes()),
                sim.each_node().map(|n| n.node.local().id),
            )
            .unwrap();
            let t = sim
                .each_node()
                .position(|n| n.node.local().id == truth)
                .unwrap();
            let owner = sim.nodes[t].node.local();
            assert_eq!(sim.nodes[t].node.owner_of(key.as_bytes()), owner);
            let lefts: StdVec<NodeAddr> = sim.nodes[t].node.leaf_set().left().collect();
            for l in lefts {
                let j = sim.index[&l.addr];
                assert_eq!(sim.nodes[j].node.owner_of(key.as_bytes()), owner);
            }
        }
    }
}

#[test]
fn first_join_makes_two_nodes_each_others_left_and_right() {
    let mut sim = Sim::new(2, 7, 0);
    sim.start(0);
    sim.start(1);
    sim.run_for(ms(100));
    let a = sim.node(0).local();
    let b = sim.node(1).local();
    assert_eq!(sim.node(0).leaf_set().nearest_left(), Some(b));
    assert_eq!(sim.node(0).leaf_set().nearest_right(), Some(b));
    assert_eq!(sim.node(1).leaf_set().nearest_left(), Some(a));
    assert_eq!(sim.node(1).leaf_set().nearest_right(), Some(a));
    assert!(sim.ring_errors().is_empty());
}

#[test]
fn wrap_around_at_the_end_of_the_id_space() {
    // Ids at both ends of the ring: the node after u128::MAX is 0's neighbour.
    let ids = [u128::MAX - 5, 3, u128::MAX / 2, u128::MAX, 0];
    let mut sim = Sim::with_config(ids.len(), 1, 0, |i, mut c| {
        c.local.id = NodeId::from_u128(ids[i]);
        c.bind_ids = false;
        c
    });
    for i in 0..ids.len() {
        sim.start(i);
        sim.run_for(ms(50));
    }
    sim.converge(Duration::from_secs(5));
    let max = sim.node(3).local();
    assert_eq!(sim.node(4).leaf_set().nearest_left(), Some(max));
    // A key just past u128::MAX belongs to id 0; a key at MAX - 1 to MAX.
    let zero = sim.node(4).local();
    assert_eq!(sim.node(4).leaf_set().owner(NodeId::from_u128(0)), zero);
    assert_eq!(
        sim.node(4)
            .leaf_set()
            .owner(NodeId::from_u128(u128::MAX - 1)),
        max
    );
    assert_eq!(
        sim.node(1)
            .leaf_set()
            .owner(NodeId::from_u128(u128::MAX - 1)),
        max
    );
}

#[test]
fn a_join_on_oneself_is_refused() {
    // Locally: the entry is the node's own address.
    let mut a = node_with(100, 0);
    a.join(Instant::ZERO, addr(0)).unwrap();
    assert_eq!(
        events(&mut a),
        [Event::JoinFailed {
            error: RequestError::Refused(ErrorCode::JoinSelf)
        }]
    );
    assert!(drain(&mut a, Instant::ZERO).is_empty());

    // Remotely: a second node with the same id joins through the first.
    let mut sim = Sim::with_config(3, 2, 0, |i, mut c| {
        c.local.id = NodeId::from_u128(if i == 2 { 100 } else { 100 + i as u128 * 1000 });
        c.bind_ids = false;
        c
    });
    sim.start(0);
    sim.start(1);
    sim.run_for(ms(100));
    let entry = sim.addr(1);
    sim.node(2).join(Instant::ZERO, entry).unwrap();
    sim.nodes[2].started = true;
    sim.flush(2);
    sim.run_for(ms(100));
    assert!(
        sim.nodes[2].events.iter().any(|(_, e)| *e
            == Event::JoinFailed {
                error: RequestError::Refused(ErrorCode::JoinSelf)
            }),
        "{:?}",
        sim.nodes[2].events
    );
    let twin_addr = sim.addr(2);
    assert!(!sim.node(0).leaf_set().nodes().any(|n| n.addr == twin_addr));
    assert!(!sim.node(1).leaf_set().nodes().any(|n| n.addr == twin_addr));

    // An InitConnect claiming the receiver's own id, or its own address, never crashes it.
    let me = sim.node(0).local();
    let twin = NodeAddr {
        id: me.id,
        addr: addr(9),
    };
    let now = sim.now;
    assert_eq!(
        sim.node(0)
            .handle_datagram(now, twin.addr, &msg(5, twin, Body::InitConnect)),
        Disposition::Handled
    );
    // The refusal (45 bytes) is longer than the InitConnect (43): the twin, whose address has
    // not proved it receives, is challenged first; once it echoes, it is refused.
    let out = drain(sim.node(0), now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(9));
    let challenge = Message::parse(&out[0].1).unwrap();
    assert_eq!(challenge.body, Body::Challenge);
    assert_eq!(out[0].1.len(), HEADER_LEN);
    let echo = msg(challenge.header.message_id, twin, Body::Echo);
    assert_eq!(
        sim.node(0).handle_datagram(now, twin.addr, &echo),
        Disposition::Handled
    );
    sim.node(0)
        .handle_datagram(now, twin.addr, &msg(6, twin, Body::InitConnect));
    let out = drain(sim.node(0), now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(9));
    assert_eq!(
        Message::parse(&out[0].1).unwrap().body,
        Body::Error {
            code: ErrorCode::JoinSelf
        }
    );
    let spoof = NodeAddr {
        id: NodeId::from_u128(77),
        addr: me.addr,
    };
    assert_eq!(
        sim.node(0)
            .handle_datagram(now, spoof.addr, &msg(6, spoof, Body::InitConnect)),
        Disposition::Dropped(DropReason::SelfTalk)
    );
    let inserter = sim.nodes[1].node.local();
    let ins = msg(7, inserter, Body::RequestInsertion { joining: twin });
    assert_eq!(
        sim.node(0).handle_datagram(now, inserter.addr, &ins),
        Disposition::Handled
    );
    assert_eq!(sim.node(0).stats().self_talk, 1);
}

#[test]
fn graceful_leaves_heal_the_ring() {
    let mut sim = Sim::new(20, 11, 10);
    sim.build(ms(10));
    let mut left = 0;
    for i in [3, 4, 12] {
        let now = sim.now;
        sim.node(i).leave(now);
        sim.flush(i);
        left += 1;
        assert!(sim.node(i).has_left());
        sim.run_for(ms(100));
    }
    // Healed by the Leave messages alone (stabilization only tidies what loss broke).
    let took = sim.converge(Duration::from_secs(10));
    println!("{left} leaves: ring correct after {took:?}");
    assert_eq!(sim.members().len(), 17);
}

#[test]
fn crashes_heal_when_neighbours_are_told() {
    let mut sim = Sim::new(20, 12, 10);
    sim.build(ms(10));
    for i in [5, 6, 17] {
        sim.crash(i);
        sim.tell_down(i);
    }
    let took = sim.converge(Duration::from_secs(10));
    println!("3 crashes, reported: ring correct after {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn crashes_heal_by_the_dhts_own_timeouts() {
    for seed in 0..seeds(3) {
        println!("crash seed {seed}");
        let mut sim = Sim::new(20, 20 + seed, 10);
        sim.build(ms(10));
        let a = sim.rng.below(20) as usize;
        let b = (a + 1 + sim.rng.below(19) as usize) % 20;
        sim.crash(a);
        sim.crash(b);
        let took = sim.converge(Duration::from_secs(20));
        let downs = sim
            .each_node()
            .map(|n| {
                n.events
                    .iter()
                    .filter(|(_, e)| matches!(e, Event::NeighbourDown { .. }))
                    .count()
            })
            .sum::<usize>();
        println!(
            "seed {seed}: 2 crashes, unreported: ring correct after {took:?}, {downs} NeighbourDown events"
        );
    }
}

#[test]
fn crashed_nodes_restart_under_the_same_or_a_new_id() {
    for seed in 0..seeds(3) {
        println!("restart seed {seed}");
        // A new id at the same address needs ids that are not bound to addresses.
        let mut sim = Sim::with_config(16, 13 + seed, 10, |_, c| c.with_bind_ids(false));
        sim.build(ms(10));
        // Restarted before anyone noticed the crash: same id and address, empty state.
        let same = sim.nodes[3].node.local().id;
        sim.crash(3);
        sim.run_for(ms(100));
        sim.restart(3, same);
        // A new id at a member's address: the old id must disappear everywhere.
        let old = sim.nodes[9].node.local().id;
        sim.crash(9);
        sim.run_for(ms(100));
        sim.restart(
            9,
            NodeId::from_name(format!("new identity {seed}").as_bytes()),
        );
        let took = sim.converge(Duration::from_secs(20));
        for n in sim.each_node() {
            assert!(!n.node.leaf_set().nodes().any(|a| a.id == old));
        }
        println!("seed {seed}: two restarts, ring correct after {took:?}");
    }
}

// ------------------------------------------------------------------------------------------
// Keys and replication.

#[test]
fn get_and_put_route_to_the_owner() {
    let mut sim = Sim::new(30, 3, 0);
    sim.build(ms(10));
    let mut ids = StdVec::new();
    for k in 0..20 {
        let i = sim.rng.below(30) as usize;
        let now = sim.now;
        let key = format!("key {k}");
        let id = sim
            .node(i)
            .put(now, key.as_bytes(), format!("value {k}").as_bytes())
            .unwrap();
        sim.flush(i);
        ids.push((i, id, key));
    }
    sim.run_for(ms(500));
    for (i, id, key) in &ids {
        let (_, e) = sim.outcome(*i, *id).expect("put answered");
        assert_eq!(e, Event::PutDone { id: *id });
        // Stored at the owner and its two successors, nowhere else.
        let holders: StdVec<usize> = (0..30)
            .filter(|&j| sim.nodes[j].node.stored(key.as_bytes()).is_some())
            .collect();
        assert_eq!(holders.len(), 3, "{key}: {holders:?}");
    }
    for k in 0..20 {
        let i = sim.rng.below(30) as usize;
        let now = sim.now;
        let id = sim.node(i).get(now, format!("key {k}").as_bytes()).unwrap();
        sim.flush(i);
        sim.run_for(ms(100));
        let (_, e) = sim.outcome(i, id).expect("get answered");
        let want = format!("value {k}");
        assert_eq!(
            e,
            Event::GetDone {
                id,
                value: Some(heapless::Vec::from_slice(want.as_bytes()).unwrap())
            }
        );
    }
    let now = sim.now;
    let id = sim.node(0).get(now, b"never written").unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert_eq!(
        sim.outcome(0, id).unwrap().1,
        Event::GetDone { id, value: None }
    );
    let forwarded: u64 = sim.each_node().map(|n| n.node.stats().forwarded).sum();
    assert!(forwarded > 0, "some requests needed more than one hop");
}

/// One round of the durability test: puts under loss, one crash at a random moment, then every
/// key read back. Returns (acknowledged puts, messages).
fn durability_round(seed: u64) -> (usize, u64) {
    let n = 12;
    let mut sim = Sim::new(n, 1000 + seed, 20);
    sim.build(ms(10));
    // Half the seeds crash a random node at a random moment; the other half crash the owner of
    // a key the instant its put is acknowledged, when an early acknowledgement would lose it.
    let mut victim = sim.rng.below(n as u64) as usize;
    let crash_at = sim.now + ms(100 + sim.rng.below(1500));
    let targeted = seed % 2 == 1;
    let report = seed % 4 < 2;
    // Keys 0..15 are written before the crash, 15..30 after it: a key written again after the
    // crash could hide the loss of its acknowledged value.
    let keys = 15;
    let mut history: StdVec<StdVec<(String, bool)>> = vec![StdVec::new(); 2 * keys];
    let mut outstanding: StdVec<Option<(usize, RequestId)>> = vec![None; 2 * keys];
    let mut crashed = false;
    let end = sim.now + ms(2500);
    let mut next_put = 0;
    while sim.now < end {
        if !crashed && !targeted && sim.now >= crash_at {
            sim.crash(victim);
            if report {
                sim.tell_down(victim);
            }
            crashed = true;
        }
        if !crashed && targeted && sim.crash_when_acked.is_none() && !sim.is_alive(victim) {
            crashed = true;
            if report {
                sim.tell_down(victim);
            }
        }
        let k = sim.rng.below(keys as u64) as usize + if crashed { keys } else { 0 };
        if outstanding[k].is_none() {
            let i = sim.random_live();
            let value = format!("v{next_put}");
            next_put += 1;
            let now = sim.now;
            let key = format!("k{k}");
            if let Ok(id) = sim.node(i).put(now, key.as_bytes(), value.as_bytes()) {
                let owner = sim.true_owner(key.as_bytes());
                if targeted
                    && !crashed
                    && sim.now >= crash_at
                    && owner != i
                    && sim.crash_when_acked.is_none()
                {
                    victim = owner;
                    sim.crash_when_acked = Some((i, id, owner));
                }
                sim.flush(i);
                history[k].push((value, false));
                outstanding[k] = Some((i, id));
            }
        }
        sim.run_for(ms(5));
        for k in 0..2 * keys {
            if let Some((i, id)) = outstanding[k]
                && let Some((_, e)) = sim.outcome(i, id)
            {
                if e == (Event::PutDone { id }) {
                    history[k].last_mut().unwrap().1 = true;
                }
                outstanding[k] = None;
            }
        }
    }
    // Let the ring heal and re-replicate.
    sim.run_for(Duration::from_secs(3));
    sim.converge(Duration::from_secs(20));
    sim.run_for(Duration::from_secs(1));
    let mut acked = 0;
    for (k, puts) in history.iter().enumerate() {
        let Some(last_acked) = puts.iter().rposition(|(_, a)| *a) else {
            continue;
        };
        acked += puts.iter().filter(|(_, a)| *a).count();
        let allowed: StdVec<&str> = puts[last_acked..].iter().map(|(v, _)| v.as_str()).collect();
        let key = format!("k{k}");
        let got = sim.read_back(key.as_bytes(), 10, ms(1000));
        let got = got.expect("a get eventually succeeds");
        let got = got
            .as_deref()
            .map(|v| String::from_utf8(v.to_vec()).unwrap());
        assert!(
            got.as_deref().is_some_and(|v| allowed.contains(&v)),
            "seed {seed}: {key} = {got:?}, allowed {allowed:?} (victim {victim}, reported {report})"
        );
    }
    (acked, sim.net_stats().sent)
}

#[test]
fn no_acknowledged_put_is_lost_after_a_single_crash() {
    let mut total = 0;
    let mut messages = 0;
    let seeds = seeds(16);
    for seed in 0..seeds {
        let (acked, sent) = durability_round(seed);
        total += acked;
        messages += sent;
    }
    println!("{seeds} seeds: {total} acknowledged puts survived a crash; {messages} messages");
    assert!(total > seeds as usize * 20, "{total}");
}

#[test]
fn a_full_store_answers_full() {
    type Small = DhtNode<TestRng, 2, 2, 8, 8, 8>;
    let mut a = Small::new(config(NodeId::from_u128(1), 0), TestRng(1));
    let now = Instant::ZERO;
    let mut ids = StdVec::new();
    for k in 0..3 {
        ids.push(a.put(now, format!("k{k}").as_bytes(), b"v").unwrap());
    }
    let ev: StdVec<Event<8>> = core::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(ev[0], Event::PutDone { id: ids[0] });
    assert_eq!(ev[1], Event::PutDone { id: ids[1] });
    assert_eq!(
        ev[2],
        Event::Failed {
            id: ids[2],
            op: Op::Put,
            error: RequestError::Refused(ErrorCode::Full)
        }
    );
    // Over-long keys and values are refused before they are sent.
    assert_eq!(a.put(now, &[0; 9], b"v"), Err(Error::TooLarge));
    assert_eq!(a.put(now, b"k", &[0; 9]), Err(Error::TooLarge));
    // From the network: Full, not a crash.
    let peer = NodeAddr {
        id: NodeId::from_u128(2),
        addr: addr(1),
    };
    a.handle_datagram(
        now,
        peer.addr,
        &msg(
            9,
            peer,
            Body::Put {
                key: b"k9",
                value: b"v",
            },
        ),
    );
    a.handle_datagram(
        now,
        peer.addr,
        &msg(
            10,
            peer,
            Body::Put {
                key: b"a much longer key",
                value: b"v",
            },
        ),
    );
    let mut buf = [0u8; Small::MAX_TRANSMIT_LEN];
    for id in [9, 10] {
        let t = a.poll_transmit(now, &mut buf).unwrap();
        let m = Message::parse(&buf[..t.len]).unwrap();
        assert_eq!(m.header.message_id, id);
        assert_eq!(
            m.body,
            Body::Error {
                code: ErrorCode::Full
            }
        );
    }
    assert_eq!(a.stats().full, 3);
}

#[test]
fn a_write_taken_over_from_a_live_owner_is_not_acknowledged() {
    let mut sim = Sim::new(5, 77, 0);
    sim.build(ms(10));
    // A key, its owner, and the owner's successor, which is told (wrongly) that the owner died
    // while the owner is cut off for half a second.
    let key = b"contested";
    let owner = sim.true_owner(key);
    let next = sim.index[&sim.nodes[owner]
        .node
        .leaf_set()
        .nearest_right()
        .unwrap()
        .addr];
    let now = sim.now;
    // Paused, not restarted: it keeps its state and comes back with it.
    sim.crash(owner);
    let gone = sim.addr(owner);
    sim.node(next).handle_peer_down(now, gone);
    assert_eq!(sim.node(next).owner_of(key), sim.nodes[next].node.local());
    // A put reaches the successor, which stores and replicates it...
    let client = NodeAddr {
        id: NodeId::from_u128(12345),
        addr: addr(99),
    };
    let put = msg(
        41,
        client,
        Body::Put {
            key,
            value: b"split",
        },
    );
    // (A client that proved its address: an unproved one is challenged first.)
    sim.node(next).handle_validated(client.addr);
    sim.node(next).handle_datagram(now, client.addr, &put);
    sim.flush(next);
    sim.run_for(ms(500));
    assert!(
        sim.outside.is_empty(),
        "not acknowledged while the owner is on probation"
    );
    // ...but the owner was alive: it answers the probes, is taken back, and its copy (none
    // here, in general an older one) is the authority. The put is refused, not acknowledged.
    sim.resume(owner);
    sim.run_for(Duration::from_secs(3));
    assert_eq!(sim.node(next).owner_of(key), sim.nodes[owner].node.local());
    let answers: StdVec<Body<'_>> = sim
        .outside
        .iter()
        .map(|(_, _, b)| Message::parse(b).unwrap())
        .filter(|m| m.header.message_id == 41)
        .map(|m| m.body)
        .collect();
    assert_eq!(
        answers,
        [Body::Error {
            code: ErrorCode::NotOwner
        }]
    );
}

// ------------------------------------------------------------------------------------------
// Locks.

#[test]
fn lock_semantics_at_the_owner() {
    let mut a = node_with(1, 0);
    let x = NodeAddr {
        id: NodeId::from_u128(2),
        addr: addr(1),
    };
    let y = NodeAddr {
        id: NodeId::from_u128(3),
        addr: addr(2),
    };
    let mut t = Instant::from_millis(1);
    // Each request under a message id of its own, as clients send them (a copy under the same
    // id is taken for a resend of the same request).
    let next_id = core::cell::Cell::new(1);
    let ask = |a: &mut Node, now: Instant, from: NodeAddr, body: Body<'_>| -> StdVec<u8> {
        next_id.set(next_id.get() + 1);
        assert_eq!(
            a.handle_datagram(now, from.addr, &msg(next_id.get(), from, body)),
            Disposition::Handled
        );
        let out = drain(a, now);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, from.addr);
        out[0].1.clone()
    };
    fn body(bytes: &[u8]) -> Body<'_> {
        Message::parse(bytes).unwrap().body
    }
    // In this test each node's token is its id's bytes (tokens are opaque to the owner).
    let tok = |n: NodeAddr| LockToken(n.id.0);
    let lock = |holder: NodeAddr, lease_ms| Body::Lock {
        key: b"k",
        token: tok(holder),
        lease_ms,
    };
    let r = ask(&mut a, t, x, lock(x, 500));
    assert_eq!(
        body(&r),
        Body::Locked {
            key: b"k",
            token: tok(x),
            lease_ms: 500
        }
    );
    // A competitor is denied and told only for how long; nobody waits, so no deadlock.
    let r = ask(&mut a, t, y, lock(y, 500));
    assert_eq!(
        body(&r),
        Body::LockDenied {
            key: b"k",
            remaining_ms: 500
        }
    );
    // Only the holder may unlock.
    let r = ask(
        &mut a,
        t,
        y,
        Body::Unlock {
            key: b"k",
            token: tok(y),
        },
    );
    assert_eq!(
        body(&r),
        Body::Error {
            code: ErrorCode::NotHolder
        }
    );
    // Re-locking renews the lease.
    t = t + ms(400);
    let r = ask(&mut a, t, x, lock(x, 500));
    assert_eq!(
        body(&r),
        Body::Locked {
            key: b"k",
            token: tok(x),
            lease_ms: 500
        }
    );
    assert_eq!(a.lock_holder(t + ms(450), b"k"), Some(tok(x)));
    // Leases longer than max_lease are shortened.
    let r = ask(&mut a, t, x, lock(x, 60_000));
    assert_eq!(
        body(&r),
        Body::Locked {
            key: b"k",
            token: tok(x),
            lease_ms: 2000
        }
    );
    // A lease that ran out frees the key: the holder crashed.
    t = t + ms(2001);
    assert_eq!(a.lock_holder(t, b"k"), None);
    let r = ask(&mut a, t, y, lock(y, 500));
    assert_eq!(
        body(&r),
        Body::Locked {
            key: b"k",
            token: tok(y),
            lease_ms: 500
        }
    );
    let r = ask(
        &mut a,
        t,
        x,
        Body::Unlock {
            key: b"k",
            token: tok(x),
        },
    );
    assert_eq!(
        body(&r),
        Body::Error {
            code: ErrorCode::NotHolder
        }
    );
    let r = ask(
        &mut a,
        t,
        y,
        Body::Unlock {
            key: b"k",
            token: tok(y),
        },
    );
    assert_eq!(body(&r), Body::Unlocked { key: b"k" });
    // Local API on the owner itself.
    let id = a.lock(t, b"k2", ms(300)).unwrap();
    assert_eq!(
        events(&mut a),
        [Event::Locked {
            id,
            until: t + ms(300)
        }]
    );
    let id = a.unlock(t, b"k2").unwrap();
    assert_eq!(events(&mut a), [Event::Unlocked { id }]);
    let id = a.unlock(t, b"k2").unwrap();
    assert_eq!(
        events(&mut a),
        [Event::Failed {
            id,
            op: Op::Unlock,
            error: RequestError::Refused(ErrorCode::NotHolder)
        }]
    );
}

#[test]
fn a_new_owner_grants_no_lock_during_its_grace_period() {
    let mut sim = Sim::new(6, 40, 0);
    sim.build(ms(10));
    sim.run_for(ms(2100)); // every join's grace period is over
    // Node 0 locks a key; its owner crashes; the successor takes over the key.
    let key = b"guarded";
    let owner = sim.node(0).owner_of(key);
    let owner_i = sim.index[&owner.addr];
    let locker = (owner_i + 1) % 6;
    let other = (owner_i + 2) % 6;
    let now = sim.now;
    let id = sim.node(locker).lock(now, key, ms(2000)).unwrap();
    sim.flush(locker);
    sim.run_for(ms(50));
    let Some((_, Event::Locked { until, .. })) = sim.outcome(locker, id) else {
        panic!("not locked: {:?}", sim.outcome(locker, id));
    };
    sim.crash(owner_i);
    sim.tell_down(owner_i);
    let now = sim.now;
    let id = sim.node(other).lock(now, key, ms(2000)).unwrap();
    sim.flush(other);
    sim.run_for(ms(100));
    match sim.outcome(other, id) {
        Some((_, Event::LockDenied { .. })) => {}
        e => panic!("the new owner granted a lock another node may hold: {e:?}"),
    }
    // After the grace period the key is free again.
    sim.run_until(until + ms(100));
    let now = sim.now;
    let id = sim.node(other).lock(now, key, ms(2000)).unwrap();
    sim.flush(other);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(other, id),
        Some((_, Event::Locked { .. }))
    ));
}

#[test]
fn a_join_answer_after_join_failed_starts_the_grace_period() {
    // Node 5 takes the id of the key, so that joining makes it the key's owner.
    let key = b"late answer";
    // (Address validation off: the held answers are the ring's, not Challenges.)
    let mut sim = Sim::with_config(6, 41, 0, |i, mut c| {
        if i == 5 {
            c.local.id = NodeId::from_name(key);
        }
        c.bind_ids = false;
        c.validate_addresses = false;
        c
    });
    for i in 0..5 {
        sim.start(i);
        sim.run_for(ms(50));
    }
    sim.converge(Duration::from_secs(5));
    sim.run_for(ms(2100)); // every join's grace period is over
    let owner_addr = sim.node(0).owner_of(key).addr;
    let owner = sim.index[&owner_addr];
    let locker = (owner + 1) % 5;
    let now = sim.now;
    let id = sim.node(locker).lock(now, key, ms(2000)).unwrap();
    sim.flush(locker);
    sim.run_for(ms(50));
    let Some((_, Event::Locked { until, .. })) = sim.outcome(locker, id) else {
        panic!("not locked: {:?}", sim.outcome(locker, id));
    };
    // Everything sent to the joiner is late: its join fails first, then the answers arrive.
    sim.hold = Some(5);
    assert!(sim.start(5));
    sim.run_for(ms(1000));
    assert!(
        sim.nodes[5]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::JoinFailed { .. })),
        "{:?}",
        sim.nodes[5].events
    );
    assert!(!sim.node(5).in_ring());
    sim.release();
    sim.run_for(ms(20));
    assert!(sim.node(5).in_ring(), "the late answer made it a member");
    assert!(matches!(
        sim.nodes[5].events.last(),
        Some((_, Event::Joined { .. }))
    ));
    let joiner = sim.node(5).local();
    assert_eq!(sim.node(5).owner_of(key), joiner);
    // The old owner still holds the lock for the locker, whose lease is live ...
    let now = sim.now;
    assert!(now < until);
    let holder = sim.nodes[locker].node.lock_token(key);
    assert_eq!(sim.node(owner).lock_holder(now, key), Some(holder));
    // ... so the new owner must not grant it: it is in its grace period.
    let id = sim.node(5).lock(now, key, ms(2000)).unwrap();
    sim.flush(5);
    sim.run_for(ms(20));
    match sim.outcome(5, id) {
        Some((_, Event::LockDenied { .. })) => {}
        e => panic!("a second live lease on the key (double grant): {e:?}"),
    }
    let now = sim.now;
    assert_eq!(sim.node(5).lock_holder(now, key), None);
}

#[test]
fn huge_durations_in_the_config_do_not_panic() {
    let mut c = config(NodeId::from_u128(1), 0);
    c.validate_addresses = false;
    c.stabilize_interval = Duration::MAX;
    c.request_timeout = Duration::MAX;
    c.max_lease = Duration::MAX;
    c.tombstone = Duration::MAX;
    c.max_failures = u8::MAX;
    let mut a = Node::new(c, TestRng(1));
    let b = NodeAddr {
        id: NodeId::from_u128(2),
        addr: addr(1),
    };
    let t = Instant::from_millis(1);
    a.handle_datagram(t, b.addr, &msg(9, b, Body::InitConnect));
    assert_eq!(a.leaf_set().nearest_left(), Some(b));
    drain(&mut a, t);
    // Declaring the member down buries it with a probation of `stabilize_interval ×
    // (max_failures + 1)`: this multiplication overflowed.
    a.handle_peer_down(t, b.addr);
    assert!(a.leaf_set().is_empty());
    a.handle_timeout(t);
    assert!(a.poll_timeout().is_some());
    drain(&mut a, t);
    // The tombstone holds: gossip does not bring it back.
    let c2 = NodeAddr {
        id: NodeId::from_u128(3),
        addr: addr(2),
    };
    let list = [b];
    let join = msg(
        4,
        c2,
        Body::Join {
            side: Side::Left,
            nodes: NodeSet::Slice(&list),
        },
    );
    a.handle_datagram(t, c2.addr, &join);
    assert!(a.leaf_set().get(b.id).is_none());
    let id = a.lock(t, b"k", Duration::MAX).unwrap();
    assert!(matches!(events(&mut a).last(), Some(Event::Locked { id: i, .. }) if *i == id));
}

#[derive(Clone, Copy, Debug)]
enum Locker {
    Idle {
        next: Instant,
    },
    Asking {
        id: RequestId,
        key: usize,
    },
    Holding {
        key: usize,
        start: Instant,
        until: Instant,
        release: Instant,
    },
    Releasing {
        id: RequestId,
    },
}

/// Lockers contend for two keys under loss; some crash while holding. Checks that no two
/// holders overlap, and that everyone gets every request answered and the lock eventually.
fn lock_round(seed: u64, crashes: bool) -> (usize, usize, usize) {
    let n = 10;
    let mut sim = Sim::new(n, 500 + seed, 20);
    sim.build(ms(10));
    sim.run_for(ms(2100));
    let lockers: StdVec<usize> = (0..6).collect();
    let mut state: StdVec<Locker> = lockers
        .iter()
        .map(|_| Locker::Idle { next: sim.now })
        .collect();
    let mut intervals: BTreeMap<usize, StdVec<(Instant, Instant, usize)>> = BTreeMap::new();
    let mut asked = 0;
    let mut acquired = vec![0usize; lockers.len()];
    let mut crashed = vec![false; lockers.len()];
    let end = sim.now + Duration::from_secs(12);
    let lease = ms(600);
    // The owner of "lock 0" crashes once too: its successor takes the key over.
    let owner_crash_at = sim.now + ms(2000 + sim.rng.below(6000));
    let mut owner_crashed = false;
    while sim.now < end {
        sim.run_for(ms(2));
        let now = sim.now;
        if crashes && !owner_crashed && now >= owner_crash_at {
            owner_crashed = true;
            let o = sim.true_owner(b"lock 0");
            sim.crash(o);
            if seed.is_multiple_of(2) {
                sim.tell_down(o);
            }
            if let Some(l) = lockers.iter().position(|&i| i == o) {
                crashed[l] = true;
                if let Locker::Holding {
                    key, start, until, ..
                } = state[l]
                {
                    intervals.entry(key).or_default().push((start, until, l));
                }
            }
        }
        for (l, &i) in lockers.iter().enumerate() {
            if crashed[l] {
                continue;
            }
            state[l] = match state[l] {
                Locker::Idle { next } if now >= next => {
                    let key = sim.rng.below(2) as usize;
                    asked += 1;
                    let id = sim
                        .node(i)
                        .lock(now, format!("lock {key}").as_bytes(), lease)
                        .unwrap();
                    sim.flush(i);
                    Locker::Asking { id, key }
                }
                Locker::Asking { id, key } => match sim.outcome(i, id) {
                    None => state[l],
                    Some((at, Event::Locked { until, .. })) => {
                        acquired[l] += 1;
                        let hold = ms(20 + sim.rng.below(300));
                        Locker::Holding {
                            key,
                            start: at,
                            until,
                            release: (at + hold).min(until - ms(50)),
                        }
                    }
                    Some(_) => Locker::Idle {
                        next: now + ms(10 + sim.rng.below(60)),
                    },
                },
                Locker::Holding {
                    key,
                    start,
                    until,
                    release,
                } => {
                    if crashes && crashed.iter().filter(|c| **c).count() < 2 && sim.rng.chance(2) {
                        // Crashes while holding: the lease must free the key.
                        sim.crash(i);
                        crashed[l] = true;
                        intervals.entry(key).or_default().push((start, until, l));
                        continue;
                    }
                    if now >= release {
                        intervals
                            .entry(key)
                            .or_default()
                            .push((start, now.min(until), l));
                        let id = sim
                            .node(i)
                            .unlock(now, format!("lock {key}").as_bytes())
                            .unwrap();
                        sim.flush(i);
                        Locker::Releasing { id }
                    } else {
                        state[l]
                    }
                }
                Locker::Releasing { id } => match sim.outcome(i, id) {
                    None => state[l],
                    Some(_) => Locker::Idle {
                        next: now + ms(10 + sim.rng.below(60)),
                    },
                },
                s => s,
            };
        }
    }
    // Mutual exclusion: per key, no two holders at any instant.
    for (key, iv) in intervals.iter_mut() {
        iv.sort();
        for w in iv.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "seed {seed}: key {key}: locker {} held [{}, {}] and locker {} from {}",
                w[0].2,
                w[0].0,
                w[0].1,
                w[1].2,
                w[1].0
            );
        }
    }
    // Liveness: every request of a live locker was answered in time; each got the lock.
    sim.run_for(Duration::from_secs(2));
    for (l, &i) in lockers.iter().enumerate() {
        if crashed[l] {
            continue;
        }
        if let Locker::Asking { id, .. } | Locker::Releasing { id } = state[l] {
            assert!(
                sim.outcome(i, id).is_some(),
                "seed {seed}: locker {l} never answered"
            );
        }
        assert!(acquired[l] > 0, "seed {seed}: locker {l} never got a lock");
    }
    let crashes = crashed.iter().filter(|c| **c).count();
    (
        asked,
        intervals.values().map(|v| v.len()).sum::<usize>(),
        crashes,
    )
}

#[test]
fn locks_are_mutually_exclusive_under_contention_and_holder_crashes() {
    let mut asked = 0;
    let mut held = 0;
    let mut crashed = 0;
    let seeds = seeds(3);
    for seed in 0..seeds {
        for crashes in [false, true] {
            let (a, h, c) = lock_round(seed, crashes);
            asked += a;
            held += h;
            crashed += c;
        }
    }
    println!(
        "locks: {seeds} seeds x 2 runs x 6 lockers x 2 keys x 12 s: {asked} lock requests, {held} holds, \
         {crashed} holders crashed holding, no overlap"
    );
    assert!(crashed > 0);
}

// ------------------------------------------------------------------------------------------
// Matching, timeouts, hostile input.

/// Two nodes in a ring and a key owned by the second; the first's Get to it, captured.
fn pair_with_get() -> (Node, Node, RequestId, u64) {
    pair_with_get_cfg(|c| c)
}

fn pair_with_get_cfg(tweak: fn(Config) -> Config) -> (Node, Node, RequestId, u64) {
    // b owns half the ring: (a, b]. Messages are handed over by hand, newest first: address
    // validation is off (it is tested in the simulations).
    let manual = |mut c: Config| {
        c.validate_addresses = false;
        c
    };
    let mut a = Node::new(
        tweak(manual(config(NodeId::from_u128(u128::MAX / 4), 0))),
        TestRng(1),
    );
    let mut b = Node::new(
        manual(config(NodeId::from_u128(u128::MAX / 4 * 3), 1)),
        TestRng(2),
    );
    let now = Instant::ZERO;
    a.join(now, addr(1)).unwrap();
    let mut wire: StdVec<(SocketAddr, StdVec<u8>)> = drain(&mut a, now);
    while let Some((to, bytes)) = wire.pop() {
        let (target, from) = if to == addr(0) {
            (&mut a, addr(1))
        } else {
            (&mut b, addr(0))
        };
        target.handle_datagram(now, from, &bytes);
        wire.extend(drain(target, now));
    }
    assert!(a.in_ring() && b.in_ring());
    events(&mut a);
    // A key owned by b: its id lies in (a, b].
    let key = (0..)
        .map(|k| format!("key {k}"))
        .find(|k| a.owner_of(k.as_bytes()) == b.local())
        .unwrap();
    let id = a.get(now, key.as_bytes()).unwrap();
    let out = drain(&mut a, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(1));
    let m = Message::parse(&out[0].1).unwrap();
    assert!(matches!(m.body, Body::Get { .. }));
    (a, b, id, m.header.message_id)
}

#[test]
fn responses_from_the_wrong_sender_or_with_unknown_ids_are_dropped() {
    let (mut a, b, id, message_id) = pair_with_get();
    let now = Instant::from_millis(1);
    let key_of = |bytes: &StdVec<u8>| match Message::parse(bytes).unwrap().body {
        Body::Get { key } => key.to_vec(),
        _ => unreachable!(),
    };
    let _ = key_of;
    let owner = b.local();
    let stranger = NodeAddr {
        id: NodeId::from_u128(99),
        addr: addr(7),
    };
    let impostor = NodeAddr {
        id: NodeId::from_u128(98),
        addr: owner.addr,
    };
    let key = (0..)
        .map(|k| format!("key {k}"))
        .find(|k| a.owner_of(k.as_bytes()) == owner)
        .unwrap();
    let value = Body::Value {
        key: key.as_bytes(),
        value: Some(b"forged"),
    };
    assert_eq!(
        a.handle_datagram(now, stranger.addr, &msg(message_id, stranger, value)),
        Disposition::Dropped(DropReason::WrongSender)
    );
    assert_eq!(
        a.handle_datagram(now, impostor.addr, &msg(message_id, impostor, value)),
        Disposition::Dropped(DropReason::WrongSender)
    );
    assert_eq!(
        a.handle_datagram(now, owner.addr, &msg(message_id ^ 1, owner, value)),
        Disposition::Dropped(DropReason::Unmatched)
    );
    // The right id and sender but the wrong kind or key.
    assert_eq!(
        a.handle_datagram(
            now,
            owner.addr,
            &msg(
                message_id,
                owner,
                Body::PutAck {
                    key: key.as_bytes()
                }
            )
        ),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert_eq!(
        a.handle_datagram(
            now,
            owner.addr,
            &msg(
                message_id,
                owner,
                Body::Value {
                    key: b"other",
                    value: None
                }
            )
        ),
        Disposition::Dropped(DropReason::Unmatched)
    );
    let s = *a.stats();
    assert_eq!((s.wrong_sender, s.unmatched), (2, 3));
    assert!(a.poll_event().is_none(), "nothing forged got through");
    // The genuine answer still completes the request.
    let real = Body::Value {
        key: key.as_bytes(),
        value: Some(b"real"),
    };
    assert_eq!(
        a.handle_datagram(now, owner.addr, &msg(message_id, owner, real)),
        Disposition::Handled
    );
    assert_eq!(
        events(&mut a),
        [Event::GetDone {
            id,
            value: Some(heapless::Vec::from_slice(b"real").unwrap())
        }]
    );
    // A replay of it is unmatched now.
    assert_eq!(
        a.handle_datagram(now, owner.addr, &msg(message_id, owner, real)),
        Disposition::Dropped(DropReason::Unmatched)
    );
}

#[test]
fn requests_to_a_dead_owner_fail_loudly_and_the_owner_is_declared_down() {
    let (mut a, b, id, _) = pair_with_get();
    let mut now = Instant::ZERO;
    let mut downs = 0;
    let mut outcome = None;
    // b never answers again.
    for _ in 0..100 {
        now = now + ms(50);
        a.handle_timeout(now);
        drain(&mut a, now);
        for e in events(&mut a) {
            match e {
                Event::NeighbourDown { node } => {
                    assert_eq!(node, b.local());
                    downs += 1;
                }
                e if event_id(&e) == Some(id) => outcome = Some(e),
                e => panic!("{e:?}"),
            }
        }
    }
    assert_eq!(downs, 1, "b declared down by the DHT's own timeouts");
    assert!(a.leaf_set().is_empty());
    // Once b is declared down a owns every key: the get, sent again, is answered by a itself.
    assert_eq!(outcome, Some(Event::GetDone { id, value: None }));
    assert!(a.stats().timeouts >= 3);

    // With b merely unreachable and a's attempts exhausted first, the get fails loudly.
    let (mut a, _b, id, _) = pair_with_get_cfg(|mut c| {
        c.max_attempts = 2;
        c.max_failures = 10;
        c
    });
    let mut now = Instant::ZERO;
    let mut failed = None;
    for _ in 0..40 {
        now = now + ms(50);
        a.handle_timeout(now);
        drain(&mut a, now);
        for e in events(&mut a) {
            if event_id(&e) == Some(id) {
                failed = Some(e);
            }
        }
    }
    assert_eq!(
        failed,
        Some(Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Timeout
        }),
        "never silently lost"
    );
}

#[test]
fn leaving_fails_outstanding_requests_and_ignores_later_messages() {
    let (mut a, b, id, message_id) = pair_with_get();
    let now = Instant::from_millis(5);
    a.leave(now);
    let out = drain(&mut a, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, b.local().addr);
    assert!(matches!(
        Message::parse(&out[0].1).unwrap().body,
        Body::Leave { .. }
    ));
    assert_eq!(
        events(&mut a),
        [Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Departed
        }]
    );
    let value = Body::Value {
        key: b"x",
        value: None,
    };
    assert_eq!(
        a.handle_datagram(now, b.local().addr, &msg(message_id, b.local(), value)),
        Disposition::Dropped(DropReason::Departed)
    );
    let id = a.get(now, b"k").unwrap();
    assert_eq!(
        events(&mut a),
        [Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Departed
        }]
    );
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn transmits_fit_their_bound_and_a_datagram_when_small() {
    const {
        assert!(Node::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN);
        assert!(DhtNode::<TestRng>::MAX_TRANSMIT_LEN <= MAX_DATAGRAM_LEN);
    }
    // A too-small buffer: counted, never a panic.
    let mut a = node_with(1, 0);
    let peer = NodeAddr {
        id: NodeId::from_u128(2),
        addr: addr(1),
    };
    a.handle_datagram(
        Instant::ZERO,
        peer.addr,
        &msg(1, peer, Body::Get { key: b"k" }),
    );
    let mut small = [0u8; 10];
    assert_eq!(a.poll_transmit(Instant::ZERO, &mut small), None);
    assert_eq!(a.stats().encode_failed, 1);
}

fn arb_addr() -> impl Strategy<Value = NodeAddr> {
    (any::<u128>(), 0u8..4, 1u16..4).prop_map(|(id, host, port)| NodeAddr {
        id: NodeId::from_u128(id % 8 * (u128::MAX / 8)),
        addr: SocketAddr::from(([10, 0, 0, host], port)),
    })
}

/// The parts of a random message: id, sender, kind, key, value, number, node list, node, code.
type MessageParts = (
    u64,
    NodeAddr,
    u8,
    StdVec<u8>,
    StdVec<u8>,
    u32,
    StdVec<NodeAddr>,
    NodeAddr,
    u16,
);

fn arb_message() -> impl Strategy<Value = MessageParts> {
    (
        0u64..4,
        arb_addr(),
        1u8..16,
        proptest::collection::vec(0u8..3, 0..20),
        proptest::collection::vec(any::<u8>(), 0..40),
        any::<u32>(),
        proptest::collection::vec(arb_addr(), 0..6),
        arb_addr(),
        0u16..8,
    )
}

fn build_body<'a>(
    kind: u8,
    key: &'a [u8],
    value: &'a [u8],
    n: u32,
    nodes: &'a [NodeAddr],
    node: NodeAddr,
    code: u16,
) -> Body<'a> {
    let holder = NodeId::from_u128(u128::from(n % 4));
    match kind {
        1 => Body::Get { key },
        2 => Body::Value {
            key,
            value: n.is_multiple_of(2).then_some(value),
        },
        3 => Body::Put { key, value },
        4 => Body::PutAck { key },
        5 => Body::Lock {
            key,
            token: LockToken(holder.0),
            lease_ms: n,
        },
        6 => Body::Locked {
            key,
            token: LockToken(holder.0),
            lease_ms: n,
        },
        7 => Body::LockDenied {
            key,
            remaining_ms: n,
        },
        8 => Body::Unlock {
            key,
            token: LockToken(holder.0),
        },
        9 => Body::Unlocked { key },
        10 => Body::InitConnect,
        11 => Body::RequestInsertion { joining: node },
        12 => Body::Join {
            side: if n.is_multiple_of(2) {
                Side::Left
            } else {
                Side::Right
            },
            nodes: NodeSet::Slice(nodes),
        },
        13 => Body::Leave {
            nodes: NodeSet::Slice(nodes),
        },
        14 => Body::Replicate { key, value },
        _ => Body::Error {
            code: ErrorCode::from_u16(code),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes never panic a node, and are never answered.
    #[test]
    fn arbitrary_bytes_never_panic(datagrams in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut a = node_with(5, 0);
        let mut now = Instant::ZERO;
        for d in &datagrams {
            now = now + ms(7);
            // Whoever the bytes claim to be from sent them (any address, if they do not parse).
            let from = Message::parse(d).map_or(addr(99), |m| m.header.sender.addr);
            let r = a.handle_datagram(now, from, d);
            if matches!(r, Disposition::Malformed(_)) {
                prop_assert!(a.poll_event().is_none());
            }
            a.handle_timeout(now);
            for (_, bytes) in drain(&mut a, now) {
                prop_assert!(Message::parse(&bytes).is_ok());
            }
        }
    }

    /// Streams of valid messages of every kind, from a handful of senders that collide on ids
    /// and addresses, with client calls and time passing, never panic a node; everything it
    /// sends parses.
    #[test]
    fn random_valid_messages_never_panic(
        script in proptest::collection::vec((arb_message(), 0u8..8), 1..60)
    ) {
        let mut a = node_with(u128::MAX / 8 * 3, 0);
        let mut now = Instant::ZERO;
        for ((mid, sender, kind, key, value, n, nodes, node, code), action) in &script {
            now = now + ms(u64::from(*n % 300));
            let body = build_body(*kind, key, value, *n, nodes, *node, *code);
            let _ = a.handle_datagram(now, sender.addr, &msg(*mid, *sender, body));
            match action {
                0 => { let _ = a.put(now, key, value); }
                1 => { let _ = a.get(now, key); }
                2 => { let _ = a.lock(now, key, ms(u64::from(*n % 5000))); }
                3 => { let _ = a.unlock(now, key); }
                4 => a.handle_peer_down(now, sender.addr),
                5 => { let _ = a.join(now, node.addr); }
                _ => {}
            }
            a.handle_timeout(now);
            for (_, bytes) in drain(&mut a, now) {
                prop_assert!(Message::parse(&bytes).is_ok());
            }
            while a.poll_event().is_some() {}
            if let Some(t) = a.poll_timeout() {
                prop_assert!(t >= Instant::ZERO);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// DhtClient: a client outside the ring talking to its nodes.

fn client_events(c: &mut Client) -> StdVec<Ev> {
    core::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn a_client_outside_the_ring_gets_puts_and_locks_through_any_node() {
    let mut sim = Sim::new(10, 11, 0);
    sim.build(ms(10));
    // The client is a member of the network too, outside the ring.
    let c = sim.add_client(client(5));
    // Every datagram delivered to the client, to account for each one it did not match.
    let delivered = std::rc::Rc::new(core::cell::RefCell::new(StdVec::new()));
    let tap = delivered.clone();
    sim.nodes.set_tap(Box::new(move |_, from, to, bytes| {
        if to == c {
            tap.borrow_mut().push((from, bytes.to_vec()));
        }
    }));
    let now = sim.now;
    let via = sim.addr(3);
    let put = sim.with_client(c, |cl| cl.put(now, via, b"colour", b"blue").unwrap());
    sim.exchange(c, ms(300));
    assert_eq!(sim.client_events(c), [Event::PutDone { id: put }]);
    // Stored at the key's true owner and its two replicas, read back through another node.
    let owner = sim.true_owner(b"colour");
    assert_eq!(sim.node(owner).stored(b"colour"), Some(&b"blue"[..]));
    let now = sim.now;
    let via = sim.addr(7);
    let (get, missing) = sim.with_client(c, |cl| {
        (
            cl.get(now, via, b"colour").unwrap(),
            cl.get(now, via, b"never written").unwrap(),
        )
    });
    sim.exchange(c, ms(300));
    let mut got = sim.client_events(c);
    got.sort_by_key(event_id);
    assert_eq!(
        got,
        [
            Event::GetDone {
                id: get,
                value: Some(heapless::Vec::from_slice(b"blue").unwrap())
            },
            Event::GetDone {
                id: missing,
                value: None
            }
        ]
    );

    // Two holders compete for one lock through different nodes, once the owners' grace period
    // after the ring formed (one max_lease) is over.
    sim.run_for(ms(2000));
    let (a, b) = (
        LockToken::derive(b"secret", b"holder a"),
        LockToken::derive(b"secret", b"holder b"),
    );
    let now = sim.now;
    let via = sim.addr(1);
    let lock_a = sim.with_client(c, |cl| cl.lock(now, via, b"door", a, ms(1500)).unwrap());
    sim.exchange(c, ms(200));
    let sent_at = now;
    match sim.client_events(c).as_slice() {
        [Event::Locked { id, until }] => {
            assert_eq!(*id, lock_a);
            // The attempt answered was sent again after node 1's Challenge (one round trip).
            assert!(*until > sent_at && *until <= sent_at + ms(1525), "{until}");
        }
        other => panic!("{other:?}"),
    }
    let now = sim.now;
    let via = sim.addr(5);
    let (lock_b, unlock_b) = sim.with_client(c, |cl| {
        (
            cl.lock(now, via, b"door", b, ms(1500)).unwrap(),
            cl.unlock(now, via, b"door", b).unwrap(),
        )
    });
    sim.exchange(c, ms(200));
    let mut got = sim.client_events(c);
    got.sort_by_key(event_id);
    match got.as_slice() {
        [
            Event::LockDenied { id: d, remaining },
            Event::Failed {
                id: f,
                op: Op::Unlock,
                error: RequestError::Refused(ErrorCode::NotHolder),
            },
        ] => {
            assert_eq!((*d, *f), (lock_b, unlock_b));
            assert!(
                *remaining <= ms(1500) && *remaining > ms(1000),
                "{remaining:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let now = sim.now;
    let via = sim.addr(9);
    let unlock_a = sim.with_client(c, |cl| cl.unlock(now, via, b"door", a).unwrap());
    sim.exchange(c, ms(200));
    assert_eq!(sim.client_events(c), [Event::Unlocked { id: unlock_a }]);
    let now = sim.now;
    let via = sim.addr(5);
    let lock_b = sim.with_client(c, |cl| cl.lock(now, via, b"door", b, ms(500)).unwrap());
    sim.exchange(c, ms(200));
    assert!(matches!(sim.client_events(c).as_slice(), [Event::Locked { id, .. }] if *id == lock_b));
    let stats = *sim.client(c).stats();
    // With the old private simulator (client datagrams 1 ms, answers collected every 5 ms)
    // nothing was unmatched. On the network's 0.5-10 ms, node 7's Challenge (for the larger
    // answer) can reach the client before its direct small answer to the other get: the
    // client sends again every request waiting on that node (same id), and the node answers
    // the copy too. Each such second answer is counted a duplicate (nothing is unmatched): it
    // must be a second copy, byte for byte, and there are no more than the Challenges echoed.
    let delivered = delivered.borrow();
    // (Challenges with one cookie, and Withhelds of one request, are alike byte for byte too:
    // they are not answers.)
    let copies = (0..delivered.len())
        .filter(|&k| {
            !matches!(
                Message::parse(&delivered[k].1).map(|m| m.body),
                Ok(Body::Challenge | Body::Withheld { .. })
            )
        })
        .filter(|&k| delivered[..k].contains(&delivered[k]))
        .count();
    assert_eq!(
        (
            stats.timeouts,
            stats.malformed,
            stats.unmatched,
            stats.duplicates,
            stats.wrong_sender
        ),
        (0, 0, 0, copies as u64, 0)
    );
    assert!(copies as u64 <= stats.challenges_answered, "{stats:?}");
    assert_eq!(sim.client(c).outstanding(), 0);
}

#[test]
fn a_client_request_to_a_dead_node_fails_with_a_timeout_after_its_attempts() {
    let mut sim = Sim::new(4, 12, 0);
    sim.build(ms(10));
    sim.crash(2);
    let mut cl = client(6);
    let now = sim.now;
    let id = cl.put(now, sim.addr(2), b"k", b"v").unwrap();
    assert_eq!(
        cl.poll_timeout(),
        Some(Instant::ZERO),
        "a message waits to go"
    );
    let c = sim.add_client(cl);
    sim.run_for(ms(1300));
    let sent = sim.sent_by(c).to_vec();
    assert_eq!(
        sim.client_events(c),
        [Event::Failed {
            id,
            op: Op::Put,
            error: RequestError::Timeout
        }]
    );
    // Three attempts, each with a fresh message id.
    let ids: StdVec<u64> = sent
        .iter()
        .map(|(_, b)| Message::parse(b).unwrap().header.message_id)
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    let stats = *sim.client(c).stats();
    assert_eq!((stats.timeouts, stats.retries), (3, 2));
    assert_eq!(sim.client(c).poll_timeout(), None);
}

#[test]
fn a_client_takes_answers_only_from_the_node_and_attempt_it_asked() {
    let node = NodeAddr {
        id: NodeId::from_name(b"node"),
        addr: addr(1),
    };
    let mut c = client(7);
    let now = Instant::ZERO;
    let id = c.get(now, node.addr, b"key").unwrap();
    let mut buf = [0u8; Client::MAX_TRANSMIT_LEN];
    let t = c.poll_transmit(now, &mut buf).unwrap();
    assert_eq!(t.destination, node.addr);
    let request = Message::parse(&buf[..t.len]).unwrap();
    assert_eq!(request.header.sender, c.config().local);
    assert_eq!(request.body, Body::Get { key: b"key" });
    let first = request.header.message_id;
    let value = |message_id| {
        msg(
            message_id,
            node,
            Body::Value {
                key: b"key",
                value: Some(b"forged"),
            },
        )
    };
    // The right id from another address, a wrong id, another key, a request, garbage.
    assert_eq!(
        c.handle_datagram(now, addr(2), &value(first)),
        Disposition::Dropped(DropReason::WrongSender)
    );
    assert_eq!(
        c.handle_datagram(now, node.addr, &value(first ^ 1)),
        Disposition::Dropped(DropReason::Unmatched)
    );
    let other_key = msg(
        first,
        node,
        Body::Value {
            key: b"other",
            value: None,
        },
    );
    assert_eq!(
        c.handle_datagram(now, node.addr, &other_key),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert_eq!(
        c.handle_datagram(now, node.addr, &msg(first, node, Body::Get { key: b"key" })),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert!(matches!(
        c.handle_datagram(now, node.addr, &[0x0b, 1, 2]),
        Disposition::Malformed(Error::Truncated)
    ));
    assert_eq!(c.poll_event(), None);
    // The first attempt times out; its late answer no longer counts, the second's does.
    let later = now + ms(400);
    c.handle_timeout(later);
    let t = c.poll_transmit(later, &mut buf).unwrap();
    let second = Message::parse(&buf[..t.len]).unwrap().header.message_id;
    assert_ne!(second, first);
    assert_eq!(
        c.handle_datagram(later, node.addr, &value(first)),
        Disposition::Dropped(DropReason::Unmatched)
    );
    // NotOwner while attempts remain: tried again, not reported.
    let not_owner = msg(
        second,
        node,
        Body::Error {
            code: ErrorCode::NotOwner,
        },
    );
    assert_eq!(
        c.handle_datagram(later, node.addr, &not_owner),
        Disposition::Handled
    );
    assert_eq!(c.poll_event(), None);
    let t = c.poll_transmit(later, &mut buf).unwrap();
    let third = Message::parse(&buf[..t.len]).unwrap().header.message_id;
    assert_eq!(
        c.handle_datagram(later, node.addr, &value(third)),
        Disposition::Handled
    );
    assert_eq!(
        c.poll_event(),
        Some(Event::GetDone {
            id,
            value: Some(heapless::Vec::from_slice(b"forged").unwrap())
        })
    );
    let s = *c.stats();
    assert_eq!(
        (
            s.received,
            s.malformed,
            s.unmatched,
            s.wrong_sender,
            s.retries,
            s.sent
        ),
        (8, 1, 4, 1, 2, 3)
    );
}

#[test]
fn a_client_fails_requests_loudly_and_refuses_what_it_cannot_hold() {
    let mut c = client(8);
    let now = Instant::ZERO;
    assert_eq!(c.get(now, addr(1), &[0; 17]), Err(Error::TooLarge));
    assert_eq!(c.put(now, addr(1), b"k", &[0; V + 1]), Err(Error::TooLarge));
    let a = c.get(now, addr(1), b"a").unwrap();
    let b = c.put(now, addr(2), b"b", b"v").unwrap();
    let d = c
        .unlock(now, addr(1), b"c", LockToken::derive(b"s", b"h"))
        .unwrap();
    for _ in 0..5 {
        c.get(now, addr(3), b"x").unwrap();
    }
    assert_eq!(
        c.get(now, addr(3), b"y"),
        Err(Error::Capacity),
        "8 outstanding"
    );
    let mut buf = [0u8; Client::MAX_TRANSMIT_LEN];
    while c.poll_transmit(now, &mut buf).is_some() {}
    c.fail_node(addr(1), RequestError::Disconnected);
    let mut got = client_events(&mut c);
    got.sort_by_key(event_id);
    assert_eq!(
        got,
        [
            Event::Failed {
                id: a,
                op: Op::Get,
                error: RequestError::Disconnected
            },
            Event::Failed {
                id: d,
                op: Op::Unlock,
                error: RequestError::Disconnected
            }
        ]
    );
    assert_eq!(c.outstanding(), 6);
    let _ = b;
    // A buffer too small for a message fails its request instead of stalling it.
    let mut c = client(9);
    let id = c.put(now, addr(1), b"k", &[7; V]).unwrap();
    let mut small = [0u8; 20];
    assert_eq!(c.poll_transmit(now, &mut small), None);
    assert_eq!(
        c.poll_event(),
        Some(Event::Failed {
            id,
            op: Op::Put,
            error: RequestError::Refused(ErrorCode::Full)
        })
    );
}

#[test]
fn a_message_naming_another_sender_address_than_its_source_is_dropped() {
    let mut n = node_with(1 << 100, 1);
    let sender = NodeAddr {
        id: NodeId::from_u128(7),
        addr: addr(2),
    };
    let get = msg(5, sender, Body::Get { key: b"k" });
    let now = Instant::ZERO;
    // From another address than the header names: nothing is answered or forwarded there.
    assert_eq!(
        n.handle_datagram(now, addr(3), &get),
        Disposition::Dropped(DropReason::SourceMismatch)
    );
    assert!(drain(&mut n, now).is_empty());
    assert_eq!(n.stats().source_mismatch, 1);
    // The same endpoint as an IPv4-mapped IPv6 address is the same source.
    let SocketAddr::V4(v4) = addr(2) else {
        unreachable!()
    };
    let mapped = SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port());
    assert_eq!(n.handle_datagram(now, mapped, &get), Disposition::Handled);
    let out = drain(&mut n, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr(2));
    assert_eq!(
        Message::parse(&out[0].1).unwrap().body,
        Body::Value {
            key: b"k",
            value: None
        }
    );
    assert_eq!((n.stats().received, n.stats().source_mismatch), (2, 1));
}

#[path = "attack_tests.rs"]
mod attacks;

/// The cost of the ring in messages: to form a ring of 20 (joins 10 ms apart, no loss), and
/// then per node and second while nothing changes. Printed for PROTOCOL.md (`cargo test -p
/// sinew-proto --lib the_cost_of_a_ring -- --nocapture`); bounded here so that a change that
/// multiplies them fails.
#[test]
fn the_cost_of_a_ring() {
    let (mut formed, mut steady) = (StdVec::new(), StdVec::new());
    for seed in 0..seeds(3) {
        let mut sim = Sim::new(20, 100 + seed, 0);
        sim.build(ms(10));
        assert!(sim.ring_errors().is_empty());
        let to_form = sim.net_stats().sent;
        // Past every join's grace period and hint, then 10 s of nothing but stabilization.
        sim.run_for(Duration::from_secs(3));
        let before = sim.net_stats().sent;
        sim.run_for(Duration::from_secs(10));
        let per_node_second = (sim.net_stats().sent - before) as f64 / 20.0 / 10.0;
        println!(
            "seed {seed}: {to_form} messages to form a ring of 20; \
             {per_node_second:.1} messages per node per second after (250 ms stabilization)"
        );
        formed.push(to_form);
        steady.push(per_node_second);
    }
    assert!(formed.iter().all(|&m| m < 20 * 400), "{formed:?}");
    assert!(steady.iter().all(|&m| m < 60.0), "{steady:?}");
}

// ------------------------------------------------------------------------------------------
// Prefix routing.

/// Mean hops of `gets` gets from random members of a ring of `n` built nodes, after the
/// routing tables had `settle` to fill: (mean request datagrams per get, gets answered).
fn mean_hops(n: usize, seed: u64, settle: Duration, gets: usize) -> (f64, usize) {
    let mut sim = Sim::new(n, seed, 0);
    sim.build(ms(10));
    sim.run_for(settle);
    let relays = |sim: &Sim| -> u64 { sim.each_node().map(|s| s.node.stats().forwarded).sum() };
    let before = relays(&sim);
    let mut sent = 0u64;
    let mut asked = StdVec::new();
    for k in 0..gets {
        let i = sim.rng.below(n as u64) as usize;
        let key = format!("route key {k}");
        let now = sim.now;
        // The requester's own datagram, unless it owns the key.
        if sim.nodes[i].node.owner_of(key.as_bytes()).id != sim.nodes[i].node.local().id {
            sent += 1;
        }
        let id = sim.node(i).get(now, key.as_bytes()).unwrap();
        sim.flush(i);
        sim.run_for(ms(50));
        asked.push((i, id));
    }
    sim.run_for(Duration::from_secs(2));
    let answered = asked
        .iter()
        .filter(|&&(i, id)| matches!(sim.outcome(i, id), Some((_, Event::GetDone { .. }))))
        .count();
    let hops = (sent + relays(&sim) - before) as f64 / gets as f64;
    (hops, answered)
}

#[test]
fn prefix_routing_takes_log16_hops_on_a_ring_of_256() {
    // Leaf-set routing alone (4 nodes a side) needs about N / (2 × 4) / 2 = 16 hops on
    // average here; log16(256) + 1 = 3.
    let (hops, answered) = mean_hops(256, 11, Duration::from_secs(10), 200);
    println!("256 nodes: {hops:.2} hops per get, {answered} of 200 answered");
    assert_eq!(answered, 200);
    assert!(hops <= 3.5, "{hops} hops per get");
    assert!(hops >= 1.0);
}

#[test]
fn a_liars_list_never_enters_the_routing_table_unprobed() {
    let mut a = node_with(0x1000 << 112, 0);
    let liar = NodeAddr {
        id: NodeId::from_u128(0x9000 << 112),
        addr: addr(1),
    };
    // Nodes the liar names: far ids, addresses where nobody answers.
    let fakes: StdVec<NodeAddr> = (0..4u128)
        .map(|k| NodeAddr {
            id: NodeId::from_u128((0x2000 + 0x1000 * k) << 112 | 0xf),
            addr: addr(10 + k as usize),
        })
        .collect();
    let now = Instant::ZERO;
    // An unsolicited Route (no RouteRequest of A's) is dropped whole.
    let unsolicited = msg(
        77,
        liar,
        Body::Route {
            row: 0,
            nodes: NodeSet::Slice(&fakes),
        },
    );
    assert_eq!(
        a.handle_datagram(now, liar.addr, &unsolicited),
        Disposition::Dropped(DropReason::Unmatched)
    );
    assert_eq!(a.route_table().len(), 0);
    // The liar talks to A (any node message): a hint, which A probes with a RouteRequest.
    let hello = msg(
        5,
        liar,
        Body::Join {
            side: Side::Left,
            nodes: NodeSet::Slice(&[]),
        },
    );
    a.handle_datagram(now, liar.addr, &hello);
    let out = drain(&mut a, now);
    let probe = out
        .iter()
        .filter(|(to, _)| *to == liar.addr)
        .map(|(_, b)| Message::parse(b).unwrap())
        .find(|m| matches!(m.body, Body::RouteRequest { .. }))
        .expect("A probes the liar");
    assert_eq!(a.route_table().len(), 0, "nothing taken before the answer");
    // The liar answers for itself, listing the fakes: it enters, they do not.
    let answer = msg(
        probe.header.message_id,
        liar,
        Body::Route {
            row: 0,
            nodes: NodeSet::Slice(&fakes),
        },
    );
    assert_eq!(
        a.handle_datagram(now, liar.addr, &answer),
        Disposition::Handled
    );
    assert_eq!(a.route_table().get(liar.id), Some(liar));
    for f in &fakes {
        assert_eq!(a.route_table().get(f.id), None, "{f:?} taken unprobed");
    }
    // A probes the fakes instead (within its budget)...
    let probed: StdVec<SocketAddr> = drain(&mut a, now)
        .into_iter()
        .filter(|(_, b)| matches!(Message::parse(b).unwrap().body, Body::RouteRequest { .. }))
        .map(|(to, _)| to)
        .collect();
    assert!(!probed.is_empty());
    assert!(probed.iter().all(|to| fakes.iter().any(|f| f.addr == *to)));
    // ...the liar cannot answer for a fake from its own address...
    let pose = msg(
        probe.header.message_id ^ 1,
        NodeAddr {
            id: fakes[0].id,
            addr: liar.addr,
        },
        Body::Route {
            row: 0,
            nodes: NodeSet::Slice(&[]),
        },
    );
    a.handle_datagram(now, liar.addr, &pose);
    // ...and the fakes never answer: after the timeouts, none is in the table.
    let later = now + Duration::from_secs(5);
    a.handle_timeout(later);
    drain(&mut a, later);
    for f in &fakes {
        assert_eq!(a.route_table().get(f.id), None);
    }
    assert_eq!(a.route_table().len(), 1);
    assert_eq!(a.stats().route_learnt, 1);
}

#[test]
fn dead_routing_entries_are_dropped_and_requests_still_arrive() {
    let n = 64;
    let mut sim = Sim::new(n, 5, 0);
    sim.build(ms(10));
    sim.run_for(Duration::from_secs(5));
    let crashed = [3usize, 17, 29, 41, 52, 60];
    let dead: StdVec<NodeId> = crashed
        .iter()
        .map(|&i| sim.nodes[i].node.local().id)
        .collect();
    let dead_entries = |sim: &Sim| -> usize {
        sim.members()
            .iter()
            .map(|&j| {
                sim.nodes[j]
                    .node
                    .route_table()
                    .nodes()
                    .filter(|e| dead.contains(&e.id))
                    .count()
            })
            .sum()
    };
    for &i in &crashed {
        sim.crash(i);
    }
    // Their leaf-set neighbours declare them down (keys they owned move on); their entries in
    // the routing tables of everyone else stay until requests or refreshes find them dead.
    sim.run_for(Duration::from_millis(1500));
    let before = dead_entries(&sim);
    assert!(before > 0, "the crashed nodes were routing entries");
    let live = sim.members();
    let mut asked = StdVec::new();
    for k in 0..200 {
        let i = live[sim.rng.below(live.len() as u64) as usize];
        let now = sim.now;
        let id = sim
            .node(i)
            .get(now, format!("after crash {k}").as_bytes())
            .unwrap();
        sim.flush(i);
        sim.run_for(ms(100));
        asked.push((i, id));
    }
    sim.run_for(Duration::from_secs(3));
    let answered = asked
        .iter()
        .filter(|&&(i, id)| matches!(sim.outcome(i, id), Some((_, Event::GetDone { .. }))))
        .count();
    for &(i, id) in &asked {
        if !matches!(sim.outcome(i, id), Some((_, Event::GetDone { .. }))) {
            println!("node {i}: {:?}", sim.outcome(i, id));
        }
    }
    let after = dead_entries(&sim);
    let dropped: u64 = sim.each_node().map(|s| s.node.stats().route_dropped).sum();
    println!("dead entries {before} -> {after}, {dropped} dropped, {answered} of 200 answered");
    assert_eq!(answered, 200);
    assert!(dropped > 0);
    assert!(after < before, "dead entries {before} -> {after}");
}

#[test]
fn a_route_request_from_an_unproved_address_draws_only_a_challenge() {
    let mut sim = Sim::new(8, 9, 0);
    sim.build(ms(10));
    sim.run_for(Duration::from_secs(3));
    // A stranger (or a spoofer using a victim's address) asks every member for a row.
    let stranger = NodeAddr::bound(SocketAddr::from(([192, 0, 2, 7], 4000)));
    let ask = msg(
        99,
        stranger,
        Body::RouteRequest {
            row: 0,
            columns: u16::MAX,
        },
    );
    for j in sim.members() {
        let now = sim.now;
        assert!(!sim.nodes[j].node.route_table().is_empty());
        sim.node(j).handle_datagram(now, stranger.addr, &ask);
        sim.flush(j);
    }
    sim.run_for(Duration::from_secs(2));
    let to_stranger: StdVec<&StdVec<u8>> = sim
        .outside
        .iter()
        .filter(|(_, to, _)| *to == stranger.addr)
        .map(|(_, _, b)| b)
        .collect();
    assert!(!to_stranger.is_empty());
    for bytes in to_stranger {
        // Header-only Challenges, never longer than the request; never a Route.
        assert!(bytes.len() <= ask.len(), "{} bytes", bytes.len());
        assert_eq!(Message::parse(bytes).unwrap().body, Body::Challenge);
    }
}

/// A Withheld for request `message_id` from `sender`, built on the wire by hand (type 23, the
/// request's id, the sender, the cookie).
fn withheld(message_id: u64, sender: NodeAddr, cookie: u64) -> StdVec<u8> {
    let mut bytes = msg(message_id, sender, Body::Echo);
    bytes[0] = 23;
    bytes.extend_from_slice(&cookie.to_be_bytes());
    bytes
}

/// A node's own gets waiting on another node: a Withheld naming one of them brings one Echo
/// and that get again, not the others; the same Withheld again before the get went again (a
/// copy) brings nothing more; one naming no request of this node is unmatched.
#[test]
fn a_node_sends_again_only_the_request_a_withheld_names() {
    let mut sim = Sim::new(4, 31, 0);
    sim.build(ms(10));
    sim.run_for(ms(500));
    let now = sim.now;
    for k in 0..16 {
        sim.node(0).get(now, format!("wh-{k}").as_bytes()).unwrap();
    }
    let sent = drain(sim.node(0), now);
    let gets: StdVec<(SocketAddr, u64)> = sent
        .iter()
        .filter_map(|(to, b)| {
            let m = Message::parse(b).unwrap();
            matches!(m.body, Body::Get { .. }).then_some((*to, m.header.message_id))
        })
        .collect();
    let to = gets[0].0;
    let waiting = gets.iter().filter(|g| g.0 == to).count();
    assert!(waiting >= 2, "{gets:?}");
    let x = gets[0].1;
    let j = (0..4).find(|&j| sim.addr(j) == to).unwrap();
    let peer = sim.node(j).local();
    let w = withheld(x, peer, 0xc00c1e);
    assert_eq!(
        sim.node(0).handle_datagram(now, to, &w),
        Disposition::Handled
    );
    // A second copy before the get went again: nothing is waiting on it any more.
    assert_eq!(
        sim.node(0).handle_datagram(now, to, &w),
        Disposition::Dropped(DropReason::Unmatched)
    );
    let again: StdVec<(SocketAddr, u64, crate::dht::Kind)> = drain(sim.node(0), now)
        .iter()
        .map(|(d, b)| {
            let m = Message::parse(b).unwrap();
            (*d, m.header.message_id, m.body.kind())
        })
        .collect();
    assert_eq!(
        again,
        [
            (to, 0xc00c1e, crate::dht::Kind::Echo),
            (to, x, crate::dht::Kind::Get)
        ],
        "{again:?}"
    );
    let stray = withheld(0xdead, peer, 0xc00c1e);
    assert_eq!(
        sim.node(0).handle_datagram(now, to, &stray),
        Disposition::Dropped(DropReason::Unmatched)
    );
}
