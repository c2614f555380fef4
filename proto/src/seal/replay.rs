//! Replay protection: a sliding window over each sender's counter, in a fixed-size table.

use core::time::Duration;

use heapless::Vec;

use crate::time::Instant;

/// How many counters behind a sender's highest one are still remembered (one bit each).
pub const REPLAY_WINDOW: u32 = 64;

/// Why [`ReplayTable::check`] refuses a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Replay {
    /// This sender's datagram with this counter was accepted before.
    Duplicate,
    /// The counter is [`REPLAY_WINDOW`] or more behind the sender's highest: too old to tell.
    TooOld,
    /// The sender is new and every entry of the table belongs to a sender heard from within
    /// the hold time: nobody can be evicted.
    TableFull,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    sender: u64,
    /// The highest counter accepted.
    top: u32,
    /// Bit `i` set: counter `top - i` was accepted.
    seen: u64,
    /// When a datagram of this sender was last accepted.
    last: Instant,
}

impl Window {
    fn check(&self, counter: u32) -> Result<(), Replay> {
        if counter > self.top {
            return Ok(());
        }
        let behind = self.top - counter;
        if behind >= REPLAY_WINDOW {
            Err(Replay::TooOld)
        } else if self.seen & (1 << behind) != 0 {
            Err(Replay::Duplicate)
        } else {
            Ok(())
        }
    }

    fn accept(&mut self, now: Instant, counter: u32) {
        if counter > self.top {
            let ahead = counter - self.top;
            self.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            };
            self.seen |= 1;
            self.top = counter;
        } else {
            // `check` passed, so `behind < REPLAY_WINDOW`.
            let behind = self.top - counter;
            self.seen |= 1u64.checked_shl(behind).unwrap_or(0);
        }
        self.last = now;
    }
}

/// One replay window per sender for up to `N` senders: fixed size, no allocation.
///
/// Only datagrams whose tag was verified reach the table ([`check`](Self::check) before
/// opening, [`accept`](Self::accept) after), so a host without the key cannot add, touch or
/// evict an entry. A new sender takes the place of the sender heard from least recently, but
/// only if that one has been silent for the hold time: a burst of new senders (say, replayed
/// datagrams of many past runs) cannot push out the peers that are talking now.
#[derive(Clone, Debug)]
pub struct ReplayTable<const N: usize> {
    windows: Vec<Window, N>,
    hold: Duration,
}

impl<const N: usize> ReplayTable<N> {
    /// An empty table whose entries cannot be evicted until `hold` after their last datagram.
    pub const fn new(hold: Duration) -> Self {
        ReplayTable {
            windows: Vec::new(),
            hold,
        }
    }

    /// Whether datagram `counter` of `sender` would be accepted at `now`; changes nothing.
    pub fn check(&self, now: Instant, sender: u64, counter: u32) -> Result<(), Replay> {
        match self.windows.iter().find(|w| w.sender == sender) {
            Some(window) => window.check(counter),
            None if self.windows.is_full() && self.evictable(now).is_none() => {
                Err(Replay::TableFull)
            }
            None => Ok(()),
        }
    }

    /// Records datagram `counter` of `sender` as accepted (after its tag was verified).
    ///
    /// # Errors
    /// What [`check`](Self::check) says, and then nothing is recorded.
    pub fn accept(&mut self, now: Instant, sender: u64, counter: u32) -> Result<(), Replay> {
        self.check(now, sender, counter)?;
        if let Some(window) = self.windows.iter_mut().find(|w| w.sender == sender) {
            window.accept(now, counter);
            return Ok(());
        }
        let window = Window {
            sender,
            top: counter,
            seen: 1,
            last: now,
        };
        if let Err(window) = self.windows.push(window) {
            // Full: `check` found an entry to evict.
            if let Some(i) = self.evictable(now) {
                self.windows[i] = window;
            }
        }
        Ok(())
    }

    /// The entry heard from least recently, if it has been silent for the hold time.
    fn evictable(&self, now: Instant) -> Option<usize> {
        let (i, oldest) = self
            .windows
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| w.last)?;
        (now.saturating_duration_since(oldest.last) >= self.hold).then_some(i)
    }

    /// How many senders the table remembers.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether the table remembers no sender.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Forgets every sender.
    pub fn clear(&mut self) {
        self.windows.clear();
    }
}
