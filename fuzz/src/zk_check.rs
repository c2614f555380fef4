//! Checks shared by the ZooKeeper targets: encode into a 0xa5-filled buffer, and compare a
//! re-encoding with the bytes it was parsed from.

use sinew_proto::Error;
use sinew_proto::zk::{FRAME_HEADER_LEN, MULTI_HEADER_LEN};

use crate::parse_health::FILL;

/// Bytes of slack after every encoding, which must stay 0xa5.
const SLACK: usize = 16;

/// Encodes with `encode` into a 0xa5-filled buffer `len + 16` bytes long and checks that it
/// writes exactly `len` bytes (the `encoded_len()`), touching nothing after them, and that a
/// buffer one byte short is refused with `BufferTooSmall`. Returns the encoding.
pub fn encode_exact(
    len: usize,
    mut encode: impl FnMut(&mut [u8]) -> sinew_proto::Result<usize>,
) -> Vec<u8> {
    let mut buf = vec![FILL; len + SLACK];
    assert_eq!(
        encode(&mut buf),
        Ok(len),
        "encode disagrees with encoded_len"
    );
    assert!(
        buf[len..].iter().all(|&b| b == FILL),
        "encode wrote past encoded_len ({len})"
    );
    if len > 0 {
        let mut short = vec![FILL; len - 1];
        assert_eq!(
            encode(&mut short),
            Err(Error::BufferTooSmall),
            "short buffer accepted"
        );
    }
    buf.truncate(len);
    buf
}

/// Encodes a frame with `encode_framed` and checks it is the 4-byte length then `payload`.
pub fn check_framed(
    payload: &[u8],
    encode_framed: impl FnMut(&mut [u8]) -> sinew_proto::Result<usize>,
) {
    let framed = encode_exact(payload.len() + FRAME_HEADER_LEN, encode_framed);
    let prefix = i32::try_from(payload.len()).unwrap().to_be_bytes();
    assert_eq!(framed[..FRAME_HEADER_LEN], prefix, "frame length");
    assert_eq!(&framed[FRAME_HEADER_LEN..], payload, "framed payload");
}

/// Where a re-encoding may differ from the bytes parsed, because the format has more than one
/// spelling of the same value there.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exceptions {
    /// A jute `boolean` reads any non-zero byte as true (as Java's `readBoolean` does) and is
    /// written back as 1: a byte above 1 may come back as 1.
    pub booleans: bool,
    /// The 9-byte header that ends a multi is recognised by its `done` byte alone (as
    /// ZooKeeper's `MultiOperationRecord` does) and written back as `{-1, 1, -1}`: the last 9
    /// bytes may differ.
    pub multi_end: bool,
}

/// Checks that `encoded` is `original`, except where `exceptions` allow a difference.
pub fn assert_reencodes(original: &[u8], encoded: &[u8], exceptions: Exceptions) {
    assert_eq!(
        original.len(),
        encoded.len(),
        "re-encoded to another length:\n original {original:02x?}\n encoded  {encoded:02x?}"
    );
    let end = original.len().saturating_sub(MULTI_HEADER_LEN);
    for (at, (&was, &now)) in original.iter().zip(encoded).enumerate() {
        let allowed =
            (exceptions.booleans && was > 1 && now == 1) || (exceptions.multi_end && at >= end);
        assert!(
            was == now || allowed,
            "re-encoded byte {at} is {now:#04x}, was {was:#04x}:\n original {original:02x?}\n encoded  {encoded:02x?}"
        );
    }
}
