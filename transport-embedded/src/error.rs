//! The adapter's error: the protocol's or the network stack's.

use core::fmt;

/// An error of an embedded adapter: either the protocol core refused something, or the network
/// stack `E` failed.
///
/// `nb::WouldBlock` from the stack is never an error here: it means "try again", and the adapter
/// keeps whatever it could not finish (a datagram it could not send yet) for the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The protocol core refused the request (full tables, a buffer too small, ...).
    Proto(sinew_proto::Error),
    /// The network stack failed (not `WouldBlock`, which is never reported as an error).
    Network(E),
}

/// `core::result::Result` with this crate's [`Error`].
pub type Result<T, E> = core::result::Result<T, Error<E>>;

impl<E> From<sinew_proto::Error> for Error<E> {
    fn from(error: sinew_proto::Error) -> Self {
        Error::Proto(error)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Proto(error) => write!(f, "protocol: {error}"),
            // embedded-nal only promises `Debug` for a stack's error.
            Error::Network(error) => write!(f, "network: {error:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Proto(error) => Some(error),
            Error::Network(_) => None,
        }
    }
}

#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for Error<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Error::Proto(error) => defmt::write!(f, "protocol: {}", error),
            Error::Network(error) => defmt::write!(f, "network: {}", error),
        }
    }
}
