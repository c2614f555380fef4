//! Seeds for the sealed-datagram targets (see `seeds.rs`): datagrams sealed with the harnesses'
//! keys, and each broken in one way.

use arbitrary::Unstructured;

use arbitrary::Arbitrary;

use crate::mutate_sealed::Input;
use crate::open_sealed::{KEYS, seal_with};
use crate::seeds::Seed;

fn seed(target: &'static str, name: &'static str, what: &str, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name,
        what: what.to_string(),
        bytes,
    }
}

/// A 17-byte health request (type 0x01, nonce 00 11 … ff).
fn health_request() -> Vec<u8> {
    let mut bytes = vec![0x01];
    bytes.extend((0..16u8).map(|i| i * 0x11));
    bytes
}

/// Every seed of these targets.
pub fn all() -> Vec<Seed> {
    let s = |name, what, bytes| seed("open_sealed", name, what, bytes);
    let valid = seal_with(KEYS[1], 0x0102_0304_0506_0708, 9, &health_request()).unwrap();
    let mut flipped = valid.clone();
    flipped[20] ^= 1;
    let mut seeds = vec![
        s(
            "health-request",
            "a health request sealed under the primary key (sender 0102…08, counter 9): opens",
            valid.clone(),
        ),
        s(
            "old-key",
            "the same request sealed under the other installed key: opens",
            seal_with(KEYS[0], 7, 0, &health_request()).unwrap(),
        ),
        s(
            "unknown-key",
            "sealed under a key not installed: UnknownKey (or BadTag if the ids collide)",
            seal_with(
                sinew_proto::seal::Key::from_bytes([0x33; 32]),
                7,
                0,
                &health_request(),
            )
            .unwrap(),
        ),
        s(
            "flipped",
            "health-request with one ciphertext bit flipped: BadTag",
            flipped,
        ),
        s(
            "truncated",
            "health-request cut to 29 bytes: Truncated",
            valid[..29].to_vec(),
        ),
        s(
            "unsealed",
            "a plain health request: Unsealed",
            health_request(),
        ),
        s(
            "empty-inner",
            "an empty inner datagram sealed (30 bytes, the shortest): opens",
            seal_with(KEYS[1], 1, 1, &[]).unwrap(),
        ),
    ];
    // mutate_sealed reads an `Input` through `arbitrary`, which has no encoder: the seeds are
    // byte strings, described by what they decode to.
    let inputs: [(&'static str, Vec<u8>); 3] = [
        ("short", [1, 8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0].to_vec()),
        ("health", {
            let mut b = vec![1, 8, 7, 6, 5, 4, 3, 2, 1, 9, 0, 0, 0];
            b.extend(health_request());
            b
        }),
        ("long", (0..=255u8).cycle().take(700).collect()),
    ];
    for (name, bytes) in inputs {
        let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap();
        let what = format!(
            "decodes to: key {}, sender {:#x}, counter {}, {}-byte inner datagram, {} mutations",
            u8::from(input.second_key),
            input.sender,
            input.counter,
            input
                .plaintext
                .len()
                .min(sinew_proto::seal::MAX_PLAINTEXT_LEN),
            input.mutations.len()
        );
        seeds.push(seed("mutate_sealed", name, &what, bytes));
    }
    seeds
}
