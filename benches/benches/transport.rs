//! sinew's mio transport against plain blocking std sockets, on real loopback UDP.
//!
//! Group `health_responder`: datagrams per second a responder sustains — sinew's
//! [`UdpHealthNode`] (mio, sans-IO core) unkeyed and keyed (`sinew_mio_keyed`: every request
//! and answer sealed, see `sinew_proto::seal`; the client seals its requests and checks only
//! the answers' length and type byte) beside a raw std responder that only flips the type
//! byte and echoes — under a client keeping [`WINDOW`] requests in flight. Group
//! `health_ping_pong`: one 17-byte request/response round trip with both ends pinned to the same
//! core, so the figure is the stack's cost (no cross-core wake-up), beside blocking std.
//!
//! Each iteration is one round trip; criterion's time per iteration is the round-trip time
//! (ping-pong) or the inverse of the throughput (responder).

use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_proto::health::{Config, HEALTH_LEN};
use sinew_proto::seal::{self, Key, Keyring};
use sinew_transport_std::UdpHealthNode;

/// The key of the keyed responder and its client.
const KEY: Key = Key::from_bytes([0x42; 32]);

/// Requests the throughput client keeps in flight.
const WINDOW: usize = 32;

/// A responder running on its own thread until dropped.
struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the responder with one more request, so it sees the flag.
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&request(0), self.addr);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pin(core: Option<usize>) {
    if let Some(id) = core
        && let Some(ids) = core_affinity::get_core_ids()
        && let Some(&id) = ids.get(id % ids.len().max(1))
    {
        core_affinity::set_for_current(id);
    }
}

/// sinew's mio node, answering health requests (learning off: a pure responder).
fn sinew_responder(core: Option<usize>) -> Responder {
    sinew_responder_with(core, Keyring::new())
}

/// sinew's mio node behind `keyring` (empty: unkeyed).
fn sinew_responder_with(core: Option<usize>, keyring: Keyring) -> Responder {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        pin(core);
        let config = Config::new().with_learn_from_requests(false);
        let mut node =
            UdpHealthNode::bind_keyed("127.0.0.1:0".parse().unwrap(), config, keyring).unwrap();
        tx.send(node.local_addr()).unwrap();
        let _ = node.run_until(Duration::from_secs(3600), |_| flag.load(Ordering::Relaxed));
    });
    Responder {
        addr: rx.recv().unwrap(),
        stop,
        thread: Some(thread),
    }
}

/// A raw blocking std responder: receive, flip the type byte, send back.
fn std_responder(core: Option<usize>) -> Responder {
    let stop = Arc::new(AtomicBool::new(false));
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        pin(core);
        let mut buf = [0u8; 1024];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf)
                && n == HEALTH_LEN
                && buf[0] == 0x01
            {
                buf[0] = 0x02;
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    Responder {
        addr,
        stop,
        thread: Some(thread),
    }
}

fn request(seq: u64) -> [u8; HEALTH_LEN] {
    let mut r = [0u8; HEALTH_LEN];
    r[0] = 0x01;
    r[1..9].copy_from_slice(&seq.to_be_bytes());
    r
}

fn client(to: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// A client's requests: plain, or sealed under [`KEY`] with a counter that only grows (the
/// responder drops a replay).
struct Requests {
    keyring: Option<Keyring>,
    counter: u32,
    buf: [u8; 64],
}

impl Requests {
    fn plain() -> Requests {
        Requests {
            keyring: None,
            counter: 0,
            buf: [0; 64],
        }
    }

    fn keyed() -> Requests {
        Requests {
            keyring: Some(Keyring::with_key(KEY)),
            ..Requests::plain()
        }
    }

    /// Sends request `seq`.
    fn send(&mut self, socket: &UdpSocket, seq: u64) {
        let Some(ring) = &self.keyring else {
            socket.send(&request(seq)).unwrap();
            return;
        };
        self.buf[seal::HEADER_LEN..seal::HEADER_LEN + HEALTH_LEN].copy_from_slice(&request(seq));
        self.counter += 1;
        let len = ring
            .seal(0x5eed, self.counter, &mut self.buf, HEALTH_LEN)
            .unwrap();
        socket.send(&self.buf[..len]).unwrap();
    }

    /// The length and type byte of an answer.
    fn answer(&self) -> (usize, u8) {
        match self.keyring {
            None => (HEALTH_LEN, 0x02),
            Some(_) => (HEALTH_LEN + seal::OVERHEAD, seal::TYPE),
        }
    }
}

/// `iters` round trips with `window` requests in flight; a lost datagram is replaced.
fn round_trips(socket: &UdpSocket, iters: u64, window: usize) -> Duration {
    round_trips_with(socket, iters, window, &mut Requests::plain())
}

fn round_trips_with(
    socket: &UdpSocket,
    iters: u64,
    window: usize,
    requests: &mut Requests,
) -> Duration {
    let mut buf = [0u8; 128];
    let start = Instant::now();
    let mut sent = 0u64;
    let mut answered = 0u64;
    while sent < iters.min(window as u64) {
        requests.send(socket, sent);
        sent += 1;
    }
    while answered < iters {
        match socket.recv(&mut buf) {
            Ok(n) => {
                assert_eq!((n, buf[0]), requests.answer(), "not a health response");
                answered += 1;
                if sent < iters {
                    requests.send(socket, sent);
                    sent += 1;
                }
            }
            // Lost on loopback (buffer overflow): send a replacement.
            Err(_) => requests.send(socket, sent),
        }
    }
    let elapsed = start.elapsed();
    // Drain replacements that were answered late.
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    while socket.recv(&mut buf).is_ok() {}
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    black_box(elapsed)
}

fn responder_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("health_responder");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, responder) in [
        ("sinew_mio", sinew_responder(None)),
        ("std_blocking", std_responder(None)),
    ] {
        let socket = client(responder.addr);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| round_trips(&socket, iters, WINDOW))
        });
    }
    let responder = sinew_responder_with(None, Keyring::with_key(KEY));
    let socket = client(responder.addr);
    let mut requests = Requests::keyed();
    group.bench_function("sinew_mio_keyed", |b| {
        b.iter_custom(|iters| round_trips_with(&socket, iters, WINDOW, &mut requests))
    });
    drop(responder);
    group.finish();
}

fn ping_pong_one_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("health_ping_pong");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    pin(Some(0));
    for (name, responder) in [
        ("sinew_mio", sinew_responder(Some(0))),
        ("std_blocking", std_responder(Some(0))),
    ] {
        let socket = client(responder.addr);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| round_trips(&socket, iters, 1))
        });
    }
    group.finish();
}

criterion_group!(benches, responder_throughput, ping_pong_one_core);
criterion_main!(benches);
