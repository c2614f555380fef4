//! Time, as the adapter is given it.

use sinew_proto::time::Instant;

/// A monotonic clock the board provides: a hardware timer, a cycle counter, `std::time` in tests.
///
/// The adapter never reads a clock itself: every call takes `now`, as the protocol cores do. This
/// trait is the one place where a board says how to get that `now`; any `FnMut() -> Instant`
/// closure is a `Clock`.
///
/// ```
/// use sinew_proto::time::Instant;
/// use sinew_transport_embedded::Clock;
///
/// let mut ticks = 0u64;
/// let mut clock = move || {
///     ticks += 1_000;
///     Instant::from_micros(ticks)
/// };
/// assert_eq!(clock.now(), Instant::from_millis(1));
/// ```
pub trait Clock {
    /// The current instant. It must never go backwards.
    fn now(&mut self) -> Instant;
}

impl<F: FnMut() -> Instant> Clock for F {
    fn now(&mut self) -> Instant {
        self()
    }
}
