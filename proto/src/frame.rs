//! Length-prefixed frames: a 4-byte big-endian length before every message, as ZooKeeper's
//! client protocol and the DHT on TCP both send them. One decoder serves every stream protocol of
//! the crate and of its adapters.
//!
//! Two frames written with [`encode_frame`], then read back from a stream that delivers them
//! in arbitrary pieces, as TCP does:
//!
//! ```
//! use sinew_proto::frame::{FrameDecoder, FrameStatus, encode_frame};
//! use sinew_proto::Error;
//!
//! let mut wire = [0xa5; 16];
//! let first = encode_frame(&mut wire, |payload| {
//!     payload[..3].copy_from_slice(b"abc");
//!     Ok(3)
//! })?;
//! let second = encode_frame(&mut wire[first..], |_| Ok(0))?; // an empty frame
//! assert_eq!(wire[..first + second], [0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0]);
//!
//! // The reader's buffer; bytes arrive 2 at a time.
//! let decoder = FrameDecoder::new();
//! let mut buffered = Vec::new();
//! let mut frames = Vec::new();
//! for piece in wire[..first + second].chunks(2) {
//!     buffered.extend_from_slice(piece);
//!     while let FrameStatus::Complete { frame, consumed } = decoder.decode(&buffered)? {
//!         frames.push(frame.to_vec());
//!         buffered.drain(..consumed);
//!     }
//! }
//! assert_eq!(frames, [b"abc".to_vec(), Vec::new()]);
//! assert!(buffered.is_empty());
//!
//! // A length above the maximum is refused from its prefix alone.
//! let small = FrameDecoder::with_max_frame_len(2);
//! assert_eq!(small.decode(&[0, 0, 0, 3]), Err(Error::TooLarge));
//! # Ok::<(), Error>(())
//! ```

use crate::zk::DEFAULT_MAX_FRAME_LEN;
use crate::{Error, Result};

/// Length of the frame length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// The result of [`FrameDecoder::decode`]: a whole frame, or how many more bytes are needed.
///
/// Exhaustive on purpose: a frame is partial or complete (as in httparse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameStatus<'a> {
    /// The buffer holds the start of a frame only; at least `needed` more bytes must arrive.
    /// Before the 4-byte prefix is complete this counts only the prefix's missing bytes.
    Partial {
        /// Bytes still missing (at least).
        needed: usize,
    },
    /// The buffer starts with a whole frame.
    Complete {
        /// The frame's payload (without the length prefix), borrowed from the buffer.
        frame: &'a [u8],
        /// The bytes the frame takes in the buffer, prefix included: drop them before decoding
        /// the next frame.
        consumed: usize,
    },
}

/// Splits a byte stream into length-prefixed frames, httparse style: given the bytes buffered so far it
/// says whether a whole frame is there, without copying; the caller owns the buffer.
///
/// A length that is negative or above the maximum is refused as soon as the 4-byte prefix has
/// arrived, before anything is buffered for it — as ZooKeeper itself closes the connection on
/// such a frame.
///
/// ```
/// use sinew_proto::frame::{FrameDecoder, FrameStatus};
///
/// let decoder = FrameDecoder::new();
/// let stream = [0, 0, 0, 2, 0xab, 0xcd, 0, 0];
/// assert_eq!(decoder.decode(&stream[..5])?, FrameStatus::Partial { needed: 1 });
/// let FrameStatus::Complete { frame, consumed } = decoder.decode(&stream)? else { panic!() };
/// assert_eq!((frame, consumed), (&[0xab, 0xcd][..], 6));
/// assert_eq!(decoder.decode(&stream[consumed..])?, FrameStatus::Partial { needed: 2 });
/// # Ok::<(), sinew_proto::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameDecoder {
    max_frame_len: u32,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts payloads of up to [`DEFAULT_MAX_FRAME_LEN`] (0xfffff) bytes,
    /// ZooKeeper's default `jute.maxbuffer`; other protocols state their own maximum with
    /// [`with_max_frame_len`](Self::with_max_frame_len).
    pub const fn new() -> FrameDecoder {
        FrameDecoder {
            // The constant is far below u32::MAX.
            max_frame_len: DEFAULT_MAX_FRAME_LEN as u32,
        }
    }

    /// A decoder that accepts payloads of up to `max_frame_len` bytes (at most `i32::MAX`, the
    /// largest length a frame can state).
    pub const fn with_max_frame_len(max_frame_len: u32) -> FrameDecoder {
        FrameDecoder {
            max_frame_len: if max_frame_len > i32::MAX as u32 {
                i32::MAX as u32
            } else {
                max_frame_len
            },
        }
    }

    /// The largest payload accepted.
    pub const fn max_frame_len(&self) -> u32 {
        self.max_frame_len
    }

    /// Looks for a whole frame at the start of `buf`.
    ///
    /// # Errors
    /// [`Error::BadLength`] for a negative length, [`Error::TooLarge`] for a length above the
    /// maximum. Either way the stream cannot be resynchronised: close the connection.
    #[inline]
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<FrameStatus<'a>> {
        let Some((prefix, rest)) = buf.split_first_chunk::<FRAME_HEADER_LEN>() else {
            return Ok(FrameStatus::Partial {
                needed: FRAME_HEADER_LEN - buf.len(),
            });
        };
        let len = i32::from_be_bytes(*prefix);
        let Ok(len) = u32::try_from(len) else {
            return Err(Error::BadLength);
        };
        if len > self.max_frame_len {
            return Err(Error::TooLarge);
        }
        // At most i32::MAX, so it fits usize on every target with 32-bit or wider pointers.
        let len = len as usize;
        match rest.get(..len) {
            Some(frame) => Ok(FrameStatus::Complete {
                frame,
                consumed: FRAME_HEADER_LEN + len,
            }),
            None => Ok(FrameStatus::Partial {
                needed: len - rest.len(),
            }),
        }
    }
}

/// Writes a frame into `buf`: the payload written by `encode` after 4 bytes of room, then its
/// length in front. Returns the frame's length, prefix included.
///
/// # Errors
/// [`Error::BufferTooSmall`] if `buf` cannot hold the prefix (or the payload, as `encode`
/// reports), [`Error::TooLarge`] if the payload is longer than `i32::MAX`.
pub fn encode_frame(
    buf: &mut [u8],
    encode: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    let Some((prefix, payload)) = buf.split_first_chunk_mut::<FRAME_HEADER_LEN>() else {
        return Err(Error::BufferTooSmall);
    };
    let len = encode(payload)?;
    *prefix = i32::try_from(len)
        .map_err(|_| Error::TooLarge)?
        .to_be_bytes();
    len.checked_add(FRAME_HEADER_LEN).ok_or(Error::TooLarge)
}
