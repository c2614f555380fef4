//! [`Keyed`]: any datagram core behind a keyring.

use core::net::SocketAddr;
use core::time::Duration;

use rand_core::CryptoRng;

use super::replay::{Replay, ReplayTable};
use super::{HEADER_LEN, Keyring, OVERHEAD, TAG_LEN};
use crate::Error;
use crate::datagram::{DatagramCore, MAX_DATAGRAM_LEN, Transmit};
use crate::nonce::split_type_byte;
use crate::time::Instant;

/// How a [`Keyed`] core opens datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// How long a sender's replay window is kept, at least, after its last datagram, while
    /// new senders wait for room. Default 60 s.
    pub replay_hold: Duration,
}

impl Config {
    /// The defaults.
    pub const fn new() -> Config {
        Config {
            replay_hold: Duration::from_secs(60),
        }
    }

    /// Sets [`replay_hold`](Self::replay_hold).
    pub const fn with_replay_hold(mut self, replay_hold: Duration) -> Config {
        self.replay_hold = replay_hold;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of a [`Keyed`] core: what it sealed and opened, and why it dropped what it
/// dropped. The inner core counts what it did with the opened datagrams.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams received.
    pub received: u64,
    /// Datagrams opened and handed to the inner core.
    pub opened: u64,
    /// Datagrams the inner core sent, sealed.
    pub sealed: u64,
    /// Unsealed (version 0) datagrams: a peer without the key, or a stranger.
    pub unsealed: u64,
    /// Datagrams shorter than a sealed header and tag.
    pub truncated: u64,
    /// Datagrams of another version or kind, or longer than [`MAX_DATAGRAM_LEN`].
    pub malformed: u64,
    /// Sealed with a key id no installed key has.
    pub unknown_key: u64,
    /// The tag matched under no installed key: a wrong key, or altered bytes.
    pub bad_tag: u64,
    /// Seen before (same sender and counter).
    pub replayed: u64,
    /// Older than the sender's replay window.
    pub too_old: u64,
    /// From a new sender while the replay table had no room.
    pub replay_table_full: u64,
    /// Datagrams of the inner core that could not be sealed, not sent.
    pub seal_failed: u64,
    /// Sealed datagrams received while the keyring was empty (the node runs unkeyed: a
    /// keyed peer).
    pub sealed_no_key: u64,
    /// Unsealed datagrams passed through while the keyring was empty.
    pub passed: u64,
}

impl core::ops::AddAssign<&Stats> for Stats {
    /// Adds every counter of `other` (saturating), e.g. to keep totals across restarts.
    fn add_assign(&mut self, other: &Stats) {
        let Stats {
            received,
            opened,
            sealed,
            unsealed,
            truncated,
            malformed,
            unknown_key,
            bad_tag,
            replayed,
            too_old,
            replay_table_full,
            seal_failed,
            sealed_no_key,
            passed,
        } = *other;
        for (total, more) in [
            (&mut self.received, received),
            (&mut self.opened, opened),
            (&mut self.sealed, sealed),
            (&mut self.unsealed, unsealed),
            (&mut self.truncated, truncated),
            (&mut self.malformed, malformed),
            (&mut self.unknown_key, unknown_key),
            (&mut self.bad_tag, bad_tag),
            (&mut self.replayed, replayed),
            (&mut self.too_old, too_old),
            (&mut self.replay_table_full, replay_table_full),
            (&mut self.seal_failed, seal_failed),
            (&mut self.sealed_no_key, sealed_no_key),
            (&mut self.passed, passed),
        ] {
            *total = total.saturating_add(more);
        }
    }
}

/// Why a [`Keyed`] core dropped a datagram before its inner core saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DropReason {
    /// Not sealed.
    Unsealed,
    /// Could not be opened: [`Error::Truncated`], [`Error::TooLarge`],
    /// [`Error::UnsupportedVersion`], [`Error::UnknownType`], [`Error::UnknownKey`] or
    /// [`Error::BadTag`].
    Unopened(Error),
    /// A replay, or too old to tell.
    Replay(Replay),
    /// A sealed datagram, and the keyring is empty.
    SealedNoKey,
}

/// What [`Keyed::handle_datagram`] did with a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Disposition<D> {
    /// Opened and handed to the inner core, which did this with it.
    Delivered(D),
    /// Dropped and counted in [`Stats`].
    Dropped(DropReason),
}

/// A datagram core `C` whose every datagram is sealed with a [`Keyring`]: it seals what `C`
/// sends and opens what it receives, dropping and counting everything that is not sealed with
/// an installed key, altered, or replayed. It is a [`DatagramCore`] itself, so any driver
/// runs it as it runs `C`.
///
/// `C` is given a transmit buffer of [`MAX_PLAINTEXT_LEN`](super::MAX_PLAINTEXT_LEN) bytes, so what it sends fits one
/// datagram sealed; every sealed datagram is [`OVERHEAD`] bytes longer than the one it
/// carries, both ways, so a core that answers no longer than it was asked still does once
/// sealed.
///
/// **With an empty keyring it is not keyed**: unsealed datagrams pass through both ways
/// unchanged (counted [`Stats::passed`]), and sealed ones are dropped as
/// [`DropReason::SealedNoKey`]. So an adapter can hold every core in a `Keyed` and be keyed or
/// not by configuration; installing a key switches it to sealing. (A keyring that is not empty
/// never becomes empty again: its primary cannot be removed.)
///
/// Each run draws a random 64-bit sender id from `R`, and a fresh one whenever its 32-bit
/// counter would wrap, so no (key, sender, counter) is ever sealed twice. `PEERS` senders'
/// replay windows are kept ([`ReplayTable`]); `KEYS` keys fit the keyring.
///
/// ```
/// use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
/// use sinew_proto::health::{Config, HealthNode};
/// use sinew_proto::seal::{self, Key, Keyed, Keyring};
/// use sinew_proto::time::Instant;
/// # struct Rng(u64);
/// # impl sinew_proto::rand_core::TryRng for Rng {
/// #     type Error = core::convert::Infallible;
/// #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { Ok(self.try_next_u64()? as u32) }
/// #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
/// #         self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1); Ok(self.0) }
/// #     fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), Self::Error> {
/// #         for b in d { *b = (self.try_next_u64()? >> 56) as u8; } Ok(()) }
/// # }
/// # impl sinew_proto::rand_core::TryCryptoRng for Rng {}
/// # let rng = |s| sinew_proto::rand_core::UnwrapErr(Rng(s));
///
/// let key = Key::from_bytes([42; 32]); // from a key file in real use
/// let inner: HealthNode<_> = HealthNode::new(Config::default(), rng(1));
/// let mut node: Keyed<_, _> = Keyed::new(inner, Keyring::with_key(key), seal::Config::new(), rng(2));
///
/// let peer = "192.0.2.7:7000".parse().unwrap();
/// node.inner_mut().ping(Instant::ZERO, peer)?;
/// let mut buf = [0; MAX_DATAGRAM_LEN];
/// let t = node.poll_transmit(Instant::ZERO, &mut buf).unwrap();
/// assert_eq!(t.len, 17 + seal::OVERHEAD); // a 17-byte health check, sealed
/// assert_eq!(buf[0], seal::TYPE);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
pub struct Keyed<C, R, const KEYS: usize = 4, const PEERS: usize = 64> {
    inner: C,
    keyring: Keyring<KEYS>,
    replay: ReplayTable<PEERS>,
    /// `None` for [`Keyed::unkeyed`]: such a core never seals.
    rng: Option<R>,
    sender: u64,
    counter: u32,
    stats: Stats,
    /// Where a received datagram is opened (the driver's buffer is read-only).
    scratch: [u8; MAX_DATAGRAM_LEN],
}

impl<C, R, const KEYS: usize, const PEERS: usize> Keyed<C, R, KEYS, PEERS> {
    /// `inner` with an empty keyring and no generator: plain datagrams pass both ways and
    /// sealed ones are dropped (counted [`Stats::sealed_no_key`]). For an adapter that holds
    /// every core in a `Keyed` but was given no key. It never seals: if a key is installed
    /// later, what the inner core sends is dropped and counted [`Stats::seal_failed`] (a
    /// sender id needs a generator: make the core with [`Keyed::new`]).
    pub fn unkeyed(inner: C) -> Self {
        Keyed {
            inner,
            keyring: Keyring::new(),
            replay: ReplayTable::new(Config::new().replay_hold),
            rng: None,
            sender: 0,
            counter: 0,
            stats: Stats::default(),
            scratch: [0; MAX_DATAGRAM_LEN],
        }
    }
}

impl<C, R: CryptoRng, const KEYS: usize, const PEERS: usize> Keyed<C, R, KEYS, PEERS> {
    /// Puts `inner` behind `keyring`; `rng` draws the sender ids.
    pub fn new(inner: C, keyring: Keyring<KEYS>, config: Config, mut rng: R) -> Self {
        let sender = rng.next_u64();
        Keyed {
            inner,
            keyring,
            replay: ReplayTable::new(config.replay_hold),
            rng: Some(rng),
            sender,
            counter: 0,
            stats: Stats::default(),
            scratch: [0; MAX_DATAGRAM_LEN],
        }
    }

    /// The inner core.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// The inner core, to call what the wrapper does not (its requests are sealed when sent).
    pub fn inner_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The inner core, unwrapped.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring<KEYS> {
        &self.keyring
    }

    /// The keyring, to install, use and remove keys while running.
    pub fn keyring_mut(&mut self) -> &mut Keyring<KEYS> {
        &mut self.keyring
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Opens `datagram`, or says why not (counted).
    fn open(&mut self, now: Instant, datagram: &[u8]) -> Result<usize, DropReason> {
        let Some(&type_byte) = datagram.first() else {
            self.stats.truncated += 1;
            return Err(DropReason::Unopened(Error::Truncated));
        };
        // Any other version is a plain datagram of some protocol (or garbage): not sealed.
        if split_type_byte(type_byte).0 != super::VERSION {
            self.stats.unsealed += 1;
            return Err(DropReason::Unsealed);
        }
        let sealed = match super::Sealed::new_checked(datagram) {
            Ok(sealed) => sealed,
            Err(error) => {
                match error {
                    Error::Truncated => self.stats.truncated += 1,
                    _ => self.stats.malformed += 1,
                }
                return Err(DropReason::Unopened(error));
            }
        };
        let (sender, counter) = (sealed.sender(), sealed.counter());
        // The cheap check first: a replay costs no decryption.
        self.replay
            .check(now, sender, counter)
            .map_err(|r| self.count_replay(r))?;
        let scratch = &mut self.scratch[..datagram.len()];
        scratch.copy_from_slice(datagram);
        if let Err(error) = self.keyring.open(scratch) {
            match error {
                Error::UnknownKey(_) => self.stats.unknown_key += 1,
                _ => self.stats.bad_tag += 1,
            }
            return Err(DropReason::Unopened(error));
        }
        self.replay
            .accept(now, sender, counter)
            .map_err(|r| self.count_replay(r))?;
        self.stats.opened += 1;
        Ok(datagram.len() - TAG_LEN)
    }

    fn count_replay(&mut self, replay: Replay) -> DropReason {
        match replay {
            Replay::Duplicate => self.stats.replayed += 1,
            Replay::TooOld => self.stats.too_old += 1,
            Replay::TableFull => self.stats.replay_table_full += 1,
        }
        DropReason::Replay(replay)
    }

    /// The next (sender, counter) to seal with; `None` without a generator.
    fn next_nonce(&mut self) -> Option<(u64, u32)> {
        let rng = self.rng.as_mut()?;
        let nonce = (self.sender, self.counter);
        match self.counter.checked_add(1) {
            Some(next) => self.counter = next,
            None => {
                self.sender = rng.next_u64();
                self.counter = 0;
            }
        }
        Some(nonce)
    }
}

impl<C: DatagramCore, R: CryptoRng, const KEYS: usize, const PEERS: usize> DatagramCore
    for Keyed<C, R, KEYS, PEERS>
{
    type Event = C::Event;
    type Disposition = Disposition<C::Disposition>;

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Self::Disposition {
        self.stats.received += 1;
        if self.keyring.is_empty() {
            if datagram
                .first()
                .is_some_and(|&b| split_type_byte(b).0 == super::VERSION)
            {
                self.stats.sealed_no_key += 1;
                return Disposition::Dropped(DropReason::SealedNoKey);
            }
            self.stats.passed += 1;
            return Disposition::Delivered(self.inner.handle_datagram(now, from, datagram));
        }
        match self.open(now, datagram) {
            Ok(end) => Disposition::Delivered(self.inner.handle_datagram(
                now,
                from,
                &self.scratch[HEADER_LEN..end],
            )),
            Err(reason) => Disposition::Dropped(reason),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if self.keyring.is_empty() {
            return self.inner.poll_transmit(now, buf);
        }
        let limit = buf.len().min(MAX_DATAGRAM_LEN);
        if limit < OVERHEAD {
            return None;
        }
        loop {
            let mut transmit = self
                .inner
                .poll_transmit(now, &mut buf[HEADER_LEN..limit - TAG_LEN])?;
            let Some((sender, counter)) = self.next_nonce() else {
                self.stats.seal_failed += 1;
                continue;
            };
            match self.keyring.seal(sender, counter, buf, transmit.len) {
                Ok(len) => {
                    self.stats.sealed += 1;
                    transmit.len = len;
                    return Some(transmit);
                }
                Err(_) => self.stats.seal_failed += 1,
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        self.inner.poll_event()
    }
}
