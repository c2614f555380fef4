//! `AsyncHealthEndpoint` over `std-embedded-nal-async` on loopback, against transport-std's mio
//! node running on its own thread: each checks the other, and a ping is answered.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use embedded_hal_async::delay::DelayNs;
use embedded_nal_async::UdpStack;
use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::health::{Config, Event, HealthNode, Status};
use sinew_proto::time::Instant;
use sinew_transport_embedded::{AsyncHealthEndpoint, HealthBuffers};
use sinew_transport_std::UdpHealthNode;

/// A `DelayNs` on async-io's timers.
struct Delay;

impl DelayNs for Delay {
    async fn delay_ns(&mut self, ns: u32) {
        async_io::Timer::after(Duration::from_nanos(ns.into())).await;
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(local_addr: Option<SocketAddr>) -> Config {
    let mut config = Config::new()
        .with_check_interval(Duration::from_millis(50))
        .with_response_timeout(Duration::from_millis(200))
        .with_table_interval(Duration::from_millis(100))
        .with_learn_from_requests(true);
    config.local_addr = local_addr;
    config
}

#[test]
fn async_endpoint_and_mio_node_check_each_other() {
    let mio = UdpSocket::bind("127.0.0.1:0").unwrap(); // reserve a port for the mio node
    let mio_addr = mio.local_addr().unwrap();
    drop(mio);
    let local = SocketAddr::from(([127, 0, 0, 1], free_port()));

    // The mio node learns the endpoint from its checks and checks it back.
    let mio_thread = std::thread::spawn(move || {
        let mut node = UdpHealthNode::bind(mio_addr, config(None)).unwrap();
        let seen = node
            .run_until(Duration::from_secs(5), |node| {
                node.host(local)
                    .is_some_and(|h| h.health.status() == Status::Healthy)
                    && node.stats().responses_accepted >= 3
            })
            .unwrap();
        // Keep answering while the endpoint finishes.
        node.run_for(Duration::from_millis(500)).unwrap();
        (seen, node.stats())
    });

    async_io::block_on(async {
        let socket = std_embedded_nal_async::Stack::default()
            .bind_multiple(local)
            .await
            .unwrap();
        let mut buffers = HealthBuffers::new();
        let node: HealthNode<_, 8, 8, 4> = HealthNode::new(config(Some(local)), UnwrapErr(SysRng));
        // Send from the unspecified address of the bound port: std-embedded-nal-async 0.4 writes
        // a specified IPv4 source into IP_PKTINFO in host byte order (127.0.0.1 becomes
        // 1.0.0.127 on little-endian machines, and sendmsg fails with ENETUNREACH).
        let send_from = SocketAddr::from(([0, 0, 0, 0], local.port()));
        let mut endpoint = AsyncHealthEndpoint::new(socket, send_from, node, &mut buffers);
        endpoint.add_seed(mio_addr).unwrap();
        let start = StdInstant::now();
        let mut clock = move || Instant::from_micros(start.elapsed().as_micros() as u64);
        let mut delay = Delay;

        let end = StdInstant::now() + Duration::from_secs(5);
        let mut pinged = None;
        let mut pong = false;
        while StdInstant::now() < end {
            endpoint.step(&mut clock, &mut delay).await.unwrap();
            let healthy = endpoint
                .node()
                .host(mio_addr)
                .is_some_and(|h| h.health.status() == Status::Healthy);
            if healthy && pinged.is_none() {
                pinged = Some(endpoint.ping(&mut clock, mio_addr).unwrap());
            }
            while let Some(event) = endpoint.poll_event() {
                if let Event::Pong { addr, nonce, .. } = event {
                    assert_eq!((addr, Some(nonce)), (mio_addr, pinged));
                    pong = true;
                }
            }
            if pong && endpoint.node().stats().responses_accepted >= 3 {
                break;
            }
        }
        assert!(pong, "{:?}", endpoint.node().stats());
        // Go on answering until the mio node has seen enough.
        let end = StdInstant::now() + Duration::from_secs(2);
        while StdInstant::now() < end && !mio_thread.is_finished() {
            endpoint.step(&mut clock, &mut delay).await.unwrap();
        }
        assert_eq!(endpoint.node().stats().wrong_source, 0);
        assert_eq!(endpoint.node().stats().malformed, 0);
    });

    let (seen, stats) = mio_thread.join().unwrap();
    assert!(
        seen,
        "the mio node never found the async endpoint healthy: {stats:?}"
    );
    assert_eq!(stats.wrong_source, 0);
}
