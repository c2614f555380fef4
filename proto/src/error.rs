//! The one error type of this crate.

use core::fmt;

use crate::zk::path::PathError;

/// Everything that can go wrong while parsing, encoding or driving a protocol.
///
/// Small and `Copy`, so that it can be returned from hot paths and stored in counters; the variants
/// name the defect precisely enough for a log line or a fuzz triage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the structure it holds did.
    Truncated,
    /// Bytes were left over after a message that must fill its datagram or frame exactly
    /// (a padded datagram is refused, never silently accepted).
    TrailingBytes,
    /// The header names a protocol version this crate does not speak.
    UnsupportedVersion(u8),
    /// A type byte that names no message of the protocol family.
    UnknownType(u8),
    /// A well-formed message of a type the caller's entry point does not accept.
    UnexpectedType(u8),
    /// A length or count field disagrees with the bytes present, or is negative.
    BadLength,
    /// A length, count or datagram above the protocol's or the configured maximum.
    TooLarge,
    /// A peer-table entry's health byte is not a valid health status.
    BadStatus(u8),
    /// A peer-table entry carries an unspecified address or port 0.
    BadAddress,
    /// Padding or reserved bits that must be zero were not.
    NonZeroPadding,
    /// The caller's output buffer is too small for the encoded message.
    BufferTooSmall,
    /// Bounded storage (pending requests, queues, tables) is full; the request was not taken.
    Capacity,
    /// A field holds a value its type does not allow (a flag that is neither 0 nor 1, an unknown
    /// enumerant in a closed enum, ...).
    BadValue,
    // New variants for other protocol families go below this line.
    /// ZooKeeper: an operation code that may not appear where it was found (a read inside a
    /// multi, a write inside a multiRead, a multi result of an unknown type). Every ZooKeeper
    /// op code fits an `i16`; one that does not is reported as `i16::MIN`. (An `i32` here would
    /// double this enum's size and measurably slow every parser's `Result`.)
    UnexpectedOp(i16),
    /// ZooKeeper: a request's path is not a valid node path (checked before anything is sent,
    /// as ZooKeeper's own client does); the [`PathError`] says why, in ZooKeeper's words.
    InvalidPath(PathError),
    /// Sealed datagrams: the keyring is empty, so nothing can be sealed.
    NoKey,
    /// Sealed datagrams: no installed key has this key id (or, to `use_key` / `remove`, the
    /// key is not installed; its id is given).
    UnknownKey(u8),
    /// Sealed datagrams: the authentication tag matches under no installed key of the
    /// datagram's key id (a wrong key, or altered bytes).
    BadTag,
    /// DHT: a request that must wait for another of the same key — a Lock while an Unlock of
    /// that key with the same token is on its way (overtaking it, the Lock would be taken for
    /// a renewal of the lock being released, and the Unlock then release it). Nothing was
    /// sent; try again once the Unlock has its outcome.
    Busy,
}

/// `core::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated => f.write_str("input truncated"),
            Error::TrailingBytes => f.write_str("trailing bytes after message"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported protocol version {v}"),
            Error::UnknownType(t) => write!(f, "unknown message type 0x{t:02x}"),
            Error::UnexpectedType(t) => write!(f, "unexpected message type 0x{t:02x}"),
            Error::BadLength => f.write_str("length field disagrees with the data"),
            Error::TooLarge => f.write_str("length above the maximum"),
            Error::BadStatus(s) => write!(f, "invalid health status byte 0x{s:02x}"),
            Error::BadAddress => f.write_str("unspecified address or port 0 in table entry"),
            Error::NonZeroPadding => f.write_str("padding or reserved bits are not zero"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
            Error::Capacity => f.write_str("bounded storage is full"),
            Error::BadValue => f.write_str("field value out of its range"),
            Error::UnexpectedOp(op) => write!(f, "operation code {op} not allowed here"),
            Error::InvalidPath(e) => write!(f, "invalid path: {e}"),
            Error::NoKey => f.write_str("no key installed"),
            Error::UnknownKey(id) => write!(f, "no installed key has id 0x{id:02x}"),
            Error::BadTag => f.write_str("authentication tag does not match"),
            Error::Busy => f.write_str("another request of the same key must finish first"),
        }
    }
}

impl core::error::Error for Error {}

impl From<PathError> for Error {
    fn from(e: PathError) -> Error {
        Error::InvalidPath(e)
    }
}

/// For `?` in functions returning `std::io::Result` (feature `std`): an [`Error`] becomes an
/// `io::Error` that carries it (`get_ref()` and `downcast` give it back), of kind
/// `InvalidInput` for [`Error::BufferTooSmall`] (the caller's buffer) and [`Error::InvalidPath`]
/// (the caller's path), `OutOfMemory` for
/// [`Error::Capacity`] (the caller's bounded storage is full), `WouldBlock` for [`Error::Busy`],
/// and `InvalidData` for every
/// defect of the bytes or values handled.
///
/// ```
/// # #[cfg(feature = "std")] {
/// use std::io;
/// use sinew_proto::health::HealthCheck;
///
/// fn check(datagram: &[u8]) -> io::Result<HealthCheck> {
///     Ok(HealthCheck::parse(datagram)?)
/// }
///
/// let error = check(&[0x01]).unwrap_err();
/// assert_eq!(error.kind(), io::ErrorKind::InvalidData);
/// assert_eq!(error.downcast::<sinew_proto::Error>().ok(), Some(sinew_proto::Error::Truncated));
/// # }
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl From<Error> for std::io::Error {
    fn from(error: Error) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match error {
            Error::BufferTooSmall | Error::InvalidPath(_) => ErrorKind::InvalidInput,
            Error::Capacity => ErrorKind::OutOfMemory,
            Error::Busy => ErrorKind::WouldBlock,
            _ => ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, error)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Error {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Error::Truncated => defmt::write!(f, "input truncated"),
            Error::TrailingBytes => defmt::write!(f, "trailing bytes after message"),
            Error::UnsupportedVersion(v) => {
                defmt::write!(f, "unsupported protocol version {=u8}", v)
            }
            Error::UnknownType(t) => defmt::write!(f, "unknown message type {=u8:#x}", t),
            Error::UnexpectedType(t) => defmt::write!(f, "unexpected message type {=u8:#x}", t),
            Error::BadLength => defmt::write!(f, "length field disagrees with the data"),
            Error::TooLarge => defmt::write!(f, "length above the maximum"),
            Error::BadStatus(s) => defmt::write!(f, "invalid health status byte {=u8:#x}", s),
            Error::BadAddress => defmt::write!(f, "unspecified address or port 0 in table entry"),
            Error::NonZeroPadding => defmt::write!(f, "padding or reserved bits are not zero"),
            Error::BufferTooSmall => defmt::write!(f, "output buffer too small"),
            Error::Capacity => defmt::write!(f, "bounded storage is full"),
            Error::BadValue => defmt::write!(f, "field value out of its range"),
            Error::UnexpectedOp(op) => {
                defmt::write!(f, "operation code {=i16} not allowed here", op)
            }
            Error::InvalidPath(e) => defmt::write!(f, "invalid path: {}", e),
            Error::NoKey => defmt::write!(f, "no key installed"),
            Error::UnknownKey(id) => defmt::write!(f, "no installed key has id {=u8:#x}", id),
            Error::BadTag => defmt::write!(f, "authentication tag does not match"),
            Error::Busy => defmt::write!(f, "another request of the same key must finish first"),
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::Error;
    use std::io::{self, ErrorKind};

    #[test]
    fn io_error_kind_and_source() {
        for (error, kind) in [
            (Error::BufferTooSmall, ErrorKind::InvalidInput),
            (Error::Capacity, ErrorKind::OutOfMemory),
            (Error::Busy, ErrorKind::WouldBlock),
            (Error::Truncated, ErrorKind::InvalidData),
            (Error::TooLarge, ErrorKind::InvalidData),
            (Error::UnexpectedOp(5), ErrorKind::InvalidData),
        ] {
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind);
            assert_eq!(io.get_ref().and_then(|e| e.downcast_ref()), Some(&error));
        }
    }

    #[test]
    fn question_mark_in_io_result() {
        fn encode(buf: &mut [u8]) -> io::Result<usize> {
            let check = crate::health::HealthCheck {
                kind: crate::health::HealthKind::Request,
                nonce: crate::nonce::Nonce::from_bytes([1; 16]),
            };
            Ok(check.encode(buf)?)
        }
        assert_eq!(encode(&mut [0; 17]).unwrap(), 17);
        assert_eq!(
            encode(&mut [0; 16]).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
}
