//! [`Group`]: any mix of adapters driven by one `mio::Poll` on one thread.

use std::any::Any;
use std::fmt;
use std::io::ErrorKind;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};
use std::time::{Duration, Instant as StdInstant};

use mio::{Events, Poll, Registry, Token};

use crate::adapter::{TOKEN_SPAN, earliest};
use crate::{Adapter, Result};

/// Several [`Adapter`]s — health nodes, DHT nodes and clients, ZooKeeper clients, drivers of
/// your own cores — sharing one [`mio::Poll`] on the caller's thread.
///
/// Member `i` is registered under the tokens from `Token((i + 1) * TOKEN_SPAN)`; the tokens
/// below [`TOKEN_SPAN`] are the caller's, for sockets of its own registered with
/// [`registry`](Self::registry), whose readiness [`ready_tokens`](Self::ready_tokens) reports.
/// Each wake-up processes only the members that a socket or a timeout woke, then sleeps until
/// the earliest timeout of all. [`add`](Self::add) returns a typed [`Handle`] that indexes the
/// group.
///
/// ```
/// use std::time::Duration;
/// use sinew_proto::health::{Config, Status};
/// use sinew_transport_std::{Group, UdpHealthNode};
///
/// let mut group = Group::new()?;
/// let a = group.add(UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?)?;
/// let b = group.add(UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?)?;
/// let a_addr = group[a].local_addr();
/// group[b].add_seed(a_addr)?;
/// let met = group.run_until(Duration::from_secs(5), |g| {
///     g[b].host(a_addr).is_some_and(|h| h.health.status() == Status::Healthy)
/// })?;
/// assert!(met);
/// # Ok::<(), sinew_transport_std::Error>(())
/// ```
pub struct Group {
    poll: Poll,
    events: Events,
    members: Vec<Member>,
    /// The caller's tokens that were ready at the last wake-up.
    ready_tokens: Vec<Token>,
}

struct Member {
    adapter: Box<dyn Adapter>,
    ready: bool,
}

/// A member of a [`Group`], of type `T`: indexes the group (`group[handle]`).
pub struct Handle<T> {
    index: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Handle<T> {
    /// The member's position in the group (the order of [`Group::add`]).
    pub fn index(self) -> usize {
        self.index
    }

    /// The first of the member's tokens.
    pub fn token(self) -> Token {
        Token((self.index + 1) * TOKEN_SPAN)
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Handle<T> {}

impl<T> PartialEq for Handle<T> {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index
    }
}

impl<T> Eq for Handle<T> {}

impl<T> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({})", self.index)
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

impl Group {
    /// An empty group with a new `Poll`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the `Poll` cannot be created.
    pub fn new() -> Result<Group> {
        Ok(Group {
            poll: Poll::new()?,
            events: Events::with_capacity(256),
            members: Vec::new(),
            ready_tokens: Vec::new(),
        })
    }

    /// Adds an adapter, registering it under the next member's tokens; returns its handle.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the registration fails.
    pub fn add<T: Adapter>(&mut self, mut adapter: T) -> Result<Handle<T>> {
        let index = self.members.len();
        let handle = Handle {
            index,
            _type: PhantomData,
        };
        adapter.register(self.poll.registry(), handle.token())?;
        self.members.push(Member {
            adapter: Box::new(adapter),
            ready: true,
        });
        Ok(handle)
    }

    /// The member of `handle`, or `None` if the handle is of another group.
    pub fn get<T: Adapter>(&self, handle: Handle<T>) -> Option<&T> {
        let member = self.members.get(handle.index)?;
        (&*member.adapter as &dyn Any).downcast_ref()
    }

    /// The member of `handle`, to call its methods, or `None` if the handle is of another
    /// group. What it queues is sent at its next step.
    pub fn get_mut<T: Adapter>(&mut self, handle: Handle<T>) -> Option<&mut T> {
        let member = self.members.get_mut(handle.index)?;
        // Whatever the caller does to it is looked at in the next step.
        member.ready = true;
        (&mut *member.adapter as &mut dyn Any).downcast_mut()
    }

    /// Every member of type `T`, in the order they were added.
    pub fn iter<T: Adapter>(&self) -> impl Iterator<Item = &T> + '_ {
        self.members
            .iter()
            .filter_map(|m| (&*m.adapter as &dyn Any).downcast_ref())
    }

    /// Every member of type `T`, in the order they were added, to call their methods; each is
    /// then processed at the next step whether or not its sockets woke it (as with
    /// [`get_mut`](Self::get_mut)), so that what the caller queued goes out.
    pub fn iter_mut<T: Adapter>(&mut self) -> impl Iterator<Item = &mut T> + '_ {
        self.members.iter_mut().filter_map(|m| {
            m.ready = true;
            (&mut *m.adapter as &mut dyn Any).downcast_mut()
        })
    }

    /// How many members the group has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The registry of the group's `Poll`, to register sockets of the caller's own under
    /// tokens below [`TOKEN_SPAN`]; their readiness wakes the group and is listed in
    /// [`ready_tokens`](Self::ready_tokens).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The caller's tokens (below [`TOKEN_SPAN`]) that were ready at the last wake-up.
    pub fn ready_tokens(&self) -> &[Token] {
        &self.ready_tokens
    }

    /// The earliest [`poll_timeout`](Adapter::poll_timeout) of the members.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.members
            .iter()
            .filter_map(|m| m.adapter.poll_timeout())
            .min()
    }

    /// Processes the members that are ready or whose timeout has come.
    ///
    /// # Errors
    /// The first error of a member's [`process`](Adapter::process).
    pub fn process(&mut self) -> Result<()> {
        let now = StdInstant::now();
        for member in &mut self.members {
            if member.ready || member.adapter.poll_timeout().is_some_and(|t| t <= now) {
                member.ready = false;
                member.adapter.process()?;
            }
        }
        Ok(())
    }

    /// Sleeps until a socket of the group is ready, the earliest timeout of its members comes,
    /// or `limit` (if any) passes; a signal ends the sleep early.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if polling fails.
    pub fn wait(&mut self, limit: Option<StdInstant>) -> Result<()> {
        let now = StdInstant::now();
        let wake = earliest(self.poll_timeout(), limit);
        self.ready_tokens.clear();
        // Any member's socket wakes the group at once; a timer less than a millisecond away
        // may fire up to a millisecond late (mio's epoll backend rounds up to whole
        // milliseconds), which is better than leaving every other member's traffic waiting
        // through a sleep.
        match self.poll.poll(
            &mut self.events,
            wake.map(|w| w.saturating_duration_since(now)),
        ) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        for event in self.events.iter() {
            let token = event.token();
            match (token.0 / TOKEN_SPAN).checked_sub(1) {
                Some(i) => {
                    if let Some(member) = self.members.get_mut(i) {
                        member.ready = true;
                    }
                }
                None => self.ready_tokens.push(token),
            }
        }
        Ok(())
    }

    /// Runs the group for `duration`.
    ///
    /// # Errors
    /// As [`run_until`](Self::run_until).
    pub fn run_for(&mut self, duration: Duration) -> Result<()> {
        self.run_until(duration, |_| false).map(|_| ())
    }

    /// Runs the group until `done` returns `true` (asked after every wake-up, so it can read
    /// events and state, and the caller's [`ready_tokens`](Self::ready_tokens)) or `timeout`
    /// passes; returns whether `done` said so.
    ///
    /// # Errors
    /// The first error of a member's [`process`](Adapter::process) or of polling.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        let deadline = StdInstant::now().checked_add(timeout);
        // Whatever changed since the last run (a restart, a ping) is looked at once.
        for member in &mut self.members {
            member.ready = true;
        }
        loop {
            self.process()?;
            if done(self) {
                return Ok(true);
            }
            if deadline.is_some_and(|d| StdInstant::now() >= d) {
                return Ok(false);
            }
            self.wait(deadline)?;
        }
    }
}

impl<T: Adapter> Index<Handle<T>> for Group {
    type Output = T;

    /// # Panics
    /// If the handle is of another group (whose member there has another type).
    fn index(&self, handle: Handle<T>) -> &T {
        self.get(handle)
            .expect("a handle indexes the group that gave it out")
    }
}

impl<T: Adapter> IndexMut<Handle<T>> for Group {
    /// # Panics
    /// If the handle is of another group (whose member there has another type).
    fn index_mut(&mut self, handle: Handle<T>) -> &mut T {
        self.get_mut(handle)
            .expect("a handle indexes the group that gave it out")
    }
}
