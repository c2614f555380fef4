//! Keyed `UdpHealthNode`s on real loopback sockets: sealed datagrams on the wire, a node with
//! the wrong key or none kept out, a key rotated while the nodes run.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use sinew_proto::health::{Config, MAX_DATAGRAM_LEN, Status};
use sinew_proto::seal::{self, Key, Keyring};
use sinew_transport_std::{Group, Handle, UdpHealthNode};

const DEADLINE: Duration = Duration::from_secs(5);
const KEY_A: Key = Key::from_bytes([0xaa; 32]);
const KEY_B: Key = Key::from_bytes([0xbb; 32]);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn config() -> Config {
    Config::new()
        .with_check_interval(Duration::from_millis(50))
        .with_response_timeout(Duration::from_millis(100))
        .with_table_interval(Duration::from_millis(200))
}

fn keyed(key: Option<Key>) -> UdpHealthNode {
    let ring = key.map(Keyring::with_key).unwrap_or_default();
    UdpHealthNode::bind_keyed(loopback(), config(), ring).unwrap()
}

fn healthy(node: &UdpHealthNode, addr: SocketAddr) -> bool {
    node.host(addr)
        .is_some_and(|h| h.health.status() == Status::Healthy)
}

#[test]
fn keyed_nodes_meet_and_keep_out_the_wrong_key_and_the_unkeyed() {
    let mut group = Group::new().unwrap();
    let ids: Vec<Handle<UdpHealthNode>> =
        [Some(KEY_A), Some(KEY_A), Some(KEY_A), Some(KEY_B), None]
            .into_iter()
            .map(|k| group.add(keyed(k)).unwrap())
            .collect();
    let addrs: Vec<SocketAddr> = ids.iter().map(|&i| group[i].local_addr()).collect();
    for &i in &ids[1..] {
        group[i].add_seed(addrs[0]).unwrap();
    }
    group[ids[0]].add_seed(addrs[3]).unwrap();
    group[ids[0]].add_seed(addrs[4]).unwrap();

    let met = group
        .run_until(DEADLINE, |g| {
            (0..3).all(|i| (0..3).all(|j| i == j || healthy(&g[ids[i]], addrs[j])))
        })
        .unwrap();
    assert!(met, "keyed nodes did not meet");
    group.run_for(Duration::from_millis(300)).unwrap();
    for i in 0..3 {
        let node = &group[ids[i]];
        assert!(node.host(addrs[3]).is_none() && node.host(addrs[4]).is_none());
    }
    assert_eq!(group[ids[3]].hosts().len(), 0, "the wrong key adds nobody");
    assert_eq!(
        group[ids[4]].hosts().len(),
        0,
        "the unkeyed node adds nobody"
    );
    let s0 = group[ids[0]].seal_stats();
    assert!(s0.unknown_key + s0.bad_tag > 0, "{s0:?}");
    assert!(s0.unsealed > 0, "{s0:?}");
    let s4 = group[ids[4]].seal_stats();
    assert!(s4.sealed_no_key > 0, "{s4:?}");
    assert_eq!(group[ids[4]].stats().malformed, 0);
}

#[test]
fn the_wire_carries_only_sealed_datagrams_and_a_replay_is_dropped() {
    let mut node = keyed(Some(KEY_A));
    let raw = UdpSocket::bind(loopback()).unwrap();
    raw.set_read_timeout(Some(DEADLINE)).unwrap();
    node.ping(raw.local_addr().unwrap()).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let (len, from) = raw.recv_from(&mut buf).unwrap();
    assert_eq!(len, 17 + seal::OVERHEAD);
    assert_eq!(buf[0], seal::TYPE);
    // Open it, answer it sealed, and send the answer twice.
    let ring: Keyring = Keyring::with_key(KEY_A);
    let mut sealed = buf[..len].to_vec();
    let mut answer = [0u8; MAX_DATAGRAM_LEN];
    let plain = ring.open(&mut sealed).unwrap().plaintext.to_vec();
    answer[seal::HEADER_LEN..seal::HEADER_LEN + 17].copy_from_slice(&plain);
    answer[seal::HEADER_LEN] = 0x02;
    let n = ring.seal(42, 0, &mut answer, 17).unwrap();
    raw.send_to(&answer[..n], from).unwrap();
    raw.send_to(&answer[..n], from).unwrap();
    node.run_until(DEADLINE, |n| n.seal_stats().replayed == 1)
        .unwrap();
    let s = node.seal_stats();
    assert_eq!((s.opened, s.replayed), (1, 1), "{s:?}");
    assert_eq!(node.stats().responses_accepted, 1);
}

#[test]
fn a_key_rotation_on_running_nodes_loses_no_check() {
    let mut group = Group::new().unwrap();
    let ids: Vec<Handle<UdpHealthNode>> = (0..3)
        .map(|_| group.add(keyed(Some(KEY_A))).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = ids.iter().map(|&i| group[i].local_addr()).collect();
    for &i in &ids[1..] {
        group[i].add_seed(addrs[0]).unwrap();
    }
    let met = group
        .run_until(DEADLINE, |g| {
            (0..3).all(|i| (0..3).all(|j| i == j || healthy(&g[ids[i]], addrs[j])))
        })
        .unwrap();
    assert!(met);
    let missed: u64 = ids.iter().map(|&i| group[i].stats().checks_missed).sum();
    let steps: [fn(&mut Keyring); 3] = [
        |r| r.install(KEY_B).unwrap(),
        |r| r.use_key(&KEY_B).unwrap(),
        |r| r.remove(&KEY_A).unwrap(),
    ];
    for step in steps {
        for &i in &ids {
            step(group[i].keyring_mut());
            group.run_for(Duration::from_millis(60)).unwrap();
        }
    }
    group.run_for(Duration::from_millis(300)).unwrap();
    let after: u64 = ids.iter().map(|&i| group[i].stats().checks_missed).sum();
    assert_eq!(after, missed, "checks lost in the rotation");
    for &i in &ids {
        let s = group[i].seal_stats();
        assert_eq!(s.unknown_key + s.bad_tag, 0, "{s:?}");
        assert_eq!(group[i].keyring().keys(), &[KEY_B]);
    }
}

#[test]
fn a_keyed_dht_client_puts_and_gets_through_a_keyed_ring_and_an_unkeyed_one_is_not_heard() {
    use sinew_proto::dht::NodeId;
    use sinew_transport_std::dht::{UdpDhtClient, UdpDhtNode};

    let ring = || Keyring::with_key(KEY_A);
    let fast = |c: &mut sinew_proto::dht::Config| {
        c.stabilize_interval = Duration::from_millis(50);
        c.request_timeout = Duration::from_millis(200);
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut a: UdpDhtNode =
        UdpDhtNode::bind_keyed(addr, NodeId::from_name(b"a"), ring(), fast).unwrap();
    let mut b: UdpDhtNode =
        UdpDhtNode::bind_keyed(addr, NodeId::from_name(b"b"), ring(), fast).unwrap();
    assert!(a.listen_tcp(addr).is_err(), "a keyed node takes no TCP");
    b.join(a.local().addr).unwrap();
    let end = std::time::Instant::now() + DEADLINE;
    while !(b.in_ring() && a.leaf_set().nodes().count() == 1) {
        assert!(std::time::Instant::now() < end, "no ring");
        a.run_for(Duration::from_millis(5)).unwrap();
        b.run_for(Duration::from_millis(5)).unwrap();
    }
    let (a_addr, b_addr) = (a.local().addr, b.local().addr);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let ring_thread = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            a.run_for(Duration::from_millis(5)).unwrap();
            b.run_for(Duration::from_millis(5)).unwrap();
        }
        (a, b)
    });
    let mut client: UdpDhtClient = UdpDhtClient::connect_keyed(a_addr, ring(), |c| {
        c.request_timeout = Duration::from_millis(300)
    })
    .unwrap();
    client.put(b"colour", b"blue").unwrap();
    assert_eq!(
        client.get(b"colour").unwrap().as_deref(),
        Some(&b"blue"[..])
    );
    let mut plain: UdpDhtClient = UdpDhtClient::connect_with(b_addr, |c| {
        c.request_timeout = Duration::from_millis(100);
        c.max_attempts = 2;
    })
    .unwrap();
    assert!(
        plain.get(b"colour").is_err(),
        "an unkeyed client is not answered"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (a, b) = ring_thread.join().unwrap();
    let unsealed = a.seal_stats().unsealed + b.seal_stats().unsealed;
    assert!(unsealed >= 2, "{:?} {:?}", a.seal_stats(), b.seal_stats());
    assert!(client.seal_stats().opened >= 2);
}
