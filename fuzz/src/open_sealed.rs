//! `open_sealed`: [`Keyring::open`] and a [`Keyed`] health node on arbitrary bytes.
//!
//! Checked, beyond "nothing panics": `open` and the [`Sealed`] view agree on every refusal (a
//! defect of the header is the view's error; a whole sealed datagram is refused `UnknownKey`
//! exactly when no installed key has its id, `BadTag` otherwise); whatever opens seals back to
//! the same bytes with the same sender and counter; the keyed node counts every datagram under
//! exactly one counter, hands the inner core only what opened, takes nothing twice, and sends
//! only sealed datagrams of at most 508 bytes that open under its primary key.

use core::net::SocketAddr;

use sinew_proto::datagram::{DatagramCore, MAX_DATAGRAM_LEN};
use sinew_proto::health::{self, HealthNode};
use sinew_proto::rand_core::UnwrapErr;
use sinew_proto::seal::{
    self, Disposition, DropReason, HEADER_LEN, Key, Keyed, Keyring, Replay, Sealed, Stats,
};
use sinew_proto::time::Instant;
use sinew_proto::{Error, Result};

use crate::rng::FuzzRng;

/// The two keys every sealed harness installs (the second is the primary).
pub const KEYS: [Key; 2] = [Key::from_bytes([0x11; 32]), Key::from_bytes([0x22; 32])];

/// A keyring with [`KEYS`], the second primary.
pub fn keyring() -> Keyring {
    let mut ring = Keyring::with_key(KEYS[0]);
    ring.install(KEYS[1]).unwrap();
    ring.use_key(&KEYS[1]).unwrap();
    ring
}

/// A keyed health node with [`keyring`].
pub fn node() -> Keyed<HealthNode<UnwrapErr<FuzzRng>>, UnwrapErr<FuzzRng>> {
    let inner = HealthNode::new(health::Config::new(), UnwrapErr(FuzzRng::new(1)));
    Keyed::new(
        inner,
        keyring(),
        seal::Config::new(),
        UnwrapErr(FuzzRng::new(2)),
    )
}

/// Every counter of a datagram's fate, summed: one per datagram received.
pub fn fates(s: &Stats) -> u64 {
    s.opened
        + s.unsealed
        + s.truncated
        + s.malformed
        + s.unknown_key
        + s.bad_tag
        + s.replayed
        + s.too_old
        + s.replay_table_full
        + s.sealed_no_key
        + s.passed
}

/// `plaintext` sealed by `key` as datagram `counter` of `sender`.
pub fn seal_with(key: Key, sender: u64, counter: u32, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut buf = vec![0; HEADER_LEN + plaintext.len() + seal::TAG_LEN];
    buf[HEADER_LEN..HEADER_LEN + plaintext.len()].copy_from_slice(plaintext);
    let len = Keyring::<1>::with_key(key).seal(sender, counter, &mut buf, plaintext.len())?;
    buf.truncate(len);
    Ok(buf)
}

/// Checks what `open` says about `data` against the view, and returns the plaintext if it
/// opened.
pub fn check_open(data: &[u8]) -> Option<Vec<u8>> {
    let ring = keyring();
    let mut copy = data.to_vec();
    let view = Sealed::new_checked(data);
    match ring.open(&mut copy) {
        Ok(opened) => {
            let view = view.expect("opened, so the header is valid");
            assert_eq!(
                (opened.sender, opened.counter),
                (view.sender(), view.counter())
            );
            let resealed = KEYS.iter().filter(|k| k.id() == opened.key_id).any(|&k| {
                seal_with(k, opened.sender, opened.counter, opened.plaintext).as_deref() == Ok(data)
            });
            assert!(resealed, "opened, but does not seal back to the same bytes");
            Some(opened.plaintext.to_vec())
        }
        Err(error) => {
            match view {
                Err(defect) => assert_eq!(error, defect),
                Ok(view) => {
                    let known = KEYS.iter().any(|k| k.id() == view.key_id());
                    let want = if known {
                        Error::BadTag
                    } else {
                        Error::UnknownKey(view.key_id())
                    };
                    assert_eq!(error, want);
                }
            }
            None
        }
    }
}

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let opened = check_open(data);

    let from: SocketAddr = "192.0.2.1:7000".parse().unwrap();
    let mut node = node();
    let now = Instant::ZERO;
    let first = node.handle_datagram(now, from, data);
    assert_eq!(node.stats().received, 1);
    assert_eq!(fates(node.stats()), 1, "{:?}", node.stats());
    assert_eq!(matches!(first, Disposition::Delivered(_)), opened.is_some());
    assert_eq!(node.inner().stats().received, node.stats().opened);
    let again = node.handle_datagram(now, from, data);
    if opened.is_some() {
        assert_eq!(
            again,
            Disposition::Dropped(DropReason::Replay(Replay::Duplicate))
        );
    }
    assert_eq!(fates(node.stats()), 2);
    assert_eq!(node.inner().stats().received, node.stats().opened);

    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let primary_only: Keyring = Keyring::with_key(KEYS[1]);
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        assert!(t.len <= MAX_DATAGRAM_LEN);
        assert_eq!(buf[0], seal::TYPE);
        assert!(primary_only.open(&mut buf[..t.len]).is_ok());
    }
}
