//! Address validation and the amplification limit: to an address that has not proved it
//! receives (a round trip), a node answers with no more bytes than it received from it.
//!
//! A round trip is an answer, from an address, to a request this node sent there (matched by
//! message id), or an Echo of a Challenge. A Challenge is header-only (43 bytes, no longer than
//! any message) and its message id is a cookie derived from the address and a secret of this
//! node, so validating needs no state per challenge and a sender that forges its source address
//! never sees the cookie.

use core::net::SocketAddr;

use rand_core::CryptoRng;

use super::io::{Out, same_endpoint};
use super::{DhtNode, Disposition, DropReason};
use crate::time::Instant;

/// How many addresses a node remembers as validated: a fixed cache of [`VALIDATED`] / 4 sets of
/// 4 (an address's set is chosen by a keyed hash of it; in a full set the one least recently
/// validated or heard from is forgotten, and challenged again when it next needs a large
/// answer). Each entry is a 64-bit fingerprint (a keyed hash of the address under a secret of
/// the node), 8 bytes, so that the cache can remember every node that routes through this one
/// in a ring of tens of thousands (a node's in-degree is about the size of its own routing
/// table) in 8 KiB, and a lookup per datagram costs four comparisons. An address that never
/// proved anything passes only if its fingerprint equals a remembered one's (about 2^-64 a
/// pair, and not predictable without the secret).
pub const VALIDATED: usize = 1024;
const WAYS: usize = 4;
const SETS: usize = VALIDATED / WAYS;

/// The addresses that proved they receive, as keyed fingerprints in a set-associative cache.
#[derive(Clone, Debug)]
pub(super) struct Validated {
    key: [u64; 2],
    sets: [[u64; WAYS]; SETS],
}

/// splitmix64's finalizer: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Validated {
    /// An empty cache whose fingerprints are keyed by `secret`.
    pub(super) fn new(secret: &[u8; 16]) -> Self {
        let mut a = [0; 8];
        let mut b = [0; 8];
        a.copy_from_slice(&secret[..8]);
        b.copy_from_slice(&secret[8..]);
        Validated {
            key: [u64::from_le_bytes(a), u64::from_le_bytes(b)],
            sets: [[0; WAYS]; SETS],
        }
    }

    /// The fingerprint of `addr` (never 0, which marks an empty way); an IPv4 address and its
    /// IPv4-mapped IPv6 form have the same.
    fn fingerprint(&self, addr: SocketAddr) -> u64 {
        let ip = match addr.ip() {
            core::net::IpAddr::V4(ip) => ip.to_ipv6_mapped(),
            core::net::IpAddr::V6(ip) => ip,
        };
        let ip = u128::from(ip);
        let h = mix((ip as u64) ^ self.key[0]);
        let h = mix(h ^ ((ip >> 64) as u64));
        let h = mix(h ^ u64::from(addr.port()) ^ self.key[1]);
        h.max(1)
    }

    fn set(f: u64) -> usize {
        (f % SETS as u64) as usize
    }

    /// Whether `addr` is remembered.
    pub(super) fn contains(&self, addr: SocketAddr) -> bool {
        let f = self.fingerprint(addr);
        self.sets[Self::set(f)].contains(&f)
    }

    /// Remembers `addr` as the most recent of its set; with `only_known`, only if it is
    /// remembered already (it was heard from: it stays longer).
    pub(super) fn insert(&mut self, addr: SocketAddr, only_known: bool) {
        let f = self.fingerprint(addr);
        let set = &mut self.sets[Self::set(f)];
        let end = match set.iter().position(|&x| x == f) {
            Some(i) => i,
            None if only_known => return,
            None => WAYS - 1,
        };
        set[..=end].rotate_right(1);
        set[0] = f;
    }
}

/// How many unvalidated addresses a node keeps a byte budget for (the smallest budget is
/// forgotten first: forgetting only ever sends less).
pub const CREDITS: usize = 16;

/// What an unvalidated address has sent and not yet been answered with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Credit {
    pub(super) addr: SocketAddr,
    pub(super) bytes: u32,
}

impl<
    R: CryptoRng,
    const L: usize,
    const KEYS: usize,
    const KEY: usize,
    const VALUE: usize,
    const PENDING: usize,
> DhtNode<R, L, KEYS, KEY, VALUE, PENDING>
{
    /// Whether `addr` proved that it receives (or validation is off). The nodes of the leaf set
    /// and of the routing table did (they answered this node's probes), even once the table of
    /// validated addresses has forgotten them.
    pub(super) fn is_validated(&self, addr: SocketAddr) -> bool {
        !self.config.validate_addresses
            || self.validated.contains(addr)
            || self.leaf.get_by_addr(addr).is_some()
            || self.table.get_by_addr(addr).is_some()
    }

    /// The adapter vouches that `addr` receives at that address — the peer of a TCP connection,
    /// whose handshake was a round trip — so answers to it are not limited to what it sent
    /// (see [`Config::validate_addresses`](super::Config::validate_addresses)). The table of
    /// validated addresses holds [`VALIDATED`] (see there what it forgets first).
    pub fn handle_validated(&mut self, addr: SocketAddr) {
        self.validate(addr);
    }

    /// `addr` answered a round trip: it is sent answers of any size from now on.
    pub(super) fn validate(&mut self, addr: SocketAddr) {
        self.validated.insert(addr, false);
        self.credits.retain(|c| !same_endpoint(c.addr, addr));
    }

    /// `bytes` arrived from `addr`: an unvalidated address earns that much answer.
    pub(super) fn credit(&mut self, addr: SocketAddr, bytes: usize) {
        if self.is_validated(addr) {
            // Heard from: the least likely to be forgotten of its set.
            self.validated.insert(addr, true);
            return;
        }
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.stats.bytes_from_unvalidated += u64::from(bytes);
        if let Some(c) = self
            .credits
            .iter_mut()
            .find(|c| same_endpoint(c.addr, addr))
        {
            c.bytes = c.bytes.saturating_add(bytes);
            return;
        }
        if self.credits.is_full()
            && let Some(i) = self
                .credits
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.bytes)
                .map(|(i, _)| i)
        {
            self.credits.swap_remove(i);
        }
        let _ = self.credits.push(Credit { addr, bytes });
    }

    /// The bytes this node may still send to `addr` before it proves it receives.
    pub(super) fn budget(&self, addr: SocketAddr) -> usize {
        if self.is_validated(addr) {
            return usize::MAX;
        }
        self.credits
            .iter()
            .find(|c| same_endpoint(c.addr, addr))
            .map_or(0, |c| c.bytes as usize)
    }

    /// Takes `len` bytes sent to an unvalidated `addr` off its budget.
    pub(super) fn spend(&mut self, addr: SocketAddr, len: usize) {
        if self.is_validated(addr) {
            return;
        }
        self.stats.bytes_to_unvalidated += len as u64;
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        if let Some(c) = self
            .credits
            .iter_mut()
            .find(|c| same_endpoint(c.addr, addr))
        {
            c.bytes = c.bytes.saturating_sub(len);
        }
    }

    /// The cookie of a Challenge to `addr`: 64 bits of SHA-256 over this node's secret and the
    /// address.
    pub(super) fn cookie(&self, addr: SocketAddr) -> u64 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.cookie_secret);
        match addr.ip().to_canonical() {
            core::net::IpAddr::V4(ip) => h.update(ip.to_ipv6_mapped().octets()),
            core::net::IpAddr::V6(ip) => h.update(ip.octets()),
        }
        h.update(addr.port().to_be_bytes());
        let digest = h.finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    /// A Challenge from `from`: if this node is waiting for an answer from there, it echoes the
    /// challenge and sends what waits at once (the answer was withheld, not lost).
    pub(super) fn on_challenge(
        &mut self,
        now: Instant,
        from: SocketAddr,
        cookie: u64,
    ) -> Disposition {
        let mut waiting = false;
        for p in self.pending.iter_mut() {
            if p.sent.is_some() && same_endpoint(p.to, from) {
                waiting = true;
                p.sent = None;
                p.deadline = now;
            }
        }
        for round in self.rounds.iter_mut() {
            for t in round.targets.iter_mut() {
                if t.in_flight.is_some() && same_endpoint(t.node.addr, from) {
                    waiting = true;
                    t.in_flight = None;
                    t.retry_at = now;
                }
            }
        }
        if !waiting {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        self.stats.challenges_answered += 1;
        self.send(from, cookie, Out::Echo);
        Disposition::Handled
    }

    /// A Withheld from `from`: the answer to this node's request `request_id` is withheld until
    /// this node proves it receives. It echoes the cookie (once while an Echo of it waits to
    /// go) and sends again only that request, if its current attempt went to `from`.
    pub(super) fn on_withheld(
        &mut self,
        now: Instant,
        from: SocketAddr,
        request_id: u64,
        cookie: u64,
    ) -> Disposition {
        let mut waiting = false;
        for p in self.pending.iter_mut() {
            if p.sent.is_some() && p.message_id == request_id && same_endpoint(p.to, from) {
                waiting = true;
                p.sent = None;
                p.deadline = now;
            }
        }
        for round in self.rounds.iter_mut() {
            for t in round.targets.iter_mut() {
                if t.in_flight
                    .is_some_and(|f| f.message_id == request_id && same_endpoint(t.node.addr, from))
                {
                    waiting = true;
                    t.in_flight = None;
                    t.retry_at = now;
                }
            }
        }
        if !waiting {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        if !self.echo_queued(from, cookie) {
            self.stats.challenges_answered += 1;
            self.send(from, cookie, Out::Echo);
        }
        Disposition::Handled
    }

    /// An Echo: `from` receives at its address if it carries the cookie this node gives it.
    pub(super) fn on_echo(&mut self, from: SocketAddr, cookie: u64) -> Disposition {
        if cookie != self.cookie(from) {
            self.stats.unmatched += 1;
            return Disposition::Dropped(DropReason::Unmatched);
        }
        self.validate(from);
        Disposition::Handled
    }
}
