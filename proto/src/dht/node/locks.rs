//! Leased locks, at the key's owner.

use core::net::SocketAddr;
use core::time::Duration;

use heapless::Vec;
use rand_core::CryptoRng;

use super::io::same_endpoint;
use super::routing::{Envelope, Reply};
use super::{DhtNode, millis};
use crate::dht::{ErrorCode, Kind, LockToken};
use crate::time::Instant;

#[derive(Clone, Debug)]
pub(super) struct LockEntry<const KEY: usize> {
    pub(super) key: Vec<u8, KEY>,
    /// The holder's secret, never sent to anyone but the holder.
    pub(super) token: LockToken,
    pub(super) expires: Instant,
    /// The accountable origin of the Lock that took it, counted in
    /// [`Config::store_share`](super::Config) (`None`: this node's own).
    pub(super) origin: Option<SocketAddr>,
    /// The node that relayed that Lock here, counted in [`Config::relay_share`](super::Config).
    pub(super) relay: Option<SocketAddr>,
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
    pub(super) fn lock_op(
        &mut self,
        now: Instant,
        key: &[u8],
        token: LockToken,
        lease_ms: u32,
        envelope: &Envelope,
    ) -> Reply<KEY, VALUE> {
        let max = millis(self.config.max_lease).max(1);
        let lease_ms = lease_ms.clamp(1, max);
        let lease = Duration::from_millis(u64::from(lease_ms));
        self.locks.retain(|l| l.expires > now);
        if let Some(l) = self.locks.iter_mut().find(|l| l.key == key) {
            if l.token == token {
                l.expires = now + lease;
                return Reply::lock(Kind::Locked, key, token, lease_ms);
            }
            // Held: say for how long, never by whom (the token is the holder's secret).
            let remaining = millis(l.expires - now);
            return Reply::lock(Kind::LockDenied, key, LockToken::default(), remaining);
        }
        if now < self.grace_until {
            let remaining = millis(self.grace_until - now);
            return Reply::lock(Kind::LockDenied, key, LockToken::default(), remaining);
        }
        // A new lock counts against its accountable origin and the node that relayed it.
        let origin = envelope.origin.map(|o| o.addr);
        let relay = envelope.relay;
        let held = |of: Option<SocketAddr>, by: fn(&LockEntry<KEY>) -> Option<SocketAddr>| {
            of.map_or(0, |a| {
                self.locks
                    .iter()
                    .filter(|l| by(l).is_some_and(|s| same_endpoint(s, a)))
                    .count()
            })
        };
        if self.over_quota(
            origin.is_some()
                && held(origin, |l| l.origin) >= Self::share_of(KEYS, self.config.store_share),
            relay.is_some()
                && held(relay, |l| l.relay) >= Self::share_of(KEYS, self.config.relay_share),
        ) {
            return Reply::error(ErrorCode::Full);
        }
        let entry = LockEntry {
            key: Vec::from_slice(key).unwrap_or_default(),
            token,
            expires: now + lease,
            origin,
            relay,
        };
        if self.locks.push(entry).is_err() {
            self.stats.full += 1;
            return Reply::error(ErrorCode::Full);
        }
        Reply::lock(Kind::Locked, key, token, lease_ms)
    }

    /// Whether a Lock of `key` now would take a new entry in the lock table (rather than be
    /// denied, or renew a lock).
    pub(super) fn lock_takes_slot(&self, now: Instant, key: &[u8]) -> bool {
        now >= self.grace_until
            && !self.locks.iter().any(|l| l.key == key && l.expires > now)
            && self.locks.iter().filter(|l| l.expires > now).count() < KEYS
    }

    pub(super) fn unlock_op(
        &mut self,
        now: Instant,
        key: &[u8],
        token: LockToken,
    ) -> Reply<KEY, VALUE> {
        self.locks.retain(|l| l.expires > now);
        match self
            .locks
            .iter()
            .position(|l| l.key == key && l.token == token)
        {
            Some(i) => {
                self.locks.swap_remove(i);
                Reply::new(Kind::Unlocked, key)
            }
            None => Reply::error(ErrorCode::NotHolder),
        }
    }
}
