//! [`Adapter`]: the one way every adapter of this crate joins a caller's [`mio::Poll`], and the
//! registration and run loop they share.
//!
//! Each adapter (a [`UdpHealthNode`](crate::UdpHealthNode), a
//! [`UdpDhtNode`](crate::dht::UdpDhtNode), a [`UdpDhtClient`](crate::dht::UdpDhtClient), a
//! [`ZkClient`](crate::zk::ZkClient), or a [`UdpDriver`](crate::UdpDriver) of your own core) is
//! driven by the same three calls: [`register`](Adapter::register) its sockets with your
//! `Poll` under a token, [`process`](Adapter::process) when one of its tokens is ready or its
//! [`poll_timeout`](Adapter::poll_timeout) has come, and sleep in `Poll::poll` until the
//! earliest timeout of all your sources. [`Group`](crate::Group) does exactly that for any mix
//! of adapters.

use std::any::Any;
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant as StdInstant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::{Error, Result};

/// How many tokens one adapter may use: from the token it is registered under up to (not
/// including) that token plus `TOKEN_SPAN`. A DHT node serving TCP uses the most: its UDP
/// socket, its listener and one token per connection.
pub const TOKEN_SPAN: usize = 1024;

/// A protocol adapter that runs on a caller's [`mio::Poll`], on the caller's thread.
///
/// ```
/// use std::time::{Duration, Instant};
/// use mio::{Events, Poll, Token};
/// use sinew_proto::health::Config;
/// use sinew_transport_std::{Adapter, UdpHealthNode};
///
/// let mut poll = Poll::new()?;
/// let mut events = Events::with_capacity(16);
/// let mut node = UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?;
/// node.register(poll.registry(), Token(0))?;
/// let end = Instant::now() + Duration::from_millis(50);
/// while Instant::now() < end {
///     node.process()?; // or only when Token(0) is ready or node.poll_timeout() has come
///     let wake = node.poll_timeout().map_or(end, |t| t.min(end));
///     poll.poll(&mut events, Some(wake.saturating_duration_since(Instant::now())))?;
/// }
/// # Ok::<(), sinew_transport_std::Error>(())
/// ```
pub trait Adapter: Any {
    /// Registers the adapter's sockets with `registry` (the registry of a `Poll` the caller
    /// drives) under tokens from `token` to `token + TOKEN_SPAN - 1`; sockets it opens later
    /// (a reconnect, an accepted connection) are registered there too. Registering again moves
    /// the adapter to the new registry and token.
    ///
    /// # Errors
    /// [`Error::Io`] if the registry cannot be cloned or a registration fails.
    fn register(&mut self, registry: &Registry, token: Token) -> Result<()>;

    /// One step: reads everything that arrived, lets time pass in the protocol core, and sends
    /// everything due. Never blocks. Outcomes go where the adapter's documentation says (its
    /// event queue, or the handler the caller chose).
    ///
    /// # Errors
    /// [`Error::Io`] if a socket fails in a way that is not about one datagram or connection.
    fn process(&mut self) -> Result<()>;

    /// When [`process`](Self::process) next has work to do even if no socket becomes ready
    /// (an instant in the past means now), or `None` if only a socket can give it work.
    fn poll_timeout(&self) -> Option<StdInstant>;
}

/// Where an adapter's sockets are registered: nowhere, with a caller's `Poll`, or with a `Poll`
/// of the adapter's own (for its `run_until` convenience).
#[derive(Debug, Default)]
pub(crate) struct Registration {
    /// The registry (a clone) and the adapter's first token.
    at: Option<(Registry, Token)>,
    /// The adapter's own poll, when it runs standalone.
    own: Option<(Poll, Events)>,
    /// The own poll's last sleep ended with a socket ready.
    woken: bool,
}

impl Registration {
    /// Records a caller's registry; the adapter then registers its sockets through
    /// [`add`](Self::add).
    pub(crate) fn set(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.at = Some((registry.try_clone()?, token));
        self.own = None;
        Ok(())
    }

    /// Whether the adapter runs standalone, on a `Poll` of its own.
    pub(crate) fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// Whether the own poll's last sleep ended with a socket ready (asked once: it is then
    /// forgotten).
    pub(crate) fn take_woken(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    /// Whether the adapter runs on a caller's `Poll`.
    pub(crate) fn is_shared(&self) -> bool {
        self.at.is_some() && self.own.is_none()
    }

    /// Registers `source` under the adapter's token plus `offset`, if the adapter is registered.
    pub(crate) fn add<S: Source + ?Sized>(
        &self,
        source: &mut S,
        offset: usize,
        interest: Interest,
    ) -> io::Result<()> {
        if let Some((registry, token)) = &self.at {
            registry.register(source, Token(token.0 + offset), interest)?;
        }
        Ok(())
    }

    /// Removes `source` from the registry it is registered with, if any.
    pub(crate) fn remove<S: Source + ?Sized>(&self, source: &mut S) -> io::Result<()> {
        if let Some((registry, _)) = &self.at {
            registry.deregister(source)?;
        }
        Ok(())
    }

    /// Sleeps in the adapter's own poll for at most `timeout`; a signal ends the sleep early.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        match self.own.as_mut() {
            Some((poll, events)) => {
                poll_precisely(poll, events, timeout)?;
                self.woken |= !events.is_empty();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// What the standalone run loop needs of an adapter beyond [`Adapter`]: its registration.
pub(crate) trait Standalone: Adapter + Sized {
    fn registration(&mut self) -> &mut Registration;
}

/// Runs `adapter` on this thread with a `Poll` of its own until `done` (asked after every step)
/// says so or `timeout` passes; whether `done` said so. A signal that interrupts the sleep ends
/// it early and `done` is asked again, so a Ctrl-C flag set by a handler is seen at once.
///
/// Refused with [`Error::Io`] if the adapter is registered with a caller's `Poll`.
pub(crate) fn run_until<A: Standalone>(
    adapter: &mut A,
    timeout: Duration,
    mut done: impl FnMut(&mut A) -> bool,
) -> Result<bool> {
    let deadline = StdInstant::now().checked_add(timeout);
    own_poll(adapter)?;
    loop {
        adapter.process()?;
        if done(adapter) {
            return Ok(true);
        }
        let now = StdInstant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(false);
        }
        let wake = earliest(adapter.poll_timeout(), deadline);
        adapter
            .registration()
            .wait(wake.map(|w| w.saturating_duration_since(now)))?;
    }
}

/// Sleeps, with the adapter's own `Poll`, until one of its sockets is ready, its
/// [`poll_timeout`](Adapter::poll_timeout) comes or `limit` passes, then takes one
/// [`process`](Adapter::process) step: the wait of a blocking client that has just sent.
///
/// Refused with [`Error::Io`] if the adapter is registered with a caller's `Poll`.
pub(crate) fn wait_and_process<A: Standalone>(adapter: &mut A, limit: Duration) -> Result<()> {
    own_poll(adapter)?;
    let now = StdInstant::now();
    let wake = earliest(adapter.poll_timeout(), now.checked_add(limit));
    adapter
        .registration()
        .wait(wake.map(|w| w.saturating_duration_since(now)))?;
    adapter.process()
}

/// Gives the adapter a `Poll` of its own, unless it has one; refused with [`Error::Io`] if it
/// is registered with a caller's `Poll`.
fn own_poll<A: Standalone>(adapter: &mut A) -> Result<()> {
    if adapter.registration().is_shared() {
        return Err(Error::Io(io::Error::other(
            "registered with a caller's Poll: drive it with process() there",
        )));
    }
    if adapter.registration().own.is_none() {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        adapter.register(&registry, Token(0))?;
        adapter.registration().own = Some((poll, Events::with_capacity(64)));
    }
    Ok(())
}

/// Sleeps in `poll` until a source is ready or `timeout` (`None`: no limit) passes, to the
/// microsecond; a signal ends the sleep early (not an error).
///
/// mio's epoll backend rounds a timeout up to whole milliseconds, which would stretch every
/// short timer (a ZooKeeper batching nap of 300 µs, a retry due in 2.4 ms) to the next
/// millisecond. So the poll sleeps the whole milliseconds, and if nothing became ready the rest
/// is slept with `thread::sleep` before one more look at the poll: a source that becomes ready
/// in that remainder waits at most that remainder, less than a millisecond. Only the standalone
/// run loop (one adapter, whose own timer it is) sleeps so; [`Group`](crate::Group) wakes on
/// any member's socket instead.
pub(crate) fn poll_precisely(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
) -> Result<()> {
    let deadline = timeout.and_then(|t| StdInstant::now().checked_add(t));
    let whole =
        timeout.map(|t| Duration::from_millis(u64::try_from(t.as_millis()).unwrap_or(u64::MAX)));
    match poll.poll(events, whole) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let Some(deadline) = deadline else {
        return Ok(());
    };
    let left = deadline.saturating_duration_since(StdInstant::now());
    if !events.is_empty() || left.is_zero() {
        return Ok(());
    }
    std::thread::sleep(left);
    match poll.poll(events, Some(Duration::ZERO)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The earlier of two optional instants (`None` is "never").
pub(crate) fn earliest(a: Option<StdInstant>, b: Option<StdInstant>) -> Option<StdInstant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
