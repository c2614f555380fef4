//! Requests: the request records, multi operations, and [`Request`] (header + body).

use nom::Parser;

use super::codes::{AddWatchMode, CreateMode, OpCode, WatcherType};
use super::primitives::{
    List, ListItem, PResult, Record, Writer, ZkStr, boolean, buffer, buffer_len, fail, finish, int,
    long, record_api, ustring,
};
use super::records::{
    AuthPacket, MULTI_HEADER_LEN, MultiHeader, REQUEST_HEADER_LEN, RequestHeader, SetWatches,
    SetWatches2,
};
use super::{AUTH_XID, PING_XID, SET_WATCHES_XID};
use crate::{Error, Result};

/// Implements [`Record`] for a struct of jute fields read in order with nom and written back.
macro_rules! simple_record {
    (
        $name:ident { $( $field:ident: $read:expr, $len:expr, $write:ident ),* $(,)? }
    ) => {
        impl<'a> Record<'a> for $name<'a> {
            fn read(input: &'a [u8]) -> PResult<'a, $name<'a>> {
                ( $( $read, )* )
                    .map(|( $( $field, )* )| $name { $( $field: $field.into(), )* })
                    .parse(input)
            }

            #[inline]
            fn wire_len(&self) -> usize {
                let mut len = 0usize;
                $( len = len.saturating_add(($len)(&self.$field)); )*
                len
            }

            #[inline]
            fn write(&self, w: &mut Writer<'_>) -> Result<()> {
                $( simple_record!(@write w, $write, self.$field); )*
                Ok(())
            }
        }

        record_api!($name<'a>);
    };
    (@write $w:ident, ustring, $value:expr) => { $w.ustring($value)? };
    (@write $w:ident, buffer, $value:expr) => { $w.buffer($value)? };
    (@write $w:ident, int, $value:expr) => { $w.int($value.into())? };
    (@write $w:ident, long, $value:expr) => { $w.long($value)? };
    (@write $w:ident, boolean, $value:expr) => { $w.boolean($value)? };
    (@write $w:ident, record, $value:expr) => { $value.write($w)? };
}

fn str_len(s: &ZkStr<'_>) -> usize {
    s.encoded_len()
}

fn buf_len(b: &Option<&[u8]>) -> usize {
    buffer_len(*b)
}

fn four<T>(_: &T) -> usize {
    4
}

fn eight<T>(_: &T) -> usize {
    8
}

fn one<T>(_: &T) -> usize {
    1
}

fn record_len<'a, T: Record<'a>>(record: &T) -> usize {
    record.wire_len()
}

/// `{ustring path}`: getACL, sync, deleteContainer, getEphemerals (its `prefixPath`),
/// getAllChildrenNumber.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PathRequest<'a> {
    /// The node (for getEphemerals: the path prefix).
    pub path: ZkStr<'a>,
}

simple_record!(PathRequest {
    path: ustring,
    str_len,
    ustring
});

/// `{ustring path; boolean watch}`: exists, getData, getChildren, getChildren2.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PathWatchRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// Whether to leave a one-shot watch on the node.
    pub watch: bool,
}

simple_record!(PathWatchRequest {
    path: ustring,
    str_len,
    ustring,
    watch: boolean,
    one,
    boolean,
});

/// `{ustring path; int version}`: delete and check. Version -1 matches any version.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct PathVersionRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// The expected version, or -1 for any.
    pub version: i32,
}

simple_record!(PathVersionRequest {
    path: ustring,
    str_len,
    ustring,
    version: int,
    four,
    int,
});

/// `{ustring path; buffer data; int version}`: setData.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SetDataRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// The new data (`None` is jute's null buffer).
    pub data: Option<&'a [u8]>,
    /// The expected version, or -1 for any.
    pub version: i32,
}

simple_record!(SetDataRequest {
    path: ustring,
    str_len,
    ustring,
    data: buffer,
    buf_len,
    buffer,
    version: int,
    four,
    int,
});

/// `{ustring path; buffer data; vector<ACL> acl; int flags}`: create, create2, createContainer.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct CreateRequest<'a> {
    /// The node to create (for a sequential mode: the prefix of its name).
    pub path: ZkStr<'a>,
    /// The initial data.
    pub data: Option<&'a [u8]>,
    /// The node's ACL.
    pub acl: List<'a, super::Acl<'a>>,
    /// The create mode (createContainer: [`CreateMode::Container`]).
    pub mode: CreateMode,
}

simple_record!(CreateRequest {
    path: ustring,
    str_len,
    ustring,
    data: buffer,
    buf_len,
    buffer,
    acl: List::<super::Acl>::read,
    record_len,
    record,
    mode: int,
    four,
    int,
});

/// createTTL: [`CreateRequest`] followed by `long ttl`.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct CreateTtlRequest<'a> {
    /// Path, data, ACL and mode ([`CreateMode::PersistentWithTtl`] or
    /// [`CreateMode::PersistentSequentialWithTtl`]).
    pub create: CreateRequest<'a>,
    /// Milliseconds the node may stay unmodified and childless before the server deletes it.
    pub ttl: i64,
}

simple_record!(CreateTtlRequest {
    create: CreateRequest::read,
    record_len,
    record,
    ttl: long,
    eight,
    long,
});

/// `{ustring path; vector<ACL> acl; int version}`: setACL.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SetAclRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// The new ACL.
    pub acl: List<'a, super::Acl<'a>>,
    /// The expected ACL version (`aversion`), or -1 for any.
    pub version: i32,
}

simple_record!(SetAclRequest {
    path: ustring,
    str_len,
    ustring,
    acl: List::<super::Acl>::read,
    record_len,
    record,
    version: int,
    four,
    int,
});

/// `{ustring path; int type}`: checkWatches and removeWatches.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WatchesRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// Which watches.
    pub watcher_type: WatcherType,
}

simple_record!(WatchesRequest {
    path: ustring,
    str_len,
    ustring,
    watcher_type: int,
    four,
    int,
});

/// `{ustring path; int mode}`: addWatch.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AddWatchRequest<'a> {
    /// The node.
    pub path: ZkStr<'a>,
    /// Persistent, or persistent recursive.
    pub mode: AddWatchMode,
}

simple_record!(AddWatchRequest {
    path: ustring,
    str_len,
    ustring,
    mode: int,
    four,
    int,
});

/// `{ustring joiningServers; ustring leavingServers; ustring newMembers; long curConfigId}`:
/// reconfig. Unused strings are null ([`ZkStr::NULL`]).
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ReconfigRequest<'a> {
    /// Servers to add (incremental reconfiguration), comma-separated.
    pub joining_servers: ZkStr<'a>,
    /// Server ids to remove (incremental reconfiguration), comma-separated.
    pub leaving_servers: ZkStr<'a>,
    /// The whole new membership (bulk reconfiguration).
    pub new_members: ZkStr<'a>,
    /// The configuration version expected, or -1 for any.
    pub cur_config_id: i64,
}

simple_record!(ReconfigRequest {
    joining_servers: ustring,
    str_len,
    ustring,
    leaving_servers: ustring,
    str_len,
    ustring,
    new_members: ustring,
    str_len,
    ustring,
    cur_config_id: long,
    eight,
    long,
});

// ---------------------------------------------------------------------------------------------
// Multi
// ---------------------------------------------------------------------------------------------

/// One operation of a multi (op 14: the writes) or multiRead (op 22: the reads) request.
///
/// On the wire each is a [`MultiHeader`] `{type, false, -1}` followed by the operation's request
/// record; a `{-1, true, -1}` header ends the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum MultiOp<'a> {
    /// create (1), in a multi.
    Create(CreateRequest<'a>),
    /// create2 (15), in a multi.
    Create2(CreateRequest<'a>),
    /// createContainer (19), in a multi.
    CreateContainer(CreateRequest<'a>),
    /// createTTL (21), in a multi.
    CreateTtl(CreateTtlRequest<'a>),
    /// delete (2), in a multi.
    Delete(PathVersionRequest<'a>),
    /// setData (5), in a multi.
    SetData(SetDataRequest<'a>),
    /// check (13), in a multi: fails the transaction unless the version matches.
    Check(PathVersionRequest<'a>),
    /// getChildren (8), in a multiRead (the server ignores `watch` there).
    GetChildren(PathWatchRequest<'a>),
    /// getData (4), in a multiRead (the server ignores `watch` there).
    GetData(PathWatchRequest<'a>),
}

impl MultiOp<'_> {
    /// The operation's code.
    pub const fn op(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// Whether the operation belongs in a multiRead (op 22) rather than a multi (op 14).
    pub const fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    fn body_len(&self) -> usize {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.wire_len(),
            MultiOp::CreateTtl(r) => r.wire_len(),
            MultiOp::Delete(r) | MultiOp::Check(r) => r.wire_len(),
            MultiOp::SetData(r) => r.wire_len(),
            MultiOp::GetChildren(r) | MultiOp::GetData(r) => r.wire_len(),
        }
    }
}

impl<'a> Record<'a> for MultiOp<'a> {
    const MIN_LEN: usize = MULTI_HEADER_LEN;
    const MULTI: bool = true;

    fn read(input: &'a [u8]) -> PResult<'a, MultiOp<'a>> {
        let (rest, header) = MultiHeader::read(input)?;
        match header.op {
            OpCode::Create => CreateRequest::read.map(MultiOp::Create).parse(rest),
            OpCode::Create2 => CreateRequest::read.map(MultiOp::Create2).parse(rest),
            OpCode::CreateContainer => CreateRequest::read
                .map(MultiOp::CreateContainer)
                .parse(rest),
            OpCode::CreateTtl => CreateTtlRequest::read.map(MultiOp::CreateTtl).parse(rest),
            OpCode::Delete => PathVersionRequest::read.map(MultiOp::Delete).parse(rest),
            OpCode::SetData => SetDataRequest::read.map(MultiOp::SetData).parse(rest),
            OpCode::Check => PathVersionRequest::read.map(MultiOp::Check).parse(rest),
            OpCode::GetChildren => PathWatchRequest::read.map(MultiOp::GetChildren).parse(rest),
            OpCode::GetData => PathWatchRequest::read.map(MultiOp::GetData).parse(rest),
            other => fail(other.unexpected()),
        }
    }

    fn wire_len(&self) -> usize {
        MULTI_HEADER_LEN.saturating_add(self.body_len())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        MultiHeader {
            op: self.op(),
            done: false,
            err: -1,
        }
        .write(w)?;
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.write(w),
            MultiOp::CreateTtl(r) => r.write(w),
            MultiOp::Delete(r) | MultiOp::Check(r) => r.write(w),
            MultiOp::SetData(r) => r.write(w),
            MultiOp::GetChildren(r) | MultiOp::GetData(r) => r.write(w),
        }
    }
}

impl<'a> ListItem<'a> for MultiOp<'a> {}

record_api!(MultiOp<'a>);

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/// The body of a request; the variant determines the header's op code ([`RequestBody::op`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum RequestBody<'a> {
    /// 1: create a node; the reply is its path.
    Create(CreateRequest<'a>),
    /// 2: delete a node.
    Delete(PathVersionRequest<'a>),
    /// 3: a node's `Stat`.
    Exists(PathWatchRequest<'a>),
    /// 4: a node's data and `Stat`.
    GetData(PathWatchRequest<'a>),
    /// 5: set a node's data.
    SetData(SetDataRequest<'a>),
    /// 6: a node's ACL.
    GetAcl(PathRequest<'a>),
    /// 7: set a node's ACL.
    SetAcl(SetAclRequest<'a>),
    /// 8: a node's children.
    GetChildren(PathWatchRequest<'a>),
    /// 9: sync the server with the leader.
    Sync(PathRequest<'a>),
    /// 11: keep the session alive (no body; sent with [`PING_XID`]).
    Ping,
    /// 12: a node's children and `Stat`.
    GetChildren2(PathWatchRequest<'a>),
    /// 13: check a node's version (send it inside a multi: ZooKeeper 3.8 does not answer a
    /// standalone check that succeeds).
    Check(PathVersionRequest<'a>),
    /// 14: an atomic transaction of write operations.
    Multi(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_write_ops))]
        List<'a, MultiOp<'a>>,
    ),
    /// 15: create a node; the reply is its path and `Stat`.
    Create2(CreateRequest<'a>),
    /// 16: dynamic reconfiguration.
    Reconfig(ReconfigRequest<'a>),
    /// 17: check that a watch exists.
    CheckWatches(WatchesRequest<'a>),
    /// 18: remove watches.
    RemoveWatches(WatchesRequest<'a>),
    /// 19: create a container node.
    CreateContainer(CreateRequest<'a>),
    /// 20: delete a container node.
    DeleteContainer(PathRequest<'a>),
    /// 21: create a node with a TTL.
    CreateTtl(CreateTtlRequest<'a>),
    /// 22: a batch of reads.
    MultiRead(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_read_ops))]
        List<'a, MultiOp<'a>>,
    ),
    /// 100: add authentication (sent with [`AUTH_XID`]).
    Auth(AuthPacket<'a>),
    /// 101: re-register watches (sent with [`SET_WATCHES_XID`]).
    SetWatches(SetWatches<'a>),
    /// 102: one SASL round: `{buffer token}`.
    Sasl(Option<&'a [u8]>),
    /// 103: the session's ephemeral nodes under a prefix.
    GetEphemerals(PathRequest<'a>),
    /// 104: the number of descendants of a node.
    GetAllChildrenNumber(PathRequest<'a>),
    /// 105: re-register watches, persistent ones included (sent with [`SET_WATCHES_XID`]).
    SetWatches2(SetWatches2<'a>),
    /// 106: add a persistent (recursive) watch.
    AddWatch(AddWatchRequest<'a>),
    /// 107: the identities of this session (no body).
    WhoAmI,
    /// -11: close the session (no body).
    CloseSession,
    /// Any other op code (unknown ones, and codes clients do not send such as createSession):
    /// the body is kept as bytes. A server answers an unknown op with
    /// [`ErrorCode::Unimplemented`](super::ErrorCode::Unimplemented) and closes the connection.
    Other {
        /// The op code.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_other_op))]
        op: OpCode,
        /// The body, unparsed.
        body: &'a [u8],
    },
}

impl<'a> RequestBody<'a> {
    /// The op code of the request header that goes with this body.
    pub const fn op(&self) -> OpCode {
        match self {
            RequestBody::Create(_) => OpCode::Create,
            RequestBody::Delete(_) => OpCode::Delete,
            RequestBody::Exists(_) => OpCode::Exists,
            RequestBody::GetData(_) => OpCode::GetData,
            RequestBody::SetData(_) => OpCode::SetData,
            RequestBody::GetAcl(_) => OpCode::GetAcl,
            RequestBody::SetAcl(_) => OpCode::SetAcl,
            RequestBody::GetChildren(_) => OpCode::GetChildren,
            RequestBody::Sync(_) => OpCode::Sync,
            RequestBody::Ping => OpCode::Ping,
            RequestBody::GetChildren2(_) => OpCode::GetChildren2,
            RequestBody::Check(_) => OpCode::Check,
            RequestBody::Multi(_) => OpCode::Multi,
            RequestBody::Create2(_) => OpCode::Create2,
            RequestBody::Reconfig(_) => OpCode::Reconfig,
            RequestBody::CheckWatches(_) => OpCode::CheckWatches,
            RequestBody::RemoveWatches(_) => OpCode::RemoveWatches,
            RequestBody::CreateContainer(_) => OpCode::CreateContainer,
            RequestBody::DeleteContainer(_) => OpCode::DeleteContainer,
            RequestBody::CreateTtl(_) => OpCode::CreateTtl,
            RequestBody::MultiRead(_) => OpCode::MultiRead,
            RequestBody::Auth(_) => OpCode::Auth,
            RequestBody::SetWatches(_) => OpCode::SetWatches,
            RequestBody::Sasl(_) => OpCode::Sasl,
            RequestBody::GetEphemerals(_) => OpCode::GetEphemerals,
            RequestBody::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            RequestBody::SetWatches2(_) => OpCode::SetWatches2,
            RequestBody::AddWatch(_) => OpCode::AddWatch,
            RequestBody::WhoAmI => OpCode::WhoAmI,
            RequestBody::CloseSession => OpCode::CloseSession,
            RequestBody::Other { op, .. } => *op,
        }
    }

    /// Parses the body of a request with op code `op` (the bytes after the request header),
    /// which it must fill exactly.
    ///
    /// # Errors
    /// As [`Request::parse`].
    pub fn parse(op: OpCode, body: &'a [u8]) -> Result<RequestBody<'a>> {
        let (rest, parsed) = finish(read_body(op, body))?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        if let RequestBody::Multi(ops) | RequestBody::MultiRead(ops) = parsed {
            // Writes go in a multi, reads in a multiRead; ZooKeeper refuses a mix.
            let read = matches!(parsed, RequestBody::MultiRead(_));
            if let Some(op) = ops.iter().find(|op| op.is_read() != read) {
                return Err(op.op().unexpected());
            }
        }
        Ok(parsed)
    }

    /// The exact encoded length of the body.
    pub fn encoded_len(&self) -> usize {
        match self {
            RequestBody::Create(r) | RequestBody::Create2(r) | RequestBody::CreateContainer(r) => {
                r.wire_len()
            }
            RequestBody::Delete(r) | RequestBody::Check(r) => r.wire_len(),
            RequestBody::Exists(r)
            | RequestBody::GetData(r)
            | RequestBody::GetChildren(r)
            | RequestBody::GetChildren2(r) => r.wire_len(),
            RequestBody::SetData(r) => r.wire_len(),
            RequestBody::GetAcl(r)
            | RequestBody::Sync(r)
            | RequestBody::DeleteContainer(r)
            | RequestBody::GetEphemerals(r)
            | RequestBody::GetAllChildrenNumber(r) => r.wire_len(),
            RequestBody::SetAcl(r) => r.wire_len(),
            RequestBody::Ping | RequestBody::WhoAmI | RequestBody::CloseSession => 0,
            RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => ops.wire_len(),
            RequestBody::Reconfig(r) => r.wire_len(),
            RequestBody::CheckWatches(r) | RequestBody::RemoveWatches(r) => r.wire_len(),
            RequestBody::CreateTtl(r) => r.wire_len(),
            RequestBody::Auth(r) => r.wire_len(),
            RequestBody::SetWatches(r) => r.wire_len(),
            RequestBody::Sasl(token) => buffer_len(*token),
            RequestBody::SetWatches2(r) => r.wire_len(),
            RequestBody::AddWatch(r) => r.wire_len(),
            RequestBody::Other { body, .. } => body.len(),
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            RequestBody::Create(r) | RequestBody::Create2(r) | RequestBody::CreateContainer(r) => {
                r.write(w)
            }
            RequestBody::Delete(r) | RequestBody::Check(r) => r.write(w),
            RequestBody::Exists(r)
            | RequestBody::GetData(r)
            | RequestBody::GetChildren(r)
            | RequestBody::GetChildren2(r) => r.write(w),
            RequestBody::SetData(r) => r.write(w),
            RequestBody::GetAcl(r)
            | RequestBody::Sync(r)
            | RequestBody::DeleteContainer(r)
            | RequestBody::GetEphemerals(r)
            | RequestBody::GetAllChildrenNumber(r) => r.write(w),
            RequestBody::SetAcl(r) => r.write(w),
            RequestBody::Ping | RequestBody::WhoAmI | RequestBody::CloseSession => Ok(()),
            RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => ops.write(w),
            RequestBody::Reconfig(r) => r.write(w),
            RequestBody::CheckWatches(r) | RequestBody::RemoveWatches(r) => r.write(w),
            RequestBody::CreateTtl(r) => r.write(w),
            RequestBody::Auth(r) => r.write(w),
            RequestBody::SetWatches(r) => r.write(w),
            RequestBody::Sasl(token) => w.buffer(*token),
            RequestBody::SetWatches2(r) => r.write(w),
            RequestBody::AddWatch(r) => r.write(w),
            RequestBody::Other { body, .. } => w.bytes(body),
        }
    }
}

fn read_body(op: OpCode, input: &[u8]) -> PResult<'_, RequestBody<'_>> {
    use RequestBody as B;
    match op {
        OpCode::Create => CreateRequest::read.map(B::Create).parse(input),
        OpCode::Delete => PathVersionRequest::read.map(B::Delete).parse(input),
        OpCode::Exists => PathWatchRequest::read.map(B::Exists).parse(input),
        OpCode::GetData => PathWatchRequest::read.map(B::GetData).parse(input),
        OpCode::SetData => SetDataRequest::read.map(B::SetData).parse(input),
        OpCode::GetAcl => PathRequest::read.map(B::GetAcl).parse(input),
        OpCode::SetAcl => SetAclRequest::read.map(B::SetAcl).parse(input),
        OpCode::GetChildren => PathWatchRequest::read.map(B::GetChildren).parse(input),
        OpCode::Sync => PathRequest::read.map(B::Sync).parse(input),
        OpCode::Ping => Ok((input, B::Ping)),
        OpCode::GetChildren2 => PathWatchRequest::read.map(B::GetChildren2).parse(input),
        OpCode::Check => PathVersionRequest::read.map(B::Check).parse(input),
        OpCode::Multi => List::read.map(B::Multi).parse(input),
        OpCode::Create2 => CreateRequest::read.map(B::Create2).parse(input),
        OpCode::Reconfig => ReconfigRequest::read.map(B::Reconfig).parse(input),
        OpCode::CheckWatches => WatchesRequest::read.map(B::CheckWatches).parse(input),
        OpCode::RemoveWatches => WatchesRequest::read.map(B::RemoveWatches).parse(input),
        OpCode::CreateContainer => CreateRequest::read.map(B::CreateContainer).parse(input),
        OpCode::DeleteContainer => PathRequest::read.map(B::DeleteContainer).parse(input),
        OpCode::CreateTtl => CreateTtlRequest::read.map(B::CreateTtl).parse(input),
        OpCode::MultiRead => List::read.map(B::MultiRead).parse(input),
        OpCode::Auth => AuthPacket::read.map(B::Auth).parse(input),
        OpCode::SetWatches => SetWatches::read.map(B::SetWatches).parse(input),
        OpCode::Sasl => buffer.map(B::Sasl).parse(input),
        OpCode::GetEphemerals => PathRequest::read.map(B::GetEphemerals).parse(input),
        OpCode::GetAllChildrenNumber => PathRequest::read.map(B::GetAllChildrenNumber).parse(input),
        OpCode::SetWatches2 => SetWatches2::read.map(B::SetWatches2).parse(input),
        OpCode::AddWatch => AddWatchRequest::read.map(B::AddWatch).parse(input),
        OpCode::WhoAmI => Ok((input, B::WhoAmI)),
        OpCode::CloseSession => Ok((input, B::CloseSession)),
        OpCode::Notification | OpCode::CreateSession | OpCode::Error | OpCode::Unknown(_) => {
            Ok((&[], B::Other { op, body: input }))
        }
    }
}

/// A request after the handshake: [`RequestHeader`] `{int xid; int type}` and a body.
///
/// The header's op code is not stored: it is the body's ([`RequestBody::op`]), so the two
/// cannot disagree.
///
/// ```
/// use sinew_proto::zk::{PathWatchRequest, Request, RequestBody, ZkStr};
///
/// let request = Request {
///     xid: 1,
///     body: RequestBody::GetData(PathWatchRequest { path: ZkStr::new("/a"), watch: false }),
/// };
/// let mut buf = [0u8; 64];
/// let len = request.encode_framed(&mut buf)?;
/// assert_eq!(&buf[..4], &[0, 0, 0, 15]); // frame length: 8 header + 6 path + 1 watch
/// assert_eq!(Request::parse(&buf[4..len])?, request);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
///
/// Exhaustive on purpose: a request is an xid and a body, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Request<'a> {
    /// The request id, echoed by the reply.
    pub xid: i32,
    /// What is asked.
    pub body: RequestBody<'a>,
}

impl<'a> Request<'a> {
    /// A ping, with [`PING_XID`].
    pub const PING: Request<'static> = Request {
        xid: PING_XID,
        body: RequestBody::Ping,
    };

    /// An auth request, with [`AUTH_XID`].
    pub const fn auth(packet: AuthPacket<'a>) -> Request<'a> {
        Request {
            xid: AUTH_XID,
            body: RequestBody::Auth(packet),
        }
    }

    /// A setWatches2 request, with [`SET_WATCHES_XID`].
    pub const fn set_watches2(watches: SetWatches2<'a>) -> Request<'a> {
        Request {
            xid: SET_WATCHES_XID,
            body: RequestBody::SetWatches2(watches),
        }
    }

    /// The request's header.
    pub const fn header(&self) -> RequestHeader {
        RequestHeader {
            xid: self.xid,
            op: self.body.op(),
        }
    }

    /// Parses a request frame's payload (the bytes after the 4-byte length): the header, then
    /// the body its op code names.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the payload ends early, [`Error::TrailingBytes`] if bytes are
    /// left over, [`Error::BadLength`] for a negative length other than -1,
    /// [`Error::TooLarge`] for a length or count above [`MAX_LEN`](super::MAX_LEN),
    /// [`Error::UnexpectedOp`] for an operation a multi (or multiRead) may not contain. An
    /// unknown op code is not an error: it gives [`RequestBody::Other`].
    pub fn parse(payload: &'a [u8]) -> Result<Request<'a>> {
        let Some((header, body)) = payload.split_first_chunk::<REQUEST_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let header = RequestHeader::from_bytes(header);
        Ok(Request {
            xid: header.xid,
            body: RequestBody::parse(header.op, body)?,
        })
    }

    /// The exact length of [`encode`](Self::encode)'s output (without the frame length).
    pub fn encoded_len(&self) -> usize {
        REQUEST_HEADER_LEN.saturating_add(self.body.encoded_len())
    }

    /// Writes the header and body (no frame length) into the front of `buf`; returns the bytes
    /// written.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`encoded_len`](Self::encoded_len),
    /// [`Error::TooLarge`] if a string, buffer or vector is longer than jute can say.
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        let (op, create) = match &self.body {
            RequestBody::Create(r) => (OpCode::Create, r),
            RequestBody::Create2(r) => (OpCode::Create2, r),
            RequestBody::CreateContainer(r) => (OpCode::CreateContainer, r),
            _ => return self.encode_any(buf),
        };
        self.encode_create(op.to_i32(), create, buf)
    }

    /// The creates, the hottest writes: their records written inline, with no dispatch on
    /// the body (the others go through [`encode_any`](Self::encode_any)).
    #[inline]
    fn encode_create(&self, op: i32, create: &CreateRequest<'_>, buf: &mut [u8]) -> Result<usize> {
        let len = REQUEST_HEADER_LEN.saturating_add(create.wire_len());
        // Every length is written as a jute int: when the whole request's fits one, each of
        // them does, and needs no check of its own. (A longer one gets the general path's
        // errors.)
        if i32::try_from(len).is_err() {
            return self.encode_any(buf);
        }
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer::new(out);
        w.int(self.xid)?;
        w.int(op)?;
        w.fitting_buffer(create.path.to_wire())?;
        w.fitting_buffer(create.data)?;
        create.acl.write(&mut w)?;
        w.int(create.mode.to_i32())?;
        Ok(len)
    }

    /// [`encode`](Self::encode) of every request.
    fn encode_any(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.encoded_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer::new(out);
        self.header().write_to(w.fixed::<REQUEST_HEADER_LEN>()?);
        self.body.write(&mut w)?;
        Ok(len)
    }
}

super::frame::framed_api!(Request<'a>);

#[cfg(feature = "arbitrary")]
fn arbitrary_write_ops<'a>(
    u: &mut arbitrary::Unstructured<'a>,
) -> arbitrary::Result<List<'a, MultiOp<'a>>> {
    List::arbitrary_with(u, |op: &MultiOp<'_>| !op.is_read())
}

#[cfg(feature = "arbitrary")]
fn arbitrary_read_ops<'a>(
    u: &mut arbitrary::Unstructured<'a>,
) -> arbitrary::Result<List<'a, MultiOp<'a>>> {
    List::arbitrary_with(u, MultiOp::is_read)
}

/// An op code that parses as `Other` (unknown, or not a client request).
#[cfg(feature = "arbitrary")]
pub(crate) fn arbitrary_other_op(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<OpCode> {
    let op = OpCode::from_i32(u.arbitrary()?);
    Ok(match op {
        OpCode::Notification | OpCode::CreateSession | OpCode::Error | OpCode::Unknown(_) => op,
        _ => OpCode::Unknown(1000),
    })
}
