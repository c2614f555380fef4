//! `UdpHealthNode` on real loopback sockets: real datagrams, real bytes, bounded in time.
//!
//! Where a test needs to see or forge the bytes on the wire, the other end is a raw
//! `std::net::UdpSocket`.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use sinew_proto::health::{Config, Event, HEALTH_LEN, MAX_DATAGRAM_LEN, Status};
use sinew_transport_std::{Group, UdpHealthNode};

/// Every wait in these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn config(check_ms: u64, timeout_ms: u64) -> Config {
    Config::new()
        .with_check_interval(Duration::from_millis(check_ms))
        .with_response_timeout(Duration::from_millis(timeout_ms))
        .with_table_interval(Duration::from_millis(500))
}

/// A raw socket on loopback whose reads give up after a while.
fn raw_socket() -> UdpSocket {
    let socket = UdpSocket::bind(loopback()).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    socket
}

fn status(node: &UdpHealthNode, addr: SocketAddr) -> Option<Status> {
    node.host(addr).map(|h| h.health.status())
}

/// Receives the node's next health request on `host`: returns the datagram and its source.
fn receive_request(host: &UdpSocket) -> ([u8; HEALTH_LEN], SocketAddr) {
    let mut buf = [0u8; MAX_DATAGRAM_LEN + 1];
    let (len, from) = host.recv_from(&mut buf).expect("the node sent no request");
    assert_eq!(
        len,
        HEALTH_LEN,
        "a health request is 17 bytes: {:02x?}",
        &buf[..len]
    );
    assert_eq!(buf[0], 0x01, "type byte of a health request");
    (buf[..HEALTH_LEN].try_into().unwrap(), from)
}

/// The response a correct host sends: type 2, the request's nonce.
fn response_to(request: &[u8; HEALTH_LEN]) -> [u8; HEALTH_LEN] {
    let mut response = *request;
    response[0] = 0x02;
    response
}

#[test]
fn two_seeded_nodes_become_healthy_in_each_others_tables() {
    let mut group = Group::new().unwrap();
    let a = group
        .add(UdpHealthNode::bind(loopback(), config(100, 100)).unwrap())
        .unwrap();
    let b = group
        .add(UdpHealthNode::bind(loopback(), config(100, 100)).unwrap())
        .unwrap();
    let (a_addr, b_addr) = (group[a].local_addr(), group[b].local_addr());
    group[a].add_seed(b_addr).unwrap();
    group[b].add_seed(a_addr).unwrap();

    let met = group
        .run_until(DEADLINE, |g| {
            status(&g[a], b_addr) == Some(Status::Healthy)
                && status(&g[b], a_addr) == Some(Status::Healthy)
        })
        .unwrap();
    assert!(met, "not healthy in time: {:?} {:?}", group[a], group[b]);

    // Keep checking for a few rounds: the checks keep being answered.
    group.run_for(Duration::from_millis(350)).unwrap();
    for (node, peer) in [(a, b_addr), (b, a_addr)] {
        let node = &mut group[node];
        assert_eq!(status(node, peer), Some(Status::Healthy));
        assert_eq!(node.hosts().len(), 1, "a node never adds itself");
        let stats = node.stats();
        assert!(stats.responses_accepted >= 3, "{stats:?}");
        assert!(stats.requests_answered >= 3, "{stats:?}");
        assert_eq!(
            (
                stats.malformed,
                stats.wrong_source,
                stats.unmatched,
                stats.late
            ),
            (0, 0, 0, 0),
            "{stats:?}"
        );
        let io = node.socket_stats();
        assert!(
            io.datagrams_sent >= 6 && io.datagrams_received >= 6,
            "{io:?}"
        );
        assert_eq!((io.send_would_block, io.send_errors), (0, 0));
        let event = node.poll_event().expect("a HostAdded event");
        assert_eq!(
            event.event,
            Event::HostAdded {
                addr: node.seeds()[0]
            }
        );
    }
}

#[test]
fn a_third_node_discovers_the_other_through_the_peer_table() {
    // Nobody learns from requests, so the only way for C to hear of B is A's table.
    let quiet = config(100, 100).with_learn_from_requests(false);
    let mut a = UdpHealthNode::bind(loopback(), quiet).unwrap();
    let mut b = UdpHealthNode::bind(loopback(), quiet).unwrap();
    let mut c = UdpHealthNode::bind(loopback(), quiet).unwrap();
    let (a_addr, b_addr, c_addr) = (a.local_addr(), b.local_addr(), c.local_addr());
    a.add_seed(b_addr).unwrap();
    b.add_seed(a_addr).unwrap();
    c.add_seed(a_addr).unwrap();

    // Three nodes on one caller-owned Poll, each under a token of the caller's choice.
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(16);
    let mut nodes = [a, b, c];
    for (i, node) in nodes.iter_mut().enumerate() {
        node.register(poll.registry(), Token(100 + i)).unwrap();
    }
    let end = Instant::now() + DEADLINE;
    let mut discovered = false;
    while Instant::now() < end {
        for node in &mut nodes {
            node.process().unwrap();
        }
        let [a, b, c] = &nodes;
        if status(c, b_addr) == Some(Status::Healthy)
            && status(c, a_addr) == Some(Status::Healthy)
            && status(a, b_addr) == Some(Status::Healthy)
            && status(b, a_addr) == Some(Status::Healthy)
        {
            discovered = true;
            break;
        }
        let wake = nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .map_or(end, |t| t.min(end));
        poll.poll(
            &mut events,
            Some(wake.saturating_duration_since(Instant::now())),
        )
        .unwrap();
    }
    let [a, b, c] = &nodes;
    assert!(
        discovered,
        "C did not discover B: {:?}",
        c.hosts().collect::<Vec<_>>()
    );
    assert!(c.stats().tables_received >= 1, "{:?}", c.stats());
    assert!(a.stats().requests_answered >= 1);
    // A and B never learned of C: C's knowledge of B came from A's table alone.
    assert!(a.host(c_addr).is_none() && b.host(c_addr).is_none());
    // The standalone runner refuses a node that a caller's Poll drives.
    let mut a = nodes.into_iter().next().unwrap();
    assert!(a.run_for(Duration::from_millis(1)).is_err());
}

#[test]
fn a_response_from_the_wrong_address_never_marks_a_host_healthy() {
    let host = raw_socket();
    let attacker = raw_socket();
    let host_addr = host.local_addr().unwrap();
    let mut node = UdpHealthNode::bind(loopback(), config(1000, 2000)).unwrap();
    node.add_seed(host_addr).unwrap();
    node.process().unwrap(); // sends the probe

    // The "host" captures the request, so the attacker knows the nonce...
    let (request, from) = receive_request(&host);
    assert_eq!(from, node.local_addr());
    // ...and sends the correct response from another address.
    attacker.send_to(&response_to(&request), from).unwrap();
    let refused = node
        .run_until(DEADLINE, |n| n.stats().wrong_source == 1)
        .unwrap();
    assert!(refused, "{:?}", node.stats());
    assert!(node.host(host_addr).is_none());
    assert_eq!(node.stats().responses_accepted, 0);
    assert!(node.poll_event().is_none());

    // The same bytes from the address the request went to are accepted: the request was kept
    // outstanding for the real host.
    host.send_to(&response_to(&request), from).unwrap();
    let accepted = node
        .run_until(DEADLINE, |n| n.host(host_addr).is_some())
        .unwrap();
    assert!(accepted, "{:?}", node.stats());
    assert_eq!(status(&node, host_addr), Some(Status::Healthy));
    assert_eq!(node.stats().responses_accepted, 1);
    assert_eq!(node.stats().wrong_source, 1);
    assert_eq!(
        node.poll_event().map(|e| e.event),
        Some(Event::HostAdded { addr: host_addr })
    );
}

#[test]
fn a_wrong_nonce_is_unmatched_and_a_late_response_is_late() {
    let host = raw_socket();
    let host_addr = host.local_addr().unwrap();
    let timeout = Duration::from_millis(500);
    let mut node = UdpHealthNode::bind(loopback(), config(5000, 500)).unwrap();
    node.add_seed(host_addr).unwrap();
    node.process().unwrap();
    let (request, from) = receive_request(&host);
    let requested = Instant::now();

    // From the right address, with a wrong nonce.
    let mut wrong = response_to(&request);
    wrong[16] ^= 0x01;
    host.send_to(&wrong, from).unwrap();
    let dropped = node
        .run_until(DEADLINE, |n| n.stats().unmatched == 1)
        .unwrap();
    assert!(dropped, "{:?}", node.stats());
    assert!(node.host(host_addr).is_none());
    assert!(
        requested.elapsed() < timeout,
        "too slow to test lateness on this machine"
    );

    // The right nonce after the deadline. The node is not driven meanwhile, so the response
    // is waiting in the socket when the node next looks, before it lets time pass.
    std::thread::sleep((timeout + Duration::from_millis(200)).saturating_sub(requested.elapsed()));
    host.send_to(&response_to(&request), from).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    node.process().unwrap();
    let stats = node.stats();
    assert_eq!(stats.late, 1, "{stats:?}");
    assert_eq!(stats.responses_accepted, 0, "{stats:?}");
    assert!(
        node.host(host_addr).is_none(),
        "a late response must not add the host"
    );
    assert!(node.poll_event().is_none());
}

#[test]
fn short_padded_and_oversized_health_datagrams_are_never_answered() {
    let client = raw_socket();
    let mut node = UdpHealthNode::bind(loopback(), config(1000, 500)).unwrap();
    let node_addr = node.local_addr();
    let valid: [u8; HEALTH_LEN] = [
        0x01, // health request
        0x6b, 0x1f, 0x28, 0x3a, 0x90, 0x4c, 0x11, 0xee, 0x9f, 0x5d, 0x02, 0x42, 0xac, 0x12, 0x00,
        0x02, // nonce
    ];
    let mut padded = valid.to_vec();
    padded.push(0x00);
    let mut oversized = valid.to_vec();
    oversized.resize(600, 0);
    client.send_to(&valid[..16], node_addr).unwrap(); // short
    client.send_to(&padded, node_addr).unwrap(); // 18 bytes
    client.send_to(&oversized, node_addr).unwrap(); // above 508 bytes

    let counted = node
        .run_until(DEADLINE, |n| n.stats().malformed == 3)
        .unwrap();
    assert!(counted, "{:?}", node.stats());
    // Give a reply every chance to be sent, then look for it without waiting.
    node.run_for(Duration::from_millis(300)).unwrap();
    client.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 600];
    let reply = client.recv_from(&mut buf);
    assert_eq!(
        reply.map_err(|e| e.kind()).err(),
        Some(ErrorKind::WouldBlock),
        "a malformed datagram was answered"
    );
    let stats = node.stats();
    assert_eq!(stats.requests_answered, 0, "{stats:?}");
    assert_eq!(stats.received, 3);
    assert_eq!(node.socket_stats().oversized, 1);
    assert_eq!(
        node.socket_stats().datagrams_sent,
        0,
        "nothing at all was sent"
    );
    assert_eq!(node.hosts().len(), 0);

    // The same request at its exact length is answered with its nonce.
    client.set_nonblocking(false).unwrap();
    client.send_to(&valid, node_addr).unwrap();
    let answered = node
        .run_until(DEADLINE, |n| n.stats().requests_answered == 1)
        .unwrap();
    assert!(answered);
    // The node learns from requests, so a probe of the client may follow the response.
    loop {
        let (len, from) = client.recv_from(&mut buf).expect("no response");
        assert_eq!(from, node_addr);
        if buf[0] == 0x02 {
            assert_eq!(&buf[..len], &response_to(&valid)[..]);
            break;
        }
    }
}

#[test]
fn a_stopped_node_goes_unhealthy_and_recovers_on_the_same_address() {
    let mut group = Group::new().unwrap();
    let a = group
        .add(UdpHealthNode::bind(loopback(), config(100, 80)).unwrap())
        .unwrap();
    let b = group
        .add(UdpHealthNode::bind(loopback(), config(100, 80)).unwrap())
        .unwrap();
    let (a_addr, b_addr) = (group[a].local_addr(), group[b].local_addr());
    group[b].add_seed(a_addr).unwrap();
    let both_healthy = |g: &mut Group| {
        status(&g[a], b_addr) == Some(Status::Healthy)
            && status(&g[b], a_addr) == Some(Status::Healthy)
    };
    assert!(group.run_until(DEADLINE, both_healthy).unwrap());

    group[b].stop().unwrap();
    assert!(!group[b].is_running());
    assert!(group[b].poll_timeout().is_none());
    let mut at_risk_first = false;
    let down = group
        .run_until(DEADLINE, |g| {
            while let Some(e) = g[a].poll_event() {
                if let Event::HealthChanged { addr, to, .. } = e.event {
                    assert_eq!(addr, b_addr);
                    at_risk_first |= to.status() == Status::AtRisk;
                    assert!(to.status() != Status::Unhealthy || at_risk_first);
                }
            }
            status(&g[a], b_addr) == Some(Status::Unhealthy)
        })
        .unwrap();
    assert!(down && at_risk_first);

    let sent_before = group[b].socket_stats().datagrams_sent;
    group[b].restart().unwrap();
    assert_eq!(group[b].local_addr(), b_addr, "same address");
    assert_eq!(
        group[b].hosts().len(),
        0,
        "a restart starts with an empty table"
    );
    assert!(group.run_until(DEADLINE, both_healthy).unwrap());
    let b_node = &group[b];
    assert!(b_node.socket_stats().datagrams_sent > sent_before);
    assert!(
        b_node.stats().responses_accepted >= 2,
        "counters survive the restart"
    );
}

#[test]
fn ping_reports_round_trips_and_timeouts() {
    let mut group = Group::new().unwrap();
    let pinger = group
        .add(UdpHealthNode::bind(loopback(), config(1000, 200)).unwrap())
        .unwrap();
    let target = group
        .add(UdpHealthNode::bind(loopback(), config(1000, 200)).unwrap())
        .unwrap();
    let target_addr = group[target].local_addr();
    // A bound socket that never answers.
    let silent = raw_socket();
    let silent_addr = silent.local_addr().unwrap();

    let answered = group[pinger].ping(target_addr).unwrap();
    let unanswered = group[pinger].ping(silent_addr).unwrap();
    let mut pong = None;
    let mut timeout = None;
    let done = group
        .run_until(DEADLINE, |g| {
            while let Some(e) = g[pinger].poll_event() {
                match e.event {
                    Event::Pong { addr, nonce, rtt } => pong = Some((addr, nonce, rtt)),
                    Event::PingTimeout { addr, nonce } => timeout = Some((addr, nonce)),
                    _ => {}
                }
            }
            pong.is_some() && timeout.is_some()
        })
        .unwrap();
    assert!(done);
    let (addr, nonce, rtt) = pong.unwrap();
    assert_eq!((addr, nonce), (target_addr, answered));
    assert!(rtt < Duration::from_millis(200), "{rtt:?}");
    assert_eq!(timeout, Some((silent_addr, unanswered)));
    // The silent host did get the check, byte for byte.
    let (request, _) = receive_request(&silent);
    assert_eq!(&request[1..], unanswered.as_bytes());

    group[pinger].stop().unwrap();
    assert!(group[pinger].ping(target_addr).is_err());
}

/// A burst of requests from several senders, IPv4 and IPv6, arrives between two steps: one step
/// answers every one (in batches where the platform has them), each to its sender with its
/// nonce, and the counters add up.
#[test]
fn a_burst_of_requests_is_answered_in_full_to_each_sender() {
    for any in [
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
    ] {
        // Not learning from requests: the node answers and sends nothing else.
        let quiet = config(60_000, 1_000).with_learn_from_requests(false);
        let Ok(mut node) = UdpHealthNode::bind(any, quiet) else {
            // No IPv6 loopback on this host.
            continue;
        };
        let to = node.local_addr();
        let senders: Vec<UdpSocket> = (0..4)
            .map(|_| {
                let s = UdpSocket::bind(SocketAddr::new(any.ip(), 0)).unwrap();
                s.set_read_timeout(Some(DEADLINE)).unwrap();
                s
            })
            .collect();
        let mut sent = 0u64;
        for round in 0..25u8 {
            for (k, s) in senders.iter().enumerate() {
                let mut request = [0u8; HEALTH_LEN];
                request[0] = 0x01;
                request[1] = round;
                request[2] = k as u8;
                request[16] = 0xee;
                s.send_to(&request, to).unwrap();
                sent += 1;
            }
        }
        // Let every datagram land, then one step.
        std::thread::sleep(Duration::from_millis(50));
        node.process().unwrap();
        assert_eq!(node.socket_stats().datagrams_received, sent);
        assert_eq!(node.socket_stats().datagrams_sent, sent, "{any}");
        for (k, s) in senders.iter().enumerate() {
            let mut buf = [0u8; MAX_DATAGRAM_LEN + 1];
            for round in 0..25u8 {
                let (len, from) = s.recv_from(&mut buf).unwrap();
                assert_eq!(from, to);
                assert_eq!(len, HEALTH_LEN);
                assert_eq!(
                    (buf[0], buf[1], buf[2], buf[16]),
                    (0x02, round, k as u8, 0xee),
                    "{any}: answers in order, each to its sender"
                );
            }
        }
        assert_eq!(node.socket_stats().bytes_sent, sent * HEALTH_LEN as u64);
    }
}
