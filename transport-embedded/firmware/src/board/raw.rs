//! Everything unsafe in the firmware: the LAN9118's memory-mapped registers and the HardFault
//! handler. Nothing else in the crate may use `unsafe` (`#![deny(unsafe_code)]` at the root).

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{ExceptionFrame, exception};

/// Where mps2-an385/an386 map the LAN9118 (QEMU `hw/arm/mps2.c`, Arm AN386 memory map).
const LAN9118_BASE: usize = 0x4020_0000;

/// The LAN9118 registers the driver uses: byte offsets from the base, all word-aligned and inside
/// the chip's 256-byte window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Reg {
    /// RX data FIFO port: each read pops one word of the current frame.
    RxData = 0x00,
    /// TX data FIFO port: each write pushes one word (command A, command B, then data).
    TxData = 0x20,
    /// RX status FIFO port: each read pops one frame's status.
    RxStatus = 0x40,
    /// Chip id and revision.
    IdRev = 0x50,
    /// Reads 0x8765_4321 when the chip is there and the bus is set up.
    ByteTest = 0x64,
    /// RX configuration.
    RxCfg = 0x6c,
    /// TX configuration.
    TxCfg = 0x70,
    /// Hardware configuration (bit 0: soft reset).
    HwCfg = 0x74,
    /// RX FIFO information (bits 16..23: frames waiting).
    RxFifoInf = 0x7c,
    /// TX FIFO information (bits 0..15: free bytes).
    TxFifoInf = 0x80,
    /// Power management (bit 0: ready).
    PmtCtrl = 0x84,
    /// Indirect MAC register access: command.
    MacCsrCmd = 0xa4,
    /// Indirect MAC register access: data.
    MacCsrData = 0xa8,
}

/// Exclusive access to the LAN9118's registers; there is at most one.
#[derive(Debug)]
pub struct Lan9118Regs {
    _private: (),
}

static LAN9118_TAKEN: AtomicBool = AtomicBool::new(false);

impl Lan9118Regs {
    /// The registers, the first time; `None` after.
    pub fn take() -> Option<Lan9118Regs> {
        let taken = LAN9118_TAKEN.swap(true, Ordering::AcqRel);
        (!taken).then_some(Lan9118Regs { _private: () })
    }

    /// Reads a register (FIFO ports pop).
    pub fn read(&self, reg: Reg) -> u32 {
        let addr = (LAN9118_BASE + reg as usize) as *const u32;
        // SAFETY: `addr` is a word-aligned register inside the LAN9118's MMIO window on this
        // board (`Reg` admits no other offset); a volatile 32-bit read is the access the chip
        // expects, and `Lan9118Regs` is unique, so no other code touches these registers.
        unsafe { ptr::read_volatile(addr) }
    }

    /// Writes a register (FIFO ports push).
    pub fn write(&self, reg: Reg, value: u32) {
        let addr = (LAN9118_BASE + reg as usize) as *mut u32;
        // SAFETY: as in `read`: a word-aligned LAN9118 register of this board's MMIO window,
        // written with one volatile 32-bit store by the only owner of the registers.
        unsafe { ptr::write_volatile(addr, value) }
    }
}

/// A fault ends the QEMU run with status 3 instead of spinning until the test's timeout.
// SAFETY: cortex-m-rt requires the HardFault handler to be an `unsafe fn`; this one only logs and
// exits through semihosting, touching no state the faulting code may have left inconsistent
// beyond the logger, whose lock a fault inside a log call could leave taken (then only the
// exit happens).
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!("HardFault at pc {=u32:#010x}", frame.pc());
    super::exit(3)
}

unsafe extern "C" {
    /// Lowest address of the stack (cortex-m-rt's linker script: the end of .bss/.uninit).
    static _stack_end: u32;
    /// One past the highest address of the stack (the end of RAM).
    static _stack_start: u32;
}

/// The most stack the firmware has used so far, in bytes: cortex-m-rt (feature `paint-stack`)
/// fills the stack with `STACK_PAINT_VALUE` before `main`, and this finds the lowest word that
/// no longer holds it.
pub fn stack_high_water() -> usize {
    let bottom = &raw const _stack_end as usize;
    let top = &raw const _stack_start as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: `addr` is word-aligned (both bounds are, by cortex-m-rt's linker script
        // assertions) and lies in the stack region, RAM that is always readable; a volatile
        // read of a word that the running code may own is a plain load with no side effect.
        let word = unsafe { ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    top - addr
}

/// Bytes between the end of static RAM and the top of the stack.
pub fn stack_size() -> usize {
    &raw const _stack_start as usize - &raw const _stack_end as usize
}
