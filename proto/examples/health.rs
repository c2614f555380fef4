//! Three health nodes, each on its own plain `std::net::UdpSocket`, driven by one short loop.
//!
//! `HealthNode` never touches a socket or a clock: this program does both, in a few lines, to
//! show what "bring your own socket" means. Node 0 starts alone; nodes 1 and 2 know only node 0
//! (their seed) and must learn of each other from its peer table. The program runs until every
//! node holds the two others as Healthy and has had ten answers to its requests, prints the
//! tables and exits 0; a stage not reached within five seconds prints the tables and exits 1.
//!
//! ```text
//! cargo run -p sinew-proto --example health
//! ```

use std::error::Error;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};

use sinew_proto::datagram::MAX_DATAGRAM_LEN;
use sinew_proto::health::{Config, Event, HealthNode, Status};
use sinew_proto::time::Instant;

/// Nonces must be unguessable: draw them from the operating system.
type Rng = sinew_proto::rand_core::UnwrapErr<getrandom::SysRng>;

const NODES: usize = 3;
const DEADLINE: Duration = Duration::from_secs(5);
/// The longest the loop sleeps: a real program blocks in poll/epoll on all its sockets (as
/// sinew-transport-std does with mio); one thread serving three sockets polls them instead.
const MAX_NAP: Duration = Duration::from_millis(5);

/// One node and the socket it speaks through.
struct Peer {
    socket: UdpSocket,
    addr: SocketAddr,
    node: HealthNode<Rng>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let epoch = StdInstant::now();
    let mut peers = Vec::new();
    for _ in 0..NODES {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        // Faster than the defaults (1 s checks), so that the example is quick.
        let config = Config::new()
            .with_check_interval(Duration::from_millis(200))
            .with_response_timeout(Duration::from_millis(150))
            .with_table_interval(Duration::from_millis(500))
            .with_local_addr(addr);
        let node = HealthNode::new(config, sinew_proto::rand_core::UnwrapErr(getrandom::SysRng));
        peers.push(Peer { socket, addr, node });
    }
    let seed = peers[0].addr;
    for peer in &mut peers[1..] {
        peer.node.add_seed(seed)?;
    }

    // Until every node holds the others as Healthy: they found each other.
    run_until(&mut peers, epoch, all_healthy)?;
    println!(
        "every node sees the others Healthy after {:?}",
        epoch.elapsed()
    );
    // Then for about a second of periodic checks, until every node has had ten answers
    // (probes, peer-table pages and checks) and all are still Healthy.
    run_until(&mut peers, epoch, |peers| {
        all_healthy(peers)
            && peers
                .iter()
                .all(|p| p.node.stats().responses_accepted >= 10)
    })?;
    println!("and they keep answering, after {:?}", epoch.elapsed());
    print_tables(&peers);
    for (i, peer) in peers.iter().enumerate() {
        let stats = peer.node.stats();
        // Loopback neither corrupts nor forges datagrams: every one must have been understood
        // and have come from where its request went. (A response may still come too late
        // on a loaded machine, so late and unmatched ones are not counted against the run.)
        if stats.malformed != 0 || stats.wrong_source != 0 {
            return Err(format!("node {i} refused datagrams: {stats:?}").into());
        }
    }
    Ok(())
}

/// Drives every node until `done` holds, or fails after [`DEADLINE`].
fn run_until(
    peers: &mut [Peer],
    epoch: StdInstant,
    done: impl Fn(&[Peer]) -> bool,
) -> Result<(), Box<dyn Error>> {
    // One byte more than the protocol allows, so that an oversized datagram reaches the node
    // long enough to be refused as too large rather than cut to size.
    let mut buf = [0u8; MAX_DATAGRAM_LEN + 1];
    let deadline = StdInstant::now() + DEADLINE;
    while !done(peers) {
        if StdInstant::now() > deadline {
            print_tables(peers);
            return Err(format!("the nodes did not get there within {DEADLINE:?}").into());
        }
        for (i, peer) in peers.iter_mut().enumerate() {
            // 1. Every datagram that arrived, with the source address the socket reports.
            loop {
                match peer.socket.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        peer.node.handle_datagram(now(epoch), from, &buf[..len]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // An ICMP error about an earlier datagram (some systems report them on
                    // unconnected sockets): it concerns that datagram, not this socket.
                    Err(e) if is_stale_error(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // 2. The passing of time: checks due, responses that did not come.
            peer.node.handle_timeout(now(epoch));
            // 3. Everything the node wants sent.
            while let Some(transmit) = peer.node.poll_transmit(now(epoch), &mut buf) {
                match peer
                    .socket
                    .send_to(&buf[..transmit.len], transmit.destination)
                {
                    Ok(_) => {}
                    // UDP is lossy anyway: a full send buffer drops the datagram.
                    Err(e) if e.kind() == ErrorKind::WouldBlock || is_stale_error(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            // 4. What the application should know.
            while let Some(event) = peer.node.poll_event() {
                print_event(i, &event);
            }
        }
        // Sleep until the earliest timer of any node, but not so long that datagrams wait.
        let next = peers.iter().filter_map(|p| p.node.poll_timeout()).min();
        let nap = next.map_or(MAX_NAP, |t| {
            t.saturating_duration_since(now(epoch)).min(MAX_NAP)
        });
        std::thread::sleep(nap);
    }
    Ok(())
}

/// The protocol's time: microseconds since an epoch of our choosing (the program's start).
fn now(epoch: StdInstant) -> Instant {
    Instant::from_micros(u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
}

fn is_stale_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
    )
}

/// Whether every node holds every other one as Healthy.
fn all_healthy(peers: &[Peer]) -> bool {
    peers.iter().all(|peer| {
        peers
            .iter()
            .filter(|other| other.addr != peer.addr)
            .all(|other| {
                peer.node
                    .host(other.addr)
                    .is_some_and(|h| h.health.status() == Status::Healthy)
            })
    })
}

fn print_event(node: usize, event: &Event) {
    match event {
        Event::HostAdded { addr } => println!("node {node}: {addr} joined the table"),
        Event::HealthChanged { addr, from, to } => {
            println!(
                "node {node}: {addr} went from {} to {} lives",
                from.lives(),
                to.lives()
            )
        }
        other => println!("node {node}: {other:?}"),
    }
}

fn print_tables(peers: &[Peer]) {
    for (i, peer) in peers.iter().enumerate() {
        println!("node {i} at {}:", peer.addr);
        for host in peer.node.hosts() {
            let rtt = host.last_rtt.map_or("-".to_string(), |d| format!("{d:?}"));
            println!(
                "  {:<21} {:?} ({} lives), rtt {rtt}",
                host.addr,
                host.health.status(),
                host.health.lives()
            );
        }
    }
}
