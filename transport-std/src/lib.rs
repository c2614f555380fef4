//! # sinew-transport-std
//!
//! Binds sinew's sans-IO protocol cores ([`sinew_proto`]) to std sockets through [`mio`], on the
//! caller's thread: no runtime, no background threads, no per-packet hand-off between threads.
//!
//! * [`UdpHealthNode`] — a [`HealthNode`](sinew_proto::health::HealthNode) on a UDP socket:
//!   health checks, the network table and peer-table discovery, standalone
//!   ([`run_for`](UdpHealthNode::run_for), [`run_until`](UdpHealthNode::run_until)) or registered
//!   with your own [`mio::Poll`];
//! * [`Adapter`] — the three calls every adapter here answers (register with a caller's
//!   `Poll`, `process` one non-blocking step, `poll_timeout`), so any of them joins your event
//!   loop the same way; [`Group`] drives any mix of them on one `Poll` and one thread;
//! * [`UdpDriver`] — the one datagram driver: any sans-IO
//!   [`DatagramCore`](sinew_proto::datagram::DatagramCore) on a UDP socket, with `recvmmsg` /
//!   `sendmmsg` batches on Linux; the UDP adapters below are thin types over it;
//! * [`Clock`] — `std::time::Instant` to the cores' microsecond [`Instant`](sinew_proto::time::Instant);
//! * [`dht::UdpDhtNode`] and [`dht::UdpDhtClient`] — a DHT ring member and a client of the ring,
//!   the sans-IO [`DhtNode`](sinew_proto::dht::DhtNode) and
//!   [`DhtClient`](sinew_proto::dht::DhtClient) on UDP sockets;
//! * [`zk::ZkClient`] — a ZooKeeper client: the sans-IO [`ZkSession`](sinew_proto::zk::session::ZkSession)
//!   on a mio TCP socket, pipelined and zero-copy, with a blocking API on top;
//! * [`Error`] — the crate's one error type.
//!
//! The `sinew` command, built on this crate, is the `sinew` package (`cli/` in the repository).
//!
//! The smallest use: a node that joins a network through a seed and runs for a while.
//!
//! ```no_run
//! use std::time::Duration;
//! use sinew_proto::health::Config;
//! use sinew_transport_std::UdpHealthNode;
//!
//! let mut node = UdpHealthNode::bind("0.0.0.0:7000".parse().unwrap(), Config::default())?;
//! node.add_seed("192.0.2.1:7000".parse().unwrap())?;
//! node.run_for(Duration::from_secs(10))?;
//! for host in node.hosts() {
//!     println!("{} {}", host.addr, host.health);
//! }
//! # Ok::<(), sinew_transport_std::Error>(())
//! ```
//!
//! Driving an adapter from your own `Poll` takes a token and a short loop (see [`Adapter`]):
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mio::{Events, Poll, Token};
//! use sinew_proto::health::Config;
//! use sinew_transport_std::{Adapter, UdpHealthNode};
//!
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(16);
//! let mut node = UdpHealthNode::bind("127.0.0.1:0".parse().unwrap(), Config::default())?;
//! node.register(poll.registry(), Token(7))?;
//! let end = Instant::now() + Duration::from_millis(50);
//! while Instant::now() < end {
//!     node.process()?; // or only when Token(7) is ready or node.poll_timeout() has come
//!     let wake = node.poll_timeout().map_or(end, |t| t.min(end));
//!     poll.poll(&mut events, Some(wake.saturating_duration_since(Instant::now())))?;
//! }
//! # Ok::<(), sinew_transport_std::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapter;
mod clock;
pub mod dht;
mod error;
mod group;
mod node;
mod udp;
pub mod zk;

pub use adapter::{Adapter, TOKEN_SPAN};
pub use clock::Clock;
pub use error::{ConnectError, Error, Result};
pub use group::{Group, Handle};
pub use node::UdpHealthNode;
pub use udp::{EVENT_BUFFER, NonceRng, SocketStats, TimedEvent, UdpDriver};

/// The protocol cores these adapters drive: their configs, events and errors appear in this
/// crate's signatures.
pub use sinew_proto;

/// The mio (1.x) of [`Adapter::register`] and [`Group::registry`]: register adapters with
/// `sinew_transport_std::mio::Poll` and no second mio can slip in.
pub use mio;

/// The getrandom (0.4) behind [`NonceRng`] (`rand_core::UnwrapErr<getrandom::SysRng>`), for
/// building a core of your own with the same generator.
pub use getrandom;
