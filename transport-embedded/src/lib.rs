//! # sinew-transport-embedded
//!
//! Binds sinew's sans-IO protocol cores ([`sinew_proto`]) to [embedded-nal] 0.9 network stacks:
//! `no_std`, no allocator, generic over the stack, every buffer owned by the caller.
//!
//! * [`HealthEndpoint`] — a [`HealthNode`](sinew_proto::health::HealthNode) (health checks, the
//!   network table, peer-table discovery) on one socket of a [`UdpFullStack`](embedded_nal::UdpFullStack);
//! * [`ZkClient`] — a ZooKeeper client (session, pipelined requests, watches, reconnect) on one
//!   socket of a [`TcpClientStack`](embedded_nal::TcpClientStack);
//! * [`DhtTcpClient`] — a DHT client (get, put, lock, unlock through any ring member) on one
//!   socket of a [`TcpClientStack`](embedded_nal::TcpClientStack);
//! * [`Error`] — `Proto(sinew_proto::Error)` or `Network(E)` for the stack's error `E`;
//! * `AsyncHealthEndpoint` (feature `async`) — the same over an embedded-nal-async
//!   `UnconnectedUdp` socket, waiting with an embedded-hal-async `DelayNs`;
//! * [`Clock`] — where a board says what time it is. Like the cores, the adapter never reads a
//!   clock: every call takes `now`.
//!
//! `nb::WouldBlock` from the stack is never an error: the endpoint keeps what it could not finish
//! and [`process`](HealthEndpoint::process) says to come back at once.
//!
//! ```
//! use std_embedded_nal::Stack;
//! use sinew_proto::health::{Config, HealthNode};
//! use sinew_proto::time::Instant;
//! use sinew_transport_embedded::{HealthBuffers, HealthEndpoint};
//! use sinew_proto::rand_core::UnwrapErr;
//! use getrandom::SysRng; // getrandom 0.4, feature `sys_rng`
//!
//! let mut stack = Stack;
//! let mut buffers = HealthBuffers::new();
//! let node: HealthNode<_, 8, 8, 4> = HealthNode::new(Config::default(), UnwrapErr(SysRng));
//! let mut endpoint = HealthEndpoint::bind(&mut stack, 0, node, &mut buffers)?;
//! endpoint.add_seed("127.0.0.1:7000".parse().unwrap())?;
//! let next_wakeup = endpoint.process(&mut stack, Instant::ZERO)?;
//! assert!(next_wakeup.is_some());
//! # Ok::<(), sinew_transport_embedded::Error<std::io::Error>>(())
//! ```
//!
//! ## Layout
//! One module per protocol family and kind of socket: [`health`] runs on `UdpFullStack`;
//! [`zk`] is a ZooKeeper client ([`ZkClient`], driving `sinew_proto`'s `ZkSession`) on one socket
//! of an `embedded_nal::TcpClientStack`, in the same way: stack passed to every call, caller's
//! buffers ([`ZkBuffers`]), [`Error`] with the stack's error. [`dht`] is the DHT client
//! ([`DhtTcpClient`], driving `sinew_proto`'s `DhtClient`) on a `TcpClientStack`, alike.
//!
//! [embedded-nal]: embedded_nal
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(test)]
extern crate std;

mod clock;
pub mod dht;
mod error;
pub mod health;
#[cfg(feature = "async")]
pub mod health_async;
pub mod zk;

pub use clock::Clock;
pub use dht::{DhtBuffers, DhtTcpClient};
pub use error::{Error, Result};
pub use health::{HealthBuffers, HealthEndpoint};
#[cfg(feature = "async")]
pub use health_async::AsyncHealthEndpoint;
pub use zk::{ZkBuffers, ZkClient};

/// The `nb` crate of embedded-nal, for matching on `WouldBlock` without a dependency of your own.
pub use embedded_nal::nb;

/// The protocol cores these adapters drive: their configs, events and errors appear in this
/// crate's signatures.
pub use sinew_proto;

/// The embedded-nal (0.9) whose stack traits (`UdpFullStack`, `TcpClientStack`) the adapters
/// are generic over.
pub use embedded_nal;

/// The embedded-nal-async (0.9) of [`AsyncHealthEndpoint`]'s socket (`UnconnectedUdp`).
#[cfg(feature = "async")]
pub use embedded_nal_async;

/// The embedded-hal-async (1.x) of [`AsyncHealthEndpoint`]'s delay (`DelayNs`).
#[cfg(feature = "async")]
pub use embedded_hal_async;
