//! The bridge from `std::time::Instant` to the protocol cores' caller-supplied time.

use std::time::{Duration, Instant as StdInstant};

use sinew_proto::time::Instant;

/// Converts the host's monotonic clock into [`sinew_proto::time::Instant`]s: microseconds since
/// a base instant.
///
/// Nodes that should agree on time (to compare their event timestamps, say) share one clock:
/// it is `Copy`, and every copy keeps the same base.
///
/// ```
/// use sinew_transport_std::Clock;
/// let clock = Clock::new();
/// let now = clock.now();
/// assert!(clock.to_std(now).unwrap() >= clock.base());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    base: StdInstant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Clock {
        Clock {
            base: StdInstant::now(),
        }
    }

    /// A clock whose epoch is `base`.
    pub fn starting_at(base: StdInstant) -> Clock {
        Clock { base }
    }

    /// The epoch: the `std` instant that is [`Instant::ZERO`].
    pub fn base(&self) -> StdInstant {
        self.base
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.from_std(StdInstant::now())
    }

    /// `at` as an [`Instant`]; instants before the epoch become [`Instant::ZERO`].
    pub fn from_std(&self, at: StdInstant) -> Instant {
        let micros = at.saturating_duration_since(self.base).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// `at` as a `std` instant, or `None` if it lies too far ahead to be represented
    /// (such as [`Instant::MAX`], "never").
    pub fn to_std(&self, at: Instant) -> Option<StdInstant> {
        self.base.checked_add(Duration::from_micros(at.as_micros()))
    }

    /// Time since the epoch.
    pub fn elapsed(&self) -> Duration {
        self.base.elapsed()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::new()
    }
}
