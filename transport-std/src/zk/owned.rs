//! Owned copies of replies and events, for the blocking API and for callers that keep them.
//!
//! The zero-copy path (a handler, [`ZkClient::set_handler`](super::ZkClient::set_handler)) is
//! handed the session's borrowed [`Event`]s; these types are what
//! [`ZkClient::wait`](super::ZkClient::wait), [`ZkClient::next_event`](super::ZkClient::next_event)
//! and the blocking operations return.

use std::fmt;

use sinew_proto::zk::session::{
    DisconnectReason, Event, ReplyEvent, WatchEvent, WatchKind, WatcherId, Xid,
};
use sinew_proto::zk::{ErrorCode, EventType, MultiResult, OpCode, Perms, ReplyBody, Stat, ZkStr};

/// A jute string from the wire as a Rust string (invalid UTF-8, such as the Java client's
/// CESU-8, shows as U+FFFD).
pub(crate) fn text(s: ZkStr<'_>) -> String {
    s.to_string()
}

/// One entry of a node's ACL.
///
/// Exhaustive on purpose: an owned [`Acl`](sinew_proto::zk::Acl), whose fields mirror the jute
/// record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// What the identity may do.
    pub perms: Perms,
    /// The scheme (`world`, `digest`, `ip`, `auth`, …).
    pub scheme: String,
    /// The identity within the scheme.
    pub id: String,
}

/// One identity of a session, as whoAmI reports it.
///
/// Exhaustive on purpose: an owned [`ClientInfo`](sinew_proto::zk::ClientInfo), whose fields
/// mirror the jute record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientIdentity {
    /// The authentication scheme (`ip`, `digest`, …).
    pub scheme: String,
    /// The user (or address).
    pub user: String,
}

/// One result of a multi or multiRead, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpResult {
    /// A create: the created path.
    Create(String),
    /// A create2 / createTTL / createContainer: path and `Stat`.
    Create2 {
        /// The created path.
        path: String,
        /// Its `Stat`.
        stat: Stat,
    },
    /// A delete.
    Delete,
    /// A setData: the new `Stat`.
    SetData(Stat),
    /// A check.
    Check,
    /// A getChildren (multiRead): the names.
    GetChildren(Vec<String>),
    /// A getData (multiRead): data and `Stat`.
    GetData {
        /// The data (`None`: null).
        data: Option<Vec<u8>>,
        /// The `Stat`.
        stat: Stat,
    },
    /// An operation that failed or, in an aborted multi, was not applied: the operations
    /// before the failing one report [`ErrorCode::Ok`], the failing one its error, those
    /// after it [`ErrorCode::RuntimeInconsistency`]. A result of a kind newer than this
    /// crate's [`MultiResult`] comes out as [`ErrorCode::Unimplemented`].
    Error(ErrorCode),
}

impl OpResult {
    /// The error of an error result.
    pub fn error(&self) -> Option<ErrorCode> {
        match self {
            OpResult::Error(code) => Some(*code),
            _ => None,
        }
    }
}

impl From<MultiResult<'_>> for OpResult {
    fn from(r: MultiResult<'_>) -> OpResult {
        match r {
            MultiResult::Create(path) => OpResult::Create(text(path)),
            MultiResult::Create2(c) => OpResult::Create2 {
                path: text(c.path),
                stat: c.stat,
            },
            MultiResult::Delete => OpResult::Delete,
            MultiResult::SetData(stat) => OpResult::SetData(stat),
            MultiResult::Check => OpResult::Check,
            MultiResult::GetChildren(list) => {
                OpResult::GetChildren(list.iter().map(text).collect())
            }
            MultiResult::GetData(d) => OpResult::GetData {
                data: d.data.map(<[u8]>::to_vec),
                stat: d.stat,
            },
            MultiResult::Error(code) => OpResult::Error(code),
            _ => OpResult::Error(ErrorCode::Unimplemented),
        }
    }
}

/// A reply body, owned (see [`ReplyBody`] for which op gives which).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnedReply {
    /// No body.
    Empty,
    /// create, sync: a path.
    Path(String),
    /// create2, createTTL, createContainer: path and `Stat`.
    Created {
        /// The created path.
        path: String,
        /// Its `Stat`.
        stat: Stat,
    },
    /// exists, setData, setACL: a `Stat`.
    Stat(Stat),
    /// getData, reconfig: data and `Stat`.
    Data {
        /// The data (`None`: null).
        data: Option<Vec<u8>>,
        /// The `Stat`.
        stat: Stat,
    },
    /// getACL.
    Acl {
        /// The ACL.
        acl: Vec<AclEntry>,
        /// The `Stat`.
        stat: Stat,
    },
    /// getChildren (names), getEphemerals (paths).
    Children(Vec<String>),
    /// getChildren2.
    Children2 {
        /// The names.
        children: Vec<String>,
        /// The `Stat`.
        stat: Stat,
    },
    /// multi, multiRead.
    Multi(Vec<OpResult>),
    /// sasl.
    Sasl(Option<Vec<u8>>),
    /// getAllChildrenNumber.
    Count(i32),
    /// addWatch.
    Status(ErrorCode),
    /// whoAmI.
    WhoAmI(Vec<ClientIdentity>),
    /// An op this crate does not parse: the body (empty for a body of a kind newer than this
    /// crate's [`ReplyBody`]).
    Other(Vec<u8>),
}

impl From<ReplyBody<'_>> for OwnedReply {
    fn from(body: ReplyBody<'_>) -> OwnedReply {
        match body {
            ReplyBody::Empty | ReplyBody::Notification(_) => OwnedReply::Empty,
            ReplyBody::Path(path) => OwnedReply::Path(text(path)),
            ReplyBody::Created(c) => OwnedReply::Created {
                path: text(c.path),
                stat: c.stat,
            },
            ReplyBody::Stat(stat) => OwnedReply::Stat(stat),
            ReplyBody::Data(d) => OwnedReply::Data {
                data: d.data.map(<[u8]>::to_vec),
                stat: d.stat,
            },
            ReplyBody::Acl(a) => OwnedReply::Acl {
                acl: a
                    .acl
                    .iter()
                    .map(|acl| AclEntry {
                        perms: acl.perms,
                        scheme: text(acl.id.scheme),
                        id: text(acl.id.id),
                    })
                    .collect(),
                stat: a.stat,
            },
            ReplyBody::Children(list) => OwnedReply::Children(list.iter().map(text).collect()),
            ReplyBody::Children2(c) => OwnedReply::Children2 {
                children: c.children.iter().map(text).collect(),
                stat: c.stat,
            },
            ReplyBody::Multi(list) => OwnedReply::Multi(list.iter().map(OpResult::from).collect()),
            ReplyBody::Sasl(token) => OwnedReply::Sasl(token.map(<[u8]>::to_vec)),
            ReplyBody::Count(n) => OwnedReply::Count(n),
            ReplyBody::Status(code) => OwnedReply::Status(code),
            ReplyBody::WhoAmI(list) => OwnedReply::WhoAmI(
                list.iter()
                    .map(|info| ClientIdentity {
                        scheme: text(info.auth_scheme),
                        user: text(info.user),
                    })
                    .collect(),
            ),
            ReplyBody::Other { body, .. } => OwnedReply::Other(body.to_vec()),
            _ => OwnedReply::Other(Vec::new()),
        }
    }
}

/// The outcome of one request, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Completion {
    /// The request's xid.
    pub xid: Xid,
    /// The request's op code.
    pub op: OpCode,
    /// The reply's zxid (0 for a failure made up locally).
    pub zxid: i64,
    /// The reply, or its error (the server's, or ConnectionLoss / SessionExpired / AuthFailed
    /// made up by the session).
    pub result: Result<OwnedReply, ErrorCode>,
}

impl From<ReplyEvent<'_>> for Completion {
    fn from(r: ReplyEvent<'_>) -> Completion {
        Completion {
            xid: r.xid,
            op: r.op,
            zxid: r.zxid,
            result: r.result.map(OwnedReply::from),
        }
    }
}

/// A watch notification, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchNotification {
    /// The watcher whose watch fired (`None`: the session knew no watch for it).
    pub watcher: Option<WatcherId>,
    /// The kind of watch that fired.
    pub kind: Option<WatchKind>,
    /// What happened.
    pub event_type: EventType,
    /// The node (chroot stripped).
    pub path: String,
    /// The notification's zxid (-1 before ZooKeeper 3.9).
    pub zxid: i64,
}

impl From<WatchEvent<'_>> for WatchNotification {
    fn from(w: WatchEvent<'_>) -> WatchNotification {
        WatchNotification {
            watcher: w.watcher,
            kind: w.kind,
            event_type: w.event_type,
            path: text(w.path),
            zxid: w.zxid,
        }
    }
}

/// Everything but replies that a session reports, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZkEvent {
    /// The handshake succeeded (first connection or reconnection).
    Connected {
        /// The session id.
        session_id: i64,
        /// The negotiated timeout, milliseconds.
        timeout_ms: i32,
        /// Whether the server is read-only.
        read_only: bool,
        /// Whether an existing session was re-attached.
        reattached: bool,
    },
    /// The connection was lost; requests in flight failed with ConnectionLoss.
    Disconnected(DisconnectReason),
    /// The session expired.
    Expired,
    /// An authentication was refused; the session is over.
    AuthFailed,
    /// The session was closed.
    Closed,
    /// A watch fired.
    Watch(WatchNotification),
}

impl ZkEvent {
    /// The owned form of a session event; `None` for a reply (see [`Completion`]) and for an
    /// event of a kind newer than this crate.
    pub fn from_event(event: Event<'_>) -> Option<ZkEvent> {
        Some(match event {
            Event::Connected {
                session_id,
                timeout_ms,
                read_only,
                reattached,
            } => ZkEvent::Connected {
                session_id,
                timeout_ms,
                read_only,
                reattached,
            },
            Event::Disconnected { reason } => ZkEvent::Disconnected(reason),
            Event::Expired => ZkEvent::Expired,
            Event::AuthFailed => ZkEvent::AuthFailed,
            Event::Closed => ZkEvent::Closed,
            Event::Watch(w) => ZkEvent::Watch(w.into()),
            Event::Reply(_) => return None,
            _ => return None,
        })
    }

    /// The session event this is an owned copy of, borrowing from it.
    pub fn as_event(&self) -> Event<'_> {
        match self {
            ZkEvent::Connected {
                session_id,
                timeout_ms,
                read_only,
                reattached,
            } => Event::Connected {
                session_id: *session_id,
                timeout_ms: *timeout_ms,
                read_only: *read_only,
                reattached: *reattached,
            },
            ZkEvent::Disconnected(reason) => Event::Disconnected { reason: *reason },
            ZkEvent::Expired => Event::Expired,
            ZkEvent::AuthFailed => Event::AuthFailed,
            ZkEvent::Closed => Event::Closed,
            ZkEvent::Watch(w) => Event::Watch(WatchEvent::new(
                w.watcher,
                w.kind,
                w.event_type,
                ZkStr::new(&w.path),
                w.zxid,
            )),
        }
    }
}

impl fmt::Display for ZkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZkEvent::Connected {
                session_id,
                timeout_ms,
                reattached,
                ..
            } => write!(
                f,
                "connected: session 0x{session_id:x}, timeout {timeout_ms} ms{}",
                if *reattached { " (re-attached)" } else { "" }
            ),
            ZkEvent::Disconnected(reason) => write!(f, "disconnected: {reason}"),
            ZkEvent::Expired => f.write_str("session expired"),
            ZkEvent::AuthFailed => f.write_str("authentication failed"),
            ZkEvent::Closed => f.write_str("session closed"),
            ZkEvent::Watch(w) => write!(f, "{} {}", w.event_type, w.path),
        }
    }
}
