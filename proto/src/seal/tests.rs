//! Byte-level tests of sealed datagrams and the replay table, and virtual-time tests of keyed
//! health and DHT networks.

use super::*;
use crate::datagram::DatagramCore;
use crate::dht::{self, DhtClient, DhtNode, NodeAddr};
use crate::health::{self, HealthNode, Status};
use crate::time::Instant;
use core::convert::Infallible;
use core::net::SocketAddr;
use core::time::Duration;
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec as StdVec;
use std::{format, vec};

/// A deterministic generator (splitmix64) standing in for a CSPRNG.
struct TestRng(u64);

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

const KEY_A: Key = Key::from_bytes([0xaa; 32]);
const KEY_B: Key = Key::from_bytes([0xbb; 32]);
const KEY_WRONG: Key = Key::from_bytes([0x66; 32]);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Wire form
// ---------------------------------------------------------------------------------------------

/// A 17-byte health request, sealed under KEY_A by sender 0x0102030405060708, counter 9.
fn sealed_request() -> StdVec<u8> {
    let ring: Keyring = Keyring::with_key(KEY_A);
    let mut buf = [0xa5; 64];
    buf[HEADER_LEN] = 0x01; // health request
    buf[HEADER_LEN + 1..HEADER_LEN + 17].copy_from_slice(&[0x5a; 16]);
    let len = ring.seal(0x0102_0304_0506_0708, 9, &mut buf, 17).unwrap();
    buf[..len].to_vec()
}

/// The whole sealed health request, byte for byte, as an independent AES-256-GCM (Python's
/// `cryptography`, OpenSSL underneath) computes it: nonce = bytes 2..14, AAD = bytes 0..14.
#[test]
fn test_known_answer() {
    let expected = [
        0xe0, 0xdf, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x09, 0xb4,
        0xf5, 0x39, 0x85, 0x4d, 0x8e, 0xa9, 0xc0, 0x9d, 0xc4, 0x34, 0x16, 0x4f, 0xc8, 0x7c, 0x54,
        0x6d, 0xa2, 0x2f, 0x66, 0x74, 0xee, 0xba, 0x1e, 0xf9, 0x1f, 0x0d, 0x26, 0x83, 0x7c, 0xba,
        0xc0, 0x61,
    ];
    assert_eq!(sealed_request(), expected);
}

#[test]
fn test_emit() {
    let sealed = sealed_request();
    assert_eq!(sealed.len(), 17 + OVERHEAD);
    assert_eq!(OVERHEAD, 30);
    assert_eq!(MAX_PLAINTEXT_LEN, 478);
    let header = [
        0xE0, // type: version 7 (bits 7..5), kind 0 = AES-256-GCM
        KEY_A.id(),
        0x01,
        0x02,
        0x03,
        0x04,
        0x05,
        0x06,
        0x07,
        0x08, // sender
        0x00,
        0x00,
        0x00,
        0x09, // counter 9
    ];
    assert_eq!(&sealed[..HEADER_LEN], &header);
    assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + 17], &[0x01; 17][..]);
    // The buffer past the sealed length was not written.
    let ring: Keyring = Keyring::with_key(KEY_A);
    let mut buf = [0xa5; 64];
    let len = ring.seal(1, 1, &mut buf, 17).unwrap();
    assert_eq!(buf[len], 0xa5, "seal wrote past the tag");
    assert_eq!(
        ring.seal(1, 1, &mut buf[..len - 1], 17),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        ring.seal(1, 1, &mut [0; 600], MAX_PLAINTEXT_LEN + 1),
        Err(Error::TooLarge)
    );
    assert_eq!(
        Keyring::<4>::new().seal(1, 1, &mut buf, 17),
        Err(Error::NoKey)
    );
}

#[test]
fn test_parse() {
    let sealed = sealed_request();
    let view = Sealed::new_checked(&sealed[..]).unwrap();
    assert_eq!(view.key_id(), KEY_A.id());
    assert_eq!(view.sender(), 0x0102_0304_0506_0708);
    assert_eq!(view.counter(), 9);
    assert_eq!(view.ciphertext().len(), 17);
    assert_eq!(view.tag().len(), TAG_LEN);
    let ring: Keyring = Keyring::with_key(KEY_A);
    let mut copy = sealed.clone();
    let opened = ring.open(&mut copy).unwrap();
    assert_eq!(opened.key_id, KEY_A.id());
    assert_eq!(opened.plaintext[0], 0x01);
    assert_eq!(&opened.plaintext[1..], &[0x5a; 16]);
}

#[test]
fn test_truncated() {
    let sealed = sealed_request();
    let ring: Keyring = Keyring::with_key(KEY_A);
    for len in 0..sealed.len() {
        let mut copy = sealed[..len].to_vec();
        let want = if len < MIN_SEALED_LEN {
            Error::Truncated
        } else {
            Error::BadTag
        };
        assert_eq!(ring.open(&mut copy), Err(want), "len {len}");
    }
}

#[test]
fn test_bit_flips() {
    let sealed = sealed_request();
    let ring: Keyring = Keyring::with_key(KEY_A);
    for bit in 0..sealed.len() * 8 {
        let mut copy = sealed.clone();
        copy[bit / 8] ^= 1 << (bit % 8);
        let error = ring.open(&mut copy).unwrap_err();
        assert!(
            matches!(
                error,
                Error::BadTag
                    | Error::UnknownKey(_)
                    | Error::UnsupportedVersion(_)
                    | Error::UnknownType(_)
            ),
            "bit {bit}: {error:?}"
        );
    }
}

#[test]
fn test_wrong_key_and_oversize() {
    let sealed = sealed_request();
    let wrong: Keyring = Keyring::with_key(KEY_WRONG);
    let mut copy = sealed.clone();
    let error = wrong.open(&mut copy).unwrap_err();
    assert!(matches!(error, Error::UnknownKey(_) | Error::BadTag));
    let mut long = vec![TYPE; MAX_DATAGRAM_LEN + 1];
    assert_eq!(wrong.open(&mut long), Err(Error::TooLarge));
    let mut other_kind = sealed.clone();
    other_kind[0] = crate::nonce::type_byte(super::VERSION, 1);
    assert_eq!(wrong.open(&mut other_kind), Err(Error::UnknownType(0xE1)));
    // A DHT lock message (version 1) is a plain datagram, not a sealed one.
    let mut lock = sealed.clone();
    lock[0] = crate::nonce::type_byte(1, 5);
    assert_eq!(wrong.open(&mut lock), Err(Error::UnsupportedVersion(1)));
    let mut plain = sealed;
    plain[0] = 0x01;
    assert_eq!(wrong.open(&mut plain), Err(Error::UnsupportedVersion(0)));
}

#[test]
fn keys_with_one_id_are_all_tried() {
    // Find two keys whose ids collide (1 in 256 per pair).
    let first = Key::from_bytes([1; 32]);
    let second = (2..=255u8)
        .flat_map(|b| {
            (0..=255u8).map(move |c| {
                Key::from_bytes([
                    b, c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0,
                ])
            })
        })
        .find(|k| k.id() == first.id())
        .unwrap();
    let mut ring: Keyring = Keyring::with_key(first);
    ring.install(second).unwrap();
    ring.use_key(&second).unwrap();
    let mut buf = [0; 64];
    let len = ring.seal(5, 5, &mut buf, 3).unwrap();
    ring.use_key(&first).unwrap();
    assert!(ring.open(&mut buf[..len]).is_ok());
}

#[test]
fn keyring_install_use_remove() {
    let mut ring: Keyring<2> = Keyring::new();
    assert!(ring.is_empty() && ring.primary().is_none());
    ring.install(KEY_A).unwrap();
    assert_eq!(ring.primary(), Some(&KEY_A));
    ring.install(KEY_B).unwrap();
    ring.install(KEY_B).unwrap(); // again: nothing changes
    assert_eq!(ring.keys(), &[KEY_A, KEY_B]);
    assert_eq!(ring.install(KEY_WRONG), Err(Error::Capacity));
    assert_eq!(
        ring.primary(),
        Some(&KEY_A),
        "installing does not change the primary"
    );
    assert_eq!(
        ring.remove(&KEY_A),
        Err(Error::BadValue),
        "the primary stays"
    );
    assert_eq!(
        ring.use_key(&KEY_WRONG),
        Err(Error::UnknownKey(KEY_WRONG.id()))
    );
    ring.use_key(&KEY_B).unwrap();
    ring.remove(&KEY_A).unwrap();
    assert_eq!(ring.primary(), Some(&KEY_B));
    assert_eq!(ring.keys(), &[KEY_B]);
    assert_eq!(
        format!("{:?}", KEY_B),
        format!("Key(id {:#04x})", KEY_B.id())
    );
}

// ---------------------------------------------------------------------------------------------
// Replay table
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_window() {
    let mut table: ReplayTable<4> = ReplayTable::new(ms(1000));
    let t = Instant::ZERO;
    assert_eq!(table.accept(t, 7, 100), Ok(()));
    assert_eq!(table.accept(t, 7, 100), Err(Replay::Duplicate));
    assert_eq!(
        table.accept(t, 7, 98),
        Ok(()),
        "out of order within the window"
    );
    assert_eq!(table.accept(t, 7, 98), Err(Replay::Duplicate));
    assert_eq!(table.accept(t, 7, 100 - 63), Ok(()));
    assert_eq!(table.accept(t, 7, 100 - 64), Err(Replay::TooOld));
    assert_eq!(table.accept(t, 7, 200), Ok(()), "a jump forward");
    assert_eq!(table.accept(t, 7, 100), Err(Replay::TooOld));
    assert_eq!(table.accept(t, 7, 199), Ok(()));
    assert_eq!(table.check(t, 7, 199), Err(Replay::Duplicate));
    assert_eq!(table.accept(t, 7, u32::MAX), Ok(()));
    assert_eq!(table.accept(t, 7, u32::MAX), Err(Replay::Duplicate));
    assert_eq!(
        table.accept(t, 8, 0),
        Ok(()),
        "another sender, its own window"
    );
    assert_eq!(table.len(), 2);
}

#[test]
fn replay_table_keeps_talking_senders() {
    let mut table: ReplayTable<2> = ReplayTable::new(ms(1000));
    table.accept(Instant::ZERO, 1, 0).unwrap();
    table.accept(Instant::from_millis(500), 2, 0).unwrap();
    // Full, and both heard from within the hold time: a new sender waits.
    assert_eq!(
        table.accept(Instant::from_millis(900), 3, 0),
        Err(Replay::TableFull)
    );
    // Sender 1 has been silent for the hold time: the new sender takes its place.
    assert_eq!(table.accept(Instant::from_millis(1000), 3, 0), Ok(()));
    assert_eq!(
        table.check(Instant::from_millis(1000), 2, 0),
        Err(Replay::Duplicate)
    );
    assert_eq!(
        table.check(Instant::from_millis(1000), 3, 0),
        Err(Replay::Duplicate)
    );
}

// ---------------------------------------------------------------------------------------------
// A virtual network of datagram cores
// ---------------------------------------------------------------------------------------------

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))
}

struct Net<C: DatagramCore> {
    nodes: StdVec<C>,
    now: Instant,
    /// (delivery time, from, to, bytes), in sending order; every hop takes 1 ms.
    wire: VecDeque<(Instant, SocketAddr, SocketAddr, StdVec<u8>)>,
    /// Every datagram sent, as (from, to, bytes).
    log: StdVec<(SocketAddr, SocketAddr, StdVec<u8>)>,
    events: StdVec<StdVec<C::Event>>,
    /// The longest datagram sent.
    longest: usize,
}

impl<C: DatagramCore> Net<C> {
    fn new(nodes: StdVec<C>) -> Self {
        let events = nodes.iter().map(|_| StdVec::new()).collect();
        Net {
            nodes,
            now: Instant::ZERO,
            wire: VecDeque::new(),
            log: StdVec::new(),
            events,
            longest: 0,
        }
    }

    fn index(addr: SocketAddr) -> Option<usize> {
        match addr {
            SocketAddr::V4(a) if a.port() == 7000 => Some(a.ip().octets()[3] as usize - 1),
            _ => None,
        }
    }

    fn flush(&mut self, i: usize) {
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let now = self.now;
        while let Some(t) = self.nodes[i].poll_transmit(now, &mut buf) {
            assert!(t.len <= MAX_DATAGRAM_LEN);
            self.longest = self.longest.max(t.len);
            let bytes = buf[..t.len].to_vec();
            self.log.push((addr(i), t.destination, bytes.clone()));
            self.wire
                .push_back((now + ms(1), addr(i), t.destination, bytes));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events[i].push(e);
        }
    }

    fn step(&mut self) {
        self.now = self.now + ms(1);
        let now = self.now;
        while self.wire.front().is_some_and(|p| p.0 <= now) {
            let (_, from, to, bytes) = self.wire.pop_front().unwrap();
            if let Some(j) = Self::index(to).filter(|&j| j < self.nodes.len()) {
                self.nodes[j].handle_datagram(now, from, &bytes);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                self.nodes[i].handle_timeout(now);
            }
            self.flush(i);
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    fn inject(&mut self, to: usize, from: SocketAddr, bytes: &[u8]) -> C::Disposition {
        let now = self.now;
        self.nodes[to].handle_datagram(now, from, bytes)
    }
}

type Health = Keyed<HealthNode<rand_core::UnwrapErr<TestRng>>, rand_core::UnwrapErr<TestRng>>;

fn rng(seed: u64) -> rand_core::UnwrapErr<TestRng> {
    rand_core::UnwrapErr(TestRng(seed))
}

fn health_node(i: usize, key: Key) -> Health {
    let config = health::Config::new()
        .with_check_interval(ms(200))
        .with_response_timeout(ms(100))
        .with_table_interval(ms(500))
        .with_local_addr(addr(i));
    let inner = HealthNode::new(config, rng(i as u64 * 7919 + 1));
    Keyed::new(
        inner,
        Keyring::with_key(key),
        Config::new(),
        rng(i as u64 * 104_729 + 3),
    )
}

/// `n` keyed health nodes, every one seeded with node 0; `keys[i]` for node `i`.
fn health_net(keys: &[Key]) -> Net<Health> {
    let mut nodes: StdVec<Health> = keys
        .iter()
        .enumerate()
        .map(|(i, &k)| health_node(i, k))
        .collect();
    for node in nodes.iter_mut().skip(1) {
        node.inner_mut().add_seed(addr(0)).unwrap();
    }
    Net::new(nodes)
}

fn healthy_peers(node: &Health) -> StdVec<SocketAddr> {
    let mut peers: StdVec<SocketAddr> = node
        .inner()
        .hosts()
        .filter(|h| h.health.status() == Status::Healthy)
        .map(|h| h.addr)
        .collect();
    peers.sort();
    peers
}

#[test]
fn keyed_health_network_converges() {
    let mut net = health_net(&[KEY_A; 5]);
    net.run_for(ms(3000));
    for i in 0..5 {
        let want: StdVec<SocketAddr> = (0..5).filter(|&j| j != i).map(addr).collect();
        assert_eq!(healthy_peers(&net.nodes[i]), want, "node {i}");
        let stats = net.nodes[i].stats();
        assert!(stats.opened > 0 && stats.sealed > 0);
        assert_eq!(stats.opened, stats.received, "node {i} dropped: {stats:?}");
    }
    // Every datagram on the wire was sealed, and fits one datagram: a full table page is a
    // 478-byte inner datagram (24 entries).
    assert!(net.log.iter().all(|(_, _, b)| b[0] == TYPE));
    assert!(net.longest <= MAX_DATAGRAM_LEN);
}

#[test]
fn a_node_with_the_wrong_key_is_never_added_and_never_adds() {
    let mut net = health_net(&[KEY_A, KEY_A, KEY_A, KEY_A, KEY_WRONG]);
    // The outsider also learns of every honest node directly.
    for j in 1..4 {
        net.nodes[4].inner_mut().add_seed(addr(j)).unwrap();
    }
    net.run_for(ms(3000));
    for i in 0..4 {
        let peers = healthy_peers(&net.nodes[i]);
        assert_eq!(peers.len(), 3, "node {i}: {peers:?}");
        assert!(!peers.contains(&addr(4)));
        assert!(net.nodes[i].inner().host(addr(4)).is_none());
    }
    assert_eq!(net.nodes[4].inner().hosts().len(), 0);
    let refused: u64 = (0..5)
        .map(|i| {
            let s = net.nodes[i].stats();
            s.unknown_key + s.bad_tag
        })
        .sum();
    assert!(refused > 0);
    assert_eq!(net.nodes[4].stats().opened, 0);
}

#[test]
fn replayed_truncated_flipped_rekeyed_and_unsealed_datagrams_are_dropped_and_counted() {
    let mut net = health_net(&[KEY_A; 2]);
    net.run_for(ms(1000));
    // The last datagram node 0 sent to node 1, already delivered.
    let (from, _, sealed) = net
        .log
        .iter()
        .rfind(|(f, t, _)| *f == addr(0) && *t == addr(1))
        .cloned()
        .unwrap();
    net.run_for(ms(5));
    let before = *net.nodes[1].stats();
    let inner_before = net.nodes[1].inner().stats().received;

    // Replayed, from its own source or any other.
    for source in [from, addr(7)] {
        assert_eq!(
            net.inject(1, source, &sealed),
            Disposition::Dropped(DropReason::Replay(Replay::Duplicate))
        );
    }
    // A datagram node 0 seals now, not yet delivered (its counter is fresh to node 1).
    let now = net.now;
    net.nodes[0].inner_mut().ping(now, addr(1)).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let t = net.nodes[0].poll_transmit(now, &mut buf).unwrap();
    let fresh = buf[..t.len].to_vec();
    // Truncated below the minimum, and cut short above it.
    assert_eq!(
        net.inject(1, from, &fresh[..MIN_SEALED_LEN - 1]),
        Disposition::Dropped(DropReason::Unopened(Error::Truncated))
    );
    assert_eq!(
        net.inject(1, from, &fresh[..fresh.len() - 1]),
        Disposition::Dropped(DropReason::Unopened(Error::BadTag))
    );
    // A flipped bit in the ciphertext, in the tag, and in the counter (2^30 ahead).
    for at in [HEADER_LEN, fresh.len() - 1, HEADER_LEN - 4] {
        let mut flipped = fresh.clone();
        flipped[at] ^= 0x40;
        assert_eq!(
            net.inject(1, from, &flipped),
            Disposition::Dropped(DropReason::Unopened(Error::BadTag)),
            "byte {at}"
        );
    }
    // None of that spent the fresh datagram's counter: it still opens, once.
    assert!(matches!(
        net.inject(1, from, &fresh),
        Disposition::Delivered(_)
    ));
    assert_eq!(
        net.inject(1, from, &fresh),
        Disposition::Dropped(DropReason::Replay(Replay::Duplicate))
    );
    // Sealed under a key node 1 does not have (re-keyed by an outsider).
    let mut rekeyed = [0u8; MAX_DATAGRAM_LEN];
    let len = sealed.len() - OVERHEAD;
    rekeyed[HEADER_LEN..HEADER_LEN + len].copy_from_slice(&[0x01; 17][..len.min(17)]);
    let len = Keyring::<1>::with_key(KEY_WRONG)
        .seal(99, 0, &mut rekeyed, len.min(17))
        .unwrap();
    let d = net.inject(1, from, &rekeyed[..len]);
    assert!(
        matches!(
            d,
            Disposition::Dropped(DropReason::Unopened(Error::UnknownKey(_) | Error::BadTag))
        ),
        "{d:?}"
    );
    // An unsealed health request.
    let mut plain = [0u8; 17];
    plain[0] = 0x01;
    assert_eq!(
        net.inject(1, from, &plain),
        Disposition::Dropped(DropReason::Unsealed)
    );

    let after = net.nodes[1].stats();
    assert_eq!(after.replayed - before.replayed, 3);
    assert_eq!(after.truncated - before.truncated, 1);
    assert_eq!(
        after.bad_tag + after.unknown_key - before.bad_tag - before.unknown_key,
        5
    );
    assert_eq!(after.unsealed - before.unsealed, 1);
    assert_eq!(after.opened, before.opened + 1);
    assert_eq!(net.nodes[1].inner().stats().received, inner_before + 1);
}

#[test]
fn an_unkeyed_node_counts_sealed_datagrams() {
    let mut plain: HealthNode<_> = HealthNode::new(health::Config::new(), rng(5));
    let sealed = sealed_request();
    assert_eq!(
        plain.handle_datagram(Instant::ZERO, addr(1), &sealed),
        health::Disposition::Dropped(health::DropReason::Sealed)
    );
    assert_eq!(plain.stats().sealed, 1);
    assert_eq!(plain.stats().malformed, 0);
}

#[test]
fn sealed_answers_are_no_longer_than_sealed_requests() {
    // A minimal peer-table request buys only a page header, sealed or not.
    let mut net = health_net(&[KEY_A; 2]);
    net.run_for(ms(1000));
    let requests: StdVec<usize> = net
        .log
        .iter()
        .filter(|(f, _, _)| *f == addr(0))
        .map(|(_, _, b)| b.len())
        .collect();
    assert!(requests.iter().all(|&l| l <= MAX_DATAGRAM_LEN));
    // The table requests of a keyed node ask for a full sealed datagram's worth.
    assert!(requests.contains(&MAX_DATAGRAM_LEN));
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let inner_len = 22;
    buf[HEADER_LEN] = 0x03;
    let len = Keyring::<1>::with_key(KEY_A)
        .seal(0xfeed, 0, &mut buf, inner_len)
        .unwrap();
    net.inject(1, addr(9), &buf[..len]);
    let mut out = [0u8; MAX_DATAGRAM_LEN];
    let now = net.now;
    let t = net.nodes[1].poll_transmit(now, &mut out).unwrap();
    assert_eq!(t.destination, addr(9));
    assert!(t.len <= len, "answer {} > request {len}", t.len);
}

#[test]
fn key_rotation_loses_no_health_check() {
    let mut net = health_net(&[KEY_A; 5]);
    net.run_for(ms(3000));
    let missed_before: u64 = (0..5)
        .map(|i| net.nodes[i].inner().stats().checks_missed)
        .sum();
    let events_before: usize = net.events.iter().map(|e| e.len()).sum();
    // Install B everywhere, then make it primary everywhere, then remove A: each step one
    // node at a time, with checks running in between.
    for i in 0..5 {
        net.nodes[i].keyring_mut().install(KEY_B).unwrap();
        net.run_for(ms(150));
    }
    for i in 0..5 {
        net.nodes[i].keyring_mut().use_key(&KEY_B).unwrap();
        net.run_for(ms(150));
    }
    for i in 0..5 {
        net.nodes[i].keyring_mut().remove(&KEY_A).unwrap();
        net.run_for(ms(150));
    }
    net.run_for(ms(1000));
    let missed_after: u64 = (0..5)
        .map(|i| net.nodes[i].inner().stats().checks_missed)
        .sum();
    assert_eq!(
        missed_after, missed_before,
        "a check was lost in the rotation"
    );
    let events_after: usize = net.events.iter().map(|e| e.len()).sum();
    assert_eq!(events_after, events_before, "{:?}", net.events);
    for i in 0..5 {
        assert_eq!(healthy_peers(&net.nodes[i]).len(), 4);
        let s = net.nodes[i].stats();
        assert_eq!(s.bad_tag + s.unknown_key, 0, "node {i}: {s:?}");
        assert_eq!(net.nodes[i].keyring().keys(), &[KEY_B]);
    }
    // The last datagrams were sealed under B.
    assert_eq!(net.log.last().unwrap().2[1], KEY_B.id());
}

// ---------------------------------------------------------------------------------------------
// DHT through the wrapper
// ---------------------------------------------------------------------------------------------

type Rng = rand_core::UnwrapErr<TestRng>;

/// A DHT member or a client, both behind a keyring, on one network.
enum Dht {
    Node(Box<Keyed<DhtNode<Rng>, Rng>>),
    Client(Box<Keyed<DhtClient<Rng>, Rng>>),
}

impl Dht {
    fn keyring_mut(&mut self) -> &mut Keyring {
        match self {
            Dht::Node(n) => n.keyring_mut(),
            Dht::Client(c) => c.keyring_mut(),
        }
    }

    fn stats(&self) -> &Stats {
        match self {
            Dht::Node(n) => n.stats(),
            Dht::Client(c) => c.stats(),
        }
    }
}

impl DatagramCore for Dht {
    type Event = dht::Event<128>;
    type Disposition = ();

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        match self {
            Dht::Node(n) => drop(n.handle_datagram(now, from, datagram)),
            Dht::Client(c) => drop(c.handle_datagram(now, from, datagram)),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Dht::Node(n) => n.handle_timeout(now),
            Dht::Client(c) => c.handle_timeout(now),
        }
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<crate::datagram::Transmit> {
        match self {
            Dht::Node(n) => n.poll_transmit(now, buf),
            Dht::Client(c) => c.poll_transmit(now, buf),
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Dht::Node(n) => n.poll_timeout(),
            Dht::Client(c) => c.poll_timeout(),
        }
    }
    fn poll_event(&mut self) -> Option<Self::Event> {
        match self {
            Dht::Node(n) => n.poll_event(),
            Dht::Client(c) => c.poll_event(),
        }
    }
}

/// Node `i`, with the id bound to its address (members refuse any other).
fn dht_local(i: usize) -> NodeAddr {
    NodeAddr::bound(addr(i))
}

#[test]
fn key_rotation_loses_no_dht_put() {
    const MEMBERS: usize = 5;
    let mut nodes = StdVec::new();
    for i in 0..MEMBERS {
        let config = dht::Config::new(dht_local(i))
            .with_request_timeout(ms(200))
            .with_stabilize_interval(ms(250));
        let inner = DhtNode::new(config, rng(i as u64 * 31 + 7));
        nodes.push(Dht::Node(Box::new(Keyed::new(
            inner,
            Keyring::with_key(KEY_A),
            Config::new(),
            rng(i as u64 * 37 + 11),
        ))));
    }
    let client = DhtClient::new(
        dht::ClientConfig::new(dht_local(MEMBERS)).with_request_timeout(ms(200)),
        rng(999),
    );
    nodes.push(Dht::Client(Box::new(Keyed::new(
        client,
        Keyring::with_key(KEY_A),
        Config::new(),
        rng(1001),
    ))));
    let mut net = Net::new(nodes);
    for i in 1..MEMBERS {
        let now = net.now;
        if let Dht::Node(n) = &mut net.nodes[i] {
            n.inner_mut().join(now, addr(0)).unwrap();
        }
        net.run_for(ms(300));
    }
    net.run_for(ms(2000));
    // Five members: each sees the four others (ids are bound to addresses, as every member
    // checks; a ring that did not form would serve every put at its entry alone).
    for i in 0..MEMBERS {
        if let Dht::Node(n) = &net.nodes[i] {
            let mut seen: StdVec<_> = n.inner().leaf_set().nodes().map(|a| a.addr).collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), MEMBERS - 1, "member {i} sees {seen:?}");
        }
    }

    // The rotation runs while the client puts a key every 50 ms, to every member in turn.
    let mut puts = StdVec::new();
    let mut k = 0;
    let mut put = |net: &mut Net<Dht>, puts: &mut StdVec<_>| {
        let now = net.now;
        // Eight keys, written again and again (a node stores 32 keys).
        let key = format!("key {}", k % 8);
        let value = format!("value {k}");
        if let Dht::Client(c) = &mut net.nodes[MEMBERS] {
            let id = c
                .inner_mut()
                .put(now, addr(k % MEMBERS), key.as_bytes(), value.as_bytes())
                .unwrap();
            puts.push(id);
        }
        k += 1;
    };
    let phases: [&dyn Fn(&mut Keyring); 3] = [
        &|r| r.install(KEY_B).unwrap(),
        &|r| r.use_key(&KEY_B).unwrap(),
        &|r| r.remove(&KEY_A).unwrap(),
    ];
    for phase in phases {
        for i in 0..=MEMBERS {
            phase(net.nodes[i].keyring_mut());
            for _ in 0..3 {
                put(&mut net, &mut puts);
                net.run_for(ms(50));
            }
        }
    }
    net.run_for(ms(2000));
    let done: StdVec<_> = net.events[MEMBERS]
        .iter()
        .filter_map(|e| match e {
            dht::Event::PutDone { id } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(puts.len(), 3 * 3 * (MEMBERS + 1));
    for id in &puts {
        assert!(
            done.contains(id),
            "put {id:?} not done: {:?}",
            net.events[MEMBERS]
        );
    }
    for (i, node) in net.nodes.iter().enumerate() {
        let s = node.stats();
        assert_eq!(s.bad_tag + s.unknown_key + s.unsealed, 0, "node {i}: {s:?}");
        assert!(s.opened > 0);
    }
}

#[test]
fn an_empty_keyring_passes_plain_datagrams_and_drops_sealed_ones() {
    let inner: HealthNode<_> = HealthNode::new(health::Config::new(), rng(8));
    let mut node: Keyed<_, _> = Keyed::new(inner, Keyring::new(), Config::new(), rng(9));
    let mut plain = [0u8; 17];
    plain[0] = 0x01;
    assert_eq!(
        node.handle_datagram(Instant::ZERO, addr(1), &plain),
        Disposition::Delivered(health::Disposition::Answered)
    );
    assert_eq!(
        node.handle_datagram(Instant::ZERO, addr(1), &sealed_request()),
        Disposition::Dropped(DropReason::SealedNoKey)
    );
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let t = node.poll_transmit(Instant::ZERO, &mut buf).unwrap();
    assert_eq!((t.len, buf[0]), (17, 0x02), "the answer goes out unsealed");
    let s = node.stats();
    assert_eq!(
        (s.received, s.passed, s.sealed_no_key, s.sealed),
        (2, 1, 1, 0)
    );
    // Installing a key turns sealing on.
    node.keyring_mut().install(KEY_A).unwrap();
    assert_eq!(
        node.handle_datagram(Instant::ZERO, addr(1), &plain),
        Disposition::Dropped(DropReason::Unsealed)
    );
}

#[test]
fn an_unkeyed_core_never_seals() {
    let inner: HealthNode<_> = HealthNode::new(health::Config::new(), rng(8));
    let mut node: Keyed<_, rand_core::UnwrapErr<TestRng>> = Keyed::unkeyed(inner);
    let mut plain = [0u8; 17];
    plain[0] = 0x01;
    assert!(matches!(
        node.handle_datagram(Instant::ZERO, addr(1), &plain),
        Disposition::Delivered(_)
    ));
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    assert_eq!(node.poll_transmit(Instant::ZERO, &mut buf).unwrap().len, 17);
    node.keyring_mut().install(KEY_A).unwrap();
    node.inner_mut().ping(Instant::ZERO, addr(2)).unwrap();
    assert_eq!(node.poll_transmit(Instant::ZERO, &mut buf), None);
    assert!(node.stats().seal_failed >= 1); // the ping, and the probe of addr(1)
}
