//! # sinew-proto
//!
//! Zero-copy, `no_std`, allocation-free wire protocols for small distributed systems:
//!
//! * [`datagram`] — the datagram size limit and [`datagram::DatagramCore`], the one interface
//!   every datagram protocol core (health node, DHT node, DHT client) offers its driver;
//! * [`frame`] — the 4-byte length-prefixed frames of the stream protocols (ZooKeeper, the DHT
//!   on TCP) and their streaming decoder ([`frame::FrameDecoder`]);
//! * [`nonce`] — the 17-byte nonce header (type byte + 128-bit nonce) shared by the UDP protocols;
//! * [`dht`] — DHT commands (get/put/lock/unlock) and ring membership messages, and the DHT node
//!   as a sans-IO state machine ([`dht::DhtNode`]: ring with leaf sets, replicated puts, leased
//!   locks);
//! * [`health`] — UDP health checks and peer-table exchange, as a codec and as a sans-IO state
//!   machine ([`health::HealthNode`]);
//! * [`zk`] — Apache ZooKeeper's jute client protocol: every request, reply and record, and a
//!   sans-IO session ([`zk::session::ZkSession`]).
//!
//! Parsing borrows the input and never allocates or panics; encoding writes into a caller's buffer
//! whose size [`encoded_len`](health::HealthCheck::encoded_len)-style methods give exactly. Protocol
//! logic never reads a clock or touches a socket: time comes in as a [`time::Instant`] parameter and
//! datagrams go in and out as byte slices, so the same code drives a mio socket on a server and an
//! embedded-nal stack on a Cortex-M.
//!
//! ```
//! use sinew_proto::health::{HealthCheck, HealthKind};
//! use sinew_proto::nonce::Nonce;
//!
//! let request = HealthCheck { kind: HealthKind::Request, nonce: Nonce::from_bytes([7; 16]) };
//! let mut buf = [0u8; 17];
//! let len = request.encode(&mut buf)?;
//! assert_eq!(len, request.encoded_len());
//! assert_eq!(HealthCheck::parse(&buf[..len])?, request);
//! # Ok::<(), sinew_proto::Error>(())
//! ```
//!
//! The wire formats are specified byte by byte in `PROTOCOL.md` beside this crate.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "std", test))]
extern crate std;

mod addr;
pub mod datagram;
pub mod dht;
mod error;
pub mod frame;
pub mod health;
pub mod nonce;
pub mod time;
pub mod zk;

pub use error::{Error, Result};
