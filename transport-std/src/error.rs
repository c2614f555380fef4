//! The one error type of this crate.

use std::fmt;
use std::io;

/// What can go wrong while driving a protocol core over std sockets: the core refused something,
/// or the operating system did.
///
/// Per-datagram trouble that UDP makes routine (a send that would block, a port-unreachable
/// report) is counted in [`SocketStats`](crate::SocketStats), never returned as an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The protocol core refused the operation (for example [`sinew_proto::Error::Capacity`]
    /// when too many requests are outstanding).
    Proto(sinew_proto::Error),
    /// A socket or poll operation failed.
    Io(io::Error),
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Proto(e) => write!(f, "protocol: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Proto(e) => Some(e),
            Error::Io(e) => Some(e),
        }
    }
}

impl From<sinew_proto::Error> for Error {
    fn from(e: sinew_proto::Error) -> Error {
        Error::Proto(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}
