//! Put and get operations per second of a 5-node DHT ring on loopback.
//!
//! Group `dht_cluster`: five [`UdpDhtNode`]s (2 replicas per key) on one thread and one
//! `mio::Poll`, a [`UdpDhtClient`] on the bench thread keeping `DEPTH` requests in flight
//! through one node, over 64 keys with 100-byte values. A put is acknowledged only once the
//! owner and its two replicas hold it (so it costs a route and two replications); a get is
//! routed to the owner and back. `get/sinew_5_nodes_one_hop` and `put/sinew_5_nodes_one_hop`:
//! the same through a one-hop client (`ClientConfig::one_hop`), which learned the entry's view
//! of the ring and sends each request straight to the key's owner. Beside them, `udp_echo`: the same client pattern against a
//! blocking std socket that echoes each datagram, the kernel's cost of one hop there and back
//! on this machine. Time per iteration is one operation, so the throughput is operations/s.

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_proto::dht::{Event, NodeId};
use sinew_transport_std::Group;
use sinew_transport_std::dht::{UdpDhtClient, UdpDhtNode};

const NODES: usize = 5;
const DEPTH: usize = 16;
const KEYS: usize = 64;
const VALUE: [u8; 100] = [0x42; 100];

/// The ring, running on its own thread until dropped.
struct Cluster {
    addrs: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Cluster {
    fn start() -> Cluster {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut group = Group::new().unwrap();
            for i in 0..NODES {
                let id = NodeId::from_name(format!("bench node {i}").as_bytes());
                let node: UdpDhtNode =
                    UdpDhtNode::bind_with("127.0.0.1:0".parse().unwrap(), id, |c| {
                        c.stabilize_interval = Duration::from_millis(200);
                    })
                    .unwrap();
                group.add(node).unwrap();
            }
            let seed = group.iter::<UdpDhtNode>().next().unwrap().local().addr;
            for n in group.iter_mut::<UdpDhtNode>().skip(1) {
                n.join(seed).unwrap();
            }
            let mut announced = false;
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                group
                    .run_until(Duration::from_millis(10), |g| {
                        for n in g.iter_mut::<UdpDhtNode>() {
                            while n.poll_event().is_some() {}
                        }
                        false
                    })
                    .unwrap();
                if !announced
                    && (group
                        .iter::<UdpDhtNode>()
                        .all(|n| n.leaf_set().nodes().count() == NODES - 1)
                        || started.elapsed() > Duration::from_secs(10))
                {
                    announced = true;
                    // Let stabilization settle the leaf sets once more.
                    let _ = tx.send(
                        group
                            .iter::<UdpDhtNode>()
                            .map(|n| n.local().addr)
                            .collect::<Vec<_>>(),
                    );
                }
            }
        });
        let addrs = rx.recv().expect("the ring forms");
        thread::sleep(Duration::from_millis(500));
        Cluster {
            addrs,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `iters` operations with `DEPTH` in flight; every one must succeed.
fn run_ops(client: &mut UdpDhtClient, iters: u64, put: bool) -> Duration {
    let node = client.node();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("key-{k:02}")).collect();
    let start = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    while done < iters {
        while sent < iters && sent - done < DEPTH as u64 {
            let key = keys[(sent % KEYS as u64) as usize].as_bytes();
            client
                .submit(|c, now| {
                    if put {
                        c.put(now, node, key, &VALUE)
                    } else {
                        c.get(now, node, key)
                    }
                })
                .unwrap();
            sent += 1;
        }
        client.wait(Duration::from_millis(50)).unwrap();
        while let Some(e) = client.poll_event() {
            match e {
                Event::PutDone { .. } => {}
                Event::GetDone { value, .. } => {
                    assert_eq!(value.as_deref(), Some(&VALUE[..]));
                }
                other => panic!("{other:?}"),
            }
            done += 1;
        }
    }
    start.elapsed()
}

/// A blocking socket echoing every datagram, until dropped.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..len], from);
                }
            }
        });
        Echo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `iters` datagrams of a put's size echoed, `DEPTH` in flight.
fn run_echo(socket: &UdpSocket, iters: u64) -> Duration {
    let message = [0x42u8; 162];
    let mut buf = [0u8; 512];
    let start = Instant::now();
    let (mut sent, mut done) = (0u64, 0u64);
    while done < iters {
        while sent < iters && sent - done < DEPTH as u64 {
            socket.send(&message).unwrap();
            sent += 1;
        }
        match socket.recv(&mut buf) {
            Ok(len) => {
                black_box(len);
                done += 1;
            }
            // A lost datagram: send another in its place.
            Err(_) => sent -= 1,
        }
    }
    start.elapsed()
}

fn dht_cluster(c: &mut Criterion) {
    let cluster = Cluster::start();
    let mut client: UdpDhtClient = UdpDhtClient::connect(cluster.addrs[1]).unwrap();
    // Every key exists before the gets.
    run_ops(&mut client, KEYS as u64, true);
    // One get alone proves the client's address to its entry (a Value is larger than a Get:
    // a Challenge first). Without it the challenge comes once the credit the puts left runs
    // out, in the middle of a burst of gets, whose requests are then sent twice.
    assert_eq!(client.get(b"key-00").unwrap().as_deref(), Some(&VALUE[..]));
    // The bench ring's ids are named, not bound to addresses: the client checks no binding.
    let mut one_hop: UdpDhtClient = UdpDhtClient::connect_with(cluster.addrs[1], |c| {
        c.one_hop = true;
        c.bind_ids = false;
    })
    .unwrap();
    // Learns the view and proves its address to the entry with one request alone (a burst
    // answered by a Challenge is sent again whole, which can exceed the entry's relay share
    // for one client), then to every owner (a Challenge each, once).
    assert_eq!(one_hop.get(b"key-00").unwrap().as_deref(), Some(&VALUE[..]));
    run_ops(&mut one_hop, 2 * KEYS as u64, false);

    let mut group = c.benchmark_group("dht_cluster");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("put/sinew_5_nodes", |b| {
        b.iter_custom(|iters| run_ops(&mut client, iters, true))
    });
    group.bench_function("get/sinew_5_nodes", |b| {
        b.iter_custom(|iters| run_ops(&mut client, iters, false))
    });
    group.bench_function("put/sinew_5_nodes_one_hop", |b| {
        b.iter_custom(|iters| run_ops(&mut one_hop, iters, true))
    });
    group.bench_function("get/sinew_5_nodes_one_hop", |b| {
        b.iter_custom(|iters| run_ops(&mut one_hop, iters, false))
    });
    let echo = Echo::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(echo.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    group.bench_function("udp_echo/std", |b| {
        b.iter_custom(|iters| run_echo(&socket, iters))
    });
    group.finish();
    let s = one_hop.stats();
    eprintln!("one-hop client: {s:?}");
    assert_eq!((s.timeouts, s.malformed, s.fallbacks), (0, 0, 0), "{s:?}");
    assert!(s.views_learned > 0 && s.direct > 0, "{s:?}");
    let s = client.stats();
    assert_eq!((s.timeouts, s.unmatched, s.malformed), (0, 0, 0), "{s:?}");
    drop(echo);
    drop(cluster);
}

criterion_group!(benches, dht_cluster);
criterion_main!(benches);
