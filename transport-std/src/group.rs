//! [`NodeGroup`]: several nodes driven by one `mio::Poll` on one thread.

use std::io::ErrorKind;
use std::time::{Duration, Instant as StdInstant};

use mio::{Events, Poll, Registry, Token};

use crate::{Result, UdpHealthNode};

/// Several [`UdpHealthNode`]s sharing one [`mio::Poll`] on the caller's thread.
///
/// Node `i` is registered under `Token(i)`. Each wake-up processes only the nodes whose socket
/// became readable or whose [`poll_timeout`](UdpHealthNode::poll_timeout) has come, then sleeps
/// until the earliest timeout of all. Nodes can be stopped, started and restarted through
/// [`nodes_mut`](Self::nodes_mut); they keep their token.
///
/// ```
/// use std::time::Duration;
/// use sinew_proto::health::{Config, Status};
/// use sinew_transport_std::{NodeGroup, UdpHealthNode};
///
/// let mut group = NodeGroup::new()?;
/// let a = group.add(UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?)?;
/// let b = group.add(UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?)?;
/// let a_addr = group.nodes()[a].local_addr();
/// group.nodes_mut()[b].add_seed(a_addr)?;
/// let met = group.run_until(Duration::from_secs(5), |g| {
///     g.nodes()[b].host(a_addr).is_some_and(|h| h.health.status() == Status::Healthy)
/// })?;
/// assert!(met);
/// # Ok::<(), sinew_transport_std::Error>(())
/// ```
#[derive(Debug)]
pub struct NodeGroup<const HOSTS: usize = 32, const PENDING: usize = 32, const QUEUE: usize = 16> {
    poll: Poll,
    events: Events,
    nodes: Vec<UdpHealthNode<HOSTS, PENDING, QUEUE>>,
    ready: Vec<bool>,
}

impl<const HOSTS: usize, const PENDING: usize, const QUEUE: usize>
    NodeGroup<HOSTS, PENDING, QUEUE>
{
    /// An empty group with a new `Poll`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the `Poll` cannot be created.
    pub fn new() -> Result<Self> {
        Ok(NodeGroup {
            poll: Poll::new()?,
            events: Events::with_capacity(64),
            nodes: Vec::new(),
            ready: Vec::new(),
        })
    }

    /// Adds a node, registering it under `Token(index)`; returns its index.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the registration fails.
    pub fn add(&mut self, mut node: UdpHealthNode<HOSTS, PENDING, QUEUE>) -> Result<usize> {
        let index = self.nodes.len();
        node.register(self.poll.registry(), Token(index))?;
        self.nodes.push(node);
        self.ready.push(true);
        Ok(index)
    }

    /// The nodes, in the order they were added.
    pub fn nodes(&self) -> &[UdpHealthNode<HOSTS, PENDING, QUEUE>] {
        &self.nodes
    }

    /// The nodes, to ping, read events, stop or restart them.
    pub fn nodes_mut(&mut self) -> &mut [UdpHealthNode<HOSTS, PENDING, QUEUE>] {
        &mut self.nodes
    }

    /// The registry of the group's `Poll`, to register more sources with tokens from
    /// `Token(len())` up; their readiness wakes [`run_until`](Self::run_until) but is not
    /// handled by it.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The earliest [`poll_timeout`](UdpHealthNode::poll_timeout) of the nodes.
    pub fn poll_timeout(&self) -> Option<StdInstant> {
        self.nodes.iter().filter_map(|n| n.poll_timeout()).min()
    }

    /// Processes every node once, ready or not.
    ///
    /// # Errors
    /// The first error of [`UdpHealthNode::process`].
    pub fn process_all(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.process()?;
        }
        self.ready.fill(false);
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
    /// events and tables) or `timeout` passes; returns whether `done` said so.
    ///
    /// # Errors
    /// The first error of [`UdpHealthNode::process`] or of polling.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<bool> {
        let deadline = StdInstant::now().checked_add(timeout);
        // Whatever changed since the last run (a restart, a ping) is looked at once.
        self.ready.fill(true);
        loop {
            let now = StdInstant::now();
            for (node, ready) in self.nodes.iter_mut().zip(self.ready.iter_mut()) {
                if *ready || node.poll_timeout().is_some_and(|t| t <= now) {
                    node.process()?;
                }
                *ready = false;
            }
            if done(self) {
                return Ok(true);
            }
            let now = StdInstant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            let wake = match (self.poll_timeout(), deadline) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            let timeout = wake.map(|w| w.saturating_duration_since(now));
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            for event in self.events.iter() {
                if let Some(ready) = self.ready.get_mut(event.token().0) {
                    *ready = true;
                }
            }
        }
    }
}
