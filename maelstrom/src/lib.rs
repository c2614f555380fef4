//! # sinew-maelstrom
//!
//! Nodes for [Maelstrom](https://github.com/jepsen-io/maelstrom)'s workloads, each a sans-IO
//! state machine: a [`Node`] takes one line (a JSON message) and the time, and returns the lines
//! to send and the next instant it wants to be woken at. [`runtime::run`] drives one over
//! stdin and stdout; the harness and the tests drive the same nodes on virtual time.
//!
//! [`services`] are Maelstrom's `lin-kv`, `seq-kv` (its stale reads included) and `lin-tso`, for
//! the harness and the tests. [`harness`] runs any node executable as Maelstrom does (its
//! network, faults, generators and final reads) and checks the [`history`] with [`check`]; it is
//! what `sinew maelstrom test` runs.
//!
//! The envelope is read with [`sinew_proto::maelstrom`] (serde-json-core, borrowed); a body's
//! workload fields are read and written with `serde_json` here, on std.
//!
//! | workload | node | messages |
//! | --- | --- | --- |
//! | echo | [`echo::Echo`] | `echo` → `echo_ok` |
//! | unique-ids | [`unique_ids::UniqueIds`] | `generate` → `generate_ok {id}` |
//! | broadcast | [`broadcast::Broadcast`] | `topology`, `broadcast`, `read`; `gossip` between nodes |
//! | g-counter | [`g_counter::GCounter`] | `add`, `read`, over the `seq-kv` service |
//! | kafka | [`kafka::Kafka`] | `send`, `poll`, `commit_offsets`, `list_committed_offsets`, over `lin-kv` |
//! | txn-rw-register | [`txn::Txn`] | `txn` → `txn_ok`; `replicate` between nodes |
//!
//! ```
//! use sinew_maelstrom::{Node, echo::Echo};
//! use sinew_proto::time::Instant;
//!
//! let mut node = Node::new(Echo);
//! let now = Instant::ZERO;
//! let out = node.handle_line(now, br#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1"]}}"#);
//! assert_eq!(out, [r#"{"src":"n1","dest":"c0","body":{"type":"init_ok","in_reply_to":1}}"#]);
//! let out = node.handle_line(now, br#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":2,"echo":"hi"}}"#);
//! assert_eq!(out, [r#"{"src":"n1","dest":"c1","body":{"type":"echo_ok","in_reply_to":2,"msg_id":1,"echo":"hi"}}"#]);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod broadcast;
pub mod broken;
pub mod check;
pub mod echo;
pub mod g_counter;
pub mod harness;
pub mod history;
pub mod kafka;
pub mod lin_kv;
mod node;
pub mod runtime;
pub mod services;
pub mod txn;
pub mod unique_ids;

pub use node::{Ctx, Message, Node, Reject, Stats, Workload};
pub use sinew_proto::maelstrom::ErrorCode;
pub use sinew_proto::time::Instant;
