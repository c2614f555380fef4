//! One caller-owned `mio::Poll` drives every kind of adapter at once — a health node, a DHT node,
//! a DHT client and a ZooKeeper client against a real server — beside a UDP socket of the
//! caller's own, through the same three calls (`register`, `process`, `poll_timeout`).
//!
//! The ZooKeeper part needs a real server: run with `SINEW_ZK_SERVER=host:port` and
//! `--include-ignored` (scripts/test.sh does).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use sinew_proto::dht::Event as DhtEvent;
use sinew_proto::health::{Config, HealthCheck, HealthKind};
use sinew_proto::nonce::Nonce;
use sinew_proto::zk::{Acl, CreateMode, CreateRequest, List, RequestBody, ZkStr};
use sinew_transport_std::dht::{UdpDhtClient, UdpDhtNode};
use sinew_transport_std::zk::{ClientConfig, OwnedReply, ZkClient};
use sinew_transport_std::{Adapter, TOKEN_SPAN, UdpHealthNode};

const DEADLINE: Duration = Duration::from_secs(10);
const MINE: Token = Token(0);

fn zk_servers() -> Vec<SocketAddr> {
    let server = std::env::var("SINEW_ZK_SERVER").expect("SINEW_ZK_SERVER=host:port");
    vec![server.parse().expect("SINEW_ZK_SERVER is an address")]
}

#[test]
#[ignore = "needs a real ZooKeeper server: SINEW_ZK_SERVER=host:port"]
fn one_user_poll_drives_health_dht_node_dht_client_zookeeper_and_a_socket_of_its_own() {
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(64);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // The caller's own socket: it asks the health node for a check, as any host may.
    let mut mine = UdpSocket::bind(loopback).unwrap();
    poll.registry()
        .register(&mut mine, MINE, Interest::READABLE)
        .unwrap();

    let mut health = UdpHealthNode::bind(loopback, Config::default()).unwrap();
    let mut dht_node: UdpDhtNode = UdpDhtNode::bind(loopback, None).unwrap();
    let mut dht_client: UdpDhtClient = UdpDhtClient::connect(dht_node.local().addr).unwrap();
    let mut zk = ZkClient::new(zk_servers(), ClientConfig::default()).unwrap();
    {
        let adapters: [&mut dyn Adapter; 4] =
            [&mut health, &mut dht_node, &mut dht_client, &mut zk];
        for (i, adapter) in adapters.into_iter().enumerate() {
            adapter
                .register(poll.registry(), Token((i + 1) * TOKEN_SPAN))
                .unwrap();
        }
    }

    // Work for each: a health check from the caller's socket, a put through the DHT client, a
    // create through the ZooKeeper client.
    let nonce = Nonce::from_bytes([0x5a; 16]);
    let check = HealthCheck {
        kind: HealthKind::Request,
        nonce,
    };
    let mut buf = [0u8; 17];
    let len = check.encode(&mut buf).unwrap();
    mine.send_to(&buf[..len], health.local_addr()).unwrap();
    let node = dht_client.node();
    let put = dht_client
        .submit(|c, now| c.put(now, node, b"colour", b"blue"))
        .unwrap();
    let path = format!("/sinew-one-poll-{}", std::process::id());
    let create = zk
        .submit(RequestBody::Create(CreateRequest {
            path: ZkStr::new(&path),
            data: Some(b"one poll"),
            acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
            mode: CreateMode::Ephemeral,
        }))
        .unwrap();

    let (mut answered, mut stored, mut created) = (false, false, false);
    let mut woke_mine = 0;
    let end = Instant::now() + DEADLINE;
    while !(answered && stored && created) {
        assert!(
            Instant::now() < end,
            "health answered {answered}, DHT put {stored}, ZooKeeper create {created}"
        );
        let wake = [
            health.poll_timeout(),
            dht_node.poll_timeout(),
            dht_client.poll_timeout(),
            Adapter::poll_timeout(&zk),
        ]
        .into_iter()
        .flatten()
        .fold(end, Instant::min);
        poll.poll(
            &mut events,
            Some(wake.saturating_duration_since(Instant::now())),
        )
        .unwrap();
        let mut ready = [false; 5];
        for event in events.iter() {
            ready[event.token().0 / TOKEN_SPAN] = true;
        }
        let now = Instant::now();
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if ready[0] {
            woke_mine += 1;
            let mut answer = [0u8; 64];
            while let Ok((n, from)) = mine.recv_from(&mut answer) {
                assert_eq!(from, health.local_addr());
                // A peer-table request: this host keeps no table to give.
                let Ok(check) = HealthCheck::parse(&answer[..n]) else {
                    continue;
                };
                match check.kind {
                    // The node learnt the caller's socket from its request and probes it.
                    HealthKind::Request => {
                        let reply = HealthCheck {
                            kind: HealthKind::Response,
                            ..check
                        };
                        let len = reply.encode(&mut answer).unwrap();
                        mine.send_to(&answer[..len], from).unwrap();
                    }
                    HealthKind::Response => {
                        assert_eq!(check.nonce, nonce);
                        answered = true;
                    }
                }
            }
        }
        if ready[1] || due(health.poll_timeout()) {
            health.process().unwrap();
        }
        if ready[2] || due(dht_node.poll_timeout()) {
            dht_node.process().unwrap();
        }
        if ready[3] || due(dht_client.poll_timeout()) {
            dht_client.process().unwrap();
            while let Some(event) = dht_client.poll_event() {
                assert_eq!(event, DhtEvent::PutDone { id: put });
                stored = true;
            }
        }
        if ready[4] || due(Adapter::poll_timeout(&zk)) {
            Adapter::process(&mut zk).unwrap();
            if let Some(done) = zk.take_completion(create) {
                match done.result {
                    Ok(OwnedReply::Path(created_path)) => assert_eq!(created_path, path),
                    other => panic!("create: {other:?}"),
                }
                created = true;
            }
        }
    }
    assert!(woke_mine >= 1, "the caller's own socket woke the poll");
    assert_eq!(dht_node.core().stored(b"colour"), Some(&b"blue"[..]));
    assert_eq!(health.stats().requests_answered, 1);
}
