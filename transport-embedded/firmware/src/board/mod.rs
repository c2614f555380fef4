//! Everything specific to the board: Arm MPS2 AN386 (Cortex-M4F, 25 MHz) as QEMU's `mps2-an386`
//! emulates it, with its SMSC LAN9118 on QEMU user-mode networking.
//!
//! Porting the firmware to another board means replacing this module: a smoltcp `Device` for its
//! Ethernet, a [`Clock`], a [`BoardRng`] backed by its hardware random number generator, `exit`,
//! and the network addresses. `main.rs` and `nal.rs` do not change.

mod lan9118;
#[allow(unsafe_code)]
mod raw;

use core::convert::Infallible;
use core::net::Ipv4Addr;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;
use rand_chacha::ChaCha20Rng;
use sinew_proto::rand_core::{SeedableRng, TryCryptoRng, TryRng};
use sinew_proto::time::Instant;
use sinew_transport_embedded::Clock;

pub use lan9118::{InitError, Lan9118};
pub use raw::{stack_high_water, stack_size};

use crate::{BoardRng, EntropySource};

/// The board's name, for the log.
pub const NAME: &str = "mps2-an386 (QEMU)";
/// The firmware's address on QEMU's user network.
pub const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The prefix length of that network.
pub const PREFIX_LEN: u8 = 24;
/// QEMU's user-network gateway; datagrams to it reach the host's loopback.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// Where the ZooKeeper server is: the host, whose loopback QEMU's user network reaches through
/// its gateway. On a real network: the server's address.
pub const ZK_HOST: Ipv4Addr = GATEWAY;

/// What a loopback source address stands for on this network: QEMU's user network forwards the
/// host's 127.0.0.1 and does not always rewrite it (see `SmolStack::with_loopback_alias`).
pub const LOOPBACK_ALIAS: Option<Ipv4Addr> = Some(GATEWAY);

/// The core clock of the AN386 (and of QEMU's model of it).
const SYSCLK_HZ: u32 = 25_000_000;

/// Milliseconds since boot, counted by the SysTick exception.
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}

/// The board's peripherals, brought up.
pub struct Board {
    /// The Ethernet controller.
    pub eth: Lan9118,
    /// Milliseconds since boot.
    pub clock: SysTickClock,
    /// Nonces.
    pub rng: QemuRng,
}

/// Why the board could not be brought up.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub enum BoardError {
    /// The core peripherals were taken already.
    Taken,
    /// The Ethernet controller did not come up.
    Ethernet(InitError),
}

impl Board {
    /// Starts the 1 kHz SysTick, resets the Ethernet controller and seeds the RNG.
    pub fn init() -> Result<Board, BoardError> {
        let core = cortex_m::Peripherals::take().ok_or(BoardError::Taken)?;
        let mut syst = core.SYST;
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYSCLK_HZ / 1_000 - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        let regs = raw::Lan9118Regs::take().ok_or(BoardError::Taken)?;
        let eth = Lan9118::new(regs).map_err(BoardError::Ethernet)?;
        let rng = QemuRng::seed(&eth);
        Ok(Board {
            eth,
            clock: SysTickClock { last: 0, wraps: 0 },
            rng,
        })
    }
}

/// Ends the run: in QEMU, exits the emulator with `code` through semihosting. On a real board
/// this would reset or park the core.
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

/// Sleeps until the next interrupt (at the latest the next SysTick, 1 ms).
pub fn idle() {
    cortex_m::asm::wfi();
}

/// Milliseconds since boot from the SysTick counter, extended past the 32-bit wrap (49 days).
#[derive(Debug)]
pub struct SysTickClock {
    last: u32,
    wraps: u64,
}

impl Clock for SysTickClock {
    fn now(&mut self) -> Instant {
        let millis = MILLIS.load(Ordering::Relaxed);
        if millis < self.last {
            self.wraps += 1;
        }
        self.last = millis;
        Instant::from_millis((self.wraps << 32) | u64::from(millis))
    }
}

/// ChaCha20 seeded once at boot: the nonce source on QEMU, which has no TRNG.
///
/// The seed is 32 bytes of the host's `/dev/urandom`, read through semihosting — which exists only
/// under QEMU or a debugger. Without it the seed falls back to timing (the SysTick counter), which
/// an attacker can guess: [`EntropySource::Weak`], logged as an error. A real board must implement
/// [`BoardRng`] with its hardware RNG (or seed ChaCha from it), never with this fallback.
pub struct QemuRng {
    chacha: ChaCha20Rng,
    source: EntropySource,
}

impl QemuRng {
    fn seed(eth: &Lan9118) -> QemuRng {
        let mut seed = [0u8; 32];
        let source = match semihosting::experimental::random::fill_bytes(&mut seed) {
            Ok(()) => EntropySource::HostViaSemihosting,
            Err(_) => {
                // Guessable: boot timing and the MAC address only.
                let ticks = SYST::get_current().to_le_bytes();
                let millis = MILLIS.load(Ordering::Relaxed).to_le_bytes();
                seed[..4].copy_from_slice(&ticks);
                seed[4..8].copy_from_slice(&millis);
                seed[8..14].copy_from_slice(&eth.mac());
                EntropySource::Weak
            }
        };
        QemuRng {
            chacha: ChaCha20Rng::from_seed(seed),
            source,
        }
    }
}

impl TryRng for QemuRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.chacha.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.chacha.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.chacha.try_fill_bytes(dst)
    }
}

impl TryCryptoRng for QemuRng {}

impl BoardRng for QemuRng {
    fn entropy_source(&self) -> EntropySource {
        self.source
    }
}

/// Milliseconds since boot, for log timestamps.
pub fn millis() -> u64 {
    u64::from(MILLIS.load(Ordering::Relaxed))
}
