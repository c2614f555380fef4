//! Leased locks, at the key's owner.

use core::time::Duration;

use heapless::Vec;
use rand_core::CryptoRng;

use super::routing::Reply;
use super::{DhtNode, millis};
use crate::dht::{ErrorCode, Kind, LockToken};
use crate::time::Instant;

#[derive(Clone, Debug)]
pub(super) struct LockEntry<const KEY: usize> {
    pub(super) key: Vec<u8, KEY>,
    /// The holder's secret, never sent to anyone but the holder.
    pub(super) token: LockToken,
    pub(super) expires: Instant,
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
        let entry = LockEntry {
            key: Vec::from_slice(key).unwrap_or_default(),
            token,
            expires: now + lease,
        };
        if self.locks.push(entry).is_err() {
            self.stats.full += 1;
            return Reply::error(ErrorCode::Full);
        }
        Reply::lock(Kind::Locked, key, token, lease_ms)
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
