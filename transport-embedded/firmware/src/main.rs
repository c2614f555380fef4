//! # sinew-firmware
//!
//! sinew's UDP health checks on a Cortex-M4F: QEMU's `mps2-an386` board, its LAN9118 Ethernet
//! controller (polled, [`board`]), smoltcp behind embedded-nal ([`nal`]), and a
//! [`HealthNode`] driven by `sinew-transport-embedded`'s [`HealthEndpoint`].
//!
//! The node answers health checks and peer-table requests on UDP port `SINEW_FW_PORT` (47700),
//! checks the host node at 10.0.2.2:`SINEW_HOST_PORT` (47701, the host's 127.0.0.1 through QEMU's
//! user network), learns whoever checks it, and logs over defmt (semihosting). After
//! `SINEW_RUN_SECS` (15) seconds it exits QEMU with status 0 if it saw both directions — the host
//! answered its checks and it answered the host's — and 1 otherwise. The three settings are read
//! from the environment at build time.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod board;
mod nal;

use core::net::{SocketAddr, SocketAddrV4};
use core::time::Duration;

use cortex_m_rt::entry;
use defmt_semihosting as _;
use sinew_proto::health::{Config, HealthNode, Status};
use sinew_proto::time::Instant;
use sinew_transport_embedded::{Clock, Error, HealthBuffers, HealthEndpoint};
use smoltcp::iface::SocketStorage;
use static_cell::StaticCell;

/// The firmware's UDP port.
const FW_PORT: u16 = env_u16(option_env!("SINEW_FW_PORT"), 47700);
/// The host node's port on the host's loopback (10.0.2.2 from inside QEMU).
const HOST_PORT: u16 = env_u16(option_env!("SINEW_HOST_PORT"), 47701);
/// How long the firmware runs before it exits with its verdict.
const RUN_SECS: u16 = env_u16(option_env!("SINEW_RUN_SECS"), 15);
/// Exchanges each way that count as "seen".
const MIN_EXCHANGES: u64 = 3;
/// Hosts in the network table, outstanding requests, queued responses.
const HOSTS: usize = 8;
const PENDING: usize = 8;
const QUEUE: usize = 8;
/// UDP sockets of the stack.
const SOCKETS: usize = 1;

/// A board's source of nonces.
///
/// Health-check nonces are what stops anyone from marking a host healthy by answering checks it
/// never saw, so they must be unpredictable: a board implements this with its hardware RNG (or a
/// CSPRNG seeded from it). A deterministic or merely seeded-by-time generator is not acceptable
/// outside a test.
pub trait BoardRng: rand_core::CryptoRng {
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

defmt::timestamp!("{=u64:ms}", board::millis());

type Stack = nal::SmolStack<'static, board::Lan9118, SOCKETS>;
type Endpoint = HealthEndpoint<'static, Stack, board::QemuRng, HOSTS, PENDING, QUEUE>;

// Everything large lives in statics, so that `.bss` shows what the firmware needs and the stack
// stays small (its high-water mark is logged at exit).
static SOCKET_STORAGE: StaticCell<[SocketStorage<'static>; SOCKETS]> = StaticCell::new();
static UDP_BUFFERS: StaticCell<[nal::UdpBuffers; SOCKETS]> = StaticCell::new();
static HEALTH_BUFFERS: StaticCell<HealthBuffers> = StaticCell::new();
static STACK: StaticCell<Stack> = StaticCell::new();
static ENDPOINT: StaticCell<Endpoint> = StaticCell::new();

#[entry]
fn main() -> ! {
    let board::Board {
        eth,
        mut clock,
        rng,
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
        UDP_BUFFERS.init_with(|| [const { nal::UdpBuffers::new() }; SOCKETS]),
        clock.now(),
    );
    if let Some(alias) = board::LOOPBACK_ALIAS {
        stack = stack.with_loopback_alias(alias);
    }
    let stack: &mut Stack = STACK.init(stack);

    let me = SocketAddr::V4(SocketAddrV4::new(board::IP, FW_PORT));
    let host = SocketAddr::V4(SocketAddrV4::new(board::GATEWAY, HOST_PORT));
    let config = Config {
        check_interval: Duration::from_millis(500),
        response_timeout: Duration::from_millis(400),
        table_interval: Duration::from_secs(2),
        learn_from_requests: true,
        local_addr: Some(me),
    };
    let node: HealthNode<_, HOSTS, PENDING, QUEUE> = HealthNode::new(config, rng);
    let buffers = HEALTH_BUFFERS.init_with(HealthBuffers::new);
    let endpoint: &mut Endpoint = match HealthEndpoint::bind(stack, FW_PORT, node, buffers) {
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

    let deadline = clock.now() + Duration::from_secs(u64::from(RUN_SECS));
    let mut next_report = Instant::ZERO;
    loop {
        let now = clock.now();
        stack.poll(now);
        match endpoint.poll(stack, now) {
            Ok(_) => {}
            // A loopback or IPv6 address learned from a peer's table: not reachable from here.
            Err(Error::Network(nal::NetError::Unaddressable)) => {
                defmt::debug!("poll: unaddressable destination")
            }
            Err(error) => defmt::warn!("poll: {}", error),
        }
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
        }
        if now >= deadline {
            let stats = *endpoint.node().stats();
            let host_healthy = endpoint
                .node()
                .host(host)
                .is_some_and(|h| h.health.status() == Status::Healthy);
            for info in endpoint.node().hosts() {
                defmt::info!("table: {}", info);
            }
            defmt::info!(
                "stack high-water {=usize} of {=usize} bytes",
                board::stack_high_water(),
                board::stack_size()
            );
            let checked = host_healthy && stats.responses_accepted >= MIN_EXCHANGES;
            let answered = stats.requests_answered >= MIN_EXCHANGES;
            if checked && answered {
                defmt::info!(
                    "PASS: the host answered {=u64} checks, the firmware answered {=u64} requests",
                    stats.responses_accepted,
                    stats.requests_answered
                );
                board::exit(0)
            }
            defmt::error!(
                "FAIL: host healthy {=bool}, responses accepted {=u64}, requests answered {=u64}",
                host_healthy,
                stats.responses_accepted,
                stats.requests_answered
            );
            board::exit(1)
        }
        board::idle();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panic at {=str}:{=u32}", at.file(), at.line()),
        None => defmt::error!("panic"),
    }
    board::exit(101)
}
