//! The error of the ZooKeeper client.

use std::fmt;
use std::io;

use sinew_proto::zk::{ErrorCode, OpCode};

/// What can go wrong with a ZooKeeper operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum ZkError {
    /// The server answered with an error code — or the session made one up for a request
    /// that cannot be answered ([`ErrorCode::ConnectionLoss`] when the connection broke with
    /// the request in flight, [`ErrorCode::SessionExpired`], [`ErrorCode::AuthFailed`]).
    Zk(ErrorCode),
    /// The session refused the request before sending it: [`sinew_proto::Error::TooLarge`]
    /// for a frame above the maximum, [`sinew_proto::Error::Capacity`] when too many requests
    /// are pending, …
    Proto(sinew_proto::Error),
    /// A socket or poll operation failed, or no server address could be resolved.
    Io(io::Error),
    /// No answer within the operation timeout (the request may still be answered later; its
    /// answer is then dropped).
    Timeout,
    /// The reply had a shape the operation did not expect (a server bug).
    UnexpectedReply(OpCode),
}

impl ZkError {
    /// The ZooKeeper error code, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ZkError::Zk(code) => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ZkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZkError::Zk(code) => write!(f, "{code} ({})", code.to_i32()),
            ZkError::Proto(e) => write!(f, "refused locally: {e}"),
            ZkError::Io(e) => write!(f, "i/o: {e}"),
            ZkError::Timeout => f.write_str("operation timed out"),
            ZkError::UnexpectedReply(op) => write!(f, "unexpected reply to {op}"),
        }
    }
}

impl std::error::Error for ZkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZkError::Proto(e) => Some(e),
            ZkError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ErrorCode> for ZkError {
    fn from(code: ErrorCode) -> ZkError {
        ZkError::Zk(code)
    }
}

impl From<sinew_proto::Error> for ZkError {
    fn from(e: sinew_proto::Error) -> ZkError {
        ZkError::Proto(e)
    }
}

impl From<io::Error> for ZkError {
    fn from(e: io::Error) -> ZkError {
        ZkError::Io(e)
    }
}

impl From<ZkError> for crate::Error {
    fn from(e: ZkError) -> crate::Error {
        match e {
            ZkError::Proto(e) => crate::Error::Proto(e),
            ZkError::Io(e) => crate::Error::Io(e),
            ZkError::Zk(code) => crate::Error::Zk(code),
            ZkError::Timeout => crate::Error::Timeout,
            ZkError::UnexpectedReply(op) => crate::Error::UnexpectedReply(op),
        }
    }
}
