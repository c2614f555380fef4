//! Embedded endpoints over real loopback sockets (`std-embedded-nal`): they check each other,
//! discover each other through peer tables, and refuse bad bytes from a raw socket.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::health::{Config, Event, HealthNode, Status};
use sinew_proto::time::Instant;
use sinew_transport_embedded::{HealthBuffers, HealthEndpoint};
use std_embedded_nal::Stack;

type Endpoint<'b> = HealthEndpoint<'b, Stack, UnwrapErr<SysRng>, 8, 8, 4>;

/// A port that was free a moment ago (std-embedded-nal binds `[::]:port` and cannot say which
/// port the system chose for port 0).
fn free_port() -> u16 {
    UdpSocket::bind("[::]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn fast_config(port: u16) -> Config {
    Config::new()
        .with_check_interval(Duration::from_millis(50))
        .with_response_timeout(Duration::from_millis(200))
        .with_table_interval(Duration::from_millis(100))
        .with_learn_from_requests(true)
        .with_local_addr(local(port))
}

fn endpoint<'b>(
    stack: &mut Stack,
    port: u16,
    config: Config,
    buffers: &'b mut HealthBuffers,
) -> Endpoint<'b> {
    let node = HealthNode::new(config, UnwrapErr(SysRng));
    HealthEndpoint::bind(stack, port, node, buffers).unwrap()
}

struct Clock(StdInstant);

impl Clock {
    fn new() -> Clock {
        Clock(StdInstant::now())
    }
    fn now(&self) -> Instant {
        Instant::from_micros(self.0.elapsed().as_micros() as u64)
    }
}

/// Polls every endpoint until `done` or the deadline; true if `done`.
fn run(
    stack: &mut Stack,
    clock: &Clock,
    endpoints: &mut [&mut Endpoint<'_>],
    deadline: Duration,
    mut done: impl FnMut(&mut [&mut Endpoint<'_>]) -> bool,
) -> bool {
    let end = StdInstant::now() + deadline;
    while StdInstant::now() < end {
        for endpoint in endpoints.iter_mut() {
            endpoint.process(stack, clock.now()).unwrap();
        }
        if done(endpoints) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn healthy(endpoint: &Endpoint<'_>, addr: SocketAddr) -> bool {
    endpoint
        .node()
        .host(addr)
        .is_some_and(|h| h.health.status() == Status::Healthy)
}

#[test]
fn two_endpoints_check_each_other() {
    let mut stack = Stack;
    let clock = Clock::new();
    let (pa, pb) = (free_port(), free_port());
    let (mut ba, mut bb) = (HealthBuffers::new(), HealthBuffers::new());
    let mut a = endpoint(&mut stack, pa, fast_config(pa), &mut ba);
    let mut b = endpoint(&mut stack, pb, fast_config(pb), &mut bb);
    a.add_seed(local(pb)).unwrap();
    b.add_seed(local(pa)).unwrap();

    let ok = run(
        &mut stack,
        &clock,
        &mut [&mut a, &mut b],
        Duration::from_secs(5),
        |eps| {
            healthy(eps[0], local(pb))
                && healthy(eps[1], local(pa))
                && eps[0].node().stats().responses_accepted >= 3
                && eps[1].node().stats().responses_accepted >= 3
        },
    );
    assert!(ok, "a: {a:?}\nb: {b:?}");
    for (me, other) in [(&a, local(pb)), (&b, local(pa))] {
        let stats = me.node().stats();
        assert_eq!(stats.malformed, 0);
        assert_eq!(stats.wrong_source, 0, "IPv4-mapped sources must match");
        assert!(stats.requests_answered >= 3);
        assert_eq!(me.node().hosts().count(), 1);
        assert!(me.node().host(other).unwrap().last_rtt.is_some());
    }
    let mut added = 0;
    while let Some(event) = a.poll_event() {
        if let Event::HostAdded { addr } = event {
            assert_eq!(addr, local(pb));
            added += 1;
        }
    }
    assert_eq!(added, 1);
    a.close(&mut stack).unwrap();
    b.close(&mut stack).unwrap();
}

#[test]
fn ping_is_answered_with_a_pong() {
    let mut stack = Stack;
    let clock = Clock::new();
    let (pa, pb) = (free_port(), free_port());
    let (mut ba, mut bb) = (HealthBuffers::new(), HealthBuffers::new());
    let mut config = fast_config(pa);
    config.learn_from_requests = false;
    let mut a = endpoint(&mut stack, pa, config, &mut ba);
    let mut b = endpoint(&mut stack, pb, fast_config(pb), &mut bb);

    let mut pongs = Vec::new();
    for _ in 0..3 {
        let nonce = a.ping(clock.now(), local(pb)).unwrap();
        let ok = run(
            &mut stack,
            &clock,
            &mut [&mut a, &mut b],
            Duration::from_secs(2),
            |eps| match eps[0].poll_event() {
                Some(Event::Pong {
                    addr,
                    nonce: n,
                    rtt,
                }) => {
                    assert_eq!((addr, n), (local(pb), nonce));
                    pongs.push(rtt);
                    true
                }
                Some(other) => panic!("unexpected {other:?}"),
                None => false,
            },
        );
        assert!(ok, "no pong");
    }
    assert_eq!(pongs.len(), 3);
    assert!(pongs.iter().all(|rtt| *rtt < Duration::from_secs(1)));
    // b answered the pings and, learning from requests, probed a and added it.
    assert!(b.node().stats().requests_answered >= 3);
}

#[test]
fn ping_to_a_silent_port_times_out() {
    let mut stack = Stack;
    let clock = Clock::new();
    let pa = free_port();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut ba = HealthBuffers::new();
    let mut a = endpoint(&mut stack, pa, fast_config(pa), &mut ba);
    let nonce = a.ping(clock.now(), silent.local_addr().unwrap()).unwrap();
    let ok = run(
        &mut stack,
        &clock,
        &mut [&mut a],
        Duration::from_secs(2),
        |eps| matches!(eps[0].poll_event(), Some(Event::PingTimeout { nonce: n, .. }) if n == nonce),
    );
    assert!(ok);
    assert_eq!(a.node().stats().checks_missed, 1);
}

#[test]
fn three_endpoints_discover_each_other_through_a_seed() {
    let mut stack = Stack;
    let clock = Clock::new();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let (mut ba, mut bb, mut bc) = (
        HealthBuffers::new(),
        HealthBuffers::new(),
        HealthBuffers::new(),
    );
    // a is the seed; b and c only know a, and a learns nobody from requests: b and c must find
    // each other through a's peer table.
    let mut seed_config = fast_config(pa);
    seed_config.learn_from_requests = false;
    let mut a = endpoint(&mut stack, pa, seed_config, &mut ba);
    let mut b = endpoint(&mut stack, pb, fast_config(pb), &mut bb);
    let mut c = endpoint(&mut stack, pc, fast_config(pc), &mut bc);
    b.add_seed(local(pa)).unwrap();
    c.add_seed(local(pa)).unwrap();
    // a knows b and c only once they are in its table: seed it with them, too.
    a.add_seed(local(pb)).unwrap();
    a.add_seed(local(pc)).unwrap();

    let ok = run(
        &mut stack,
        &clock,
        &mut [&mut a, &mut b, &mut c],
        Duration::from_secs(5),
        |eps| healthy(eps[1], local(pc)) && healthy(eps[2], local(pb)),
    );
    assert!(ok, "b: {b:?}\nc: {c:?}");
    assert!(b.node().stats().tables_received >= 1);
    assert!(c.node().stats().tables_received >= 1);
    for endpoint in [&a, &b, &c] {
        assert_eq!(endpoint.node().hosts().count(), 2);
    }
}

/// Raw bytes from a plain socket: a valid request is answered by its echo, and every malformed
/// datagram (short, padded, unknown type, longer than 508 bytes) is counted and never answered.
#[test]
fn raw_bytes_from_a_plain_socket() {
    let mut stack = Stack;
    let clock = Clock::new();
    let pa = free_port();
    let mut ba = HealthBuffers::new();
    let mut a = endpoint(&mut stack, pa, fast_config(pa), &mut ba);
    let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();

    let mut request = [0u8; 17];
    request[0] = 0x01; // version 0, kind 1: health request
    for (i, b) in request[1..].iter_mut().enumerate() {
        *b = 0xa0 + i as u8; // nonce
    }
    let mut padded_table_request = vec![0u8; 600];
    padded_table_request[0] = 0x03; // peer-table request, zero padding, but above 508 bytes
    let bad: [&[u8]; 5] = [
        &request[..16],                 // one byte short
        &[&request[..], &[0]].concat(), // padded with a byte
        &[0x1f; 17],                    // unknown kind 31
        &[0xE0; 17],                    // version 7: a sealed datagram, and no key
        &padded_table_request,          // too large
    ];
    for datagram in bad {
        raw.send_to(datagram, local(pa)).unwrap();
    }
    raw.send_to(&request, local(pa)).unwrap();

    let mut answered = [0u8; 600];
    let mut got = None;
    let end = StdInstant::now() + Duration::from_secs(2);
    while got.is_none() && StdInstant::now() < end {
        a.process(&mut stack, clock.now()).unwrap();
        raw.set_nonblocking(true).unwrap();
        if let Ok((len, _)) = raw.recv_from(&mut answered) {
            got = Some(len);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let len = got.expect("the valid request was answered");
    assert_eq!(len, 17);
    assert_eq!(answered[0], 0x02, "health response");
    assert_eq!(answered[1..17], request[1..17], "nonce echoed unchanged");
    // The sealed one is dropped before the node sees it, counted as sealed without a key.
    assert_eq!(a.node().stats().malformed, bad.len() as u64 - 1);
    assert_eq!(a.seal_stats().sealed_no_key, 1);
    assert_eq!(a.node().stats().requests_answered, 1);
    // Nothing else ever comes back (the endpoint then probes the raw socket: a request, not an
    // answer to any malformed datagram).
    raw.set_nonblocking(false).unwrap();
    for _ in 0..50 {
        a.process(&mut stack, clock.now()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    while let Ok((len, _)) = raw.recv_from(&mut answered) {
        assert_eq!(
            (len, answered[0]),
            (17, 0x01),
            "only probes of the raw socket"
        );
    }
}
