//! `mutate_sealed`: valid sealed datagrams, changed by arbitrary mutations, opened.
//!
//! The input (read with `arbitrary`) chooses a key, a sender, a counter and an inner datagram
//! of up to 478 bytes, seals it, then applies arbitrary mutations (bit flips, bytes set,
//! truncation, bytes appended, a key id rewritten). Checked: the unmutated datagram opens to
//! exactly its inner datagram; any datagram whose bytes differ from it is refused (the header
//! is associated data, so no byte anywhere can change unnoticed); a keyed node delivers the
//! original once, never a mutant, and drops the original's replay; every refusal agrees with
//! `open_sealed`'s checks.

use core::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use sinew_proto::datagram::DatagramCore;
use sinew_proto::seal::{Disposition, MAX_PLAINTEXT_LEN};
use sinew_proto::time::Instant;

use crate::open_sealed::{KEYS, check_open, fates, node, seal_with};

/// One change to a sealed datagram.
#[derive(Arbitrary, Clone, Debug)]
pub enum Mutation {
    /// Flips bit `bit % 8` of byte `at % len`.
    Flip {
        /// Byte.
        at: u16,
        /// Bit.
        bit: u8,
    },
    /// Sets byte `at % len`.
    Set {
        /// Byte.
        at: u16,
        /// New value.
        value: u8,
    },
    /// Keeps the first `len % (len + 1)` bytes.
    Truncate(u16),
    /// Appends a byte.
    Append(u8),
    /// Rewrites the key id to the other key's.
    OtherKeyId,
}

/// A sealed datagram and what is done to it.
#[derive(Arbitrary, Clone, Debug)]
pub struct Input {
    /// Which of the two keys seals.
    pub second_key: bool,
    /// The sender.
    pub sender: u64,
    /// The counter.
    pub counter: u32,
    /// The inner datagram (cut to 478 bytes).
    pub plaintext: Vec<u8>,
    /// The changes.
    pub mutations: Vec<Mutation>,
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::Flip { at, bit } if len > 0 => bytes[usize::from(at) % len] ^= 1 << (bit % 8),
        Mutation::Set { at, value } if len > 0 => bytes[usize::from(at) % len] = value,
        Mutation::Truncate(keep) => bytes.truncate(usize::from(keep) % (len + 1)),
        Mutation::Append(byte) => bytes.push(byte),
        Mutation::OtherKeyId if len > 1 => {
            bytes[1] = if bytes[1] == KEYS[0].id() {
                KEYS[1].id()
            } else {
                KEYS[0].id()
            }
        }
        _ => {}
    }
}

/// Runs every check on one input; `None` if the bytes do not decode to an [`Input`].
pub fn check(data: &[u8]) -> Option<()> {
    let mut input = Input::arbitrary_take_rest(Unstructured::new(data)).ok()?;
    input.plaintext.truncate(MAX_PLAINTEXT_LEN);
    let key = KEYS[usize::from(input.second_key)];
    let original = seal_with(key, input.sender, input.counter, &input.plaintext).unwrap();
    let mut mutant = original.clone();
    for mutation in &input.mutations {
        mutate(&mut mutant, mutation);
    }

    assert_eq!(check_open(&original).as_deref(), Some(&input.plaintext[..]));
    let opened = check_open(&mutant);
    if mutant == original {
        assert!(opened.is_some());
    } else {
        assert!(opened.is_none(), "a changed datagram opened: {mutant:02x?}");
    }

    let from: SocketAddr = "192.0.2.1:7000".parse().unwrap();
    let now = Instant::ZERO;
    let mut node = node();
    if mutant != original {
        let d = node.handle_datagram(now, from, &mutant);
        assert!(matches!(d, Disposition::Dropped(_)), "{d:?}");
        assert_eq!(node.inner().stats().received, 0);
    }
    let d = node.handle_datagram(now, from, &original);
    assert!(matches!(d, Disposition::Delivered(_)), "{d:?}");
    let d = node.handle_datagram(now, from, &mutant);
    assert!(matches!(d, Disposition::Dropped(_)), "{d:?}");
    assert_eq!(node.inner().stats().received, 1);
    assert_eq!(fates(node.stats()), node.stats().received);
    Some(())
}
