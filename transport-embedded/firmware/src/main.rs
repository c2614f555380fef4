//! # sinew-firmware
//!
//! sinew's UDP health checks and a ZooKeeper session on a Cortex-M4F: QEMU's `mps2-an386` board,
//! its LAN9118 Ethernet controller (polled, [`board`]), smoltcp behind embedded-nal ([`nal`]), a
//! [`HealthNode`] driven by `sinew-transport-embedded`'s [`HealthEndpoint`], and its
//! [`ZkClient`] keeping an ephemeral node ([`registration`]).
//!
//! The node answers health checks and peer-table requests on UDP port `SINEW_FW_PORT` (47700),
//! checks the host node at 10.0.2.2:`SINEW_HOST_PORT` (47701, the host's 127.0.0.1 through QEMU's
//! user network), learns whoever checks it, and logs over defmt (semihosting). It also opens a
//! ZooKeeper session to 10.0.2.2:`SINEW_ZK_PORT` (2181) and registers itself as the ephemeral
//! node `/sinew/firmware-<MAC>` holding its health address. After `SINEW_RUN_SECS` (15) seconds
//! it closes the session (the server removes the node) and exits QEMU with status 0 if it saw
//! both health directions — the host answered its checks and it answered the host's — and had
//! registered and closed its session; 1 otherwise. The settings are read from the environment at
//! build time.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod board;
mod nal;
mod registration;

use core::net::{SocketAddr, SocketAddrV4};
use core::time::Duration;

use cortex_m_rt::entry;
use defmt_semihosting as _;
use sinew_proto::health::{Config, HealthNode, Status};
use sinew_proto::rand_core::{Rng, SeedableRng};
use sinew_proto::seal::{Key, Keyring};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::Config as ZkConfig;
use sinew_transport_embedded::{Clock, Error, HealthBuffers, HealthEndpoint, ZkBuffers, ZkClient};
use smoltcp::iface::SocketStorage;
use static_cell::StaticCell;

use registration::Registration;

/// The firmware's UDP port.
const FW_PORT: u16 = env_u16(option_env!("SINEW_FW_PORT"), 47700);
/// The host node's port on the host's loopback (10.0.2.2 from inside QEMU).
const HOST_PORT: u16 = env_u16(option_env!("SINEW_HOST_PORT"), 47701);
/// How long the firmware runs before it exits with its verdict.
const RUN_SECS: u16 = env_u16(option_env!("SINEW_RUN_SECS"), 15);
/// The cluster key for sealed health datagrams, 64 hex digits (`sinew keygen`); unset, the
/// firmware runs unkeyed. Baked in at build time, like the ports: a real board would keep it in
/// protected flash.
const KEY: Option<[u8; 32]> = env_key(option_env!("SINEW_FW_KEY"));
/// The ZooKeeper server's port on the host's loopback (10.0.2.2 from inside QEMU).
const ZK_PORT: u16 = env_u16(option_env!("SINEW_ZK_PORT"), 2181);
/// The session timeout asked for: short, so that a firmware that dies without closing its
/// session loses its node soon (the server grants at least two ticks, 4 s by default).
const ZK_SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// How long the firmware waits for the server to confirm the close before it exits anyway
/// (the session then expires on the server).
const ZK_CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Requests in flight, watches, bytes of watched paths.
const ZK_PENDING: usize = 8;
const ZK_WATCHES: usize = 2;
const ZK_WATCH_BYTES: usize = 64;
/// Exchanges each way that count as "seen".
const MIN_EXCHANGES: u64 = 3;
/// Hosts in the network table, outstanding requests, queued responses.
const HOSTS: usize = 8;
const PENDING: usize = 8;
const QUEUE: usize = 8;
/// UDP and TCP sockets of the stack.
const UDP_SOCKETS: usize = 1;
const TCP_SOCKETS: usize = 1;
const SOCKETS: usize = UDP_SOCKETS + TCP_SOCKETS;

/// A board's source of nonces.
///
/// Health-check nonces are what stops anyone from marking a host healthy by answering checks it
/// never saw, so they must be unpredictable: a board implements this with its hardware RNG (or a
/// CSPRNG seeded from it). A deterministic or merely seeded-by-time generator is not acceptable
/// outside a test.
pub trait BoardRng: sinew_proto::rand_core::CryptoRng {
    /// Where the generator's entropy came from.
    fn entropy_source(&self) -> EntropySource;
}

/// Where a [`BoardRng`]'s entropy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum EntropySource {
    /// A hardware true random number generator.
    HardwareTrng,
    /// The host's `/dev/urandom`, through semihosting (QEMU or a debugger only).
    HostViaSemihosting,
    /// Timing and constants: guessable; never for a deployment.
    Weak,
}

const fn env_u16(value: Option<&str>, default: u16) -> u16 {
    let Some(value) = value else {
        return default;
    };
    let bytes = value.as_bytes();
    assert!(!bytes.is_empty(), "empty number in the environment");
    let mut n: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "not a number in the environment");
        n = n * 10 + (bytes[i] - b'0') as u32;
        assert!(
            n <= u16::MAX as u32,
            "number in the environment above 65535"
        );
        i += 1;
    }
    n as u16
}

/// A 32-byte key from 64 hex digits in the environment, at compile time.
const fn env_key(value: Option<&str>) -> Option<[u8; 32]> {
    let Some(text) = value else {
        return None;
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return None;
    }
    assert!(bytes.len() == 64, "SINEW_FW_KEY is not 64 hex digits");
    let mut key = [0u8; 32];
    let mut i = 0;
    while i < 64 {
        let d = bytes[i];
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => panic!("SINEW_FW_KEY is not hex"),
        };
        key[i / 2] = (key[i / 2] << 4) | v;
        i += 1;
    }
    Some(key)
}

defmt::timestamp!("{=u64:ms}", board::millis());

type Stack = nal::SmolStack<'static, board::Lan9118, UDP_SOCKETS, TCP_SOCKETS>;
/// The generator of the seal's sender ids, seeded from the board's.
type SealRng = rand_chacha::ChaCha20Rng;
type Endpoint = HealthEndpoint<'static, Stack, board::QemuRng, HOSTS, PENDING, QUEUE, SealRng>;
/// 1 KiB of queued requests, replies up to 2 KiB, the smallest write buffer.
type ZkMemory = ZkBuffers<1024, 2048, 2048>;
type Zk = ZkClient<'static, Stack, ZK_PENDING, ZK_WATCHES, ZK_WATCH_BYTES>;

/// The ZooKeeper servers, tried in turn.
static ZK_SERVERS: [SocketAddr; 1] = [SocketAddr::V4(SocketAddrV4::new(board::ZK_HOST, ZK_PORT))];

// Everything large lives in statics, so that `.bss` shows what the firmware needs and the stack
// stays small (its high-water mark is logged at exit).
static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> = StaticCell::new();
static UDP_BUFFERS: StaticCell<[nal::UdpBuffers; UDP_SOCKETS]> = StaticCell::new();
static TCP_BUFFERS: StaticCell<[nal::TcpBuffers; TCP_SOCKETS]> = StaticCell::new();
static HEALTH_BUFFERS: StaticCell<HealthBuffers> = StaticCell::new();
static STACK: StaticCell<Stack> = StaticCell::new();
static ENDPOINT: StaticCell<Endpoint> = StaticCell::new();
static ZK_MEMORY: StaticCell<ZkMemory> = StaticCell::new();
static ZK: StaticCell<Zk> = StaticCell::new();

#[entry]
fn main() -> ! {
    let board::Board {
        eth,
        mut clock,
        mut rng,
    } = match board::Board::init() {
        Ok(board) => board,
        Err(error) => {
            defmt::error!("board: {}", error);
            board::exit(2)
        }
    };
    let mac = eth.mac();
    defmt::info!(
        "sinew firmware on {=str}: LAN9118 id {=u32:#010x}, MAC {=[u8]:02x}, {}:{=u16}",
        board::NAME,
        eth.id(),
        mac,
        defmt::Display2Format(&board::IP),
        FW_PORT
    );
    match rng.entropy_source() {
        EntropySource::HardwareTrng => defmt::info!("nonces: hardware TRNG"),
        EntropySource::HostViaSemihosting => {
            defmt::warn!("nonces: ChaCha20 seeded from the host via semihosting (QEMU only)")
        }
        EntropySource::Weak => defmt::error!("nonces: guessable seed; do not deploy"),
    }

    let mut stack = nal::SmolStack::new(
        eth,
        nal::Ipv4Config {
            mac,
            ip: board::IP,
            prefix_len: board::PREFIX_LEN,
            gateway: board::GATEWAY,
        },
        SOCKET_STORAGE.init([SocketStorage::EMPTY; SOCKETS]),
        UDP_BUFFERS.init_with(|| [const { nal::UdpBuffers::new() }; UDP_SOCKETS]),
        TCP_BUFFERS.init_with(|| [const { nal::TcpBuffers::new() }; TCP_SOCKETS]),
        clock.now(),
    )
    // The low bits of a random word: where this boot's local ports start.
    .with_port_seed(rng.next_u32() as u16);
    if let Some(alias) = board::LOOPBACK_ALIAS {
        stack = stack.with_loopback_alias(alias);
    }
    let stack: &mut Stack = STACK.init(stack);

    let me = SocketAddr::V4(SocketAddrV4::new(board::IP, FW_PORT));
    let host = SocketAddr::V4(SocketAddrV4::new(board::GATEWAY, HOST_PORT));
    let config = Config::new()
        .with_check_interval(Duration::from_millis(500))
        .with_response_timeout(Duration::from_millis(400))
        .with_table_interval(Duration::from_secs(2))
        .with_learn_from_requests(true)
        .with_local_addr(me);
    let mut seal_seed = [0u8; 32];
    rng.fill_bytes(&mut seal_seed);
    let seal_rng = SealRng::from_seed(seal_seed);
    let keyring = match KEY {
        Some(key) => {
            defmt::info!(
                "health datagrams sealed (key id {=u8:#x})",
                Key::from_bytes(key).id()
            );
            Keyring::with_key(Key::from_bytes(key))
        }
        None => Keyring::new(),
    };
    let node: HealthNode<_, HOSTS, PENDING, QUEUE> = HealthNode::new(config, rng);
    let buffers = HEALTH_BUFFERS.init_with(HealthBuffers::new);
    let bound = HealthEndpoint::bind_keyed(stack, FW_PORT, node, keyring, seal_rng, buffers);
    let endpoint: &mut Endpoint = match bound {
        Ok(endpoint) => ENDPOINT.init(endpoint),
        Err(error) => {
            defmt::error!("bind: {}", error);
            board::exit(2)
        }
    };
    if let Err(error) = endpoint.add_seed(host) {
        defmt::error!("seed: {}", error);
        board::exit(2)
    }
    defmt::info!(
        "checking {} for {=u16}s",
        defmt::Display2Format(&host),
        RUN_SECS
    );

    // Built at compile time: the config builders are `const fn`s.
    const ZK_CONFIG: ZkConfig = ZkConfig::new()
        .with_session_timeout(ZK_SESSION_TIMEOUT)
        .with_connect_timeout(Duration::from_secs(2));
    let zk_config = ZK_CONFIG;
    let zk: &mut Zk =
        match ZkClient::new(zk_config, &ZK_SERVERS, ZK_MEMORY.init_with(ZkBuffers::new)) {
            Ok(zk) => ZK.init(zk),
            Err(error) => {
                defmt::error!("zk: {}", error);
                board::exit(2)
            }
        };
    let mut registration = Registration::new(mac, me);
    defmt::info!(
        "zk: registering {=str} at {}",
        registration.path(),
        defmt::Display2Format(&ZK_SERVERS[0])
    );

    let deadline = clock.now() + Duration::from_secs(u64::from(RUN_SECS));
    let mut next_report = Instant::ZERO;
    // The health verdict, taken at the deadline, while the session is being closed.
    let mut health_passed: Option<bool> = None;
    loop {
        let now = clock.now();
        stack.poll(now);
        match endpoint.process(stack, now) {
            Ok(_) => {}
            // A loopback or IPv6 address learned from a peer's table: not reachable from here.
            Err(Error::Network(nal::NetError::Unaddressable)) => {
                defmt::debug!("health: unaddressable destination")
            }
            Err(error) => defmt::warn!("health: {}", error),
        }
        if let Err(error) = zk.process(stack, now, |event| registration.on_event(now, &event)) {
            defmt::warn!("zk: {}", error);
        }
        if let Some(error) = zk.take_network_error() {
            defmt::debug!("zk: network: {}", error);
        }
        registration.poll(now, zk);
        stack.poll(now);
        while let Some(event) = endpoint.poll_event() {
            defmt::info!("{}", event);
        }
        if now >= next_report {
            next_report = now + Duration::from_secs(2);
            defmt::info!(
                "{}, frames {}",
                endpoint.node().stats(),
                stack.device().stats()
            );
            defmt::info!(
                "zk: {}, registered {=bool}",
                zk.state(),
                registration.is_registered()
            );
        }
        if now >= deadline && health_passed.is_none() {
            health_passed = Some(health_verdict(endpoint, host));
            if !zk.state().is_terminal() {
                defmt::info!("zk: closing the session");
                if let Err(error) = zk.close(now) {
                    defmt::error!("zk: close: {}", error);
                }
            }
        }
        if let Some(health) = health_passed {
            let zk_done = zk.state().is_terminal();
            if zk_done || now >= deadline + ZK_CLOSE_GRACE {
                finish(health, &registration, zk);
            }
        }
        board::idle();
    }
}

/// Logs the health checks' outcome: whether the host answered the firmware's checks and the
/// firmware answered the host's.
fn health_verdict(endpoint: &Endpoint, host: SocketAddr) -> bool {
    let stats = *endpoint.node().stats();
    let host_healthy = endpoint
        .node()
        .host(host)
        .is_some_and(|h| h.health.status() == Status::Healthy);
    for info in endpoint.node().hosts() {
        defmt::info!("table: {}", info);
    }
    defmt::info!("seal: {}", endpoint.seal_stats());
    let checked = host_healthy && stats.responses_accepted >= MIN_EXCHANGES;
    let answered = stats.requests_answered >= MIN_EXCHANGES;
    if checked && answered {
        defmt::info!(
            "health: the host answered {=u64} checks, the firmware answered {=u64} requests",
            stats.responses_accepted,
            stats.requests_answered
        );
    } else {
        defmt::error!(
            "health: host healthy {=bool}, responses accepted {=u64}, requests answered {=u64}",
            host_healthy,
            stats.responses_accepted,
            stats.requests_answered
        );
    }
    checked && answered
}

/// Exits with the verdict: 0 when the health checks passed both ways and the node was
/// registered and its session closed.
fn finish(health: bool, registration: &Registration, zk: &Zk) -> ! {
    defmt::info!("zk: {}, {}", zk.session().stats(), zk.io_stats());
    defmt::info!(
        "stack high-water {=usize} of {=usize} bytes",
        board::stack_high_water(),
        board::stack_size()
    );
    let registered = registration.was_registered();
    let closed = registration.is_closed();
    if !closed {
        defmt::warn!(
            "zk: the close was not confirmed (state {}); the session will expire",
            zk.state()
        );
    }
    if health && registered && closed {
        defmt::info!("PASS: health checks both ways, registered and closed the ZooKeeper session");
        board::exit(0)
    }
    defmt::error!(
        "FAIL: health {=bool}, zk registered {=bool}, zk closed {=bool}",
        health,
        registered,
        closed
    );
    board::exit(1)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panic at {=str}:{=u32}", at.file(), at.line()),
        None => defmt::error!("panic"),
    }
    board::exit(101)
}
