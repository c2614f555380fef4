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
//!   as a sans-IO state machine ([`dht::DhtNode`]: ring with leaf sets and a prefix routing
//!   table, replicated puts, leased locks);
//! * [`maelstrom`] — Maelstrom's JSON-lines envelope (`{src, dest, body}`), its error codes and
//!   their definite/indefinite split, read and written with serde-json-core;
//! * [`health`] — UDP health checks and peer-table exchange, as a codec and as a sans-IO state
//!   machine ([`health::HealthNode`]);
//! * [`seal`] — a shared-key keyring and sealed (AES-256-GCM) datagrams with replay
//!   windows, and [`seal::Keyed`], which puts any datagram core behind a keyring;
//! * `sim` (feature `sim`, needs `std`) — a virtual-time network of any datagram cores, with
//!   latency, loss, partitions and crashes, for sizing a ring and for tests;
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
//!
//! ## Stability
//!
//! What is expected to grow is `#[non_exhaustive]`, so that growing it is not a breaking
//! change: [`Error`]; the events, dispositions, drop reasons and request errors of the state
//! machines; their counters (`Stats`, `ClientStats`) and reports (`HostInfo`, `WatchInfo`,
//! [`datagram::Transmit`]); their configs; session states and watch kinds; the message sets
//! ([`health::Message`], [`health::MessageKind`], [`dht::Body`], [`dht::Kind`],
//! [`zk::RequestBody`], [`zk::ReplyBody`], [`zk::MultiOp`], [`zk::MultiResult`]); and the open
//! code sets ([`zk::ErrorCode`], [`zk::OpCode`] and the other ZooKeeper codes, [`dht::ErrorCode`]),
//! whose `Unknown` arm keeps parsing safe but whose named variants may still grow. Match them
//! with a `_` arm. Configs are built with `new` and chainable `with_*` setters (`const fn`s:
//! a config can be a `const` or a `static`); their fields stay public, to read and to assign.
//!
//! Wire records — the structs whose fields mirror a message's layout in a given protocol
//! version ([`health::HealthCheck`], [`dht::Message`], [`zk::Stat`], every jute record of
//! [`zk`]) — are exhaustive on purpose, as smoltcp's are: a new field would be a new wire
//! format, which is a new version of this crate's types anyway; their docs say so. So are the
//! closed two- or three-way enums ([`health::HealthKind`], [`health::Status`], [`dht::Side`],
//! [`frame::FrameStatus`]) and the id newtypes.
//!
//! The crates in public signatures are re-exported: [`rand_core`] (0.10) and [`heapless`]
//! (0.9).
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
pub mod maelstrom;
pub mod nonce;
pub mod seal;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod time;
pub mod zk;

pub use error::{Error, Result};

/// The `rand_core` (0.10) whose traits this crate's random number generators must implement:
/// [`rand_core::CryptoRng`], which every [`rand_core::TryCryptoRng`] with `Error = Infallible`
/// is (wrap a fallible one in [`rand_core::UnwrapErr`]). Name the traits through this path and
/// no other version of the crate can be picked by mistake.
///
/// `rand` 0.10 is built on this `rand_core` and its generators fit as they are. `rand` 0.9 is
/// built on `rand_core` 0.9, whose traits are other items: its generators do not fit, and the
/// compiler reports an unsatisfied `CryptoRng` bound. Either take the operating system's
/// generator from getrandom 0.4 (feature `sys_rng`): `UnwrapErr(getrandom::SysRng)`; or wrap the
/// `rand` 0.9 generator:
///
/// ```
/// use sinew_proto::health::{Config, HealthNode};
/// use sinew_proto::rand_core::{TryCryptoRng, TryRng};
/// use core::convert::Infallible;
///
/// /// A `rand` 0.9 generator, seen through `rand_core` 0.10.
/// struct Rand09<R>(R);
///
/// impl<R: rand::RngCore> TryRng for Rand09<R> {
///     type Error = Infallible;
///     fn try_next_u32(&mut self) -> Result<u32, Infallible> {
///         Ok(self.0.next_u32())
///     }
///     fn try_next_u64(&mut self) -> Result<u64, Infallible> {
///         Ok(self.0.next_u64())
///     }
///     fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
///         self.0.fill_bytes(dst);
///         Ok(())
///     }
/// }
///
/// // Only for generators that `rand` 0.9 itself calls cryptographically secure.
/// impl<R: rand::RngCore + rand::CryptoRng> TryCryptoRng for Rand09<R> {}
///
/// // (Seeded from the operating system in real use: `StdRng::from_os_rng()`.)
/// let rng = Rand09(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7));
/// let node: HealthNode<_> = HealthNode::new(Config::default(), rng);
/// # let _ = node;
/// ```
pub use rand_core;

/// The `heapless` (0.9) of the bounded collections in this crate's signatures (event payloads
/// such as [`dht::Event::GetDone`]'s value are `heapless::Vec`s).
pub use heapless;
