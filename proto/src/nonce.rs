//! The nonce header shared by sinew's UDP protocols.
//!
//! Every datagram starts with one type byte and a 128-bit nonce:
//!
//! ```text
//!  0                   1
//! +--------+--------+--------+-- ... --+--------+
//! |  type  |            nonce (16 bytes)         |
//! +--------+--------+--------+-- ... --+--------+
//!   type = version (bits 7..5) | kind (bits 4..0)
//! ```
//!
//! The version bits are zero for the current protocol, so the original 17-byte packets (type 1 =
//! health request, type 2 = health response) are version-0 packets unchanged. A datagram whose
//! version bits name any other version is refused with [`Error::UnsupportedVersion`].
//!
//! ```
//! use sinew_proto::nonce::{Header, Nonce, emit_header, split_type_byte, type_byte};
//! use sinew_proto::Error;
//!
//! // Write a header of kind 3 with a payload byte behind it, into a buffer pre-filled with 0xa5.
//! let nonce = Nonce::from_bytes(*b"0123456789abcdef");
//! let mut datagram = [0xa5; 18];
//! assert_eq!(emit_header(&mut datagram, 3, &nonce)?, 17);
//! assert_eq!(datagram[0], 0x03); // version 0, kind 3
//! assert_eq!(&datagram[1..17], b"0123456789abcdef");
//!
//! // Read it back through the view: one length and version check, then plain accessors.
//! let header = Header::new_checked(&datagram[..])?;
//! assert_eq!((header.version(), header.kind()), (0, 3));
//! assert_eq!(header.nonce(), nonce);
//! assert_eq!(header.payload(), &[0xa5]);
//!
//! // A version-1 type byte (0x23: bits 7..5 = 1, kind 3) is refused, as is a short datagram.
//! assert_eq!(type_byte(1, 3), 0x23);
//! assert_eq!(split_type_byte(0x23), (1, 3));
//! datagram[0] = 0x23;
//! assert_eq!(Header::new_checked(&datagram[..]), Err(Error::UnsupportedVersion(1)));
//! assert_eq!(Header::new_checked(&datagram[..16]), Err(Error::Truncated));
//! # Ok::<(), Error>(())
//! ```

use core::fmt;
use core::ops::Range;

use crate::{Error, Result};

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 16;
/// Length of the nonce header: type byte + nonce.
pub const HEADER_LEN: usize = field::NONCE.end;
/// The protocol version this crate speaks (the value of the type byte's version bits).
pub const VERSION: u8 = 0;

const VERSION_SHIFT: u8 = 5;
const KIND_MASK: u8 = (1 << VERSION_SHIFT) - 1;

mod field {
    use super::Range;
    pub const TYPE: usize = 0;
    pub const NONCE: Range<usize> = 1..17;
}

/// The type byte for `kind` (0..=31) in protocol `version` (0..=7); extra high bits are dropped.
pub const fn type_byte(version: u8, kind: u8) -> u8 {
    (version << VERSION_SHIFT) | (kind & KIND_MASK)
}

/// Splits a type byte into `(version, kind)`.
pub const fn split_type_byte(byte: u8) -> (u8, u8) {
    (byte >> VERSION_SHIFT, byte & KIND_MASK)
}

/// A 128-bit nonce: the unpredictable token that ties a response to its request.
///
/// Nonces must come from a cryptographically secure generator ([`Nonce::random`]); a guessable
/// nonce would let anyone forge responses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Nonce([u8; NONCE_LEN]);

impl Nonce {
    /// A nonce with the given bytes.
    pub const fn from_bytes(bytes: [u8; NONCE_LEN]) -> Nonce {
        Nonce(bytes)
    }

    /// A fresh nonce drawn from `rng`.
    #[inline]
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Nonce {
        let mut bytes = [0; NONCE_LEN];
        rng.fill_bytes(&mut bytes);
        Nonce(bytes)
    }

    /// The nonce's bytes.
    pub const fn as_bytes(&self) -> &[u8; NONCE_LEN] {
        &self.0
    }

    /// The nonce's bytes, by value.
    pub const fn to_bytes(self) -> [u8; NONCE_LEN] {
        self.0
    }
}

impl From<[u8; NONCE_LEN]> for Nonce {
    fn from(bytes: [u8; NONCE_LEN]) -> Nonce {
        Nonce(bytes)
    }
}

impl fmt::Display for Nonce {
    /// 32 lowercase hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Nonce {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=[u8]:02x}", self.0[..])
    }
}

/// A read/write view of a nonce header at the start of a buffer.
///
/// After [`Header::new_checked`] has succeeded no accessor can fail or panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Checks that `buffer` holds a full header of a supported version and wraps it.
    ///
    /// # Errors
    /// [`Error::Truncated`] if it is shorter than [`HEADER_LEN`], [`Error::UnsupportedVersion`]
    /// if the version bits are not [`VERSION`]. The kind is not checked here: each protocol
    /// family knows its own kinds.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Header<T>> {
        let bytes = buffer.as_ref();
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let (version, _) = split_type_byte(bytes[field::TYPE]);
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        Ok(Header { buffer })
    }

    /// The whole type byte.
    #[inline]
    pub fn type_byte(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// The protocol version (always [`VERSION`] for a checked header).
    pub fn version(&self) -> u8 {
        split_type_byte(self.type_byte()).0
    }

    /// The message kind (the low five bits of the type byte).
    #[inline]
    pub fn kind(&self) -> u8 {
        split_type_byte(self.type_byte()).1
    }

    /// The nonce, by reference into the buffer.
    #[inline]
    pub fn nonce_bytes(&self) -> &[u8; NONCE_LEN] {
        // Infallible after `new_checked`; the fallback keeps the accessor panic-free regardless.
        <&[u8; NONCE_LEN]>::try_from(&self.buffer.as_ref()[field::NONCE]).unwrap_or(&[0; NONCE_LEN])
    }

    /// The nonce, copied out.
    #[inline]
    pub fn nonce(&self) -> Nonce {
        Nonce(*self.nonce_bytes())
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Writes a version-[`VERSION`] header with `kind` and `nonce` at the start of `buf`.
///
/// Returns [`HEADER_LEN`], or [`Error::BufferTooSmall`].
#[inline]
pub fn emit_header(buf: &mut [u8], kind: u8, nonce: &Nonce) -> Result<usize> {
    let Some(header) = buf.get_mut(..HEADER_LEN) else {
        return Err(Error::BufferTooSmall);
    };
    header[field::TYPE] = type_byte(VERSION, kind);
    header[field::NONCE].copy_from_slice(&nonce.0);
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    static HEADER: [u8; 18] = [
        0x01, // type: version 0, kind 1
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, // nonce, first half
        0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, // nonce, second half
        0x42, // payload
    ];

    #[test]
    fn test_parse() {
        let header = Header::new_checked(&HEADER[..]).unwrap();
        assert_eq!(header.version(), 0);
        assert_eq!(header.kind(), 1);
        assert_eq!(header.nonce_bytes()[0], 0x00);
        assert_eq!(header.nonce_bytes()[15], 0xff);
        assert_eq!(header.payload(), &[0x42]);
        assert_eq!(
            format!("{}", header.nonce()),
            "00112233445566778899aabbccddeeff"
        );
    }

    #[test]
    fn test_emit() {
        let mut buf = [0xa5; 18];
        let nonce = Nonce::from_bytes(HEADER[1..17].try_into().unwrap());
        assert_eq!(emit_header(&mut buf, 1, &nonce), Ok(HEADER_LEN));
        assert_eq!(&buf[..17], &HEADER[..17]);
        assert_eq!(buf[17], 0xa5, "emit wrote past the header");
        assert_eq!(
            emit_header(&mut buf[..16], 1, &nonce),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn test_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Header::new_checked(&HEADER[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
    }

    #[test]
    fn test_unsupported_version() {
        for version in 1..8u8 {
            let mut bytes = HEADER;
            bytes[0] = type_byte(version, 1);
            assert_eq!(
                Header::new_checked(&bytes[..]),
                Err(Error::UnsupportedVersion(version))
            );
        }
    }

    #[test]
    fn type_byte_round_trips() {
        for byte in 0..=255u8 {
            let (version, kind) = split_type_byte(byte);
            assert_eq!(type_byte(version, kind), byte);
        }
    }
}
