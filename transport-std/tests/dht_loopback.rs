//! `UdpDhtNode` and `UdpDhtClient` on real loopback sockets: a ring of three nodes on their own
//! threads, a client's blocking calls, and what the client and a node refuse.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sinew_proto::dht::{
    Body, ErrorCode, HEADER_LEN, Header, LockToken, Message, NodeAddr, NodeId, RequestError, Stats,
};
use sinew_transport_std::Error;
use sinew_transport_std::dht::{LockOutcome, UdpDhtClient, UdpDhtNode};

/// A node running on its own thread until `stop`; returns its counters when joined.
fn spawn_node(
    join: Option<SocketAddr>,
    stop: &Arc<AtomicBool>,
) -> (SocketAddr, thread::JoinHandle<Stats>) {
    // The id bound to the address (the default).
    let mut node: UdpDhtNode = UdpDhtNode::bind_with("127.0.0.1:0".parse().unwrap(), None, |c| {
        c.stabilize_interval = Duration::from_millis(100);
        c.request_timeout = Duration::from_millis(200);
        c.max_lease = Duration::from_millis(500);
    })
    .unwrap();
    let addr = node.local().addr;
    if let Some(entry) = join {
        node.join(entry).unwrap();
    }
    let stop = Arc::clone(stop);
    let handle = thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            node.run_for(Duration::from_millis(20)).unwrap();
            while node.poll_event().is_some() {}
        }
        *node.stats()
    });
    (addr, handle)
}

fn client(node: SocketAddr) -> UdpDhtClient {
    UdpDhtClient::connect_with(node, |c| {
        c.request_timeout = Duration::from_millis(300);
    })
    .unwrap()
}

#[test]
fn a_client_puts_gets_and_locks_through_a_ring_of_three() {
    let stop = Arc::new(AtomicBool::new(false));
    let (a, ha) = spawn_node(None, &stop);
    let (b, hb) = spawn_node(Some(a), &stop);
    let (c, hc) = spawn_node(Some(a), &stop);
    // Stabilization spreads the leaf sets; then every lock grace period (500 ms) has passed.
    thread::sleep(Duration::from_millis(800));

    let mut via_b = client(b);
    let mut via_c = client(c);
    for k in 0..10 {
        via_b
            .put(format!("k{k}").as_bytes(), format!("v{k}").as_bytes())
            .unwrap();
    }
    for k in 0..10 {
        assert_eq!(
            via_c.get(format!("k{k}").as_bytes()).unwrap(),
            Some(format!("v{k}").into_bytes())
        );
    }
    assert_eq!(via_c.get(b"absent").unwrap(), None);
    // Too large for the client's sizes: refused before anything is sent.
    assert!(matches!(
        via_c.put(&[0; 65], b"v"),
        Err(Error::Proto(sinew_proto::Error::TooLarge))
    ));

    // Each holder's token is its secret: bob cannot release alice's lock, and is not told it.
    let (alice, bob) = (
        LockToken::derive(b"alice's secret", b"door"),
        LockToken::derive(b"bob's secret", b"door"),
    );
    let lease = Duration::from_millis(400);
    let sent = Instant::now();
    match via_b.lock(b"door", alice, lease).unwrap() {
        LockOutcome::Locked { until } => {
            assert!(until <= sent + lease + Duration::from_millis(50));
            assert!(until > Instant::now());
        }
        other => panic!("{other:?}"),
    }
    match via_c.lock(b"door", bob, lease).unwrap() {
        LockOutcome::Denied { remaining } => {
            assert!(remaining <= lease);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        via_c.unlock(b"door", bob),
        Err(Error::Dht(RequestError::Refused(ErrorCode::NotHolder)))
    ));
    // Alice's lease runs out: bob gets it.
    thread::sleep(lease + Duration::from_millis(50));
    assert!(matches!(
        via_c.lock(b"door", bob, lease).unwrap(),
        LockOutcome::Locked { .. }
    ));
    via_c.unlock(b"door", bob).unwrap();
    assert_eq!(via_b.stats().timeouts + via_c.stats().timeouts, 0);

    stop.store(true, Ordering::Relaxed);
    let served: u64 = [ha, hb, hc]
        .into_iter()
        .map(|h| h.join().unwrap().served)
        .sum();
    assert!(served >= 10 + 10 + 1 + 4, "served {served}");
}

/// A one-hop client learns its entry's view and sends to the owners themselves: its socket
/// must take their answers (a socket connected to the entry would drop them, and every direct
/// attempt would time out and fall back).
#[test]
fn a_one_hop_client_sends_to_owners_over_loopback() {
    let stop = Arc::new(AtomicBool::new(false));
    let (a, ha) = spawn_node(None, &stop);
    let (b, hb) = spawn_node(Some(a), &stop);
    let (_c, hc) = spawn_node(Some(a), &stop);
    // Time for the three to settle into one ring (a loaded machine is slow), so that the view
    // the client learns from b covers keys of the other two.
    thread::sleep(Duration::from_millis(1500));

    let mut one_hop: UdpDhtClient = UdpDhtClient::connect_with(b, |c| {
        c.request_timeout = Duration::from_millis(300);
        c.one_hop = true;
    })
    .unwrap();
    for k in 0..20 {
        one_hop
            .put(format!("k{k}").as_bytes(), format!("v{k}").as_bytes())
            .unwrap();
    }
    for k in 0..20 {
        assert_eq!(
            one_hop.get(format!("k{k}").as_bytes()).unwrap(),
            Some(format!("v{k}").into_bytes())
        );
    }
    let s = *one_hop.stats();
    assert_eq!(s.views_learned, 1, "{s:?}");
    // Some requests went straight to a, some to c (about two in three; fewer if the view was
    // learned before the ring settled), and none of them timed out or fell back.
    assert!(s.direct >= 5, "{s:?}");
    assert_eq!((s.timeouts, s.fallbacks), (0, 0), "{s:?}");
    stop.store(true, Ordering::Relaxed);
    for h in [ha, hb, hc] {
        h.join().unwrap();
    }
}

#[test]
fn a_client_ignores_answers_from_elsewhere_and_fails_after_its_attempts() {
    // A "node" that answers every request with the right message id, but from another socket.
    let node = UdpSocket::bind("127.0.0.1:0").unwrap();
    let elsewhere = UdpSocket::bind("127.0.0.1:0").unwrap();
    let node_addr = node.local_addr().unwrap();
    node.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let forger = thread::spawn(move || {
        let mut forged = 0;
        let mut buf = [0u8; 512];
        while !flag.load(Ordering::Relaxed) {
            let Ok((len, from)) = node.recv_from(&mut buf) else {
                continue;
            };
            let request = Message::parse(&buf[..len]).unwrap();
            let Body::Get { key } = request.body else {
                panic!("{:?}", request.body)
            };
            let answer = Message {
                header: Header {
                    message_id: request.header.message_id,
                    sender: NodeAddr {
                        id: NodeId::from_name(b"forger"),
                        addr: node_addr,
                    },
                },
                body: Body::Value {
                    key,
                    value: Some(b"forged"),
                },
            };
            let mut out = [0u8; 512];
            let n = answer.encode(&mut out).unwrap();
            elsewhere.send_to(&out[..n], from).unwrap();
            forged += 1;
        }
        forged
    });
    let mut c = client(node_addr);
    let started = Instant::now();
    let result = c.get(b"key");
    let took = started.elapsed();
    assert!(
        matches!(result, Err(Error::Dht(RequestError::Timeout))),
        "{result:?}"
    );
    // Three attempts of 300 ms.
    assert!(took >= Duration::from_millis(850), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(
        forger.join().unwrap(),
        3,
        "each attempt was answered, from elsewhere"
    );
    // The connected socket never even delivers the forgeries; nothing was taken.
    assert_eq!(c.stats().timeouts, 3);
    assert_eq!(c.stats().retries, 2);
}

#[test]
fn a_node_counts_malformed_datagrams_and_never_answers_them() {
    let mut node: UdpDhtNode = UdpDhtNode::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to = node.local().addr;
    // Garbage, a truncated header, a message of version 7 (a sealed datagram, and the node has
    // no key: dropped by its seal layer, counted there).
    let mut bad_version = [0u8; 44];
    bad_version[0] = 0xE0;
    for bytes in [&b"hello"[..], &[0x01; 20][..], &bad_version[..]] {
        peer.send_to(bytes, to).unwrap();
    }
    // And one good request, which is answered.
    let get = Message {
        header: Header {
            message_id: 99,
            sender: NodeAddr {
                id: NodeId::from_name(b"peer"),
                addr: peer.local_addr().unwrap(),
            },
        },
        body: Body::Get { key: b"x" },
    };
    let mut buf = [0u8; 512];
    let n = get.encode(&mut buf).unwrap();
    peer.send_to(&buf[..n], to).unwrap();
    node.run_until(Duration::from_secs(2), |n| n.stats().received == 3)
        .unwrap();
    let s = *node.stats();
    assert_eq!((s.received, s.malformed), (3, 2));
    assert_eq!(node.seal_stats().sealed_no_key, 1);
    // The answer (46 bytes) is longer than the request (45) and the peer's address has not
    // proved it receives: a 43-byte Challenge comes first. Echo it, ask again.
    let (len, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    let challenge = Message::parse(&buf[..len]).unwrap();
    assert_eq!((challenge.body, len), (Body::Challenge, HEADER_LEN));
    let echo = Message {
        header: Header {
            message_id: challenge.header.message_id,
            sender: get.header.sender,
        },
        body: Body::Echo,
    };
    let mut out = [0u8; 512];
    let e = echo.encode(&mut out).unwrap();
    peer.send_to(&out[..e], to).unwrap();
    let n = get.encode(&mut out).unwrap();
    peer.send_to(&out[..n], to).unwrap();
    node.run_until(Duration::from_secs(2), |n| n.stats().received == 5)
        .unwrap();
    let (len, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    let answer = Message::parse(&buf[..len]).unwrap();
    assert_eq!(answer.header.message_id, 99);
    assert_eq!(
        answer.body,
        Body::Value {
            key: b"x",
            value: None
        }
    );
    // Nothing else came back.
    assert!(peer.recv_from(&mut buf).is_err());
    assert_eq!(node.socket_stats().datagrams_sent, 2);
}

/// One frame: a 4-byte big-endian length, then the message.
fn frame(message: &Message<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4 + message.encoded_len()];
    let n = message.encode(&mut buf[4..]).unwrap();
    buf[..4].copy_from_slice(&(n as u32).to_be_bytes());
    buf
}

fn read_frame(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

#[test]
fn a_node_answers_client_requests_on_their_tcp_connection() {
    use std::io::{Read, Write};
    let mut node: UdpDhtNode =
        UdpDhtNode::bind("127.0.0.1:0".parse().unwrap(), NodeId::from_name(b"t")).unwrap();
    let tcp = node.listen_tcp(node.local().addr).unwrap();
    assert_eq!(tcp, node.local().addr, "same address, other protocol");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let runner = thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            node.run_for(Duration::from_millis(10)).unwrap();
        }
        (*node.stats(), node.tcp_stats())
    });

    let mut stream = std::net::TcpStream::connect(tcp).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The client does not know its own address: it names a placeholder.
    let me = NodeAddr {
        id: NodeId::from_name(b"tcp client"),
        addr: "192.0.2.1:9".parse().unwrap(),
    };
    let put = Message {
        header: Header {
            message_id: 1,
            sender: me,
        },
        body: Body::Put {
            key: b"k",
            value: b"over tcp",
        },
    };
    let get = Message {
        header: Header {
            message_id: 2,
            sender: me,
        },
        body: Body::Get { key: b"k" },
    };
    // Two frames in one write, the second split across writes.
    let mut bytes = frame(&put);
    let second = frame(&get);
    bytes.extend_from_slice(&second[..7]);
    stream.write_all(&bytes).unwrap();
    thread::sleep(Duration::from_millis(50));
    stream.write_all(&second[7..]).unwrap();
    let ack = read_frame(&mut stream);
    let ack = Message::parse(&ack).unwrap();
    assert_eq!(ack.header.message_id, 1);
    assert_eq!(ack.body, Body::PutAck { key: b"k" });
    let value = read_frame(&mut stream);
    let value = Message::parse(&value).unwrap();
    assert_eq!(value.header.message_id, 2);
    assert_eq!(
        value.body,
        Body::Value {
            key: b"k",
            value: Some(b"over tcp")
        }
    );
    // A membership message on TCP is dropped, never answered; a length over the maximum
    // closes the connection.
    let join = Message {
        header: Header {
            message_id: 3,
            sender: me,
        },
        body: Body::InitConnect,
    };
    stream.write_all(&frame(&join)).unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing answered: {rest:?}");

    stop.store(true, Ordering::Relaxed);
    let (stats, tcp_stats) = runner.join().unwrap();
    assert_eq!(stats.served, 2);
    assert_eq!(
        (
            tcp_stats.accepted,
            tcp_stats.frames_received,
            tcp_stats.frames_sent,
            tcp_stats.not_requests,
            tcp_stats.bad_frames,
            tcp_stats.closed
        ),
        (1, 3, 2, 1, 1, 1)
    );
}
