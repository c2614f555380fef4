//! What the application learns from the session: [`Event`] and what it carries.

use core::fmt;

#[cfg(doc)]
use super::{Config, ZkSession};
use super::{WatchKind, WatcherId, Xid};
use crate::Error;
use crate::zk::{ErrorCode, EventType, OpCode, ReplyBody, ZkStr};

/// The outcome of a request: its reply, or why it has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct ReplyEvent<'a> {
    /// The xid [`ZkSession::submit`] returned.
    pub xid: Xid,
    /// The request's op code.
    pub op: OpCode,
    /// The zxid of the reply's header; 0 for a failure made up locally.
    pub zxid: i64,
    /// The reply's body (paths with the chroot stripped, borrowed from the session's receive
    /// buffer), or its error: the server's, or [`ErrorCode::ConnectionLoss`] /
    /// [`ErrorCode::SessionExpired`] / [`ErrorCode::AuthFailed`] made up locally for a request
    /// that cannot be answered.
    pub result: core::result::Result<ReplyBody<'a>, ErrorCode>,
}

impl ReplyEvent<'_> {
    /// Whether the failure was made up by the session rather than sent by a server.
    pub const fn is_local(&self) -> bool {
        self.zxid == 0 && self.result.is_err()
    }
}

/// A watch notification, once for each watch it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct WatchEvent<'a> {
    /// The watcher whose watch fired; `None` when the notification matched no watch the
    /// session knows (it is still reported, once).
    pub watcher: Option<WatcherId>,
    /// The kind of the watch that fired (`None` when unmatched).
    pub kind: Option<WatchKind>,
    /// What happened.
    pub event_type: EventType,
    /// The node it happened to, with the chroot stripped, borrowed from the receive buffer.
    pub path: ZkStr<'a>,
    /// The notification's zxid (-1 from ZooKeeper before 3.9).
    pub zxid: i64,
}

impl<'a> WatchEvent<'a> {
    /// A watch event with these fields, for an adapter that hands out again a copy it keeps.
    pub const fn new(
        watcher: Option<WatcherId>,
        kind: Option<WatchKind>,
        event_type: EventType,
        path: ZkStr<'a>,
        zxid: i64,
    ) -> WatchEvent<'a> {
        WatchEvent {
            watcher,
            kind,
            event_type,
            path,
            zxid,
        }
    }
}

/// What the application learns from [`ZkSession::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<'a> {
    /// The handshake succeeded.
    Connected {
        /// The session's id.
        session_id: i64,
        /// The negotiated session timeout, milliseconds.
        timeout_ms: i32,
        /// Whether the server is read-only.
        read_only: bool,
        /// Whether this re-attached an existing session (false for a new one).
        reattached: bool,
    },
    /// The connection was lost; every request in flight has failed (their
    /// [`Event::Reply`]s follow). The session reconnects when [`ZkSession::wants_connect`].
    Disconnected {
        /// Why.
        reason: DisconnectReason,
    },
    /// The server declared the session expired; the session is over and every request fails
    /// with [`ErrorCode::SessionExpired`].
    Expired,
    /// The server refused an authentication; the session is over.
    AuthFailed,
    /// The session was closed ([`ZkSession::close`]).
    Closed,
    /// The outcome of a submitted request.
    Reply(ReplyEvent<'a>),
    /// A watch fired.
    Watch(WatchEvent<'a>),
}

/// Why a connection was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The transport reported the connection closed or broken
    /// ([`ZkSession::handle_disconnected`]).
    Transport,
    /// No ConnectResponse within [`Config::connect_timeout`].
    ConnectTimeout,
    /// Nothing received for the read timeout (2/3 of the negotiated session timeout).
    ReadTimeout,
    /// The server's bytes broke the protocol (bad frame length, a reply that does not parse,
    /// a frame larger than the receive buffer).
    Protocol(Error),
    /// A reply arrived whose xid is not the oldest pending request's (`expected`, `None` when
    /// nothing was pending).
    UnexpectedXid {
        /// The xid the session waited for.
        expected: Option<Xid>,
        /// The xid that came.
        got: Xid,
    },
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Transport => f.write_str("connection closed"),
            DisconnectReason::ConnectTimeout => f.write_str("connect timeout"),
            DisconnectReason::ReadTimeout => f.write_str("read timeout"),
            DisconnectReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DisconnectReason::UnexpectedXid {
                expected: Some(x),
                got,
            } => write!(f, "reply xid {got} while xid {x} was the oldest pending"),
            DisconnectReason::UnexpectedXid {
                expected: None,
                got,
            } => write!(f, "reply xid {got} with no request pending"),
        }
    }
}
