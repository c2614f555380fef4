//! Maelstrom's error codes, and which of them are definite.

use core::fmt;

/// The `code` of an error body: Maelstrom's table, custom codes (1000 and above) and the
/// reserved codes it does not name.
///
/// Open on purpose: any integer parses ([`ErrorCode::from_code`]), and
/// [`ErrorCode::code`] gives it back unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorCode {
    /// 0: the operation could not be completed in time (indefinite).
    Timeout,
    /// 1: the request went to a node that does not exist.
    NodeNotFound,
    /// 10: the operation is not supported by this node.
    NotSupported,
    /// 11: the operation definitely cannot be performed now (not initialised, no quorum, …).
    TemporarilyUnavailable,
    /// 12: the request did not have the shape the node expects.
    MalformedRequest,
    /// 13: a general failure after which the operation may or may not have happened
    /// (indefinite).
    Crash,
    /// 14: a general failure after which the operation definitely did not happen.
    Abort,
    /// 20: the key does not exist.
    KeyDoesNotExist,
    /// 21: the key exists already.
    KeyAlreadyExists,
    /// 22: a precondition (a compare-and-set's `from`) did not hold.
    PreconditionFailed,
    /// 30: the transaction was aborted because of a conflict.
    TxnConflict,
    /// 1000 and above: a node's own code; always indefinite.
    Custom(u64),
    /// Below 1000 and not in Maelstrom's table: reserved by Maelstrom; taken as indefinite.
    Unknown(u64),
}

impl ErrorCode {
    /// The first code free for a node's own use.
    pub const FIRST_CUSTOM: u64 = 1000;

    /// The code for an integer.
    pub const fn from_code(code: u64) -> ErrorCode {
        match code {
            0 => ErrorCode::Timeout,
            1 => ErrorCode::NodeNotFound,
            10 => ErrorCode::NotSupported,
            11 => ErrorCode::TemporarilyUnavailable,
            12 => ErrorCode::MalformedRequest,
            13 => ErrorCode::Crash,
            14 => ErrorCode::Abort,
            20 => ErrorCode::KeyDoesNotExist,
            21 => ErrorCode::KeyAlreadyExists,
            22 => ErrorCode::PreconditionFailed,
            30 => ErrorCode::TxnConflict,
            n if n >= Self::FIRST_CUSTOM => ErrorCode::Custom(n),
            n => ErrorCode::Unknown(n),
        }
    }

    /// The integer on the wire.
    pub const fn code(self) -> u64 {
        match self {
            ErrorCode::Timeout => 0,
            ErrorCode::NodeNotFound => 1,
            ErrorCode::NotSupported => 10,
            ErrorCode::TemporarilyUnavailable => 11,
            ErrorCode::MalformedRequest => 12,
            ErrorCode::Crash => 13,
            ErrorCode::Abort => 14,
            ErrorCode::KeyDoesNotExist => 20,
            ErrorCode::KeyAlreadyExists => 21,
            ErrorCode::PreconditionFailed => 22,
            ErrorCode::TxnConflict => 30,
            ErrorCode::Custom(n) | ErrorCode::Unknown(n) => n,
        }
    }

    /// Whether the error says that the operation definitely did not, and never will, happen.
    ///
    /// Maelstrom's checkers rely on this split: an indefinite error (timeout, crash, any custom
    /// or unnamed code) leaves the operation possibly applied. When in doubt, indefinite.
    pub const fn is_definite(self) -> bool {
        matches!(
            self,
            ErrorCode::NodeNotFound
                | ErrorCode::NotSupported
                | ErrorCode::TemporarilyUnavailable
                | ErrorCode::MalformedRequest
                | ErrorCode::Abort
                | ErrorCode::KeyDoesNotExist
                | ErrorCode::KeyAlreadyExists
                | ErrorCode::PreconditionFailed
                | ErrorCode::TxnConflict
        )
    }

    /// Maelstrom's name for the code (`"key-does-not-exist"`), `"custom"` or `"unknown"`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Timeout => "timeout",
            ErrorCode::NodeNotFound => "node-not-found",
            ErrorCode::NotSupported => "not-supported",
            ErrorCode::TemporarilyUnavailable => "temporarily-unavailable",
            ErrorCode::MalformedRequest => "malformed-request",
            ErrorCode::Crash => "crash",
            ErrorCode::Abort => "abort",
            ErrorCode::KeyDoesNotExist => "key-does-not-exist",
            ErrorCode::KeyAlreadyExists => "key-already-exists",
            ErrorCode::PreconditionFailed => "precondition-failed",
            ErrorCode::TxnConflict => "txn-conflict",
            ErrorCode::Custom(_) => "custom",
            ErrorCode::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for ErrorCode {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<ErrorCode> {
        Ok(ErrorCode::from_code(u.arbitrary()?))
    }
}
