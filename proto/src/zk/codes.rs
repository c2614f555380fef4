//! The protocol's numeric codes as open enums, and the ACL permission bits.
//!
//! Every enum here converts both ways with `i32` ([`From<i32>`] and `From<Enum> for i32`), and a
//! value without a named variant decodes to the enum's `Unknown(i32)` arm instead of failing: a
//! newer server may send codes this crate has never heard of, and the session must survive them.
//! Conversion never produces `Unknown(n)` for an `n` that has a named variant, so `from` is the
//! canonical form of any value.

use core::fmt;
use core::ops::{BitAnd, BitOr};

macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        ///
        /// `#[non_exhaustive]`: a named variant may be added for a value that decodes to
        /// `Unknown` today.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value without a named variant, carried unchanged.
            Unknown(i32),
        }

        impl $name {
            /// The variant for a wire value; `Unknown(value)` when none is named.
            #[inline]
            pub const fn from_i32(value: i32) -> $name {
                match value {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            #[inline]
            pub const fn to_i32(self) -> i32 {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(value) => value,
                }
            }

            /// Whether the value has a named variant.
            pub const fn is_known(self) -> bool {
                !matches!(Self::from_i32(self.to_i32()), $name::Unknown(_))
            }
        }

        impl From<i32> for $name {
            #[inline]
            fn from(value: i32) -> $name {
                $name::from_i32(value)
            }
        }

        impl From<$name> for i32 {
            #[inline]
            fn from(value: $name) -> i32 {
                value.to_i32()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $( $name::$variant => f.write_str($text), )*
                    $name::Unknown(value) => write!(f, "Unknown({value})"),
                }
            }
        }

        #[cfg(feature = "arbitrary")]
        impl<'a> arbitrary::Arbitrary<'a> for $name {
            fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<$name> {
                // Through `from_i32`, so that a generated value is always in canonical form.
                Ok($name::from_i32(u.arbitrary()?))
            }
        }
    };
}

open_enum! {
    /// The `err` of a [`ReplyHeader`](super::ReplyHeader), a multi result or an `ErrorResponse`
    /// (ZooKeeper's `KeeperException.Code`). Displayed with ZooKeeper's names.
    pub enum ErrorCode {
        /// 0: success.
        Ok = 0 => "Ok",
        /// -1: a server-side error; the operation may or may not have happened.
        SystemError = -1 => "SystemError",
        /// -2: a state inconsistency; in an aborted multi, an operation that was not tried.
        RuntimeInconsistency = -2 => "RuntimeInconsistency",
        /// -3: a data inconsistency.
        DataInconsistency = -3 => "DataInconsistency",
        /// -4: the connection was lost (client-side only).
        ConnectionLoss = -4 => "ConnectionLoss",
        /// -5: an error while (de)serializing.
        MarshallingError = -5 => "MarshallingError",
        /// -6: the operation is not implemented or not enabled (also: TTL nodes without
        /// extended types).
        Unimplemented = -6 => "Unimplemented",
        /// -7: the operation timed out.
        OperationTimeout = -7 => "OperationTimeout",
        /// -8: invalid arguments.
        BadArguments = -8 => "BadArguments",
        /// -12: the session is unknown to the server.
        UnknownSession = -12 => "UnknownSession",
        /// -13: a reconfiguration would leave no quorum.
        NewConfigNoQuorum = -13 => "NewConfigNoQuorum",
        /// -14: another reconfiguration is in progress.
        ReconfigInProgress = -14 => "ReconfigInProgress",
        /// -100: the base of the API errors (never sent as such).
        ApiError = -100 => "APIError",
        /// -101: the node does not exist.
        NoNode = -101 => "NoNode",
        /// -102: not authorized.
        NoAuth = -102 => "NoAuth",
        /// -103: the expected version does not match.
        BadVersion = -103 => "BadVersion",
        /// -108: ephemeral nodes cannot have children.
        NoChildrenForEphemerals = -108 => "NoChildrenForEphemerals",
        /// -110: the node already exists.
        NodeExists = -110 => "NodeExists",
        /// -111: the node has children.
        NotEmpty = -111 => "NotEmpty",
        /// -112: the session has expired.
        SessionExpired = -112 => "SessionExpired",
        /// -113: invalid callback.
        InvalidCallback = -113 => "InvalidCallback",
        /// -114: invalid ACL.
        InvalidAcl = -114 => "InvalidACL",
        /// -115: authentication failed.
        AuthFailed = -115 => "AuthFailed",
        /// -118: the session moved to another server.
        SessionMoved = -118 => "SessionMoved",
        /// -119: a write on a read-only server.
        NotReadOnly = -119 => "NotReadOnly",
        /// -120: an ephemeral node on a local session.
        EphemeralOnLocalSession = -120 => "EphemeralOnLocalSession",
        /// -121: no such watch (checkWatches / removeWatches).
        NoWatcher = -121 => "NoWatcher",
        /// -122: the request timed out.
        RequestTimeout = -122 => "RequestTimeout",
        /// -123: dynamic reconfiguration is disabled.
        ReconfigDisabled = -123 => "ReconfigDisabled",
        /// -124: the session was closed because it needs SASL authentication.
        SessionClosedRequireSaslAuth = -124 => "SessionClosedRequireSaslAuth",
        /// -125: a quota was exceeded.
        QuotaExceeded = -125 => "QuotaExceeded",
        /// -127: the server throttled the operation.
        ThrottledOp = -127 => "ThrottledOp",
    }
}

impl ErrorCode {
    /// Whether this is [`ErrorCode::Ok`].
    pub const fn is_ok(self) -> bool {
        matches!(self, ErrorCode::Ok)
    }
}

open_enum! {
    /// The `type` of a [`RequestHeader`](super::RequestHeader) or a
    /// [`MultiHeader`](super::MultiHeader) (ZooKeeper's `ZooDefs.OpCode`). Displayed with
    /// ZooKeeper's names.
    pub enum OpCode {
        /// 0: a watch notification (only in the server's accounting).
        Notification = 0 => "notification",
        /// 1: create a node.
        Create = 1 => "create",
        /// 2: delete a node.
        Delete = 2 => "delete",
        /// 3: a node's `Stat`, optionally watching for its creation / change / deletion.
        Exists = 3 => "exists",
        /// 4: a node's data and `Stat`.
        GetData = 4 => "getData",
        /// 5: set a node's data.
        SetData = 5 => "setData",
        /// 6: a node's ACL.
        GetAcl = 6 => "getACL",
        /// 7: set a node's ACL.
        SetAcl = 7 => "setACL",
        /// 8: a node's children.
        GetChildren = 8 => "getChildren",
        /// 9: sync the server with the leader.
        Sync = 9 => "sync",
        /// 11: keep the session alive (xid -2).
        Ping = 11 => "ping",
        /// 12: a node's children and `Stat`.
        GetChildren2 = 12 => "getChildren2",
        /// 13: check a node's version (inside multi).
        Check = 13 => "check",
        /// 14: an atomic transaction of writes.
        Multi = 14 => "multi",
        /// 15: create a node, returning its `Stat`.
        Create2 = 15 => "create2",
        /// 16: dynamic reconfiguration.
        Reconfig = 16 => "reconfig",
        /// 17: check that a watch exists.
        CheckWatches = 17 => "checkWatches",
        /// 18: remove watches.
        RemoveWatches = 18 => "removeWatches",
        /// 19: create a container node.
        CreateContainer = 19 => "createContainer",
        /// 20: delete a container node.
        DeleteContainer = 20 => "deleteContainer",
        /// 21: create a node with a time to live.
        CreateTtl = 21 => "createTTL",
        /// 22: a batch of reads.
        MultiRead = 22 => "multiRead",
        /// 100: add authentication (xid -4).
        Auth = 100 => "auth",
        /// 101: re-register watches after a reconnect (xid -8).
        SetWatches = 101 => "setWatches",
        /// 102: one SASL round.
        Sasl = 102 => "sasl",
        /// 103: the session's ephemeral nodes under a prefix.
        GetEphemerals = 103 => "getEphemerals",
        /// 104: the number of descendants of a node.
        GetAllChildrenNumber = 104 => "getAllChildrenNumber",
        /// 105: re-register watches, persistent ones included (xid -8).
        SetWatches2 = 105 => "setWatches2",
        /// 106: add a persistent (recursive) watch.
        AddWatch = 106 => "addWatch",
        /// 107: the identities of this session.
        WhoAmI = 107 => "whoAmI",
        /// -10: create a session (server-internal).
        CreateSession = -10 => "createSession",
        /// -11: close the session.
        CloseSession = -11 => "closeSession",
        /// -1: the type of a failed operation's result inside a multi reply.
        Error = -1 => "error",
    }
}

impl OpCode {
    /// [`Error::UnexpectedOp`](crate::Error::UnexpectedOp) for this op code.
    pub(crate) fn unexpected(self) -> crate::Error {
        crate::Error::UnexpectedOp(i16::try_from(self.to_i32()).unwrap_or(i16::MIN))
    }
}

open_enum! {
    /// The `type` of a [`WatcherEvent`](super::WatcherEvent) (ZooKeeper's
    /// `Watcher.Event.EventType`).
    pub enum EventType {
        /// -1: a change of the session's state, not of a node.
        None = -1 => "None",
        /// 1: the watched node was created.
        NodeCreated = 1 => "NodeCreated",
        /// 2: the watched node was deleted.
        NodeDeleted = 2 => "NodeDeleted",
        /// 3: the watched node's data changed.
        NodeDataChanged = 3 => "NodeDataChanged",
        /// 4: the watched node's children changed.
        NodeChildrenChanged = 4 => "NodeChildrenChanged",
        /// 5: a data watch was removed.
        DataWatchRemoved = 5 => "DataWatchRemoved",
        /// 6: a child watch was removed.
        ChildWatchRemoved = 6 => "ChildWatchRemoved",
        /// 7: a persistent watch was removed.
        PersistentWatchRemoved = 7 => "PersistentWatchRemoved",
    }
}

open_enum! {
    /// The `state` of a [`WatcherEvent`](super::WatcherEvent) (ZooKeeper's
    /// `Watcher.Event.KeeperState`). The server sends [`KeeperState::SyncConnected`]; the others
    /// are derived by clients.
    ///
    /// ZooKeeper's own "Unknown" state (-1, never generated) has no variant of its own: it is
    /// `KeeperState::Unknown(-1)`.
    pub enum KeeperState {
        /// 0: the client is disconnected.
        Disconnected = 0 => "Disconnected",
        /// 1: unused.
        NoSyncConnected = 1 => "NoSyncConnected",
        /// 3: connected to a server in sync with the ensemble.
        SyncConnected = 3 => "SyncConnected",
        /// 4: authentication failed.
        AuthFailed = 4 => "AuthFailed",
        /// 5: connected to a read-only server.
        ConnectedReadOnly = 5 => "ConnectedReadOnly",
        /// 6: SASL authentication succeeded.
        SaslAuthenticated = 6 => "SaslAuthenticated",
        /// -112: the session expired.
        Expired = -112 => "Expired",
        /// 7: the client closed the session.
        Closed = 7 => "Closed",
    }
}

open_enum! {
    /// The `flags` of a create request (ZooKeeper's `CreateMode`).
    pub enum CreateMode {
        /// 0: persistent.
        Persistent = 0 => "persistent",
        /// 1: ephemeral: deleted when the session ends.
        Ephemeral = 1 => "ephemeral",
        /// 2: persistent, with a sequence number appended to the name.
        PersistentSequential = 2 => "persistent sequential",
        /// 3: ephemeral, with a sequence number appended to the name.
        EphemeralSequential = 3 => "ephemeral sequential",
        /// 4: a container: deleted by the server once its last child is gone.
        Container = 4 => "container",
        /// 5: persistent, deleted when unmodified and childless for its TTL.
        PersistentWithTtl = 5 => "persistent with TTL",
        /// 6: persistent sequential with a TTL.
        PersistentSequentialWithTtl = 6 => "persistent sequential with TTL",
    }
}

impl CreateMode {
    /// Whether the node ends with the session.
    pub const fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the server appends a sequence number to the name.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the mode needs a TTL ([`OpCode::CreateTtl`]).
    pub const fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

open_enum! {
    /// The `type` of a checkWatches / removeWatches request (ZooKeeper's `Watcher.WatcherType`).
    pub enum WatcherType {
        /// 1: child watches.
        Children = 1 => "children",
        /// 2: data (and exists) watches.
        Data = 2 => "data",
        /// 3: any watch.
        Any = 3 => "any",
        /// 4: persistent watches. A 3.8.0 server refuses 4 and 5 in removeWatches
        /// (MarshallingError); use [`WatcherType::Any`], which removes persistent watches too.
        Persistent = 4 => "persistent",
        /// 5: persistent recursive watches (see [`WatcherType::Persistent`]).
        PersistentRecursive = 5 => "persistent recursive",
    }
}

open_enum! {
    /// The `mode` of an addWatch request (ZooKeeper's `AddWatchMode`).
    pub enum AddWatchMode {
        /// 0: a persistent watch on the node.
        Persistent = 0 => "persistent",
        /// 1: a persistent watch on the node and all its descendants.
        PersistentRecursive = 1 => "persistent recursive",
    }
}

/// The permission bits of an [`Acl`](super::Acl) (ZooKeeper's `ZooDefs.Perms`).
///
/// Unknown bits are kept as they are.
///
/// Exhaustive on purpose: the bits are the wire value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Perms(pub i32);

impl Perms {
    /// No permission.
    pub const NONE: Perms = Perms(0);
    /// Read the data and list the children.
    pub const READ: Perms = Perms(1);
    /// Set the data.
    pub const WRITE: Perms = Perms(2);
    /// Create children.
    pub const CREATE: Perms = Perms(4);
    /// Delete children.
    pub const DELETE: Perms = Perms(8);
    /// Set the ACL.
    pub const ADMIN: Perms = Perms(16);
    /// All five permissions.
    pub const ALL: Perms = Perms(31);

    /// The raw bits.
    pub const fn bits(self) -> i32 {
        self.0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl BitAnd for Perms {
    type Output = Perms;
    fn bitand(self, rhs: Perms) -> Perms {
        Perms(self.0 & rhs.0)
    }
}

impl From<i32> for Perms {
    fn from(bits: i32) -> Perms {
        Perms(bits)
    }
}

impl From<Perms> for i32 {
    fn from(perms: Perms) -> i32 {
        perms.0
    }
}

impl fmt::Display for Perms {
    /// The letters of zkCli, `cdrwa`, of the bits that are set; unknown bits in hex after them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (perm, letter) in [
            (Perms::CREATE, "c"),
            (Perms::DELETE, "d"),
            (Perms::READ, "r"),
            (Perms::WRITE, "w"),
            (Perms::ADMIN, "a"),
        ] {
            if self.contains(perm) {
                f.write_str(letter)?;
            }
        }
        let unknown = self.0 & !Perms::ALL.0;
        if unknown != 0 {
            write!(f, "+{unknown:#x}")?;
        }
        Ok(())
    }
}
