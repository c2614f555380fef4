//! One error style and one set of exit codes for every subcommand: a failure is one line on
//! stderr, `sinew: ` then what was concerned (address, path, argument) and the cause, and the
//! exit code says which kind of failure it was.

use std::fmt;
use std::io;

/// Done.
pub const EXIT_OK: u8 = 0;
/// The protocol said no: not found, exists already, bad version, permission denied, lock
/// denied, no reply to a ping, malformed bytes given to `sinew decode`.
pub const EXIT_FAILED: u8 = 1;
/// The command line is wrong (unknown flag, invalid path, ACL or address, not hex).
pub const EXIT_USAGE: u8 = 2;
/// sysexits' `EX_UNAVAILABLE`: no server could be reached (refused, unreachable, reset), or
/// the connection was lost.
pub const EXIT_UNAVAILABLE: u8 = 69;
/// sysexits' `EX_TEMPFAIL`: no answer in time (a connect, a reply, a reconnection), or the
/// session expired; trying again later may work.
pub const EXIT_TEMPFAIL: u8 = 75;

/// The exit codes as `--help` lists them.
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0   done (also when the reader of stdout left early, as `| head -1` does)
  1   the protocol said no: not found, exists, bad version, no permission, lock denied,
      no reply to any ping, malformed bytes given to `decode`
  2   usage: unknown or missing argument, invalid path, ACL, address or hex
  69  unavailable: no server could be reached (refused, unreachable), connection lost
  75  timed out: no connection, reply or reconnection in time, or the session expired
Errors are one line on stderr: `sinew: ` then the address, path or argument concerned and the
cause.";

/// A failed command: the exit code and the line for stderr (without the `sinew: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code ([`EXIT_FAILED`], [`EXIT_USAGE`], …).
    pub code: u8,
    /// What went wrong, naming what was concerned.
    pub message: String,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// The protocol said no ([`EXIT_FAILED`]).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_FAILED, message)
    }

    /// A usage error ([`EXIT_USAGE`]).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_USAGE, message)
    }

    /// An i/o error on `what` (an address, a file), classified by its kind.
    pub fn io(what: impl fmt::Display, e: &io::Error) -> Failure {
        Failure::new(io_class(e), format!("{what}: {e}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<io::Error> for Failure {
    /// An error writing the output (or another i/o error with nothing to name).
    fn from(e: io::Error) -> Failure {
        Failure::new(io_class(&e), e.to_string())
    }
}

impl From<sinew_transport_std::Error> for Failure {
    /// An adapter's error with nothing more to name than what it says itself.
    fn from(e: sinew_transport_std::Error) -> Failure {
        Failure::caused("", e)
    }
}

impl Failure {
    /// An adapter's error concerning `what` (an address, a key), classified: unreachable and
    /// timed out apart from refusals.
    pub fn caused(what: impl fmt::Display, e: sinew_transport_std::Error) -> Failure {
        use sinew_proto::dht::RequestError;
        use sinew_transport_std::Error as E;
        let what = what.to_string();
        let code = match &e {
            E::Io(e) => io_class(e),
            E::Connect(c) => {
                if !c.attempts.is_empty()
                    && c.attempts
                        .iter()
                        .all(|(_, e)| e.kind() == io::ErrorKind::TimedOut)
                {
                    EXIT_TEMPFAIL
                } else {
                    EXIT_UNAVAILABLE
                }
            }
            E::Timeout | E::Dht(RequestError::Timeout) => EXIT_TEMPFAIL,
            E::Dht(RequestError::Disconnected) => EXIT_UNAVAILABLE,
            _ => EXIT_FAILED,
        };
        let message = if what.is_empty() {
            e.to_string()
        } else {
            match e {
                E::Io(e) => format!("{what}: {e}"),
                e => format!("{what}: {e}"),
            }
        };
        Failure::new(code, message)
    }
}

/// The exit code for an operating-system error.
pub fn io_class(e: &io::Error) -> u8 {
    use io::ErrorKind as K;
    match e.kind() {
        K::TimedOut | K::WouldBlock => EXIT_TEMPFAIL,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::AddrNotAvailable
        | K::BrokenPipe
        | K::UnexpectedEof => EXIT_UNAVAILABLE,
        K::InvalidInput => EXIT_USAGE,
        _ => EXIT_FAILED,
    }
}

/// `n` and the noun, singular for one ("1 byte", "2 bytes").
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_io_class() {
        let e = |kind| io::Error::new(kind, "x");
        assert_eq!(
            io_class(&e(io::ErrorKind::ConnectionRefused)),
            EXIT_UNAVAILABLE
        );
        assert_eq!(io_class(&e(io::ErrorKind::TimedOut)), EXIT_TEMPFAIL);
        assert_eq!(io_class(&e(io::ErrorKind::InvalidInput)), EXIT_USAGE);
        assert_eq!(io_class(&e(io::ErrorKind::AddrInUse)), EXIT_FAILED);
    }

    #[test]
    fn test_plural() {
        assert_eq!(plural(1u64, "byte", "bytes"), "1 byte");
        assert_eq!(plural(0u64, "host", "hosts"), "0 hosts");
        assert_eq!(plural(17u64, "byte", "bytes"), "17 bytes");
    }
}
