//! The one error type of this crate.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use sinew_proto::dht::{ErrorCode as DhtCode, RequestError};
use sinew_proto::zk::{ErrorCode, OpCode};

/// What can go wrong while driving a protocol core over std sockets: the core refused something,
/// the operating system did, or the peer answered with an error.
///
/// Per-datagram trouble that UDP makes routine (a send that would block, a port-unreachable
/// report) is counted in [`SocketStats`](crate::SocketStats), never returned as an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The protocol core refused the operation before anything was sent (for example
    /// [`sinew_proto::Error::Capacity`] when too many requests are outstanding,
    /// [`sinew_proto::Error::TooLarge`] for a message above the maximum).
    Proto(sinew_proto::Error),
    /// A socket or poll operation failed, or an address could not be resolved.
    Io(io::Error),
    /// No server could be connected to: what happened at each address tried.
    Connect(ConnectError),
    /// A ZooKeeper server answered with an error code — or the session made one up for a
    /// request that cannot be answered ([`ErrorCode::ConnectionLoss`] when the connection broke
    /// with the request in flight, [`ErrorCode::SessionExpired`], [`ErrorCode::AuthFailed`]).
    Zk(ErrorCode),
    /// A DHT request failed: the ring refused it, or no answer came after every attempt.
    Dht(RequestError),
    /// No answer within the operation's timeout.
    Timeout,
    /// A ZooKeeper reply had a shape the operation did not expect (a server bug).
    UnexpectedReply(OpCode),
}

/// `std::result::Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The ZooKeeper error code, if this is one.
    pub fn zk_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Zk(code) => Some(*code),
            _ => None,
        }
    }

    /// An [`Error::Io`] of kind `NotConnected`: the adapter's socket is closed.
    pub(crate) fn stopped() -> Error {
        Error::Io(io::Error::new(io::ErrorKind::NotConnected, "stopped"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Proto(e) => write!(f, "refused locally: {e}"),
            Error::Io(e) => write!(f, "i/o: {e}"),
            Error::Connect(e) => e.fmt(f),
            Error::Zk(code) => write!(f, "{code} ({})", code.to_i32()),
            Error::Dht(RequestError::Timeout) => f.write_str("no answer (timed out)"),
            Error::Dht(RequestError::Refused(code)) => {
                let what = match code {
                    DhtCode::NotHolder => "the lock is not held with this token",
                    DhtCode::Full => "the node is full (or the key or value is too large)",
                    DhtCode::NotOwner => "the key's owner could not be reached",
                    _ => "the node refused the request",
                };
                write!(f, "{what} ({code:?})")
            }
            Error::Dht(e) => write!(f, "{e:?}"),
            Error::Timeout => f.write_str("operation timed out"),
            Error::UnexpectedReply(op) => write!(f, "unexpected reply to {op}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Proto(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Connect(e) => Some(e),
            _ => None,
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

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        Error::Zk(code)
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Error {
        Error::Dht(e)
    }
}

/// Every connection attempt failed: the addresses tried, each with what the operating system
/// (or the timeout) said, in the order they were tried.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConnectError {
    /// Each address with the error of its last attempt.
    pub attempts: Vec<(SocketAddr, io::Error)>,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("could not connect to ")?;
        if self.attempts.is_empty() {
            return f.write_str("any server (none was tried)");
        }
        for (i, (addr, e)) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{addr}: {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.attempts
            .last()
            .map(|(_, e)| e as &(dyn std::error::Error + 'static))
    }
}
