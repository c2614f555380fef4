//! Peers that lie (issue 11): each attack on a ring of real nodes, by an attacker node or an
//! outside host with its own address, and the victim's state afterwards (its view, the stored
//! values, the lock owners).

use super::*;
use crate::dht::{HEADER_LEN, Kind, MAX_MESSAGE_LEN, RelayedRequest};

/// An outside host with its own address (no spoofing), and the id bound to it.
fn outsider(n: u8) -> NodeAddr {
    NodeAddr::bound(SocketAddr::from(([192, 0, 2, n], 9000)))
}

/// Delivers `body` from `from` to node `i` now; the messages node `i` sent back to `from`.
fn ask(
    sim: &mut Sim,
    i: usize,
    from: NodeAddr,
    message_id: u64,
    body: Body<'_>,
) -> StdVec<StdVec<u8>> {
    let now = sim.now;
    sim.node(i)
        .handle_datagram(now, from.addr, &msg(message_id, from, body));
    sim.flush(i);
    let mut answers = StdVec::new();
    sim.outside.retain(|(_, to, bytes)| {
        if *to == from.addr {
            answers.push(bytes.clone());
            false
        } else {
            true
        }
    });
    // A sender inside the simulation: its answers are taken off the network.
    if let Some(&to) = sim.index.get(&from.addr) {
        let me = sim.nodes[i].node.local().addr;
        let (mine, rest): (StdVec<_>, StdVec<_>) =
            core::mem::take(&mut sim.net).into_iter().partition(|p| {
                p.0.to == to
                    && p.0.from == me
                    && Message::parse(&p.0.bytes).is_ok_and(|m| m.header.message_id == message_id)
            });
        sim.net = rest.into_iter().collect();
        answers.extend(mine.into_iter().map(|p| p.0.bytes));
    }
    answers
}

/// The cookie of a Challenge (its message id) or of a Withheld (its body).
fn cookie_of(m: &Message<'_>) -> Option<u64> {
    match m.body {
        Body::Challenge => Some(m.header.message_id),
        Body::Withheld { cookie } => Some(cookie),
        _ => None,
    }
}

/// `from` proves to node `i` that it receives at its address: a put draws a Challenge (or a
/// Withheld), whose cookie it echoes (a put or lock from an unproved address takes no slot).
fn prove(sim: &mut Sim, i: usize, from: NodeAddr) {
    let put = Body::Put {
        key: b"proof",
        value: b"",
    };
    let answers = ask(sim, i, from, 1, put);
    let cookie = answers
        .iter()
        .find_map(|a| cookie_of(&Message::parse(a).unwrap()))
        .expect("a Challenge");
    ask(sim, i, from, cookie, Body::Echo);
}

/// A ring of `n` nodes, built and past every join's grace period.
fn ring(n: usize, seed: u64) -> Sim {
    ring_binding(n, seed, true)
}

/// A ring of `n` nodes with [`Config::bind_ids`] as given (the nodes' ids are the ones bound
/// to their addresses either way): with it off, a test reaches the defence behind it.
fn ring_binding(n: usize, seed: u64, bind_ids: bool) -> Sim {
    let mut sim = Sim::with_config(n, seed, 0, |_, c| c.with_bind_ids(bind_ids));
    sim.build(ms(10));
    sim.run_for(ms(2100));
    sim
}

#[test]
fn a_lock_cannot_be_stolen_with_what_a_denial_tells() {
    let mut sim = ring(5, 43);
    let key = b"theft";
    let owner_addr = sim.node(0).owner_of(key).addr;
    let owner = sim.index[&owner_addr];
    let x = (owner + 1) % 5;
    let now = sim.now;
    let id = sim.node(x).lock(now, key, ms(2000)).unwrap();
    sim.flush(x);
    sim.run_for(ms(50));
    assert!(matches!(
        sim.outcome(x, id),
        Some((_, Event::Locked { .. }))
    ));
    let x_id = sim.nodes[x].node.local().id;

    let x_token = sim.nodes[x].node.lock_token(key);

    // The attacker asks for the lock and is denied: told for how long, not by whom.
    let eve = outsider(1);
    let lock = Body::Lock {
        key,
        token: LockToken::derive(b"eve", key),
        lease_ms: 2000,
    };
    let answers = ask(&mut sim, owner, eve, 1, lock);
    assert_eq!(answers.len(), 1);
    let denied = &answers[0];
    assert!(matches!(
        Message::parse(denied).unwrap().body,
        Body::LockDenied { key: k, remaining_ms } if k == key && remaining_ms > 1000
    ));
    assert_eq!(denied.len(), HEADER_LEN + 1 + key.len() + 4);
    assert!(!denied.windows(16).any(|w| w == x_token.0 || w == x_id.0));
    // It unlocks with what it can know: the holder's public id, the all-zero token.
    for guess in [LockToken(x_id.0), LockToken::default()] {
        let answers = ask(&mut sim, owner, eve, 2, Body::Unlock { key, token: guess });
        assert_eq!(
            Message::parse(&answers[0]).unwrap().body,
            Body::Error {
                code: ErrorCode::NotHolder
            },
            "the attacker released another node's lock"
        );
    }
    let answers = ask(&mut sim, owner, eve, 3, lock);
    assert!(matches!(
        Message::parse(&answers[0]).unwrap().body,
        Body::LockDenied { .. }
    ));
    let now = sim.now;
    assert_eq!(sim.node(owner).lock_holder(now, key), Some(x_token));
    // The holder still holds it, and renews it.
    let id = sim.node(x).lock(now, key, ms(2000)).unwrap();
    sim.flush(x);
    sim.run_for(ms(50));
    assert!(matches!(
        sim.outcome(x, id),
        Some((_, Event::Locked { .. }))
    ));
}

/// The members whose leaf set holds `node`.
fn holders_of(sim: &Sim, node: NodeAddr) -> StdVec<usize> {
    sim.members()
        .into_iter()
        .filter(|&j| sim.nodes[j].node.leaf_set().get(node.id) == Some(node))
        .collect()
}

#[test]
fn a_forged_leave_for_another_node_is_ignored_and_counted() {
    // Refused for its id bound to another address; and, with binding off, because a Leave is
    // taken only from the leaver's recorded address.
    forged_leave_run(true);
    forged_leave_run(false);
}

fn forged_leave_run(bind_ids: bool) {
    let mut sim = ring_binding(6, 44, bind_ids);
    let victim = 2;
    let v = sim.nodes[victim].node.local();
    let neighbours = holders_of(&sim, v);
    assert!(neighbours.len() >= 4, "{neighbours:?}");
    // A key the victim owns, written before the attack.
    let key = (0..)
        .map(|k| format!("k{k}"))
        .find(|k| sim.true_owner(k.as_bytes()) == victim)
        .unwrap();
    let now = sim.now;
    let put = sim.node(0).put(now, key.as_bytes(), b"before").unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(0, put),
        Some((_, Event::PutDone { .. }))
    ));
    // The attacker, from its own address, says "I am the victim and I leave", every 200 ms,
    // to every node that has the victim as a neighbour.
    let eve = NodeAddr {
        id: v.id,
        addr: outsider(2).addr,
    };
    let mut forged = 0;
    for round in 0..10u64 {
        for &j in &neighbours {
            let list = [outsider(3)];
            let leave = Body::Leave {
                nodes: NodeSet::Slice(&list),
            };
            ask(&mut sim, j, eve, 100 + round, leave);
            forged += 1;
        }
        sim.run_for(ms(200));
    }
    // Nobody evicted the victim on the attacker's word, nor took the listed stranger.
    assert_eq!(holders_of(&sim, v), neighbours);
    let counted: u64 = neighbours
        .iter()
        .map(|&j| {
            let s = sim.nodes[j].node.stats();
            if bind_ids {
                s.unbound_ids
            } else {
                s.forged_leaves
            }
        })
        .sum();
    assert_eq!(counted, forged);
    for j in sim.members() {
        assert!(sim.nodes[j].node.leaf_set().get(outsider(3).id).is_none());
        assert!(
            sim.nodes[j]
                .events
                .iter()
                .all(|(_, e)| *e != Event::NeighbourDown { node: v })
        );
    }
    // The acknowledged write is still there, and a write during the attack too.
    let now = sim.now;
    let put = sim.node(4).put(now, key.as_bytes(), b"during").unwrap();
    sim.flush(4);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(4, put),
        Some((_, Event::PutDone { .. }))
    ));
    let now = sim.now;
    let get = sim.node(5).get(now, key.as_bytes()).unwrap();
    sim.flush(5);
    sim.run_for(ms(100));
    match sim.outcome(5, get) {
        Some((_, Event::GetDone { value: Some(v), .. })) => assert_eq!(&v[..], b"during"),
        e => panic!("{e:?}"),
    }
    // The real node's own Leave still works.
    let now = sim.now;
    sim.node(victim).leave(now);
    sim.flush(victim);
    sim.run_for(ms(100));
    assert!(holders_of(&sim, v).is_empty());
}

#[test]
fn strangers_cannot_exhaust_the_tombstones() {
    let mut sim = ring(6, 45);
    // Node 0 declares node 3 down (its health protocol said so): a tombstone keeps it out.
    let dead = sim.nodes[3].node.local();
    sim.crash(3);
    let now = sim.now;
    sim.node(0).handle_peer_down(now, dead.addr);
    sim.flush(0);
    assert!(sim.node(0).leaf_set().get(dead.id).is_none());
    // A stranger sends Leaves under many ids from its own address: each a node "leaving".
    for k in 0..(2 * TOMBSTONES as u8) {
        let stranger = NodeAddr {
            id: NodeId::from_name(&[b's', k]),
            addr: outsider(4).addr,
        };
        let leave = Body::Leave {
            nodes: NodeSet::Slice(&[]),
        };
        ask(&mut sim, 0, stranger, 200 + u64::from(k), leave);
    }
    // Stale gossip naming the dead node: it stays out.
    let gossip = sim.nodes[1].node.local();
    let list = [dead];
    let join = Body::Join {
        side: Side::Right,
        nodes: NodeSet::Slice(&list),
    };
    let now = sim.now;
    let bytes = msg(999, gossip, join);
    sim.node(0).handle_datagram(now, gossip.addr, &bytes);
    sim.flush(0);
    assert!(
        sim.node(0).leaf_set().get(dead.id).is_none(),
        "the dead node's tombstone was pushed out by a stranger's Leaves"
    );
}

#[test]
fn a_joining_node_takes_its_join_answer_only_from_the_node_it_asked() {
    let mut sim = ring(6, 46);
    let mut c = bound_config(sim.port, 6);
    c.validate_addresses = false;
    sim.nodes.push(SimNode {
        node: Box::new(Node::new(c, TestRng(6))),
        alive: true,
        started: false,
        events: StdVec::new(),
        next_timer: None,
    });
    sim.index.insert(sim.addr(6), 6);
    let j = 6;
    let now = sim.now;
    let entry = sim.addr(0);
    sim.node(j).join(now, entry).unwrap();
    sim.nodes[j].started = true;
    sim.flush(j);
    // Before any answer: an outside host sends the joiner Joins listing made-up nodes just
    // below and above it, under the ids the joiner might use.
    let eve = outsider(5);
    let me = sim.nodes[j].node.local().id.to_u128();
    let fakes: StdVec<NodeAddr> = (1..=4u8)
        .map(|k| NodeAddr {
            id: NodeId::from_u128(me.wrapping_sub(u128::from(k))),
            addr: SocketAddr::from(([192, 0, 2, 100 + k], 9000)),
        })
        .collect();
    for (mid, side) in [(1u64, Side::Left), (2, Side::Right)] {
        let join = Body::Join {
            side,
            nodes: NodeSet::Slice(&fakes),
        };
        let d = {
            let now = sim.now;
            let bytes = msg(mid, eve, join);
            sim.node(j).handle_datagram(now, eve.addr, &bytes)
        };
        assert_eq!(d, Disposition::Dropped(DropReason::Unmatched));
    }
    sim.flush(j);
    assert!(!sim.node(j).in_ring());
    assert!(sim.node(j).leaf_set().is_empty());
    assert!(
        sim.nodes[j]
            .events
            .iter()
            .all(|(_, e)| !matches!(e, Event::Joined { .. }))
    );
    // The real answers complete the join; the ring is correct and holds no fake.
    sim.converge(Duration::from_secs(5));
    assert!(sim.node(j).in_ring());
    for k in sim.members() {
        for f in &fakes {
            assert!(sim.nodes[k].node.leaf_set().get(f.id).is_none());
        }
    }
    let via = sim.nodes[j]
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::Joined { via } => Some(*via),
            _ => None,
        })
        .unwrap();
    assert_ne!(via, eve);
}

/// A key whose true owner is node `owner`.
fn key_owned_by(sim: &Sim, owner: usize) -> String {
    (0..)
        .map(|k| format!("key {k}"))
        .find(|k| sim.true_owner(k.as_bytes()) == owner)
        .unwrap()
}

/// Node `via`'s get of `key`: the value it returns.
fn get_value(sim: &mut Sim, via: usize, key: &[u8]) -> Option<StdVec<u8>> {
    let now = sim.now;
    let id = sim.node(via).get(now, key).unwrap();
    sim.flush(via);
    sim.run_for(ms(300));
    match sim.outcome(via, id) {
        Some((_, Event::GetDone { value, .. })) => value.map(|v| v.to_vec()),
        e => panic!("get: {e:?}"),
    }
}

#[test]
fn a_replicate_is_taken_only_from_the_owners_address() {
    replicate_run(true);
    replicate_run(false);
}

fn replicate_run(bind_ids: bool) {
    let mut sim = ring_binding(6, 47, bind_ids);
    let owner = 1;
    let o = sim.nodes[owner].node.local();
    let key = key_owned_by(&sim, owner);
    let key = key.as_bytes();
    let now = sim.now;
    let put = sim.node(0).put(now, key, b"real").unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(0, put),
        Some((_, Event::PutDone { .. }))
    ));
    let replicas: StdVec<usize> = sim
        .members()
        .into_iter()
        .filter(|&j| j != owner && sim.nodes[j].node.stored(key).is_some())
        .collect();
    assert_eq!(replicas.len(), 2);
    // An outside host names the owner's id and overwrites the replicas' copies.
    let eve = NodeAddr {
        id: o.id,
        addr: outsider(6).addr,
    };
    for &r in &replicas {
        let answers = ask(
            &mut sim,
            r,
            eve,
            300,
            Body::Replicate {
                key,
                value: b"evil",
            },
        );
        let s = *sim.nodes[r].node.stats();
        if bind_ids {
            // The owner's id is bound to the owner's address: not even answered.
            assert!(answers.is_empty());
            assert_eq!((s.unbound_ids, s.replicates_refused), (1, 0));
        } else {
            assert_eq!(
                Message::parse(&answers[0]).unwrap().body,
                Body::Error {
                    code: ErrorCode::NotOwner
                }
            );
            assert_eq!(s.replicates_refused, 1);
        }
        assert_eq!(sim.nodes[r].node.stored(key), Some(&b"real"[..]));
    }
    // The owner crashes: its successor serves the real value.
    sim.crash(owner);
    sim.tell_down(owner);
    sim.run_for(ms(500));
    assert_eq!(get_value(&mut sim, 4, key).as_deref(), Some(&b"real"[..]));
}

/// A key its owner lacks is taken only from the node that owned it before, by the owner's
/// view (its nearest successor). Not from an outside host, nor from a member that never held
/// it — nor from its other successors, which may hold the key too: one of them may hold an
/// old value (it stopped being a replica for a while), and an owner that took it would
/// replicate it over the newer acknowledged one. (Taking offers from every former holder was
/// tried: `sinew dht sim` then lost acknowledged updates that way under churn.)
#[test]
fn an_owner_stores_an_offer_only_from_the_keys_previous_owner() {
    let mut sim = ring(6, 48);
    let owner = 2;
    let key = key_owned_by(&sim, owner);
    let key = key.as_bytes();
    // An outside host, and a member that never owned the key, offer a value for a key nobody
    // wrote.
    let member = sim
        .members()
        .into_iter()
        .find(|&j| {
            j != owner
                && sim.nodes[owner].node.leaf_set().nearest_right()
                    != Some(sim.nodes[j].node.local())
        })
        .unwrap();
    let m = sim.nodes[member].node.local();
    for (from, mid) in [(outsider(7), 400), (m, 401)] {
        let answers = ask(
            &mut sim,
            owner,
            from,
            mid,
            Body::Replicate {
                key,
                value: b"planted",
            },
        );
        assert_eq!(
            Message::parse(&answers[0]).unwrap().body,
            Body::Error {
                code: ErrorCode::NotOwner
            }
        );
    }
    assert_eq!(sim.nodes[owner].node.stored(key), None);
    assert_eq!(sim.nodes[owner].node.stats().replicates_refused, 2);
    sim.run_for(ms(300));
    assert_eq!(get_value(&mut sim, 0, key), None);
}

/// One run of the amplification attack: a spoofer sends, in the name of a victim outside the
/// ring, an InitConnect, a Get of a stored value, a Lock and a Put to every node, every second
/// for 5 s. Returns (bytes sent in the victim's name, bytes the ring sent to the victim, nodes
/// that took the victim into their leaf set).
fn spoof_run(validate: bool) -> (usize, usize, usize) {
    let mut sim = Sim::with_config(6, 49, 0, |_, mut c| {
        c.validate_addresses = validate;
        c
    });
    sim.build(ms(10));
    let now = sim.now;
    let key = b"big value";
    let put = sim.node(0).put(now, key, &[7; V]).unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(0, put),
        Some((_, Event::PutDone { .. }))
    ));
    let victim = NodeAddr::bound(SocketAddr::from(([198, 51, 100, 9], 7000)));
    let mut spent = 0;
    for round in 0..5u64 {
        for j in sim.members() {
            let bodies = [
                Body::InitConnect,
                Body::Get { key },
                Body::Lock {
                    key,
                    token: LockToken([1; 16]),
                    lease_ms: 1000,
                },
                Body::Put {
                    key: b"k",
                    value: b"",
                },
            ];
            for (k, body) in bodies.into_iter().enumerate() {
                // The spoofer forges the source: the node sees the victim's address.
                let bytes = msg(round * 100 + k as u64, victim, body);
                spent += bytes.len();
                let now = sim.now;
                sim.node(j).handle_datagram(now, victim.addr, &bytes);
                sim.flush(j);
            }
        }
        sim.run_for(Duration::from_secs(1));
    }
    sim.run_for(Duration::from_secs(5));
    let drawn = sim
        .outside
        .iter()
        .filter(|(_, to, _)| *to == victim.addr)
        .map(|(_, _, b)| b.len())
        .sum();
    let took = sim
        .members()
        .into_iter()
        .filter(|&j| {
            sim.nodes[j]
                .node
                .leaf_set()
                .get_by_addr(victim.addr)
                .is_some()
        })
        .count();
    if validate {
        for j in sim.members() {
            let s = sim.nodes[j].node.stats();
            assert!(
                s.bytes_to_unvalidated <= s.bytes_from_unvalidated,
                "node {j}: {s:?}"
            );
        }
    }
    (spent, drawn, took)
}

#[test]
fn a_spoofed_source_draws_no_more_bytes_than_were_sent_in_its_name() {
    // Without address validation (as before), the victim receives several times what the
    // spoofer sent, and the ring pings it afterwards.
    let (spent, drawn, _) = spoof_run(false);
    assert!(
        drawn > 2 * spent,
        "without validation: {drawn} bytes for {spent}"
    );
    // With it: never more than was sent in its name, and nobody takes it in.
    println!("without validation: {drawn} bytes drawn by {spent}");
    let (spent, drawn, took) = spoof_run(true);
    println!("with validation: {drawn} bytes drawn by {spent}");
    assert!(drawn <= spent, "{drawn} bytes drawn by {spent}");
    assert_eq!(took, 0);
}

#[test]
fn no_node_sends_an_unvalidated_address_more_than_it_received_from_it() {
    // The counted property, over a ring that forms, serves a client outside it (whose address
    // is challenged once per node), loses a node and heals.
    let mut sim = Sim::new(8, 50, 0);
    sim.build(ms(10));
    let mut c = client(50);
    let now = sim.now;
    let mut ids = StdVec::new();
    for k in 0..8u8 {
        let node = sim.addr(usize::from(k));
        ids.push(c.put(now, node, &[b'k', k], &[k; V]).unwrap());
    }
    exchange(&mut sim, &mut c, Duration::from_secs(3));
    let now = sim.now;
    for k in 0..8u8 {
        let node = sim.addr(usize::from(7 - k));
        ids.push(c.get(now, node, &[b'k', k]).unwrap());
    }
    exchange(&mut sim, &mut c, Duration::from_secs(3));
    let done = core::iter::from_fn(|| c.poll_event())
        .filter(|e| {
            matches!(
                e,
                Event::PutDone { .. } | Event::GetDone { value: Some(_), .. }
            )
        })
        .count();
    assert_eq!(done, 16);
    assert!(c.stats().challenges_answered > 0);
    sim.crash(3);
    sim.run_for(Duration::from_secs(5));
    let (mut from, mut to, mut challenges) = (0, 0, 0);
    for j in 0..8 {
        let s = sim.nodes[j].node.stats();
        assert!(
            s.bytes_to_unvalidated <= s.bytes_from_unvalidated,
            "node {j}: {s:?}"
        );
        from += s.bytes_from_unvalidated;
        to += s.bytes_to_unvalidated;
        challenges += s.challenges_sent;
    }
    assert!(to > 0 && challenges > 0, "{to} {challenges}");
    println!("unvalidated: {from} bytes in, {to} bytes out, {challenges} challenges");
}

#[test]
fn nodes_in_a_forged_join_list_are_probed_not_believed() {
    // Made-up ids are not bound to the addresses listed: refused unprobed. With binding off,
    // probed, and dropped for not answering.
    forged_join_list_run(true);
    forged_join_list_run(false);
}

fn forged_join_list_run(bind_ids: bool) {
    let mut sim = ring_binding(6, 51, bind_ids);
    let victim = 3;
    let v = sim.nodes[victim].node.local();
    let before: StdVec<NodeAddr> = sim.nodes[victim].node.leaf_set().left().collect();
    // An outside host (and then a member of the ring) lists four made-up nodes just below the
    // victim: they would replace its whole left side.
    let fakes: StdVec<NodeAddr> = (1..=4u8)
        .map(|k| NodeAddr {
            id: NodeId::from_u128(v.id.to_u128().wrapping_sub(u128::from(k))),
            addr: SocketAddr::from(([192, 0, 2, 200 + k], 9000)),
        })
        .collect();
    let member = sim.nodes[(victim + 1) % 6].node.local();
    let hints_before = sim.nodes[victim].node.stats().hints;
    for (from, mid) in [(outsider(8), 500u64), (member, 501)] {
        let join = Body::Join {
            side: Side::Left,
            nodes: NodeSet::Slice(&fakes),
        };
        ask(&mut sim, victim, from, mid, join);
        let left: StdVec<NodeAddr> = sim.nodes[victim].node.leaf_set().left().collect();
        assert_eq!(left, before, "the list was believed");
    }
    let hints_after = sim.nodes[victim].node.stats().hints;
    sim.run_for(Duration::from_secs(3));
    // The fakes never answered their probes: nobody holds them, every key keeps its owner.
    for j in sim.members() {
        for f in &fakes {
            assert!(sim.nodes[j].node.leaf_set().get(f.id).is_none(), "node {j}");
        }
    }
    assert!(sim.ring_errors().is_empty(), "{:?}", sim.ring_errors());
    let wrong = (0..1000)
        .filter(|k| {
            let key = format!("key {k}");
            let owner = sim.nodes[victim].node.owner_of(key.as_bytes());
            owner.addr != sim.addr(sim.true_owner(key.as_bytes()))
        })
        .count();
    assert_eq!(wrong, 0);
    let s = sim.nodes[victim].node.stats();
    if bind_ids {
        assert!(
            // At most the outsider itself (a real address) is probed, none of the fakes.
            hints_after <= hints_before + 1 && s.unbound_ids == 8,
            "{hints_before} {s:?}"
        );
    } else {
        assert!(
            hints_after >= hints_before + 4 && s.hints_dropped >= 4,
            "{s:?}"
        );
    }
}

/// One run of the chosen-ids attack: three attacker nodes, each with an address of its own,
/// join a ring of 6 under ids they chose — `from_name("door")`, to own the key `door`, and the
/// two ids just after it, to be its replicas. A member then writes `door`. Returns (ring
/// members whose view holds an attacker, attackers storing the value, the value a member
/// reads back, unbound ids counted by the ring).
fn chosen_ids_run(bind_ids: bool) -> (usize, usize, Option<StdVec<u8>>, u64) {
    let key = b"door";
    let mut sim = ring_binding(6, 52, bind_ids);
    let target = NodeId::from_name(key).to_u128();
    let attackers: StdVec<usize> = (0..3u8)
        .map(|k| {
            let i = sim.nodes.len();
            let mut c = bound_config(sim.port, 100 + usize::from(k));
            // The attacker's own nodes take any id (they do not check each other's).
            c.bind_ids = false;
            c.local.id = NodeId::from_u128(target.wrapping_add(u128::from(k)));
            sim.nodes.push(SimNode {
                node: Box::new(Node::new(c, TestRng(900 + u64::from(k)))),
                alive: true,
                started: false,
                events: StdVec::new(),
                next_timer: None,
            });
            sim.index.insert(c.local.addr, i);
            i
        })
        .collect();
    for &a in &attackers {
        let entry = sim.addr(0);
        let now = sim.now;
        sim.node(a).join(now, entry).unwrap();
        sim.nodes[a].started = true;
        sim.flush(a);
        sim.run_for(ms(300));
    }
    sim.run_for(Duration::from_secs(3));
    let bad: StdVec<NodeId> = attackers
        .iter()
        .map(|&a| sim.nodes[a].node.local().id)
        .collect();
    let members: StdVec<usize> = (0..6).collect();
    let fooled = members
        .iter()
        .filter(|&&j| {
            sim.nodes[j]
                .node
                .leaf_set()
                .nodes()
                .any(|n| bad.contains(&n.id))
        })
        .count();
    let now = sim.now;
    let put = sim.node(1).put(now, key, b"real").unwrap();
    sim.flush(1);
    sim.run_for(ms(500));
    assert!(
        matches!(sim.outcome(1, put), Some((_, Event::PutDone { .. }))),
        "{:?}",
        sim.outcome(1, put)
    );
    let holding = attackers
        .iter()
        .filter(|&&a| sim.nodes[a].node.stored(key).is_some())
        .count();
    let read = get_value(&mut sim, 4, key);
    let unbound = members
        .iter()
        .map(|&j| sim.nodes[j].node.stats().unbound_ids)
        .sum();
    (fooled, holding, read, unbound)
}

#[test]
fn ids_chosen_to_own_a_key_and_its_replicas_are_refused() {
    // Without binding (as before), the attackers own `door` and hold every copy of it.
    let (fooled, holding, _, _) = chosen_ids_run(false);
    assert!(fooled > 0 && holding == 3, "{fooled} {holding}");
    // With ids bound to addresses: no member takes them, no copy is theirs, the value is read
    // back from the ring.
    let (fooled, holding, read, unbound) = chosen_ids_run(true);
    assert_eq!((fooled, holding), (0, 0));
    assert_eq!(read.as_deref(), Some(&b"real"[..]));
    assert!(unbound > 0);
}

#[test]
fn a_replica_acknowledges_the_value_it_holds_from_a_new_owner_it_does_not_know_yet() {
    // An owner crashes; only its successor has noticed. The successor, now the owner, sends
    // the value again to the other replica, which still sees the crashed node as the owner
    // but holds exactly that value: it acknowledges (nothing is taken) instead of refusing
    // (the sinew demo's ~30 Error messages after its crash were mostly these refusals).
    let mut sim = ring(6, 53);
    let owner = 2;
    let key = key_owned_by(&sim, owner);
    let key = key.as_bytes();
    let now = sim.now;
    let put = sim.node(0).put(now, key, b"kept").unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(0, put),
        Some((_, Event::PutDone { .. }))
    ));
    let o = sim.nodes[owner].node.local();
    let next = sim.index[&sim.nodes[owner]
        .node
        .leaf_set()
        .nearest_right()
        .unwrap()
        .addr];
    let other = sim.index[&sim.nodes[next]
        .node
        .leaf_set()
        .nearest_right()
        .unwrap()
        .addr];
    assert_eq!(sim.nodes[other].node.stored(key), Some(&b"kept"[..]));
    let refused_before = sim.nodes[other].node.stats().replicates_refused;
    sim.crash(owner);
    let now = sim.now;
    sim.node(next).handle_peer_down(now, o.addr);
    sim.flush(next);
    sim.run_for(ms(150));
    // `other` has not noticed the crash yet...
    assert_eq!(sim.nodes[other].node.owner_of(key), o);
    // ...and took the new owner's copy of the value it holds without refusing it.
    assert_eq!(sim.nodes[other].node.stored(key), Some(&b"kept"[..]));
    assert_eq!(
        sim.nodes[other].node.stats().replicates_refused,
        refused_before
    );
}

/// One run of the store-filling attack: an outside host puts 64 new keys that node 2 owns,
/// straight to node 2, one every 30 ms; then a client (another address, through node 0) puts
/// a new key node 2 owns. Returns (the attacker's puts acknowledged, its `Full` answers, the
/// client's put acknowledged, node 2's `over_share` count, node 2's stored keys).
fn store_filling_run(store_share: u8) -> (usize, usize, bool, u64, usize) {
    let mut sim = Sim::with_config(5, 54, 0, |_, c| c.with_store_share(store_share));
    sim.build(ms(10));
    sim.run_for(ms(2100));
    let victim = 2;
    let eve = outsider(9);
    let keys: StdVec<String> = (0..)
        .map(|k| format!("junk {k}"))
        .filter(|k| sim.true_owner(k.as_bytes()) == victim)
        .take(64)
        .collect();
    // The attacker receives at its address (a forged source would take nothing at all).
    prove(&mut sim, victim, eve);
    let (mut acked, mut full) = (0, 0);
    let mut count = |answers: StdVec<StdVec<u8>>| {
        for a in answers {
            match Message::parse(&a).unwrap().body {
                Body::PutAck { .. } => acked += 1,
                Body::Error {
                    code: ErrorCode::Full,
                } => full += 1,
                b => panic!("{b:?}"),
            }
        }
    };
    for (k, key) in keys.iter().enumerate() {
        let put = Body::Put {
            key: key.as_bytes(),
            value: b"junk",
        };
        count(ask(&mut sim, victim, eve, 700 + k as u64, put));
        sim.run_for(ms(30));
        let later: StdVec<StdVec<u8>> = sim
            .outside
            .iter()
            .filter(|(_, to, _)| *to == eve.addr)
            .map(|(_, _, b)| b.clone())
            .collect();
        sim.outside.retain(|(_, to, _)| *to != eve.addr);
        count(later);
    }
    // A legitimate client's put of a new key the victim owns, through another node.
    let key = (0..)
        .map(|k| format!("mine {k}"))
        .find(|k| sim.true_owner(k.as_bytes()) == victim)
        .unwrap();
    let mut c = client(54);
    let now = sim.now;
    let entry = sim.addr(0);
    let put = c.put(now, entry, key.as_bytes(), b"legit").unwrap();
    exchange(&mut sim, &mut c, Duration::from_secs(2));
    let done = client_events(&mut c).contains(&Event::PutDone { id: put });
    let s = *sim.nodes[victim].node.stats();
    (
        acked,
        full,
        done,
        s.over_share,
        sim.nodes[victim].node.stored_len(),
    )
}

#[test]
fn one_sender_cannot_fill_a_nodes_store() {
    // Without a share (as before): the attacker fills the store and the client is refused.
    let (acked, full, done, _, stored) = store_filling_run(100);
    println!(
        "no share: {acked} acknowledged, {full} Full, client's put done: {done}, {stored} keys"
    );
    assert!(stored == 64 && !done, "{acked} {full} {done} {stored}");
    // With the default share (25 %): the attacker gets 16 of the victim's 64 slots and then
    // Full; the client's put still succeeds.
    let (acked, full, done, over, stored) = store_filling_run(25);
    println!(
        "share 25%: {acked} acknowledged, {full} Full, client's put done: {done}, {stored} keys"
    );
    assert_eq!((acked, full), (16, 48));
    assert_eq!(over, 48);
    assert!(done);
}

/// One run of the relay-filling attack: node 3 is cut off; an outside host sends node 0 thirty
/// gets of keys node 3 owns at once (each waits at node 0 for half a request timeout), and a
/// client then gets a key a live node owns through node 0. Returns (the attacker's `Full`
/// answers, whether the client's get was answered, node 0's `over_share` count).
fn relay_filling_run(relay_share: u8) -> (usize, bool, u64) {
    let mut sim = Sim::with_config(6, 55, 0, |_, c| c.with_relay_share(relay_share));
    sim.build(ms(10));
    sim.run_for(ms(2100));
    let (entry, dead) = (0, 3);
    let keys: StdVec<String> = (0..)
        .map(|k| format!("far {k}"))
        .filter(|k| sim.true_owner(k.as_bytes()) == dead)
        .take(30)
        .collect();
    sim.crash(dead);
    let eve = outsider(10);
    // The attacker receives at its address (an unproved one takes no slot at all).
    prove(&mut sim, entry, eve);
    let mut full = 0;
    for (k, key) in keys.iter().enumerate() {
        let get = Body::Get {
            key: key.as_bytes(),
        };
        for a in ask(&mut sim, entry, eve, 800 + k as u64, get) {
            if Message::parse(&a).unwrap().body
                == (Body::Error {
                    code: ErrorCode::Full,
                })
            {
                full += 1;
            }
        }
    }
    let key = "near";
    assert_ne!(
        sim.nodes[entry].node.owner_of(key.as_bytes()).addr,
        sim.addr(dead)
    );
    let mut c = client(55);
    let now = sim.now;
    let to = sim.addr(entry);
    let get = c.get(now, to, key.as_bytes()).unwrap();
    exchange(&mut sim, &mut c, ms(300));
    let answered = client_events(&mut c)
        .iter()
        .any(|e| matches!(e, Event::GetDone { id, .. } if *id == get));
    (full, answered, sim.nodes[entry].node.stats().over_share)
}

#[test]
fn one_sender_cannot_take_a_nodes_relay_slots() {
    // Without a share: the attacker's requests take every slot and the client is refused.
    let (full, answered, _) = relay_filling_run(100);
    assert!(!answered, "{full}");
    // With the default share (50 %): 16 of node 0's 32 slots, the rest Full; the client is
    // served.
    let (full, answered, over) = relay_filling_run(50);
    assert_eq!((full, over), (14, 14));
    assert!(answered);
}

/// A node with ids and validation unchecked (both off: what the `dht_node` fuzz target's
/// lying member found behind them), with `members` taken in through their own InitConnects.
fn trusting_node(members: &[NodeAddr]) -> Node {
    let mut a = node_with(1 << 120, 0);
    for (k, m) in members.iter().enumerate() {
        a.handle_datagram(Instant::ZERO, m.addr, &msg(k as u64, *m, Body::InitConnect));
    }
    drain(&mut a, Instant::ZERO);
    for m in members {
        assert_eq!(a.leaf_set().get(m.id), Some(*m));
    }
    a
}

#[test]
fn a_probe_answered_at_a_listed_address_evicts_no_member_of_another_address() {
    // The liar lists a node's id at its own address, and the node probes that hint there;
    // meanwhile the id's real holder joins from its own address. The liar answers the probe
    // as itself. Before the fix, "another node answers at that address: the one pinged is
    // gone" evicted the member holding that id, at its own address.
    let p = NodeAddr {
        id: NodeId::from_u128(2 << 120),
        addr: addr(2),
    };
    let liar = NodeAddr {
        id: NodeId::from_u128(3 << 120),
        addr: addr(3),
    };
    // A second address of the liar's lists the node; the probe goes to the liar's first.
    let liar2 = NodeAddr {
        id: NodeId::from_u128(4 << 120),
        addr: addr(5),
    };
    let mut a = trusting_node(&[]);
    let list = [NodeAddr {
        id: p.id,
        addr: liar.addr,
    }];
    let join = Body::Join {
        side: Side::Right,
        nodes: NodeSet::Slice(&list),
    };
    a.handle_datagram(Instant::ZERO, liar2.addr, &msg(50, liar2, join));
    let later = Instant::ZERO;
    // The hint's probe goes out; then the real holder joins; then the liar answers.
    let pings: StdVec<u64> = drain(&mut a, later)
        .into_iter()
        .filter(|(to, _)| *to == liar.addr)
        .map(|(_, b)| Message::parse(&b).unwrap().header.message_id)
        .collect();
    assert!(!pings.is_empty(), "the hint was not probed");
    a.handle_datagram(later, p.addr, &msg(51, p, Body::InitConnect));
    drain(&mut a, later);
    assert_eq!(a.leaf_set().get(p.id), Some(p));
    for id in pings {
        let answer = Body::Join {
            side: Side::Left,
            nodes: NodeSet::Slice(&[]),
        };
        a.handle_datagram(later, liar.addr, &msg(id, liar, answer));
    }
    assert_eq!(a.leaf_set().get(p.id), Some(p));
    assert!(
        events(&mut a)
            .iter()
            .all(|e| *e != Event::NeighbourDown { node: p })
    );
}

#[test]
fn a_forwarded_insertion_inserts_no_one_on_the_forwarders_word() {
    // The liar forwards the insertion of a made-up joiner that this node would take as its
    // nearest neighbour. Before the fix (with address validation off) it was inserted, and
    // announced to the leaf set; now the joiner is only referred to this node (it must ask
    // itself), and the view is unchanged.
    let p = NodeAddr {
        id: NodeId::from_u128(9 << 120),
        addr: addr(2),
    };
    let liar = NodeAddr {
        id: NodeId::from_u128(10 << 120),
        addr: addr(3),
    };
    let mut a = trusting_node(&[p, liar]);
    let fake = NodeAddr {
        id: NodeId::from_u128((1 << 120) - 5),
        addr: addr(4),
    };
    let ins = Body::RequestInsertion { joining: fake };
    let insertions = a.stats().insertions;
    a.handle_datagram(Instant::ZERO, liar.addr, &msg(60, liar, ins));
    assert!(
        a.leaf_set().get(fake.id).is_none(),
        "inserted on the liar's word"
    );
    let out = drain(&mut a, Instant::ZERO);
    // Only the referral (one Join), to the joiner itself; nothing announced to the members.
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out.iter().all(|(to, _)| *to == fake.addr));
    assert_eq!(a.stats().insertions, insertions);
}

#[test]
fn a_new_replica_that_does_not_know_the_owner_yet_is_asked_less_and_less_often() {
    // After a crash only the successor has noticed, the successor (the new owner) replicates
    // to the node after its old replicas, which lacks the key and still sees the crashed
    // node as the owner: it refuses each attempt. The new owner waits twice as long after
    // each refusal (up to a probation): at most 4 refusals in 1.5 s here, where asking again
    // every request timeout (200 ms, as before) drew 8.
    let mut sim = ring(8, 56);
    let owner = 2;
    let key = key_owned_by(&sim, owner);
    let key = key.as_bytes();
    let now = sim.now;
    let put = sim.node(0).put(now, key, b"kept").unwrap();
    sim.flush(0);
    sim.run_for(ms(100));
    assert!(matches!(
        sim.outcome(0, put),
        Some((_, Event::PutDone { .. }))
    ));
    let o = sim.nodes[owner].node.local();
    let right: StdVec<usize> = sim.nodes[owner]
        .node
        .leaf_set()
        .right()
        .map(|n| sim.index[&n.addr])
        .collect();
    let (next, third) = (right[0], right[2]);
    assert_eq!(sim.nodes[third].node.stored(key), None);
    sim.crash(owner);
    let now = sim.now;
    sim.node(next).handle_peer_down(now, o.addr);
    sim.flush(next);
    // Nobody else is told; `third` only pings the crashed node now and then.
    sim.run_for(ms(1500));
    let refused = sim.nodes[third].node.stats().replicates_refused;
    assert!((1..=4).contains(&refused), "{refused}");
}

// ------------------------------------------------------------------------------------------
// Relayed requests: end-to-end budgets and accountable origins (issues 10 item 2, 11 item 5).

/// Node `i` is sent `body` from `from`, an outside host that receives at its address: a
/// Challenge it answers (echoes) and then sends the request again. The other answers.
fn ask_proving(
    sim: &mut Sim,
    i: usize,
    from: NodeAddr,
    message_id: u64,
    body: Body<'_>,
) -> StdVec<StdVec<u8>> {
    let answers = ask(sim, i, from, message_id, body);
    let cookie = answers
        .iter()
        .find_map(|a| cookie_of(&Message::parse(a).unwrap()));
    match cookie {
        Some(c) => {
            ask(sim, i, from, c, Body::Echo);
            ask(sim, i, from, message_id, body)
        }
        None => answers,
    }
}

/// Takes the messages sent to `to` outside the simulation so far off the network.
fn take_outside(sim: &mut Sim, to: SocketAddr) -> StdVec<StdVec<u8>> {
    let mut out = StdVec::new();
    sim.outside.retain(|(_, t, b)| {
        if *t == to {
            out.push(b.clone());
            false
        } else {
            true
        }
    });
    out
}

/// A ring of 40 whose prefix tables had time to fill (requests take several hops).
fn big_ring(seed: u64) -> Sim {
    let mut sim = ring(40, seed);
    sim.run_for(Duration::from_secs(4));
    sim
}

fn relays(sim: &Sim) -> u64 {
    sim.each_node().map(|s| s.node.stats().forwarded).sum()
}

/// `count` keys with `prefix` that node `owner` owns.
fn keys_owned_by(sim: &Sim, owner: usize, prefix: &str, count: usize) -> StdVec<String> {
    (0..)
        .map(|k| format!("{prefix} {k}"))
        .filter(|k| sim.true_owner(k.as_bytes()) == owner)
        .take(count)
        .collect()
}

#[test]
fn an_outsider_gets_its_store_share_of_an_owner_whatever_path_its_puts_take() {
    // Before relayed requests carried their origin, the owner charged a put to the node that
    // delivered it — a leaf-set member, exempt — so 64 puts sent through the other members
    // all took a slot.
    let mut sim = big_ring(61);
    let victim = 7;
    let eve = outsider(20);
    let keys = keys_owned_by(&sim, victim, "junk", 64);
    let entries: StdVec<usize> = (0..40).filter(|&i| i != victim).collect();
    let before = relays(&sim);
    let (mut acked, mut full) = (0, 0);
    let mut count = |answers: StdVec<StdVec<u8>>| {
        for a in answers {
            match Message::parse(&a).unwrap().body {
                Body::PutAck { .. } => acked += 1,
                Body::Error {
                    code: ErrorCode::Full,
                } => full += 1,
                Body::Challenge | Body::Withheld { .. } => {}
                b => panic!("{b:?}"),
            }
        }
    };
    for (k, key) in keys.iter().enumerate() {
        let entry = entries[k % entries.len()];
        let put = Body::Put {
            key: key.as_bytes(),
            value: b"junk",
        };
        count(ask_proving(&mut sim, entry, eve, 900 + k as u64, put));
        sim.run_for(ms(30));
        let later = take_outside(&mut sim, eve.addr);
        count(later);
    }
    sim.run_for(ms(500));
    let later = take_outside(&mut sim, eve.addr);
    count(later);
    let hops = relays(&sim) - before;
    let stored = keys
        .iter()
        .filter(|k| sim.nodes[victim].node.stored(k.as_bytes()).is_some())
        .count();
    let share = 64 * 25 / 100;
    let over = sim.nodes[victim].node.stats().over_share;
    println!(
        "{stored} of 64 stored, {acked} acknowledged, {full} Full, {hops} relays, {over} over share"
    );
    // The multi-hop case: more relays than puts.
    assert!(hops > 64, "{hops}");
    assert!(stored <= share, "{stored}");
    assert!(acked <= share, "{acked}");
    assert_eq!(acked + full, 64);
    assert!(over >= 64 - share as u64, "{over}");
    // An honest client's put of a new key the victim owns still succeeds.
    let key = keys_owned_by(&sim, victim, "mine", 1).remove(0);
    let mut c = client(61);
    let now = sim.now;
    let entry = sim.addr(0);
    let put = c.put(now, entry, key.as_bytes(), b"legit").unwrap();
    exchange(&mut sim, &mut c, Duration::from_secs(2));
    assert!(client_events(&mut c).contains(&Event::PutDone { id: put }));
    assert_eq!(
        sim.nodes[victim].node.stored(key.as_bytes()),
        Some(&b"legit"[..])
    );
}

#[test]
fn a_member_naming_invented_origins_gets_its_relay_share_and_they_are_sent_nothing() {
    let mut sim = big_ring(62);
    let victim = 9;
    // A leaf-set member of the victim (it proved its address long ago) lies about origins.
    let liar = sim.nodes[victim].node.leaf_set().nearest_left().unwrap();
    let keys = keys_owned_by(&sim, victim, "lie", 64);
    let invented = |k: usize| NodeAddr::bound(SocketAddr::from(([198, 51, 100, k as u8], 9000)));
    for (k, key) in keys.iter().enumerate() {
        let relayed = Body::Relayed {
            budget_ms: 150,
            origin: invented(k),
            request: RelayedRequest::Put {
                key: key.as_bytes(),
                value: b"lie",
            },
        };
        ask(&mut sim, victim, liar, 1000 + k as u64, relayed);
        sim.run_for(ms(30));
    }
    sim.run_for(ms(500));
    let stored = keys
        .iter()
        .filter(|k| sim.nodes[victim].node.stored(k.as_bytes()).is_some())
        .count();
    let over = sim.nodes[victim].node.stats().over_share;
    println!("{stored} of 64 stored, {over} over share");
    assert_eq!(stored, 64 * 50 / 100);
    assert_eq!(over, 64 - 32);
    // Nothing ever went to an invented origin.
    let to_invented = sim
        .outside
        .iter()
        .filter(|(_, to, _)| (0..64).any(|k| *to == invented(k).addr))
        .count();
    assert_eq!(to_invented, 0);
}

#[test]
fn an_outsider_gets_its_store_share_of_an_owners_lock_table() {
    // Before, the lock table had no quota: 64 locks from one outsider took 64 entries.
    let mut sim = big_ring(63);
    let victim = 11;
    let eve = outsider(21);
    let keys = keys_owned_by(&sim, victim, "door", 64);
    let entries: StdVec<usize> = (0..40).filter(|&i| i != victim).collect();
    let (mut locked, mut full) = (0, 0);
    let mut count = |answers: StdVec<StdVec<u8>>| {
        for a in answers {
            match Message::parse(&a).unwrap().body {
                Body::Locked { .. } => locked += 1,
                Body::Error {
                    code: ErrorCode::Full,
                } => full += 1,
                Body::Challenge | Body::Withheld { .. } => {}
                b => panic!("{b:?}"),
            }
        }
    };
    for (k, key) in keys.iter().enumerate() {
        let entry = entries[k % entries.len()];
        let lock = Body::Lock {
            key: key.as_bytes(),
            token: LockToken::derive(b"eve", key.as_bytes()),
            lease_ms: 2000,
        };
        count(ask_proving(&mut sim, entry, eve, 1100 + k as u64, lock));
        sim.run_for(ms(20));
        let later = take_outside(&mut sim, eve.addr);
        count(later);
    }
    let now = sim.now;
    let held = keys
        .iter()
        .filter(|k| {
            sim.nodes[victim].node.lock_holder(now, k.as_bytes())
                == Some(LockToken::derive(b"eve", k.as_bytes()))
        })
        .count();
    println!("{held} of 64 locks held by the outsider, {locked} Locked, {full} Full");
    assert!(held <= 64 * 25 / 100, "{held}");
    assert_eq!(locked, held);
    assert_eq!(locked + full, 64);
    // A member's own lock on another key the victim owns is granted.
    let key = keys_owned_by(&sim, victim, "mine", 1).remove(0);
    let now = sim.now;
    let id = sim.node(3).lock(now, key.as_bytes(), ms(1000)).unwrap();
    sim.flush(3);
    sim.run_for(ms(300));
    assert!(matches!(
        sim.outcome(3, id),
        Some((_, Event::Locked { .. }))
    ));
    let token = sim.nodes[3].node.lock_token(key.as_bytes());
    let now = sim.now;
    assert_eq!(
        sim.nodes[victim].node.lock_holder(now, key.as_bytes()),
        Some(token)
    );
}

#[test]
fn puts_and_locks_from_forged_sources_take_no_slot() {
    // An attacker forges the source address of a host that never answers (the header and
    // the datagram's source agree, so nothing tells it apart but the round trip).
    let mut sim = ring(8, 64);
    let victim = 3;
    let forged = outsider(30);
    let keys = keys_owned_by(&sim, victim, "forged", 16);
    let stored_before = sim.nodes[victim].node.stored_len();
    let forwarded_before = relays(&sim);
    let mut sent = StdVec::new();
    for (k, key) in keys.iter().enumerate() {
        let key = key.as_bytes();
        // Straight to the owner, and through another member.
        let via = if k % 2 == 0 { victim } else { (victim + 4) % 8 };
        let put = Body::Put { key, value: b"x" };
        let lock = Body::Lock {
            key,
            token: LockToken::derive(b"forger", key),
            lease_ms: 2000,
        };
        sent.extend(ask(&mut sim, via, forged, 1200 + k as u64, put));
        sent.extend(ask(&mut sim, via, forged, 1300 + k as u64, lock));
        sim.run_for(ms(20));
    }
    sim.run_for(ms(500));
    let now = sim.now;
    for key in &keys {
        assert_eq!(sim.nodes[victim].node.stored(key.as_bytes()), None);
        assert_eq!(
            sim.nodes[victim].node.lock_holder(now, key.as_bytes()),
            None
        );
    }
    assert_eq!(sim.nodes[victim].node.stored_len(), stored_before);
    assert_eq!(relays(&sim), forwarded_before, "nothing forwarded");
    // The forged host was sent Withhelds only (51 bytes, no more than any of the requests),
    // one per request, each naming its request.
    sent.extend(take_outside(&mut sim, forged.addr));
    assert_eq!(sent.len(), 32);
    let mut named: StdVec<u64> = sent
        .iter()
        .map(|b| {
            let m = Message::parse(b).unwrap();
            assert!(matches!(m.body, Body::Withheld { .. }), "{m:?}");
            assert_eq!(b.len(), HEADER_LEN + 8);
            m.header.message_id
        })
        .collect();
    named.sort_unstable();
    let asked: StdVec<u64> = (1200..1216).chain(1300..1316).collect();
    assert_eq!(named, asked);
    let challenged: u64 = sim.each_node().map(|s| s.node.stats().challenged).sum();
    assert_eq!(challenged, 32);
}

#[test]
fn relays_hold_a_request_no_longer_than_its_budget() {
    // A get from an outside host enters at a node far from the key's owner, which stops
    // answering (its messages are held). Each node on the path answers NotOwner when the
    // budget it received runs out: a node further down answers before the node it answers
    // (before, every relay waited half a request timeout from its own send, so each one
    // further down answered later than the node waiting for it, after that node had given
    // up), and the entry answers within the request timeout.
    let mut sim = big_ring(65);
    // Every datagram spends at least 2 ms on the way, so that each answer is seen in flight.
    sim.nodes.set_latency(crate::sim::Latency::Uniform {
        min: ms(2),
        max: ms(10),
    });
    let owner = 5;
    let eve = outsider(22);
    let timeout = sim.nodes[0].node.config().request_timeout;
    for (k, key) in keys_owned_by(&sim, owner, "slow", 40).iter().enumerate() {
        let entry = (owner + 20 + k) % 40;
        if entry == owner {
            continue;
        }
        prove(&mut sim, entry, eve);
        sim.hold = Some(owner);
        let start = sim.now;
        let get = Body::Get {
            key: key.as_bytes(),
        };
        let mut answered: BTreeMap<SocketAddr, (Instant, SocketAddr)> = BTreeMap::new();
        let now = sim.now;
        sim.node(entry)
            .handle_datagram(now, eve.addr, &msg(1400 + k as u64, eve, get));
        sim.flush(entry);
        let mut entry_answer = None;
        while sim.now < start + timeout + ms(50) {
            sim.run_for(ms(1));
            // What is in flight now (looked at, and put back as it was).
            let flying = sim.nodes.take_in_flight(|_| true);
            for p in &flying {
                if let Ok(m) = Message::parse(&p.bytes)
                    && m.body
                        == (Body::Error {
                            code: ErrorCode::NotOwner,
                        })
                {
                    let to = sim.nodes[p.to].node.local().addr;
                    answered.entry(p.from).or_insert((sim.now, to));
                }
            }
            for p in flying {
                sim.nodes.put_in_flight(p);
            }
            if entry_answer.is_none() && !take_outside(&mut sim, eve.addr).is_empty() {
                entry_answer = Some(sim.now);
            }
        }
        sim.release();
        sim.run_for(Duration::from_secs(1));
        if answered.is_empty() {
            continue; // No relay behind the entry: try a longer path.
        }
        println!(
            "entry answered after {:?}; relays: {:?}",
            entry_answer.map(|t| t - start),
            answered
                .values()
                .map(|(t, _)| *t - start)
                .collect::<StdVec<_>>()
        );
        let entry_at = entry_answer.expect("the entry answers");
        assert!(entry_at <= start + timeout, "{:?}", entry_at - start);
        for (relay, (at, upstream)) in &answered {
            let upstream_at = answered.get(upstream).map_or(entry_at, |(t, _)| *t);
            assert!(
                *at < upstream_at,
                "{relay} answered at {:?}, after its upstream {upstream} ({:?})",
                *at - start,
                upstream_at - start
            );
        }
        return;
    }
    panic!("no path with a relay behind the entry found");
}

#[test]
fn a_request_whose_budget_cannot_cover_another_hop_is_answered_expired_at_once() {
    let mut sim = ring(8, 66);
    let relay = 2;
    let member = sim.nodes[relay].node.leaf_set().nearest_left().unwrap();
    // A key the relay forwards (it does not own it).
    let key = (0..)
        .map(|k| format!("far {k}"))
        .find(|k| {
            let o = sim.true_owner(k.as_bytes());
            o != relay && sim.addr(o) != member.addr
        })
        .unwrap();
    let forwarded = sim.nodes[relay].node.stats().forwarded;
    let relayed = |budget_ms| Body::Relayed {
        budget_ms,
        origin: outsider(40),
        request: RelayedRequest::Get {
            key: key.as_bytes(),
        },
    };
    let allowance = millis(sim.nodes[relay].node.config().hop_allowance) as u16;
    // Two allowances: one for the answer's way back, none left for a further hop.
    let answers = ask(&mut sim, relay, member, 77, relayed(2 * allowance));
    assert_eq!(answers.len(), 1);
    assert_eq!(
        Message::parse(&answers[0]).unwrap().body,
        Body::Error {
            code: ErrorCode::Expired
        }
    );
    assert_eq!(sim.nodes[relay].node.stats().expired, 1);
    assert_eq!(sim.nodes[relay].node.stats().forwarded, forwarded);
    // With room for another hop, it is forwarded.
    let answers = ask(&mut sim, relay, member, 78, relayed(2 * allowance + 10));
    assert!(answers.is_empty());
    assert_eq!(sim.nodes[relay].node.stats().forwarded, forwarded + 1);
}

#[test]
fn a_request_sent_again_while_it_is_relayed_takes_no_second_slot() {
    // A client sends a get again (same message id) after a Challenge while the node still
    // relays the first copy: the node drops the copy (the answer on its way serves both).
    let mut sim = ring(5, 71);
    sim.run_for(Duration::from_secs(2));
    let owner = 3;
    let entry = 1;
    let eve = outsider(23);
    prove(&mut sim, entry, eve);
    let key = keys_owned_by(&sim, owner, "again", 1).remove(0);
    let get = Body::Get {
        key: key.as_bytes(),
    };
    let forwarded = relays(&sim);
    let now = sim.now;
    for _ in 0..2 {
        sim.node(entry)
            .handle_datagram(now, eve.addr, &msg(0x5e5e, eve, get));
    }
    sim.flush(entry);
    assert_eq!(sim.node(entry).stats().duplicates, 1);
    assert_eq!(relays(&sim), forwarded + 1, "forwarded once");
    sim.run_for(ms(200));
    let answers = take_outside(&mut sim, eve.addr);
    assert_eq!(answers.len(), 1, "one answer");
}

/// An attack on a node's own request: a host at a third address sends a Withheld naming the
/// id of the node's live Join (and the entry's id in its header). The node matches a Withheld
/// on the source address too: it sends nothing (no Echo to the third address, no Join again)
/// and counts it unmatched. The entry's real Withheld of the same Join draws one Echo and the
/// Join again, both to the entry.
#[test]
fn a_withheld_from_a_third_address_naming_a_live_request_is_ignored_by_a_node() {
    let entry = NodeAddr::bound(SocketAddr::from(([10, 0, 0, 1], 7000)));
    let third = outsider(9);
    let me = NodeAddr::bound(SocketAddr::from(([10, 0, 0, 5], 7000)));
    let mut node = Node::new(Config::new(me), TestRng(77));
    let t = Instant::ZERO;
    node.join(t, entry.addr).unwrap();
    let sent = |node: &mut Node| {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let mut out = StdVec::new();
        while let Some(tx) = node.poll_transmit(t, &mut buf) {
            let m = Message::parse(&buf[..tx.len]).unwrap();
            out.push((m.header.message_id, m.body.kind(), tx.destination));
        }
        out
    };
    let first = sent(&mut node);
    assert_eq!(first.len(), 1, "{first:?}");
    let (live, kind, to) = first[0];
    assert_eq!(to, entry.addr);
    // Naming the entry in its header: the header's address is not the source.
    let forged = msg(live, entry, Body::Withheld { cookie: 0xbad });
    assert_eq!(
        node.handle_datagram(t, third.addr, &forged),
        Disposition::Dropped(DropReason::SourceMismatch)
    );
    // Naming itself: no request of that id went to it.
    let own = msg(live, third, Body::Withheld { cookie: 0xbad });
    assert_eq!(
        node.handle_datagram(t, third.addr, &own),
        Disposition::Dropped(DropReason::Unmatched)
    );
    node.handle_timeout(t);
    assert_eq!(
        sent(&mut node),
        StdVec::new(),
        "nothing sent, nothing sent again"
    );
    assert_eq!(node.stats().unmatched, 1);
    assert_eq!(node.stats().source_mismatch, 1);
    assert_eq!(node.stats().challenges_answered, 0);
    assert_eq!(node.stats().bytes_to_unvalidated, 0);
    let real = msg(live, entry, Body::Withheld { cookie: 0x600d });
    assert_eq!(
        node.handle_datagram(t, entry.addr, &real),
        Disposition::Handled
    );
    node.handle_timeout(t);
    let again = sent(&mut node);
    assert_eq!(again[0], (0x600d, Kind::Echo, entry.addr), "{again:?}");
    assert!(
        again[1..]
            .iter()
            .any(|&(_, k, to)| k == kind && to == entry.addr),
        "{again:?}"
    );
}
