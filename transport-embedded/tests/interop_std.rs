//! The embedded endpoint (over `std-embedded-nal`) against transport-std's mio node, on real
//! loopback sockets: each checks the other, pings go both ways, and peer tables carry one
//! implementation's hosts to the other.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::health::{Config, Event, HealthNode, Status};
use sinew_proto::time::Instant;
use sinew_transport_embedded::{HealthBuffers, HealthEndpoint};
use sinew_transport_std::UdpHealthNode;
use std_embedded_nal::Stack;

type Endpoint<'b> = HealthEndpoint<'b, Stack, UnwrapErr<SysRng>, 8, 8, 4>;

const DEADLINE: Duration = Duration::from_secs(5);

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

fn config(learn_from_requests: bool) -> Config {
    Config::new()
        .with_check_interval(Duration::from_millis(50))
        .with_response_timeout(Duration::from_millis(200))
        .with_table_interval(Duration::from_millis(100))
        .with_learn_from_requests(learn_from_requests)
}

fn embedded<'b>(
    stack: &mut Stack,
    port: u16,
    learn: bool,
    buffers: &'b mut HealthBuffers,
) -> Endpoint<'b> {
    let config = config(learn).with_local_addr(local(port));
    let node = HealthNode::new(config, UnwrapErr(SysRng));
    HealthEndpoint::bind(stack, port, node, buffers).unwrap()
}

fn mio_node(learn: bool) -> UdpHealthNode {
    UdpHealthNode::bind(local(0), config(learn)).unwrap()
}

/// Drives the embedded endpoints and the mio nodes in turn until `done` or the deadline.
fn run(
    stack: &mut Stack,
    clock: StdInstant,
    endpoints: &mut [&mut Endpoint<'_>],
    nodes: &mut [&mut UdpHealthNode],
    mut done: impl FnMut(&mut [&mut Endpoint<'_>], &mut [&mut UdpHealthNode]) -> bool,
) -> bool {
    let end = StdInstant::now() + DEADLINE;
    while StdInstant::now() < end {
        let now = Instant::from_micros(clock.elapsed().as_micros() as u64);
        for endpoint in endpoints.iter_mut() {
            endpoint.process(stack, now).unwrap();
        }
        for node in nodes.iter_mut() {
            node.process().unwrap();
        }
        if done(endpoints, nodes) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn embedded_endpoint_checks_a_mio_node() {
    let mut stack = Stack;
    let port = free_port();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = embedded(&mut stack, port, false, &mut buffers);
    // The mio node only answers: it learns nobody from requests.
    let mut node = mio_node(false);
    let mio_addr = node.local_addr();
    endpoint.add_seed(mio_addr).unwrap();

    let ok = run(
        &mut stack,
        StdInstant::now(),
        &mut [&mut endpoint],
        &mut [&mut node],
        |eps, _| {
            let host = eps[0].node().host(mio_addr);
            host.is_some_and(|h| h.health.status() == Status::Healthy)
                && eps[0].node().stats().responses_accepted >= 5
        },
    );
    assert!(ok, "{endpoint:?}");
    assert_eq!(endpoint.node().stats().wrong_source, 0);
    assert!(node.stats().requests_answered >= 5);
    assert_eq!(node.stats().malformed, 0);
    assert_eq!(node.hosts().count(), 0, "the mio node learned nobody");
}

#[test]
fn mio_node_checks_an_embedded_endpoint() {
    let mut stack = Stack;
    let port = free_port();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = embedded(&mut stack, port, false, &mut buffers);
    let mut node = mio_node(false);
    node.add_seed(local(port)).unwrap();

    let ok = run(
        &mut stack,
        StdInstant::now(),
        &mut [&mut endpoint],
        &mut [&mut node],
        |_, nodes| {
            nodes[0]
                .host(local(port))
                .is_some_and(|h| h.health.status() == Status::Healthy)
                && nodes[0].stats().responses_accepted >= 5
        },
    );
    assert!(ok, "{:?}", node.stats());
    assert_eq!(node.stats().wrong_source, 0);
    assert!(endpoint.node().stats().requests_answered >= 5);
    assert_eq!(endpoint.node().stats().malformed, 0);
    assert_eq!(endpoint.node().hosts().count(), 0);
}

#[test]
fn pings_go_both_ways() {
    let mut stack = Stack;
    let port = free_port();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = embedded(&mut stack, port, false, &mut buffers);
    let mut node = mio_node(false);
    let mio_addr = node.local_addr();
    let clock = StdInstant::now();

    let embedded_nonce = endpoint
        .ping(
            Instant::from_micros(clock.elapsed().as_micros() as u64),
            mio_addr,
        )
        .unwrap();
    let mio_nonce = node.ping(local(port)).unwrap();
    let (mut embedded_pong, mut mio_pong) = (false, false);
    let ok = run(
        &mut stack,
        clock,
        &mut [&mut endpoint],
        &mut [&mut node],
        |eps, nodes| {
            while let Some(event) = eps[0].poll_event() {
                if let Event::Pong { addr, nonce, .. } = event {
                    assert_eq!((addr, nonce), (mio_addr, embedded_nonce));
                    embedded_pong = true;
                }
            }
            while let Some(timed) = nodes[0].poll_event() {
                if let Event::Pong { addr, nonce, .. } = timed.event {
                    assert_eq!((addr, nonce), (local(port), mio_nonce));
                    mio_pong = true;
                }
            }
            embedded_pong && mio_pong
        },
    );
    assert!(ok, "embedded pong {embedded_pong}, mio pong {mio_pong}");
}

/// A mio seed, a mio node and an embedded endpoint: the two leaves know only the seed, which
/// learns nobody by itself, and find each other through its peer table.
#[test]
fn peer_tables_carry_hosts_across_implementations() {
    let mut stack = Stack;
    let port = free_port();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = embedded(&mut stack, port, true, &mut buffers);
    let mut seed = mio_node(false);
    let mut leaf = mio_node(true);
    let (seed_addr, leaf_addr) = (seed.local_addr(), leaf.local_addr());
    seed.add_seed(local(port)).unwrap();
    seed.add_seed(leaf_addr).unwrap();
    endpoint.add_seed(seed_addr).unwrap();
    leaf.add_seed(seed_addr).unwrap();

    let ok = run(
        &mut stack,
        StdInstant::now(),
        &mut [&mut endpoint],
        &mut [&mut seed, &mut leaf],
        |eps, nodes| {
            eps[0]
                .node()
                .host(leaf_addr)
                .is_some_and(|h| h.health.status() == Status::Healthy)
                && nodes[1]
                    .host(local(port))
                    .is_some_and(|h| h.health.status() == Status::Healthy)
        },
    );
    assert!(ok, "{endpoint:?}");
    assert!(endpoint.node().stats().tables_received >= 1);
    assert_eq!(endpoint.node().hosts().count(), 2);
}
