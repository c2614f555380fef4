//! The embedded DHT client over std-embedded-nal TCP against a ring of transport-std
//! `UdpDhtNode`s serving clients on TCP: requests routed through the ring, answers on the
//! connection, and a lost connection failing what was in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::dht::{
    ClientConfig, DhtClient, ErrorCode, Event, LockToken, NodeAddr, NodeId, Op, RequestError,
    RequestId,
};
use sinew_proto::time::Instant;
use sinew_transport_embedded::dht::{DhtBuffers, DhtTcpClient};
use sinew_transport_std::dht::UdpDhtNode;
use std_embedded_nal::Stack;

type Client<'b> = DhtTcpClient<'b, Stack, UnwrapErr<SysRng>>;

/// Three ring members on their own threads, the first also serving TCP clients; the flag stops
/// the first (a crash: its sockets close).
struct Ring {
    tcp: SocketAddr,
    stop: Vec<Arc<AtomicBool>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Ring {
    fn start() -> Ring {
        let mut addrs = Vec::new();
        let mut stop = Vec::new();
        let mut threads = Vec::new();
        let mut tcp = None;
        for i in 0..3 {
            let mut node: UdpDhtNode = UdpDhtNode::bind_with(
                "127.0.0.1:0".parse().unwrap(),
                NodeId::from_name(format!("ring {i}").as_bytes()),
                |c| {
                    c.stabilize_interval = Duration::from_millis(100);
                    c.request_timeout = Duration::from_millis(200);
                    c.max_lease = Duration::from_millis(300);
                },
            )
            .unwrap();
            if i == 0 {
                tcp = Some(node.listen_tcp(node.local().addr).unwrap());
            } else {
                node.join(addrs[0]).unwrap();
            }
            addrs.push(node.local().addr);
            let flag = Arc::new(AtomicBool::new(false));
            stop.push(Arc::clone(&flag));
            threads.push(thread::spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    node.run_for(Duration::from_millis(10)).unwrap();
                    while node.poll_event().is_some() {}
                }
            }));
        }
        // Leaf sets settle, lock grace periods pass.
        thread::sleep(Duration::from_millis(700));
        Ring {
            tcp: tcp.unwrap(),
            stop,
            threads,
        }
    }

    fn crash_entry(&mut self) {
        self.stop[0].store(true, Ordering::Relaxed);
        self.threads.remove(0).join().unwrap();
        self.stop.remove(0);
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        for f in &self.stop {
            f.store(true, Ordering::Relaxed);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn now(base: StdInstant) -> Instant {
    Instant::from_micros(base.elapsed().as_micros() as u64)
}

/// Polls until `id` has an outcome (or 5 s pass); outcomes of other requests are kept for
/// their turn.
fn outcome(
    client: &mut Client<'_>,
    stack: &mut Stack,
    base: StdInstant,
    id: RequestId,
    seen: &mut Vec<Event<128>>,
) -> Event<128> {
    let end = StdInstant::now() + Duration::from_secs(5);
    loop {
        if let Some(i) = seen.iter().position(|e| e.request_id() == Some(id)) {
            return seen.remove(i);
        }
        assert!(
            StdInstant::now() < end,
            "no outcome for {id:?}; io {:?}; core {:?}",
            client.io_stats(),
            client.core().stats()
        );
        client.process(stack, now(base)).unwrap();
        while let Some(e) = client.poll_event() {
            seen.push(e);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn new_client<'b>(ring: &Ring, buffers: &'b mut DhtBuffers) -> Client<'b> {
    let me = NodeAddr {
        id: NodeId::from_name(b"embedded"),
        // A placeholder: over TCP the answers come back on the connection.
        addr: "192.0.2.1:1".parse().unwrap(),
    };
    let mut config = ClientConfig::new(me);
    config.request_timeout = Duration::from_millis(500);
    DhtTcpClient::new(DhtClient::new(config, UnwrapErr(SysRng)), ring.tcp, buffers)
}

#[test]
fn the_embedded_client_puts_gets_and_locks_through_a_ring_over_tcp() {
    let ring = Ring::start();
    let mut stack = Stack;
    let mut buffers = DhtBuffers::new();
    let mut dht = new_client(&ring, &mut buffers);
    let base = StdInstant::now();
    let mut seen = Vec::new();

    // Pipelined: eight puts at once, then eight gets.
    let puts: Vec<RequestId> = (0..8)
        .map(|k| {
            dht.put(
                now(base),
                format!("key {k}").as_bytes(),
                format!("value {k}").as_bytes(),
            )
            .unwrap()
        })
        .collect();
    for id in puts {
        assert_eq!(
            outcome(&mut dht, &mut stack, base, id, &mut seen),
            Event::PutDone { id }
        );
    }
    let gets: Vec<RequestId> = (0..8)
        .map(|k| dht.get(now(base), format!("key {k}").as_bytes()).unwrap())
        .collect();
    for (k, id) in gets.into_iter().enumerate() {
        let want = format!("value {k}");
        match outcome(&mut dht, &mut stack, base, id, &mut seen) {
            Event::GetDone { value: Some(v), .. } => assert_eq!(&v[..], want.as_bytes()),
            other => panic!("{other:?}"),
        }
    }
    let id = dht.get(now(base), b"absent").unwrap();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::GetDone { id, value: None }
    );

    // Each holder's token is its secret: bob cannot release alice's lock, and is not told it.
    let (alice, bob) = (
        LockToken::derive(b"alice's secret", b"door"),
        LockToken::derive(b"bob's secret", b"door"),
    );
    let lease = Duration::from_millis(300);
    let id = dht.lock(now(base), b"door", alice, lease).unwrap();
    assert!(matches!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::Locked { .. }
    ));
    let id = dht.lock(now(base), b"door", bob, lease).unwrap();
    match outcome(&mut dht, &mut stack, base, id, &mut seen) {
        Event::LockDenied { remaining, .. } => assert!(remaining <= lease),
        other => panic!("{other:?}"),
    }
    let id = dht.unlock(now(base), b"door", bob).unwrap();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::Failed {
            id,
            op: Op::Unlock,
            error: RequestError::Refused(ErrorCode::NotHolder)
        }
    );
    let id = dht.unlock(now(base), b"door", alice).unwrap();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::Unlocked { id }
    );

    // One connection carried everything; nothing timed out or went unmatched.
    let io = *dht.io_stats();
    assert_eq!(
        (io.connects, io.connect_failures, io.connections_lost),
        (1, 0, 0)
    );
    assert_eq!(io.frames_sent, io.frames_received);
    assert_eq!(io.frames_sent, 8 + 8 + 1 + 4);
    let s = *dht.core().stats();
    assert_eq!(
        (s.timeouts, s.unmatched, s.wrong_sender, s.malformed),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_lost_connection_fails_requests_in_flight_and_the_next_one_reconnects() {
    let mut ring = Ring::start();
    let mut stack = Stack;
    let mut buffers = DhtBuffers::new();
    let mut dht = new_client(&ring, &mut buffers);
    let base = StdInstant::now();
    let mut seen = Vec::new();
    let id = dht.put(now(base), b"k", b"v").unwrap();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::PutDone { id }
    );
    assert!(dht.is_connected());

    // The entry node crashes with a request in flight: it fails at once, loudly.
    ring.crash_entry();
    let id = dht.get(now(base), b"k").unwrap();
    let started = StdInstant::now();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Disconnected
        }
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "not by timeout"
    );
    assert!(!dht.is_connected());
    // The next request tries again, and fails the same way: nobody listens any more.
    let id = dht.get(now(base), b"k").unwrap();
    assert_eq!(
        outcome(&mut dht, &mut stack, base, id, &mut seen),
        Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Disconnected
        }
    );
    let io = *dht.io_stats();
    assert_eq!(io.connects, 2);
    assert_eq!(io.connections_lost + io.connect_failures, 2);
}
