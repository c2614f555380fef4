//! A polled driver for the SMSC LAN9118 Ethernet controller, as a smoltcp [`Device`].
//!
//! Enough for QEMU's model of the chip (`hw/net/lan9118.c`): soft reset, the MAC address from
//! the chip, TX and RX on, frames in and out through the data FIFOs, no interrupts. A real
//! LAN9118 would also need its PHY brought up (auto-negotiation over the MII registers) and FIFO
//! overrun handling; QEMU's link is always up.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::raw::{Lan9118Regs, Reg};

/// The largest Ethernet frame without its CRC.
const MAX_FRAME: usize = 1514;
/// Frame buffers: a whole frame plus its 4-byte CRC, rounded up to whole FIFO words.
const FRAME_BUFFER: usize = 1520;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1 << 0;
const PMT_CTRL_READY: u32 = 1 << 0;
const TX_CFG_TX_ON: u32 = 1 << 1;
const TX_CFG_TXSAO: u32 = 1 << 2;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
const RX_STATUS_ERROR: u32 = 1 << 15;
const MAC_CSR_BUSY: u32 = 1 << 31;
const MAC_CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
/// How many register reads a wait for the chip may take before it is given up.
const SPIN_LIMIT: u32 = 100_000;

/// Why the chip could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum InitError {
    /// BYTE_TEST did not read 0x87654321: no LAN9118 at this address.
    NotFound(u32),
    /// The chip did not leave reset or become ready in time.
    Timeout,
}

/// Frames moved, for the log.
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct FrameStats {
    /// Frames received and handed to smoltcp.
    pub rx: u32,
    /// Frames dropped on receive (error status, too short or too long).
    pub rx_dropped: u32,
    /// Frames transmitted.
    pub tx: u32,
}

/// The LAN9118, polled.
pub struct Lan9118 {
    regs: Lan9118Regs,
    mac: [u8; 6],
    rx: [u8; FRAME_BUFFER],
    tx: [u8; FRAME_BUFFER],
    stats: FrameStats,
}

impl Lan9118 {
    /// Resets the chip, reads its MAC address and turns TX and RX on.
    pub fn new(regs: Lan9118Regs) -> Result<Lan9118, InitError> {
        let test = regs.read(Reg::ByteTest);
        if test != BYTE_TEST_VALUE {
            return Err(InitError::NotFound(test));
        }
        regs.write(Reg::HwCfg, HW_CFG_SRST);
        spin_until(|| regs.read(Reg::HwCfg) & HW_CFG_SRST == 0)?;
        spin_until(|| regs.read(Reg::PmtCtrl) & PMT_CTRL_READY != 0)?;
        let mut chip = Lan9118 {
            regs,
            mac: [0; 6],
            rx: [0; FRAME_BUFFER],
            tx: [0; FRAME_BUFFER],
            stats: FrameStats::default(),
        };
        let low = chip.mac_read(MAC_ADDRL)?.to_le_bytes();
        let high = chip.mac_read(MAC_ADDRH)?.to_le_bytes();
        chip.mac = [low[0], low[1], low[2], low[3], high[0], high[1]];
        chip.regs.write(Reg::RxCfg, 0);
        chip.regs.write(Reg::TxCfg, TX_CFG_TX_ON | TX_CFG_TXSAO);
        let cr = chip.mac_read(MAC_CR)?;
        chip.mac_write(MAC_CR, cr | MAC_CR_TXEN | MAC_CR_RXEN)?;
        Ok(chip)
    }

    /// The chip id and revision.
    pub fn id(&self) -> u32 {
        self.regs.read(Reg::IdRev)
    }

    /// The MAC address (from the chip's EEPROM, or QEMU's `-nic` option).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Frames moved so far.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    fn mac_read(&self, index: u32) -> Result<u32, InitError> {
        spin_until(|| self.regs.read(Reg::MacCsrCmd) & MAC_CSR_BUSY == 0)?;
        self.regs
            .write(Reg::MacCsrCmd, MAC_CSR_BUSY | MAC_CSR_READ | index);
        spin_until(|| self.regs.read(Reg::MacCsrCmd) & MAC_CSR_BUSY == 0)?;
        Ok(self.regs.read(Reg::MacCsrData))
    }

    fn mac_write(&self, index: u32, value: u32) -> Result<(), InitError> {
        spin_until(|| self.regs.read(Reg::MacCsrCmd) & MAC_CSR_BUSY == 0)?;
        self.regs.write(Reg::MacCsrData, value);
        self.regs.write(Reg::MacCsrCmd, MAC_CSR_BUSY | index);
        spin_until(|| self.regs.read(Reg::MacCsrCmd) & MAC_CSR_BUSY == 0)
    }

    /// Pops the next good frame into `self.rx`; its length without the CRC.
    fn read_frame(&mut self) -> Option<usize> {
        loop {
            let waiting = (self.regs.read(Reg::RxFifoInf) >> 16) & 0xff;
            if waiting == 0 {
                return None;
            }
            let status = self.regs.read(Reg::RxStatus);
            // Bits 16..29: the frame's length, CRC included.
            let len = ((status >> 16) & 0x3fff) as usize;
            let words = len.div_ceil(4);
            let good = status & RX_STATUS_ERROR == 0 && (14 + 4..=FRAME_BUFFER).contains(&len);
            for i in 0..words {
                let word = self.regs.read(Reg::RxData).to_le_bytes();
                if good {
                    self.rx[4 * i..4 * i + 4].copy_from_slice(&word);
                }
            }
            if good {
                self.stats.rx += 1;
                return Some(len - 4);
            }
            self.stats.rx_dropped += 1;
        }
    }
}

/// Waits for the chip, a bounded number of register reads.
fn spin_until(mut done: impl FnMut() -> bool) -> Result<(), InitError> {
    for _ in 0..SPIN_LIMIT {
        if done() {
            return Ok(());
        }
    }
    Err(InitError::Timeout)
}

impl Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let len = self.read_frame()?;
        let rx = RxToken(&self.rx[..len]);
        let tx = TxToken {
            regs: &self.regs,
            buffer: &mut self.tx,
            sent: &mut self.stats.tx,
        };
        Some((rx, tx))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            regs: &self.regs,
            buffer: &mut self.tx,
            sent: &mut self.stats.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}

/// A received frame, already read out of the chip.
pub struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

/// Room for one frame; the frame goes to the chip when the token is consumed.
pub struct TxToken<'a> {
    regs: &'a Lan9118Regs,
    buffer: &'a mut [u8; FRAME_BUFFER],
    sent: &'a mut u32,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let len = len.min(MAX_FRAME);
        let result = f(&mut self.buffer[..len]);
        let needed = (len.div_ceil(4) * 4 + 8) as u32;
        // A frame the chip has no room for in time is dropped, as a wire would drop it.
        if spin_until(|| self.regs.read(Reg::TxFifoInf) & 0xffff >= needed).is_ok() {
            // Command A: first and last segment of a one-buffer frame; command B: frame length.
            self.regs
                .write(Reg::TxData, TX_CMD_A_FIRST | TX_CMD_A_LAST | len as u32);
            self.regs.write(Reg::TxData, len as u32);
            for chunk in self.buffer[..len].chunks(4) {
                let mut word = [0; 4];
                word[..chunk.len()].copy_from_slice(chunk);
                self.regs.write(Reg::TxData, u32::from_le_bytes(word));
            }
            *self.sent += 1;
        }
        result
    }
}
