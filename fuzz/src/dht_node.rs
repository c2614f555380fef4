//! `dht_node`: a [`DhtNode`] with tiny capacities fed arbitrary messages, answers to its own
//! transmissions, time and API calls, checked after every step.
//!
//! Invariants:
//! * every transmitted message parses, fits [`DhtNode::MAX_TRANSMIT_LEN`] (and so one
//!   datagram), carries the node itself as sender, and never goes to the node's own address;
//! * a drain of [`DhtNode::poll_transmit`] ends;
//! * every message handed in is counted once in [`Stats::received`], every malformed one in
//!   [`Stats::malformed`];
//! * an outcome event names a request this script made, and no request gets two outcomes;
//! * the leaf set never holds the node itself and never more than `L` per side; the store never
//!   holds more than `KEYS` keys;
//! * after [`DhtNode::leave`], messages are dropped as departed.
//!
//! A lying member ([`LIAR`], a peer with an address of its own that it never forges) sends
//! Leaves and InitConnects under other peers' ids, Join lists and RequestInsertions of made-up
//! nodes (chosen ids at others' addresses), and Replicates of any key and value, under its own
//! id or another's, with fresh message ids or ones of messages sent to it. After each:
//! * **no node evicted by another's word**: no leaf-set member at another address than the
//!   liar's left the leaf set;
//! * **no acknowledged put lost**: no value the node held changed, unless the liar is the
//!   key's owner by the node's view (then it is a write, replicated by its owner), or the
//!   node dropped a copy it no longer keeps for anyone (not the owner nor a replica by its
//!   view) to make room;
//! * and at every step, **no lock held twice**: the node never holds a lock for one token
//!   while the lease it granted another token on that key runs.
//!
//! Peers' ids are bound to their addresses; three inputs in four run with
//! [`Config::bind_ids`] on (the default), one in four with it off (the defences behind it).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Result, Unstructured};
use sinew_proto::dht::{
    Body, Config, DhtNode, Disposition, DropReason, ErrorCode, Header, LockToken, Message,
    NodeAddr, NodeId, NodeSet, RelayedRequest, RequestId, Side,
};
use sinew_proto::time::Instant;

use crate::rng::FuzzRng;

const L: usize = 2;
const KEYS: usize = 4;
type Node = DhtNode<FuzzRng, L, KEYS, 8, 16, 6>;

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages handed to the node.
    pub messages: u64,
    /// Messages the node sent.
    pub sent: u64,
    /// Outcome events of the script's own requests.
    pub outcomes: u64,
    /// Whether the node was ever in a ring with others.
    pub had_neighbours: bool,
}

/// The peers messages come from, with the ids bound to their addresses.
fn peer(i: u8) -> NodeAddr {
    let i = i % 6;
    let addr = match i {
        3 => SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3)), 7000),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i)), 7000),
    };
    NodeAddr::bound(addr)
}

/// The lying member: `peer(LIAR)`.
const LIAR: u8 = 5;

fn local() -> NodeAddr {
    NodeAddr::bound(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)),
        7000,
    ))
}

const KEY_CHOICES: [&[u8]; 4] = [b"a", b"b", b"key", b"12345678"];

fn key<'a>(u: &mut Unstructured<'a>) -> Result<&'a [u8]> {
    if u.ratio(1, 8)? {
        let len = u.int_in_range(0..=12)?;
        return u.bytes(len.min(u.len()));
    }
    Ok(KEY_CHOICES[usize::from(u.int_in_range(0..=3u8)?)])
}

fn value<'a>(u: &mut Unstructured<'a>) -> Result<&'a [u8]> {
    let len = u.int_in_range(0..=20)?;
    u.bytes(len.min(u.len()))
}

fn sender(u: &mut Unstructured<'_>) -> Result<NodeAddr> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => local(),
        1 => NodeAddr {
            id: local().id,
            addr: peer(1).addr,
        },
        2 => u.arbitrary()?,
        i => peer(i),
    })
}

struct Harness {
    node: Node,
    now: Instant,
    /// Recent transmissions: (destination, bytes).
    recent: Vec<(SocketAddr, Vec<u8>)>,
    issued: BTreeSet<RequestId>,
    answered: BTreeSet<RequestId>,
    handed: u64,
    malformed: u64,
    left: bool,
    summary: Summary,
    lists: Vec<NodeAddr>,
    /// Lock leases the node granted: key → (token, until).
    grants: BTreeMap<Vec<u8>, (LockToken, Instant)>,
    max_lease: Duration,
}

impl Harness {
    fn hand(&mut self, bytes: &[u8]) {
        // A message comes from the sender its header names (a message that does not parse, from
        // anywhere).
        let from = Message::parse(bytes).map_or(peer(0).addr, |m| m.header.sender.addr);
        self.hand_from(from, bytes);
    }

    fn hand_from(&mut self, from: SocketAddr, bytes: &[u8]) {
        let lock = Message::parse(bytes).ok().and_then(|m| match m.body {
            Body::Lock {
                key,
                token,
                lease_ms,
            } => Some((key.to_vec(), token, lease_ms)),
            _ => None,
        });
        let served = self.node.stats().served;
        let d = self.node.handle_datagram(self.now, from, bytes);
        if let Some((key, token, lease_ms)) = lock
            && self.node.stats().served > served
        {
            let lease = Duration::from_millis(u64::from(lease_ms)).min(self.max_lease);
            self.granted(&key, token, lease);
        }
        self.handed += 1;
        if let Disposition::Malformed(_) = d {
            self.malformed += 1;
        } else if self.left {
            assert_eq!(d, Disposition::Dropped(DropReason::Departed));
        }
        self.check();
    }

    /// After a Lock of `key` with `token` for `lease` was served here (as the key's owner):
    /// if the node now holds the lock for that token, it granted or renewed it — never while
    /// another token's lease runs.
    fn granted(&mut self, key: &[u8], token: LockToken, lease: Duration) {
        if self.node.lock_holder(self.now, key) != Some(token) {
            return;
        }
        if let Some(&(held, until)) = self.grants.get(key) {
            assert!(
                held == token || until <= self.now,
                "a lock held twice: {key:?} granted to another token until {until:?}"
            );
        }
        let until = self.now + lease;
        self.grants.insert(key.to_vec(), (token, until));
    }

    fn check(&mut self) {
        let (node, now) = (&self.node, self.now);
        self.grants.retain(
            |key, &mut (token, until)| match node.lock_holder(now, key) {
                Some(holder) => {
                    assert!(
                        holder == token || until <= now,
                        "a lock held twice: {key:?}"
                    );
                    true
                }
                // Released (unlocked, or its lease ended): another may take it now.
                None => false,
            },
        );
        let s = self.node.stats();
        assert_eq!(s.received, self.handed, "every message counted once");
        assert_eq!(
            s.malformed, self.malformed,
            "every malformed message counted"
        );
        let leaf = self.node.leaf_set();
        assert!(leaf.left().len() <= L && leaf.right().len() <= L);
        let me = self.node.local();
        assert!(
            leaf.nodes().all(|n| n.id != me.id && n.addr != me.addr),
            "the node in its own leaf set"
        );
        if !leaf.is_empty() {
            self.summary.had_neighbours = true;
        }
        assert!(self.node.stored_len() <= KEYS);
    }

    fn drain(&mut self, limit: usize) {
        let mut buf = [0u8; Node::MAX_TRANSMIT_LEN];
        for _ in 0..limit {
            let Some(t) = self.node.poll_transmit(self.now, &mut buf) else {
                self.events();
                self.check();
                return;
            };
            assert!(t.len <= Node::MAX_TRANSMIT_LEN);
            let bytes = &buf[..t.len];
            let m = Message::parse(bytes).expect("a transmitted message parses");
            assert_eq!(m.header.sender, self.node.local());
            assert_ne!(t.destination, self.node.local().addr, "sent to itself");
            self.summary.sent += 1;
            if self.recent.len() == 8 {
                self.recent.remove(0);
            }
            self.recent.push((t.destination, bytes.to_vec()));
        }
        if limit >= 10_000 {
            panic!("poll_transmit never ends");
        }
    }

    fn events(&mut self) {
        while let Some(e) = self.node.poll_event() {
            let Some(id) = e.request_id() else {
                continue;
            };
            assert!(self.issued.contains(&id), "an outcome of no request: {e:?}");
            assert!(self.answered.insert(id), "two outcomes for {id:?}");
            self.summary.outcomes += 1;
        }
    }

    /// A response to one of the recent transmissions, from its destination (usually).
    fn answer(&mut self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        if self.recent.is_empty() {
            return Ok(Vec::new());
        }
        let which = usize::from(u.arbitrary::<u8>()?) % self.recent.len();
        let (to, bytes) = self.recent[self.recent.len() - 1 - which].clone();
        let Ok(sent) = Message::parse(&bytes) else {
            return Ok(Vec::new());
        };
        let mut from = (0..6).map(peer).find(|p| p.addr == to).unwrap_or(NodeAddr {
            id: NodeId::from_u128(7),
            addr: to,
        });
        if u.ratio(1, 8)? {
            from = sender(u)?;
        }
        let id = sent.header.message_id;
        let mine = u.arbitrary::<bool>()?;
        let other = LockToken(u.arbitrary()?);
        let ms = u.int_in_range(0..=5000u32)?;
        let v = value(u)?;
        // A relayed request is answered as the request it carries.
        let asked = match sent.body {
            Body::Relayed { request, .. } => request.body(),
            b => b,
        };
        let body = match asked {
            Body::Get { key } => Body::Value {
                key,
                value: if u.arbitrary()? { Some(v) } else { None },
            },
            Body::Put { key, .. } | Body::Replicate { key, .. } => Body::PutAck { key },
            Body::Lock { key, .. } => {
                if u.arbitrary()? {
                    Body::Locked {
                        key,
                        token: if mine {
                            self.node.lock_token(key)
                        } else {
                            other
                        },
                        lease_ms: ms,
                    }
                } else {
                    Body::LockDenied {
                        key,
                        remaining_ms: ms,
                    }
                }
            }
            Body::Unlock { key, .. } => Body::Unlocked { key },
            Body::InitConnect | Body::RequestInsertion { .. } => {
                self.lists = (0..u.int_in_range(0..=3u8)?)
                    .map(|_| sender(u))
                    .collect::<Result<_>>()?;
                Body::Join {
                    side: if u.arbitrary()? {
                        Side::Left
                    } else {
                        Side::Right
                    },
                    nodes: NodeSet::Slice(&self.lists),
                }
            }
            _ => Body::Error {
                code: ErrorCode::from_u16(u.int_in_range(1..=7)?),
            },
        };
        let body = if u.ratio(1, 8)? {
            Body::Error {
                code: ErrorCode::from_u16(u.int_in_range(1..=7)?),
            }
        } else {
            body
        };
        encode(id, from, &body, u)
    }

    fn request(&mut self, u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
        let k = key(u)?;
        let v = value(u)?;
        let token = LockToken(u.arbitrary()?);
        let ms = u.int_in_range(0..=20_000u32)?;
        self.lists = (0..u.int_in_range(0..=5u8)?)
            .map(|_| sender(u))
            .collect::<Result<_>>()?;
        let nodes = NodeSet::Slice(&self.lists);
        let body = match u.int_in_range(0..=12u8)? {
            11 => Body::Relayed {
                budget_ms: u.arbitrary()?,
                origin: sender(u)?,
                request: match u.int_in_range(0..=3u8)? {
                    0 => RelayedRequest::Get { key: k },
                    1 => RelayedRequest::Put { key: k, value: v },
                    2 => RelayedRequest::Lock {
                        key: k,
                        token,
                        lease_ms: ms,
                    },
                    _ => RelayedRequest::Unlock { key: k, token },
                },
            },
            0 => Body::Get { key: k },
            1 => Body::Put { key: k, value: v },
            2 => Body::Lock {
                key: k,
                token,
                lease_ms: ms,
            },
            3 => Body::Unlock { key: k, token },
            4 => Body::Replicate { key: k, value: v },
            5 => Body::InitConnect,
            6 => Body::RequestInsertion {
                joining: sender(u)?,
            },
            7 => Body::Join {
                side: if u.arbitrary()? {
                    Side::Left
                } else {
                    Side::Right
                },
                nodes,
            },
            8 => Body::Leave { nodes },
            9 => Body::Challenge,
            10 => Body::Echo,
            _ => Body::Error {
                code: ErrorCode::from_u16(u.arbitrary()?),
            },
        };
        let id = if !self.recent.is_empty() && u.arbitrary()? {
            let i = usize::from(u.arbitrary::<u8>()?) % self.recent.len();
            Message::parse(&self.recent[i].1).map_or(0, |m| m.header.message_id)
        } else {
            u.arbitrary()?
        };
        let from = sender(u)?;
        encode(id, from, &body, u)
    }
}

impl Harness {
    /// A message of the lying member, handed in from its own address; the invariants on
    /// what it may not change are checked after it.
    fn lie(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        let liar = peer(LIAR);
        // Under its own id, or another peer's (a forged id at its own address).
        let mut sender = liar;
        if u.ratio(1, 2)? {
            sender.id = peer(u.int_in_range(0..=4u8)?).id;
        }
        let forged = |u: &mut Unstructured<'_>| -> Result<NodeAddr> {
            // A made-up node: a chosen id at another peer's address (or anywhere).
            Ok(NodeAddr {
                id: if u.arbitrary()? {
                    NodeId(u.arbitrary()?)
                } else {
                    peer(u.arbitrary()?).id
                },
                addr: if u.arbitrary()? {
                    peer(u.arbitrary()?).addr
                } else {
                    u.arbitrary::<NodeAddr>()?.addr
                },
            })
        };
        let lists: Vec<NodeAddr> = (0..u.int_in_range(0..=4u8)?)
            .map(|_| forged(u))
            .collect::<Result<_>>()?;
        let k = key(u)?;
        let v = value(u)?;
        let body = match u.int_in_range(0..=4u8)? {
            0 => Body::Leave {
                nodes: NodeSet::Slice(&lists),
            },
            1 => Body::Join {
                side: if u.arbitrary()? {
                    Side::Left
                } else {
                    Side::Right
                },
                nodes: NodeSet::Slice(&lists),
            },
            2 => Body::RequestInsertion {
                joining: forged(u)?,
            },
            3 => Body::InitConnect,
            _ => Body::Replicate { key: k, value: v },
        };
        // A fresh id, or the id of a message sent to the liar (all it sees).
        let to_liar: Vec<u64> = self
            .recent
            .iter()
            .filter(|(to, _)| *to == liar.addr)
            .filter_map(|(_, b)| Message::parse(b).ok().map(|m| m.header.message_id))
            .collect();
        let id = if !to_liar.is_empty() && u.arbitrary()? {
            to_liar[usize::from(u.arbitrary::<u8>()?) % to_liar.len()]
        } else {
            u.arbitrary()?
        };
        let m = Message {
            header: Header {
                message_id: id,
                sender,
            },
            body,
        };
        let mut buf = vec![0u8; m.encoded_len()];
        let Ok(len) = m.encode(&mut buf) else {
            return Ok(());
        };
        let before: Vec<NodeAddr> = self.node.leaf_set().nodes().collect();
        // Each key's value and owner by the node's view, before.
        type Held<'k> = (&'k [u8], Option<Vec<u8>>, NodeAddr);
        let held: Vec<Held<'_>> = KEY_CHOICES
            .iter()
            .map(|k| {
                (
                    *k,
                    self.node.stored(k).map(<[u8]>::to_vec),
                    self.node.owner_of(k),
                )
            })
            .collect();
        self.hand_from(liar.addr, &buf[..len]);
        // A member may leave only if it was the liar, or was pushed out of a full side by the
        // liar itself entering (it proved its address: a closer neighbour is no one's word).
        let liar_entered = self.node.leaf_set().get_by_addr(liar.addr).is_some();
        for n in before {
            assert!(
                n.addr == liar.addr
                    || self.node.leaf_set().get(n.id) == Some(n)
                    || liar_entered && self.node.leaf_set().get(n.id).is_none(),
                "{n:?} evicted by the liar's word: {:?}",
                m.body
            );
        }
        for (k, value, owner) in held {
            // A copy the node no longer keeps for anyone (neither owner nor replica of the
            // key by its view now) may make room for another key: the owner and replicas
            // hold it.
            let now_owner = self.node.owner_of(k);
            let me = self.node.local();
            let responsible = now_owner == me
                || self
                    .node
                    .leaf_set()
                    .rank_after(now_owner.id)
                    .is_some_and(|r| r < self.node.config().replicas);
            if let Some(value) = value
                && owner.addr != liar.addr
                && (responsible || self.node.stored(k).is_some())
            {
                assert_eq!(
                    self.node.stored(k),
                    Some(&value[..]),
                    "a value of {k:?} changed by the liar: {:?}",
                    m.body
                );
            }
        }
        Ok(())
    }
}

fn encode(
    message_id: u64,
    sender: NodeAddr,
    body: &Body<'_>,
    u: &mut Unstructured<'_>,
) -> Result<Vec<u8>> {
    let m = Message {
        header: Header { message_id, sender },
        body: *body,
    };
    let mut buf = vec![0u8; m.encoded_len()];
    let Ok(len) = m.encode(&mut buf) else {
        return Ok(Vec::new());
    };
    buf.truncate(len);
    // Sometimes a flipped byte or a cut.
    if !buf.is_empty() && u.ratio(1, 16)? {
        let at = usize::from(u.arbitrary::<u16>()?) % buf.len();
        buf[at] ^= u.arbitrary::<u8>()? | 1;
    }
    if !buf.is_empty() && u.ratio(1, 32)? {
        let len = usize::from(u.arbitrary::<u16>()?) % buf.len();
        buf.truncate(len);
    }
    Ok(buf)
}

/// Runs the script decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    let seed: u64 = u.arbitrary().unwrap_or(0);
    let mut config = Config::new(local());
    config.request_timeout = Duration::from_millis(100);
    config.stabilize_interval = Duration::from_millis(200);
    config.max_lease = Duration::from_millis(1000);
    config.tombstone = Duration::from_secs(2);
    config.replicas = usize::from(u.int_in_range(0..=2u8).unwrap_or(1));
    // Half the inputs run with address validation (answers to made-up senders become
    // Challenges), half without (they are answered in full).
    config.validate_addresses = seed.is_multiple_of(2);
    config.bind_ids = seed % 4 != 1;
    let mut h = Harness {
        node: Node::new(config, FuzzRng::new(seed)),
        now: Instant::ZERO,
        recent: Vec::new(),
        issued: BTreeSet::new(),
        answered: BTreeSet::new(),
        handed: 0,
        malformed: 0,
        left: false,
        summary: Summary::default(),
        lists: Vec::new(),
        grants: BTreeMap::new(),
        max_lease: config.max_lease,
    };
    let _ = run(&mut h, &mut u);
    h.drain(10_000);
    h.summary.messages = h.handed;
    h.summary
}

fn run(h: &mut Harness, u: &mut Unstructured<'_>) -> Result<()> {
    while !u.is_empty() {
        match u.int_in_range(0..=15u8)? {
            0 => {
                let len = u.arbitrary_len::<u8>()?;
                let bytes = u.bytes(len)?.to_vec();
                h.hand(&bytes);
            }
            1 | 2 => {
                let bytes = h.request(u)?;
                h.hand(&bytes);
            }
            3 | 4 => {
                let bytes = h.answer(u)?;
                h.hand(&bytes);
            }
            5 => {
                h.now = h.now + Duration::from_micros(u64::from(u.arbitrary::<u32>()? % 3_000_000))
            }
            6 => {
                // The adapter's loop: sleep until the next timeout, handle it, drain.
                if let Some(t) = h.node.poll_timeout()
                    && t > h.now
                    && t < h.now + Duration::from_secs(100)
                {
                    h.now = t;
                }
                h.node.handle_timeout(h.now);
                h.drain(10_000);
            }
            7 => h.drain(usize::from(u.int_in_range(1..=3u8)?)),
            8 => {
                h.node.handle_timeout(h.now);
                h.check();
            }
            9 => {
                let k = key(u)?;
                let v = value(u)?;
                let lease = Duration::from_millis(u64::from(u.arbitrary::<u16>()?));
                let r = match u.int_in_range(0..=3u8)? {
                    0 => h.node.get(h.now, k),
                    1 => h.node.put(h.now, k, v),
                    2 => {
                        let served = h.node.stats().served;
                        let r = h.node.lock(h.now, k, lease);
                        if h.node.stats().served > served {
                            let token = h.node.lock_token(k);
                            h.granted(k, token, lease.min(h.max_lease));
                        }
                        r
                    }
                    _ => h.node.unlock(h.now, k),
                };
                if let Ok(id) = r {
                    assert!(h.issued.insert(id), "a request id given twice");
                }
                h.events();
                h.check();
            }
            10 => {
                let _ = h.node.join(h.now, peer(u.arbitrary()?).addr);
                h.check();
            }
            11 => {
                if u.ratio(1, 4)? {
                    h.node.leave(h.now);
                    h.left = true;
                }
            }
            12 => h.node.handle_peer_down(h.now, peer(u.arbitrary()?).addr),
            13 => h.events(),
            _ => h.lie(u)?,
        }
    }
    Ok(())
}
